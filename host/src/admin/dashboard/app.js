// The wasmgate dashboard: polls the admin API (and /metrics) every two seconds and
// draws what it finds. No framework, no outside resources: everything is served by
// the gateway's admin listener. Rates are computed here from counter samples, so the
// charts cover the time since the page opened (at most the last ten minutes).
"use strict";

const POLL_MS = 2000;
const HISTORY = 300; // samples: ten minutes at one every two seconds
const samples = []; // { t, requests, errors }

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// ---- /metrics: the text exposition format, just what the dashboard reads.

function parseMetrics(text) {
  const series = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2];
    }
    series.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return series;
}

function sum(series, name, keep) {
  return series
    .filter((s) => s.name === name && (!keep || keep(s.labels)))
    .reduce((total, s) => total + s.value, 0);
}

// A quantile from cumulative histogram buckets, by linear interpolation in the bucket
// that holds it (as Prometheus's histogram_quantile does). Seconds; null when empty.
function quantile(series, name, keep, q) {
  const buckets = new Map();
  for (const s of series) {
    if (s.name !== `${name}_bucket` || !keep(s.labels)) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) || 0) + s.value);
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (!total) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Infinity) return lower;
      const inBucket = count - below;
      return inBucket ? lower + (le - lower) * ((rank - below) / inBucket) : le;
    }
    lower = le;
    below = count;
  }
  return lower;
}

function ms(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const value = seconds * 1000;
  return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(0)} ms`;
}

// ---- drawing

function health(word) {
  const kind = ["healthy", "loaded", "closed", "applied"].includes(word) ? "ok"
    : word === "down" || word === "rejected" || word === "open" || word === "unavailable" ? "bad"
    : "warn";
  return el("span", { class: kind }, word || "unknown");
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows);
}

function drawChart(svgId, values) {
  const svg = $(svgId);
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? 300 / (values.length - 1) : 0;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(58 - (v / max) * 56).toFixed(1)}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.replaceChildren(line);
}

function drawTraffic(series) {
  const now = Date.now();
  samples.push({
    t: now,
    requests: sum(series, "http_requests_total"),
    errors: sum(series, "http_requests_total", (l) => Number(l.status) >= 500),
  });
  while (samples.length > HISTORY) samples.shift();
  const rates = [];
  const errorRates = [];
  for (let i = 1; i < samples.length; i++) {
    const seconds = (samples[i].t - samples[i - 1].t) / 1000 || 1;
    rates.push(Math.max(0, samples[i].requests - samples[i - 1].requests) / seconds);
    errorRates.push(Math.max(0, samples[i].errors - samples[i - 1].errors) / seconds);
  }
  $("rate-now").textContent = (rates[rates.length - 1] || 0).toFixed(1);
  $("errors-now").textContent = (errorRates[errorRates.length - 1] || 0).toFixed(1);
  drawChart("rate-chart", rates);
  drawChart("errors-chart", errorRates);
}

function matches(route) {
  const parts = [];
  if (route.host) parts.push(`host ${route.host}`);
  if (route.methods) parts.push(route.methods.join(","));
  parts.push(route.path || `${route.prefix}…`);
  for (const c of route.headers || []) parts.push(`header ${c.name}${c.value !== null ? `=${c.value}` : c.regex !== null ? `~${c.regex}` : ""}`);
  for (const c of route.query || []) parts.push(`query ${c.name}${c.value !== null ? `=${c.value}` : c.regex !== null ? `~${c.regex}` : ""}`);
  return el("code", {}, parts.join(" "));
}

function drawRoutes(routes) {
  fill("routes", routes.routes.map((route) => {
    const upstream = route.services
      ? route.services.map((s) => `${s.name} (${s.weight})`).join(", ")
      : route.service || "—";
    const chain = el("ol", { class: "chain" }, ...route.plugins.map((p) =>
      el("li", { class: p.global ? "global" : null, title: p.global ? "global plugin" : null }, p.name)));
    return el("tr", {}, el("th", { scope: "row" }, route.name), el("td", {}, route.listener),
      el("td", {}, matches(route)), el("td", {}, upstream), el("td", {}, route.plugins.length ? chain : "—"));
  }));
}

function drawPlugins(plugins, series) {
  fill("plugins", plugins.plugins.map((plugin) => {
    const mine = (labels) => labels.plugin === plugin.name;
    const reason = plugin.last_rejection ? plugin.last_rejection.reason : null;
    return el("tr", {},
      el("th", { scope: "row" }, plugin.name),
      el("td", { title: reason }, health(plugin.status)),
      el("td", {}, el("code", {}, plugin.hash ? plugin.hash.slice(0, 12) : "—")),
      el("td", {}, plugin.wit_version || "—"),
      el("td", { class: "num" }, plugin.calls),
      el("td", { class: "num" }, plugin.errors),
      el("td", { class: "num" }, ms(quantile(series, "plugin_call_duration_seconds", mine, 0.5))),
      el("td", { class: "num" }, ms(quantile(series, "plugin_call_duration_seconds", mine, 0.99))));
  }));
}

function drawServices(healthReport, series) {
  const services = healthReport.services || {};
  fill("services", Object.entries(services).map(([name, service]) => {
    const mine = (labels) => labels.service === name;
    const endpoints = el("ul", { class: "chain" }, ...(service.endpoints || []).map((e) =>
      el("li", {}, el("code", {}, e.url), " ", health(e.ejected ? "ejected" : e.status))));
    return el("tr", {},
      el("th", { scope: "row" }, name),
      el("td", {}, health(service.status)),
      el("td", {}, service.circuit ? health(service.circuit) : "off"),
      el("td", {}, endpoints),
      el("td", { class: "num" }, ms(quantile(series, "upstream_request_duration_seconds", mine, 0.5))),
      el("td", { class: "num" }, ms(quantile(series, "upstream_request_duration_seconds", mine, 0.99))),
      el("td", { class: "num" }, service.response_time || "–"));
  }));
}

function drawReloads(snapshot) {
  const reloads = snapshot.reloads;
  $("reload-counts").textContent = `${reloads.applied} applied, ${reloads.rejected} rejected since start.`;
  $("reloads").replaceChildren(...(reloads.recent || []).map((r) =>
    el("li", {}, el("time", { datetime: r.at }, r.at), " ", health(r.result),
      ` (${r.trigger}), generation ${r.generation}`, r.reason ? `: ${r.reason}` : "")));
}

function uptime(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min ${seconds % 60} s`;
}

async function refresh() {
  try {
    const [snapshot, routes, plugins, healthReport, metricsText] = await Promise.all([
      getJson("/admin/snapshot"), getJson("/admin/routes"), getJson("/admin/plugins"),
      getJson("/health"), fetch("/metrics", { cache: "no-store" }).then((r) => r.text()),
    ]);
    const series = parseMetrics(metricsText);
    $("status").replaceChildren(health(healthReport.status));
    $("version").textContent = healthReport.version;
    $("generation").textContent = snapshot.generation;
    $("uptime").textContent = uptime(healthReport.uptime_seconds);
    drawTraffic(series);
    drawRoutes(routes);
    drawPlugins(plugins, series);
    drawServices(healthReport, series);
    drawReloads(snapshot);
    if ($("message").textContent.startsWith("Cannot reach")) $("message").textContent = "";
    document.body.dataset.refreshed = String(Date.now());
  } catch (error) {
    $("message").textContent = `Cannot reach the admin API: ${error.message}`;
  }
}

async function reload() {
  const button = $("reload");
  button.disabled = true;
  $("message").textContent = "Reloading…";
  try {
    const response = await fetch("/admin/reload", { method: "POST" });
    const body = await response.json();
    $("message").textContent = response.ok
      ? `Reload ${body.result}: generation ${body.generation}.`
      : `Reload rejected: ${body.error}`;
  } catch (error) {
    $("message").textContent = `Reload failed: ${error.message}`;
  } finally {
    button.disabled = false;
    refresh();
  }
}

$("reload").addEventListener("click", reload);
refresh();
setInterval(refresh, POLL_MS);
