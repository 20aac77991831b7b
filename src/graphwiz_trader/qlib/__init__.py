"""The public face users import: re-exports only, no logic.

    from graphwiz_trader.qlib import QlibDataAdapter, AlphaFeatureExtractor, QlibSignalGenerator
    from graphwiz_trader.qlib import create_qlib_strategy, create_qlib_strategy_v2   # graphwiz_trader.strategies
"""

from graphwiz_trader.data.ccxt_source import CcxtBarSource as QlibDataAdapter
from graphwiz_trader.data.qlib_runtime import init_qlib
from graphwiz_trader.features.alpha158 import DEFAULT_EXTRAS, AlphaFeatureExtractor
from graphwiz_trader.models.ensemble import EnsembleSignalGenerator, StackedSignalGenerator
from graphwiz_trader.models.generator import QlibSignalGenerator
from graphwiz_trader.models.hybrid import HybridSignalGenerator, create_hybrid_signal_generator
from graphwiz_trader.features.graph_pipeline import graph_features_for_bars
from graphwiz_trader.graph.pipeline import populate_sample_graph_data
from graphwiz_trader.execution import ExecutionEnvironment, ExecutionStrategy, create_optimal_execution_engine
from graphwiz_trader.models.risk import DrawdownRiskModel
from graphwiz_trader.models.targets import LabelSpec
from graphwiz_trader.strategies import create_qlib_strategy, create_qlib_strategy_v2

__all__ = [
    "DEFAULT_EXTRAS",
    "AlphaFeatureExtractor",
    "DrawdownRiskModel",
    "EnsembleSignalGenerator",
    "ExecutionEnvironment",
    "ExecutionStrategy",
    "HybridSignalGenerator",
    "LabelSpec",
    "QlibDataAdapter",
    "QlibSignalGenerator",
    "StackedSignalGenerator",
    "create_hybrid_signal_generator",
    "create_qlib_strategy",
    "create_qlib_strategy_v2",
    "create_optimal_execution_engine",
    "graph_features_for_bars",
    "init_qlib",
    "populate_sample_graph_data",
]
