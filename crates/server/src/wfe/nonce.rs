//! Anti-replay nonces (RFC 8555 §6.5): random, single-use, expiring, bounded in number.

use crate::ids::new_id;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Issues and redeems nonces. Outstanding nonces are capped; when the cap is reached the
/// oldest are forgotten (a client holding one just gets `badNonce` and a fresh nonce).
pub struct NonceService {
    inner: Mutex<Inner>,
    ttl: Duration,
    cap: usize,
}

struct Inner {
    live: HashMap<String, Instant>,
    order: VecDeque<(String, Instant)>,
}

impl NonceService {
    /// A service whose nonces live for `ttl`, with at most `cap` outstanding.
    pub fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                live: HashMap::new(),
                order: VecDeque::new(),
            }),
            ttl,
            cap: cap.max(1),
        }
    }

    /// A fresh nonce.
    pub fn issue(&self) -> String {
        let nonce = new_id();
        let expires = Instant::now() + self.ttl;
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Self::prune(&mut g, self.cap - 1);
        g.live.insert(nonce.clone(), expires);
        g.order.push_back((nonce.clone(), expires));
        nonce
    }

    /// Redeems a nonce: true exactly once for a nonce this service issued and that has not expired.
    pub fn redeem(&self, nonce: &str) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.live.remove(nonce) {
            Some(expires) => expires > Instant::now(),
            None => false,
        }
    }

    fn prune(g: &mut Inner, keep: usize) {
        let now = Instant::now();
        while let Some((n, exp)) = g.order.front() {
            let stale = !g.live.contains_key(n);
            if stale || *exp <= now || g.live.len() > keep {
                let (n, _) = g.order.pop_front().expect("front exists");
                g.live.remove(&n);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_single_use() {
        let s = NonceService::new(Duration::from_secs(60), 10);
        let n = s.issue();
        assert!(s.redeem(&n));
        assert!(!s.redeem(&n), "a nonce must not be accepted twice");
        assert!(!s.redeem("never-issued"));
    }

    #[test]
    fn nonce_expires() {
        let s = NonceService::new(Duration::from_millis(0), 10);
        let n = s.issue();
        assert!(!s.redeem(&n));
    }

    #[test]
    fn oldest_nonces_are_dropped_at_the_cap() {
        let s = NonceService::new(Duration::from_secs(60), 3);
        let first = s.issue();
        let rest: Vec<_> = (0..3).map(|_| s.issue()).collect();
        assert!(!s.redeem(&first));
        for n in rest {
            assert!(s.redeem(&n));
        }
    }
}
