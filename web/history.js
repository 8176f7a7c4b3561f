// web/history.js - the page's data: polls the daemon's JSON API
// (exporter/api.c) and keeps what it answered for a bounded time.
//
//   /api/v1/schemas  read at start, then every SCHEMA_EVERY polls and as
//                    soon as a result names a stat the schemas lack; kept
//                    only when its generation changed.
//   /api/v1/stats    every interval (1 s by default); one sample each.
//
// A sample holds every value of one answer, keyed by provider and name:
// vm values, and per-vCPU values by QOM path.  Samples older than the
// window (10 minutes by default) are dropped, and never more than
// MAX_SAMPLES are kept, so the page's memory is bounded by the window, not
// by how long the tab stays open.

export const MAX_SAMPLES = 36000;
const SCHEMA_EVERY = 10;

const key = (provider, name) => `${provider}\u0000${name}`;

export class Store {
  constructor(windowSeconds) {
    this.windowSeconds = windowSeconds;
    this.generation = null;
    this.name = null;
    this.schemas = [];          // StatsSchema as the API gives them
    this.index = new Map();     // "vm"|"vcpu" -> key -> StatsSchemaValue
    this.samples = [];
  }

  setSchemas(json) {
    if (json.generation === this.generation && this.index.size) return false;
    this.generation = json.generation;
    this.name = json.name ?? null;
    this.schemas = json.schemas || [];
    this.index = new Map([["vm", new Map()], ["vcpu", new Map()]]);
    for (const sc of this.schemas) {
      const m = this.index.get(sc.target);
      if (m) for (const sv of sc.stats) m.set(key(sc.provider, sv.name), sv);
    }
    return true;
  }

  schemaOf(target, provider, name) {
    return this.index.get(target)?.get(key(provider, name));
  }

  providers() {
    return [...new Set(this.schemas.map((s) => s.provider))];
  }

  // Adds one /api/v1/stats answer; returns whether it named a stat the
  // schemas do not have (they changed: read them again).
  add(json) {
    let unknown = false;
    const vm = new Map(), vcpu = new Map(), paths = new Set();
    for (const r of json.vm || []) {
      for (const s of r.stats) {
        vm.set(key(r.provider, s.name), s.value);
        unknown ||= !this.schemaOf("vm", r.provider, s.name);
      }
    }
    for (const r of json.vcpu || []) {
      paths.add(r["qom-path"]);
      for (const s of r.stats) {
        const k = key(r.provider, s.name);
        if (!vcpu.has(k)) vcpu.set(k, new Map());
        vcpu.get(k).set(r["qom-path"], s.value);
        unknown ||= !this.schemaOf("vcpu", r.provider, s.name);
      }
    }
    const t = json.timestamp;
    this.samples.push({ t: t.monotonic, wall: t.wall, vm, vcpu, paths });
    this.trim();
    return unknown;
  }

  trim() {
    const s = this.samples;
    const newest = s[s.length - 1];
    let drop = Math.max(0, s.length - MAX_SAMPLES);
    while (drop < s.length - 1 && newest.t - s[drop].t > this.windowSeconds) drop++;
    if (drop) s.splice(0, drop);
  }

  latest() {
    return this.samples[this.samples.length - 1];
  }

  // A value in a sample: vm (path undefined) or one vCPU's.
  static value(sample, provider, name, path) {
    const k = key(provider, name);
    return path === undefined ? sample.vm.get(k) : sample.vcpu.get(k)?.get(path);
  }

  // The QOM paths with a value of the stat in the sample.
  static paths(sample, provider, name) {
    return [...(sample.vcpu.get(key(provider, name))?.keys() || [])];
  }
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store", credentials: "same-origin" });
  let body;
  try {
    body = await r.json();
  } catch {
    throw new Error(`${url}: HTTP ${r.status}, not JSON`);
  }
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}: ${body.error || "error"}`);
  return body;
}

// Polls on a timer that starts the next request only after the previous
// answered (a slow daemon gets fewer requests, never a pile of them).
export class Poller {
  constructor(store, { onData, onError }) {
    this.store = store;
    this.onData = onData;
    this.onError = onError;
    this.intervalMs = 1000;
    this.timer = null;
    this.polls = 0;
    this.schemaDue = true;
    this.lastOk = null;         // Date.now() of the last answer
    this.paused = false;
    this.busy = false;
  }

  setInterval(ms) {
    this.intervalMs = ms;
    this.reschedule(0);
  }

  setPaused(p) {
    this.paused = p;
    this.reschedule(0);
  }

  reschedule(ms) {
    clearTimeout(this.timer);
    this.timer = null;
    // A poll in flight schedules the next one itself when it ends.
    if (!this.paused && !this.busy) this.timer = setTimeout(() => this.tick(), ms);
  }

  async tick() {
    this.timer = null;
    this.busy = true;
    const started = Date.now();
    try {
      if (this.schemaDue || this.polls % SCHEMA_EVERY === 0) {
        this.store.setSchemas(await getJSON("/api/v1/schemas"));
        this.schemaDue = false;
      }
      const stats = await getJSON("/api/v1/stats");
      this.schemaDue = this.store.add(stats);
      this.polls++;
      this.lastOk = Date.now();
      this.onData();
    } catch (e) {
      this.onError(e);
    } finally {
      this.busy = false;
    }
    this.reschedule(Math.max(0, this.intervalMs - (Date.now() - started)));
  }
}
