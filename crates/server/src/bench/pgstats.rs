//! `fleetca bench --pg-stats URL`: what one certificate costs the PostgreSQL database the server
//! under test uses, read from the server's own statistics before and after the measured run.
//!
//! - `pg_stat_database` (this database only): committed and rolled-back transactions. Every
//!   statement sent outside `BEGIN … COMMIT` is a transaction of its own, and so is the empty
//!   query sqlx sends to test a pooled connection before handing it out, so this counts every
//!   round trip that is not inside an explicit transaction.
//! - `pg_stat_statements` (if the extension is installed in this database): calls per
//!   normalized statement, `BEGIN` and `COMMIT` included. Each call is one round trip (sqlx
//!   sends a statement's parse, bind and execute in one flight). Pool pings are empty queries
//!   and do not appear here. Its execution time per statement (`total_exec_time`, functions
//!   the statement calls included) says where the database's own time goes, which the call
//!   count alone does not: eight statements can cost very different amounts.
//!
//! PostgreSQL 15+ backends publish their `pg_stat_database` counters when idle, at most once a
//! second and otherwise within 10 s (`PGSTAT_IDLE_INTERVAL`), so each snapshot waits
//! [`SETTLE`] after the load stops; `pg_stat_statements` is updated at once.

use sqlx::{Connection, PgConnection, Row};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// Long enough for every idle backend to have published its counters (10 s in PostgreSQL
/// 15-17, `PGSTAT_IDLE_INTERVAL` in `pgstat.c`).
const SETTLE: Duration = Duration::from_secs(11);

/// How many statements the summary lists.
const TOP: usize = 25;

/// Characters of a statement's normalized text that the summary shows.
const TEXT_WIDTH: usize = 110;

/// The database's counters at one moment.
#[derive(Clone, Debug, Default)]
pub(super) struct Snapshot {
    xact_commit: i64,
    xact_rollback: i64,
    /// Per `queryid`, when `pg_stat_statements` is installed.
    statements: Option<HashMap<i64, Statement>>,
}

/// One normalized statement's cumulative counters.
#[derive(Clone, Debug, Default)]
struct Statement {
    calls: i64,
    /// Milliseconds spent executing it (`total_exec_time`), planning excluded.
    exec_ms: f64,
    text: String,
}

/// A connection to the database under test, made only to read its statistics.
pub(super) struct PgStats {
    conn: PgConnection,
    /// Why statement counts are missing, if they are.
    statements_note: Option<String>,
}

impl PgStats {
    /// Connects and, when `pg_stat_statements` is installed, resets it (if this role may) so
    /// its table holds only what the run does; snapshots are subtracted either way.
    pub(super) async fn connect(url: &str) -> anyhow::Result<Self> {
        let opts = sqlx::postgres::PgConnectOptions::from_str(url)?;
        let mut conn = PgConnection::connect_with(&opts).await?;
        let installed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
        )
        .fetch_one(&mut conn)
        .await?;
        let statements_note = if !installed {
            Some("pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements; it also needs shared_preload_libraries)".to_string())
        } else {
            // Reset needs superuser or an explicit grant; without it the diff still holds.
            let _ = sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(&mut conn)
                .await;
            None
        };
        Ok(Self {
            conn,
            statements_note,
        })
    }

    /// Why statement counts are missing, if they are.
    pub(super) fn note(&self) -> Option<&str> {
        self.statements_note.as_deref()
    }

    /// Waits for idle backends to publish their counters, then reads them.
    pub(super) async fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        tokio::time::sleep(SETTLE).await;
        let row = sqlx::query(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&mut self.conn)
        .await?;
        let mut snap = Snapshot {
            xact_commit: row.try_get("xact_commit")?,
            xact_rollback: row.try_get("xact_rollback")?,
            statements: None,
        };
        if self.statements_note.is_none() {
            // This database only, and not the statistics reads of this module.
            let rows = sqlx::query(
                "SELECT s.queryid, s.calls, s.total_exec_time, s.query FROM pg_stat_statements s
                 JOIN pg_database d ON d.oid = s.dbid
                 WHERE d.datname = current_database() AND s.queryid IS NOT NULL
                 AND s.query NOT LIKE '%pg_stat_%'",
            )
            .fetch_all(&mut self.conn)
            .await;
            match rows {
                Ok(rows) => {
                    let mut m = HashMap::new();
                    for r in rows {
                        let id: i64 = r.try_get("queryid")?;
                        let calls: i64 = r.try_get("calls")?;
                        let exec_ms: f64 = r.try_get("total_exec_time")?;
                        let text: String = r.try_get("query")?;
                        // One queryid can appear once per role and top-level flag.
                        let e = m.entry(id).or_insert_with(|| Statement {
                            text,
                            ..Statement::default()
                        });
                        e.calls += calls;
                        e.exec_ms += exec_ms;
                    }
                    snap.statements = Some(m);
                }
                Err(e) => self.statements_note = Some(format!("pg_stat_statements: {e}")),
            }
        }
        Ok(snap)
    }
}

/// The summary lines for `certificates` issued between `before` and `after`.
pub(super) fn render(
    before: &Snapshot,
    after: &Snapshot,
    certificates: usize,
    note: Option<&str>,
) -> Vec<String> {
    let per = |n: i64| n as f64 / certificates.max(1) as f64;
    let commits = after.xact_commit - before.xact_commit;
    let rollbacks = after.xact_rollback - before.xact_rollback;
    let mut lines = vec![format!(
        "postgres transactions per certificate: {:.2} ({commits} committed, {rollbacks} rolled back)",
        per(commits + rollbacks)
    )];
    let (Some(b), Some(a)) = (&before.statements, &after.statements) else {
        lines.push(format!(
            "postgres statements per certificate: unknown ({})",
            note.unwrap_or("pg_stat_statements unavailable")
        ));
        return lines;
    };
    // What the run added: calls, execution milliseconds and text per statement.
    let mut diff: Vec<(i64, f64, &str)> = a
        .iter()
        .map(|(id, s)| {
            let (calls, ms) = b.get(id).map_or((0, 0.0), |p| (p.calls, p.exec_ms));
            (s.calls - calls, s.exec_ms - ms, s.text.as_str())
        })
        .filter(|(calls, _, _)| *calls > 0)
        .collect();
    diff.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.2.cmp(y.2)));
    let total: i64 = diff.iter().map(|(c, _, _)| c).sum();
    let total_ms: f64 = diff.iter().map(|(_, ms, _)| ms).sum();
    let per_ms = |ms: f64| ms / certificates.max(1) as f64;
    lines.push(format!(
        "postgres statements (round trips) per certificate: {:.2} ({total} calls, {} distinct)",
        per(total),
        diff.len()
    ));
    lines.push(format!(
        "postgres execution ms per certificate: {:.3} (planning and protocol excluded)",
        per_ms(total_ms)
    ));
    lines.push("top statements by calls per certificate (calls, execution ms):".to_string());
    for (calls, ms, text) in diff.iter().take(TOP) {
        lines.push(format!(
            "  {:>6.2}  {:>6.3}  {}",
            per(*calls),
            per_ms(*ms),
            one_line(text, TEXT_WIDTH)
        ));
    }
    lines
}

/// Whitespace collapsed, cut to `width` characters.
fn one_line(text: &str, width: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        let cut: String = flat.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(commit: i64, stmts: &[(i64, i64, f64, &str)]) -> Snapshot {
        Snapshot {
            xact_commit: commit,
            xact_rollback: 0,
            statements: Some(
                stmts
                    .iter()
                    .map(|(id, calls, exec_ms, t)| {
                        let s = Statement {
                            calls: *calls,
                            exec_ms: *exec_ms,
                            text: t.to_string(),
                        };
                        (*id, s)
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn counts_only_what_the_run_added_per_certificate() {
        let before = snap(100, &[(1, 10, 1.0, "BEGIN"), (2, 5, 7.0, "SELECT 1")]);
        let after = snap(
            140,
            &[
                (1, 30, 1.5, "BEGIN"),
                (2, 5, 7.0, "SELECT 1"),
                (3, 10, 25.0, "UPDATE orders\n   SET status = $1"),
            ],
        );
        let lines = render(&before, &after, 10, None);
        assert_eq!(
            lines[0],
            "postgres transactions per certificate: 4.00 (40 committed, 0 rolled back)"
        );
        assert!(
            lines[1].contains(": 3.00 (30 calls, 2 distinct)"),
            "{lines:?}"
        );
        // 0.5 + 25 ms over 10 certificates; the unchanged statement's 7 ms are not the run's.
        assert_eq!(
            lines[2],
            "postgres execution ms per certificate: 2.550 (planning and protocol excluded)"
        );
        assert_eq!(lines[4], "    2.00   0.050  BEGIN");
        assert_eq!(lines[5], "    1.00   2.500  UPDATE orders SET status = $1");
        assert_eq!(
            lines.len(),
            6,
            "unchanged statements are left out: {lines:?}"
        );
    }

    #[test]
    fn missing_extension_is_said_not_guessed() {
        let none = Snapshot::default();
        let lines = render(&none, &none, 3, Some("not installed"));
        assert!(lines[1].contains("unknown (not installed)"), "{lines:?}");
    }

    #[test]
    fn long_statements_are_cut() {
        assert_eq!(one_line("a  b\n c", 10), "a b c");
        assert_eq!(one_line("abcdefghijkl", 5), "abcd…");
    }
}
