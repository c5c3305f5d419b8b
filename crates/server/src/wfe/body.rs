//! Reading a signed POST's body under the size limit, and refusing an oversized one so that the
//! client actually receives the refusal.
//!
//! Answering 413 and closing while the client is still sending makes the client's next write
//! fail with a broken pipe or a reset, and most HTTP clients then report a connection error and
//! never read the 413 problem document. Like a web server's lingering close, the rest of an
//! oversized body is therefore read and dropped, up to [`DRAIN_BYTES`], before the answer goes
//! out. The listener's body deadline bounds how long that can take; a body announced larger than
//! [`DRAIN_BYTES`] is refused without reading it.

use axum::body::{Body, Bytes, HttpBody};
use http_body_util::BodyExt;

/// The most of an oversized body read (and dropped) before the 413 answer.
pub(crate) const DRAIN_BYTES: usize = 1024 * 1024;

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Larger than the limit (announced or sent).
    TooLarge,
    /// The client stopped sending, or the body missed its deadline.
    Unreadable,
}

/// Reads `body` whole if it is at most `limit` bytes.
pub(crate) async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let announced = body.size_hint().exact();
    if announced.is_some_and(|n| n > limit as u64) {
        drain(body, announced).await;
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drain(body, None).await;
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads and drops the rest of `body`, at most [`DRAIN_BYTES`] of it; nothing if it is
/// announced larger than that (reading part of it would not save the client's write).
async fn drain(mut body: Body, announced: Option<u64>) {
    if announced.is_some_and(|n| n > DRAIN_BYTES as u64) {
        return;
    }
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            read += data.len();
            if read > DRAIN_BYTES {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::{Frame, SizeHint};
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    /// `chunks` chunks of `size` bytes; counts how many were taken.
    struct Chunks {
        left: usize,
        size: usize,
        announce: bool,
        taken: Arc<AtomicUsize>,
    }

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let this = self.get_mut();
            if this.left == 0 {
                return Poll::Ready(None);
            }
            this.left -= 1;
            this.taken.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'a'; this.size])))))
        }

        fn size_hint(&self) -> SizeHint {
            if self.announce {
                SizeHint::with_exact((self.left * self.size) as u64)
            } else {
                SizeHint::default()
            }
        }
    }

    fn body(chunks: usize, size: usize, announce: bool) -> (Body, Arc<AtomicUsize>) {
        let taken = Arc::new(AtomicUsize::new(0));
        let b = Chunks {
            left: chunks,
            size,
            announce,
            taken: taken.clone(),
        };
        (Body::new(b), taken)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        for announce in [true, false] {
            let (b, _) = body(4, 1000, announce);
            assert_eq!(read_limited(b, 4000).await.unwrap().len(), 4000);
        }
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_after_reading_the_rest_of_it() {
        // 200 KiB against a 64 KiB limit, announced (Content-Length) or not (chunked): the
        // client's whole body is consumed so its writes complete and it reads the 413.
        for announce in [true, false] {
            let (b, taken) = body(50, 4096, announce);
            assert_eq!(read_limited(b, 64 * 1024).await, Err(BodyError::TooLarge));
            assert_eq!(taken.load(Ordering::SeqCst), 50, "announce={announce}");
        }
    }

    #[tokio::test]
    async fn draining_stops_at_its_bound() {
        // Announced beyond the drain bound: not read at all.
        let (b, taken) = body(1024, 4096, true);
        assert_eq!(read_limited(b, 64 * 1024).await, Err(BodyError::TooLarge));
        assert_eq!(taken.load(Ordering::SeqCst), 0);
        // Not announced: read until the limit and then the drain bound are passed, no further.
        let (b, taken) = body(1024, 4096, false);
        assert_eq!(read_limited(b, 64 * 1024).await, Err(BodyError::TooLarge));
        let read = taken.load(Ordering::SeqCst) * 4096;
        assert!(
            read > DRAIN_BYTES && read <= 64 * 1024 + DRAIN_BYTES + 2 * 4096,
            "{read}"
        );
    }
}
