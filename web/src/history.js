// Review view (#/history?device=..&date=YYYY-MM-DD): one device, one local day; or one recording sent for review
// (#/history?device=rec:..., picked under "Recordings" by its file name), whole, its times H:MM:SS from its start. A
// zoomable timeline of the segments (reviewed ones marked) with a confidence track and the mute/unmute markers;
// totals; click a segment (on the timeline or in the table) for its detail panel: times, confidence, model,
// keyframes, and the corrections (relabel, split, merge with the previous/next, move start/end, confirm: docs/api.md
// "Review"); the day's corrections with who and when; exports. Live `segment` and `recording` events keep it current.

import "./review.css";
import { ApiError, apiUrl, fetchFirings, fetchRecordings, fetchSegments, getJSON, request } from "./api.js";
import { h, setText } from "./dom.js";
import {
  dayEnd,
  dayStart,
  fmtDay,
  fmtDuration,
  fmtMinutes,
  fmtOffset,
  fmtPct,
  fmtTime,
  isoDay,
  nowS,
  offsetClock,
  parseIsoDay,
  wallClock,
} from "./format.js";
import { ReviewTimeline } from "./timeline.js";

const EDGE_EPS = 1e-6;
const MAX_THUMBS = 12;

/** "HH:MM:SS" (24 h, tenths when not whole) of an instant in local time: the value format of the time inputs. */
export function hms(ts) {
  const d = new Date(ts * 1000);
  const p = (n) => String(n).padStart(2, "0");
  const frac = Math.round((ts % 1) * 10) % 10;
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${frac ? `.${frac}` : ""}`;
}

/**
 * An instant typed by the user: "HH:MM[:SS[.s]]" local time (on the day nearest `ref`), "+N" / "-N" seconds from
 * `base`, or epoch seconds. NaN when it is none of these.
 */
export function parseTimeInput(text, { base, ref }) {
  const v = String(text ?? "").trim();
  if (/^[+-]\d+(\.\d+)?$/.test(v)) return base + Number(v);
  if (/^\d{9,}(\.\d+)?$/.test(v)) return Number(v);
  const m = /^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?$/.exec(v);
  if (!m) return NaN;
  const [hh, mm, ss] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  if (hh > 23 || mm > 59 || ss > 59) return NaN;
  const frac = m[4] ? Number(m[4]) : 0;
  const day = new Date(ref * 1000);
  let best = NaN;
  for (const delta of [-1, 0, 1]) {
    const t = new Date(day.getFullYear(), day.getMonth(), day.getDate() + delta, hh, mm, ss).getTime() / 1000 + frac;
    if (Number.isNaN(best) || Math.abs(t - ref) < Math.abs(best - ref)) best = t;
  }
  return best;
}

/** A time in a recording typed by the user: "H:MM:SS[.s]" or "M:SS[.s]" from its start, "+N" / "-N" seconds from
 * `base`, or plain seconds. NaN when it is none of these. */
export function parseOffsetInput(text, { base }) {
  const v = String(text ?? "").trim();
  if (/^[+-]\d+(\.\d+)?$/.test(v)) return base + Number(v);
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const m = /^(?:(\d+):)?(\d{1,2}):(\d{2})(\.\d+)?$/.exec(v);
  if (!m) return NaN;
  const [hh, mm, ss] = [Number(m[1] ?? 0), Number(m[2]), Number(m[3])];
  if (ss > 59 || (m[1] !== undefined && (mm > 59 || m[2].length !== 2))) return NaN;
  return hh * 3600 + mm * 60 + ss + (m[4] ? Number(m[4]) : 0);
}

/** The value shown in a time input: local wall-clock "HH:MM:SS" for a device, "H:MM:SS" from the start for a
 * recording (tenths when not whole, so that an input left as shown reads back as the same instant). */
const inputTime = (recording, t) => (recording ? fmtOffset(t, true) : hms(t));

const adjacent = (a, b) => a && b && a.end != null && Math.abs(b.start - a.end) <= EDGE_EPS;
const LABEL = { ad: "AD", program: "PROGRAM" };

export class HistoryView {
  constructor(root) {
    this.root = root;
    this.devices = [];
    this.recordings = [];
    this.recording = null; // the shown recording (GET /recordings), null for a device
    this.device = "";
    this.date = new Date();
    this.segments = [];
    this.firings = [];
    this.corrections = [];
    this.selectedId = null;
    this.pick = null;
    this.keyframesFor = null;
    this.token = 0;
    this.busy = false;
    this.visible = false;

    this.dateInput = h("input", {
      type: "date",
      id: "history-date",
      dataset: { testid: "history-date" },
      onchange: () => this.navigate(),
    });
    this.deviceSelect = h("select", { id: "history-device", dataset: { testid: "history-device" }, onchange: () => this.navigate() });
    this.title = h("h2", { class: "history-title", dataset: { testid: "history-title" } });
    this.recInfo = h("p", { class: "sub", dataset: { testid: "history-recording-info" }, hidden: true });
    this.status = h("p", { class: "status-line", dataset: { testid: "history-status" }, role: "status" });
    this.totals = h("div", { class: "totals", dataset: { testid: "history-totals" } });
    this.timeline = new ReviewTimeline("history-timeline", { onPick: (t, seg) => this.onPick(t, seg) });
    this.detail = h("section", { class: "panel card review-detail", dataset: { testid: "review-detail" }, hidden: true });
    this.segBody = h("tbody");
    this.fireBody = h("tbody");
    this.corrBody = h("tbody");
    this.exportLinks = h("div", { class: "export-links", dataset: { testid: "review-exports" } });
    this.exportTitle = h("span", { text: "Export this day " });
    this.dayControls = h(
      "span",
      { class: "day-controls" },
      h("label", { for: "history-date" }, "Day"),
      this.dateInput,
      h("button", { type: "button", class: "btn", onclick: () => this.shiftDay(-1), title: "previous day", dataset: { testid: "history-prev" } }, "‹"),
      h("button", { type: "button", class: "btn", onclick: () => this.goToday(), dataset: { testid: "history-today" } }, "Today"),
      h("button", { type: "button", class: "btn", onclick: () => this.shiftDay(1), title: "next day", dataset: { testid: "history-next" } }, "›"),
    );
    this.firingsSection = table("Auto-mute firings", "history-firings", ["Time", "Action", "Reason", "Topic", "Payload"], this.fireBody);
    this.datasetNote = h("p", { class: "sub", dataset: { testid: "review-dataset-summary" } });

    root.append(
      h(
        "form",
        { class: "controls", onsubmit: (e) => e.preventDefault() },
        h("label", { for: "history-device" }, "Device"),
        this.deviceSelect,
        this.dayControls,
      ),
      this.title,
      this.recInfo,
      this.status,
      this.totals,
      h(
        "section",
        { class: "panel card" },
        h("h3", {}, "Timeline ", h("span", { class: "sub", text: "click a segment to review it; wheel or +/− to zoom, drag to pan" })),
        this.timeline.el,
      ),
      this.detail,
      table("Segments", "history-segments", ["Start", "End", "Duration", "Label", "Status", "Confidence", "Model", "Review"], this.segBody),
      table("Corrections", "review-corrections", ["When", "Who", "Action", "What"], this.corrBody),
      this.firingsSection,
      h(
        "section",
        { class: "panel card" },
        h("h3", {}, this.exportTitle, h("span", { class: "sub", text: "segments for players and editors; reviewed keyframes for retraining (adbreak train)" })),
        this.exportLinks,
        this.datasetNote,
      ),
    );
    setInterval(() => this.visible && this.isToday() && this.render(), 5000);
  }

  isToday() {
    return !this.recording && dayStart(this.date) === dayStart();
  }

  /** What is shown: the local day, or the whole recording (seconds from its start). */
  range() {
    if (this.recording) return { start: 0, end: this.recording.duration_s };
    return { start: dayStart(this.date), end: dayEnd(this.date) };
  }

  /** How times read here: wall-clock for a device, H:MM:SS from the start for a recording. */
  get clock() {
    return this.recording ? offsetClock : wallClock;
  }

  setDevices(devices) {
    this.devices = devices.map((d) => d.name).sort();
    this.buildPicker();
    if (this.visible && !this.device && this.deviceSelect.value) this.navigate();
  }

  /** The picker: the devices, then the recordings under their file names (value: the recording's device). */
  buildPicker() {
    const keep = this.device;
    const recs = [...this.recordings].sort((a, b) => a.name.localeCompare(b.name));
    this.deviceSelect.replaceChildren(
      ...(this.devices.length || recs.length ? [] : [h("option", { value: "", text: "no devices" })]),
      ...this.devices.map((n) => h("option", { value: n, text: n })),
      recs.length
        ? h(
            "optgroup",
            { label: "Recordings", dataset: { testid: "history-recordings" } },
            ...recs.map((r) => h("option", { value: r.device, text: r.name, dataset: { testid: "history-recording-option" } })),
          )
        : null,
    );
    if (keep && !this.devices.includes(keep) && !recs.some((r) => r.device === keep))
      this.deviceSelect.append(h("option", { value: keep, text: keep }));
    this.deviceSelect.value = keep || this.devices[0] || recs[0]?.device || "";
  }

  /** The recordings sent for review, from Socket.IO's hello: the server keeps them, the view asks for them again
   * when it shows (GET /recordings) and when one changes. */
  setRecordings(recordings) {
    this.recordingsServed = true;
    this.gotRecordings(recordings);
  }

  /** The recordings sent for review (GET /recordings); the shown one's details follow. */
  async loadRecordings() {
    let recordings;
    try {
      recordings = await fetchRecordings();
    } catch (e) {
      console.warn("adbreak: recordings unavailable:", e.message);
      return;
    }
    this.gotRecordings(recordings);
  }

  gotRecordings(recordings) {
    this.recordings = recordings;
    this.recordingsLoaded = true;
    this.buildPicker();
    const rec = this.recordings.find((r) => r.device === this.device) ?? null;
    if (this.visible && this.device.startsWith("rec:") && JSON.stringify(rec) !== JSON.stringify(this.recording)) {
      const again = !this.recording || !rec || rec.duration_s !== this.recording.duration_s;
      this.recording = rec;
      if (again) this.show(new URLSearchParams({ device: this.device }), { reload: true });
      else this.renderRecordingInfo();
    } else if (this.visible && !this.device && this.deviceSelect.value) this.navigate();
  }

  /** A recording was sent, replaced, given pictures or deleted (Socket.IO `recording`). */
  onRecording(r) {
    this.recordingsServed = true;
    this.loadRecordings();
    if (!this.visible || r.device !== this.device) return;
    if (r.change === "replaced") this.load();
    else if (r.change === "keyframes") {
      this.keyframesFor = null; // the selected segment's pictures again
      this.renderDetail();
    }
  }

  /** Put the form's choice into the URL (#/history?device=..&date=..); the router then calls show(). */
  navigate() {
    const q = new URLSearchParams();
    if (this.deviceSelect.value) q.set("device", this.deviceSelect.value);
    if (this.dateInput.value && !this.deviceSelect.value.startsWith("rec:")) q.set("date", this.dateInput.value);
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

  /** Called by the router with the hash's query (and again, `reload`, when the shown recording changed). */
  show(params, { reload = false } = {}) {
    this.visible = true;
    const date = parseIsoDay(params.get("date")) ?? new Date();
    const device = params.get("device") || this.deviceSelect.value || this.devices[0] || "";
    const isRec = device.startsWith("rec:");
    const rec = isRec ? (this.recordings.find((r) => r.device === device) ?? null) : null;
    const same = !reload && device === this.device && (isRec || dayStart(date) === dayStart(this.date)) && this.loaded;
    this.date = date;
    this.device = device;
    this.recording = rec;
    if (!reload && (this.recordingsServed || isRec)) this.loadRecordings(); // a scan may have been sent meanwhile
    this.dateInput.value = isoDay(this.date);
    if (this.device && ![...this.deviceSelect.options].some((o) => o.value === this.device))
      this.deviceSelect.append(h("option", { value: this.device, text: this.device }));
    this.deviceSelect.value = this.device;
    this.dayControls.hidden = isRec;
    this.firingsSection.hidden = isRec;
    setText(this.exportTitle, isRec ? "Export this recording " : "Export this day ");
    this.renderRecordingInfo();
    if (isRec && !rec) {
      // not (yet) in the list: its answer shows it
      this.loaded = false;
      this.token++;
      this.segments = [];
      setText(this.title, device);
      setText(this.status, this.recordingsLoaded ? "No such recording (deleted?)." : "Loading…");
      this.render();
      return;
    }
    setText(this.title, isRec ? rec.name : `${this.device || "—"} · ${fmtDay(this.date)}`);
    if (!same) {
      this.selectedId = null;
      this.pick = null;
      this.keyframesFor = null;
      this.timeline.setClock(this.clock, isRec ? "recording" : "day");
      const { start, end } = this.range();
      this.timeline.setDay(start, end);
      this.fitPending = true;
    }
    this.load();
  }

  /** One line about the shown recording: length, breaks, pictures, who sent it. */
  renderRecordingInfo() {
    const r = this.recording;
    this.recInfo.hidden = !r;
    if (!r) return;
    const when = (t) => `${isoDay(new Date(t * 1000))} ${fmtTime(t)}`;
    const n = (count, what) => (count == null ? null : `${count} ${what}${count === 1 ? "" : "s"}`);
    const parts = [
      `Recording, ${fmtOffset(r.duration_s)} long`, // hello's entries have the name, length and frame rate only
      r.ad_breaks == null ? null : `${n(r.ad_breaks, "ad break")} found`,
      n(r.keyframes, "picture"),
      r.scanned_at ? `scanned ${when(r.scanned_at)}` : null,
      r.uploaded_by ? `sent by ${r.uploaded_by} ${when(r.uploaded)}` : null,
      "times from its start",
    ];
    setText(this.recInfo, parts.filter(Boolean).join(" · "));
  }

  hide() {
    this.visible = false;
  }

  async load() {
    const token = ++this.token;
    if (!this.device) {
      this.segments = [];
      this.firings = [];
      this.corrections = [];
      setText(this.status, "No device to show yet.");
      this.render();
      return;
    }
    setText(this.status, "Loading…");
    const { start, end } = this.range();
    try {
      const [segments, firings] = await Promise.all([
        fetchSegments({ device: this.device, start, end }),
        this.recording ? [] : fetchFirings({ device: this.device, start, end }),
      ]);
      if (token !== this.token) return;
      this.segments = segments;
      this.firings = firings;
      this.loaded = true;
      if (this.fitPending) {
        this.fitPending = false;
        this.timeline.fitTo(segments, nowS());
      }
      setText(this.status, "");
    } catch (e) {
      if (token !== this.token) return;
      this.segments = [];
      this.firings = [];
      setText(this.status, `Could not load this ${this.recording ? "recording" : "day"}: ${e.message}`);
    }
    this.render();
    this.loadCorrections();
    this.renderExports(token);
  }

  /** Download links for the shown day (up to now when it is today) or recording, and the training set's summary. */
  async renderExports(token) {
    const seq = (this.exportSeq = (this.exportSeq ?? 0) + 1); // only the latest call finishes the links
    const range = this.range();
    const start = range.start;
    const end = this.recording ? range.end : Math.min(range.end, Math.ceil(nowS()));
    const params = { device: this.device, start, end };
    const fps = this.recording?.fps;
    const comskipFps = fps >= 1 && fps <= 240 ? { fps: Math.round(fps * 1000) / 1000 } : {};
    const have = this.device && this.segments.length > 0 && end > start;
    const formats = [
      ["csv", "Segments CSV"],
      ["edl", "Kodi EDL"],
      ["comskip", "Comskip .txt"],
      ["ffmetadata", "Chapters (ffmetadata)"],
    ];
    const link = (testid, text, url, enabled, title) =>
      enabled
        ? h("a", { class: "btn", href: String(url), download: "", dataset: { testid } }, text)
        : h("span", { class: "btn disabled", title, "aria-disabled": "true", dataset: { testid } }, text);
    const items = formats.map(([f, text]) =>
      link(`export-${f}`, text, apiUrl("export", { ...params, format: f, ...(f === "comskip" ? comskipFps : {}) }), have, "no segments here"),
    );
    this.exportLinks.replaceChildren(...items);
    if (!this.device) {
      setText(this.datasetNote, "");
      return;
    }
    try {
      const dataParams = this.recording ? { device: this.device } : params; // a recording: all of it
      const summary = await getJSON("dataset/summary", dataParams);
      if (token !== this.token || seq !== this.exportSeq) return;
      const labels = Object.entries(summary.labels || {}).map(([k, v]) => `${v} ${k}`).join(", ");
      this.exportLinks.append(link("export-dataset", "Training set (zip)", apiUrl("dataset", dataParams), summary.trainable, summary.problem || ""));
      setText(this.datasetNote, summary.trainable
        ? `Training set: ${summary.frames} frames from reviewed segments (${labels}).`
        : `Training set: ${summary.problem || "not enough reviewed frames; confirm or correct segments to add their keyframes"}`);
    } catch (e) {
      if (token !== this.token || seq !== this.exportSeq) return;
      setText(this.datasetNote, `Training set unavailable: ${e.message}`);
    }
  }

  async loadCorrections() {
    const token = this.token;
    try {
      const { start, end } = this.range();
      const { corrections } = await getJSON("corrections", { device: this.device, start, end, limit: 500 });
      if (token !== this.token) return;
      this.corrections = corrections;
    } catch (e) {
      if (token !== this.token) return;
      this.corrections = [];
      console.warn("adbreak: corrections unavailable:", e.message);
    }
    this.renderCorrections();
  }

  /** Merge a changed or new segment in (live event or a correction's answer); drop the ones it now covers. */
  upsert(s) {
    const i = this.segments.findIndex((x) => x.id === s.id);
    if (i >= 0) this.segments[i] = s;
    else this.segments.push(s);
    if (s.end != null) {
      // a merge elsewhere: the segments merged away lie inside the grown one
      this.segments = this.segments.filter((x) => x.id === s.id || !(x.start >= s.start - EDGE_EPS && x.end != null && x.end <= s.end + EDGE_EPS && x.start < s.end));
    }
    this.segments.sort((a, b) => a.start - b.start);
  }

  onSegment(s) {
    if (!this.visible || s.device !== this.device) return;
    const { start: from, end: to } = this.range();
    if (s.start >= to || (s.end != null && s.end <= from)) return;
    this.upsert(s);
    this.render();
    if (s.review) this.loadCorrections(); // someone corrected it: their entry is new
  }

  onSegmentRemoved(r) {
    if (!this.visible || r.device !== this.device) return;
    const before = this.segments.length;
    this.segments = this.segments.filter((x) => x.id !== r.id);
    if (this.segments.length !== before) this.render();
  }

  onCorrection(c) {
    if (!this.visible || c.device !== this.device || this.corrections.some((x) => x.id === c.id)) return;
    this.loadCorrections(); // the day's list, in the server's order and window
  }

  onFiring(f) {
    if (!this.visible || f.device !== this.device) return;
    if (f.ts < dayStart(this.date) || f.ts >= dayEnd(this.date) || this.firings.some((x) => x.id === f.id)) return;
    this.firings.push(f);
    this.firings.sort((a, b) => a.ts - b.ts);
    this.render();
  }

  // ------------------------------------------------------------------ selection
  onPick(t, seg) {
    this.pick = t;
    if (seg) this.select(seg.id, { keepPick: true });
    else this.render();
  }

  select(id, { keepPick = false } = {}) {
    if (!keepPick && this.selectedId !== id) this.pick = null;
    if (this.selectedId !== id) this.note = "";
    this.selectedId = id;
    this.error = "";
    this.render();
  }

  selected() {
    return this.segments.find((s) => s.id === this.selectedId) ?? null;
  }

  // ------------------------------------------------------------------ corrections
  async correct(what, method, path, body) {
    if (this.busy) return;
    this.busy = true;
    this.error = "";
    this.renderDetail();
    try {
      const answer = await request(method, path, { body });
      for (const id of answer.removed) this.segments = this.segments.filter((s) => s.id !== id);
      for (const s of answer.segments) this.upsert(s);
      this.note = `${what} · saved`;
      this.corrections = [answer.correction, ...this.corrections.filter((c) => c.id !== answer.correction.id)];
      this.renderCorrections();
      this.renderExports(this.token); // the training set grows with every review
    } catch (e) {
      this.error = e instanceof ApiError ? e.message : String(e);
      this.note = "";
    } finally {
      this.busy = false;
    }
    this.render();
  }

  relabel(seg) {
    const label = seg.label === "ad" ? "program" : "ad";
    this.correct(`Relabelled as ${LABEL[label]}`, "PATCH", `segments/${seg.id}`, { label });
  }

  split(seg) {
    const at = this.parseInput(this.splitInput.value, { base: seg.start, ref: (seg.start + seg.end) / 2 });
    if (!Number.isFinite(at)) return this.fail(`split time ${JSON.stringify(this.splitInput.value)}: type ${this.recording ? "H:MM:SS" : "HH:MM:SS"}, +seconds or pick it on the timeline`);
    const label = this.splitLabel.value || undefined;
    this.correct(`Split at ${this.clock.time(at)}`, "POST", `segments/${seg.id}/split`, { at, ...(label ? { label } : {}) });
  }

  merge(seg, other) {
    const body = { ids: [seg.id, other.id] };
    if (seg.label !== other.label) body.label = seg.label;
    const t = this.clock.time;
    this.correct(`Merged ${t(Math.min(seg.start, other.start))}–${t(Math.max(seg.end, other.end))}`, "POST", "segments/merge", body);
  }

  move(seg) {
    // an input left as shown (rounded to tenths) means "unchanged", not "moved by the rounding"
    const typed = (input, t) => (input.value.trim() === this.inputTime(t) ? t : this.parseInput(input.value, { base: t, ref: t }));
    const start = typed(this.startInput, seg.start);
    const end = typed(this.endInput, seg.end);
    const form = this.recording ? "H:MM:SS" : "HH:MM:SS";
    if (!Number.isFinite(start)) return this.fail(`start ${JSON.stringify(this.startInput.value)}: type ${form} or +/- seconds`);
    if (!Number.isFinite(end)) return this.fail(`end ${JSON.stringify(this.endInput.value)}: type ${form} or +/- seconds`);
    const body = {};
    if (Math.abs(start - seg.start) > 1e-3) body.start = start;
    if (Math.abs(end - seg.end) > 1e-3) body.end = end;
    if (!Object.keys(body).length) return this.fail("start and end are unchanged");
    this.correct(`Moved to ${this.clock.time(start)}–${this.clock.time(end)}`, "PATCH", `segments/${seg.id}`, body);
  }

  /** A time input's value for `t`, and what the user typed read back (see `inputTime`, `parseOffsetInput`). */
  inputTime(t) {
    return inputTime(Boolean(this.recording), t);
  }

  parseInput(text, where) {
    return this.recording ? parseOffsetInput(text, where) : parseTimeInput(text, where);
  }

  confirm(seg) {
    this.correct("Confirmed", "POST", `segments/${seg.id}/confirm`);
  }

  fail(message) {
    this.error = message;
    this.renderDetail();
  }

  async loadKeyframes(seg) {
    const key = `${seg.id}:${seg.start}:${seg.end}`;
    if (this.keyframesFor === key) return;
    this.keyframesFor = key;
    this.keyframes = null;
    try {
      const { keyframes } = await getJSON("keyframes", { device: this.device, start: seg.start, end: seg.end ?? nowS(), limit: 200 });
      if (this.keyframesFor !== key) return;
      this.keyframes = keyframes ?? [];
    } catch (e) {
      if (this.keyframesFor !== key) return;
      this.keyframes = [];
      if (!(e instanceof ApiError && e.status === 404)) console.warn("adbreak: keyframes unavailable:", e.message);
    }
    this.renderDetail();
  }

  // ------------------------------------------------------------------ rendering
  render() {
    const { start: from, end: to } = this.range();
    const now = nowS();
    const t = this.clock.time;
    const segs = this.segments;
    const within = (s) => Math.max(0, Math.min(s.end ?? now, to) - Math.max(s.start, from));
    const ads = segs.filter((s) => s.label === "ad");
    const adS = ads.reduce((a, s) => a + within(s), 0);
    const progS = segs.filter((s) => s.label === "program").reduce((a, s) => a + within(s), 0);
    // a break: touching ad segments (as the statistics count them)
    const breaks = [];
    for (const s of ads) {
      const last = breaks.at(-1);
      if (last && Math.abs(s.start - last.end) <= 1e-3) last.end = s.end ?? now;
      else breaks.push({ start: s.start, end: s.end ?? now });
    }
    const longest = breaks.reduce((a, b) => Math.max(a, b.end - b.start), 0);
    const mutes = this.firings.filter((f) => f.action === "mute").length;
    const share = adS + progS > 0 ? adS / (adS + progS) : null;
    const reviewed = segs.filter((s) => s.review).length;
    this.totals.replaceChildren(
      ...[
        stat("Ad minutes", fmtMinutes(adS), "history-ad-minutes"),
        stat("Breaks", String(breaks.length), "history-breaks"),
        stat("Program minutes", fmtMinutes(progS)),
        stat("Ad share", share == null ? "—" : fmtPct(share)),
        stat("Longest break", breaks.length ? fmtDuration(longest) : "—"),
        this.recording ? null : stat("Mutes", String(mutes)), // a recording mutes nothing
        stat("Reviewed", `${reviewed}/${segs.length}`, "history-reviewed"),
      ].filter(Boolean),
    );

    if (this.selectedId != null && !this.selected()) this.selectedId = null;
    this.timeline.render(segs, this.firings, now, { selectedId: this.selectedId, pick: this.pick, showNow: this.isToday() });

    this.segBody.replaceChildren(
      ...(segs.length
        ? segs.map((s) =>
            h(
              "tr",
              {
                class: s.id === this.selectedId ? "is-selected" : "",
                dataset: { testid: "history-segment-row", label: s.label, id: String(s.id) },
                onclick: () => this.select(s.id),
              },
              h("td", { text: t(s.start) }),
              h("td", { text: s.end == null ? "open" : t(s.end) }),
              h("td", { class: "num", text: fmtDuration((s.end ?? now) - s.start) }),
              h("td", {}, chip(s.label)),
              h("td", { text: s.status }),
              h("td", { class: "num", text: fmtPct(s.confidence) }),
              h("td", { class: "mono", text: s.model_version ?? "—" }),
              h("td", { text: reviewText(s) }),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 8, class: "none", text: "No segments." }))]),
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
    this.renderDetail();
  }

  renderCorrections() {
    const day = this.recording ? null : dayStart(this.date); // when it was corrected: a wall-clock time either way
    const clock = this.clock;
    this.corrBody.replaceChildren(
      ...(this.corrections.length
        ? this.corrections.map((c) =>
            h(
              "tr",
              { dataset: { testid: "review-correction-row", action: c.action } },
              h("td", { text: dayStart(new Date(c.ts * 1000)) === day ? fmtTime(c.ts) : `${isoDay(new Date(c.ts * 1000))} ${fmtTime(c.ts)}` }),
              h("td", { text: c.username }),
              h("td", { text: c.action }),
              h("td", { class: "review-what", text: describe(c, clock) }),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 4, class: "none", text: "No corrections." }))]),
    );
  }

  /** The detail panel: built once, its parts updated separately, so that what the user types is never lost. */
  buildDetail() {
    this.infoEl = h("div");
    this.kfEl = h("div");
    this.actionsEl = h("div");
    this.errorEl = h("p", { class: "review-error", role: "alert", dataset: { testid: "review-error" }, hidden: true });
    this.noteEl = h("p", { class: "sub", dataset: { testid: "review-note" }, hidden: true });
    this.detail.replaceChildren(this.infoEl, h("h4", { text: "Keyframes" }), this.kfEl, h("h4", { text: "Correct" }), this.actionsEl, this.errorEl, this.noteEl);
  }

  renderDetail() {
    const seg = this.selected();
    this.detail.hidden = !seg;
    if (!this.infoEl) this.buildDetail();
    if (!seg) {
      this.infoKey = this.actionsKey = this.kfKey = null;
      return;
    }
    const i = this.segments.indexOf(seg);
    const prev = this.segments[i - 1];
    const next = this.segments[i + 1];
    const open = seg.end == null;
    const end = seg.end ?? nowS();
    this.loadKeyframes(seg);

    const infoKey = JSON.stringify([seg, open ? Math.floor(end / 5) : 0]);
    if (infoKey !== this.infoKey) {
      this.infoKey = infoKey;
      this.infoEl.replaceChildren(
        h(
          "div",
          { class: "detail-head" },
          h("h3", {}, "Segment ", h("span", { class: "sub", text: `#${seg.id}` })),
          h("span", { dataset: { testid: "review-detail-label" } }, chip(seg.label)),
          seg.review ? h("span", { class: `badge review-${seg.review}`, dataset: { testid: "review-detail-review" }, text: seg.review }) : null,
          h("button", { type: "button", class: "btn linkish close", "aria-label": "close", dataset: { testid: "review-close" }, onclick: () => this.select(null) }, "×"),
        ),
        h(
          "dl",
          { class: "facts" },
          fact("From – to", `${this.clock.time(seg.start)} – ${open ? "now (open)" : this.clock.time(seg.end)}`, "review-detail-times"),
          fact("Duration", fmtDuration(end - seg.start)),
          fact("Status", seg.status),
          fact("Confidence", fmtPct(seg.confidence), "review-detail-confidence"),
          fact("Model", seg.model_version ?? "—", "review-detail-model"),
          fact("Detector said", (seg.detected_label ?? seg.label).toUpperCase()),
          fact("Reviewed", seg.review ? `${seg.review} by ${seg.reviewed_by ?? "?"} at ${fmtTime(seg.reviewed_ts)}` : "not yet"),
        ),
      );
    }

    const kfKey = `${this.keyframesFor}:${this.keyframes?.length ?? "loading"}`;
    if (kfKey !== this.kfKey) {
      this.kfKey = kfKey;
      this.kfEl.replaceChildren(
        this.keyframes == null
          ? h("p", { class: "sub", text: "Loading keyframes…" })
          : this.keyframes.length === 0
            ? h("p", { class: "sub", dataset: { testid: "review-no-keyframes" }, text: "No keyframes" })
            : h(
                "div",
                { class: "thumbs", dataset: { testid: "review-keyframes" } },
                ...sample(this.keyframes, MAX_THUMBS).map((k) =>
                  h(
                    "figure",
                    { class: "thumb", dataset: { testid: "review-keyframe" } },
                    h("img", { src: k.url, alt: `frame at ${this.clock.time(k.ts)}`, loading: "lazy" }),
                    h("figcaption", {}, `${this.clock.time(k.ts)} `, k.label ? chip(k.label) : null, k.p_ad != null ? ` p(ad) ${Number(k.p_ad).toFixed(2)}` : ""),
                  ),
                ),
              ),
      );
    }

    const actionsKey = JSON.stringify([seg.id, seg.start, seg.end, seg.label, seg.status, prev?.id, prev?.end, next?.id, next?.start, next?.end, this.busy]);
    if (actionsKey !== this.actionsKey) {
      const sameSeg = this.actionsSeg === `${seg.id}:${seg.start}:${seg.end}`;
      const typed = sameSeg && this.startInput
        ? { start: this.startInput.value, end: this.endInput.value, split: this.splitInput.value, label: this.splitLabel.value }
        : null;
      this.actionsKey = actionsKey;
      this.actionsSeg = `${seg.id}:${seg.start}:${seg.end}`;
      this.buildActions(seg, prev, next, typed);
    }
    if (this.pick !== this.shownPick) {
      this.shownPick = this.pick;
      if (this.pick != null && this.pick > seg.start && this.pick < end) this.splitInput.value = this.inputTime(this.pick);
    }
    this.errorEl.hidden = !this.error;
    setText(this.errorEl, this.error ?? "");
    this.noteEl.hidden = !this.note;
    setText(this.noteEl, this.note ?? "");
  }

  buildActions(seg, prev, next, typed) {
    const open = seg.end == null;
    const disabled = open || this.busy;
    const middle = open ? "" : this.inputTime(this.pick != null && this.pick > seg.start && this.pick < seg.end ? this.pick : (seg.start + seg.end) / 2);
    this.splitInput = h("input", {
      type: "text",
      class: "time-input",
      inputmode: "decimal",
      placeholder: this.recording ? "H:MM:SS" : "HH:MM:SS",
      "aria-label": "split at",
      dataset: { testid: "review-split-at" },
      value: typed ? typed.split : middle,
    });
    this.shownPick = this.pick;
    this.splitLabel = h(
      "select",
      { "aria-label": "label after the split", dataset: { testid: "review-split-label" } },
      h("option", { value: "", text: "same label after" }),
      h("option", { value: "ad", text: "AD after" }),
      h("option", { value: "program", text: "PROGRAM after" }),
    );
    this.startInput = h("input", { type: "text", class: "time-input", "aria-label": "start", dataset: { testid: "review-move-start" }, value: typed ? typed.start : this.inputTime(seg.start) });
    this.endInput = h("input", { type: "text", class: "time-input", "aria-label": "end", dataset: { testid: "review-move-end" }, value: typed ? typed.end : open ? "" : this.inputTime(seg.end) });
    if (typed) this.splitLabel.value = typed.label;
    const btn = (testid, text, onclick, off = disabled, title = undefined) =>
      h("button", { type: "button", class: "btn", dataset: { testid }, disabled: off, title, onclick }, text);
    this.actionsEl.replaceChildren(
      ...[
        open ? h("p", { class: "sub", text: "This segment is still open: it can be corrected once it has ended." }) : null,
        h(
          "div",
          { class: "actions" },
          btn("review-relabel", seg.label === "ad" ? "Relabel as PROGRAM" : "Relabel as AD", () => this.relabel(seg)),
          btn("review-confirm", "Confirm", () => this.confirm(seg), disabled, "mark as reviewed without change"),
          btn("review-merge-prev", "Merge with previous", () => this.merge(seg, prev), disabled || !adjacent(prev, seg) || prev.end == null),
          btn("review-merge-next", "Merge with next", () => this.merge(seg, next), disabled || !adjacent(seg, next) || next.end == null),
        ),
        h("div", { class: "actions" }, h("label", {}, "Split at ", this.splitInput), this.splitLabel, btn("review-split", "Split here", () => this.split(seg))),
        h(
          "div",
          { class: "actions" },
          h("label", {}, "Start ", this.startInput),
          h("label", {}, "End ", this.endInput),
          btn("review-move", "Move", () => this.move(seg)),
          h("span", { class: "sub", text: this.recording ? "H:MM:SS from the recording's start, or +/− seconds" : "HH:MM:SS local time, or +/− seconds" }),
        ),
      ].filter(Boolean),
    );
  }
}

function table(title, testid, heads, body) {
  return h(
    "section",
    { class: "panel card" },
    h("h3", { text: title }),
    h("div", { class: "table-wrap" }, h("table", { dataset: { testid } }, h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", { text: t })))), body)),
  );
}

function chip(label) {
  return h("span", { class: `chip chip-${label === "ad" ? "ad" : "program"}`, text: LABEL[label] ?? String(label) });
}

function stat(name, value, testid) {
  return h("div", { class: "stat" }, h("div", { class: "stat-value", dataset: testid ? { testid } : undefined, text: value }), h("div", { class: "stat-name", text: name }));
}

function fact(name, value, testid) {
  return h("div", {}, h("dt", { text: name }), h("dd", { dataset: testid ? { testid } : undefined, text: value }));
}

function reviewText(s) {
  if (!s.review) return "—";
  const was = s.detected_label && s.detected_label !== s.label ? ` (was ${LABEL[s.detected_label] ?? s.detected_label})` : "";
  return `${s.review === "confirmed" ? "✓ confirmed" : "✎ corrected"}${was} · ${s.reviewed_by ?? "?"}`;
}

function span(s, clock = wallClock) {
  return `${LABEL[s.label] ?? s.label} ${clock.time(s.start)}–${s.end == null ? "open" : clock.time(s.end)}`;
}

/** One line for a correction: what was there and what is there now (segment times on `clock`). */
function describe(c, clock = wallClock) {
  const span1 = (s) => span(s, clock);
  const before = c.before ?? [];
  const after = c.after ?? [];
  if (c.action === "confirm") return `confirmed ${after.map(span1).join(", ")}`;
  if (c.action === "relabel" && before.length && after.length) return `${span1(before[0])} → ${LABEL[after[0].label] ?? "?"}`;
  return `${before.map(span1).join(" + ")} → ${after.map(span1).join(" + ")}`;
}

function sample(items, n) {
  if (items.length <= n) return items;
  const out = [];
  for (let i = 0; i < n; i++) out.push(items[Math.round((i * (items.length - 1)) / (n - 1))]);
  return out;
}
