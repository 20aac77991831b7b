"""The one interface every trading engine implements (replay, paper, live).

A strategy object runs unchanged on every engine. The contract:

- ``history`` returns closed bars only (warm-up before the first decision);
- ``next_bars`` waits for the next bar close and returns the newly closed bars (replay: immediately; it
  returns ``None`` when the replay is over); ``now()`` is the engine clock (the last close handed out);
- ``submit`` is idempotent per ``client_order_id``: submitting an id the venue already has returns that
  order's state and never creates a second order;
- fills never happen at the close of the decision bar: replay and paper fill on the following bars;
- ``poll_updates`` returns order updates and fills since the previous call (each fill once per call;
  the journal makes recording idempotent by ``fill_id``);
- every error that reaches the strategy is a ``GraphwizError`` (``ExchangeUnavailableError`` when the venue
  cannot be reached after retries).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import pandas as pd

from graphwiz_trader.trading.types import AccountSnapshot, Fill, MarketRules, OrderRequest, OrderUpdate


@runtime_checkable
class TradingEngine(Protocol):
    """Bars in, orders out, fills back. See the module docstring for the contract."""

    name: str
    """``replay``, ``paper`` or ``live``."""
    quote: str
    """Quote currency of cash and prices (``USDT``)."""
    timeframe: str
    """Bar size (``1h``)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def now(self) -> pd.Timestamp: ...

    async def history(self, symbols: Sequence[str], n_bars: int) -> dict[str, pd.DataFrame]: ...

    async def next_bars(self) -> dict[str, pd.DataFrame] | None: ...

    async def market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]: ...

    async def account(self) -> AccountSnapshot: ...

    async def submit(self, orders: Sequence[OrderRequest]) -> list[OrderUpdate]: ...

    async def open_orders(self) -> list[OrderUpdate]: ...

    async def order_status(self, client_order_ids: Sequence[str]) -> list[OrderUpdate]: ...

    async def poll_updates(self) -> tuple[list[OrderUpdate], list[Fill]]: ...

    async def cancel_all(self, symbols: Sequence[str] | None = None) -> list[OrderUpdate]: ...
