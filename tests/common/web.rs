//! Shared helpers for the `nslab web` tests: processes reaped on drop, the
//! server's URL, plain HTTP requests, and a headless Chromium through
//! chromedriver (fantoccini).

use fantoccini::{ClientBuilder, Locator};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A process this test started, killed (by its pid) and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request with std's TcpStream: the status line and the body.
pub fn request(addr: &str, method: &str, path: &str, body: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let status = r.lines().next().unwrap_or_default().to_string();
    let body = r
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

/// An open `/api/events` stream at `addr` (no noise), its request sent.
pub fn events(addr: &str, token: &str) -> TcpStream {
    let mut st = TcpStream::connect(addr).unwrap();
    write!(
        st,
        "GET /api/events?token={token}&noise=0 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    st
}

/// The address and token of the URL `nslab web` printed first, if it did.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    url.trim()
        .strip_prefix("http://")
        .and_then(|r| r.split_once("/?token="))
        .map(|(a, t)| (a.to_string(), t.to_string()))
}

/// Spawn `cmd` (an `nslab web`) with its stdout piped: the process and the
/// first line it printed (its URL).
pub fn spawn_web(mut cmd: Command) -> (Proc, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let p = Proc(child);
    let mut url = String::new();
    out.read_line(&mut url).unwrap();
    (p, url)
}

/// Start `nslab web` on a free loopback port: the process and its URL's address and token.
pub fn start_web(args: &[&str]) -> (Proc, String, String) {
    let mut cmd = Command::new(super::bin());
    cmd.arg("web").args(args).args(["--listen", "127.0.0.1:0"]);
    let (web, url) = spawn_web(cmd);
    let (addr, token) =
        parse_url(&url).unwrap_or_else(|| panic!("first line is not the URL: {url:?}"));
    (web, addr, token)
}

/// Whether chromium and chromedriver are there; says which is missing if not.
pub fn have_chromium() -> bool {
    [CHROMIUM, CHROMEDRIVER].iter().all(|tool| {
        let there = std::path::Path::new(tool).exists();
        if !there {
            eprintln!("skipped: {tool} is missing (apt-get install chromium chromium-driver)");
        }
        there
    })
}

/// chromedriver on a free port, and a headless Chromium session through it.
pub async fn browser() -> (Proc, fantoccini::Client) {
    let port = free_port();
    let driver = Proc(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,900"],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect to chromedriver");
    (driver, c)
}

type CmdResult<T> = Result<T, fantoccini::error::CmdError>;

/// The text of the element `l` finds.
pub async fn el_text(c: &fantoccini::Client, l: Locator<'_>) -> CmdResult<String> {
    c.find(l).await?.text().await
}

/// Click the element `l` finds.
pub async fn click(c: &fantoccini::Client, l: Locator<'_>) -> CmdResult<()> {
    c.find(l).await?.click().await
}

/// Wait at most `secs` seconds for an element matching `css`.
pub async fn wait_for(c: &fantoccini::Client, secs: u64, css: &str) -> CmdResult<()> {
    c.wait()
        .at_most(Duration::from_secs(secs))
        .for_element(Locator::Css(css))
        .await
        .map(|_| ())
}

/// Whether any element matches `css`.
pub async fn present(c: &fantoccini::Client, css: &str) -> CmdResult<bool> {
    Ok(!c.find_all(Locator::Css(css)).await?.is_empty())
}
