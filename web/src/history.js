// History view: one device, one local day. Timeline, totals, the segment table and the auto-mute firings, from
// the REST API; while the chosen day is today, live `segment` / `firing` events keep it current.

import { fetchFirings, fetchSegments } from "./api.js";
import { h, setText } from "./dom.js";
import { dayEnd, dayStart, fmtDay, fmtDuration, fmtMinutes, fmtPct, fmtTime, isoDay, nowS, parseIsoDay } from "./format.js";
import { Timeline, timelineWindow } from "./timeline.js";

export class HistoryView {
  constructor(root) {
    this.root = root;
    this.devices = [];
    this.device = "";
    this.date = new Date();
    this.segments = [];
    this.firings = [];
    this.token = 0;
    this.visible = false;

    this.dateInput = h("input", {
      type: "date",
      id: "history-date",
      dataset: { testid: "history-date" },
      onchange: () => this.navigate(),
    });
    this.deviceSelect = h("select", { id: "history-device", dataset: { testid: "history-device" }, onchange: () => this.navigate() });
    this.title = h("h2", { class: "history-title" });
    this.status = h("p", { class: "status-line", dataset: { testid: "history-status" }, role: "status" });
    this.totals = h("div", { class: "totals", dataset: { testid: "history-totals" } });
    this.timeline = new Timeline("history-timeline", "No segments on this day");
    this.segBody = h("tbody");
    this.fireBody = h("tbody");

    root.append(
      h(
        "form",
        { class: "controls", onsubmit: (e) => e.preventDefault() },
        h("label", { for: "history-date" }, "Day"),
        this.dateInput,
        h("label", { for: "history-device" }, "Device"),
        this.deviceSelect,
        h("button", { type: "button", class: "btn", onclick: () => this.shiftDay(-1), title: "previous day" }, "‹"),
        h("button", { type: "button", class: "btn", onclick: () => this.goToday() }, "Today"),
        h("button", { type: "button", class: "btn", onclick: () => this.shiftDay(1), title: "next day" }, "›"),
      ),
      this.title,
      this.status,
      this.totals,
      h("section", { class: "panel card" }, h("h3", { text: "Timeline" }), this.timeline.el),
      h(
        "section",
        { class: "panel card" },
        h("h3", { text: "Segments" }),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { dataset: { testid: "history-segments" } },
            h(
              "thead",
              {},
              h("tr", {}, ...["Start", "End", "Duration", "Label", "Status", "Confidence", "Model"].map((t) => h("th", { text: t }))),
            ),
            this.segBody,
          ),
        ),
      ),
      h(
        "section",
        { class: "panel card" },
        h("h3", { text: "Auto-mute firings" }),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { dataset: { testid: "history-firings" } },
            h("thead", {}, h("tr", {}, ...["Time", "Action", "Reason", "Topic", "Payload"].map((t) => h("th", { text: t })))),
            this.fireBody,
          ),
        ),
      ),
    );
    setInterval(() => this.visible && this.isToday() && this.render(), 5000);
  }

  isToday() {
    return dayStart(this.date) === dayStart();
  }

  setDevices(devices) {
    this.devices = devices.map((d) => d.name).sort();
    const keep = this.device;
    this.deviceSelect.replaceChildren(
      ...(this.devices.length ? [] : [h("option", { value: "", text: "no devices" })]),
      ...this.devices.map((n) => h("option", { value: n, text: n })),
    );
    if (keep && !this.devices.includes(keep)) this.deviceSelect.append(h("option", { value: keep, text: keep }));
    this.deviceSelect.value = keep || this.devices[0] || "";
    if (this.visible && !this.device && this.deviceSelect.value) this.navigate();
  }

  /** Put the form's choice into the URL (#/history?device=..&date=..); the router then calls show(). */
  navigate() {
    const q = new URLSearchParams();
    if (this.deviceSelect.value) q.set("device", this.deviceSelect.value);
    if (this.dateInput.value) q.set("date", this.dateInput.value);
    location.hash = `#/history?${q}`;
  }

  shiftDay(delta) {
    const d = new Date(this.date.getFullYear(), this.date.getMonth(), this.date.getDate() + delta);
    this.dateInput.value = isoDay(d);
    this.navigate();
  }

  goToday() {
    this.dateInput.value = isoDay(new Date());
    this.navigate();
  }

  /** Called by the router with the hash's query. */
  show(params) {
    this.visible = true;
    this.date = parseIsoDay(params.get("date")) ?? new Date();
    this.device = params.get("device") || this.deviceSelect.value || this.devices[0] || "";
    this.dateInput.value = isoDay(this.date);
    if (this.device && ![...this.deviceSelect.options].some((o) => o.value === this.device))
      this.deviceSelect.append(h("option", { value: this.device, text: this.device }));
    this.deviceSelect.value = this.device;
    setText(this.title, `${this.device || "—"} · ${fmtDay(this.date)}`);
    this.load();
  }

  hide() {
    this.visible = false;
  }

  async load() {
    const token = ++this.token;
    this.segments = [];
    this.firings = [];
    if (!this.device) {
      setText(this.status, "No device to show yet.");
      this.render();
      return;
    }
    setText(this.status, "Loading…");
    const start = dayStart(this.date);
    const end = dayEnd(this.date);
    try {
      const [segments, firings] = await Promise.all([
        fetchSegments({ device: this.device, start, end }),
        fetchFirings({ device: this.device, start, end }),
      ]);
      if (token !== this.token) return;
      this.segments = segments;
      this.firings = firings;
      setText(this.status, "");
    } catch (e) {
      if (token !== this.token) return;
      setText(this.status, `Could not load this day: ${e.message}`);
    }
    this.render();
  }

  onSegment(s) {
    if (!this.visible || s.device !== this.device) return;
    const from = dayStart(this.date);
    const to = dayEnd(this.date);
    if (s.start >= to || (s.end != null && s.end <= from)) return;
    const i = this.segments.findIndex((x) => x.id === s.id);
    if (i >= 0) this.segments[i] = s;
    else this.segments.push(s);
    this.segments.sort((a, b) => a.start - b.start);
    this.render();
  }

  onFiring(f) {
    if (!this.visible || f.device !== this.device) return;
    if (f.ts < dayStart(this.date) || f.ts >= dayEnd(this.date) || this.firings.some((x) => x.id === f.id)) return;
    this.firings.push(f);
    this.firings.sort((a, b) => a.ts - b.ts);
    this.render();
  }

  render() {
    const from = dayStart(this.date);
    const to = dayEnd(this.date);
    const now = nowS();
    const segs = this.segments;
    const within = (s) => Math.max(0, Math.min(s.end ?? now, to) - Math.max(s.start, from));
    const ads = segs.filter((s) => s.label === "ad");
    const adS = ads.reduce((a, s) => a + within(s), 0);
    const progS = segs.filter((s) => s.label === "program").reduce((a, s) => a + within(s), 0);
    const longest = ads.reduce((a, s) => Math.max(a, within(s)), 0);
    const mutes = this.firings.filter((f) => f.action === "mute").length;
    const share = adS + progS > 0 ? adS / (adS + progS) : null;
    this.totals.replaceChildren(
      stat("Ad minutes", fmtMinutes(adS), "history-ad-minutes"),
      stat("Breaks", String(ads.length), "history-breaks"),
      stat("Program minutes", fmtMinutes(progS)),
      stat("Ad share", share == null ? "—" : fmtPct(share)),
      stat("Longest break", ads.length ? fmtDuration(longest) : "—"),
      stat("Mutes", String(mutes)),
    );

    const isToday = this.isToday();
    this.timeline.render(segs, timelineWindow(segs, from, to, now, false), now, isToday);

    this.segBody.replaceChildren(
      ...(segs.length
        ? segs.map((s) =>
            h(
              "tr",
              { dataset: { testid: "history-segment-row", label: s.label } },
              h("td", { text: fmtTime(s.start) }),
              h("td", { text: s.end == null ? "open" : fmtTime(s.end) }),
              h("td", { class: "num", text: fmtDuration((s.end ?? now) - s.start) }),
              h("td", {}, h("span", { class: `chip chip-${s.label === "ad" ? "ad" : "program"}`, text: s.label === "ad" ? "AD" : "PROGRAM" })),
              h("td", { text: s.status }),
              h("td", { class: "num", text: fmtPct(s.confidence) }),
              h("td", { class: "mono", text: s.model_version ?? "—" }),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 7, class: "none", text: "No segments." }))]),
    );
    this.fireBody.replaceChildren(
      ...(this.firings.length
        ? this.firings.map((f) =>
            h(
              "tr",
              { dataset: { testid: "history-firing-row" } },
              h("td", { text: fmtTime(f.ts) }),
              h("td", {}, h("span", { class: `chip chip-${f.action === "mute" ? "ad" : "program"}`, text: f.action })),
              h("td", { text: String(f.reason ?? "").replace(/_/g, " ") }),
              h("td", { class: "mono", text: f.topic ?? "" }),
              h("td", { class: "mono", text: typeof f.payload === "string" ? f.payload : JSON.stringify(f.payload ?? "") }),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 5, class: "none", text: "No firings." }))]),
    );
  }
}

function stat(name, value, testid) {
  return h("div", { class: "stat" }, h("div", { class: "stat-value", dataset: testid ? { testid } : undefined, text: value }), h("div", { class: "stat-name", text: name }));
}
