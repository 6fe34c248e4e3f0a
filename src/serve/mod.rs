//! `nslab serve`'s web server: a small server that answers like `python3 -m
//! http.server` (the tutorial's server), in the network namespace where its
//! listener was made.
//!
//! The server mirrors Python's `http.server` (3.11-3.13) closely enough that
//! the tutorial's experiments read the same: status texts, the HTML error page,
//! the log lines, and the quirk that a request line without a recognised HTTP
//! version (`hello`) is answered HTTP/0.9 style, with the error page but no
//! status line.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::probe::http::{DeadlineReader, MAX_LINE, SERVER_NAME, later};

/// Python's limit on header lines (`http.client._MAXHEADERS`).
const MAX_HEADERS: usize = 100;
/// Time a client gets to send its whole request head: a slow client holds one
/// worker at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time one write may block (a client that stops reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server keeps reading after its answer so that unread request
/// bytes do not turn the close into a reset that eats the answer.
const LINGER: Duration = Duration::from_secs(1);
/// Connections served at once; more wait in the listen backlog.
const MAX_WORKERS: usize = 8;
/// How often `serve` looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// What the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// An HTML page naming the node, the server address the client reached and
    /// the client address the server saw (NAT shows in these), at `/` and
    /// `/index.html`.
    Page { node: String },
    /// Files and listings of a directory, like `python3 -m http.server
    /// --directory DIR`; nothing outside it is served, whatever the path or
    /// symlinks say.
    Directory(PathBuf),
}

/// A small HTTP/1.0 server, one request per connection.
///
/// The listener is made by `bind`, so it lives in the network namespace of the
/// thread that calls `bind`; `serve` may then run on any thread.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    content: Served,
}

#[derive(Debug)]
enum Served {
    Page {
        node: String,
    },
    /// Canonical root, so containment checks compare resolved paths.
    Directory {
        root: PathBuf,
    },
}

/// Where a connection comes from and arrived at.
#[derive(Debug, Clone, Copy)]
struct ConnInfo {
    peer: SocketAddr,
    local: Option<SocketAddr>,
}

enum Msg {
    Log(String),
    Done,
}

/// Tells `serve` a worker ended, even if it ended by panicking.
struct DoneOnDrop(mpsc::Sender<Msg>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Msg::Done);
    }
}

impl Server {
    /// Listen on `addr` (port 0 picks a free port) in the calling thread's
    /// network namespace.
    pub fn bind(addr: SocketAddr, content: Content) -> io::Result<Server> {
        Server::from_listener(TcpListener::bind(addr)?, content)
    }

    /// Serve on a listener made elsewhere (e.g. on a thread inside a namespace).
    pub fn from_listener(listener: TcpListener, content: Content) -> io::Result<Server> {
        let content = match content {
            Content::Page { node } => Served::Page { node },
            Content::Directory(dir) => {
                let root = dir.canonicalize().map_err(|e| {
                    io::Error::new(e.kind(), format!("directory {}: {e}", dir.display()))
                })?;
                if !root.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} is not a directory", dir.display()),
                    ));
                }
                Served::Directory { root }
            }
        };
        listener.set_nonblocking(true)?;
        Ok(Server { listener, content })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answer connections until `stop` is set (checked every 100 ms), then
    /// finish the requests in progress and return. Up to 8 connections are
    /// served at once, each on its own thread with a 10 s limit for the request,
    /// so a slow client cannot hold the server. `log` gets Python-style lines
    /// (`203.0.113.1 - - [29/Nov/2026 10:00:00] "GET / HTTP/1.1" 200 -`) on the
    /// calling thread.
    pub fn serve(&self, stop: &AtomicBool, log: &mut dyn FnMut(&str)) -> io::Result<()> {
        let mut active = 0usize;
        let mut forward = |msg: Msg, active: &mut usize| match msg {
            Msg::Log(line) => log(&line),
            Msg::Done => *active = active.saturating_sub(1),
        };
        let cfg = &crate::config::inherit();
        thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<Msg>();
            let result = loop {
                while let Ok(msg) = rx.try_recv() {
                    forward(msg, &mut active);
                }
                if stop.load(Ordering::SeqCst) {
                    break Ok(());
                }
                if active >= MAX_WORKERS {
                    if let Ok(msg) = rx.recv_timeout(TICK) {
                        forward(msg, &mut active);
                    }
                    continue;
                }
                match poll_readable(self.listener.as_fd(), TICK) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => break Err(e),
                }
                match self.listener.accept() {
                    Ok((stream, peer)) => {
                        let tx = tx.clone();
                        let served = &self.content;
                        let spawned = thread::Builder::new()
                            .name("nslab-http".into())
                            .spawn_scoped(scope, move || {
                                let _cfg = cfg.enter();
                                let done = DoneOnDrop(tx);
                                serve_connection(stream, peer, served, &done.0);
                            });
                        match spawned {
                            Ok(_) => active += 1,
                            Err(e) => forward(
                                Msg::Log(format!("cannot start a worker: {e}")),
                                &mut active,
                            ),
                        }
                    }
                    Err(e) if is_skippable_accept_error(&e) => {}
                    Err(e) if is_resource_error(&e) => {
                        // Out of descriptors or memory: say so, and give running
                        // workers time to free some instead of spinning.
                        forward(Msg::Log(format!("accept: {e}")), &mut active);
                        if let Ok(msg) = rx.recv_timeout(TICK) {
                            forward(msg, &mut active);
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            // Only workers hold senders now: recv fails once they are all gone.
            drop(tx);
            while active > 0 {
                match rx.recv() {
                    Ok(msg) => forward(msg, &mut active),
                    Err(_) => break,
                }
            }
            result
        })
    }
}

/// Nothing to accept after all, or a connection that failed before we took
/// it (Linux reports the new socket's pending network error from accept).
fn is_skippable_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
    ) || matches!(
        e.raw_os_error(),
        Some(
            libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EOPNOTSUPP
        )
    )
}

/// Out of descriptors or memory: worth a pause, not the end of the server.
fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

use crate::kernel::poll::poll_readable;

fn serve_connection(stream: TcpStream, peer: SocketAddr, served: &Served, tx: &mpsc::Sender<Msg>) {
    let info = ConnInfo {
        peer,
        local: stream.local_addr().ok(),
    };
    // Writes block for at most WRITE_TIMEOUT each: a client that stops reading
    // a big file lets go of the worker.
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut reader = BufReader::new(DeadlineReader {
        stream: &stream,
        deadline: later(Instant::now(), REQUEST_TIMEOUT),
    });
    let mut writer = &stream;
    let mut log = |line: String| {
        let _ = tx.send(Msg::Log(line));
    };
    handle_request(&mut reader, &mut writer, &info, served, &mut log);
    let _ = writer.flush();
    // Half-close, then read what the client still sends for a moment: closing
    // with unread bytes would send a reset that can destroy the answer in flight.
    let _ = stream.shutdown(Shutdown::Write);
    let mut linger = DeadlineReader {
        stream: &stream,
        deadline: later(Instant::now(), LINGER),
    };
    let _ = io::copy(&mut (&mut linger).take(64 << 10), &mut io::sink());
}

/// The request as far as it was understood, named as in Python's handler.
struct Request {
    /// The request line without its line end (used in log lines).
    requestline: String,
    /// `HTTP/0.9` until a valid version is read: such requests get no status
    /// line or headers, only a body.
    version: String,
    command: Option<String>,
    path: String,
}

impl Request {
    fn is_http09(&self) -> bool {
        self.version == "HTTP/0.9"
    }
}

/// Outcome of reading a request line, as Python's `parse_request` decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestLine {
    /// Blank line: Python closes without an answer.
    Empty,
    /// Answer with this error. `version` is the request version known when the
    /// error was found (`HTTP/0.9` when none was): it decides the status line.
    Error {
        code: u16,
        message: String,
        version: String,
    },
    Ok {
        command: String,
        path: String,
        version: String,
    },
}

/// Python's `str.isspace` for the Latin-1 range (request lines are decoded as Latin-1).
fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\x0b' | '\x0c' | '\r' | '\x1c'..='\x1f' | ' ' | '\u{85}' | '\u{a0}'
    )
}

/// Decode bytes as Latin-1, as Python's `str(raw, 'iso-8859-1')`.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Encode text as Latin-1 (header lines); anything else becomes `?`.
fn to_latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// Python's `repr()` of a str that came from Latin-1 bytes.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            // Not printable for Python: C0, DEL, C1, NBSP and the soft hyphen.
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `html.escape(s, quote=False)`.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Parse `HTTP/major.minor` as Python does: ASCII digits, at most 10 each.
fn parse_version(v: &str) -> Option<(u64, u64, &str)> {
    let base = v.strip_prefix("HTTP/")?;
    let (major, minor) = base.split_once('.')?;
    let num = |s: &str| {
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse::<u64>().ok()
        }
    };
    Some((num(major)?, num(minor)?, base))
}

/// Python 3.11's `BaseHTTPRequestHandler.parse_request`, first line only.
fn parse_request_line(line: &str) -> RequestLine {
    let words: Vec<&str> = line.split(is_py_space).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return RequestLine::Empty;
    }
    let mut version = "HTTP/0.9".to_string();
    if words.len() >= 3 {
        let v = words[words.len() - 1];
        match parse_version(v) {
            None => {
                return RequestLine::Error {
                    code: 400,
                    message: format!("Bad request version ({})", py_repr(v)),
                    version,
                };
            }
            Some((major, _, base)) if major >= 2 => {
                return RequestLine::Error {
                    code: 505,
                    message: format!("Invalid HTTP version ({base})"),
                    version,
                };
            }
            Some(_) => version = v.to_string(),
        }
    }
    if !(2..=3).contains(&words.len()) {
        return RequestLine::Error {
            code: 400,
            message: format!("Bad request syntax ({})", py_repr(line)),
            version,
        };
    }
    let command = words[0];
    if words.len() == 2 && command != "GET" {
        return RequestLine::Error {
            code: 400,
            message: format!("Bad HTTP/0.9 request type ({})", py_repr(command)),
            version,
        };
    }
    let mut path = words[1].to_string();
    // As Python: '//x' would read as a network path in redirects.
    if path.starts_with("//") {
        path = format!("/{}", path.trim_start_matches('/'));
    }
    RequestLine::Ok {
        command: command.to_string(),
        path,
        version,
    }
}

/// Short and long texts of the statuses we send (Python's `HTTPStatus`).
fn status_text(code: u16) -> (&'static str, &'static str) {
    match code {
        200 => ("OK", "Request fulfilled, document follows"),
        301 => (
            "Moved Permanently",
            "Object moved permanently -- see URI list",
        ),
        400 => ("Bad Request", "Bad request syntax or unsupported method"),
        404 => ("Not Found", "Nothing matches the given URI"),
        414 => ("Request-URI Too Long", "URI is too long"),
        431 => (
            "Request Header Fields Too Large",
            "The server refuses to accept the request because the header fields are too large",
        ),
        501 => ("Not Implemented", "Server does not support this operation"),
        505 => ("HTTP Version Not Supported", "Cannot fulfill request"),
        _ => ("???", "???"),
    }
}

const ERROR_PAGE_HEAD: &str = "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n";

/// Python's `DEFAULT_ERROR_MESSAGE` filled in.
fn error_page(code: u16, message: &str, explain: &str) -> String {
    format!(
        "{ERROR_PAGE_HEAD}        <p>Error code: {code}</p>\n        <p>Message: {}.</p>\n        <p>Error code explanation: {code} - {}.</p>\n    </body>\n</html>\n",
        html_escape(message),
        html_escape(explain)
    )
}

/// Writes answers and log lines the way Python's handler does.
struct Responder<'a, W: Write> {
    out: &'a mut W,
    info: &'a ConnInfo,
    log: &'a mut dyn FnMut(String),
}

impl<W: Write> Responder<'_, W> {
    /// `log_message`: client address, local time, and the message with control
    /// characters escaped (Python 3.11.4+ does, so logs cannot forge lines).
    fn log_message(&mut self, message: &str) {
        let mut escaped = String::with_capacity(message.len());
        for c in message.chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                    escaped.push_str(&format!("\\x{:02x}", c as u32));
                }
                c => escaped.push(c),
            }
        }
        let line = format!(
            "{} - - [{}] {escaped}",
            self.info.peer.ip(),
            log_date_time(SystemTime::now())
        );
        (self.log)(line);
    }

    /// `send_response`: log the request, then the status line and the standard
    /// headers, unless the request is HTTP/0.9.
    fn start(
        &mut self,
        req: &Request,
        code: u16,
        message: Option<&str>,
        headers: &[(&str, String)],
    ) -> io::Result<()> {
        self.log_message(&format!("\"{}\" {code} -", req.requestline));
        if req.is_http09() {
            return Ok(());
        }
        let message = message.unwrap_or(status_text(code).0);
        let version = "HTTP/1.0";
        let mut head = to_latin1(&format!("{version} {code} {message}\r\n"));
        head.extend(to_latin1(&format!(
            "Server: {SERVER_NAME}\r\nDate: {}\r\n",
            http_date(SystemTime::now())
        )));
        for (name, value) in headers {
            head.extend(to_latin1(&format!("{name}: {value}\r\n")));
        }
        head.extend_from_slice(b"\r\n");
        self.out.write_all(&head)
    }

    /// `send_error`: log "code N, message M", then the HTML error page (no body
    /// for HEAD).
    fn error(&mut self, req: &Request, code: u16, message: Option<&str>) -> io::Result<()> {
        let (short, explain) = status_text(code);
        let message = message.unwrap_or(short);
        self.log_message(&format!("code {code}, message {message}"));
        let body = error_page(code, message, explain);
        self.start(
            req,
            code,
            Some(message),
            &[
                ("Connection", "close".into()),
                ("Content-Type", "text/html;charset=utf-8".into()),
                ("Content-Length", body.len().to_string()),
            ],
        )?;
        if req.command.as_deref() != Some("HEAD") {
            self.out.write_all(body.as_bytes())?;
        }
        Ok(())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Read and answer one request. Write errors mean the client left: the
/// answer is abandoned silently.
fn handle_request<R: BufRead, W: Write>(
    reader: &mut R,
    out: &mut W,
    info: &ConnInfo,
    served: &Served,
    log: &mut dyn FnMut(String),
) {
    let mut resp = Responder { out, info, log };
    let _ = answer(reader, &mut resp, served);
}

fn answer<R: BufRead, W: Write>(
    reader: &mut R,
    resp: &mut Responder<'_, W>,
    served: &Served,
) -> io::Result<()> {
    let mut raw = Vec::new();
    if let Err(e) = reader.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut raw) {
        if is_timeout(&e) {
            resp.log_message("Request timed out: TimeoutError('timed out')");
        }
        return Ok(());
    }
    if raw.is_empty() {
        return Ok(()); // connected and left without a word
    }
    let mut req = Request {
        requestline: String::new(),
        version: "HTTP/0.9".into(),
        command: None,
        path: String::new(),
    };
    if raw.len() > MAX_LINE {
        req.version = String::new();
        return resp.error(&req, 414, None);
    }
    let line = latin1(&raw);
    req.requestline = line.trim_end_matches(['\r', '\n']).to_string();
    match parse_request_line(&req.requestline) {
        RequestLine::Empty => return Ok(()),
        RequestLine::Error {
            code,
            message,
            version,
        } => {
            req.version = version;
            return resp.error(&req, code, Some(&message));
        }
        RequestLine::Ok {
            command,
            path,
            version,
        } => {
            req.command = Some(command);
            req.path = path;
            req.version = version;
        }
    }
    // Headers are read (and ignored) like http.client.parse_headers, even for
    // HTTP/0.9; the end of input ends them too.
    let mut count = 0;
    loop {
        let mut header = Vec::new();
        match reader
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut header)
        {
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                resp.log_message("Request timed out: TimeoutError('timed out')");
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
        if header.len() > MAX_LINE {
            return resp.error(&req, 431, Some("Line too long"));
        }
        count += 1;
        if count > MAX_HEADERS {
            return resp.error(&req, 431, Some("Too many headers"));
        }
        if matches!(header.as_slice(), b"" | b"\n" | b"\r\n") {
            break;
        }
    }
    match req.command.as_deref() {
        Some("GET") => serve_get(&req, resp, served, false),
        Some("HEAD") => serve_get(&req, resp, served, true),
        other => {
            let message = format!("Unsupported method ({})", py_repr(other.unwrap_or("")));
            resp.error(&req, 501, Some(&message))
        }
    }
}

fn serve_get<W: Write>(
    req: &Request,
    resp: &mut Responder<'_, W>,
    served: &Served,
    head_only: bool,
) -> io::Result<()> {
    match served {
        Served::Page { node } => {
            let path = split_url(&req.path).0;
            if path != "/" && path != "/index.html" {
                return resp.error(req, 404, Some("File not found"));
            }
            let body = node_page(node, resp.info);
            let local = resp
                .info
                .local
                .map_or_else(|| "unknown".to_string(), |a| a.to_string());
            resp.start(
                req,
                200,
                None,
                &[
                    ("Content-type", "text/html; charset=utf-8".into()),
                    ("Content-Length", body.len().to_string()),
                    ("X-Nslab-Node", header_safe(node)),
                    ("X-Nslab-Client", resp.info.peer.to_string()),
                    ("X-Nslab-Server", local),
                ],
            )?;
            if !head_only {
                resp.out.write_all(body.as_bytes())?;
            }
            Ok(())
        }
        Served::Directory { root } => serve_directory(req, resp, root, head_only),
    }
}

/// Printable ASCII only, so a header line cannot be broken or mis-encoded.
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn node_page(node: &str, info: &ConnInfo) -> String {
    let node = html_escape(node);
    let local = info
        .local
        .map_or_else(|| "unknown".to_string(), |a| a.to_string());
    format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{node}</title>\n</head>\n<body>\n<h1>Hello from {node}</h1>\n<p>Server address: {local}</p>\n<p>Client address: {}</p>\n</body>\n</html>\n",
        info.peer
    )
}

/// Split a request target into (path, query with '?', fragment with '#'),
/// the way `urllib.parse.urlsplit` separates them.
fn split_url(target: &str) -> (&str, &str, &str) {
    let (before_fragment, fragment) = match target.find('#') {
        Some(i) => target.split_at(i),
        None => (target, ""),
    };
    let (path, query) = match before_fragment.find('?') {
        Some(i) => before_fragment.split_at(i),
        None => (before_fragment, ""),
    };
    (path, query, fragment)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decoding to bytes; malformed escapes stay as they are (as Python).
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = to_latin1(s);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// `urllib.parse.quote(name)`: unreserved characters and '/' stay.
fn percent_encode(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Map a request path onto `root` lexically, like Python's `translate_path`:
/// query and fragment dropped, percent-escapes decoded, `.` skipped and `..`
/// never climbing above the root. Returns the path and whether the request
/// ended with '/'. `None` for paths that cannot name a file (NUL bytes).
fn translate_path(root: &Path, target: &str) -> Option<(PathBuf, bool)> {
    // Python cuts at '?' first, then at '#'.
    let path = target.split('?').next().unwrap_or_default();
    let path = path.split('#').next().unwrap_or_default();
    let trailing_slash = path.trim_end().ends_with('/');
    let decoded = percent_decode(path);
    if decoded.contains(&0) {
        return None;
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in decoded.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut full = root.to_path_buf();
    for p in parts {
        full.push(OsStr::from_bytes(p));
    }
    Some((full, trailing_slash))
}

/// The canonical form of `path` if it exists and stays inside `root` once
/// symlinks are resolved; a symlink pointing out of the root is "not found".
fn contained(root: &Path, path: &Path) -> Option<PathBuf> {
    let real = path.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

fn serve_directory<W: Write>(
    req: &Request,
    resp: &mut Responder<'_, W>,
    root: &Path,
    head_only: bool,
) -> io::Result<()> {
    let not_found = |resp: &mut Responder<'_, W>| resp.error(req, 404, Some("File not found"));
    let Some((path, trailing_slash)) = translate_path(root, &req.path) else {
        return not_found(resp);
    };
    let Some(mut real) = contained(root, &path) else {
        return not_found(resp);
    };
    if real.is_dir() {
        let (url_path, query, fragment) = split_url(&req.path);
        if !url_path.ends_with('/') {
            // Like Apache and Python: a directory is addressed with a final '/'.
            let location = format!("{url_path}/{query}{fragment}");
            return resp.start(
                req,
                301,
                None,
                &[("Location", location), ("Content-Length", "0".into())],
            );
        }
        let index = ["index.html", "index.htm"]
            .iter()
            .filter_map(|name| contained(root, &real.join(name)))
            .find(|p| p.is_file());
        match index {
            Some(index) => real = index,
            None => return list_directory(req, resp, &real, head_only),
        }
    }
    if trailing_slash {
        return not_found(resp);
    }
    let Ok(file) = File::open(&real) else {
        return not_found(resp);
    };
    let Ok(meta) = file.metadata() else {
        return not_found(resp);
    };
    let mut headers = vec![
        ("Content-type", guess_type(&real).to_string()),
        ("Content-Length", meta.len().to_string()),
    ];
    if let Ok(modified) = meta.modified() {
        headers.push(("Last-Modified", http_date(modified)));
    }
    resp.start(req, 200, None, &headers)?;
    if !head_only {
        io::copy(&mut file.take(meta.len()), resp.out)?;
    }
    Ok(())
}

fn list_directory<W: Write>(
    req: &Request,
    resp: &mut Responder<'_, W>,
    dir: &Path,
    head_only: bool,
) -> io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return resp.error(req, 404, Some("No permission to list directory"));
    };
    let mut names: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let raw = e.file_name().as_bytes().to_vec();
            (String::from_utf8_lossy(&raw).to_lowercase(), raw)
        })
        .collect();
    names.sort();
    let display_path = html_escape(&String::from_utf8_lossy(&percent_decode(&req.path)));
    let title = format!("Directory listing for {display_path}");
    let mut html = format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<hr>\n<ul>\n"
    );
    for (_, raw) in &names {
        let full = dir.join(OsStr::from_bytes(raw));
        let mut link = raw.clone();
        let mut display = String::from_utf8_lossy(raw).into_owned();
        if full.is_dir() {
            link.push(b'/');
            display.push('/');
        }
        if full
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            display.push('@');
        }
        html.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>\n",
            percent_encode(&link),
            html_escape(&display)
        ));
    }
    html.push_str("</ul>\n<hr>\n</body>\n</html>\n");
    resp.start(
        req,
        200,
        None,
        &[
            ("Content-type", "text/html; charset=utf-8".into()),
            ("Content-Length", html.len().to_string()),
        ],
    )?;
    if !head_only {
        resp.out.write_all(html.as_bytes())?;
    }
    Ok(())
}

/// Content types for common extensions, as Python's `mimetypes` names them.
fn guess_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "txt" | "text" | "log" => "text/plain",
        "css" => "text/css",
        "csv" => "text/csv",
        "md" => "text/markdown",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "xml" => "text/xml",
        "yaml" | "yml" => "application/yaml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/vnd.microsoft.icon",
        "pdf" => "application/pdf",
        "gz" => "application/gzip",
        "bz2" => "application/x-bzip2",
        "xz" => "application/x-xz",
        "tar" => "application/x-tar",
        "zip" => "application/zip",
        "pcap" => "application/vnd.tcpdump.pcap",
        _ => "application/octet-stream",
    }
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 7231 date, e.g. `Sun, 29 Nov 2026 03:13:19 GMT`.
fn http_date(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days + 3).rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Python's `log_date_time_string`: local time as `29/Nov/2026 10:00:00`.
fn log_date_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as libc::time_t);
    // nix has no localtime_r (nor any local-time call), hence the raw one.
    // SAFETY: localtime_r writes only into the tm we own; a zeroed tm is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = !unsafe { libc::localtime_r(&secs, &mut tm) }.is_null();
    if !ok {
        return http_date(t);
    }
    format!(
        "{:02}/{}/{:04} {:02}:{:02}:{:02}",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    fn line_error(line: &str) -> (u16, String, String) {
        match parse_request_line(line) {
            RequestLine::Error {
                code,
                message,
                version,
            } => (code, message, version),
            other => panic!("{line:?}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn request_lines_parse_like_python() {
        assert_eq!(
            parse_request_line("GET /a?b HTTP/1.1"),
            RequestLine::Ok {
                command: "GET".into(),
                path: "/a?b".into(),
                version: "HTTP/1.1".into()
            }
        );
        assert_eq!(parse_request_line(" \t "), RequestLine::Empty);
        assert_eq!(
            line_error("hello"),
            (
                400,
                "Bad request syntax ('hello')".into(),
                "HTTP/0.9".into()
            )
        );
        assert_eq!(
            line_error("GET / HTTP/1.1 x"),
            (400, "Bad request version ('x')".into(), "HTTP/0.9".into())
        );
        // Four words with a valid version: the version is known, so the
        // answer gets a status line.
        assert_eq!(
            line_error("a b c HTTP/1.0"),
            (
                400,
                "Bad request syntax ('a b c HTTP/1.0')".into(),
                "HTTP/1.0".into()
            )
        );
        assert_eq!(line_error("GET / HTTP/2.0").0, 505);
        assert_eq!(line_error("GET / HTTP/2.0").1, "Invalid HTTP version (2.0)");
        assert_eq!(
            line_error("GET / HTTP/1").1,
            "Bad request version ('HTTP/1')"
        );
        assert_eq!(line_error("GET / HTTP/1.x").0, 400);
        assert_eq!(line_error("GET / HTTP/+1.1").0, 400);
        assert_eq!(
            line_error("POST /"),
            (
                400,
                "Bad HTTP/0.9 request type ('POST')".into(),
                "HTTP/0.9".into()
            )
        );
        assert_eq!(
            parse_request_line("GET /"),
            RequestLine::Ok {
                command: "GET".into(),
                path: "/".into(),
                version: "HTTP/0.9".into()
            }
        );
        match parse_request_line("GET ///etc/passwd HTTP/1.0") {
            RequestLine::Ok { path, .. } => assert_eq!(path, "/etc/passwd"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_repr("hello"), "'hello'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\"b'c"), "'a\"b\\'c'");
        assert_eq!(py_repr("tab\there"), "'tab\\there'");
        assert_eq!(
            py_repr(&latin1(b"\x00\x7f\x85\xa0\xad\xe9\\")),
            "'\\x00\\x7f\\x85\\xa0\\xad\u{e9}\\\\'"
        );
    }

    /// Run one request through the server logic in memory.
    fn exchange(served: &Served, request: &[u8]) -> (Vec<u8>, Vec<String>) {
        let info = ConnInfo {
            peer: "198.51.100.7:40000".parse().unwrap(),
            local: Some("203.0.113.2:8000".parse().unwrap()),
        };
        let mut out = Vec::new();
        let mut logs = Vec::new();
        let mut log = |l: String| logs.push(l);
        handle_request(&mut Cursor::new(request), &mut out, &info, served, &mut log);
        (out, logs)
    }

    fn page() -> Served {
        Served::Page {
            node: "black".into(),
        }
    }

    /// Python 3.11's answer to `hello`, byte for byte (captured from
    /// `python3 -m http.server`): no status line, only the page.
    pub(crate) const PYTHON_HELLO_ANSWER: &str = "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        <p>Error code: 400</p>\n        <p>Message: Bad request syntax ('hello').</p>\n        <p>Error code explanation: 400 - Bad request syntax or unsupported method.</p>\n    </body>\n</html>\n";

    #[test]
    fn answers_hello_like_python() {
        let (out, logs) = exchange(&page(), b"hello\r\n");
        assert_eq!(String::from_utf8(out).unwrap(), PYTHON_HELLO_ANSWER);
        assert_eq!(logs.len(), 2, "{logs:?}");
        assert!(logs[0].starts_with("198.51.100.7 - - ["), "{}", logs[0]);
        assert!(logs[0].ends_with("] code 400, message Bad request syntax ('hello')"));
        assert!(logs[1].ends_with("] \"hello\" 400 -"), "{}", logs[1]);
    }

    #[test]
    fn error_with_known_version_has_status_line() {
        let (out, _) = exchange(&page(), b"a b c HTTP/1.0\r\n\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.0 400 Bad request syntax ('a b c HTTP/1.0')\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nContent-Type: text/html;charset=utf-8\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), len);
    }

    #[test]
    fn serves_the_node_page_and_python_statuses() {
        let (out, logs) = exchange(&page(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
        assert!(text.contains("X-Nslab-Node: black\r\n"));
        assert!(text.contains("<h1>Hello from black</h1>"));
        assert!(text.contains("Client address: 198.51.100.7:40000"));
        assert!(text.contains("Server address: 203.0.113.2:8000"));
        assert!(logs[0].ends_with("\"GET / HTTP/1.1\" 200 -"), "{logs:?}");

        let (out, _) = exchange(&page(), b"HEAD / HTTP/1.0\r\n\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("\r\n\r\n"), "HEAD has no body: {text}");

        let (out, logs) = exchange(&page(), b"FOO / HTTP/1.0\r\n\r\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.0 501 Unsupported method ('FOO')\r\n"));
        assert!(logs[0].ends_with("code 501, message Unsupported method ('FOO')"));

        let (out, _) = exchange(&page(), b"GET /nope HTTP/1.0\r\n\r\n");
        assert!(out.starts_with(b"HTTP/1.0 404 File not found\r\n"));

        // HTTP/0.9: the page alone.
        let (out, _) = exchange(&page(), b"GET /\r\n\r\n");
        assert!(out.starts_with(b"<!DOCTYPE HTML>"));

        // Blank line or nothing: closed without an answer or a log line.
        assert_eq!(exchange(&page(), b"\r\n"), (vec![], vec![]));
        assert_eq!(exchange(&page(), b""), (vec![], vec![]));
    }

    #[test]
    fn oversized_lines_and_headers() {
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
        long.extend_from_slice(b" HTTP/1.0\r\n\r\n");
        let (out, _) = exchange(&page(), &long);
        assert!(out.starts_with(b"HTTP/1.0 414 Request-URI Too Long\r\n"));

        let mut many = b"GET / HTTP/1.0\r\n".to_vec();
        for i in 0..150 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let (out, _) = exchange(&page(), &many);
        assert!(out.starts_with(b"HTTP/1.0 431 Too many headers\r\n"));
    }

    #[test]
    fn log_lines_escape_control_characters() {
        let (_, logs) = exchange(&page(), b"GET /\x1b[31m HTTP/1.0\r\n\r\n");
        assert!(
            logs[1].contains("\"GET /\\x1b[31m HTTP/1.0\" 404 -"),
            "{logs:?}"
        );
    }

    #[test]
    fn translate_path_never_leaves_the_root() {
        let root = Path::new("/srv/www");
        let cases = [
            ("/", "/srv/www", true),
            ("/a/b.txt?x=1#f", "/srv/www/a/b.txt", false),
            ("/../../etc/passwd", "/srv/www/etc/passwd", false),
            ("/%2e%2e/%2E%2E/etc/passwd", "/srv/www/etc/passwd", false),
            ("/a/..%2f..%2f..%2fetc", "/srv/www/etc", false),
            ("/a/./b/../c/", "/srv/www/a/c", true),
            ("..", "/srv/www", false),
            ("/%zz%4", "/srv/www/%zz%4", false),
        ];
        for (target, want, slash) in cases {
            let (got, trailing) = translate_path(root, target).unwrap();
            assert_eq!(got, Path::new(want), "{target}");
            assert_eq!(trailing, slash, "{target}");
            assert!(got.starts_with(root));
        }
        assert_eq!(translate_path(root, "/a%00b"), None);
    }

    fn dir_fixture() -> (tempfile::TempDir, Served) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("www");
        std::fs::create_dir_all(root.join("sub dir")).unwrap();
        std::fs::write(root.join("hello.txt"), "hi there\n").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "secret\n").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("updir")).unwrap();
        std::os::unix::fs::symlink("hello.txt", root.join("inside")).unwrap();
        let served = Served::Directory {
            root: root.canonicalize().unwrap(),
        };
        (tmp, served)
    }

    fn get(served: &Served, path: &str) -> String {
        let req = format!("GET {path} HTTP/1.0\r\n\r\n");
        String::from_utf8_lossy(&exchange(served, req.as_bytes()).0).into_owned()
    }

    #[test]
    fn directory_serving_is_python_like_and_contained() {
        let (_tmp, served) = dir_fixture();
        let file = get(&served, "/hello.txt");
        assert!(file.starts_with("HTTP/1.0 200 OK\r\n"), "{file}");
        assert!(file.contains("Content-type: text/plain\r\n"));
        assert!(file.contains("Last-Modified: "));
        assert!(file.ends_with("\r\n\r\nhi there\n"));
        assert!(
            get(&served, "/inside").ends_with("hi there\n"),
            "symlink inside the root"
        );

        for escape in [
            "/escape",
            "/updir/secret.txt",
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/hello.txt/",
            "/missing",
        ] {
            let answer = get(&served, escape);
            assert!(
                answer.starts_with("HTTP/1.0 404 File not found"),
                "{escape}: {answer}"
            );
            assert!(!answer.contains("secret\n"), "{escape}");
        }

        let redirect = get(&served, "/sub%20dir?q=1");
        assert!(
            redirect.starts_with("HTTP/1.0 301 Moved Permanently\r\n"),
            "{redirect}"
        );
        assert!(redirect.contains("\r\nLocation: /sub%20dir/?q=1\r\n"));

        let listing = get(&served, "/");
        assert!(listing.contains("<title>Directory listing for /</title>"));
        assert!(listing.contains("<li><a href=\"hello.txt\">hello.txt</a></li>"));
        assert!(listing.contains("<li><a href=\"sub%20dir/\">sub dir/</a></li>"));
        assert!(listing.contains("<li><a href=\"inside\">inside@</a></li>"));
        // Entries are sorted case-insensitively, as Python does.
        let pos = |s: &str| listing.find(s).unwrap();
        assert!(pos("escape") < pos("hello.txt") && pos("hello.txt") < pos("inside"));

        let head =
            String::from_utf8(exchange(&served, b"HEAD /hello.txt HTTP/1.0\r\n\r\n").0).unwrap();
        assert!(head.contains("Content-Length: 9\r\n") && head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn server_handler_never_panics_on_junk() {
        let (_tmp, served) = dir_fixture();
        let samples: [&[u8]; 10] = [
            b"\xff\xfe\r\n",
            b"GET \xff HTTP/1.1\r\n\r\n",
            b"GET /%ff%fe HTTP/1.0\r\n\r\n",
            b"GET %%%%% HTTP/1.0\r\n\r\n",
            b"GET / HTTP/99999999999.1\r\n\r\n",
            b"GET / HTTP/1.1\r\n: \r\n\r\n",
            b"\0\0\0\n",
            b"GET /a\0b HTTP/1.0\r\n\r\n",
            b"GET\t/\tHTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost",
        ];
        for s in samples {
            for n in 0..=s.len() {
                let _ = exchange(&served, &s[..n]);
            }
        }
    }

    #[test]
    fn dates() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(at(1_795_921_999)),
            "Sun, 29 Nov 2026 03:13:19 GMT"
        );
        assert_eq!(http_date(at(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            http_date(at(4_102_444_800)),
            "Fri, 01 Jan 2100 00:00:00 GMT"
        );
        let local = log_date_time(at(1_795_921_999));
        assert_eq!(local.len(), "29/Nov/2026 03:13:19".len(), "{local}");
    }
}
