// adbreak dashboard entry: sign-in, one socket, and the views behind hash routes
// (#/live, #/history?device=..&date=YYYY-MM-DD, #/stats, #/rules, #/devices, #/account).
//
// Every view is a class with `constructor(root)`, `show(params: URLSearchParams)` and `hide()`, and optionally
// `setDevices(devices)`, `setRecordings(recordings)`, `onDevice(d)`, `onSegment(s)`, `onSegmentRemoved(s)`, `onCorrection(c)`, `onFiring(f)`,
// `onRuleRun(r)`, `onRecording(r)`: main.js fans the socket's
// events out to whichever views want them.

import "./style.css";
import { fetchDevices, setUnauthorizedHandler } from "./api.js";
import { AccountView } from "./account.js";
import { LoginView, currentUser } from "./auth.js";
import { DevicesView } from "./devices.js";
import { HistoryView } from "./history.js";
import { LiveView } from "./live.js";
import { RulesView } from "./rules.js";
import { connect } from "./socket.js";
import { StatsView } from "./stats.js";

const el = (name) => document.getElementById(`view-${name}`);
const live = new LiveView(el("live"));
const views = {
  live,
  history: new HistoryView(el("history")),
  stats: new StatsView(el("stats")),
  rules: new RulesView(el("rules")),
  devices: new DevicesView(el("devices")),
  account: new AccountView(el("account")),
};
const login = new LoginView(el("login"), () => start());
let helloSeen = false;
let socket = null;
let deviceNames = new Set();
let namesTimer = 0;

/** New device names reach the other views' device pickers at most every 0.25 s, all at once: one rebuild of each
 * picker for a burst of new devices (1,000 TVs coming online), not one per device. */
function namesChanged() {
  if (namesTimer) return;
  namesTimer = setTimeout(() => {
    namesTimer = 0;
    const devices = [...deviceNames].map((name) => ({ name }));
    for (const [k, v] of Object.entries(views)) if (k !== "live") v.setDevices?.(devices);
  }, 250);
}

function each(method, ...args) {
  for (const view of Object.values(views)) {
    if (typeof view[method] !== "function") continue;
    try {
      view[method](...args);
    } catch (e) {
      console.error(`adbreak: ${method} failed`, e);
    }
  }
}

function route() {
  if (!login.signedIn) return;
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const name = path.slice(1);
  if (!(name in views)) {
    window.history.replaceState(null, "", "#/live");
    return route();
  }
  el("login").hidden = true;
  for (const [key, view] of Object.entries(views)) {
    el(key).hidden = key !== name;
    if (key === name) view.show?.(new URLSearchParams(query));
    else view.hide?.();
  }
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

const conn = document.querySelector(".conn");
const connText = document.querySelector("[data-testid=conn-status]");
function setStatus(status, detail) {
  connText.textContent = status;
  conn.dataset.status = status;
  conn.title = detail ? `Socket.IO: ${status} (${detail})` : `Socket.IO: ${status}`;
}

function showLogin() {
  if (socket) {
    socket.disconnect();
    socket = null;
  }
  for (const name of Object.keys(views)) el(name).hidden = true;
  document.body.dataset.signedIn = "false";
  login.show();
}

function start() {
  document.body.dataset.signedIn = "true";
  document.querySelector("[data-testid=user-name]").textContent = login.user?.username ?? "";
  route();
  if (socket) return;
  helloSeen = false;
  socket = connect(
    {
      hello: ({ devices, recordings }) => {
        helloSeen = true;
        live.setDevices(devices, true);
        deviceNames = new Set(devices.map((d) => d.name));
        for (const [k, v] of Object.entries(views)) if (k !== "live") v.setDevices?.(devices);
        if (Array.isArray(recordings)) each("setRecordings", recordings); // a server that keeps recordings
      },
      device: (d) => {
        each("onDevice", d);
        if (!deviceNames.has(d.name)) {
          deviceNames.add(d.name);
          namesChanged();
        }
      },
      segment: (s) => each("onSegment", s),
      segment_removed: (s) => each("onSegmentRemoved", s),
      correction: (c) => each("onCorrection", c),
      telemetry: (t) => live.onTelemetry(t),
      firing: (f) => each("onFiring", f),
      rule_run: (r) => each("onRuleRun", r),
      recording: (r) => each("onRecording", r),
    },
    setStatus,
  );
  // The REST list, so the page has content even before (or without) the socket's hello.
  fetchDevices()
    .then((devices) => {
      if (helloSeen) return;
      live.setDevices(devices, false);
      for (const [k, v] of Object.entries(views)) if (k !== "live") v.setDevices?.(devices);
      deviceNames = new Set(devices.map((d) => d.name));
    })
    .catch((e) => console.warn("adbreak: device list unavailable:", e.message));
}

setUnauthorizedHandler(showLogin);
document.querySelector("[data-testid=sign-out]").addEventListener("click", () => login.signOut().then(showLogin));
window.addEventListener("hashchange", route);
currentUser().then(
  (user) => {
    if (!user) return showLogin();
    login.user = user;
    login.signedIn = true;
    start();
  },
  () => showLogin(),
);
