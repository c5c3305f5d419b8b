//! Anti-replay nonces (RFC 8555 §6.5). A nonce is `expiry || random || MAC` under a key from
//! the [`NonceStore`], so issuing one (every response, and HEAD newNonce under a renewal storm)
//! touches no storage; redeeming it checks the MAC and expiry and then records it as spent,
//! exactly once, in the store every node shares.
//!
//! The expiry is in milliseconds, so a nonce lives its whole lifetime wherever in a second
//! it was issued (in whole seconds, one issued at 10.9 s with a 1 s lifetime would have
//! expired at 11.0 s, a tenth of its lifetime).

use crate::error::Result;
use crate::sa::{AccountGuard, GuardedSpend, NonceStore};
use aws_lc_rs::{constant_time, hmac};
use rand::RngCore;
use std::sync::Arc;
use std::time::Duration;

const EXPIRY_LEN: usize = 8;
const RANDOM_LEN: usize = 12;
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = EXPIRY_LEN + RANDOM_LEN + TAG_LEN;

/// Issues and redeems nonces.
pub struct NonceService {
    key: hmac::Key,
    ttl: Duration,
    store: Arc<dyn NonceStore>,
}

impl NonceService {
    /// A service whose nonces live for `ttl`, keyed and recorded by `store`.
    pub async fn new(store: Arc<dyn NonceStore>, ttl: Duration) -> Result<Self> {
        let key = store.nonce_key().await?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            ttl,
            store,
        })
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let full = hmac::sign(&self.key, body);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        tag
    }

    /// A fresh nonce.
    pub fn issue(&self) -> String {
        self.issue_at(now_ms())
    }

    fn issue_at(&self, now_ms: i64) -> String {
        let expires =
            now_ms.saturating_add(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX));
        let mut raw = [0u8; NONCE_LEN];
        raw[..EXPIRY_LEN].copy_from_slice(&expires.to_be_bytes());
        rand::rng().fill_bytes(&mut raw[EXPIRY_LEN..EXPIRY_LEN + RANDOM_LEN]);
        let tag = self.tag(&raw[..EXPIRY_LEN + RANDOM_LEN]);
        raw[EXPIRY_LEN + RANDOM_LEN..].copy_from_slice(&tag);
        acme_types::b64::encode(&raw)
    }

    /// Redeems a nonce: true exactly once for an unexpired nonce made with this key.
    pub async fn redeem(&self, nonce: &str) -> Result<bool> {
        self.redeem_at(nonce, now_ms()).await
    }

    /// Whether [`Self::redeem_guarded`] also checks the request's account (a shared store).
    pub fn guards_accounts(&self) -> bool {
        self.store.guards_accounts()
    }

    /// Whether the storage spends nonces with the first read of a request (see
    /// [`crate::sa::Nonce::Pending`]).
    pub fn spends_with_reads(&self) -> bool {
        self.store.spends_with_reads()
    }

    /// The nonce checked (made by this service, unexpired) but not spent, for the storage to
    /// spend with the request's first read; `None` for a nonce that fails the check.
    pub fn pending(&self, nonce: &str) -> Option<(Vec<u8>, i64)> {
        self.open(nonce, now_ms())
    }

    /// Spends a nonce [`Self::pending`] checked, only while `guard`'s account is as the caller
    /// saw it.
    pub async fn spend_pending_guarded(
        &self,
        id: &[u8],
        expires: i64,
        guard: &AccountGuard<'_>,
    ) -> Result<GuardedSpend> {
        Ok(self.store.spend_nonce_guarded(id, expires, guard).await?)
    }

    /// Spends a nonce [`Self::pending`] checked; false if it already was (a replay).
    pub async fn spend_pending(&self, id: &[u8], expires: i64) -> Result<bool> {
        Ok(self.store.spend_nonce(id, expires).await?)
    }

    /// Redeems a nonce only if `guard`'s account is still as the caller saw it; `None` for a
    /// nonce this service did not make or that expired.
    pub async fn redeem_guarded(
        &self,
        nonce: &str,
        guard: &AccountGuard<'_>,
    ) -> Result<Option<GuardedSpend>> {
        let Some((body, expires)) = self.open(nonce, now_ms()) else {
            return Ok(None);
        };
        Ok(Some(
            self.store
                .spend_nonce_guarded(&body, expires, guard)
                .await?,
        ))
    }

    async fn redeem_at(&self, nonce: &str, now_ms: i64) -> Result<bool> {
        let Some((body, expires)) = self.open(nonce, now_ms) else {
            return Ok(false);
        };
        Ok(self.store.spend_nonce(&body, expires).await?)
    }

    /// The nonce's id and its expiry in whole seconds (rounded up, so a spent nonce is
    /// remembered at least until it expires), if this service made it and it has not expired.
    fn open(&self, nonce: &str, now_ms: i64) -> Option<(Vec<u8>, i64)> {
        let raw = acme_types::b64::decode(nonce).ok()?;
        if raw.len() != NONCE_LEN {
            return None;
        }
        let (body, tag) = raw.split_at(EXPIRY_LEN + RANDOM_LEN);
        constant_time::verify_slices_are_equal(&self.tag(body), tag).ok()?;
        let mut exp = [0u8; EXPIRY_LEN];
        exp.copy_from_slice(&body[..EXPIRY_LEN]);
        let expires_ms = i64::from_be_bytes(exp);
        if expires_ms <= now_ms {
            return None;
        }
        let expires = expires_ms.div_euclid(1000) + i64::from(expires_ms.rem_euclid(1000) != 0);
        Some((body.to_vec(), expires))
    }

    /// Forgets spent nonces that can no longer be redeemed anyway.
    pub async fn prune(&self) -> Result<u64> {
        Ok(self
            .store
            .prune_nonces(time::OffsetDateTime::now_utc().unix_timestamp())
            .await?)
    }
}

/// The wall clock in UNIX milliseconds.
fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::MemoryNonceStore;

    async fn service(ttl: Duration) -> NonceService {
        NonceService::new(Arc::new(MemoryNonceStore::default()), ttl)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn nonce_is_single_use() {
        let s = service(Duration::from_secs(60)).await;
        let n = s.issue();
        assert!(s.redeem(&n).await.unwrap());
        assert!(
            !s.redeem(&n).await.unwrap(),
            "a nonce must not be accepted twice"
        );
        assert!(!s.redeem("never-issued").await.unwrap());
    }

    #[tokio::test]
    async fn nonce_expires() {
        let s = service(Duration::from_secs(0)).await;
        let n = s.issue();
        assert!(!s.redeem(&n).await.unwrap());
    }

    #[tokio::test]
    async fn a_nonce_lives_its_whole_lifetime_whenever_in_a_second_it_was_issued() {
        let s = service(Duration::from_secs(1)).await;
        // Issued in a second's last millisecond, redeemed in the next second's first.
        let n = s.issue_at(10_999);
        assert!(s.redeem_at(&n, 11_000).await.unwrap());
        let n = s.issue_at(10_999);
        assert!(s.redeem_at(&n, 11_998).await.unwrap());
        let n = s.issue_at(10_999);
        assert!(!s.redeem_at(&n, 11_999).await.unwrap());
    }

    #[tokio::test]
    async fn forged_and_foreign_nonces_are_refused() {
        let a = service(Duration::from_secs(60)).await;
        let b = service(Duration::from_secs(60)).await;
        // Another key (another process) did not make it.
        assert!(!a.redeem(&b.issue()).await.unwrap());
        // A changed expiry breaks the MAC.
        let mut raw = acme_types::b64::decode(&a.issue()).unwrap();
        raw[7] ^= 1;
        assert!(!a.redeem(&acme_types::b64::encode(&raw)).await.unwrap());
    }

    #[tokio::test]
    async fn nodes_sharing_postgres_accept_each_others_nonces_once() {
        let Some((pa, pb)) = crate::sa::tests::postgres_pair().await else {
            return;
        };
        let a = NonceService::new(pa, Duration::from_secs(60))
            .await
            .unwrap();
        let b = NonceService::new(pb, Duration::from_secs(60))
            .await
            .unwrap();
        let n = a.issue();
        assert!(b.redeem(&n).await.unwrap(), "node B accepts node A's nonce");
        assert!(
            !a.redeem(&n).await.unwrap(),
            "and it is spent for node A too"
        );
    }
}
