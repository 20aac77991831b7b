"""Market data from exchanges through ccxt (async).

:class:`CcxtBarSource` (public name: ``graphwiz_trader.qlib.QlibDataAdapter``) pages through ``since``, lets ccxt throttle to the exchange's rate limit
(``enableRateLimit``), retries transient network errors with exponential backoff and, when the
exchange stays unreachable, raises :class:`ExchangeUnavailableError`. It never substitutes data.
The still-forming last candle (open time + bar length > now) is not returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import ExchangeSettings
from graphwiz_trader.data.bars import OHLCV
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.data.store import ParquetStore
from graphwiz_trader.core.timeframes import timeframe_delta
from graphwiz_trader.data.validate import validate_bars
from graphwiz_trader.errors import DataError, ExchangeUnavailableError, UnknownSymbolError

log = logging.getLogger(__name__)


class CcxtBarSource:
    """Fetch OHLCV candles from a ccxt exchange into the canonical bar frame.

    Parameters
    ----------
    exchange_id : ccxt id, e.g. ``binance``.
    settings : keys, timeouts and retry policy (keys are optional for public market data).
    exchange : an already-built ccxt async exchange (tests inject one); built from ``exchange_id`` otherwise.
    page_limit : candles per request (exchange maximum; Binance allows 1000).
    """

    def __init__(self, exchange_id: str = "binance", settings: ExchangeSettings | None = None,
                 exchange: Any | None = None, page_limit: int = 1000) -> None:
        self.exchange_id = exchange_id
        self.settings = settings or ExchangeSettings()
        self.page_limit = page_limit
        self._exchange = exchange
        self._initialized = False

    def __repr__(self) -> str:  # never shows keys
        return f"CcxtBarSource(exchange_id={self.exchange_id!r}, initialized={self._initialized})"

    async def initialize(self) -> None:
        """Create the ccxt client and load markets (with retries)."""
        if self._exchange is None:
            import ccxt.async_support as ccxt_async

            if not hasattr(ccxt_async, self.exchange_id):
                raise DataError(f"unknown exchange {self.exchange_id!r} (not a ccxt exchange id)")
            params: dict[str, Any] = {"enableRateLimit": True, "timeout": self.settings.timeout_ms}
            if self.settings.api_key is not None:
                params["apiKey"] = self.settings.api_key.get_secret_value()
            if self.settings.secret is not None:
                params["secret"] = self.settings.secret.get_secret_value()
            if self.settings.rate_limit_ms is not None:
                params["rateLimit"] = self.settings.rate_limit_ms
            self._exchange = getattr(ccxt_async, self.exchange_id)(params)
            if self.settings.sandbox:
                self._exchange.set_sandbox_mode(True)
        await self._retry(self._exchange.load_markets, what="loading markets")
        self._initialized = True

    async def close(self) -> None:
        if self._exchange is not None and hasattr(self._exchange, "close"):
            await self._exchange.close()

    async def __aenter__(self) -> "CcxtBarSource":
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _retry(self, fn: Any, *args: Any, what: str, **kwargs: Any) -> Any:
        import ccxt

        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return await fn(*args, **kwargs)
            except ccxt.BadSymbol as exc:
                raise UnknownSymbolError([str(args[0]) if args else "?"], f"exchange {self.exchange_id}") from exc
            except ccxt.NetworkError as exc:  # timeouts, DDoS protection, exchange not available
                if attempt == attempts:
                    raise ExchangeUnavailableError(
                        f"exchange {self.exchange_id} unreachable while {what} after {attempts} attempts: "
                        f"{type(exc).__name__}: {exc}. No data was substituted; check the network or retry later."
                    ) from exc
                delay = self.settings.retry_backoff_s * 2 ** (attempt - 1)
                log.warning("%s: %s while %s (attempt %d/%d); retrying in %.1fs", self.exchange_id,
                            type(exc).__name__, what, attempt, attempts, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _check_symbol(self, symbol: str) -> None:
        markets = getattr(self._exchange, "markets", None) or {}
        if markets and symbol not in markets:
            raise UnknownSymbolError([symbol], f"exchange {self.exchange_id}")

    async def fetch_ohlcv(self, symbol: str, timeframe: str, limit: int | None = None,
                          since: pd.Timestamp | str | int | None = None) -> pd.DataFrame:
        """Candles for ``symbol`` as a UTC-indexed frame (open, high, low, close, volume).

        ``since`` (UTC time or epoch ms): page forward from it until now (or ``limit`` candles).
        Without ``since``: the latest ``limit`` candles (one request).
        """
        if not self._initialized:
            await self.initialize()
        self._check_symbol(symbol)
        step_ms = int(timeframe_delta(timeframe).total_seconds() * 1000)
        now_ms = int(time.time() * 1000)
        rows: list[list[float]] = []
        if since is None:
            page = await self._retry(self._exchange.fetch_ohlcv, symbol, timeframe, None, limit or self.page_limit,
                                     what=f"fetching {symbol} {timeframe}")
            rows.extend(page)
        else:
            cursor = int(since) if isinstance(since, (int, float)) else int(to_utc(since, "since").value // 1_000_000)
            while True:
                want = self.page_limit if limit is None else min(self.page_limit, limit - len(rows))
                if want <= 0:
                    break
                page = await self._retry(self._exchange.fetch_ohlcv, symbol, timeframe, cursor, want,
                                         what=f"fetching {symbol} {timeframe} since {pd.Timestamp(cursor, unit='ms', tz='UTC')}")
                page = [r for r in page if r[0] >= cursor]
                if not page:
                    break
                rows.extend(page)
                cursor = int(page[-1][0]) + step_ms
                if cursor + step_ms > now_ms:
                    break
        df = self._to_frame(rows, symbol, timeframe, now_ms, step_ms)
        return df

    def _to_frame(self, rows: list[list[float]], symbol: str, timeframe: str, now_ms: int, step_ms: int) -> pd.DataFrame:
        if not rows:
            return pd.DataFrame(columns=OHLCV, index=pd.DatetimeIndex([], tz="UTC", name="datetime"), dtype="float64")
        df = pd.DataFrame(rows, columns=["timestamp", *OHLCV])
        forming = df["timestamp"] + step_ms > now_ms
        if forming.any():
            log.info("%s %s: leaving out %d still-forming candle(s)", symbol, timeframe, int(forming.sum()))
            df = df[~forming]
        df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True), name="datetime")
        df = df.astype("float64")
        validate_bars({symbol: df}, timeframe, strict=True)
        return df

    async def sync_to_store(self, store: ParquetStore, symbols: list[str], timeframe: str,
                            since: pd.Timestamp | str) -> dict[str, int]:
        """Fetch only candles newer than what ``store`` holds (or from ``since``) and upsert them.

        Returns rows added per symbol.
        """
        added: dict[str, int] = {}
        for sym in symbols:
            last = store.last_timestamp(sym, timeframe)
            first = to_utc(since, "--since")
            start = first if last is None else max(first, last + timeframe_delta(timeframe))
            df = await self.fetch_ohlcv(sym, timeframe, since=start)
            added[sym] = store.upsert(sym, timeframe, df)[0] if len(df) else 0
            log.info("%s %s: %d new candles", sym, timeframe, added[sym])
        return added
