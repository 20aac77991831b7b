"""A report page carries plotly.js once, inline, loads nothing from the network, writes the same bytes for the
same input, and a series keeps one colour wherever it is drawn."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from graphwiz_trader.reports import RUN_PALETTE, ColourMap, Page, fmt_value, html_table, with_alpha

SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc\s*=", re.I)
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


def _page(n_figures: int = 3) -> Page:
    page = Page("a <test> page", ["label & notes"])
    for k in range(n_figures):
        page.section(f"panel {k}")
        page.figure(go.Figure(go.Scatter(x=[1, 2, 3], y=[k, k + 1, k + 3], name=f"s{k}")))
    page.table(pd.DataFrame({"run": [0.1234, float("nan")]}, index=["total_return", "sharpe"]),
               {"total_return": "pct"})
    return page


def test_plotly_js_is_inlined_exactly_once_and_no_script_has_a_src():
    html = _page(3).render()
    bundle_head = get_plotlyjs()[:200]
    assert html.count(bundle_head) == 1
    assert html.count("Plotly.newPlot(") == 3
    assert not SCRIPT_SRC.search(html), "a <script src=...> would need a server or the network"
    page_only = html.replace(get_plotlyjs(), "")  # the bundle's own strings (its 'Produced with Plotly' link)
    assert not REMOTE.search(page_only), "no src/href of the page may point at another host"
    assert "cdn.plot.ly" not in page_only


def test_the_same_page_renders_to_the_same_bytes(tmp_path: Path):
    a = _page().write(tmp_path / "a.html").read_bytes()
    b = _page().write(tmp_path / "b.html").read_bytes()
    assert a == b  # numbered div ids, not random uuids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html"]  # no temp files left behind


def test_text_is_escaped_and_numbers_are_formatted_by_kind():
    html = _page(0).render()
    assert "<h1>a &lt;test&gt; page</h1>" in html and "label &amp; notes" in html
    assert ">12.34%<" in html and ">n/a<" in html
    t = html_table(pd.DataFrame({"x": ["<b>"]}, index=["r"]))
    assert "&lt;b&gt;" in t and "<b>" not in t
    assert fmt_value(0.00125, "bps") == "12.5" and fmt_value(1234.0, "int") == "1,234"
    assert fmt_value(float("inf")) == "n/a" and fmt_value(None, "pct") == "n/a"


def test_a_name_keeps_its_colour_whichever_panel_asks_first():
    runs = ColourMap(names=["strategy", "benchmark"])
    assert runs["benchmark"] == RUN_PALETTE[1]  # fixed by the constructor, not by the first request
    assert runs["strategy"] == RUN_PALETTE[0] == runs["strategy"]
    assert runs["new"] == RUN_PALETTE[2]
    fixed = ColourMap(["#000001", "#000002"], fixed={"costs": "#7F7F7F"})
    assert fixed["costs"] == "#7F7F7F" and fixed["a"] == "#000001" and fixed["b"] == "#000002"
    assert fixed["c"] == "#000001"  # the palette repeats past its end
    assert with_alpha("#FF8000", 0.5) == "rgba(255, 128, 0, 0.5)"
