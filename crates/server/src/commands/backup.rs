//! `fleetca backup` and `fleetca restore`: one file with everything a data directory holds
//! (configuration, tenant configurations, CA certificates and keys with their file modes, the
//! EAB sealing key) and a consistent copy of its SQLite database, taken with SQLite's online
//! backup API while `serve` keeps running. The file is a ustar archive (see `crate::archive`)
//! and is written 0600: it contains CA keys.
//!
//! A PostgreSQL deployment (`FLEETCA_DATABASE=postgres://...`) is refused: its database is
//! backed up with `pg_dump` on the database side, which this command cannot make consistent
//! with a copy of the files here (docs/rollover-backup.md).

use crate::archive::{self, Kind};
use crate::datadir::DataDir;
use anyhow::Context;
use clap::Args;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `fleetca backup` options.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Data directory to back up (`serve` may be running on it).
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// The backup file to create (refused if it exists). It holds CA keys: keep it as
    /// protected as the data directory.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

/// `fleetca restore` options.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file made by `fleetca backup`.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The data directory to create; it must not exist or be empty.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// The database's name in the data directory and in the archive.
const DB_FILE: &str = "fleetca.db";

/// Files that are never copied as they are: the live database and its WAL and shared-memory
/// files (the consistent copy replaces them), and `write_atomic`'s temporary files.
fn skipped(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    rel == Path::new(DB_FILE)
        || rel == Path::new("fleetca.db-wal")
        || rel == Path::new("fleetca.db-shm")
        || rel == Path::new("fleetca.db-journal")
        || (name.starts_with('.') && name.contains(".tmp-"))
}

/// Runs `backup`.
pub(crate) fn backup(a: &BackupArgs) -> anyhow::Result<()> {
    let dd = DataDir::new(&a.data_dir);
    if !dd.is_initialized() {
        anyhow::bail!(
            "{} is not a fleetca data directory (no {})",
            dd.path().display(),
            dd.config().display()
        );
    }
    if crate::sa::is_postgres_url(&dd.database_url()) {
        anyhow::bail!(
            "this CA's database is PostgreSQL (FLEETCA_DATABASE): back it up with `pg_dump --format=custom` and restore it with `pg_restore`; copy the data directory's files (keys included) alongside, with their modes. `fleetca backup` only makes consistent backups of the SQLite database"
        );
    }
    // create_new: never overwrite (an old backup may be the only good one). 0600: keys inside.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&a.to)
        .with_context(|| format!("creating {} (it must not exist)", a.to.display()))?;
    // The database snapshot goes beside the backup file, not into the data directory.
    let mut snapshot = a.to.clone().into_os_string();
    snapshot.push(".db-snapshot");
    let result = write_backup(&dd, file, Path::new(&snapshot));
    if result.is_err() {
        let _ = std::fs::remove_file(&a.to);
    }
    let (files, db_size) = result?;
    println!(
        "Backed up {} ({} files, database {} octets) to {}. It contains CA keys: store it as securely as the data directory.",
        dd.path().display(),
        files,
        db_size,
        a.to.display()
    );
    Ok(())
}

fn write_backup(
    dd: &DataDir,
    file: std::fs::File,
    snapshot: &Path,
) -> anyhow::Result<(usize, u64)> {
    let mut w = archive::Writer::new(std::io::BufWriter::new(file));
    // The database first: a consistent copy, then the files around it.
    if snapshot.exists() {
        anyhow::bail!("{} exists; remove it first", snapshot.display());
    }
    let _cleanup = RemoveOnDrop(snapshot.to_path_buf());
    crate::sa::sqlite_snapshot(&dd.database(), snapshot)
        .with_context(|| format!("copying {}", dd.database().display()))?;
    let mut db = std::fs::File::open(snapshot)?;
    let db_size = db.metadata()?.len();
    w.file(DB_FILE, 0o600, db_size, &mut db)?;
    let mut files = 1;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = dd.path().join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = rel.join(e.file_name());
            if skipped(&rel) {
                continue;
            }
            let name = rel
                .to_str()
                .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", rel.display()))?
                .to_string();
            // symlink_metadata: a link is not followed out of the data directory.
            let meta = std::fs::symlink_metadata(e.path())?;
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                w.dir(&name, mode)?;
                stack.push(rel);
            } else if meta.is_file() {
                let mut f = std::fs::File::open(e.path())?;
                w.file(&name, mode, meta.len(), &mut f)
                    .with_context(|| format!("archiving {}", e.path().display()))?;
                files += 1;
            } else {
                tracing::warn!(path = %e.path().display(), "not a regular file or directory; left out of the backup");
            }
        }
    }
    let out = w.finish()?;
    out.into_inner()
        .map_err(|e| anyhow::anyhow!("writing the backup: {}", e.error()))?
        .sync_all()?;
    Ok((files, db_size))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `restore`.
pub(crate) fn restore(a: &RestoreArgs) -> anyhow::Result<()> {
    let target = &a.data_dir;
    if target.exists() {
        let mut entries =
            std::fs::read_dir(target).with_context(|| format!("reading {}", target.display()))?;
        if entries.next().is_some() {
            anyhow::bail!(
                "{} is not empty; restore into a new directory (nothing was changed)",
                target.display()
            );
        }
    }
    let input =
        std::fs::File::open(&a.from).with_context(|| format!("opening {}", a.from.display()))?;
    std::fs::create_dir_all(target)?;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o700))?;
    let result = unpack(input, target);
    if let Err(e) = result {
        // A partial restore must not look like a data directory.
        let _ = std::fs::remove_dir_all(target);
        return Err(e);
    }
    let dd = DataDir::new(target);
    if !dd.is_initialized() || !dd.database().exists() {
        let _ = std::fs::remove_dir_all(target);
        anyhow::bail!(
            "{} holds no fleetca configuration or database; is it a `fleetca backup` file?",
            a.from.display()
        );
    }
    println!(
        "Restored {} into {}. Start it with `fleetca serve --data-dir {}` (the same key passphrase and PKCS#11 token as before).",
        a.from.display(),
        target.display(),
        target.display()
    );
    Ok(())
}

fn unpack(input: std::fs::File, target: &Path) -> anyhow::Result<()> {
    let mut r = archive::Reader::new(std::io::BufReader::new(input));
    // Directory modes are set at the end, so a 0500 directory can still be filled.
    let mut dirs = Vec::new();
    while let Some(e) = r.next_entry()? {
        let path = target.join(&e.path);
        match e.kind {
            Kind::Dir => {
                std::fs::create_dir_all(&path)?;
                dirs.push((path, e.mode));
            }
            Kind::File => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // create_new: an archive naming one file twice is refused, not merged.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(e.mode)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                r.copy_data(e.size, &mut f)?;
                // The mode as archived, whatever the umask made of it.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode))?;
                f.sync_all()?;
            }
        }
    }
    for (dir, mode) in dirs.into_iter().rev() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}
