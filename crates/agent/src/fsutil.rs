//! Crash-safe file writes: temp file, fsync, rename, fsync the directory
//! (the rename is only durable once the directory entry is on disk).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{AgentError, Result};

/// Unit tests replay every operation against a power-cut model (`crate::power_cut`).
macro_rules! record {
    ($op:expr) => {
        #[cfg(test)]
        crate::power_cut::record($op);
    };
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AgentError::io(dir, e))?;
    record!(crate::power_cut::FsOp::SyncDir {
        dir: dir.to_path_buf()
    });
    Ok(())
}

/// Creates `dir` (and parents) with mode 0700 if missing.
pub fn create_dir_private(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| AgentError::io(dir, e))
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically with `mode`: a reader (or a power
/// cut) sees the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = temp_name(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        record!(crate::power_cut::FsOp::Write {
            path: tmp.clone(),
            bytes: bytes.to_vec()
        });
        f.sync_all()?;
        record!(crate::power_cut::FsOp::SyncFile { path: tmp.clone() });
        fs::rename(&tmp, path)?;
        record!(crate::power_cut::FsOp::Rename {
            from: tmp.clone(),
            to: path.to_path_buf()
        });
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(AgentError::io(path, e));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Creates `path` (which must not exist) with `bytes` and `mode`, fsynced.
/// The caller fsyncs the directory; meant for a directory nothing reads yet.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            record!(crate::power_cut::FsOp::Write {
                path: path.to_path_buf(),
                bytes: bytes.to_vec()
            });
            f.sync_all()?;
            record!(crate::power_cut::FsOp::SyncFile {
                path: path.to_path_buf()
            });
            Ok(())
        })
        .map_err(|e| AgentError::io(path, e))
}

/// [`write_atomic`], skipped when the file already holds `bytes` (flash
/// wear). Returns whether it wrote.
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    write_atomic(path, bytes, mode)?;
    Ok(true)
}

/// Points `link` at `target` atomically (new symlink under a temp name,
/// renamed over the old one), then fsyncs the directory.
pub fn symlink_atomic(target: &Path, link: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let tmp = temp_name(link);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| AgentError::io(&tmp, e))?;
    record!(crate::power_cut::FsOp::Symlink {
        target: target.to_path_buf(),
        link: tmp.clone()
    });
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(AgentError::io(link, e));
    }
    record!(crate::power_cut::FsOp::Rename {
        from: tmp.clone(),
        to: link.to_path_buf()
    });
    sync_dir(link.parent().unwrap_or(Path::new(".")))
}
