"""Load YAML config with ``${ENV}`` substitution and validate it.

``${NAME}`` must be set (or present in ``.env``); ``${NAME:-default}`` falls back to ``default``.
``.env`` is read from the working folder and from the config file's folder (in that order); a variable
already set in the environment is never overridden, and a value in the working folder's ``.env`` wins
over the config folder's.

Errors name the dotted path of the offending key (and, for a number out of range, the allowed range),
never a secret's value. Every ``SecretStr`` of a loaded config is registered with
:func:`graphwiz_trader.core.secrets.register_secret`, so logging masks it.
"""

from __future__ import annotations

import logging
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.core.secrets import register_secret
from graphwiz_trader.errors import ConfigError

log = logging.getLogger(__name__)
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
M = TypeVar("M", bound=BaseModel)


def substitute_env(node: Any, env: dict[str, str] | None = None, path: str = "") -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in every string of a parsed YAML tree.

    Raises
    ------
    ConfigError
        naming the variable and the dotted path where it is used, when a variable without
        default is unset.
    """
    env = os.environ if env is None else env
    if isinstance(node, dict):
        return {k: substitute_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"environment variable {name} is not set (used at '{path}'); "
                f"export it or add it to .env"
            )

        return _ENV_RE.sub(repl, node)
    return node


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    """The field a validation error's ``loc`` points at (through nested models, dicts and tuples)."""
    annotation: Any = model
    info: FieldInfo | None = None
    for part in loc:
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                return info
            info = annotation.model_fields[part]
            annotation = info.annotation
        elif origin in (dict, Mapping) and get_args(annotation):
            annotation, info = get_args(annotation)[1], None
        elif origin in (list, tuple) and get_args(annotation):
            annotation, info = get_args(annotation)[0], None
        else:
            return info
    return info


def allowed_range(info: FieldInfo) -> str | None:
    """A field's bounds as an interval: ``(0, 10]``, ``[0, 0.5]``, ``[1, inf)``; None when unbounded."""
    lo = hi = None
    lo_open = hi_open = True
    for m in info.metadata:
        if isinstance(m, annotated_types.Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, annotated_types.Ge):
            lo, lo_open = m.ge, False
        elif isinstance(m, annotated_types.Lt):
            hi, hi_open = m.lt, True
        elif isinstance(m, annotated_types.Le):
            hi, hi_open = m.le, False
    if lo is None and hi is None:
        return None
    def num(x: Any) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    left = "(-inf" if lo is None else f"{'(' if lo_open else '['}{num(lo)}"
    right = "inf)" if hi is None else f"{num(hi)}{')' if hi_open else ']'}"
    return f"{left}, {right}"


def validate_mapping(raw: dict[str, Any], model: type[M], source: str) -> M:
    """Validate a substituted mapping into ``model``.

    Unknown keys fail with their dotted path; a number out of range fails with its dotted path and the
    allowed range. Every ``SecretStr`` of the result is registered for masking in logs.
    """
    try:
        cfg = model.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _dotted(tuple(err["loc"]))
            if err["type"] == "extra_forbidden":
                lines.append(f"unknown key '{where}'")
                continue
            line = f"'{where}': {err['msg']}"
            if err["type"] in _RANGE_ERRORS:
                info = _field_at(model, tuple(err["loc"]))
                rng = allowed_range(info) if info is not None else None
                if rng:
                    line += f" (allowed range {rng})"
            lines.append(line)
        raise ConfigError(f"invalid config {source}: " + "; ".join(lines)) from None
    register_config_secrets(cfg)
    return cfg


def register_config_secrets(node: Any) -> int:
    """Register every ``SecretStr`` value inside ``node`` (a settings model) for masking. Returns how many."""
    n = 0
    if isinstance(node, SecretStr):
        register_secret(node)
        return 1
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            n += register_config_secrets(getattr(node, name))
    elif isinstance(node, Mapping):
        for v in node.values():
            n += register_config_secrets(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            n += register_config_secrets(v)
    return n


def load_env_files(config_path: str | Path | None = None) -> list[Path]:
    """Load ``.env`` from the working folder, then from ``config_path``'s folder, never overriding.

    Variables already in the environment keep their values; the working folder's file wins over the
    config folder's. Returns the files read.
    """
    from dotenv import dotenv_values

    candidates = [Path.cwd() / ".env"]
    if config_path is not None:
        candidates.append(Path(config_path).resolve().parent / ".env")
    read: list[Path] = []
    for f in dict.fromkeys(c.resolve() for c in candidates):
        if not f.is_file():
            continue
        for name, value in dotenv_values(f).items():
            if value is not None and name not in os.environ:
                os.environ[name] = value
        read.append(f)
        log.debug("read environment variables from %s (already-set variables kept)", f)
    return read


def load_yaml(path: str | Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Read a YAML file and substitute ``${ENV}``.

    With ``env=None`` the process environment is used, after :func:`load_env_files` (``.env`` in the
    working folder and beside the config file); an explicit ``env`` mapping is used as it is.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    if env is None:
        load_env_files(p)
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return substitute_env(raw, env)


def load_config(path: str | Path = "config/trading_config.yaml", env: dict[str, str] | None = None,
                model: type[M] = TradingSettings) -> M:  # type: ignore[assignment]
    """Load and validate a config file into ``model`` (default :class:`TradingSettings`)."""
    return validate_mapping(load_yaml(path, env), model, str(path))


DEFAULT_CONFIG_PATH = Path("config/trading_config.yaml")


def load_config_or_default(path: str | Path | None = None) -> TradingSettings:
    """The file named by ``path``; else ``config/trading_config.yaml`` when it exists; else the defaults."""
    if path:
        return load_config(path)
    if DEFAULT_CONFIG_PATH.exists():
        return load_config(DEFAULT_CONFIG_PATH)
    load_env_files()
    return TradingSettings()
