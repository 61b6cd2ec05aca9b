// The live ad-probability chart of one device: raw `p_ad` and `smoothed` from `telemetry` events over a sliding
// window, the decision thresholds as dashed lines, and the detector's own label shaded behind (red where "ad").
// uPlot draws on a canvas; the container carries `data-points` (how many samples are in the window) for tests.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fmtHM, fmtTime } from "./format.js";

const GAP_S = 5; // a silence longer than this breaks the line (device offline, agent restarted)
const HEIGHT = 170;

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export class ProbChart {
  /** el: container; thresholds: {enter, exit}; windowS: seconds shown. */
  constructor(el, { enter, exit, windowS }) {
    this.el = el;
    this.enter = enter;
    this.exit = exit;
    this.windowS = windowS;
    this.points = []; // {ts, p, s, label}
    this.right = Date.now() / 1000;
    this.plot = null;
    this.frame = 0;
    this.wanted = false; // update() was called: the card is (or was) on screen, so the plot is worth creating
    this.el.dataset.points = "0";
    this.readout = document.createElement("div");
    this.readout.className = "chart-readout";
    this.readout.hidden = true;
    this.el.append(this.readout);
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.el);
  }

  push(t) {
    if (!Number.isFinite(t.ts) || !Number.isFinite(t.p_ad) || !Number.isFinite(t.smoothed)) return;
    const last = this.points.at(-1);
    if (last && t.ts <= last.ts) {
      // out of order (QoS 0 over a reconnect): insert in place, replace an equal timestamp
      const i = this.points.findIndex((q) => q.ts >= t.ts);
      const point = { ts: t.ts, p: t.p_ad, s: t.smoothed, label: t.label };
      if (this.points[i].ts === t.ts) this.points[i] = point;
      else this.points.splice(i, 0, point);
    } else {
      this.points.push({ ts: t.ts, p: t.p_ad, s: t.smoothed, label: t.label });
    }
    // bounded even while the card is off screen and update() is not called: at most a window and a half
    if (this.points.length > 1 && this.points[0].ts < t.ts - 1.5 * this.windowS - GAP_S) {
      const from = t.ts - this.windowS - GAP_S;
      let drop = 0;
      while (drop < this.points.length && this.points[drop].ts < from) drop++;
      this.points.splice(0, drop);
    }
  }

  /** Slide the window so it ends at `right` (device clock, epoch seconds) and redraw on the next frame. */
  update(right) {
    this.wanted = true;
    this.right = right;
    const from = right - this.windowS - GAP_S;
    let drop = 0;
    while (drop < this.points.length && this.points[drop].ts < from) drop++;
    if (drop) this.points.splice(0, drop);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  data() {
    const xs = [];
    const raw = [];
    const sm = [];
    let prev = null;
    for (const q of this.points) {
      if (prev !== null && q.ts - prev > GAP_S) {
        xs.push(prev + GAP_S / 2);
        raw.push(null);
        sm.push(null);
      }
      xs.push(q.ts);
      raw.push(q.p);
      sm.push(q.s);
      prev = q.ts;
    }
    return [xs, raw, sm];
  }

  draw() {
    this.frame = 0;
    const inWindow = this.points.filter((q) => q.ts >= this.right - this.windowS).length;
    this.el.dataset.points = String(inWindow);
    if (!this.plot) {
      if (this.el.clientWidth === 0) return; // hidden: drawn when it becomes visible (ResizeObserver)
      this.create();
      return;
    }
    this.plot.setData(this.data());
  }

  create() {
    const colors = {
      raw: cssVar("--chart-raw"),
      smooth: cssVar("--chart-smooth"),
      axis: cssVar("--fg-muted"),
      grid: cssVar("--grid"),
      ad: cssVar("--ad"),
      adShade: cssVar("--ad-shade"),
      program: cssVar("--program"),
    };
    const chart = this;
    const opts = {
      width: this.el.clientWidth,
      height: HEIGHT,
      pxAlign: 0,
      legend: { show: false },
      cursor: { drag: { x: false, y: false, setScale: false }, points: { show: false } },
      scales: {
        x: { time: true, range: () => [chart.right - chart.windowS, chart.right] },
        y: { auto: false, range: [0, 1] },
      },
      axes: [
        {
          stroke: colors.axis,
          // local wall-clock minutes, formatted like the rest of the page (uPlot's default is US 12 h)
          splits: (u, i, min, max) => {
            const step = u.bbox.width / uPlot.pxRatio < 360 ? 120 : 60;
            const out = [];
            for (let t = Math.ceil(min / step) * step; t <= max; t += step) out.push(t);
            return out;
          },
          values: (u, splits) => splits.map((t) => fmtHM(t)),
          grid: { stroke: colors.grid, width: 1 },
          ticks: { stroke: colors.grid, width: 1 },
        },
        {
          stroke: colors.axis,
          size: 46,
          splits: () => [0, 0.25, 0.5, 0.75, 1],
          values: (u, vals) => vals.map((v) => v.toFixed(2)),
          grid: { stroke: colors.grid, width: 1 },
          ticks: { stroke: colors.grid, width: 1 },
        },
      ],
      series: [
        {},
        { label: "p_ad", stroke: colors.raw, width: 1, points: { show: false } },
        { label: "smoothed", stroke: colors.smooth, width: 2.5, points: { show: false } },
      ],
      hooks: {
        drawClear: [(u) => chart.shadeAds(u, colors)],
        draw: [(u) => chart.drawThresholds(u, colors)],
        setCursor: [(u) => chart.showReadout(u)],
      },
    };
    this.plot = new uPlot(opts, this.data(), this.el);
  }

  shadeAds(u, colors) {
    const { ctx } = u;
    const { top, height, left, width } = u.bbox;
    ctx.save();
    ctx.fillStyle = colors.adShade;
    const pts = this.points;
    for (let i = 0; i < pts.length; i++) {
      if (pts[i].label !== "ad") continue;
      let j = i;
      while (j + 1 < pts.length && pts[j + 1].label === "ad" && pts[j + 1].ts - pts[j].ts <= GAP_S) j++;
      const x0 = Math.max(left, u.valToPos(pts[i].ts, "x", true));
      const x1 = Math.min(left + width, u.valToPos(pts[j].ts + 1, "x", true));
      if (x1 > x0) ctx.fillRect(x0, top, x1 - x0, height);
      i = j;
    }
    ctx.restore();
  }

  drawThresholds(u, colors) {
    const { ctx } = u;
    const { left, width } = u.bbox;
    const dpr = uPlot.pxRatio;
    ctx.save();
    ctx.lineWidth = 1.25 * dpr;
    ctx.setLineDash([6 * dpr, 4 * dpr]);
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    ctx.textAlign = "right";
    for (const [value, color, name] of [
      [this.enter, colors.ad, "enter"],
      [this.exit, colors.program, "exit"],
    ]) {
      const y = Math.round(u.valToPos(value, "y", true)) + 0.5;
      ctx.strokeStyle = color;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
      ctx.fillStyle = color;
      ctx.fillText(`${name} ${value}`, left + width - 4 * dpr, y - 4 * dpr);
    }
    ctx.restore();
  }

  showReadout(u) {
    const i = u.cursor.idx;
    const [xs, raw, sm] = u.data;
    if (i == null || raw[i] == null) {
      this.readout.hidden = true;
      return;
    }
    this.readout.hidden = false;
    this.readout.textContent = `${fmtTime(xs[i])} · p_ad ${raw[i].toFixed(2)} · smoothed ${sm[i].toFixed(2)}`;
  }

  resize() {
    const w = this.el.clientWidth;
    if (w === 0) return;
    if (!this.plot) {
      if (this.wanted) this.draw(); // never asked for (a card that has not been on screen): not created
    }
    else if (w !== this.plot.width) this.plot.setSize({ width: w, height: HEIGHT });
  }

  /** Rebuild with the current theme's colours (prefers-color-scheme changed). */
  restyle() {
    if (!this.plot) return;
    this.plot.destroy();
    this.plot = null;
    this.draw();
  }

  destroy() {
    this.resizer.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
    this.plot?.destroy();
  }
}
