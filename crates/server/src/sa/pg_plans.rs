//! PostgreSQL's query plans at a million stored certificates: the PostgreSQL half of
//! `sa::seed`'s plan test. Issuance stays flat as history grows only if every statement of the
//! issuance path finds its rows through an index; PostgreSQL's planner decides that from its own
//! statistics, so the check runs against a million rows with real `ANALYZE` statistics.
//!
//! The history is made in the database itself (`INSERT … SELECT generate_series`): rows shaped
//! like those of `HistorySeeder` (which also writes a share of them, so the seeder's own rows are
//! part of what is planned), a few in-flight issuances among them, in ~1 minute instead of the
//! seeder's several over the wire.
//!
//! Plans are generic (`plan_cache_mode = force_generic_plan`): the plan a prepared statement
//! settles on after its first executions, which no parameter value can make look better
//! than it is.

use super::seed::{HistorySeeder, SeedSpec};
use super::PgStorage;
use sqlx::{Connection, Executor, PgConnection};

/// Stored certificates (and orders, authorizations, challenges) the plans are made against.
const HISTORY: i64 = 1_000_000;

/// Of which the seeder writes (the rest is generated in the database).
const SEEDED: u64 = 2_000;

/// A table with at least this many rows is "big": scanning it whole is what must not happen.
const BIG: f64 = 10_000.0;

/// "Now" of the synthetic history (as in `sa::seed`'s tests).
const NOW: i64 = 1_800_000_000;

/// Generated history, table by table, `$1` = certificates, `$2` = the first second of the 30
/// days they were issued over. Every 2,000th issuance is still in flight: a pending order with
/// a pending authorization and challenge, or (every 4,000th) a processing order and challenge
/// under a lease, as live traffic leaves them.
const GENERATE: [&str; 9] = [
    "INSERT INTO accounts (id, tenant, jwk_thumbprint, jwk, contact, status, tos_agreed, created_at)
     SELECT 'g-a' || a, 'default', 'g-' || a, '{}', '[]', 'valid', 1, $2
     FROM generate_series(0, ($1 - 1) / 10) a",
    "INSERT INTO authzs (id, tenant, account_id, ident_type, ident_value, wildcard, status, expires, created_at)
     SELECT 'g-z' || i, 'default', 'g-a' || (i / 10), 'dns', 's' || i || '.home.arpa', 0,
            CASE WHEN i % 2000 = 0 THEN 'pending' ELSE 'valid' END,
            $2 + i % 2592000 + 2592000, $2 + i % 2592000
     FROM generate_series(0, $1 - 1) i",
    "INSERT INTO challenges (id, authz_id, type, token, status, validated_at, lease_until, lease_owner)
     SELECT 'g-h' || i, 'g-z' || i, 'http-01', md5(i::text),
            CASE WHEN i % 4000 = 0 THEN 'processing' WHEN i % 2000 = 0 THEN 'pending' ELSE 'valid' END,
            CASE WHEN i % 2000 = 0 THEN NULL ELSE $2 + i % 2592000 END,
            CASE WHEN i % 4000 = 0 THEN $2 + 2592000 ELSE NULL END,
            CASE WHEN i % 4000 = 0 THEN 'node-a' ELSE NULL END
     FROM generate_series(0, $1 - 1) i",
    "INSERT INTO orders (id, tenant, account_id, status, expires, identifiers, cert_id, created_at, claim_token, claim_until)
     SELECT 'g-o' || i, 'default', 'g-a' || (i / 10),
            CASE WHEN i % 4000 = 0 THEN 'processing' WHEN i % 2000 = 0 THEN 'pending' ELSE 'valid' END,
            $2 + i % 2592000 + 604800, '[{\"type\":\"dns\",\"value\":\"s' || i || '.home.arpa\"}]',
            CASE WHEN i % 2000 = 0 THEN NULL ELSE 'g-c' || i END, $2 + i % 2592000,
            CASE WHEN i % 4000 = 0 THEN 'claim' ELSE NULL END,
            CASE WHEN i % 4000 = 0 THEN $2 + 2592000 ELSE NULL END
     FROM generate_series(0, $1 - 1) i",
    "INSERT INTO order_authzs (order_id, authz_id, position)
     SELECT 'g-o' || i, 'g-z' || i, 0 FROM generate_series(0, $1 - 1) i",
    "INSERT INTO certificates (id, tenant, serial, account_id, order_id, der, names, not_before, not_after, issued_at)
     SELECT 'g-c' || i, 'default', md5(i::text), 'g-a' || (i / 10), 'g-o' || i, '\\x3082'::bytea,
            '[{\"type\":\"dns\",\"value\":\"s' || i || '.home.arpa\"}]',
            $2 + i % 2592000 - 3600, $2 + i % 2592000 + 2592000, $2 + i % 2592000
     FROM generate_series(0, $1 - 1) i WHERE i % 2000 <> 0",
    "INSERT INTO order_lifecycle (order_id, profile)
     SELECT 'g-o' || i, 'default' FROM generate_series(0, $1 - 1) i",
    "INSERT INTO cert_lifecycle (cert_id, profile)
     SELECT 'g-c' || i, 'default' FROM generate_series(0, $1 - 1) i WHERE i % 2000 <> 0",
    // What the coverage refresher writes for each certificate.
    "INSERT INTO cert_coverage (cert_id, tenant, serial, account_id, names_key, not_before, not_after,
                                issued_at, window_start, window_end, last_seen)
     SELECT 'g-c' || i, 'default', md5(i::text), 'g-a' || (i / 10), 'dns:s' || i || '.home.arpa',
            $2 + i % 2592000 - 3600, $2 + i % 2592000 + 2592000, $2 + i % 2592000,
            $2 + i % 2592000 + 1728000, $2 + i % 2592000 + 2160000, $2 + i % 2592000
     FROM generate_series(0, $1 - 1) i WHERE i % 2000 <> 0",
];

/// Tables the history fills (statistics are gathered on each).
const TABLES: [&str; 9] = [
    "accounts",
    "orders",
    "authzs",
    "challenges",
    "order_authzs",
    "certificates",
    "order_lifecycle",
    "cert_lifecycle",
    "cert_coverage",
];

/// The plan of `sql` as its generic prepared plan would run it, one line per node.
async fn generic_plan(conn: &mut PgConnection, sql: &str) -> Vec<String> {
    // PostgreSQL infers each parameter's type from its use; one used only as `$4 IS NULL OR
    // tenant = $4` is ambiguous to it, and sqlx would send text: declare it so.
    let count = crate::sa::sql::highest_param(sql);
    let mut types = vec!["unknown"; count];
    loop {
        let declared = if count == 0 {
            String::new()
        } else {
            format!("({})", types.join(", "))
        };
        // The statement texts are this crate's constants.
        let prepared = conn
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PREPARE planned {declared} AS {sql}"
            ))))
            .await;
        let Err(e) = prepared else { break };
        let unknown = e
            .to_string()
            .split("could not determine data type of parameter $")
            .nth(1)
            .and_then(|n| {
                let n: String = n.chars().take_while(char::is_ascii_digit).collect();
                n.parse::<usize>().ok()
            });
        match unknown {
            Some(n) if (1..=count).contains(&n) && types[n - 1] == "unknown" => {
                types[n - 1] = "text"
            }
            _ => panic!("PREPARE {sql}: {e}"),
        }
    }
    let params: i64 = sqlx::query_scalar(
        "SELECT cardinality(parameter_types)::int8 FROM pg_prepared_statements WHERE name = 'planned'",
    )
    .fetch_one(&mut *conn)
    .await
    .expect("parameter count");
    // The values do not matter: the generic plan is made without them.
    let args = vec!["NULL"; params as usize].join(", ");
    let execute = if params == 0 {
        "EXPLAIN EXECUTE planned".to_string()
    } else {
        format!("EXPLAIN EXECUTE planned({args})")
    };
    let plan = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(execute))
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}"));
    conn.execute("DEALLOCATE planned")
        .await
        .expect("deallocate");
    plan
}

/// The big tables `plan` reads whole (`Seq Scan on <table>`).
async fn full_scans(conn: &mut PgConnection, plan: &[String]) -> Vec<String> {
    let mut big = Vec::new();
    for line in plan {
        let Some(rest) = line.split("Seq Scan on ").nth(1) else {
            continue;
        };
        let table = rest.split_whitespace().next().unwrap_or_default();
        let rows: f64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass($1)), 0)",
        )
        .bind(table)
        .fetch_one(&mut *conn)
        .await
        .expect("reltuples");
        if rows >= BIG {
            big.push(format!("{table} ({rows} rows)"));
        }
    }
    big
}

/// Every issuance-path statement that `sa::seed`'s SQLite test plans (`sql::stmt::ALL` and the
/// coverage statements) reads through an index on PostgreSQL at a million stored certificates;
/// and the check itself sees a full scan when an index the plan needs is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_statements_use_an_index_at_a_million_certificates_on_postgres() {
    // A fresh schema of its own, through the PostgreSQL gate every storage test uses.
    let Some((db, other)) = super::tests::postgres_pair().await else {
        return;
    };
    drop(other);
    let opts = (*db.pool_for_tests().connect_options()).clone();
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(db.pool_for_tests())
        .await
        .expect("schema");
    // It goes into SQL text below: the pair's names are `t_<digits>_<base64url>` lower-cased.
    assert!(
        schema.starts_with("t_")
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "{schema}"
    );
    // A failing check still drops the schema (a million issuances are ~1 GB): run it as a
    // task, clean up, then report its outcome.
    let outcome = tokio::spawn(check_plans(db.clone(), opts.clone())).await;
    db.pool_for_tests().close().await;
    let mut admin = PgConnection::connect_with(&opts).await.expect("connect");
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {schema} CASCADE"
        ))))
        .await
        .expect("drop schema");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn check_plans(db: std::sync::Arc<PgStorage>, opts: sqlx::postgres::PgConnectOptions) {
    let spec = SeedSpec {
        tenant: "default".into(),
        suffix: "home.arpa".into(),
        count: SEEDED,
        per_account: 10,
        der_len: 100,
        now: NOW,
    };
    db.seed_history(&spec, &|_| {}).await.expect("seed");
    let mut conn = PgConnection::connect_with(&opts).await.expect("connect");
    let started = std::time::Instant::now();
    // Loaded like a restore: foreign keys and secondary indexes are dropped, the rows
    // inserted, then the indexes built and the keys checked in one pass each (several times
    // faster than maintaining them row by row). Their definitions are read back from the
    // catalog, so what is planned against is exactly what the migrations made.
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.conname::text, pg_get_constraintdef(c.oid)
         FROM pg_constraint c WHERE c.connamespace = current_schema()::regnamespace AND c.contype = 'f'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("foreign keys");
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname::text, i.indexdef FROM pg_indexes i
         WHERE i.schemaname = current_schema() AND i.tablename = ANY($1)
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                         WHERE c.connamespace = current_schema()::regnamespace AND c.conname = i.indexname)",
    )
    .bind(TABLES.as_slice())
    .fetch_all(&mut conn)
    .await
    .expect("indexes");
    assert!(
        indexes.len() >= 10 && keys.len() >= 8,
        "{indexes:?} {keys:?}"
    );
    // Names and definitions come from the catalog of this test's own schema.
    for (table, name, _) in &keys {
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} DROP CONSTRAINT {name}"
        ))))
        .await
        .expect("drop foreign key");
    }
    for (name, _) in &indexes {
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP INDEX {name}"
        ))))
        .await
        .expect("drop index");
    }
    for sql in GENERATE {
        sqlx::query(sql)
            .bind(HISTORY - SEEDED as i64)
            .bind(NOW - 30 * 86400)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for (_, def) in &indexes {
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(def.clone())))
            .await
            .unwrap_or_else(|e| panic!("{def}: {e}"));
    }
    for (table, name, def) in &keys {
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} ADD CONSTRAINT {name} {def}"
        ))))
        .await
        .unwrap_or_else(|e| panic!("{table} {def}: {e}"));
    }
    // Statistics, and the visibility map an index-only scan needs (autovacuum's work on a
    // live database).
    for table in TABLES {
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "VACUUM ANALYZE {table}"
        ))))
        .await
        .expect("vacuum analyze");
    }
    println!(
        "{HISTORY} issuances generated and analyzed in {:.0?}",
        started.elapsed()
    );
    let certificates: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM certificates")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(certificates >= HISTORY * 99 / 100, "{certificates}");

    conn.execute("SET plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    // Coverage counts per state (the operator's summary, not the issuance path) aggregate
    // every row by definition: SQLite reads its covering index for that, PostgreSQL's planner
    // rightly prefers the table itself, which is no wider. Its cost is measured in
    // docs/coverage.md, not planned here.
    let coverage = super::coverage::PLANNED
        .into_iter()
        .filter(|s| *s != super::coverage::COUNTS);
    let mut failures = Vec::new();
    // PostgreSQL runs the issuance path's writes as one statement each (`postgres::stmt`);
    // those that find rows (the order to store, the challenge and authorizations to decide)
    // are planned too.
    // So are the first reads of the issuance requests, with the nonce spend (and the
    // challenge's start, the order's claim) they carry.
    use super::postgres::stmt as pg;
    let postgres_only = [
        pg::STORE_CERTIFICATE,
        pg::FINISH_CHALLENGE,
        pg::NEW_ORDER_READS,
        pg::NEW_ORDER_READS_SPENDING.as_str(),
        pg::AUTHZ_SPENDING.as_str(),
        pg::AUTHZ_BY_CHALLENGE_SPENDING.as_str(),
        pg::START_CHALLENGE_SPENDING.as_str(),
        // With the shared rate limits on (the default), these replace three of the above:
        // their bucket operations are `fleetca_rate_apply` calls, whose own statements are
        // primary-key lookups of `rate_buckets` (migration 0019).
        pg::START_CHALLENGE_CHARGING.as_str(),
        pg::NEW_ORDER_READS_CHARGING.as_str(),
        pg::FINISH_CHALLENGE_GIVING_BACK.as_str(),
        pg::ORDER_SPENDING.as_str(),
        pg::CLAIM_ORDER_SPENDING.as_str(),
        pg::CERT_SPENDING.as_str(),
    ];
    for sql in super::sql::stmt::ALL
        .into_iter()
        .chain(postgres_only)
        .chain(coverage)
    {
        let plan = generic_plan(&mut conn, sql).await;
        let scans = full_scans(&mut conn, &plan).await;
        let access: Vec<&str> = plan
            .iter()
            .filter(|l| l.contains(" Scan"))
            .map(|l| {
                l.trim_start_matches([' ', '-', '>'])
                    .split("  (")
                    .next()
                    .unwrap_or(l)
            })
            .collect();
        println!(
            "{}: {access:?}",
            sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
        );
        if !scans.is_empty() {
            failures.push(format!(
                "full scan of {scans:?} in the plan of\n{sql}\n{}",
                plan.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // An index scan can still read a whole account's history: the ancestor lookup of every
    // newOrder must use the index that holds only subdomain-granting authorizations.
    for sql in [
        super::sql::stmt::SUBDOMAIN_ANCESTOR_AUTHZS,
        pg::NEW_ORDER_READS,
    ] {
        let plan = generic_plan(&mut conn, sql).await;
        assert!(
            plan.iter()
                .any(|l| l.contains("authzs_subdomain_ancestors")),
            "the ancestor lookup must use authzs_subdomain_ancestors:\n{}",
            plan.join("\n")
        );
    }

    // The check sees what it is there to see: without the index on claimed orders, the sweep
    // that releases stale claims reads every order.
    let mut tx = conn.begin().await.unwrap();
    tx.execute("DROP INDEX orders_processing").await.unwrap();
    let plan = generic_plan(&mut tx, super::sql::stmt::RELEASE_STALE_ORDER_CLAIMS).await;
    let scans = full_scans(&mut tx, &plan).await;
    assert!(
        scans.iter().any(|s| s.starts_with("orders ")),
        "a missing index must show as a full scan: {plan:?}"
    );
    tx.rollback().await.unwrap();
}
