"""Validated settings models. Unknown keys are rejected; secrets are ``SecretStr`` (masked in reprs/logs)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _empty_to_none(v: object) -> object:
    """``${VAR:-}`` substitutes an empty string; an empty optional value means "not set"."""
    return None if isinstance(v, str) and v.strip() == "" else v


class ExchangeSettings(_Strict):
    """One ccxt exchange connection.

    ``api_key``/``secret`` come from the environment (``${BINANCE_API_KEY}``) and are never printed.
    ``rate_limit_ms`` overrides ccxt's own per-exchange rate limit (milliseconds between requests).
    """

    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    sandbox: bool = False
    rate_limit_ms: int | None = Field(default=None, ge=0)
    timeout_ms: int = Field(default=30_000, gt=0)
    max_retries: int = Field(default=5, ge=0)
    retry_backoff_s: float = Field(default=1.0, gt=0)

    _none_if_empty = field_validator("api_key", "secret", "rate_limit_ms", mode="before")(_empty_to_none)


class QlibSettings(_Strict):
    """Qlib data provider. ``freq`` is Qlib's name: ``day`` or ``60min`` (hourly), never ``1h``."""

    provider_uri: Path = Path("data/qlib")
    region: Literal["cn", "us", "tw"] = "cn"
    freq: str = "60min"
    mlflow_dir: Path = Path("runs/mlruns")
    expression_cache: bool = True

    @field_validator("freq")
    @classmethod
    def _qlib_freq(cls, v: str) -> str:
        from graphwiz_trader.core.timeframes import qlib_freq_is_valid

        if not qlib_freq_is_valid(v):
            raise ValueError(f"qlib freq must be 'day' or '<N>min' (hourly is '60min'), got {v!r}")
        return v


class StrategySettings(_Strict):
    """Which universe is traded and how signals are made."""

    name: str = "qlib_hybrid_v2"
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    timeframe: str = "1h"
    horizon_bars: int = Field(default=1, gt=0)
    use_graph_features: bool = True
    retrain_every_bars: int = Field(default=720, gt=0)
    topk: int = Field(default=5, gt=0)


class ExecutionSettings(_Strict):
    """Default order-working settings. ``max_participation`` is a fraction of bar volume."""

    default_strategy: Literal["MARKET", "TWAP", "VWAP", "ALMGREN_CHRISS", "PPO"] = "TWAP"
    horizon_bars: int = Field(default=6, gt=0)
    max_participation: float = Field(default=0.1, gt=0, le=1)
    taker_fee_bps: float = Field(default=10.0, ge=0)
    maker_fee_bps: float = Field(default=10.0, ge=0)


class RiskSettings(_Strict):
    """Risk limits, all fractions of equity (0.2 = 20%)."""

    max_position_weight: float = Field(default=0.25, gt=0, le=1)
    max_gross_leverage: float = Field(default=1.0, gt=0)
    cash_buffer: float = Field(default=0.02, ge=0, lt=1)
    max_drawdown: float = Field(default=0.2, gt=0, le=1)
    daily_loss_limit: float = Field(default=0.05, gt=0, le=1)


class GraphSettings(_Strict):
    """Graph store and builder settings.

    ``uri=None`` starts the embedded Bolt server (ArcadeDB) with its data under ``data_dir``
    (default ``$GRAPHWIZ_GRAPH_DIR`` or ``data/graph``) and a Java heap of ``embedded_heap``.
    ``batch_size`` is the number of rows per ``UNWIND $rows`` transaction.
    """

    uri: str | None = None
    user: str = "neo4j"
    password: SecretStr | None = None
    database: str | None = None
    batch_size: int = Field(default=20_000, gt=0)
    data_dir: Path | None = None
    embedded_heap: str = Field(default="1g", pattern=r"^\d+[mg]$")
    corr_window: int = Field(default=720, gt=1)
    corr_stride: int = Field(default=24, gt=0)
    corr_method: Literal["pearson", "spearman"] = "pearson"
    min_abs_rho: float = Field(default=0.3, ge=0, le=1)
    top_k: int | None = Field(default=10, gt=0)

    _none_if_empty = field_validator("uri", "password", "database", "top_k", "data_dir", mode="before")(_empty_to_none)


class DataSettings(_Strict):
    """Where bars live: the Parquet store folder."""

    store_dir: Path = Path("data/store")


class TradingConfig(_Strict):
    """The whole ``config/trading_config.yaml``."""

    exchanges: dict[str, ExchangeSettings] = Field(default_factory=lambda: {"binance": ExchangeSettings()})
    data: DataSettings = DataSettings()
    qlib: QlibSettings = QlibSettings()
    strategy: StrategySettings = StrategySettings()
    execution: ExecutionSettings = ExecutionSettings()
    risk: RiskSettings = RiskSettings()
    graph: GraphSettings = GraphSettings()
