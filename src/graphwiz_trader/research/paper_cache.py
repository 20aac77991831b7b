"""Finished stages of the paper (one horizon's ablation, a peer's scores, a cost backtest), kept across runs.

A full paper run takes hours on two cores; a stage that finished is not computed again when a later run asks for
exactly the same thing. Each stage is stored under a key: the SHA-256 of everything that produced it (the dataset's
feature frame and forward returns by content, the settings of the stage, the variants' columns, the horizon, the
package version), so a changed input, setting or feature definition is a new key and never reuses an old result.
Entries are folders written to a temporary name and renamed into place (a killed run leaves no half entry); two
runs that finish the same stage keep the first and drop the second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.runs import atomic_write_bytes
from graphwiz_trader.research.ablation import HorizonResult

log = logging.getLogger(__name__)

FORMAT = 1


def frame_digest(frame: pd.DataFrame | pd.Series) -> str:
    """SHA-256 (hex) of a frame's index, column names and float64 values."""
    h = hashlib.sha256()
    df = frame.to_frame() if isinstance(frame, pd.Series) else frame
    h.update(json.dumps([str(c) for c in df.columns]).encode())
    h.update(pd.util.hash_pandas_object(df.index, index=False).to_numpy().tobytes())
    for c in df.columns:
        h.update(np.ascontiguousarray(df[c].to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


def stage_key(*parts: Any) -> str:
    """The key of a stage: SHA-256 (first 24 hex digits) of the JSON of its parts and the cache format."""
    from graphwiz_trader import __version__

    text = json.dumps([FORMAT, __version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class StageCache:
    """Finished stages under ``root`` (``None``: nothing is kept, every stage is computed)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def _dir(self, key: str) -> Path | None:
        if self.root is None:
            return None
        d = self.root / key
        return d if (d / "done.json").is_file() else None

    def _commit(self, key: str, write: Any) -> None:
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            write(tmp)
            atomic_write_bytes(tmp / "done.json", json.dumps({"key": key, "format": FORMAT}).encode())
            try:
                os.rename(tmp, self.root / key)
            except OSError:
                log.info("paper cache: stage %s was stored by another run meanwhile; keeping that one", key)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    # --------------------------------------------------------------------------------- one horizon's ablation
    def load_horizon(self, key: str) -> HorizonResult | None:
        d = self._dir(key)
        if d is None:
            return None
        meta = json.loads((d / "meta.json").read_text())
        fam = {v: pd.read_parquet(d / f"family_shap_{i}.parquet") for i, v in enumerate(meta["family_shap"])}
        stab = {v: pd.read_parquet(d / f"shap_stability_{i}.parquet") for i, v in enumerate(meta["shap_stability"])}
        log.info("paper cache: horizon %s ablation read from %s", meta["horizon"], d)
        return HorizonResult(int(meta["horizon"]), pd.read_parquet(d / "rank_ic.parquet"),
                             pd.read_parquet(d / "accuracy.parquet"), pd.read_parquet(d / "table.parquet"),
                             pd.read_parquet(d / "predictions.parquet"), fam, stab, float(meta["seconds"]))

    def save_horizon(self, key: str, hr: HorizonResult) -> None:
        def write(d: Path) -> None:
            hr.rank_ic.to_parquet(d / "rank_ic.parquet")
            hr.accuracy.to_parquet(d / "accuracy.parquet")
            hr.table.to_parquet(d / "table.parquet")
            hr.predictions.to_parquet(d / "predictions.parquet")
            for i, df in enumerate(hr.family_shap.values()):
                df.to_parquet(d / f"family_shap_{i}.parquet")
            for i, df in enumerate(hr.shap_stability.values()):
                df.to_parquet(d / f"shap_stability_{i}.parquet")
            meta = {"horizon": hr.horizon, "seconds": hr.seconds, "family_shap": list(hr.family_shap),
                    "shap_stability": list(hr.shap_stability)}
            atomic_write_bytes(d / "meta.json", json.dumps(meta).encode())
        self._commit(key, write)

    # --------------------------------------------------------------------------------- frames and JSON
    def load_frame(self, key: str) -> pd.DataFrame | None:
        d = self._dir(key)
        return pd.read_parquet(d / "frame.parquet") if d is not None else None

    def save_frame(self, key: str, frame: pd.DataFrame) -> None:
        self._commit(key, lambda d: frame.to_parquet(d / "frame.parquet"))

    def load_json(self, key: str) -> Any:
        d = self._dir(key)
        return json.loads((d / "value.json").read_text()) if d is not None else None

    def save_json(self, key: str, value: Any) -> None:
        self._commit(key, lambda d: atomic_write_bytes(d / "value.json", json.dumps(value, default=str).encode()))
