//! Capture-file writers, without extra crates: classic pcap (the
//! nanosecond-resolution variant) and pcapng. Both are written little-endian
//! with linktype 1 (EN10MB, right for veth and bridges); readers detect the
//! byte order from the magic numbers.
//!
//! Neither writer buffers: wrap files in a `BufWriter`.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// LINKTYPE_ETHERNET (EN10MB).
pub const LINKTYPE_ETHERNET: u16 = 1;
/// tcpdump's default snapshot length; longer frames are cut to it.
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// Classic pcap magic for nanosecond timestamps (0xa1b2c3d4 is microseconds).
const PCAP_MAGIC_NSEC: u32 = 0xa1b2_3c4d;

const BLOCK_SHB: u32 = 0x0A0D_0D0A;
const BLOCK_IDB: u32 = 0x0000_0001;
const BLOCK_EPB: u32 = 0x0000_0006;
const BLOCK_CUSTOM: u32 = 0x0000_0BAD;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_ENDOFOPT: u16 = 0;
const OPT_SHB_USERAPPL: u16 = 4;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_EPB_FLAGS: u16 = 2;

const NSEC_PER_SEC: u32 = 1_000_000_000;

/// A capture time: seconds since the Unix epoch and nanoseconds (< 1e9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl Timestamp {
    /// Carries whole seconds out of `nsec`, so any input is valid.
    pub fn new(sec: i64, nsec: u32) -> Self {
        Timestamp {
            sec: sec.saturating_add(i64::from(nsec / NSEC_PER_SEC)),
            nsec: nsec % NSEC_PER_SEC,
        }
    }

    pub fn now() -> Self {
        SystemTime::now().into()
    }

    /// Nanoseconds since the epoch, for pcapng's 64-bit timestamps.
    fn as_nanos(self) -> io::Result<u64> {
        u64::try_from(self.sec)
            .ok()
            .and_then(|s| s.checked_mul(u64::from(NSEC_PER_SEC)))
            .and_then(|ns| ns.checked_add(u64::from(self.nsec)))
            .ok_or_else(|| invalid(format!("timestamp {self:?} not representable in pcapng")))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp::new(
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            // Before 1970: floor to whole seconds below, positive nanoseconds.
            Err(e) => {
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => Timestamp::new(-secs, 0),
                    n => Timestamp::new(-secs - 1, NSEC_PER_SEC - n),
                }
            }
        }
    }
}

impl From<(i64, u32)> for Timestamp {
    fn from((sec, nsec): (i64, u32)) -> Self {
        Timestamp::new(sec, nsec)
    }
}

/// Direction of a frame relative to the capturing interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received by the interface (any `sll_pkttype` but PACKET_OUTGOING).
    In,
    /// Sent by the interface.
    Out,
}

impl Direction {
    /// The two low bits of pcapng's `epb_flags`.
    fn epb_flags(self) -> u32 {
        match self {
            Direction::In => 0b01,
            Direction::Out => 0b10,
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn len_u32(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| invalid(format!("length {n} does not fit in 32 bits")))
}

/// Bytes of `data` that fit in `snaplen`.
fn clip(data: &[u8], snaplen: u32) -> &[u8] {
    let keep = usize::try_from(snaplen).unwrap_or(usize::MAX);
    data.get(..keep).unwrap_or(data)
}

/// A classic pcap record header and the bytes that follow it (cut to `snaplen`).
fn pcap_record_header(
    snaplen: u32,
    ts: Timestamp,
    orig_len: u32,
    data: &[u8],
) -> io::Result<([u8; 16], &[u8])> {
    let sec = u32::try_from(ts.sec)
        .map_err(|_| invalid(format!("timestamp {ts:?} not representable in pcap")))?;
    let data = clip(data, snaplen);
    let incl = len_u32(data.len())?;
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&sec.to_le_bytes());
    h[4..8].copy_from_slice(&ts.nsec.to_le_bytes());
    h[8..12].copy_from_slice(&incl.to_le_bytes());
    h[12..16].copy_from_slice(&orig_len.max(incl).to_le_bytes());
    Ok((h, data))
}

/// Appends the record [`PcapWriter::write`] writes to `out` (to be written
/// later, as it is, after that writer's file header).
pub fn encode_pcap(
    out: &mut Vec<u8>,
    snaplen: u32,
    ts: Timestamp,
    orig_len: u32,
    data: &[u8],
) -> io::Result<()> {
    let data = pcap_head(out, snaplen, ts, orig_len, data)?;
    out.extend_from_slice(data);
    Ok(())
}

/// Appends what [`encode_pcap`] writes before the frame's bytes (the record
/// header) and returns the bytes that follow it: `data` cut to `snaplen`.
/// Nothing comes after them. So a record can be written with the frame's
/// bytes from where they are (`pwritev`), not copied next to its header.
pub fn pcap_head<'d>(
    out: &mut Vec<u8>,
    snaplen: u32,
    ts: Timestamp,
    orig_len: u32,
    data: &'d [u8],
) -> io::Result<&'d [u8]> {
    let (h, data) = pcap_record_header(snaplen, ts, orig_len, data)?;
    out.extend_from_slice(&h);
    Ok(data)
}

/// Appends the Enhanced Packet Block [`PcapNgWriter::write`] writes to `out`
/// (`interface` unchecked: the caller got it from `add_interface`).
pub fn encode_epb(
    out: &mut Vec<u8>,
    snaplen: u32,
    interface: u32,
    ts: Timestamp,
    orig_len: u32,
    data: &[u8],
    direction: Option<Direction>,
) -> io::Result<()> {
    let data = epb_head(out, snaplen, interface, ts, orig_len, data, direction)?;
    out.extend_from_slice(data);
    epb_tail(out, data.len(), direction);
    Ok(())
}

/// Bytes of an Enhanced Packet Block before the frame's bytes.
const EPB_HEAD: usize = 28;

/// Appends what [`encode_epb`] writes before the frame's bytes and returns
/// those bytes (`data` cut to `snaplen`); [`epb_tail`] with their length
/// and the same `direction` appends what comes after them.
#[inline]
pub fn epb_head<'d>(
    out: &mut Vec<u8>,
    snaplen: u32,
    interface: u32,
    ts: Timestamp,
    orig_len: u32,
    data: &'d [u8],
    direction: Option<Direction>,
) -> io::Result<&'d [u8]> {
    let ns = ts.as_nanos()?;
    let data = clip(data, snaplen);
    let incl = len_u32(data.len())?;
    let total = len_u32(
        EPB_HEAD
            .saturating_add(data.len().next_multiple_of(4))
            .saturating_add(epb_options_len(direction) + 4),
    )?;
    // One append of the whole header: a capture writes one per frame.
    let mut h = [0u8; EPB_HEAD];
    // High word of the time first, each word in the section's byte order.
    let words = [
        BLOCK_EPB,
        total,
        interface,
        (ns >> 32) as u32,
        ns as u32,
        incl,
        orig_len.max(incl),
    ];
    for (w, b) in words.iter().zip(h.chunks_exact_mut(4)) {
        b.copy_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&h);
    // Room for the frame and the tail, so neither grows the buffer.
    out.reserve(data.len() + EPB_TAIL_MAX);
    Ok(data)
}

/// Options of an Enhanced Packet Block: `epb_flags` (8 bytes) and the end
/// of options (4), or none.
fn epb_options_len(direction: Option<Direction>) -> usize {
    if direction.is_some() { 12 } else { 0 }
}

/// Most bytes [`epb_tail`] appends: padding, options, trailing length.
const EPB_TAIL_MAX: usize = 3 + 12 + 4;

/// Appends what [`encode_epb`] writes after `data_len` bytes of frame:
/// padding, options and the block's trailing length.
#[inline]
pub fn epb_tail(out: &mut Vec<u8>, data_len: usize, direction: Option<Direction>) {
    let padded = data_len.next_multiple_of(4);
    let pad = padded - data_len;
    let mut t = [0u8; EPB_TAIL_MAX];
    let mut n = pad;
    if let Some(d) = direction {
        t[n..n + 2].copy_from_slice(&OPT_EPB_FLAGS.to_le_bytes());
        t[n + 2..n + 4].copy_from_slice(&4u16.to_le_bytes());
        t[n + 4..n + 8].copy_from_slice(&d.epb_flags().to_le_bytes());
        t[n + 8..n + 10].copy_from_slice(&OPT_ENDOFOPT.to_le_bytes());
        // t[n + 10..n + 12]: the end of options' length, 0.
        n += 12;
    }
    // epb_head checked that it fits in 32 bits.
    let total = (EPB_HEAD + padded + epb_options_len(direction) + 4) as u32;
    t[n..n + 4].copy_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&t[..n + 4]);
}

/// Classic pcap writer (nanosecond magic 0xa1b23c4d, linktype EN10MB).
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header with [`DEFAULT_SNAPLEN`].
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_snaplen(out, DEFAULT_SNAPLEN)
    }

    pub fn with_snaplen(mut out: W, snaplen: u32) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&PCAP_MAGIC_NSEC.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone: UTC
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&u32::from(LINKTYPE_ETHERNET).to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, snaplen })
    }

    /// Writes one record. `orig_len` is the length on the wire (raised to
    /// `data.len()` if smaller); `data` beyond the snaplen is cut. Times
    /// outside 1970..2106 (a u32 of seconds) are an `InvalidInput` error.
    pub fn write(
        &mut self,
        ts: impl Into<Timestamp>,
        orig_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let (h, data) = pcap_record_header(self.snaplen, ts.into(), orig_len, data)?;
        self.out.write_all(&h)?;
        self.out.write_all(data)
    }

    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The output, to write records encoded elsewhere (after the headers
    /// this writer wrote).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Appends one pcapng option (code, length, value, padding to 32 bits).
fn push_opt(buf: &mut Vec<u8>, code: u16, value: &[u8]) -> io::Result<()> {
    let len = u16::try_from(value.len()).map_err(|_| {
        invalid(format!(
            "pcapng option {code} too long ({} bytes)",
            value.len()
        ))
    })?;
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(value);
    pad4(buf);
    Ok(())
}

fn end_opts(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&OPT_ENDOFOPT.to_le_bytes());
    buf.extend_from_slice(&0u16.to_le_bytes());
}

/// A block buffer starting with room for the type and total length.
fn block_start(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0; 8]);
}

fn pad4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// pcapng writer: one section, one Interface Description Block per
/// interface (named, nanosecond timestamps), Enhanced Packet Blocks with the
/// direction in `epb_flags`.
pub struct PcapNgWriter<W: Write> {
    out: W,
    snaplen: u32,
    interfaces: u32,
    /// Reused block buffer, so a packet costs one `write_all`.
    block: Vec<u8>,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the Section Header Block.
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_snaplen(out, DEFAULT_SNAPLEN)
    }

    pub fn with_snaplen(out: W, snaplen: u32) -> io::Result<Self> {
        let mut w = PcapNgWriter {
            out,
            snaplen,
            interfaces: 0,
            block: Vec::with_capacity(2048),
        };
        let mut body = Vec::with_capacity(48);
        block_start(&mut body);
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes()); // version 1.0
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
        push_opt(&mut body, OPT_SHB_USERAPPL, b"nslab")?;
        end_opts(&mut body);
        w.finish_block(BLOCK_SHB, &mut body)?;
        Ok(w)
    }

    /// Declares an interface (e.g. `host:bbrveth`) and returns its id, the
    /// number to pass to [`write`](Self::write). Ids count from 0.
    pub fn add_interface(&mut self, name: &str) -> io::Result<u32> {
        let mut body = Vec::with_capacity(48 + name.len());
        block_start(&mut body);
        body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes()); // reserved
        body.extend_from_slice(&self.snaplen.to_le_bytes());
        push_opt(&mut body, OPT_IF_NAME, name.as_bytes())?;
        push_opt(&mut body, OPT_IF_TSRESOL, &[9])?; // 10^-9 s
        end_opts(&mut body);
        self.finish_block(BLOCK_IDB, &mut body)?;
        let id = self.interfaces;
        self.interfaces += 1;
        Ok(id)
    }

    /// Writes one Enhanced Packet Block. `interface` must come from
    /// [`add_interface`](Self::add_interface); the other arguments are as
    /// for [`PcapWriter::write`]. Times before 1970 are an error.
    pub fn write(
        &mut self,
        interface: u32,
        ts: impl Into<Timestamp>,
        orig_len: u32,
        data: &[u8],
        direction: Option<Direction>,
    ) -> io::Result<()> {
        if interface >= self.interfaces {
            return Err(invalid(format!(
                "pcapng interface id {interface} was never added ({} declared)",
                self.interfaces
            )));
        }
        let mut block = std::mem::take(&mut self.block);
        block.clear();
        let res = encode_epb(
            &mut block,
            self.snaplen,
            interface,
            ts.into(),
            orig_len,
            data,
            direction,
        )
        .and_then(|()| self.out.write_all(&block));
        self.block = block;
        res
    }

    /// Writes one Custom Block (type 0x00000BAD: readers may copy it) of
    /// private enterprise number `pen`, carrying `data` (padded to 32 bits).
    pub fn write_custom(&mut self, pen: u32, data: &[u8]) -> io::Result<()> {
        let mut body = Vec::with_capacity(16 + data.len());
        block_start(&mut body);
        body.extend_from_slice(&pen.to_le_bytes());
        body.extend_from_slice(data);
        pad4(&mut body);
        self.finish_block(BLOCK_CUSTOM, &mut body)
    }

    /// Fills in the head reserved by [`block_start`], appends the trailing
    /// length and writes the block in one call.
    fn finish_block(&mut self, block_type: u32, block: &mut Vec<u8>) -> io::Result<()> {
        let total = len_u32(block.len().saturating_add(4))?;
        if let Some(head) = block.get_mut(0..8) {
            head[0..4].copy_from_slice(&block_type.to_le_bytes());
            head[4..8].copy_from_slice(&total.to_le_bytes());
        }
        block.extend_from_slice(&total.to_le_bytes());
        self.out.write_all(block)
    }

    /// Number of interfaces declared so far.
    pub fn interface_count(&self) -> u32 {
        self.interfaces
    }

    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The output, to write records encoded elsewhere (after the headers
    /// this writer wrote).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use pcap_file::{DataLink, TsResolution};
    use proptest::prelude::*;
    use std::process::Command;
    use std::time::Duration;

    struct Rec {
        iface: u32,
        ts: Timestamp,
        orig_len: u32,
        data: Vec<u8>,
        dir: Option<Direction>,
    }

    fn recs() -> Vec<Rec> {
        vec![
            Rec {
                iface: 0,
                ts: Timestamp::new(1_700_000_000, 123_456_789),
                orig_len: 60,
                data: (0..60).collect(),
                dir: Some(Direction::In),
            },
            Rec {
                iface: 1,
                ts: Timestamp::new(1_700_000_001, 1),
                orig_len: 1514,
                data: vec![0xee; 101], // cut: odd length exercises padding
                dir: Some(Direction::Out),
            },
            Rec {
                iface: 0,
                ts: Timestamp::new(1_700_000_002, 999_999_999),
                orig_len: 42,
                data: vec![0x42; 42],
                dir: None,
            },
        ]
    }

    fn write_pcap(recs: &[Rec]) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for r in recs {
            w.write(r.ts, r.orig_len, &r.data).unwrap();
        }
        w.into_inner()
    }

    fn write_pcapng(names: &[&str], recs: &[Rec]) -> Vec<u8> {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(w.add_interface(n).unwrap(), i as u32);
        }
        for r in recs {
            w.write(r.iface, r.ts, r.orig_len, &r.data, r.dir).unwrap();
        }
        w.into_inner()
    }

    fn dur(ts: Timestamp) -> Duration {
        Duration::new(ts.sec as u64, ts.nsec)
    }

    #[test]
    fn pcap_reads_back_with_pcap_file() {
        let bytes = write_pcap(&recs());
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let h = r.header();
        assert_eq!(h.ts_resolution, TsResolution::NanoSecond);
        assert_eq!(h.datalink, DataLink::ETHERNET);
        assert_eq!(
            (h.version_major, h.version_minor, h.snaplen),
            (2, 4, DEFAULT_SNAPLEN)
        );
        for want in recs() {
            let p = r.next_packet().unwrap().unwrap();
            assert_eq!(p.timestamp, dur(want.ts));
            assert_eq!(p.orig_len, want.orig_len);
            assert_eq!(&p.data[..], &want.data[..]);
        }
        assert!(r.next_packet().is_none());
    }

    #[test]
    fn pcap_snaplen_and_lengths() {
        let mut w = PcapWriter::with_snaplen(Vec::new(), 64).unwrap();
        w.write((5, 6), 100, &[1u8; 100]).unwrap();
        // orig_len below the data length is raised to it.
        w.write((7, 8), 0, &[2u8; 10]).unwrap();
        let bytes = w.into_inner();
        // pcap-file rejects orig_len > snaplen in its checked API: read raw.
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let a = r.next_raw_packet().unwrap().unwrap();
        assert_eq!(
            (a.ts_sec, a.ts_frac, a.incl_len, a.orig_len),
            (5, 6, 64, 100)
        );
        assert_eq!(&a.data[..], &[1u8; 64][..]);
        let b = r.next_raw_packet().unwrap().unwrap();
        assert_eq!((b.incl_len, b.orig_len), (10, 10));
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            Timestamp::new(1, 2_500_000_000),
            Timestamp {
                sec: 3,
                nsec: 500_000_000
            }
        );
        assert_eq!(Timestamp::from((10, 5)), Timestamp { sec: 10, nsec: 5 });
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 42);
        assert_eq!(
            Timestamp::from(t),
            Timestamp {
                sec: 1_700_000_000,
                nsec: 42
            }
        );
        let before = UNIX_EPOCH - Duration::new(1, 250_000_000);
        assert_eq!(
            Timestamp::from(before),
            Timestamp {
                sec: -2,
                nsec: 750_000_000
            }
        );
        let now = Timestamp::now();
        assert!(now.sec > 1_600_000_000 && now.nsec < NSEC_PER_SEC);

        // Outside what the formats hold: a clear error, nothing written.
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for ts in [(-1, 0), (i64::from(u32::MAX) + 1, 0)] {
            let e = w.write(ts, 1, &[0]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
        assert_eq!(w.into_inner().len(), 24);
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        w.add_interface("x").unwrap();
        assert_eq!(
            w.write(0, (-1, 0), 1, &[0], None).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        // SystemTime goes through as well.
        w.write(0, t, 1, &[0], None).unwrap();
    }

    #[test]
    fn pcapng_reads_back_with_pcap_file() {
        let names = ["host:bbrveth", "black:bveth"];
        let bytes = write_pcapng(&names, &recs());
        assert_eq!(bytes.len() % 4, 0);
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        assert_eq!(
            (r.section().major_version, r.section().minor_version),
            (1, 0)
        );
        let mut idbs = Vec::new();
        let mut epbs = Vec::new();
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => idbs.push(i.into_owned()),
                Block::EnhancedPacket(e) => epbs.push(e.into_owned()),
                other => panic!("unexpected block {other:?}"),
            }
        }
        assert_eq!(idbs.len(), 2);
        for (idb, name) in idbs.iter().zip(names) {
            assert_eq!(idb.linktype, DataLink::ETHERNET);
            assert_eq!(idb.snaplen, DEFAULT_SNAPLEN);
            assert!(
                idb.options
                    .contains(&InterfaceDescriptionOption::IfName(name.into()))
            );
            assert!(
                idb.options
                    .contains(&InterfaceDescriptionOption::IfTsResol(9))
            );
        }
        assert_eq!(epbs.len(), 3);
        for (e, want) in epbs.iter().zip(recs()) {
            assert_eq!(e.interface_id, want.iface);
            assert_eq!(e.timestamp, dur(want.ts));
            assert_eq!(e.original_len, want.orig_len);
            assert_eq!(&e.data[..], &want.data[..]);
            let flags: Vec<_> = e.options.iter().collect();
            match want.dir {
                Some(Direction::In) => assert_eq!(flags, [&EnhancedPacketOption::Flags(1)]),
                Some(Direction::Out) => assert_eq!(flags, [&EnhancedPacketOption::Flags(2)]),
                None => assert!(flags.is_empty()),
            }
        }
    }

    #[test]
    fn pcapng_rejects_unknown_interface_and_long_names() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        let e = w.write(0, (1, 0), 1, &[0], None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("never added"), "{e}");
        assert!(w.add_interface(&"x".repeat(70_000)).is_err());
        assert_eq!(w.interface_count(), 0);
    }

    /// `tcpdump -r` output: (timestamp, bytes) per packet, from `-tt -xx`
    /// with nanosecond precision.
    fn tcpdump_read(bytes: &[u8], ext: &str) -> Vec<(String, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("t.{ext}"));
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new("tcpdump")
            .args(["-nn", "-tt", "-xx", "--time-stamp-precision=nano", "-r"])
            .arg(&path)
            .output()
            .expect("tcpdump must be installed for this test (apt-get install -y tcpdump)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pkts: Vec<(String, Vec<u8>)> = Vec::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            if let Some(hex) = line.trim_start().strip_prefix("0x") {
                // "0x0010:  0001 0203 ..." -> bytes
                let (_, words) = hex.split_once(':').unwrap();
                let last = pkts.last_mut().unwrap();
                for w in words.split_whitespace() {
                    for i in (0..w.len()).step_by(2) {
                        last.1.push(u8::from_str_radix(&w[i..i + 2], 16).unwrap());
                    }
                }
            } else {
                let ts = line.split_whitespace().next().unwrap().to_owned();
                pkts.push((ts, Vec::new()));
            }
        }
        pkts
    }

    #[test]
    fn tcpdump_reads_both_formats() {
        let want: Vec<(String, Vec<u8>)> = recs()
            .into_iter()
            .map(|r| (format!("{}.{:09}", r.ts.sec, r.ts.nsec), r.data))
            .collect();
        assert_eq!(tcpdump_read(&write_pcap(&recs()), "pcap"), want);
        let ng = write_pcapng(&["host:bbrveth", "black:bveth"], &recs());
        assert_eq!(tcpdump_read(&ng, "pcapng"), want);
    }

    /// `encode_epb` as it was before it was cut in head and tail: options
    /// through `push_opt`, the total length filled in at the end.
    fn epb_in_one_piece(
        out: &mut Vec<u8>,
        snaplen: u32,
        interface: u32,
        ts: Timestamp,
        orig_len: u32,
        data: &[u8],
        direction: Option<Direction>,
    ) {
        let ns = ts.as_nanos().unwrap();
        let data = clip(data, snaplen);
        let incl = data.len() as u32;
        let start = out.len();
        out.extend_from_slice(&BLOCK_EPB.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&interface.to_le_bytes());
        out.extend_from_slice(&((ns >> 32) as u32).to_le_bytes());
        out.extend_from_slice(&(ns as u32).to_le_bytes());
        out.extend_from_slice(&incl.to_le_bytes());
        out.extend_from_slice(&orig_len.max(incl).to_le_bytes());
        out.extend_from_slice(data);
        pad4(out);
        if let Some(d) = direction {
            push_opt(out, OPT_EPB_FLAGS, &d.epb_flags().to_le_bytes()).unwrap();
            end_opts(out);
        }
        let total = (out.len() - start + 4) as u32;
        out[start + 4..start + 8].copy_from_slice(&total.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
    }

    proptest! {
        #[test]
        fn pcap_round_trip(
            pkts in proptest::collection::vec(
                (0..=u32::MAX, 0..NSEC_PER_SEC, proptest::collection::vec(any::<u8>(), 0..300), 0u32..100),
                0..20,
            )
        ) {
            let mut w = PcapWriter::new(Vec::new()).unwrap();
            for (sec, nsec, data, extra) in &pkts {
                w.write((i64::from(*sec), *nsec), data.len() as u32 + extra, data).unwrap();
            }
            let bytes = w.into_inner();
            let mut r = PcapReader::new(&bytes[..]).unwrap();
            for (sec, nsec, data, extra) in &pkts {
                let p = r.next_packet().unwrap().unwrap();
                prop_assert_eq!(p.timestamp, Duration::new(u64::from(*sec), *nsec));
                prop_assert_eq!(p.orig_len, data.len() as u32 + extra);
                prop_assert_eq!(&p.data[..], &data[..]);
            }
            prop_assert!(r.next_packet().is_none());
        }

        /// Head, frame bytes and tail are the block the one-piece encoder made.
        #[test]
        fn epb_in_pieces_is_the_block_in_one_piece(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            snaplen in 0u32..400, iface in 0u32..4, ns in 0..(u64::MAX / 2),
            extra in 0u32..100, dir in any::<Option<bool>>(),
        ) {
            let ts = Timestamp::new((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32);
            let dir = dir.map(|out| if out { Direction::Out } else { Direction::In });
            let orig = data.len() as u32 + extra;
            let mut want = Vec::new();
            epb_in_one_piece(&mut want, snaplen, iface, ts, orig, &data, dir);
            let mut got = Vec::new();
            encode_epb(&mut got, snaplen, iface, ts, orig, &data, dir).unwrap();
            prop_assert_eq!(&got, &want);
            let mut pieces = Vec::new();
            let kept = epb_head(&mut pieces, snaplen, iface, ts, orig, &data, dir).unwrap();
            prop_assert_eq!(pieces.len(), EPB_HEAD);
            pieces.extend_from_slice(kept);
            epb_tail(&mut pieces, kept.len(), dir);
            prop_assert_eq!(&pieces, &want);
        }

        #[test]
        fn pcapng_round_trip(
            names in proptest::collection::vec("[a-z0-9:._-]{0,20}", 1..4),
            pkts in proptest::collection::vec(
                (any::<u32>(), 0..(u64::MAX / 2), proptest::collection::vec(any::<u8>(), 0..300), any::<Option<bool>>()),
                0..20,
            ),
        ) {
            let mut w = PcapNgWriter::new(Vec::new()).unwrap();
            for n in &names {
                w.add_interface(n).unwrap();
            }
            let n_if = names.len() as u32;
            for (iface, ns, data, dir) in &pkts {
                let ts = ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32);
                let dir = dir.map(|out| if out { Direction::Out } else { Direction::In });
                w.write(iface % n_if, ts, data.len() as u32, data, dir).unwrap();
            }
            let bytes = w.into_inner();
            let mut r = PcapNgReader::new(&bytes[..]).unwrap();
            let mut seen_names = Vec::new();
            let mut seen_pkts = Vec::new();
            while let Some(b) = r.next_block() {
                match b.unwrap() {
                    Block::InterfaceDescription(i) => {
                        for o in i.options {
                            if let InterfaceDescriptionOption::IfName(n) = o {
                                seen_names.push(n.into_owned());
                            }
                        }
                    }
                    Block::EnhancedPacket(e) => seen_pkts.push(e.into_owned()),
                    other => prop_assert!(false, "unexpected block {:?}", other),
                }
            }
            prop_assert_eq!(&seen_names, &names);
            prop_assert_eq!(seen_pkts.len(), pkts.len());
            for (e, (iface, ns, data, dir)) in seen_pkts.iter().zip(&pkts) {
                prop_assert_eq!(e.interface_id, iface % n_if);
                prop_assert_eq!(e.timestamp, Duration::from_nanos(*ns));
                prop_assert_eq!(&e.data[..], &data[..]);
                let want: Vec<EnhancedPacketOption> = dir
                    .map(|out| EnhancedPacketOption::Flags(if out { 2 } else { 1 }))
                    .into_iter()
                    .collect();
                prop_assert_eq!(&e.options, &want);
            }
        }
    }
}
