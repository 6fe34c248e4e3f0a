//! Capture on several interfaces in several namespaces at once: one AF_PACKET
//! socket per interface, opened inside its namespace; packets merged by kernel
//! timestamp and tagged with where they were seen.

use super::decode::{Filter, Summary, summarize};
use super::pcap::{Direction, PcapNgWriter, PcapWriter, Timestamp};
use super::socket::{MAX_FRAME_LEN, PacketSocket};
use crate::kernel::netns;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
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
        let f = BufWriter::new(File::create(path)?);
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
        match self {
            Sink::Pcap(w) => w.write(s.ts, s.orig_len, &s.data),
            Sink::PcapNg(w, ids) => {
                w.write(ids[s.target], s.ts, s.orig_len, &s.data, Some(s.direction))
            }
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Pcap(w) => w.flush(),
            Sink::PcapNg(w, _) => w.flush(),
        }
    }
}

/// Open a socket on each target (inside its namespace).
pub fn open(targets: &[Target]) -> io::Result<Vec<PacketSocket>> {
    targets
        .iter()
        .map(|t| {
            let name = std::ffi::CString::new(t.ifname.as_str()).map_err(io::Error::other)?;
            netns::run_in(&t.ns, move || {
                let idx = nix::net::if_::if_nametoindex(name.as_c_str())?;
                PacketSocket::open(idx)
            })?
            .map_err(|e| io::Error::new(e.kind(), format!("capture on {}: {e}", t.label)))
        })
        .collect()
}

type Ts = (i64, u32);

/// How long a packet waits before it is printed, so packets seen on other
/// interfaces a moment later but with earlier timestamps are put before it.
const REORDER: Duration = Duration::from_millis(30);

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
    let t0 = Instant::now();
    // Packets waiting to be released, oldest kernel timestamp first.
    let mut heap: BinaryHeap<Reverse<(Ts, u64)>> = BinaryHeap::new();
    let mut held: std::collections::HashMap<u64, (Instant, Seen)> =
        std::collections::HashMap::new();
    let mut serial = 0u64;
    let mut emitted = 0u64;
    let mut captured = vec![0u64; targets.len()];
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let done = |emitted: u64| opts.count.is_some_and(|c| emitted >= c);
    loop {
        let finishing =
            stop.load(Ordering::SeqCst) || opts.duration.is_some_and(|d| t0.elapsed() >= d);
        if !finishing {
            let fds: Vec<BorrowedFd<'_>> = socks.iter().map(|s| s.as_fd()).collect();
            let ready = crate::kernel::poll::wait_readable(&fds, Duration::from_millis(20))?;
            drop(fds);
            for (i, r) in ready.into_iter().enumerate() {
                if !r {
                    continue;
                }
                while let Some(pkt) = socks[i].recv(&mut buf, Duration::ZERO)? {
                    let summary = summarize(pkt.data);
                    if opts.filter.as_ref().is_some_and(|f| !summary.matches(f)) {
                        continue;
                    }
                    serial += 1;
                    let text = summary.to_string();
                    heap.push(Reverse((pkt.ts, serial)));
                    let seen = Seen {
                        ts: pkt.ts,
                        target: i,
                        label: targets[i].label.clone(),
                        direction: pkt.direction,
                        orig_len: pkt.orig_len,
                        data: pkt.data.to_vec(),
                        summary,
                        text,
                    };
                    held.insert(serial, (Instant::now(), seen));
                }
            }
        }
        // Release what has waited long enough (everything when finishing).
        while let Some(Reverse((_, id))) = heap.peek().copied() {
            let ready = finishing || held.get(&id).is_some_and(|(t, _)| t.elapsed() >= REORDER);
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
        if done(emitted) || (finishing && heap.is_empty()) || (finishing && done(emitted)) {
            break;
        }
    }
    if let Some(w) = sink {
        w.flush()?;
    }
    let mut stats = Vec::new();
    for (i, s) in socks.iter_mut().enumerate() {
        let (rx, drops) = s.stats().unwrap_or((0, 0));
        stats.push(Stats {
            label: targets[i].label.clone(),
            captured: captured[i],
            received_by_kernel: rx,
            dropped_by_kernel: drops,
        });
    }
    Ok(stats)
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
