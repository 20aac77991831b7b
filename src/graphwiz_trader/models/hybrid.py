"""The hybrid generator: Alpha158 (+ extras) plus graph features read back from the graph store.

``compare_with_baseline`` answers the question users come for, out of sample: the same walk-forward
folds, seeds and LightGBM settings for Alpha158-only and for Alpha158 + graph, per-fold figures and
dependence-aware intervals of the differences (see :func:`graphwiz_trader.research.compare.compare_results`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.data.qlib_bins import bars_fingerprint
from graphwiz_trader.features.graph_pipeline import GraphBuildSettings, graph_features_for_bars
from graphwiz_trader.models.generator import QlibSignalGenerator
from graphwiz_trader.models.targets import LabelSpec

log = logging.getLogger(__name__)


@dataclass
class HybridSignalGenerator(QlibSignalGenerator):
    """:class:`QlibSignalGenerator` whose features are Alpha158 + ``G_*`` graph features.

    ``graph_settings`` says where the graph lives (``uri=None``: the embedded Bolt server);
    ``graph_spec`` how it is built (window/stride in bars, pruning, lead-lag).
    """

    graph_spec: GraphBuildSettings = field(default_factory=GraphBuildSettings)
    graph_settings: GraphSettings | None = None
    _graph_cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    name = "hybrid"

    def graph_features(self, bars: dict[str, pd.DataFrame], timings: dict | None = None) -> pd.DataFrame:
        """``G_*`` features for ``bars`` (built, written to the store, read back; cached per bars content).

        ``timings`` receives the build/write/read/feature seconds when the graph is (re)built.
        """
        key = hashlib.sha256(f"{bars_fingerprint(bars)}{self.graph_spec}".encode()).hexdigest()[:16]
        if key not in self._graph_cache:
            self._graph_cache[key] = graph_features_for_bars(bars, spec=self.graph_spec, settings=self.graph_settings,
                                                             timings=timings)
        return self._graph_cache[key]

    def build_features(self, bars: dict[str, pd.DataFrame]) -> pd.DataFrame:
        alpha = super().build_features(bars)
        return alpha.join(self.graph_features(bars), how="left")

    def compare_with_baseline(self, data: pd.DataFrame | dict[str, pd.DataFrame],
                              symbol_or_universe: str | list[str] | None = None, train_len: int | None = None,
                              test_len: int | None = None, stride: int | None = None, gap: int | None = None,
                              max_folds: int | None = None, seed: int | None = None) -> dict[str, Any]:
        """Walk-forward Alpha158-only vs hybrid on identical folds; all figures out of sample.

        Defaults: test windows of 1/8 of the bars, training of 1/2, stride = test length, gap = horizon.
        The walk-forward machinery lives in research
        (:func:`graphwiz_trader.research.compare.compare_hybrid_with_baseline`), imported here on call so
        that ``models`` never imports ``research`` at module level.

        Returns
        -------
        dict with ``baseline`` and ``hybrid`` summaries (per metric across folds: mean, std, HAC interval,
        lag-1 autocorrelation of AUC, IC, Rank IC, ICIR, accuracy, balanced accuracy, majority rate),
        ``per_fold`` values, ``auc_difference``, ``ic_difference`` and ``accuracy_improvement_pct`` with
        their ``*_ci_hac`` and ``*_stats``, the block bootstrap of the accuracy improvement (``None``
        below 10 folds) and the fold settings.
        """
        from graphwiz_trader.research.compare import compare_hybrid_with_baseline

        return compare_hybrid_with_baseline(self, data, symbol_or_universe, train_len=train_len, test_len=test_len,
                                            stride=stride, gap=gap, max_folds=max_folds, seed=seed)


def create_hybrid_signal_generator(neo4j_uri: str | None = None, neo4j_user: str | None = None,
                                   neo4j_password: str | None = None, window: int | None = None,
                                   stride: int | None = None,
                                   label: LabelSpec | None = None, **kwargs: Any) -> HybridSignalGenerator:
    """A hybrid generator. ``neo4j_uri=None`` uses ``NEO4J_URI`` when set, else the embedded Bolt server.

    ``window``/``stride`` (bars) set the correlation snapshots (default: the graph settings' ``corr_window``
    and ``corr_stride``); ``kwargs`` go to the generator (``seed``, ``work_dir``, ``lgb_params``, ...).
    """
    from graphwiz_trader.graph.store import settings_from_env

    settings = settings_from_env()
    if neo4j_uri is not None:
        settings = GraphSettings(**{**settings.model_dump(), "uri": neo4j_uri,
                                    **({"user": neo4j_user} if neo4j_user else {}),
                                    **({"password": neo4j_password} if neo4j_password else {})})
    spec = kwargs.pop("graph_spec", None) or GraphBuildSettings.from_settings(
        settings, **{k: v for k, v in (("window", window), ("stride", stride)) if v is not None})
    return HybridSignalGenerator(label=label or LabelSpec("direction", 1), graph_spec=spec, graph_settings=settings,
                                 **kwargs)
