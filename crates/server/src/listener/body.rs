//! Body wrappers of the connection service: a request body must arrive completely within the
//! body-read timeout (a deadline for the whole body, not per chunk, so a byte every few seconds
//! does not keep it alive), and a response counts as work in progress on its connection until
//! its body is sent or dropped (see `Activity`).

use super::Busy;
use axum::body::{Body, Bytes, HttpBody};
use hyper::body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The error a request body yields once its deadline has passed.
#[derive(Debug)]
pub(super) struct BodyTimedOut(pub(super) Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body not received within {} s", self.0.as_secs())
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body that fails with [`BodyTimedOut`] if it is not complete by its deadline.
pub(super) struct DeadlineBody {
    inner: Body,
    timeout: Duration,
    deadline: tokio::time::Instant,
    /// Made the first time the body has to wait: most bodies arrive with their head and never
    /// need a timer.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    /// `inner` must be complete within `timeout` from now; `expired` is set when it is not.
    pub(super) fn new(inner: Body, timeout: Duration, expired: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
            sleep: None,
            expired,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // What has arrived is delivered even after the deadline: the deadline is on waiting.
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(this.deadline)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => {
                    this.expired.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(BodyTimedOut(this.timeout).into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its connection's request counted as in progress until it is
/// sent completely or dropped.
pub(super) struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl TrackedBody {
    pub(super) fn new(inner: Body, busy: Busy) -> Self {
        Self { inner, _busy: busy }
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that sends nothing and never ends.
    struct Stalled;

    impl HttpBody for Stalled {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_at_the_deadline_and_a_complete_one_passes() {
        let expired = Arc::new(AtomicBool::new(false));
        let b = DeadlineBody::new(
            Body::new(Stalled),
            Duration::from_millis(50),
            expired.clone(),
        );
        let err = b.collect().await.expect_err("deadline error");
        assert!(
            err.to_string().contains("request body not received"),
            "{err}"
        );
        assert!(expired.load(Ordering::Relaxed));

        let expired = Arc::new(AtomicBool::new(false));
        let b = DeadlineBody::new(
            Body::from("complete"),
            Duration::from_secs(5),
            expired.clone(),
        );
        assert_eq!(b.collect().await.unwrap().to_bytes(), "complete");
        assert!(!expired.load(Ordering::Relaxed));
    }
}
