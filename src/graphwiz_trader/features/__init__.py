"""Features: Qlib Alpha158 plus extra expressions, and graph features read from snapshots."""

from graphwiz_trader.features.alpha158 import DEFAULT_EXTRAS, AlphaFeatureExtractor

__all__ = ["DEFAULT_EXTRAS", "AlphaFeatureExtractor"]
