"""Drawdown-risk model: P(drawdown over the next N bars exceeds X), at several horizons.

One LightGBM classifier per horizon on the ``drawdown`` label (see :mod:`targets`):
``1[min(low[t+1..t+N]) / close[t] - 1 < -X]``. Outputs ``p_dd_<N>`` per (datetime, instrument), used
by risk-based position sizing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.models.generator import QlibSignalGenerator, as_bars
from graphwiz_trader.models.targets import LabelSpec


@dataclass
class DrawdownRiskModel:
    """``threshold`` is a fraction (0.05 = a 5% drawdown); ``horizons`` are in bars."""

    horizons: tuple[int, ...] = (6, 24, 72)
    threshold: float = 0.05
    seed: int = 42
    work_dir: str | Path = "data/qlib"
    models: dict[int, QlibSignalGenerator] = field(default_factory=dict)

    def train(self, data: pd.DataFrame | dict[str, pd.DataFrame], symbol_or_universe: Any = None) -> dict[int, dict]:
        """Fit one classifier per horizon; returns holdout AUC/accuracy and the base rate per horizon."""
        bars = as_bars(data, symbol_or_universe)
        out = {}
        for h in self.horizons:
            gen = QlibSignalGenerator(label=LabelSpec("drawdown", h, self.threshold), seed=self.seed,
                                      work_dir=self.work_dir)
            feats = gen.build_features(bars)
            m = gen.train(bars, None, features=feats)
            from graphwiz_trader.models.targets import make_label

            lab = make_label(bars, gen.label)
            m["base_rate"] = float(lab.mean())
            self.models[h] = gen
            out[h] = m
        return out

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """P(drawdown > threshold within N bars) per horizon: columns ``p_dd_<N>``."""
        return pd.DataFrame({f"p_dd_{h}": g.predict(features) for h, g in self.models.items()})
