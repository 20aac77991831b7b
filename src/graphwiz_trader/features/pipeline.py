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


def feature_warmup_bars(timeframe: str, graph_window: int | None = None) -> int:
    """Bars to load before ``--start`` so that no feature is NaN at ``--start`` for want of history.

    Alpha158's longest look-back + 1; with graph features (``graph_window`` bars per correlation window) also
    the window + 1 and the regime model's first fit (``min_train`` + 2). Counted in each symbol's own bars
    (:func:`graphwiz_trader.data.ranges.cut_to_range`). The rows before ``--start`` are inputs only.
    """
    from graphwiz_trader.features.alpha158 import ALPHA158_LOOKBACK

    need = [ALPHA158_LOOKBACK + 1]
    if graph_window is not None:
        from graphwiz_trader.graph.pipeline import regime_params_for

        need += [int(graph_window) + 1, regime_params_for(timeframe).min_train + 2]
    return max(need)

