"""Trading shapes: deterministic client order ids, validated orders, marking needs every price."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from graphwiz_trader.trading.types import AccountSnapshot, OrderRequest, Side, client_order_id


def test_client_order_ids_are_deterministic_distinct_and_fit_binance():
    a = client_order_id("run-1", 3, "BTC/USDT", 0)
    assert a == client_order_id("run-1", 3, "BTC/USDT", 0)
    others = {client_order_id("run-1", 3, "BTC/USDT", 1), client_order_id("run-1", 4, "BTC/USDT", 0),
              client_order_id("run-2", 3, "BTC/USDT", 0), client_order_id("run-1", 3, "ETH/USDT", 0)}
    assert a not in others and len(others) == 4
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,36}", a) and len(a) == 32


def test_an_order_without_a_positive_quantity_or_with_a_bad_id_is_refused():
    t = pd.Timestamp("2024-01-01", tz="UTC")
    with pytest.raises(ValueError, match="qty must be > 0"):
        OrderRequest(client_order_id("r", 1, "BTC/USDT"), "r", 1, "BTC/USDT", Side.BUY, 0.0, t)
    with pytest.raises(ValueError, match="client order id"):
        OrderRequest("has space", "r", 1, "BTC/USDT", Side.BUY, 1.0, t)


def test_equity_marks_every_position_and_refuses_a_missing_price():
    acc = AccountSnapshot(cash_quote=100.0, positions={"BTC/USDT": 0.5, "ETH/USDT": -2.0})
    assert acc.equity_quote({"BTC/USDT": 40_000.0, "ETH/USDT": 2_000.0}) == 100.0 + 20_000.0 - 4_000.0
    with pytest.raises(KeyError, match="ETH/USDT"):
        acc.equity_quote({"BTC/USDT": 40_000.0})
