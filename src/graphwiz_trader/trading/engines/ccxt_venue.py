"""ccxt plumbing shared by the paper and live engines.

- :func:`build_exchange`: a ccxt async (or ``ccxt.pro``) client from :class:`ExchangeSettings`: keys from the
  settings' ``SecretStr`` (registered with :mod:`graphwiz_trader.core.secrets`, so they are masked wherever
  they might be logged), the ``sandbox`` switch (``set_sandbox_mode``), spot markets only, and
  ``api_url`` (a local mock or a proxy) through :func:`point_exchange_at`.
- :func:`call_with_retries`: transient network errors (``ccxt.NetworkError``: timeouts, 5xx, rate limits,
  disconnects) are retried with exponential backoff (``retry_backoff_s * 2**(attempt-1)`` seconds); after
  ``max_retries`` retries :class:`~graphwiz_trader.errors.ExchangeUnavailableError` says what failed.
  Never use it for order creation (not idempotent by itself): the live engine queries by client id first.
- conversions: ccxt markets -> :class:`MarketRules`, ccxt orders -> :class:`OrderUpdate`, ccxt trades ->
  :class:`Fill`, ccxt OHLCV rows -> the canonical bar frame.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from graphwiz_trader.config.settings import ExchangeSettings
from graphwiz_trader.core.secrets import mask_secrets, register_secret
from graphwiz_trader.data.bars import OHLCV
from graphwiz_trader.errors import (
    ConfigError,
    ExchangeUnavailableError,
    GraphwizError,
)
from graphwiz_trader.trading.types import (
    Fill,
    MarketRules,
    OrderState,
    OrderUpdate,
    Side,
    fill_id,
)

log = logging.getLogger(__name__)

__all__ = [
    "VenueAuthError",
    "VenueError",
    "build_exchange",
    "call_with_retries",
    "market_rules",
    "order_update",
    "point_exchange_at",
    "rows_to_frame",
    "trade_fill",
]


class VenueError(GraphwizError):
    """The exchange refused a request in a way retrying will not fix (bad request, unknown order, ...)."""


class VenueAuthError(VenueError):
    """The exchange refused the API keys or their permissions (the keys themselves are never shown)."""


def point_exchange_at(exchange: Any, rest_base: str, ws_base: str | None = None) -> Any:
    """Point every REST (and websocket) URL of a ccxt exchange at ``rest_base`` (``http://127.0.0.1:8080``).

    Each URL keeps its path (``https://api.binance.com/api/v3`` -> ``<rest_base>/api/v3``). Websocket URLs go
    to ``ws_base`` (default: ``rest_base`` with the ``ws`` scheme and a ``/stream`` prefix: ccxt tells Binance's
    spot streams apart by ``/stream`` in the URL). Returns ``exchange``.
    """
    base = rest_base.rstrip("/")
    wsb = (ws_base or ("ws" + base[4:] if base.startswith("http") else base) + "/stream").rstrip("/")

    def repoint(value: Any, websocket: bool) -> Any:
        if isinstance(value, dict):
            return {k: repoint(v, websocket or k == "ws") for k, v in value.items()}
        if isinstance(value, str) and "://" in value:
            path = urlsplit(value).path
            return (wsb if websocket else base) + path
        return value

    exchange.urls["api"] = repoint(exchange.urls.get("api", {}), False)
    return exchange


def build_exchange(exchange_id: str, settings: ExchangeSettings, *, pro: bool = False) -> Any:
    """A ccxt async exchange (``pro=True``: the ``ccxt.pro`` class with websocket methods) for spot trading.

    Raises
    ------
    ConfigError
        when ``exchange_id`` is not a ccxt exchange (or has no ``ccxt.pro`` class when ``pro``).
    """
    if pro:
        import ccxt.pro as module
    else:
        import ccxt.async_support as module
    if not hasattr(module, exchange_id):
        kind = "ccxt.pro" if pro else "ccxt"
        raise ConfigError(f"unknown exchange {exchange_id!r}: not a {kind} exchange id")
    params: dict[str, Any] = {"enableRateLimit": True, "timeout": settings.timeout_ms,
                              "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
                                          "fetchCurrencies": False, "fetchMargins": False,
                                          "warnOnFetchOpenOrdersWithoutSymbol": False,
                                          "adjustForTimeDifference": False}}
    for name, attr in (("api_key", "apiKey"), ("secret", "secret")):
        value = getattr(settings, name)
        if value is not None:
            register_secret(value)
            params[attr] = value.get_secret_value()
    _mask_ccxt_records()
    if settings.rate_limit_ms is not None:
        params["rateLimit"] = settings.rate_limit_ms
    exchange = getattr(module, exchange_id)(params)
    if settings.sandbox:
        exchange.set_sandbox_mode(True)
    api_url = getattr(settings, "api_url", None)
    if api_url:
        point_exchange_at(exchange, str(api_url))
    return exchange


def _mask_ccxt_records() -> None:
    """ccxt logs every request's headers (the API key among them) at DEBUG: mask secrets in its records where
    they are created, whichever handler (a test's, a user's) receives them."""
    from graphwiz_trader.core.logging import SecretMaskFilter

    for name in ("ccxt", "ccxt.base.exchange"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretMaskFilter) for f in logger.filters):
            logger.addFilter(SecretMaskFilter())


async def call_with_retries(fn: Callable[..., Awaitable[Any]], *args: Any, what: str, settings: ExchangeSettings,
                            exchange_id: str, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                            **kwargs: Any) -> Any:
    """``await fn(*args, **kwargs)``, retrying ccxt network errors with exponential backoff.

    Raises
    ------
    ExchangeUnavailableError
        after ``settings.max_retries`` retries, naming ``what`` and the last error.
    VenueAuthError, VenueError
        for refusals a retry cannot fix (message masked of secrets).
    """
    import ccxt

    attempts = settings.max_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return await fn(*args, **kwargs)
        except ccxt.NetworkError as exc:
            if attempt == attempts:
                raise ExchangeUnavailableError(
                    f"exchange {exchange_id} unreachable while {what} after {attempts} attempt(s): "
                    f"{type(exc).__name__}: {_short(exc)}. Nothing was substituted; retry later.") from None
            delay = settings.retry_backoff_s * 2 ** (attempt - 1)
            log.warning("%s: %s while %s (attempt %d/%d); retrying in %.2fs", exchange_id, type(exc).__name__,
                        what, attempt, attempts, delay)
            await sleep(delay)
        except ccxt.BaseError as exc:
            raise venue_error(exc, exchange_id, what) from None
    raise AssertionError("unreachable")


def venue_error(exc: Exception, exchange_id: str, what: str) -> GraphwizError:
    """A ccxt error that retrying cannot fix, as a GraphwizError naming the exchange and the request."""
    import ccxt

    msg = f"exchange {exchange_id} refused {what}: {type(exc).__name__}: {_short(exc)}"
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return VenueAuthError(msg + " (check the API key, secret and their permissions; keys are never shown)")
    return VenueError(msg)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = mask_secrets(str(exc))
    return text if len(text) <= limit else text[:limit] + "..."


def market_rules(symbol: str, market: dict[str, Any], precision_mode: int | None = None) -> MarketRules:
    """A ccxt market's limits as :class:`MarketRules` (min qty and notional, qty step, price tick).

    ``precision_mode`` is the exchange's ``precisionMode``: ccxt's ``TICK_SIZE`` (default; precision is the
    step) or ``DECIMAL_PLACES`` (precision is a number of digits: the step is ``10**-digits``).
    """
    from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

    mode = TICK_SIZE if precision_mode is None else precision_mode
    limits = market.get("limits") or {}
    precision = market.get("precision") or {}
    min_qty = (limits.get("amount") or {}).get("min") or 0.0
    min_cost = (limits.get("cost") or {}).get("min") or 0.0

    def step(value: Any) -> float | None:
        if value is None:
            return None
        return 10.0 ** -float(value) if mode == DECIMAL_PLACES else float(value)

    return MarketRules(symbol, min_qty=float(min_qty), min_notional_quote=float(min_cost),
                       qty_step=step(precision.get("amount")), price_tick=step(precision.get("price")))


_STATES = {"canceled": OrderState.CANCELED, "cancelled": OrderState.CANCELED, "expired": OrderState.EXPIRED,
           "rejected": OrderState.REJECTED}


def order_update(order: dict[str, Any], symbol: str | None = None, reason: str = "") -> OrderUpdate:
    """A ccxt order as an :class:`OrderUpdate` (``open`` with a fill is PARTIALLY_FILLED; ``closed`` FILLED)."""
    status = (order.get("status") or "open").lower()
    filled = float(order.get("filled") or 0.0)
    avg = order.get("average")
    if avg is None and filled > 0 and order.get("cost"):
        avg = float(order["cost"]) / filled
    if status == "closed":
        state = OrderState.FILLED
    elif status in _STATES:
        state = _STATES[status]
    else:
        state = OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.OPEN
    ts = order.get("lastUpdateTimestamp") or order.get("lastTradeTimestamp") or order.get("timestamp")
    return OrderUpdate(str(order.get("clientOrderId") or ""), symbol or str(order.get("symbol")), state, filled,
                       float(avg) if avg is not None else None,
                       pd.Timestamp(int(ts), unit="ms", tz="UTC") if ts else None,
                       str(order["id"]) if order.get("id") is not None else None, reason)


def trade_fill(trade: dict[str, Any], client_id: str, quote: str) -> Fill:
    """A ccxt trade of the order ``client_id`` as a :class:`Fill` (fee converted to the quote currency)."""
    qty, price = float(trade["amount"]), float(trade["price"])
    fee = trade.get("fee") or {}
    cost, currency = float(fee.get("cost") or 0.0), fee.get("currency")
    if cost and currency and currency != quote:
        base = str(trade["symbol"]).split("/")[0]
        if currency != base:
            log.warning("fee of trade %s paid in %s: recorded at 0 %s (no price to convert it)", trade.get("id"),
                        currency, quote)
            cost = 0.0
        else:
            cost *= price
    return Fill(fill_id(client_id, str(trade["id"])), client_id, str(trade["symbol"]), Side(trade["side"]), qty,
                price, cost, pd.Timestamp(int(trade["timestamp"]), unit="ms", tz="UTC"))


def rows_to_frame(rows: list[list[Any]]) -> pd.DataFrame:
    """ccxt OHLCV rows (open time ms, o, h, l, c, v) as the canonical bar frame (open-time UTC index)."""
    if not rows:
        return pd.DataFrame(columns=OHLCV, index=pd.DatetimeIndex([], tz="UTC", name="datetime"), dtype="float64")
    df = pd.DataFrame(rows, columns=["timestamp", *OHLCV])
    df = df.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp").astype("int64"), unit="ms", utc=True),
                                name="datetime")
    return df.astype("float64")
