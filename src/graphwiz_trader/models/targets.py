"""Labels. They look forward and live only here; features never import this module.

All labels are per (datetime, instrument) and aligned at t: the label at t is known only at t + horizon.
Walk-forward splits must leave a gap of at least ``horizon`` bars between train and test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphwiz_trader.data.bars import to_qlib_instrument


def close_panel(bars: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Closes as datetime x instrument (Qlib codes), UTC index."""
    return pd.DataFrame({to_qlib_instrument(s): df["close"] for s, df in bars.items()}).sort_index()


def forward_log_return(bars: dict[str, pd.DataFrame], horizon: int = 1) -> pd.Series:
    """log(close[t + horizon] / close[t]) per (datetime, instrument), named ``label``.

    Uses the next ``horizon`` bars of each instrument's own calendar (rows, not clock time); NaN where
    the future is not available. Datetimes are tz-naive UTC to match Qlib's index.
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1 bar")
    parts = []
    for sym, df in bars.items():
        c = np.log(df["close"].to_numpy(dtype="float64"))
        fwd = np.full(len(c), np.nan)
        fwd[: len(c) - horizon] = c[horizon:] - c[: len(c) - horizon]
        idx = pd.MultiIndex.from_arrays([df.index.tz_convert(None), np.repeat(to_qlib_instrument(sym), len(c))],
                                        names=["datetime", "instrument"])
        parts.append(pd.Series(fwd, index=idx))
    return pd.concat(parts).sort_index().rename("label")
