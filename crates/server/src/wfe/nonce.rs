//! Anti-replay nonces (RFC 8555 §6.5). A nonce is `expiry || random || MAC` under a key from
//! the [`NonceStore`], so issuing one (every response, and HEAD newNonce under a renewal storm)
//! touches no storage; redeeming it checks the MAC and expiry and then records it as spent,
//! exactly once, in the store every node shares.

use crate::error::Result;
use crate::sa::NonceStore;
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
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + self.ttl.as_secs() as i64;
        let mut raw = [0u8; NONCE_LEN];
        raw[..EXPIRY_LEN].copy_from_slice(&expires.to_be_bytes());
        rand::rng().fill_bytes(&mut raw[EXPIRY_LEN..EXPIRY_LEN + RANDOM_LEN]);
        let tag = self.tag(&raw[..EXPIRY_LEN + RANDOM_LEN]);
        raw[EXPIRY_LEN + RANDOM_LEN..].copy_from_slice(&tag);
        acme_types::b64::encode(&raw)
    }

    /// Redeems a nonce: true exactly once for an unexpired nonce made with this key.
    pub async fn redeem(&self, nonce: &str) -> Result<bool> {
        let Ok(raw) = acme_types::b64::decode(nonce) else {
            return Ok(false);
        };
        if raw.len() != NONCE_LEN {
            return Ok(false);
        }
        let (body, tag) = raw.split_at(EXPIRY_LEN + RANDOM_LEN);
        if constant_time::verify_slices_are_equal(&self.tag(body), tag).is_err() {
            return Ok(false);
        }
        let mut exp = [0u8; EXPIRY_LEN];
        exp.copy_from_slice(&body[..EXPIRY_LEN]);
        let expires = i64::from_be_bytes(exp);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if expires <= now {
            return Ok(false);
        }
        Ok(self.store.spend_nonce(body, expires).await?)
    }

    /// Forgets spent nonces that can no longer be redeemed anyway.
    pub async fn prune(&self) -> Result<u64> {
        Ok(self
            .store
            .prune_nonces(time::OffsetDateTime::now_utc().unix_timestamp())
            .await?)
    }
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
