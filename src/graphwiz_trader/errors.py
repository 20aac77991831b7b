"""Exception hierarchy. Every error says what was wrong and where."""

from __future__ import annotations


class GraphwizError(Exception):
    """Base class of every error raised on purpose by graphwiz_trader."""


class ConfigError(GraphwizError):
    """A configuration file or value is invalid (unknown key, missing env var, bad type)."""


class DataError(GraphwizError):
    """Market data is malformed or unusable (unreadable file, bad columns, failed validation)."""


class DataValidationError(DataError):
    """Strict validation found problems; ``report`` holds the full :class:`ValidationReport`."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class UnknownSymbolError(DataError):
    """One or more requested symbols are not available from a source or store."""

    def __init__(self, missing: list[str], where: str, available: list[str] | None = None) -> None:
        self.missing = list(missing)
        self.where = where
        self.available = list(available or [])
        hint = ""
        if self.available:
            shown = ", ".join(self.available[:12]) + (" ..." if len(self.available) > 12 else "")
            hint = f"; available: {shown}"
        super().__init__(f"unknown symbol(s) {', '.join(self.missing)} in {where}{hint}")


class ExchangeUnavailableError(GraphwizError):
    """The exchange could not be reached after retries. No data is substituted."""


class TimeframeError(GraphwizError, ValueError):
    """A timeframe or Qlib frequency name is not understood (``1H``, ``60m`` for Qlib, ...)."""


class NoBarsInRangeError(DataError):
    """Requested symbols have no bars in the requested time range; ``reasons`` maps each to why."""

    def __init__(self, reasons: dict[str, str], window: str) -> None:
        self.reasons = dict(reasons)
        self.window = window
        listed = "; ".join(f"{sym}: {why}" for sym, why in self.reasons.items())
        super().__init__(f"no bars in {window} for {len(self.reasons)} symbol(s): {listed}")


class FoldError(ConfigError, ValueError):
    """Walk-forward settings that cannot work: a gap shorter than the label horizon, no fold fits the data."""


class SettingError(ConfigError, ValueError):
    """A value passed in code or on the command line is outside what the function accepts (a horizon of 0,
    an unknown label kind, negative ensemble weights). A ``ValueError`` too, for callers that catch that."""


class InsufficientDataError(DataError, ValueError):
    """The data cannot support the computation (a constant training label, no overlapping rows)."""
