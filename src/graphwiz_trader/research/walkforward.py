"""Walk-forward splits with purging and an embargo.

Bars are indexed by position in the sorted calendar of unique datetimes. Fold k (rolling window):

    train = [s, s + train_len)            s = k * stride
    test  = [s + train_len + gap, s + train_len + gap + test_len)

``gap`` must be >= the label horizon: the label at the last training bar looks ``horizon`` bars ahead,
so with ``gap >= horizon`` no training label overlaps the test period (purging). ``embargo`` adds bars
after the gap when features carry long memory. With ``expanding=True`` training always starts at 0.
Test windows of successive folds never overlap when ``stride >= test_len``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from graphwiz_trader.errors import FoldError


@dataclass(frozen=True)
class Fold:
    """Positions into the calendar; ``*_end`` are exclusive."""

    k: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int

    def dates(self, calendar: pd.Index) -> tuple[pd.Index, pd.Index]:
        return calendar[self.train_start:self.train_end], calendar[self.test_start:self.test_end]


def walk_forward_folds(n_bars: int, train_len: int, test_len: int, stride: int | None = None, gap: int = 1,
                       embargo: int = 0, label_horizon: int = 1, expanding: bool = False,
                       max_folds: int | None = None) -> list[Fold]:
    """Folds over ``n_bars`` calendar positions.

    Raises
    ------
    FoldError
        (a ``ConfigError`` and ``ValueError``) when ``gap < label_horizon`` (labels would leak into the test period), when lengths are not
        positive, or when not even one fold fits in the data (the message gives both lengths).
    """
    stride = test_len if stride is None else stride
    if min(train_len, test_len, stride) <= 0:
        raise FoldError("train_len, test_len and stride must be positive")
    if gap < label_horizon:
        raise FoldError(f"gap ({gap} bars) must be >= the label horizon ({label_horizon} bars) to purge "
                         "training labels that overlap the test period")
    need = train_len + gap + embargo + test_len
    if need > n_bars:
        raise FoldError(f"one fold needs {need} bars (train {train_len} + gap {gap} + embargo {embargo} + "
                         f"test {test_len}) but the data has {n_bars}")
    folds = []
    k = 0
    while True:
        s = k * stride
        tr0 = 0 if expanding else s
        tr1 = s + train_len
        te0 = tr1 + gap + embargo
        te1 = te0 + test_len
        if te1 > n_bars:
            break
        folds.append(Fold(k, tr0, tr1, te0, te1))
        k += 1
        if max_folds is not None and k >= max_folds:
            break
    return folds
