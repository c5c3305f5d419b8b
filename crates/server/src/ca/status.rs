//! The CA's status publisher: the only way the front end gets CRLs (RFC 5280 §5) and OCSP
//! answers (RFC 6960). The CA side signs them and keeps what it signed; the front end holds a
//! [`StatusHandle`], which can ask for signed bytes and nothing else — it has no way to a
//! signer, so a bug or a hostile request in the HTTP layer cannot make the CA sign anything
//! other than a CRL or an OCSP answer for what storage says.
//!
//! - Full and shard CRLs are stored; they are re-signed on a revocation (by the RA, as
//!   before), when half their validity has passed, and, for a shard, when its revoked set
//!   changed (see [`super::crl_shard`]).
//! - OCSP answers without a nonce are kept in memory per (CA, request) and served again while
//!   every certificate's status read from storage is still the one they were signed for, the
//!   CA and its delegated responder are the same, and less than half their validity has
//!   passed. Storage is read on every request, so a revocation made on any node invalidates
//!   the kept answer at once.
//!
//! Signing is bounded ([`MAX_STATUS_SIGNINGS`] at once), and a CA whose signer blocks (a
//! PKCS#11 token) signs on the blocking pool, as finalize does.

use super::ocsp::OcspAnswer;
use super::ocsp_signer::OcspResponder;
use super::IssuingCa;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::sa::{CrlRecord, LifecycleStore, Storage};
use crate::tenant::TenantSet;
use pki::ocsp::{CertStatus, OcspError, OcspQuery};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Semaphore;

/// Most CRL or OCSP signatures made at once, over all CAs; the rest wait. Each is well under
/// a millisecond in software and 5–50 ms on a network HSM.
pub const MAX_STATUS_SIGNINGS: usize = 4;

/// Most signed OCSP answers kept. Anyone can send distinct requests, so the cache is bounded;
/// beyond it answers are signed and not kept until entries go stale.
pub const MAX_CACHED_OCSP: usize = 10_000;

/// Bytes the CA signed, ready to serve.
#[derive(Clone, Debug)]
pub struct SignedBytes {
    /// The DER (a CRL).
    pub der: Vec<u8>,
    /// thisUpdate (UNIX seconds).
    pub this_update: i64,
    /// nextUpdate (UNIX seconds).
    pub next_update: i64,
}

impl From<CrlRecord> for SignedBytes {
    fn from(c: CrlRecord) -> Self {
        Self {
            der: c.der,
            this_update: c.this_update,
            next_update: c.next_update,
        }
    }
}

/// A signed OCSP answer and what it was signed for.
struct CachedOcsp {
    ca: Weak<IssuingCa>,
    responder: Option<Weak<OcspResponder>>,
    statuses: Vec<CertStatus>,
    answer: OcspAnswer,
    /// When it must be re-signed: half its validity. BR §4.9.10 asks responses valid for 16
    /// hours or more to be updated before half their validity has passed.
    refresh_at: i64,
}

type OcspKey = (String, Vec<u8>);

struct Publisher {
    tenants: Arc<TenantSet>,
    sa: Arc<dyn Storage>,
    lifecycle: Option<Arc<dyn LifecycleStore>>,
    clock: Arc<dyn Clock>,
    signing: Semaphore,
    ocsp: Mutex<HashMap<OcspKey, CachedOcsp>>,
}

/// What the front end holds: asks the CA side for signed CRLs and OCSP answers.
#[derive(Clone)]
pub struct StatusHandle {
    inner: Arc<Publisher>,
}

impl StatusHandle {
    /// The publisher for the CAs of `tenants` (as reloaded over time), reading certificate
    /// status from `sa` and shard CRLs from `lifecycle` (shard CRLs are not served without it).
    pub fn start(
        tenants: Arc<TenantSet>,
        sa: Arc<dyn Storage>,
        lifecycle: Option<Arc<dyn LifecycleStore>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Publisher {
                tenants,
                sa,
                lifecycle,
                clock,
                signing: Semaphore::new(MAX_STATUS_SIGNINGS),
                ocsp: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The issuing CA, active or retired, with id `id`; a disabled tenant's CAs still answer
    /// for the certificates they issued.
    fn issuing_ca(&self, id: &str) -> Option<Arc<IssuingCa>> {
        self.inner
            .tenants
            .all()
            .into_iter()
            .find_map(|t| t.issuer(id).cloned())
    }

    /// The root's CRL, when fleetca made the root (signed offline by `fleetca root sign-crl`).
    pub fn root_crl(&self) -> Option<Vec<u8>> {
        self.inner
            .tenants
            .all()
            .iter()
            .find_map(|t| t.ca.root_crl())
    }

    /// The current full CRL of CA `id`, re-signed first when half its validity has passed.
    pub async fn crl(&self, id: &str) -> Result<SignedBytes> {
        let ca = self.issuing_ca(id).ok_or_else(|| Error::not_found("CRL"))?;
        let p = Arc::clone(&self.inner);
        let _permit = self.permit().await?;
        let c = Arc::clone(&ca);
        let rec = on_signing_thread(&ca, async move {
            c.current_crl(p.sa.as_ref(), p.clock.as_ref()).await
        })
        .await??;
        Ok(rec.into())
    }

    /// The current CRL of shard `shard` of CA `id` (see [`super::crl_shard`]).
    pub async fn shard_crl(&self, id: &str, shard: u32) -> Result<SignedBytes> {
        let ca = self.issuing_ca(id).ok_or_else(|| Error::not_found("CRL"))?;
        let store = self
            .inner
            .lifecycle
            .clone()
            .ok_or_else(|| Error::not_found("CRL"))?;
        let clock = Arc::clone(&self.inner.clock);
        let _permit = self.permit().await?;
        let c = Arc::clone(&ca);
        let rec = on_signing_thread(&ca, async move {
            c.current_shard_crl(store.as_ref(), clock.as_ref(), shard)
                .await
        })
        .await??;
        Ok(rec.into())
    }

    /// The answer of CA `id` to a DER OCSPRequest: a signed response, or an OCSP error
    /// response (`malformedRequest`, `unauthorized`, `tryLater`, `internalError`). Not found
    /// when no loaded CA has that id.
    pub async fn ocsp(&self, id: &str, request_der: &[u8]) -> Result<OcspAnswer> {
        let ca = self
            .issuing_ca(id)
            .ok_or_else(|| Error::not_found("OCSP responder"))?;
        let answer = self.try_ocsp(&ca, request_der).await;
        Ok(ca.ocsp_outcome(answer))
    }

    async fn try_ocsp(
        &self,
        ca: &Arc<IssuingCa>,
        request_der: &[u8],
    ) -> std::result::Result<OcspAnswer, OcspError> {
        let p = &self.inner;
        let (query, statuses) = ca.ocsp_statuses(p.sa.as_ref(), request_der).await?;
        let key = (ca.id().to_owned(), request_der.to_vec());
        let responder = ca.ocsp_responder();
        if !query.has_nonce() {
            if let Some(a) = p.cached(&key, ca, responder.as_ref(), &statuses) {
                return Ok(a);
            }
        }
        let answer = self.sign_ocsp(ca, query, statuses.clone()).await?;
        if answer.cacheable {
            p.remember(key, ca, responder.as_ref(), statuses, &answer);
        }
        Ok(answer)
    }

    async fn sign_ocsp(
        &self,
        ca: &Arc<IssuingCa>,
        query: OcspQuery,
        statuses: Vec<CertStatus>,
    ) -> std::result::Result<OcspAnswer, OcspError> {
        let _permit = self
            .inner
            .signing
            .acquire()
            .await
            .map_err(|_| OcspError::Internal("the signing pool is closed".into()))?;
        let now = self.inner.clock.now();
        if !ca.signer_blocks() {
            return ca.sign_ocsp(&query, &statuses, now);
        }
        let ca = Arc::clone(ca);
        tokio::task::spawn_blocking(move || ca.sign_ocsp(&query, &statuses, now))
            .await
            .map_err(|e| OcspError::Internal(format!("the signing task failed: {e}")))?
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.inner
            .signing
            .acquire()
            .await
            .map_err(|_| Error::internal("the signing pool is closed"))
    }
}

impl Publisher {
    /// A kept answer still true for `statuses`, signed by the same CA and responder.
    fn cached(
        &self,
        key: &OcspKey,
        ca: &Arc<IssuingCa>,
        responder: Option<&Arc<OcspResponder>>,
        statuses: &[CertStatus],
    ) -> Option<OcspAnswer> {
        let now = self.clock.unix();
        let cache = self.ocsp.lock().unwrap_or_else(|e| e.into_inner());
        let e = cache.get(key)?;
        let same_responder = match (&e.responder, responder) {
            (None, None) => true,
            (Some(w), Some(r)) => std::ptr::eq(w.as_ptr(), Arc::as_ptr(r)),
            _ => false,
        };
        (std::ptr::eq(e.ca.as_ptr(), Arc::as_ptr(ca))
            && same_responder
            && e.statuses == statuses
            && now < e.refresh_at)
            .then(|| e.answer.clone())
    }

    fn remember(
        &self,
        key: OcspKey,
        ca: &Arc<IssuingCa>,
        responder: Option<&Arc<OcspResponder>>,
        statuses: Vec<CertStatus>,
        answer: &OcspAnswer,
    ) {
        let (Some(this), Some(next)) = (answer.this_update, answer.next_update) else {
            return;
        };
        let now = self.clock.unix();
        let mut cache = self.ocsp.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_OCSP && !cache.contains_key(&key) {
            cache.retain(|_, e| now < e.refresh_at && e.ca.strong_count() > 0);
            if cache.len() >= MAX_CACHED_OCSP {
                return;
            }
        }
        cache.insert(
            key,
            CachedOcsp {
                ca: Arc::downgrade(ca),
                responder: responder.map(Arc::downgrade),
                statuses,
                answer: answer.clone(),
                refresh_at: this + (next - this) / 2,
            },
        );
    }
}

/// Runs `work` (storage reads around one signature) on the blocking pool when `ca`'s signer
/// blocks (an HSM), so the token's round trip does not hold a runtime worker; inline otherwise.
async fn on_signing_thread<T, F>(ca: &IssuingCa, work: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    if !ca.signer_blocks() {
        return Ok(work.await);
    }
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || rt.block_on(work))
        .await
        .map_err(|e| Error::internal(format!("the signing task failed: {e}")))
}

#[cfg(test)]
mod tests;
