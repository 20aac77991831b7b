"""Trading: one interface for replay, paper and live engines; the risk manager; the trade journal.

Shapes (``trading.types``): :class:`OrderRequest` (what the strategy asks for, with a deterministic client
order id), :class:`OrderUpdate` (what the venue says about an order), :class:`Fill`, :class:`MarketRules`,
:class:`AccountSnapshot`. Engines implement :class:`~graphwiz_trader.trading.engines.base.TradingEngine`.
"""
