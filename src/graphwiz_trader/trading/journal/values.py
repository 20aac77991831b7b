"""Checks and conversions of what goes into the journal: UTC times, finite numbers, JSON text, event keys."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import DataError

T = TypeVar("T")
IN_CHUNK = 500  # ids per ``IN (...)`` query (SQLite allows 32,766 variables; PostgreSQL 65,535)


class InvalidValue(Exception):
    """A value the journal refuses; the journal re-raises it as a JournalError naming the operation."""


def utc(value: Any, what: str) -> pd.Timestamp:
    """``value`` as a tz-aware UTC timestamp with at most microsecond precision (what the databases keep)."""
    try:
        ts = to_utc(value, what, naive="error")
    except DataError as exc:
        raise InvalidValue(str(exc)) from None
    if ts.nanosecond:
        raise InvalidValue(f"{what}: {ts} has nanoseconds; the journal stores times to the microsecond")
    return ts


def now_utc() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("us")


def finite(value: Any, what: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidValue(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise InvalidValue(f"{what} must be finite, got {x}")
    if positive and not x > 0:
        raise InvalidValue(f"{what} must be > 0, got {x}")
    if nonnegative and x < 0:
        raise InvalidValue(f"{what} must be >= 0, got {x}")
    return x


def optional_float(value: Any, what: str) -> float | None:
    """NaN and None are stored as NULL (missing); infinities are refused."""
    if value is None:
        return None
    x = float(value)
    if math.isnan(x):
        return None
    if math.isinf(x):
        raise InvalidValue(f"{what} must be finite or missing, got {x}")
    return x


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (pd.Timestamp, pd.Timedelta)):
        return obj.isoformat()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else list(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "get_secret_value"):  # pydantic SecretStr: never stored
        return "***"
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def json_text(obj: Any, what: str) -> str:
    """Sorted JSON text (numpy scalars, timestamps, enums, paths and settings models converted; secrets masked)."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    try:
        return json.dumps(obj, sort_keys=True, default=_default)
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"{what} cannot be stored as JSON: {exc}") from None


def mapping(obj: Any, what: str) -> Mapping[str, Any]:
    if obj is None:
        return {}
    if hasattr(obj, "model_dump") or isinstance(obj, Mapping):
        return obj
    raise InvalidValue(f"{what} must be a mapping, got {type(obj).__name__}")


def event_key(run_id: str, cycle: int | None, ts: pd.Timestamp, kind: str, detail: str, action: str) -> str:
    raw = json.dumps([run_id, cycle, ts.isoformat(), kind, detail, action])
    return hashlib.sha256(raw.encode()).hexdigest()


def same_float(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def symbol_series(values: pd.Series | Mapping[str, float] | None, what: str) -> pd.Series:
    """A float Series indexed by unique symbols (a mapping is accepted)."""
    if values is None:
        return pd.Series(dtype=float)
    s = values if isinstance(values, pd.Series) else pd.Series(dict(values), dtype=float)
    if not s.index.is_unique:
        dup = sorted({str(x) for x in s.index[s.index.duplicated()]})
        raise InvalidValue(f"{what}: symbols given twice: {dup[:5]}")
    try:
        return s.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"{what} must be numbers per symbol ({exc})") from None
