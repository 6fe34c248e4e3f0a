//! AF_PACKET capture socket on one interface, read through a TPACKET_V3
//! receive ring: the kernel writes frames into blocks of memory shared with
//! us and hands over a whole block at a time (when full, or after
//! [`BLOCK_TIMEOUT`] so a quiet interface still delivers promptly), which
//! costs a poll per block instead of a recvmsg per frame.
//!
//! A ring of our own over `libc` rather than the `netring` crate: it is a few
//! hundred lines, and nslab must create each socket on a thread that entered
//! the node's namespace and then hand it to the capture thread, which a
//! crate that opens and owns its sockets does not fit.
//!
//! Like every socket, it belongs to the network namespace of the thread that
//! created it: open it on a short-lived thread that entered the namespace,
//! then use it from anywhere. `ifindex` is an index in that namespace.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::pcap::Direction;
use super::ring::{self, BLOCK_NUM_PKTS, BLOCK_STATUS, Frames, RingFrame, TP_STATUS_USER};

/// A `recv` buffer of this size never cuts a frame: Ethernet and VLAN
/// headers plus the largest IPv6 packet, which also covers the GSO
/// super-frames veth and bridges hand to packet sockets (without BIG TCP).
pub const MAX_FRAME_LEN: usize = 14 + 4 + 40 + 65_535;

/// Ring memory of a socket opened with [`PacketSocket::open`].
pub const RING_BYTES: usize = 8 << 20;

/// The kernel hands over a block that is not full after this long
/// (`tp_retire_blk_tov`), so frames on a quiet interface wait at most about
/// this much in the ring.
pub const BLOCK_TIMEOUT: Duration = Duration::from_millis(50);

/// `TPACKET_V3` of `enum tpacket_versions`.
const TPACKET_V3: libc::c_int = 2;

/// Block size and count for a ring of about `bytes`: blocks must hold a
/// [`MAX_FRAME_LEN`] frame with its headers; at least 4, so the kernel fills
/// some while we read one.
pub fn ring_geometry(bytes: usize) -> (usize, usize) {
    let block = if bytes >= 4 << 20 {
        512 << 10
    } else {
        128 << 10
    };
    (block, (bytes / block).clamp(4, 1024))
}

/// A packet socket bound to one interface (all ethertypes), with a ring.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
    // PACKET_STATISTICS resets the kernel's counters on every read, so the
    // totals since `open` are kept here.
    received: AtomicU64,
    dropped: AtomicU64,
    ring: Ring,
    /// `recv` walks a block frame by frame: the block and where it stopped.
    cursor: Option<(usize, (usize, u32))>,
    /// Blocks [`read_held`](PacketSocket::read_held) handed over and not
    /// yet given back: the `held` blocks before `ring.next`.
    held: usize,
}

/// The mmap'd ring: `nr` blocks of `size` bytes, `next` the one the kernel
/// hands over next (it fills them in order).
#[derive(Debug)]
struct Ring {
    ptr: NonNull<u8>,
    size: usize,
    nr: usize,
    next: usize,
}

// SAFETY: the mapping is owned by the Ring alone (unmapped on drop) and the
// blocks it reads belong to user space until handed back; moving it to
// another thread changes nothing.
unsafe impl Send for Ring {}
// SAFETY: shared references only read block status words, atomically.
unsafe impl Sync for Ring {}

impl Ring {
    fn word(&self, block: usize, at: usize) -> &AtomicU32 {
        debug_assert!(block < self.nr && at + 4 <= self.size);
        // SAFETY: in the mapping (block < nr, at < size), 4-aligned (blocks
        // are page-aligned, the offsets multiples of 4); the kernel updates
        // these words concurrently, so they are only read atomically.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(block * self.size + at).cast()) }
    }

    /// Whether the kernel handed block `i` to user space.
    fn ready(&self, i: usize) -> bool {
        // Acquire: the block's contents are visible once its status says so.
        self.word(i, BLOCK_STATUS).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Block `i`'s bytes; only while it is ready.
    fn block(&self, i: usize) -> &[u8] {
        // SAFETY: in the mapping; a ready block is not written by the kernel
        // until `release`, which takes `&mut self`-owned bookkeeping first.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(i * self.size), self.size) }
    }

    /// Gives block `i` back to the kernel.
    fn release(&self, i: usize) {
        self.word(i, BLOCK_STATUS).store(0, Ordering::Release);
    }

    /// Frames wait in the block the kernel is filling (it has not retired it).
    fn open_block_has_frames(&self) -> bool {
        !self.ready(self.next) && self.word(self.next, BLOCK_NUM_PKTS).load(Ordering::Relaxed) > 0
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.size * self.nr) };
    }
}

/// `struct tpacket_stats_v3` (linux/if_packet.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketStats {
    tp_packets: libc::c_uint,
    tp_drops: libc::c_uint,
    tp_freeze_q_cnt: libc::c_uint,
}

/// One received frame; `data` borrows the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Kernel receive time: seconds and nanoseconds since the epoch.
    pub ts: (i64, u32),
    pub direction: Direction,
    /// Length on the wire; larger than `data.len()` when the buffer was short.
    pub orig_len: u32,
    pub data: &'a [u8],
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// setsockopt of a value nix 0.32 does not wrap: the raw call.
fn setsockopt_raw<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live T for the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// What [`PacketSocket::read_blocks`] hands its callback.
pub enum Ready<'a, 'b> {
    /// A frame, borrowing the ring.
    Frame(&'a RingFrame<'b>),
    /// The block whose frames were just handed over (all of its bytes): it
    /// goes back to the kernel when the callback returns (`read_blocks`), or
    /// when released (`read_held`).
    Block(&'b [u8]),
}

/// Which way a ring frame went.
pub fn direction(f: &RingFrame<'_>) -> Direction {
    if f.pkttype == libc::PACKET_OUTGOING {
        Direction::Out
    } else {
        Direction::In
    }
}

/// Copies a ring frame into `buf` with its VLAN tag put back where the
/// kernel took it from (as libpcap does): `(bytes in buf, length on the wire)`.
pub fn copy_frame(f: &RingFrame<'_>, buf: &mut [u8]) -> (usize, u32) {
    let n = f.data.len().min(buf.len());
    buf[..n].copy_from_slice(&f.data[..n]);
    match f.vlan {
        Some((tpid, tci)) => (
            insert_vlan_tag(buf, n, tpid, tci),
            f.wire_len.saturating_add(4),
        ),
        None => (n, f.wire_len),
    }
}

impl PacketSocket {
    /// Opens a capture socket with a ring of [`RING_BYTES`] on interface
    /// `ifindex` of the calling thread's network namespace. Needs
    /// CAP_NET_RAW; ENODEV if the namespace has no such interface.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        Self::open_with_ring(ifindex, RING_BYTES)
    }

    /// [`open`](Self::open) with a ring of about `ring_bytes` (see
    /// [`ring_geometry`]): captures on many interfaces share less memory.
    pub fn open_with_ring(ifindex: u32, ring_bytes: usize) -> io::Result<Self> {
        // 0 is "every interface" to bind(); a capture is always on one.
        let sll_ifindex = libc::c_int::try_from(ifindex)
            .ok()
            .filter(|&i| i > 0)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid interface index {ifindex}"),
                )
            })?;
        // Protocol 0: the socket receives nothing until bind() sets both the
        // protocol and the interface, so frames of other interfaces never
        // reach the ring in between.
        let fd = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Packet,
            nix::sys::socket::SockType::Raw,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        setsockopt_raw(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3)?;
        let (size, nr) = ring_geometry(ring_bytes);
        let req = libc::tpacket_req3 {
            tp_block_size: size as u32,
            tp_block_nr: nr as u32,
            // V3 packs frames of any size; the kernel only checks that
            // frame_nr = block_nr * (block_size / frame_size).
            tp_frame_size: 2048,
            tp_frame_nr: (nr * (size / 2048)) as u32,
            tp_retire_blk_tov: BLOCK_TIMEOUT.as_millis() as u32,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt_raw(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        // SAFETY: a fresh shared mapping of the ring just set up; the kernel
        // checks the length.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size * nr,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = Ring {
            ptr: NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?,
            size,
            nr,
            next: 0,
        };

        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = sll_ifindex;
        // nix 0.32 cannot make a LinkAddr (sockaddr_ll) safely: the raw bind.
        // SAFETY: the pointer and length describe `addr`, alive for the call.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket {
            fd,
            ifindex,
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            ring,
            cursor: None,
            held: 0,
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Waits up to `timeout` for a frame and copies it into `buf`. A frame
    /// longer than `buf` is cut, `orig_len` keeps its real length; see
    /// [`MAX_FRAME_LEN`]. `Ok(None)` on timeout (a signal does not end the wait
    /// early: keep timeouts short where a caller's loop checks whether to
    /// stop). Frames reach the ring's reader a block at a time: a frame may
    /// wait up to [`BLOCK_TIMEOUT`] in the kernel.
    pub fn recv<'b>(
        &mut self,
        buf: &'b mut [u8],
        timeout: Duration,
    ) -> io::Result<Option<Packet<'b>>> {
        let until = Instant::now() + timeout;
        loop {
            if let Some((ts, direction, n, orig_len)) = self.take_one(buf) {
                return Ok(Some(Packet {
                    ts,
                    direction,
                    orig_len,
                    data: &buf[..n],
                }));
            }
            let left = until.saturating_duration_since(Instant::now());
            if !crate::kernel::poll::poll_readable(self.fd.as_fd(), left)? || left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// The next frame of the ring copied into `buf`, if the kernel handed one over.
    fn take_one(&mut self, buf: &mut [u8]) -> Option<((i64, u32), Direction, usize, u32)> {
        loop {
            let (blk, pos) = match self.cursor {
                Some(c) => c,
                None if self.ring.ready(self.ring.next) => {
                    let b = self.ring.next;
                    self.ring.next = (b + 1) % self.ring.nr;
                    let f = ring::frames(self.ring.block(b));
                    (b, f.position())
                }
                None => return None,
            };
            let mut frames = Frames::resume(self.ring.block(blk), pos);
            if let Some(f) = frames.next() {
                self.cursor = Some((blk, frames.position()));
                let (n, orig) = copy_frame(&f, buf);
                return Some((f.ts, direction(&f), n, orig));
            }
            self.ring.release(blk);
            self.cursor = None;
        }
    }

    /// Hands every frame of the blocks the kernel has handed over to `f`
    /// (frames borrow the ring: copy what must outlive the call), then gives
    /// the blocks back. At most one ring's worth per call, so a flood on one
    /// interface does not starve the others. Returns the number of frames.
    pub fn read_ready(&mut self, mut f: impl FnMut(&RingFrame<'_>)) -> usize {
        self.read_blocks(|r| {
            if let Ready::Frame(fr) = r {
                f(fr)
            }
        })
    }

    /// [`read_ready`](Self::read_ready), and after the frames of each block
    /// the block itself ([`Ready::Block`]), before it goes back to the
    /// kernel: what points into it (e.g. `IoSlice`s of its frames) can be
    /// used until then.
    pub fn read_blocks(&mut self, mut f: impl FnMut(Ready<'_, '_>)) -> usize {
        let mut n = 0;
        if let Some((blk, pos)) = self.cursor.take() {
            let block = self.ring.block(blk);
            for fr in Frames::resume(block, pos) {
                f(Ready::Frame(&fr));
                n += 1;
            }
            f(Ready::Block(block));
            self.ring.release(blk);
        }
        for _ in 0..self.ring.nr {
            let Some((b, k)) = self.hand_over(&mut f) else {
                break;
            };
            self.ring.release(b);
            n += k;
        }
        n
    }

    /// Hands the frames of the next block, then the block, to `f` if the
    /// kernel gave it to user space, and moves past it (still user space's):
    /// the block's index and its frame count.
    fn hand_over(&mut self, f: &mut impl FnMut(Ready<'_, '_>)) -> Option<(usize, usize)> {
        let b = self.ring.next;
        if !self.ring.ready(b) {
            return None;
        }
        let block = self.ring.block(b);
        let mut n = 0;
        for fr in ring::frames(block) {
            f(Ready::Frame(&fr));
            n += 1;
        }
        f(Ready::Block(block));
        self.ring.next = (b + 1) % self.ring.nr;
        Some((b, n))
    }

    /// [`read_blocks`](Self::read_blocks), but the blocks stay user space's
    /// (the kernel fills the others meanwhile) until [`release_held`](Self::release_held)
    /// gives them back, oldest first: what points into them stays valid
    /// that long. At most `limit` blocks are held at once; blocks beyond it
    /// wait in the ring. Not mixed with [`recv`](Self::recv).
    ///
    /// poll() says readable while the block before the kernel's is user
    /// space's, so a caller holding blocks must pace itself.
    pub fn read_held(&mut self, limit: usize, mut f: impl FnMut(Ready<'_, '_>)) -> usize {
        debug_assert!(self.cursor.is_none(), "recv and read_held mixed");
        let mut n = 0;
        while self.held < limit.min(self.ring.nr) {
            let Some((_, k)) = self.hand_over(&mut f) else {
                break;
            };
            self.held += 1;
            n += k;
        }
        n
    }

    /// Blocks in the ring.
    pub fn blocks(&self) -> usize {
        self.ring.nr
    }

    /// Blocks [`read_held`](Self::read_held) handed over and still held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Gives the oldest held block back to the kernel: whatever pointed
    /// into it must be gone.
    pub fn release_held(&mut self) {
        if self.held > 0 {
            let oldest = (self.ring.next + self.ring.nr - self.held) % self.ring.nr;
            self.ring.release(oldest);
            self.held -= 1;
        }
    }

    /// Attaches a classic BPF program (SO_ATTACH_FILTER): the kernel drops
    /// the frames it rejects before they reach the ring, and counts only the
    /// others in [`stats`](Self::stats).
    pub fn set_filter(&self, prog: &[super::bpf::Insn]) -> io::Result<()> {
        let len = u16::try_from(prog.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
        let fprog = libc::sock_fprog {
            len,
            // The kernel copies the program and never writes through it.
            filter: prog.as_ptr().cast_mut().cast(),
        };
        setsockopt_raw(&self.fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
    }

    /// Whether frames wait in the block the kernel is still filling: they
    /// come out within [`BLOCK_TIMEOUT`] (a stopping capture waits for them).
    pub fn frames_in_open_block(&self) -> bool {
        self.cursor.is_some() || self.ring.open_block_has_frames()
    }

    /// Packets since `open`: `(received, dropped)`. As in libpcap,
    /// `received` counts every frame that reached the socket, including the
    /// `dropped` ones that found the ring full.
    pub fn stats(&self) -> io::Result<(u64, u64)> {
        let mut st = TpacketStats::default();
        let mut len = mem::size_of::<TpacketStats>() as libc::socklen_t;
        // nix 0.32 has no PACKET_STATISTICS option: the raw getsockopt.
        // SAFETY: the pointer and length describe `st`, alive for the call.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &raw mut len,
            )
        })?;
        // tp_packets already includes tp_drops (the kernel adds them).
        let received = self
            .received
            .fetch_add(u64::from(st.tp_packets), Ordering::Relaxed)
            + u64::from(st.tp_packets);
        let dropped = self
            .dropped
            .fetch_add(u64::from(st.tp_drops), Ordering::Relaxed)
            + u64::from(st.tp_drops);
        Ok((received, dropped))
    }
}

/// Puts back the 802.1Q tag the kernel moved to metadata, after the two MAC
/// addresses, as libpcap does. Returns the new captured length (the last 4
/// bytes fall off if `buf` is full).
fn insert_vlan_tag(buf: &mut [u8], captured: usize, tpid: u16, tci: u16) -> usize {
    const MACS: usize = 12;
    if captured < MACS {
        return captured;
    }
    let new_len = captured.saturating_add(4).min(buf.len());
    if new_len < MACS + 4 {
        return captured;
    }
    // Move bytes 12..new_len-4 to 16..new_len, then write the tag.
    buf.copy_within(MACS..new_len - 4, MACS + 4);
    if let Some(tag) = buf.get_mut(MACS..MACS + 4) {
        tag[..2].copy_from_slice(&tpid.to_be_bytes());
        tag[2..].copy_from_slice(&tci.to_be_bytes());
    }
    new_len
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<PacketSocket> for OwnedFd {
    fn from(s: PacketSocket) -> OwnedFd {
        s.fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_tag_goes_after_the_macs() {
        let mut buf = [0u8; 64];
        let frame: Vec<u8> = (0u8..20).collect();
        buf[..20].copy_from_slice(&frame);
        let n = insert_vlan_tag(&mut buf, 20, 0x8100, 0x0064);
        assert_eq!(n, 24);
        assert_eq!(&buf[..12], &frame[..12]);
        assert_eq!(&buf[12..16], &[0x81, 0x00, 0x00, 0x64]);
        assert_eq!(&buf[16..24], &frame[12..20]);
    }

    #[test]
    fn vlan_tag_in_full_buffer_drops_the_tail() {
        let mut buf: Vec<u8> = (0u8..20).collect();
        let n = insert_vlan_tag(&mut buf, 20, 0x88a8, 7);
        assert_eq!(n, 20);
        assert_eq!(&buf[12..16], &[0x88, 0xa8, 0, 7]);
        assert_eq!(&buf[16..20], &[12, 13, 14, 15]);
        // Too short to hold MAC addresses: left alone.
        let mut short = [1u8; 8];
        assert_eq!(insert_vlan_tag(&mut short, 8, 0x8100, 1), 8);
        assert_eq!(short, [1u8; 8]);
    }

    #[test]
    fn ring_blocks_hold_the_largest_frame() {
        for bytes in [0, 1 << 20, RING_BYTES, 1 << 30] {
            let (size, nr) = ring_geometry(bytes);
            assert!(size >= MAX_FRAME_LEN + 48 + ring::HDR_LEN + 32, "{bytes}");
            assert!(
                size.is_power_of_two() && (4..=1024).contains(&nr),
                "{bytes}"
            );
        }
        assert_eq!(ring_geometry(RING_BYTES), (512 << 10, 16));
    }

    #[test]
    fn vlan_tag_is_put_back_on_copy() {
        let data: Vec<u8> = (0u8..40).collect();
        let f = RingFrame {
            ts: (1, 2),
            wire_len: 40,
            pkttype: libc::PACKET_OUTGOING,
            vlan: Some((0x8100, 7)),
            data: &data,
        };
        let mut buf = [0u8; 64];
        assert_eq!(copy_frame(&f, &mut buf), (44, 44));
        assert_eq!(&buf[12..16], &[0x81, 0, 0, 7]);
        assert_eq!(&buf[16..44], &data[12..]);
        assert_eq!(direction(&f), Direction::Out);
        let mut small = [0u8; 20];
        assert_eq!(
            copy_frame(&RingFrame { vlan: None, ..f }, &mut small),
            (20, 40)
        );
    }

    #[test]
    fn open_rejects_ifindex_zero_and_huge() {
        for idx in [0, u32::MAX] {
            let e = PacketSocket::open(idx).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{idx}: {e}");
        }
    }
}
