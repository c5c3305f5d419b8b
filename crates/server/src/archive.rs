//! The backup file format: a POSIX ustar archive (POSIX.1-1988 `ustar`, as GNU tar reads it)
//! of regular files and directories with their permission bits, so an operator can list or
//! unpack a backup with `tar` as well as with `fleetca restore`. Only what a data directory
//! holds is supported: no links, devices or long names, and reading refuses any entry that
//! could land outside the target directory.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

const BLOCK: usize = 512;
/// ustar's size field holds 11 octal digits.
const MAX_SIZE: u64 = 0o777_7777_7777;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// Writes an archive entry by entry.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Adds a directory (`path` relative, `/`-separated).
    pub fn dir(&mut self, path: &str, mode: u32) -> std::io::Result<()> {
        let header = header(&format!("{}/", path.trim_end_matches('/')), mode, 0, b'5')?;
        self.out.write_all(&header)
    }

    /// Adds a regular file of `size` octets read from `data`.
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        data: &mut impl Read,
    ) -> std::io::Result<()> {
        self.out.write_all(&header(path, mode, size, b'0')?)?;
        let copied = std::io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{path} shrank while it was archived"),
            ));
        }
        let pad = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        self.out.write_all(&vec![0u8; pad])
    }

    /// Ends the archive (two zero blocks) and returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

fn octal(field: &mut [u8], value: u64) -> std::io::Result<()> {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    if s.len() > digits {
        return Err(invalid(format!("{value} does not fit a ustar field")));
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    Ok(())
}

fn header(path: &str, mode: u32, size: u64, kind: u8) -> std::io::Result<[u8; BLOCK]> {
    if path.len() > 100 || path.is_empty() {
        return Err(invalid(format!(
            "{path:?}: names longer than 100 octets are not supported"
        )));
    }
    if size > MAX_SIZE {
        return Err(invalid(format!("{path}: larger than 8 GiB")));
    }
    let mut h = [0u8; BLOCK];
    h[..path.len()].copy_from_slice(path.as_bytes());
    octal(&mut h[100..108], u64::from(mode & 0o7777))?;
    octal(&mut h[108..116], 0)?;
    octal(&mut h[116..124], 0)?;
    octal(&mut h[124..136], size)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    octal(&mut h[136..148], now)?;
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field read as eight spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

/// One entry read from an archive.
#[derive(Debug)]
pub struct Entry {
    /// Relative path, checked to stay inside the target directory.
    pub path: PathBuf,
    /// File or directory.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Size in octets (0 for a directory).
    pub size: u64,
}

fn parse_octal(field: &[u8]) -> std::io::Result<u64> {
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| invalid(format!("bad octal field {text:?}")))
}

/// A path from an archive, accepted only if it is relative and has no `..`.
fn safe_path(raw: &str) -> std::io::Result<PathBuf> {
    let p = Path::new(raw.trim_end_matches('/'));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => {
                return Err(invalid(format!(
                    "entry {raw:?} would leave the target directory"
                )))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(invalid(format!("entry {raw:?} names no file")));
    }
    Ok(out)
}

/// Reads an archive entry by entry.
pub struct Reader<R: Read> {
    input: R,
    /// Octets of the current entry's data (and padding) not read yet.
    pending: u64,
}

impl<R: Read> Reader<R> {
    /// Reads an archive from `input`.
    pub fn new(input: R) -> Self {
        Self { input, pending: 0 }
    }

    /// The next entry, `None` at the end; skips what the caller left of the previous one.
    pub fn next_entry(&mut self) -> std::io::Result<Option<Entry>> {
        std::io::copy(
            &mut (&mut self.input).take(self.pending),
            &mut std::io::sink(),
        )?;
        self.pending = 0;
        let mut h = [0u8; BLOCK];
        self.input.read_exact(&mut h)?;
        if h.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        if &h[257..262] != b"ustar" {
            return Err(invalid("not a ustar archive (is this a fleetca backup?)"));
        }
        let stored = parse_octal(&h[148..156])?;
        let mut copy = h;
        copy[148..156].copy_from_slice(b"        ");
        let sum: u64 = copy.iter().map(|b| u64::from(*b)).sum();
        if sum != stored {
            return Err(invalid("archive header checksum mismatch (damaged backup)"));
        }
        let name_of = |f: &[u8]| -> std::io::Result<String> {
            let end = f.iter().position(|b| *b == 0).unwrap_or(f.len());
            String::from_utf8(f[..end].to_vec()).map_err(|_| invalid("entry name is not UTF-8"))
        };
        let (name, prefix) = (name_of(&h[..100])?, name_of(&h[345..500])?);
        let raw = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = match h[156] {
            b'0' | 0 => Kind::File,
            b'5' => Kind::Dir,
            other => {
                return Err(invalid(format!(
                    "entry {raw:?} has type {:?}: only files and directories are restored",
                    other as char
                )))
            }
        };
        let size = if kind == Kind::Dir {
            0
        } else {
            parse_octal(&h[124..136])?
        };
        let mode = u32::try_from(parse_octal(&h[100..108])? & 0o777).unwrap_or(0o600);
        self.pending = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        Ok(Some(Entry {
            path: safe_path(&raw)?,
            kind,
            mode,
            size,
        }))
    }

    /// Copies the current file entry's data (`size` octets) to `out`.
    pub fn copy_data(&mut self, size: u64, out: &mut impl Write) -> std::io::Result<()> {
        let copied = std::io::copy(&mut (&mut self.input).take(size), out)?;
        if copied != size {
            return Err(invalid("the archive ends inside a file (truncated backup)"));
        }
        self.pending = self.pending.saturating_sub(size);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_modes() {
        let mut w = Writer::new(Vec::new());
        w.dir("ca", 0o700).unwrap();
        let data = vec![7u8; 1000];
        w.file("ca/key.pem", 0o600, 1000, &mut data.as_slice())
            .unwrap();
        w.file("empty", 0o644, 0, &mut std::io::empty()).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(bytes.as_slice());
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!((e.path, e.kind, e.mode), ("ca".into(), Kind::Dir, 0o700));
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!((e.kind, e.mode, e.size), (Kind::File, 0o600, 1000));
        let mut got = Vec::new();
        r.copy_data(e.size, &mut got).unwrap();
        assert_eq!(got, data);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!((e.path, e.size), ("empty".into(), 0));
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn refuses_paths_outside_and_damage() {
        for bad in ["../x", "/etc/passwd", "a/../../b"] {
            let mut w = Writer::new(Vec::new());
            w.file(bad, 0o644, 0, &mut std::io::empty()).unwrap();
            let bytes = w.finish().unwrap();
            let err = Reader::new(bytes.as_slice()).next_entry().unwrap_err();
            assert!(err.to_string().contains("leave the target"), "{bad}: {err}");
        }
        let mut w = Writer::new(Vec::new());
        w.file("x", 0o644, 0, &mut std::io::empty()).unwrap();
        let mut bytes = w.finish().unwrap();
        bytes[0] = b'y';
        let err = Reader::new(bytes.as_slice()).next_entry().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
