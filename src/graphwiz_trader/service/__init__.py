"""The always-on service: the strategy loop, its state for the API and dashboard, metrics, alerts, Telegram
commands and scheduled retraining (``graphwiz serve``).

Modules: :mod:`~graphwiz_trader.service.state` (what the API reads and the controls it calls),
:mod:`~graphwiz_trader.service.loop` (``ProductionTradingService``), :mod:`~graphwiz_trader.service.metrics`
(Prometheus ``graphwiz_*``), :mod:`~graphwiz_trader.service.alerts`, :mod:`~graphwiz_trader.service.telegram`,
:mod:`~graphwiz_trader.service.retrain` and :mod:`~graphwiz_trader.service.commands`.
"""
