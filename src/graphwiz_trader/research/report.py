"""Walk-forward reports: fold metrics (JSON + CSV), an HTML page (plotly) and a PNG (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.jsonout import _plain
from graphwiz_trader.research.experiment import WalkForwardResult, config_dict


def write_walkforward_outputs(results: dict[str, WalkForwardResult], out_dir: str | Path, title: str,
                              comparison: dict[str, Any] | None = None, data_label: str = "") -> dict[str, str]:
    """Write per-fold CSV/JSON for each run, importance + stability CSVs, ``report.html`` and ``report.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for name, res in results.items():
        res.folds.to_csv(out / f"folds_{name}.csv", index=False)
        (out / f"folds_{name}.json").write_text(json.dumps(_plain({
            "config": config_dict(res.config), "summary": res.summary(),
            "folds": res.folds.to_dict(orient="records"), "best_params": res.best_params}), indent=2))
        imp = pd.DataFrame({"gain_mean": res.gain.mean(), "shap_mean": res.shap.mean(),
                            "top20_share_gain": res.stability("gain"), "top20_share_shap": res.stability("shap")})
        imp.sort_values("shap_mean", ascending=False).to_csv(out / f"importance_{name}.csv")
        paths[f"folds_{name}"] = str(out / f"folds_{name}.csv")

    fig = make_subplots(rows=2, cols=1, subplot_titles=("IC by fold (out of sample)",
                                                        "Cumulative long-short log return (top vs bottom fifth, before costs)"))
    for name, res in results.items():
        fig.add_trace(go.Bar(x=res.folds["test_start"], y=res.folds["ic"], name=f"IC {name}"), row=1, col=1)
        if len(res.long_short):
            cum = res.long_short.cumsum()
            fig.add_trace(go.Scatter(x=cum.index, y=cum.values, mode="lines", name=f"long-short {name}"), row=2, col=1)
    fig.update_layout(title=f"{title}<br><sub>{data_label}</sub>", height=800, barmode="group")
    tables = []
    for name, res in results.items():
        s = res.summary()
        rows = "".join(f"<tr><td>{k}</td><td>{v['mean']:.4f}</td><td>{v['std']:.4f}</td>"
                       f"<td>[{v['ci_low']:.4f}, {v['ci_high']:.4f}]</td></tr>"
                       for k, v in s.items() if isinstance(v, dict))
        top = res.stability("shap").head(20)
        trs = "".join(f"<tr><td>{f}</td><td>{v:.2f}</td></tr>" for f, v in top.items())
        tables.append(f"<h3>{name}: {s['n_folds']} folds</h3><table border=1 cellpadding=4><tr><th>metric</th>"
                      f"<th>mean</th><th>std</th><th>95% CI (t, across folds)</th></tr>{rows}</table>"
                      f"<h4>Feature stability: share of folds in the top 20 by |SHAP|</h4>"
                      f"<table border=1 cellpadding=4>{trs}</table>")
    cmp_html = ""
    if comparison:
        lo, hi = comparison["accuracy_improvement_pct_ci_t"]
        blo, bhi = comparison["accuracy_improvement_pct_ci_bootstrap"]
        cmp_html = (f"<h3>Hybrid vs baseline</h3><p>accuracy improvement {comparison['accuracy_improvement_pct']:.3f}% "
                    f"(95% CI t [{lo:.3f}, {hi:.3f}], bootstrap [{blo:.3f}, {bhi:.3f}]); IC difference "
                    f"{comparison['ic_difference']:.4f}; hybrid better in {comparison['hybrid_better_folds']} of "
                    f"{comparison['n_folds']} folds</p>")
    html = (f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h2>{title}</h2>"
            f"<p>{data_label}</p>{fig.to_html(full_html=False, include_plotlyjs='cdn')}{cmp_html}{''.join(tables)}"
            f"</body></html>")
    (out / "report.html").write_text(html)
    paths["html"] = str(out / "report.html")

    figm, axes = plt.subplots(2, 1, figsize=(11, 8))
    width = 0.8 / max(1, len(results))
    for i, (name, res) in enumerate(results.items()):
        x = np.arange(len(res.folds))
        axes[0].bar(x + i * width, res.folds["ic"], width=width, label=name)
        if len(res.long_short):
            axes[1].plot(res.long_short.index, res.long_short.cumsum().values, label=name)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_title("IC by fold (out of sample)")
    axes[0].set_xlabel("fold")
    axes[0].legend()
    axes[1].set_title("Cumulative long-short log return (before costs)")
    axes[1].legend()
    figm.suptitle(f"{title}\n{data_label}", fontsize=10)
    figm.tight_layout()
    figm.savefig(out / "report.png", dpi=90)
    plt.close(figm)
    paths["png"] = str(out / "report.png")
    return paths
