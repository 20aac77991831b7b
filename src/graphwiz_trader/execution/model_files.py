"""stable-baselines3 model files, saved with a checksum and loaded without unpickling anything.

An SB3 ``.zip`` holds ``data`` (a JSON object of the algorithm's attributes) and torch state dicts
(``policy.pth``, ``policy.optimizer.pth``, ``pytorch_variables.pth``). Attributes JSON cannot hold
(the policy class, the observation and action spaces, learning-rate and clip-range schedules, the rollout
buffer class) are stored as ``{":type:": ..., ":serialized:": <base64 cloudpickle>}``; ``PPO.load``
unpickles them, so a crafted file runs code when it is loaded, before any check.

Here
----
save
    the model is serialised in memory, written crash-safe (temp, fsync, rename) and described by a
    record of plain JSON for the caller's metadata file: SHA-256 and size of the zip, library versions,
    policy class and keyword arguments, both spaces, and the (constant) learning rate and clip range.
load
    (1) the zip's bytes are read once and checked against the record's SHA-256 (missing or different:
    refused); (2) ``data`` is parsed as JSON; every ``":serialized:"`` entry must be one the caller
    replaces through ``custom_objects`` (known classes, spaces rebuilt from the record's JSON, constant
    schedules), any other one is refused, and no payload is ever decoded; (3) the policy is rebuilt from
    those values and the plain JSON, and its weights are read from ``policy.pth`` with
    ``torch.load(weights_only=True)`` (tensors only). The optimizer and other entries are not read.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import platform
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from graphwiz_trader.models.files import ModelFileError, atomic_output, read_verified, sha256_bytes

SERIALIZED = ":serialized:"
MAX_DATA_BYTES = 16 << 20
MAX_WEIGHTS_BYTES = 256 << 20
POLICY_KWARGS = {"net_arch", "ortho_init", "log_std_init", "full_std", "use_expln", "squash_output",
                 "share_features_extractor", "normalize_images"}
"""Policy keyword arguments accepted from a file (plain JSON values; anything else is refused)."""


# -- spaces as plain JSON -----------------------------------------------------------------------------------

def _num(x: float) -> float | str:
    return float(x) if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def space_to_json(space: Any) -> dict[str, Any]:
    """A gymnasium ``Box`` as plain JSON (infinite bounds as ``"inf"``/``"-inf"``).

    Raises
    ------
    ModelFileError
        for any other space type (no safe plain-JSON form is defined for it here).
    """
    from gymnasium import spaces

    if not isinstance(space, spaces.Box):
        raise ModelFileError(f"only Box spaces can be saved loadably without pickle, got {type(space).__name__}")
    return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
            "low": [_num(v) for v in np.asarray(space.low, float).ravel()],
            "high": [_num(v) for v in np.asarray(space.high, float).ravel()]}


def space_from_json(doc: Any, where: str) -> Any:
    """Rebuild a ``Box`` from :func:`space_to_json`'s form; :class:`ModelFileError` naming ``where`` if malformed."""
    from gymnasium import spaces

    try:
        if doc["type"] != "Box" or doc["dtype"] not in ("float32", "float64"):
            raise ValueError(f"unsupported space {doc['type']} {doc['dtype']}")
        shape = tuple(int(n) for n in doc["shape"])
        low = np.array([float(v) for v in doc["low"]], dtype=doc["dtype"]).reshape(shape)
        high = np.array([float(v) for v in doc["high"]], dtype=doc["dtype"]).reshape(shape)
        return spaces.Box(low, high, shape=shape, dtype=np.dtype(doc["dtype"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{where}: not a Box space in plain JSON ({e})") from None


def same_space(a: Any, b: Any) -> bool:
    """Equal type, shape, dtype and bounds."""
    return (type(a) is type(b) and a.shape == b.shape and a.dtype == b.dtype
            and np.array_equal(a.low, b.low) and np.array_equal(a.high, b.high))


# -- save ---------------------------------------------------------------------------------------------------

def save_sb3_model(model: Any, path: str | Path) -> dict[str, Any]:
    """Save an SB3 actor-critic model (PPO/A2C) to ``path`` crash-safe and return its record.

    The record (plain JSON) goes into the caller's metadata file; :func:`load_actor_critic_policy` needs it.

    Raises
    ------
    ModelFileError
        when the model holds something that could only be loaded by unpickling (non-JSON policy keyword
        arguments, non-Box spaces, a serialized attribute this module does not replace).
    """
    import gymnasium
    import stable_baselines3
    import torch

    kwargs = dict(model.policy_kwargs)
    kwargs.pop("device", None)
    unknown = sorted(set(kwargs) - POLICY_KWARGS)
    try:
        json.dumps(kwargs)
    except TypeError:
        unknown = unknown or sorted(kwargs)
    if unknown:
        raise ModelFileError(f"policy_kwargs {', '.join(unknown)} cannot be saved as plain JSON and reloaded without "
                             f"unpickling; supported: {', '.join(sorted(POLICY_KWARGS))}")
    buf = io.BytesIO()
    model.save(buf, exclude=list(TRAINING_STATE))  # rollout state: needed to resume training only, and pickled
    data = buf.getvalue()
    record = {
        "file": Path(path).name,
        "format": "stable-baselines3 zip; loaded without unpickling (data JSON, policy.pth with weights_only)",
        "sha256": sha256_bytes(data), "size_bytes": len(data),
        "algorithm": type(model).__name__, "policy_class": type(model.policy).__name__,
        "policy_kwargs": kwargs, "use_sde": bool(model.use_sde),
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "learning_rate": float(model.lr_schedule(1.0)),
        "clip_range": float(model.clip_range(1.0)) if callable(getattr(model, "clip_range", None)) else None,
        "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                     "gymnasium": gymnasium.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    serialized = sorted(_serialized_keys(json.loads(_read_entry(zipfile.ZipFile(io.BytesIO(data)), "data",
                                                                MAX_DATA_BYTES, Path(path)))))
    unreplaced = [k for k in serialized if k not in REPLACED_FOR_ACTOR_CRITIC]
    if unreplaced:
        raise ModelFileError(f"the model stores {', '.join(unreplaced)} pickled; it could not be loaded without "
                             f"unpickling, so it is not saved")
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return record


# -- load ---------------------------------------------------------------------------------------------------

TRAINING_STATE = ("_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer", "ep_success_buffer")
"""Rollout state SB3 keeps for resuming training (pickled when set); not saved here, replaced by ``None`` on load."""
REPLACED_FOR_ACTOR_CRITIC = ("policy_class", "observation_space", "action_space", "lr_schedule", "clip_range",
                             "clip_range_vf", "rollout_buffer_class", *TRAINING_STATE)
"""The ``data`` entries SB3 pickles for PPO/A2C; :func:`load_actor_critic_policy` replaces each one."""


def _serialized_keys(doc: Any, prefix: str = "") -> list[str]:
    """Paths of every object in ``doc`` that carries a ``":serialized:"`` payload (at any depth)."""
    found: list[str] = []
    if isinstance(doc, dict):
        if SERIALIZED in doc:
            found.append(prefix or "<root>")
        for k, v in doc.items():
            if k != SERIALIZED:
                found.extend(_serialized_keys(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found.extend(_serialized_keys(v, f"{prefix}[{i}]"))
    return found


def _read_entry(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"SB3 model {path} has no {name!r} entry (entries: {', '.join(archive.namelist())})") from None
    if info.file_size > limit:
        raise ModelFileError(f"SB3 model {path}: entry {name!r} is {info.file_size} bytes, above the {limit} byte limit")
    with archive.open(info) as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise ModelFileError(f"SB3 model {path}: entry {name!r} is larger than the {limit} byte limit")
    return raw


def read_sb3_zip(path: str | Path, record: dict[str, Any] | None,
                 custom_objects: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify, open and parse an SB3 zip without unpickling: ``(data, policy state dict)``.

    ``data`` is the parsed JSON with every ``":serialized:"`` entry replaced by ``custom_objects[key]``.

    Raises
    ------
    ModelFileError
        no or a different checksum; not a zip; ``data`` not a JSON object; a serialized entry that
        ``custom_objects`` does not replace (listed, never decoded); ``policy.pth`` not a tensors-only
        torch file.
    """
    import torch

    p = Path(path)
    raw = read_verified(p, (record or {}).get("sha256"), "SB3 model")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"SB3 model {p} is not a zip file: {e}") from None
    with archive:
        try:
            data = json.loads(_read_entry(archive, "data", MAX_DATA_BYTES, p).decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFileError(f"SB3 model {p}: its 'data' entry is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise ModelFileError(f"SB3 model {p}: its 'data' entry is {type(data).__name__}, expected a JSON object")
        refused = [k for k in _serialized_keys(data) if k not in custom_objects]
        if refused:
            raise ModelFileError(f"SB3 model {p} holds pickled objects under {', '.join(refused)}; they would run code "
                                 f"when unpickled and are not known values, so the model is not loaded")
        for key, value in custom_objects.items():
            if key in data:
                data[key] = value
        weights = _read_entry(archive, "policy.pth", MAX_WEIGHTS_BYTES, p)
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"SB3 model {p}: policy.pth is not a tensors-only torch file ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"SB3 model {p}: policy.pth does not hold a state dict of tensors")
    return data, state


def _plain_policy_kwargs(data: dict[str, Any], p: Path) -> dict[str, Any]:
    kwargs = data.get("policy_kwargs", {})
    if not isinstance(kwargs, dict):
        raise ModelFileError(f"SB3 model {p}: policy_kwargs is {type(kwargs).__name__}, expected a JSON object")
    kwargs = {k: v for k, v in kwargs.items() if k != "device"}
    unknown = sorted(set(kwargs) - POLICY_KWARGS)
    if unknown:
        raise ModelFileError(f"SB3 model {p}: policy_kwargs {', '.join(unknown)} are not accepted from a file")
    arch = kwargs.get("net_arch")
    ok_list = isinstance(arch, list) and all(isinstance(n, int) and n > 0 for n in arch)
    ok_dict = isinstance(arch, dict) and set(arch) <= {"pi", "vf"} and all(
        isinstance(v, list) and all(isinstance(n, int) and n > 0 for n in v) for v in arch.values())
    if arch is not None and not (ok_list or ok_dict):
        raise ModelFileError(f"SB3 model {p}: net_arch {arch!r} is not a list of layer sizes")
    for k in POLICY_KWARGS - {"net_arch"}:
        if k in kwargs and not isinstance(kwargs[k], (bool, int, float)):
            raise ModelFileError(f"SB3 model {p}: policy_kwargs.{k} must be a plain number or flag")
    return kwargs


def load_actor_critic_policy(path: str | Path, record: dict[str, Any] | None, *,
                             observation_space: Any = None, action_space: Any = None) -> Any:
    """Load the policy of an SB3 PPO/A2C zip saved by :func:`save_sb3_model`, for inference on CPU.

    Parameters
    ----------
    path
        the ``.zip``.
    record
        the record :func:`save_sb3_model` returned (from the metadata file); ``None`` is refused.
    observation_space, action_space
        the spaces the caller's environment uses; when given, the record's must equal them.

    Returns
    -------
    stable_baselines3.common.policies.ActorCriticPolicy
        in evaluation mode; ``predict(obs, deterministic=True)`` acts like ``PPO.predict``.

    Raises
    ------
    ModelFileError
        see :func:`read_sb3_zip`; also for another policy class, other spaces or weights that do not fit.
    """
    from stable_baselines3.common.buffers import RolloutBuffer
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.utils import ConstantSchedule

    p = Path(path)
    if not isinstance(record, dict):
        raise ModelFileError(f"SB3 model {p}: no model-file record (checksum, spaces) in its metadata, so it is not "
                             f"loaded; retrain it with this version")
    if record.get("policy_class") != "ActorCriticPolicy":
        raise ModelFileError(f"SB3 model {p}: policy class {record.get('policy_class')!r} is not supported "
                             f"(ActorCriticPolicy only)")
    obs_space = space_from_json(record.get("observation_space"), f"SB3 model {p} observation_space")
    act_space = space_from_json(record.get("action_space"), f"SB3 model {p} action_space")
    for name, mine, want in (("observation", obs_space, observation_space), ("action", act_space, action_space)):
        if want is not None and not same_space(mine, want):
            raise ModelFileError(f"SB3 model {p}: its {name} space {mine} differs from the environment's {want}")
    try:
        lr = float(record["learning_rate"])
        clip = record.get("clip_range")
        clip_schedule = None if clip is None else ConstantSchedule(float(clip))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"SB3 model {p}: learning_rate/clip_range in its record are not numbers ({e})") from None
    custom = {"policy_class": ActorCriticPolicy, "observation_space": obs_space, "action_space": act_space,
              "lr_schedule": ConstantSchedule(lr), "clip_range": clip_schedule, "clip_range_vf": None,
              "rollout_buffer_class": RolloutBuffer, **dict.fromkeys(TRAINING_STATE)}
    data, state = read_sb3_zip(p, record, custom)
    kwargs = _plain_policy_kwargs(data, p)
    use_sde = data.get("use_sde", False)
    if not isinstance(use_sde, bool):
        raise ModelFileError(f"SB3 model {p}: use_sde must be true or false")
    try:
        policy = ActorCriticPolicy(obs_space, act_space, ConstantSchedule(lr), use_sde=use_sde, **kwargs)
        policy.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"SB3 model {p}: its weights do not fit the recorded policy ({first})") from None
    policy.set_training_mode(False)
    return policy
