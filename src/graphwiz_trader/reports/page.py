"""HTML report pages with one plotly loading policy: plotly.js inlined once, in ``<head>``.

Every page carries the plotly.js bundled with the installed ``plotly`` package, once, as an inline
script; figures are added as ``<div>`` + ``Plotly.newPlot`` with ``include_plotlyjs=False``. Nothing
is fetched at run time (no CDN, no MathJax), so a report opened offline, from a mail attachment or a
CI artefact draws every chart. Titles of panels are HTML headings, not plotly titles, so they never
overlap the plots; tables are HTML tables (scrolling sideways when wide), never plotly tables, so they
are never clipped. Figure ``<div>`` ids are numbered (``fig-1`` ...) so the same input writes the same
file.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from graphwiz_trader.core.runs import atomic_write_bytes

PLOTLY_CONFIG: dict[str, Any] = {"responsive": True, "displaylogo": False,
                                 "modeBarButtonsToRemove": ["select2d", "lasso2d"]}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;font-size:14px;color:#222;
margin:0 auto;max-width:1280px;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:32px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 4px}p{margin:4px 0}.sub{color:#555;font-size:13px;margin:2px 0}
.note{color:#555;font-size:12.5px;margin:2px 0 8px;max-width:1100px}
.tbl{overflow-x:auto;margin:6px 0 12px}table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #d6d6d6;padding:3px 8px;white-space:nowrap}th{background:#f3f4f6;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafafa}
.fig{margin:0 0 8px}.toc{font-size:13px;margin:8px 0 0;padding-left:18px;columns:2}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
"""


def plotly_head_script() -> str:
    """The ``<script>`` holding the installed plotly.js (once per page)."""
    from plotly.offline import get_plotlyjs

    return ("<script type=\"text/javascript\">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script>")


def fmt_value(v: Any, kind: str = "num") -> str:
    """One cell: ``pct`` (fraction shown as %), ``bps`` (fraction shown in bps), ``int``, ``num``
    (3 decimals, 1 from 100 on) or ``text``; NaN/None/inf as ``n/a``."""
    if kind == "text":
        return "" if v is None else str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "n/a" if v is None else str(v)
    if f != f or f in (float("inf"), float("-inf")):
        return "n/a"
    if kind == "pct":
        return f"{100 * f:.2f}%"
    if kind == "bps":
        return f"{1e4 * f:.1f}"
    if kind == "int":
        return f"{int(round(f)):,}"
    return f"{f:.1f}" if abs(f) >= 100 else f"{f:.3f}"


def html_table(frame: pd.DataFrame, kinds: dict[str, str] | Callable[[Any, Any], str] | None = None,
               index_name: str | None = None) -> str:
    """``frame`` as an escaped HTML table, index as the first column.

    ``kinds`` maps a row label (or, when no row label matches, a column label) to a :func:`fmt_value`
    kind, or is a function ``(row, column) -> kind``; strings are shown as they are.
    """
    def kind_of(r: Any, c: Any) -> str:
        if callable(kinds):
            return kinds(r, c)
        if kinds:
            return kinds.get(str(r), kinds.get(str(c), "num"))
        return "num"

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    first = html.escape(index_name if index_name is not None else str(frame.index.name or ""))
    rows = []
    for r, row in frame.iterrows():
        cells = []
        for c, v in row.items():
            if isinstance(v, str):
                cells.append(f"<td>{html.escape(v)}</td>")
            else:
                cells.append(f"<td class=\"n\">{html.escape(fmt_value(v, kind_of(r, c)))}</td>")
        rows.append(f"<tr><th>{html.escape(str(r))}</th>{''.join(cells)}</tr>")
    return f"<div class=\"tbl\"><table><tr><th>{first}</th>{head}</tr>{''.join(rows)}</table></div>"


class Page:
    """A report page built section by section, rendered to one self-contained HTML file.

    Parameters
    ----------
    title
        ``<h1>`` and ``<title>``.
    subtitle
        Lines under the title (data label, score, costs); escaped.
    """

    def __init__(self, title: str, subtitle: Sequence[str] = ()) -> None:
        self.title = title
        self.subtitle = [s for s in subtitle if s]
        self._parts: list[str] = []
        self._toc: list[tuple[str, str]] = []
        self._n_fig = 0

    @property
    def n_figures(self) -> int:
        return self._n_fig

    def section(self, text: str) -> Page:
        """An ``<h2>`` listed in the contents."""
        anchor = f"s{len(self._toc) + 1}"
        self._toc.append((anchor, text))
        self._parts.append(f"<h2 id=\"{anchor}\">{html.escape(text)}</h2>")
        return self

    def heading(self, text: str) -> Page:
        self._parts.append(f"<h3>{html.escape(text)}</h3>")
        return self

    def note(self, text: str) -> Page:
        """A short explanatory line (definitions, units), escaped."""
        self._parts.append(f"<p class=\"note\">{html.escape(text)}</p>")
        return self

    def raw(self, fragment: str) -> Page:
        """Trusted HTML built by the caller (escape any data in it)."""
        self._parts.append(fragment)
        return self

    def table(self, frame: pd.DataFrame, kinds: dict[str, str] | Callable[[Any, Any], str] | None = None,
              index_name: str | None = None) -> Page:
        self._parts.append(html_table(frame, kinds, index_name))
        return self

    def figure(self, fig: go.Figure, height: int = 420) -> Page:
        """Add a plotly figure (its title, if any, is dropped: the preceding heading names it)."""
        self._n_fig += 1
        fig.update_layout(template="plotly_white", height=height, title=None, autosize=True,
                          margin={"l": 64, "r": 24, "t": 36, "b": 48},
                          legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
                          hovermode="x unified" if _all_scatter(fig) else "closest")
        body = fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False,
                           div_id=f"fig-{self._n_fig}", config=PLOTLY_CONFIG, default_width="100%",
                           default_height=f"{height}px")
        self._parts.append(f"<div class=\"fig\">{body}</div>")
        return self

    def render(self) -> str:
        subs = "".join(f"<p class=\"sub\">{html.escape(s)}</p>" for s in self.subtitle)
        toc = ""
        if len(self._toc) > 2:
            toc = "<ol class=\"toc\">" + "".join(f"<li><a href=\"#{a}\">{html.escape(t)}</a></li>"
                                                 for a, t in self._toc) + "</ol>"
        head = (f"<head><meta charset=\"utf-8\"><title>{html.escape(self.title)}</title>"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<style>{_CSS}</style>\n{plotly_head_script()}\n</head>")
        return (f"<!DOCTYPE html>\n<html lang=\"en\">{head}<body><h1>{html.escape(self.title)}</h1>{subs}{toc}"
                f"{''.join(self._parts)}</body></html>\n")

    def write(self, path: str | Path) -> Path:
        """Render and write atomically (temp file, fsync, rename); returns the path."""
        p = Path(path)
        atomic_write_bytes(p, self.render().encode("utf-8"))
        return p


def _all_scatter(fig: go.Figure) -> bool:
    return bool(fig.data) and all(t.type == "scatter" for t in fig.data)
