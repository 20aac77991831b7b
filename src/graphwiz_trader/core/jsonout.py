"""Write command figures as JSON (``--json PATH``) with numpy/pandas values made plain."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def plain(o: Any) -> Any:
    """``o`` with numpy/pandas values made JSON-plain (NaN/inf -> None, timestamps -> ISO strings)."""
    if isinstance(o, dict):
        return {str(k): plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [plain(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(o, (pd.Timestamp,)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.ndarray):
        return plain(o.tolist())
    return o


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` (parents created); no-op when ``path`` is None."""
    if path is None:
        return
    from graphwiz_trader.core.runs import atomic_write_bytes

    atomic_write_bytes(Path(path), json.dumps(plain(payload), indent=2, default=str).encode())
