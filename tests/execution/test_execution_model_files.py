"""PPO model files: checksum verified before loading, pickled payloads refused and never decoded."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import GraphwizError
from graphwiz_trader.execution import build_market_arrays
from graphwiz_trader.execution.model_files import load_actor_critic_policy, save_sb3_model
from graphwiz_trader.execution.ppo import PPOExecutionPolicy, PPOTrainingSettings, agent_spaces, train_ppo
from graphwiz_trader.models.files import ModelFileError

SYM = "SYN00/USDT"


class _MarkerPayload:
    """Unpickling this creates ``path``: stands in for arbitrary code in a crafted model file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').close()",))


def _payload(marker: Path) -> dict:
    return {":type:": "<class 'function'>", ":serialized:": base64.b64encode(pickle.dumps(_MarkerPayload(marker))).decode()}


def _rewrite_data(zip_path: Path, edit) -> None:
    """Rewrite the zip's ``data`` JSON with ``edit(data)``, keeping every other entry."""
    with zipfile.ZipFile(zip_path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    data = json.loads(entries["data"])
    edit(data)
    entries["data"] = json.dumps(data).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)
    zip_path.write_bytes(buf.getvalue())


def _rerecord_checksum(model_path: Path) -> None:
    """What an attacker who controls both files does: record the crafted zip's own checksum."""
    meta_path = model_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["model_file"]["sha256"] = hashlib.sha256(model_path.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def saved(bars, tmp_path_factory):
    """A briefly trained PPO executor saved by train_ppo (zip + metadata)."""
    markets = {SYM: build_market_arrays(bars[SYM], SYM)}
    out = tmp_path_factory.mktemp("ppo") / "ppo.zip"
    cfg = PPOTrainingSettings(total_timesteps=128, seed=0, n_envs=1, n_steps=64, batch_size=64, n_epochs=1,
                            torch_threads=1)
    return train_ppo(markets, out, symbols=[SYM], train_start=None, train_end=pd.Timestamp("2022-02-10", tz="UTC"),
                     time_horizon_bars=4, config=cfg, data_source="synthetic", progress=False)


@pytest.fixture
def copy(saved, tmp_path) -> Path:
    """A writable copy of the saved zip and its metadata."""
    z = tmp_path / "ppo.zip"
    z.write_bytes(saved.model_path.read_bytes())
    z.with_suffix(".json").write_bytes(saved.metadata_path.read_bytes())
    return z


def test_the_metadata_records_the_zip_checksum_versions_and_spaces(saved):
    rec = saved.metadata["model_file"]
    assert rec["sha256"] == hashlib.sha256(saved.model_path.read_bytes()).hexdigest()
    assert rec["policy_class"] == "ActorCriticPolicy" and rec["policy_kwargs"] == {"net_arch": [64, 64]}
    assert rec["observation_space"]["shape"] == [9] and rec["action_space"]["low"] == [-1.0]
    assert set(rec["versions"]) >= {"stable_baselines3", "torch", "gymnasium"}
    assert json.loads(saved.metadata_path.read_text())["model_file"] == rec


def test_a_round_trip_predicts_exactly_like_the_trained_model(bars, tmp_path):
    from gymnasium.wrappers import RescaleAction
    from stable_baselines3 import PPO

    from graphwiz_trader.execution import ExecutionEnvironment

    env = RescaleAction(ExecutionEnvironment({SYM: build_market_arrays(bars[SYM], SYM)}, time_horizon=4,
                                             volume_fraction_range=(0.01, 0.05)),
                        np.full(1, -1.0, dtype=np.float32), np.full(1, 1.0, dtype=np.float32))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=7, device="cpu")
    model.learn(64)
    record = save_sb3_model(model, tmp_path / "m.zip")
    obs_space, act_space = agent_spaces()
    policy = load_actor_critic_policy(tmp_path / "m.zip", record, observation_space=obs_space, action_space=act_space)
    obs = np.random.default_rng(0).uniform(-3, 3, size=(200, 9)).astype(np.float32)
    np.testing.assert_array_equal(policy.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_a_crafted_zip_with_a_pickled_payload_is_refused_and_the_payload_never_runs(copy, tmp_path):
    marker = tmp_path / "marker"
    _rewrite_data(copy, lambda d: d.__setitem__("evil", _payload(marker)))
    _rerecord_checksum(copy)
    with pytest.raises(ModelFileError, match="holds pickled objects under evil; they would run code"):
        PPOExecutionPolicy.load(copy)
    assert not marker.exists()
    # the payload is live: stable-baselines3's own loader runs it (what PPOExecutionPolicy.load did before)
    from stable_baselines3 import PPO

    PPO.load(copy, device="cpu")
    assert marker.exists()


def test_a_payload_nested_in_plain_settings_is_refused(copy, tmp_path):
    marker = tmp_path / "marker"
    _rewrite_data(copy, lambda d: d["policy_kwargs"].__setitem__("activation_fn", _payload(marker)))
    _rerecord_checksum(copy)
    with pytest.raises(ModelFileError, match=r"pickled objects under policy_kwargs\.activation_fn"):
        PPOExecutionPolicy.load(copy)
    assert not marker.exists()


def test_a_payload_under_a_known_key_is_replaced_unread(copy, tmp_path):
    marker = tmp_path / "marker"
    _rewrite_data(copy, lambda d: d.__setitem__("lr_schedule", _payload(marker)))
    _rerecord_checksum(copy)
    policy = PPOExecutionPolicy.load(copy)
    assert 0.0 <= policy.fraction(np.zeros(9, dtype=np.float32)) <= 1.0
    assert not marker.exists()


def test_a_zip_that_differs_from_its_recorded_checksum_is_refused_before_it_is_opened(copy, tmp_path):
    marker = tmp_path / "marker"
    _rewrite_data(copy, lambda d: d.__setitem__("evil", _payload(marker)))
    with pytest.raises(ModelFileError, match=r"ppo.zip: SHA-256 [0-9a-f]{64} differs from the recorded"):
        PPOExecutionPolicy.load(copy)
    assert not marker.exists()


def test_a_truncated_zip_is_refused_by_its_checksum(copy):
    copy.write_bytes(copy.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="differs from the recorded"):
        PPOExecutionPolicy.load(copy)


def test_metadata_without_a_model_file_record_is_refused(copy):
    meta = json.loads(copy.with_suffix(".json").read_text())
    del meta["model_file"]
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(GraphwizError, match="no model-file record"):
        PPOExecutionPolicy.load(copy)


def test_weights_that_are_not_plain_tensors_are_refused(copy, tmp_path):
    import torch

    marker = tmp_path / "marker"
    buf = io.BytesIO()
    torch.save({"w": _MarkerPayload(marker)}, buf)  # a pickled object inside policy.pth
    with zipfile.ZipFile(copy) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    entries["policy.pth"] = buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)
    copy.write_bytes(out.getvalue())
    _rerecord_checksum(copy)
    with pytest.raises(ModelFileError, match="policy.pth is not a tensors-only torch file"):
        PPOExecutionPolicy.load(copy)
    assert not marker.exists()


def test_a_model_for_other_spaces_is_refused(copy):
    meta = json.loads(copy.with_suffix(".json").read_text())
    meta["model_file"]["action_space"]["high"] = [2.0]
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="its action space .* differs from the environment's"):
        PPOExecutionPolicy.load(copy)


def test_a_file_that_is_not_a_zip_is_refused_clearly(copy):
    copy.write_bytes(b"not a zip at all")
    _rerecord_checksum(copy)
    with pytest.raises(ModelFileError, match="is not a zip file"):
        PPOExecutionPolicy.load(copy)
