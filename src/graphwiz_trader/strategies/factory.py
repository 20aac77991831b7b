"""The two factories: ``create_qlib_strategy`` (one saved model, a threshold, simple sizing) and
``create_qlib_strategy_v2`` (hybrid generator, live graph, max-Sharpe optimiser, execution chosen by size vs ADV).

Both read ``config/trading_config.yaml`` (or ``config_path``): its ``strategy``, ``risk`` and ``execution``
sections, validated by :class:`~graphwiz_trader.config.settings.TradingSettings` (a value outside its allowed
range is a :class:`~graphwiz_trader.errors.ConfigError` naming the dotted key and the range). ``config={...}``
overrides keys of those sections, flat (``{"optimization_method": "max_sharpe", "max_position_weight": 0.2}``:
each key is looked up in ``strategy``, ``risk``, ``execution``) or nested (``{"risk": {...}}``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.config.loader import load_yaml, validate_mapping
from graphwiz_trader.config.settings import (
    ExecutionSettings,
    RiskSettings,
    StrategySettings,
    TradingSettings,
)
from graphwiz_trader.errors import ConfigError
from graphwiz_trader.strategies.core import Strategy
from graphwiz_trader.strategies.signals import ModelScores, PanelScores

log = logging.getLogger(__name__)

__all__ = ["create_qlib_strategy", "create_qlib_strategy_v2", "resolve_settings"]

SECTIONS: dict[str, type] = {"strategy": StrategySettings, "risk": RiskSettings, "execution": ExecutionSettings}
DEFAULT_CONFIG = Path("config/trading_config.yaml")


def resolve_settings(config: Mapping[str, Any] | None = None, config_path: str | Path | None = DEFAULT_CONFIG,
                     settings: TradingSettings | None = None) -> TradingSettings:
    """The trading settings: ``settings`` or the file at ``config_path`` (the defaults when the default path does
    not exist), with ``config`` overrides applied (see the module docstring) and validated again."""
    if settings is not None:
        raw = settings.model_dump(mode="python")
        source = "settings"
    elif config_path is not None and Path(config_path).exists():
        raw = load_yaml(config_path)
        source = str(config_path)
    elif config_path is not None and Path(config_path) != DEFAULT_CONFIG:
        raise ConfigError(f"config file not found: {config_path}")
    else:
        raw, source = {}, "defaults"
    if config:
        raw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
        for key, value in config.items():
            if key in SECTIONS and isinstance(value, Mapping):
                raw.setdefault(key, {}).update(value)
                continue
            homes = [name for name, model in SECTIONS.items() if key in model.model_fields]
            if not homes:
                known = sorted(set().union(*(m.model_fields for m in SECTIONS.values())))
                raise ConfigError(f"unknown strategy config key {key!r}; known keys of strategy, risk and execution: "
                                  f"{', '.join(known)}")
            raw.setdefault(homes[0], {})[key] = value
        source += " + config overrides"
    return validate_mapping(raw, TradingSettings, source)


def _store_for(settings: TradingSettings, graph_store: Any) -> Any:
    if graph_store is False:
        return None
    if graph_store is not None:
        return graph_store
    from graphwiz_trader.graph.store import GraphStore

    return GraphStore.connect(settings.graph)


def _graph(symbols: list[str], settings: TradingSettings, store: Any, run_id: str | None, graph_spec: Any) -> Any:
    from graphwiz_trader.graph.pipeline import GraphBuildSettings
    from graphwiz_trader.strategies.live_graph import LiveGraph

    spec = graph_spec or GraphBuildSettings.from_settings(settings.graph)
    return LiveGraph(symbols, spec, settings.strategy.timeframe, store=store, run_id=run_id or "run")


def _common(trading_engine: Any, symbols: list[str] | None, settings: TradingSettings) -> list[str]:
    syms = list(symbols) if symbols else list(settings.strategy.symbols)
    if not syms:
        raise ConfigError("no symbols: pass symbols= or set strategy.symbols")
    if trading_engine is None:
        raise ConfigError("a strategy needs a trading engine (ReplayEngine, PaperTradingEngine, LiveTradingEngine)")
    return syms


def create_qlib_strategy(trading_engine: Any, symbols: list[str] | None = None, model_path: str | Path | None = None,
                         *, config: Mapping[str, Any] | None = None,
                         config_path: str | Path | None = DEFAULT_CONFIG, settings: TradingSettings | None = None,
                         journal: Any = None, run_id: str | None = None, risk_manager: Any = None,
                         graph_store: Any = False, work_dir: str | Path | None = None, **kwargs: Any) -> Strategy:
    """One saved model (``models.generator``'s ``load_model``), a signal threshold, simple sizing.

    Each cycle holds the ``topk`` symbols whose score is above neutral by at least ``strategy.signal_threshold``
    at equal weight (each at most ``risk.max_position_weight``, together at most ``1 - risk.cash_buffer``) and
    sells the rest. ``model_path`` defaults to ``strategy.model_path``. A model using graph features also gets the
    live graph (``graph_store``: an open store, ``None`` to connect from the ``graph`` section, ``False``: none).
    """
    from graphwiz_trader.models.generator import QlibSignalGenerator

    s = resolve_settings(config, config_path, settings)
    path = Path(model_path) if model_path is not None else s.strategy.model_path
    if path is None:
        raise ConfigError("create_qlib_strategy needs a saved model: pass model_path= or set strategy.model_path "
                          "(train one with `graphwiz models train` or use create_qlib_strategy_v2)")
    s = s.model_copy(update={"strategy": s.strategy.model_copy(update={"enable_portfolio_opt": False,
                                                                        "model_path": path})})
    syms = _common(trading_engine, symbols, s)
    from graphwiz_trader.models.files import read_json_file

    meta_path = Path(path) / "meta.json"
    meta = read_json_file(meta_path, "model metadata") if meta_path.is_file() else {}
    uses_graph = any(str(c).startswith("G_") for c in meta.get("feature_columns", []))
    graph = None
    if uses_graph:
        from graphwiz_trader.models.hybrid import HybridSignalGenerator

        store = _store_for(s, graph_store)
        graph = _graph(syms, s, store, run_id, kwargs.pop("graph_spec", None))
        gen: Any = HybridSignalGenerator(graph_spec=graph.spec, graph_settings=s.graph,
                                         work_dir=work_dir or s.qlib.provider_uri)
    else:
        gen = QlibSignalGenerator(work_dir=work_dir or s.qlib.provider_uri)
    scores = ModelScores(gen, graph=graph, model_path=path, features_engine=kwargs.pop("features_engine", "numpy"))
    return Strategy(trading_engine, syms, scores, s, journal=journal, run_id=run_id, risk_manager=risk_manager,
                    graph=graph, name=kwargs.pop("name", "qlib_v1"), **kwargs)


def create_qlib_strategy_v2(trading_engine: Any, symbols: list[str] | None = None,
                            config: Mapping[str, Any] | None = None, *,
                            config_path: str | Path | None = DEFAULT_CONFIG, settings: TradingSettings | None = None,
                            journal: Any = None, run_id: str | None = None, risk_manager: Any = None,
                            scores: pd.DataFrame | None = None, graph_store: Any = None,
                            work_dir: str | Path | None = None, model_dir: str | Path | None = None,
                            graph_spec: Any = None, features_engine: str = "numpy", mirror: Any = None,
                            **kwargs: Any) -> Strategy:
    """The hybrid generator (Alpha158 + graph features), the live graph, the optimiser and the execution choice.

    Parameters
    ----------
    trading_engine : the engine the strategy trades on (it starts and closes it).
    symbols : the universe (default ``strategy.symbols``).
    config : overrides of the ``strategy``/``risk``/``execution`` keys (see the module docstring).
    scores : a fixed ``datetime x symbol`` score panel instead of a model (no training; parity runs).
    graph_store : an open graph store; ``None``: connect with the ``graph`` section (the embedded server by
        default); ``False``: build the graph in memory only.
    work_dir : Qlib bins for training (default ``qlib.provider_uri``); ``model_dir``: where trained models are saved.
    graph_spec : a :class:`~graphwiz_trader.graph.pipeline.GraphBuildSettings` (default: from the ``graph`` section).
    features_engine : ``numpy`` or ``qlib`` for the newest bar's Alpha158 (equal values; numpy is faster).
    """
    s = resolve_settings(config, config_path, settings)
    syms = _common(trading_engine, symbols, s)
    st = s.strategy
    graph = None
    if st.use_graph_features:
        store = _store_for(s, graph_store)
        graph = _graph(syms, s, store, run_id, graph_spec)
    if scores is not None:
        source: Any = PanelScores(scores)
    else:
        from graphwiz_trader.models.targets import LabelSpec

        label = LabelSpec("direction", st.horizon_bars)
        wd = work_dir or s.qlib.provider_uri
        if st.use_graph_features:
            from graphwiz_trader.models.hybrid import HybridSignalGenerator

            gen: Any = HybridSignalGenerator(label=label, graph_spec=graph.spec, graph_settings=s.graph, work_dir=wd)
        else:
            from graphwiz_trader.models.generator import QlibSignalGenerator

            gen = QlibSignalGenerator(label=label, work_dir=wd)
        every = pd.Timedelta(hours=st.retrain_interval_hours) if st.retrain_interval_hours else None
        source = ModelScores(gen, graph=graph, model_path=st.model_path, train_window_bars=st.train_window_bars,
                             retrain_every=every, features_engine=features_engine, model_dir=model_dir)
    return Strategy(trading_engine, syms, source, s, journal=journal, run_id=run_id, risk_manager=risk_manager,
                    graph=graph, mirror=mirror, name=kwargs.pop("name", st.name), **kwargs)
