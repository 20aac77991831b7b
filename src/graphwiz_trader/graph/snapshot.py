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


REGIME_COLUMNS = ["scope", "datetime", "regime", "prob"]
"""Regime state, a long frame: one row per (scope, datetime) record.

- ``scope``: ``"market"`` or an asset symbol (``BTC/USDT``).
- ``datetime``: UTC time t of the record (a bar for the market scope, a snapshot ``as_of`` for assets).
- ``regime``: the label at t. The model that produced it was fitted on data strictly before t, and the
  label uses only data <= t (filtered, never smoothed, probabilities).
- ``prob``: filtered probability of that label at t, in [0, 1].

The store writes each record as ``(:Market|:Asset)-[:IN_REGIME {from: t, to: t_next, prob}]->(:Regime)``,
where ``t_next`` is the next record's time of the same scope (the record's validity interval), so a
reader "as of t" takes records with ``from <= t`` and never sees later labels.
"""


def empty_regime_state() -> pd.DataFrame:
    return pd.DataFrame({"scope": pd.Series(dtype=str), "datetime": pd.Series(dtype="datetime64[ns, UTC]"),
                         "regime": pd.Series(dtype=str), "prob": pd.Series(dtype=float)})
