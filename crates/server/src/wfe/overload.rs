//! Overload protection for the expensive endpoints (newOrder, finalize, challenge POSTs): at
//! most `max_in_flight` of them run at once; a few more may wait briefly for a slot, and the
//! rest are refused at once with 503 and `Retry-After` instead of queueing without bound (a
//! queue that grows faster than it drains only adds latency until every client times out).
//!
//! The refusal is a `serverInternal` problem with status 503: RFC 8555 §6.7 has no
//! "unavailable" type, and `rateLimited` (§6.6) tells a client *it* exceeded a limit, which
//! some clients treat as "stop for hours". A 503 with `Retry-After` is what HTTP (RFC 9110
//! §15.6.4) and ACME clients already treat as "come back shortly". Directory, newNonce and
//! renewalInfo are routed outside this gate so devices can always learn when to come back.

use crate::error::Error;
use acme_types::problem::ProblemType;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

static SHED: AtomicU64 = AtomicU64::new(0);

/// Requests refused with 503 by the overload gate since the process started (for
/// `/metrics`: `fleetca_overload_shed_total`).
pub fn shed_total() -> u64 {
    SHED.load(Ordering::Relaxed)
}

/// The gate in front of the expensive endpoints.
pub struct Overload {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    wait: Duration,
}

impl Overload {
    /// At most `max_in_flight` requests run; up to `max_waiting` more wait at most `wait`.
    pub fn new(max_in_flight: usize, max_waiting: usize, wait: Duration) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            max_in_flight: max_in_flight.max(1),
            waiting: AtomicUsize::new(0),
            max_waiting,
            wait,
        })
    }

    /// Expensive requests running now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.permits.available_permits()
    }

    fn refuse() -> Response {
        SHED.fetch_add(1, Ordering::Relaxed);
        crate::metrics::overload_shed();
        // 1-3 s, spread so that a refused burst does not come back as one burst.
        let secs = 1 + u64::from(rand::random::<u8>() % 3);
        Error::acme(
            ProblemType::ServerInternal,
            "the server is overloaded; retry after the Retry-After delay",
        )
        .with_status(503)
        .with_retry_after(secs)
        .into_response()
    }
}

/// Middleware: runs the request with a permit, or refuses it with 503 + `Retry-After`.
pub(crate) async fn gate(State(o): State<Arc<Overload>>, req: Request, next: Next) -> Response {
    let permit = match o.permits.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            // A short, bounded wait absorbs bursts; beyond it the client is told to come back.
            if o.waiting.fetch_add(1, Ordering::SeqCst) >= o.max_waiting {
                o.waiting.fetch_sub(1, Ordering::SeqCst);
                return Overload::refuse();
            }
            let r = tokio::time::timeout(o.wait, o.permits.clone().acquire_owned()).await;
            o.waiting.fetch_sub(1, Ordering::SeqCst);
            match r {
                Ok(Ok(p)) => p,
                _ => return Overload::refuse(),
            }
        }
    };
    let resp = next.run(req).await;
    drop(permit);
    resp
}
