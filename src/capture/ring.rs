//! The TPACKET_V3 receive-ring block layout (linux/if_packet.h) and a parser
//! over one block's bytes. Pure: the mmap and the socket are in `socket.rs`;
//! here a block is a `&[u8]`, so recorded or hand-built blocks are tested
//! without root, and a corrupt block ends the walk instead of panicking.
//!
//! A block (`struct tpacket_block_desc`, host byte order):
//!
//! | offset | field                                   |
//! |--------|-----------------------------------------|
//! | 0      | version (u32)                           |
//! | 4      | offset_to_priv (u32)                    |
//! | 8      | block_status (u32): TP_STATUS_USER = 1  |
//! | 12     | num_pkts (u32)                          |
//! | 16     | offset_to_first_pkt (u32)               |
//! | 20     | blk_len (u32)                           |
//! | 24     | seq_num (u64), then first/last packet times |
//!
//! Each frame, from the block start plus `offset_to_first_pkt`, then plus
//! each `tp_next_offset` (0 on the last one): a `struct tpacket3_hdr`
//!
//! | offset | field                                   |
//! |--------|-----------------------------------------|
//! | 0      | tp_next_offset (u32)                    |
//! | 4, 8   | tp_sec, tp_nsec (u32)                   |
//! | 12     | tp_snaplen (u32): bytes stored          |
//! | 16     | tp_len (u32): length on the wire        |
//! | 20     | tp_status (u32): VLAN_VALID = 1 << 4, VLAN_TPID_VALID = 1 << 6 |
//! | 24, 26 | tp_mac, tp_net (u16): frame and network header offsets |
//! | 28     | tp_rxhash (u32)                         |
//! | 32     | tp_vlan_tci (u32), 36: tp_vlan_tpid (u16) |
//!
//! then at offset 48 (TPACKET_ALIGN of its size) a `struct sockaddr_ll`,
//! whose `sll_pkttype` (byte 10) says which way the frame went; the frame
//! itself is `tp_snaplen` bytes at `tp_mac`.

/// `block_status` bit: the block belongs to user space.
pub const TP_STATUS_USER: u32 = 1;
/// `tp_status` bits: the kernel moved an 802.1Q tag to `tp_vlan_tci` (and its
/// TPID to `tp_vlan_tpid`).
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// Offsets in the block descriptor.
pub const BLOCK_STATUS: usize = 8;
pub const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;

/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where `sockaddr_ll` starts.
pub const HDR_LEN: usize = 48;
const SLL_PKTTYPE: usize = HDR_LEN + 10;

/// One frame in a block; `data` borrows the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFrame<'a> {
    /// Kernel receive time: seconds and nanoseconds since the epoch.
    pub ts: (i64, u32),
    /// Length on the wire, without a tag the kernel moved to metadata.
    pub wire_len: u32,
    /// `sll_pkttype`: PACKET_OUTGOING (4) for frames the interface sent.
    pub pkttype: u8,
    /// `(tpid, tci)` of an 802.1Q tag the kernel took out of the frame.
    pub vlan: Option<(u16, u16)>,
    pub data: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The frames of one block, in the order the kernel stored them.
pub fn frames(block: &[u8]) -> Frames<'_> {
    let left = u32_at(block, BLOCK_NUM_PKTS).unwrap_or(0);
    let off = u32_at(block, BLOCK_FIRST_PKT).map_or(0, |o| o as usize);
    Frames { block, off, left }
}

/// Iterator over a block's frames; stops at the first frame that does not
/// fit in the block.
pub struct Frames<'a> {
    block: &'a [u8],
    off: usize,
    left: u32,
}

impl<'a> Iterator for Frames<'a> {
    type Item = RingFrame<'a>;

    fn next(&mut self) -> Option<RingFrame<'a>> {
        if self.left == 0 {
            return None;
        }
        let frame = self.parse();
        if frame.is_none() {
            self.left = 0;
        }
        frame
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

impl<'a> Frames<'a> {
    /// Where the walk is: `(offset of the next frame, frames left)`.
    pub fn position(&self) -> (usize, u32) {
        (self.off, self.left)
    }

    /// Walks `block` on from a [`position`](Self::position) taken on it.
    pub fn resume(block: &'a [u8], (off, left): (usize, u32)) -> Self {
        Frames { block, off, left }
    }

    fn parse(&mut self) -> Option<RingFrame<'a>> {
        let (b, o) = (self.block, self.off);
        // The whole header and sockaddr_ll must be inside the block.
        b.get(o..o.checked_add(HDR_LEN + 20)?)?;
        let next = u32_at(b, o)? as usize;
        let (sec, nsec) = (u32_at(b, o + 4)?, u32_at(b, o + 8)?);
        let snaplen = u32_at(b, o + 12)? as usize;
        let wire_len = u32_at(b, o + 16)?;
        let status = u32_at(b, o + 20)?;
        let mac = usize::from(u16_at(b, o + 24)?);
        let start = o.checked_add(mac)?;
        let data = b.get(start..start.checked_add(snaplen)?)?;
        let vlan = (status & TP_STATUS_VLAN_VALID != 0).then(|| {
            let tci = u32_at(b, o + 32).unwrap_or(0) as u16;
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                u16_at(b, o + 36).unwrap_or(0x8100)
            } else {
                0x8100
            };
            (tpid, tci)
        });
        let pkttype = *b.get(o + SLL_PKTTYPE)?;
        self.left -= 1;
        // Only the last frame has no successor; a zero before it is corruption.
        match o.checked_add(next) {
            Some(n) if next != 0 => self.off = n,
            _ => self.left = 0,
        }
        Some(RingFrame {
            ts: (i64::from(sec), nsec),
            wire_len,
            pkttype,
            vlan,
            data,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One frame for [`block`]: (sec, nsec, pkttype, vlan (tpid, tci), wire_len, data).
    pub(crate) type Spec<'a> = (u32, u32, u8, Option<(u16, u16)>, u32, &'a [u8]);

    /// Builds a block as the kernel lays it out (see the module table):
    /// descriptor of 48 bytes, frames 16-byte aligned, the frame at
    /// `tp_mac` = header + sockaddr_ll (20) + 2 of padding, rounded to 16.
    pub(crate) fn block(frames: &[Spec<'_>], size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        let put32 =
            |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        let put16 =
            |b: &mut [u8], at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        put32(&mut b, 0, 3); // TPACKET_V3
        put32(&mut b, BLOCK_STATUS, TP_STATUS_USER);
        put32(&mut b, BLOCK_NUM_PKTS, frames.len() as u32);
        put32(&mut b, BLOCK_FIRST_PKT, 48);
        let mut off = 48;
        let mac = (HDR_LEN + 20 + 2).next_multiple_of(16);
        for (i, &(sec, nsec, pkttype, vlan, wire_len, data)) in frames.iter().enumerate() {
            let total = (mac + data.len()).next_multiple_of(16);
            let next = if i + 1 == frames.len() { 0 } else { total };
            put32(&mut b, off, next as u32);
            put32(&mut b, off + 4, sec);
            put32(&mut b, off + 8, nsec);
            put32(&mut b, off + 12, data.len() as u32);
            put32(&mut b, off + 16, wire_len);
            let mut status = TP_STATUS_USER;
            if let Some((tpid, tci)) = vlan {
                status |= TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID;
                put32(&mut b, off + 32, u32::from(tci));
                put16(&mut b, off + 36, tpid);
            }
            put32(&mut b, off + 20, status);
            put16(&mut b, off + 24, mac as u16);
            put16(&mut b, off + 26, (mac + 14) as u16);
            put16(&mut b, off + HDR_LEN, libc::AF_PACKET as u16);
            b[off + SLL_PKTTYPE] = pkttype;
            b[off + mac..off + mac + data.len()].copy_from_slice(data);
            off += total;
        }
        put32(&mut b, 20, off as u32);
        b
    }

    #[test]
    fn layout_matches_the_kernel_headers() {
        use std::mem::{offset_of, size_of};
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_snaplen), 12);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_status), 20);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_mac), 24);
        assert_eq!(offset_of!(libc::tpacket3_hdr, hv1), 28);
        assert_eq!(offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci), 4);
        assert_eq!(offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid), 8);
        assert_eq!(
            size_of::<libc::tpacket3_hdr>().next_multiple_of(16),
            HDR_LEN
        );
        assert_eq!(offset_of!(libc::sockaddr_ll, sll_pkttype), 10);
        assert_eq!(offset_of!(libc::tpacket_block_desc, hdr), 8);
        assert_eq!(offset_of!(libc::tpacket_hdr_v1, num_pkts), 4);
        assert_eq!(offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt), 8);
    }

    #[test]
    fn frames_come_out_with_times_directions_and_tags() {
        let a: Vec<u8> = (0..60).collect();
        let c: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        let b = block(
            &[
                (100, 5, 0, None, 60, &a),
                (100, 999_999_999, 4, Some((0x8100, 0x2064)), 1500, &c),
                (101, 0, 4, None, 9000, &a[..14]),
            ],
            8192,
        );
        let got: Vec<RingFrame<'_>> = frames(&b).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            RingFrame {
                ts: (100, 5),
                wire_len: 60,
                pkttype: 0,
                vlan: None,
                data: &a
            }
        );
        assert_eq!(got[1].ts, (100, 999_999_999));
        assert_eq!(got[1].pkttype, libc::PACKET_OUTGOING);
        assert_eq!(got[1].vlan, Some((0x8100, 0x2064)));
        assert_eq!(got[1].data, &c[..]);
        // Stored bytes and wire length differ when the frame was cut.
        assert_eq!((got[2].data.len(), got[2].wire_len), (14, 9000));
    }

    #[test]
    fn empty_and_corrupt_blocks_end_the_walk() {
        let a = [7u8; 64];
        assert_eq!(frames(&block(&[], 256)).count(), 0);
        assert_eq!(frames(&[]).count(), 0);
        assert_eq!(frames(&[0u8; 13]).count(), 0);
        let good = block(&[(1, 0, 0, None, 64, &a), (2, 0, 0, None, 64, &a)], 1024);
        // More packets announced than stored: the last one's next offset is 0.
        let mut more = good.clone();
        more[BLOCK_NUM_PKTS..BLOCK_NUM_PKTS + 4].copy_from_slice(&9u32.to_ne_bytes());
        assert_eq!(frames(&more).count(), 2);
        // A snaplen past the block's end: that frame and the rest are dropped.
        let mut long = good.clone();
        let second = 48 + u32_at(&good, 48).unwrap() as usize;
        long[second + 12..second + 16].copy_from_slice(&5000u32.to_ne_bytes());
        assert_eq!(frames(&long).count(), 1);
        // The block cut short (a short read of a recording).
        assert_eq!(frames(&good[..second + 40]).count(), 1);
        // A first-packet offset outside the block.
        let mut far = good.clone();
        far[16..20].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(frames(&far).count(), 0);
    }

    proptest! {
        /// Any bytes: no panic, at most num_pkts frames, all inside the block.
        #[test]
        fn arbitrary_blocks_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                        n in 0u32..6, first in 0u32..200) {
            if bytes.len() >= 20 {
                bytes[12..16].copy_from_slice(&n.to_ne_bytes());
                bytes[16..20].copy_from_slice(&first.to_ne_bytes());
            }
            let range = bytes.as_ptr_range();
            let mut count = 0;
            for f in frames(&bytes) {
                count += 1;
                let r = f.data.as_ptr_range();
                prop_assert!(r.start >= range.start && r.end <= range.end);
            }
            prop_assert!(count <= n as usize);
        }

        /// Built blocks with damaged bytes: still no panic, and the frames
        /// before the damage come out intact.
        #[test]
        fn damaged_built_blocks_never_panic(at in 0usize..1024, v in any::<u8>(), cut in 0usize..1024) {
            let a: Vec<u8> = (0..100).collect();
            let mut b = block(&[(1, 2, 0, None, 100, &a), (3, 4, 4, Some((0x88a8, 5)), 100, &a),
                                (5, 6, 0, None, 100, &a)], 1024);
            b[at] = v;
            b.truncate(cut.max(1));
            for f in frames(&b) {
                prop_assert!(f.data.len() <= b.len());
            }
        }
    }
}
