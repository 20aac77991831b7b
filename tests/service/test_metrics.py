"""The ``graphwiz_*`` exposition after real cycles equals what the journal recorded (equity, orders, fills, cycles),
on the service's own registry; the shipped Prometheus scrape config points at 127.0.0.1:8000/metrics."""

import asyncio
import math
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from graphwiz_trader.service.loop import ProductionTradingService
from graphwiz_trader.strategies.session import cost_model
from graphwiz_trader.trading.engines.replay import ReplayEngine
from graphwiz_trader.trading.journal import TradeJournal

from .conftest import quick_settings

ROOT = Path(__file__).resolve().parents[2]


def samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            out[key] = s.value
    return out


def test_the_exposition_holds_the_graphwiz_series_with_the_values_of_the_cycles(synthetic_market, tmp_path):
    s = quick_settings()
    eng = ReplayEngine(synthetic_market.bars, start=synthetic_market.bars["SYN00/USDT"].index[260],
                       costs=cost_model(s.execution), timeframe="1h")
    svc = ProductionTradingService(settings=s, engine=eng, cycles=6, run_folder=tmp_path, serve_http=False)
    assert asyncio.run(svc.run()) == 0
    m = samples(svc.metrics.exposition().decode())
    j = TradeJournal.open(tmp_path / "journal.sqlite")
    try:
        rid = svc.state.run_id
        eq, orders, fills, cycles = j.equity_frame(rid), j.orders_frame(rid), j.fills_frame(rid), j.cycles_frame(rid)
    finally:
        j.close()
    assert m["graphwiz_equity_quote"] == pytest.approx(float(eq["equity_quote"].iloc[-1]))
    assert m["graphwiz_cash_quote"] == pytest.approx(float(eq["cash_quote"].iloc[-1]))
    assert m["graphwiz_gross_exposure_ratio"] == pytest.approx(float(eq["gross_exposure"].iloc[-1]))
    assert m["graphwiz_drawdown_ratio"] == pytest.approx(float(eq["drawdown"].iloc[-1]), abs=1e-12)
    assert m["graphwiz_orders_total"] == len(orders) > 0
    assert m["graphwiz_fills_total"] == len(fills) > 0
    assert m["graphwiz_cycles_total{status=ok}"] == (cycles["status"] == "ok").sum() == 6
    assert m["graphwiz_cycle_latency_seconds_count"] == 6 and m["graphwiz_cycle_latency_seconds_sum"] > 0
    assert m["graphwiz_cycle_errors_total"] == 0 and m["graphwiz_order_rejects_total"] == 0
    assert m["graphwiz_breaker_tripped{breaker=drawdown}"] == 0 and m["graphwiz_halted"] == 0
    # data age at scrape time: the replay clock (settle delay after the newest close) minus that close
    assert m["graphwiz_data_age_seconds"] == pytest.approx(s.service.settle_delay_s, abs=1.0)
    assert not math.isnan(m["graphwiz_model_accuracy"]) and -1 <= m["graphwiz_model_ic"] <= 1
    # a dedicated registry: nothing leaks into the process-wide default one
    assert REGISTRY.get_sample_value("graphwiz_equity_quote") is None


def test_the_shipped_scrape_config_targets_the_local_metrics_endpoint():
    cfg = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text())
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "graphwiz")
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
