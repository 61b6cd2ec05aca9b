// Devices view (#/devices): every device's availability, state, model version and last sign of life, and its
// decision settings: the defaults (the device's own, shown as placeholders), which fields the user overrode, Save /
// Reset, and "pending on device" until the device reports running what was chosen (docs/dashboard.md).
//
// Data: GET /api/v1/devices (each Device carries `settings`: defaults / desired / reported / effective / pending /
// error), live `device` pushes through onDevice, and PUT /api/v1/devices/<name>/settings to save.

import "./devices.css";
import { fetchDevice, fetchDevices, request } from "./api.js";
import { h, setText, setVariant } from "./dom.js";
import { fmtDuration, fmtTime, nowS } from "./format.js";

/** The decision settings a user can set, in the order shown (adbreak.wire.SETTINGS_FIELDS). */
export const FIELDS = [
  { key: "enter_threshold", label: "Enter threshold", unit: "p(ad)", step: "0.01", min: 0, max: 1,
    help: "smoothed p(ad) at or above which an ad starts" },
  { key: "exit_threshold", label: "Exit threshold", unit: "p(ad)", step: "0.01", min: 0, max: 1,
    help: "smoothed p(ad) at or below which the ad ends" },
  { key: "min_ad_s", label: "Minimum ad", unit: "s", step: "0.5", min: 0, max: 3600,
    help: "an ad segment lasts at least this long" },
  { key: "min_program_s", label: "Minimum program", unit: "s", step: "0.5", min: 0, max: 3600,
    help: "a program segment lasts at least this long" },
  { key: "smoothing", label: "Smoothing", unit: "", choices: ["window", "ema"],
    help: "rolling mean over a window, or an exponential moving average" },
  { key: "window_s", label: "Window", unit: "s", step: "0.1", min: 0, max: 3600,
    help: "window smoothing: mean over the last seconds" },
  { key: "ema_tau_s", label: "EMA time constant", unit: "s", step: "0.1", min: 0, max: 3600,
    help: "ema smoothing: time constant" },
];

const fmtValue = (v) => (v === null || v === undefined ? "—" : typeof v === "number" ? String(+v.toFixed(4)) : v);

function same(a, b) {
  if (typeof a === "number" && typeof b === "number") return Math.abs(a - b) <= 1e-9;
  return a === b;
}

class DeviceSettingsCard {
  constructor(device, onSaved) {
    const n = device.name;
    this.name = n;
    this.device = device;
    this.onSaved = onSaved;
    this.dirty = false;
    this.busy = false;

    this.availability = h("span", { class: "badge", dataset: { testid: `devices-availability-${n}` } });
    this.state = h("span", { class: "chip", dataset: { testid: `devices-state-${n}` } });
    this.model = h("span", { class: "mono", dataset: { testid: `devices-model-${n}` } });
    this.lastSeen = h("span", { dataset: { testid: `devices-last-seen-${n}` } });
    this.since = h("span");
    this.pending = h("span", { class: "badge", dataset: { testid: `devices-pending-${n}` } });
    this.deviceError = h("p", { class: "devset-error", hidden: true, dataset: { testid: `devices-device-error-${n}` } });
    this.status = h("p", { class: "devset-status", role: "status", dataset: { testid: `devices-status-${n}` } });
    this.autoMute = h("input", {
      type: "checkbox", dataset: { testid: `devices-auto-mute-${n}` },
      onchange: () => this.setAutoMute(this.autoMute.checked),
    });
    this.autoMuteNote = h("span", { class: "sub", role: "status", dataset: { testid: `devices-auto-mute-note-${n}` } });

    this.inputs = new Map(); // key -> {input, mark, note}
    const rows = FIELDS.map((f) => this.fieldRow(f));
    this.save = h("button", {
      type: "submit", class: "btn btn-primary", dataset: { testid: `devices-save-${n}` }, text: "Save",
    });
    this.reset = h("button", {
      type: "button", class: "btn", dataset: { testid: `devices-reset-${n}` }, text: "Reset to defaults",
      onclick: () => this.submit(true),
    });
    this.form = h(
      "form",
      { class: "devset-form", dataset: { testid: `devices-form-${n}` }, novalidate: true,
        onsubmit: (e) => { e.preventDefault(); this.submit(false); },
        oninput: () => this.markDirty() },
      h("div", { class: "devset-grid" }, rows),
      h("div", { class: "devset-actions" }, this.save, this.reset, this.status),
    );

    this.el = h(
      "article",
      { class: "card devset-card", dataset: { testid: `devices-card-${n}` }, "aria-label": `device ${n}` },
      h("header", { class: "card-head" }, h("h2", { class: "device-name", text: n }), this.availability),
      h(
        "dl",
        { class: "facts" },
        h("div", {}, h("dt", { text: "State" }), h("dd", {}, this.state, " ", h("span", { class: "sub" }, this.since))),
        h("div", {}, h("dt", { text: "Model version" }), h("dd", {}, this.model)),
        h("div", {}, h("dt", { text: "Last seen" }), h("dd", {}, this.lastSeen)),
        h("div", {}, h("dt", { text: "Auto-mute" }),
          h("dd", {}, h("label", { class: "switch" }, this.autoMute, " mute this TV during ads"), " ", this.autoMuteNote)),
      ),
      h(
        "section",
        { class: "panel" },
        h("h3", {}, "Decision settings ", this.pending),
        h("p", { class: "sub devset-hint",
          text: "Empty fields use the device's default (shown in grey). Saved settings are sent to the device." }),
        this.deviceError,
        this.form,
      ),
    );
    this.render(true);
  }

  fieldRow(f) {
    const n = this.name;
    const id = `devset-${n}-${f.key}`;
    let input;
    if (f.choices) {
      input = h(
        "select",
        { id, name: f.key, dataset: { testid: `devices-input-${n}-${f.key}` } },
        h("option", { value: "", dataset: { default: "1" } }, "default"),
        f.choices.map((c) => h("option", { value: c }, c)),
      );
    } else {
      input = h("input", {
        id, name: f.key, type: "number", inputmode: "decimal", step: f.step, min: f.min, max: f.max,
        dataset: { testid: `devices-input-${n}-${f.key}` },
      });
    }
    const mark = h("span", { class: "devset-mark", dataset: { testid: `devices-overridden-${n}-${f.key}` } });
    const note = h("span", { class: "devset-note", dataset: { testid: `devices-reported-${n}-${f.key}` } });
    this.inputs.set(f.key, { input, mark, note, field: f });
    return h(
      "div",
      { class: "devset-row" },
      h("label", { for: id, title: f.help }, f.label, f.unit ? h("span", { class: "sub", text: ` ${f.unit}` }) : null),
      h("div", { class: "devset-input" }, input),
      h("div", { class: "devset-side" }, mark, note),
    );
  }

  setDevice(device) {
    this.device = { ...this.device, ...device };
    this.render(!this.dirty);
  }

  markDirty() {
    this.dirty = true;
    setText(this.status, "unsaved changes");
    this.status.className = "devset-status";
    this.renderMarks();
  }

  /** Values of the form as a full settings body: every field, null where empty (= the default). */
  formValues() {
    const out = {};
    for (const [key, { input, field }] of this.inputs) {
      const raw = input.value.trim();
      if (raw === "") out[key] = null;
      else if (field.choices) out[key] = raw;
      else out[key] = Number(raw);
    }
    return out;
  }

  async submit(reset) {
    if (this.busy) return;
    const body = reset ? Object.fromEntries(FIELDS.map((f) => [f.key, null])) : this.formValues();
    for (const [key, value] of Object.entries(body)) {
      if (typeof value === "number" && !Number.isFinite(value)) {
        this.fail(`${key}: not a number`);
        return;
      }
    }
    this.busy = true;
    this.save.disabled = this.reset.disabled = true;
    setText(this.status, reset ? "resetting…" : "saving…");
    this.status.className = "devset-status";
    try {
      const answer = await request("PUT", `devices/${encodeURIComponent(this.name)}/settings`, { body });
      this.dirty = false;
      this.device = { ...this.device, settings: answer };
      this.render(true);
      setText(this.status, answer.pending ? "saved: sent to the device" : "saved");
      this.status.className = "devset-status is-ok";
      this.onSaved?.(this.name, answer);
    } catch (e) {
      this.fail(e.message);
    } finally {
      this.busy = false;
      this.save.disabled = this.reset.disabled = false;
    }
  }

  fail(message) {
    setText(this.status, message);
    this.status.className = "devset-status is-error";
  }

  settings() {
    return this.device.settings ?? { defaults: null, desired: null, reported: null, effective: {}, pending: false };
  }

  async setAutoMute(enabled) {
    this.autoMute.disabled = true;
    setText(this.autoMuteNote, "");
    try {
      const device = await request("PUT", `devices/${encodeURIComponent(this.name)}/auto-mute`, { body: { enabled } });
      this.device = { ...this.device, ...device };
      setText(this.autoMuteNote, enabled ? "on" : "off (the fail-safe unmute still applies)");
    } catch (e) {
      this.autoMute.checked = !enabled;
      setText(this.autoMuteNote, e.message);
    } finally {
      this.autoMute.disabled = false;
    }
  }

  render(fillInputs) {
    const d = this.device;
    const s = this.settings();
    if (!this.autoMute.disabled) this.autoMute.checked = d.auto_mute !== false;
    const avail = d.availability ?? "unknown";
    setText(this.availability, avail);
    setVariant(this.availability, "avail", d.availability);
    const label = d.state?.label ?? null;
    setText(this.state, label ?? "—");
    setVariant(this.state, "chip", label);
    setText(this.since, d.state?.since ? `since ${fmtTime(d.state.since)}` : "");
    setText(this.model, d.model_version ?? "—");
    setText(this.lastSeen, d.last_seen ? `${fmtTime(d.last_seen)} (${fmtDuration(nowS() - d.last_seen)} ago)` : "never");

    const pending = Boolean(s.pending);
    setText(this.pending, pending ? "pending on device" : s.reported ? "in effect" : "not reported");
    setVariant(this.pending, "devset", pending ? "pending" : s.reported ? "applied" : "unknown");
    this.pending.title = pending
      ? "The device has not yet reported running these settings (it may be offline)."
      : s.reported
        ? "The device reports running these settings."
        : "The device has not reported its settings (an older agent, or never connected).";
    this.deviceError.hidden = !s.error;
    setText(this.deviceError, s.error ? `The device refused the last settings: ${s.error}` : "");

    const defaults = s.defaults ?? {};
    const desired = s.desired ?? {};
    for (const [key, { input, note, field }] of this.inputs) {
      const def = defaults[key];
      if (field.choices) {
        const opt = input.querySelector("option[data-default]");
        opt.textContent = def === undefined ? "default" : `default (${def})`;
      } else {
        input.placeholder = def === undefined ? "default" : fmtValue(def);
      }
      if (fillInputs) input.value = key in desired && desired[key] !== null ? String(desired[key]) : "";
      const running = s.reported?.[key];
      const wanted = s.effective?.[key];
      const differs = s.reported && running !== undefined && wanted !== undefined && !same(running, wanted);
      setText(note, differs ? `device runs ${fmtValue(running)}` : "");
    }
    this.renderMarks();
  }

  renderMarks() {
    const desired = this.settings().desired ?? {};
    for (const [key, { input, mark }] of this.inputs) {
      const saved = key in desired && desired[key] !== null;
      const filled = input.value.trim() !== "";
      const text = this.dirty ? (filled ? "custom" : "") : saved ? "custom" : "";
      setText(mark, text);
      mark.title = text ? "overrides the device's default" : "";
      input.classList.toggle("is-overridden", Boolean(text));
    }
  }
}

export class DevicesView {
  constructor(root) {
    this.root = root;
    this.cards = new Map(); // name -> DeviceSettingsCard
    this.visible = false;
    this.loaded = false;
    this.statusLine = h("p", { class: "status-line", dataset: { testid: "devices-status" } });
    this.grid = h("div", { class: "cards", dataset: { testid: "devices-list" } });
    this.empty = h(
      "div",
      { class: "empty", hidden: true, dataset: { testid: "devices-empty" } },
      h("div", { class: "empty-title", text: "No devices yet" }),
      h("p", { text: "A device appears here once its edge agent connects to the broker." }),
    );
    this.root.append(
      h("h1", { class: "history-title", text: "Devices" }),
      this.statusLine,
      this.empty,
      this.grid,
    );
    this.timer = null;
  }

  show() {
    this.visible = true;
    this.load();
    if (this.timer === null) this.timer = setInterval(() => this.tick(), 5000);
  }

  hide() {
    this.visible = false;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  async load() {
    setText(this.statusLine, this.loaded ? "" : "loading…");
    try {
      const devices = await fetchDevices();
      this.loaded = true;
      for (const d of devices) this.upsert(d);
      setText(this.statusLine, "");
    } catch (e) {
      setText(this.statusLine, `device list unavailable: ${e.message}`);
    }
    this.renderEmpty();
  }

  // While the view is hidden, pushes are not applied: show() loads the whole list afresh. A page of hundreds of TVs
  // must not keep hundreds of hidden settings forms current on every push (it stalled the live view for seconds).
  setDevices(devices) {
    if (!this.visible) return;
    for (const d of devices) {
      if ("availability" in d) this.upsert(d);
      else if (!this.cards.has(d.name)) this.fetchOne(d.name);
    }
    this.renderEmpty();
  }

  async fetchOne(name) {
    try {
      this.upsert(await fetchDevice(name));
      this.renderEmpty();
    } catch (e) {
      console.warn(`adbreak: device ${name} unavailable:`, e.message);
    }
  }

  onDevice(d) {
    if (!this.visible || !d || !d.name) return;
    if (this.cards.has(d.name) || "availability" in d) this.upsert(d);
    this.renderEmpty();
  }

  upsert(d) {
    let card = this.cards.get(d.name);
    if (card) {
      card.setDevice(d);
      return;
    }
    card = new DeviceSettingsCard(d);
    this.cards.set(d.name, card);
    const names = [...this.cards.keys()].sort();
    const next = names[names.indexOf(d.name) + 1];
    const before = next ? this.cards.get(next).el : null;
    this.grid.insertBefore(card.el, before);
  }

  renderEmpty() {
    this.empty.hidden = this.cards.size > 0 || !this.loaded;
  }

  tick() {
    if (!this.visible) return;
    for (const card of this.cards.values()) {
      const d = card.device;
      setText(card.lastSeen, d.last_seen ? `${fmtTime(d.last_seen)} (${fmtDuration(nowS() - d.last_seen)} ago)` : "never");
    }
  }
}
