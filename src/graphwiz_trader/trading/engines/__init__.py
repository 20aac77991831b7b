"""Trading engines behind one interface (:class:`~graphwiz_trader.trading.engines.base.TradingEngine`)."""
