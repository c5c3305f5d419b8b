//! The CA's status publisher: the only way the front end gets CRLs (RFC 5280 §5) and OCSP
//! answers (RFC 6960). The CA side signs them and keeps what it signed; the front end holds a
//! [`StatusHandle`], which can ask for signed bytes and nothing else — it has no way to a
//! signer, so a bug or a hostile request in the HTTP layer cannot make the CA sign anything
//! other than a CRL or an OCSP answer for what storage says.
//!
//! - Full and shard CRLs are stored; they are re-signed when half their validity has passed
//!   and, for a shard, when its revoked set changed (see [`super::crl_shard`]). A revocation
//!   does not sign: the RA *asks* through [`CrlRequests`], and the publisher re-signs the full
//!   CRLs asked for in rounds at most [`CRL_PUBLISH_INTERVAL`] apart, so a burst of
//!   revocations costs a bounded number of signatures (about one per CA per interval) and a
//!   revoked serial is on the served CRL within that interval plus one signature. A fetch of
//!   a CRL with a round due waits for it (bounded), so this node never serves a CRL older
//!   than a revocation it answered.
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
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};

/// Most CRL or OCSP signatures made at once, over all CAs; the rest wait. Each is well under
/// a millisecond in software and 5–50 ms on a network HSM.
pub const MAX_STATUS_SIGNINGS: usize = 4;

/// Most signed OCSP answers kept. Anyone can send distinct requests, so the cache is bounded;
/// beyond it answers are signed and not kept until entries go stale.
pub const MAX_CACHED_OCSP: usize = 10_000;

/// Shortest time between two rounds of requested full-CRL signatures. BR §4.9.7 allows up to
/// 24 hours between a revocation and the CRL that lists it; a second keeps the CRL current
/// while a burst of N revocations costs one signature per CA per second instead of N.
pub const CRL_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Longest a CRL fetch waits for a due round before serving the stored CRL (a slow or
/// unavailable signer must not hold fetches for long).
const CRL_FETCH_WAIT: Duration = Duration::from_secs(5);

/// Requests to re-sign full CRLs: the RA asks after a revocation, the status publisher signs.
/// Cheap to clone; every clone is the same queue.
#[derive(Clone)]
pub struct CrlRequests {
    inner: Arc<Requests>,
}

struct Requests {
    state: Mutex<RequestState>,
    /// Wakes the publisher; a wake-up sent while it is busy is kept for its next wait.
    wake: Notify,
    /// The last round finished.
    published: watch::Sender<u64>,
}

#[derive(Default)]
struct RequestState {
    /// CA ids asked for since the last round started.
    pending: BTreeSet<String>,
    /// CA ids the round under way signs.
    in_flight: BTreeSet<String>,
    /// Rounds started.
    round: u64,
}

impl Default for CrlRequests {
    fn default() -> Self {
        Self {
            inner: Arc::new(Requests {
                state: Mutex::default(),
                wake: Notify::new(),
                published: watch::channel(0).0,
            }),
        }
    }
}

impl CrlRequests {
    /// Asks for the full CRL of CA `ca_id` to be re-signed in the publisher's next round.
    pub fn request(&self, ca_id: &str) {
        self.state().pending.insert(ca_id.to_owned());
        self.inner.wake.notify_one();
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RequestState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The round whose end publishes everything asked for `ca_id` so far, if one is due.
    fn due(&self, ca_id: &str) -> Option<u64> {
        let st = self.state();
        if st.pending.contains(ca_id) {
            Some(st.round + 1)
        } else if st.in_flight.contains(ca_id) {
            Some(st.round)
        } else {
            None
        }
    }

    /// Waits (at most [`CRL_FETCH_WAIT`]) until round `round` has finished.
    async fn published(&self, round: u64) {
        let mut rx = self.inner.published.subscribe();
        let _ = tokio::time::timeout(CRL_FETCH_WAIT, rx.wait_for(|r| *r >= round)).await;
    }

    /// Starts a round: the CA ids it signs.
    fn start_round(&self) -> Vec<String> {
        let mut st = self.state();
        st.round += 1;
        st.in_flight = std::mem::take(&mut st.pending);
        st.in_flight.iter().cloned().collect()
    }

    fn end_round(&self) {
        let round = {
            let mut st = self.state();
            st.in_flight.clear();
            st.round
        };
        self.inner.published.send_replace(round);
    }
}

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
    requests: CrlRequests,
}

/// What the front end holds: asks the CA side for signed CRLs and OCSP answers.
#[derive(Clone)]
pub struct StatusHandle {
    inner: Arc<Publisher>,
}

impl StatusHandle {
    /// The publisher for the CAs of `tenants` (as reloaded over time), reading certificate
    /// status from `sa` and shard CRLs from `lifecycle` (shard CRLs are not served without it),
    /// and re-signing the full CRLs asked for through `requests` (see [`CrlRequests`]). Starts
    /// the task that does so; it ends at its first wake-up after the last handle is dropped.
    pub fn start(
        tenants: Arc<TenantSet>,
        sa: Arc<dyn Storage>,
        lifecycle: Option<Arc<dyn LifecycleStore>>,
        clock: Arc<dyn Clock>,
        requests: CrlRequests,
    ) -> Self {
        let inner = Arc::new(Publisher {
            tenants,
            sa,
            lifecycle,
            clock,
            signing: Semaphore::new(MAX_STATUS_SIGNINGS),
            ocsp: Mutex::new(HashMap::new()),
            requests: requests.clone(),
        });
        tokio::spawn(publish_requested(Arc::downgrade(&inner), requests));
        Self { inner }
    }

    /// Re-signs and stores the full CRL of CA `id`, if it is loaded.
    async fn publish_crl(&self, id: &str) -> Result<()> {
        let Some(ca) = self.issuing_ca(id) else {
            return Ok(());
        };
        let p = Arc::clone(&self.inner);
        let _permit = self.permit().await?;
        let c = Arc::clone(&ca);
        on_signing_thread(&ca, async move {
            c.publish_crl(p.sa.as_ref(), p.clock.as_ref()).await
        })
        .await??;
        Ok(())
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
    /// A round due for it (a revocation on this node) is waited for first.
    pub async fn crl(&self, id: &str) -> Result<SignedBytes> {
        let ca = self.issuing_ca(id).ok_or_else(|| Error::not_found("CRL"))?;
        if let Some(round) = self.inner.requests.due(id) {
            self.inner.requests.published(round).await;
        }
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

/// The publisher's rounds: waits for a request, re-signs every full CRL asked for since the
/// last round, then rests [`CRL_PUBLISH_INTERVAL`] so requests meanwhile share the next round.
/// A CRL that could not be signed (the CA key unavailable) is asked for again.
async fn publish_requested(publisher: Weak<Publisher>, requests: CrlRequests) {
    loop {
        requests.inner.wake.notified().await;
        let Some(inner) = publisher.upgrade() else {
            return;
        };
        let handle = StatusHandle { inner };
        for id in requests.start_round() {
            if let Err(e) = handle.publish_crl(&id).await {
                tracing::error!(issuer = %id, error = %e, "re-signing the CRL after a revocation failed; retrying");
                requests.request(&id);
            }
        }
        requests.end_round();
        drop(handle);
        tokio::time::sleep(CRL_PUBLISH_INTERVAL).await;
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
