"""The public face users import: re-exports only, no logic.

    from graphwiz_trader.qlib import QlibDataAdapter, AlphaFeatureExtractor, QlibSignalGenerator
"""

from graphwiz_trader.data.exchange import QlibDataAdapter
from graphwiz_trader.data.qlib_runtime import init_qlib
from graphwiz_trader.features.alpha158 import DEFAULT_EXTRAS, AlphaFeatureExtractor
from graphwiz_trader.models.ensemble import EnsembleSignalGenerator, StackedSignalGenerator
from graphwiz_trader.models.generator import QlibSignalGenerator
from graphwiz_trader.models.risk import DrawdownRiskModel
from graphwiz_trader.models.targets import LabelSpec

__all__ = [
    "DEFAULT_EXTRAS",
    "AlphaFeatureExtractor",
    "DrawdownRiskModel",
    "EnsembleSignalGenerator",
    "LabelSpec",
    "QlibDataAdapter",
    "QlibSignalGenerator",
    "StackedSignalGenerator",
    "init_qlib",
]
