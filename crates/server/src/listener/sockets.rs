//! Where the listening sockets come from: inherited from the service manager (systemd socket
//! activation, `sd_listen_fds(3)`: `LISTEN_PID`, `LISTEN_FDS`, optional `LISTEN_FDNAMES`), or
//! bound here, optionally with `SO_REUSEPORT` so that a new process binds the same address
//! while the old one drains. Either way a client never finds the port closed during a restart.

use anyhow::Context;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

/// The listener names `serve` understands in `LISTEN_FDNAMES` (systemd's `FileDescriptorName=`);
/// without names, inherited descriptors are taken in this order.
pub const NAMES: [&str; 3] = ["acme", "http", "admin"];

/// Listening sockets passed by the service manager, by name.
#[derive(Default)]
pub struct Inherited {
    by_name: HashMap<String, TcpListener>,
}

impl Inherited {
    /// Takes the descriptors passed for this process (`LISTEN_PID` must be ours, as
    /// `sd_listen_fds` requires; otherwise they were meant for a parent and none is taken).
    /// Each must be a listening TCP socket; names come from `LISTEN_FDNAMES`, or
    /// [`NAMES`] in order.
    pub fn from_env() -> anyhow::Result<Self> {
        let names: Option<Vec<String>> = std::env::var("LISTEN_FDNAMES")
            .ok()
            .map(|v| v.split(':').map(str::to_string).collect());
        let mut fds = listenfd::ListenFd::from_env();
        let mut by_name = HashMap::new();
        for i in 0..fds.len() {
            let name = match &names {
                Some(n) => n.get(i).cloned().unwrap_or_default(),
                None => NAMES.get(i).map(|s| s.to_string()).unwrap_or_default(),
            };
            if !NAMES.contains(&name.as_str()) {
                anyhow::bail!(
                    "inherited descriptor {} is named {name:?}; LISTEN_FDNAMES must name each of them one of {}",
                    i + 3,
                    NAMES.join(", ")
                );
            }
            let l = fds
                .take_tcp_listener(i)
                .with_context(|| format!("inherited descriptor {} ({name})", i + 3))?
                .ok_or_else(|| anyhow::anyhow!("inherited descriptor {} was taken twice", i + 3))?;
            if !rustix::net::sockopt::socket_acceptconn(&l)? {
                anyhow::bail!("inherited descriptor {} ({name}) is not listening", i + 3);
            }
            l.set_nonblocking(true)?;
            if by_name.insert(name.clone(), l).is_some() {
                anyhow::bail!("LISTEN_FDNAMES names {name:?} twice");
            }
        }
        Ok(Self { by_name })
    }

    /// The inherited listener named `name`, if any.
    pub fn take(&mut self, name: &str) -> Option<TcpListener> {
        self.by_name.remove(name)
    }

    /// Whether any listener was inherited.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Binds a non-blocking TCP listener on `addr`; with `reuse_port`, `SO_REUSEPORT` lets
/// another process of the same user bind the same address meanwhile (the kernel spreads new
/// connections over the sockets of the group).
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    if !reuse_port {
        let l = TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        return Ok(l);
    }
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    // As std does for every listener: a restart may bind while old connections linger in
    // TIME_WAIT.
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    Ok(TcpListener::from(fd))
}
