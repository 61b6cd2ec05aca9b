// The Socket.IO side of the contract (namespace "/"): hello, device, segment, telemetry (batches), firing,
// recording (a recording sent for review changed).
// socket.io-client 4 speaks Engine.IO protocol 4, which python-socketio 5 / python-engineio 4 serve.

import { io } from "socket.io-client";

const EVENTS = ["hello", "device", "segment", "segment_removed", "correction", "telemetry", "firing", "rule_run", "recording"];

/**
 * Connect and dispatch. `handlers` maps event names to functions; `onStatus(status, detail)` gets
 * "connecting" | "connected" | "reconnecting" | "disconnected".
 */
export function connect(handlers, onStatus) {
  const socket = io({
    path: new URL("socket.io", document.baseURI).pathname,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 10000,
  });
  onStatus("connecting");
  socket.on("connect", () => onStatus("connected"));
  socket.on("disconnect", (reason) => {
    // The server closing the session on purpose stops automatic reconnection; a dashboard should keep trying.
    if (reason === "io server disconnect") socket.connect();
    onStatus("reconnecting", reason);
  });
  socket.on("connect_error", (err) => onStatus(socket.active ? "reconnecting" : "disconnected", err?.message));
  socket.io.on("reconnect_attempt", (n) => onStatus("reconnecting", `attempt ${n}`));
  socket.io.on("reconnect_failed", () => onStatus("disconnected"));
  for (const name of EVENTS) {
    const fn = handlers[name];
    if (!fn) continue;
    socket.on(name, (payload) => {
      try {
        fn(payload);
      } catch (e) {
        console.error(`adbreak: ${name} handler failed`, e, payload);
      }
    });
  }
  return socket;
}
