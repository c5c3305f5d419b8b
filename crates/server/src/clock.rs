//! Time source. Everything that compares with "now" asks a [`Clock`], so tests move time
//! (expiry, authorization reuse, CRL schedules) without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use time::OffsetDateTime;

/// Debug builds only: `fleetca serve` runs this many seconds ahead of the system clock, so
/// the integration tests can move a real server's time (authorization age, expiry) by
/// restarting it. Release builds ignore it: no environment can move a production CA's clock.
pub const TEST_CLOCK_OFFSET_ENV: &str = "FLEETCA_TEST_CLOCK_OFFSET_SECS";

/// A source of the current UTC time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
    /// The current time in UNIX seconds.
    fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock offset from the system clock by an adjustable number of seconds (for tests).
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: AtomicI64,
}

impl OffsetClock {
    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset.load(Ordering::SeqCst))
    }
}

/// The clock `fleetca serve` runs on: the system clock, or in a debug build with
/// [`TEST_CLOCK_OFFSET_ENV`] set to a non-zero number of seconds, the system clock moved by it.
pub fn server_clock() -> Arc<dyn Clock> {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var(TEST_CLOCK_OFFSET_ENV) {
        match v.trim().parse::<i64>() {
            Ok(0) => {}
            Ok(secs) => {
                tracing::warn!(
                    offset_secs = secs,
                    "{TEST_CLOCK_OFFSET_ENV} is set: this debug build runs with its clock moved \
                     (tests only)"
                );
                let clock = OffsetClock::default();
                clock.advance(secs);
                return Arc::new(clock);
            }
            Err(_) => tracing::warn!("{TEST_CLOCK_OFFSET_ENV} is not a number of seconds; ignored"),
        }
    }
    Arc::new(SystemClock)
}

/// Formats a UNIX time as RFC 3339 for the wire (RFC 8555 uses RFC 3339 timestamps).
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
