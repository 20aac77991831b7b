"""The graph snapshot: what builders produce, what the store writes and reads back, what features use.

Point-in-time: a snapshot ``as_of`` t is a function of bars with timestamp <= t only (``as_of`` is
the open time of the last bar inside the window, i.e. the snapshot is usable from that bar's close).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

EDGE_COLUMNS = ["src", "dst", "rho"]            # undirected CORRELATED_WITH, stored with src < dst
LEAD_COLUMNS = ["src", "dst", "lag", "rho"]     # directed LEADS: src leads dst by `lag` bars


@dataclass(frozen=True)
class GraphSnapshot:
    """One correlation snapshot.

    Attributes
    ----------
    as_of : pd.Timestamp
        UTC time of the last bar inside the window.
    window : int
        Window length in bars.
    method : str
        ``pearson`` or ``spearman``.
    assets : tuple[str, ...]
        Symbols (``BTC/USDT``) with enough data in the window (min-periods met).
    edges : pd.DataFrame
        ``src, dst, rho`` after pruning (|rho| threshold and/or top-k per node), ``src < dst``.
    leads : pd.DataFrame
        ``src, dst, lag, rho``: src's return at t-lag correlates with dst's return at t.
    communities : dict[str, int]
        Louvain community id per asset (ids are per snapshot; 0 is the largest community).
    """

    as_of: pd.Timestamp
    window: int
    method: str
    assets: tuple[str, ...]
    edges: pd.DataFrame
    leads: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LEAD_COLUMNS))
    communities: dict[str, int] = field(default_factory=dict)
