/* Offline API docs: lists the routes of /openapi.json with their summaries, parameters and request bodies. */
"use strict";
(() => {
  function schemaText(spec, schema) {
    if (schema && schema.$ref) {
      const name = schema.$ref.split("/").pop();
      return name + " " + JSON.stringify((spec.components.schemas[name] || {}).properties || {}, null, 1);
    }
    return JSON.stringify(schema || {}, null, 1);
  }
  async function start() {
    try {
      const spec = await GW.api("/openapi.json");
      const box = document.getElementById("routes");
      box.replaceChildren();
      for (const [path, ops] of Object.entries(spec.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          const div = document.createElement("div");
          div.className = "route";
          const m = document.createElement("span");
          m.className = "method " + method; m.textContent = method.toUpperCase();
          const p = document.createElement("code"); p.textContent = path;
          const s = document.createElement("div"); s.textContent = op.summary || "";
          div.append(m, p, s);
          const params = (op.parameters || []).map(x => x.name + " (" + x.in + "): " + (x.description || ""));
          const body = op.requestBody ? schemaText(spec, op.requestBody.content["application/json"].schema) : null;
          if (params.length || body) {
            const pre = document.createElement("pre");
            pre.textContent = params.concat(body ? ["body: " + body] : []).join("\n");
            div.appendChild(pre);
          }
          box.appendChild(div);
        }
      }
    } catch (e) { GW.showMessage(e.message, "error"); }
  }
  GW.setupLogin(start);
})();
