"""The service's HTTP API (FastAPI), its dashboard and graph explorer pages.

``create_app(state, settings, registry)`` returns the app; the service runs it with uvicorn on 127.0.0.1.

Access:

- ``GET /health``: no key (status, cycle, as_of, data age only).
- Every ``/api/v1/*`` route, ``/openapi.json`` and ``/metrics`` need a key (``X-API-Key`` or
  ``Authorization: Bearer``): scope ``read`` for reads, ``trade`` for ``pause``/``resume``/``kill``.
  ``/metrics`` is open without a key to scrapes from 127.0.0.1/::1 only when ``api.metrics_open_to_localhost``
  is true; otherwise Prometheus sends a read key (``authorization: {type: Bearer, credentials_file: ...}``
  in its scrape config, see ``config/prometheus.yml``).
- The pages ``/`` (dashboard), ``/explorer``, ``/docs`` and their static files (``/static/...``, plotly.js from
  the installed plotly package) hold no data and load without a key; they ask for one (kept in the tab's
  sessionStorage) and send it as ``X-API-Key`` on every data request. Nothing is loaded from the internet.

Every request with a key is rate-limited per key (token bucket, :mod:`.ratelimit`): 429 with ``Retry-After``.
Requests without a valid key are rate-limited per client address, so guessing keys is slow too.
Errors are JSON ``{"error": message}``; an unexpected failure answers 500 with a generic message (the
details go to the log, masked of secrets), never a traceback. No key is ever logged or returned.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from graphwiz_trader.config.settings import ApiSettings
from graphwiz_trader.errors import GraphwizError, UnknownSymbolError
from graphwiz_trader.graph.store_errors import GraphStoreError, GraphUnavailableError
from graphwiz_trader.service.auth import ApiKey, ApiKeyStore, AuthError, presented_key
from graphwiz_trader.service.explorer import CypherRefused, ExplorerError, GraphExplorer
from graphwiz_trader.service.ratelimit import TokenBucketLimiter

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/v1"
SSE_KEEPALIVE_S = 15.0
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class RateLimited(GraphwizError):
    """Too many requests from one key (or one address without a valid key)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


# ---------------------------------------------------------------------------------------------- bodies
class SignalsRequest(BaseModel):
    """Symbols whose newest scores and target weights are wanted (``BTC/USDT`` form)."""

    symbols: list[str] = Field(min_length=1, max_length=500)


class ControlRequest(BaseModel):
    """Why the control is used (written to the journal and the log)."""

    reason: str = Field(min_length=1, max_length=500)


class KillRequest(ControlRequest):
    """Kill: halt and cancel every open order; ``flatten`` also closes every position."""

    flatten: bool = False


class CypherRequest(BaseModel):
    """A read-only Cypher query and its parameters (``$build`` defaults to the service's build)."""

    query: str = Field(min_length=1, max_length=10_000)
    params: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- JSON
def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: NaN/inf -> null, numpy scalars -> numbers, times -> ISO-8601 strings."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.isoformat()
    if isinstance(value, pd.Timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return [jsonable(v) for v in value]
    if hasattr(value, "iso_format"):  # neo4j.time types
        return value.iso_format()
    return str(value)


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(jsonable(payload), separators=(",", ":"), allow_nan=False)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


_KEY_IN_QUERY = re.compile(rb"(^|&)(key|api_key)=[^&]*", re.IGNORECASE)


class RedactKeyInQuery:
    """ASGI middleware: a ``key=``/``api_key=`` query parameter (the dashboard's ``?key=`` link) is replaced
    by ``***`` before the app or the server's access log sees the request line. The page moves the key into
    sessionStorage in the browser; the server never needs it from the URL."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("query_string"):
            scope["query_string"] = _KEY_IN_QUERY.sub(rb"\1\2=***", scope["query_string"])
        await self.app(scope, receive, send)


def _plotly_js() -> Path:
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise GraphwizError(f"plotly.js is missing from the installed plotly package ({path}); reinstall plotly")
    return path


# ---------------------------------------------------------------------------------------------- app
def create_app(state: Any, settings: Any, registry: Any = None) -> FastAPI:
    """The service's FastAPI app over a running :class:`~graphwiz_trader.service.state.ServiceState`.

    Parameters
    ----------
    state : ServiceState
        What the routes read and the controls they call (or any object with its methods).
    settings : ServiceSettings or ApiSettings
        The service settings (their ``api`` section is used) or the API settings themselves.
    registry : prometheus_client.CollectorRegistry, optional
        Exposed at ``/metrics``; without one ``/metrics`` answers 404.

    Raises
    ------
    ConfigError
        A malformed keys file or key line.
    """
    api: ApiSettings = getattr(settings, "api", settings)
    if not isinstance(api, ApiSettings):
        raise GraphwizError(f"create_app: settings must be ServiceSettings or ApiSettings, got {type(api).__name__}")
    keys = ApiKeyStore.from_settings(api)
    if len(keys) == 0:
        log.warning("service API: no API keys configured (api.keys_file / api.keys): every route except "
                    "/health answers 401; make one with `python -m graphwiz_trader.service.auth --name NAME`")
    limiter = TokenBucketLimiter(api.rate_per_minute, api.burst)
    explorer = GraphExplorer(state, max_rows=api.cypher_max_rows, timeout_s=api.cypher_timeout_s)
    plotly_js = _plotly_js()

    app = FastAPI(title="graphwiz_trader service API", version="1",
                  description="Signals, positions, PnL, risk and controls of the running graphwiz_trader service. "
                              "Send a key as `X-API-Key` or `Authorization: Bearer`.",
                  docs_url=None, redoc_url=None, openapi_url=None)

    app.add_middleware(RedactKeyInQuery)

    # ------------------------------------------------------------------ auth dependencies
    def _client(request: Request) -> str:
        return request.client.host if request.client is not None else "unknown"

    def _check(request: Request, scope: str) -> ApiKey:
        try:
            key = keys.authenticate(presented_key(request.headers), scope)
        except AuthError as exc:
            if exc.status == 401:  # unauthenticated tries are limited per address
                d = limiter.take(f"addr:{_client(request)}")
                if not d.allowed:
                    raise RateLimited(d.retry_after_s) from None
            log.info("API %s %s refused (%d) for %s", request.method, request.url.path, exc.status,
                     _client(request))
            raise
        d = limiter.take(f"key:{key.name}")
        if not d.allowed:
            log.info("API rate limit hit by key %r (%s %s)", key.name, request.method, request.url.path)
            raise RateLimited(d.retry_after_s)
        request.state.key_name = key.name
        return key

    def _guard(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
        async def check(request: Request) -> ApiKey:  # async: no thread hop per request
            return _check(request, scope)
        return check

    read = Depends(_guard("read"))
    trade = Depends(_guard("trade"))

    # ------------------------------------------------------------------ errors: JSON, never a traceback
    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(str(exc), exc.status, headers)

    @app.exception_handler(RateLimited)
    async def _rate_limited(request: Request, exc: RateLimited) -> Response:
        return _error(str(exc), 429, {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error("invalid request: " + "; ".join(parts), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        msg = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no route {request.method} {request.url.path}"
        return _error(msg, exc.status_code)

    @app.exception_handler(UnknownSymbolError)
    async def _unknown_symbol(request: Request, exc: UnknownSymbolError) -> Response:
        return _error(str(exc), 404)

    @app.exception_handler(CypherRefused)
    async def _cypher_refused(request: Request, exc: CypherRefused) -> Response:
        return _error(str(exc), 400)

    @app.exception_handler(ExplorerError)
    async def _explorer_error(request: Request, exc: ExplorerError) -> Response:
        return _error(str(exc), exc.status)

    @app.exception_handler(GraphStoreError)
    async def _graph_error(request: Request, exc: GraphStoreError) -> Response:
        status = 503 if isinstance(exc, GraphUnavailableError) else 400
        return _error(f"graph store: {exc}", status)

    @app.exception_handler(GraphwizError)
    async def _graphwiz_error(request: Request, exc: GraphwizError) -> Response:
        status = 409 if type(exc).__name__ == "ServiceStateError" else 400
        return _error(str(exc), status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("API %s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc,
                  exc_info=exc)
        return _error(f"internal error ({type(exc).__name__}); the service log has the details", 500)

    # ------------------------------------------------------------------ health, metrics, openapi, pages
    @app.get("/health", tags=["service"], summary="Liveness (no key): status, cycle, as_of, data age (s)")
    async def health() -> Response:
        # on the event loop (never a worker thread), so it never reads the strategy half-way through a cycle
        return _json(state.health())

    @app.get("/metrics", tags=["service"], summary="Prometheus exposition of the graphwiz_* metrics")
    async def metrics(request: Request) -> Response:
        open_local = api.metrics_open_to_localhost and _client(request) in LOCAL_HOSTS
        if not open_local:
            _check(request, "read")
        if registry is None:
            return _error("no metrics registry in this service", 404)
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", tags=["service"], summary="The OpenAPI schema of this API", dependencies=[read])
    def openapi() -> Response:
        return _json(app.openapi())

    def _page(name: str) -> Callable[[], Awaitable[Response]]:
        async def page() -> Response:
            return FileResponse(STATIC_DIR / name, media_type="text/html",
                                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        return page

    app.add_api_route("/", _page("dashboard.html"), methods=["GET"], include_in_schema=False)
    app.add_api_route("/explorer", _page("explorer.html"), methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", _page("docs.html"), methods=["GET"], include_in_schema=False)

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_bundle() -> Response:
        return FileResponse(plotly_js, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ------------------------------------------------------------------ reads
    @app.post(f"{API_PREFIX}/signals", tags=["signals"], dependencies=[read],
              summary="Newest scores and target weights (fractions of equity) of the given symbols")
    async def signals(body: SignalsRequest) -> Response:
        symbols = [s.strip() for s in body.symbols]
        if any(not s for s in symbols):
            return _error("invalid request: symbols: an empty symbol name", 422)
        return _json(await state.latest_signals(symbols))

    @app.get(f"{API_PREFIX}/positions", tags=["portfolio"], dependencies=[read],
             summary="Held positions: qty (base), price, value (quote), weight (fraction of equity), entry price")
    def positions() -> Response:
        return _json({"positions": state.positions(), "target_weights": state.target_weights()})

    @app.get(f"{API_PREFIX}/pnl", tags=["portfolio"], dependencies=[read],
             summary="PnL since the run's first equity point (quote and fraction), drawdown (fraction)")
    def pnl() -> Response:
        snap = state.snapshot()
        curve = state.equity_curve()
        start = curve[0]["equity"] if curve else None
        now = snap.get("equity") if snap.get("equity") is not None else (curve[-1]["equity"] if curve else None)
        pnl_quote = (now - start) if (now is not None and start is not None) else None
        return _json({"as_of": snap.get("as_of"), "equity": now, "start_equity": start,
                      "start_ts": curve[0]["ts"] if curve else None, "pnl_quote": pnl_quote,
                      "return": (pnl_quote / start) if (pnl_quote is not None and start) else None,
                      "drawdown": snap.get("drawdown"), "cash": snap.get("cash")})

    @app.get(f"{API_PREFIX}/equity", tags=["portfolio"], dependencies=[read],
             summary="The equity curve: ts (ISO UTC), equity (quote), drawdown (fraction)")
    def equity() -> Response:
        return _json({"points": state.equity_curve()})

    @app.get(f"{API_PREFIX}/risk", tags=["risk"], dependencies=[read],
             summary="Risk status: paused, killed, halted, reasons, breakers, drawdown, gross exposure")
    def risk() -> Response:
        s = state.snapshot()
        return _json({k: s.get(k) for k in ("as_of", "paused", "killed", "halted", "reasons", "breakers",
                                             "drawdown", "gross_exposure", "data_age_s", "last_error")})

    @app.get(f"{API_PREFIX}/model", tags=["model"], dependencies=[read],
             summary="The model in use: version, live accuracy and IC")
    def model() -> Response:
        s = state.snapshot()
        return _json({k: s.get(k) for k in ("model_version", "model_accuracy", "model_ic", "as_of")})

    @app.get(f"{API_PREFIX}/overview", tags=["service"], dependencies=[read],
             summary="Everything the dashboard shows at once: snapshot, weights, features, execution quality")
    def overview(features: int = Query(10, ge=1, le=100, description="number of top graph features")) -> Response:
        return _json({"snapshot": state.snapshot(), "positions": state.positions(),
                      "target_weights": state.target_weights(), "top_graph_features": state.top_graph_features(
                          features), "execution_quality": state.execution_quality()})

    # ------------------------------------------------------------------ controls
    def _control_log(request: Request, action: str, reason: str) -> None:
        log.warning("API %s by key %r from %s: %s", action, getattr(request.state, "key_name", "?"),
                    _client(request), reason)

    @app.post(f"{API_PREFIX}/pause", tags=["controls"], dependencies=[trade],
              summary="Pause new orders (exits still pass); trade scope")
    async def pause(request: Request, body: ControlRequest) -> Response:
        _control_log(request, "pause", body.reason)
        return _json(await state.pause(body.reason))

    @app.post(f"{API_PREFIX}/resume", tags=["controls"], dependencies=[trade],
              summary="Lift a pause, the kill switch and the breakers; trade scope")
    async def resume(request: Request, body: ControlRequest) -> Response:
        _control_log(request, "resume", body.reason)
        return _json(await state.resume(body.reason))

    @app.post(f"{API_PREFIX}/kill", tags=["controls"], dependencies=[trade],
              summary="Halt and cancel every open order (flatten: close every position too); trade scope")
    async def kill(request: Request, body: KillRequest) -> Response:
        _control_log(request, f"kill (flatten={body.flatten})", body.reason)
        return _json(await state.kill(body.flatten, body.reason))

    # ------------------------------------------------------------------ live stream
    @app.get(f"{API_PREFIX}/stream", tags=["service"], dependencies=[read],
             summary="Server-sent events: one `cycle` event (the snapshot) per cycle; a `snapshot` event first")
    async def stream(request: Request) -> StreamingResponse:
        queue = state.subscribe()

        async def events() -> AsyncIterator[str]:
            try:
                yield f"event: snapshot\ndata: {json.dumps(jsonable(state.snapshot()))}\n\n"
                while True:
                    try:
                        ev = await asyncio.wait_for(queue.get(), timeout=SSE_KEEPALIVE_S)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": keepalive\n\n"
                        continue
                    yield f"event: cycle\ndata: {json.dumps(jsonable(ev))}\n\n"
            finally:
                state.unsubscribe(queue)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------------ graph explorer
    @app.get(f"{API_PREFIX}/graph/builds", tags=["graph"], dependencies=[read],
             summary="Builds in the graph store, newest first, and the service's own build")
    def graph_builds() -> Response:
        return _json(explorer.builds())

    @app.get(f"{API_PREFIX}/graph/times", tags=["graph"], dependencies=[read],
             summary="The snapshot times (ISO UTC) of a build, oldest first")
    def graph_times(build: str | None = Query(None, description="build id (default: the service's)")) -> Response:
        return _json(explorer.times(build))

    @app.get(f"{API_PREFIX}/graph", tags=["graph"], dependencies=[read],
             summary="The correlation graph as of a time: nodes (layout, community), edges (rho), regime")
    def graph(build: str | None = Query(None, description="build id (default: the service's)"),
              as_of: str | None = Query(None, description="ISO UTC time; the newest snapshot at or before it")
              ) -> Response:
        return _json(explorer.graph(build, as_of))

    @app.post(f"{API_PREFIX}/cypher", tags=["graph"], dependencies=[read],
              summary="Run a read-only Cypher query (writes refused); rows and time capped")
    async def cypher(body: CypherRequest) -> Response:
        explorer.check_read_only(body.query)  # refused before any thread or session is used
        return _json(await run_in_threadpool(explorer.cypher, body.query, body.params))

    return app
