"""Load YAML config with ``${ENV}`` substitution and validate it.

``${NAME}`` must be set (or present in ``.env``); ``${NAME:-default}`` falls back to ``default``.
Errors name the dotted path of the offending key, never a secret's value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from graphwiz_trader.config.settings import TradingConfig
from graphwiz_trader.errors import ConfigError

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


def validate_mapping(raw: dict[str, Any], model: type[M], source: str) -> M:
    """Validate a substituted mapping into ``model``; unknown keys fail with their dotted path."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _dotted(tuple(err["loc"]))
            if err["type"] == "extra_forbidden":
                lines.append(f"unknown key '{where}'")
            else:
                lines.append(f"'{where}': {err['msg']}")
        raise ConfigError(f"invalid config {source}: " + "; ".join(lines)) from None


def load_yaml(path: str | Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Read a YAML file, load ``.env`` beside the working directory, substitute ``${ENV}``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    if env is None:
        from dotenv import load_dotenv

        load_dotenv(override=False)
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return substitute_env(raw, env)


def load_config(path: str | Path = "config/trading_config.yaml", env: dict[str, str] | None = None,
                model: type[M] = TradingConfig) -> M:  # type: ignore[assignment]
    """Load and validate a config file into ``model`` (default :class:`TradingConfig`)."""
    return validate_mapping(load_yaml(path, env), model, str(path))


DEFAULT_CONFIG_PATH = Path("config/trading_config.yaml")


def load_config_or_default(path: str | Path | None = None) -> TradingConfig:
    """The file named by ``path``; else ``config/trading_config.yaml`` when it exists; else the defaults."""
    if path:
        return load_config(path)
    return load_config(DEFAULT_CONFIG_PATH) if DEFAULT_CONFIG_PATH.exists() else TradingConfig()
