"""The public face users import: re-exports only, no logic.

    from graphwiz_trader.qlib import QlibDataAdapter, AlphaFeatureExtractor
"""

from graphwiz_trader.data.exchange import QlibDataAdapter
from graphwiz_trader.data.qlib_runtime import init_qlib
from graphwiz_trader.features.alpha158 import DEFAULT_EXTRAS, AlphaFeatureExtractor

__all__ = ["DEFAULT_EXTRAS", "AlphaFeatureExtractor", "QlibDataAdapter", "init_qlib"]
