// web/app.js - the live page at "/": wires the poller (history.js), the
// derived views (derive.js) and the charts (charts.js) to the DOM of
// index.html.  Every number a chart draws is also in the table under it,
// which is all the page shows when the chart library is missing.
//
// Security: everything from the daemon (stat names, QOM paths, the VM
// name: a guest or a foreign VMM may choose them) goes in as text
// (textContent, d3's .text(), option.value); nothing is parsed as markup,
// and the page has no inline script or style (the daemon's CSP forbids it).
import { Poller, Store } from "./history.js";
import { chartableStats, histogramStats, histogramView, memoryView, resolve, schedView,
         valueSeries } from "./derive.js";
import { bucketLabel, formatQuantity, num, rateUnit, scale, valueUnit, vcpuLabel }
  from "./stats.js";

const d3 = globalThis.d3;
// Lines drawn per chart beyond the sum: a 1024-vCPU VM's chart stays
// readable (and cheap); its table lists every vCPU.
const MAX_LINES = 32;
const charts = d3 && /^3\./.test(d3.version) ? await import("./charts.js") : null;

const $ = (id) => document.getElementById(id);

// #interval=SECONDS&window=MINUTES in the address keeps a setting.
const opts = new URLSearchParams(location.hash.slice(1));
const settings = {
  interval: Math.max(0.2, Number(opts.get("interval")) || 1),
  window: Math.max(1, Number(opts.get("window")) || 10),
};

const store = new Store(settings.window * 60);
const state = { rate: null, hist: null, histPath: "" };

function text(el, s) {
  el.textContent = s;
  return el;
}

function el(tag, content, attrs = {}) {
  const e = document.createElement(tag);
  if (content !== undefined) e.textContent = content;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// A table of rows of cells; a cell is text or {text, value} (value kept in
// data-value, the exact number behind the text).
function table(tbl, head, rows) {
  const thead = el("thead"), tr = el("tr");
  head.forEach((h) => tr.append(el("th", h)));
  thead.append(tr);
  const tbody = el("tbody");
  for (const row of rows) {
    const r = el("tr");
    for (const c of row) {
      const cell = typeof c === "object" && c !== null ? c : { text: c };
      const td = el("td", cell.text);
      if (cell.value !== undefined && cell.value !== null) td.dataset.value = String(cell.value);
      if (cell.key !== undefined) td.dataset.key = cell.key;
      r.append(td);
    }
    tbody.append(r);
  }
  tbl.replaceChildren(thead, tbody);
}

function setOptions(datalist, entries) {
  const opts = entries.map(([value, label]) => {
    const o = document.createElement("option");
    o.value = value;
    o.label = label;
    return o;
  });
  datalist.replaceChildren(...opts);
}

// Picker entries: the bare name, or provider/name when providers share it.
function pickerEntries(list) {
  const count = new Map();
  for (const s of list) count.set(s.sv.name, (count.get(s.sv.name) || 0) + 1);
  const seen = new Set(), out = [];
  for (const s of list) {
    const v = count.get(s.sv.name) > 1 && list.some((o) => o.sv.name === s.sv.name &&
                                                     o.provider !== s.provider)
      ? `${s.provider}/${s.sv.name}` : s.sv.name;
    if (seen.has(v)) continue;
    seen.add(v);
    out.push([v, `${s.provider} ${s.target} ${s.sv.type}${s.sv.unit ? `, ${s.sv.unit}` : ""}`]);
  }
  return out;
}

let schemaGeneration = null;
function refreshPickers() {
  if (store.generation === schemaGeneration) return;
  schemaGeneration = store.generation;
  const values = chartableStats(store), hists = histogramStats(store);
  setOptions($("rate-names"), pickerEntries(values));
  setOptions($("hist-names"), pickerEntries(hists));
  if (!$("rate-name").value) {
    const pick = values.find((s) => s.sv.name === "exits") ||
                 values.find((s) => s.sv.type === "cumulative") || values[0];
    if (pick) $("rate-name").value = pick.sv.name;
  }
  if (!$("hist-name").value) {
    const pick = hists.find((s) => s.sv.name === "halt_wait_hist") || hists[0];
    if (pick) $("hist-name").value = pick.sv.name;
  }
}

// ---- sections ---------------------------------------------------------------

function overview() {
  const latest = store.latest();
  text($("vm-name"), store.name ?? "");
  text($("ov-vm"), store.name ?? "(unknown)");
  text($("ov-providers"), store.providers().join(", ") || "none");
  text($("ov-vcpus"), latest ? String(latest.paths.size) : "-");
  text($("ov-samples"), `${store.samples.length} samples over ` +
       `${latest && store.samples.length > 1 ? num(latest.t - store.samples[0].t) : 0} s ` +
       `(window ${settings.window} min, every ${settings.interval} s)`);
  if (latest) {
    text($("ov-collected"), new Date(latest.wall * 1000).toLocaleTimeString());
    $("ov-collected").dataset.monotonic = String(latest.t);
  }
}

function freshness() {
  const age = poller.lastOk ? (Date.now() - poller.lastOk) / 1000 : null;
  const late = age === null || age > Math.max(5, 3 * settings.interval);
  text($("ov-age"), age === null ? "no answer yet" : `${age.toFixed(1)} s ago`);
  $("status").classList.toggle("warn", late || !!poller.error);
  text($("status"), poller.paused ? "paused" :
       poller.error ? `no answer from qstatsd: ${poller.error}` :
       age === null ? "waiting for the first answer" :
       late ? `stale: the last answer came ${age.toFixed(0)} s ago` : "live");
}

function ratesSection() {
  const stat = resolve(chartableStats(store), $("rate-name").value.trim());
  const caption = $("rate-caption");
  if (!stat) {
    text(caption, $("rate-name").value ? `no statistic named "${$("rate-name").value}"` : "");
    table($("rate-table"), [], []);
    if (charts) charts.lines($("rate-chart"), [], { factor: 1, label: "" }, store.windowSeconds);
    return;
  }
  const { sv } = stat;
  const series = valueSeries(store, stat);
  const max = Math.max(0, ...series.flatMap((s) => s.points.map((p) => Math.abs(p.v || 0))));
  const rate = sv.type === "cumulative";
  const unit = rate ? rateUnit(sv.unit, max) : valueUnit(sv.unit, max);
  text(caption, `${stat.provider} ${stat.target} ${sv.name}: ` +
       (rate ? `rate of a cumulative statistic, in ${unit.label}` :
        `${sv.type} value${unit.label ? `, in ${unit.label}` : ""}`));
  const drawn = series.slice(0, MAX_LINES + 1);
  if (drawn.length < series.length)
    caption.textContent += `; the chart draws the sum and the first ${MAX_LINES} vCPUs`;
  $("rate-caption").dataset.unit = unit.label;
  if (charts) charts.lines($("rate-chart"), drawn, unit, store.windowSeconds);
  const rows = series.map((s) => {
    const p = s.points[s.points.length - 1] || {};
    const v = p.v ?? null;
    return [{ text: s.label, key: s.key },
            { text: v === null ? "-" : `${num(v / unit.factor)} ${unit.label}`.trim(), value: v },
            { text: p.delta === undefined ? "-" : String(p.delta), value: p.delta },
            { text: rate && p.dt ? `${p.dt.toFixed(3)} s` : "-", value: rate ? p.dt : null }];
  });
  table($("rate-table"), ["series", rate ? "rate" : "value", rate ? "delta (raw)" : "raw",
                          "interval"], rows);
}

function histogramSection() {
  const stat = resolve(histogramStats(store), $("hist-name").value.trim());
  const select = $("hist-vcpu");
  if (!stat) {
    text($("hist-caption"), $("hist-name").value ?
         `no histogram named "${$("hist-name").value}"` : "no histogram statistics");
    table($("hist-table"), [], []);
    return;
  }
  const latest = store.latest();
  const paths = stat.target === "vcpu" && latest ? Store.paths(latest, stat.provider, stat.sv.name)
                                                 : [];
  const wanted = ["", ...paths];
  if ([...select.options].map((o) => o.value).join("\n") !== wanted.join("\n")) {
    select.replaceChildren(...wanted.map((p) => {
      const o = document.createElement("option");
      o.value = p;
      o.textContent = p ? vcpuLabel(p) : "all vCPUs (sum)";
      return o;
    }));
    select.value = paths.includes(state.histPath) ? state.histPath : "";
  }
  state.histPath = select.value;
  const view = histogramView(store, stat, state.histPath || null);
  const { sv } = stat;
  const label = (j) => bucketLabel(sv, j, view.nb);
  const q = (v) => (v === null ? "-" : sv.unit ? formatQuantity(sv.unit, scale(sv, v))
                                               : num(scale(sv, v)));
  text($("hist-caption"), `${stat.provider} ${stat.target} ${sv.name}: ${sv.type}` +
       (sv.unit ? ` of ${sv.unit}` : "") + "; heatmap of new samples per second per bucket");
  text($("hist-p50"), q(view.p50));
  text($("hist-p99"), q(view.p99));
  const total = view.current ? view.current.reduce((a, b) => a + b, 0) : 0;
  text($("hist-count"), String(total));
  if (charts) {
    charts.heatmap($("hist-heatmap"), view, label, store.windowSeconds);
    charts.bars($("hist-dist"), view.current, label);
  }
  const lastCells = new Map(view.cells.filter((c) => c.t === view.t).map((c) => [c.bucket, c]));
  const rows = (view.current || []).map((n, j) => [
    { text: label(j), key: j }, { text: String(n), value: n },
    { text: lastCells.has(j) ? String(lastCells.get(j).count) : "0",
      value: lastCells.has(j) ? lastCells.get(j).count : 0 }]).filter((r) => r[1].value > 0 ||
                                                                           r[2].value > 0);
  table($("hist-table"), ["bucket", "samples", "new in the last interval"], rows);
}

function memorySection() {
  const m = memoryView(store);
  const status = $("mem-status");
  status.classList.toggle("warn", !m.has || !m.last || !!m.stale);
  if (!m.has) text(status, "No balloon provider: qstatsd runs without --balloon.");
  else if (!m.last) text(status, "The guest has not reported memory statistics yet " +
                          "(is the agent running, and guest-stats-polling-interval set?).");
  else if (m.stale) text(status, `Stale: the guest's last report is ${m.age.toFixed(0)} s old` +
                         (m.period ? ` (it reported every ${num(m.period)} s)` : "") + ".");
  else text(status, `The guest reported ${m.age.toFixed(0)} s ago` +
            (m.period ? ` (every ${num(m.period)} s)` : "") + ".");
  status.dataset.age = m.age === null ? "" : String(m.age);
  const p = m.points[m.points.length - 1];
  const unit = valueUnit("bytes", p ? p.total : 0);
  $("mem-chart").hidden = !m.points.length;
  if (charts) {
    const layer = (key, label, color) => ({
      key, label, color, points: m.points.map((q) => ({ time: q.time, t: q.t, v: q[key] })) });
    charts.stackedAreas($("mem-chart"), m.points.length ? [
      layer("used", "used", "#c0504d"), layer("caches", "caches", "#f2c14e"),
      layer("free", "free", "#9bbb59")] : [], unit, store.windowSeconds);
  }
  const row = (k, label) => [{ text: label, key: k },
                             { text: p ? formatQuantity("bytes", p[k]) : "-", value: p?.[k] }];
  table($("mem-table"), ["", "now"], p ? [row("used", "used"), row("caches", "caches"),
                                         row("free", "free"), row("total", "total")] : []);
}

function schedSection() {
  const s = schedView(store);
  const status = $("sched-status");
  status.classList.toggle("warn", !s.has);
  text(status, s.has ? "Share of wall time each vCPU thread was ready to run but waited " +
                       "for a host CPU (sched wait_ns)."
                     : "No sched provider: it needs the vCPU threads (the built-in micro-VM " +
                       "registers them; a VMM hands them over with add-stats-fd provider sched).");
  $("sched-chart").hidden = !s.has;
  if (charts) charts.lines($("sched-chart"), s.series.slice(0, MAX_LINES), { factor: 1, label: "%" },
                           store.windowSeconds);
  table($("sched-table"), ["vCPU", "ready but not running"], s.series.map((x) => {
    const p = x.points[x.points.length - 1] || {};
    return [{ text: x.label, key: x.key },
            { text: p.v === null || p.v === undefined ? "-" : `${num(p.v)} %`, value: p.v }];
  }));
}

function render() {
  refreshPickers();
  overview();
  ratesSection();
  histogramSection();
  memorySection();
  schedSection();
  freshness();
  document.body.dataset.polls = String(poller.polls);
}

// ---- wiring -----------------------------------------------------------------

const poller = new Poller(store, {
  onData() {
    poller.error = null;
    render();
  },
  onError(e) {
    poller.error = e.message;
    freshness();
  },
});

document.body.classList.toggle("no-charts", !charts);
$("no-charts").hidden = !!charts;
document.querySelectorAll("details.numbers").forEach((d) => { d.open = !charts; });

$("interval").value = String(settings.interval);
$("window").value = String(settings.window);
function saveSettings() {
  history.replaceState(null, "", `#interval=${settings.interval}&window=${settings.window}`);
}
$("interval").addEventListener("change", () => {
  const v = Number($("interval").value);
  if (v >= 0.2) {
    settings.interval = v;
    poller.setInterval(v * 1000);
    saveSettings();
  }
});
$("window").addEventListener("change", () => {
  const v = Number($("window").value);
  if (v >= 1) {
    settings.window = v;
    store.windowSeconds = v * 60;
    saveSettings();
    if (store.samples.length) {
      store.trim();
      render();
    }
  }
});
$("pause").addEventListener("click", () => {
  poller.setPaused(!poller.paused);
  text($("pause"), poller.paused ? "Resume" : "Pause");
  freshness();
});
for (const id of ["rate-name", "hist-name", "hist-vcpu"]) {
  $(id).addEventListener("change", () => { if (store.samples.length) render(); });
  $(id).addEventListener("input", () => { if (store.samples.length) render(); });
}
window.addEventListener("resize", () => { if (store.samples.length) render(); });
setInterval(freshness, 500);
poller.setInterval(settings.interval * 1000);
