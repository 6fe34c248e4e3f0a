//! `nslab web`: a running lab in a browser. The server draws the lab with
//! nslab's own layout (computed once), serves its state, and streams the
//! packets captured on one end of every cable as server-sent events.
//!
//! Every request needs the token (`?token=`, the `nslab_token` cookie the
//! page gets, or an `X-Nslab-Token` header): 401 without it. Read-only
//! servers refuse every method but GET and HEAD with 403.

pub mod actions;
pub mod events;
pub mod path;
pub mod recording;

use crate::capture::decode::{Filter, Summary};
use crate::error::{Error, Result};
use crate::graph::Layout;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use events::{CableEvent, CableMap, ClientFilter, Sampler};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

const INDEX_HTML: &str = include_str!("../../assets/web/index.html");
const APP_JS: &str = include_str!("../../assets/web/app.js");
const STYLE_CSS: &str = include_str!("../../assets/web/style.css");
const ACTIONS_JS: &str = include_str!("../../assets/web/actions.js");
const ACTIONS_CSS: &str = include_str!("../../assets/web/actions.css");

/// How `nslab web` serves.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Refuse every method but GET and HEAD (403).
    pub read_only: bool,
    /// Events per second per client; above it the client gets a sample.
    pub max_events: u64,
    /// Save the topology, the packets and the actions' answers here (pcapng).
    pub record: Option<std::path::PathBuf>,
}

/// A 128-bit token from the kernel's random source, in hex.
pub fn new_token() -> Result<String> {
    let mut b = [0u8; 16];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        return Err(Error::io("read a random token")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Equal strings, in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A packet as the capture thread hands it to the clients.
#[derive(Debug, Clone)]
struct Seen {
    event: CableEvent,
    summary: Summary,
}

struct State {
    token: String,
    opts: WebOptions,
    /// Computed once at start: a big lab is laid out once, not per page load.
    layout: Arc<Layout>,
    lab: Arc<crate::Lab>,
    tx: broadcast::Sender<Arc<Seen>>,
    capturing: Vec<String>,
    /// Event streams end when it is set: graceful shutdown waits for them.
    stop: &'static AtomicBool,
    recorder: Option<Arc<std::sync::Mutex<recording::Recorder>>>,
}

/// Serve `lab` on `listener` until `stop` is set: the page, `/api/lab` and
/// `/api/events`, with packets captured on one end of each of `layout`'s cables.
pub fn serve(
    lab: crate::Lab,
    layout: Layout,
    listener: std::net::TcpListener,
    token: String,
    opts: WebOptions,
    stop: &'static AtomicBool,
) -> Result<()> {
    let map = CableMap::new(&layout);
    let targets: Vec<&str> = map.targets().iter().map(String::as_str).collect();
    let mut cap = lab.capture(&targets, &crate::CaptureOptions::default())?;
    let capturing = cap.labels().to_vec();
    let recorder = match &opts.record {
        Some(f) => Some(Arc::new(std::sync::Mutex::new(
            recording::Recorder::create(f, &layout, &capturing)?,
        ))),
        None => None,
    };
    let record = recorder.clone();
    let (tx, _) = broadcast::channel::<Arc<Seen>>(4096);
    let feed = tx.clone();
    let pump = std::thread::Builder::new()
        .name("nslab-web-capture".into())
        .spawn(move || {
            let mut record_error = None;
            while let Some(p) = cap.next_until(stop) {
                if record_error.is_none()
                    && let Some(r) = &record
                    && let Ok(mut r) = r.lock()
                    && let Err(e) = r.packet(&p)
                {
                    // Serving goes on; the error ends the command when it stops.
                    record_error = Some(e);
                }
                if let Some(event) =
                    map.event(&p.label, p.direction, p.ts, p.orig_len, &p.summary, &p.text)
                {
                    // No client listening is not an error.
                    let _ = feed.send(Arc::new(Seen {
                        event,
                        summary: p.summary,
                    }));
                }
            }
            let stats = cap.stop()?;
            record_error.map_or(Ok(stats), Err)
        })
        .map_err(Error::io("start the capture thread"))?;

    let state = Arc::new(State {
        token,
        opts,
        layout: Arc::new(layout),
        lab: Arc::new(lab),
        tx,
        capturing,
        stop,
        recorder,
    });
    let app = axum::Router::new().fallback(
        move |m: Method, u: Uri, h: HeaderMap, body: axum::body::Bytes| {
            let st = state.clone();
            async move { route(st, m, u, h, body).await }
        },
    );
    let served = serve_until(listener, app, stop)?;
    let captured = pump
        .join()
        .map_err(|_| Error::Failed("the capture thread panicked".into()))?;
    served.map_err(Error::io("serve HTTP"))?;
    captured.map(|_| ())
}

/// Serve `app` on `listener` on a one-thread runtime until `stop` is set,
/// then set `stop` (open event streams keep the server from returning only
/// until they notice): the server's own outcome, or the error that kept it
/// from starting.
fn serve_until(
    listener: std::net::TcpListener,
    app: axum::Router,
    stop: &'static AtomicBool,
) -> Result<std::io::Result<()>> {
    listener
        .set_nonblocking(true)
        .map_err(Error::io("set the listening socket non-blocking"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("start the web server's runtime"))?;
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
    });
    stop.store(true, Ordering::SeqCst);
    Ok(served)
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.into() + "\n",
    )
        .into_response()
}

fn query(u: &Uri) -> HashMap<String, String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(u)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// The token of a request: query, header or cookie.
fn token_of(q: &HashMap<String, String>, h: &HeaderMap) -> Option<String> {
    if let Some(t) = q.get("token") {
        return Some(t.clone());
    }
    if let Some(t) = h.get("x-nslab-token").and_then(|v| v.to_str().ok()) {
        return Some(t.to_string());
    }
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("nslab_token="))
        .map(str::to_string)
        .next()
}

async fn route(
    st: Arc<State>,
    m: Method,
    u: Uri,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let q = query(&u);
    if let Some(r) = unauthorized(&q, &h, &st.token) {
        return r;
    }
    if st.opts.read_only && m != Method::GET && m != Method::HEAD {
        return text(StatusCode::FORBIDDEN, "403: the server is read-only");
    }
    if m == Method::POST
        && let Some(r) = actions::post(&st, u.path(), &body).await
    {
        return r;
    }
    if m != Method::GET && m != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405: only GET");
    }
    if let Some(r) = asset(u.path(), &st.token) {
        return r;
    }
    match u.path() {
        // It sends probes: an action, even as a GET.
        "/api/check" if st.opts.read_only => {
            text(StatusCode::FORBIDDEN, "403: the server is read-only")
        }
        "/api/check" => actions::check(&st).await,
        "/api/lab" => lab_json(&st).await,
        "/api/events" => events(&st, &q),
        p => text(StatusCode::NOT_FOUND, format!("404: no {p} here")),
    }
}

/// The layout, the settings, and the lab as the kernel has it now (`nslab status`).
async fn lab_json(st: &Arc<State>) -> Response {
    let lab = st.lab.clone();
    let status = tokio::task::spawn_blocking(move || lab.status()).await;
    let (status, status_error) = match status {
        Ok(Ok(s)) => (serde_json::to_value(&s).ok(), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(e) => (None, Some(e.to_string())),
    };
    let body = serde_json::json!({
        "layout": &*st.layout,
        "status": status,
        "status_error": status_error,
        "read_only": st.opts.read_only,
        "max_events": st.opts.max_events,
        "capturing": st.capturing,
    });
    json_response(&body)
}

/// A JSON body as `application/json`.
fn json_response(body: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The 401 for a request without the server's token (in the query, the
/// `x-nslab-token` header or the cookie); `None` when it has it.
fn unauthorized(q: &HashMap<String, String>, h: &HeaderMap, token: &str) -> Option<Response> {
    if token_of(q, h).is_some_and(|t| same_token(&t, token)) {
        return None;
    }
    Some(text(
        StatusCode::UNAUTHORIZED,
        "401: this nslab web server needs the token printed with its URL (?token=...)",
    ))
}

/// The page and its scripts and styles at `path` (`None` for any other
/// path), with the cookie that carries `token` on the page's own requests.
fn asset(path: &str, token: &str) -> Option<Response> {
    let (ty, body) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            INDEX_HTML.replace("__TOKEN__", token),
        ),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS.to_string()),
        "/style.css" => ("text/css; charset=utf-8", STYLE_CSS.to_string()),
        "/actions.js" => ("text/javascript; charset=utf-8", ACTIONS_JS.to_string()),
        "/actions.css" => ("text/css; charset=utf-8", ACTIONS_CSS.to_string()),
        _ => return None,
    };
    Some(
        (
            [
                (header::CONTENT_TYPE, ty.to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
                // The page's own fetches and EventSource carry the token as a cookie.
                (
                    header::SET_COOKIE,
                    format!("nslab_token={token}; Path=/; HttpOnly; SameSite=Strict"),
                ),
            ],
            body,
        )
            .into_response(),
    )
}

/// The client's filter from the query: `proto`, `host`, `port` as `nslab
/// capture` takes them, `noise=0` to hide ARP/ND/MLD/STP.
fn client_filter(q: &HashMap<String, String>) -> std::result::Result<ClientFilter, String> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let f = Filter::new(get("proto"), get("host"), get("port")).map_err(|e| e.to_string())?;
    Ok(ClientFilter {
        filter: (!f.is_empty()).then_some(f),
        hide_noise: get("noise") == Some("0"),
    })
}

struct Client {
    stop: &'static AtomicBool,
    rx: broadcast::Receiver<Arc<Seen>>,
    filter: ClientFilter,
    sampler: Sampler,
    queue: VecDeque<Event>,
}

/// The filter of an event stream's query, or the answer when there is no
/// stream to give: a bad filter, or only a check of one (the page checks a
/// filter before it reconnects with it).
fn stream_filter(q: &HashMap<String, String>) -> std::result::Result<ClientFilter, Box<Response>> {
    let filter = client_filter(q)
        .map_err(|e| Box::new(text(StatusCode::BAD_REQUEST, format!("400: {e}"))))?;
    if q.contains_key("check") {
        return Err(Box::new(StatusCode::NO_CONTENT.into_response()));
    }
    Ok(filter)
}

/// An event stream as the answer: kept alive, never cached.
fn sse_response<S>(stream: S) -> Response
where
    S: futures_util::Stream<Item = std::result::Result<Event, std::convert::Infallible>>
        + Send
        + 'static,
{
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
    r
}

fn events(st: &Arc<State>, q: &HashMap<String, String>) -> Response {
    let filter = match stream_filter(q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let client = Client {
        stop: st.stop,
        rx: st.tx.subscribe(),
        filter,
        sampler: Sampler::new(st.opts.max_events, Instant::now()),
        queue: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(client, |mut c| async move {
        loop {
            if c.stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(e) = c.queue.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(e), c));
            }
            let got = tokio::time::timeout(Duration::from_millis(250), c.rx.recv()).await;
            if let Some(s) = c.sampler.tick(Instant::now()) {
                c.queue.push_back(sse("sampling", &s));
            }
            match got {
                Err(_) => {}
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => c.sampler.lost(n),
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Ok(Ok(p)) => {
                    if c.filter.passes(&p.event, &p.summary) && c.sampler.offer() {
                        c.queue.push_back(sse("packet", &p.event));
                    }
                }
            }
        }
    });
    sse_response(stream)
}

fn sse<T: serde::Serialize>(name: &str, v: &T) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_hex_and_differ() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
        assert!(!same_token(&a, &a[..31]));
    }

    #[test]
    fn token_comes_from_query_header_or_cookie() {
        let mut q = HashMap::new();
        let mut h = HeaderMap::new();
        assert_eq!(token_of(&q, &h), None);
        h.insert(header::COOKIE, "a=b; nslab_token=abc".parse().unwrap());
        assert_eq!(token_of(&q, &h).as_deref(), Some("abc"));
        h.insert("x-nslab-token", "hdr".parse().unwrap());
        assert_eq!(token_of(&q, &h).as_deref(), Some("hdr"));
        q.insert("token".into(), "qry".into());
        assert_eq!(token_of(&q, &h).as_deref(), Some("qry"));
    }

    #[test]
    fn client_filters_as_capture_takes_them() {
        let q = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let f = client_filter(&q(&[("proto", "icmp"), ("noise", "0")])).unwrap();
        assert!(f.hide_noise && f.filter.is_some());
        assert!(
            client_filter(&q(&[("proto", ""), ("port", "")]))
                .unwrap()
                .filter
                .is_none()
        );
        let e = client_filter(&q(&[("proto", "smtp")])).unwrap_err();
        assert!(e.contains("smtp"), "{e}");
        assert!(client_filter(&q(&[("port", "99999")])).is_err());
    }
}
