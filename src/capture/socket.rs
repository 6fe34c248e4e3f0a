//! AF_PACKET capture socket on one interface.
//!
//! Like every socket, it belongs to the network namespace of the thread that
//! created it: open it on a short-lived thread that entered the namespace,
//! then use it from anywhere. `ifindex` is an index in that namespace.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::pcap::Direction;

/// Receive buffer asked for: bursts on a bridge must not overflow it while
/// the reader is busy writing files.
const RCVBUF_BYTES: libc::c_int = 8 << 20;

/// A `recv` buffer of this size never cuts a frame: Ethernet and VLAN
/// headers plus the largest IPv6 packet, which also covers the GSO
/// super-frames veth and bridges hand to packet sockets (without BIG TCP).
pub const MAX_FRAME_LEN: usize = 14 + 4 + 40 + 65_535;

/// Fields of `struct tpacket_auxdata` (linux/if_packet.h) that we use.
#[repr(C)]
#[derive(Clone, Copy)]
struct AuxData {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `struct tpacket_stats` (linux/if_packet.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketStats {
    tp_packets: libc::c_uint,
    tp_drops: libc::c_uint,
}

/// One received frame; `data` borrows the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Kernel receive time (SO_TIMESTAMPNS): seconds and nanoseconds since
    /// the epoch.
    pub ts: (i64, u32),
    pub direction: Direction,
    /// Length on the wire; larger than `data.len()` when the buffer was short.
    pub orig_len: u32,
    pub data: &'a [u8],
}

/// A raw packet socket bound to one interface (all ethertypes).
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
    // PACKET_STATISTICS resets the kernel's counters on every read, so the
    // totals since `open` are kept here.
    received: AtomicU64,
    dropped: AtomicU64,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live c_int for the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

impl PacketSocket {
    /// Opens a capture socket on interface `ifindex` of the calling thread's
    /// network namespace. Needs CAP_NET_RAW; ENODEV if the namespace has no
    /// such interface.
    pub fn open(ifindex: u32) -> io::Result<Self> {
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
        // queue up in between.
        // SAFETY: plain syscall without pointers.
        let raw =
            cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // SO_RCVBUFFORCE passes rmem_max (needs CAP_NET_ADMIN); else take
        // what SO_RCVBUF allows.
        {
            use nix::sys::socket::{setsockopt, sockopt};
            let size = RCVBUF_BYTES as usize;
            if setsockopt(&fd, sockopt::RcvBufForce, &size).is_err() {
                setsockopt(&fd, sockopt::RcvBuf, &size)?;
            }
            setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
        }
        // Optional: recovers VLAN tags the NIC/veth stripped (tx offload).
        let _ = setsockopt_int(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1);

        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = sll_ifindex;
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
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Waits up to `timeout` for a frame and copies it into `buf`. A frame
    /// longer than `buf` is cut, `orig_len` keeps its real length; see
    /// [`MAX_FRAME_LEN`]. `Ok(None)` on timeout (a signal does not end the wait
    /// early: keep timeouts short where a caller's loop checks whether to stop).
    pub fn recv<'b>(
        &mut self,
        buf: &'b mut [u8],
        timeout: Duration,
    ) -> io::Result<Option<Packet<'b>>> {
        if !crate::kernel::poll::poll_readable(self.fd.as_fd(), timeout)? {
            return Ok(None);
        }

        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        // u64 words keep the control buffer aligned for cmsghdr. Room for
        // a timespec and a tpacket_auxdata with their headers.
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid msghdr; the fields are set below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&raw mut addr).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control) as _;

        // MSG_TRUNC: packet sockets then return the frame's real length even
        // when `buf` is shorter. MSG_DONTWAIT: poll said ready, but never
        // block if another reader took the frame.
        // SAFETY: msg points at addr, iov (over buf) and control, all alive
        // and exclusively borrowed for the call.
        let n = unsafe {
            libc::recvmsg(
                self.fd.as_raw_fd(),
                &raw mut msg,
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let wire_len = usize::try_from(n).unwrap_or(0);
        let mut captured = wire_len.min(buf.len());
        let mut orig_len = u32::try_from(wire_len).unwrap_or(u32::MAX);

        let mut ts = None;
        let mut aux = None;
        // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG
        // macros walk within them, and each payload is read unaligned with
        // the size its (level, type) defines.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                let len =
                    ((*c).cmsg_len as usize).saturating_sub(data.offset_from(c.cast()) as usize);
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS)
                        if len >= mem::size_of::<libc::timespec>() =>
                    {
                        let t: libc::timespec = data.cast::<libc::timespec>().read_unaligned();
                        ts = Some((t.tv_sec as i64, t.tv_nsec as u32));
                    }
                    (libc::SOL_PACKET, libc::PACKET_AUXDATA)
                        if len >= mem::size_of::<AuxData>() =>
                    {
                        aux = Some(data.cast::<AuxData>().read_unaligned());
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(&raw const msg, c);
            }
        }

        if let Some(aux) = aux.filter(|a| a.tp_status & TP_STATUS_VLAN_VALID != 0) {
            let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                0x8100
            };
            captured = insert_vlan_tag(buf, captured, tpid, aux.tp_vlan_tci);
            orig_len = orig_len.saturating_add(4);
        }

        let direction = if addr.sll_pkttype == libc::PACKET_OUTGOING {
            Direction::Out
        } else {
            Direction::In
        };
        let ts = ts.unwrap_or_else(|| {
            let d = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            (d.as_secs() as i64, d.subsec_nanos())
        });
        let data = buf.get(..captured).unwrap_or_default();
        Ok(Some(Packet {
            ts,
            direction,
            orig_len,
            data,
        }))
    }

    /// Packets since `open`: `(received, dropped)`. As in libpcap,
    /// `received` counts every frame that reached the socket, including the
    /// `dropped` ones that found its buffer full.
    pub fn stats(&self) -> io::Result<(u64, u64)> {
        let mut st = TpacketStats::default();
        let mut len = mem::size_of::<TpacketStats>() as libc::socklen_t;
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
    fn open_rejects_ifindex_zero_and_huge() {
        for idx in [0, u32::MAX] {
            let e = PacketSocket::open(idx).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{idx}: {e}");
        }
    }
}
