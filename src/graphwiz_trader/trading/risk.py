"""The risk manager: pre-trade checks, portfolio limits (circuit breakers), stop-loss / take-profit exits, the kill
switch, pause and resume. Every decision is journaled with its reason when a journal is given.

Units: weights, drawdowns and losses are fractions of equity; money in quote currency (``*_quote``); price
distances in bps; quantities in base units. Limits come from :class:`~graphwiz_trader.config.settings.RiskSettings`.
A limit trips when the value reaches it (``>=``; a 1e-12 slack absorbs float rounding: 1 - 88/110 is 0.2).

Breakers: ``drawdown`` (from the equity peak; stays tripped until :meth:`RiskManager.resume`), ``daily_loss``
(from the equity at the start of the UTC day: the last update at or before 00:00 UTC, else the day's first;
clears when a new UTC day begins), ``model_accuracy`` and ``model_ic`` (trailing window, see
:class:`ModelQualityTracker`; evaluated once the window is full, clear when the model is back above its floor).
While halted (a breaker, a pause or the kill switch), only exits that reduce a position pass the checks.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.config.settings import RiskSettings
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import GraphwizError
from graphwiz_trader.trading.types import AccountSnapshot, MarketRules, OrderRequest, Side, client_order_id

log = logging.getLogger(__name__)
_ROUTINE_EVENTS = frozenset({"orders_checked", "order_rounded"})

EXIT_REASONS: tuple[str, ...] = ("stop_loss", "take_profit", "kill")
EXIT_LEG = 900      # client order id leg of a stop-loss / take-profit exit (never a rebalance leg)
FLATTEN_LEG = 901   # client order id leg of a kill-switch flatten order
TOL = 1e-12         # slack on limit comparisons (float rounding), fractions
BREAKERS: tuple[str, ...] = ("drawdown", "daily_loss", "model_accuracy", "model_ic")
RESUMED = "resumed"  # the run-state reason that tells a running manager to resume (see request_resume)


class RiskError(GraphwizError):
    """The risk manager cannot decide: a position without a price or entry price, time going backwards, ..."""


def floor_to_step(x: float, step: float | None) -> float:
    """``x`` rounded down to a multiple of ``step`` in decimal (0.3 with step 0.1 stays 0.3, not 0.2)."""
    if not step:
        return float(x)
    n = (Decimal(repr(float(x))) / Decimal(repr(float(step)))).to_integral_value(rounding=ROUND_FLOOR)
    return float(n * Decimal(repr(float(step))))


def ceil_to_step(x: float, step: float | None) -> float:
    if not step:
        return float(x)
    n = (Decimal(repr(float(x))) / Decimal(repr(float(step)))).to_integral_value(rounding=ROUND_CEILING)
    return float(n * Decimal(repr(float(step))))


@dataclass
class RiskDecision:
    """What passed the pre-trade checks (quantities rounded down to the qty step, limit prices to the tick) and
    what did not, each with its reason; ``adjustments`` lists every rounding."""

    accepted: list[OrderRequest] = field(default_factory=list)
    rejected: list[tuple[OrderRequest, str]] = field(default_factory=list)
    adjustments: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> dict[str, str]:
        """Rejection reason per client order id."""
        return {o.client_order_id: why for o, why in self.rejected}


class ModelQualityTracker:
    """Live model quality over the last ``window_bars`` bars whose outcome is known.

    ``add(as_of, scores, realized)`` takes one bar's scores and the returns they predicted, once those are
    realised (``horizon`` bars later: never before). Definitions as in :mod:`graphwiz_trader.models.metrics`:
    accuracy = share of (bar, symbol) rows whose predicted direction (``score > 0``; ``> 0.5`` for a
    classifier) equals the realised one (rows with a zero return have no direction and are left out);
    IC = mean over bars of the cross-sectional Pearson correlation (bars with < 2 symbols or no spread skipped).
    """

    def __init__(self, window_bars: int, classification: bool = False) -> None:
        if window_bars < 1:
            raise RiskError(f"window_bars must be >= 1, got {window_bars}")
        self.window_bars = int(window_bars)
        self.classification = classification
        self._bars: deque[tuple[pd.Timestamp, int, int, float]] = deque(maxlen=self.window_bars)

    def add(self, as_of: Any, scores: pd.Series, realized: pd.Series) -> None:
        t = to_utc(as_of, "model quality as_of", naive="error")
        if self._bars and t <= self._bars[-1][0]:
            raise RiskError(f"model quality bars must be added in time order: {t} after {self._bars[-1][0]}")
        df = pd.concat({"s": scores, "r": realized}, axis=1, join="inner").dropna()
        d = df[df["r"] != 0]
        hits = int(((d["s"] > (0.5 if self.classification else 0.0)) == (d["r"] > 0)).sum())
        ic = float("nan")
        if len(df) >= 2:
            x, y = df["s"].to_numpy(float), df["r"].to_numpy(float)
            vx, vy = float(((x - x.mean()) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
            if vx > 1e-300 and vy > 1e-300:
                ic = float(((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(vx * vy))
        self._bars.append((t, hits, len(d), ic))

    def quality(self) -> dict[str, float | int]:
        """``{accuracy, ic, n_bars}`` over the window (NaN when nothing is measurable yet)."""
        n_dir = sum(b[2] for b in self._bars)
        ics = [b[3] for b in self._bars if not math.isnan(b[3])]
        return {"accuracy": sum(b[1] for b in self._bars) / n_dir if n_dir else float("nan"),
                "ic": float(np.mean(ics)) if ics else float("nan"), "n_bars": len(self._bars)}


class RiskManager:
    """Pre-trade checks, breakers, exits and the kill switch of one run (see the module docstring).

    ``journal`` (a :class:`~graphwiz_trader.trading.journal.TradeJournal`) and ``run_id``: every decision is
    recorded there (``record_risk_event``), pause/kill flags are shared through the run's state (so
    ``graphwiz trading pause`` in another process halts this one at its next check), and the drawdown peak
    and the day's reference equity are restored from the run's equity history after a restart. The run must be
    started in the journal (``start_run``) before the first :meth:`update` or :meth:`check_orders`.
    """

    def __init__(self, settings: RiskSettings, journal: Any = None, run_id: str | None = None) -> None:
        if journal is not None and not run_id:
            raise RiskError("a RiskManager with a journal needs the run_id its decisions belong to")
        self.settings = settings
        self.journal = journal
        self.run_id = run_id
        self.events: deque[dict[str, Any]] = deque(maxlen=1000)
        self._paused = self._killed = False
        self._flag_reason = ""
        self._breakers: dict[str, dict[str, Any]] = {b: {"tripped": False} for b in BREAKERS}
        self._peak: float | None = None
        self._equity: float | None = None
        self._last_ts: pd.Timestamp | None = None
        self._day: pd.Timestamp | None = None
        self._day_ref: float | None = None
        self._cycle_counts: dict[int, int] = {}
        self._restored = journal is None
        self._flags_seen: Any = None

    # ------------------------------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """``{halted, reasons, paused, killed, breakers, equity, peak_equity, drawdown, day_start_equity,
        daily_loss}``; ``reasons`` says in words why new orders are halted."""
        reasons = []
        if self._killed:
            reasons.append(f"kill switch ({self._flag_reason})" if self._flag_reason else "kill switch")
        if self._paused:
            reasons.append(f"paused ({self._flag_reason})" if self._flag_reason else "paused")
        reasons += [b["why"] for name, b in self._breakers.items() if b["tripped"]]
        return {"halted": bool(reasons), "reasons": reasons, "paused": self._paused, "killed": self._killed,
                "breakers": {k: dict(v) for k, v in self._breakers.items()}, "equity": self._equity,
                "peak_equity": self._peak, "drawdown": self._drawdown(), "day_start_equity": self._day_ref,
                "daily_loss": self._daily_loss()}

    @property
    def halted(self) -> bool:
        return self._paused or self._killed or any(b["tripped"] for b in self._breakers.values())

    def _drawdown(self) -> float | None:
        if self._peak is None or self._equity is None or self._peak <= 0:
            return None
        return max(0.0, 1.0 - self._equity / self._peak)

    def _daily_loss(self) -> float | None:
        if self._day_ref is None or self._equity is None or self._day_ref <= 0:
            return None
        return max(0.0, 1.0 - self._equity / self._day_ref)

    def _event(self, cycle: int | None, ts: Any, kind: str, detail: str, action: str) -> None:
        t = _now(ts)
        self.events.append({"cycle": cycle, "ts": t, "kind": kind, "detail": detail, "action": action})
        # the routine per-cycle summaries and roundings at DEBUG; rejections, breakers and switches at INFO
        log.log(logging.DEBUG if kind in _ROUTINE_EVENTS else logging.INFO, "risk %s: %s -> %s", kind, detail, action)
        if self.journal is not None:
            self.journal.record_risk_event(self.run_id, cycle, t, kind, detail, action)

    def _sync(self) -> None:
        """Adopt pause/kill flags set in the journal by another process; restore the equity history once."""
        if self.journal is None:
            return
        rs = self.journal.run_state(self.run_id)
        if rs["updated_utc"] != self._flags_seen:
            self._flags_seen = rs["updated_utc"]
            if not rs["paused"] and not rs["killed"] and rs["reason"] == RESUMED:
                if self.halted:
                    self._resume_here(None, "resumed through the journal (request_resume)")
            elif (rs["paused"], rs["killed"]) != (self._paused, self._killed):
                self._paused, self._killed, self._flag_reason = rs["paused"], rs["killed"], rs["reason"]
                self._event(None, None, "run_state", f"adopted from the journal: paused={rs['paused']}, "
                            f"killed={rs['killed']} ({rs['reason']})",
                            "halt new orders" if self.halted else "resume new orders")
        if not self._restored:
            self._restored = True
            eq = self.journal.equity_frame(self.run_id)
            if len(eq):
                ts, vals = list(eq["ts_utc"]), [float(v) for v in eq["equity_quote"]]
                self._peak, self._equity, self._last_ts = max(vals), vals[-1], ts[-1]
                self._day = ts[-1].floor("D")
                before = [v for t, v in zip(ts, vals) if t <= self._day]
                self._day_ref = before[-1] if before else next(v for t, v in zip(ts, vals) if t >= self._day)

    # ------------------------------------------------------------------------------------------ limits
    def update(self, equity_quote: float, ts: Any, model_quality: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Mark equity at ``ts`` (UTC, not before the previous update) and re-evaluate the breakers; returns
        :meth:`state`. ``model_quality``: ``{accuracy, ic, n_bars}`` (:meth:`ModelQualityTracker.quality`)."""
        self._sync()
        t = to_utc(ts, "risk update time", naive="error")
        eq = float(equity_quote)
        if not math.isfinite(eq):
            raise RiskError(f"equity at {t} must be finite, got {equity_quote}")
        if self._last_ts is not None and t < self._last_ts:
            raise RiskError(f"risk update at {t} is before the previous one at {self._last_ts}")
        day = t.floor("D")
        if self._day != day:
            self._day_ref = eq if (t == day or self._equity is None) else self._equity
            self._day = day
        self._equity, self._last_ts = eq, t
        self._peak = eq if self._peak is None else max(self._peak, eq)
        s = self.settings
        dd, loss = self._drawdown(), self._daily_loss()
        if dd is not None and dd >= s.max_drawdown - TOL:
            self._trip("drawdown", t, dd, s.max_drawdown,
                       f"drawdown {dd:.2%} from the peak {self._peak:.8g} (equity {eq:.8g}) reached max_drawdown "
                       f"{s.max_drawdown:.2%}")
        if loss is not None and loss >= s.daily_loss_limit - TOL:
            self._trip("daily_loss", t, loss, s.daily_loss_limit,
                       f"loss {loss:.2%} since the UTC day began ({self._day_ref:.8g} -> {eq:.8g}) reached "
                       f"daily_loss_limit {s.daily_loss_limit:.2%}")
        elif self._breakers["daily_loss"]["tripped"] and self._breakers["daily_loss"]["day"] != day:
            self._clear("daily_loss", t, f"a new UTC day began ({day.date()}): daily loss {loss or 0.0:.2%}")
        if model_quality is not None:
            self._check_quality(model_quality, t)
        return self.state()

    def _check_quality(self, q: Mapping[str, Any], t: pd.Timestamp) -> None:
        s = self.settings
        n = int(q.get("n_bars", s.model_quality_window_bars))
        for name, key, floor in (("model_accuracy", "accuracy", s.min_model_accuracy),
                                 ("model_ic", "ic", s.min_model_ic)):
            value = q.get(key)
            if floor is None or value is None or math.isnan(float(value)) or n < s.model_quality_window_bars:
                continue
            value = float(value)
            if value < floor - TOL:
                self._trip(name, t, value, floor, f"model {key} {value:.4f} over the last {n} bars is below the "
                                                  f"floor min_model_{key} {floor:.4f}")
            elif self._breakers[name]["tripped"]:
                self._clear(name, t, f"model {key} {value:.4f} over the last {n} bars is back at or above "
                                     f"{floor:.4f}")

    def _trip(self, name: str, t: pd.Timestamp, value: float, limit: float, why: str) -> None:
        b = self._breakers[name]
        if b["tripped"]:
            b.update(value=value, day=t.floor("D"))  # tripped again today: a daily-loss halt lasts to day end
            return
        self._breakers[name] = {"tripped": True, "value": value, "limit": limit, "since": t, "why": why,
                                "day": t.floor("D")}
        self._event(None, t, "breaker_tripped", f"{name}: {why}", "halt new orders")

    def _clear(self, name: str, t: pd.Timestamp, why: str) -> None:
        self._breakers[name] = {"tripped": False}
        self._event(None, t, "breaker_cleared", f"{name}: {why}", "resume new orders")

    # ------------------------------------------------------------------------------------------ controls
    def pause(self, reason: str, ts: Any = None) -> None:
        """Halt new orders until :meth:`resume` (exits still pass)."""
        self._paused, self._flag_reason = True, reason
        if self.journal is not None:
            self._flags_seen = self.journal.set_run_state(self.run_id, paused=True, reason=reason)["updated_utc"]
        self._event(None, ts, "pause", reason, "halt new orders")

    def resume(self, ts: Any = None) -> None:
        """Lift a pause, the kill switch and every breaker; the drawdown peak and the day's reference equity
        restart from the latest equity (a model-quality breaker trips again at the next update if still low)."""
        if self.journal is not None:
            self._flags_seen = self.journal.set_run_state(self.run_id, paused=False, killed=False,
                                                          reason=RESUMED)["updated_utc"]
        self._resume_here(ts, "resumed")

    def _resume_here(self, ts: Any, how: str) -> None:
        was = self.state()["reasons"]
        self._paused = self._killed = False
        self._flag_reason = ""
        self._breakers = {b: {"tripped": False} for b in BREAKERS}
        if self._equity is not None:
            self._peak = self._day_ref = self._equity
        self._event(None, ts, "resume", f"{how}; was halted by: {'; '.join(was) or 'nothing'}", "resume new orders")

    def kill(self, flatten: bool = False, *, positions: Mapping[str, float] | None = None, cycle: int | None = None,
             ts: Any = None, reason: str = "kill switch") -> list[OrderRequest]:
        """Halt everything: the caller cancels every open order (``engine.cancel_all()``). With ``flatten``, the
        orders that close every position (``positions``, signed base units) are returned, with reason ``kill``
        and leg :data:`FLATTEN_LEG` of ``cycle``; they pass :meth:`check_orders` while halted."""
        self._killed, self._flag_reason = True, reason
        if self.journal is not None:
            self._flags_seen = self.journal.set_run_state(self.run_id, killed=True, reason=reason)["updated_utc"]
        orders: list[OrderRequest] = []
        if flatten:
            if positions is None or cycle is None or ts is None or not self.run_id:
                raise RiskError("kill(flatten=True) needs positions, cycle, ts and the manager's run_id")
            t = to_utc(ts, "kill time", naive="error")
            for sym in sorted(positions):
                q = float(positions[sym])
                if q != 0:
                    orders.append(OrderRequest(client_order_id(self.run_id, cycle, sym, FLATTEN_LEG), self.run_id,
                                               int(cycle), sym, Side.SELL if q > 0 else Side.BUY, abs(q), t,
                                               leg=FLATTEN_LEG, reason="kill"))
        what = "cancel open orders" + (f"; flatten {len(orders)} position(s)" if flatten else "")
        self._event(cycle, ts, "kill", reason, what)
        return orders

    # ------------------------------------------------------------------------------------------ exits
    def exit_orders(self, positions: Mapping[str, float], entry_prices: Mapping[str, float],
                    prices: Mapping[str, float], run_id: str | None, cycle: int, ts: Any) -> list[OrderRequest]:
        """Stop-loss and take-profit exits: a long whose last price is ``stop_loss`` (fraction) or more below its
        entry price, or ``take_profit`` or more above it, is sold whole (shorts mirrored); leg :data:`EXIT_LEG`."""
        s = self.settings
        run = run_id or self.run_id
        if s.stop_loss is None and s.take_profit is None:
            return []
        if not run:
            raise RiskError("exit orders need a run_id")
        held = {sym: float(q) for sym, q in positions.items() if float(q) != 0}
        missing = sorted(sym for sym in held if not (_ok(prices.get(sym)) and _ok(entry_prices.get(sym))))
        if missing:
            raise RiskError(f"stop-loss/take-profit need the last and entry price of every position; missing for "
                            f"{', '.join(missing)}")
        t = to_utc(ts, "exit time", naive="error")
        out = []
        for sym in sorted(held):
            q, p, e = held[sym], float(prices[sym]), float(entry_prices[sym])
            move = p / e - 1.0 if q > 0 else 1.0 - p / e  # the position's return since entry
            kind = None
            if s.stop_loss is not None and move <= -s.stop_loss + TOL:
                kind, limit = "stop_loss", -s.stop_loss
            elif s.take_profit is not None and move >= s.take_profit - TOL:
                kind, limit = "take_profit", s.take_profit
            if kind is None:
                continue
            side = Side.SELL if q > 0 else Side.BUY
            out.append(OrderRequest(client_order_id(run, cycle, sym, EXIT_LEG), run, int(cycle), sym, side, abs(q), t,
                                    leg=EXIT_LEG, reason=kind))
            self._event(cycle, t, kind, f"{sym}: {'long' if q > 0 else 'short'} {abs(q):.8g} entered at {e:.8g}, "
                                        f"last {p:.8g}: return {move:+.2%} vs {kind} {limit:+.2%}",
                        f"exit: {side.value} {abs(q):.8g}")
        return out

    # ------------------------------------------------------------------------------------------ pre-trade
    def check_orders(self, orders: Sequence[OrderRequest], account: AccountSnapshot, prices: Mapping[str, float],
                     rules: Mapping[str, MarketRules], cycle: int) -> RiskDecision:
        """Pre-trade checks of one batch of orders against the account after the orders accepted before it.

        Exits first, then sells, then buys. Per order: halted (only position-reducing exits pass), max orders
        per cycle (counted over every call for ``cycle``), a last price and market rules, qty rounded down to
        the qty step and at least the exchange's minimum qty, notional at least the exchange's minimum and at
        most ``max_order_notional_quote``, a limit price within ``price_band_bps`` of the last price (rounded
        to the tick: down for buys, up for sells), position weight and gross exposure after the order within
        limits when it adds exposure, and on spot (``allow_short`` false) no sell beyond the position and no buy
        beyond the cash (less ``cash_buffer`` of equity, plus the proceeds of the sells accepted before it).
        """
        self._sync()
        s = self.settings
        if any(c < cycle for c in self._cycle_counts):  # counts of earlier cycles are never read again
            self._cycle_counts = {c: n for c, n in self._cycle_counts.items() if c >= cycle}
        ts = account.ts_utc if account.ts_utc is not None else max((o.decided_utc for o in orders), default=None)
        try:
            equity = account.equity_quote(dict(prices))
        except KeyError as exc:
            raise RiskError(f"cannot check orders of cycle {cycle}: {exc.args[0]}") from None
        pos = {k: float(v) for k, v in account.positions.items()}
        px = {k: float(v) for k, v in prices.items() if _ok(v)}
        gross = sum(abs(q) * px[k] for k, q in pos.items() if q)
        cash = account.cash_quote - s.cash_buffer * max(equity, 0.0)
        halted = self.state()["reasons"]
        dec = RiskDecision()
        rank = {True: 0, False: 1}
        for o in sorted(orders, key=lambda o: (rank[o.reason in EXIT_REASONS], o.side is Side.BUY)):
            why, checked, note = self._check_one(o, pos, px, rules, equity, gross, cash, halted, cycle)
            if why is not None:
                dec.rejected.append((o, why))
                self._event(cycle, ts, "order_rejected", why, f"reject {o.client_order_id}")
                continue
            assert checked is not None
            if note:
                dec.adjustments.append(note)
                self._event(cycle, ts, "order_rounded", note, f"adjust {o.client_order_id}")
            p, q = px[o.symbol], checked.qty
            cur, new = pos.get(o.symbol, 0.0), pos.get(o.symbol, 0.0) + checked.side.sign * q
            gross += (abs(new) - abs(cur)) * p
            pos[o.symbol] = new
            exec_price = checked.limit_price if checked.order_type == "limit" else p
            cash += -q * exec_price if checked.side is Side.BUY else q * exec_price
            self._cycle_counts[cycle] = self._cycle_counts.get(cycle, 0) + 1
            dec.accepted.append(checked)
        if orders:
            self._event(cycle, ts, "orders_checked", f"cycle {cycle}: {len(dec.accepted)} accepted, "
                        f"{len(dec.rejected)} rejected of {len(orders)}", "submit the accepted")
        return dec

    def _check_one(self, o: OrderRequest, pos: dict[str, float], px: dict[str, float],
                   rules: Mapping[str, MarketRules], equity: float, gross: float, cash: float, halted: list[str],
                   cycle: int) -> tuple[str | None, OrderRequest | None, str]:
        s, sym = self.settings, o.symbol
        cur = pos.get(sym, 0.0)
        reduces = cur != 0 and o.side.sign * cur < 0 and o.qty <= abs(cur) * (1 + TOL)
        if halted and not (o.reason in EXIT_REASONS and reduces):
            return f"{sym}: trading halted ({'; '.join(halted)}); only exits that reduce a position pass", None, ""
        if self._cycle_counts.get(cycle, 0) >= s.max_orders_per_cycle:
            return f"{sym}: max_orders_per_cycle {s.max_orders_per_cycle} reached in cycle {cycle}", None, ""
        p = px.get(sym)
        if p is None:
            return f"{sym}: no last price to check the order against", None, ""
        r = rules.get(sym)
        if r is None:
            return f"{sym}: no market rules (minimum qty and notional, qty step) for the symbol", None, ""
        q = floor_to_step(o.qty, r.qty_step)
        note = f"{sym}: qty {o.qty:.10g} rounded down to {q:.10g} (qty_step {r.qty_step:g})" if q != o.qty else ""
        if q <= 0 or q < r.min_qty:
            return (f"{sym}: qty {q:.10g} (from {o.qty:.10g}, qty_step {r.qty_step or 0:g}) is below the exchange "
                    f"minimum qty {r.min_qty:.10g}"), None, ""
        lp = o.limit_price
        if o.order_type == "limit" and lp is not None:
            lp = floor_to_step(lp, r.price_tick) if o.side is Side.BUY else ceil_to_step(lp, r.price_tick)
            band = abs(lp / p - 1.0) * 1e4
            if band > s.price_band_bps + 1e-9:
                return (f"{sym}: limit price {lp:.10g} is {band:.1f} bps from the last price {p:.10g} "
                        f"(price_band_bps {s.price_band_bps:g})"), None, ""
        notional = q * (lp if o.order_type == "limit" and lp is not None else p)
        if notional < r.min_notional_quote:
            return (f"{sym}: order notional {notional:.10g} is below the exchange minimum notional "
                    f"{r.min_notional_quote:.10g}"), None, ""
        if notional > s.max_order_notional_quote:
            return (f"{sym}: order notional {notional:.10g} exceeds max_order_notional_quote "
                    f"{s.max_order_notional_quote:.10g}"), None, ""
        new = cur + o.side.sign * q
        if not s.allow_short and new < -TOL * max(1.0, abs(cur)):
            return f"{sym}: sell {q:.10g} exceeds the position {cur:.10g} (spot: no short selling)", None, ""
        if abs(new) > abs(cur) + TOL:  # adds exposure
            if equity <= 0:
                return f"{sym}: equity {equity:.10g} is not positive; no order may add exposure", None, ""
            w = abs(new) * p / equity
            if w > s.max_position_weight + TOL:
                return (f"{sym}: position weight after the order {w:.6f} exceeds max_position_weight "
                        f"{s.max_position_weight:g}"), None, ""
            g = (gross + (abs(new) - abs(cur)) * p) / equity
            if g > s.max_gross_leverage + TOL:
                return (f"{sym}: gross exposure after the order {g:.6f} exceeds max_gross_leverage "
                        f"{s.max_gross_leverage:g}"), None, ""
        if not s.allow_short and o.side is Side.BUY and notional > cash + 1e-9:
            return (f"{sym}: buy of {notional:.10g} exceeds the cash available {cash:.10g} (cash less "
                    f"cash_buffer {s.cash_buffer:g} of equity, plus accepted sells)"), None, ""
        checked = replace(o, qty=q, limit_price=lp) if (q != o.qty or lp != o.limit_price) else o
        if lp != o.limit_price:
            note = (note + "; " if note else f"{sym}: ") + f"limit {o.limit_price:.10g} rounded to {lp:.10g}"
        return None, checked, note


# ---------------------------------------------------------------------------------------------- other processes
def request_pause(journal: Any, run_id: str, reason: str, ts: Any = None) -> dict[str, Any]:
    """Pause a run from another process (``graphwiz trading pause``): its manager halts at its next check."""
    state = journal.set_run_state(run_id, paused=True, reason=reason)
    journal.record_risk_event(run_id, None, _now(ts), "pause", reason, "halt new orders (requested)")
    return state


def request_resume(journal: Any, run_id: str, ts: Any = None) -> dict[str, Any]:
    """Resume a run from another process: its manager lifts the pause, the kill switch and its breakers."""
    state = journal.set_run_state(run_id, paused=False, killed=False, reason=RESUMED)
    journal.record_risk_event(run_id, None, _now(ts), "resume", "resume requested", "resume new orders (requested)")
    return state


def request_kill(journal: Any, run_id: str, reason: str, ts: Any = None) -> dict[str, Any]:
    """Kill a run from another process: its manager halts at its next check; the strategy then cancels its open
    orders (and flattens when configured to)."""
    state = journal.set_run_state(run_id, killed=True, reason=reason)
    journal.record_risk_event(run_id, None, _now(ts), "kill", reason, "halt; cancel open orders (requested)")
    return state


def _now(ts: Any) -> pd.Timestamp:
    return to_utc(ts, "time", naive="error") if ts is not None else pd.Timestamp.now(tz="UTC").floor("us")


def _ok(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v)) and float(v) > 0
    except (TypeError, ValueError):
        return False
