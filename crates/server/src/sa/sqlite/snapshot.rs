//! A consistent copy of a live SQLite database (`fleetca backup`), with SQLite's online
//! backup API.

use crate::sa::SaError;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Copies the live database with SQLite's online backup API in a single step: one read
/// transaction, so the copy is the database as of one commit. In WAL mode `serve` keeps
/// writing meanwhile (readers do not block the writer); a busy or locked source is retried
/// for a bounded time.
pub fn sqlite_snapshot(src: &Path, dst: &Path) -> Result<(), SaError> {
    use rusqlite::backup::{Backup, StepResult};
    let from = rusqlite::Connection::open_with_flags(
        src,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    from.busy_timeout(std::time::Duration::from_secs(5))?;
    let mut to = rusqlite::Connection::open(dst)?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o600))
        .map_err(SaError::Durability)?;
    let backup = Backup::new(&from, &mut to)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match backup.step(-1)? {
            StepResult::Done => break,
            StepResult::More | StepResult::Busy | StepResult::Locked => {
                if std::time::Instant::now() > deadline {
                    return Err(SaError::Conflict(
                        "the database stayed busy for 60 s; try again".into(),
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            _ => {
                return Err(SaError::Corrupt(
                    "unexpected SQLite backup step result".into(),
                ))
            }
        }
    }
    drop(backup);
    let ok: String = to.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if ok != "ok" {
        return Err(SaError::Corrupt(format!(
            "the database copy fails SQLite's integrity check: {ok}"
        )));
    }
    Ok(())
}
