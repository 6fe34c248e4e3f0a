//! Capture on several interfaces in several namespaces at once: one AF_PACKET
//! socket per interface, opened inside its namespace; packets merged by kernel
//! timestamp and tagged with where they were seen.

use super::decode::{Filter, Summary, summarize};
use super::pcap::{Direction, PcapNgWriter, PcapWriter, Timestamp};
use super::ring::RingFrame;
use super::socket::{
    BLOCK_TIMEOUT, MAX_FRAME_LEN, PacketSocket, RING_BYTES, copy_frame, direction,
};
use crate::kernel::netns;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One interface to capture on.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// Where, as the endpoint grammar says it: `green:gveth`, `host:bbrveth`, ...
    pub label: String,
    #[serde(skip)]
    pub ns: std::sync::Arc<File>,
    pub ifname: String,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub filter: Option<Filter>,
}

/// One captured packet ([`nslab::Packet`](crate::Packet)): where and when it
/// was seen, which way it went, the frame and its decode.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let opts = nslab::CaptureOptions { count: Some(1), ..Default::default() };
/// for p in lab.capture(&["b:eth0"], &opts)? {
///     let p: nslab::Packet = p;
///     println!("{} {:?} {} bytes: {}", p.label, p.direction, p.orig_len, p.text);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    pub ts: (i64, u32),
    /// Index into the targets.
    #[serde(skip)]
    pub target: usize,
    #[serde(rename = "where")]
    pub label: String,
    pub direction: Direction,
    pub orig_len: u32,
    #[serde(skip)]
    pub data: Vec<u8>,
    #[serde(flatten)]
    pub summary: Summary,
    pub text: String,
}

/// What one interface of a capture saw ([`nslab::CaptureStats`](crate::CaptureStats)).
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let cap = lab.capture(&["b:eth0"], &nslab::CaptureOptions::default())?;
/// let (_, stats) = cap.stop_with_stats()?;
/// for s in &stats {
///     println!("{}: {} captured, {} dropped", s.label, s.captured, s.dropped_by_kernel);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    #[serde(rename = "where")]
    pub label: String,
    pub captured: u64,
    pub received_by_kernel: u64,
    pub dropped_by_kernel: u64,
}

/// Where packets go: pcap for one interface, pcapng (one block per interface) for more.
pub enum Sink {
    Pcap(PcapWriter<BufWriter<File>>),
    PcapNg(PcapNgWriter<BufWriter<File>>, Vec<u32>),
}

/// The file format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Pcap,
    PcapNg,
}

/// The format `path` gets: its extension decides (`.pcap`, `.pcapng`); any
/// other name gets pcap for one interface, pcapng for several. A `.pcap` file
/// cannot say which of several interfaces a packet was seen on: refused.
pub fn file_format(path: &Path, interfaces: usize) -> Result<FileFormat, String> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("pcapng") => Ok(FileFormat::PcapNg),
        Some("pcap") if interfaces > 1 => Err(format!(
            "{}: a .pcap file holds one interface and this capture has {interfaces}; name it .pcapng",
            path.display()
        )),
        Some("pcap") => Ok(FileFormat::Pcap),
        _ if interfaces == 1 => Ok(FileFormat::Pcap),
        _ => Ok(FileFormat::PcapNg),
    }
}

impl Sink {
    pub fn create(path: &Path, targets: &[Target], format: FileFormat) -> io::Result<Sink> {
        // Large: a flood of small frames then costs a write(2) per ~10,000 of them.
        let f = BufWriter::with_capacity(SINK_BUFFER, File::create(path)?);
        if format == FileFormat::Pcap {
            Ok(Sink::Pcap(PcapWriter::new(f)?))
        } else {
            let mut w = PcapNgWriter::new(f)?;
            let ids = targets
                .iter()
                .map(|t| w.add_interface(&t.label))
                .collect::<io::Result<Vec<_>>>()?;
            Ok(Sink::PcapNg(w, ids))
        }
    }

    fn write(&mut self, s: &Seen) -> io::Result<()> {
        self.write_raw(s.target, s.ts, s.orig_len, &s.data, s.direction)
    }

    fn write_raw(
        &mut self,
        target: usize,
        ts: Ts,
        orig_len: u32,
        data: &[u8],
        direction: Direction,
    ) -> io::Result<()> {
        match self {
            Sink::Pcap(w) => w.write(ts, orig_len, data),
            Sink::PcapNg(w, ids) => w.write(ids[target], ts, orig_len, data, Some(direction)),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Pcap(w) => w.flush(),
            Sink::PcapNg(w, _) => w.flush(),
        }
    }
}

/// Buffer of a capture file.
const SINK_BUFFER: usize = 1 << 20;

/// Ring memory of one capture, shared by its interfaces (each gets between
/// 512 KiB and [`RING_BYTES`]): `capture all` on a big lab must not pin
/// gigabytes of kernel memory.
const RING_BUDGET: usize = 64 << 20;

/// Open a socket on each target (inside its namespace).
pub fn open(targets: &[Target]) -> io::Result<Vec<PacketSocket>> {
    let ring = (RING_BUDGET / targets.len().max(1)).clamp(512 << 10, RING_BYTES);
    targets
        .iter()
        .map(|t| {
            let name = std::ffi::CString::new(t.ifname.as_str()).map_err(io::Error::other)?;
            netns::run_in(&t.ns, move || {
                let idx = nix::net::if_::if_nametoindex(name.as_c_str())?;
                PacketSocket::open_with_ring(idx, ring)
            })?
            .map_err(|e| io::Error::new(e.kind(), format!("capture on {}: {e}", t.label)))
        })
        .collect()
}

type Ts = (i64, u32);

/// How long a packet waits before it is printed, so packets seen on other
/// interfaces a moment later but with earlier timestamps are put before it.
const REORDER: Duration = Duration::from_millis(30);

/// How long packets wait before release. The ring hands frames over a block
/// at a time, up to [`BLOCK_TIMEOUT`] after the kernel stored them: a frame
/// of another interface with an earlier time may come that much later.
fn reorder_window(interfaces: usize) -> Duration {
    if interfaces > 1 {
        BLOCK_TIMEOUT + REORDER
    } else {
        REORDER
    }
}

/// A written file is flushed at least this often, so it can be read while
/// the capture runs.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// When a capture stops, frames already in the blocks the kernel is filling
/// are still read: the kernel hands those blocks over within [`BLOCK_TIMEOUT`].
struct Finish {
    at: Option<Instant>,
}

impl Finish {
    /// `Some(draining)` once stopping: still waiting for open blocks, or done.
    fn state(&mut self, stopping: bool, socks: &[PacketSocket]) -> Option<bool> {
        if stopping && self.at.is_none() {
            self.at = Some(Instant::now());
        }
        let at = self.at?;
        Some(
            at.elapsed() < BLOCK_TIMEOUT + REORDER
                && socks.iter().any(PacketSocket::frames_in_open_block),
        )
    }
}

fn wait_ready(socks: &[PacketSocket], timeout: Duration) -> io::Result<()> {
    let fds: Vec<BorrowedFd<'_>> = socks.iter().map(|s| s.as_fd()).collect();
    crate::kernel::poll::wait_readable(&fds, timeout).map(drop)
}

/// A ring frame's bytes with its VLAN tag put back (copied into `scratch`
/// only then), and its length on the wire.
fn frame_bytes<'a>(f: &RingFrame<'a>, scratch: &'a mut [u8]) -> (&'a [u8], u32) {
    if f.vlan.is_none() {
        (f.data, f.wire_len)
    } else {
        let (n, orig) = copy_frame(f, scratch);
        (&scratch[..n], orig)
    }
}

/// Lets the kernel drop, before the ring, frames the filter cannot match.
/// The program is a pre-filter (user space still checks every frame): if it
/// cannot be attached, the capture is only more expensive, not different.
fn attach_filter(socks: &[PacketSocket], opts: &Options) {
    if let Some(prog) = opts.filter.as_ref().and_then(super::bpf::compile) {
        for s in socks {
            let _ = s.set_filter(&prog);
        }
    }
}

fn stats_of(targets: &[Target], socks: &[PacketSocket], captured: &[u64]) -> Vec<Stats> {
    socks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (rx, drops) = s.stats().unwrap_or((0, 0));
            Stats {
                label: targets[i].label.clone(),
                captured: captured[i],
                received_by_kernel: rx,
                dropped_by_kernel: drops,
            }
        })
        .collect()
}

/// Capture until `count` packets passed the filter, `duration` is over, or `stop`.
/// Every packet (in time order) goes to `on_packet` and to `sink`.
pub fn run(
    targets: &[Target],
    mut socks: Vec<PacketSocket>,
    opts: &Options,
    stop: &AtomicBool,
    mut sink: Option<&mut Sink>,
    on_packet: &mut dyn FnMut(&Seen),
) -> io::Result<Vec<Stats>> {
    attach_filter(&socks, opts);
    let t0 = Instant::now();
    let window = reorder_window(targets.len());
    // Packets waiting to be released, oldest kernel timestamp first.
    let mut heap: BinaryHeap<Reverse<(Ts, u64)>> = BinaryHeap::new();
    let mut held: std::collections::HashMap<u64, (Instant, Seen)> =
        std::collections::HashMap::new();
    let mut serial = 0u64;
    let mut emitted = 0u64;
    let mut captured = vec![0u64; targets.len()];
    let mut buf = vec![0u8; MAX_FRAME_LEN + 4];
    let mut finish = Finish { at: None };
    let mut flushed = Instant::now();
    let done = |emitted: u64| opts.count.is_some_and(|c| emitted >= c);
    loop {
        let stopping =
            stop.load(Ordering::SeqCst) || opts.duration.is_some_and(|d| t0.elapsed() >= d);
        let state = finish.state(stopping, &socks);
        let finishing = state == Some(false);
        if !finishing {
            wait_ready(
                &socks,
                Duration::from_millis(if state.is_some() { 5 } else { 20 }),
            )?;
            for (i, sock) in socks.iter_mut().enumerate() {
                sock.read_ready(|f| {
                    let (n, orig_len) = copy_frame(f, &mut buf);
                    let data = &buf[..n];
                    let summary = summarize(data);
                    if opts.filter.as_ref().is_some_and(|f| !summary.matches(f)) {
                        return;
                    }
                    serial += 1;
                    let text = summary.to_string();
                    heap.push(Reverse((f.ts, serial)));
                    let seen = Seen {
                        ts: f.ts,
                        target: i,
                        label: targets[i].label.clone(),
                        direction: direction(f),
                        orig_len,
                        data: data.to_vec(),
                        summary,
                        text,
                    };
                    held.insert(serial, (Instant::now(), seen));
                });
            }
        }
        // Release what has waited long enough (everything when finishing).
        while let Some(Reverse((_, id))) = heap.peek().copied() {
            let ready = finishing || held.get(&id).is_some_and(|(t, _)| t.elapsed() >= window);
            if !ready || done(emitted) {
                break;
            }
            heap.pop();
            if let Some((_, s)) = held.remove(&id) {
                captured[s.target] += 1;
                emitted += 1;
                if let Some(w) = sink.as_deref_mut() {
                    w.write(&s)?;
                }
                on_packet(&s);
            }
        }
        if let Some(w) = sink.as_deref_mut()
            && flushed.elapsed() >= FLUSH_EVERY
        {
            w.flush()?;
            flushed = Instant::now();
        }
        if done(emitted) || (finishing && heap.is_empty()) {
            break;
        }
    }
    if let Some(w) = sink {
        w.flush()?;
    }
    Ok(stats_of(targets, &socks, &captured))
}

/// Frames of one interface copied out of the ring, waiting for the merge
/// by time: their bytes back to back in one buffer (no allocation per frame).
#[derive(Default)]
struct Queue {
    /// (time, when read, direction, length on the wire, bytes stored).
    meta: VecDeque<(Ts, Instant, Direction, u32, usize)>,
    bytes: Vec<u8>,
    /// Where the oldest frame's bytes start in `bytes`.
    head: usize,
}

impl Queue {
    fn push(&mut self, ts: Ts, at: Instant, dir: Direction, orig_len: u32, data: &[u8]) {
        // Reuse the buffer once it is drained; else drop the consumed half.
        if self.meta.is_empty() {
            self.bytes.clear();
            self.head = 0;
        } else if self.head > (1 << 20) && self.head > self.bytes.len() / 2 {
            self.bytes.drain(..self.head);
            self.head = 0;
        }
        self.bytes.extend_from_slice(data);
        self.meta.push_back((ts, at, dir, orig_len, data.len()));
    }

    fn oldest(&self) -> Option<(Ts, Instant)> {
        self.meta.front().map(|m| (m.0, m.1))
    }

    /// Takes the oldest frame: (time, direction, length on the wire, bytes).
    fn pop(&mut self) -> Option<(Ts, Direction, u32, &[u8])> {
        let (ts, _, dir, orig, len) = self.meta.pop_front()?;
        let start = self.head;
        self.head += len;
        Some((ts, dir, orig, self.bytes.get(start..start + len)?))
    }
}

/// Capture into `sink` only, as [`run`] stops and counts, but nothing is
/// decoded (unless the filter needs it) and no [`Seen`] is made: frames go
/// from the ring to the file. One interface's frames are written in the
/// order the kernel stored them; several interfaces are merged by time.
/// This is what `nslab capture -w FILE -q` runs: a busy link costs about
/// what tcpdump costs.
pub fn record(
    targets: &[Target],
    mut socks: Vec<PacketSocket>,
    opts: &Options,
    stop: &AtomicBool,
    sink: &mut Sink,
) -> io::Result<Vec<Stats>> {
    attach_filter(&socks, opts);
    let t0 = Instant::now();
    let window = reorder_window(targets.len());
    let merge = targets.len() > 1;
    let mut queues: Vec<Queue> = targets.iter().map(|_| Queue::default()).collect();
    let mut captured = vec![0u64; targets.len()];
    let mut emitted = 0u64;
    let mut scratch = vec![0u8; MAX_FRAME_LEN + 4];
    let mut finish = Finish { at: None };
    let mut flushed = Instant::now();
    let mut failed: Option<io::Error> = None;
    let done = |emitted: u64| opts.count.is_some_and(|c| emitted >= c);
    loop {
        let stopping =
            stop.load(Ordering::SeqCst) || opts.duration.is_some_and(|d| t0.elapsed() >= d);
        let state = finish.state(stopping, &socks);
        let finishing = state == Some(false);
        if !finishing {
            wait_ready(
                &socks,
                Duration::from_millis(if state.is_some() { 5 } else { 20 }),
            )?;
            for (i, sock) in socks.iter_mut().enumerate() {
                let at = Instant::now();
                sock.read_ready(|f| {
                    if failed.is_some() || done(emitted) {
                        return;
                    }
                    let (data, orig_len) = frame_bytes(f, &mut scratch);
                    if opts
                        .filter
                        .as_ref()
                        .is_some_and(|fl| !summarize(data).matches(fl))
                    {
                        return;
                    }
                    if merge {
                        queues[i].push(f.ts, at, direction(f), orig_len, data);
                    } else if let Err(e) = sink.write_raw(i, f.ts, orig_len, data, direction(f)) {
                        failed = Some(e);
                    } else {
                        captured[i] += 1;
                        emitted += 1;
                    }
                });
            }
            if let Some(e) = failed.take() {
                return Err(e);
            }
        }
        // Merge: the oldest head goes first, once it has waited long enough.
        let now = Instant::now();
        while !done(emitted) {
            let Some((i, (_, at))) = queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| Some((i, q.oldest()?)))
                .min_by_key(|&(_, (ts, _))| ts)
            else {
                break;
            };
            if !finishing && now.saturating_duration_since(at) < window {
                break;
            }
            let Some((ts, dir, orig_len, data)) = queues[i].pop() else {
                break;
            };
            sink.write_raw(i, ts, orig_len, data, dir)?;
            captured[i] += 1;
            emitted += 1;
        }
        if flushed.elapsed() >= FLUSH_EVERY {
            sink.flush()?;
            flushed = Instant::now();
        }
        if done(emitted) || (finishing && queues.iter().all(|q| q.meta.is_empty())) {
            break;
        }
    }
    sink.flush()?;
    Ok(stats_of(targets, &socks, &captured))
}

/// A tcpdump-like line: time, where, direction, decode.
pub fn line(s: &Seen) -> String {
    let t = Timestamp::new(s.ts.0, s.ts.1);
    let secs = t.sec.rem_euclid(86400);
    format!(
        "{:02}:{:02}:{:02}.{:06} {} {} {}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        t.nsec / 1000,
        s.label,
        match s.direction {
            Direction::In => "In ",
            Direction::Out => "Out",
        },
        s.text
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_decides_the_file_format() {
        let f = |p: &str, n| file_format(Path::new(p), n);
        assert_eq!(f("x.pcapng", 1), Ok(FileFormat::PcapNg));
        assert_eq!(f("x.PCAPNG", 3), Ok(FileFormat::PcapNg));
        assert_eq!(f("x.pcap", 1), Ok(FileFormat::Pcap));
        assert!(f("x.pcap", 2).unwrap_err().contains(".pcapng"));
        assert_eq!(f("x", 1), Ok(FileFormat::Pcap));
        assert_eq!(f("x.cap", 2), Ok(FileFormat::PcapNg));
    }
}
