// web/charts.js - the page's charts, drawn with d3 (v3, Debian's libjs-d3,
// served by qstatsd from /usr/share/javascript): lines over time, stacked
// areas, a heatmap over time and a bar chart.  Each chart owns one <svg>
// in its container and redraws it from data on every poll; the data bound
// to the marks (d3's datum) is exactly what derive.js computed, and text
// goes in with .text(), never as markup.
import { num } from "./stats.js";

const d3 = globalThis.d3;
const withUnit = (unit) => (v) => (unit.label ? `${num(v)} ${unit.label}` : num(v));

const HEIGHT = 220;
const M = { top: 10, right: 16, bottom: 24, left: 64 };

// left: room for the y axis' labels (bucket bounds need more).
function frame(container, cls, left = 64) {
  const m = { ...M, left };
  const width = Math.max(320, container.clientWidth || 640);
  let svg = d3.select(container).select("svg");
  if (svg.empty()) {
    svg = d3.select(container).append("svg").attr("class", cls);
    const g = svg.append("g").attr("class", "plot");
    g.append("g").attr("class", "axis x");
    g.append("g").attr("class", "axis y");
    g.append("g").attr("class", "marks");
  }
  svg.attr("width", width).attr("height", HEIGHT)
     .attr("viewBox", `0 0 ${width} ${HEIGHT}`);
  const g = svg.select("g.plot").attr("transform", `translate(${m.left},${m.top})`);
  return { svg, g, w: width - m.left - m.right, h: HEIGHT - m.top - m.bottom };
}

function axes(f, x, y, yFormat) {
  f.g.select(".axis.x").attr("transform", `translate(0,${f.h})`)
    .call(d3.svg.axis().scale(x).orient("bottom").ticks(Math.max(2, f.w / 90)));
  f.g.select(".axis.y")
    .call(d3.svg.axis().scale(y).orient("left").ticks(5).tickFormat(yFormat));
}

function timeDomain(points, windowSeconds) {
  const ext = d3.extent(points, (p) => p.time);
  if (!ext[0]) return [new Date(Date.now() - windowSeconds * 1000), new Date()];
  return ext[0].getTime() === ext[1].getTime() ? [new Date(+ext[0] - 1000), ext[1]] : ext;
}

const palette = d3.scale.category10();

// Lines over time: series [{key, label, points: [{time, v}]}]; v null is a
// gap.  unit: {factor, label} dividing v for the axis.
export function lines(container, series, unit, windowSeconds) {
  const f = frame(container, "chart lines");
  const all = [].concat(...series.map((s) => s.points));
  const x = d3.time.scale().domain(timeDomain(all, windowSeconds)).range([0, f.w]);
  const max = d3.max(all, (p) => p.v) || 0;
  const min = Math.min(0, d3.min(all, (p) => p.v) || 0);
  const y = d3.scale.linear().domain([min / unit.factor, (max / unit.factor) || 1])
    .nice().range([f.h, 0]);
  axes(f, x, y, withUnit(unit));
  const line = d3.svg.line().defined((p) => p.v !== null && p.v !== undefined)
    .x((p) => x(p.time)).y((p) => y(p.v / unit.factor));
  const paths = f.g.select(".marks").selectAll("path.series").data(series, (s) => s.key);
  paths.enter().append("path").attr("class", "series");
  paths.exit().remove();
  paths.attr("d", (s) => line(s.points))
    .attr("data-series", (s) => s.key)
    .classed("sum", (s) => s.key === "sum")
    .attr("stroke", (s) => (s.key === "sum" ? "#222" : palette(s.key)));
  paths.selectAll("title").remove();
  paths.append("title").text((s) => s.label);
  return f;
}

// Stacked areas over time: layers [{key, label, color, points: [{time, v}]}]
// (the same times in every layer).
export function stackedAreas(container, layers, unit, windowSeconds) {
  const f = frame(container, "chart stacked");
  const stack = d3.layout.stack().values((l) => l.points)
    .x((p) => p.time).y((p) => p.v / unit.factor)
    .out((p, y0, y) => { p.y0 = y0; p.y = y; });
  const data = layers.length && layers[0].points.length ? stack(layers) : [];
  const all = [].concat(...data.map((l) => l.points));
  const x = d3.time.scale().domain(timeDomain(all, windowSeconds)).range([0, f.w]);
  const y = d3.scale.linear().domain([0, d3.max(all, (p) => p.y0 + p.y) || 1]).nice()
    .range([f.h, 0]);
  axes(f, x, y, withUnit(unit));
  const area = d3.svg.area().x((p) => x(p.time)).y0((p) => y(p.y0)).y1((p) => y(p.y0 + p.y));
  const paths = f.g.select(".marks").selectAll("path.layer").data(data, (l) => l.key);
  paths.enter().append("path").attr("class", "layer");
  paths.exit().remove();
  paths.attr("d", (l) => area(l.points)).attr("fill", (l) => l.color)
    .attr("data-layer", (l) => l.key);
  paths.selectAll("title").remove();
  paths.append("title").text((l) => l.label);
  return f;
}

// A heatmap over time: one rect per (poll interval, bucket) with new
// samples, darker for more samples per second; rows are the buckets in
// [lo, hi], labelled with their bounds.
export function heatmap(container, view, rowLabel, windowSeconds) {
  const f = frame(container, "chart heatmap", 128);
  let lo = d3.min(view.cells, (c) => c.bucket), hi = d3.max(view.cells, (c) => c.bucket);
  if (view.current) {
    view.current.forEach((n, j) => {
      if (n > 0) {
        lo = lo === undefined ? j : Math.min(lo, j);
        hi = hi === undefined ? j : Math.max(hi, j);
      }
    });
  }
  if (lo === undefined) lo = hi = 0;
  const rows = d3.range(Math.max(0, lo - 1), Math.min(view.nb || 1, hi + 2));
  const y = d3.scale.ordinal().domain(rows).rangeBands([f.h, 0]);
  // The whole history, as the other charts show it.
  const x = d3.time.scale()
    .domain(timeDomain(view.span ? view.span.map((time) => ({ time })) : [], windowSeconds))
    .range([0, f.w]);
  const color = d3.scale.sqrt().domain([0, d3.max(view.cells, (c) => c.rate) || 1])
    .range(["#fff3d6", "#b30000"]);
  f.g.select(".axis.x").attr("transform", `translate(0,${f.h})`)
    .call(d3.svg.axis().scale(x).orient("bottom").ticks(Math.max(2, f.w / 90)));
  const every = Math.ceil(rows.length / 8);
  f.g.select(".axis.y").call(d3.svg.axis().scale(y).orient("left")
    .tickValues(rows.filter((r, i) => i % every === 0)).tickFormat(rowLabel));
  const cells = f.g.select(".marks").selectAll("rect.cell")
    .data(view.cells.filter((c) => c.bucket >= rows[0] && c.bucket <= rows[rows.length - 1]),
          (c) => `${c.t}/${c.bucket}`);
  cells.enter().append("rect").attr("class", "cell").append("title");
  cells.exit().remove();
  cells.attr("x", (c) => x(c.time0)).attr("width", (c) => Math.max(1, x(c.time1) - x(c.time0)))
    .attr("y", (c) => y(c.bucket)).attr("height", y.rangeBand())
    .attr("fill", (c) => color(c.rate))
    .attr("data-bucket", (c) => c.bucket).attr("data-count", (c) => c.count)
    .attr("data-t", (c) => c.t);
  cells.select("title").text((c) => `${rowLabel(c.bucket)}: ${c.count} new (${num(c.rate)}/s)`);
  return f;
}

// Bars: the current distribution, one bar per bucket in [first, last
// non-empty], height the samples counted in it.
export function bars(container, counts, rowLabel) {
  const f = frame(container, "chart bars");
  const nz = counts ? counts.map((n, j) => (n > 0 ? j : -1)).filter((j) => j >= 0) : [];
  const idx = nz.length ? d3.range(nz[0], nz[nz.length - 1] + 1) : [];
  const data = idx.map((j) => ({ bucket: j, count: counts[j] }));
  const x = d3.scale.ordinal().domain(idx).rangeBands([0, f.w], 0.1);
  const y = d3.scale.linear().domain([0, d3.max(data, (d) => d.count) || 1]).nice().range([f.h, 0]);
  const every = Math.ceil(idx.length / 6) || 1;
  f.g.select(".axis.x").attr("transform", `translate(0,${f.h})`)
    .call(d3.svg.axis().scale(x).orient("bottom")
      .tickValues(idx.filter((j, i) => i % every === 0)).tickFormat(rowLabel));
  f.g.select(".axis.y").call(d3.svg.axis().scale(y).orient("left").ticks(5)
    .tickFormat(num));
  const b = f.g.select(".marks").selectAll("rect.bar").data(data, (d) => d.bucket);
  b.enter().append("rect").attr("class", "bar").append("title");
  b.exit().remove();
  b.attr("x", (d) => x(d.bucket)).attr("width", x.rangeBand())
    .attr("y", (d) => y(d.count)).attr("height", (d) => f.h - y(d.count))
    .attr("data-bucket", (d) => d.bucket).attr("data-count", (d) => d.count);
  b.select("title").text((d) => `${rowLabel(d.bucket)}: ${d.count}`);
  return f;
}
