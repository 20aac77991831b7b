"""The parser every ``graphwiz`` command is built with, and the options several commands share.

One rule for every command:

- every flag has help text and the help shows its default;
- metavars follow one rule (``N`` for integers, ``X`` for numbers, ``DIR``/``PATH``/``LIST``/``DATE``/``TF``
  for the shared data options, else the option name in capitals);
- ``-v/--verbose`` and ``--no-progress`` are accepted after any command;
- the data options (``--source --format --symbols --timeframe --start --end``) and ``--json`` are defined
  once, here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

DATA_FORMATS: tuple[str, ...] = ("freqtrade", "csv", "qlib", "store", "synthetic")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps description line breaks and appends ``(default: X)`` where a default exists."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or "default" in text.lower() or default is None or default is False
                or default is argparse.SUPPRESS or action.option_strings == [] or action.nargs == 0):
            return text
        return f"{text} (default: %(default)s)"


class GraphwizParser(argparse.ArgumentParser):
    """``ArgumentParser`` with the project's help formatter, metavar rule and per-command shared flags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("conflict_handler", "resolve")
        super().__init__(*args, **kwargs)
        # SUPPRESS: a subcommand's default must not overwrite what the top-level parser already set.
        super().add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="debug logging for graphwiz (third-party libraries stay at WARNING)")
        super().add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                             help="no progress bars")

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if args and args[0].startswith("-") and "metavar" not in kwargs and kwargs.get("action") in (None, "store"):
            if "choices" not in kwargs:
                kind = kwargs.get("type")
                if kind is int:
                    kwargs["metavar"] = "N"
                elif kind is float:
                    kwargs["metavar"] = "X"
        return super().add_argument(*args, **kwargs)


def add_data_options(parser: argparse.ArgumentParser, *, formats: Sequence[str] = DATA_FORMATS,
                     default_format: str | None = None, source_required: bool = False,
                     source_help: str = "folder of bar files (freqtrade/csv) or a Parquet store",
                     timeframe: str | None = "1h", symbols_help: str = "comma-separated, e.g. BTC/USDT,ETH/USDT "
                     "(default: every symbol of the source)", start_default: str | None = None) -> None:
    """Add the shared data options: ``--source --format --symbols --timeframe --start --end``, and the source
    options ``--calendar --symbol-pattern --symbol-column --provider --market`` (read by
    ``graphwiz_trader.data.sources.SourceOptions.from_args``).

    ``--format`` defaults to ``default_format``; when that is None, commands call :func:`resolve_format`
    (``freqtrade`` when ``--source`` is given, else ``synthetic``).
    """
    from graphwiz_trader.core.cli_types import symbols_arg, timeframe_arg, utc_arg

    parser.add_argument("--source", metavar="DIR", required=source_required, help=source_help)
    fmt_help = "layout of --source" + ("" if default_format else
                                       " (default: freqtrade with --source, else the SYNTHETIC market)")
    parser.add_argument("--format", choices=list(formats), default=default_format, help=fmt_help)
    parser.add_argument("--symbols", metavar="LIST", type=symbols_arg, help=symbols_help)
    if timeframe is not None:
        parser.add_argument("--timeframe", metavar="TF", type=timeframe_arg, default=timeframe,
                            help="bar size (ccxt style: 1m 15m 1h 4h 1d)")
    parser.add_argument("--start", metavar="DATE", type=utc_arg, default=start_default,
                        help="first bar, UTC (e.g. 2023-01-01 or 2023-01-01T12:00Z)")
    parser.add_argument("--end", metavar="DATE", type=utc_arg, help="last bar, UTC, inclusive (default: the data's end)")
    add_source_options(parser, formats)


def add_source_options(parser: argparse.ArgumentParser, formats: Sequence[str] = DATA_FORMATS) -> None:
    """``--calendar`` always; ``--symbol-pattern --symbol-column`` with csv; ``--provider --market`` with qlib."""
    parser.add_argument("--calendar", metavar="NAME",
                        help="trading calendar: 24/7 or an exchange such as XNYS, XSHG; closed sessions are not gaps "
                             "(default: inferred and stated: 24/7 for crypto pairs, XNYS for codes without a quote "
                             "currency, the region's exchange for qlib)")
    if "csv" in formats:
        parser.add_argument("--symbol-pattern", metavar="PATTERN",
                            help="CSV file names in --source with {symbol} (and optionally {timeframe}) in them, "
                                 "e.g. '{symbol}_daily.csv' (default: '{symbol}-{timeframe}.csv', else '{symbol}.csv')")
        parser.add_argument("--symbol-column", metavar="NAME",
                            help="CSV column holding the symbol, for long files or a --source that is one file "
                                 "(default: the file name gives the symbol; a long file: the first of symbol, "
                                 "ticker, name, instrument, code)")
    if "qlib" in formats:
        parser.add_argument("--provider", metavar="DIR",
                            help="Qlib data folder for --format qlib (default: --source)")
        parser.add_argument("--market", metavar="NAME",
                            help="Qlib market for --format qlib, e.g. csi300: its members, point in time, from "
                                 "instruments/<NAME>.txt (default: all)")


def resolve_format(args: argparse.Namespace) -> str:
    """``--format`` as given, else ``freqtrade`` when ``--source`` is given, else ``synthetic``."""
    fmt = getattr(args, "format", None)
    if fmt:
        return fmt
    return "freqtrade" if getattr(args, "source", None) else "synthetic"


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json PATH``: a copy of the run's ``summary.json`` written where the user asks."""
    parser.add_argument("--json", metavar="PATH", help="also write the figures (summary.json) to this file")


def add_config_option(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--config PATH``: the YAML settings file."""
    parser.add_argument("--config", metavar="PATH", default=default,
                        help="settings YAML" + ("" if default else " (default: config/trading_config.yaml when present)"))


def add_run_dir_option(parser: argparse.ArgumentParser) -> None:
    """``--out DIR``: use this folder as the run folder instead of ``runs/<command>/<UTC time>``."""
    parser.add_argument("--out", dest="run_dir", metavar="DIR",
                        help="run folder for this invocation (default: runs/<command>/<UTC time>)")
