"""Each report opens in headless Chromium with no console or page error, no request leaving the machine, and an
svg drawn in every plotly div; a full-page screenshot goes to a temp folder (or $GRAPHWIZ_REPORT_SCREENSHOTS)."""

from __future__ import annotations

import pandas as pd
import pytest

from graphwiz_trader.backtest.report import regime_labels_for, write_report
from graphwiz_trader.research.report import write_walkforward_outputs



def _assert_drawn(seen) -> None:
    assert seen.plotly_divs > 0
    assert seen.undrawn_ids == [], f"plotly divs without an svg: {seen.undrawn_ids}"
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.blocked_requests == [], f"the page asked the network for {seen.blocked_requests}"
    assert seen.overflowing_tables == 0
    assert seen.screenshot is not None and seen.screenshot.stat().st_size > 10_000


def test_the_backtest_report_draws_every_chart_in_chromium(browser, backtest_runs, small_market, tmp_path,
                                                           screenshot_dir):
    strat = backtest_runs["strategy"]
    regime, note = regime_labels_for(small_market.bars, pd.Timedelta(hours=1), strat.equity.index[0])
    path = write_report(tmp_path / "backtest.html", backtest_runs, "graphwiz backtest (test)", "SYNTHETIC",
                        regime=regime, regime_note=note)
    seen = browser(path, screenshot_dir / "backtest_report.png")
    _assert_drawn(seen)
    assert seen.plotly_divs == 9


def test_the_research_report_draws_every_chart_in_chromium(browser, walkforward_runs, tmp_path, screenshot_dir):
    results, comparison, fwd = walkforward_runs
    paths = write_walkforward_outputs(results, tmp_path / "wf", "walk-forward (test)", comparison, "SYNTHETIC",
                                      fwd_returns=fwd)
    seen = browser(tmp_path / "wf" / "report.html", screenshot_dir / "research_report.png")
    _assert_drawn(seen)
    assert seen.plotly_divs == 8 and paths["html"].endswith("report.html")


def test_the_tear_sheet_opens_without_errors_or_network(browser, backtest_runs, tmp_path, screenshot_dir):
    pytest.importorskip("quantstats", reason="quantstats is not installed (the 'report' extra)")
    from graphwiz_trader.backtest.report import tearsheet_path

    path = write_report(tmp_path / "bt.html", backtest_runs, "t", "SYNTHETIC", tearsheet=True)
    seen = browser(tearsheet_path(path), screenshot_dir / "tearsheet.png")
    assert seen.console_errors == [] and seen.page_errors == [] and seen.blocked_requests == []
    assert seen.plotly_divs == 0 and seen.screenshot is not None
