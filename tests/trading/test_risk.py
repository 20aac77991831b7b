"""Pre-trade checks: exchange rules, rounding, notional caps, price band, orders per cycle, weights, gross
exposure and cash, each rejection naming the symbol and the numbers; expected values computed by hand."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from graphwiz_trader.config.settings import RiskSettings
from graphwiz_trader.trading.risk import RiskError, RiskManager, ceil_to_step, floor_to_step
from graphwiz_trader.trading.types import AccountSnapshot, MarketRules, OrderRequest, Side, client_order_id

T = pd.Timestamp("2024-06-03 12:00", tz="UTC")
RUN = "risk-run"
PRICES = {"BTC/USDT": 50_000.0, "ETH/USDT": 2_000.0, "SOL/USDT": 100.0, "XRP/USDT": 0.5}
RULES = {
    "BTC/USDT": MarketRules("BTC/USDT", min_qty=0.0001, min_notional_quote=5.0, qty_step=0.0001, price_tick=0.01),
    "ETH/USDT": MarketRules("ETH/USDT", min_qty=0.001, min_notional_quote=5.0, qty_step=0.001, price_tick=0.01),
    "SOL/USDT": MarketRules("SOL/USDT", min_qty=0.01, min_notional_quote=5.0, qty_step=0.01, price_tick=0.001),
    "XRP/USDT": MarketRules("XRP/USDT", min_qty=1.0, min_notional_quote=5.0, qty_step=1.0, price_tick=0.0001),
}


def settings(**kw) -> RiskSettings:
    base = dict(max_position_weight=0.25, max_gross_leverage=1.0, cash_buffer=0.0, max_drawdown=0.2,
                daily_loss_limit=0.05, max_order_notional_quote=50_000.0, price_band_bps=100.0,
                max_orders_per_cycle=10)
    return RiskSettings(**{**base, **kw})


def buy(symbol: str, qty: float, cycle: int = 1, leg: int = 0, **kw) -> OrderRequest:
    return OrderRequest(client_order_id(RUN, cycle, symbol, leg), RUN, cycle, symbol, Side.BUY, qty, T, leg=leg, **kw)


def sell(symbol: str, qty: float, cycle: int = 1, leg: int = 0, **kw) -> OrderRequest:
    return OrderRequest(client_order_id(RUN, cycle, symbol, leg), RUN, cycle, symbol, Side.SELL, qty, T, leg=leg, **kw)


def cash_only(cash: float = 100_000.0) -> AccountSnapshot:
    return AccountSnapshot(cash_quote=cash, positions={}, ts_utc=T)


def test_steps_round_in_decimal_not_in_binary():
    assert 0.3 / 0.1 < 3  # why: a binary floor of 0.3 / 0.1 gives 2 steps
    assert floor_to_step(0.3, 0.1) == 0.3
    assert floor_to_step(0.12999, 0.001) == 0.129
    assert floor_to_step(1.0, None) == 1.0
    assert ceil_to_step(50_400.001, 0.01) == 50_400.01
    assert Decimal(repr(floor_to_step(4.4004, 0.001))) == Decimal("4.4")


def test_quantities_are_rounded_down_to_the_qty_step_and_the_rounding_is_reported():
    rm = RiskManager(settings())
    dec = rm.check_orders([buy("ETH/USDT", 0.3), buy("SOL/USDT", 12.3456)], cash_only(), PRICES, RULES, cycle=1)
    assert [(o.symbol, o.qty) for o in dec.accepted] == [("ETH/USDT", 0.3), ("SOL/USDT", 12.34)]
    assert dec.rejected == []
    assert dec.adjustments == ["SOL/USDT: qty 12.3456 rounded down to 12.34 (qty_step 0.01)"]


def test_an_order_below_the_minimum_notional_is_rejected_naming_the_symbol_and_both_numbers():
    rm = RiskManager(settings())
    dec = rm.check_orders([buy("SOL/USDT", 0.04)], cash_only(), PRICES, RULES, cycle=1)
    assert dec.accepted == []
    assert dec.rejected[0][1] == "SOL/USDT: order notional 4 is below the exchange minimum notional 5"


def test_a_quantity_that_rounds_below_the_minimum_qty_is_rejected():
    rm = RiskManager(settings())
    dec = rm.check_orders([buy("BTC/USDT", 0.00005), buy("XRP/USDT", 0.9)], cash_only(), PRICES, RULES, cycle=1)
    assert dec.reasons == {
        buy("BTC/USDT", 1).client_order_id:
            "BTC/USDT: qty 0 (from 5e-05, qty_step 0.0001) is below the exchange minimum qty 0.0001",
        buy("XRP/USDT", 1).client_order_id:
            "XRP/USDT: qty 0 (from 0.9, qty_step 1) is below the exchange minimum qty 1",
    }


def test_an_order_above_the_notional_cap_is_rejected():
    rm = RiskManager(settings(max_position_weight=1.0))
    dec = rm.check_orders([buy("BTC/USDT", 1.2)], cash_only(200_000.0), PRICES, RULES, cycle=1)
    assert dec.rejected[0][1] == "BTC/USDT: order notional 60000 exceeds max_order_notional_quote 50000"


def test_a_limit_price_outside_the_band_is_rejected_and_one_inside_is_rounded_to_the_tick():
    rm = RiskManager(settings())
    far = buy("BTC/USDT", 0.1, order_type="limit", limit_price=50_600.0)               # +120 bps
    near = buy("BTC/USDT", 0.1, leg=1, order_type="limit", limit_price=50_400.004)     # +80 bps
    dec = rm.check_orders([far, near], cash_only(), PRICES, RULES, cycle=1)
    assert dec.reasons == {far.client_order_id: "BTC/USDT: limit price 50600 is 120.0 bps from the last price "
                                                "50000 (price_band_bps 100)"}
    assert [(o.limit_price, o.qty) for o in dec.accepted] == [(50_400.0, 0.1)]  # a buy's limit rounds down
    s = sell("BTC/USDT", 0.1, order_type="limit", limit_price=49_700.001)
    acc = AccountSnapshot(cash_quote=100_000.0, positions={"BTC/USDT": 0.1}, ts_utc=T)
    assert rm.check_orders([s], acc, PRICES, RULES, cycle=2).accepted[0].limit_price == 49_700.01  # a sell's: up


def test_orders_beyond_the_per_cycle_maximum_are_rejected_across_calls_of_the_same_cycle():
    rm = RiskManager(settings(max_orders_per_cycle=3))
    first = [buy("XRP/USDT", 20, leg=k) for k in range(5)]
    dec = rm.check_orders(first, cash_only(), PRICES, RULES, cycle=7)
    assert [o.leg for o in dec.accepted] == [0, 1, 2]
    assert [why for _, why in dec.rejected] == ["XRP/USDT: max_orders_per_cycle 3 reached in cycle 7"] * 2
    assert rm.check_orders([buy("SOL/USDT", 1, cycle=7)], cash_only(), PRICES, RULES, cycle=7).accepted == []
    assert len(rm.check_orders([buy("SOL/USDT", 1, cycle=8)], cash_only(), PRICES, RULES, cycle=8).accepted) == 1


def test_position_weight_after_the_orders_is_capped_counting_the_orders_accepted_before():
    rm = RiskManager(settings())
    # equity 100,000: 0.5 BTC = 25,000 = exactly 25%; 0.0002 BTC more = 25,010 = 25.01%
    dec = rm.check_orders([buy("BTC/USDT", 0.5), buy("BTC/USDT", 0.0002, leg=1)], cash_only(), PRICES, RULES, 1)
    assert [o.qty for o in dec.accepted] == [0.5]
    assert dec.rejected[0][1] == "BTC/USDT: position weight after the order 0.250100 exceeds max_position_weight 0.25"


def test_gross_exposure_is_capped_but_an_order_that_reduces_exposure_always_fits():
    rm = RiskManager(settings(max_gross_leverage=0.5))
    acc = AccountSnapshot(cash_quote=60_000.0, positions={"ETH/USDT": 10.0, "SOL/USDT": 200.0}, ts_utc=T)
    # equity 60,000 + 20,000 + 20,000 = 100,000; gross 40,000 = 40%; +0.25 BTC (12,500) -> 52.5%
    dec = rm.check_orders([buy("BTC/USDT", 0.25), buy("XRP/USDT", 10_000), sell("ETH/USDT", 5.0)], acc, PRICES,
                          RULES, cycle=1)
    # sells first: ETH 5 sold (gross 30,000), then BTC 12,500 (42,500), then XRP 5,000 -> 47,500 = 47.5%: fits
    assert [o.symbol for o in dec.accepted] == ["ETH/USDT", "BTC/USDT", "XRP/USDT"] and dec.rejected == []
    dec2 = rm.check_orders([buy("BTC/USDT", 0.25, cycle=2)], acc, PRICES, RULES, cycle=2)
    assert dec2.rejected[0][1] == "BTC/USDT: gross exposure after the order 0.525000 exceeds max_gross_leverage 0.5"


def test_spot_buys_need_cash_after_the_buffer_plus_the_sells_before_them_and_rounding_never_exceeds_it():
    rm = RiskManager(settings(cash_buffer=0.02))
    acc = AccountSnapshot(cash_quote=10_000.0, positions={"BTC/USDT": 1.0}, ts_utc=T)
    # equity 60,000 (weights: BTC 83% is already held; selling reduces it); buffer 2% = 1,200 -> 8,800 available
    too_much = buy("ETH/USDT", 4.5)                                         # 9,000
    dec = rm.check_orders([too_much], acc, PRICES, RULES, cycle=1)
    assert dec.rejected[0][1] == ("ETH/USDT: buy of 9000 exceeds the cash available 8800 (cash less cash_buffer "
                                  "0.02 of equity, plus accepted sells)")
    dec = rm.check_orders([buy("ETH/USDT", 4.5, cycle=2), sell("BTC/USDT", 0.01, cycle=2)], acc, PRICES, RULES, 2)
    assert [o.symbol for o in dec.accepted] == ["BTC/USDT", "ETH/USDT"]  # the 500 of the sell pays the rest
    exact = buy("ETH/USDT", 4.4004, cycle=3)   # floors to 4.400 = 8,800.00; rounding up (4.401) would be 8,802
    dec = rm.check_orders([exact], acc, PRICES, RULES, cycle=3)
    assert dec.accepted[0].qty == 4.4 and dec.accepted[0].qty * PRICES["ETH/USDT"] <= 8_800.0


def test_spot_sells_never_exceed_the_position():
    rm = RiskManager(settings())
    acc = AccountSnapshot(cash_quote=1_000.0, positions={"ETH/USDT": 0.5}, ts_utc=T)
    dec = rm.check_orders([sell("ETH/USDT", 0.6), sell("SOL/USDT", 1.0)], acc, PRICES, RULES, cycle=1)
    assert sorted(why for _, why in dec.rejected) == [
        "ETH/USDT: sell 0.6 exceeds the position 0.5 (spot: no short selling)",
        "SOL/USDT: sell 1 exceeds the position 0 (spot: no short selling)"]
    shorting = RiskManager(settings(allow_short=True))
    assert len(shorting.check_orders([sell("SOL/USDT", 1.0)], acc, PRICES, RULES, cycle=1).accepted) == 1


def test_an_order_without_a_price_or_market_rules_is_rejected_and_an_unpriced_position_is_an_error():
    rm = RiskManager(settings())
    dec = rm.check_orders([buy("DOGE/USDT", 10)], cash_only(), {**PRICES, "DOGE/USDT": 0.1}, RULES, cycle=1)
    assert dec.rejected[0][1] == "DOGE/USDT: no market rules (minimum qty and notional, qty step) for the symbol"
    dec = rm.check_orders([buy("ADA/USDT", 10)], cash_only(), PRICES, RULES, cycle=1)
    assert dec.rejected[0][1] == "ADA/USDT: no last price to check the order against"
    held = AccountSnapshot(cash_quote=0.0, positions={"ADA/USDT": 5.0}, ts_utc=T)
    with pytest.raises(RiskError, match=r"cannot check orders of cycle 1: no price to mark ADA/USDT"):
        rm.check_orders([], held, PRICES, RULES, cycle=1)
