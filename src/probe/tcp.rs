//! TCP connect probe, and the error type shared by the TCP and HTTP probes.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Why a TCP or HTTP probe failed. Keeps the errno where the kernel gave one,
/// so callers can tell "refused" (something answered) from "unreachable" (no
/// route, or no neighbour) from "timed out" (packets vanished).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The peer answered with a reset: nothing listens on that port.
    #[error("connection to {addr} refused: {error}")]
    Refused { addr: SocketAddr, error: io::Error },
    /// No answer in time (connect, or while talking).
    #[error("{action} {addr} timed out after {}", fmt_duration(*.timeout))]
    TimedOut {
        addr: SocketAddr,
        action: &'static str,
        timeout: Duration,
    },
    /// No route to the network, or the host did not answer neighbour discovery.
    #[error("{addr} is unreachable: {error}")]
    Unreachable { addr: SocketAddr, error: io::Error },
    /// Any other connect failure.
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: SocketAddr, error: io::Error },
    /// Reading or writing after the connection was made.
    #[error("talking to {addr}: {error}")]
    Io { addr: SocketAddr, error: io::Error },
    /// The peer's answer is not valid HTTP.
    #[error("bad HTTP response from {addr}: {reason}")]
    BadResponse { addr: SocketAddr, reason: String },
    /// The answer exceeds the size we are willing to buffer.
    #[error("response from {addr} exceeds {limit} bytes")]
    TooLarge { addr: SocketAddr, limit: usize },
    /// The request itself cannot be sent (e.g. a line break in the path).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ProbeError {
    /// The errno behind the failure, if any (ETIMEDOUT for timeouts).
    pub fn errno(&self) -> Option<i32> {
        match self {
            ProbeError::Refused { error, .. }
            | ProbeError::Unreachable { error, .. }
            | ProbeError::Connect { error, .. }
            | ProbeError::Io { error, .. } => error.raw_os_error(),
            ProbeError::TimedOut { .. } => Some(libc::ETIMEDOUT),
            _ => None,
        }
    }

    /// A stable word for JSON output and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeError::Refused { .. } => "refused",
            ProbeError::TimedOut { .. } => "timeout",
            ProbeError::Unreachable { .. } => "unreachable",
            ProbeError::Connect { .. } => "connect",
            ProbeError::Io { .. } => "io",
            ProbeError::BadResponse { .. } => "bad_response",
            ProbeError::TooLarge { .. } => "too_large",
            ProbeError::InvalidRequest(_) => "invalid_request",
        }
    }

    /// Classify an I/O error met after connecting: timeouts stay timeouts.
    pub(crate) fn from_io(
        addr: SocketAddr,
        action: &'static str,
        timeout: Duration,
        error: io::Error,
    ) -> ProbeError {
        if is_timeout(&error) {
            ProbeError::TimedOut {
                addr,
                action,
                timeout,
            }
        } else {
            ProbeError::Io { addr, error }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    // SO_RCVTIMEO/SO_SNDTIMEO expiry shows as EAGAIN (WouldBlock).
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(libc::ETIMEDOUT)
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Connect to `addr` from the network namespace of the calling thread, giving
/// up after `timeout`.
pub fn connect_stream(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProbeError> {
    if timeout.is_zero() {
        // std rejects a zero timeout as invalid input; it is simply no time.
        return Err(ProbeError::TimedOut {
            addr,
            action: "connect to",
            timeout,
        });
    }
    TcpStream::connect_timeout(&addr, timeout)
        .map_err(|error| classify_connect(addr, timeout, error))
}

fn classify_connect(addr: SocketAddr, timeout: Duration, error: io::Error) -> ProbeError {
    match error.raw_os_error() {
        Some(libc::ECONNREFUSED) => ProbeError::Refused { addr, error },
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EHOSTDOWN | libc::ENONET) => {
            ProbeError::Unreachable { addr, error }
        }
        _ if is_timeout(&error) => ProbeError::TimedOut {
            addr,
            action: "connect to",
            timeout,
        },
        _ => ProbeError::Connect { addr, error },
    }
}

/// Open a TCP connection to `addr` and close it; returns how long the
/// handshake took.
pub fn tcp_connect(addr: SocketAddr, timeout: Duration) -> Result<Duration, ProbeError> {
    let start = Instant::now();
    let stream = connect_stream(addr, timeout)?;
    let elapsed = start.elapsed();
    drop(stream);
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "203.0.113.9:80".parse().unwrap()
    }

    #[test]
    fn classifies_connect_errors_and_keeps_errno() {
        let t = Duration::from_secs(1);
        let e = classify_connect(addr(), t, io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!((e.kind(), e.errno()), ("refused", Some(libc::ECONNREFUSED)));
        let e = classify_connect(addr(), t, io::Error::from_raw_os_error(libc::ENETUNREACH));
        assert_eq!(
            (e.kind(), e.errno()),
            ("unreachable", Some(libc::ENETUNREACH))
        );
        let e = classify_connect(addr(), t, io::Error::from_raw_os_error(libc::EHOSTUNREACH));
        assert_eq!(
            (e.kind(), e.errno()),
            ("unreachable", Some(libc::EHOSTUNREACH))
        );
        // std's own connect timeout carries no errno.
        let e = classify_connect(addr(), t, io::Error::new(io::ErrorKind::TimedOut, "x"));
        assert_eq!((e.kind(), e.errno()), ("timeout", Some(libc::ETIMEDOUT)));
        assert_eq!(
            e.to_string(),
            "connect to 203.0.113.9:80 timed out after 1s"
        );
        let e = classify_connect(addr(), t, io::Error::from_raw_os_error(libc::EADDRNOTAVAIL));
        assert_eq!(e.kind(), "connect");
    }

    #[test]
    fn zero_timeout_is_a_timeout_not_a_panic() {
        let e = connect_stream(addr(), Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), "timeout");
    }
}
