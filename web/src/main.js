// adbreak dashboard entry: one socket, two views behind hash routes (#/live, #/history?device=..&date=YYYY-MM-DD).

import "./style.css";
import { fetchDevices } from "./api.js";
import { HistoryView } from "./history.js";
import { LiveView } from "./live.js";
import { connect } from "./socket.js";

const live = new LiveView(document.getElementById("view-live"));
const history = new HistoryView(document.getElementById("view-history"));
const views = { live: document.getElementById("view-live"), history: document.getElementById("view-history") };
let helloSeen = false;

function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  if (path !== "/live" && path !== "/history") {
    window.history.replaceState(null, "", "#/live");
    return route();
  }
  const name = path.slice(1);
  for (const [key, el] of Object.entries(views)) el.hidden = key !== name;
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (name === "history") history.show(new URLSearchParams(query));
  else history.hide();
}

const conn = document.querySelector(".conn");
const connText = document.querySelector("[data-testid=conn-status]");
function setStatus(status, detail) {
  connText.textContent = status;
  conn.dataset.status = status;
  conn.title = detail ? `Socket.IO: ${status} (${detail})` : `Socket.IO: ${status}`;
}

connect(
  {
    hello: ({ devices }) => {
      helloSeen = true;
      live.setDevices(devices, true);
      history.setDevices(devices);
    },
    device: (d) => {
      live.onDevice(d);
      if (!history.devices.includes(d.name)) history.setDevices([...history.devices.map((name) => ({ name })), d]);
    },
    segment: (s) => {
      live.onSegment(s);
      history.onSegment(s);
    },
    telemetry: (t) => live.onTelemetry(t),
    firing: (f) => {
      live.onFiring(f);
      history.onFiring(f);
    },
  },
  setStatus,
);

// The REST list, so the page has content even before (or without) the socket's hello.
fetchDevices()
  .then((devices) => {
    if (helloSeen) return;
    live.setDevices(devices, false);
    history.setDevices(devices);
  })
  .catch((e) => console.warn("adbreak: device list unavailable:", e.message));

window.addEventListener("hashchange", route);
route();
