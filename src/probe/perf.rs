//! Throughput probe (`nslab perf`): TCP or UDP goodput from one place of a lab
//! to another, over real sockets, the way iperf3 measures it.
//!
//! The receiver runs on a thread in the destination's namespace, the senders on
//! threads in the source's; the caller's thread stays where it is and only
//! coordinates (the threads share the process's memory, so start, stop and the
//! UDP sender's count need no control connection). Goodput is what the
//! receiver read, per stream and per second; UDP datagrams carry a sequence
//! number and their send time, for loss and RFC 3550 jitter as iperf3 reports
//! them.

use crate::error::{Error, Result};
use crate::kernel::netns::spawn_in;
use crate::lab::places::{self, Endpoint};
use crate::record::Record;
use crate::topology::{Lab, Place};
use serde::Serialize;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

/// iperf3's default UDP rate (`-b`), in bits per second.
pub const DEFAULT_UDP_RATE: u64 = 1_000_000;
/// iperf3's port.
pub const DEFAULT_PORT: u16 = 5201;
/// Most streams `-P` takes (iperf3 allows 128).
pub const MAX_STREAMS: u32 = 128;

// ----------------------------------------------------------------- rates ---

pub use crate::units::{parse_percent, parse_rate};

// ------------------------------------------------------------ formatting ---

/// iperf3's number style: 3 significant digits, at most 2 decimals.
fn three_digits(v: f64) -> String {
    if v < 9.995 {
        format!("{v:4.2}")
    } else if v < 99.95 {
        format!("{v:4.1}")
    } else {
        format!("{v:4.0}")
    }
}

/// Bytes as iperf3 prints a transfer: `512 Bytes`, `1.10 GBytes` (powers of 1024).
pub fn fmt_bytes(n: u64) -> String {
    let v = n as f64;
    const K: f64 = 1024.0;
    if v >= K * K * K {
        format!("{} GBytes", three_digits(v / (K * K * K)))
    } else if v >= K * K {
        format!("{} MBytes", three_digits(v / (K * K)))
    } else if v >= K {
        format!("{} KBytes", three_digits(v / K))
    } else {
        format!("{} Bytes", three_digits(v))
    }
}

/// Bits per second as iperf3 prints a bitrate: `9.42 Gbits/sec` (powers of 1000).
pub fn fmt_bits(bps: f64) -> String {
    let v = bps.max(0.0);
    if v >= 1e9 {
        format!("{} Gbits/sec", three_digits(v / 1e9))
    } else if v >= 1e6 {
        format!("{} Mbits/sec", three_digits(v / 1e6))
    } else if v >= 1e3 {
        format!("{} Kbits/sec", three_digits(v / 1e3))
    } else {
        format!("{} bits/sec", three_digits(v))
    }
}

// ------------------------------------------------- loss and jitter maths ---

/// Interarrival jitter as RFC 3550 (6.4.1) and iperf3 compute it: for each
/// datagram, D = the change of its transit time from the previous one's, and
/// J += (|D| - J) / 16.
#[derive(Debug, Default, Clone)]
pub struct Jitter {
    last_transit: Option<f64>,
    /// Seconds.
    pub value: f64,
}

impl Jitter {
    /// A datagram arrived `transit` seconds after it was sent (any fixed
    /// offset between the clocks cancels out).
    pub fn update(&mut self, transit: f64) {
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            self.value += (d - self.value) / 16.0;
        }
        self.last_transit = Some(transit);
    }
}

/// Sequence numbers seen by a UDP receiver: duplicates ignored; losses seen as
/// gaps while receiving (as iperf3 counts them per interval: a late datagram
/// takes back one loss), and exact at the end from the sender's count.
#[derive(Debug, Default, Clone)]
pub struct Seqs {
    seen: Vec<u64>,
    /// The next sequence number expected (one past the highest seen).
    pub next: u64,
    /// Distinct datagrams received.
    pub received: u64,
    /// Datagrams that arrived after a later one.
    pub out_of_order: u64,
    /// Gaps seen since the last [`Seqs::take_gap_losses`].
    gap_lost: i64,
}

impl Seqs {
    /// Record datagram `seq`; false if it was a duplicate.
    pub fn on_packet(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.seen.len() {
            self.seen.resize(w + 1, 0);
        }
        if self.seen[w] & (1 << b) != 0 {
            return false;
        }
        self.seen[w] |= 1 << b;
        self.received += 1;
        if seq >= self.next {
            self.gap_lost += (seq - self.next) as i64;
            self.next = seq + 1;
        } else {
            self.out_of_order += 1;
            self.gap_lost -= 1;
        }
        true
    }

    /// Losses seen as gaps since the last call (may be negative when late
    /// datagrams filled earlier gaps).
    pub fn take_gap_losses(&mut self) -> i64 {
        std::mem::take(&mut self.gap_lost)
    }
}

/// Lost datagrams and their percentage of those sent.
pub fn loss(sent: u64, received: u64) -> (u64, f64) {
    let lost = sent.saturating_sub(received);
    let pct = if sent == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / sent as f64
    };
    (lost, pct)
}

// ---------------------------------------------------------------- report ---

/// What one stream carried, in an interval or in the whole test.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStat {
    /// 1, 2, ... in the order the streams were opened.
    pub id: u32,
    pub bytes: u64,
    pub bits_per_second: f64,
}

/// One reporting interval (a second, or the rest at the end), at the receiver
/// (to the callback of [`Lab::perf_with`](crate::Lab::perf_with)).
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let opts = nslab::PerfOptions::default();
/// lab.perf_with("a", "b", &opts, &mut |i: &nslab::PerfInterval| {
///     println!("{:.0}-{:.0} s: {:.1} Mbit/s", i.start, i.end, i.bits_per_second / 1e6);
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// Seconds since the test started.
    pub start: f64,
    pub end: f64,
    pub streams: Vec<StreamStat>,
    /// Sum over the streams.
    pub bytes: u64,
    pub bits_per_second: f64,
    /// UDP: datagrams sent in the interval (as far as the receiver can tell).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_percent: Option<f64>,
    /// UDP: the jitter at the end of the interval, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
}

/// The result of a throughput test ([`Lab::perf`](crate::Lab::perf)).
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let r: nslab::PerfReport = lab.perf("a", "b", &nslab::PerfOptions::default())?;
/// println!("{} {:.1} Mbit/s to {}:{}", r.protocol, r.bits_per_second / 1e6, r.address, r.port);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct PerfReport {
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    pub address: IpAddr,
    pub port: u16,
    /// Seconds measured at the receiver.
    pub seconds: f64,
    /// Bytes the receiver read (UDP: payload of distinct datagrams).
    pub bytes: u64,
    /// Goodput: `bytes` * 8 / `seconds`, summed over the streams.
    pub bits_per_second: f64,
    /// Bytes the senders handed to the kernel.
    pub sent_bytes: u64,
    pub streams: Vec<StreamStat>,
    pub intervals: Vec<Interval>,
    /// The rate asked for (`--rate`): UDP's pace, TCP's cap per stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_bits_per_second: Option<u64>,
    /// UDP: payload bytes per datagram.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// UDP: datagrams sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_order: Option<u64>,
}

/// The column header of the interval lines.
pub fn format_columns(udp: bool) -> String {
    if udp {
        "[ ID] Interval           Transfer     Bitrate         Jitter    Lost/Total Datagrams"
            .into()
    } else {
        "[ ID] Interval           Transfer     Bitrate".into()
    }
}

fn interval_text(id: &str, start: f64, end: f64, bytes: u64, bps: f64) -> String {
    format!(
        "[{id:>3}] {:>6.2}-{:<6.2} sec  {}  {}",
        start,
        end,
        fmt_bytes(bytes),
        fmt_bits(bps)
    )
}

fn udp_tail(jitter_ms: Option<f64>, lost: Option<u64>, total: Option<u64>) -> String {
    let (l, t) = (lost.unwrap_or(0), total.unwrap_or(0));
    let pct = if t == 0 {
        0.0
    } else {
        l as f64 * 100.0 / t as f64
    };
    format!(
        "  {:>6.3} ms  {l}/{t} ({})",
        jitter_ms.unwrap_or(0.0),
        fmt_pct(pct)
    )
}

fn fmt_pct(p: f64) -> String {
    if p == 0.0 || p >= 10.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.2}%")
    }
}

/// The lines of one interval: a line per stream, and `[SUM]` when there are
/// several (UDP: jitter and loss).
pub fn format_interval(iv: &Interval) -> Vec<String> {
    let mut v: Vec<String> = iv
        .streams
        .iter()
        .map(|s| {
            interval_text(
                &s.id.to_string(),
                iv.start,
                iv.end,
                s.bytes,
                s.bits_per_second,
            )
        })
        .collect();
    if iv.streams.len() > 1 {
        v.push(interval_text(
            "SUM",
            iv.start,
            iv.end,
            iv.bytes,
            iv.bits_per_second,
        ));
    }
    if iv.packets.is_some()
        && let Some(last) = v.last_mut()
    {
        last.push_str(&udp_tail(iv.jitter_ms, iv.lost_packets, iv.packets));
    }
    v
}

/// The summary after the intervals, as iperf3 ends: the totals of each stream
/// (and their sum) at the receiver.
pub fn format_summary(r: &PerfReport) -> Vec<String> {
    let mut v = vec![
        "- - - - - - - - - - - - - - - - - - - - - - - - -".to_string(),
        format_columns(r.protocol == "udp"),
    ];
    let end = r.seconds;
    for s in &r.streams {
        v.push(interval_text(
            &s.id.to_string(),
            0.0,
            end,
            s.bytes,
            s.bits_per_second,
        ));
    }
    if r.streams.len() > 1 {
        v.push(interval_text("SUM", 0.0, end, r.bytes, r.bits_per_second));
    }
    if let Some(last) = v.last_mut() {
        if r.protocol == "udp" {
            last.push_str(&udp_tail(r.jitter_ms, r.lost_packets, r.packets));
        }
        last.push_str("  receiver");
    }
    v
}

// --------------------------------------------------------------- options ---

/// What `perf` measures and for how long ([`Lab::perf`](crate::Lab::perf)).
///
/// ```
/// use std::time::Duration;
/// let udp = nslab::PerfOptions {
///     udp: true,
///     rate: Some(5_000_000), // bits per second
///     duration: Duration::from_secs(3),
///     ..Default::default()
/// };
/// assert_eq!(udp.streams, 1);
/// ```
#[derive(Debug, Clone)]
pub struct PerfOptions {
    pub udp: bool,
    /// UDP: the pace in bits per second (default 1 Mbit/s, as iperf3). TCP:
    /// a cap per stream (SO_MAX_PACING_RATE); None: as fast as the path allows.
    pub rate: Option<u64>,
    pub duration: Duration,
    /// Parallel TCP streams (UDP: 1).
    pub streams: u32,
    /// The receiver's port; 0: any free one.
    pub port: u16,
    /// How long to wait for the connections.
    pub connect_timeout: Duration,
}

impl Default for PerfOptions {
    fn default() -> Self {
        PerfOptions {
            udp: false,
            rate: None,
            duration: Duration::from_secs(10),
            streams: 1,
            port: DEFAULT_PORT,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

impl PerfOptions {
    /// What is wrong with the options, naming the option.
    pub fn problem(&self) -> Option<String> {
        let secs = self.duration.as_secs_f64();
        if !(0.1..=86400.0).contains(&secs) {
            return Some(format!(
                "--time {secs} is out of range: give from 0.1 to 86400 seconds"
            ));
        }
        if !(1..=MAX_STREAMS).contains(&self.streams) {
            return Some(format!(
                "--parallel {} is out of range: give 1 to {MAX_STREAMS} streams",
                self.streams
            ));
        }
        if self.udp && self.streams != 1 {
            return Some("--parallel applies to TCP; a UDP test sends one stream".into());
        }
        None
    }
}

// ------------------------------------------------------- lab endpoints ---

/// The two ends of a test in a lab: where the senders run, where the receiver
/// runs and the address it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ends {
    pub src: Place,
    pub dst: Place,
    pub address: IpAddr,
}

fn names_of(model: &Lab) -> String {
    let mut v: Vec<&str> = model.nodes.iter().map(|n| n.name.as_str()).collect();
    v.push("host");
    if model.sandbox {
        v.push("internet");
    }
    v.join(", ")
}

/// Resolve SRC (a place) and DST (a place, `NODE:IF`, a bridge, or an address
/// of a place of the lab) as the other probes do; IPv4 unless DST has only IPv6.
pub fn ends(model: &Lab, src: &str, dst: &str) -> Result<Ends> {
    let known = || format!("(places of lab {}: {})", model.name, names_of(model));
    let src_p = places::parse_place(model, src).ok_or_else(|| {
        Error::Usage(format!(
            "{src:?} is not a node, `host` or `internet` {}",
            known()
        ))
    })?;
    let address = match super::check::resolve(model, dst, 4) {
        Err(e) => super::check::resolve(model, dst, 6).map_err(|_| e),
        ok => ok,
    }
    .map_err(|e| Error::Usage(format!("{e} {}", known())))?;
    let dst_p = match places::parse(model, dst) {
        Some(Endpoint::Place(p)) | Some(Endpoint::Iface(p, _)) => p,
        Some(Endpoint::Bridge(_)) | Some(Endpoint::Port(..)) => Place::Host,
        Some(Endpoint::Addr(a)) => owner(model, a).ok_or_else(|| {
            Error::Usage(format!(
                "no place of lab {} has address {a}: perf runs its receiver where the address is",
                model.name
            ))
        })?,
        None => return Err(places::not_a_destination(model, dst)),
    };
    Ok(Ends {
        src: src_p,
        dst: dst_p,
        address,
    })
}

/// The place that has address `a` (the internet's service address included).
fn owner(model: &Lab, a: IpAddr) -> Option<Place> {
    let ps = super::check::places(model);
    ps.into_iter().find(|p| {
        let name = p.to_string();
        [4, 6]
            .iter()
            .any(|f| super::check::resolve_all(model, &name, *f).is_ok_and(|v| v.contains(&a)))
            || model.addresses_of(p).iter().any(|(_, n)| n.addr() == a)
    })
}

/// Run a test from `src` to `dst` in a lab that is up; `on_interval` is
/// called on the caller's thread as each interval ends.
pub fn perf_in_lab(
    rec: &Record,
    model: &Lab,
    src: &str,
    dst: &str,
    opts: &PerfOptions,
    on_interval: &mut dyn FnMut(&Interval),
) -> Result<PerfReport> {
    let e = ends(model, src, dst)?;
    let sf = crate::lab::place_file(rec, &e.src)?;
    let df = crate::lab::place_file(rec, &e.dst)?;
    run(&sf, &df, e.address, opts, on_interval)
        .map_err(|x| Error::Failed(format!("perf {src} -> {dst}: {x}")))
}

// ---------------------------------------------------------- expectations ---

/// A `throughput` or `loss` expectation: how to measure, and the bounds.
#[derive(Debug, Clone)]
pub struct Target {
    pub options: PerfOptions,
    /// `loss`: bounds on the loss (percent); else on the goodput (bits/s).
    pub loss: bool,
    pub at_least: Option<f64>,
    pub at_most: Option<f64>,
}

/// The source, destination and target of a `throughput` or `loss`
/// expectation; None for other kinds.
pub fn expectation(k: &crate::topology::ExpectKind) -> Option<(&str, &str, Target)> {
    use crate::topology::ExpectKind;
    let opts = |udp: bool, rate: Option<u64>, millis: u64| PerfOptions {
        udp,
        rate: if udp { rate } else { None },
        duration: Duration::from_millis(millis),
        // Any free port: a server of the lab may hold iperf3's.
        port: 0,
        ..Default::default()
    };
    match k {
        ExpectKind::Throughput {
            src,
            dst,
            udp,
            rate,
            millis,
            at_least,
            at_most,
        } => Some((
            src,
            dst,
            Target {
                options: opts(*udp, *rate, *millis),
                loss: false,
                at_least: at_least.map(|x| x as f64),
                at_most: at_most.map(|x| x as f64),
            },
        )),
        ExpectKind::Loss {
            src,
            dst,
            rate,
            millis,
            at_least_ppm,
            at_most_ppm,
        } => Some((
            src,
            dst,
            Target {
                options: opts(true, *rate, *millis),
                loss: true,
                at_least: at_least_ppm.map(|x| x as f64 / 10_000.0),
                at_most: at_most_ppm.map(|x| x as f64 / 10_000.0),
            },
        )),
        _ => None,
    }
}

impl Target {
    /// Whether the measurement is within the bounds, and a sentence saying so.
    pub fn judge(&self, r: &PerfReport) -> (bool, String) {
        let proto = if self.options.udp {
            format!(
                "UDP at {}",
                fmt_bits(self.options.rate.unwrap_or(DEFAULT_UDP_RATE) as f64)
            )
        } else {
            "TCP".to_string()
        };
        let (value, shown, fmt): (f64, String, fn(f64) -> String) = if self.loss {
            let pct = r.lost_percent.unwrap_or(0.0);
            let text = format!(
                "{}/{} datagrams lost ({pct:.2}%)",
                r.lost_packets.unwrap_or(0),
                r.packets.unwrap_or(0)
            );
            (pct, text, |x| format!("{x}%"))
        } else {
            let b = r.bits_per_second;
            (b, fmt_bits(b), fmt_bits)
        };
        let mut ok = true;
        let mut wanted = Vec::new();
        if let Some(l) = self.at_least {
            ok &= value >= l;
            wanted.push(format!("at least {}", fmt(l)));
        }
        if let Some(m) = self.at_most {
            ok &= value <= m;
            wanted.push(format!("at most {}", fmt(m)));
        }
        (
            ok,
            format!(
                "{shown} over {:.1} s ({proto}); wanted {}",
                r.seconds,
                wanted.join(" and ")
            ),
        )
    }
}

// ------------------------------------------------------------ the test ---

/// Start, or call off, the test: threads wait here until the caller decides.
struct Gate {
    state: Mutex<Option<Option<Instant>>>,
    cv: Condvar,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            state: Mutex::new(None),
            cv: Condvar::new(),
        }
    }
    fn set(&self, v: Option<Instant>) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(v);
        }
        self.cv.notify_all();
    }
    fn open(&self, t: Instant) {
        self.set(Some(t))
    }
    fn abort(&self) {
        self.set(None)
    }
    fn aborted(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            Some(None)
        )
    }
    /// The start, or None if the test was called off.
    fn wait(&self) -> Option<Instant> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = *g {
                return v;
            }
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What the receiver tells the caller's thread.
enum Msg {
    Listening(u16),
    Ready,
    Interval(Interval),
}

/// A random number per test, so the receiver takes only its own senders.
fn cookie() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

const MAGIC: &[u8; 4] = b"NSLP";
const BUF: usize = 128 * 1024;
/// Reporting interval.
const TICK: Duration = Duration::from_secs(1);

/// Run a test: the receiver in the namespace of `dst` listening on `addr`,
/// the senders in the namespace of `src`. `on_interval` is called on the
/// caller's thread as each interval ends.
pub fn run(
    src: &File,
    dst: &File,
    addr: IpAddr,
    opts: &PerfOptions,
    on_interval: &mut dyn FnMut(&Interval),
) -> std::result::Result<PerfReport, String> {
    if let Some(p) = opts.problem() {
        return Err(p);
    }
    if opts.udp {
        run_udp(src, dst, addr, opts, on_interval)
    } else {
        run_tcp(src, dst, addr, opts, on_interval)
    }
}

fn joined<T>(
    h: std::thread::ScopedJoinHandle<'_, io::Result<std::result::Result<T, String>>>,
) -> std::result::Result<T, String> {
    match h.join() {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(format!("enter the namespace: {e}")),
        Err(_) => Err("a probe thread panicked".into()),
    }
}

/// Wait for the receiver to say `Listening`; its error if it could not.
fn listening(rx: &mpsc::Receiver<Msg>) -> Option<u16> {
    match rx.recv() {
        Ok(Msg::Listening(p)) => Some(p),
        _ => None,
    }
}

fn stat(id: u32, bytes: u64, secs: f64) -> StreamStat {
    StreamStat {
        id,
        bytes,
        bits_per_second: bps(bytes, secs),
    }
}

fn bps(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 * 8.0 / secs
    } else {
        0.0
    }
}

fn tcp_interval(start: f64, end: f64, per: &[u64]) -> Interval {
    let secs = end - start;
    let bytes: u64 = per.iter().sum();
    Interval {
        start,
        end,
        streams: per
            .iter()
            .enumerate()
            .map(|(i, b)| stat(i as u32 + 1, *b, secs))
            .collect(),
        bytes,
        bits_per_second: bps(bytes, secs),
        packets: None,
        lost_packets: None,
        lost_percent: None,
        jitter_ms: None,
    }
}

/// Start the senders (open the gate) when they are set up (`ready`) and the
/// receiver says it is ready, else abort; then take the receiver's per-second
/// intervals until it hangs up.
fn start_and_collect(
    g: &Gate,
    ready: bool,
    rx: &mpsc::Receiver<Msg>,
    on_interval: &mut dyn FnMut(&Interval),
) -> Vec<Interval> {
    if ready && matches!(rx.recv(), Ok(Msg::Ready)) {
        g.open(Instant::now());
    } else {
        g.abort();
    }
    let mut intervals = Vec::new();
    for m in rx.iter() {
        if let Msg::Interval(iv) = m {
            on_interval(&iv);
            intervals.push(iv);
        }
    }
    intervals
}

fn run_tcp(
    src: &File,
    dst: &File,
    addr: IpAddr,
    o: &PerfOptions,
    on_interval: &mut dyn FnMut(&Interval),
) -> std::result::Result<PerfReport, String> {
    let cookie = cookie();
    let gate = Gate::new();
    let (tx, rx) = mpsc::channel::<Msg>();
    let listen = SocketAddr::new(addr, o.port);
    std::thread::scope(|s| {
        let g = &gate;
        let recv = spawn_in(s, dst, move || {
            let r = tcp_receiver(listen, o, cookie, g, &tx);
            g.abort();
            r
        });
        let Some(port) = listening(&rx) else {
            return Err(joined(recv).err().unwrap_or_default());
        };
        let to = SocketAddr::new(addr, port);
        let (ctx, crx) = mpsc::channel::<std::result::Result<(), String>>();
        let senders: Vec<_> = (1..=o.streams)
            .map(|id| {
                let ctx = ctx.clone();
                spawn_in(s, src, move || tcp_sender(to, id, cookie, g, o, &ctx))
            })
            .collect();
        drop(ctx);
        let mut first_err = None;
        for r in crx.iter().take(o.streams as usize) {
            if let Err(e) = r {
                first_err.get_or_insert(e);
                g.abort();
            }
        }
        let intervals = start_and_collect(g, first_err.is_none(), &rx, on_interval);
        let mut sent = 0;
        for h in senders {
            match joined(h) {
                Ok(n) => sent += n,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let received = joined(recv);
        if let Some(e) = first_err {
            return Err(e);
        }
        let (per, secs) = received?;
        let total = tcp_interval(0.0, secs, &per);
        Ok(PerfReport {
            protocol: "tcp",
            address: addr,
            port,
            seconds: secs,
            bytes: total.bytes,
            bits_per_second: total.bits_per_second,
            sent_bytes: sent,
            streams: total.streams,
            intervals,
            target_bits_per_second: o.rate,
            length: None,
            packets: None,
            lost_packets: None,
            lost_percent: None,
            jitter_ms: None,
            out_of_order: None,
        })
    })
}

/// poll(2) on some sockets for reading; the indexes of those readable.
fn poll_read(fds: &[i32], timeout: Duration) -> io::Result<Vec<usize>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: `p` is a valid array of `p.len()` pollfd structures.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(vec![])
        } else {
            Err(e)
        };
    }
    Ok(p.iter()
        .enumerate()
        .filter(|(_, x)| x.revents != 0)
        .map(|(i, _)| i)
        .collect())
}

/// The receiver of a TCP test: listen, take the senders' connections, read
/// until the time is up. Returns the bytes per stream and the seconds.
fn tcp_receiver(
    listen: SocketAddr,
    o: &PerfOptions,
    cookie: u64,
    gate: &Gate,
    tx: &mpsc::Sender<Msg>,
) -> std::result::Result<(Vec<u64>, f64), String> {
    let l = TcpListener::bind(listen).map_err(|e| match e.raw_os_error() {
        Some(libc::EADDRINUSE) => format!(
            "port {} is in use at {}: choose another with --port",
            listen.port(),
            listen.ip()
        ),
        _ => format!("listen on {listen}: {e}"),
    })?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    let _ = tx.send(Msg::Listening(port));
    let conns = accept_streams(&l, o, cookie, gate)?;
    drop(l);
    let _ = tx.send(Msg::Ready);
    let Some(start) = gate.wait() else {
        return Err("the test was called off".into());
    };
    read_streams(conns, start, o.duration, tx)
}

/// Accept the `o.streams` connections that bring this test's cookie, in the
/// order of their stream numbers.
fn accept_streams(
    l: &TcpListener,
    o: &PerfOptions,
    cookie: u64,
    gate: &Gate,
) -> std::result::Result<Vec<TcpStream>, String> {
    let deadline = Instant::now() + o.connect_timeout + Duration::from_secs(2);
    let mut conns: Vec<Option<TcpStream>> = (0..o.streams).map(|_| None).collect();
    let mut have = 0;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    while have < o.streams as usize {
        if gate.aborted() {
            return Err("the test was called off".into());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "only {have} of {} streams connected in time",
                o.streams
            ));
        }
        let ready = poll_read(&[l.as_raw_fd()], (deadline - now).min(TICK / 10))
            .map_err(|e| e.to_string())?;
        if ready.is_empty() {
            continue;
        }
        let Ok((mut c, _)) = l.accept() else { continue };
        let mut hello = [0u8; 16];
        let ok = c.set_nonblocking(false).is_ok()
            && c.set_read_timeout(Some(Duration::from_secs(2))).is_ok()
            && c.read_exact(&mut hello).is_ok();
        let id = u32::from_be_bytes(hello[12..16].try_into().expect("4 bytes")) as usize;
        if ok
            && &hello[..4] == MAGIC
            && hello[4..12] == cookie.to_be_bytes()
            && (1..=conns.len()).contains(&id)
            && conns[id - 1].is_none()
        {
            conns[id - 1] = Some(c);
            have += 1;
        }
    }
    Ok(conns.into_iter().flatten().collect())
}

/// Read every stream until `start + dur`, sending an interval each second.
fn read_streams(
    mut conns: Vec<TcpStream>,
    start: Instant,
    dur: Duration,
    tx: &mpsc::Sender<Msg>,
) -> std::result::Result<(Vec<u64>, f64), String> {
    let end = start + dur;
    let n = conns.len();
    let mut total = vec![0u64; n];
    let mut cur = vec![0u64; n];
    let mut open: Vec<bool> = vec![true; n];
    let mut k = 0u32;
    let mut buf = vec![0u8; BUF];
    for c in &conns {
        c.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    let mut last_data = start;
    loop {
        let now = Instant::now();
        while start + TICK * (k + 1) < end && now >= start + TICK * (k + 1) {
            let iv = tcp_interval(k as f64, (k + 1) as f64, &cur);
            let _ = tx.send(Msg::Interval(iv));
            cur.iter_mut().for_each(|x| *x = 0);
            k += 1;
        }
        if now >= end || !open.iter().any(|x| *x) {
            break;
        }
        let next = (start + TICK * (k + 1)).min(end);
        let idx: Vec<usize> = (0..n).filter(|&i| open[i]).collect();
        let fds: Vec<i32> = idx.iter().map(|&i| conns[i].as_raw_fd()).collect();
        for r in poll_read(&fds, next.saturating_duration_since(now)).map_err(|e| e.to_string())? {
            let i = idx[r];
            match conns[i].read(&mut buf) {
                Ok(0) => open[i] = false,
                Ok(m) => {
                    total[i] += m as u64;
                    cur[i] += m as u64;
                    last_data = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("receiving stream {}: {e}", i + 1)),
            }
        }
    }
    // Streams that ended early (a sender failed) end the measurement there.
    let stop = if open.iter().any(|x| *x) {
        end
    } else {
        last_data
    };
    let secs = stop.saturating_duration_since(start).as_secs_f64();
    if secs > k as f64 + 0.001 {
        let _ = tx.send(Msg::Interval(tcp_interval(k as f64, secs, &cur)));
    }
    Ok((total, secs))
}

/// SO_MAX_PACING_RATE: cap a TCP socket's rate (bytes per second).
fn set_pacing(s: &TcpStream, bits: u64) -> io::Result<()> {
    let v: u64 = (bits / 8).max(1);
    // SAFETY: a valid socket and an u64 option value of the size given.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MAX_PACING_RATE,
            &v as *const u64 as *const libc::c_void,
            std::mem::size_of::<u64>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One TCP sender: connect, say which test and stream it is, and write until
/// the time is up. Returns the bytes written.
fn tcp_sender(
    to: SocketAddr,
    id: u32,
    cookie: u64,
    gate: &Gate,
    o: &PerfOptions,
    ready: &mpsc::Sender<std::result::Result<(), String>>,
) -> std::result::Result<u64, String> {
    let connect = || -> std::result::Result<TcpStream, String> {
        let mut c = super::tcp::connect_stream(to, o.connect_timeout).map_err(|e| e.to_string())?;
        let mut hello = [0u8; 16];
        hello[..4].copy_from_slice(MAGIC);
        hello[4..12].copy_from_slice(&cookie.to_be_bytes());
        hello[12..].copy_from_slice(&id.to_be_bytes());
        let talk = |e: io::Error| format!("talking to {to}: {e}");
        c.write_all(&hello).map_err(talk)?;
        c.set_write_timeout(Some(TICK / 10)).map_err(talk)?;
        if let Some(r) = o.rate {
            set_pacing(&c, r).map_err(|e| format!("cap the rate of stream {id}: {e}"))?;
        }
        Ok(c)
    };
    let mut c = match connect() {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    let Some(start) = gate.wait() else {
        return Ok(0);
    };
    let end = start + o.duration;
    let buf = vec![0x5au8; BUF];
    let mut sent = 0u64;
    while Instant::now() < end {
        match c.write(&buf) {
            Ok(n) => sent += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The receiver closes at the end; a write racing it fails.
            Err(_) if Instant::now() + TICK / 5 >= end => break,
            Err(e) => return Err(format!("sending stream {id} to {to}: {e}")),
        }
    }
    let _ = c.shutdown(std::net::Shutdown::Write);
    Ok(sent)
}

// ------------------------------------------------------------------ UDP ---

/// Header of a datagram: magic, cookie, sequence number, send time (ns since
/// the start).
const UDP_HEADER: usize = 28;

/// The payload of datagrams on a connected socket: iperf3's 1460 bytes, less
/// when the route's MTU is smaller (no fragments, so loss counts datagrams).
fn udp_length(s: &UdpSocket, v6: bool) -> usize {
    let (level, opt, overhead) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU, 48)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU, 28)
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid socket; `mtu` and `len` are valid for writing.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            level,
            opt,
            &mut mtu as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    let fit = if r == 0 && mtu > overhead {
        (mtu - overhead) as usize
    } else {
        1460
    };
    fit.clamp(UDP_HEADER + 36, 1460)
}

/// What the UDP sender publishes to the receiver: datagrams sent, and done.
struct SendCount {
    sent: AtomicU64,
    done: AtomicBool,
}

fn run_udp(
    src: &File,
    dst: &File,
    addr: IpAddr,
    o: &PerfOptions,
    on_interval: &mut dyn FnMut(&Interval),
) -> std::result::Result<PerfReport, String> {
    let cookie = cookie();
    let gate = Gate::new();
    let count = SendCount {
        sent: AtomicU64::new(0),
        done: AtomicBool::new(false),
    };
    let rate = o.rate.unwrap_or(DEFAULT_UDP_RATE);
    let (tx, rx) = mpsc::channel::<Msg>();
    let listen = SocketAddr::new(addr, o.port);
    std::thread::scope(|s| {
        let (g, c) = (&gate, &count);
        let recv = spawn_in(s, dst, move || {
            let r = udp_receiver(listen, o.duration, cookie, g, c, &tx);
            g.abort();
            r
        });
        let Some(port) = listening(&rx) else {
            return Err(joined(recv).err().unwrap_or_default());
        };
        let to = SocketAddr::new(addr, port);
        let (ltx, lrx) = mpsc::channel::<usize>();
        let sender = spawn_in(s, src, move || {
            let r = udp_sender(to, cookie, rate, o.duration, g, c, &ltx);
            c.done.store(true, Ordering::Release);
            if r.is_err() {
                g.abort();
            }
            r
        });
        let length = lrx.recv().ok();
        let intervals = start_and_collect(g, length.is_some(), &rx, on_interval);
        let sent = joined(sender)?;
        let r = joined(recv)?;
        let length = length.unwrap_or(0);
        let (lost, pct) = loss(sent, r.seqs.received);
        let st = stat(1, r.bytes, r.secs);
        Ok(PerfReport {
            protocol: "udp",
            address: addr,
            port,
            seconds: r.secs,
            bytes: r.bytes,
            bits_per_second: st.bits_per_second,
            sent_bytes: sent * length as u64,
            streams: vec![st],
            intervals,
            target_bits_per_second: Some(rate),
            length: Some(length),
            packets: Some(sent),
            lost_packets: Some(lost),
            lost_percent: Some(pct),
            jitter_ms: Some(r.jitter.value * 1000.0),
            out_of_order: Some(r.seqs.out_of_order),
        })
    })
}

/// The UDP sender: datagrams of the route's size, paced at `rate` bits per
/// second of payload (as iperf3 counts it), for `dur`. Returns the datagrams sent.
fn udp_sender(
    to: SocketAddr,
    cookie: u64,
    rate: u64,
    dur: Duration,
    gate: &Gate,
    count: &SendCount,
    ready: &mpsc::Sender<usize>,
) -> std::result::Result<u64, String> {
    let any: SocketAddr = if to.is_ipv6() {
        "[::]:0".parse().expect("address")
    } else {
        "0.0.0.0:0".parse().expect("address")
    };
    let s = UdpSocket::bind(any).map_err(|e| format!("open a UDP socket: {e}"))?;
    s.connect(to).map_err(|e| format!("UDP to {to}: {e}"))?;
    let len = udp_length(&s, to.is_ipv6());
    let _ = ready.send(len);
    let Some(start) = gate.wait() else {
        return Ok(0);
    };
    let end = start + dur;
    let per_packet = len as f64 * 8.0 / rate as f64;
    let mut buf = vec![0u8; len];
    buf[..4].copy_from_slice(MAGIC);
    buf[4..12].copy_from_slice(&cookie.to_be_bytes());
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = (now.duration_since(start).as_secs_f64() / per_packet) as u64 + 1;
        // A bounded burst, then the clock again (rates beyond the machine's).
        let mut burst = 0;
        while seq < due && burst < 64 {
            buf[12..20].copy_from_slice(&seq.to_be_bytes());
            let ns = Instant::now().duration_since(start).as_nanos() as u64;
            buf[20..28].copy_from_slice(&ns.to_be_bytes());
            match s.send(&buf) {
                Ok(_) => {
                    seq += 1;
                    burst += 1;
                }
                // A full queue, or an ICMP error of an earlier datagram: not
                // sent, tried again shortly.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED | libc::EINTR)
                    ) =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                    break;
                }
                Err(e) => return Err(format!("sending to {to}: {e}")),
            }
            count.sent.store(seq, Ordering::Release);
        }
        let next = start + Duration::from_secs_f64(seq as f64 * per_packet);
        let wake = next.min(end);
        let now = Instant::now();
        if wake > now {
            std::thread::sleep(wake - now);
        }
    }
    count.sent.store(seq, Ordering::Release);
    Ok(seq)
}

/// What the UDP receiver found.
struct UdpTotals {
    bytes: u64,
    secs: f64,
    seqs: Seqs,
    jitter: Jitter,
}

/// Per-interval tallies of the UDP receiver.
#[derive(Default)]
struct UdpTally {
    bytes: u64,
    received: u64,
}

fn udp_interval(start: f64, end: f64, t: &UdpTally, gap: i64, j: &Jitter) -> Interval {
    let secs = end - start;
    let lost = gap.max(0) as u64;
    let packets = t.received + lost;
    Interval {
        start,
        end,
        streams: vec![stat(1, t.bytes, secs)],
        bytes: t.bytes,
        bits_per_second: bps(t.bytes, secs),
        packets: Some(packets),
        lost_packets: Some(lost),
        lost_percent: Some(loss(packets, t.received).1),
        jitter_ms: Some(j.value * 1000.0),
    }
}

/// The UDP receiver: count this test's datagrams until the sender is done and
/// the last ones had time to arrive.
fn udp_receiver(
    listen: SocketAddr,
    dur: Duration,
    cookie: u64,
    gate: &Gate,
    count: &SendCount,
    tx: &mpsc::Sender<Msg>,
) -> std::result::Result<UdpTotals, String> {
    let s = UdpSocket::bind(listen).map_err(|e| match e.raw_os_error() {
        Some(libc::EADDRINUSE) => format!(
            "UDP port {} is in use at {}: choose another with --port",
            listen.port(),
            listen.ip()
        ),
        _ => format!("listen on {listen}: {e}"),
    })?;
    let port = s.local_addr().map_err(|e| e.to_string())?.port();
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let _ = tx.send(Msg::Listening(port));
    let _ = tx.send(Msg::Ready);
    let Some(start) = gate.wait() else {
        return Err("the test was called off".into());
    };
    let end = start + dur;
    let mut t = UdpTotals {
        bytes: 0,
        secs: dur.as_secs_f64(),
        seqs: Seqs::default(),
        jitter: Jitter::default(),
    };
    let mut cur = UdpTally::default();
    let mut k = 0u32;
    let mut buf = vec![0u8; 65536];
    let mut last = Instant::now();
    loop {
        let now = Instant::now();
        while start + TICK * (k + 1) < end && now >= start + TICK * (k + 1) {
            let gap = t.seqs.take_gap_losses();
            let _ = tx.send(Msg::Interval(udp_interval(
                k as f64,
                (k + 1) as f64,
                &cur,
                gap,
                &t.jitter,
            )));
            cur = UdpTally::default();
            k += 1;
        }
        // After the sender: until nothing came for a while (the last
        // datagrams in queues), at most two seconds.
        if count.done.load(Ordering::Acquire)
            && now >= end
            && (now.duration_since(last) > Duration::from_millis(300)
                || now > end + Duration::from_secs(2))
        {
            break;
        }
        let next = if start + TICK * (k + 1) < end {
            start + TICK * (k + 1)
        } else {
            now + TICK / 20
        };
        if poll_read(&[s.as_raw_fd()], next.saturating_duration_since(now))
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            continue;
        }
        while let Ok(n) = s.recv(&mut buf) {
            let arrived = Instant::now();
            if n < UDP_HEADER || &buf[..4] != MAGIC || buf[4..12] != cookie.to_be_bytes() {
                continue;
            }
            last = arrived;
            let seq = u64::from_be_bytes(buf[12..20].try_into().expect("8 bytes"));
            let sent_ns = u64::from_be_bytes(buf[20..28].try_into().expect("8 bytes"));
            let transit = arrived.duration_since(start).as_secs_f64() - sent_ns as f64 / 1e9;
            t.jitter.update(transit);
            if t.seqs.on_packet(seq) {
                t.bytes += n as u64;
                cur.bytes += n as u64;
                cur.received += 1;
            }
        }
    }
    // The last interval takes the datagrams lost at the tail, which no later
    // datagram revealed as a gap.
    let sent = count.sent.load(Ordering::Acquire);
    let gap = t.seqs.take_gap_losses() + sent.saturating_sub(t.seqs.next) as i64;
    let _ = tx.send(Msg::Interval(udp_interval(
        k as f64, t.secs, &cur, gap, &t.jitter,
    )));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_printed_as_iperf3_prints_them() {
        assert_eq!(fmt_bytes(512), " 512 Bytes");
        assert_eq!(fmt_bytes(1024), "1.00 KBytes");
        assert_eq!(fmt_bytes(131_072), " 128 KBytes");
        assert_eq!(fmt_bytes(1_181_116_006), "1.10 GBytes");
        assert_eq!(fmt_bytes(12 * 1024 * 1024 + 300_000), "12.3 MBytes");
        assert_eq!(fmt_bits(9.42e9), "9.42 Gbits/sec");
        assert_eq!(fmt_bits(10_485_760.0), "10.5 Mbits/sec");
        assert_eq!(fmt_bits(999.0), " 999 bits/sec");
        assert_eq!(fmt_bits(1.05e6), "1.05 Mbits/sec");
        assert_eq!(fmt_bits(-1.0), "0.00 bits/sec");
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut j = Jitter::default();
        j.update(0.010);
        assert_eq!(j.value, 0.0, "one datagram has no jitter");
        // Constant transit: no jitter however large the offset.
        j.update(0.010);
        assert_eq!(j.value, 0.0);
        // |D| = 16 ms: J = 0 + (0.016 - 0) / 16 = 1 ms.
        j.update(0.026);
        assert!((j.value - 0.001).abs() < 1e-12, "{}", j.value);
        // Back down by 16 ms: J = 1 + (16 - 1) / 16 = 1.9375 ms.
        j.update(0.010);
        assert!((j.value - 0.0019375).abs() < 1e-12, "{}", j.value);
        // Converges to a constant |D|.
        let mut j = Jitter::default();
        for i in 0..2000 {
            j.update(if i % 2 == 0 { 0.0 } else { 0.004 });
        }
        assert!((j.value - 0.004).abs() < 1e-9, "{}", j.value);
    }

    #[test]
    fn sequence_gaps_count_losses_and_late_datagrams_take_them_back() {
        let mut s = Seqs::default();
        for q in [0, 1, 2, 5, 6] {
            assert!(s.on_packet(q));
        }
        assert_eq!((s.received, s.next, s.out_of_order), (5, 7, 0));
        assert_eq!(s.take_gap_losses(), 2, "3 and 4 missing");
        assert!(s.on_packet(3), "late");
        assert!(!s.on_packet(3), "duplicate");
        assert!(!s.on_packet(6), "duplicate");
        assert_eq!((s.received, s.out_of_order), (6, 1));
        assert_eq!(s.take_gap_losses(), -1, "the late one was not lost");
        assert_eq!(s.take_gap_losses(), 0);
        assert!(s.on_packet(200), "far ahead grows the set");
        assert_eq!(s.take_gap_losses(), 200 - 7);
        assert_eq!(
            loss(201, s.received),
            (201 - 7, (201 - 7) as f64 * 100.0 / 201.0)
        );
        assert_eq!(loss(0, 0), (0, 0.0));
        assert_eq!(loss(5, 9), (0, 0.0), "duplicates never make loss negative");
    }

    fn iv(streams: &[u64], udp: bool) -> Interval {
        let mut i = tcp_interval(0.0, 1.0, streams);
        if udp {
            i.packets = Some(90);
            i.lost_packets = Some(9);
            i.jitter_ms = Some(0.0123);
        }
        i
    }

    #[test]
    fn interval_lines_look_like_iperf3s() {
        let l = format_interval(&iv(&[1_250_000], false));
        assert_eq!(
            l,
            vec!["[  1]   0.00-1.00   sec  1.19 MBytes  10.0 Mbits/sec"]
        );
        let l = format_interval(&iv(&[1000, 3000], false));
        assert_eq!(l.len(), 3);
        assert!(
            l[2].starts_with("[SUM]   0.00-1.00   sec  3.91 KBytes"),
            "{l:?}"
        );
        assert!(l[2].ends_with("32.0 Kbits/sec"), "{l:?}");
        let l = format_interval(&iv(&[131_400], true));
        assert!(l[0].ends_with("  0.012 ms  9/90 (10%)"), "{l:?}");
    }

    #[test]
    fn options_name_what_is_wrong() {
        let ok = PerfOptions::default();
        assert_eq!(ok.problem(), None);
        let o = PerfOptions {
            streams: 0,
            ..ok.clone()
        };
        assert!(o.problem().unwrap().contains("--parallel 0"));
        let o = PerfOptions {
            streams: 129,
            ..ok.clone()
        };
        assert!(o.problem().unwrap().contains("1 to 128"));
        let o = PerfOptions {
            duration: Duration::from_millis(10),
            ..ok.clone()
        };
        assert!(o.problem().unwrap().contains("--time"));
        let o = PerfOptions {
            udp: true,
            streams: 2,
            ..ok
        };
        assert!(o.problem().unwrap().contains("UDP"));
    }
}
