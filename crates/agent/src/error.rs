//! The agent's error classes and the exit code each maps to, so a shell
//! wrapper can act on the outcome without parsing logs.

use std::fmt;

/// Process exit codes (also listed in the README and `--help`).
pub mod exit {
    /// Nothing to do: the installed certificate is valid and not due.
    pub const NOTHING_TO_DO: i32 = 0;
    /// A certificate was issued or renewed and installed.
    pub const RENEWED: i32 = 10;
    /// Bad command line or configuration file (clap also uses 2).
    pub const USAGE: i32 = 2;
    /// The server could not be reached (DNS, TCP, TLS, timeout).
    pub const NETWORK: i32 = 20;
    /// The server answered with an error or with something that is not
    /// valid ACME (problem document, 5xx, malformed JSON, wrong type).
    pub const SERVER: i32 = 21;
    /// A challenge could not be served or the server rejected it.
    pub const CHALLENGE: i32 = 22;
    /// Local file system error while installing or storing state.
    pub const LOCAL_IO: i32 = 23;
    /// The certificate is installed but the reload command failed.
    pub const RELOAD: i32 = 24;
    /// A local key or state file is unusable.
    pub const KEY: i32 = 25;
    /// The order did not finish before the deadline.
    pub const TIMEOUT: i32 = 26;
    /// The new certificate failed its health check (`--check-cmd`,
    /// `--check-tls`); the previous one was put back where there was one.
    pub const CHECK: i32 = 27;
}

/// Why an agent operation failed.
#[derive(Debug)]
pub enum AgentError {
    /// Invalid configuration or arguments.
    Config(String),
    /// Transport failure talking to `url`.
    Network {
        /// The request URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The server answered with a problem document or an unusable response.
    Server {
        /// The request URL.
        url: String,
        /// HTTP status, if any.
        status: Option<u16>,
        /// A short description (problem type and detail, or the parse error).
        detail: String,
    },
    /// A challenge failed.
    Challenge(String),
    /// Local I/O error, with the path it concerned.
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The reload command failed (the certificate stays installed).
    Reload(String),
    /// A key or state file could not be used.
    Key(String),
    /// A deadline passed while waiting for the server.
    Timeout(String),
    /// The server refused for now and said when to come back (HTTP 429 or
    /// 503 with Retry-After); `error` is what it answered.
    RetryLater {
        /// The server's Retry-After.
        retry_after: std::time::Duration,
        /// The refusal.
        error: Box<AgentError>,
    },
    /// The health check after an install failed.
    Check(String),
}

impl AgentError {
    /// The process exit code for this error class.
    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Config(_) => exit::USAGE,
            AgentError::Network { .. } => exit::NETWORK,
            AgentError::Server { .. } => exit::SERVER,
            AgentError::Challenge(_) => exit::CHALLENGE,
            AgentError::Io { .. } => exit::LOCAL_IO,
            AgentError::Reload(_) => exit::RELOAD,
            AgentError::Key(_) => exit::KEY,
            AgentError::Timeout(_) => exit::TIMEOUT,
            AgentError::RetryLater { error, .. } => error.exit_code(),
            AgentError::Check(_) => exit::CHECK,
        }
    }

    /// Builds an [`AgentError::Io`] for `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> AgentError {
        AgentError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// Whether retrying later may help: everything but a usage error. Local
    /// faults heal too (space is freed, a corrupt file is replaced by a fresh
    /// issuance), so the daemon backs off and retries them like network
    /// errors instead of exiting.
    pub fn is_transient(&self) -> bool {
        !matches!(self, AgentError::Config(_))
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Config(m) => write!(f, "configuration: {m}"),
            AgentError::Network { url, detail } => write!(f, "network error for {url}: {detail}"),
            AgentError::Server {
                url,
                status,
                detail,
            } => match status {
                Some(s) => write!(f, "server error from {url} (HTTP {s}): {detail}"),
                None => write!(f, "server error from {url}: {detail}"),
            },
            AgentError::Challenge(m) => write!(f, "challenge: {m}"),
            AgentError::Io { path, source } => write!(f, "{path}: {source}"),
            AgentError::Reload(m) => write!(f, "reload command failed: {m}"),
            AgentError::Key(m) => write!(f, "key: {m}"),
            AgentError::Timeout(m) => write!(f, "timeout: {m}"),
            AgentError::RetryLater { retry_after, error } => write!(
                f,
                "{error} (the server asks to retry after {}s)",
                retry_after.as_secs()
            ),
            AgentError::Check(m) => write!(f, "health check failed: {m}"),
        }
    }
}

impl std::error::Error for AgentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AgentError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand result type.
pub type Result<T> = std::result::Result<T, AgentError>;
