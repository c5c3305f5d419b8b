//! Unit tests only: a power cut that really loses what was not synced.
//!
//! `fsutil` reports each file operation here while a test records ([`record`]). The model
//! replays them with the durability rules of a POSIX file system after a power cut: a file's
//! data survives only up to its last `fsync`, and a directory entry (a creation, rename or
//! symlink) only once its directory was `fsync`ed. [`Disk::materialize`] writes what would
//! be on disk after a cut into a fresh directory, so the install code's claim — the old set
//! or the new set, complete, whatever the moment — is checked against a missing `fsync` too.
//! (The checkpoint tests in `tests/power_loss.rs` stop the install but keep every write.)

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One file operation, as `fsutil` performed it.
#[derive(Debug, Clone)]
pub(crate) enum FsOp {
    /// A new file (created or truncated) holding `bytes`, not yet synced.
    Write { path: PathBuf, bytes: Vec<u8> },
    /// `fsync` of a file: its data is durable.
    SyncFile { path: PathBuf },
    /// `rename(2)`.
    Rename { from: PathBuf, to: PathBuf },
    /// `symlink(2)`: `link` pointing at `target`.
    Symlink { target: PathBuf, link: PathBuf },
    /// `fsync` of a directory: its entries are durable.
    SyncDir { dir: PathBuf },
}

thread_local! {
    static JOURNAL: RefCell<Option<Vec<FsOp>>> = const { RefCell::new(None) };
}

/// Called by `fsutil` after each successful operation; kept only while a test records.
pub(crate) fn record(op: FsOp) {
    JOURNAL.with(|j| {
        if let Some(ops) = j.borrow_mut().as_mut() {
            ops.push(op);
        }
    });
}

/// Runs `f` and returns what it did to the file system.
pub(crate) fn recording<T>(f: impl FnOnce() -> T) -> (T, Vec<FsOp>) {
    JOURNAL.with(|j| *j.borrow_mut() = Some(Vec::new()));
    let out = f();
    let ops = JOURNAL.with(|j| j.borrow_mut().take()).unwrap_or_default();
    (out, ops)
}

enum Node {
    File {
        now: Vec<u8>,
        durable: Vec<u8>,
    },
    Link(PathBuf),
    Dir {
        now: BTreeMap<String, usize>,
        durable: BTreeMap<String, usize>,
    },
}

/// The model of one directory tree, rooted at an empty, durable directory.
pub(crate) struct Disk {
    root: PathBuf,
    nodes: Vec<Node>,
}

impl Disk {
    pub(crate) fn new(root: &Path) -> Disk {
        Disk {
            root: root.to_path_buf(),
            nodes: vec![Node::Dir {
                now: BTreeMap::new(),
                durable: BTreeMap::new(),
            }],
        }
    }

    fn entries(&mut self, dir: usize) -> &mut BTreeMap<String, usize> {
        match &mut self.nodes[dir] {
            Node::Dir { now, .. } => now,
            _ => panic!("not a directory in the model"),
        }
    }

    /// The directory holding `path` and the entry name; directories the install created with
    /// `fs` directly (not through `fsutil`) appear here, undurable until their parent is synced.
    fn parent(&mut self, path: &Path) -> (usize, String) {
        let rel = path
            .strip_prefix(&self.root)
            .unwrap_or_else(|_| panic!("{} is outside {}", path.display(), self.root.display()));
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let (name, dirs) = parts.split_last().expect("a path below the root");
        let mut dir = 0;
        for d in dirs {
            dir = match self.entries(dir).get(d) {
                Some(&ino) => ino,
                None => {
                    self.nodes.push(Node::Dir {
                        now: BTreeMap::new(),
                        durable: BTreeMap::new(),
                    });
                    let ino = self.nodes.len() - 1;
                    self.entries(dir).insert(d.clone(), ino);
                    ino
                }
            };
        }
        (dir, name.clone())
    }

    fn resolve(&mut self, path: &Path) -> usize {
        if path == self.root {
            return 0;
        }
        let (dir, name) = self.parent(path);
        *self
            .entries(dir)
            .get(&name)
            .unwrap_or_else(|| panic!("{} is not in the model", path.display()))
    }

    pub(crate) fn apply(&mut self, op: &FsOp) {
        match op {
            FsOp::Write { path, bytes } => {
                self.nodes.push(Node::File {
                    now: bytes.clone(),
                    durable: Vec::new(),
                });
                let ino = self.nodes.len() - 1;
                let (dir, name) = self.parent(path);
                self.entries(dir).insert(name, ino);
            }
            FsOp::SyncFile { path } => {
                let ino = self.resolve(path);
                if let Node::File { now, durable } = &mut self.nodes[ino] {
                    *durable = now.clone();
                }
            }
            FsOp::Rename { from, to } => {
                let (fdir, fname) = self.parent(from);
                let ino = self
                    .entries(fdir)
                    .remove(&fname)
                    .unwrap_or_else(|| panic!("rename of missing {}", from.display()));
                let (tdir, tname) = self.parent(to);
                self.entries(tdir).insert(tname, ino);
            }
            FsOp::Symlink { target, link } => {
                self.nodes.push(Node::Link(target.clone()));
                let ino = self.nodes.len() - 1;
                let (dir, name) = self.parent(link);
                self.entries(dir).insert(name, ino);
            }
            FsOp::SyncDir { dir } => {
                let ino = self.resolve(dir);
                if let Node::Dir { now, durable } = &mut self.nodes[ino] {
                    *durable = now.clone();
                }
            }
        }
    }

    /// Writes what survives a power cut now into `dest` (an empty directory).
    pub(crate) fn materialize(&self, dest: &Path) {
        self.write_node(0, dest);
    }

    fn write_node(&self, ino: usize, at: &Path) {
        match &self.nodes[ino] {
            Node::File { durable, .. } => std::fs::write(at, durable).unwrap(),
            Node::Link(target) => std::os::unix::fs::symlink(target, at).unwrap(),
            Node::Dir { durable, .. } => {
                std::fs::create_dir_all(at).unwrap();
                for (name, &child) in durable {
                    self.write_node(child, &at.join(name));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AgentError;
    use crate::install::{self, install_with_checkpoints, read_current, CertSet};

    fn set(tag: &str) -> CertSet {
        CertSet {
            key_pem: format!("key {tag}\n"),
            cert_pem: format!("cert {tag}\n"),
            chain_pem: format!("chain {tag}\n"),
        }
    }

    /// What a power cut leaves after `ops`, in a fresh directory.
    fn after_cut(root: &Path, ops: &[FsOp]) -> tempfile::TempDir {
        let mut disk = Disk::new(root);
        for op in ops {
            disk.apply(op);
        }
        let crashed = tempfile::tempdir().unwrap();
        disk.materialize(crashed.path());
        crashed
    }

    /// The set the stable names show, read through each of them.
    fn stable_names_agree(dir: &Path, set: &CertSet) {
        for (name, want) in [
            ("key.pem", &set.key_pem),
            ("cert.pem", &set.cert_pem),
            ("chain.pem", &set.chain_pem),
        ] {
            let got = std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("{name} after a power cut: {e}"));
            assert_eq!(&got, want, "{name} disagrees with current/");
        }
    }

    #[test]
    fn a_power_cut_at_any_step_keeps_the_old_or_the_new_set() {
        let (old, new) = (set("old"), set("new"));
        let mut completed = false;
        for stop_at in 0..64 {
            let out = tempfile::tempdir().unwrap();
            let ((), ops) = recording(|| {
                install::install(out.path(), &old).unwrap();
                let mut n = 0;
                let r = install_with_checkpoints(out.path(), &new, &mut |_| {
                    n += 1;
                    if n > stop_at {
                        return Err(AgentError::Key("power cut".into()));
                    }
                    Ok(())
                });
                completed = r.is_ok();
            });
            let crashed = after_cut(out.path(), &ops);
            let found = read_current(crashed.path());
            if completed {
                // The install said it was done: a power cut now must keep the new set.
                assert_eq!(found.as_ref(), Some(&new), "lost after reporting success");
            } else {
                assert!(
                    found == Some(old.clone()) || found == Some(new.clone()),
                    "cut after {stop_at} steps: {found:?}"
                );
            }
            stable_names_agree(crashed.path(), found.as_ref().unwrap());
            // The next run completes the install from what survived.
            install::install(crashed.path(), &new).unwrap();
            assert_eq!(read_current(crashed.path()), Some(new.clone()));
            if completed {
                assert!(stop_at >= 7, "only {stop_at} steps");
                return;
            }
        }
        panic!("the install never completed");
    }

    #[test]
    fn a_power_cut_during_the_first_install_leaves_nothing_or_everything() {
        let new = set("first");
        for stop_at in 0..64 {
            let out = tempfile::tempdir().unwrap();
            let (r, ops) = recording(|| {
                let mut n = 0;
                install_with_checkpoints(out.path(), &new, &mut |_| {
                    n += 1;
                    if n > stop_at {
                        return Err(AgentError::Key("power cut".into()));
                    }
                    Ok(())
                })
            });
            let crashed = after_cut(out.path(), &ops);
            let found = read_current(crashed.path());
            if r.is_ok() {
                assert_eq!(found.as_ref(), Some(&new), "lost after reporting success");
                stable_names_agree(crashed.path(), &new);
                return;
            }
            assert!(found.is_none() || found.as_ref() == Some(&new), "{found:?}");
        }
        panic!("the install never completed");
    }
}
