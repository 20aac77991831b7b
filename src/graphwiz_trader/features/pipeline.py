"""Bars -> feature panel in one call: Qlib bins (content-addressed, reused) -> Alpha158 (+ extras).

Graph features are appended by :func:`graphwiz_trader.features.graph_pipeline.graph_features_for_bars` (joined by the caller).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from graphwiz_trader.data.qlib_bins import prepare_qlib_dir
from graphwiz_trader.core.timeframes import infer_timeframe, to_qlib_freq
from graphwiz_trader.features.alpha158 import AlphaFeatureExtractor


def bars_timeframe(bars: dict[str, pd.DataFrame]) -> str:
    return infer_timeframe(next(iter(bars.values())).index)


def alpha_features(bars: dict[str, pd.DataFrame], work_dir: str | Path = "data/qlib",
                   extras: dict[str, str] | None = None, timeframe: str | None = None,
                   mlflow_dir: str | Path | None = None) -> pd.DataFrame:
    """Alpha158 (+ ``extras``; ``None`` = the default extras, ``{}`` = none) for ``bars``.

    Bins are written under ``work_dir`` keyed by the bars' content, and the computed frame is cached
    there, so repeated calls on the same bars are cheap.
    """
    freq = to_qlib_freq(timeframe or bars_timeframe(bars))
    qdir = prepare_qlib_dir(bars, work_dir, freq)
    ex = AlphaFeatureExtractor(qdir, freq=freq, extras=extras, mlflow_dir=mlflow_dir)
    return ex.extract(list(bars))
