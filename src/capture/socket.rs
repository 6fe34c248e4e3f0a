//! AF_PACKET capture socket on one interface.
//!
//! Like every socket, it belongs to the network namespace of the thread that
//! created it: open it on a short-lived thread that entered the namespace,
//! then use it from anywhere. `ifindex` is an index in that namespace.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
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
impl AuxData {
    /// From a PACKET_AUXDATA control message's bytes (host order), if long enough.
    fn parse(b: &[u8]) -> Option<AuxData> {
        let u32_at = |i: usize| Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let u16_at = |i: usize| Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?));
        Some(AuxData {
            tp_status: u32_at(0)?,
            tp_len: u32_at(4)?,
            tp_snaplen: u32_at(8)?,
            tp_mac: u16_at(12)?,
            tp_net: u16_at(14)?,
            tp_vlan_tci: u16_at(16)?,
            tp_vlan_tpid: u16_at(18)?,
        })
    }
}

/// What one recvmsg returned besides the bytes.
struct Frame {
    wire_len: usize,
    pkttype: u8,
    ts: Option<(i64, u32)>,
    aux: Option<AuxData>,
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
    /// Control-message buffer of `recv`: room for a timespec and a
    /// tpacket_auxdata with their headers (as nix's `cmsg_space!` sizes it).
    control: Vec<u8>,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// setsockopt of an int option nix 0.32 does not wrap (PACKET_AUXDATA): the raw call.
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
        let fd = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Packet,
            nix::sys::socket::SockType::Raw,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )?;

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
            control: nix::cmsg_space!(libc::timespec, AuxData),
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
        let Some(got) = self.recv_frame(buf)? else {
            return Ok(None);
        };
        let mut captured = got.wire_len.min(buf.len());
        let mut orig_len = u32::try_from(got.wire_len).unwrap_or(u32::MAX);
        if let Some(aux) = got.aux.filter(|a| a.tp_status & TP_STATUS_VLAN_VALID != 0) {
            let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                0x8100
            };
            captured = insert_vlan_tag(buf, captured, tpid, aux.tp_vlan_tci);
            orig_len = orig_len.saturating_add(4);
        }
        let direction = if got.pkttype == libc::PACKET_OUTGOING {
            Direction::Out
        } else {
            Direction::In
        };
        let ts = got.ts.unwrap_or_else(|| {
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

    /// One recvmsg into `buf`, never blocking: the frame's length on the wire,
    /// its packet type and control messages. `None` if nothing was there.
    fn recv_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<Frame>> {
        use nix::sys::socket::{ControlMessageOwned, LinkAddr, MsgFlags, recvmsg};
        let mut iov = [io::IoSliceMut::new(buf)];
        // MSG_TRUNC: packet sockets then return the frame's real length even
        // when `buf` is shorter. MSG_DONTWAIT: poll said ready, but never
        // block if another reader took the frame.
        let msg = match recvmsg::<LinkAddr>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut self.control[..]),
            MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut frame = Frame {
            wire_len: msg.bytes,
            // nix's LinkAddr wants a whole sockaddr_ll, which packet_recvmsg
            // pads a short one to. No address: as a zeroed one reads, PACKET_HOST.
            pkttype: msg.address.map_or(libc::PACKET_HOST, |a| a.pkttype()),
            ts: None,
            aux: None,
        };
        for c in msg.cmsgs().into_iter().flatten() {
            match c {
                ControlMessageOwned::ScmTimestampns(t) => {
                    frame.ts = Some((t.tv_sec(), t.tv_nsec() as u32));
                }
                ControlMessageOwned::Unknown(u)
                    if u.cmsg_header.cmsg_level == libc::SOL_PACKET
                        && u.cmsg_header.cmsg_type == libc::PACKET_AUXDATA =>
                {
                    frame.aux = AuxData::parse(&u.data_bytes);
                }
                _ => {}
            }
        }
        Ok(Some(frame))
    }

    /// Packets since `open`: `(received, dropped)`. As in libpcap,
    /// `received` counts every frame that reached the socket, including the
    /// `dropped` ones that found its buffer full.
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
    fn open_rejects_ifindex_zero_and_huge() {
        for idx in [0, u32::MAX] {
            let e = PacketSocket::open(idx).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{idx}: {e}");
        }
    }
}
