"""Qlib's own Alpha158 (Qlib's expression engine and ``Alpha158`` handler), plus extra expressions.

:class:`AlphaFeatureExtractor` returns a ``(datetime, instrument)`` x features frame for a list of
symbols at ``day`` or ``<N>min``. Every value at t uses bars <= t (Alpha158 and the extras only look
back). Extra expressions are a hook (``extras={name: qlib_expression}``); :data:`DEFAULT_EXTRAS` ships:

- ``VRATIO20`` = volume / mean(volume, 20): volume relative to its 20-bar mean;
- ``OBV20``    = sum(sign(close - close[-1]) * volume, 20) / sum(volume, 20): on-balance volume over
  20 bars as a fraction of the volume traded (a stationary form of OBV, in [-1, 1]);
- ``ACC5``     = (close/close[-5] - 1) - (close[-5]/close[-10] - 1): price acceleration (change in 5-bar momentum);
- ``HHHL10``   = mean(high > high[-1] and low > low[-1], 10) - mean(high < high[-1] and low < low[-1], 10):
  higher-highs/higher-lows trend score in [-1, 1].

Caching: Qlib's in-process expression cache is always on; Qlib's disk cache needs redis (used when one
answers, see ``qlib_runtime``). Across processes the computed frame is cached as Parquet, keyed by the
bins' fingerprint (``meta.json``), the symbols, the range, freq and the expression list.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import pandas as pd

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.data.cache import enforce_cache_limits, mark_used
from graphwiz_trader.data.qlib_runtime import init_qlib
from graphwiz_trader.errors import DataError, UnknownSymbolError

ALPHA158_LOOKBACK = 61
"""Bars before t that Alpha158 (and the default extras) read: a 60-bar window of a one-bar change. A command
with ``--start`` loads this many bars before it (its warm-up), so no feature is NaN at ``--start`` for want of
history that the data has."""

log = logging.getLogger(__name__)

DEFAULT_EXTRAS: dict[str, str] = {
    "VRATIO20": "$volume / (Mean($volume, 20) + 1e-12)",
    "OBV20": "Sum(Sign($close - Ref($close, 1)) * $volume, 20) / (Sum($volume, 20) + 1e-12)",
    "ACC5": "($close / Ref($close, 5) - 1) - (Ref($close, 5) / Ref($close, 10) - 1)",
    "HHHL10": "Mean(And(Gt($high, Ref($high, 1)), Gt($low, Ref($low, 1))), 10)"
    " - Mean(And(Lt($high, Ref($high, 1)), Lt($low, Ref($low, 1))), 10)",
}


def _alpha158_handler(codes: list[str], start: str | None, end: str | None, freq: str,
                      extras: dict[str, str]) -> pd.DataFrame:
    from qlib.contrib.data.handler import Alpha158

    class _Alpha158Plus(Alpha158):
        """Alpha158 with extra (expression, name) pairs appended to its feature config."""

        def get_feature_config(self):  # type: ignore[override]
            fields, names = super().get_feature_config()
            return list(fields) + list(extras.values()), list(names) + list(extras)

    # No processors, so no fit window: a fit_start_time/fit_end_time spanning the whole range would make
    # any normaliser added later learn from the test period.
    handler = _Alpha158Plus(instruments=codes, start_time=start, end_time=end, freq=freq,
                            infer_processors=[], learn_processors=[])
    return handler.fetch(col_set="feature")


class AlphaFeatureExtractor:
    """Alpha158 (+ extras) from Qlib bins written by :func:`graphwiz_trader.data.qlib_bins.write_qlib_bins`.

    Parameters
    ----------
    provider_uri : Qlib data folder.
    freq : ``day`` or ``<N>min`` (hourly = ``60min``).
    extras : extra expressions ``{name: qlib expression}``; ``None`` for plain Alpha158 (158 columns).
    cache_dir : Parquet feature cache folder (default ``<provider_uri>/feature_cache``); ``False`` disables it.
    mlflow_dir, region, kernels : passed to :func:`init_qlib`.
    """

    def __init__(self, provider_uri: str | Path, freq: str = "60min", extras: dict[str, str] | None = None,
                 cache_dir: str | Path | bool | None = None, region: str = "cn",
                 mlflow_dir: str | Path | None = None, kernels: int | None = None) -> None:
        self.provider_uri = Path(provider_uri)
        self.freq = freq
        self.extras = dict(DEFAULT_EXTRAS if extras is None else extras)
        if cache_dir is False:
            self.cache_dir: Path | None = None
        else:
            self.cache_dir = Path(cache_dir) if cache_dir not in (None, True) else self.provider_uri / "feature_cache"
        self.region = region
        self.mlflow_dir = mlflow_dir
        self.kernels = kernels
        self.last_from_cache = False

    @classmethod
    def plain(cls, provider_uri: str | Path, freq: str = "60min", **kw: object) -> "AlphaFeatureExtractor":
        """Alpha158 only, exactly 158 columns."""
        return cls(provider_uri, freq, extras={}, **kw)  # type: ignore[arg-type]

    def _meta(self) -> dict:
        p = self.provider_uri / "meta.json"
        return json.loads(p.read_text()).get(self.freq, {}) if p.exists() else {}

    def _cache_key(self, codes: list[str], start: str | None, end: str | None) -> str | None:
        meta = self._meta()
        fp = meta.get("fingerprint")
        if not fp:
            return None  # bins not written by us: no trustworthy fingerprint
        import qlib

        payload = json.dumps([fp, sorted(codes), start, end, self.freq, self.extras, qlib.__version__])
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def _only_real_bars(self, df: pd.DataFrame, codes: list[str], start: str | None, end: str | None) -> pd.DataFrame:
        """Qlib evaluates every calendar slot between an instrument's first and last bar; keep only the
        slots where the instrument really has a bar (its stored close is not NaN)."""
        from qlib.data import D

        close = D.features(codes, ["$close"], start_time=start, end_time=end, freq=self.freq)
        close = close.swaplevel().sort_index()["$close"]
        real = close.index[close.notna().to_numpy()]
        keep = df.index.isin(real)
        if not keep.all():
            log.info("Alpha158: left out %d calendar slots where the instrument had no bar", int((~keep).sum()))
        return df[keep]

    def extract(self, symbols: list[str], start: str | pd.Timestamp | None = None,
                end: str | pd.Timestamp | None = None) -> pd.DataFrame:
        """Features for ``symbols`` (``BTC/USDT`` or Qlib codes) over [start, end] (UTC).

        Returns
        -------
        DataFrame indexed by (datetime, instrument) with 158 Alpha158 columns followed by the extras.
        Rows where a symbol has no bar are absent; NaNs at the start of each series are Qlib's warm-up.
        """
        codes = [s if "/" not in s else to_qlib_instrument(s) for s in symbols]
        meta = self._meta()
        if meta.get("instruments"):
            missing = [c for c, s in zip(codes, symbols) if c not in meta["instruments"]]
            if missing:
                raise UnknownSymbolError([s for c, s in zip(codes, symbols) if c in missing],
                                         f"Qlib data {self.provider_uri} ({self.freq})",
                                         list(meta.get("symbols", {}).values()))
        s = None if start is None else pd.Timestamp(start).tz_localize(None) if pd.Timestamp(start).tzinfo is None \
            else pd.Timestamp(start).tz_convert("UTC").tz_localize(None)
        e = None if end is None else pd.Timestamp(end).tz_localize(None) if pd.Timestamp(end).tzinfo is None \
            else pd.Timestamp(end).tz_convert("UTC").tz_localize(None)
        s_txt = None if s is None else str(s)
        e_txt = None if e is None else str(e)
        key = self._cache_key(codes, s_txt, e_txt) if self.cache_dir else None
        path = self.cache_dir / f"alpha158_{key}.parquet" if key and self.cache_dir else None
        if path is not None and path.exists():
            self.last_from_cache = True
            log.info("Alpha158 from cache %s", path)
            mark_used(path)
            return pd.read_parquet(path)
        self.last_from_cache = False
        init_qlib(self.provider_uri, region=self.region, mlflow_dir=self.mlflow_dir, kernels=self.kernels)
        t0 = time.perf_counter()
        df = _alpha158_handler(codes, s_txt, e_txt, self.freq, self.extras)
        if df.empty:
            raise DataError(f"Qlib returned no rows for {', '.join(codes)} in [{s_txt}, {e_txt}] at {self.freq}")
        df = df.astype("float32")
        df.columns = [str(c) for c in df.columns]
        df.index = df.index.set_names(["datetime", "instrument"])
        df = self._only_real_bars(df, codes, s_txt, e_txt)
        log.info("Alpha158: %d rows x %d features for %d instruments in %.1fs", len(df), df.shape[1], len(codes),
                 time.perf_counter() - t0)
        if path is not None:
            import io

            from graphwiz_trader.core.runs import atomic_write_bytes

            buf = io.BytesIO()
            df.to_parquet(buf)
            atomic_write_bytes(path, buf.getvalue())  # unique temp name: concurrent writers never collide
            enforce_cache_limits(self.cache_dir, protect=[path])  # bounded: least recently used frames go
        return df
