//! Moving a single-node CA from SQLite to PostgreSQL (`fleetca migrate`): every table is copied
//! in dependency order inside one PostgreSQL transaction, then row counts and a digest of every
//! certificate are compared on both sides before the transaction commits.

use super::{PgStorage, SaError, SqliteStorage};
use crate::sa::backend::SqlxBackend;
use sqlx::Row;

/// Tables in an order that satisfies the foreign keys.
const TABLES: &[&str] = &[
    "accounts",
    "authzs",
    "challenges",
    "orders",
    "order_authzs",
    "certificates",
    "crls",
    "order_lifecycle",
    "cert_lifecycle",
    "renewal_overrides",
    "crl_shards",
    "eab_keys",
    "eab_bindings",
    "audit_log",
    "admin_tokens",
    "tenant_domains",
];

/// What was copied and the proof that it arrived intact.
#[derive(Debug, Default, serde::Serialize)]
pub struct MigrationReport {
    /// Rows copied per table.
    pub rows: Vec<(String, i64)>,
    /// SHA-256 over every certificate's serial and DER, ordered by tenant and serial; the same
    /// on both sides.
    pub certificate_digest: String,
}

async fn pg_columns(
    tx: &mut sqlx::PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, SaError> {
    let rows = sqlx::query("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position")
        .bind(table)
        .fetch_all(&mut *tx)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
        .collect()
}

/// Table and column names come from the fixed list above and PostgreSQL's own catalogue.
fn sql(s: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(s)
}

const CERTS_IN_ORDER: &str = "SELECT tenant, serial, der FROM certificates ORDER BY tenant, serial";

/// SHA-256 over every certificate's tenant, serial and DER, in a fixed order.
fn digest<R: Row>(rows: &[R]) -> Result<String, SaError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for r in rows {
        ctx.update(r.try_get::<String, _>(0)?.as_bytes());
        ctx.update(r.try_get::<String, _>(1)?.as_bytes());
        ctx.update(&r.try_get::<Vec<u8>, _>(2)?);
    }
    Ok(crate::ids::hex(ctx.finish().as_ref()))
}

/// Copies everything from `src` into the empty database `dst`. Nothing is committed unless every
/// table's row count and the certificate digest match. Stop `serve` first: writes made during
/// the copy would not be carried over.
pub async fn sqlite_to_postgres(
    src: &SqliteStorage,
    dst: &PgStorage,
) -> Result<MigrationReport, SaError> {
    let mut tx = dst.pool().begin().await?;
    let existing: i64 =
        sqlx::query("SELECT (SELECT COUNT(*) FROM accounts) + (SELECT COUNT(*) FROM certificates)")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
    if existing > 0 {
        return Err(SaError::Conflict(
            "the target database already holds accounts or certificates".into(),
        ));
    }
    let mut report = MigrationReport::default();
    for table in TABLES {
        let cols = pg_columns(&mut tx, table).await?;
        if cols.is_empty() {
            return Err(SaError::Corrupt(format!(
                "table {table} is missing in the target"
            )));
        }
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let rows = sqlx::query(sql(select)).fetch_all(src.pool()).await?;
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        for row in &rows {
            let mut q = sqlx::query(sql(insert.clone()));
            for (i, (_, ty)) in cols.iter().enumerate() {
                q = match ty.as_str() {
                    "bigint" | "integer" | "smallint" => q.bind(row.try_get::<Option<i64>, _>(i)?),
                    "bytea" => q.bind(row.try_get::<Option<Vec<u8>>, _>(i)?),
                    _ => q.bind(row.try_get::<Option<String>, _>(i)?),
                };
            }
            q.execute(&mut *tx).await?;
        }
        let copied: i64 = sqlx::query(sql(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if copied != rows.len() as i64 {
            return Err(SaError::Corrupt(format!(
                "{table}: {} rows read, {copied} in the target",
                rows.len()
            )));
        }
        report.rows.push((table.to_string(), copied));
    }
    // The copied audit ids were explicit; move the sequence past them.
    sqlx::query("SELECT setval(pg_get_serial_sequence('audit_log', 'id'), COALESCE((SELECT MAX(id) FROM audit_log), 0) + 1, false)")
        .execute(&mut *tx)
        .await?;
    let a = digest(&sqlx::query(CERTS_IN_ORDER).fetch_all(src.pool()).await?)?;
    let b = digest(&sqlx::query(CERTS_IN_ORDER).fetch_all(&mut *tx).await?)?;
    if a != b {
        return Err(SaError::Corrupt(format!(
            "certificate digest differs after the copy: {a} vs {b}"
        )));
    }
    report.certificate_digest = a;
    tx.commit().await?;
    Ok(report)
}
