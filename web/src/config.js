// Display constants. The thresholds are the edge decision's defaults (edge/decision.py DecisionConfig:
// enter_threshold 0.7, exit_threshold 0.3), drawn until a device reports its own settings (Device.settings).
export const ENTER_THRESHOLD = 0.7;
export const EXIT_THRESHOLD = 0.3;
export const CHART_WINDOW_S = 300;
/** Telemetry comes about once a second; after this long without any, the card says so. */
export const TELEMETRY_STALE_S = 15;
