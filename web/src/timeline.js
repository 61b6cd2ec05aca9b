// A horizontal program/ad bar. The element carrying `data-testid=<testid>` has exactly one child per segment
// (`data-testid="segment"`, `data-label`, `data-status`, `data-start`, `data-end`; `data-end` is "" while open).
// Children are keyed by segment id and updated in place, so the open segment can grow every second cheaply.

import { h, setVariant } from "./dom.js";
import { dayStart, fmtDuration, fmtHM, fmtPct, fmtTime, wallClock } from "./format.js";

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

// ---------------------------------------------------------------------------------------------------- review
// The Review view's timeline: the same keyed segment bar (one child per segment, plus `data-id` and `data-review`)
// with a confidence track and the mute/unmute firings as markers below it, zoomable (wheel, + / − buttons, the
// range slider) and draggable. A click picks an instant (`onPick(t, segment)`), e.g. where to split. Its `clock`
// (format.js) says how times read: wall-clock for a device, H:MM:SS from the start for a recording.

const REVIEW_TICK_STEPS_S = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
const MIN_VIEW_S = 60;
const ZOOM_STEP = 2;

export class ReviewTimeline {
  /** testid: of the segment bar; onPick(t, segment|null): a click on the timeline. */
  constructor(testid, { onPick = () => {} } = {}) {
    this.onPick = onPick;
    this.day = { start: 0, end: 1 };
    this.view = { start: 0, end: 1 };
    this.segments = [];
    this.firings = [];
    this.now = 0;
    this.selectedId = null;
    this.pick = null;
    this.clock = wallClock;

    this.bar = h("div", { class: "rtl-bar", dataset: { testid }, role: "list", "aria-label": "program and ad segments" });
    this.conf = h("div", { class: "rtl-conf", dataset: { testid: "review-confidence" }, "aria-hidden": "true" });
    this.marks = h("div", { class: "rtl-marks", dataset: { testid: "review-markers" } });
    this.pickLine = h("div", { class: "rtl-pick", hidden: true, dataset: { testid: "review-pick" } });
    this.nowLine = h("div", { class: "tl-now", hidden: true, title: "now" });
    this.axis = h("div", { class: "tl-axis rtl-axis", "aria-hidden": "true" });
    this.empty = h("div", { class: "rtl-empty", text: "No segments on this day" });
    this.wholeButton = h("button", { type: "button", class: "btn", dataset: { testid: "review-zoom-fit" }, onclick: () => this.fit() }, "Whole day");
    this.range = h("input", {
      type: "range",
      min: "0",
      max: "100",
      step: "1",
      value: "0",
      class: "rtl-range",
      "aria-label": "zoom",
      dataset: { testid: "review-zoom-range" },
      oninput: () => this.zoomTo(Number(this.range.value)),
    });
    this.viewText = h("span", { class: "sub", dataset: { testid: "review-zoom-window" } });
    this.track = h(
      "div",
      { class: "rtl-track" },
      h("div", { class: "rtl-lane rtl-lane-seg" }, this.bar),
      h("div", { class: "rtl-lane rtl-lane-conf", title: "confidence of each segment" }, this.conf),
      h("div", { class: "rtl-lane rtl-lane-marks", title: "auto-mute firings" }, this.marks),
      this.pickLine,
      this.nowLine,
    );
    this.el = h(
      "div",
      { class: "rtl" },
      h(
        "div",
        { class: "rtl-tools" },
        h("button", { type: "button", class: "btn", title: "zoom out", dataset: { testid: "review-zoom-out" }, onclick: () => this.zoom(ZOOM_STEP) }, "−"),
        this.range,
        h("button", { type: "button", class: "btn", title: "zoom in", dataset: { testid: "review-zoom-in" }, onclick: () => this.zoom(1 / ZOOM_STEP) }, "+"),
        h("button", { type: "button", class: "btn", title: "zoom to the segments", dataset: { testid: "review-zoom-data" }, onclick: () => this.fitTo(this.segments, this.now) }, "Fit"),
        this.wholeButton,
        this.viewText,
        h(
          "span",
          { class: "legend" },
          h("i", { class: "key-box key-program" }),
          "program ",
          h("i", { class: "key-box key-ad" }),
          "ad ",
          h("i", { class: "key-box key-reviewed" }),
          "reviewed ",
          h("i", { class: "key key-enter" }),
          "mute ",
          h("i", { class: "key key-exit" }),
          "unmute",
        ),
      ),
      h(
        "div",
        { class: "rtl-body" },
        h("div", { class: "rtl-labels", "aria-hidden": "true" }, h("span", { text: "segments" }), h("span", { text: "confidence" }), h("span", { text: "mute" })),
        h("div", { class: "rtl-main" }, this.track, this.empty),
      ),
      this.axis,
    );
    this.items = new Map();
    this.confItems = new Map();
    this.bindPointer();
  }

  /** How times read (format.js `wallClock` or `offsetClock`) and what the whole range is called ("day"). */
  setClock(clock, whole = "day") {
    this.clock = clock;
    this.wholeButton.textContent = `Whole ${whole}`;
    this.empty.textContent = whole === "day" ? "No segments on this day" : `No segments in this ${whole}`;
  }

  /** The whole day (or recording) shown (epoch seconds, or seconds from the recording's start); resets the zoom. */
  setDay(start, end) {
    this.day = { start, end };
    this.view = { start, end };
    this.range.value = "0";
  }

  /** Zoom to the window [start, end] (clamped into the day). */
  show(start, end) {
    this.setView(start, end);
    this.draw();
  }

  fit() {
    this.setView(this.day.start, this.day.end);
    this.draw();
  }

  /** Zoom to where the segments are (a little margin, at least 10 minutes); the whole day when there are none. */
  fitTo(segments, now) {
    if (!segments.length) return this.fit();
    const lo = Math.max(this.day.start, Math.min(...segments.map((s) => s.start)));
    const hi = Math.min(this.day.end, Math.max(...segments.map((s) => s.end ?? now)));
    const pad = Math.max(60, 0.04 * (hi - lo));
    const mid = (lo + hi) / 2;
    const span = Math.max(MIN_SPAN_S, hi - lo + 2 * pad);
    this.setView(mid - span / 2, mid + span / 2);
    this.draw();
  }

  zoom(factor, at = (this.view.start + this.view.end) / 2) {
    const span = this.view.end - this.view.start;
    const next = span * factor;
    const frac = (at - this.view.start) / span;
    this.setView(at - frac * next, at - frac * next + next);
    this.draw();
  }

  /** Slider 0..100: the whole day .. MIN_VIEW_S, logarithmic, around the window's centre. */
  zoomTo(level) {
    const full = this.day.end - this.day.start;
    const span = full * Math.pow(MIN_VIEW_S / full, level / 100);
    const mid = (this.view.start + this.view.end) / 2;
    this.setView(mid - span / 2, mid + span / 2, false);
    this.draw();
  }

  setView(start, end, syncRange = true) {
    const full = this.day.end - this.day.start;
    let span = Math.min(full, Math.max(Math.min(MIN_VIEW_S, full), end - start));
    let s = Math.max(this.day.start, Math.min(start, this.day.end - span));
    this.view = { start: s, end: s + span };
    if (syncRange && full > MIN_VIEW_S) {
      this.range.value = String(Math.round((100 * Math.log(span / full)) / Math.log(MIN_VIEW_S / full)));
    }
  }

  timeAt(clientX) {
    const r = this.track.getBoundingClientRect();
    const frac = Math.min(1, Math.max(0, (clientX - r.left) / Math.max(1, r.width)));
    return this.view.start + frac * (this.view.end - this.view.start);
  }

  segmentAt(t) {
    return this.segments.find((s) => s.start <= t && t < (s.end ?? this.now)) ?? null;
  }

  bindPointer() {
    let drag = null;
    this.track.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoom(e.deltaY > 0 ? 1.25 : 0.8, this.timeAt(e.clientX));
    }, { passive: false });
    this.track.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, view: { ...this.view }, moved: false };
      this.track.setPointerCapture?.(e.pointerId);
    });
    this.track.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x;
      if (Math.abs(dx) > 4) drag.moved = true;
      if (!drag.moved) return;
      const width = Math.max(1, this.track.getBoundingClientRect().width);
      const dt = (-dx / width) * (drag.view.end - drag.view.start);
      this.setView(drag.view.start + dt, drag.view.end + dt, false);
      this.draw();
    });
    const end = (e) => {
      if (!drag) return;
      const wasDrag = drag.moved;
      drag = null;
      if (wasDrag || e.type === "pointercancel") return;
      const t = this.timeAt(e.clientX);
      this.onPick(t, this.segmentAt(t));
    };
    this.track.addEventListener("pointerup", end);
    this.track.addEventListener("pointercancel", end);
    this.track.classList.add("is-draggable");
  }

  /** segments oldest first; firings: auto-mute commands; selectedId / pick: the detail panel's segment / instant. */
  render(segments, firings, now, { selectedId = null, pick = null, showNow = false } = {}) {
    this.segments = segments;
    this.firings = firings;
    this.now = now;
    this.selectedId = selectedId;
    this.pick = pick;
    this.showNow = showNow;
    this.draw();
  }

  draw() {
    const { start, end } = this.view;
    const span = Math.max(1, end - start);
    const pct = (t) => ((t - start) / span) * 100;
    const seen = new Set();
    let prev = null;
    let prevConf = null;
    for (const s of this.segments) {
      const key = String(s.id);
      seen.add(key);
      let el = this.items.get(key);
      let conf = this.confItems.get(key);
      if (!el) {
        el = h("div", { class: "seg", role: "listitem", dataset: { testid: "segment" } });
        conf = h("div", { class: "rtl-conf-bar", dataset: { testid: "confidence-bar" } });
        this.items.set(key, el);
        this.confItems.set(key, conf);
      }
      const want = prev ? prev.nextSibling : this.bar.firstChild;
      if (want !== el) this.bar.insertBefore(el, want);
      prev = el;
      const wantConf = prevConf ? prevConf.nextSibling : this.conf.firstChild;
      if (wantConf !== conf) this.conf.insertBefore(conf, wantConf);
      prevConf = conf;

      const segEnd = s.end ?? Math.max(this.now, s.start);
      const left = pct(s.start);
      const width = Math.max(0, pct(segEnd) - left);
      for (const node of [el, conf]) {
        node.style.left = `${left}%`;
        node.style.width = `${width}%`;
        setVariant(node, node === el ? "seg" : "conf", s.label === "ad" ? "ad" : "program");
      }
      conf.style.height = `${Math.round(Math.max(0, Math.min(1, s.confidence ?? 0)) * 100)}%`;
      el.classList.toggle("is-open", s.end == null);
      el.classList.toggle("is-interrupted", s.status === "interrupted");
      el.classList.toggle("is-reviewed", Boolean(s.review));
      el.classList.toggle("is-corrected", s.review === "corrected");
      el.classList.toggle("is-selected", s.id === this.selectedId);
      el.dataset.id = String(s.id);
      el.dataset.label = s.label;
      el.dataset.status = s.status ?? "";
      el.dataset.review = s.review ?? "";
      el.dataset.start = String(s.start);
      el.dataset.end = s.end == null ? "" : String(s.end);
      const was = s.detected_label && s.detected_label !== s.label ? ` (detected ${s.detected_label.toUpperCase()})` : "";
      el.title =
        `${s.label === "ad" ? "AD" : "PROGRAM"}${was}  ${this.clock.time(s.start)} – ${s.end == null ? "now" : this.clock.time(s.end)}` +
        `  (${fmtDuration(segEnd - s.start)})  ${s.status ?? ""}  confidence ${fmtPct(s.confidence)}` +
        (s.review ? `  ${s.review} by ${s.reviewed_by ?? "?"}` : "");
      conf.title = `confidence ${fmtPct(s.confidence)}`;
    }
    for (const [key, el] of this.items) {
      if (!seen.has(key)) {
        el.remove();
        this.confItems.get(key)?.remove();
        this.items.delete(key);
        this.confItems.delete(key);
      }
    }
    this.marks.replaceChildren(
      ...this.firings
        .filter((f) => f.ts >= start && f.ts <= end)
        .map((f) => {
          const m = h("div", {
            class: `rtl-mark rtl-mark-${f.action === "mute" ? "mute" : "unmute"}`,
            dataset: { testid: "mute-marker", action: f.action },
            title: `${f.action} (${String(f.reason ?? "").replace(/_/g, " ")}) at ${this.clock.time(f.ts)}`,
          });
          m.style.left = `${pct(f.ts)}%`;
          return m;
        }),
    );
    this.pickLine.hidden = this.pick == null || this.pick < start || this.pick > end;
    if (this.pick != null) this.pickLine.style.left = `${pct(this.pick)}%`;
    this.nowLine.hidden = !this.showNow || this.now < start || this.now > end;
    this.nowLine.style.left = `${pct(this.now)}%`;
    this.empty.hidden = this.segments.length > 0;
    this.viewText.textContent = `${this.clock.time(start)} – ${this.clock.time(end)} (${fmtDuration(end - start)})`;
    this.drawAxis(pct);
  }

  drawAxis(pct) {
    const { start, end } = this.view;
    const span = end - start;
    const maxTicks = Math.min(9, Math.max(2, Math.floor((this.el.clientWidth || 600) / 85)));
    const step = REVIEW_TICK_STEPS_S.find((st) => span / st <= maxTicks) ?? 21600;
    const origin = this.clock.origin(start);
    const first = origin + Math.ceil((start - origin) / step) * step;
    const ticks = [];
    for (let t = first; t <= end + 1e-6; t += step) ticks.push(t);
    this.axis.replaceChildren(
      ...ticks.map((t) => {
        const p = pct(t);
        const el = h("span", { class: "tl-tick", text: step < 60 ? this.clock.time(t) : this.clock.short(t) });
        el.style.left = `${p}%`;
        if (p < 4) el.classList.add("is-first");
        else if (p > 96) el.classList.add("is-last");
        return el;
      }),
    );
  }
}
