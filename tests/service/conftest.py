"""Shared pieces of the service tests: a small SYNTHETIC market written as a freqtrade bar folder, and the settings
of a quick strategy (no graph, a small model trained at start)."""

import socket

import pytest
import yaml

from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.data.synthetic import (
    SyntheticMarketSettings,
    generate_synthetic_market,
)

SYMBOLS = ["SYN00/USDT", "SYN01/USDT", "SYN02/USDT", "SYN03/USDT"]

QUICK = {
    "strategy": {"symbols": SYMBOLS, "use_graph_features": False, "model_path": None, "retrain_interval_hours": None,
                 "train_window_bars": 240, "cov_window_bars": 48, "topk": 2, "enable_portfolio_opt": False,
                 "signal_threshold": 0.0, "decision_every_bars": 1, "cycle_retries": 0,
                 "cycle_retry_backoff_s": 0.01},
    "risk": {"max_drawdown": 0.5, "daily_loss_limit": 0.5, "min_model_accuracy": None, "min_model_ic": None},
    "execution": {"default_strategy": "MARKET"},
    "service": {"settle_delay_s": 2, "backoff_initial_s": 0.5, "backoff_max_s": 2, "graph_store": False},
}


def quick_settings(**service):
    raw = {k: dict(v) for k, v in QUICK.items()}
    raw["service"].update(service)
    return TradingSettings.model_validate(raw)


def write_quick_config(path, **service):
    raw = {k: dict(v) for k, v in QUICK.items()}
    raw["service"].update(service)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="session")
def synthetic_market():
    return generate_synthetic_market(SyntheticMarketSettings(n_assets=4, n_clusters=2, n_bars=900, seed=7))


@pytest.fixture(scope="session")
def bars_folder(synthetic_market, tmp_path_factory):
    """The SYNTHETIC market as ``<BASE>_USDT-1h.feather`` files (freqtrade layout)."""
    d = tmp_path_factory.mktemp("synthetic_bars")
    for sym, df in synthetic_market.bars.items():
        out = df.reset_index().rename(columns={df.index.name or "index": "date"})
        out[["date", "open", "high", "low", "close", "volume"]].to_feather(d / f"{sym.replace('/', '_')}-1h.feather")
    return d


@pytest.fixture
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
