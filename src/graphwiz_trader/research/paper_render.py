"""Write the paper (Markdown and a self-contained HTML twin, figures as SVG) from ``paper.json``.

The text is built from the figures only: every number printed is read from the payload of
:func:`graphwiz_trader.research.paper.run_paper`, every claim is stated with its interval, and the verdicts
("the interval excludes zero") are computed, not written by hand. The same payload gives the same files.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphwiz_trader.core.runs import atomic_write_bytes

HIST_IC = 0.0522
HIST_RANK_IC = 0.0667
PRIMARY = "+all"
"""The hybrid declared before the run: Alpha158 + every family. The goals are judged on it; the other rows are
ablations (choosing the best of ten after the fact would overstate the gain)."""
FIGURE_VARIANTS = ("alpha158", "+graph18", "+all", "qlib_gats", "qlib_linear")
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


@dataclass
class Doc:
    """A paper as blocks: ("h", level, text), ("p", text), ("table", header, rows), ("fig", name, svg, caption),
    ("code", text), ("list", items)."""

    blocks: list[tuple[Any, ...]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", header, rows))

    def fig(self, name: str, svg: str, caption: str) -> None:
        self.blocks.append(("fig", name, svg, caption))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def items(self, items: list[str]) -> None:
        self.blocks.append(("list", items))


def _num(x: Any, digits: int = 4, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _pct(x: Any, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.{digits}f}"


def _ci(lo: Any, hi: Any, digits: int = 4) -> str:
    if lo is None or hi is None:
        return "n/a"
    return f"[{_num(lo, digits, True)}, {_num(hi, digits, True)}]"


def verdict(lo: Any, hi: Any) -> str:
    """What an interval says about a difference."""
    if lo is None or hi is None:
        return "no interval (too few blocks)"
    if lo > 0:
        return "above zero"
    if hi < 0:
        return "below zero"
    return "contains zero"


# ------------------------------------------------------------------------------------------------ figures

def line_svg(series: dict[str, list[float | None]], labels: list[str], title: str, y_label: str,
             width: int = 720, height: int = 300, cumulative: bool = True) -> str:
    """A small SVG line chart (no JavaScript, no fonts to fetch): one line per series over the blocks."""
    pad_l, pad_r, pad_t, pad_b = 56, 150, 28, 36
    data: dict[str, list[float]] = {}
    for name, vals in series.items():
        acc, out = 0.0, []
        for v in vals:
            acc = acc + (v or 0.0) if cumulative else (v if v is not None else float("nan"))
            out.append(acc)
        data[name] = out
    allv = [v for vals in data.values() for v in vals if math.isfinite(v)] + [0.0]
    lo, hi = min(allv), max(allv)
    if hi - lo < 1e-12:
        hi = lo + 1.0
    n = max(len(labels), 2)

    def x(i: int) -> float:
        return pad_l + (width - pad_l - pad_r) * i / (n - 1)

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (hi - v) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<text x="{pad_l}" y="16" font-size="13">{html.escape(title)}</text>',
             f'<line x1="{pad_l}" y1="{y(0):.1f}" x2="{width - pad_r}" y2="{y(0):.1f}" stroke="#999" '
             'stroke-dasharray="3,3"/>',
             f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" stroke="#333"/>']
    for frac in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * frac
        parts.append(f'<text x="{pad_l - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    for i in sorted({0, (len(labels) - 1) // 2, len(labels) - 1}):
        if 0 <= i < len(labels):
            parts.append(f'<text x="{x(i):.1f}" y="{height - pad_b + 14}" text-anchor="middle">'
                         f'{html.escape(str(labels[i]))}</text>')
    parts.append(f'<text x="12" y="{(height) / 2:.0f}" transform="rotate(-90 12 {(height) / 2:.0f})" '
                 f'text-anchor="middle">{html.escape(y_label)}</text>')
    for k, (name, vals) in enumerate(data.items()):
        c = COLOURS[k % len(COLOURS)]
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vals) if math.isfinite(v))
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{pts}"/>')
        ly = pad_t + 14 * k
        parts.append(f'<line x1="{width - pad_r + 10}" y1="{ly}" x2="{width - pad_r + 28}" y2="{ly}" '
                     f'stroke="{c}" stroke-width="2"/>')
        parts.append(f'<text x="{width - pad_r + 32}" y="{ly + 4}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------ sections

def _row_by(table: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((r for r in table if r["variant"] == name), None)


def _ablation_section(doc: Doc, key: str, ds: dict[str, Any], n_fig: list[int]) -> None:
    unit = "bars" if ds["info"].get("timeframe") != "1d" else "days"
    block = "fold" if ds["ablation"]["block"] == "fold" else "month"
    notes = {v["name"]: v["note"] for v in ds["variants"]}
    for h, hz in ds["horizons"].items():
        doc.h(3, f"{key}: horizon {h} {unit}")
        rows = []
        for r in hz["table"]:
            diff = "" if r["variant"] == "alpha158" else (
                f"{_num(r.get('diff_mean'), 4, True)} {_ci(r.get('diff_boot_lo'), r.get('diff_boot_hi'))}")
            hac = "" if r["variant"] == "alpha158" else _ci(r.get("diff_hac_lo"), r.get("diff_hac_hi"))
            ahead = "" if r["variant"] == "alpha158" else f"{int(r.get('ahead_blocks') or 0)}/{int(r.get('diff_n_blocks') or 0)}"
            rows.append([r["variant"], r["kind"], f"{_num(r['ric_mean'])} {_ci(r.get('ric_boot_lo'), r.get('ric_boot_hi'))}",
                         diff, hac, ahead, notes.get(r["variant"], "")])
        doc.table(["variant", "kind", f"Rank IC [95% block bootstrap over {block}s]",
                   "difference to alpha158 [95% block bootstrap]", "difference [95% HAC]", f"{block}s ahead",
                   "what"], rows)
        ric = hz["rank_ic"]
        shown = {v: ric["columns"][v] for v in FIGURE_VARIANTS if v in ric["columns"]}
        n_fig[0] += 1
        name = f"fig{n_fig[0]}_{key}_h{h}.svg"
        doc.fig(name, line_svg(shown, ric["index"], f"{key}, h = {h} {unit}: cumulative Rank IC by {block}",
                               "cumulative Rank IC"),
                f"Figure {n_fig[0]}. Cumulative sum of the per-{block} Rank IC, {key}, horizon {h} {unit}.")


def _shap_section(doc: Doc, ds: dict[str, Any]) -> None:
    for h, hz in ds["horizons"].items():
        stab = hz["shap_stability"].get(PRIMARY)
        if not stab:
            continue
        rows = [[s["family"], _pct(s["mean_share"], 1), _pct(s["std_share"], 1),
                 _pct(s["first_share"], 0), _num(s["rank_corr_consecutive"], 2)] for s in stab]
        doc.p(f"Horizon {h}, variant `{PRIMARY}`:")
        unit = "folds" if ds["ablation"]["block"] == "fold" else "months"
        doc.table(["family", "share of mean |SHAP| (%)", f"std across {unit} (pp)", f"{unit} ranked first (%)",
                   f"rank correlation, consecutive {unit}"], rows)


def _reference_section(doc: Doc, key: str, ds: dict[str, Any]) -> None:
    ref = ds["reference_label"]
    doc.h(3, f"{key}: the same scores on Qlib's label")
    doc.p(f"Published CSI300 figures (HIST: IC {HIST_IC}, Rank IC {HIST_RANK_IC}) are measured on Qlib's label "
          f"`{ref['label']}`, the return from the next close to the one after: a score made at a close is traded "
          "from the next day. The ablation's own label starts at the close the features end on, which no order "
          "can trade, and gives higher correlations. Here every model's scores (fitted on the ablation's label, "
          "not refitted) are measured on Qlib's label, on the same rows and months.")
    for h, rows in ref["horizons"].items():
        doc.table(["variant", f"IC on Qlib's label, scores of horizon {h} [95% block bootstrap]", "Rank IC [95%]"],
                  [[r["variant"], f"{_num(r['ic_mean'])} {_ci(r.get('ic_boot_lo'), r.get('ic_boot_hi'))}",
                    f"{_num(r['ric_mean'])} {_ci(r.get('ric_boot_lo'), r.get('ric_boot_hi'))}"] for r in rows])


def _costs_section(doc: Doc, key: str, ds: dict[str, Any]) -> None:
    if not ds.get("costs"):
        doc.p(f"{key}: no cost backtest in this run.")
        return
    for h, c in ds["costs"].items():
        rows = []
        for v, r in c["variants"].items():
            d = r.get("sharpe_diff_vs_alpha158")
            rows.append([v, _num(r["net_sharpe_daily"], 2), _num(100 * r["total_return"], 1),
                         "" if d is None else f"{_num(d['diff'], 2, True)} {_ci(d['lo'], d['hi'], 2)}",
                         "" if d is None else verdict(d["lo"], d["hi"])])
        ew = c.get("equal_weight")
        if ew:
            rows.append(["equal weight (naive)", _num(ew["net_sharpe_daily"], 2), _num(100 * ew["total_return"], 1),
                         "", ""])
        days = f" over the {c['days']} days with scores (and the day after each: the exit)" if c.get("days") else ""
        doc.p(f"{key}, horizon {h}: scores through rolling max-Sharpe and the cost-aware backtest, rebalanced every "
              f"{c['rebalance_bars']} bars; Sharpe from daily net returns{days}, annualised with "
              f"{'252 trading' if ds['info'].get('timeframe') == '1d' else '365'} days.")
        doc.table(["variant", "net Sharpe", "net return (%)", "Sharpe difference to alpha158 [95% block bootstrap]",
                   "interval"], rows)


def _claim_section(doc: Doc, payload: dict[str, Any]) -> None:
    rows = []
    for key, ds in payload["datasets"].items():
        for h, hz in ds["horizons"].items():
            for name in ("+graph18", PRIMARY):
                r = _row_by(hz.get("accuracy", []), name)
                base = _row_by(hz.get("accuracy", []), "alpha158")
                if r is None or base is None:
                    continue
                lo, hi = r.get("rel_boot_lo"), r.get("rel_boot_hi")
                inside = "n/a" if lo is None else ("inside" if lo >= 2.0 and hi <= 15.0 else
                                                   ("overlaps" if hi >= 2.0 and lo <= 15.0 else "outside"))
                rows.append([key, h, name, _num(100 * base["accuracy"], 2), _num(100 * r["accuracy"], 2),
                             f"{_num(r.get('rel_mean'), 2, True)} {_ci(lo, hi, 2)}", inside])
    doc.table(["dataset", "horizon", "variant", "alpha158 accuracy (%)", "variant accuracy (%)",
               "relative change (%) [95% block bootstrap]", "interval against 2-15%"], rows)


def _goals(doc: Doc, payload: dict[str, Any]) -> None:
    items = []
    cr = payload["datasets"].get("crypto")
    if cr:
        for h, hz in cr["horizons"].items():
            r = _row_by(hz["table"], PRIMARY)
            if r:
                met = r.get("diff_boot_lo") is not None and r["diff_mean"] >= 0.02 and r["diff_boot_lo"] > 0
                items.append(f"Crypto, h = {h}: `{PRIMARY}` − Alpha158 Rank IC {_num(r['diff_mean'], 4, True)} "
                             f"{_ci(r.get('diff_boot_lo'), r.get('diff_boot_hi'))} against the goal +0.02 with the "
                             f"interval above zero: **{'met' if met else 'not met'}**.")
    cs = payload["datasets"].get("csi300")
    if cs:
        for h, hz in cs["horizons"].items():
            r = _row_by(hz["table"], PRIMARY)
            if r:
                met = r.get("diff_boot_lo") is not None and r["diff_boot_lo"] > 0
                items.append(f"CSI300, h = {h}: `{PRIMARY}` − Alpha158 Rank IC {_num(r['diff_mean'], 4, True)} "
                             f"{_ci(r.get('diff_boot_lo'), r.get('diff_boot_hi'))}, interval "
                             f"{verdict(r.get('diff_boot_lo'), r.get('diff_boot_hi'))}: **{'met' if met else 'not met'}**.")
        ref = cs.get("reference_label") or {}
        for h, rows in (ref.get("horizons") or {}).items():
            r = _row_by(rows, PRIMARY)
            if r:
                items.append(f"Moonshot (HIST: IC {HIST_IC} on Qlib's label `{ref['label']}`): `{PRIMARY}` scores of "
                             f"horizon {h} on that label: IC {_num(r['ic_mean'])} "
                             f"{_ci(r.get('ic_boot_lo'), r.get('ic_boot_hi'))}, Rank IC {_num(r['ric_mean'])}: "
                             f"**{'met' if (r.get('ic_mean') or -1.0) >= HIST_IC else 'not met'}**.")
        if not ref:
            items.append("Moonshot (HIST's IC on Qlib's label): not measured in this run (no reference label).")
    for key, ds in payload["datasets"].items():
        for h, c in (ds.get("costs") or {}).items():
            d = c["variants"].get(PRIMARY, {}).get("sharpe_diff_vs_alpha158")
            if d:
                items.append(f"Costs, {key}, h = {h}: net Sharpe `{PRIMARY}` − Alpha158 {_num(d['diff'], 2, True)} "
                             f"{_ci(d['lo'], d['hi'], 2)}: **{'met' if d['lo'] > 0 else 'not met'}**.")
    doc.items(items or ["no dataset in this run"])


def build_paper(payload: dict[str, Any], command: str) -> Doc:
    """The paper's blocks from a run's payload."""
    doc = Doc()
    doc.h(1, "Does a correlation and regime graph add signal to Alpha158?")
    commands = command.split("\n")
    made = (f"`{command}`" if len(commands) == 1 else
            f"{len(commands)} runs of `graphwiz reproduce paper` (one per dataset; the commands are under Reproduce)")
    doc.p(f"Generated by {made} in {payload.get('seconds', 0):.0f} s. Every number below is read from the "
          "runs' `paper.json`; intervals are 95% moving-block bootstrap intervals over consecutive evaluation "
          "blocks (folds or months), with Newey-West (HAC) intervals beside them. Seeds: "
          f"{payload['settings'].get('seeds')}.")
    doc.h(2, "Goals: where this run lands")
    _goals(doc, payload)
    doc.h(2, "Data and protocol")
    items = []
    for key, ds in payload["datasets"].items():
        wf = ds["ablation"]["walkforward"]
        info = ds["info"]
        items.append(f"**{key}**: {ds['label']}; {info.get('rows')} rows, {info.get('instruments')} instruments, "
                     f"{info.get('range')}. Graph build `{ds['build_id']}` ({info.get('snapshots')} snapshots, "
                     "written to the graph store and read back). Folds: train "
                     f"{wf['train_len']}, purge gap >= horizon, test {wf['test_len']}, stride {wf['stride'] or wf['test_len']}, "
                     f"max folds {wf['max_folds']}; early stopping on the last {wf['stop_fraction']:.0%} of each "
                     f"training part. Blocks for the intervals: {ds['ablation']['block']}s. LightGBM "
                     f"{wf['lgb_params']}, {wf['num_boost_round']} rounds at most.")
    items.append("Label: the cross-sectional rank of the forward log return over h bars (unit variance). Rank IC: "
                 "Spearman correlation across instruments at each test time between score and forward return, "
                 "averaged per block; the same folds, rows and seeds for every variant.")
    items.append("Naive rows score without a model (`reversal_k`: minus the trailing k-bar return; `momentum_m`: "
                 "the return from t-m to t-1). Peer rows are Qlib's own models (CSI300).")
    doc.items(items)
    doc.h(2, "Graph feature families")
    fam_rows = []
    for key, ds in payload["datasets"].items():
        for fam, cols in ds["families"].items():
            fam_rows.append([key, fam, str(len(cols)), ", ".join(cols[:6]) + (" ..." if len(cols) > 6 else "")])
        fam_rows.append([key, "graph18 (current)", str(len(ds["graph18"])), ", ".join(ds["graph18"][:6]) + " ..."])
    doc.table(["dataset", "family", "columns", "first columns"], fam_rows)
    doc.p("Formulas and the point-in-time argument: `docs/graph_families.md`.")
    doc.h(2, "Ablations (Rank IC)")
    n_fig = [0]
    for key, ds in payload["datasets"].items():
        _ablation_section(doc, key, ds, n_fig)
    for key, ds in payload["datasets"].items():
        if ds.get("reference_label"):
            _reference_section(doc, key, ds)
    doc.h(2, "SHAP importance of the families and its stability")
    for key, ds in payload["datasets"].items():
        doc.h(3, key)
        _shap_section(doc, ds)
    doc.h(2, "After costs")
    for key, ds in payload["datasets"].items():
        _costs_section(doc, key, ds)
    doc.h(2, "The claim: graph features raise accuracy by 2-15%")
    doc.p("Accuracy here: the share of test rows whose score and forward return fall on the same side of their "
          "time's cross-sectional median (0.5 = a coin toss), per block; the relative change to Alpha158 in percent.")
    _claim_section(doc, payload)
    doc.h(2, "Reproduce")
    doc.code(command)
    return doc


# ------------------------------------------------------------------------------------------------ writers

def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Doc, fig_dir: str) -> str:
    out: list[str] = []
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "list":
            out.append("\n".join(f"- {x}" for x in b[1]))
        elif kind == "code":
            out.append(f"```bash\n{b[1]}\n```")
        elif kind == "table":
            head, rows = b[1], b[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "fig":
            out.append(f"![{b[3]}]({fig_dir}/{b[1]})\n\n*{b[3]}*")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    s = html.escape(text)
    parts = s.split("`")
    s = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = s.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def to_html(doc: Doc, title: str) -> str:
    body: list[str] = []
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            body.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b[1]) + "</ul>")
        elif kind == "code":
            body.append(f"<pre><code>{html.escape(b[1])}</code></pre>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f'<div class="tbl"><table><tr>{head}</tr>{rows}</table></div>')
        elif kind == "fig":
            body.append(f'<figure>{b[2]}<figcaption>{_inline(b[3])}</figcaption></figure>')
    css = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:16px 24px;color:#222}"
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}"
           "th{background:#f3f4f6}.tbl{overflow-x:auto}code{background:#f5f5f5;padding:0 2px}"
           "figcaption{font-size:12px;color:#555}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_paper(payload: dict[str, Any], md_path: Path, command: str) -> dict[str, str]:
    """Write ``md_path``, its HTML twin (same stem, ``.html``, figures inline) and the SVG figures beside the
    Markdown (``<stem>_files/``); every file written atomically. Returns the paths."""
    doc = build_paper(payload, command)
    md_path = Path(md_path)
    fig_dir = md_path.parent / f"{md_path.stem}_files"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for b in doc.blocks:
        if b[0] == "fig":
            atomic_write_bytes(fig_dir / b[1], b[2].encode())
    atomic_write_bytes(md_path, to_markdown(doc, fig_dir.name).encode())
    html_path = md_path.with_suffix(".html")
    atomic_write_bytes(html_path, to_html(doc, "graphwiz_trader paper").encode())
    return {"markdown": str(md_path), "html": str(html_path), "figures": str(fig_dir)}
