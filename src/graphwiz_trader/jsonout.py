"""Write command figures as JSON (``--json PATH``) with numpy/pandas values made plain."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _plain(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
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
        return _plain(o.tolist())
    return o


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` (parents created); no-op when ``path`` is None."""
    if path is None:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(_plain(payload), indent=2))
