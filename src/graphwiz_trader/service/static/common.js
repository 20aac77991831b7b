/* Shared by the service pages: the API key (sessionStorage only), JSON requests, and the event stream.
   The key is sent as the X-API-Key header; it never goes into a URL the page requests. */
"use strict";
const GW = (() => {
  const STORE = "graphwiz_api_key";

  // A ?key=... in the address is moved into sessionStorage and removed from the address bar and history.
  (function takeKeyFromUrl() {
    const url = new URL(window.location.href);
    const k = url.searchParams.get("key");
    if (k) {
      sessionStorage.setItem(STORE, k);
      url.searchParams.delete("key");
      const rest = url.searchParams.toString();
      history.replaceState(null, "", url.pathname + (rest ? "?" + rest : "") + url.hash);
    }
  })();

  const key = () => sessionStorage.getItem(STORE);

  function showMessage(text, kind) {
    const box = document.getElementById("message");
    if (!box) return;
    box.textContent = text || "";
    box.className = "msg" + (text ? " show " + (kind || "error") : "");
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options) {
    const opts = Object.assign({ method: "GET" }, options || {});
    const headers = { "Accept": "application/json" };
    if (key()) headers["X-API-Key"] = key();
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.body);
    }
    const resp = await fetch(path, Object.assign(opts, { headers, cache: "no-store" }));
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const msg = (data && data.error) ? data.error : ("HTTP " + resp.status);
      if (resp.status === 401) { sessionStorage.removeItem(STORE); setLoggedIn(false, true); }
      throw new ApiError(resp.status, msg);
    }
    return data;
  }

  // Server-sent events read with fetch (EventSource cannot send a header); reconnects after 3 s.
  function stream(path, onEvent, onState) {
    let stopped = false;
    async function run() {
      while (!stopped) {
        try {
          if (!key()) { await new Promise(r => setTimeout(r, 1000)); continue; }
          const resp = await fetch(path, { headers: { "X-API-Key": key(), "Accept": "text/event-stream" },
                                           cache: "no-store" });
          if (!resp.ok || !resp.body) throw new ApiError(resp.status, "stream: HTTP " + resp.status);
          if (onState) onState(true);
          const reader = resp.body.getReader();
          const dec = new TextDecoder();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let cut;
            while ((cut = buf.indexOf("\n\n")) >= 0) {
              const frame = buf.slice(0, cut);
              buf = buf.slice(cut + 2);
              let name = "message", data = "";
              for (const line of frame.split("\n")) {
                if (line.startsWith("event:")) name = line.slice(6).trim();
                else if (line.startsWith("data:")) data += line.slice(5).trim();
              }
              if (data) onEvent(name, JSON.parse(data));
            }
          }
        } catch (e) {
          if (onState) onState(false);
        }
        if (!stopped) await new Promise(r => setTimeout(r, 3000));
      }
    }
    run();
    return () => { stopped = true; };
  }

  let onLogin = null;
  // quiet: keep the message shown (a refused key's error stays visible)
  function setLoggedIn(yes, quiet) {
    const form = document.getElementById("login");
    if (!form) return;
    form.querySelector(".enter").style.display = yes ? "none" : "";
    form.querySelector(".leave").style.display = yes ? "" : "none";
    if (!yes && !quiet) showMessage("Enter an API key (read scope) to see the service's data.", "info");
  }

  function setupLogin(callback) {
    onLogin = callback;
    const form = document.getElementById("login");
    form.addEventListener("submit", ev => {
      ev.preventDefault();
      const input = form.querySelector("input");
      if (input.value.trim()) {
        sessionStorage.setItem(STORE, input.value.trim());
        input.value = "";
        setLoggedIn(true);
        showMessage("");
        if (onLogin) onLogin();
      }
    });
    form.querySelector(".leave button").addEventListener("click", () => {
      sessionStorage.removeItem(STORE);
      setLoggedIn(false);
    });
    setLoggedIn(!!key());
    if (key() && onLogin) onLogin();
  }

  const fmt = {
    num(v, d) { return (v === null || v === undefined) ? "–" : Number(v).toLocaleString("en-US",
      { minimumFractionDigits: d === undefined ? 2 : d, maximumFractionDigits: d === undefined ? 2 : d }); },
    pct(v, d) { return (v === null || v === undefined) ? "–" : (100 * v).toFixed(d === undefined ? 2 : d) + "%"; },
    time(v) { return v ? v.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, " UTC") : "–"; },
  };

  function text(id, value) { const el = document.getElementById(id); if (el) el.textContent = value; }

  function cell(tr, value, cls) {
    const td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  const plotConfig = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage"] };

  return { api, stream, setupLogin, showMessage, key, fmt, text, cell, plotConfig, ApiError };
})();
