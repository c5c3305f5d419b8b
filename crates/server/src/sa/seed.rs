//! Synthetic issuance history for benchmarks (`fleetca bench-seed`): rows shaped like those a
//! finished ACME flow leaves behind (account, order, authorization, challenge, certificate and
//! their lifecycle rows), written in large multi-row statements so a million certificates take
//! minutes, not hours. The benchmark then measures whether issuance slows down as the tables
//! grow. Never used by the CA itself.

use super::backend::SqlxBackend;
use super::rows::Cols;
use super::SaError;
use async_trait::async_trait;
use rand::RngCore;

/// What to write.
#[derive(Clone, Debug)]
pub struct SeedSpec {
    /// Tenant the rows belong to.
    pub tenant: String,
    /// DNS suffix of the synthetic names (`s<N>.<suffix>`).
    pub suffix: String,
    /// Certificates to add.
    pub count: u64,
    /// Certificates per synthetic account.
    pub per_account: u64,
    /// Bytes of each synthetic certificate body (random, the size of a real leaf).
    pub der_len: usize,
    /// "Now": issuance times are spread over the 30 days before it.
    pub now: i64,
}

/// Rows per multi-row `INSERT` (times at most 10 columns stays under SQLite's and
/// PostgreSQL's bind-parameter limits).
const BATCH: u64 = 200;

/// Writes synthetic history.
#[async_trait]
pub trait HistorySeeder: Send + Sync {
    /// Adds `spec.count` finished issuances; `progress` is told the running total after each
    /// batch. Ids carry a random run prefix, so seeding twice adds to the history.
    async fn seed_history(
        &self,
        spec: &SeedSpec,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), SaError>;
}

/// `INSERT INTO table (cols) VALUES ($1, ..), ($k, ..), ...` for `rows` rows. Table and column
/// names are constants of this module and values are bound, so the text is safe to run.
fn multi_insert(table: &str, cols: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push_str(&format!("${n}"));
        }
        sql.push(')');
    }
    sql
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    crate::ids::hex(&b)
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is `SqlxBackend`'s.
#[async_trait]
impl<B> HistorySeeder for B
where
    B: SqlxBackend,
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as sqlx::Database>::Arguments: sqlx::IntoArguments<B::Db>,
    <B::Db as sqlx::Database>::Row: Cols,
    for<'q> &'q str: sqlx::Encode<'q, B::Db>
        + sqlx::Type<B::Db>
        + sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    for<'q> &'q [u8]: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> String: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Vec<u8>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<String>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
{
    async fn seed_history(
        &self,
        spec: &SeedSpec,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), SaError> {
        let run = random_hex(4);
        let per_account = spec.per_account.max(1);
        let mut der = vec![0u8; spec.der_len];
        rand::rng().fill_bytes(&mut der);
        let mut done = 0u64;
        while done < spec.count {
            let n = BATCH.min(spec.count - done);
            let idx: Vec<u64> = (done..done + n).collect();
            let pass = self.write_access().await?;
            let mut tx = self.writer(&pass).begin().await?;
            // Accounts first (certificates reference them): those whose first
            // certificate falls in this batch.
            let accts: Vec<u64> = idx
                .iter()
                .map(|i| i / per_account)
                .filter(|a| a * per_account >= done)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !accts.is_empty() {
                let sql = multi_insert(
                    "accounts",
                    &[
                        "id",
                        "tenant",
                        "jwk_thumbprint",
                        "jwk",
                        "contact",
                        "status",
                        "tos_agreed",
                        "created_at",
                    ],
                    accts.len(),
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for a in &accts {
                    q = q
                        .bind(format!("seed-{run}-a{a}"))
                        .bind(&spec.tenant)
                        .bind(format!("seed-{run}-{a}"))
                        .bind("{}")
                        .bind("[]")
                        .bind("valid")
                        .bind(1i64)
                        .bind(spec.now - 30 * 86400);
                }
                q.execute(&mut *tx).await?;
            }
            let issued = |i: u64| spec.now - 30 * 86400 + (i % (30 * 86400)) as i64;
            let name = |i: u64| format!("s{i}-{run}.{}", spec.suffix);
            let acct = |i: u64| format!("seed-{run}-a{}", i / per_account);

            let sql = multi_insert(
                "authzs",
                &[
                    "id",
                    "tenant",
                    "account_id",
                    "ident_type",
                    "ident_value",
                    "wildcard",
                    "status",
                    "expires",
                    "created_at",
                ],
                idx.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &i in &idx {
                q = q
                    .bind(format!("seed-{run}-z{i}"))
                    .bind(&spec.tenant)
                    .bind(acct(i))
                    .bind("dns")
                    .bind(name(i))
                    .bind(0i64)
                    .bind("valid")
                    .bind(issued(i) + 30 * 86400)
                    .bind(issued(i));
            }
            q.execute(&mut *tx).await?;

            let sql = multi_insert(
                "challenges",
                &["id", "authz_id", "type", "token", "status", "validated_at"],
                idx.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &i in &idx {
                q = q
                    .bind(format!("seed-{run}-h{i}"))
                    .bind(format!("seed-{run}-z{i}"))
                    .bind("http-01")
                    .bind(random_hex(32))
                    .bind("valid")
                    .bind(issued(i));
            }
            q.execute(&mut *tx).await?;

            let sql = multi_insert(
                "orders",
                &[
                    "id",
                    "tenant",
                    "account_id",
                    "status",
                    "expires",
                    "identifiers",
                    "cert_id",
                    "created_at",
                ],
                idx.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &i in &idx {
                q = q
                    .bind(format!("seed-{run}-o{i}"))
                    .bind(&spec.tenant)
                    .bind(acct(i))
                    .bind("valid")
                    .bind(issued(i) + 7 * 86400)
                    .bind(format!(r#"[{{"type":"dns","value":"{}"}}]"#, name(i)))
                    .bind(format!("seed-{run}-c{i}"))
                    .bind(issued(i));
            }
            q.execute(&mut *tx).await?;

            let sql = multi_insert(
                "order_authzs",
                &["order_id", "authz_id", "position"],
                idx.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &i in &idx {
                q = q
                    .bind(format!("seed-{run}-o{i}"))
                    .bind(format!("seed-{run}-z{i}"))
                    .bind(0i64);
            }
            q.execute(&mut *tx).await?;

            let sql = multi_insert(
                "certificates",
                &[
                    "id",
                    "tenant",
                    "serial",
                    "account_id",
                    "order_id",
                    "der",
                    "names",
                    "not_before",
                    "not_after",
                    "issued_at",
                ],
                idx.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &i in &idx {
                q = q
                    .bind(format!("seed-{run}-c{i}"))
                    .bind(&spec.tenant)
                    // 16 random bytes, like a real serial: random keys in the index.
                    .bind(format!("5eed{}", random_hex(14)))
                    .bind(acct(i))
                    .bind(format!("seed-{run}-o{i}"))
                    .bind(der.as_slice())
                    .bind(format!(r#"[{{"type":"dns","value":"{}"}}]"#, name(i)))
                    .bind(issued(i) - 3600)
                    .bind(issued(i) + 30 * 86400)
                    .bind(issued(i));
            }
            q.execute(&mut *tx).await?;

            for (table, id_col, prefix) in [
                ("order_lifecycle", "order_id", "o"),
                ("cert_lifecycle", "cert_id", "c"),
            ] {
                let sql = multi_insert(table, &[id_col, "profile"], idx.len());
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for &i in &idx {
                    q = q.bind(format!("seed-{run}-{prefix}{i}")).bind("default");
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            self.durable().await?;
            done += n;
            progress(done);
        }
        // Fresh planner statistics, so the benchmark that follows does not share the
        // machine with autovacuum's first pass over the new rows (PostgreSQL) and
        // plans with real row counts (both).
        // Table by table: a bare `ANALYZE` on PostgreSQL walks every table of the
        // database, and fails if another schema's table is dropped meanwhile.
        let pass = self.write_access().await?;
        for table in [
            "accounts",
            "orders",
            "authzs",
            "challenges",
            "order_authzs",
            "certificates",
            "order_lifecycle",
            "cert_lifecycle",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                .execute(self.writer(&pass))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::SqliteStorage;

    #[test]
    fn multi_insert_numbers_every_parameter() {
        assert_eq!(
            multi_insert("t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }

    #[tokio::test]
    async fn seeded_history_is_counted_like_real_issuance() {
        let db = SqliteStorage::open_scratch().await.unwrap();
        seed_and_count(&db).await;
        assert_eq!(db.table_counts().await.unwrap().accounts, 10);
    }

    /// Flat throughput as history grows needs every statement of an issuance to find its rows
    /// through an index, also once `ANALYZE` statistics exist (the seeder runs it). A column
    /// that is NULL in almost every row (`attested_by`) once made the planner pick a full scan.
    #[tokio::test]
    async fn issuance_statements_stay_indexed_over_a_stored_history() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStorage::open(&dir.path().join("h.db")).await.unwrap();
        let spec = SeedSpec {
            tenant: "default".into(),
            suffix: "home.arpa".into(),
            count: 2_000,
            per_account: 10,
            der_len: 100,
            now: 1_800_000_000,
        };
        db.seed_history(&spec, &|_| {}).await.unwrap();
        // The coverage refresher's table, filled and with statistics of its own.
        // (What the RA's refresher writes; any window will do for the plans.)
        use crate::sa::CoverageStore;
        let pending = db.pending_coverage(i64::MIN / 2, 10_000).await.unwrap();
        let rows: Vec<_> = pending
            .into_iter()
            .map(|cert| crate::sa::NewCoverage {
                names_key: cert.names_json.clone(),
                window: (cert.not_before, cert.not_after),
                cert,
            })
            .collect();
        db.insert_coverage(&rows).await.unwrap();
        sqlx::query("ANALYZE cert_coverage")
            .execute(db.pool())
            .await
            .unwrap();
        // Statistics reach a connection when it opens (as they reach `serve` after a seed or
        // a restart), so plan on a fresh one.
        drop(db);
        let db = SqliteStorage::open(&dir.path().join("h.db")).await.unwrap();
        let coverage = crate::sa::coverage::PLANNED;
        for sql in crate::sa::sql::stmt::ALL.iter().chain(coverage.iter()) {
            let plan = sqlite_plan(&db, sql).await;
            let scans: Vec<_> = plan
                .iter()
                .filter(|d| d.starts_with("SCAN ") && !d.contains(" USING "))
                .collect();
            assert!(scans.is_empty(), "full scan in the plan of {sql}: {plan:?}");
        }
        // An index search can still read a whole account's history: newOrder's ancestor
        // lookup must use the index holding only subdomain-granting authorizations.
        let plan = sqlite_plan(&db, crate::sa::sql::stmt::SUBDOMAIN_ANCESTOR_AUTHZS).await;
        assert!(
            plan.iter()
                .any(|d| d.contains("authzs_subdomain_ancestors")),
            "the ancestor lookup must use authzs_subdomain_ancestors: {plan:?}"
        );
    }

    /// SQLite's plan of `sql`, one line per step. The planner does not look at parameter
    /// values, so NULL stands in for each (coverage statements use integers and text alike;
    /// NULL plans the same).
    async fn sqlite_plan(db: &SqliteStorage, sql: &str) -> Vec<String> {
        let params = crate::sa::sql::highest_param(sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for _ in 0..params {
            q = q.bind(None::<String>);
        }
        q.fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| sqlx::Row::try_get::<String, _>(r, "detail").unwrap())
            .collect()
    }

    #[tokio::test]
    async fn seeded_history_on_postgres() {
        if let Some((db, _)) = super::super::tests::postgres_pair().await {
            seed_and_count(db.as_ref()).await;
            assert_eq!(db.table_counts().await.unwrap().accounts, 10);
        }
    }

    async fn seed_and_count<D: HistorySeeder + crate::sa::Database>(db: &D) {
        let spec = SeedSpec {
            tenant: "default".into(),
            suffix: "home.arpa".into(),
            count: 450,
            per_account: 100,
            der_len: 800,
            now: 1_800_000_000,
        };
        let seen = std::sync::Mutex::new(Vec::new());
        db.seed_history(&spec, &|n| seen.lock().unwrap().push(n))
            .await
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![200, 400, 450]);
        let c = db.counts().await.unwrap();
        assert_eq!(c.certificates, 450);
        assert_eq!(c.orders, 450);
        assert_eq!(c.accounts, 5);
        // A second run adds to the history instead of colliding.
        db.seed_history(&spec, &|_| {}).await.unwrap();
        assert_eq!(db.counts().await.unwrap().certificates, 900);
    }
}
