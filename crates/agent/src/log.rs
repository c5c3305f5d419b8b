//! Short logs: one event a line on stderr, human-readable by default, JSON
//! objects with `--json`. Secrets (keys, the EAB HMAC key) are never passed here.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);

/// Switches log lines to JSON.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Suppresses info lines (errors still print).
pub fn set_quiet(on: bool) {
    QUIET.store(on, Ordering::Relaxed);
}

/// Logs one event with `level` ("info", "warn", "error").
pub fn event(level: &str, msg: &str) {
    if level == "info" && QUIET.load(Ordering::Relaxed) {
        return;
    }
    let (secs, nanos) = crate::http::now_real();
    let ts = crate::timefmt::rfc3339(secs, nanos);
    let line = if JSON.load(Ordering::Relaxed) {
        serde_json::json!({"ts": ts, "level": level, "msg": msg}).to_string()
    } else {
        format!("{ts} {level:<5} {msg}")
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Logs at info level.
pub fn info(msg: impl AsRef<str>) {
    event("info", msg.as_ref());
}

/// Logs at warn level.
pub fn warn(msg: impl AsRef<str>) {
    event("warn", msg.as_ref());
}

/// Logs at error level.
pub fn error(msg: impl AsRef<str>) {
    event("error", msg.as_ref());
}
