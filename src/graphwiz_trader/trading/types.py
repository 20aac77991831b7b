"""The shapes that pass between strategies, engines, the risk manager and the journal.

Units are in the names or stated: quantities in base units (``qty``), prices in quote currency per base unit,
money in quote currency (``*_quote``), times tz-aware UTC. Every shape is a frozen dataclass.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import pandas as pd

from graphwiz_trader.execution.types import Side

__all__ = ["AccountSnapshot", "Fill", "MarketRules", "OrderRequest", "OrderState", "OrderUpdate", "Side",
           "client_order_id", "fill_id"]

_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


def client_order_id(run_id: str, cycle: int, symbol: str, leg: int = 0) -> str:
    """A deterministic client order id for (run, cycle, symbol, leg): a retry never doubles an order.

    ``gw`` + 30 hex characters of SHA-256 (32 characters: within Binance's ``^[a-zA-Z0-9-_]{1,36}$``
    and every ccxt exchange's limit we use). The same inputs always give the same id.
    """
    digest = hashlib.sha256(f"{run_id}|{int(cycle)}|{symbol}|{int(leg)}".encode()).hexdigest()[:30]
    return f"gw{digest}"


def fill_id(client_id: str, venue_trade_id: str | int) -> str:
    """A fill's id: the client order id and the venue's trade id (recording a fill twice is a no-op)."""
    return f"{client_id}:{venue_trade_id}"


class OrderState(str, Enum):
    """Life of an order. ``NEW``: journaled, not yet acknowledged by the venue (write-ahead)."""

    NEW = "new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in (OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED)


@dataclass(frozen=True)
class OrderRequest:
    """An order a strategy wants: ``qty`` base units, ``limit_price`` quote per unit for limit orders.

    ``client_order_id`` comes from :func:`client_order_id` (run, cycle, symbol, leg); ``decided_utc`` is the
    bar close the decision was made at; ``reason`` says why (``rebalance``, ``stop_loss``, ``kill``, ...).
    ``execution`` names how the engine works the order (``MARKET``, ``TWAP``, ``VWAP``, ``ALMGREN_CHRISS``,
    ``PPO``) over ``horizon_bars`` bars.
    """

    client_order_id: str
    run_id: str
    cycle: int
    symbol: str
    side: Side
    qty: float
    decided_utc: pd.Timestamp
    order_type: str = "market"
    limit_price: float | None = None
    leg: int = 0
    reason: str = "rebalance"
    execution: str = "MARKET"
    horizon_bars: int = 1

    def __post_init__(self) -> None:
        if not _CLIENT_ID_RE.match(self.client_order_id):
            raise ValueError(f"client order id {self.client_order_id!r} must match {_CLIENT_ID_RE.pattern}")
        if not (self.qty > 0):
            raise ValueError(f"order qty must be > 0 base units, got {self.qty}")
        if self.order_type not in ("market", "limit"):
            raise ValueError(f"order_type must be 'market' or 'limit', got {self.order_type!r}")
        if self.order_type == "limit" and not (self.limit_price and self.limit_price > 0):
            raise ValueError("a limit order needs limit_price > 0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["side"] = self.side.value
        return d


@dataclass(frozen=True)
class OrderUpdate:
    """What the venue reports about an order at ``ts_utc``: state, cumulative filled qty, average price."""

    client_order_id: str
    symbol: str
    state: OrderState
    filled_qty: float = 0.0
    avg_price: float | None = None
    ts_utc: pd.Timestamp | None = None
    venue_order_id: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Fill:
    """One execution: ``qty`` base units at ``price``; ``fee_quote`` (and the modelled costs, quote) paid."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    fee_quote: float
    ts_utc: pd.Timestamp
    spread_slippage_quote: float = 0.0
    impact_quote: float = 0.0

    @property
    def notional_quote(self) -> float:
        return self.qty * self.price

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["side"] = self.side.value
        return d


@dataclass(frozen=True)
class MarketRules:
    """A venue's limits for one symbol (from ccxt ``markets``): minimum qty and notional, qty and price steps."""

    symbol: str
    min_qty: float = 0.0
    min_notional_quote: float = 0.0
    qty_step: float | None = None
    price_tick: float | None = None


@dataclass(frozen=True)
class AccountSnapshot:
    """Cash (quote) and positions (base units, signed) at ``ts_utc``, as the engine or venue reports them."""

    cash_quote: float
    positions: dict[str, float] = field(default_factory=dict)
    ts_utc: pd.Timestamp | None = None

    def equity_quote(self, prices: dict[str, float]) -> float:
        """Cash plus positions marked at ``prices`` (a position without a price is an error, not zero)."""
        missing = [s for s, q in self.positions.items() if q and s not in prices]
        if missing:
            raise KeyError(f"no price to mark {', '.join(sorted(missing))}")
        return self.cash_quote + sum(q * prices[s] for s, q in self.positions.items() if q)
