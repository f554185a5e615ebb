// Line charts and sparklines drawn as SVG, no library.

import { h, svg, fmt } from "./lib.js";

const W = 600, H = 160, L = 52, R = 8, T = 8, B = 20;

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// lineChart draws series [{name, points: [[ms, value]]}] over the last
// spanMs, with the value axis formatted by yfmt.
// floor is the least top of the value axis; binary rounds the top to a
// power of two (for bytes). The time axis spans the history there is, from
// one minute up to spanMs.
export function lineChart(title, series, { spanMs = 15 * 60 * 1000, yfmt = fmt.rate, now = Date.now(), floor = 1, binary = false, note = "" } = {}) {
  const first = Math.min(now, ...series.flatMap((s) => s.points.map((p) => p[0])));
  spanMs = Math.min(spanMs, Math.max(60 * 1000, now - first + 10 * 1000));
  const t0 = now - spanMs;
  const top = Math.max(floor, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const max = binary ? Math.pow(2, Math.ceil(Math.log2(top))) : niceMax(top);
  const x = (t) => L + (W - L - R) * (t - t0) / spanMs;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const grid = [];
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4;
    grid.push(svg("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    grid.push(svg("text", { x: L - 6, y: y(v) + 3, "text-anchor": "end" }, yfmt(v)));
  }
  for (let i = 0; i <= 3; i++) {
    const t = t0 + spanMs * i / 3;
    grid.push(svg("text", { x: x(t), y: H - 4, "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle" }, spanMs < 10 * 60 * 1000 ? fmt.clockSec(t) : fmt.clock(t)));
  }
  const paths = series.map((s, i) => {
    const pts = s.points.filter((p) => p[0] >= t0);
    if (!pts.length) return null;
    const d = pts.map((p, j) => (j ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
    return svg("path", { class: "s" + i, d });
  });
  const last = (s) => (s.points.length ? s.points[s.points.length - 1][1] : 0);
  return h("div", null,
    h("div", { class: "spread" }, h("strong", null, title),
      h("div", { class: "legend" }, series.map((s, i) => h("span", null, h("i", { class: "s" + i }), `${s.name} ${yfmt(last(s))}`)))),
    svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title }, grid, paths,
      series.every((s) => !s.points.length) ? svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "collecting samples (one every 10 s)") : null),
    note ? h("div", { class: "muted" }, note) : null);
}

// sparkline draws a small trend of values; rising ones are marked.
export function sparkline(values) {
  const w = 100, hh = 22;
  if (!values || values.length < 2) return svg("svg", { class: "spark", viewBox: `0 0 ${w} ${hh}` });
  const max = Math.max(1, ...values), min = Math.min(...values);
  const span = Math.max(1, max - min);
  const d = values.map((v, i) => (i ? "L" : "M") + (i * w / (values.length - 1)).toFixed(1) + " " + (hh - 2 - (hh - 4) * (v - min) / span).toFixed(1)).join(" ");
  return svg("svg", { class: "spark" + (growing(values) ? " up" : ""), viewBox: `0 0 ${w} ${hh}`, preserveAspectRatio: "none", role: "img", "aria-label": "lag trend" },
    svg("path", { d }));
}

// growing says a lag trend rises: the last three samples each higher than
// the one before, and the last above the value a minute (six samples) ago.
export function growing(values) {
  const n = values ? values.length : 0;
  if (n < 4) return false;
  const a = values.slice(-4);
  return a[1] > a[0] && a[2] > a[1] && a[3] > a[2] && a[3] > values[Math.max(0, n - 7)];
}
