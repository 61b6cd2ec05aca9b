// Live view: one card per device, kept current from Socket.IO events (docs/api.md) and the REST API for what
// happened before the page opened (today's segments, the last mute firing).

import { fetchDevice, fetchFirings, fetchSegments } from "./api.js";
import { CHART_WINDOW_S, ENTER_THRESHOLD, EXIT_THRESHOLD, TELEMETRY_STALE_S } from "./config.js";
import { h, setText, setVariant } from "./dom.js";
import { dayEnd, dayStart, fmtDuration, fmtPct, fmtTime, nowS } from "./format.js";
import { ProbChart } from "./probchart.js";
import { Timeline, timelineWindow } from "./timeline.js";

const AVAILABILITY = { online: "online", offline: "offline", stopped: "stopped" };

const DEVICE_FETCH_DELAY_MS = 1000;

const num = (x, digits) => (Number.isFinite(x) ? x.toFixed(digits) : "—");

function blankDevice(name) {
  return { name, availability: null, state: null, model_version: null, last_seen: null, muted: false, last_seq: null };
}

/** The thresholds a device runs: its reported (else effective) settings, else the built-in defaults. */
function thresholds(device) {
  const s = device?.settings?.reported ?? device?.settings?.effective ?? {};
  return { enter: s.enter_threshold ?? ENTER_THRESHOLD, exit: s.exit_threshold ?? EXIT_THRESHOLD };
}

class DeviceCard {
  constructor(device) {
    const n = device.name;
    this.enterText = h("span", { dataset: { testid: `device-enter-${n}` } });
    this.exitText = h("span", { dataset: { testid: `device-exit-${n}` } });
    this.name = n;
    this.device = device;
    this.known = false; // a device object from the server (push, hello or REST) has been seen
    this.segments = new Map(); // id -> Segment, today's
    this.lastFiring = null;
    this.lastTelemetry = null;
    this.telemetryAt = 0; // browser time it arrived
    this.clockOffset = 0; // device clock minus browser clock, from recent telemetry
    this.offsets = []; // [arrival, ts - arrival] of the last 30 s
    this.loadError = null;
    // the timeline, the chart and the clock-driven text are drawn only while the card is on (or near) the screen
    // (LiveView's IntersectionObserver says when): with hundreds of TVs, drawing every card every second left the
    // page no time for the badges. Off screen, render() keeps the text current and marks the rest to draw.
    this.onScreen = false;
    this.needsDraw = false;

    this.availability = h("span", { class: "badge", dataset: { testid: `device-availability-${n}` } });
    this.state = h("div", { class: "state", dataset: { testid: `device-state-${n}` } });
    this.stateFor = h("span", { class: "state-for", dataset: { testid: `device-since-${n}` } });
    this.stateSince = h("span", { class: "sub" });
    this.confidence = h("span", { dataset: { testid: `device-confidence-${n}` } });
    this.stale = h("div", { class: "state-stale", hidden: true });
    this.muted = h("span", { class: "badge", dataset: { testid: `device-muted-${n}` } });
    this.firing = h("span", { class: "sub", dataset: { testid: `device-firing-${n}` } });
    this.model = h("span", { class: "mono", dataset: { testid: `device-model-${n}` } });
    this.detector = h("span", { dataset: { testid: `device-detector-${n}` } });
    this.lastSeen = h("span");
    this.chartEl = h("div", { class: "chart", dataset: { testid: `chart-${n}` } });
    this.timeline = new Timeline(`timeline-${n}`, "No segments yet today");
    this.timelineNote = h("span", { class: "sub" });

    this.el = h(
      "article",
      { class: "card", dataset: { testid: `device-card-${n}` }, "aria-label": `device ${n}` },
      h("header", { class: "card-head" }, h("h2", { class: "device-name", text: n }), this.availability),
      h(
        "div",
        { class: "state-row" },
        this.state,
        h(
          "div",
          { class: "state-meta" },
          h("div", {}, "for ", this.stateFor),
          h("div", {}, this.stateSince),
          h("div", {}, "confidence ", this.confidence),
        ),
      ),
      this.stale,
      h(
        "dl",
        { class: "facts" },
        h("div", {}, h("dt", { text: "Auto-mute" }), h("dd", {}, this.muted, h("div", {}, this.firing))),
        h("div", {}, h("dt", { text: "Model" }), h("dd", {}, this.model)),
        h("div", {}, h("dt", { text: "Detector" }), h("dd", {}, this.detector)),
        h("div", {}, h("dt", { text: "Last seen" }), h("dd", {}, this.lastSeen)),
      ),
      h(
        "section",
        { class: "panel" },
        h(
          "h3",
          {},
          "Ad probability ",
          h("span", { class: "sub", text: `last ${CHART_WINDOW_S / 60} min` }),
          h(
            "span",
            { class: "legend" },
            h("i", { class: "key key-raw" }),
            "p_ad ",
            h("i", { class: "key key-smooth" }),
            "smoothed ",
            h("i", { class: "key key-enter" }),
            this.enterText,
            h("i", { class: "key key-exit" }),
            this.exitText,
          ),
        ),
        this.chartEl,
      ),
      h("section", { class: "panel" }, h("h3", {}, "Today ", this.timelineNote), this.timeline.el),
    );
    const th = thresholds(device);
    this.chart = new ProbChart(this.chartEl, {
      enter: th.enter,
      exit: th.exit,
      windowS: CHART_WINDOW_S,
    });
    this.setThresholds(th);
    this.render();
  }

  /** The decision thresholds the device runs (its reported settings), drawn on the chart and in its legend. */
  setThresholds({ enter, exit }) {
    setText(this.enterText, `enter ${enter} `);
    setText(this.exitText, `exit ${exit}`);
    if (this.chart.enter !== enter || this.chart.exit !== exit) {
      this.chart.enter = enter;
      this.chart.exit = exit;
      this.chart.plot?.redraw();
    }
  }

  /** "Now" on the device's clock: the browser clock corrected by the offset seen in its telemetry. */
  now() {
    return nowS() + this.clockOffset;
  }

  setDevice(device) {
    this.known = true;
    this.device = { ...this.device, ...device };
    this.setThresholds(thresholds(this.device));
    this.render();
  }

  upsertSegment(seg) {
    const old = this.segments.get(seg.id);
    // a REST answer that raced a newer live event must not reopen a closed segment
    if (old && old.end != null && seg.end == null) return;
    this.segments.set(seg.id, seg);
  }

  setTelemetry(t) {
    this.lastTelemetry = t;
    const at = nowS();
    this.telemetryAt = at;
    // ts - arrival = clock offset - delivery delay, so the largest recent sample is the best estimate (and a burst
    // of late samples cannot drag the clock back)
    this.offsets = this.offsets.filter(([when]) => at - when <= 30);
    this.offsets.push([at, t.ts - at]);
    this.clockOffset = Math.max(...this.offsets.map(([, o]) => o));
    this.chart.push(t);
  }

  setFiring(f) {
    if (!this.lastFiring || f.ts >= this.lastFiring.ts) this.lastFiring = f;
    this.render();
  }

  sortedSegments(from) {
    return [...this.segments.values()].filter((s) => s.end == null || s.end > from).sort((a, b) => a.start - b.start);
  }

  render() {
    const d = this.device;
    const now = this.now();
    const avail = AVAILABILITY[d.availability] ?? "unknown";
    setText(this.availability, avail);
    setVariant(this.availability, "avail", avail);

    const live = avail === "online";
    const label = d.state?.label === "ad" ? "AD" : d.state?.label === "program" ? "PROGRAM" : "—";
    setText(this.state, label);
    setVariant(this.state, "state", label === "AD" ? "ad" : label === "PROGRAM" ? "program" : "none");
    this.state.classList.toggle("is-stale", !live);
    setText(this.stateFor, d.state?.since != null ? fmtDuration(now - d.state.since) : "—");
    setText(this.stateSince, d.state?.since != null ? `since ${fmtTime(d.state.since)}` : "no state yet");
    setText(this.confidence, fmtPct(d.state?.confidence));
    this.stale.hidden = live || !d.state;
    if (!live && d.state) setText(this.stale, `Device is ${avail}: last known state`);

    const muted = Boolean(d.muted);
    setText(this.muted, muted ? "MUTED" : "NOT MUTED");
    setVariant(this.muted, "mute", muted ? "on" : "off");
    const f = this.lastFiring;
    setText(this.firing, f ? `last: ${f.action} (${String(f.reason ?? "").replace(/_/g, " ")}) at ${fmtTime(f.ts)}` : "no firing in the last 24 h");

    setText(this.model, d.model_version ?? "—");
    const t = this.lastTelemetry;
    const age = nowS() - this.telemetryAt;
    if (!t) setText(this.detector, "no telemetry yet");
    else if (age > TELEMETRY_STALE_S) setText(this.detector, `no telemetry for ${fmtDuration(age)}`);
    else
      setText(
        this.detector,
        `${num(t.fps, 1)} fps · ${num(t.latency_ms, 0)} ms/frame · ${t.dropped ?? 0} dropped · p_ad ${num(t.p_ad, 2)}`,
      );
    setText(this.lastSeen, d.last_seen != null ? fmtTime(d.last_seen) : "—");

    if (this.onScreen) this.renderPlots(now, t, age);
    else this.needsDraw = true;
  }

  /** The card came on (or went off) the screen: draw what was skipped while it was off. */
  setOnScreen(on) {
    this.onScreen = on;
    if (on && this.needsDraw) this.render();
  }

  renderPlots(now, t, age) {
    this.needsDraw = false;
    const from = dayStart();
    const to = dayEnd();
    const segs = this.sortedSegments(from);
    const win = timelineWindow(segs, from, to, now, true);
    this.timeline.render(segs, win, now, true);
    const adS = segs
      .filter((s) => s.label === "ad")
      .reduce((acc, s) => acc + Math.max(0, Math.min(s.end ?? now, to) - Math.max(s.start, from)), 0);
    const breaks = segs.filter((s) => s.label === "ad").length;
    setText(
      this.timelineNote,
      this.loadError ? `could not load: ${this.loadError}` : `${breaks} break${breaks === 1 ? "" : "s"} · ${fmtDuration(adS)} of ads`,
    );
    this.chart.update(t && age <= CHART_WINDOW_S ? Math.max(now, t.ts) : now);
  }

  destroy() {
    this.chart.destroy();
    this.el.remove();
  }
}

export class LiveView {
  constructor(root) {
    this.root = root;
    this.cards = new Map();
    this.order = []; // the cards' names, sorted as the grid shows them
    this.loading = new Set();
    this.toLoad = new Set(); // devices whose today (segments, last firing) is fetched when their card comes on screen
    this.grid = h("div", { class: "cards live-cards" });
    this.empty = h(
      "div",
      { class: "empty", dataset: { testid: "live-empty" } },
      h("p", { class: "empty-title", text: "No devices yet" }),
      h("p", { text: "An edge agent appears here as soon as it publishes to the MQTT broker the server listens to." }),
    );
    this.root.append(this.empty, this.grid);
    this.day = dayStart();
    this.byEl = new WeakMap(); // card element -> card, for the observer
    this.visibility = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          const card = this.byEl.get(e.target);
          if (!card) continue;
          card.setOnScreen(e.isIntersecting);
          if (e.isIntersecting && this.toLoad.has(card.name)) this.loadToday(card.name);
        }
      },
      { rootMargin: "600px 0px" },
    );
    setInterval(() => this.tick(), 1000);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      for (const c of this.cards.values()) c.chart.restyle();
    });
  }

  /** The full device list (hello on every (re)connect, or the REST list at start-up). */
  setDevices(devices, authoritative) {
    const names = new Set(devices.map((d) => d.name));
    if (authoritative) {
      for (const [name, card] of this.cards) {
        if (!names.has(name)) this.remove(name);
      }
    }
    for (const d of devices) this.card(d.name, d).setDevice(d);
    // after a (re)connect, fetch what may have been missed while disconnected (now for the cards on screen, the
    // others when they come on screen: a page of 1,000 TVs must not send 2,000 requests at once)
    for (const name of names) this.requestLoad(name);
    this.layout();
  }

  requestLoad(name) {
    this.toLoad.add(name);
    if (this.cards.get(name)?.onScreen) this.loadToday(name);
  }

  card(name, device) {
    let card = this.cards.get(name);
    if (!card) {
      card = new DeviceCard(device ?? blankDevice(name));
      this.cards.set(name, card);
      this.byEl.set(card.el, card);
      this.place(card);
      this.visibility.observe(card.el);
      this.layout();
      if (!device) {
        // an event from a device we have not heard of yet: fetch it, unless its `device` push comes first (the
        // server sends a batch's device pushes after its segments, so a new TV's first segment precedes them)
        setTimeout(() => {
          if (this.cards.get(name) === card && !card.known) {
            fetchDevice(name)
              .then((d) => card.setDevice(d))
              .catch(() => {});
          }
        }, DEVICE_FETCH_DELAY_MS);
        this.requestLoad(name);
      }
    }
    return card;
  }

  /** Insert a new card at its place in name order (a binary search: no re-sort of the whole grid per card). */
  place(card) {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.order[mid].localeCompare(card.name) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.order.splice(lo, 0, card.name);
    this.grid.insertBefore(card.el, this.cards.get(this.order[lo + 1])?.el ?? null);
  }

  remove(name) {
    const card = this.cards.get(name);
    this.visibility.unobserve(card.el);
    card.destroy();
    this.cards.delete(name);
    this.order.splice(this.order.indexOf(name), 1);
    this.toLoad.delete(name);
  }

  layout() {
    this.empty.hidden = this.cards.size > 0;
  }

  async loadToday(name) {
    if (this.loading.has(name)) return;
    this.loading.add(name);
    this.toLoad.delete(name);
    const start = dayStart();
    try {
      const [segments, firings] = await Promise.all([
        fetchSegments({ device: name, start }),
        fetchFirings({ device: name, start: Math.floor(nowS() - 86400) }),
      ]);
      const card = this.cards.get(name);
      if (!card) return;
      card.loadError = null;
      for (const s of segments) card.upsertSegment(s);
      if (firings.length) card.setFiring(firings.at(-1));
      card.render();
    } catch (e) {
      const card = this.cards.get(name);
      if (card) {
        card.loadError = e.message;
        card.render();
      }
    } finally {
      this.loading.delete(name);
    }
  }

  onDevice(d) {
    this.card(d.name, d).setDevice(d);
  }

  onSegment(s) {
    if (String(s.device).startsWith("rec:")) return; // a recording sent for review, corrected there: no TV
    const card = this.card(s.device);
    card.upsertSegment(s);
    card.render();
  }

  /** A telemetry batch from the server: a list with the latest sample of each device (a lone sample is taken too). */
  onTelemetry(batch) {
    for (const t of Array.isArray(batch) ? batch : [batch]) {
      const card = this.card(t.device);
      card.setTelemetry(t);
      card.render();
    }
  }

  onFiring(f) {
    this.card(f.device).setFiring(f);
  }

  tick() {
    const day = dayStart();
    if (day !== this.day) {
      // local midnight passed: today's timeline starts again
      this.day = day;
      for (const card of this.cards.values()) {
        for (const [id, s] of card.segments) if (s.end != null && s.end <= day) card.segments.delete(id);
      }
    }
    // the clocks ("for 3m 12s") of the cards on screen; the others are drawn when they come on screen
    for (const card of this.cards.values()) {
      if (card.onScreen) card.render();
      else card.needsDraw = true;
    }
  }
}
