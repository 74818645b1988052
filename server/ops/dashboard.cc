#include "server/ops/dashboard.h"

namespace voucherd {
namespace {

// Every text from the server goes into the page through textContent or
// element ids set by the DOM API, never through innerHTML, so a campaign
// or site name cannot inject markup.
constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>voucherd</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 10px 18px; display: flex; gap: 18px;
           align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  #meta { opacity: .8; }
  #state.bad { color: #ff8a80; font-weight: bold; }
  main { padding: 12px 18px; }
  .cards { display: flex; gap: 12px; flex-wrap: wrap; }
  .card { background: #fff; border-radius: 6px; padding: 10px 14px; min-width: 220px;
          box-shadow: 0 1px 2px rgba(0,0,0,.1); }
  .card h2 { font-size: 14px; margin: 0 0 4px; }
  .big { font-size: 30px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .small { color: #5b6475; font-size: 12px; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr));
            gap: 12px; margin-top: 12px; }
  figure { background: #fff; margin: 0; border-radius: 6px; padding: 8px 10px;
           box-shadow: 0 1px 2px rgba(0,0,0,.1); }
  figcaption { font-weight: 600; margin-bottom: 4px; }
  canvas { width: 100%; height: 220px; display: block; }
  .tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr));
            gap: 12px; margin-top: 12px; }
  table { border-collapse: collapse; width: 100%; background: #fff; border-radius: 6px; }
  th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #e3e6ea; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<header><h1>voucherd</h1><span id="meta">connecting…</span><span id="state"></span></header>
<main>
  <div class="cards" id="campaigns"></div>
  <div class="charts">
    <figure><figcaption>Remaining stock per campaign</figcaption>
      <canvas id="chart-remaining" width="1120" height="440"></canvas></figure>
    <figure><figcaption>Claims per second</figcaption>
      <canvas id="chart-claims" width="1120" height="440"></canvas></figure>
    <figure><figcaption>Claim latency p99 (ms, bucket upper bound)</figcaption>
      <canvas id="chart-p99" width="1120" height="440"></canvas></figure>
    <figure><figcaption>Errors per second by gRPC status code (every RPC)</figcaption>
      <canvas id="chart-errors" width="1120" height="440"></canvas></figure>
  </div>
  <div class="tables">
    <table><thead><tr><th>status code</th><th>last second</th><th>in the window</th></tr></thead>
      <tbody id="errors"></tbody></table>
    <table><thead><tr><th>site</th><th>redeemed</th><th>issued</th></tr></thead>
      <tbody id="sites"></tbody></table>
  </div>
</main>
<script>
"use strict";
const COLORS = ["#2f6fdf", "#e0503a", "#2e9e5b", "#c28a00", "#8a4fd0", "#00a3a3", "#d04f95",
                "#5d6b7a"];

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// series: [{name, values}], all as long as t (unix seconds).
function drawChart(canvas, t, series) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const L = 90, R = 16, T = 16, B = 44;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "22px system-ui, sans-serif";
  let max = 0;
  for (const s of series) for (const v of s.values) if (v > max) max = v;
  max = niceMax(max);
  ctx.strokeStyle = "#e3e6ea"; ctx.fillStyle = "#5b6475"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * i / 4;
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
    const label = max * (4 - i) / 4;
    ctx.fillText(label >= 100 ? label.toFixed(0) : String(+label.toPrecision(3)), 4, y + 8);
  }
  const n = t.length;
  if (n > 0) {
    const span = Math.max(1, t[n - 1] - t[0]);
    ctx.fillText("-" + span + " s", L, H - 10);
    ctx.fillText("now", W - R - 48, H - 10);
  }
  const x = i => L + (n <= 1 ? (W - L - R) : (W - L - R) * (t[i] - t[0]) / Math.max(1, t[n - 1] - t[0]));
  const y = v => T + (H - T - B) * (1 - v / max);
  let drawn = 0;
  series.forEach((s, k) => {
    ctx.strokeStyle = COLORS[k % COLORS.length]; ctx.lineWidth = 3;
    ctx.beginPath();
    s.values.forEach((v, i) => { if (i === 0) ctx.moveTo(x(i), y(v)); else ctx.lineTo(x(i), y(v)); });
    if (s.values.length === 1) ctx.arc(x(0), y(s.values[0]), 3, 0, 2 * Math.PI);
    ctx.stroke();
    drawn += s.values.length;
    ctx.fillStyle = COLORS[k % COLORS.length];
    ctx.fillText(s.name, L + 10 + 220 * k, T + 24);
  });
  if (drawn > 0) canvas.dataset.drawn = "1";
}

function renderStatus(st) {
  document.getElementById("meta").textContent =
    "version " + st.version + " · store " + st.store + " · auth " +
    (String(st.auth).startsWith("OPEN") ? "OPEN" : "tokens") + " · up " + st.uptime_seconds + " s";
  const state = document.getElementById("state");
  state.textContent = st.ready ? "ready" : "NOT READY: " + (st.not_ready_because || "");
  state.className = st.ready ? "" : "bad";
  const cards = document.getElementById("campaigns");
  const sites = new Map();
  const seen = new Set();
  for (const c of st.campaigns) {
    seen.add("campaign-" + c.id);
    let card = document.getElementById("campaign-" + c.id);
    if (!card) {
      card = el("div", undefined, "card"); card.id = "campaign-" + c.id;
      card.appendChild(el("h2"));
      const big = el("div", "", "big"); big.id = "remaining-" + c.id; card.appendChild(big);
      card.appendChild(el("div", "", "small"));
      cards.appendChild(card);
    }
    card.children[0].textContent = c.name + " (" + c.id + ", " + c.mode + ")";
    const big = card.children[1];
    big.textContent = String(c.remaining);
    big.dataset.value = String(c.remaining);
    card.children[2].textContent = "remaining of " + c.stock + " · issued " + c.issued +
      " · redeemed " + c.redeemed + " · members " + c.members;
    for (const s of c.skus) {
      const e = sites.get(s.site_id) || { redeemed: 0, issued: 0 };
      e.redeemed += s.redeemed; e.issued += s.issued;
      sites.set(s.site_id, e);
    }
  }
  for (const card of Array.from(cards.children)) if (!seen.has(card.id)) card.remove();
  const body = document.getElementById("sites");
  body.replaceChildren();
  const rows = Array.from(sites.entries()).sort((a, b) => b[1].redeemed - a[1].redeemed ||
                                                         b[1].issued - a[1].issued);
  for (const [site, e] of rows) {
    const tr = el("tr");
    tr.appendChild(el("td", site)); tr.appendChild(el("td", e.redeemed, "n"));
    tr.appendChild(el("td", e.issued, "n"));
    body.appendChild(tr);
  }
}

function renderSeries(se) {
  const t = se.t;
  drawChart(document.getElementById("chart-remaining"), t,
            Object.entries(se.remaining).map(([name, values]) => ({ name, values })));
  drawChart(document.getElementById("chart-claims"), t, [{ name: "claims/s", values: se.claims_per_s }]);
  drawChart(document.getElementById("chart-p99"), t, [{ name: "p99 ms", values: se.p99_ms }]);
  const errs = Object.entries(se.errors_per_s).map(([name, values]) => ({ name, values }));
  drawChart(document.getElementById("chart-errors"), t,
            errs.length ? errs : [{ name: "no errors", values: t.map(() => 0) }]);
  const body = document.getElementById("errors");
  body.replaceChildren();
  for (const e of errs) {
    const tr = el("tr");
    tr.appendChild(el("td", e.name));
    tr.appendChild(el("td", e.values.length ? e.values[e.values.length - 1] : 0, "n"));
    tr.appendChild(el("td", e.values.reduce((a, b) => a + b, 0), "n"));
    body.appendChild(tr);
  }
}

async function tick() {
  try {
    const [st, se] = await Promise.all([fetch("/status", { cache: "no-store" }).then(r => r.json()),
                                        fetch("/series", { cache: "no-store" }).then(r => r.json())]);
    renderStatus(st);
    renderSeries(se);
  } catch (e) {
    document.getElementById("state").textContent = "voucherd unreachable: " + e;
    document.getElementById("state").className = "bad";
  }
  setTimeout(tick, 1000);
}
tick();
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view dashboard_html() { return kPage; }

}  // namespace voucherd
