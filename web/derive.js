// web/derive.js - what each chart shows, computed from the samples the
// store keeps (web/history.js).  Pure functions of the data, no DOM, so
// the numbers a chart draws are the numbers its table lists.
//
// Rates: (v[k] - v[k-1]) * base^exponent / (monotonic[k] - monotonic[k-1]),
// per vCPU and summed over the vCPUs present in both samples; a counter
// that went backwards (a vCPU replaced) has no rate at that point.
import { Store } from "./history.js";
import { isHistogram, scale, percentile, vcpuIndex, vcpuLabel } from "./stats.js";

const time = (s) => new Date(s.wall * 1000);

function byVcpu(a, b) {
  return vcpuIndex(a) - vcpuIndex(b) || (a < b ? -1 : a > b ? 1 : 0);
}

// Every stat a chart of values can show, for the name picker: cumulative
// ones as rates, instants and peaks as values (histograms have their own).
export function chartableStats(store) {
  const out = [];
  for (const sc of store.schemas)
    for (const sv of sc.stats)
      if (!isHistogram(sv)) out.push({ provider: sc.provider, target: sc.target, sv });
  return out;
}

export function histogramStats(store) {
  const out = [];
  for (const sc of store.schemas)
    for (const sv of sc.stats)
      if (isHistogram(sv)) out.push({ provider: sc.provider, target: sc.target, sv });
  return out;
}

// The stat a picker's text names: "name", or "provider/name" when several
// providers have it.  The vCPU target wins over the VM's (it has both the
// per-vCPU series and their sum).
export function resolve(list, text) {
  const slash = text.indexOf("/");
  const providers = new Set(list.map((s) => s.provider));
  let provider = null, name = text;
  if (slash > 0 && providers.has(text.slice(0, slash))) {
    provider = text.slice(0, slash);
    name = text.slice(slash + 1);
  }
  const hits = list.filter((s) => s.sv.name === name && (!provider || s.provider === provider));
  return hits.find((s) => s.target === "vcpu") || hits[0] || null;
}

function number(v) {
  return typeof v === "boolean" ? (v ? 1 : 0) : v;
}

// Series of one stat over the history: [{key, label, points: [{time, t, v,
// delta, dt}]}], "sum" first for a vCPU stat.  Cumulative stats give rates
// (base unit per second), others their value in the base unit.
export function valueSeries(store, stat) {
  const { provider, target, sv } = stat;
  const rate = sv.type === "cumulative";
  const samples = store.samples;
  const series = new Map();
  const point = (k, label, p) => {
    if (!series.has(k)) series.set(k, { key: k, label, points: [] });
    series.get(k).points.push(p);
  };
  const paths = new Set();
  for (const s of samples) for (const p of Store.paths(s, provider, sv.name)) paths.add(p);
  const ordered = [...paths].sort(byVcpu);
  for (let i = rate ? 1 : 0; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = rate ? b.t - a.t : 0;
    const one = (path) => {
      const vb = number(Store.value(b, provider, sv.name, path));
      if (vb === undefined) return null;
      if (!rate) return { v: scale(sv, vb), delta: vb };
      const va = number(Store.value(a, provider, sv.name, path));
      if (va === undefined || vb < va || dt <= 0) return null;
      return { v: scale(sv, vb - va) / dt, delta: vb - va };
    };
    const base = { time: time(b), t: b.t, dt };
    if (target === "vm") {
      const r = one(undefined);
      point("vm", "VM", r ? { ...base, ...r } : { ...base, v: null });
      continue;
    }
    let sum = 0, sumDelta = 0, any = false;
    for (const path of ordered) {
      const r = one(path);
      point(path, vcpuLabel(path), r ? { ...base, ...r } : { ...base, v: null });
      if (r) {
        sum += r.v;
        sumDelta += r.delta;
        any = true;
      }
    }
    point("sum", "all vCPUs", any ? { ...base, v: sum, delta: sumDelta } : { ...base, v: null });
  }
  const out = [...series.values()];
  out.sort((x, y) => (x.key === "sum" ? -1 : y.key === "sum" ? 1 : 0));
  return out;
}

// The buckets of a histogram in one sample: summed over the vCPUs (path
// null) or one vCPU's.
function buckets(sample, stat, path) {
  const { provider, target, sv } = stat;
  if (target === "vm") return Store.value(sample, provider, sv.name) || null;
  const paths = path ? [path] : Store.paths(sample, provider, sv.name);
  let out = null;
  for (const p of paths) {
    const v = Store.value(sample, provider, sv.name, p);
    if (!v) continue;
    out = out || new Array(v.length).fill(0);
    v.forEach((x, j) => { out[j] += x; });
  }
  return out;
}

// Heatmap cells: for each poll interval and bucket that received samples,
// {time0, time1, t, bucket, count (new samples), rate (per second)}; and
// the current distribution with its p50 and p99 (raw units).
export function histogramView(store, stat, path) {
  const samples = store.samples;
  const cells = [];
  let nb = 0;
  for (let i = 1; i < samples.length; i++) {
    const a = buckets(samples[i - 1], stat, path), b = buckets(samples[i], stat, path);
    if (!a || !b || a.length !== b.length) continue;
    nb = b.length;
    const dt = samples[i].t - samples[i - 1].t;
    for (let j = 0; j < b.length; j++) {
      const d = b[j] - a[j];
      if (d > 0 && dt > 0)
        cells.push({ time0: time(samples[i - 1]), time1: time(samples[i]), t: samples[i].t,
                     bucket: j, count: d, rate: d / dt });
    }
  }
  const latest = store.latest();
  const current = latest ? buckets(latest, stat, path) : null;
  if (current) nb = current.length;
  return {
    cells, nb, current,
    span: latest ? [time(samples[0]), time(latest)] : null,
    p50: current ? percentile(stat.sv, current, 0.5) : null,
    p99: current ? percentile(stat.sv, current, 0.99) : null,
    t: latest ? latest.t : null,
  };
}

// Guest memory from the balloon: used (total - free - caches), caches and
// free per sample, in bytes; and how old the guest's last report is.
export function memoryView(store) {
  const v = (s, n) => Store.value(s, "balloon", n);
  const has = store.schemas.some((sc) => sc.provider === "balloon");
  const points = [];
  for (const s of store.samples) {
    const total = v(s, "total-memory"), free = v(s, "free-memory");
    if (total === undefined || free === undefined) continue;
    const caches = v(s, "disk-caches") ?? 0;
    points.push({ time: time(s), t: s.t, total, free, caches,
                  used: Math.max(0, total - free - caches) });
  }
  // The guest's update period, from the last two distinct report times.
  const updates = [];
  for (const s of store.samples) {
    const u = v(s, "last-update");
    if (u && updates[updates.length - 1] !== u) updates.push(u);
  }
  const latest = store.latest();
  const last = latest ? v(latest, "last-update") : undefined;
  const period = updates.length >= 2 ? updates[updates.length - 1] - updates[updates.length - 2]
                                     : null;
  const age = last ? Math.max(0, latest.wall - last) : null;
  // Stale: three update periods without a report (at least 5 s; 10 s
  // while the period is not known yet).
  const staleAfter = period ? Math.max(5, 3 * period) : 10;
  return { has, points, last, age, period, stale: last ? age > staleAfter : null, staleAfter };
}

// The share of each vCPU thread's time spent ready to run but not running
// (sched's wait_ns rate, in percent of wall time), per vCPU.
export function schedView(store) {
  const stat = { provider: "sched", target: "vcpu", sv: store.schemaOf("vcpu", "sched", "wait_ns") };
  if (!stat.sv) return { has: false, series: [] };
  const series = valueSeries(store, stat).filter((s) => s.key !== "sum");
  for (const s of series)
    for (const p of s.points) if (p.v !== null) p.v *= 100;
  return { has: true, series, sv: stat.sv };
}
