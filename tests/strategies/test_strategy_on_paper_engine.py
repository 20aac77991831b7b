"""The same strategy object runs unchanged on the paper engine (live bars from the mock Binance through ccxt,
simulated fills) as on the replay: orders go out, fills come back on the next bars, the journal holds them."""

import asyncio

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.strategies.core import Strategy
from graphwiz_trader.testkit.mock_exchange import MockBinance, MockMarket, VirtualClock
from graphwiz_trader.trading.engines.paper import PaperTradingEngine
from graphwiz_trader.trading.journal import TradeJournal

pytestmark = pytest.mark.timeout(180)


class ReversalScores:
    """Scores from the strategy's own bars: minus the last one-bar return (a score source for this test)."""

    name, neutral, classification, horizon, warmup_bars, version = "reversal", 0.0, False, 1, 2, "reversal-1"

    def prepare(self, buffer):
        return {"version": self.version}

    def due(self, t):
        return False

    def retrain(self, buffer, t):
        return None

    def score(self, buffer, t):
        c = buffer.field("close", 2)
        return -(c.iloc[-1] / c.iloc[-2] - 1.0)


def test_the_strategy_trades_on_the_paper_engine_with_live_bars_and_simulated_fills(tmp_path):
    settings = TradingSettings.model_validate({
        "strategy": {"timeframe": "1m", "use_graph_features": False, "cov_window_bars": 20, "cash_buffer": 0.05},
        "risk": {"max_position_weight": 0.6, "max_drawdown": 0.5, "daily_loss_limit": 0.5},
        "execution": {"default_strategy": "MARKET", "small_order_adv_fraction": 1.0, "large_order_adv_fraction": 100},
    })
    markets = [MockMarket("BTC/USDT", 50_000.0, bar_volume=50.0), MockMarket("ETH/USDT", 3_000.0, bar_volume=500.0)]
    with MockBinance(markets, clock=VirtualClock("2024-03-01 12:00:30"), timeframe="1m") as mock:
        engine = PaperTradingEngine(["BTC/USDT", "ETH/USDT"], state_path=tmp_path / "paper.json",
                                    settings=mock.settings(), timeframe="1m", clock=mock.clock, use_websocket=False,
                                    costs=CostModel(), feed_options={"poll_interval_s": 0.01, "close_grace_s": 0.0})
        journal = TradeJournal.open(tmp_path / "journal.sqlite")
        s = Strategy(engine, ["BTC/USDT", "ETH/USDT"], ReversalScores(), settings, journal=journal, run_id="paper1",
                     name="reversal")

        async def go():
            await s.start()
            out = []
            for _ in range(6):
                mock.advance(1)
                out.append(await s.run_cycle())
            await s.close()
            return out

        res = asyncio.run(go())
        try:
            assert [r["status"] for r in res] == ["ok"] * 6
            assert sum(len(r["orders"]) for r in res) > 0 and sum(r["trades_executed"] for r in res) > 0
            fills = journal.fills_frame("paper1")
            decided = {c: res[c]["as_of"] + pd.Timedelta("1min") for c in range(6)}
            assert (fills["ts_utc"] >= fills["cycle"].map(decided)).all()      # never before the decision's close
            assert journal.positions_from_fills("paper1") == pytest.approx(
                {k: v for k, v in res[-1]["positions"].items() if v}, rel=1e-9)
            assert np.isfinite([r["equity"] for r in res]).all()
        finally:
            journal.close()
