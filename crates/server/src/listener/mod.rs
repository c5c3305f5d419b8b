//! Serving HTTP connections on every listener of `fleetca serve` (ACME HTTPS, plain HTTP for
//! CRLs/OCSP/CA certificates, admin) so that no client can hold one open: the accept loop
//! applies the connection caps ([`limits`]), the TLS handshake has a deadline, HTTP/1 request
//! heads have hyper's header-read timeout, request bodies a deadline (`body`), and a
//! watchdog closes connections with no request in progress. Graceful shutdown (drain): accepting
//! stops after the connections already queued, requests in progress get `--drain-timeout` and
//! close their connection after their response, idle connections answer one more request
//! within a short grace and then close.
//! The sockets come from [`sockets`] (socket activation or `SO_REUSEPORT`).

mod body;
pub mod limits;
pub mod nofile;
pub mod sockets;

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Version};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use limits::{ConnectionLimits, ConnectionPermit};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

/// The timeouts every listener applies (`serve --header-read-timeout` and friends).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// An HTTP/1 request head (request line and headers) must be complete within this, counted
    /// from when the connection is ready for it; this also closes an HTTP/1 keep-alive
    /// connection that sends no new request. The first request on any connection (HTTP/1 or
    /// HTTP/2) must begin within it too.
    pub header_read: Duration,
    /// The TLS handshake must finish within this.
    pub tls_handshake: Duration,
    /// A connection with no request in progress is closed after this (HTTP/2 connections,
    /// whose pings would otherwise keep them alive forever, and HTTP/1 ones between requests
    /// when `header_read` is longer).
    pub idle: Duration,
    /// A request body must arrive completely within this from the end of its head.
    pub body_read: Duration,
    /// Once shutdown begins (SIGTERM), requests in progress may take this long to finish
    /// (`serve --drain-timeout`).
    pub drain: Duration,
}

/// HTTP/2 keep-alive: a PING after this much silence, and the connection closed if the answer
/// takes longer than [`H2_PING_TIMEOUT`] (a peer that vanished without a FIN).
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams one HTTP/2 connection may have open at once (hyper's default is 200); ACME clients
/// use a handful.
const H2_MAX_STREAMS: u32 = 64;
/// Once shutdown begins, how long an idle keep-alive connection stays open: a client's next
/// request on it is answered (with `Connection: close`) instead of racing the close, which
/// would cost the client a request that may not be safe to repeat (RFC 9112 §9.3.1).
const IDLE_DRAIN_GRACE: Duration = Duration::from_secs(1);
/// How long a connection closed for a timeout may take to say goodbye (an HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (out of descriptors, say) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What the listeners share: the timeouts, the shutdown signal, and a connection budget.
#[derive(Clone)]
pub struct Serving {
    timeouts: Timeouts,
    limits: Arc<ConnectionLimits>,
    shutdown: watch::Receiver<bool>,
}

/// Starts the shutdown of every listener made from the [`Serving`] it came with.
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    /// Stops accepting, closes idle connections, and lets requests in progress finish.
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

impl Serving {
    /// Listeners with `timeouts`, drawing on `limits`.
    pub fn new(timeouts: Timeouts, limits: Arc<ConnectionLimits>) -> (Self, ShutdownTrigger) {
        let (tx, rx) = watch::channel(false);
        (
            Self {
                timeouts,
                limits,
                shutdown: rx,
            },
            ShutdownTrigger(tx),
        )
    }

    /// The same settings with a budget of their own (the admin listener's, so that a flood on
    /// the public listeners cannot lock the operator out).
    pub fn with_limits(&self, limits: Arc<ConnectionLimits>) -> Self {
        Self {
            limits,
            ..self.clone()
        }
    }

    /// Serves `app` on `listener` (over TLS with `tls`) until shutdown, as the listener named
    /// `name` in metrics and logs; the task ends once its connections have closed or the grace
    /// period has passed.
    pub fn spawn(
        &self,
        name: &'static str,
        listener: TcpListener,
        app: Router,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> tokio::task::JoinHandle<()> {
        let serving = self.clone();
        tokio::spawn(async move { serving.accept_loop(name, listener, app, tls).await })
    }

    async fn accept_loop(
        mut self,
        name: &'static str,
        listener: TcpListener,
        app: Router,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        let tls = tls.map(tokio_rustls::TlsAcceptor::from);
        let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.timeouts.header_read)
            .keep_alive(true);
        http.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .max_concurrent_streams(H2_MAX_STREAMS);
        let http = Arc::new(http);
        // Each connection task holds a sender; when all are gone, every connection has closed.
        let (alive, mut all_closed) = mpsc::channel::<()>(1);
        let mut stopping = false;
        loop {
            let accepted = if stopping {
                // Connections the kernel completed before the stop are served, not reset
                // when the socket closes (with SO_REUSEPORT each process has its own queue).
                match tokio::time::timeout(Duration::ZERO, listener.accept()).await {
                    Ok(a) => a,
                    Err(_) => break,
                }
            } else {
                tokio::select! {
                    a = listener.accept() => a,
                    _ = shutdown_requested(&mut self.shutdown) => {
                        stopping = true;
                        continue;
                    }
                }
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let permit = match self.limits.try_acquire(peer.ip()) {
                Ok(p) => p,
                Err(refusal) => {
                    crate::metrics::connection_refused(name, refusal.as_str());
                    tracing::debug!(listener = name, %peer, reason = refusal.as_str(), "connection refused by cap");
                    // Dropping the stream closes it before anything is read.
                    drop(tcp);
                    continue;
                }
            };
            let conn = Conn {
                name,
                peer,
                timeouts: self.timeouts,
                app: app.clone(),
                http: Arc::clone(&http),
                shutdown: self.shutdown.clone(),
                _permit: Gauge::open(name, permit),
                _alive: alive.clone(),
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                let Some(tls) = tls else {
                    return conn.serve(tcp).await;
                };
                match tokio::time::timeout(conn.timeouts.tls_handshake, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => conn.serve(stream).await,
                    Ok(Err(e)) => {
                        tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => crate::metrics::connection_timed_out(name, "tls_handshake"),
                }
            });
        }
        drop(listener);
        drop(alive);
        let _ = tokio::time::timeout(self.timeouts.drain, all_closed.recv()).await;
    }
}

/// Resolves once shutdown is triggered; never if the trigger is gone without triggering.
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Keeps `fleetca_connections_open{listener}` and the connection budget while it lives.
struct Gauge {
    name: &'static str,
    _permit: ConnectionPermit,
}

impl Gauge {
    fn open(name: &'static str, permit: ConnectionPermit) -> Self {
        crate::metrics::connection_opened(name);
        Self {
            name,
            _permit: permit,
        }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        crate::metrics::connection_closed(self.name);
    }
}

/// Requests in progress on one connection, and since when it has had none.
struct Activity {
    busy: AtomicUsize,
    served_any: AtomicBool,
    idle_since: Mutex<Instant>,
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            busy: AtomicUsize::new(0),
            served_any: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            changed: Notify::new(),
        })
    }

    /// When the watchdog closes the connection, and under which timeout, if nothing starts
    /// before; `None` while a request is in progress.
    fn idle_deadline(&self, t: &Timeouts) -> Option<(Instant, &'static str)> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        Some(if self.served_any.load(Ordering::Acquire) {
            (since + t.idle, "idle")
        } else {
            (since + t.header_read, "header_read")
        })
    }
}

/// One request in progress; dropping it (response sent, or abandoned) may make the
/// connection idle.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(a: &Arc<Activity>) -> Self {
        // Busy first: the watchdog must never see "served a request, none in progress" with
        // the idle clock of the time before it.
        a.busy.fetch_add(1, Ordering::AcqRel);
        a.served_any.store(true, Ordering::Release);
        a.changed.notify_one();
        Self(Arc::clone(a))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The idle clock restarts before the count can reach zero, for the same reason.
        // While other requests are still in progress the stamp is not read, and the last one
        // to finish stamps it again.
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

/// One accepted connection.
struct Conn {
    name: &'static str,
    peer: SocketAddr,
    timeouts: Timeouts,
    app: Router,
    http: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    shutdown: watch::Receiver<bool>,
    _permit: Gauge,
    _alive: mpsc::Sender<()>,
}

impl Conn {
    async fn serve<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let svc = {
            let (app, activity, peer, timeouts, name) = (
                self.app.clone(),
                Arc::clone(&activity),
                self.peer,
                self.timeouts,
                self.name,
            );
            hyper::service::service_fn(move |req: Request<Incoming>| {
                handle(
                    app.clone(),
                    Arc::clone(&activity),
                    peer,
                    timeouts,
                    name,
                    req,
                )
            })
        };
        let conn = self.http.serve_connection(TokioIo::new(io), svc);
        tokio::pin!(conn);
        let mut draining = false;
        // Set when shutdown begins: until then an idle connection stays open (see
        // `IDLE_DRAIN_GRACE`); a request in progress, or one starting meanwhile, is answered
        // with `Connection: close` (HTTP/1) or a GOAWAY (HTTP/2) follows it.
        let mut lame_until: Option<Instant> = None;
        // Set once a timeout has passed: the connection is asked to close politely (HTTP/2
        // GOAWAY, so clients do not send on a closing connection) and dropped at this instant
        // if it has not.
        let mut closing: Option<Instant> = None;
        loop {
            if let (Some(until), false) = (lame_until, draining) {
                if activity.busy.load(Ordering::Acquire) > 0 || Instant::now() >= until {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            let idle = activity.idle_deadline(&self.timeouts);
            if draining && closing.is_none() && idle.is_some() {
                // Shutting down and nothing in progress: say goodbye, briefly.
                closing = Some(Instant::now() + CLOSE_GRACE);
            }
            let wake = match (closing, idle) {
                (Some(at), _) => at,
                (None, Some((at, _))) => at,
                (None, None) => Instant::now() + self.timeouts.idle,
            };
            let wake = match lame_until {
                Some(until) if !draining => wake.min(until),
                _ => wake,
            };
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        let timed_out = e
                            .downcast_ref::<hyper::Error>()
                            .is_some_and(hyper::Error::is_timeout);
                        if timed_out {
                            crate::metrics::connection_timed_out(self.name, "header_read");
                        } else {
                            tracing::debug!(listener = self.name, peer = %self.peer, error = %e, "connection ended with an error");
                        }
                    }
                    return;
                }
                _ = shutdown_requested(&mut self.shutdown), if !draining && lame_until.is_none() => {
                    lame_until = Some(Instant::now() + IDLE_DRAIN_GRACE);
                }
                // A request starting or finishing moves the deadline.
                _ = activity.changed.notified() => {}
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    match (closing, activity.idle_deadline(&self.timeouts)) {
                        // Dropping the connection closes the socket.
                        (Some(at), _) if now >= at => return,
                        (None, Some((at, phase))) if now >= at => {
                            crate::metrics::connection_timed_out(self.name, phase);
                            closing = Some(now + CLOSE_GRACE);
                            if !draining {
                                draining = true;
                                conn.as_mut().graceful_shutdown();
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// One request: the peer address for the handlers (rate limits), the body deadline, and the
/// request counted as in progress until its response body is done.
async fn handle(
    app: Router,
    activity: Arc<Activity>,
    peer: SocketAddr,
    timeouts: Timeouts,
    listener: &'static str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let busy = Busy::new(&activity);
    let version = req.version();
    let expired = Arc::new(AtomicBool::new(false));
    let mut req = req.map(|b| {
        if b.is_end_stream() {
            // No body (a GET, say): nothing to wait for.
            Body::new(b)
        } else {
            Body::new(body::DeadlineBody::new(
                Body::new(b),
                timeouts.body_read,
                Arc::clone(&expired),
            ))
        }
    });
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = match app.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let resp = if expired.load(Ordering::Relaxed) {
        crate::metrics::connection_timed_out(listener, "body_read");
        body_timed_out(timeouts.body_read, version)
    } else {
        resp
    };
    Ok(resp.map(|b| Body::new(body::TrackedBody::new(b, busy))))
}

/// What a client whose body stopped arriving gets, whatever the handler made of the broken
/// body: 408 (RFC 9110 §15.5.9) as an RFC 7807 problem, and on HTTP/1 the connection closed
/// after it (the rest of the body will not be read).
fn body_timed_out(timeout: Duration, version: Version) -> Response<Body> {
    let detail = body::BodyTimedOut(timeout).to_string();
    let doc = serde_json::json!({
        "type": "urn:ietf:params:acme:error:malformed",
        "detail": detail,
        "status": 408,
    });
    let mut resp = Response::new(Body::from(doc.to_string()));
    *resp.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if version < Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
