/* The dashboard: loads /api/v1/overview, /pnl and /equity, and reloads them on each `cycle` event. */
"use strict";
(() => {
  const { api, fmt, text, cell, plotConfig } = GW;
  // a fresh layout per call: plotly writes ranges into the layout objects it is given
  const layout = (x, y, extra) => Object.assign({ margin: { l: 60, r: 16, t: 8, b: 44 }, paper_bgcolor: "#fff",
    plot_bgcolor: "#fff", showlegend: false, xaxis: Object.assign({ gridcolor: "#eee" }, x || {}),
    yaxis: Object.assign({ gridcolor: "#eee" }, y || {}) }, extra || {});

  function drawCurves(points) {
    const ts = points.map(p => p.ts), eq = points.map(p => p.equity), dd = points.map(p => -p.drawdown);
    Plotly.react("equity-chart", [{ x: ts, y: eq, type: "scatter", mode: "lines", line: { color: "#2f6fdf" },
                                    name: "equity" }], layout({ type: "date" }), plotConfig);
    Plotly.react("drawdown-chart", [{ x: ts, y: dd, type: "scatter", mode: "lines", fill: "tozeroy",
                                      line: { color: "#c62828" }, name: "drawdown" }],
                 layout({ type: "date" }, { tickformat: ".1%" }), plotConfig);
  }

  function drawWeights(weights) {
    const entries = Object.entries(weights || {}).sort((a, b) => b[1] - a[1]);
    const el = document.getElementById("weights-chart");
    Plotly.react(el, [{ x: entries.map(e => e[0]), y: entries.map(e => e[1]), type: "bar",
                        marker: { color: entries.map(e => e[1] >= 0 ? "#2f6fdf" : "#c62828") } }],
                 layout({ type: "category", categoryorder: "array", categoryarray: entries.map(e => e[0]) },
                        { tickformat: ".0%" }, {
                   annotations: entries.length ? [] : [{ text: "no target weights yet", showarrow: false,
                   xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] }), plotConfig);
  }

  function fillTable(id, rows, toCells, emptyText) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 6; td.className = "empty"; td.textContent = emptyText;
      tr.appendChild(td); body.appendChild(tr);
      return;
    }
    for (const r of rows) { const tr = document.createElement("tr"); toCells(tr, r); body.appendChild(tr); }
  }

  function showSnapshot(s) {
    text("c-equity", fmt.num(s.equity));
    text("c-cash", "cash " + fmt.num(s.cash));
    text("c-drawdown", fmt.pct(s.drawdown));
    text("c-gross", "gross exposure " + fmt.pct(s.gross_exposure, 1));
    text("c-regime", s.regime === null || s.regime === undefined ? "–" : String(s.regime));
    text("c-regime-prob", s.regime_prob === null || s.regime_prob === undefined ? "no regime model"
                                                                              : "prob " + fmt.pct(s.regime_prob, 0));
    text("c-model", s.model_version || "–");
    text("c-model-q", "accuracy " + fmt.pct(s.model_accuracy, 1) + " · IC " + fmt.num(s.model_ic, 3));
    text("c-cycle", s.cycle === null || s.cycle === undefined ? "–" : String(s.cycle));
    text("c-asof", fmt.time(s.as_of) + (s.data_age_s === null ? "" : " · data age " + fmt.num(s.data_age_s, 0) + " s"));
    const st = s.killed ? "killed" : s.paused ? "paused" : s.halted ? "halted" : "active";
    const el = document.getElementById("c-state");
    el.textContent = st;
    el.className = "value " + (st === "active" ? "pos" : "neg");
    text("c-reasons", (s.reasons && s.reasons.length) ? s.reasons.join("; ") : (s.last_error || "no halt reasons"));
  }

  async function refresh() {
    try {
      const [ov, pnl, eq] = await Promise.all([api("/api/v1/overview"), api("/api/v1/pnl"), api("/api/v1/equity")]);
      showSnapshot(ov.snapshot);
      text("c-pnl", fmt.num(pnl.pnl_quote));
      document.getElementById("c-pnl").className = "value " + ((pnl.pnl_quote || 0) >= 0 ? "pos" : "neg");
      text("c-return", "return " + fmt.pct(pnl.return) + (pnl.start_ts ? " since " + fmt.time(pnl.start_ts) : ""));
      drawCurves(eq.points);
      drawWeights(ov.target_weights);
      fillTable("positions", ov.positions, (tr, p) => {
        cell(tr, p.symbol); cell(tr, fmt.num(p.qty, 6)); cell(tr, fmt.num(p.price, 4)); cell(tr, fmt.num(p.value_quote));
        cell(tr, fmt.pct(p.weight)); cell(tr, fmt.num(p.entry_price, 4));
      }, "no open positions");
      fillTable("features", ov.top_graph_features, (tr, f) => {
        cell(tr, f.feature); cell(tr, f.symbol); cell(tr, fmt.num(f.value, 4));
        cell(tr, fmt.num(f.z, 2), f.z >= 0 ? "pos" : "neg");
      }, "no graph features yet");
      const x = ov.execution_quality;
      text("x-fills", String(x.fills));
      text("x-mean", x.mean_bps === null ? "–" : fmt.num(x.mean_bps, 2) + " bps");
      text("x-p95", x.p95_bps === null ? "–" : fmt.num(x.p95_bps, 2) + " bps");
      text("x-fee", x.fee_bps === null ? "–" : fmt.num(x.fee_bps, 2) + " bps");
      text("c-shortfall", x.mean_bps === null ? "–" : fmt.num(x.mean_bps, 1) + " bps");
      text("c-fills", x.fills + " fills · p95 " + (x.p95_bps === null ? "–" : fmt.num(x.p95_bps, 1) + " bps"));
      GW.showMessage("");
    } catch (e) {
      GW.showMessage(e.message, "error");
    }
  }

  let pending = null;
  function onEvent(name, snapshot) {
    showSnapshot(snapshot);
    if (name === "cycle" && !pending) pending = setTimeout(() => { pending = null; refresh(); }, 200);
  }

  function onState(up) {
    const el = document.getElementById("live");
    el.textContent = up ? "live" : "offline";
    el.className = "pill " + (up ? "ok" : "warn");
  }

  let streaming = false;
  GW.setupLogin(() => {
    refresh();
    if (!streaming) { streaming = true; GW.stream("/api/v1/stream", onEvent, onState); }
  });
})();
