// web/stats.js - the statistics vocabulary the page needs, as core/types.c
// defines it for every other formatter (HMP -b, the metrics, top): a raw
// value times base^exponent is a quantity of the stat's unit; units read in
// steps (ns, us, ms / B, KiB, MiB); histogram bucket bounds by the KVM
// rules (docs/qemu-behaviour.md); percentiles estimated from the bounds as
// `qstats top` does.  No DOM here.

const STEPS = {
  seconds: [[1e-12, "ps"], [1e-9, "ns"], [1e-6, "us"], [1e-3, "ms"], [1, "s"]],
  bytes: [[1, "B"], [1024, "KiB"], [1048576, "MiB"], [1073741824, "GiB"],
          [1099511627776, "TiB"], [1125899906842624, "PiB"], [1152921504606846976, "EiB"]],
  cycles: [[1, "cycles"], [1e3, "Kcycles"], [1e6, "Mcycles"], [1e9, "Gcycles"],
           [1e12, "Tcycles"], [1e15, "Pcycles"]],
};

export function isHistogram(sv) {
  return sv.type === "linear-histogram" || sv.type === "log2-histogram";
}

// Raw value -> quantity of the base unit (seconds, bytes, cycles), as
// qs_schema_value_scale: raw / p for a negative exponent, raw * p otherwise.
export function scale(sv, raw) {
  const exp = sv.exponent || 0;
  if (exp === 0) return raw;
  const p = Math.pow(sv.base === 2 ? 2 : 10, Math.abs(exp));
  return exp < 0 ? raw / p : raw * p;
}

// [factor, suffix] of the largest step not above |v| (the first for smaller
// values), forgiving rounding as qs_unit_step_for does; null without unit.
export function stepFor(unit, v) {
  const steps = STEPS[unit];
  if (!steps) return null;
  let i = 0;
  while (i + 1 < steps.length && Math.abs(v) >= steps[i + 1][0] * (1 - 1e-9)) i++;
  return steps[i];
}

// Raw bounds of bucket i of a histogram of n buckets (qs_schema_bucket_lower
// and _upper): log2 bucket 0 is [0,1), bucket i [2^(i-1), 2^i); linear
// bucket i is [size*i, size*(i+1)); the last bucket is open.
export function bucketLower(sv, i) {
  if (sv.type === "linear-histogram") return sv["bucket-size"] * i;
  return i === 0 ? 0 : Math.pow(2, i - 1);
}

export function bucketUpper(sv, i, n) {
  return i + 1 >= n ? Infinity : bucketLower(sv, i + 1);
}

// Short text of a number: 3 significant digits, no exponent for everyday
// magnitudes.
export function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  if (!Number.isFinite(v)) return v > 0 ? "+inf" : "-inf";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e15 || a < 1e-3) return v.toExponential(2);
  if (Number.isInteger(v) && a < 1e6) return String(v);
  return String(Number(v.toPrecision(3)));
}

// A quantity of the base unit as people read it: "12.3 ms", "1.5 GiB", "7".
export function formatQuantity(unit, v) {
  const st = stepFor(unit, v);
  if (!st || v === null || !Number.isFinite(v)) return num(v);
  return `${num(v / st[0])} ${st[1]}`;
}

// How a rate of a cumulative stat reads: time per second ("ms/s"), bytes
// per second ("MiB/s"), events per second ("/s").  `max` picks the step.
export function rateUnit(unit, max) {
  const st = stepFor(unit, max);
  return st ? { factor: st[0], label: `${st[1]}/s` } : { factor: 1, label: "/s" };
}

// The unit a chart of the stat's values uses ("MiB"; "" when unit-less).
export function valueUnit(unit, max) {
  const st = stepFor(unit, max);
  return st ? { factor: st[0], label: st[1] } : { factor: 1, label: "" };
}

// "[8.39 ms, 16.8 ms)" for bucket i: the bounds in the stat's unit.
export function bucketLabel(sv, i, n) {
  const lo = scale(sv, bucketLower(sv, i));
  const hi = bucketUpper(sv, i, n);
  const f = (v) => (sv.unit ? formatQuantity(sv.unit, v) : num(v));
  return `[${f(lo)}, ${Number.isFinite(hi) ? f(scale(sv, hi)) : "+inf"})`;
}

// Percentile q of a histogram's counts, in raw units (qstats top's
// estimate): linear inside a bucket; the open last bucket at its lower bound.
export function percentile(sv, buckets, q) {
  const n = buckets.length;
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const target = q * total;
  let below = 0;
  for (let j = 0; j < n; j++) {
    if (buckets[j] > 0 && below + buckets[j] >= target) {
      const lo = bucketLower(sv, j), hi = bucketUpper(sv, j, n);
      return Number.isFinite(hi) ? lo + (hi - lo) * (target - below) / buckets[j] : lo;
    }
    below += buckets[j];
  }
  return null;
}

// "vCPU 3" for ".../device[3]"; the path itself otherwise.
export function vcpuLabel(qomPath) {
  const m = /\[(\d+)\]$/.exec(qomPath || "");
  return m ? `vCPU ${m[1]}` : qomPath;
}

export function vcpuIndex(qomPath) {
  const m = /\[(\d+)\]$/.exec(qomPath || "");
  return m ? Number(m[1]) : Infinity;
}
