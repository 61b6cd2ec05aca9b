// A horizontal program/ad bar. The element carrying `data-testid=<testid>` has exactly one child per segment
// (`data-testid="segment"`, `data-label`, `data-status`, `data-start`, `data-end`; `data-end` is "" while open).
// Children are keyed by segment id and updated in place, so the open segment can grow every second cheaply.

import { h, setVariant } from "./dom.js";
import { dayStart, fmtDuration, fmtHM, fmtPct, fmtTime } from "./format.js";

const MIN_SPAN_S = 600;
const TICK_STEPS_S = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];

/**
 * The window a timeline shows: from the first segment (not before `from`) to the last end (or `now` for an open
 * segment, or when `live`), at most `to`, and at least 10 minutes wide.
 */
export function timelineWindow(segments, from, to, now, live = false) {
  let start = Infinity;
  let end = live ? now : -Infinity;
  for (const s of segments) {
    start = Math.min(start, s.start);
    end = Math.max(end, s.end ?? now);
  }
  if (!Number.isFinite(start)) start = live ? Math.max(from, now - MIN_SPAN_S) : from;
  if (!Number.isFinite(end)) end = to;
  start = Math.max(start, from);
  end = Math.min(end, to);
  if (end - start < MIN_SPAN_S) {
    end = Math.min(start + MIN_SPAN_S, to);
    start = Math.max(from, end - MIN_SPAN_S);
  }
  return { start, end };
}

export class Timeline {
  constructor(testid, emptyText) {
    this.bar = h("div", { class: "tl-bar", dataset: { testid }, role: "list", "aria-label": "program and ad segments" });
    this.nowMarker = h("div", { class: "tl-now", hidden: true, title: "now" });
    this.axis = h("div", { class: "tl-axis", "aria-hidden": "true" });
    this.empty = h("div", { class: "tl-empty", text: emptyText });
    this.el = h("div", { class: "timeline" }, h("div", { class: "tl-track" }, this.bar, this.nowMarker), this.axis, this.empty);
    this.items = new Map();
    this.axisKey = "";
  }

  /** segments: oldest first; win: {start, end}; now: the instant an open segment reaches (device clock). */
  render(segments, win, now, showNow = false) {
    const span = Math.max(1, win.end - win.start);
    const pct = (t) => Math.min(100, Math.max(0, ((t - win.start) / span) * 100));
    const seen = new Set();
    let prev = null;
    for (const s of segments) {
      const key = String(s.id ?? `${s.device}:${s.start}`);
      seen.add(key);
      let el = this.items.get(key);
      if (!el) {
        el = h("div", { class: "seg", role: "listitem", dataset: { testid: "segment" } });
        this.items.set(key, el);
      }
      // keep DOM order = time order
      const want = prev ? prev.nextSibling : this.bar.firstChild;
      if (want !== el) this.bar.insertBefore(el, want);
      prev = el;

      const end = s.end ?? Math.max(now, s.start);
      const left = pct(s.start);
      const width = Math.max(0, pct(end) - left);
      el.style.left = `${left}%`;
      el.style.width = `${width}%`;
      setVariant(el, "seg", s.label === "ad" ? "ad" : "program");
      el.classList.toggle("is-open", s.end == null);
      el.classList.toggle("is-interrupted", s.status === "interrupted");
      el.dataset.label = s.label;
      el.dataset.status = s.status ?? "";
      el.dataset.start = String(s.start);
      el.dataset.end = s.end == null ? "" : String(s.end);
      el.title =
        `${s.label === "ad" ? "AD" : "PROGRAM"}  ${fmtTime(s.start)} – ${s.end == null ? "now" : fmtTime(s.end)}` +
        `  (${fmtDuration(end - s.start)})  ${s.status ?? ""}  confidence ${fmtPct(s.confidence)}`;
    }
    for (const [key, el] of this.items) {
      if (!seen.has(key)) {
        el.remove();
        this.items.delete(key);
      }
    }
    this.empty.hidden = segments.length > 0;
    this.nowMarker.hidden = !showNow || now < win.start || now > win.end;
    this.nowMarker.style.left = `${pct(now)}%`;
    this.renderAxis(win, pct);
  }

  renderAxis(win, pct) {
    const span = win.end - win.start;
    const maxTicks = Math.min(7, Math.max(2, Math.floor((this.el.clientWidth || 480) / 75)));
    const step = TICK_STEPS_S.find((st) => span / st <= maxTicks) ?? 21600;
    const origin = dayStart(new Date(win.start * 1000));
    const first = origin + Math.ceil((win.start - origin) / step) * step;
    const ticks = [];
    for (let t = first; t <= win.end + 1e-6; t += step) ticks.push(t);
    const key = `${step}:${ticks[0]}:${ticks.length}:${Math.round(win.start)}:${Math.round(win.end)}`;
    if (key === this.axisKey) return;
    this.axisKey = key;
    this.axis.replaceChildren(
      ...ticks.map((t) => {
        const p = pct(t);
        const el = h("span", { class: "tl-tick", text: fmtHM(t) });
        el.style.left = `${p}%`;
        if (p < 4) el.classList.add("is-first");
        else if (p > 96) el.classList.add("is-last");
        return el;
      }),
    );
  }
}
