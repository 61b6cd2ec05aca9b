// Statistics view (#/stats?device=..&range=day|week&date=YYYY-MM-DD): ad minutes per hour (uPlot bars) and per
// day, breaks (count, mean, median, longest), share of time muted and share of ad, for one device or all of them,
// from GET /api/v1/stats in the browser's time zone (docs/api.md "Statistics"). The numbers follow the corrected
// segments; live `segment` / `firing` events for the range refresh it.

import "./stats.css";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { getJSON } from "./api.js";
import { h, setText } from "./dom.js";
import { dayEnd, dayStart, fmtDay, fmtDuration, fmtHM, fmtPct, isoDay, nowS, parseIsoDay } from "./format.js";

const RANGES = { day: 1, week: 7 };
const REFRESH_MS = 3000;

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || undefined;
const mins = (s) => (s == null ? "—" : (s / 60).toFixed(s >= 600 ? 0 : 1));
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric" });

export class StatsView {
  constructor(root) {
    this.root = root;
    this.devices = [];
    this.device = "";
    this.range = "day";
    this.date = new Date();
    this.token = 0;
    this.visible = false;
    this.timer = 0;
    this.plot = null;
    this.data = null;

    this.deviceSelect = h("select", { id: "stats-device", dataset: { testid: "stats-device" }, onchange: () => this.navigate() });
    this.rangeSelect = h(
      "select",
      { id: "stats-range", dataset: { testid: "stats-range" }, onchange: () => this.navigate() },
      h("option", { value: "day", text: "Day" }),
      h("option", { value: "week", text: "Week (7 days to)" }),
    );
    this.dateInput = h("input", { type: "date", id: "stats-date", dataset: { testid: "stats-date" }, onchange: () => this.navigate() });
    this.title = h("h2", { class: "history-title" });
    this.status = h("p", { class: "status-line", dataset: { testid: "stats-status" }, role: "status" });
    this.totals = h("div", { class: "totals", dataset: { testid: "stats-totals" } });
    this.chartEl = h("div", { class: "stats-chart", dataset: { testid: "stats-chart-hour" } });
    this.chartNote = h("span", { class: "sub" });
    this.dayBody = h("tbody");
    this.deviceBody = h("tbody");
    this.deviceSection = h(
      "section",
      { class: "panel card" },
      h("h3", { text: "Per device" }),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { dataset: { testid: "stats-devices" } },
          h("thead", {}, h("tr", {}, ...["Device", "Ad minutes", "Breaks", "Mean break", "Longest", "Ad share", "Muted"].map((t) => h("th", { text: t })))),
          this.deviceBody,
        ),
      ),
    );

    root.append(
      h(
        "form",
        { class: "controls", onsubmit: (e) => e.preventDefault() },
        h("label", { for: "stats-device" }, "Device"),
        this.deviceSelect,
        h("label", { for: "stats-range" }, "Range"),
        this.rangeSelect,
        h("label", { for: "stats-date" }, "Day"),
        this.dateInput,
        h("button", { type: "button", class: "btn", title: "earlier", dataset: { testid: "stats-prev" }, onclick: () => this.shift(-1) }, "‹"),
        h("button", { type: "button", class: "btn", dataset: { testid: "stats-today" }, onclick: () => this.shift(0) }, "Today"),
        h("button", { type: "button", class: "btn", title: "later", dataset: { testid: "stats-next" }, onclick: () => this.shift(1) }, "›"),
      ),
      this.title,
      this.status,
      this.totals,
      h(
        "section",
        { class: "panel card" },
        h("h3", {}, "Ad minutes per hour ", this.chartNote, h("span", { class: "legend" }, h("i", { class: "key-box key-ad" }), "ad minutes")),
        this.chartEl,
      ),
      h(
        "section",
        { class: "panel card" },
        h("h3", { text: "Per day" }),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { dataset: { testid: "stats-days" } },
            h("thead", {}, h("tr", {}, ...["Day", "Ad minutes", "Breaks", "Watched", "Ad share", "Muted"].map((t) => h("th", { text: t })))),
            this.dayBody,
          ),
        ),
      ),
      this.deviceSection,
    );
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.chartEl);
  }

  setDevices(devices) {
    this.devices = devices.map((d) => d.name).sort();
    this.fillDevices();
  }

  fillDevices() {
    const names = [...this.devices];
    if (this.device && !names.includes(this.device)) names.push(this.device);
    this.deviceSelect.replaceChildren(h("option", { value: "", text: "All devices" }), ...names.map((n) => h("option", { value: n, text: n })));
    this.deviceSelect.value = this.device;
  }

  navigate() {
    const q = new URLSearchParams();
    if (this.deviceSelect.value) q.set("device", this.deviceSelect.value);
    q.set("range", this.rangeSelect.value);
    if (this.dateInput.value) q.set("date", this.dateInput.value);
    location.hash = `#/stats?${q}`;
  }

  shift(delta) {
    const step = RANGES[this.range] ?? 1;
    const base = delta === 0 ? new Date() : this.date;
    const d = new Date(base.getFullYear(), base.getMonth(), base.getDate() + delta * step);
    this.dateInput.value = isoDay(d);
    this.navigate();
  }

  window() {
    const days = RANGES[this.range] ?? 1;
    const first = new Date(this.date.getFullYear(), this.date.getMonth(), this.date.getDate() - (days - 1));
    return { start: dayStart(first), end: dayEnd(this.date), first };
  }

  show(params) {
    this.visible = true;
    this.device = params.get("device") ?? "";
    this.range = params.get("range") in RANGES ? params.get("range") : "day";
    this.date = parseIsoDay(params.get("date")) ?? new Date();
    this.fillDevices();
    this.rangeSelect.value = this.range;
    this.dateInput.value = isoDay(this.date);
    const { first } = this.window();
    setText(
      this.title,
      `${this.device || "All devices"} · ${this.range === "day" ? fmtDay(this.date) : `${fmtDay(first)} – ${fmtDay(this.date)}`}`,
    );
    this.load();
  }

  hide() {
    this.visible = false;
    clearTimeout(this.timer);
    this.timer = 0;
  }

  async load() {
    const token = ++this.token;
    const { start, end } = this.window();
    const params = { device: this.device || undefined, start, end, tz: browserZone() };
    setText(this.status, "Loading…");
    try {
      const [hours, days] = await Promise.all([
        getJSON("stats", { ...params, bucket: "hour" }),
        getJSON("stats", { ...params, bucket: "day" }),
      ]);
      if (token !== this.token) return;
      this.data = { hours, days };
      setText(this.status, hours.covered_s > 0 ? "" : "Nothing watched in this range.");
    } catch (e) {
      if (token !== this.token) return;
      this.data = null;
      setText(this.status, `Could not load statistics: ${e.message}`);
    }
    this.render();
  }

  /** A live change inside the shown range: reload soon (at most every few seconds). */
  changed(device, t) {
    if (!this.visible || (this.device && device !== this.device)) return;
    const { start, end } = this.window();
    if (t != null && (t < start || t >= end)) return;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = 0;
      if (this.visible) this.load();
    }, REFRESH_MS);
  }

  onSegment(s) {
    this.changed(s.device, s.end ?? nowS());
  }

  onFiring(f) {
    this.changed(f.device, f.ts);
  }

  render() {
    const d = this.data;
    const t = d?.hours;
    const br = t?.breaks;
    this.totals.replaceChildren(
      stat("Ad minutes", t ? mins(t.ad_s) : "—", "stats-ad-minutes"),
      stat("Breaks", t ? String(br.count) : "—", "stats-breaks"),
      stat("Mean break", br?.mean_s != null ? fmtDuration(br.mean_s) : "—", "stats-break-mean"),
      stat("Median break", br?.median_s != null ? fmtDuration(br.median_s) : "—", "stats-break-median"),
      stat("Longest break", br?.longest_s != null ? fmtDuration(br.longest_s) : "—", "stats-break-longest"),
      stat("Ad share", fmtPct(t?.share_ad), "stats-share-ad"),
      stat("Muted", fmtPct(t?.share_muted), "stats-share-muted"),
    );
    this.dayBody.replaceChildren(
      ...(d
        ? d.days.buckets.map((b) =>
            h(
              "tr",
              { dataset: { testid: "stats-day-row" } },
              h("td", { text: dayFmt.format(new Date(b.start * 1000)) }),
              h("td", { class: "num", dataset: { testid: "stats-day-ad-minutes" }, text: mins(b.ad_s) }),
              h("td", { class: "num", text: String(b.breaks) }),
              h("td", { class: "num", text: fmtDuration(b.covered_s) }),
              h("td", { class: "num", text: fmtPct(b.share_ad) }),
              h("td", { class: "num", text: fmtPct(b.share_muted) }),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 6, class: "none", text: "No data." }))]),
    );
    const perDevice = d?.hours.devices ?? [];
    this.deviceSection.hidden = Boolean(this.device);
    this.deviceBody.replaceChildren(
      ...(perDevice.length
        ? perDevice.map((x) =>
            h(
              "tr",
              { dataset: { testid: "stats-device-row", device: x.device } },
              h("td", { text: x.device }),
              h("td", { class: "num", text: mins(x.ad_s) }),
              h("td", { class: "num", text: String(x.breaks.count) }),
              h("td", { class: "num", text: x.breaks.mean_s != null ? fmtDuration(x.breaks.mean_s) : "—" }),
              h("td", { class: "num", text: x.breaks.longest_s != null ? fmtDuration(x.breaks.longest_s) : "—" }),
              h("td", { class: "num", text: fmtPct(x.share_ad) }),
              h("td", { class: "num", text: fmtPct(x.share_muted) }),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 7, class: "none", text: "No devices." }))]),
    );
    this.drawChart();
  }

  chartData() {
    const buckets = this.data?.hours.buckets ?? [];
    return [buckets.map((b) => b.start), buckets.map((b) => (b.covered_s > 0 || b.ad_s > 0 ? b.ad_s / 60 : null))];
  }

  drawChart() {
    const data = this.chartData();
    const total = (this.data?.hours.ad_s ?? 0) / 60;
    this.chartEl.dataset.bars = String(data[0].length);
    this.chartEl.dataset.total = total.toFixed(3);
    const peak = Math.max(0, ...data[1].map((v) => v ?? 0));
    setText(this.chartNote, data[0].length ? `${data[0].length} hours, peak ${peak.toFixed(1)} min` : "");
    if (!this.visible || !this.chartEl.clientWidth) return;
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
    if (!data[0].length) return;
    const ad = cssVar("--ad-seg") || "#e5534b";
    const grid = cssVar("--grid");
    const fg = cssVar("--fg-muted");
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const { start, end } = this.window();
    this.plot = new uPlot(
      {
        width: this.chartEl.clientWidth,
        height: 220,
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { show: false } },
        scales: { x: { time: true, range: () => [start, end] }, y: { range: (u, lo, hi) => [0, Math.max(5, Math.ceil(hi / 5) * 5)] } },
        series: [
          {},
          {
            label: "ad minutes",
            stroke: ad,
            fill: ad,
            width: 0,
            paths: uPlot.paths.bars({ size: [0.82, 60], align: 1 }),
            points: { show: false },
            value: (u, v) => (v == null ? "—" : `${v.toFixed(1)} min`),
          },
        ],
        axes: [
          this.range === "day"
            ? { ...axis, values: (u, ticks) => ticks.map((x) => fmtHM(x)) }
            : { ...axis, splits: () => midnights(start, end), values: (u, ticks) => ticks.map((x) => dayFmt.format(new Date(x * 1000))) },
          { ...axis, size: 44, label: "min", labelSize: 16, values: (u, ticks) => ticks.map((v) => String(v)) },
        ],
        hooks: {
          setCursor: [
            (u) => {
              const i = u.cursor.idx;
              const b = this.data?.hours.buckets[i];
              this.chartEl.title = b ? `${fmtHM(b.start)}: ${mins(b.ad_s)} ad min, ${b.breaks} break(s)` : "";
            },
          ],
        },
      },
      data,
      this.chartEl,
    );
  }

  resize() {
    if (this.plot && this.chartEl.clientWidth) this.plot.setSize({ width: this.chartEl.clientWidth, height: 220 });
    else if (!this.plot && this.data && this.visible) this.drawChart();
  }
}

/** The local midnights from `start` up to `end` (epoch seconds): one tick per day. */
function midnights(start, end) {
  const out = [];
  const d = new Date(start * 1000);
  for (let day = new Date(d.getFullYear(), d.getMonth(), d.getDate()); day.getTime() / 1000 < end; day.setDate(day.getDate() + 1)) {
    if (day.getTime() / 1000 >= start) out.push(day.getTime() / 1000);
  }
  return out;
}

function stat(name, value, testid) {
  return h("div", { class: "stat" }, h("div", { class: "stat-value", dataset: { testid }, text: value }), h("div", { class: "stat-name", text: name }));
}
