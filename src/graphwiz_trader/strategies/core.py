"""The strategy loop: one object, ``await start()`` then ``await run_cycle()`` per bar, on any trading engine.

``start()``: starts the engine, records the run, loads the warm-up history (the longest of Alpha158's 61-bar
look-back, the covariance window, the graph window and the regime fit, and the training window when the model is
trained here), advances the live graph over it (regimes fitted, the newest due snapshot built), loads or trains
the model on that history only, and reconciles the journal with the engine (``trading.reconcile``).

One cycle (:meth:`Strategy.run_cycle`), decision at the close of the newest bar t:

1. the new bars (``engine.next_bars``); fills and order updates since the last cycle are journaled at once;
2. the graph advances one bar (a new snapshot only when one is due, written to the store);
3. features of bar t only, scores, (re)training when due on data up to t;
4. the risk manager marks equity and model quality (breakers), the kill switch and pause are honoured;
5. target weights (optimiser, or top-k) -> orders (execution chosen by size vs ADV) -> stop-loss/take-profit
   exits -> pre-trade checks -> journal (write-ahead, state ``new``) -> submit -> acknowledgements journaled;
6. signals, equity, positions and the cycle summary are journaled.

Stale data (a symbol's newest bar older than ``stale_after_bars``): no new orders, a ``stale_data`` risk event,
the cycle is ``skipped``. An engine that cannot reach the exchange (``ExchangeUnavailableError``): the attempt is
journaled ``failed`` and the exchange part of the cycle (steps 4-6) is retried with exponential backoff
(``cycle_retries``, ``cycle_retry_backoff_s``); retried orders carry the same client order ids, so nothing is
sent twice and nothing is half-written (orders are journaled in one transaction before they are sent).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.core.timeframes import timeframe_delta
from graphwiz_trader.errors import ConfigError, ExchangeUnavailableError, GraphwizError
from graphwiz_trader.strategies.alpha_last import ALPHA_LOOKBACK
from graphwiz_trader.strategies.bars import BarBuffer
from graphwiz_trader.strategies.planning import (
    constraints_of,
    optimised_weights,
    optimiser_settings,
    plan_orders,
    topk_weights,
    trailing_adv,
)
from graphwiz_trader.strategies.records import StrategyRecords
from graphwiz_trader.strategies.records import jsonable as _jsonable
from graphwiz_trader.strategies.records import rounded as _round
from graphwiz_trader.trading.commands import FLATTEN_PREFIX
from graphwiz_trader.trading.types import OrderRequest, OrderUpdate

log = logging.getLogger(__name__)

__all__ = ["Strategy", "warmup_bars_for"]


def warmup_bars_for(strategy: Any, graph_spec: Any = None, model_bars: int | None = None) -> int:
    """Bars a strategy loads before its first decision: the longest of Alpha158's look-back (62 bars), the
    covariance window + 1, the model's training window (when trained at start: ``model_bars``, default
    ``strategy.train_window_bars`` without a ``model_path``), and with a graph its window + 1 and the regime fit
    (``min_train`` + 2 bars; the timeframe's defaults when the spec has none)."""
    if model_bars is None:
        model_bars = strategy.train_window_bars if strategy.model_path is None else ALPHA_LOOKBACK + 1
    need = [ALPHA_LOOKBACK + 1, strategy.cov_window_bars + 1, int(model_bars)]
    if graph_spec is not None:
        from graphwiz_trader.graph.pipeline import regime_params_for

        regimes = graph_spec.regimes or regime_params_for(strategy.timeframe)
        need += [graph_spec.window + 1, regimes.min_train + 2]
    return max(need)


class Strategy(StrategyRecords):
    """Scores to fills, one cycle at a time (see the module docstring).

    Parameters
    ----------
    engine : a :class:`~graphwiz_trader.trading.engines.base.TradingEngine` (replay, paper, live); the strategy
        starts and closes it.
    symbols : the universe traded.
    scores : a score source (:mod:`graphwiz_trader.strategies.signals`).
    settings : the trading configuration (its ``strategy``, ``risk`` and ``execution`` sections are read).
    journal, run_id : the trade journal and this run's id (``None``: nothing is journaled; paper and live need one).
    risk_manager : defaults to ``trading.risk.RiskManager(settings.risk, journal, run_id)``.
    graph : the :class:`~graphwiz_trader.strategies.live_graph.LiveGraph` (v2 with graph features), else None.
    mirror : a :class:`~graphwiz_trader.trading.graph_mirror.GraphMirror`: the journaled trades and signals are
        mirrored into its store in batches, each time the live graph writes a snapshot (and at :meth:`close`).
    name : the strategy's name in the journal.
    sleep : awaited between retries (tests pass a recorder).
    """

    def __init__(self, engine: Any, symbols: list[str], scores: Any, settings: TradingSettings, *,
                 journal: Any = None, run_id: str | None = None, risk_manager: Any = None, graph: Any = None,
                 mirror: Any = None, name: str = "qlib_hybrid_v2",
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        if not symbols:
            raise ConfigError("a strategy needs at least one symbol")
        if journal is not None and not run_id:
            raise ConfigError("a strategy with a journal needs a run_id")
        if journal is None and getattr(engine, "name", "") == "live":
            raise ConfigError("live trading needs a trade journal (write-ahead orders, reconcile on restart)")
        self.engine = engine
        self.symbols = list(dict.fromkeys(symbols))
        self.scores = scores
        self.settings = settings
        self.cfg = settings.strategy
        self.journal = journal
        self.run_id = run_id or "run"
        self.graph = graph
        self.mirror = mirror
        self.name = name
        self._sleep = sleep
        self.bar = timeframe_delta(getattr(engine, "timeframe", self.cfg.timeframe))
        self.ppy = pd.Timedelta(days=365) / self.bar
        if risk_manager is None:
            from graphwiz_trader.trading.risk import RiskManager

            risk_manager = RiskManager(settings.risk, journal, run_id if journal is not None else None)
        self.risk = risk_manager
        from graphwiz_trader.trading.risk import ModelQualityTracker

        self.quality = ModelQualityTracker(settings.risk.model_quality_window_bars,
                                           classification=bool(getattr(scores, "classification", False)))
        self.opt = optimiser_settings(self.cfg, float(self.ppy))
        self.constraints = constraints_of(self.cfg, settings.risk)
        if self.cfg.cash_buffer < settings.risk.cash_buffer:
            log.warning("strategy.cash_buffer %.4g is below risk.cash_buffer %.4g: buys will be scaled down to the "
                        "cash the risk manager allows", self.cfg.cash_buffer, settings.risk.cash_buffer)
        self.buffer: BarBuffer | None = None
        self.cycle = 0
        self.started = False
        self.orders: dict[str, list[Any]] = {}   # open orders: client id -> [request, filled qty]
        self.entry_price: dict[str, float] = {}
        self._recent_scores: deque[tuple[pd.Timestamp, pd.Series, pd.Series]] = deque(maxlen=64)
        self.rules: dict[str, Any] = {}
        self.stats = {"cycles": 0, "orders": 0, "fills": 0, "rejected": 0, "failed_attempts": 0, "skipped": 0,
                      "breaker_events": 0}
        self.last_result: dict[str, Any] | None = None
        self._flattened = False
        self._unmirrored: list[int] = []
        self._mirror_since: pd.Timestamp | None = None
        self._mirrored_builds = 0
        self._pos: dict[str, float] = {}
        self.reconcile_report: Any = None

    # ------------------------------------------------------------------------------------------ start
    def warmup_bars(self) -> int:
        """Bars loaded before the first decision (see the module docstring)."""
        return warmup_bars_for(self.cfg, self.graph.spec if self.graph is not None else None,
                               int(getattr(self.scores, "warmup_bars", 1)))

    async def start(self) -> dict[str, Any]:
        """Start the engine, load the warm-up history, load or train the model, reconcile (see the module docstring)."""
        t0 = time.perf_counter()
        await self.engine.start()
        n = self.warmup_bars()
        capacity = max(n, self.cfg.train_window_bars, self.cfg.cov_window_bars + 2,
                       (self.graph.spec.window + 2) if self.graph is not None else 0) + 8
        self.buffer = BarBuffer(self.symbols, self.bar, capacity)
        hist = await self.engine.history(self.symbols, n)
        self.buffer.append(hist)
        if len(self.buffer) < min(n, self.cfg.cov_window_bars + 1):
            raise GraphwizError(f"the engine has {len(self.buffer)} bars of history before {self.engine.now()}; "
                                f"the strategy needs {n} (covariance window, Alpha158, graph and regime windows)")
        timings: dict[str, float] = {"history": time.perf_counter() - t0}
        # the graph's first build and the model's training are long CPU work: a thread keeps the event loop
        # (a service's /health, its API) answering meanwhile
        if self.graph is not None:
            t1 = time.perf_counter()
            await asyncio.to_thread(self._build_graph_at_start)
            timings["graph"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        model = await asyncio.to_thread(self.scores.prepare, self.buffer)
        timings["model"] = time.perf_counter() - t2
        self.rules = await self.engine.market_rules(self.symbols)
        self._pos = {s: float(q) for s, q in (await self.engine.account()).positions.items() if q}
        if self.journal is not None:
            self.journal.start_run(self.run_id, self.name, self.engine.name, self._config_record(),
                                   self.engine.now())
            if model.get("version"):
                self.journal.record_model_version(self.run_id, model["version"], _jsonable(model))
            last = self.journal.last_cycle(self.run_id)
            self.cycle = 0 if last is None else last + 1
            await self._reconcile()
        self.started = True
        info = {"warmup_bars": len(self.buffer), "history_end": str(self.buffer.newest), "model": model,
                "cycle": self.cycle, "timings": timings, "total_seconds": time.perf_counter() - t0}
        log.info("strategy %s started on %s: %d warm-up bars to %s, model %s", self.name, self.engine.name,
                 len(self.buffer), self.buffer.newest, model.get("version"))
        return info

    def _build_graph_at_start(self) -> None:
        close = self.buffer.field("close")
        self.graph.update(close, len(close), build=False)
        self.graph.build_latest(close)

    def _config_record(self) -> dict[str, Any]:
        s = self.settings
        return {"symbols": self.symbols, "strategy": s.strategy.model_dump(mode="json"),
                "risk": s.risk.model_dump(mode="json"), "execution": s.execution.model_dump(mode="json")}

    async def _reconcile(self) -> None:
        """Journal vs engine: the live engine reconciles in its own start; others here."""
        report = getattr(self.engine, "last_reconcile", None)
        if report is None:
            from graphwiz_trader.trading.reconcile import reconcile

            report = await reconcile(self.engine, self.journal, self.run_id)
        self.reconcile_report = report
        for req, state in self.journal.open_orders(self.run_id):
            self.orders[req.client_order_id] = [req, 0.0]

    async def close(self) -> None:
        """Mirror what is left into the graph store and close the engine (the journal stays open: its owner closes it)."""
        try:
            self._mirror(final=True)
        finally:
            await self.engine.close()

    # ------------------------------------------------------------------------------------------ cycle
    async def run_cycle(self) -> dict[str, Any]:
        """One decision at the newest bar's close (see the module docstring).

        Returns
        -------
        dict with ``cycle, as_of, status, signals_generated, trades_executed, orders, rejected, target_weights,
        equity, risk_state, timings``; ``status`` is ``ok``, ``skipped`` (stale data, halted) or ``done``
        (the engine has no more bars).
        """
        if not self.started or self.buffer is None:
            raise GraphwizError("call `await strategy.start()` before run_cycle()")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        bars = await self._with_retries(self.engine.next_bars, "fetching the new bars")
        timings["bars"] = time.perf_counter() - t0
        if bars is None:
            return {"cycle": self.cycle, "as_of": None, "status": "done"}
        new = self.buffer.append(bars)
        if not len(new):
            return {"cycle": self.cycle, "as_of": self.buffer.newest, "status": "no_new_bar"}
        as_of = self.buffer.newest
        cycle = self.cycle
        decision = self._decide(as_of, len(new), timings)
        attempt = 0
        while True:
            if self.journal is not None:
                self.journal.begin_cycle(self.run_id, cycle, as_of)
            try:
                res = await self._exchange_part(cycle, as_of, decision, timings)
                break
            except ExchangeUnavailableError as exc:
                self.stats["failed_attempts"] += 1
                if self.journal is not None:
                    self.journal.finish_cycle(self.run_id, cycle, "failed",
                                              {"error": str(exc), "attempt": attempt + 1}, _round(timings))
                if attempt >= self.cfg.cycle_retries:
                    log.error("cycle %d at %s failed after %d attempts: %s", cycle, as_of, attempt + 1, exc)
                    # the bar is used up: the next cycle (next bar) takes the next number; this one stays failed
                    self.cycle += 1
                    self.stats["cycles"] += 1
                    raise
                wait = self.cfg.cycle_retry_backoff_s * 2 ** attempt
                log.warning("cycle %d at %s: %s; retrying in %.3gs (attempt %d of %d)", cycle, as_of, exc, wait,
                            attempt + 2, self.cfg.cycle_retries + 1)
                await self._sleep(wait)
                attempt += 1
        self.cycle += 1
        self.stats["cycles"] += 1
        timings["total"] = time.perf_counter() - t0
        res["timings"] = _round(timings)
        self.last_result = res
        return res

    async def _with_retries(self, fn: Callable[[], Awaitable[Any]], what: str) -> Any:
        attempt = 0
        while True:
            try:
                return await fn()
            except ExchangeUnavailableError as exc:
                if attempt >= self.cfg.cycle_retries:
                    raise
                wait = self.cfg.cycle_retry_backoff_s * 2 ** attempt
                log.warning("%s: %s; retrying in %.3gs", what, exc, wait)
                await self._sleep(wait)
                attempt += 1

    def _decide(self, t: pd.Timestamp, new_rows: int, timings: dict[str, float]) -> dict[str, Any]:
        """Graph, features, scores and target weights at ``t`` (no exchange involved: computed once per cycle)."""
        buf = self.buffer
        assert buf is not None
        out: dict[str, Any] = {"retrained": None}
        if self.graph is not None:
            t1 = time.perf_counter()
            self.graph.update(buf.field("close", max(self.graph.spec.window, self.graph.params.asset_vol_window) + 2),
                              new_rows)
            timings["graph"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        if self.scores.due(t):
            out["retrained"] = self.scores.retrain(buf, t)
            timings["retrain"] = time.perf_counter() - t1
            t1 = time.perf_counter()
        raw = self.scores.score(buf, t)
        timings["features_predict"] = time.perf_counter() - t1
        centred = raw - float(self.scores.neutral)
        thr = self.cfg.signal_threshold
        view = centred.where(centred.abs() >= thr, 0.0) if thr > 0 else centred
        out["raw"], out["centred"] = raw, view
        out["signals"] = int((view.abs() > 0).sum()) if thr > 0 else int(view.notna().sum())
        self._track_quality(t, raw)
        t1 = time.perf_counter()
        decide_now = (self.buffer.total_rows - 1) % self.cfg.decision_every_bars == 0
        out["decide"] = decide_now
        if decide_now:
            close = buf.field("close", self.cfg.cov_window_bars + 1)
            if self.cfg.enable_portfolio_opt:
                res = optimised_weights(close, view, self.opt, self.constraints, self._current_weights())
                out["weights"] = None if res is None else res.weights
                out["optimiser"] = None if res is None else {"method": res.method, "fallbacks": list(res.fallbacks)}
            else:
                out["weights"] = topk_weights(view, self.cfg.topk, self.settings.risk, self.cfg.cash_buffer)
        timings["optimise"] = time.perf_counter() - t1
        return out

    def _current_weights(self) -> pd.Series | None:
        """Weights held at the last closes (positions from the fills seen, cash of the last cycle); None before."""
        if self.last_result is None or self.constraints.no_trade_band <= 0:
            return None
        prices = self.buffer.last_close()
        value = {s: q * prices.get(s, 0.0) for s, q in self._pos.items() if q}
        equity = float(self.last_result.get("cash") or 0.0) + sum(value.values())
        if not equity > 0:
            return None
        return pd.Series({s: value.get(s, 0.0) / equity for s in self.symbols})

    def _track_quality(self, t: pd.Timestamp, raw: pd.Series) -> None:
        """Feed the model-quality tracker with the scores whose outcome (``horizon`` bars on) is known at ``t``."""
        h = int(getattr(self.scores, "horizon", 1))
        close = self.buffer.field("close", h + 1)
        self._recent_scores.append((t, raw, close.iloc[-1]))
        if len(self._recent_scores) > h:
            past_t, past_scores, past_close = self._recent_scores[-1 - h]
            realised = close.iloc[-1] / past_close - 1.0
            self.quality.add(past_t, past_scores, realised)

    async def _exchange_part(self, cycle: int, t: pd.Timestamp, d: dict[str, Any],
                             timings: dict[str, float]) -> dict[str, Any]:
        t1 = time.perf_counter()
        ups, fills = await self.engine.poll_updates()
        with self._batch(f"cycle {cycle}: fills and updates since the last cycle"):
            self._apply(ups, fills)
        account = await self.engine.account()
        prices = self.buffer.last_close()
        held = {s: q for s, q in account.positions.items() if q}
        equity = account.equity_quote({**prices, **{s: prices.get(s, math.nan) for s in held}})
        risk_state = self.risk.update(equity, t, self.quality.quality())
        timings["account_risk"] = time.perf_counter() - t1
        status, reasons = "ok", []
        stale = {s: why for s, why in self.buffer.stale(t, self.cfg.stale_after_bars).items() if why != "no bar yet"}
        targets: pd.Series | None = d.get("weights")
        accepted: list[OrderRequest] = []
        rejected: list[tuple[OrderRequest, str]] = []
        skipped: dict[str, str] = {}
        buy_scale = 1.0
        cancelled: list[OrderUpdate] = []
        t2 = time.perf_counter()
        orders: list[OrderRequest] = []
        if risk_state.get("killed"):
            cancelled = await self.engine.cancel_all()
            self._apply(cancelled, [])
            status, reasons = "skipped", ["kill switch: open orders cancelled"]
            if not self._flattened and any(FLATTEN_PREFIX in r for r in risk_state.get("reasons", [])):
                held = {s: q for s, q in account.positions.items() if q}
                orders = self.risk.kill(True, positions=held, cycle=cycle, ts=t + self.bar,
                                        reason=next(r for r in risk_state["reasons"] if FLATTEN_PREFIX in r))
                self._flattened = True
                reasons.append(f"flatten: {len(orders)} position(s) closed")
        elif stale:
            detail = "; ".join(f"{s}: {w}" for s, w in sorted(stale.items()))
            self._event(cycle, t, "stale_data", detail, "no new orders this cycle")
            status, reasons = "skipped", [f"stale data: {detail}"]
        if status == "ok":
            exits = self._exits(account, prices, cycle, t)
            orders = list(exits)
            if targets is not None and d["decide"]:
                tg = targets.copy()
                for o in exits:
                    tg[o.symbol] = 0.0
                pending = self._pending()
                adv = trailing_adv(self.buffer.field("volume", self.settings.execution.impact_volume_window_bars),
                                   self.buffer.field("close", self.settings.execution.impact_volume_window_bars),
                                   self.settings.execution.impact_volume_window_bars)
                cash_free = account.cash_quote - self.settings.risk.cash_buffer * max(equity, 0.0) \
                    - self._pending_buys_quote(prices)
                plan = plan_orders(tg, account.positions, pending, prices, equity, adv.to_dict(),
                                   self.settings.execution, self.run_id, cycle, t + self.bar,
                                   [s for s in self.symbols if s not in {o.symbol for o in exits}],
                                   cash_available_quote=cash_free * (1.0 - 1e-9))
                skipped = plan.skipped
                buy_scale = plan.buy_scale
                if plan.cancel:
                    cancelled = await self.engine.cancel_all(plan.cancel)
                    self._apply(cancelled, [])
                orders += plan.orders
            if risk_state.get("halted"):
                status, reasons = "skipped", list(risk_state.get("reasons", []))
        with self._batch(f"cycle {cycle}: risk decisions and orders"):
            if orders:
                decision = self.risk.check_orders(orders, account, prices, self.rules, cycle)
                accepted, rejected = decision.accepted, decision.rejected
            if accepted and self.journal is not None:
                self.journal.record_orders(accepted)          # write-ahead: committed before they are sent
        timings["plan_check"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        acks: list[OrderUpdate] = []
        if accepted:
            acks = await self.engine.submit(accepted)
            for o in accepted:
                self.orders.setdefault(o.client_order_id, [o, 0.0])
        timings["submit"] = time.perf_counter() - t3
        t4 = time.perf_counter()
        weights = targets if targets is not None else pd.Series(dtype=np.float64)
        gross = sum(abs(q) * prices.get(s, 0.0) for s, q in account.positions.items())
        peak = risk_state.get("peak_equity") or equity
        dd = 1.0 - equity / peak if peak else 0.0
        summary = {"status": status, "reasons": reasons, "signals": d["signals"], "orders": len(accepted),
                   "rejected": len(rejected), "fills": len(fills), "skipped_orders": skipped,
                   "cancelled": len(cancelled), "equity": equity, "retrained": bool(d.get("retrained")),
                   "buy_scale": buy_scale}
        with self._batch(f"cycle {cycle}: acknowledgements, signals, equity, positions, end of cycle"):
            self._apply(acks, [])
            if self.journal is not None:
                self._record_cycle_end(cycle, t, d, weights, account, prices, equity, gross, dd, summary, timings)
        if self.journal is not None:
            self._unmirrored.append(cycle)
            self._mirror(final=False)
        timings["journal"] = time.perf_counter() - t4
        self.stats["orders"] += len(accepted)
        self.stats["rejected"] += len(rejected)
        self.stats["fills"] += len(fills)
        self.stats["skipped"] += int(status != "ok")
        return {"cycle": cycle, "as_of": t, "status": status, "reasons": reasons,
                "signals_generated": d["signals"], "trades_executed": len(fills),
                "orders": [_order_dict(o) for o in accepted],
                "rejected": [{"client_order_id": o.client_order_id, "symbol": o.symbol, "reason": why}
                             for o, why in rejected],
                "target_weights": {s: float(w) for s, w in weights.items()} if len(weights) else {},
                "equity": equity, "cash": account.cash_quote, "positions": dict(account.positions),
                "risk_state": _jsonable(risk_state), "fills": [f.to_dict() for f in fills]}

    async def kill(self, flatten: bool = False, reason: str = "kill switch") -> dict[str, Any]:
        """Kill switch: halt, cancel every open order, and (``flatten``) send the orders closing every position."""
        account = await self.engine.account()
        t = self.buffer.newest if self.buffer is not None else self.engine.now() - self.bar
        orders = self.risk.kill(flatten, positions=dict(account.positions), cycle=self.cycle, ts=t + self.bar,
                                reason=reason)
        cancelled = await self.engine.cancel_all()
        self._apply(cancelled, [])
        acks: list[OrderUpdate] = []
        if orders:
            decision = self.risk.check_orders(orders, account, self.buffer.last_close(), self.rules, self.cycle)
            if decision.accepted:
                if self.journal is not None:
                    self.journal.begin_cycle(self.run_id, self.cycle, t)
                    self.journal.record_orders(decision.accepted)
                acks = await self.engine.submit(decision.accepted)
                self._apply(acks, [])
                if self.journal is not None:
                    self.journal.finish_cycle(self.run_id, self.cycle, "skipped", {"kill": reason,
                                                                                   "flatten": len(acks)})
                self.cycle += 1
        return {"cancelled": len(cancelled), "flatten_orders": len(acks)}


def _order_dict(o: OrderRequest) -> dict[str, Any]:
    return {"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value, "qty": o.qty,
            "execution": o.execution, "horizon_bars": o.horizon_bars, "reason": o.reason}
