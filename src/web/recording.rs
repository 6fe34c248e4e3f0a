//! `nslab web --record FILE` and `--replay FILE`. A recording is a plain
//! pcapng file (Wireshark opens it): one interface per captured cable end
//! (named like `bri0:gbrveth`), an Enhanced Packet Block per packet with its
//! direction, and Custom Blocks (type 0x00000BAD, enterprise number
//! [`PEN`]) carrying JSON: first `{"type":"topology", ...}` (the layout the
//! page draws and which cable each interface is), then one `{"type":"act",
//! ...}` per action the page ran (its answer, path and why). Replaying needs
//! no lab and no privileges: the page is served from the file.

use super::events::{CableEvent, CableMap, CapturedEnd, ClientFilter, Sampler};
use super::{asset, json_response, sse, sse_response, stream_filter, text, unauthorized};
use crate::capture::decode::summarize;
use crate::capture::pcap::{Direction, PcapNgWriter};
use crate::error::{Error, Result};
use crate::graph::Layout;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The enterprise number of nslab's custom blocks (IANA's number reserved
/// for documentation and examples, RFC 5612: nslab has none of its own).
pub const PEN: u32 = 32473;
const FORMAT: &str = "nslab-web-recording";

/// Writes a recording as the server runs. Every block is flushed at once:
/// a server that is killed leaves a readable file.
pub struct Recorder {
    w: PcapNgWriter<BufWriter<std::fs::File>>,
    ifaces: HashMap<String, u32>,
    path: String,
}

/// Which cable an interface's packets cross, for its direction `out`:
/// (cable, from, to, forward), as [`CableMap::event`] says.
fn cable_ends(map: &CableMap) -> Value {
    let mut m = serde_json::Map::new();
    for t in map.targets() {
        if let Some(e) = map.end(t) {
            m.insert(t.clone(), json!([e.cable, e.mine, e.other, e.mine_is_a]));
        }
    }
    Value::Object(m)
}

impl Recorder {
    /// Create `file` and write the topology block.
    pub fn create(file: &Path, layout: &Layout, capturing: &[String]) -> Result<Recorder> {
        let path = file.display().to_string();
        let f = std::fs::File::create(file).map_err(Error::io(format!("create {path}")))?;
        let w = PcapNgWriter::new(BufWriter::new(f)).map_err(Error::io(format!("write {path}")))?;
        let mut r = Recorder {
            w,
            ifaces: HashMap::new(),
            path,
        };
        r.block(&json!({
            "format": FORMAT,
            "version": 1,
            "type": "topology",
            "layout": layout,
            "capturing": capturing,
            "cables": cable_ends(&CableMap::new(layout)),
        }))?;
        Ok(r)
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> Error {
        Error::io(format!("write {}", self.path))
    }

    /// A JSON custom block (an action's answer: `{"type":"act",...}`).
    pub fn block(&mut self, v: &Value) -> Result<()> {
        let r = self
            .w
            .write_custom(PEN, v.to_string().as_bytes())
            .and_then(|_| self.w.flush());
        r.map_err(self.io())
    }

    pub fn packet(&mut self, p: &crate::capture::engine::Seen) -> Result<()> {
        let id = match self.ifaces.get(&p.label) {
            Some(id) => *id,
            None => {
                let id = self.w.add_interface(&p.label).map_err(self.io())?;
                self.ifaces.insert(p.label.clone(), id);
                id
            }
        };
        let ts = crate::capture::pcap::Timestamp::new(p.ts.0, p.ts.1);
        let r = self
            .w
            .write(id, ts, p.orig_len, &p.data, Some(p.direction))
            .and_then(|_| self.w.flush());
        r.map_err(self.io())
    }
}

/// What a recording holds.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The topology block: `layout`, `capturing`, `cables`.
    pub topology: Value,
    /// The packets, as the page gets them, in file order.
    pub events: Vec<CableEvent>,
    /// The summaries of the packets (for the client filters).
    pub summaries: Vec<crate::capture::decode::Summary>,
    /// The `act` blocks.
    pub acts: Vec<Value>,
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// The options of a block from offset `i` to `end`: (code, value) pairs.
fn options(b: &[u8], mut i: usize, end: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while i + 4 <= end {
        let code = u16::from_le_bytes([b[i], b[i + 1]]);
        let len = usize::from(u16::from_le_bytes([b[i + 2], b[i + 3]]));
        if code == 0 || i + 4 + len > end {
            break;
        }
        out.push((code, &b[i + 4..i + 4 + len]));
        i += 4 + len.div_ceil(4) * 4;
    }
    out
}

/// Read a recording (`what` names it in errors: the file's path).
pub fn parse(b: &[u8], what: &str) -> Result<Recording> {
    let bad = |m: String| Error::Usage(format!("{what}: not an nslab web recording: {m}"));
    if u32_at(b, 0) != Some(0x0A0D_0D0A) || u32_at(b, 8) != Some(0x1A2B_3C4D) {
        return Err(bad(
            "no little-endian pcapng section header at its start".into()
        ));
    }
    let mut rec = Recording {
        topology: Value::Null,
        events: Vec::new(),
        summaries: Vec::new(),
        acts: Vec::new(),
    };
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let (Some(ty), Some(len)) = (u32_at(b, i), u32_at(b, i + 4)) else {
            return Err(bad(format!("a block header is cut at byte {i}")));
        };
        let len = len as usize;
        if len < 12 || !len.is_multiple_of(4) || i + len > b.len() {
            return Err(bad(format!("the block at byte {i} has a bad length {len}")));
        }
        let (body, end) = (i + 8, i + len - 4);
        match ty {
            // Interface description: its name.
            1 => {
                let name = options(b, body + 8, end)
                    .into_iter()
                    .find(|(c, _)| *c == 2)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                names.push(name);
            }
            // Enhanced packet.
            6 => {
                let field = |k: usize| u32_at(b, body + 4 * k).unwrap_or(0);
                let (id, hi, lo, cap, orig) = (field(0), field(1), field(2), field(3), field(4));
                let start = body + 20;
                let data = b
                    .get(start..start + cap as usize)
                    .filter(|_| start + cap as usize <= end)
                    .ok_or_else(|| bad(format!("the packet at byte {i} is cut")))?;
                let opts_at = start + (cap as usize).div_ceil(4) * 4;
                let flags = options(b, opts_at, end)
                    .into_iter()
                    .find(|(c, _)| *c == 2)
                    .and_then(|(_, v)| u32_at(v, 0))
                    .unwrap_or(0);
                let label = names
                    .get(id as usize)
                    .ok_or_else(|| bad(format!("the packet at byte {i} names interface {id}")))?;
                let ns = (u64::from(hi) << 32) | u64::from(lo);
                let Some(ends) = rec.topology["cables"].get(label).and_then(Value::as_array) else {
                    continue;
                };
                let s = |k: usize| {
                    ends.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                let end = CapturedEnd {
                    cable: s(0),
                    mine: s(1),
                    other: s(2),
                    mine_is_a: ends.get(3).and_then(Value::as_bool).unwrap_or(true),
                };
                // `cables` holds each end as a packet going out of it sees it;
                // the direction flag says 0b01 for received ones.
                let dir = if flags & 0b11 == 0b01 {
                    Direction::In
                } else {
                    Direction::Out
                };
                let summary = summarize(data);
                let text = summary.to_string();
                rec.events
                    .push(end.event(label, dir, ns as f64 / 1e9, orig, &summary, &text));
                rec.summaries.push(summary);
            }
            0x0BAD if u32_at(b, body) == Some(PEN) => {
                let json = &b[body + 4..end];
                let json = &json[..json.iter().rposition(|c| *c != 0).map_or(0, |p| p + 1)];
                let v: Value = serde_json::from_slice(json)
                    .map_err(|e| bad(format!("the custom block at byte {i}: {e}")))?;
                match v["type"].as_str() {
                    Some("topology") if v["format"] == FORMAT => rec.topology = v,
                    Some("act") => rec.acts.push(v),
                    _ => {}
                }
            }
            _ => {}
        }
        i += len;
    }
    if rec.topology.is_null() {
        return Err(bad("no topology block (it holds packets only?)".into()));
    }
    Ok(rec)
}

/// Read and parse a recording file.
pub fn load(file: &Path) -> Result<Recording> {
    let what = file.display().to_string();
    // A file that is not there or not readable is the user's input: exit 2.
    let b =
        std::fs::read(file).map_err(|e| Error::Usage(format!("{what}: cannot read it: {e}")))?;
    parse(&b, &what)
}

struct Replay {
    rec: Recording,
    token: String,
    speed: f64,
    max_events: u64,
    stop: &'static AtomicBool,
}

/// Serve `rec` on `listener` as `nslab web` served the lab, until `stop`:
/// every event stream replays the packets with their recorded spacing
/// (divided by `speed`); nothing can be changed (403).
pub fn serve_replay(
    rec: Recording,
    listener: std::net::TcpListener,
    token: String,
    speed: f64,
    max_events: u64,
    stop: &'static AtomicBool,
) -> Result<()> {
    let st = Arc::new(Replay {
        rec,
        token,
        speed,
        max_events,
        stop,
    });
    let app = axum::Router::new().fallback(move |m: Method, u: Uri, h: HeaderMap| {
        let st = st.clone();
        async move { route(st, m, u, h).await }
    });
    super::serve_until(listener, app, stop)?.map_err(Error::io("serve HTTP"))
}

async fn route(st: Arc<Replay>, m: Method, u: Uri, h: HeaderMap) -> Response {
    let q = super::query(&u);
    if let Some(r) = unauthorized(&q, &h, &st.token) {
        return r;
    }
    if m != Method::GET && m != Method::HEAD {
        return text(
            StatusCode::FORBIDDEN,
            "403: this is a replay: nothing can be changed",
        );
    }
    if let Some(r) = asset(u.path(), &st.token) {
        return r;
    }
    match u.path() {
        "/api/lab" => {
            let t = &st.rec.topology;
            let body = json!({
                "layout": t["layout"],
                "status": null,
                "status_error": "a replay: no lab to ask",
                "read_only": true,
                "replay": true,
                "speed": st.speed,
                "max_events": st.max_events,
                "capturing": t["capturing"],
                "packets": st.rec.events.len(),
                "acts": st.rec.acts,
            });
            json_response(&body)
        }
        "/api/events" => events(&st, &q),
        p => text(StatusCode::NOT_FOUND, format!("404: no {p} here")),
    }
}

struct Client {
    st: Arc<Replay>,
    next: usize,
    start: Instant,
    filter: ClientFilter,
    sampler: Sampler,
}

fn events(st: &Arc<Replay>, q: &HashMap<String, String>) -> Response {
    let filter = match stream_filter(q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let c = Client {
        st: st.clone(),
        next: 0,
        start: Instant::now(),
        filter,
        sampler: Sampler::new(st.max_events, Instant::now()),
    };
    let stream = futures_util::stream::unfold(c, |mut c| async move {
        loop {
            if c.st.stop.load(Ordering::SeqCst) {
                return None;
            }
            let evs = &c.st.rec.events;
            let Some(e) = evs.get(c.next) else {
                // The end: the stream stays open (a reconnect would replay it again).
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            };
            let due = (e.ts - evs[0].ts).max(0.0) / c.st.speed;
            let wait = Duration::from_secs_f64(due).saturating_sub(c.start.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait.min(Duration::from_millis(250))).await;
                continue;
            }
            let i = c.next;
            c.next += 1;
            if let Some(s) = c.sampler.tick(Instant::now()) {
                c.next -= 1;
                return Some((Ok::<_, std::convert::Infallible>(sse("sampling", &s)), c));
            }
            if c.filter.passes(e, &c.st.rec.summaries[i]) && c.sampler.offer() {
                let ev = sse("packet", e);
                return Some((Ok(ev), c));
            }
        }
    });
    sse_response(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::events::tests::{objective2, ping_frame};

    fn seen(label: &str, dir: Direction, t: i64) -> crate::capture::engine::Seen {
        let data = ping_frame([192, 168, 3, 1], [192, 168, 1, 1]);
        let summary = summarize(&data);
        crate::capture::engine::Seen {
            ts: (t, 500),
            target: 0,
            label: label.into(),
            direction: dir,
            orig_len: data.len() as u32,
            text: summary.to_string(),
            summary,
            data,
        }
    }

    #[test]
    fn a_recording_reads_back_as_the_events_the_page_got() {
        let layout = objective2();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.pcapng");
        let mut r = Recorder::create(&file, &layout, &["bri0:gbrveth".into()]).unwrap();
        let a = seen("bri0:gbrveth", Direction::In, 10);
        let b = seen("bri0:bbrveth", Direction::Out, 11);
        r.packet(&a).unwrap();
        r.block(&json!({"type": "act", "ok": true})).unwrap();
        r.packet(&b).unwrap();
        drop(r);
        let rec = load(&file).unwrap();
        let map = CableMap::new(&layout);
        let want: Vec<CableEvent> = [a, b]
            .iter()
            .map(|p| {
                map.event(&p.label, p.direction, p.ts, p.orig_len, &p.summary, &p.text)
                    .unwrap()
            })
            .collect();
        assert_eq!(rec.events.len(), 2);
        for (got, want) in rec.events.iter().zip(&want) {
            // The same event but for the time's rounding (from nanoseconds).
            assert!((got.ts - want.ts).abs() < 1e-6);
            let got = CableEvent {
                ts: want.ts,
                ..got.clone()
            };
            assert_eq!(&got, want);
        }
        assert_ne!(want[0].forward, want[1].forward, "one of each direction");
        assert_eq!(rec.acts, [json!({"type": "act", "ok": true})]);
        assert_eq!(rec.topology["layout"]["lab"], "objective2");
    }

    #[test]
    fn other_files_are_refused_with_their_name() {
        let e = parse(b"hello, not pcapng", "x.txt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.txt") && e.contains("not an nslab web recording"),
            "{e}"
        );
        // A pcapng without the topology block (a plain `nslab capture` file).
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        w.add_interface("a").unwrap();
        let e = parse(&w.into_inner(), "cap.pcapng")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no topology block"), "{e}");
        // Cut in the middle of a block.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.pcapng");
        drop(Recorder::create(&file, &objective2(), &[]).unwrap());
        let b = std::fs::read(&file).unwrap();
        assert!(parse(&b[..b.len() - 9], "cut").is_err());
    }
}
