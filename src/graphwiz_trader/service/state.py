"""What the API, the dashboard and Telegram read from the running service, and the controls they call.

:class:`ServiceState` wraps the running :class:`~graphwiz_trader.strategies.core.Strategy` and its trade journal.
The loop calls :meth:`ServiceState.on_cycle` after every cycle (and :meth:`ServiceState.on_error` after a failed
one): the state caches what readers need (the newest cycle result, the newest scores, the arrival prices of the
orders) and publishes one event per cycle to every subscriber queue. Readers never touch the exchange.

Controls go through the same journal flags as ``graphwiz trading pause|resume|kill``: pause and resume act at
once on the strategy's risk manager (which writes the run's flags), kill waits for the running cycle to finish
(``cycle_lock``) and then cancels every open order (and flattens with ``flatten=True``).

Units: equity, cash and values in the quote currency; weights, drawdown and exposure as fractions of equity;
shortfall in bps; ages in seconds; times ISO-8601 UTC.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.errors import GraphwizError, UnknownSymbolError

log = logging.getLogger(__name__)

__all__ = ["ServiceState", "ServiceStateError"]

EVENT_QUEUE_SIZE = 64


class ServiceStateError(GraphwizError):
    """A control or read of the service state that cannot be done (bad argument, strategy not started)."""


def _iso(t: Any) -> str | None:
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return None
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return ts.isoformat()


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


class ServiceState:
    """What the API and dashboard read, and the controls they call; owned by the running service.

    Parameters
    ----------
    strategy : the running strategy (``last_result``, ``journal``, ``risk``, ``graph``, ``buffer``, ``quality``).
    clock : the service clock (UTC ``pd.Timestamp``); the replay clock in replay mode. Data age is measured on it.
    started_utc : when the service started (default: now).
    """

    def __init__(self, strategy: Any, clock: Callable[[], pd.Timestamp] = _utc_now,
                 started_utc: pd.Timestamp | None = None) -> None:
        self.strategy = strategy
        self.run_id: str = strategy.run_id
        self.clock = clock
        self.started_utc = started_utc if started_utc is not None else _utc_now()
        self.cycle_lock = asyncio.Lock()
        self.last_error: str | None = None
        self.errors = 0
        self.cycles_seen = 0
        self._scores: dict[str, float | None] = {}
        self._scores_as_of: pd.Timestamp | None = None
        self._arrival: dict[str, tuple[float, int]] = {}     # client order id -> (arrival price, side sign)
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        store = getattr(strategy.graph, "store", None) if getattr(strategy, "graph", None) is not None else None
        self.graph_store: Any = store
        self.graph_build: Callable[[], str | None] = self._graph_build
        self.health_provider: Callable[[], dict[str, Any]] | None = None

    # ------------------------------------------------------------------------------------------ loop hooks
    def on_cycle(self, result: dict[str, Any]) -> dict[str, Any]:
        """Cache what readers need from a finished cycle and publish the new snapshot; returns the snapshot."""
        self.cycles_seen += 1
        self.last_error = None
        s = self.strategy
        buf = getattr(s, "buffer", None)
        if buf is not None and len(buf):
            prices = buf.last_close()
            for o in result.get("orders", []):
                px = _num(prices.get(o["symbol"]))
                if px is not None and px > 0:
                    self._arrival[o["client_order_id"]] = (px, 1 if o["side"] == "buy" else -1)
        self._scores_as_of = result.get("as_of")
        self._scores = self._journal_scores(result.get("cycle"))
        snap = self.snapshot()
        self._publish(snap)
        return snap

    def on_error(self, message: str) -> None:
        """Record the loop's last error (already masked of secrets by the caller) and publish it."""
        self.errors += 1
        self.last_error = message
        self._publish(self.snapshot())

    def _journal_scores(self, cycle: Any) -> dict[str, float | None]:
        j = self.strategy.journal
        if j is None or cycle is None:
            return {}
        sig = j.signals_frame(self.run_id, cycle=int(cycle))
        return {str(r.symbol): _num(r.score) for r in sig.itertuples()}

    # ------------------------------------------------------------------------------------------ reads
    def snapshot(self) -> dict[str, Any]:
        """The service's state now: ``cycle, as_of (ISO UTC), status, equity, cash, drawdown, gross_exposure,
        paused, killed, halted, reasons, model_version, data_age_s, regime, regime_prob, last_error, started_utc``
        (plus ``run_id``, ``cycles_seen``, ``errors``, ``breakers``, ``model_accuracy``, ``model_ic``,
        ``model_quality_bars``)."""
        s = self.strategy
        r = s.last_result or {}
        risk = s.risk.state()
        equity = _num(r.get("equity"))
        positions = r.get("positions") or {}
        prices = self._prices()
        gross = sum(abs(float(q)) * prices.get(sym, 0.0) for sym, q in positions.items())
        regime, prob = (None, None)
        if getattr(s, "graph", None) is not None:
            regime, prob = s.graph.regime_at()
        q = s.quality.quality() if getattr(s, "quality", None) is not None else {}
        return {"run_id": self.run_id, "cycle": r.get("cycle"), "as_of": _iso(r.get("as_of")),
                "status": r.get("status", "starting" if not getattr(s, "started", False) else "started"),
                "equity": equity, "cash": _num(r.get("cash")), "drawdown": _num(risk.get("drawdown")),
                "gross_exposure": (gross / equity) if equity else None,
                "paused": bool(risk.get("paused")), "killed": bool(risk.get("killed")),
                "halted": bool(risk.get("halted")), "reasons": list(risk.get("reasons", [])),
                "breakers": {k: bool(v.get("tripped")) for k, v in risk.get("breakers", {}).items()},
                "model_version": getattr(s.scores, "version", None), "data_age_s": self.data_age_s(),
                "regime": regime, "regime_prob": _num(prob), "model_accuracy": _num(q.get("accuracy")),
                "model_ic": _num(q.get("ic")), "model_quality_bars": int(q.get("n_bars") or 0),
                "last_error": self.last_error, "errors": self.errors,
                "cycles_seen": self.cycles_seen, "started_utc": _iso(self.started_utc)}

    def health(self) -> dict[str, Any]:
        """The service's health (``ProductionTradingService.health``: ``status`` starting/ok/degraded/stopping,
        phase, cycle, as_of, data_age_s, failures_in_row, next_cycle_utc, cycles_done, last_error); without a
        running service, the same keys from the snapshot (``status`` ok, or degraded after an error)."""
        if self.health_provider is not None:
            return self.health_provider()
        snap = self.snapshot()
        return {"status": "degraded" if snap["last_error"] else "ok", "phase": "running", "run_id": self.run_id,
                "cycle": snap["cycle"], "as_of": snap["as_of"], "data_age_s": snap["data_age_s"],
                "failures_in_row": 0, "cycles_done": self.cycles_seen, "next_cycle_utc": None,
                "last_error": snap["last_error"]}

    def data_age_s(self) -> float | None:
        """Seconds from the newest bar's close to the service clock (None before the first bar)."""
        buf = getattr(self.strategy, "buffer", None)
        if buf is None or buf.newest is None:
            return None
        return max(0.0, (self.clock() - (buf.newest + self.strategy.bar)).total_seconds())

    def _prices(self) -> dict[str, float]:
        buf = getattr(self.strategy, "buffer", None)
        if buf is None or not len(buf):
            return {}
        return {k: float(v) for k, v in buf.last_close().items() if _num(v) is not None}

    def positions(self) -> list[dict[str, Any]]:
        """Held positions: ``symbol, qty`` (base units), ``price`` (last close), ``value_quote``, ``weight``
        (fraction of equity), ``entry_price`` (average entry, quote per unit)."""
        s = self.strategy
        r = s.last_result or {}
        prices = self._prices()
        equity = _num(r.get("equity"))
        out = []
        for sym, q in sorted((r.get("positions") or {}).items()):
            if not q:
                continue
            px = prices.get(sym)
            value = float(q) * px if px is not None else None
            out.append({"symbol": sym, "qty": float(q), "price": px, "value_quote": value,
                        "weight": (value / equity) if (value is not None and equity) else None,
                        "entry_price": _num(s.entry_price.get(sym))})
        return out

    def equity_curve(self) -> list[dict[str, Any]]:
        """The run's equity points from the journal: ``ts`` (ISO UTC), ``equity`` (quote), ``drawdown`` (fraction)."""
        j = self.strategy.journal
        if j is None:
            return []
        eq = j.equity_frame(self.run_id)
        return [{"ts": _iso(t), "equity": float(e), "drawdown": float(d)}
                for t, e, d in zip(eq["ts_utc"], eq["equity_quote"], eq["drawdown"])] if len(eq) else []

    def target_weights(self) -> dict[str, float]:
        """The newest cycle's target weights (fractions of equity; empty before the first decision)."""
        return dict((self.strategy.last_result or {}).get("target_weights") or {})

    def top_graph_features(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` graph features (``G_*``) furthest from their cross-sectional mean at the newest bar:
        ``feature, symbol, value, z`` (z: value minus the mean over symbols, over their std)."""
        s = self.strategy
        if n < 1:
            raise ServiceStateError(f"n must be >= 1, got {n}")
        if getattr(s, "graph", None) is None or getattr(s, "buffer", None) is None or len(s.buffer) < 26:
            return []
        feats = s.graph.features(s.buffer.field("close", 26))
        names = {to_qlib_instrument(sym): sym for sym in s.symbols}   # the frame is indexed by Qlib instrument
        rows = []
        for col in feats.columns:
            v = feats[col].astype(np.float64)
            sd = float(v.std(ddof=0))
            for (_, sym), x in v.items():
                if not math.isfinite(float(x)):
                    continue
                z = (float(x) - float(v.mean())) / sd if sd > 1e-12 else 0.0
                rows.append({"feature": str(col), "symbol": names.get(str(sym), str(sym)), "value": float(x), "z": z})
        rows.sort(key=lambda d: (-abs(d["z"]), d["feature"], d["symbol"]))
        return rows[:n]

    def execution_quality(self) -> dict[str, Any]:
        """Implementation shortfall of the fills against the arrival price (the newest close when the order was
        decided), in bps of the fill's notional: ``fills, mean_bps, p95_bps, fee_bps``.

        Per fill of notional ``n = qty x price``: ``side x (price / arrival - 1) x 1e4`` (the price moved against
        us, positive: paid more on a buy / got less on a sell) plus ``(spread_slippage + impact) / n x 1e4`` (the
        costs a simulated fill charges on top of the unaffected price; an exchange's fill has them in its price
        and records 0). ``fee_bps`` is the mean explicit fee, apart. Only fills of orders decided while this
        service ran count (their arrival price is known).
        """
        empty = {"fills": 0, "mean_bps": None, "p95_bps": None, "fee_bps": None}
        j = self.strategy.journal
        if j is None or not self._arrival:
            return empty
        fills = j.fills_frame(self.run_id)
        bps, fee = [], []
        cols = ("client_order_id", "price", "qty", "fee_quote", "spread_slippage_quote", "impact_quote")
        for cid, px, qty, f, ss, imp in zip(*(fills[c] for c in cols)) if len(fills) else []:
            a = self._arrival.get(cid)
            n = float(qty) * float(px)
            if a is None or not n > 0:
                continue
            bps.append(a[1] * (float(px) / a[0] - 1.0) * 1e4 + (float(ss) + float(imp)) / n * 1e4)
            fee.append(float(f) / n * 1e4)
        if not bps:
            return empty
        arr = np.asarray(bps)
        return {"fills": int(arr.size), "mean_bps": float(arr.mean()), "p95_bps": float(np.quantile(arr, 0.95)),
                "fee_bps": float(np.mean(fee))}

    async def latest_signals(self, symbols: list[str]) -> dict[str, Any]:
        """The newest cycle's scores and target weights of ``symbols``: ``{as_of, scores, weights,
        model_version}``; a symbol outside the strategy's universe raises :class:`UnknownSymbolError`."""
        universe = list(self.strategy.symbols)
        missing = [x for x in symbols if x not in universe]
        if missing:
            raise UnknownSymbolError(missing, "the running strategy's universe", universe)
        w = self.target_weights()
        return {"as_of": _iso(self._scores_as_of), "scores": {x: self._scores.get(x) for x in symbols},
                "weights": {x: w.get(x, 0.0) if w else None for x in symbols},
                "model_version": getattr(self.strategy.scores, "version", None)}

    # ------------------------------------------------------------------------------------------ controls
    async def pause(self, reason: str) -> dict[str, Any]:
        """Halt new orders from now on (exits still pass); written to the run's journal flags."""
        self.strategy.risk.pause(self._reason(reason))
        return self._control_answer("pause")

    async def resume(self, reason: str) -> dict[str, Any]:
        """Lift a pause, the kill switch and the breakers (``reason`` is logged)."""
        log.info("resume requested: %s", self._reason(reason))
        self.strategy.risk.resume()
        return self._control_answer("resume")

    async def kill(self, flatten: bool, reason: str) -> dict[str, Any]:
        """Halt, cancel every open order and (``flatten``) close every position, after the running cycle."""
        why = self._reason(reason)
        if not getattr(self.strategy, "started", False):
            raise ServiceStateError("the strategy has not started yet: nothing to kill")
        async with self.cycle_lock:
            done = await self.strategy.kill(bool(flatten), why)
        out = self._control_answer("kill")
        out.update(done)
        return out

    def _reason(self, reason: str) -> str:
        if not isinstance(reason, str) or not reason.strip():
            raise ServiceStateError("a control needs a non-empty reason")
        return reason.strip()[:500]

    def _control_answer(self, action: str) -> dict[str, Any]:
        snap = self.snapshot()
        self._publish(snap)
        return {"action": action, "run_id": self.run_id, "paused": snap["paused"], "killed": snap["killed"],
                "halted": snap["halted"], "reasons": snap["reasons"]}

    # ------------------------------------------------------------------------------------------ events
    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving one snapshot per cycle (and per control); the oldest event is dropped when full."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=EVENT_QUEUE_SIZE)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(q)

    def _publish(self, event: dict[str, Any]) -> None:
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()          # a slow reader loses the oldest event, never blocks the loop
            q.put_nowait(event)

    def _graph_build(self) -> str | None:
        g = getattr(self.strategy, "graph", None)
        return g.build_ids[-1] if g is not None and g.build_ids else None
