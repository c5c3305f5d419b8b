//! What the operator commands (`eab`, `account`, `cert`, `tenant`) share: opening the database
//! of a data directory while `serve` may be running (SQLite WAL allows one writer at a time and
//! readers alongside), naming the operator for the audit log, and output helpers.

use crate::datadir::DataDir;
use crate::sa::{open_database, Database};
use anyhow::Context;
use std::path::Path;

/// A data directory opened for an operator command.
pub(crate) struct AdminContext {
    /// The data directory.
    pub(crate) dd: DataDir,
    /// Its database.
    pub(crate) db: std::sync::Arc<dyn Database>,
    /// A runtime for the async storage calls.
    pub(crate) rt: tokio::runtime::Runtime,
}

impl AdminContext {
    /// Opens `dir`'s database; refuses a directory `init` has not prepared.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        let dd = DataDir::new(dir);
        if !dd.is_initialized() {
            anyhow::bail!(
                "{} is not a fleetca data directory (no {})",
                dir.display(),
                dd.config().display()
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let db = rt
            .block_on(open_database(&dd.database_url()))
            .with_context(|| format!("opening the database of {}", dd.path().display()))?;
        Ok(Self { dd, db, rt })
    }

    /// Runs a future on this context's runtime.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// The audit-log actor for this command line: `cli:<user>`.
pub(crate) fn cli_actor() -> String {
    use std::os::unix::fs::MetadataExt;
    // No libc call (the crate forbids unsafe): the login name, else the process's uid.
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| match std::fs::metadata("/proc/self") {
            Ok(m) => format!("uid{}", m.uid()),
            Err(_) => "unknown".into(),
        });
    format!("cli:{user}")
}

/// Now, in UNIX seconds.
pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A UNIX time as RFC 3339 for people.
pub(crate) fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Parses a duration such as `90s`, `30m`, `12h`, `30d` or `2w` (a bare number is seconds).
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30d, 12h, 15m or 3600s"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is not a positive duration"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172800);
        assert_eq!(parse_duration("1w").unwrap().as_secs(), 604800);
        for bad in ["", "0s", "5y", "d", "-3h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
