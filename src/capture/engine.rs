//! Capture on several interfaces in several namespaces at once: one AF_PACKET
//! socket per interface, opened inside its namespace; packets merged by kernel
//! timestamp and tagged with where they were seen.

use super::decode::{Filter, Summary, summarize};
use super::pcap::{Direction, PcapNgWriter, PcapWriter, Timestamp, epb_head, epb_tail, pcap_head};
#[cfg(test)]
use super::pcap::{encode_epb, encode_pcap};
use super::ring::RingFrame;
use super::socket::{
    BLOCK_TIMEOUT, MAX_FRAME_LEN, PacketSocket, RING_BYTES, Ready, copy_frame, direction,
};
use crate::kernel::netns;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, IoSlice, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
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
        match self {
            Sink::Pcap(w) => w.write(s.ts, s.orig_len, &s.data),
            Sink::PcapNg(w, ids) => {
                w.write(ids[s.target], s.ts, s.orig_len, &s.data, Some(s.direction))
            }
        }
    }

    /// How records for this file are encoded (by [`record`]'s readers).
    fn encoder(&self) -> Encoder {
        match self {
            Sink::Pcap(w) => Encoder::Pcap(w.snaplen()),
            Sink::PcapNg(w, ids) => Encoder::PcapNg(w.snaplen(), ids.clone()),
        }
    }

    /// The file with everything written so far, and its length: where
    /// [`record`] writes records at their offsets.
    fn file_at_end(&mut self) -> io::Result<(&File, u64)> {
        let w = self.out();
        w.flush()?;
        let pos = w.get_mut().stream_position()?;
        Ok((w.get_ref(), pos))
    }

    /// Moves the file position to `at` (the end of what [`record`] wrote).
    fn seek_to(&mut self, at: u64) -> io::Result<()> {
        self.out().seek(SeekFrom::Start(at)).map(drop)
    }

    fn out(&mut self) -> &mut BufWriter<File> {
        match self {
            Sink::Pcap(w) => w.get_mut(),
            Sink::PcapNg(w, _) => w.get_mut(),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Pcap(w) => w.flush(),
            Sink::PcapNg(w, _) => w.flush(),
        }
    }
}

/// Encodes one frame as a record of a [`Sink`]'s file.
enum Encoder {
    /// Snap length.
    Pcap(u32),
    /// Snap length, interface ids of the targets.
    PcapNg(u32, Vec<u32>),
}

impl Encoder {
    /// A whole record (the tests' oracle for [`head`](Self::head) and
    /// [`tail`](Self::tail) around the frame).
    #[cfg(test)]
    fn encode(
        &self,
        out: &mut Vec<u8>,
        target: usize,
        ts: Ts,
        orig_len: u32,
        data: &[u8],
        direction: Direction,
    ) -> io::Result<()> {
        match self {
            Encoder::Pcap(snap) => encode_pcap(out, *snap, ts.into(), orig_len, data),
            Encoder::PcapNg(snap, ids) => {
                let id = ids.get(target).copied().ok_or_else(|| {
                    io::Error::other(format!("no pcapng interface for target {target}"))
                })?;
                encode_epb(out, *snap, id, ts.into(), orig_len, data, Some(direction))
            }
        }
    }

    /// Appends what [`encode`](Self::encode) puts before the frame's bytes
    /// and returns those bytes (`data` cut to the snap length); then the
    /// caller writes them and [`tail`](Self::tail) appends what follows.
    fn head<'d>(
        &self,
        out: &mut Vec<u8>,
        target: usize,
        ts: Ts,
        orig_len: u32,
        data: &'d [u8],
        direction: Direction,
    ) -> io::Result<&'d [u8]> {
        match self {
            Encoder::Pcap(snap) => pcap_head(out, *snap, ts.into(), orig_len, data),
            Encoder::PcapNg(snap, ids) => {
                let id = ids.get(target).copied().ok_or_else(|| {
                    io::Error::other(format!("no pcapng interface for target {target}"))
                })?;
                epb_head(out, *snap, id, ts.into(), orig_len, data, Some(direction))
            }
        }
    }

    /// Appends what follows `data_len` bytes of frame in the record.
    fn tail(&self, out: &mut Vec<u8>, data_len: usize, direction: Direction) {
        match self {
            Encoder::Pcap(_) => {}
            Encoder::PcapNg(..) => epb_tail(out, data_len, Some(direction)),
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

/// What [`pump`] hands its caller.
enum Step<'a, 'b> {
    /// A frame of socket `.0`, borrowing the ring (copy what must outlive the call).
    Frame(usize, &'a RingFrame<'b>),
    /// The block of socket `.0` whose frames came just before: it goes back
    /// to the kernel after this step.
    Block(&'b [u8]),
    /// A pass over the sockets is over: every block the kernel had handed over
    /// by `read_from` has been read. `finishing`: the capture is stopping and
    /// the blocks it was still filling are read too.
    Pass {
        finishing: bool,
        read_from: Instant,
        socks: &'a mut [PacketSocket],
    },
}

/// The capture loop both paths run: wait for blocks, hand every frame to
/// `step`, then say the pass is over; `step` returns true to end the loop.
/// Stopping (`stop`, or `opts.duration` after `t0`) first drains the blocks
/// the kernel is still filling (see [`Finish`]). `hold`: blocks are read with
/// [`PacketSocket::read_held`] (at most that many held), and `step` gives
/// them back at its passes.
fn pump(
    socks: &mut [PacketSocket],
    hold: Option<usize>,
    opts: &Options,
    t0: Instant,
    stop: &AtomicBool,
    mut step: impl FnMut(Step<'_, '_>) -> io::Result<bool>,
) -> io::Result<()> {
    let mut finish = Finish { at: None };
    loop {
        let stopping =
            stop.load(Ordering::SeqCst) || opts.duration.is_some_and(|d| t0.elapsed() >= d);
        let state = finish.state(stopping, socks);
        let finishing = state == Some(false);
        let read_from = Instant::now();
        if !finishing {
            wait_ready(
                socks,
                Duration::from_millis(if state.is_some() { 5 } else { 20 }),
            )?;
            let mut failed = None;
            for (i, sock) in socks.iter_mut().enumerate() {
                let mut each = |r: Ready<'_, '_>| {
                    let s = match r {
                        Ready::Frame(f) => Step::Frame(i, f),
                        Ready::Block(b) => Step::Block(b),
                    };
                    // Frames and blocks cannot end the loop (only a pass
                    // can), but can fail it.
                    if failed.is_none()
                        && let Err(e) = step(s)
                    {
                        failed = Some(e);
                    }
                };
                match hold {
                    Some(limit) => sock.read_held(limit, &mut each),
                    None => sock.read_blocks(&mut each),
                };
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        if step(Step::Pass {
            finishing,
            read_from,
            socks: &mut *socks,
        })? {
            return Ok(());
        }
    }
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
    let window = reorder_window(targets.len());
    // Packets waiting to be released, oldest kernel timestamp first.
    let mut heap: BinaryHeap<Reverse<(Ts, u64)>> = BinaryHeap::new();
    let mut held: std::collections::HashMap<u64, (Instant, Seen)> =
        std::collections::HashMap::new();
    let mut serial = 0u64;
    let mut emitted = 0u64;
    let mut captured = vec![0u64; targets.len()];
    let mut buf = vec![0u8; MAX_FRAME_LEN + 4];
    let mut flushed = Instant::now();
    let done = |emitted: u64| opts.count.is_some_and(|c| emitted >= c);
    pump(&mut socks, None, opts, Instant::now(), stop, |step| {
        let finishing = match step {
            Step::Frame(i, f) => {
                let (n, orig_len) = copy_frame(f, &mut buf);
                let data = &buf[..n];
                let summary = summarize(data);
                if opts.filter.as_ref().is_some_and(|f| !summary.matches(f)) {
                    return Ok(false);
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
                return Ok(false);
            }
            Step::Block(..) => return Ok(false),
            Step::Pass { finishing, .. } => finishing,
        };
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
        Ok(done(emitted) || (finishing && heap.is_empty()))
    })?;
    if let Some(w) = sink {
        w.flush()?;
    }
    Ok(stats_of(targets, &socks, &captured))
}

/// Frames shorter than this are copied next to their record's header
/// instead of getting `IoSlice`s of their own: for small frames the kernel's
/// walk of the slices costs more than the copy.
const COPY_BELOW: usize = 512;
/// Slices per `pwritev`: below IOV_MAX (1024).
const WRITE_IOVS: usize = 1000;

/// A part of a [`Chunk`]'s records.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// `Chunk::bytes` up to here, from where the bytes written before end.
    Buf(usize),
    /// A frame's bytes in the ring block: (offset, length). While the block
    /// is encoded: (address, length), made an offset by [`Chunk::seal`].
    Ring(usize, usize),
}

/// Where a record of a [`Chunk`] ends.
#[derive(Debug, Clone, Copy)]
struct Rec {
    /// Pieces and bytes used up to its end.
    pieces: usize,
    bytes: usize,
    /// File bytes of the chunk's records up to its end.
    end: u64,
}

/// The records of the frames of one ring block, written from the ring: the
/// records' headers and trailers (and small or re-tagged frames) in `bytes`,
/// the other frames where the kernel put them. A frame's bytes are then
/// copied once, into the page cache, as tcpdump copies them; a copy into a
/// buffer of our own first was a fifth of a TCP capture's CPU.
struct Chunk {
    bytes: Vec<u8>,
    /// End of the last `Piece::Buf`.
    cut: usize,
    pieces: Vec<Piece>,
    recs: Vec<Rec>,
    /// The records' kernel times ([`time_key`]), apart from `recs`: the
    /// merge compares times record by record, and reads 8 bytes per record
    /// that other threads wrote, not a whole [`Rec`].
    times: Vec<u64>,
    /// When the reader handed it over: every frame in it was read by then.
    sent: Instant,
    /// The ring block its `Piece::Ring`s are in: (address, length). Several
    /// interfaces: the block stays user space's while anyone but its reader
    /// holds the chunk (see [`Reader`]).
    block: (usize, usize),
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            bytes: Vec::with_capacity(64 << 10),
            cut: 0,
            pieces: Vec::new(),
            recs: Vec::new(),
            times: Vec::new(),
            sent: Instant::now(),
            block: (0, 0),
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.cut = 0;
        self.pieces.clear();
        self.recs.clear();
        self.times.clear();
        self.block = (0, 0);
    }

    /// Adds the record of frame `f` of interface `target`: `data` is its
    /// bytes as [`frame_bytes`] gave them.
    fn push(
        &mut self,
        encoder: &Encoder,
        target: usize,
        f: &RingFrame<'_>,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        let dir = direction(f);
        let before = self.bytes.len();
        let kept = encoder.head(&mut self.bytes, target, f.ts, orig_len, data, dir)?;
        let mut ring = 0;
        // A tagged frame is in the caller's scratch, not in the ring: copied too.
        if f.vlan.is_some() || kept.len() < COPY_BELOW {
            self.bytes.extend_from_slice(kept);
        } else {
            if self.bytes.len() > self.cut {
                self.pieces.push(Piece::Buf(self.bytes.len()));
                self.cut = self.bytes.len();
            }
            self.pieces
                .push(Piece::Ring(kept.as_ptr() as usize, kept.len()));
            ring = kept.len();
        }
        encoder.tail(&mut self.bytes, kept.len(), dir);
        let end = self.recs.last().map_or(0, |r| r.end);
        self.times.push(time_key(f.ts));
        self.recs.push(Rec {
            pieces: self.pieces.len(),
            bytes: self.bytes.len(),
            end: end + (self.bytes.len() - before + ring) as u64,
        });
        Ok(())
    }

    /// The frames pushed since the last `clear` are in `block`: their
    /// pieces become offsets in it.
    fn seal(&mut self, block: &[u8]) -> io::Result<()> {
        let base = block.as_ptr() as usize;
        let mut any = false;
        for p in &mut self.pieces {
            if let Piece::Ring(at, len) = p {
                *at = at
                    .checked_sub(base)
                    .filter(|off| off.checked_add(*len).is_some_and(|e| e <= block.len()))
                    .ok_or_else(|| io::Error::other("a ring frame outside its block"))?;
                any = true;
            }
        }
        // No frame left in the ring (small ones are copied): the block is
        // free at once.
        self.block = if any { (base, block.len()) } else { (0, 0) };
        Ok(())
    }

    /// Some record's frame is still in the ring block.
    fn needs_block(&self) -> bool {
        self.block.1 != 0
    }

    /// File bytes of records `from..to`.
    fn len(&self, from: usize, to: usize) -> u64 {
        let start = if from == 0 {
            0
        } else {
            self.recs[from - 1].end
        };
        self.recs[to - 1].end - start
    }

    /// Appends the slices of records `from..to` (`from < to`), whose frames
    /// are in `block` (the one given to [`seal`](Self::seal)).
    fn slices<'s>(&'s self, block: &'s [u8], from: usize, to: usize, out: &mut Vec<IoSlice<'s>>) {
        let (mut p, mut at) = match from {
            0 => (0, 0),
            _ => (self.recs[from - 1].pieces, self.recs[from - 1].bytes),
        };
        let last = self.recs[to - 1];
        while p < last.pieces {
            match self.pieces[p] {
                Piece::Buf(e) => {
                    if e > at {
                        out.push(IoSlice::new(&self.bytes[at..e]));
                        at = e;
                    }
                }
                Piece::Ring(off, len) => out.push(IoSlice::new(&block[off..off + len])),
            }
            p += 1;
        }
        if last.bytes > at {
            out.push(IoSlice::new(&self.bytes[at..last.bytes]));
        }
    }

    /// The ring block of a sealed chunk that several-interface [`record`]
    /// sent to its writer.
    fn ring(&self) -> &[u8] {
        if self.block.1 == 0 {
            return &[];
        }
        // SAFETY: `seal` took (address, length) from the block; its reader
        // gives the block back to the kernel only once it holds the chunk
        // alone (no one else can call this then), and the ring stays mapped
        // until the reader's socket is dropped, after the writer is done.
        unsafe { std::slice::from_raw_parts(self.block.0 as *const u8, self.block.1) }
    }
}

/// A reader's messages to the writer.
enum Msg {
    Frames(usize, Arc<Chunk>),
    /// Reader `.0` read every block the kernel had handed over by `.1`.
    Read(usize, Instant),
    /// Reader `.0` holds all the blocks it may: it reads no more until the
    /// writer is done with some.
    Full(usize),
    /// Reader `.0` stopped reading: all it read was sent.
    Gone(usize),
}

/// Records `.2..` `.3` of a chunk go to the file at offset `.0`.
struct Job(u64, Arc<Chunk>, usize, usize);

/// Records per batch of the writer.
const WRITE_BATCH: usize = 8192;
/// Runs per batch of the writer.
const WRITE_RUNS: usize = 512;
/// Runs of records at least this long are written by their reader (the
/// kernel's copy into the page cache is most of what a busy capture costs:
/// with the readers doing it, four interfaces get the CPU share four
/// tcpdumps get); shorter ones by the writer, many per `pwritev`.
const OWN_WRITE: usize = 16 << 10;
/// A reader holding blocks paces its passes this much when it found no new
/// block (poll() would not wait).
const HELD_PACE: Duration = Duration::from_millis(1);

/// One interface's reader thread of [`record`]: it owns the socket, filters
/// frames and encodes each block's records into a chunk that points into the
/// block, sends the chunks to the writer, writes the long runs the writer
/// places in the file, and gives blocks back to the kernel, in ring order,
/// once the writer is done with them. It holds at most half the ring: when
/// the writer lags that far, it says so and the writer's order gives way.
struct Reader<'a> {
    i: usize,
    encoder: &'a Encoder,
    filter: Option<&'a Filter>,
    file: &'a Out<'a>,
    tx: Sender<Msg>,
    jobs: Receiver<Job>,
    /// The blocks held, oldest first, with their chunks (None: no frame of
    /// the block is in one).
    held: VecDeque<Option<Arc<Chunk>>>,
    limit: usize,
    chunk: Chunk,
    /// Chunks sent that hold no block, until the writer is done with them.
    loose: Vec<Arc<Chunk>>,
    /// Chunks to fill again: their buffers keep their size (a block's
    /// records grown from empty each time cost a copy of them and fresh
    /// pages, about a tenth of a UDP flood's capture).
    spare: Vec<Chunk>,
    /// Blocks read since the last pass.
    fresh: usize,
    quit: &'a AtomicBool,
    scratch: Vec<u8>,
    failed: Option<io::Error>,
}

impl Reader<'_> {
    fn run(
        mut self,
        mut sock: PacketSocket,
        opts: &Options,
        t0: Instant,
        stop: &AtomicBool,
    ) -> (PacketSocket, io::Result<()>) {
        let hold = Some(self.limit);
        let res = pump(
            std::slice::from_mut(&mut sock),
            hold,
            opts,
            t0,
            stop,
            |step| self.step(step),
        );
        let _ = self.tx.send(Msg::Gone(self.i));
        // Jobs for what was sent come until the writer is done.
        while let Ok(job) = self.jobs.recv() {
            self.write(job);
        }
        (sock, res.and(self.failed.map_or(Ok(()), Err)))
    }

    fn step(&mut self, step: Step<'_, '_>) -> io::Result<bool> {
        match step {
            Step::Frame(_, f) => {
                let (data, orig_len) = frame_bytes(f, &mut self.scratch);
                if self.filter.is_some_and(|fl| !summarize(data).matches(fl)) {
                    return Ok(false);
                }
                self.chunk
                    .push(self.encoder, self.i, f, data, orig_len)
                    .map(|()| false)
            }
            Step::Block(b) => {
                self.fresh += 1;
                if self.chunk.recs.is_empty() {
                    self.held.push_back(None);
                    return Ok(false);
                }
                self.chunk.seal(b)?;
                let next = self.spare.pop().unwrap_or_else(Chunk::new);
                let mut c = std::mem::replace(&mut self.chunk, next);
                c.sent = Instant::now();
                let c = Arc::new(c);
                // A chunk without ring frames needs no block: not held.
                if c.needs_block() {
                    self.held.push_back(Some(c.clone()));
                } else {
                    self.held.push_back(None);
                    self.loose.push(c.clone());
                }
                let _ = self.tx.send(Msg::Frames(self.i, c));
                Ok(false)
            }
            Step::Pass {
                finishing,
                read_from,
                socks,
            } => {
                let sock = &mut socks[0];
                let full = sock.held() >= self.limit;
                // Full: blocks handed over by then may wait unread.
                let msg = if full {
                    Msg::Full(self.i)
                } else {
                    Msg::Read(self.i, read_from)
                };
                let gone = self.tx.send(msg).is_err();
                self.release(sock);
                if !finishing && self.fresh == 0 && sock.held() > 0 {
                    if let Ok(job) = self.jobs.recv_timeout(HELD_PACE) {
                        self.write(job);
                    }
                    self.release(sock);
                }
                self.fresh = 0;
                Ok(finishing || gone || self.quit.load(Ordering::Relaxed))
            }
        }
    }

    /// Writes the jobs that came, then gives back the oldest blocks nobody
    /// else needs.
    fn release(&mut self, sock: &mut PacketSocket) {
        while let Ok(job) = self.jobs.try_recv() {
            self.write(job);
        }
        while let Some(front) = self.held.front_mut() {
            if front.as_ref().is_some_and(|c| Arc::strong_count(c) > 1) {
                break;
            }
            if let Some(mut c) = front.take().and_then(Arc::into_inner) {
                c.clear();
                self.spare.push(c);
            }
            self.held.pop_front();
            sock.release_held();
        }
        let mut k = 0;
        while k < self.loose.len() {
            if Arc::strong_count(&self.loose[k]) > 1 {
                k += 1;
            } else if let Some(mut c) = Arc::into_inner(self.loose.swap_remove(k)) {
                c.clear();
                self.spare.push(c);
            }
        }
    }

    fn write(&mut self, Job(at, chunk, from, to): Job) {
        let mut iovs = Vec::new();
        chunk.slices(chunk.ring(), from, to, &mut iovs);
        if self.failed.is_none()
            && let Err(e) = self.file.writev_at(&mut iovs, at, true)
        {
            self.failed = Some(e);
            self.quit.store(true, Ordering::Relaxed);
        }
    }
}

/// How the writer of [`record`] sees one interface.
struct Lane {
    chunks: VecDeque<Arc<Chunk>>,
    /// Next record of the front chunk.
    next: usize,
    /// Its reader read every block handed over by then (None: not yet).
    read: Option<Instant>,
    /// Its reader holds all the blocks it may.
    full: bool,
    gone: bool,
    jobs: Sender<Job>,
    /// Chunks it may have here before the writer stops waiting for the others.
    pool: usize,
}

/// Capture into `sink` only, as [`run`] stops and counts, but nothing is
/// decoded (unless the filter needs it) and no [`Seen`] is made: frames go
/// from the ring to the file. One reader thread per interface (each owns
/// its ring, so a busy machine gives several interfaces the scheduler share
/// several tcpdumps get) encodes each ring block's records into a chunk;
/// this thread merges them by time and places them in the file, with the
/// frames' bytes taken from the ring. One interface's frames are written in
/// the order the kernel stored them. This is what `nslab capture -w FILE -q`
/// runs: a busy link costs about what tcpdump costs.
///
/// Records are written at their offsets (`pwrite`), by several threads: while
/// the capture runs, a reader of the file may find a record not yet written
/// before one that is.
///
/// On one interface there is nothing to merge: `record_one` writes each
/// block's records as it comes instead.
pub fn record(
    targets: &[Target],
    socks: Vec<PacketSocket>,
    opts: &Options,
    stop: &AtomicBool,
    sink: &mut Sink,
) -> io::Result<Vec<Stats>> {
    attach_filter(&socks, opts);
    if socks.len() == 1 {
        return record_one(targets, socks, opts, stop, sink);
    }
    let t0 = Instant::now();
    let n = socks.len();
    let encoder = sink.encoder();
    let (file, start) = sink.file_at_end()?;
    let file = &Out {
        file,
        gate: Mutex::new(()),
        nice: Boost::for_interfaces(n),
    };
    let quit = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let mut lanes = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    for (i, sock) in socks.iter().enumerate() {
        // Half the ring: the kernel fills the other half meanwhile.
        let limit = (sock.blocks() / 2).max(1);
        let (jobs_tx, jobs_rx) = mpsc::channel();
        lanes.push(Lane {
            chunks: VecDeque::new(),
            next: 0,
            read: None,
            full: false,
            gone: false,
            jobs: jobs_tx,
            pool: limit,
        });
        readers.push(Reader {
            i,
            encoder: &encoder,
            filter: opts.filter.as_ref(),
            file,
            tx: tx.clone(),
            jobs: jobs_rx,
            held: VecDeque::new(),
            limit,
            chunk: Chunk::new(),
            loose: Vec::new(),
            spare: Vec::new(),
            fresh: 0,
            quit: &quit,
            scratch: vec![0u8; MAX_FRAME_LEN + 4],
            failed: None,
        });
    }
    drop(tx);
    let (socks, captured, end) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(n);
        for (r, sock) in readers.into_iter().zip(socks) {
            let h = std::thread::Builder::new()
                .name(format!("nslab-capture-{}", r.i))
                .stack_size(256 << 10)
                .spawn_scoped(scope, move || r.run(sock, opts, t0, stop));
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    quit.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        let mut w = Merge {
            file,
            pos: start,
            emitted: 0,
            captured: vec![0u64; n],
            stage: Vec::new(),
        };
        // The writer merges and copies for every interface (see [`Out`]).
        let raised = file.nice.as_ref().map(Boost::raise);
        let written = w.run(&mut lanes, &rx, opts, &quit);
        drop(raised);
        // Readers stop at their next pass and write their last jobs.
        quit.store(true, Ordering::Relaxed);
        drop(lanes);
        let mut socks = Vec::with_capacity(n);
        let mut failed = written.err();
        for h in handles {
            let (sock, res) = h
                .join()
                .map_err(|_| io::Error::other("capture reader panicked"))?;
            failed = failed.or(res.err());
            socks.push(sock);
        }
        match failed {
            Some(e) => Err(e),
            None => Ok((socks, w.captured, w.pos)),
        }
    })?;
    sink.seek_to(end)?;
    Ok(stats_of(targets, &socks, &captured))
}

/// [`record`] on one interface, on this thread: each block's records go
/// to the file with one `pwritev` (see [`Chunk`]) before the block goes
/// back to the kernel.
fn record_one(
    targets: &[Target],
    mut socks: Vec<PacketSocket>,
    opts: &Options,
    stop: &AtomicBool,
    sink: &mut Sink,
) -> io::Result<Vec<Stats>> {
    let encoder = sink.encoder();
    let (file, start) = sink.file_at_end()?;
    let mut d = Direct::new(&encoder, opts, file, start);
    pump(
        &mut socks,
        None,
        opts,
        Instant::now(),
        stop,
        |step| match step {
            Step::Frame(_, f) => d.frame(f).map(|()| false),
            Step::Block(b) => d.block(b).map(|()| false),
            Step::Pass { finishing, .. } => Ok(finishing || d.done()),
        },
    )?;
    let (captured, end) = (d.captured, d.pos);
    sink.seek_to(end)?;
    Ok(stats_of(targets, &socks, &[captured]))
}

/// The writer of [`record_one`]: records of a block's frames, written
/// before the block goes back to the kernel.
struct Direct<'a> {
    encoder: &'a Encoder,
    filter: Option<&'a Filter>,
    count: Option<u64>,
    file: &'a File,
    /// Where the next record goes.
    pos: u64,
    captured: u64,
    chunk: Chunk,
    /// A frame with its VLAN tag put back.
    scratch: Vec<u8>,
}

impl<'a> Direct<'a> {
    fn new(encoder: &'a Encoder, opts: &'a Options, file: &'a File, pos: u64) -> Self {
        Direct {
            encoder,
            filter: opts.filter.as_ref(),
            count: opts.count,
            file,
            pos,
            captured: 0,
            chunk: Chunk::new(),
            scratch: vec![0u8; MAX_FRAME_LEN + 4],
        }
    }

    /// `count` frames were taken: the rest are not.
    fn done(&self) -> bool {
        self.count.is_some_and(|c| self.captured >= c)
    }

    /// Encodes frame `f` of the current block, to be written by [`block`](Self::block).
    fn frame(&mut self, f: &RingFrame<'_>) -> io::Result<()> {
        if self.done() {
            return Ok(());
        }
        let (data, orig_len) = frame_bytes(f, &mut self.scratch);
        if self.filter.is_some_and(|fl| !summarize(data).matches(fl)) {
            return Ok(());
        }
        self.chunk.push(self.encoder, 0, f, data, orig_len)?;
        self.captured += 1;
        Ok(())
    }

    /// Writes the records of `block`'s frames (given to [`frame`](Self::frame)
    /// since the last block) at the end of the file.
    fn block(&mut self, block: &[u8]) -> io::Result<()> {
        let n = self.chunk.recs.len();
        if n > 0 {
            self.chunk.seal(block)?;
            let mut iovs = Vec::new();
            self.chunk.slices(block, 0, n, &mut iovs);
            pwrite_all(self.file, &mut iovs, self.pos)?;
            self.pos += self.chunk.len(0, n);
        }
        self.chunk.clear();
        Ok(())
    }
}

/// The writer of [`record`]: takes the readers' chunks and places their
/// records in the file oldest first. A record goes once every reader has
/// read the blocks the kernel handed over [`reorder_window`] after it was
/// read (a frame of another interface with an earlier time has then
/// arrived); at once when a reader holds all the blocks it may, or has
/// `pool` chunks here (it would stop reading, its ring fill and the kernel
/// drop: order gives way).
struct Merge<'a> {
    file: &'a Out<'a>,
    /// Where the next record goes.
    pos: u64,
    emitted: u64,
    captured: Vec<u64>,
    /// Small slices copied together ([`coalesce`]).
    stage: Vec<u8>,
}

impl Merge<'_> {
    fn run(
        &mut self,
        lanes: &mut [Lane],
        rx: &Receiver<Msg>,
        opts: &Options,
        quit: &AtomicBool,
    ) -> io::Result<()> {
        let window = reorder_window(lanes.len());
        let merge = lanes.len() > 1;
        let mut live = lanes.len();
        let done = |emitted: u64| opts.count.is_some_and(|c| emitted >= c);
        loop {
            let mut msg = match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    live = 0;
                    None
                }
            };
            while let Some(m) = msg {
                match m {
                    Msg::Frames(i, c) => lanes[i].chunks.push_back(c),
                    Msg::Read(i, at) => {
                        lanes[i].read = Some(at);
                        lanes[i].full = false;
                    }
                    Msg::Full(i) => lanes[i].full = true,
                    Msg::Gone(i) => {
                        lanes[i].gone = true;
                        live = live.saturating_sub(1);
                    }
                }
                msg = rx.try_recv().ok();
            }
            while let Some(runs) = plan(lanes, window, merge && live > 0, opts.count, self.emitted)
            {
                self.write(lanes, &runs)?;
                if done(self.emitted) {
                    return Ok(());
                }
            }
            if (live == 0 && lanes.iter().all(|l| l.chunks.is_empty()))
                || quit.load(Ordering::Relaxed)
            {
                return Ok(());
            }
        }
    }

    /// Places `runs` (from [`plan`]) at the end of the file: long ones go
    /// to their reader, short ones together in one `pwritev` here; then
    /// moves the lanes past them.
    fn write(&mut self, lanes: &mut [Lane], runs: &[Run]) -> io::Result<()> {
        let mut short: Vec<IoSlice<'_>> = Vec::with_capacity(runs.len());
        let mut short_at = self.pos;
        for run in runs {
            let n = run.to - run.from;
            self.captured[run.lane] += n as u64;
            self.emitted += n as u64;
            let chunk = &lanes[run.lane].chunks[run.chunk];
            let len = chunk.len(run.from, run.to);
            if len >= OWN_WRITE as u64 {
                self.write_short(&mut short, short_at)?;
                // A reader that is gone still writes until the lanes go.
                let _ = lanes[run.lane]
                    .jobs
                    .send(Job(self.pos, chunk.clone(), run.from, run.to));
                self.pos += len;
                short_at = self.pos;
            } else {
                chunk.slices(chunk.ring(), run.from, run.to, &mut short);
                self.pos += len;
            }
        }
        self.write_short(&mut short, short_at)?;
        advance(lanes, runs);
        Ok(())
    }

    /// Writes the writer's own runs at `at`, small slices copied together
    /// first: runs of several floods merged by time are often one record
    /// long, and the kernel's walk of a slice costs more than a copy of one
    /// ([`COPY_BELOW`]).
    fn write_short(&mut self, short: &mut Vec<IoSlice<'_>>, at: u64) -> io::Result<()> {
        let mut stage = std::mem::take(&mut self.stage);
        let mut bufs = coalesce(short, &mut stage);
        let res = self.file.writev_at(&mut bufs, at, false);
        drop(bufs);
        short.clear();
        self.stage = stage;
        res
    }
}

/// `bufs` with each run of slices shorter than [`COPY_BELOW`] copied into
/// `stage` and given as one slice of it.
fn coalesce<'s>(bufs: &[IoSlice<'s>], stage: &'s mut Vec<u8>) -> Vec<IoSlice<'s>> {
    let small = |b: &IoSlice<'_>| b.len() < COPY_BELOW;
    stage.clear();
    for b in bufs.iter().filter(|b| small(b)) {
        stage.extend_from_slice(b);
    }
    let stage: &'s Vec<u8> = stage;
    let mut out = Vec::with_capacity(bufs.len().min(64));
    let (mut at, mut group) = (0, None);
    for b in bufs {
        if small(b) {
            group.get_or_insert(at);
            at += b.len();
        } else {
            if let Some(from) = group.take() {
                out.push(IoSlice::new(&stage[from..at]));
            }
            out.push(*b);
        }
    }
    if let Some(from) = group {
        out.push(IoSlice::new(&stage[from..at]));
    }
    out
}

/// Moves the lanes past `runs` (written): chunks wholly written are dropped
/// here, and their readers give their blocks back.
fn advance(lanes: &mut [Lane], runs: &[Run]) {
    for (i, lane) in lanes.iter_mut().enumerate() {
        let Some(run) = runs.iter().rev().find(|r| r.lane == i) else {
            continue;
        };
        let (mut k, mut r) = (run.chunk, run.to);
        if lane.chunks.get(k).is_some_and(|c| r == c.recs.len()) {
            (k, r) = (k + 1, 0);
        }
        lane.chunks.drain(..k);
        lane.next = r;
    }
}

/// The file of a [`record`], written at offsets by its readers and its
/// writer one at a time: ext4 takes the inode lock for each buffered write,
/// and writers waiting for it spin on the CPU while its owner copies
/// (rwsem optimistic spinning: a tenth of a 4-interface TCP capture's CPU).
/// Here they sleep instead.
///
/// So one thread copies for every interface while the others wait, where a
/// tcpdump per interface copies into a file of its own: on a busy machine
/// the scheduler gives that one thread one thread's share of the CPU and
/// `n` tcpdumps `n` shares (2 cores, four TCP floods: nslab kept 27% of the
/// frames, four tcpdumps 40%). The copying thread therefore weighs `n`
/// threads while it copies ([`Boost`]): a reader for each of its writes,
/// the writer (which merges and copies for all `n`) for as long as it runs,
/// as raising and restoring around each of its small writes cost a twentieth
/// of a UDP flood's capture. Copying into a shared mapping of
/// the file instead would let the readers copy in parallel, but the page
/// faults (a fault, a zeroed page and a read per 4 KiB) cost more than the
/// copy itself: measured, twice the CPU per frame and fewer frames kept.
struct Out<'a> {
    file: &'a File,
    gate: Mutex<()>,
    nice: Option<Boost>,
}

impl Out<'_> {
    /// Writes `bufs` at `at` and empties them; `raise`: this thread weighs
    /// `n` while it does (the writer is raised all along).
    fn writev_at(&self, bufs: &mut Vec<IoSlice<'_>>, at: u64, raise: bool) -> io::Result<()> {
        if bufs.is_empty() {
            return Ok(());
        }
        let _one = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let _weigh = self.nice.as_ref().filter(|_| raise).map(Boost::raise);
        pwrite_all(self.file, bufs, at)
    }
}

/// Nice values for the thread that copies for a merged capture: `normal`
/// (what nslab was started with) and `raised`, enough levels lower that it
/// weighs about as many threads as there are interfaces (the scheduler's
/// weights are 1.25x per level; at most 10 levels), so `nice -n 6 nslab
/// capture` still leaves the lab more CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Boost {
    normal: i32,
    raised: i32,
}

impl Boost {
    /// For `n` interfaces, from this thread's nice value; None for one
    /// interface, or when it cannot be read.
    fn for_interfaces(n: usize) -> Option<Boost> {
        let levels = nice_levels(n);
        if levels == 0 {
            return None;
        }
        nix::errno::Errno::clear();
        // SAFETY: reads this thread's nice value; -1 is also a nice value,
        // so errno tells an error.
        let normal = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        if normal == -1 && nix::errno::Errno::last_raw() != 0 {
            return None;
        }
        Some(Boost {
            normal,
            raised: (normal - levels).max(-20),
        })
    }

    /// Raises this thread's priority until the guard is dropped (nothing
    /// without CAP_SYS_NICE).
    fn raise(&self) -> Raised {
        Raised(set_nice(self.raised).then_some(self.normal))
    }
}

/// Puts the thread's nice value back (if it was changed).
struct Raised(Option<i32>);

impl Drop for Raised {
    fn drop(&mut self) {
        if let Some(nice) = self.0 {
            set_nice(nice);
        }
    }
}

/// Nice levels that make one thread weigh about `n` (at most 10: 9.3x).
fn nice_levels(n: usize) -> i32 {
    ((n.max(1) as f64).ln() / 1.25f64.ln()).round().min(10.0) as i32
}

/// Sets this thread's nice value (Linux: PRIO_PROCESS 0 is the calling
/// thread); false without the right to (CAP_SYS_NICE to go lower).
fn set_nice(nice: i32) -> bool {
    // SAFETY: a plain syscall on this thread.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) == 0 }
}

/// Writes `bufs` at `at` ([`WRITE_IOVS`] slices per `pwritev`) and empties them.
fn pwrite_all(file: &File, bufs: &mut Vec<IoSlice<'_>>, mut at: u64) -> io::Result<()> {
    for group in bufs.chunks_mut(WRITE_IOVS) {
        let mut rest = group;
        while !rest.is_empty() {
            let off = i64::try_from(at).map_err(io::Error::other)?;
            match nix::sys::uio::pwritev(file, rest, off) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    IoSlice::advance_slices(&mut rest, n);
                    at += n as u64;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    bufs.clear();
    Ok(())
}

/// Records `from..to` of chunk `chunk` of lane `lane`: adjacent in the
/// chunk, so adjacent in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    lane: usize,
    chunk: usize,
    from: usize,
    to: usize,
}

/// A frame's kernel time as one number that orders as [`Ts`] does (the
/// ring's seconds are 32 bits: nanoseconds fit in 64 until 2106).
fn time_key((sec, nsec): Ts) -> u64 {
    u64::try_from(sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(nsec))
}

/// The next records to write, oldest first (ties: the lower lane first), as
/// runs: the lane with the oldest record gives every record older than the
/// other lanes' oldest in one go, so a flood costs a comparison per record
/// and a look at the lanes' heads per run, not a scan of every lane per
/// record. Each lane's head is looked up once and again only when that lane
/// moved: floods merged by time give one-record runs, and the lookup (lane,
/// chunk, record, all written by other threads) was most of the merge's
/// cost. At most [`WRITE_BATCH`] records, [`WRITE_RUNS`] runs and what is
/// left of `count`.
fn plan(
    lanes: &[Lane],
    window: Duration,
    wait: bool,
    count: Option<u64>,
    emitted: u64,
) -> Option<Vec<Run>> {
    // Every reader has read what was handed over until then.
    let read_all = lanes
        .iter()
        .filter(|l| !l.gone)
        .map(|l| l.read)
        .min()
        .unwrap_or(Some(Instant::now() + window + window));
    let pressed = lanes.iter().any(|l| l.full || l.chunks.len() >= l.pool);
    let limit = count
        .map_or(WRITE_BATCH as u64, |c| c.saturating_sub(emitted))
        .min(WRITE_BATCH as u64) as usize;
    let mut cursor: Vec<(usize, usize)> = lanes.iter().map(|l| (0, l.next)).collect();
    let head = |(k, r): (usize, usize), i: usize| Some((*lanes[i].chunks.get(k)?.times.get(r)?, i));
    let mut heads: Vec<Option<(u64, usize)>> =
        (0..lanes.len()).map(|i| head(cursor[i], i)).collect();
    let mut runs = Vec::new();
    let mut taken = 0;
    while taken < limit && runs.len() < WRITE_RUNS {
        // The oldest head, and the oldest of the other lanes' heads.
        let (mut first, mut second) = (None, None);
        for h in heads.iter().flatten() {
            if first.is_none_or(|f| *h < f) {
                second = first;
                first = Some(*h);
            } else if second.is_none_or(|s| *h < s) {
                second = Some(*h);
            }
        }
        let Some((_, i)) = first else { break };
        let (k, from) = cursor[i];
        let chunk = &lanes[i].chunks[k];
        if wait && !pressed && read_all.is_none_or(|at| at < chunk.sent + window) {
            break;
        }
        let times = &chunk.times[..chunk.times.len().min(from + (limit - taken))];
        let to = match second {
            None => times.len(),
            Some(s) => {
                from + 1
                    + times[from + 1..]
                        .iter()
                        .take_while(|&&t| (t, i) < s)
                        .count()
            }
        };
        taken += to - from;
        runs.push(Run {
            lane: i,
            chunk: k,
            from,
            to,
        });
        cursor[i] = if to == chunk.times.len() {
            (k + 1, 0)
        } else {
            (k, to)
        };
        heads[i] = head(cursor[i], i);
    }
    (!runs.is_empty()).then_some(runs)
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
    use proptest::prelude::*;

    /// One interface keeps its priority; n weigh about n threads (weights
    /// 1.25x per level, kernel's sched_prio_to_weight), capped at 10 levels.
    #[test]
    fn merged_capture_copier_weighs_its_interfaces() {
        assert_eq!(nice_levels(0), 0);
        assert_eq!(nice_levels(1), 0);
        assert_eq!(nice_levels(2), 3); // weight 1991 = 1.94x
        assert_eq!(nice_levels(4), 6); // 3906 = 3.8x
        assert_eq!(nice_levels(8), 9); // 7620 = 7.4x
        assert_eq!(nice_levels(1000), 10);
    }

    /// Coalescing keeps the bytes and their order; small slices next to
    /// each other become one, large ones stay as they are.
    #[test]
    fn coalesce_joins_small_slices_in_order() {
        let big = vec![7u8; COPY_BELOW];
        let parts: Vec<Vec<u8>> = vec![
            b"ab".to_vec(),
            b"cd".to_vec(),
            big.clone(),
            b"e".to_vec(),
            big.clone(),
            big.clone(),
            b"fg".to_vec(),
            b"h".to_vec(),
        ];
        let bufs: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut stage = Vec::new();
        let out = coalesce(&bufs, &mut stage);
        let lens: Vec<usize> = out.iter().map(|b| b.len()).collect();
        assert_eq!(lens, [4, COPY_BELOW, 1, COPY_BELOW, COPY_BELOW, 3]);
        let joined: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(joined, parts.concat());
        assert!(coalesce(&[], &mut stage).is_empty());
    }

    /// The copying thread is raised while it holds the guard and put back
    /// after; other threads keep theirs. Root only (CAP_SYS_NICE).
    #[test]
    fn boost_raises_the_copying_thread_only_while_it_copies() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: lowering a nice value needs root (CAP_SYS_NICE)");
            return;
        }
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        std::thread::spawn(move || {
            assert!(set_nice(3));
            assert_eq!(Boost::for_interfaces(1), None);
            let b = Boost::for_interfaces(4).unwrap();
            assert_eq!((b.normal, b.raised), (3, -3));
            let (go, wait) = mpsc::channel::<()>();
            let sibling = std::thread::spawn(move || {
                wait.recv().unwrap();
                nice()
            });
            {
                let _g = b.raise();
                assert_eq!(nice(), -3);
                go.send(()).unwrap();
                assert_eq!(sibling.join().unwrap(), 3, "another thread is not raised");
            }
            assert_eq!(nice(), 3);
        })
        .join()
        .unwrap();
    }

    /// Lanes holding chunks of records with these times (one byte each).
    fn lanes(times: &[Vec<Vec<Ts>>], pool: usize) -> Vec<Lane> {
        times
            .iter()
            .map(|chunks| Lane {
                chunks: chunks
                    .iter()
                    .map(|ts| {
                        let mut c = Chunk::new();
                        c.bytes = vec![0; ts.len()];
                        c.times = ts.iter().map(|&t| time_key(t)).collect();
                        c.recs = (0..ts.len())
                            .map(|r| Rec {
                                pieces: 0,
                                bytes: r + 1,
                                end: r as u64 + 1,
                            })
                            .collect();
                        Arc::new(c)
                    })
                    .collect(),
                next: 0,
                read: None,
                full: false,
                gone: false,
                jobs: mpsc::channel().0,
                pool,
            })
            .collect()
    }

    /// Plans and advances until nothing is left: (lane, time) per record.
    fn drain(lanes: &mut [Lane], count: Option<u64>) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        while let Some(runs) = plan(lanes, REORDER, false, count, out.len() as u64) {
            for r in &runs {
                assert!(r.from < r.to, "{r:?}");
                let times = &lanes[r.lane].chunks[r.chunk].times;
                out.extend(times[r.from..r.to].iter().map(|&t| (r.lane, t)));
            }
            advance(lanes, &runs);
        }
        out
    }

    /// The merge one record at a time: the oldest head, the lower lane on ties.
    fn one_by_one(times: &[Vec<Vec<Ts>>]) -> Vec<(usize, u64)> {
        let mut flat: Vec<VecDeque<Ts>> = times.iter().map(|c| c.concat().into()).collect();
        let mut out = Vec::new();
        while let Some((i, t)) = flat
            .iter()
            .enumerate()
            .filter_map(|(i, q)| Some((i, *q.front()?)))
            .min_by_key(|&(_, t)| t)
        {
            flat[i].pop_front();
            out.push((i, time_key(t)));
        }
        out
    }

    #[test]
    fn runs_take_what_is_older_than_the_other_lanes() {
        let t = |s: i64| (s, 0u32);
        let times = vec![
            vec![vec![t(1), t(2), t(3)], vec![t(7), t(8)]],
            vec![vec![t(4), t(5)], vec![t(6), t(9)]],
        ];
        let mut l = lanes(&times, 16);
        let runs = plan(&l, REORDER, false, None, 0).unwrap();
        let r = |lane, chunk, from, to| Run {
            lane,
            chunk,
            from,
            to,
        };
        assert_eq!(
            runs,
            vec![
                r(0, 0, 0, 3),
                r(1, 0, 0, 2),
                r(1, 1, 0, 1),
                r(0, 1, 0, 2),
                r(1, 1, 1, 2)
            ]
        );
        advance(&mut l, &runs);
        assert!(l.iter().all(|l| l.chunks.is_empty() && l.next == 0));
        // A count stops in the middle of a run; the rest comes next.
        let mut l = lanes(&times, 16);
        let runs = plan(&l, REORDER, false, Some(2), 0).unwrap();
        assert_eq!(runs, vec![r(0, 0, 0, 2)]);
        advance(&mut l, &runs);
        assert_eq!((l[0].chunks.len(), l[0].next), (2, 2));
        assert_eq!(plan(&l, REORDER, false, Some(2), 2), None);
    }

    #[test]
    fn records_wait_for_the_readers_unless_a_lane_is_full() {
        let times = vec![vec![vec![(1, 0)]], vec![vec![(2, 0)]]];
        let mut l = lanes(&times, 16);
        // Nobody has read since: both wait.
        assert_eq!(plan(&l, REORDER, true, None, 0), None);
        // Every reader read after the window: they go.
        let later = Instant::now() + REORDER + REORDER;
        l.iter_mut().for_each(|l| l.read = Some(later));
        assert_eq!(drain(&mut l, None).len(), 2);
        // A lane with all its chunks waiting: order gives way.
        let mut l = lanes(&times, 1);
        let runs = plan(&l, REORDER, true, None, 0).unwrap();
        assert_eq!(runs.len(), 2);
        advance(&mut l, &runs);
        assert!(l.iter().all(|l| l.chunks.is_empty()));
    }

    proptest! {
        /// Runs give the records in the order of the one-record-at-a-time
        /// merge, whatever the chunks, ties and counts.
        #[test]
        fn runs_merge_as_one_record_at_a_time(
            times in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::collection::vec((0i64..4, 0u32..3), 1..6), 0..5), 1..5),
            count in proptest::option::of(0u64..40),
        ) {
            let want = one_by_one(&times);
            let got = drain(&mut lanes(&times, 16), count);
            let n = count.map_or(want.len(), |c| want.len().min(c as usize));
            prop_assert_eq!(&got[..], &want[..n]);
        }
    }

    /// An Ethernet + IPv4 + UDP frame of `len` bytes (at least 42).
    fn udp_frame(len: usize) -> Vec<u8> {
        let mut f: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        f[20..22].copy_from_slice(&[0, 0]);
        f[22] = 64;
        f[23] = 17;
        f[34..36].copy_from_slice(&5000u16.to_be_bytes());
        f[36..38].copy_from_slice(&5001u16.to_be_bytes());
        f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
        f
    }

    /// What the chunks of several-interface [`record`] hold for these
    /// blocks' frames: each frame through `frame_bytes`, the filter and
    /// `Encoder::encode`, as `Reader::frame` does.
    fn chunk_bytes(enc: &Encoder, blocks: &[Vec<u8>], opts: &Options) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let mut scratch = vec![0u8; MAX_FRAME_LEN + 4];
        let mut n = 0;
        for b in blocks {
            for f in crate::capture::ring::frames(b) {
                if opts.count.is_some_and(|c| n >= c) {
                    break;
                }
                let (data, orig) = frame_bytes(&f, &mut scratch);
                if opts
                    .filter
                    .as_ref()
                    .is_some_and(|fl| !summarize(data).matches(fl))
                {
                    continue;
                }
                enc.encode(&mut out, 0, f.ts, orig, data, direction(&f))
                    .unwrap();
                n += 1;
            }
        }
        (out, n)
    }

    /// What [`Direct`] writes for these blocks, after `lead` bytes of file.
    fn direct_bytes(
        enc: &Encoder,
        blocks: &[Vec<u8>],
        opts: &Options,
        lead: usize,
    ) -> (Vec<u8>, u64) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![0xaa; lead]).unwrap();
        let mut d = Direct::new(enc, opts, &file, lead as u64);
        for b in blocks {
            for f in crate::capture::ring::frames(b) {
                d.frame(&f).unwrap();
            }
            d.block(b).unwrap();
        }
        let (captured, end) = (d.captured, d.pos);
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, end);
        assert!(bytes[..lead].iter().all(|&b| b == 0xaa));
        (bytes[lead..].to_vec(), captured)
    }

    /// Ring blocks of every kind of frame the chunks handle differently.
    fn test_blocks() -> Vec<Vec<u8>> {
        use crate::capture::ring::tests::block;
        let out = libc::PACKET_OUTGOING;
        let (tiny, small, edge) = (udp_frame(42), udp_frame(60), udp_frame(COPY_BELOW));
        let (mid, odd, big) = (udp_frame(1514), udp_frame(1001), udp_frame(65_000));
        let arp: Vec<u8> = (0..60).map(|i| i as u8 ^ 0x5a).collect();
        let tag = Some((0x8100, 0x0064));
        vec![
            block(
                &[
                    (1, 1, 0, None, 42, &tiny),
                    (1, 2, out, None, 1514, &mid),
                    (1, 3, 0, None, 60, &small),
                    (1, 4, 0, None, 1001, &odd),
                    (1, 5, out, tag, 65_000, &big),
                    (1, 6, 0, tag, 60, &small),
                    (1, 7, 0, Some((0x88a8, 7)), 1514, &mid),
                    (1, 8, 0, None, 9000, &mid[..700]),
                    (1, 9, 0, None, 60, &arp),
                    (1, 10, 0, None, COPY_BELOW as u32, &edge),
                    (1, 11, 0, None, 8, &arp[..8]),
                ],
                256 << 10,
            ),
            block(&[], 4096),
            block(
                &[(2, 0, out, None, 65_000, &big), (2, 1, 0, None, 60, &small)],
                128 << 10,
            ),
            // More slices than one pwritev takes: frames of 600 bytes.
            block(
                &(0..1500u32)
                    .map(|i| {
                        (
                            3,
                            i,
                            if i % 2 == 1 { out } else { 0 },
                            None,
                            600,
                            &mid[..600],
                        )
                    })
                    .collect::<Vec<_>>(),
                2 << 20,
            ),
        ]
    }

    fn test_encoders() -> [Encoder; 4] {
        use crate::capture::pcap::DEFAULT_SNAPLEN;
        [
            Encoder::Pcap(DEFAULT_SNAPLEN),
            Encoder::Pcap(1000),
            Encoder::PcapNg(DEFAULT_SNAPLEN, vec![0]),
            Encoder::PcapNg(601, vec![0]),
        ]
    }

    #[test]
    fn records_from_the_ring_are_the_bytes_of_the_chunks() {
        let blocks = test_blocks();
        let encoders = test_encoders();
        let udp: Filter = "udp".parse().unwrap();
        let optss = [
            Options::default(),
            Options {
                count: Some(4),
                ..Default::default()
            },
            Options {
                count: Some(1200),
                ..Default::default()
            },
            Options {
                filter: Some(udp),
                ..Default::default()
            },
        ];
        for (e, enc) in encoders.iter().enumerate() {
            for (o, opts) in optss.iter().enumerate() {
                let (want, n) = chunk_bytes(enc, &blocks, opts);
                assert!(n > 0);
                for lead in [0, 24] {
                    let (got, captured) = direct_bytes(enc, &blocks, opts, lead);
                    assert_eq!(captured, n, "encoder {e}, options {o}");
                    assert!(
                        got == want,
                        "encoder {e}, options {o}: {} bytes against {}",
                        got.len(),
                        want.len()
                    );
                }
            }
        }
        // The filter took some and left some.
        assert!(
            chunk_bytes(&encoders[0], &blocks, &optss[3]).1
                < chunk_bytes(&encoders[0], &blocks, &optss[0]).1
        );
    }

    proptest! {
        /// The writer of several interfaces writes a chunk's records in runs
        /// cut anywhere (some by the reader, some by itself): the runs'
        /// slices, one after the other, are the whole chunk's bytes, and
        /// `len` is their length.
        #[test]
        fn a_chunk_cut_into_runs_is_the_whole_chunk(
            cuts in proptest::collection::vec(0usize..2000, 0..12),
            e in 0usize..4,
        ) {
            let enc = &test_encoders()[e];
            let mut scratch = vec![0u8; MAX_FRAME_LEN + 4];
            for b in &test_blocks() {
                let mut c = Chunk::new();
                for f in crate::capture::ring::frames(b) {
                    let (data, orig) = frame_bytes(&f, &mut scratch);
                    c.push(enc, 0, &f, data, orig).unwrap();
                }
                let n = c.recs.len();
                if n == 0 {
                    continue;
                }
                c.seal(b).unwrap();
                let flat = |from, to| {
                    let mut v = Vec::new();
                    c.slices(b, from, to, &mut v);
                    v.iter().flat_map(|s| s.to_vec()).collect::<Vec<u8>>()
                };
                let whole = flat(0, n);
                prop_assert_eq!(whole.len() as u64, c.len(0, n));
                let mut at: Vec<usize> = cuts.iter().map(|&k| k % n).filter(|&k| k > 0).collect();
                at.extend([0, n]);
                at.sort_unstable();
                at.dedup();
                let mut joined = Vec::new();
                for w in at.windows(2) {
                    let part = flat(w[0], w[1]);
                    prop_assert_eq!(part.len() as u64, c.len(w[0], w[1]));
                    joined.extend(part);
                }
                prop_assert!(joined == whole);
            }
        }
    }

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
