//! Per-device jitter, so a fleet of identical devices does not act in step.
//!
//! Every random-looking delay (the start-up splay, the point inside a
//! renewal window, retry backoff) is drawn from one stable per-device seed:
//! the RFC 7638 thumbprint of the account key, which is made once on the
//! device and kept in the state dir. Devices that boot in the same second
//! (a power cut coming back) therefore spread out, while one device draws
//! the same values every time (`status` and `renew` agree, restarts do not
//! reshuffle). The values spread load; they are not secrets, so a plain
//! non-cryptographic mix is enough and works with either crypto provider.

use std::path::Path;

use crate::config::AccountKeyType;
use crate::error::Result;
use crate::keys;

/// The device's jitter source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jitter {
    seed: String,
}

/// FNV-1a, then the splitmix64 finalizer for an even spread of the high bits.
fn mix(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl Jitter {
    /// Jitter from a seed string (the account key thumbprint).
    pub fn from_seed(seed: impl Into<String>) -> Jitter {
        Jitter { seed: seed.into() }
    }

    /// The device's jitter: loads the account key, making it first if this
    /// device has none yet (it is needed for the first order anyway).
    pub fn for_device(state_dir: &Path, kind: AccountKeyType) -> Result<Jitter> {
        let (key, _) = keys::load_or_create_account_key(state_dir, kind)?;
        Ok(Jitter::from_seed(key.jwk().thumbprint()))
    }

    /// The device's jitter if its account key exists (read-only commands
    /// such as `status` never create keys); else a fixed seed.
    pub fn existing(state_dir: &Path) -> Jitter {
        Jitter::from_seed(
            keys::read_account_key(state_dir)
                .map(|k| k.jwk().thumbprint())
                .unwrap_or_default(),
        )
    }

    /// A stable value in [0, 1) for `purpose` and `extra` on this device.
    pub fn unit(&self, purpose: &str, extra: &[u8]) -> f64 {
        let h = mix(&[self.seed.as_bytes(), purpose.as_bytes(), extra]);
        (h >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Seconds to wait after start-up before the first attempt, in
    /// `[0, window)`.
    pub fn splay(&self, window: u64) -> u64 {
        (self.unit("splay", &[]) * window as f64) as u64
    }

    /// Retry delay after `failures` consecutive failures: exponential from
    /// `base` doubling up to `cap`, the second half jittered per device and
    /// per failure count ("equal jitter").
    pub fn backoff(&self, failures: u32, base: u64, cap: u64) -> u64 {
        let full = base
            .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
            .min(cap);
        let half = full / 2;
        half + (self.unit("retry", &failures.to_be_bytes()) * (full - half + 1) as f64) as u64
    }

    /// Retry delay when the server sent Retry-After (RFC 9110 §10.2.3):
    /// never earlier than asked, plus up to a quarter more (at most an hour)
    /// so a fleet told the same time does not come back in one burst.
    pub fn after_retry_after(&self, retry_after: u64, failures: u32) -> u64 {
        let spread = (retry_after / 4).clamp(1, 3600);
        retry_after + (self.unit("retry-after", &failures.to_be_bytes()) * spread as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_device_and_spread_across_devices() {
        let a = Jitter::from_seed("device-a");
        assert_eq!(a.splay(600), Jitter::from_seed("device-a").splay(600));
        let splays: std::collections::BTreeSet<u64> = (0..200)
            .map(|i| Jitter::from_seed(format!("device-{i}")).splay(600))
            .collect();
        assert!(splays.len() > 150, "{}", splays.len());
        assert!(*splays.first().unwrap() < 60 && *splays.last().unwrap() >= 540);
    }

    #[test]
    fn backoff_bounds() {
        let j = Jitter::from_seed("x");
        for f in 1..30 {
            let full = (60u64 << (f - 1).min(20)).min(21_600);
            let w = j.backoff(f, 60, 21_600);
            assert!((full / 2..=full).contains(&w), "{f}: {w}");
        }
        for ra in [1, 3, 120, 86_400] {
            let w = j.after_retry_after(ra, 1);
            assert!(w >= ra && w <= ra + (ra / 4).clamp(1, 3600), "{ra}: {w}");
        }
    }
}
