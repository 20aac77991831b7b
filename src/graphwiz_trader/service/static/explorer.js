/* The graph explorer: a build, a time slider over its snapshot times, the graph drawn with plotly. */
"use strict";
(() => {
  const { api, fmt, text, plotConfig } = GW;
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf"];
  let times = [];
  let build = null;

  function edgeTraces(g, pos) {
    // widths in 5 classes of |rho| between this snapshot's weakest and strongest edge (0.8 to 6 px)
    const buckets = {};
    const mid = { x: [], y: [], text: [] };
    const ws = g.edges.map(e => Math.abs(e.rho));
    const lo = Math.min(...ws), hi = Math.max(...ws);
    for (const e of g.edges) {
      const a = pos[e.src], b = pos[e.dst];
      const c = hi > lo ? Math.min(4, Math.floor(5 * (Math.abs(e.rho) - lo) / (hi - lo))) : 2;
      const k = (e.rho >= 0 ? "p" : "n") + c;
      (buckets[k] = buckets[k] || { x: [], y: [], rho: e.rho >= 0, width: 0.8 + 1.3 * c });
      buckets[k].x.push(a.x, b.x, null);
      buckets[k].y.push(a.y, b.y, null);
      mid.x.push((a.x + b.x) / 2); mid.y.push((a.y + b.y) / 2);
      mid.text.push(e.src + " – " + e.dst + "<br>rho " + e.rho.toFixed(3));
    }
    const traces = Object.values(buckets).map(bk => ({
      x: bk.x, y: bk.y, type: "scatter", mode: "lines", hoverinfo: "skip",
      line: { width: bk.width, color: bk.rho ? "rgba(47,111,223,0.55)" : "rgba(198,40,40,0.55)" } }));
    traces.push({ x: mid.x, y: mid.y, text: mid.text, type: "scatter", mode: "markers", hoverinfo: "text",
                  marker: { size: 7, color: "rgba(0,0,0,0)" } });
    return traces;
  }

  function draw(g) {
    const pos = {};
    for (const n of g.nodes) pos[n.id] = n;
    const nodes = {
      x: g.nodes.map(n => n.x), y: g.nodes.map(n => n.y), text: g.nodes.map(n => n.id.split("/")[0]),
      hovertext: g.nodes.map(n => n.id + "<br>community " + (n.community === null ? "–" : n.community) +
                            "<br>degree " + n.degree + " · strength " + n.strength.toFixed(2)),
      type: "scatter", mode: "markers+text", textposition: "top center", hoverinfo: "text",
      marker: { size: g.nodes.map(n => 10 + 2 * Math.sqrt(n.strength)), line: { width: 1, color: "#333" },
                color: g.nodes.map(n => n.community === null ? "#bbb" : PALETTE[n.community % PALETTE.length]) },
    };
    const layout = { margin: { l: 10, r: 10, t: 10, b: 10 }, showlegend: false, hovermode: "closest",
                     paper_bgcolor: "#fff", plot_bgcolor: "#fff",
                     xaxis: { visible: false }, yaxis: { visible: false } };
    Plotly.react("graph", edgeTraces(g, pos).concat([nodes]), layout, plotConfig);
    text("g-asof", fmt.time(g.as_of));
    text("g-build", g.build);
    text("g-method", g.method + ", window " + g.window + " bars");
    text("g-nodes", String(g.nodes.length));
    text("g-edges", String(g.edges.length));
    text("g-communities", String(g.communities));
    text("g-regime", g.regime ? g.regime.name + " (prob " + fmt.pct(g.regime.prob, 0) + ", since " +
                                fmt.time(g.regime.since) + ")" : "–");
  }

  async function showAt(i) {
    if (!times.length) return;
    const t = times[i];
    text("slider-time", fmt.time(t) + "  (" + (i + 1) + " / " + times.length + ")");
    try {
      draw(await api("/api/v1/graph?build=" + encodeURIComponent(build) + "&as_of=" + encodeURIComponent(t)));
      GW.showMessage("");
    } catch (e) { GW.showMessage(e.message, "error"); }
  }

  async function loadBuild(b) {
    build = b;
    const r = await api("/api/v1/graph/times?build=" + encodeURIComponent(b));
    times = r.times;
    const s = document.getElementById("slider");
    s.max = Math.max(0, times.length - 1);
    s.value = s.max;
    if (!times.length) { GW.showMessage("build " + b + " has no snapshots", "info"); return; }
    await showAt(times.length - 1);
  }

  async function start() {
    try {
      const r = await api("/api/v1/graph/builds");
      const sel = document.getElementById("build");
      sel.replaceChildren();
      for (const b of r.builds) {
        const o = document.createElement("option");
        o.value = b.build;
        o.textContent = b.build + " (" + (b.snapshots || 0) + " snapshots)";
        sel.appendChild(o);
      }
      if (!r.current) { GW.showMessage("the graph store holds no build yet", "info"); return; }
      sel.value = r.current;
      await loadBuild(r.current);
    } catch (e) { GW.showMessage(e.message, "error"); }
  }

  let timer = null;
  const slider = document.getElementById("slider");
  slider.addEventListener("input", () => {
    text("slider-time", fmt.time(times[+slider.value]));
    clearTimeout(timer);
    timer = setTimeout(() => showAt(+slider.value), 150);
  });
  document.getElementById("prev").addEventListener("click", () => {
    if (+slider.value > 0) { slider.value = +slider.value - 1; showAt(+slider.value); } });
  document.getElementById("next").addEventListener("click", () => {
    if (+slider.value < times.length - 1) { slider.value = +slider.value + 1; showAt(+slider.value); } });
  document.getElementById("build").addEventListener("change", ev => loadBuild(ev.target.value)
    .catch(e => GW.showMessage(e.message, "error")));

  function showRows(res) {
    const head = document.querySelector("#cypher-result thead");
    const body = document.querySelector("#cypher-result tbody");
    head.replaceChildren(); body.replaceChildren();
    const tr = document.createElement("tr");
    for (const c of res.columns) { const th = document.createElement("th"); th.textContent = c; tr.appendChild(th); }
    head.appendChild(tr);
    for (const row of res.rows) {
      const r = document.createElement("tr");
      for (const c of res.columns) {
        const v = row[c];
        GW.cell(r, (v !== null && typeof v === "object") ? JSON.stringify(v) : String(v));
      }
      body.appendChild(r);
    }
  }

  document.getElementById("cypher-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const box = document.getElementById("cypher-error");
    box.textContent = ""; box.className = "msg error";
    text("cypher-status", "running…");
    try {
      const res = await api("/api/v1/cypher", { method: "POST",
        body: { query: document.getElementById("cypher-query").value, params: build ? { build } : {} } });
      showRows(res);
      text("cypher-status", res.rows.length + " row(s) in " + res.seconds.toFixed(2) + " s" +
           (res.truncated ? " (cut: " + res.reason + ")" : ""));
    } catch (e) {
      document.querySelector("#cypher-result thead").replaceChildren();
      document.querySelector("#cypher-result tbody").replaceChildren();
      box.textContent = e.message; box.className = "msg error show";
      text("cypher-status", "refused");
    }
  });

  GW.setupLogin(start);
})();
