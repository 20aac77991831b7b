"""Prometheus metrics of the service, named ``graphwiz_*``, on the service's own ``CollectorRegistry``.

Updated from each cycle's result (:meth:`ServiceMetrics.observe_cycle`) and each failed cycle
(:meth:`ServiceMetrics.observe_error`); the data age is computed at scrape time from the service clock.

==================================================  =========================================================
series                                              meaning (units)
==================================================  =========================================================
``graphwiz_cycle_latency_seconds`` (histogram)      wall time of a cycle (seconds)
``graphwiz_cycles_total{status}``                   cycles finished, by status (ok, skipped)
``graphwiz_cycle_errors_total``                     cycles that failed (exception or deadline)
``graphwiz_equity_quote``                           equity marked at the newest closes (quote currency)
``graphwiz_cash_quote``                             free cash (quote currency)
``graphwiz_drawdown_ratio``                         drawdown from the equity peak (fraction)
``graphwiz_gross_exposure_ratio``                   gross position value / equity (fraction)
``graphwiz_orders_total`` / ``_fills_total`` /      orders accepted and sent, fills received, orders rejected
``graphwiz_order_rejects_total``                    by the pre-trade checks
``graphwiz_breaker_tripped{breaker}``               1 while a breaker is tripped
``graphwiz_halted`` / ``graphwiz_paused`` /         1 while new orders are halted / paused / killed
``graphwiz_killed``
``graphwiz_data_age_seconds``                       service clock minus the newest bar's close (seconds)
``graphwiz_model_ic`` / ``graphwiz_model_accuracy`` live model quality over the risk window (IC; fraction)
``graphwiz_last_cycle_timestamp_seconds``           as-of of the newest cycle (Unix seconds, UTC)
==================================================  =========================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["LATENCY_BUCKETS_S", "ServiceMetrics"]

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
NAN = float("nan")


def _f(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return NAN
    return v if math.isfinite(v) else NAN


class ServiceMetrics:
    """The ``graphwiz_*`` series on a dedicated registry (see the module docstring).

    Parameters
    ----------
    registry : the registry to register on (default: a new one; never the process-global default registry).
    breakers : breaker names to expose from the start (0 until tripped).
    """

    def __init__(self, registry: CollectorRegistry | None = None, breakers: tuple[str, ...] = ()) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.cycle_latency = Histogram("graphwiz_cycle_latency_seconds", "Wall time of a strategy cycle (seconds)",
                                       buckets=LATENCY_BUCKETS_S, registry=r)
        self.cycles = Counter("graphwiz_cycles", "Cycles finished, by status", ["status"], registry=r)
        self.errors = Counter("graphwiz_cycle_errors", "Cycles that failed (exception or deadline)", registry=r)
        self.equity = Gauge("graphwiz_equity_quote", "Equity at the newest closes (quote currency)", registry=r)
        self.cash = Gauge("graphwiz_cash_quote", "Free cash (quote currency)", registry=r)
        self.drawdown = Gauge("graphwiz_drawdown_ratio", "Drawdown from the equity peak (fraction)", registry=r)
        self.gross = Gauge("graphwiz_gross_exposure_ratio", "Gross position value over equity (fraction)",
                           registry=r)
        self.orders = Counter("graphwiz_orders", "Orders accepted and sent", registry=r)
        self.fills = Counter("graphwiz_fills", "Fills received", registry=r)
        self.rejects = Counter("graphwiz_order_rejects", "Orders rejected by the pre-trade checks", registry=r)
        self.breaker = Gauge("graphwiz_breaker_tripped", "1 while the breaker is tripped", ["breaker"], registry=r)
        self.halted = Gauge("graphwiz_halted", "1 while new orders are halted", registry=r)
        self.paused = Gauge("graphwiz_paused", "1 while paused", registry=r)
        self.killed = Gauge("graphwiz_killed", "1 after the kill switch", registry=r)
        self.data_age = Gauge("graphwiz_data_age_seconds", "Service clock minus the newest bar's close (seconds)",
                              registry=r)
        self.model_ic = Gauge("graphwiz_model_ic", "Live mean cross-sectional IC over the risk window", registry=r)
        self.model_accuracy = Gauge("graphwiz_model_accuracy", "Live direction accuracy over the risk window "
                                    "(fraction)", registry=r)
        self.last_cycle = Gauge("graphwiz_last_cycle_timestamp_seconds", "As-of of the newest cycle (Unix s, UTC)",
                                registry=r)
        for g in (self.equity, self.cash, self.drawdown, self.gross, self.model_ic, self.model_accuracy):
            g.set(NAN)
        for name in breakers:
            self.breaker.labels(breaker=name).set(0)
        self.data_age.set(NAN)

    def bind_data_age(self, age_s: Callable[[], float | None]) -> None:
        """Compute ``graphwiz_data_age_seconds`` at scrape time (NaN before the first bar)."""
        self.data_age.set_function(lambda: _f(age_s()))

    def observe_cycle(self, result: dict[str, Any], snapshot: dict[str, Any]) -> None:
        """Update every series from a finished cycle's result and the state's snapshot after it."""
        t = (result.get("timings") or {}).get("total")
        if t is not None and math.isfinite(float(t)):
            self.cycle_latency.observe(float(t))
        self.cycles.labels(status=str(result.get("status", "ok"))).inc()
        self.equity.set(_f(result.get("equity")))
        self.cash.set(_f(result.get("cash")))
        self.drawdown.set(_f(snapshot.get("drawdown")))
        self.gross.set(_f(snapshot.get("gross_exposure")))
        self.orders.inc(len(result.get("orders") or []))
        self.fills.inc(int(result.get("trades_executed") or 0))
        self.rejects.inc(len(result.get("rejected") or []))
        for name, tripped in (snapshot.get("breakers") or {}).items():
            self.breaker.labels(breaker=name).set(1.0 if tripped else 0.0)
        self.observe_flags(snapshot)
        self.model_ic.set(_f(snapshot.get("model_ic")))
        self.model_accuracy.set(_f(snapshot.get("model_accuracy")))
        as_of = result.get("as_of")
        if as_of is not None:
            self.last_cycle.set(pd.Timestamp(as_of).timestamp())

    def observe_flags(self, snapshot: dict[str, Any]) -> None:
        """Halted / paused / killed from a snapshot (also after a control, between cycles)."""
        self.halted.set(1.0 if snapshot.get("halted") else 0.0)
        self.paused.set(1.0 if snapshot.get("paused") else 0.0)
        self.killed.set(1.0 if snapshot.get("killed") else 0.0)

    def observe_error(self) -> None:
        """Count a failed cycle."""
        self.errors.inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
