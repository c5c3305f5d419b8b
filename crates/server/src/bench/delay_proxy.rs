//! `fleetca delay-proxy` (hidden; benchmark and test tooling, never used by `serve`): a TCP
//! proxy that adds a fixed round-trip time between two peers, for kernels without `tc netem`
//! (`scripts/bench-postgres` puts it between `fleetca serve` and PostgreSQL).
//!
//! Every chunk read from one side is stamped `read_time + delay/2` and written to the other
//! side no earlier than that, in order. Each direction has a reader and a writer joined by a
//! channel, so chunks in flight wait concurrently: a pipelined stream sees a one-way delay of
//! delay/2, not delay/2 per chunk queued (as on a real link of that latency).
//!
//! Why threads and not tokio tasks: tokio's timer wheel has a 1 ms resolution and rounds every
//! sleep up to the next tick, so a 0.25 ms one-way delay would come out at 1-2 ms and the
//! 0.5 ms point of the curve would not be 0.5 ms. `std::thread::sleep` is a `nanosleep` on an
//! hrtimer (Linux timer slack 50 µs), which keeps the error well under 0.1 ms without spinning
//! a CPU the benchmark needs. Four threads per connection is cheap at the connection counts of
//! a database pool, and the connection cap bounds it.
//!
//! No timeouts of its own: the proxy stands in for a network path, and a network path does not
//! end idle connections; the peers' timeouts (sqlx's pool, PostgreSQL's keepalives) apply
//! through it unchanged. An end of stream from one side is forwarded (after the data before
//! it) as a half-close to the other; an error on either socket closes both sockets in both
//! directions, so neither peer is left waiting on a dead path.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many proxied connections at once; more are accepted and closed at once, so a
/// bug in a peer cannot exhaust file descriptors or threads.
pub const MAX_CONNECTIONS: usize = 256;

/// Largest chunk read at a time.
const CHUNK: usize = 16 * 1024;

/// Chunks in flight per direction before the reader waits (backpressure: at most
/// `CHUNK * QUEUE` bytes buffered per direction).
const QUEUE: usize = 256;

/// Stack of the per-connection threads: they only copy bytes.
const STACK: usize = 64 * 1024;

/// Longest delay accepted: the proxy is for latency curves, not for outages.
const MAX_DELAY_MS: f64 = 10_000.0;

/// `fleetca delay-proxy` options.
#[derive(Debug, clap::Args, Clone)]
pub struct DelayProxyArgs {
    /// Address to accept connections on (port 0: any free port; the bound address is printed).
    #[arg(long, value_parser = crate::commands::parse_socket)]
    pub listen: SocketAddr,
    /// Address each accepted connection is forwarded to.
    #[arg(long, value_parser = crate::commands::parse_socket)]
    pub to: SocketAddr,
    /// Added round-trip time in milliseconds (fractions allowed); half of it each way.
    #[arg(long, value_parser = parse_delay_ms)]
    pub delay_ms: f64,
}

/// Parses `--delay-ms`: a finite, non-negative number of milliseconds up to `MAX_DELAY_MS`.
fn parse_delay_ms(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of milliseconds"))?;
    if !v.is_finite() || !(0.0..=MAX_DELAY_MS).contains(&v) {
        return Err(format!(
            "{s:?}: the delay must be between 0 and {MAX_DELAY_MS} ms"
        ));
    }
    Ok(v)
}

/// Runs the proxy until the process is ended. Prints `delay-proxy listening on ADDR` on
/// stdout once bound (a script or test reads the port from it).
pub fn run(args: &DelayProxyArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.listen))?;
    let bound = listener.local_addr()?;
    let one_way = Duration::from_secs_f64(args.delay_ms / 2000.0);
    println!(
        "delay-proxy listening on {bound}, forwarding to {}, round trip +{} ms",
        args.to, args.delay_ms
    );
    serve(listener, args.to, one_way)
}

/// Accepts connections on `listener` and proxies each to `to` with `one_way` added per
/// direction.
pub fn serve(listener: TcpListener, to: SocketAddr, one_way: Duration) -> anyhow::Result<()> {
    let live = Arc::new(AtomicUsize::new(0));
    for client in listener.incoming() {
        let client = match client {
            Ok(c) => c,
            // Per-connection failures (a peer that reset before accept, EMFILE) do not end
            // the proxy.
            Err(e) => {
                tracing::warn!(error = %e, "delay-proxy: accept failed");
                continue;
            }
        };
        if live.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            tracing::warn!(
                max = MAX_CONNECTIONS,
                "delay-proxy: connection cap reached, closing a new connection"
            );
            drop(client);
            continue;
        }
        live.fetch_add(1, Ordering::SeqCst);
        let guard = LiveGuard(live.clone());
        // Out of threads is a per-connection failure too: the connection (and its count) is
        // dropped with the closure.
        if let Err(e) = spawn(move || {
            if let Err(e) = proxy_connection(client, to, one_way, guard) {
                tracing::warn!(error = %e, "delay-proxy: connection to {to} failed");
            }
        }) {
            tracing::warn!(error = %e, "delay-proxy: cannot start a connection thread");
        }
    }
    Ok(())
}

/// Decrements the live-connection count when the last thread of a connection ends.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Both sockets of one proxied connection, to close everything when one direction fails.
struct Pair {
    client: TcpStream,
    upstream: TcpStream,
}

impl Pair {
    fn abort(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

fn proxy_connection(
    client: TcpStream,
    to: SocketAddr,
    one_way: Duration,
    guard: LiveGuard,
) -> std::io::Result<()> {
    let upstream = TcpStream::connect(to)?;
    // Chunks go out as soon as their deadline passes; Nagle would hold small ones back for an
    // ACK and add latency the curve did not ask for.
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let pair = Arc::new(Pair {
        client: client.try_clone()?,
        upstream: upstream.try_clone()?,
    });
    let guard = Arc::new(guard);
    for (src, dst) in [
        (client.try_clone()?, upstream.try_clone()?),
        (upstream, client),
    ] {
        let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(QUEUE);
        let (p, g) = (pair.clone(), guard.clone());
        let reader = spawn(move || read_side(src, tx, one_way, &p, g));
        let (p, g) = (pair.clone(), guard.clone());
        let writer = spawn(move || write_side(dst, rx, &p, g));
        if let Err(e) = reader.and(writer) {
            // Threads already running must not wait on a half-built connection.
            pair.abort();
            return Err(e);
        }
    }
    Ok(())
}

fn spawn(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(f)
        .map(drop)
}

/// Reads chunks and queues each with its delivery deadline. Ends (dropping `tx`, which the
/// writer takes as end of stream) at end of stream; closes everything on an error.
fn read_side(
    mut src: TcpStream,
    tx: SyncSender<(Instant, Vec<u8>)>,
    one_way: Duration,
    pair: &Pair,
    _guard: Arc<LiveGuard>,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match src.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let deadline = Instant::now() + one_way;
                if tx.send((deadline, buf[..n].to_vec())).is_err() {
                    // The writer failed and already closed both sockets.
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                pair.abort();
                return;
            }
        }
    }
}

/// Writes each chunk no earlier than its deadline, in order; forwards end of stream as a
/// half-close; closes everything on an error.
fn write_side(
    mut dst: TcpStream,
    rx: Receiver<(Instant, Vec<u8>)>,
    pair: &Pair,
    _guard: Arc<LiveGuard>,
) {
    // Linux lets a sleep end up to the thread's timer slack (50 µs by default) late so it can
    // batch wake-ups; two sleeps per round trip would add ~0.1 ms to every point of the curve.
    // This thread only waits for deadlines, so it asks for a slack of 1 ns. Best effort: if it
    // fails, the deliveries are later, never earlier.
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    while let Ok((deadline, bytes)) = rx.recv() {
        sleep_until(deadline);
        if dst.write_all(&bytes).is_err() {
            pair.abort();
            return;
        }
    }
    let _ = dst.shutdown(Shutdown::Write);
}

/// Sleeps until `deadline` (never returns before it: `thread::sleep` sleeps at least as long
/// as asked, and the loop covers a spurious early wake-up).
fn sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep(deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_must_be_a_sane_number() {
        assert_eq!(parse_delay_ms("0.5"), Ok(0.5));
        assert_eq!(parse_delay_ms("0"), Ok(0.0));
        for bad in ["-1", "NaN", "inf", "1e9", "", "abc"] {
            assert!(parse_delay_ms(bad).is_err(), "{bad:?} accepted");
        }
    }
}
