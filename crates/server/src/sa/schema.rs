//! The database's schema version against this binary's migrations, read without changing
//! anything (`fleetca doctor`). Opening the database for serving applies migrations; this
//! only looks, so a check never upgrades a database an older node still uses.

use super::SaError;
use sqlx::migrate::Migrator;
use sqlx::Row;
use std::collections::BTreeMap;
use std::str::FromStr;

/// What the database has applied compared with the migrations built into this binary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The SQLite file does not exist yet (`serve` creates it).
    pub missing: bool,
    /// Highest migration version this binary carries.
    pub binary_latest: i64,
    /// Highest version the database records as applied (0: none).
    pub database_latest: i64,
    /// Migrations of this binary the database has not applied (`serve` applies them).
    pub pending: Vec<i64>,
    /// Versions the database applied that this binary does not know: a newer fleetca
    /// migrated it, and this binary refuses to open it.
    pub unknown: Vec<i64>,
    /// Versions whose recorded checksum differs from this binary's file, or whose
    /// application did not finish.
    pub mismatched: Vec<i64>,
}

impl SchemaStatus {
    fn compare(migrator: &Migrator, applied: BTreeMap<i64, (Vec<u8>, bool)>) -> Self {
        let known: BTreeMap<i64, &[u8]> = migrator
            .iter()
            .map(|m| (m.version, m.checksum.as_ref()))
            .collect();
        SchemaStatus {
            missing: false,
            binary_latest: known.keys().copied().max().unwrap_or(0),
            database_latest: applied.keys().copied().max().unwrap_or(0),
            pending: known
                .keys()
                .filter(|v| !applied.contains_key(v))
                .copied()
                .collect(),
            unknown: applied
                .keys()
                .filter(|v| !known.contains_key(v))
                .copied()
                .collect(),
            mismatched: applied
                .iter()
                .filter(|(v, (sum, ok))| !ok || known.get(v).is_some_and(|k| *k != sum.as_slice()))
                .map(|(v, _)| *v)
                .collect(),
        }
    }
}

/// Reads `_sqlx_migrations` of `database` (a `postgres://` URL or a SQLite path) read-only.
pub async fn schema_status(database: &str) -> Result<SchemaStatus, SaError> {
    let query = "SELECT version, checksum, success FROM _sqlx_migrations";
    let table_exists: bool;
    let mut applied = BTreeMap::new();
    let migrator: &Migrator = if super::is_postgres_url(database) {
        let opts = sqlx::postgres::PgConnectOptions::from_str(database)?;
        let mut conn = sqlx::ConnectOptions::connect(&opts).await?;
        table_exists = sqlx::query("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?
            .try_get::<bool, _>(0)?;
        if table_exists {
            for r in sqlx::query(query).fetch_all(&mut conn).await? {
                applied.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
            }
        }
        &super::postgres::MIGRATOR
    } else {
        let path = database.strip_prefix("sqlite://").unwrap_or(database);
        if !std::path::Path::new(path).exists() {
            return Ok(SchemaStatus {
                missing: true,
                ..SchemaStatus::compare(&super::sqlite::MIGRATOR, BTreeMap::new())
            });
        }
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false);
        let mut conn = sqlx::ConnectOptions::connect(&opts).await?;
        table_exists = sqlx::query(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&mut conn)
        .await?
        .try_get::<i64, _>(0)?
            > 0;
        if table_exists {
            for r in sqlx::query(query).fetch_all(&mut conn).await? {
                applied.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
            }
        }
        &super::sqlite::MIGRATOR
    };
    Ok(SchemaStatus::compare(migrator, applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fresh_database_is_current_and_a_newer_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleetca.db");
        let db = path.display().to_string();
        let missing = schema_status(&db).await.unwrap();
        assert!(missing.missing);
        assert_eq!(
            missing.pending.len(),
            super::super::sqlite::MIGRATOR.iter().count()
        );

        let _open = super::super::SqliteStorage::open(&path).await.unwrap();
        let current = schema_status(&db).await.unwrap();
        assert!(!current.missing);
        assert!(current.pending.is_empty() && current.unknown.is_empty());
        assert!(current.mismatched.is_empty());
        assert_eq!(current.database_latest, current.binary_latest);

        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990001, 'from the future', 1, x'00', 0)",
            [],
        )
        .unwrap();
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = x'01' WHERE version = 1",
            [],
        )
        .unwrap();
        let newer = schema_status(&db).await.unwrap();
        assert_eq!(newer.unknown, vec![99990001]);
        assert_eq!(newer.mismatched, vec![1]);
        assert_eq!(newer.database_latest, 99990001);
    }
}
