"""Validated settings models. Unknown keys are rejected; secrets are ``SecretStr`` (masked in reprs/logs).

Every number that limits risk, size, time or cost has an allowed range (``Field(ge/gt, le/lt)``), listed in
its class's docstring; a value outside it fails at load naming its dotted path and the range
(``'risk.max_gross_leverage': ... (allowed range (0, 10])``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from graphwiz_trader.config.base import StrictModel



def _empty_to_none(v: object) -> object:
    """``${VAR:-}`` substitutes an empty string; an empty optional value means "not set"."""
    return None if isinstance(v, str) and v.strip() == "" else v


class ExchangeSettings(StrictModel):
    """One ccxt exchange connection.

    ``api_key``/``secret`` come from the environment (``${BINANCE_API_KEY}``) and are never printed.
    ``rate_limit_ms`` overrides ccxt's own per-exchange rate limit (milliseconds between requests).
    ``api_url`` (``http(s)://host[:port]``) sends every REST/websocket request there instead of the
    exchange (a local mock exchange in tests, or a proxy); unset: the exchange's own URLs.

    Allowed ranges: ``rate_limit_ms`` [0, 60000] ms; ``timeout_ms`` (0, 600000] ms; ``max_retries``
    [0, 20]; ``retry_backoff_s`` (0, 60] s (the first retry's wait; it doubles per attempt).
    """

    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    sandbox: bool = False
    rate_limit_ms: int | None = Field(default=None, ge=0, le=60_000)
    timeout_ms: int = Field(default=30_000, gt=0, le=600_000)
    max_retries: int = Field(default=5, ge=0, le=20)
    retry_backoff_s: float = Field(default=1.0, gt=0, le=60)
    api_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+/?$")

    _none_if_empty = field_validator("api_key", "secret", "rate_limit_ms", "api_url", mode="before")(_empty_to_none)


class QlibSettings(StrictModel):
    """Qlib data provider. ``freq`` is Qlib's name: ``day`` or ``60min`` (hourly), never ``1h``.

    The feature caches (content-addressed Qlib bins and the Alpha158 frames computed from them) are
    bounded: entries unused for more than ``cache_max_age_days`` (0, 3650] days are deleted, then the
    least recently used ones until the cache holds at most ``cache_max_size_mb`` (0, 1000000] MB.
    """

    provider_uri: Path = Path("data/qlib")
    region: Literal["cn", "us", "tw"] = "cn"
    freq: str = "60min"
    mlflow_dir: Path | None = None  # None: the runs root's mlruns/ (data.qlib_runtime.default_mlflow_dir)
    expression_cache: bool = True
    cache_max_size_mb: float = Field(default=2048.0, gt=0, le=1_000_000)
    cache_max_age_days: float = Field(default=30.0, gt=0, le=3650)

    @field_validator("freq")
    @classmethod
    def _qlib_freq(cls, v: str) -> str:
        from graphwiz_trader.core.timeframes import qlib_freq_is_valid

        if not qlib_freq_is_valid(v):
            raise ValueError(f"qlib freq must be 'day' or '<N>min' (hourly is '60min'), got {v!r}")
        return v


class StrategySettings(StrictModel):
    """Which universe is traded and how signals become target weights (read by ``graphwiz_trader.strategies``).

    ``model_path``: a saved model folder (``model.txt`` + ``meta.json``); empty: train at start on the warm-up
    history only. ``optimization_method``: the optimiser's method (``portfolio.optimiser.optimise_weights``,
    with ``risk.max_position_weight`` and ``risk.cash_buffer`` as caps); ``enable_portfolio_opt: false`` holds
    the ``topk`` strongest positive signals at equal weight instead. ``signal_threshold``: a score's distance
    from neutral (0.5 for a direction probability, 0 for a return forecast) below which it counts as no view.
    ``cash_buffer``: the share of equity the targets leave in cash (they sum to ``1 - cash_buffer``); keep it
    above ``risk.cash_buffer`` (the floor the risk manager enforces on buys) by at least one rebalance's costs,
    else buys are scaled down to the cash available.

    Allowed ranges: ``symbols`` 1 to 500 ``BASE/QUOTE`` pairs; ``timeframe`` a ccxt timeframe (``1h``);
    ``horizon_bars`` [1, 1000] bars; ``topk`` [1, 500];
    ``retrain_interval_hours`` (0, 87600] hours (empty: never retrain);
    ``signal_threshold`` [0, 0.5] of a score; ``score_ic`` (0, 1]; ``cash_buffer`` [0, 0.5] of equity;
    ``no_trade_band`` [0, 2] of equity (keep the current weights when the targets differ by less, summed);
    ``cov_window_bars`` [3, 100000] bars; ``train_window_bars`` [200, 100000] bars;
    ``decision_every_bars`` [1, 1000] bars; ``stale_after_bars`` [1, 1000] bars;
    ``initial_capital_quote`` (0, 1000000000000] quote (replay and paper);
    ``cycle_retries`` [0, 20] attempts; ``cycle_retry_backoff_s`` (0, 600] s (doubles per attempt).
    """

    name: str = "qlib_hybrid_v2"
    symbols: tuple[str, ...] = Field(default=("BTC/USDT", "ETH/USDT"), min_length=1, max_length=500)
    timeframe: str = "1h"
    horizon_bars: int = Field(default=1, ge=1, le=1000)
    use_graph_features: bool = True
    topk: int = Field(default=5, ge=1, le=500)
    model_path: Path | None = None
    retrain_interval_hours: float | None = Field(default=720.0, gt=0, le=87_600)
    signal_threshold: float = Field(default=0.0, ge=0, le=0.5)
    optimization_method: Literal["max_sharpe", "min_volatility", "efficient_risk", "hrp"] = "max_sharpe"
    enable_portfolio_opt: bool = True
    cash_buffer: float = Field(default=0.03, ge=0, le=0.5)
    no_trade_band: float = Field(default=0.0, ge=0, le=2)
    score_ic: float = Field(default=0.05, gt=0, le=1)
    cov_window_bars: int = Field(default=720, ge=3, le=100_000)
    train_window_bars: int = Field(default=2160, ge=200, le=100_000)
    decision_every_bars: int = Field(default=1, ge=1, le=1000)
    stale_after_bars: int = Field(default=2, ge=1, le=1000)
    initial_capital_quote: float = Field(default=100_000.0, gt=0, le=1e12)
    cycle_retries: int = Field(default=3, ge=0, le=20)
    cycle_retry_backoff_s: float = Field(default=1.0, gt=0, le=600)

    _none_if_empty = field_validator("model_path", "retrain_interval_hours", mode="before")(_empty_to_none)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from graphwiz_trader.core.symbols import split_symbol
        from graphwiz_trader.errors import GraphwizError

        for sym in v:
            try:
                split_symbol(sym)
            except GraphwizError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        from graphwiz_trader.core.timeframes import timeframe_minutes

        timeframe_minutes(v)  # TimeframeError is a ValueError: reported with the path
        return v


class ExecutionSettings(StrictModel):
    """Default order-working settings, the execution choice by order size, and the simulated costs.

    Execution choice (``graphwiz_trader.strategies``): an order worth at most ``small_order_adv_fraction`` of the
    trailing average quote volume per bar (ADV over ``impact_volume_window_bars``) goes ``small_strategy``; at
    least ``large_order_adv_fraction`` goes ``large_strategy`` (``PPO`` when ``ppo_model`` is set); in between
    ``default_strategy``; each over ``horizon_bars`` (MARKET: the next bar). ``max_participation`` is a fraction
    of bar volume. Replay and paper fills charge the backtester's costs
    (``backtest.settings.CostModel``): ``taker_fee_bps``, ``half_spread_bps`` + ``slippage_bps``,
    ``impact_coef_bps`` x sqrt(notional / ADV); orders below ``min_order_notional_quote`` are not sent.

    Allowed ranges: ``horizon_bars`` [1, 1440] bars; ``max_participation`` (0, 0.5] of a bar's volume;
    ``taker_fee_bps`` and ``maker_fee_bps`` [0, 500] bps;
    ``small_order_adv_fraction`` (0, 1] of ADV; ``large_order_adv_fraction`` (0, 100] of ADV;
    ``half_spread_bps`` [0, 1000] bps; ``slippage_bps`` [0, 1000] bps; ``impact_coef_bps`` [0, 10000] bps;
    ``impact_volume_window_bars`` [1, 100000] bars; ``min_order_notional_quote`` [0, 1000000] quote.
    """

    default_strategy: Literal["MARKET", "TWAP", "VWAP", "ALMGREN_CHRISS", "PPO"] = "TWAP"
    horizon_bars: int = Field(default=6, ge=1, le=1440)
    max_participation: float = Field(default=0.1, gt=0, le=0.5)
    taker_fee_bps: float = Field(default=10.0, ge=0, le=500)
    maker_fee_bps: float = Field(default=10.0, ge=0, le=500)
    small_order_adv_fraction: float = Field(default=0.01, gt=0, le=1)
    large_order_adv_fraction: float = Field(default=0.1, gt=0, le=100)
    small_strategy: Literal["MARKET", "TWAP"] = "MARKET"
    large_strategy: Literal["VWAP", "ALMGREN_CHRISS"] = "VWAP"
    ppo_model: Path | None = None
    half_spread_bps: float = Field(default=1.0, ge=0, le=1000)
    slippage_bps: float = Field(default=2.0, ge=0, le=1000)
    impact_coef_bps: float = Field(default=10.0, ge=0, le=10_000)
    impact_volume_window_bars: int = Field(default=24, ge=1, le=100_000)
    min_order_notional_quote: float = Field(default=10.0, ge=0, le=1_000_000)

    _none_if_empty = field_validator("ppo_model", mode="before")(_empty_to_none)

    @model_validator(mode="after")
    def _small_below_large(self) -> "ExecutionSettings":
        if self.small_order_adv_fraction > self.large_order_adv_fraction:
            raise ValueError(f"small_order_adv_fraction {self.small_order_adv_fraction} exceeds "
                             f"large_order_adv_fraction {self.large_order_adv_fraction}")
        return self


class RiskSettings(StrictModel):
    """Risk limits of the trading layer (``trading.risk.RiskManager``); weights are fractions of equity
    (0.2 = 20%), money in quote currency (``*_quote``), price distances in bps.

    Allowed ranges: ``max_position_weight`` (0, 1] and at most ``max_gross_leverage``;
    ``max_gross_leverage`` (0, 10]; ``cash_buffer`` [0, 0.5]; ``max_drawdown`` (0, 0.9];
    ``daily_loss_limit`` (0, 0.5].
    ``max_order_notional_quote`` (0, 1000000000] quote per order;
    ``price_band_bps`` (0, 5000] bps: a limit price further than this from the last price is rejected;
    ``max_orders_per_cycle`` [1, 10000] orders;
    ``stop_loss`` (0, 0.9] fraction below the entry price (None: off);
    ``take_profit`` (0, 10] fraction above the entry price (None: off);
    ``min_model_accuracy`` [0, 1] share of directions right over the trailing window (None: off);
    ``min_model_ic`` [-1, 1] mean cross-sectional IC over the trailing window (None: off);
    ``model_quality_window_bars`` [1, 100000] bars (the floor applies once the window is full).
    ``allow_short``: sells beyond the held position (spot accounts: false).
    """

    max_position_weight: float = Field(default=0.25, gt=0, le=1)
    max_gross_leverage: float = Field(default=1.0, gt=0, le=10)
    cash_buffer: float = Field(default=0.02, ge=0, le=0.5)
    max_drawdown: float = Field(default=0.2, gt=0, le=0.9)
    daily_loss_limit: float = Field(default=0.05, gt=0, le=0.5)
    max_order_notional_quote: float = Field(default=1_000_000.0, gt=0, le=1_000_000_000)
    price_band_bps: float = Field(default=200.0, gt=0, le=5000)
    max_orders_per_cycle: int = Field(default=50, ge=1, le=10_000)
    stop_loss: float | None = Field(default=None, gt=0, le=0.9)
    take_profit: float | None = Field(default=None, gt=0, le=10)
    min_model_accuracy: float | None = Field(default=None, ge=0, le=1)
    min_model_ic: float | None = Field(default=None, ge=-1, le=1)
    model_quality_window_bars: int = Field(default=168, ge=1, le=100_000)
    allow_short: bool = False

    _none_if_empty = field_validator("stop_loss", "take_profit", "min_model_accuracy", "min_model_ic",
                                     mode="before")(_empty_to_none)

    @model_validator(mode="after")
    def _position_within_gross(self) -> "RiskSettings":
        if self.max_position_weight > self.max_gross_leverage:
            raise ValueError(f"max_position_weight {self.max_position_weight} exceeds max_gross_leverage "
                             f"{self.max_gross_leverage}: one position cannot exceed the gross exposure")
        return self


class GraphSettings(StrictModel):
    """Graph store and builder settings.

    ``uri=None`` starts the embedded Bolt server (ArcadeDB) with its data under ``data_dir``
    (default ``$GRAPHWIZ_GRAPH_DIR`` or ``data/graph``) and a Java heap of ``embedded_heap``.
    ``batch_size`` is the number of rows per ``UNWIND $rows`` transaction.

    Allowed ranges: ``batch_size`` [1, 1000000] rows; ``corr_window`` [2, 100000] bars; ``corr_stride``
    [1, 100000] bars; ``min_abs_rho`` [0, 1]; ``top_k`` [1, 1000] edges per node (or none).
    """

    uri: str | None = None
    user: str = "neo4j"
    password: SecretStr | None = None
    database: str | None = None
    batch_size: int = Field(default=20_000, ge=1, le=1_000_000)
    data_dir: Path | None = None
    embedded_heap: str = Field(default="1g", pattern=r"^\d+[mg]$")
    corr_window: int = Field(default=720, ge=2, le=100_000)
    corr_stride: int = Field(default=24, ge=1, le=100_000)
    corr_method: Literal["pearson", "spearman"] = "pearson"
    min_abs_rho: float = Field(default=0.3, ge=0, le=1)
    top_k: int | None = Field(default=10, ge=1, le=1000)

    _none_if_empty = field_validator("uri", "password", "database", "top_k", "data_dir", mode="before")(_empty_to_none)


class ApiSettings(StrictModel):
    """The service's HTTP API (``service.api``): keys, rate limit, metrics access, Cypher limits.

    ``keys_file`` holds one key per line, ``<sha256 hex digest> <scope> <name>`` (scope ``read`` or ``trade``;
    ``#`` comments and blank lines ignored); ``keys`` holds the same lines inline (e.g. from ``${ENV}``). Only
    digests are stored; make a key with ``python -m graphwiz_trader.service.auth new-key --scope read --name x``.
    ``metrics_open_to_localhost`` lets a scrape from 127.0.0.1/::1 read ``/metrics`` without a key (otherwise
    Prometheus sends a read key as ``authorization: {credentials: ...}``, i.e. ``Authorization: Bearer``).

    Allowed ranges: ``rate_per_minute`` [1, 1000000] requests per key per minute; ``burst`` [1, 100000]
    requests; ``cypher_max_rows`` [1, 100000] rows; ``cypher_timeout_s`` [0.1, 300] seconds.
    """

    keys_file: Path | None = None
    keys: list[str] = Field(default_factory=list)
    rate_per_minute: float = Field(default=600.0, ge=1, le=1_000_000)
    burst: int = Field(default=60, ge=1, le=100_000)
    metrics_open_to_localhost: bool = False
    cypher_max_rows: int = Field(default=1000, ge=1, le=100_000)
    cypher_timeout_s: float = Field(default=10.0, ge=0.1, le=300)

    _none_if_empty = field_validator("keys_file", mode="before")(_empty_to_none)


def _comma_list(v: object) -> object:
    """``"123, -456"`` (one ``${ENV}`` string) or a YAML list -> a list; empty or missing -> []."""
    if v is None:
        return []
    if isinstance(v, str):
        return [p.strip() for p in v.split(",") if p.strip()]
    return v


_HTTP_BASE = r"^https?://[^\s?#]+$"


class TelegramSettings(StrictModel):
    """The Telegram bot of the service (``service.telegram``): alerts to, and commands from, allow-listed chats.

    ``bot_token`` comes from ``${TELEGRAM_BOT_TOKEN}``; ``chat_ids`` (a list, or one comma-separated
    ``${ENV}`` string) is the allow-list: alerts go to every one, and only these chats get answers to
    ``/status /positions /pnl /pause /resume /kill``. ``api_url`` is the Bot API base (tests use a local server).

    Allowed ranges: ``poll_timeout_s`` [0, 50] seconds (long polling); ``http_timeout_s`` (0, 120] seconds.
    """

    bot_token: SecretStr | None = None
    chat_ids: list[int] = Field(default_factory=list, max_length=100)
    api_url: str = Field(default="https://api.telegram.org", pattern=_HTTP_BASE)
    commands: bool = True
    poll_timeout_s: int = Field(default=25, ge=0, le=50)
    http_timeout_s: float = Field(default=30.0, gt=0, le=120)

    _none_if_empty = field_validator("bot_token", mode="before")(_empty_to_none)
    _ids = field_validator("chat_ids", mode="before")(_comma_list)


class AlertSettings(StrictModel):
    """When the service alerts, and where (``service.alerts``); every alert is also logged.

    Triggers: a one-cycle loss of ``large_loss`` or more, a drawdown of ``drawdown`` or more, live model
    accuracy below ``min_accuracy`` (once ``risk.model_quality_window_bars`` are measured), a breaker trip, data
    older than ``stale_data_s``, an exception in the loop. The same alert key is sent at most once per
    ``dedupe_window_s``; at most ``max_per_hour`` alerts are sent per hour (the rest are logged only).
    Channels: Telegram (``service.telegram``), Slack (``slack_webhook_url``, a secret: ``${SLACK_WEBHOOK_URL}``),
    email over SMTP (``smtp_host`` and ``email_to`` set; password from ``${SMTP_PASSWORD}``).

    Allowed ranges: ``large_loss`` (0, 1] and ``drawdown`` (0, 1] fractions of equity; ``min_accuracy`` [0, 1];
    ``stale_data_s`` (0, 604800] seconds; ``dedupe_window_s`` [0, 604800] seconds; ``max_per_hour`` [1, 10000];
    ``smtp_port`` [1, 65535]; ``http_timeout_s`` (0, 120] seconds.
    """

    large_loss: float = Field(default=0.03, gt=0, le=1)
    drawdown: float = Field(default=0.10, gt=0, le=1)
    min_accuracy: float | None = Field(default=0.45, ge=0, le=1)
    stale_data_s: float = Field(default=7200.0, gt=0, le=604_800)
    dedupe_window_s: float = Field(default=3600.0, ge=0, le=604_800)
    max_per_hour: int = Field(default=30, ge=1, le=10_000)
    slack_webhook_url: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65_535)
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    email_from: str = "graphwiz@localhost"
    email_to: list[str] = Field(default_factory=list, max_length=100)
    http_timeout_s: float = Field(default=10.0, gt=0, le=120)

    _none_if_empty = field_validator("slack_webhook_url", "smtp_host", "smtp_user", "smtp_password",
                                     "min_accuracy", mode="before")(_empty_to_none)
    _to = field_validator("email_to", mode="before")(_comma_list)

    @field_validator("slack_webhook_url")
    @classmethod
    def _webhook_is_http(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL (the value is not shown: it is a secret)")
        return v


class RetrainSettings(StrictModel):
    """Scheduled champion/challenger retraining (``service.retrain``).

    Every ``interval_hours`` a challenger is trained on the bars up to the decision; it replaces the champion
    only when its ``metric`` (``ic``: mean cross-sectional IC; ``accuracy``: share of directions right) on the
    latest walk-forward fold (the newest ``test_bars`` bars, trained on the ``strategy.train_window_bars`` before
    them) beats the champion's on the same fold by at least ``margin``. Versions go to the mlflow store
    (``experiment``) and the journal.

    Allowed ranges: ``interval_hours`` (0, 87600] hours; ``margin`` [0, 1] (metric units); ``test_bars``
    [24, 100000] bars; ``keep_versions`` [1, 1000].
    """

    enabled: bool = False
    interval_hours: float = Field(default=168.0, gt=0, le=87_600)
    metric: Literal["ic", "accuracy"] = "ic"
    margin: float = Field(default=0.01, ge=0, le=1)
    test_bars: int = Field(default=168, ge=24, le=100_000)
    keep_versions: int = Field(default=20, ge=1, le=1000)
    experiment: str = Field(default="graphwiz_service", min_length=1, max_length=128)


class ServiceSettings(StrictModel):
    """The always-on service (``service:``; ``graphwiz serve``).

    The loop runs one strategy cycle per bar, ``settle_delay_s`` after each bar's close (the close computed from
    the clock, so waits never drift), each under a deadline of ``cycle_deadline_s``; a failed cycle raises an
    alert and the next attempt waits ``backoff_initial_s`` doubling up to ``backoff_max_s``. ``engine`` is
    ``paper`` (live bars, simulated fills) or ``live`` (``exchange``; real orders need ``confirm_real_money``);
    ``--replay DIR`` replays a bar folder instead. ``journal`` is the trade journal (SQLite path or URL; empty:
    ``service/journal.sqlite`` under the runs folder); ``run_id`` names the run, so a restarted service resumes it.
    ``host``/``port``: the HTTP server (API, dashboard, ``/health``, ``/metrics``), 127.0.0.1 by default.

    Allowed ranges: ``port`` [1, 65535]; ``settle_delay_s`` [0, 3600] seconds; ``cycle_deadline_s`` (0, 86400]
    seconds; ``backoff_initial_s`` (0, 3600] and ``backoff_max_s`` (0, 86400] seconds; ``shutdown_timeout_s``
    (0, 3600] seconds.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65_535)
    engine: Literal["paper", "live"] = "paper"
    exchange: str | None = None
    sandbox: bool = True
    confirm_real_money: bool = False
    journal: str | None = None
    run_id: str = Field(default="service", pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    graph_store: bool = True
    settle_delay_s: float = Field(default=5.0, ge=0, le=3600)
    cycle_deadline_s: float = Field(default=600.0, gt=0, le=86_400)
    backoff_initial_s: float = Field(default=5.0, gt=0, le=3600)
    backoff_max_s: float = Field(default=900.0, gt=0, le=86_400)
    shutdown_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    alerts: AlertSettings = AlertSettings()
    telegram: TelegramSettings = TelegramSettings()
    retrain: RetrainSettings = RetrainSettings()
    api: ApiSettings = ApiSettings()

    _none_if_empty = field_validator("exchange", "journal", mode="before")(_empty_to_none)

    @model_validator(mode="after")
    def _backoff_order(self) -> "ServiceSettings":
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(f"backoff_max_s {self.backoff_max_s} is below backoff_initial_s "
                             f"{self.backoff_initial_s}")
        return self


class DataSettings(StrictModel):
    """Where bars live: the Parquet store folder."""

    store_dir: Path = Path("data/store")


class TradingSettings(StrictModel):
    """The whole ``config/trading_config.yaml``."""

    exchanges: dict[str, ExchangeSettings] = Field(default_factory=lambda: {"binance": ExchangeSettings()})
    data: DataSettings = DataSettings()
    qlib: QlibSettings = QlibSettings()
    strategy: StrategySettings = StrategySettings()
    execution: ExecutionSettings = ExecutionSettings()
    risk: RiskSettings = RiskSettings()
    graph: GraphSettings = GraphSettings()
    service: ServiceSettings = ServiceSettings()
