"""``ProductionTradingService``: the strategy loop that runs for weeks, with its HTTP server in the same event loop.

- **Aligned to bar closes.** Each cycle starts ``service.settle_delay_s`` after the next bar close, computed from
  the clock every time (``floor(now / bar) * bar + bar``), so waits never accumulate drift. A paper or live engine
  that has not yet published the bar (``no_new_bar``) is asked again every ``settle_delay_s`` (at least 1 s) until
  the following close. In replay mode the clock is virtual: ``speed`` N runs it N times faster than real time,
  ``speed=None`` jumps straight to each close (as fast as possible).
- **A deadline per cycle** (``cycle_deadline_s``, ``asyncio.wait_for``).
- **Errors never crash the loop.** An exception (or a missed deadline) is alerted, the cycle that was running is
  marked ``failed`` in the journal and the next cycle takes the next number (what a restart does), and the loop
  waits ``backoff_initial_s * 2**(k-1)`` (at most ``backoff_max_s``) after the k-th failure in a row before it
  tries again at once (the bars missed meanwhile are delivered by the engine).
- **SIGTERM / SIGINT** stop it gracefully: the running cycle finishes (up to ``shutdown_timeout_s``), the strategy
  mirrors what is left and closes its engine, the journal is closed (every state is already committed), the graph
  store is closed and its embedded server stopped, the HTTP server stops, and :meth:`run` returns 0.
- **Health** (:meth:`ProductionTradingService.health`): phase, cycle, data age, consecutive failures, next cycle.

The HTTP app is the API of :mod:`graphwiz_trader.service.api` (``create_app(state, settings, registry)``) when it
is installed, else a minimal app serving ``/health`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.core.forks import reset_signals_in_forked_children
from graphwiz_trader.core.secrets import mask_secrets
from graphwiz_trader.errors import GraphwizError
from graphwiz_trader.service.alerts import AlertManager
from graphwiz_trader.service.metrics import ServiceMetrics
from graphwiz_trader.service.state import ServiceState

log = logging.getLogger(__name__)

__all__ = ["CycleDeadlineError", "ProductionTradingService", "ReplayClock", "WallClock", "next_close"]


class CycleDeadlineError(GraphwizError):
    """A cycle ran longer than ``service.cycle_deadline_s``."""


def next_close(now: pd.Timestamp, bar: pd.Timedelta) -> pd.Timestamp:
    """The first bar close strictly after ``now`` (bars aligned to the Unix epoch, UTC)."""
    epoch = pd.Timestamp(0, tz="UTC")
    k = (now - epoch) // bar
    return epoch + (k + 1) * bar


async def _wait_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop`` is set; True when stopped."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
        return True
    except TimeoutError:
        return False


class WallClock:
    """UTC wall time; :meth:`sleep_until` re-reads the clock after every wake-up (no drift)."""

    speed: float | None = 1.0

    def now(self) -> pd.Timestamp:
        return pd.Timestamp.now(tz="UTC")

    async def sleep_until(self, t: pd.Timestamp, stop: asyncio.Event) -> bool:
        """Sleep until ``t`` (UTC); False when ``stop`` was set first."""
        while True:
            remaining = (t - self.now()).total_seconds()
            if remaining <= 0:
                return not stop.is_set()
            if await _wait_stop(stop, min(remaining, 60.0)):
                return False


class ReplayClock:
    """Virtual UTC time for a replay: ``speed`` times real time from ``start``, or (``speed=None``) time that
    jumps to whatever :meth:`sleep_until` asks for."""

    def __init__(self, start: pd.Timestamp, speed: float | None = None) -> None:
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise GraphwizError(f"replay speed must be a positive number, got {speed}")
        self.speed = speed
        self._virtual = pd.Timestamp(start)
        self._mono = time.monotonic()

    def now(self) -> pd.Timestamp:
        if self.speed is None:
            return self._virtual
        return self._virtual + pd.Timedelta(seconds=(time.monotonic() - self._mono) * self.speed)

    def anchor(self, t: pd.Timestamp) -> None:
        """Restart virtual time at ``t`` (the replay engine's clock after the warm-up)."""
        self._virtual, self._mono = pd.Timestamp(t), time.monotonic()

    async def sleep_until(self, t: pd.Timestamp, stop: asyncio.Event) -> bool:
        if self.speed is None:
            await asyncio.sleep(0)                       # let the HTTP server and signals run between cycles
            if stop.is_set():
                return False
            if t > self._virtual:
                self.anchor(t)
            return True
        while True:
            remaining = (t - self.now()).total_seconds() / self.speed
            if remaining <= 0:
                return not stop.is_set()
            if await _wait_stop(stop, min(remaining, 60.0)):
                return False


class _EmbeddedServer:
    """uvicorn serving ``app`` as a task of the service's event loop; the service owns the signals."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:   # the service handles SIGTERM/SIGINT itself
                yield

        self.server = _Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                             lifespan="on"))
        self.task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(), name="graphwiz-http")
        while not self.server.started:
            if self.task.done():
                exc = self.task.exception() if not self.task.cancelled() else None
                raise GraphwizError(f"the HTTP server did not start on {self.server.config.host}:"
                                    f"{self.server.config.port}: {exc!r} (is the port in use?)")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self.task, timeout=10)


def _fallback_app(service: ProductionTradingService) -> Any:
    """A minimal ASGI app: ``/health`` (JSON) and ``/metrics`` (Prometheus text), 404 otherwise."""
    import json

    from prometheus_client import CONTENT_TYPE_LATEST

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope.get("path", "")
        if path == "/health":
            h = service.health()
            body, ctype, status = json.dumps(h, default=str).encode(), b"application/json", \
                200 if h["status"] in ("ok", "starting") else 503
        elif path == "/metrics":
            body, ctype, status = service.metrics.exposition(), CONTENT_TYPE_LATEST.encode(), 200
        else:
            body, ctype, status = b'{"detail": "not found"}', b"application/json", 404
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]})
        await send({"type": "http.response.body", "body": body})

    return app


class ProductionTradingService:
    """The always-on strategy loop (see the module docstring).

    Parameters
    ----------
    config_path : ``config/trading_config.yaml`` (ignored when ``settings`` is given).
    replay_dir : replay the bars of this folder (``replay_format``) instead of trading on an exchange.
    speed : replay clock speed (N times real time; None: as fast as possible). Ignored without a replay.
    cycles : stop after this many finished cycles (None: run until stopped or the replay ends).
    settings : validated settings (instead of reading ``config_path``).
    run_folder : where models and (in replay mode) the journal go (default: a new ``runs/serve/<stamp>``).
    journal, run_id : override ``service.journal`` / ``service.run_id``.
    engine : trade on this engine (tests, benchmarks); treated like a replay (virtual clock from its ``now()``).
    host, port : override ``service.host`` / ``service.port``; ``serve_http=False`` runs the loop alone.
    """

    def __init__(self, config_path: str | Path | None = "config/trading_config.yaml", *,
                 replay_dir: str | Path | None = None, replay_format: str = "freqtrade", speed: float | None = None,
                 cycles: int | None = None, settings: TradingSettings | None = None, run_folder: Path | None = None,
                 journal: str | None = None, run_id: str | None = None, engine: Any = None,
                 host: str | None = None, port: int | None = None, serve_http: bool = True,
                 graph_store: bool | None = None) -> None:
        from graphwiz_trader.strategies.factory import resolve_settings
        from graphwiz_trader.trading.risk import BREAKERS

        self.settings = settings if settings is not None else resolve_settings(None, config_path)
        self.cfg = self.settings.service
        if cycles is not None and cycles < 1:
            raise GraphwizError(f"cycles must be >= 1, got {cycles}")
        self.replay_dir, self.replay_format, self.speed, self.max_cycles = replay_dir, replay_format, speed, cycles
        self.run_folder = run_folder
        self._journal, self._run_id, self._engine, self._graph_store = journal, run_id, engine, graph_store
        self.host = host or self.cfg.host
        self.port = int(port if port is not None else self.cfg.port)
        self.serve_http = serve_http
        self.replay = replay_dir is not None or engine is not None
        self.clock: Any = ReplayClock(pd.Timestamp(0, tz="UTC"), speed) if self.replay else WallClock()
        self.metrics = ServiceMetrics(breakers=tuple(BREAKERS))
        self.alerts = AlertManager(self.cfg.alerts, self.cfg.telegram,
                                   quality_window_bars=self.settings.risk.model_quality_window_bars,
                                   run_id=run_id or self.cfg.run_id)
        self.session: Any = None
        self.state: ServiceState | None = None
        self.http: _EmbeddedServer | None = None
        self.phase = "created"
        self.failures_in_row = 0
        self.cycles_done = 0
        self.next_cycle_utc: pd.Timestamp | None = None
        self.stop_reason: str | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    # ------------------------------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        """``{status, phase, run_id, cycle, as_of, data_age_s, failures_in_row, next_cycle_utc, cycles_done,
        last_error}``; ``status`` is ``starting``, ``ok``, ``degraded`` (failing cycles or data older than
        ``alerts.stale_data_s``) or ``stopping``."""
        snap = self.state.snapshot() if self.state is not None else {}
        age = snap.get("data_age_s")
        if self.phase in ("created", "starting"):
            status = "starting"
        elif self.phase in ("stopping", "stopped"):
            status = "stopping"
        elif self.failures_in_row or (age is not None and age > self.cfg.alerts.stale_data_s):
            status = "degraded"
        else:
            status = "ok"
        return {"status": status, "phase": self.phase, "run_id": snap.get("run_id", self._run_id or self.cfg.run_id),
                "cycle": snap.get("cycle"), "as_of": snap.get("as_of"), "data_age_s": age,
                "failures_in_row": self.failures_in_row, "cycles_done": self.cycles_done,
                "next_cycle_utc": self.next_cycle_utc.isoformat() if self.next_cycle_utc is not None else None,
                "last_error": snap.get("last_error")}

    def request_stop(self, reason: str) -> None:
        """Stop after the running cycle (what SIGTERM and SIGINT do)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            log.info("stop requested (%s): finishing the running cycle, then shutting down", reason)
        if self._stop is not None:
            self._stop.set()

    # ------------------------------------------------------------------------------------------ run
    async def run(self) -> int:
        """Open, serve, loop until stopped (or the replay ends, or ``cycles`` ran), shut down; returns 0."""
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        reset_signals_in_forked_children()  # forked workers (Qlib's) must not stop this loop with their SIGTERM
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        if self.stop_reason is not None:
            self._stop.set()
        try:
            await self._open()
            if not self._stop.is_set():
                await self._loop()
        finally:
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return 0

    async def _open(self) -> None:
        from graphwiz_trader.core.runs import RunFolder
        from graphwiz_trader.service.build import open_session

        self.phase = "starting"
        if self.run_folder is None:
            self.run_folder = RunFolder("serve").path
        self.session = await asyncio.to_thread(
            open_session, self.settings, run_folder=Path(self.run_folder), replay_dir=self.replay_dir,
            replay_format=self.replay_format, engine=self._engine, journal=self._journal, run_id=self._run_id,
            graph_store=self._graph_store)
        strategy = self.session.strategy
        self.alerts.run_id = strategy.run_id
        self.state = ServiceState(strategy, clock=self.clock.now)
        self.state.health_provider = self.health
        self.metrics.bind_data_age(self.state.data_age_s)
        if self.serve_http:
            self.http = _EmbeddedServer(self._app(), self.host, self.port)
            await self.http.start()
            log.info("serving http://%s:%d (/health, /metrics)", self.host, self.port)
        self._start_side_tasks()
        info = await strategy.start()
        self._setup_retraining(strategy)
        if isinstance(self.clock, ReplayClock):
            self.clock.anchor(strategy.engine.now())
        log.info("service %s started: %s; model %s; %s", strategy.run_id, self.session.label,
                 info.get("model", {}).get("version"), "replay" if self.replay else "wall clock")
        self.phase = "running"

    def _setup_retraining(self, strategy: Any) -> None:
        """With ``service.retrain.enabled``, champion/challenger rounds replace the strategy's own retraining."""
        self.retrainer: Any = None
        if not self.cfg.retrain.enabled:
            return
        from graphwiz_trader.service.retrain import ChampionChallenger

        if getattr(strategy.scores, "retrain_every", None) is not None:
            log.info("service.retrain is enabled: strategy.retrain_interval_hours is replaced by champion/challenger")
            strategy.scores.retrain_every = None
        self.retrainer = ChampionChallenger(strategy, self.cfg.retrain, Path(self.run_folder or ".") / "models")

    async def _maybe_retrain(self, as_of: Any) -> None:
        """A champion/challenger round when due (between cycles); a failure is alerted, never raised."""
        r = getattr(self, "retrainer", None)
        if r is None or as_of is None or not r.due(pd.Timestamp(as_of)):
            return
        try:
            d = await r.run(pd.Timestamp(as_of), self.state.cycle_lock if self.state is not None else None)
        except Exception as exc:  # noqa: BLE001 - a failed round keeps the champion and is alerted
            log.error("retraining failed: %s", mask_secrets(f"{type(exc).__name__}: {exc}"))
            await self.alerts.send(self.alerts.exception(exc, "retraining"))
            return
        if d.deployed:
            from graphwiz_trader.service.alerts import Alert

            await self.alerts.send(Alert(f"model_deployed:{d.challenger}", "warning", "new model deployed",
                                         d.reason))

    def _app(self) -> Any:
        try:
            from graphwiz_trader.service.api import create_app
        except ImportError:
            log.info("graphwiz_trader.service.api is not installed: serving /health and /metrics only")
            return _fallback_app(self)
        return create_app(self.state, self.cfg, self.metrics.registry)

    def _start_side_tasks(self) -> None:
        """Telegram commands (when configured) beside the loop."""
        tg = self.cfg.telegram
        if tg.commands and tg.bot_token is not None and tg.chat_ids and self.state is not None:
            from graphwiz_trader.service.telegram import TelegramCommands

            bot = TelegramCommands(tg, self.state)
            self._tasks.append(asyncio.create_task(bot.run(self._stop), name="graphwiz-telegram"))

    async def _loop(self) -> None:
        assert self._stop is not None and self.session is not None
        strategy = self.session.strategy
        catch_up = False
        while not self._stop.is_set():
            if not catch_up:
                now = self.clock.now()
                close = next_close(now, strategy.bar)
                self.next_cycle_utc = close + pd.Timedelta(seconds=self.cfg.settle_delay_s)
                if not await self.clock.sleep_until(self.next_cycle_utc, self._stop):
                    break
            catch_up = False
            result = await self._attempt(strategy)
            if result is None:                                        # failed: back off, then try at once
                wait = min(self.cfg.backoff_initial_s * 2 ** (self.failures_in_row - 1), self.cfg.backoff_max_s)
                log.warning("cycle failed %d time(s) in a row; next attempt in %.3g s", self.failures_in_row, wait)
                if self.replay and self.speed is None:
                    wait = wait / 1000.0                              # the virtual clock has no real waits
                if await _wait_stop(self._stop, wait):
                    break
                catch_up = True
                continue
            status = result.get("status")
            if status == "done":
                log.info("the replay has no more bars: stopping")
                self.stop_reason = self.stop_reason or "replay finished"
                break
            if status == "no_new_bar":
                catch_up = await self._poll_again(strategy)
                continue
            await self._after_cycle(result)
            if self.max_cycles is not None and self.cycles_done >= self.max_cycles:
                self.stop_reason = self.stop_reason or f"{self.cycles_done} cycles done"
                break

    async def _poll_again(self, strategy: Any) -> bool:
        """The bar is not published yet: wait a little and ask again (True), unless the next close came (False)."""
        assert self._stop is not None
        wait = max(self.cfg.settle_delay_s, 1.0)
        nxt = next_close(self.clock.now(), strategy.bar)
        if (nxt - self.clock.now()).total_seconds() <= wait:
            return False
        return not await _wait_stop(self._stop, wait / (self.speed or 1.0))

    async def _attempt(self, strategy: Any) -> dict[str, Any] | None:
        """One cycle under the deadline and the cycle lock; None when it failed (alerted, journal settled)."""
        assert self.state is not None
        async with self.state.cycle_lock:
            try:
                result = await asyncio.wait_for(strategy.run_cycle(), timeout=self.cfg.cycle_deadline_s)
            except TimeoutError:
                exc: BaseException = CycleDeadlineError(
                    f"cycle {strategy.cycle} ran longer than service.cycle_deadline_s {self.cfg.cycle_deadline_s:g} s")
            except asyncio.CancelledError:
                self._settle_failed_cycle(strategy, "cancelled at shutdown")
                raise
            except Exception as exc_:  # noqa: BLE001 - any failure is alerted and backed off, never a crash
                exc = exc_
            else:
                self.failures_in_row = 0
                return result
            self._settle_failed_cycle(strategy, mask_secrets(f"{type(exc).__name__}: {exc}"))
        await self._failed(exc)
        return None

    def _settle_failed_cycle(self, strategy: Any, why: str) -> None:
        """A cycle left ``running`` is marked ``failed``; a begun (failed) cycle number is not reused."""
        j, rid, c = strategy.journal, strategy.run_id, strategy.cycle
        if j is None:
            return
        try:
            status = j.cycle_status(rid, c)
            if status == "running":
                j.finish_cycle(rid, c, "failed", {"error": why})
            if status in ("running", "failed"):
                strategy.cycle = c + 1
        except GraphwizError as exc:
            log.error("could not settle cycle %d in the journal: %s", c, exc)

    async def _failed(self, exc: BaseException) -> None:
        self.failures_in_row += 1
        self.metrics.observe_error()
        msg = mask_secrets(f"{type(exc).__name__}: {exc}")
        log.error("cycle failed: %s", msg, exc_info=not isinstance(exc, GraphwizError))
        if self.state is not None:
            self.state.on_error(msg)
        await self.alerts.send(self.alerts.exception(exc, "cycle"))

    async def _after_cycle(self, result: dict[str, Any]) -> None:
        assert self.state is not None
        self.cycles_done += 1
        snap = self.state.on_cycle(result)
        self.metrics.observe_cycle(result, snap)
        for alert in self.alerts.check_cycle(result, snap):
            await self.alerts.send(alert)
        await self._maybe_retrain(result.get("as_of"))

    # ------------------------------------------------------------------------------------------ shutdown
    async def _shutdown(self) -> None:
        self.phase = "stopping"
        if self._stop is not None:
            self._stop.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        s = self.session
        if s is not None:
            if self.state is not None:
                try:                                                  # a control (kill) may still hold it
                    await asyncio.wait_for(self.state.cycle_lock.acquire(), timeout=self.cfg.shutdown_timeout_s)
                except TimeoutError:
                    log.error("the running cycle did not finish within %.0f s", self.cfg.shutdown_timeout_s)
            try:
                await s.strategy.close()
            except Exception as exc:  # noqa: BLE001 - the journal and graph store must still be released
                log.error("closing the strategy failed: %s", mask_secrets(str(exc)))
            await asyncio.to_thread(s.release)
        await self.alerts.close()
        if self.http is not None:
            await self.http.stop()
        self.phase = "stopped"
        log.info("service stopped (%s) after %d cycles", self.stop_reason or "end", self.cycles_done)
