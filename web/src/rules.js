// Rules view (#/rules): the user rules (enable toggles), the built-in auto-mute (read-only), a create/edit form
// (name, trigger, conditions, ordered action steps with template help; Save, Test, Delete) and the audit log of
// rule runs, kept live by the socket's `rule_run` events (docs/dashboard.md, "Rules").
//
// Data: GET /api/v1/rules ({rules, builtin, variables}), POST/PUT/DELETE /api/v1/rules[/<id>],
// POST /api/v1/rules/<id>/enable|disable|test, GET /api/v1/rules/runs. Errors from the API are shown next to the form.

import "./rules.css";
import { getJSON, request } from "./api.js";
import { h, setText } from "./dom.js";

const TRIGGERS = [
  ["ad_start", "Ad starts"],
  ["ad_end", "Ad ends"],
  ["offline", "Device goes offline"],
];
const TRIGGER_TEXT = Object.fromEntries(TRIGGERS);
const DAYS = [
  ["mon", "Mon"],
  ["tue", "Tue"],
  ["wed", "Wed"],
  ["thu", "Thu"],
  ["fri", "Fri"],
  ["sat", "Sat"],
  ["sun", "Sun"],
];
const METHODS = ["POST", "PUT", "PATCH", "GET", "DELETE"];
const MAX_ACTIONS = 10;
const RUN_LIMIT = 100;
const EXAMPLES = [
  ["{{ device }}", "the device's name, e.g. in a topic: home/{{ device }}/lights"],
  ["{{ label|upper }}", "AD or PROGRAM"],
  ['{{ "%.2f"|format(confidence) }}', "the confidence with two decimals"],
  ["{{ {\"device\": device, \"label\": label, \"at\": iso_time}|tojson }}", "a JSON body"],
  ['{% if label == "ad" %}on{% else %}off{% endif %}', "a choice"],
];

const runTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const fmtRunTime = (ts) => (Number.isFinite(ts) ? runTimeFmt.format(new Date(ts * 1000)) : "—");

function newAction(type) {
  if (type === "mqtt") return { type, topic: "home/{{ device }}/", payload: "{{ label }}", qos: 1, retain: false };
  if (type === "webhook") return { type, url: "http://", method: "POST", body: "", headers: {} };
  return { type: "delay", seconds: 5 };
}

function emptyRule() {
  return {
    name: "",
    enabled: true,
    trigger: "ad_start",
    conditions: { devices: [], days: [], hours: null, min_confidence: 0, min_time_in_state_s: 0 },
    actions: [newAction("mqtt")],
  };
}

/** A number from an input; the raw text when it is not one (the API then names the field). */
function numberOr(text, fallback) {
  const t = String(text ?? "").trim();
  if (t === "") return fallback;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

function headersText(headers) {
  return Object.entries(headers ?? {}).map(([k, v]) => `${k}: ${v}`).join("\n");
}

function parseHeaders(text) {
  const out = {};
  for (const line of String(text).split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(":");
    if (at < 0) out[line.trim()] = "";
    else out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

function conditionsText(c) {
  const parts = [];
  parts.push(c.devices?.length ? c.devices.join(", ") : "any device");
  if (c.days?.length) parts.push(c.days.join(" "));
  if (c.hours) parts.push(`${c.hours.from}–${c.hours.to}`);
  if (c.min_confidence > 0) parts.push(`confidence ≥ ${c.min_confidence}`);
  if (c.min_time_in_state_s > 0) parts.push(`after ${c.min_time_in_state_s} s in state`);
  return parts.join(" · ");
}

function actionText(a) {
  if (a.type === "mqtt") return `MQTT ${a.topic}`;
  if (a.type === "webhook") return `${a.method} ${a.url}`;
  return `wait ${a.seconds} s`;
}

/** One line per action of a run's detail. */
function detailLines(detail) {
  return (detail ?? []).map((d) => {
    let what;
    if (d.type === "mqtt") what = d.payload !== undefined ? `MQTT ${d.topic} ← ${JSON.stringify(d.payload)}` : `MQTT ${d.topic ?? ""}`;
    else if (d.type === "webhook") what = `${d.method ?? ""} ${d.url ?? ""}${d.status ? ` → ${d.status}` : ""}`;
    else if (d.type === "delay") what = `wait ${d.seconds} s`;
    else what = d.type ?? "action";
    const extra = d.error ?? d.note ?? "";
    return h(
      "div",
      { class: `rl-detail rl-result-${(d.result ?? "").replace(" ", "-")}`, dataset: { testid: "rule-run-action" } },
      h("span", { class: "rl-result", text: d.result ?? "" }),
      h("span", { class: "mono", text: what.trim() }),
      extra ? h("span", { class: "rl-note", text: extra }) : null,
    );
  });
}

function statusChip(status, testid) {
  return h("span", { class: `chip rl-status rl-status-${status}`, dataset: testid ? { testid } : undefined, text: status });
}

export class RulesView {
  constructor(root) {
    this.root = root;
    this.rules = [];
    this.builtin = [];
    this.variables = {};
    this.deviceNames = [];
    this.runs = [];
    this.runFilter = "";
    this.draft = null; // the rule in the form (a copy), or null when the form is closed
    this.editingId = null; // its id once saved
    this.visible = false;
    this.loadToken = 0;
    this.deleteArmed = null;

    this.status = h("p", { class: "status-line", role: "status", dataset: { testid: "rules-status" } });
    this.listBody = h("tbody");
    this.formCard = h("section", { class: "card rl-form-card", hidden: true, dataset: { testid: "rule-form-card" } });
    this.runFilterSelect = h("select", {
      id: "rule-runs-rule", dataset: { testid: "rule-runs-rule" },
      onchange: () => { this.runFilter = this.runFilterSelect.value; this.loadRuns(); },
    });
    this.runsBody = h("tbody");
    this.runsStatus = h("span", { class: "sub", dataset: { testid: "rule-runs-status" } });

    root.append(
      h(
        "div",
        { class: "rl-head" },
        h("h2", { class: "rl-title", text: "Rules" }),
        h("button", { type: "button", class: "btn rl-primary", dataset: { testid: "rule-new" }, onclick: () => this.edit(null) },
          "New rule"),
      ),
      h("p", { class: "sub rl-intro",
        text: "A rule acts when a device's ad starts or ends, or when it goes offline: it publishes MQTT messages "
          + "or calls webhooks, in order. The built-in auto-mute always applies beside your rules." }),
      this.status,
      h(
        "section",
        { class: "card rl-list-card" },
        h("div", { class: "table-wrap" },
          h("table", { class: "rl-list", dataset: { testid: "rules-list" } },
            h("thead", {}, h("tr", {}, ...["On", "Name", "When", "Conditions", "Actions", ""].map((t) => h("th", { text: t })))),
            this.listBody)),
      ),
      this.formCard,
      h(
        "section",
        { class: "card rl-runs-card" },
        h("div", { class: "rl-runs-head" },
          h("h3", { text: "Audit log" }),
          h("label", { for: "rule-runs-rule", class: "sub", text: "Rule" }),
          this.runFilterSelect,
          this.runsStatus),
        h("div", { class: "table-wrap" },
          h("table", { class: "rl-runs", dataset: { testid: "rule-runs" } },
            h("thead", {}, h("tr", {}, ...["Time", "Rule", "Device", "Trigger", "Status", "Actions"].map((t) => h("th", { text: t })))),
            this.runsBody)),
      ),
    );
  }

  // ------------------------------------------------------------------ view protocol
  show() {
    this.visible = true;
    this.load();
  }

  hide() {
    this.visible = false;
  }

  setDevices(devices) {
    const names = new Set(this.deviceNames);
    for (const d of devices ?? []) if (d?.name) names.add(d.name);
    this.setDeviceNames([...names]);
  }

  onDevice(d) {
    if (d?.name && !this.deviceNames.includes(d.name)) this.setDeviceNames([...this.deviceNames, d.name]);
  }

  onRuleRun(run) {
    if (!run || this.runs.some((r) => r.id === run.id)) return;
    if (this.runFilter && String(run.rule_id) !== this.runFilter) return;
    this.runs = [run, ...this.runs].slice(0, RUN_LIMIT);
    this.renderRuns();
  }

  setDeviceNames(names) {
    const sorted = [...new Set(names)].sort();
    if (sorted.join("\n") === this.deviceNames.join("\n")) return;
    this.deviceNames = sorted;
    if (this.draft) {
      this.renderDevicePicker();
      this.renderTestDevices();
    }
  }

  // ------------------------------------------------------------------ data
  async load() {
    const token = ++this.loadToken;
    setText(this.status, "loading…");
    try {
      const data = await getJSON("rules");
      if (token !== this.loadToken) return;
      this.rules = data.rules;
      this.builtin = data.builtin ?? [];
      this.variables = data.variables ?? {};
      setText(this.status, "");
      this.renderList();
      this.renderRunFilter();
      if (this.draft) this.renderHelp();
    } catch (e) {
      if (token === this.loadToken) setText(this.status, `could not load the rules: ${e.message}`);
    }
    await this.loadRuns();
  }

  async loadRuns() {
    const params = { limit: RUN_LIMIT };
    if (this.runFilter) params.rule = this.runFilter;
    try {
      const { runs } = await getJSON("rules/runs", params);
      // runs pushed while loading are kept (the answer may predate them)
      const seen = new Set(runs.map((r) => r.id));
      const live = this.runs.filter((r) => !seen.has(r.id) && (!this.runFilter || String(r.rule_id) === this.runFilter)
        && r.id > (runs[0]?.id ?? 0));
      this.runs = [...live, ...runs].slice(0, RUN_LIMIT);
      setText(this.runsStatus, "");
    } catch (e) {
      setText(this.runsStatus, `could not load the audit log: ${e.message}`);
    }
    this.renderRuns();
  }

  // ------------------------------------------------------------------ list
  renderList() {
    const rows = [];
    for (const b of this.builtin) {
      rows.push(h(
        "tr",
        { class: "rl-builtin", dataset: { testid: `rule-builtin-${b.name}` } },
        h("td", {}, h("input", { type: "checkbox", checked: b.enabled, disabled: true, title: "set by the server's settings",
          "aria-label": `${b.name} enabled` })),
        h("td", {}, h("strong", { text: "Auto-mute" }), " ", h("span", { class: "badge", text: "built in" })),
        h("td", { text: "Ad starts / ends" }),
        h("td", { class: "rl-wrap", text: "every device; fail-safe unmute when offline or an ad runs too long" }),
        h("td", { class: "rl-wrap mono", text: `MQTT ${b.topic}: ${b.payload_on} / ${b.payload_off}` }),
        h("td", { class: "sub", text: "read-only" }),
      ));
    }
    for (const r of this.rules) {
      const toggle = h("input", {
        type: "checkbox", checked: r.enabled, dataset: { testid: `rule-enabled-${r.id}` }, "aria-label": `${r.name} enabled`,
        onchange: () => this.toggle(r, toggle),
      });
      rows.push(h(
        "tr",
        { dataset: { testid: "rule-row", ruleId: r.id, ruleName: r.name, enabled: String(r.enabled) },
          class: r.enabled ? "" : "rl-disabled" },
        h("td", {}, toggle),
        h("td", {}, h("strong", { class: "rl-name", text: r.name })),
        h("td", { text: TRIGGER_TEXT[r.trigger] ?? r.trigger }),
        h("td", { class: "rl-wrap", text: conditionsText(r.conditions) }),
        h("td", { class: "rl-wrap mono", text: r.actions.map(actionText).join(" → ") }),
        h("td", {}, h("button", { type: "button", class: "btn", dataset: { testid: `rule-edit-${r.id}` },
          onclick: () => this.edit(r) }, "Edit")),
      ));
    }
    if (!this.rules.length) {
      rows.push(h("tr", {}, h("td", { class: "none", colspan: 6, dataset: { testid: "rules-empty" },
        text: "No rules of your own yet: “New rule” makes one." })));
    }
    this.listBody.replaceChildren(...rows);
  }

  async toggle(rule, input) {
    const want = input.checked;
    input.disabled = true;
    try {
      const saved = await request("POST", `rules/${rule.id}/${want ? "enable" : "disable"}`);
      this.replaceRule(saved);
      setText(this.status, `${saved.name} ${saved.enabled ? "enabled" : "disabled"}`);
    } catch (e) {
      input.checked = !want;
      setText(this.status, `could not ${want ? "enable" : "disable"} ${rule.name}: ${e.message}`);
    } finally {
      input.disabled = false;
    }
  }

  replaceRule(saved) {
    const i = this.rules.findIndex((r) => r.id === saved.id);
    if (i >= 0) this.rules[i] = saved;
    else this.rules.push(saved);
    this.renderList();
    this.renderRunFilter();
    if (this.editingId === saved.id && this.draft) this.formEnabled.checked = saved.enabled;
  }

  renderRunFilter() {
    const current = this.runFilter;
    const ids = new Set(this.rules.map((r) => String(r.id)));
    this.runFilterSelect.replaceChildren(
      h("option", { value: "" }, "All rules"),
      ...this.rules.map((r) => h("option", { value: String(r.id) }, r.name)),
      ...(current && !ids.has(current) ? [h("option", { value: current }, `rule ${current} (deleted)`)] : []),
    );
    this.runFilterSelect.value = current;
  }

  // ------------------------------------------------------------------ form
  edit(rule) {
    this.editingId = rule ? rule.id : null;
    this.draft = structuredClone(rule ? {
      name: rule.name, enabled: rule.enabled, trigger: rule.trigger, conditions: rule.conditions, actions: rule.actions,
    } : emptyRule());
    this.deleteArmed = null;
    this.renderForm();
    this.formCard.hidden = false;
    this.formCard.scrollIntoView({ block: "nearest" });
    this.nameInput.focus();
  }

  close() {
    this.draft = null;
    this.editingId = null;
    this.formCard.hidden = true;
    this.formCard.replaceChildren();
  }

  renderForm() {
    const d = this.draft;
    const c = d.conditions;
    this.error = h("p", { class: "rl-error", role: "alert", dataset: { testid: "rule-error" } });
    this.saved = h("span", { class: "sub", role: "status", dataset: { testid: "rule-saved" } });
    this.nameInput = h("input", {
      id: "rule-name", type: "text", maxlength: 64, value: d.name, required: true, dataset: { testid: "rule-name" },
      oninput: (e) => { d.name = e.target.value; },
    });
    this.formEnabled = h("input", {
      id: "rule-form-enabled", type: "checkbox", checked: d.enabled, dataset: { testid: "rule-form-enabled" },
      onchange: (e) => { d.enabled = e.target.checked; },
    });
    const trigger = h(
      "select",
      { id: "rule-trigger", dataset: { testid: "rule-trigger" }, onchange: (e) => { d.trigger = e.target.value; this.renderHelp(); } },
      TRIGGERS.map(([v, t]) => h("option", { value: v, selected: v === d.trigger }, t)),
    );
    this.devicePicker = h("div", { class: "rl-checks", dataset: { testid: "rule-devices" } });
    const days = h(
      "div",
      { class: "rl-checks", dataset: { testid: "rule-days" } },
      DAYS.map(([v, t]) => h("label", { class: "rl-check" },
        h("input", { type: "checkbox", value: v, checked: c.days.includes(v), dataset: { testid: `rule-day-${v}` },
          onchange: (e) => {
            c.days = DAYS.map(([k]) => k).filter((k) => (k === v ? e.target.checked : c.days.includes(k)));
          } }),
        t)),
    );
    const hoursFrom = h("input", { id: "rule-hours-from", type: "time", value: c.hours?.from ?? "",
      dataset: { testid: "rule-hours-from" }, oninput: () => this.readHours(hoursFrom, hoursTo) });
    const hoursTo = h("input", { id: "rule-hours-to", type: "time", value: c.hours?.to ?? "",
      dataset: { testid: "rule-hours-to" }, oninput: () => this.readHours(hoursFrom, hoursTo) });
    const minConf = h("input", {
      id: "rule-min-confidence", type: "number", min: 0, max: 1, step: 0.05, inputmode: "decimal",
      value: c.min_confidence || "", placeholder: "0", dataset: { testid: "rule-min-confidence" },
      oninput: (e) => { c.min_confidence = numberOr(e.target.value, 0); },
    });
    const minTime = h("input", {
      id: "rule-min-time", type: "number", min: 0, step: 1, inputmode: "decimal",
      value: c.min_time_in_state_s || "", placeholder: "0", dataset: { testid: "rule-min-time" },
      oninput: (e) => { c.min_time_in_state_s = numberOr(e.target.value, 0); },
    });
    this.actionsBox = h("ol", { class: "rl-actions", dataset: { testid: "rule-actions" } });
    this.addButtons = h(
      "div",
      { class: "rl-add" },
      h("span", { class: "sub", text: "Add a step:" }),
      ...["mqtt", "webhook", "delay"].map((t) => h("button", {
        type: "button", class: "btn", dataset: { testid: `rule-add-${t}` },
        onclick: () => { d.actions.push(newAction(t)); this.renderActions(); this.focusLastAction(); },
      }, { mqtt: "+ MQTT message", webhook: "+ Webhook", delay: "+ Delay" }[t])),
    );
    this.help = h("details", { class: "rl-help", dataset: { testid: "rule-template-help" } });
    this.testDevice = h("select", { id: "rule-test-device", dataset: { testid: "rule-test-device" },
      "aria-label": "device for the test" });
    this.testButton = h("button", { type: "button", class: "btn", dataset: { testid: "rule-test" },
      onclick: () => this.test() }, "Test");
    this.deleteButton = h("button", { type: "button", class: "btn rl-danger", dataset: { testid: "rule-delete" },
      onclick: () => this.remove() }, "Delete");
    this.testResult = h("div", { class: "rl-test-result", dataset: { testid: "rule-test-result" }, hidden: true });

    const field = (label, id, input, hint) => h("div", { class: "rl-field" },
      h("label", { for: id, text: label }), input, hint ? h("span", { class: "sub", text: hint }) : null);

    this.formCard.replaceChildren(h(
      "form",
      { class: "rl-form", dataset: { testid: "rule-form" }, novalidate: true,
        onsubmit: (e) => { e.preventDefault(); this.save(); } },
      h("h3", { text: this.editingId ? `Edit rule ${this.editingId}` : "New rule" }),
      h("div", { class: "rl-grid" },
        field("Name", "rule-name", this.nameInput),
        field("When", "rule-trigger", trigger),
        h("div", { class: "rl-field" }, h("span", { class: "rl-label", text: "Status" }),
          h("label", { class: "rl-check rl-enabled" }, this.formEnabled, "Enabled"))),
      h("fieldset", { class: "rl-fieldset" },
        h("legend", { text: "Conditions" }),
        h("div", { class: "rl-field" }, h("span", { class: "rl-label", text: "Devices" }), this.devicePicker,
          h("span", { class: "sub", text: "none ticked: every device" })),
        h("div", { class: "rl-field" }, h("span", { class: "rl-label", text: "Days" }), days,
          h("span", { class: "sub", text: "none ticked: every day (server's time zone)" })),
        h("div", { class: "rl-grid" },
          field("From", "rule-hours-from", hoursFrom),
          field("To", "rule-hours-to", hoursTo, "empty: any time; 22:00 → 02:00 spans midnight"),
          field("Min. confidence", "rule-min-confidence", minConf, "0 to 1"),
          field("Min. time in state (s)", "rule-min-time", minTime, "run only if the state still holds then"))),
      h("fieldset", { class: "rl-fieldset" },
        h("legend", { text: "Actions, in order" }),
        this.actionsBox,
        this.addButtons,
        this.help),
      this.error,
      h("div", { class: "rl-buttons" },
        h("button", { type: "submit", class: "btn rl-primary", dataset: { testid: "rule-save" } }, "Save"),
        this.testButton,
        h("span", { class: "sub", text: "on" }),
        this.testDevice,
        this.deleteButton,
        h("button", { type: "button", class: "btn", dataset: { testid: "rule-cancel" }, onclick: () => this.close() },
          "Close"),
        this.saved),
      this.testResult,
    ));
    this.renderDevicePicker();
    this.renderActions();
    this.renderHelp();
    this.renderTestDevices();
    this.updateButtons();
  }

  readHours(from, to) {
    const c = this.draft.conditions;
    c.hours = from.value || to.value ? { from: from.value, to: to.value } : null;
  }

  renderDevicePicker() {
    const c = this.draft.conditions;
    const names = [...new Set([...this.deviceNames, ...c.devices])].sort();
    this.devicePicker.replaceChildren(
      ...names.map((n) => h("label", { class: "rl-check" },
        h("input", { type: "checkbox", value: n, checked: c.devices.includes(n), dataset: { testid: `rule-device-${n}` },
          onchange: (e) => {
            c.devices = e.target.checked ? [...new Set([...c.devices, n])].sort() : c.devices.filter((x) => x !== n);
          } }),
        n)),
      ...(names.length ? [] : [h("span", { class: "sub", text: "no devices known yet" })]),
    );
  }

  renderTestDevices() {
    const current = this.testDevice.value;
    this.testDevice.replaceChildren(
      h("option", { value: "" }, "a sample device"),
      ...this.deviceNames.map((n) => h("option", { value: n }, n)),
    );
    this.testDevice.value = this.deviceNames.includes(current) ? current : "";
  }

  renderHelp() {
    if (!this.help) return;
    const vars = Object.entries(this.variables);
    this.help.replaceChildren(
      h("summary", { text: "Template help" }),
      h("p", { class: "sub", text: "MQTT topics and payloads and webhook bodies are Jinja2 templates, rendered "
        + "when the rule runs. Unknown names are errors; the form is checked on Save with sample values." }),
      h("table", { class: "rl-vars" },
        h("tbody", {}, vars.map(([k, v]) => h("tr", {}, h("td", { class: "mono", text: `{{ ${k} }}` }), h("td", { text: v }))))),
      h("p", { class: "sub", text: "Examples:" }),
      h("ul", { class: "rl-examples" },
        EXAMPLES.map(([code, what]) => h("li", {}, h("code", { text: code }), " — ", what))),
    );
  }

  renderActions() {
    const actions = this.draft.actions;
    this.actionsBox.replaceChildren(...actions.map((a, i) => this.actionEditor(a, i, actions.length)));
    for (const b of this.addButtons.querySelectorAll("button")) b.disabled = actions.length >= MAX_ACTIONS;
  }

  focusLastAction() {
    const items = this.actionsBox.querySelectorAll("li");
    items[items.length - 1]?.querySelector("input, textarea, select:not(.rl-type)")?.focus();
  }

  moveAction(i, by) {
    const actions = this.draft.actions;
    const j = i + by;
    if (j < 0 || j >= actions.length) return;
    [actions[i], actions[j]] = [actions[j], actions[i]];
    this.renderActions();
  }

  actionEditor(a, i, count) {
    const actions = this.draft.actions;
    const id = (k) => `rule-action-${k}-${i}`;
    const typeSelect = h(
      "select",
      { class: "rl-type", id: id("type"), dataset: { testid: id("type") }, "aria-label": `step ${i + 1} type`,
        onchange: (e) => { actions[i] = newAction(e.target.value); this.renderActions(); } },
      [["mqtt", "MQTT message"], ["webhook", "Webhook"], ["delay", "Delay"]].map(([v, t]) =>
        h("option", { value: v, selected: v === a.type }, t)),
    );
    const input = (key, attrs, read = (v) => v) => h(attrs.multiline ? "textarea" : "input", {
      id: id(key), dataset: { testid: id(key) }, ...attrs, multiline: undefined,
      value: attrs.multiline ? undefined : attrs.value,
      oninput: (e) => { a[key] = read(e.target.value); },
    }, attrs.multiline ? attrs.value : undefined);
    const f = (label, key, el, hint) => h("div", { class: "rl-field" },
      h("label", { for: id(key), text: label }), el, hint ? h("span", { class: "sub", text: hint }) : null);

    let fields;
    if (a.type === "mqtt") {
      fields = [
        f("Topic", "topic", input("topic", { type: "text", value: a.topic, class: "mono", spellcheck: "false" }), "no + or #"),
        f("Payload", "payload", input("payload", { multiline: true, rows: 2, value: a.payload, class: "mono", spellcheck: "false" })),
        h("div", { class: "rl-inline" },
          f("QoS", "qos", h("select", { id: id("qos"), dataset: { testid: id("qos") },
            onchange: (e) => { a.qos = Number(e.target.value); } },
          [0, 1, 2].map((q) => h("option", { value: q, selected: q === a.qos }, String(q))))),
          h("label", { class: "rl-check" }, h("input", { type: "checkbox", checked: a.retain, dataset: { testid: id("retain") },
            onchange: (e) => { a.retain = e.target.checked; } }), "Retain")),
      ];
    } else if (a.type === "webhook") {
      fields = [
        h("div", { class: "rl-inline" },
          f("Method", "method", h("select", { id: id("method"), dataset: { testid: id("method") },
            onchange: (e) => { a.method = e.target.value; } },
          METHODS.map((m) => h("option", { value: m, selected: m === a.method }, m)))),
          f("URL", "url", input("url", { type: "url", value: a.url, class: "mono rl-grow", spellcheck: "false" }))),
        f("Body", "body", input("body", { multiline: true, rows: 3, value: a.body, class: "mono", spellcheck: "false" }),
          "JSON bodies are sent as application/json"),
        f("Headers", "headers", input("headers", { multiline: true, rows: 2, value: headersText(a.headers), class: "mono",
          spellcheck: "false", placeholder: "Authorization: Bearer …" }, parseHeaders), "one “Name: value” a line"),
      ];
    } else {
      fields = [f("Seconds", "seconds", input("seconds", { type: "number", min: 0, max: 3600, step: 0.5, value: a.seconds,
        inputmode: "decimal" }, (v) => numberOr(v, 0)), "at most 3600; the next steps wait, nothing else does")];
    }
    return h(
      "li",
      { class: `rl-action rl-action-${a.type}`, dataset: { testid: `rule-action-${i}`, type: a.type } },
      h("div", { class: "rl-action-head" },
        h("span", { class: "rl-step", text: `${i + 1}` }),
        typeSelect,
        h("span", { class: "rl-spacer" }),
        h("button", { type: "button", class: "btn", title: "move up", "aria-label": `move step ${i + 1} up`,
          disabled: i === 0, dataset: { testid: id("up") }, onclick: () => this.moveAction(i, -1) }, "↑"),
        h("button", { type: "button", class: "btn", title: "move down", "aria-label": `move step ${i + 1} down`,
          disabled: i === count - 1, dataset: { testid: id("down") }, onclick: () => this.moveAction(i, 1) }, "↓"),
        h("button", { type: "button", class: "btn", title: "remove", "aria-label": `remove step ${i + 1}`,
          dataset: { testid: id("remove") },
          onclick: () => { actions.splice(i, 1); this.renderActions(); } }, "✕")),
      h("div", { class: "rl-action-body" }, fields),
    );
  }

  updateButtons() {
    const saved = this.editingId !== null;
    this.testButton.disabled = !saved;
    this.testButton.title = saved ? "run the saved rule's actions now, with sample values" : "save the rule first";
    this.deleteButton.hidden = !saved;
    setText(this.deleteButton, "Delete");
  }

  body() {
    const d = this.draft;
    return {
      name: d.name,
      enabled: d.enabled,
      trigger: d.trigger,
      conditions: { ...d.conditions, hours: d.conditions.hours ?? null },
      actions: d.actions,
    };
  }

  async save() {
    setText(this.error, "");
    setText(this.saved, "saving…");
    try {
      const saved = this.editingId === null
        ? await request("POST", "rules", { body: this.body() })
        : await request("PUT", `rules/${this.editingId}`, { body: this.body() });
      this.editingId = saved.id;
      this.replaceRule(saved);
      this.formCard.querySelector("h3").textContent = `Edit rule ${saved.id}`;
      setText(this.saved, `saved ${fmtRunTime(saved.updated)}`);
      this.updateButtons();
    } catch (e) {
      setText(this.saved, "");
      setText(this.error, e.message);
    }
  }

  async remove() {
    if (this.editingId === null) return;
    if (this.deleteArmed !== this.editingId) {
      this.deleteArmed = this.editingId;
      setText(this.deleteButton, "Click again to delete");
      setTimeout(() => {
        if (this.deleteArmed !== null && this.draft) {
          this.deleteArmed = null;
          setText(this.deleteButton, "Delete");
        }
      }, 4000);
      return;
    }
    const id = this.editingId;
    try {
      await request("DELETE", `rules/${id}`);
      this.rules = this.rules.filter((r) => r.id !== id);
      this.close();
      this.renderList();
      this.renderRunFilter();
      setText(this.status, "rule deleted (its runs stay in the audit log)");
    } catch (e) {
      setText(this.error, e.message);
    }
  }

  async test() {
    if (this.editingId === null) return;
    setText(this.error, "");
    this.testResult.hidden = false;
    this.testResult.replaceChildren(h("span", { class: "sub", text: "running the saved rule…" }));
    this.testButton.disabled = true;
    try {
      const body = this.testDevice.value ? { device: this.testDevice.value } : {};
      const run = await request("POST", `rules/${this.editingId}/test`, { body });
      if (run.status === "running") {
        this.testResult.replaceChildren(h("span", { class: "sub",
          text: "still running (it has delays): the audit log below will show it when it ends" }));
      } else {
        this.testResult.replaceChildren(
          h("div", {}, "Test on ", h("strong", { text: run.device ?? "a sample device" }), ": ",
            statusChip(run.status, "rule-test-status")),
          ...detailLines(run.detail),
        );
        this.onRuleRun(run);
      }
    } catch (e) {
      this.testResult.replaceChildren();
      this.testResult.hidden = true;
      setText(this.error, e.message);
    } finally {
      this.testButton.disabled = this.editingId === null;
    }
  }

  // ------------------------------------------------------------------ audit log
  renderRuns() {
    if (!this.runs.length) {
      this.runsBody.replaceChildren(h("tr", {}, h("td", { class: "none", colspan: 6, dataset: { testid: "rule-runs-empty" },
        text: "No runs yet." })));
      return;
    }
    this.runsBody.replaceChildren(...this.runs.map((r) => h(
      "tr",
      { dataset: { testid: "rule-run-row", rule: r.rule, status: r.status, test: String(r.test), runId: r.id } },
      h("td", { class: "num", text: fmtRunTime(r.ts) }),
      h("td", {}, r.rule, r.rule_id === null ? h("span", { class: "sub", text: " (deleted)" }) : null),
      h("td", { text: r.device ?? "—" }),
      h("td", {}, TRIGGER_TEXT[r.trigger] ?? r.trigger, r.test ? h("span", { class: "badge rl-test-badge", text: "test" }) : null),
      h("td", {}, statusChip(r.status)),
      h("td", { class: "rl-detail-cell", dataset: { testid: "rule-run-detail" } }, detailLines(r.detail)),
    )));
  }
}
