//! Coverage storage on both backends: the states over time, replacement, revocation, paging.

use super::{share_ppm, sync, POLL_WRITE_INTERVAL_SECS};
use crate::ra::default_window;
use crate::sa::*;
use async_trait::async_trait;

const DAY: i64 = 86_400;
const T0: i64 = 1_800_000_000;

fn policy() -> CoveragePolicy {
    CoveragePolicy {
        expiring_ppm: share_ppm(0.1),
        silent_after: 2 * DAY,
    }
}

/// Inserts an account, an order and a 30-day certificate issued at `at`; returns its id.
/// Raw SQL for the fixtures, per backend.
#[async_trait]
trait TestDb: CoverageStore {
    /// A one-byte BLOB literal.
    const BLOB: &'static str;
    async fn exec(&self, sql: String);
}

#[async_trait]
impl TestDb for SqliteStorage {
    const BLOB: &'static str = "x'00'";
    async fn exec(&self, sql: String) {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.pool_for_tests())
            .await
            .unwrap();
    }
}

#[async_trait]
impl TestDb for PgStorage {
    const BLOB: &'static str = "decode('00', 'hex')";
    async fn exec(&self, sql: String) {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.pool_for_tests())
            .await
            .unwrap();
    }
}

async fn issue<D: TestDb>(
    db: &D,
    n: u32,
    account: &str,
    names: &[&str],
    at: i64,
    replaces: Option<&str>,
) -> String {
    let names_json = serde_json::to_string(
        &names
            .iter()
            .map(|v| serde_json::json!({"type": "dns", "value": v}))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let stmts = [
        format!(
            "INSERT INTO accounts VALUES ('{account}','default','tp-{account}','{{}}','[]','valid',1,NULL,0) ON CONFLICT DO NOTHING"
        ),
        format!(
            "INSERT INTO orders (id, tenant, account_id, status, expires, identifiers, cert_id, created_at)
             VALUES ('o{n}','default','{account}','valid',{at},'{names_json}','c{n}',{at})"
        ),
        format!(
            "INSERT INTO order_lifecycle VALUES ('o{n}','default',{})",
            replaces.map_or("NULL".to_string(), |r| format!("'{r}'"))
        ),
        format!(
            "INSERT INTO certificates (id, tenant, serial, account_id, order_id, der, names, not_before, not_after, issued_at)
             VALUES ('c{n}','default','{n:04x}','{account}','o{n}',{},'{names_json}',{at},{},{at})",
            D::BLOB,
            at + 30 * DAY
        ),
    ];
    for s in stmts {
        db.exec(s).await;
    }
    format!("c{n}")
}

async fn state<D: TestDb>(db: &D, id: &str, now: i64) -> CoverageState {
    db.coverage_of(id, now, &policy())
        .await
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test]
async fn states_follow_time_polls_replacement_and_revocation() {
    let db = SqliteStorage::open_scratch().await.unwrap();
    states_follow(&db).await;
}

#[tokio::test]
async fn states_follow_time_polls_replacement_and_revocation_on_postgres() {
    if let Some((db, _)) = crate::sa::tests::postgres_pair().await {
        states_follow(db.as_ref()).await;
    }
}

async fn states_follow<D: TestDb>(db: &D) {
    let c1 = issue(db, 1, "a1", &["cam1.example"], T0, None).await;
    assert_eq!(sync(db).await.unwrap().certificates, 1);
    let row = db.coverage_of(&c1, T0, &policy()).await.unwrap().unwrap();
    assert_eq!(
        (row.window_start, row.window_end),
        default_window(T0, T0 + 30 * DAY, "0001")
    );
    assert_eq!(row.names, vec!["cam1.example".to_string()]);
    assert_eq!(state(db, &c1, T0 + DAY).await, CoverageState::Ok);
    // No poll for more than two days while the window is still ahead: silent.
    assert_eq!(state(db, &c1, T0 + 3 * DAY).await, CoverageState::Silent);
    // A poll brings it back; a second poll inside the interval writes nothing.
    assert!(db
        .record_poll(&c1, T0 + 3 * DAY, POLL_WRITE_INTERVAL_SECS)
        .await
        .unwrap());
    assert!(!db
        .record_poll(&c1, T0 + 3 * DAY + 60, POLL_WRITE_INTERVAL_SECS)
        .await
        .unwrap());
    assert_eq!(state(db, &c1, T0 + 3 * DAY).await, CoverageState::Ok);
    // Inside the window (polling keeps it from being silent): due; after it: overdue;
    // with less than a tenth of its life left: expiring; after notAfter: expired.
    let (ws, we) = (row.window_start, row.window_end);
    db.record_poll(&c1, ws, 0).await.unwrap();
    assert_eq!(state(db, &c1, ws).await, CoverageState::Due);
    db.record_poll(&c1, we, 0).await.unwrap();
    assert_eq!(state(db, &c1, we).await, CoverageState::Overdue);
    assert_eq!(state(db, &c1, T0 + 28 * DAY).await, CoverageState::Expiring);
    assert_eq!(state(db, &c1, T0 + 30 * DAY).await, CoverageState::Expired);

    // Renewal by the same account for the same names (no `replaces`): ok again.
    let c2 = issue(db, 2, "a1", &["CAM1.example"], we + 60, None).await;
    sync(db).await.unwrap();
    assert_eq!(state(db, &c1, we + 120).await, CoverageState::Ok);
    let page = db
        .coverage_list(
            we + 120,
            &policy(),
            &CoverageFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page[0].replaced_by.as_deref(), Some("0002"));
    // Another account's certificate for the same names replaces nothing; `replaces` does.
    let t3 = we + 1000;
    let c3 = issue(db, 3, "a2", &["cam3.example"], t3, None).await;
    let c4 = issue(
        db,
        4,
        "a2",
        &["cam3.example", "cam4.example"],
        t3 + DAY,
        Some(&c3),
    )
    .await;
    sync(db).await.unwrap();
    assert_eq!(state(db, &c3, t3 + DAY).await, CoverageState::Ok);
    assert_eq!(state(db, &c4, t3 + DAY).await, CoverageState::Ok);

    // Revoked leaves the at-risk states.
    db.exec(format!(
        "UPDATE certificates SET revoked_at = {} WHERE id = '{c2}'",
        we + 200
    ))
    .await;
    assert_eq!(sync(db).await.unwrap().revocations, 1);
    assert_eq!(state(db, &c2, we + 300).await, CoverageState::Revoked);

    let counts = db.coverage_counts(T0 + 3 * DAY, &policy()).await.unwrap();
    let n = |st| {
        counts
            .iter()
            .filter(|c| c.state == st)
            .map(|c| c.count)
            .sum::<i64>()
    };
    assert_eq!(n(CoverageState::Revoked), 1);
    assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 4);
    // Filtering and paging walk the same order and meet every row once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = db
            .coverage_list(
                T0 + 3 * DAY,
                &policy(),
                &CoverageFilter {
                    limit: 1,
                    after: after.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let Some(r) = page.last() else { break };
        after = Some((r.not_after, r.cert_id.clone()));
        seen.push(r.serial.clone());
    }
    seen.sort();
    assert_eq!(seen, vec!["0001", "0002", "0003", "0004"]);
    let silent = db
        .coverage_list(
            t3 + 4 * DAY,
            &policy(),
            &CoverageFilter {
                states: vec![CoverageState::Silent],
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        silent.iter().map(|r| r.serial.as_str()).collect::<Vec<_>>(),
        vec!["0004"]
    );
}

#[tokio::test]
async fn a_replacement_copied_before_its_predecessor_still_replaces_it() {
    let db = SqliteStorage::open_scratch().await.unwrap();
    issue(&db, 2, "a1", &["late.example"], T0 + 100, None).await;
    sync(&db).await.unwrap();
    // The older certificate's transaction committed after the refresher passed.
    let c1 = issue(&db, 1, "a1", &["late.example"], T0, None).await;
    assert_eq!(sync(&db).await.unwrap().certificates, 1);
    assert_eq!(state(&db, &c1, T0 + 20 * DAY).await, CoverageState::Ok);
}
