//! The descriptor budget. Every connection, database file or socket, log file and validation
//! socket is a descriptor; the soft `RLIMIT_NOFILE` many systems start a service with (1024) is
//! reached by a few hundred idle connections, after which `accept` fails and the CA is
//! unreachable. `serve` raises the soft limit to the hard one and sizes its default connection
//! cap below it.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept out of the connection budget: the database (SQLite files and WAL, or a
/// PostgreSQL pool), logs, the OCSP and CRL files, the runtime's own, and headroom.
pub const RESERVED: u64 = 256;
/// The largest default total connection cap, whatever the descriptor limit: beyond it memory
/// (a TLS session each) becomes the limit before descriptors do.
pub const DEFAULT_CAP_CEILING: u64 = 10_000;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit where it is lower, and returns the soft
/// limit in force afterwards (`None`: unlimited). A refusal leaves the limit as it was.
pub fn raise() -> Option<u64> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be the soft one on every system (Linux caps it at
    // fs.nr_open, macOS at OPEN_MAX): keep the current soft limit then.
    if let (Some(cur), Some(max)) = (current, maximum) {
        if cur < max {
            match setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(max),
                    maximum: Some(max),
                },
            ) {
                Ok(()) => return Some(max),
                Err(e) => {
                    tracing::warn!(soft = cur, hard = max, error = %e, "could not raise RLIMIT_NOFILE");
                }
            }
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The default total connection cap for a descriptor limit of `nofile` (`None`: unlimited),
/// leaving [`RESERVED`] descriptors, two per validation in flight (a DNS socket and a
/// connection to the target) and `other_caps` (listeners with their own budget, such as the
/// admin listener) outside it. Never below 64: a server that cannot take 64 connections is
/// unusable anyway, and says so in its log.
pub fn default_cap(nofile: Option<u64>, max_validations: usize, other_caps: usize) -> usize {
    let reserve = RESERVED + 2 * max_validations as u64 + other_caps as u64;
    let budget = nofile.map_or(DEFAULT_CAP_CEILING, |n| n.saturating_sub(reserve));
    budget.clamp(64, DEFAULT_CAP_CEILING) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cap_leaves_room_below_the_limit() {
        // 1024 - 256 - 2*64 - 64 = 576.
        assert_eq!(default_cap(Some(1024), 64, 64), 576);
        assert_eq!(default_cap(Some(1 << 20), 64, 64), 10_000);
        assert_eq!(default_cap(None, 64, 64), 10_000);
        assert_eq!(default_cap(Some(256), 64, 64), 64);
    }

    #[test]
    fn raise_reaches_the_hard_limit() {
        let hard = getrlimit(Resource::Nofile).maximum;
        let soft = raise();
        if let Some(hard) = hard {
            assert_eq!(soft, Some(hard));
        }
    }
}
