"""Alpha158's raw frame of the CSI300 reproduction, cached across runs as Parquet.

Computing Alpha158 over CSI300 (2010-2020, ~300 instruments) takes about 45 s of a one-seed run. The raw frame
(features and label, before the processors) depends only on the Qlib data folder, the handler's arguments
(instruments, start, end) and the expressions; so it is stored as ``alpha158_<key>.parquet`` in the feature
cache folder (``data/qlib/feature_cache`` by default; bounded by :func:`graphwiz_trader.data.cache.enforce_cache_limits`),
keyed by:

- the data folder's fingerprint: SHA-256 over the relative path, size and modification time (ns) of every file
  under ``calendars/``, ``instruments/`` and ``features/`` (a changed or added file changes the key);
- the handler's arguments, Alpha158's feature and label expressions and names, and Qlib's version.

Every run, cold or cached, then builds its dataset the same way: a ``DataHandlerLP`` over that raw frame
(``StaticDataLoader``) with Alpha158's default processors (what the published YAML's ``Alpha158`` handler
applies: no inference processors, ``DropnaLabel`` and ``CSZScoreNorm`` on the label). So a cached run gives the
numbers of a cold one exactly (the Parquet round trip keeps float32 values bit for bit).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.data.cache import enforce_cache_limits, mark_used

log = logging.getLogger(__name__)

_SEP = "|"


def provider_fingerprint(provider_uri: str | Path) -> str:
    """SHA-256 (hex, 16 characters) over the path, size and mtime of every file of a Qlib data folder.

    Reads directory entries only (no file contents): about 0.1 s for CSI300's ~2,000 files.
    """
    root = Path(provider_uri).resolve()
    h = hashlib.sha256()
    for sub in ("calendars", "instruments", "features"):
        base = root / sub
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                st = p.stat()
                h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def raw_frame_key(provider_uri: str | Path, handler_kwargs: dict[str, Any]) -> str:
    """The cache key of Alpha158's raw frame for ``handler_kwargs`` on the data at ``provider_uri``."""
    import qlib
    from qlib.contrib.data.handler import Alpha158

    fields, names = Alpha158.get_feature_config(Alpha158.__new__(Alpha158))
    label_fields, label_names = Alpha158.get_label_config(Alpha158.__new__(Alpha158))
    payload = json.dumps([provider_fingerprint(provider_uri), handler_kwargs, fields, names, label_fields,
                          label_names, qlib.__version__], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _to_parquet_bytes(raw: pd.DataFrame) -> bytes:
    flat = raw.copy()
    flat.columns = [f"{a}{_SEP}{b}" for a, b in raw.columns]
    buf = io.BytesIO()
    flat.to_parquet(buf)
    return buf.getvalue()


def _from_parquet(path: Path) -> pd.DataFrame:
    flat = pd.read_parquet(path)
    flat.columns = pd.MultiIndex.from_tuples([tuple(c.split(_SEP, 1)) for c in flat.columns])
    return flat


def dataset_from_raw(raw: pd.DataFrame, segments: dict[str, list[str]]) -> Any:
    """A Qlib ``DatasetH`` over Alpha158's raw frame with Alpha158's default processors (the module docstring)."""
    from qlib.data.dataset import DatasetH
    from qlib.data.dataset.handler import DataHandlerLP
    from qlib.data.dataset.loader import StaticDataLoader

    from graphwiz_trader.research.csi300_setup import alpha158_default_processors

    infer, learn = alpha158_default_processors()
    handler = DataHandlerLP(data_loader=StaticDataLoader(config=raw), infer_processors=infer,
                            learn_processors=learn, process_type=DataHandlerLP.PTYPE_A)
    return DatasetH(handler=handler, segments=segments)


def raw_from_parquet(path: str | Path) -> pd.DataFrame:
    """A raw frame written by :func:`raw_to_parquet` (or the cache), with its column groups restored."""
    return _from_parquet(Path(path))


def raw_to_parquet(raw: pd.DataFrame, path: str | Path) -> None:
    """Write a raw frame (column groups ``feature``/``label``) so that :func:`raw_from_parquet` reads it back exactly."""
    from graphwiz_trader.core.runs import atomic_write_bytes

    atomic_write_bytes(Path(path), _to_parquet_bytes(raw))


def alpha158_raw_frame(dataset_config: dict[str, Any], provider_uri: str | Path,
                       cache_dir: Path | None) -> tuple[pd.DataFrame, bool, str | None]:
    """Alpha158's raw frame (``feature`` and ``label`` column groups) for the workflow's dataset config.

    Parameters
    ----------
    dataset_config : the workflow's ``task.dataset`` (a ``DatasetH`` over an ``Alpha158`` handler).
    provider_uri : the Qlib data folder (for the key).
    cache_dir : the feature cache folder; ``None``: always compute, store nothing.

    Returns
    -------
    (raw frame, whether it came from the cache, the cache file's path or None).
    """
    from qlib.data.dataset.handler import DataHandler, DataHandlerLP
    from qlib.utils import init_instance_by_config

    handler_cfg = dataset_config["kwargs"]["handler"]
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"alpha158_{raw_frame_key(provider_uri, handler_cfg['kwargs'])}.parquet"
        if path.is_file():
            mark_used(path)
            log.info("Alpha158 raw frame from cache %s", path)
            return _from_parquet(path), True, str(path)
    handler = init_instance_by_config(handler_cfg)
    raw = handler.fetch(col_set=DataHandler.CS_RAW, data_key=DataHandlerLP.DK_R)
    if path is not None:
        from graphwiz_trader.core.runs import atomic_write_bytes

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, _to_parquet_bytes(raw))
        enforce_cache_limits(path.parent, protect=[path])
        log.info("Alpha158 raw frame cached in %s", path)
    return raw, False, None if path is None else str(path)
