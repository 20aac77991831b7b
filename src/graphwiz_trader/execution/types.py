"""Value types of the execution package: strategies, sides, child orders, plans, fills and metrics.

Units are in the names: ``*_base`` is a quantity in base-asset units (BTC for ``BTC/USDT``),
``*_quote`` a price or amount in quote currency (USDT), ``*_bps`` basis points (1 bps = 0.01%),
``*_utc`` a tz-aware UTC timestamp, fractions are plain numbers in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import pandas as pd

from graphwiz_trader.errors import GraphwizError


class ExecutionInputError(GraphwizError, ValueError):
    """A parent order or plan request is invalid (quantity, side, horizon, start time, strategy)."""


class ExecutionStrategy(str, Enum):
    """How a parent order is worked.

    MARKET          one immediate order for the whole quantity at the start.
    TWAP            equal slices, one per bar over the horizon.
    VWAP            slices proportional to the hour-of-day volume profile learned from past bars.
    ALMGREN_CHRISS  the closed-form mean-variance optimal trajectory (Almgren & Chriss 2000).
    PPO             a stable-baselines3 PPO policy deciding, each bar, the fraction of the remainder to trade.
    """

    MARKET = "MARKET"
    TWAP = "TWAP"
    VWAP = "VWAP"
    ALMGREN_CHRISS = "ALMGREN_CHRISS"
    PPO = "PPO"

    @classmethod
    def parse(cls, value: str | ExecutionStrategy) -> ExecutionStrategy:
        if isinstance(value, ExecutionStrategy):
            return value
        key = str(value).strip().upper().replace("-", "_")
        if key in ("AC", "ALMGREN", "ALMGRENCHRISS"):
            key = "ALMGREN_CHRISS"
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ExecutionInputError(f"unknown execution strategy {value!r}; expected one of {names}") from None


class Side(str, Enum):
    """Order side. ``sign`` is +1 for buy, -1 for sell (a buy pays up, a sell receives less)."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @classmethod
    def parse(cls, value: str | Side) -> Side:
        if isinstance(value, Side):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ExecutionInputError(f"unknown side {value!r}; expected 'buy' or 'sell'") from None


class OrderType(str, Enum):
    """How a child order meets the market.

    MARKET       takes liquidity at once at the child's time (in the simulator: at the bar open, its
                 participation measured against the volume of ``immediate_minutes`` of that bar).
    PARTICIPATE  worked evenly through the child's bar (in the simulator: at the bar's typical price,
                 participation = quantity / bar volume). On an exchange connection it is sent as a
                 market order at the child's time.
    """

    MARKET = "market"
    PARTICIPATE = "participate"


@dataclass(frozen=True)
class ChildOrder:
    """One child order of a plan."""

    time_utc: pd.Timestamp
    quantity_base: float
    order_type: OrderType


@dataclass(frozen=True)
class ExecutionPlan:
    """A parent order and its child orders.

    For ``PPO`` the plan is adaptive: ``children`` is the open-loop preview made from the market state
    known at ``start_utc`` (remaining quantity and time evolve, market features stay frozen); ``execute``
    asks the policy again at every bar with the market state known then.

    Attributes
    ----------
    arrival_price_quote
        Close of the last bar finished at ``start_utc`` (the decision price known when planning).
    expected_bar_volume_base
        Trailing mean bar volume known at ``start_utc``; ``quantity_base`` / this = order size in bar volumes.
    """

    symbol: str
    side: Side
    quantity_base: float
    strategy: ExecutionStrategy
    start_utc: pd.Timestamp
    horizon_bars: int
    bar_minutes: int
    children: tuple[ChildOrder, ...]
    arrival_price_quote: float
    expected_bar_volume_base: float
    adaptive: bool = False
    details: dict = field(default_factory=dict, compare=False)

    @property
    def end_utc(self) -> pd.Timestamp:
        """End of the horizon (exclusive): start + horizon_bars bars."""
        return self.start_utc + pd.Timedelta(minutes=self.bar_minutes * self.horizon_bars)

    @property
    def child_quantities_base(self) -> np.ndarray:
        return np.array([c.quantity_base for c in self.children], dtype=float)


@dataclass(frozen=True)
class Fill:
    """What one child order got. Costs are the simulator's decomposition (NaN on an exchange).

    ``reference_price_quote`` is the unaffected price the child was measured against (bar open for
    immediate orders, the bar's typical price for participating ones; the exchange's average price on a
    live venue). ``status`` is ``filled``, ``partial`` or ``rejected: <reason>``.
    """

    time_utc: pd.Timestamp
    requested_base: float
    quantity_base: float
    price_quote: float
    fee_quote: float
    order_type: OrderType
    participation: float = float("nan")
    reference_price_quote: float = float("nan")
    half_spread_bps: float = float("nan")
    temporary_impact_bps: float = float("nan")
    permanent_impact_bps: float = float("nan")
    status: str = "filled"
    order_id: str | None = None


@dataclass(frozen=True)
class ExecutionMetrics:
    """Execution quality of one parent order (price-only costs; fees are reported apart).

    implementation_shortfall_bps
        side * (average_price - arrival_price) / arrival_price * 1e4 over the filled quantity; positive
        means the execution cost money (bought higher / sold lower than the arrival price).
    vwap_slippage_bps
        side * (average_price - interval_vwap) / interval_vwap * 1e4, the interval being the plan horizon.
    fill_rate
        filled quantity / parent quantity, in [0, 1].
    """

    average_price_quote: float
    arrival_price_quote: float
    implementation_shortfall_bps: float
    interval_vwap_quote: float
    vwap_slippage_bps: float
    fill_rate: float
    filled_quantity_base: float
    fees_quote: float
    fees_bps: float
    n_children: int

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ExecutionResult:
    """The fills of a plan and their metrics."""

    plan: ExecutionPlan
    fills: tuple[Fill, ...]
    metrics: ExecutionMetrics
    venue: str

    def fills_frame(self) -> pd.DataFrame:
        """Fills as a table (one row per child)."""
        rows = [{k: getattr(f, k) for k in f.__dataclass_fields__} for f in self.fills]
        return pd.DataFrame(rows)


def execution_metrics_from_fills(side: Side, parent_quantity_base: float, arrival_price_quote: float,
                                 interval_vwap_quote: float, fills: tuple[Fill, ...] | list[Fill]) -> ExecutionMetrics:
    """Metrics of a parent order from its fills (see :class:`ExecutionMetrics` for the formulas)."""
    q = np.array([f.quantity_base for f in fills], dtype=float)
    p = np.array([f.price_quote for f in fills], dtype=float)
    fee = float(sum(f.fee_quote for f in fills if np.isfinite(f.fee_quote)))
    filled = float(q.sum()) if len(q) else 0.0
    if filled > 0:
        avg = float((q * p).sum() / filled)
        is_bps = side.sign * (avg - arrival_price_quote) / arrival_price_quote * 1e4
        vw = side.sign * (avg - interval_vwap_quote) / interval_vwap_quote * 1e4 if interval_vwap_quote > 0 else float("nan")
        fees_bps = fee / (avg * filled) * 1e4
    else:
        avg = is_bps = vw = fees_bps = float("nan")
    return ExecutionMetrics(
        average_price_quote=avg,
        arrival_price_quote=float(arrival_price_quote),
        implementation_shortfall_bps=float(is_bps),
        interval_vwap_quote=float(interval_vwap_quote),
        vwap_slippage_bps=float(vw),
        fill_rate=min(1.0, filled / parent_quantity_base) if parent_quantity_base > 0 else float("nan"),
        filled_quantity_base=filled,
        fees_quote=fee,
        fees_bps=float(fees_bps),
        n_children=len(fills),
    )


def horizon_to_bars(horizon: int | str | pd.Timedelta, bar_minutes: int, timeframe: str = "1h") -> int:
    """Horizon as a whole number of bars. Accepts bars (int) or a duration (``"6h"``, ``Timedelta``).

    Raises
    ------
    ExecutionInputError
        when the horizon is shorter than one bar or not a whole number of bars.
    """
    if isinstance(horizon, bool):
        raise ExecutionInputError(f"horizon must be a number of bars or a duration, got {horizon!r}")
    if isinstance(horizon, (int, np.integer)):
        bars = int(horizon)
        if bars < 1:
            raise ExecutionInputError(f"horizon of {bars} bars is shorter than one {timeframe} step")
        return bars
    try:
        td = pd.Timedelta(horizon)
    except (ValueError, TypeError):
        raise ExecutionInputError(f"cannot read horizon {horizon!r}; give bars (6) or a duration ('6h')") from None
    minutes = td.total_seconds() / 60.0
    if minutes < bar_minutes:
        raise ExecutionInputError(f"horizon {horizon} is shorter than one {timeframe} step")
    if abs(minutes / bar_minutes - round(minutes / bar_minutes)) > 1e-9:
        raise ExecutionInputError(f"horizon {horizon} is not a whole number of {timeframe} steps")
    return int(round(minutes / bar_minutes))
