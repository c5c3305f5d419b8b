//! Before the daemon's first attempt: optional, bounded waits for the
//! network (`--wait-for-network HOST:PORT`) and for a plausible clock
//! (`--wait-for-time`), then the per-device start-up splay (`--splay`), so a
//! fleet that powers up together does not reach the server in one burst.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::commands::{installed, trusted_floor};
use crate::config::Settings;
use crate::error::Result;
use crate::http::now_unix;
use crate::jitter::Jitter;
use crate::log;
use crate::schedule::fmt_time;
use crate::state::State;

const POLL: Duration = Duration::from_secs(1);

/// Waits until `addr` (HOST:PORT) accepts a TCP connection, at most `bound`.
/// Returns whether it did.
pub fn wait_for_network(addr: &str, bound: Duration) -> bool {
    let start = Instant::now();
    loop {
        let reachable = addr.to_socket_addrs().is_ok_and(|mut addrs| {
            addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
        });
        if reachable {
            return true;
        }
        if start.elapsed() >= bound {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until the local clock is not before `floor`, at most `bound`.
/// Returns whether it got there.
pub fn wait_for_time(floor: i64, bound: Duration) -> bool {
    let start = Instant::now();
    while now_unix() < floor {
        if start.elapsed() >= bound {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

/// The boot waits asked for, then the splay. A wait that runs out is
/// logged and the agent goes on (it copes with an unreachable server and a
/// wrong clock; the waits only avoid a burst of doomed first attempts).
pub fn before_first_attempt(settings: &Settings, jitter: &Jitter) -> Result<()> {
    let bound = settings.wait_timeout();
    if let Some(addr) = settings.wait_for_network.as_deref() {
        if wait_for_network(addr, bound) {
            log::info(format!("network: {addr} is reachable"));
        } else {
            log::warn(format!(
                "network: {addr} still unreachable after {}s (--wait-timeout); trying anyway",
                bound.as_secs()
            ));
        }
    }
    if settings.wait_for_time {
        let state = State::load(&settings.state_dir()?).unwrap_or_default();
        let current = installed(settings).ok().flatten();
        let floor = trusted_floor(&state, current.as_ref().map(|c| &c.1));
        if wait_for_time(floor, bound) {
            log::info("clock: not before the trusted time floor");
        } else {
            log::warn(format!(
                "clock: still before the trusted time floor ({}) after {}s; trying anyway \
                 (the server's time will be used)",
                fmt_time(floor),
                bound.as_secs()
            ));
        }
    }
    let window = settings.splay();
    let splay = jitter.splay(window);
    log::info(format!(
        "start-up splay: first attempt in {splay}s of a {window}s window, at {}",
        fmt_time(now_unix() + splay as i64)
    ));
    std::thread::sleep(Duration::from_secs(splay));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_bounded() {
        // A port nobody listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(!wait_for_network(
            &format!("127.0.0.1:{port}"),
            Duration::ZERO
        ));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        assert!(wait_for_network(&addr, Duration::ZERO));
        assert!(wait_for_time(0, Duration::ZERO));
        assert!(!wait_for_time(i64::MAX, Duration::ZERO));
    }
}
