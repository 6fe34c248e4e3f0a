//! HTTP probes: a minimal client over std `TcpStream`, in the network
//! namespace where its socket was made (the server is in `crate::serve`).

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

use super::tcp::{ProbeError, connect_stream};

/// Largest response body `http_get` and `send_raw_line` accept.
pub const MAX_BODY: usize = 16 << 20;
/// Largest response head (status line and headers) `http_get` accepts.
const MAX_HEAD: usize = 64 << 10;
/// Python's limit on one request or header line (`readline(65537)`).
pub(crate) const MAX_LINE: usize = 65536;
pub(crate) const SERVER_NAME: &str = concat!("nslab/", env!("CARGO_PKG_VERSION"));

/// A parsed HTTP response ([`Lab::http_get`](crate::Lab::http_get)).
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let r: nslab::HttpResponse = lab.http_get("a", "http://b:8000/")?;
/// assert_eq!(r.status, 200);
/// println!("{} {}", r.reason, r.text());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpResponse {
    /// e.g. `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// In the order received; names as sent.
    pub headers: Vec<(String, String)>,
    /// Serialized as (lossy UTF-8) text, which is what `--json` readers want.
    #[serde(serialize_with = "serialize_lossy")]
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header with this name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

fn serialize_lossy<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(body))
}

/// Reads from a socket, never past a deadline for the whole exchange (a peer
/// that drips one byte at a time cannot stretch it).
pub(crate) struct DeadlineReader<'a> {
    pub(crate) stream: &'a TcpStream,
    pub(crate) deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        (&*self.stream).read(buf)
    }
}

/// `t + d` that saturates (about a century ahead) instead of panicking on
/// absurd timeouts from the caller.
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(t)
}

/// Writes everything before the deadline.
fn write_all_by(stream: &TcpStream, data: &[u8], deadline: Instant) -> io::Result<()> {
    let mut rest = data;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match (&*stream).write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The Host header for `addr` when the caller gives none, as curl writes it.
fn default_host(addr: SocketAddr) -> String {
    let ip = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    if addr.port() == 80 {
        ip
    } else {
        format!("{ip}:{}", addr.port())
    }
}

/// `GET path` from `addr` with `Host: host` (empty: derived from `addr`),
/// HTTP/1.1 with `Connection: close`. `timeout` bounds the whole exchange.
pub fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<HttpResponse, ProbeError> {
    let bad = |c: char| c.is_ascii_control() || c == ' ';
    if !path.starts_with('/') || path.chars().any(bad) {
        return Err(ProbeError::InvalidRequest(format!(
            "path {path:?} must start with '/' and hold no spaces or control characters"
        )));
    }
    if host.chars().any(bad) {
        return Err(ProbeError::InvalidRequest(format!(
            "host {host:?} holds spaces or control characters"
        )));
    }
    let host = if host.is_empty() {
        default_host(addr)
    } else {
        host.to_string()
    };
    let deadline = later(Instant::now(), timeout);
    let stream = connect_stream(addr, timeout)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {SERVER_NAME}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    write_all_by(&stream, request.as_bytes(), deadline)
        .map_err(|e| ProbeError::from_io(addr, "sending request to", timeout, e))?;
    let mut reader = BufReader::new(DeadlineReader {
        stream: &stream,
        deadline,
    });
    read_response(&mut reader, MAX_BODY).map_err(|e| match e {
        ResponseError::Io(e) => ProbeError::from_io(addr, "reading response from", timeout, e),
        ResponseError::Bad(reason) => ProbeError::BadResponse { addr, reason },
        ResponseError::TooLarge => ProbeError::TooLarge {
            addr,
            limit: MAX_BODY,
        },
    })
}

/// Send `line` and CRLF as plain text (no HTTP framing), then return all the
/// server answers until it closes: the tutorial's "type text at the web server"
/// experiment. Our side is half-closed after the line, so a server that waits
/// for more input sees the end of it instead of waiting for the timeout.
pub fn send_raw_line(
    addr: SocketAddr,
    line: &str,
    timeout: Duration,
) -> Result<String, ProbeError> {
    let deadline = later(Instant::now(), timeout);
    let stream = connect_stream(addr, timeout)?;
    let mut data = line.as_bytes().to_vec();
    data.extend_from_slice(b"\r\n");
    write_all_by(&stream, &data, deadline)
        .map_err(|e| ProbeError::from_io(addr, "sending to", timeout, e))?;
    // The server may already have answered and closed; that is fine.
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    let mut reader = DeadlineReader {
        stream: &stream,
        deadline,
    };
    let res = (&mut reader)
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut answer);
    match res {
        Ok(_) if answer.len() > MAX_BODY => {
            return Err(ProbeError::TooLarge {
                addr,
                limit: MAX_BODY,
            });
        }
        Ok(_) => {}
        // A reset after the answer (the server closed with our bytes unread)
        // still leaves a complete answer behind.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !answer.is_empty() => {}
        Err(e) => return Err(ProbeError::from_io(addr, "reading answer from", timeout, e)),
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[derive(Debug)]
enum ResponseError {
    Io(io::Error),
    Bad(String),
    TooLarge,
}

impl From<io::Error> for ResponseError {
    fn from(e: io::Error) -> Self {
        ResponseError::Io(e)
    }
}

/// One line without its CR LF, at most `limit` bytes; `None` at end of input.
/// A last line without a newline is returned as is.
fn read_line<R: BufRead>(r: &mut R, limit: usize) -> Result<Option<Vec<u8>>, ResponseError> {
    let mut line = Vec::new();
    let n = r.take(limit as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() > limit {
        return Err(ResponseError::Bad("line too long".into()));
    }
    Ok(Some(line))
}

/// Status line and headers. Returns (version, status, reason, headers).
type Head = (String, u16, String, Vec<(String, String)>);

fn read_head<R: BufRead>(r: &mut R) -> Result<Head, ResponseError> {
    let mut budget = MAX_HEAD;
    let status_line = read_line(r, budget)?
        .ok_or_else(|| ResponseError::Bad("connection closed before a status line".into()))?;
    budget = budget.saturating_sub(status_line.len());
    let text = String::from_utf8_lossy(&status_line);
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let reason = parts.next().unwrap_or_default().trim();
    if !version.starts_with("HTTP/") {
        let shown: String = text.chars().take(80).collect();
        return Err(ResponseError::Bad(format!(
            "not an HTTP status line: {shown:?}"
        )));
    }
    let status = match code.parse::<u16>() {
        Ok(c) if code.len() == 3 && (100..=999).contains(&c) => c,
        _ => return Err(ResponseError::Bad(format!("bad status code {code:?}"))),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        if budget == 0 {
            return Err(ResponseError::Bad(format!(
                "response head exceeds {MAX_HEAD} bytes"
            )));
        }
        let line = match read_line(r, budget)? {
            None => {
                return Err(ResponseError::Bad(
                    "connection closed inside headers".into(),
                ));
            }
            Some(l) if l.is_empty() => break,
            Some(l) => l,
        };
        budget = budget.saturating_sub(line.len() + 2);
        let text = String::from_utf8_lossy(&line);
        if text.starts_with([' ', '\t']) {
            // Obsolete line folding: continues the previous value.
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(text.trim());
                }
                None => return Err(ResponseError::Bad("folded line before any header".into())),
            }
            continue;
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(ResponseError::Bad(format!(
                "header line without ':': {text:?}"
            )));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok((version.to_string(), status, reason.to_string(), headers))
}

fn read_response<R: BufRead>(r: &mut R, max_body: usize) -> Result<HttpResponse, ResponseError> {
    let (version, status, reason, headers) = loop {
        let head = read_head(r)?;
        // Skip interim answers (100 Continue and friends), not 101.
        if (100..200).contains(&head.1) && head.1 != 101 {
            continue;
        }
        break head;
    };
    let find = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Vec::new()
    } else if find("transfer-encoding").any(|v| {
        v.rsplit(',')
            .next()
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
    }) {
        read_chunked(r, max_body)?
    } else if let Some(len) = content_length(find("content-length"))? {
        if len > max_body {
            return Err(ResponseError::TooLarge);
        }
        let mut body = Vec::with_capacity(len.min(1 << 20));
        r.take(len as u64).read_to_end(&mut body)?;
        if body.len() != len {
            return Err(ResponseError::Bad(format!(
                "body truncated: {} of {len} bytes",
                body.len()
            )));
        }
        body
    } else {
        read_to_close(r, max_body)?
    };
    Ok(HttpResponse {
        version,
        status,
        reason,
        headers,
        body,
    })
}

fn content_length<'a>(
    mut values: impl Iterator<Item = &'a str>,
) -> Result<Option<usize>, ResponseError> {
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| ResponseError::Bad(format!("bad Content-Length {v:?}")))
    };
    let len = parse(first)?;
    for other in values {
        if parse(other)? != len {
            return Err(ResponseError::Bad(
                "conflicting Content-Length headers".into(),
            ));
        }
    }
    Ok(Some(len))
}

fn read_to_close<R: BufRead>(r: &mut R, max_body: usize) -> Result<Vec<u8>, ResponseError> {
    let mut body = Vec::new();
    r.take(max_body as u64 + 1).read_to_end(&mut body)?;
    if body.len() > max_body {
        return Err(ResponseError::TooLarge);
    }
    Ok(body)
}

fn read_chunked<R: BufRead>(r: &mut R, max_body: usize) -> Result<Vec<u8>, ResponseError> {
    let truncated = || ResponseError::Bad("chunked body truncated".into());
    let mut body = Vec::new();
    loop {
        let line = read_line(r, 4096)?.ok_or_else(truncated)?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ResponseError::Bad(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line (or the end).
            while let Some(l) = read_line(r, MAX_LINE)? {
                if l.is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        if size > max_body.saturating_sub(body.len()) {
            return Err(ResponseError::TooLarge);
        }
        let before = body.len();
        r.take(size as u64).read_to_end(&mut body)?;
        if body.len() - before != size {
            return Err(truncated());
        }
        match read_line(r, 2)? {
            Some(l) if l.is_empty() => {}
            _ => return Err(ResponseError::Bad("chunk not followed by CRLF".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::tests::PYTHON_HELLO_ANSWER;
    use std::io::Cursor;

    fn parse(raw: &[u8]) -> Result<HttpResponse, ResponseError> {
        read_response(&mut Cursor::new(raw), 1024)
    }

    #[test]
    fn client_reads_the_three_framings() {
        let r = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA").unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.body.as_slice()),
            (200, "OK", &b"hello"[..])
        );
        assert_eq!(r.header("x-a"), Some("b"));

        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"Wikipedia");

        let r = parse(b"HTTP/1.0 404 File not found\r\nServer: x\r\n\r\nuntil close").unwrap();
        assert_eq!((r.status, r.reason.as_str()), (404, "File not found"));
        assert_eq!(r.body, b"until close");

        let r = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));

        let r = parse(b"HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\n\r\n").unwrap();
        assert_eq!(r.header("X-Long"), Some("a b"));
    }

    #[test]
    fn client_rejects_bad_and_oversized_responses() {
        let bad = |raw: &[u8]| matches!(parse(raw), Err(ResponseError::Bad(_)));
        assert!(bad(b""));
        assert!(
            bad(PYTHON_HELLO_ANSWER.as_bytes()),
            "HTTP/0.9 answers are not responses"
        );
        assert!(bad(b"HTTP/1.0 2000 OK\r\n\r\n"));
        assert!(bad(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nshort"));
        assert!(bad(
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
        ));
        assert!(bad(
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        ));
        assert!(bad(b"HTTP/1.0 200 OK\r\nno colon\r\n\r\n"));
        assert!(bad(b"HTTP/1.0 200 OK\r\nContent-Length: 1"));
        let too_large = |raw: &[u8]| matches!(parse(raw), Err(ResponseError::TooLarge));
        assert!(too_large(
            b"HTTP/1.0 200 OK\r\nContent-Length: 5000\r\n\r\n"
        ));
        let mut big = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 2000));
        assert!(too_large(&big));
        assert!(too_large(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n"
        ));
    }

    #[test]
    fn client_parser_never_panics_on_prefixes() {
        let samples: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\xff\xfe",
        ];
        for s in samples {
            for n in 0..=s.len() {
                let _ = parse(&s[..n]);
            }
        }
    }

    #[test]
    fn default_host_like_curl() {
        assert_eq!(
            default_host("203.0.113.2:80".parse().unwrap()),
            "203.0.113.2"
        );
        assert_eq!(
            default_host("203.0.113.2:8000".parse().unwrap()),
            "203.0.113.2:8000"
        );
        assert_eq!(
            default_host("[2001:db8::2]:8000".parse().unwrap()),
            "[2001:db8::2]:8000"
        );
    }

    #[test]
    fn http_get_rejects_header_injection() {
        let addr: SocketAddr = "203.0.113.2:80".parse().unwrap();
        let t = Duration::from_secs(1);
        for (host, path) in [
            ("", "/a b"),
            ("", "/x\r\nEvil: 1"),
            ("h\r\n", "/"),
            ("", "noslash"),
        ] {
            let err = http_get(addr, host, path, t).unwrap_err();
            assert_eq!(err.kind(), "invalid_request", "{host:?} {path:?}");
        }
    }
}
