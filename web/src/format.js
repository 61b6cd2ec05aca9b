// Formatting and local-calendar helpers. Every instant in the API is Unix epoch seconds; everything shown is the
// browser's local time, except the times of a recording sent for review: seconds from its start, shown as H:MM:SS
// (the `offsetClock`; a device's are on the `wallClock`).

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const hmFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });

export const nowS = () => Date.now() / 1000;

export function fmtTime(ts) {
  return ts == null || !Number.isFinite(ts) ? "—" : timeFmt.format(new Date(ts * 1000));
}

export function fmtHM(ts) {
  return hmFmt.format(new Date(ts * 1000));
}

export function fmtDay(date) {
  return dayFmt.format(date);
}

/** 45s, 3m 05s, 1h 02m. */
export function fmtDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const hr = Math.floor(m / 60);
  return `${hr}h ${String(m % 60).padStart(2, "0")}m`;
}

export function fmtMinutes(seconds) {
  const m = seconds / 60;
  return m >= 10 ? m.toFixed(0) : m.toFixed(1);
}

export function fmtPct(p) {
  return p == null || !Number.isFinite(p) ? "—" : `${Math.round(p * 100)}%`;
}

/** Epoch seconds of the local midnight that starts the day of `date` (a Date). */
export function dayStart(date = new Date()) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime() / 1000;
}

/** Epoch seconds of the next local midnight (23 or 25 h later on a DST change day). */
export function dayEnd(date = new Date()) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + 1).getTime() / 1000;
}

/** "YYYY-MM-DD" of a Date in local time, the value format of <input type="date">. */
export function isoDay(date = new Date()) {
  const p = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}`;
}

/** The local Date at midnight of a "YYYY-MM-DD" string, or null when it is not one. */
export function parseIsoDay(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value ?? "");
  if (!m) return null;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "1:02:03" from seconds (a recording's time from its start); tenths with `tenths` when not whole. */
export function fmtOffset(seconds, tenths = false) {
  if (seconds == null || !Number.isFinite(seconds)) return "—";
  const sign = seconds < 0 ? "-" : "";
  const whole = tenths ? Math.round(Math.abs(seconds) * 10) / 10 : Math.floor(Math.abs(seconds) + 1e-6);
  const s = Math.floor(whole);
  const frac = Math.round((whole - s) * 10);
  const p = (n) => String(n).padStart(2, "0");
  return `${sign}${Math.floor(s / 3600)}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}${tenths && frac ? `.${frac}` : ""}`;
}

/**
 * How a view shows instants: `time` (to the second), `short` (axis ticks), `origin(t)` (where the axis ticks count
 * from). A device's times are wall-clock; a recording's, seconds from its start.
 */
export const wallClock = { time: fmtTime, short: fmtHM, origin: (t) => dayStart(new Date(t * 1000)) };
export const offsetClock = { time: (t) => fmtOffset(t), short: (t) => fmtOffset(t), origin: () => 0 };
