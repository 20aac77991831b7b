"""PPO execution policy: training with stable-baselines3 on :class:`ExecutionEnvironment` and loading.

The agent acts in [-1, 1] through gymnasium's ``RescaleAction`` wrapper (SB3's recommended symmetric
action box); the environment itself speaks fractions in [0, 1]. A saved model is ``<name>.zip`` (SB3)
plus ``<name>.json`` metadata: seed, timesteps, hyper-parameters, training symbols and date range, data
source, impact/feature settings, the observation layout and ``model_file``: the zip's SHA-256, library
versions, policy and spaces as plain JSON. Loading verifies the checksum and never unpickles anything from
the zip (see :mod:`graphwiz_trader.execution.model_files`). Evaluation refuses a model whose training
dates or symbols overlap the evaluation's (see :func:`check_disjoint`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.errors import ConfigError
from graphwiz_trader.execution.env import DEFAULT_RISK_AVERSION_PER_BPS, DEFAULT_VOLUME_FRACTION_RANGE, ExecutionEnvironment
from graphwiz_trader.execution.market import (
    OBSERVATION_BOUND,
    OBSERVATION_NAMES,
    OBSERVATION_SIZE,
    MarketArrays,
    MarketFeatureSettings,
)
from graphwiz_trader.execution.model_files import load_actor_critic_policy, save_sb3_model
from graphwiz_trader.execution.simulator import ImpactModelSettings
from graphwiz_trader.models.files import read_json_file, write_json_atomic

log = logging.getLogger(__name__)


def default_torch_threads() -> int:
    """Torch threads for PPO on a 2-core machine: 1.

    The policy is a 2x64 MLP on batches of <= 256 rows; intra-op parallelism cannot pay for its
    synchronisation there, and on a busy 2-core machine two OpenMP threads spin-wait against the
    environment's Python thread (measured: 10k steps took 7.9 s wall with 1 thread, 149 s with 2 under
    load). One thread for torch leaves the second core to the environment and to other processes.
    """
    return 1


@dataclass(frozen=True)
class PPOTrainingSettings:
    """PPO hyper-parameters (stable-baselines3 names). ``n_steps`` is per environment copy."""

    total_timesteps: int = 100_000
    seed: int = 0
    n_envs: int = 4
    n_steps: int = 512
    batch_size: int = 256
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    net_arch: tuple[int, ...] = (64, 64)
    torch_threads: int = field(default_factory=default_torch_threads)


@dataclass(frozen=True)
class PPOTrainingResult:
    model_path: Path
    metadata_path: Path
    metadata: dict[str, Any]
    train_seconds: float


def metadata_path_for(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_suffix(".json") if p.suffix == ".zip" else Path(str(p) + ".json")


def agent_spaces() -> tuple[Any, Any]:
    """(observation, action) spaces the agent sees: the environment's observation box and [-1, 1]."""
    from gymnasium import spaces

    obs = spaces.Box(-OBSERVATION_BOUND, OBSERVATION_BOUND, shape=(OBSERVATION_SIZE,), dtype=np.float32)
    return obs, spaces.Box(np.full(1, -1.0, dtype=np.float32), np.full(1, 1.0, dtype=np.float32), dtype=np.float32)


def _make_env(markets: dict[str, MarketArrays], env_kwargs: dict[str, Any]):
    from gymnasium.wrappers import RescaleAction
    from stable_baselines3.common.monitor import Monitor

    def _init():
        env = ExecutionEnvironment(markets, **env_kwargs)
        return Monitor(RescaleAction(env, np.full(1, -1.0, dtype=np.float32), np.full(1, 1.0, dtype=np.float32)))

    return _init


def train_ppo(markets: dict[str, MarketArrays], out_path: str | Path, *, symbols: list[str],
              train_start: pd.Timestamp | None, train_end: pd.Timestamp | None, time_horizon_bars: int = 6,
              volume_fraction_range: tuple[float, float] = DEFAULT_VOLUME_FRACTION_RANGE,
              impact: ImpactModelSettings | None = None, features: MarketFeatureSettings | None = None,
              risk_aversion_per_bps: float = DEFAULT_RISK_AVERSION_PER_BPS,
              config: PPOTrainingSettings | None = None, data_source: str = "", data_label: str = "",
              progress: bool = True) -> PPOTrainingResult:
    """Train PPO on episodes of ``symbols`` whose bars open in [train_start, train_end), save model + metadata.

    Returns
    -------
    PPOTrainingResult
        paths, metadata dict and wall-clock training seconds.
    """
    import stable_baselines3
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv

    cfg = config or PPOTrainingSettings()
    impact = impact or ImpactModelSettings()
    torch.set_num_threads(cfg.torch_threads)
    set_random_seed(cfg.seed)
    env_kwargs = dict(volume_fraction_range=tuple(volume_fraction_range), time_horizon=time_horizon_bars,
                      side="random", impact=impact, risk_aversion_per_bps=risk_aversion_per_bps,
                      start=train_start, end=train_end, symbols=list(symbols))
    probe = ExecutionEnvironment(markets, **env_kwargs)  # validates inputs, counts episodes
    vec = DummyVecEnv([_make_env(markets, env_kwargs) for _ in range(cfg.n_envs)])
    model = PPO("MlpPolicy", vec, n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
                learning_rate=cfg.learning_rate, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
                clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, seed=cfg.seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": list(cfg.net_arch)})
    # SB3's default logger makes an empty SB3-<time> folder in the temp folder at every learn(); ours writes nowhere
    model.set_logger(Logger(folder=None, output_formats=[]))

    class _Progress(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.bar = None

        def _on_training_start(self) -> None:
            from graphwiz_trader.core.progress import bar as progress_counter
            self.bar = progress_counter(total=cfg.total_timesteps, desc="PPO", unit="step", enabled=progress)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    t0 = time.perf_counter()
    model.learn(total_timesteps=cfg.total_timesteps, callback=_Progress())
    seconds = time.perf_counter() - t0
    out = Path(out_path)
    model_path = out if out.suffix == ".zip" else Path(str(out) + ".zip")
    model_file = save_sb3_model(model, model_path)

    used = [probe.markets[s].times_ns[ExecutionEnvironment.episode_starts(
        probe.markets[s], time_horizon_bars, probe.start, probe.end)] for s in symbols]
    first = min(int(u.min()) for u in used if len(u))
    last = max(int(u.max()) for u in used if len(u))
    bar_ns = probe._mlist[0].bar_ns
    meta = {
        "algorithm": "PPO",
        "library": f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}",
        "seed": cfg.seed,
        "total_timesteps": cfg.total_timesteps,
        "hyperparameters": asdict(cfg),
        "train_seconds": seconds,
        "created_utc": pd.Timestamp.now(tz="UTC").isoformat(),
        "train_symbols": list(symbols),
        "train_start_utc": pd.Timestamp(first, tz="UTC").isoformat(),
        "train_end_utc": pd.Timestamp(last + (time_horizon_bars - 1) * bar_ns, tz="UTC").isoformat(),
        "train_requested_range_utc": [None if probe.start is None else probe.start.isoformat(),
                                      None if probe.end is None else probe.end.isoformat()],
        "train_episode_starts": probe.n_episode_starts,
        "data_source": data_source,
        "data_label": data_label,
        "time_horizon_bars": time_horizon_bars,
        "volume_fraction_range": list(volume_fraction_range),
        "risk_aversion_per_bps": risk_aversion_per_bps,
        "impact": asdict(impact),
        "features": asdict(features or MarketFeatureSettings()),
        "observation": list(OBSERVATION_NAMES),
        "action": "agent output a in [-1, 1]; fraction of the remainder traded now = (a + 1) / 2",
        "reward_scale_bps": probe.reward_scale_bps,
        "model_file": model_file,
    }
    meta_path = metadata_path_for(model_path)
    write_json_atomic(meta_path, meta)  # after the zip: a crash in between leaves a checksum mismatch, refused
    log.info("saved PPO model %s (%.1f s, %d steps) and metadata %s", model_path, seconds, cfg.total_timesteps, meta_path)
    return PPOTrainingResult(model_path, meta_path, meta, seconds)


class PPOExecutionPolicy:
    """A trained PPO model as an adaptive execution policy (``fraction(obs)`` in [0, 1], deterministic).

    ``model`` is anything with SB3's ``predict(obs, deterministic=True) -> (actions, state)``: a trained
    ``PPO`` or, after :meth:`load`, its ``ActorCriticPolicy`` rebuilt without unpickling.
    """

    def __init__(self, model: Any, metadata: dict[str, Any], path: Path | None = None) -> None:
        if list(metadata.get("observation", [])) != list(OBSERVATION_NAMES):
            raise ConfigError(f"PPO model {path}: observation layout {metadata.get('observation')} differs from this "
                              f"version's {list(OBSERVATION_NAMES)}; retrain it")
        self.model = model
        self.metadata = metadata
        self.path = path

    @classmethod
    def load(cls, path: str | Path) -> PPOExecutionPolicy:
        """Load ``<name>.zip`` and its ``<name>.json`` metadata, without unpickling anything from the zip.

        Raises
        ------
        ConfigError
            when either file is missing or the metadata does not match this version.
        ModelFileError
            when the metadata records no checksum or another one than the zip's, or the zip holds pickled
            objects other than the known ones, or its weights do not fit (see
            :func:`graphwiz_trader.execution.model_files.load_actor_critic_policy`).
        """
        p = Path(path)
        if p.suffix != ".zip":
            p = Path(str(p) + ".zip") if not p.exists() else p
        if not p.exists():
            raise ConfigError(f"PPO model {p} does not exist (train one with `graphwiz execution train-ppo`)")
        meta_path = metadata_path_for(p)
        if not meta_path.exists():
            raise ConfigError(f"PPO model {p} has no metadata file {meta_path}")
        meta = read_json_file(meta_path, "PPO model metadata")
        obs_space, act_space = agent_spaces()
        model = load_actor_critic_policy(p, meta.get("model_file"), observation_space=obs_space,
                                         action_space=act_space)
        return cls(model, meta, p)

    def fraction(self, obs: np.ndarray) -> float:
        a, _ = self.model.predict(obs, deterministic=True)
        return float((np.clip(float(np.asarray(a).reshape(-1)[0]), -1.0, 1.0) + 1.0) / 2.0)

    def fractions(self, obs: np.ndarray) -> np.ndarray:
        """Vectorised: observations (n, 9) -> fractions (n,)."""
        a, _ = self.model.predict(obs, deterministic=True)
        return (np.clip(np.asarray(a).reshape(len(obs), -1)[:, 0], -1.0, 1.0) + 1.0) / 2.0


def check_disjoint(metadata: dict[str, Any], eval_symbols: list[str], eval_start: pd.Timestamp,
                   allow_symbol_overlap: bool = False) -> None:
    """Refuse an evaluation that is not out of sample for the model.

    Raises
    ------
    ConfigError
        when evaluation starts at or before the model's last training bar, or (unless allowed) shares symbols.
    """
    train_end = pd.Timestamp(metadata["train_end_utc"])
    if eval_start <= train_end:
        raise ConfigError(f"evaluation starts {eval_start} but the PPO model was trained on bars up to {train_end}; "
                          f"evaluation dates must come after training")
    common = sorted(set(metadata.get("train_symbols", [])) & set(eval_symbols))
    if common and not allow_symbol_overlap:
        raise ConfigError(f"evaluation symbols {', '.join(common)} were used to train the PPO model; "
                          f"pick other symbols (or pass --allow-symbol-overlap)")
