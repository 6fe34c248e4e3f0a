//! The one netlink socket under every family nslab speaks (route in
//! [`super::netlink`], netfilter in [`super::nft`]): opening in the calling
//! thread's namespace with extended and capped ACKs, a receive timeout whose
//! failure is reported, send and receive retried on EINTR, buffer sizing, sequence
//! numbers, and the pure parts every family shares (splitting a datagram into
//! messages, an error's extended-ack text, dump interruption and its retry rule).
//! The families own their message types; this file owns the bytes.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
/// The dump was interrupted by a change: its messages are not one consistent state.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_CAPPED: u16 = 0x100;
pub const NLM_F_ACK_TLVS: u16 = 0x200;
pub const NLMSGERR_ATTR_MSG: u16 = 1;
/// How often a dump the kernel marked interrupted is redone before giving up.
pub const DUMP_ATTEMPTS: u32 = 5;

/// Receive buffer: a dump part is at most 32 KiB (the kernel caps it), an ACK
/// far less. A datagram that does not fit is reported, never cut silently.
const RECV_BUF: usize = 1 << 16;

thread_local! {
    /// One receive buffer per thread, lent to a socket while it waits for replies:
    /// a lab of 1000 namespaces holds 1000 sockets, not 1000 buffers.
    static BUF: std::cell::Cell<Option<Vec<u8>>> = const { std::cell::Cell::new(None) };
}

/// A blocking netlink socket of one protocol, bound to the network namespace of the
/// thread that opened it (wherever it is used from later).
pub struct NlSocket {
    sock: Socket,
    seq: u32,
    timeout: Duration,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NlSocket")
            .field("fd", &self.sock.as_raw_fd())
            .field("seq", &self.seq)
            .finish()
    }
}

impl NlSocket {
    /// Open a socket of `protocol` (NETLINK_ROUTE, NETLINK_NETFILTER, ...) in the
    /// calling thread's namespace: extended ACKs and capped ACKs on (an error then
    /// echoes only the request's header), connected to the kernel, with a receive
    /// timeout of `timeout`. Every step's failure is reported.
    pub fn open(protocol: isize, timeout: Duration) -> io::Result<NlSocket> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.set_ext_ack(true)?;
        sock.set_cap_ack(true)?;
        sock.connect(&SocketAddr::new(0, 0))?;
        let mut s = NlSocket {
            sock,
            // Replies come only to this socket; numbers only tell its own requests
            // apart (and skip the late replies of one that timed out).
            seq: 1,
            timeout,
            buf: Vec::new(),
        };
        s.set_timeout(timeout)?;
        Ok(s)
    }

    /// Strict checking of dump requests' headers (route only).
    pub fn set_strict_check(&mut self) -> io::Result<()> {
        self.sock.set_netlink_get_strict_chk(true)
    }

    /// Set the receive timeout (at least one millisecond).
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let timeout = timeout.max(Duration::from_millis(1));
        setsockopt(
            &self.sock,
            sockopt::ReceiveTimeout,
            &TimeVal::from(timeout_tv(timeout)),
        )?;
        self.timeout = timeout;
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `n` consecutive sequence numbers, never 0; returns the first.
    pub fn take_seqs(&mut self, n: usize) -> u32 {
        let (first, next) = seq_block(self.seq, n);
        self.seq = next;
        first
    }

    /// Set the receive buffer to at least `size` bytes, as far as net.core.rmem_max
    /// allows (no privilege needed); failure is not an error (a short buffer shows
    /// as ENOBUFS, which is reported).
    pub fn set_rcvbuf(&self, size: usize) {
        let _ = setsockopt(&self.sock, sockopt::RcvBuf, &size);
    }

    /// Make room for sending `len` bytes in one datagram: netlink refuses a datagram
    /// larger than the send buffer (EMSGSIZE).
    pub fn ensure_sndbuf(&self, len: usize) {
        let want = len.saturating_add(4096).min(256 << 20);
        if setsockopt(&self.sock, sockopt::SndBufForce, &want).is_err() {
            let _ = setsockopt(&self.sock, sockopt::SndBuf, &want);
        }
    }

    /// Make room for `n` replies queued at once: each ACK costs about a page of
    /// receive buffer, and a reply the kernel cannot queue is lost (ENOBUFS). The
    /// FORCE option needs CAP_NET_ADMIN, which changing the kernel needs anyway; the
    /// plain one is capped by net.core.rmem_max.
    pub fn ensure_rcvbuf(&self, n: usize) {
        let want = (n + 8).saturating_mul(4096).min(64 << 20);
        if self.sock.get_rx_buf_sz().is_ok_and(|cur| cur >= want) {
            return;
        }
        if setsockopt(&self.sock, sockopt::RcvBufForce, &want).is_err() {
            let _ = setsockopt(&self.sock, sockopt::RcvBuf, &want);
        }
    }

    /// Send one datagram whole, retrying on EINTR.
    pub fn send(&self, buf: &[u8]) -> io::Result<()> {
        loop {
            match self.sock.send(buf, 0) {
                Ok(n) if n == buf.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!("sent {n} of {} bytes", buf.len())));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Receive one datagram whole, retrying on EINTR. `Ok(None)` when `nowait` and
    /// nothing is queued; the timeout is an error of kind `TimedOut`. The datagram
    /// stays valid until the next call; [`Self::release`] gives the buffer back.
    pub fn recv(&mut self, nowait: bool) -> io::Result<Option<&[u8]>> {
        if self.buf.is_empty() {
            self.buf = BUF
                .with(|b| b.take())
                .unwrap_or_else(|| vec![0u8; RECV_BUF]);
        }
        let flags = libc::MSG_TRUNC | if nowait { libc::MSG_DONTWAIT } else { 0 };
        // Each retry restarts the kernel's SO_RCVTIMEO: the first signal starts a
        // clock of our own, so a stream of signals cannot make the wait endless.
        let mut interrupted_at: Option<Instant> = None;
        let timed_out = |timeout| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer from the kernel within {}",
                    duration_text(timeout)
                ),
            )
        };
        loop {
            match self.sock.recv(&mut &mut self.buf[..], flags) {
                Ok(n) if n > self.buf.len() => {
                    return Err(io::Error::other(format!(
                        "datagram of {n} bytes truncated to {}",
                        self.buf.len()
                    )));
                }
                Ok(n) => return Ok(Some(&self.buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    let t = *interrupted_at.get_or_insert_with(Instant::now);
                    if t.elapsed() >= self.timeout {
                        return Err(timed_out(self.timeout));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if nowait {
                        return Ok(None);
                    }
                    return Err(timed_out(self.timeout));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Give the receive buffer back to the thread (call after each operation).
    pub fn release(&mut self) {
        if !self.buf.is_empty() {
            let b = std::mem::take(&mut self.buf);
            BUF.with(|c| c.set(Some(b)));
        }
    }
}

/// A netlink socket that listens: subscribed to multicast groups (link events,
/// nftables trace events, ...), with a receive buffer set up front, and reads
/// that never block longer than asked. It may also send requests (a dump whose
/// replies arrive among the events). Reads go into the caller's buffer, so many
/// listeners (one per namespace) can share one.
pub struct NlListener {
    sock: Socket,
}

impl std::fmt::Debug for NlListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NlListener")
            .field("fd", &self.sock.as_raw_fd())
            .finish()
    }
}

impl NlListener {
    /// A socket of `protocol` in the calling thread's namespace, bound but in no
    /// group yet, its receive buffer asked to be `rcvbuf` bytes (capped by
    /// net.core.rmem_max; a short buffer shows as ENOBUFS, which reads report).
    /// Join groups with [`Self::join`] once any filter is attached.
    pub fn open(protocol: isize, rcvbuf: usize) -> io::Result<NlListener> {
        let mut sock = Socket::new(protocol)?;
        let _ = sock.set_rx_buf_sz(rcvbuf);
        sock.bind_auto()?;
        Ok(NlListener { sock })
    }

    /// Subscribe to multicast group `group` (a group number, not a mask).
    pub fn join(&self, group: u32) -> io::Result<()> {
        self.sock.add_membership(group)
    }

    /// The socket, for options this type does not wrap (a socket filter).
    pub fn socket(&self) -> &Socket {
        &self.sock
    }

    /// Send one request (a dump) to the kernel, retrying on EINTR.
    pub fn send(&self, buf: &[u8]) -> io::Result<()> {
        loop {
            match self.sock.send(buf, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Read one queued datagram into `buf` without waiting, retrying on EINTR:
    /// its length (cut to `buf`), or `None` when nothing is queued. Errors are the
    /// socket's, ENOBUFS (events were lost) among them.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.sock.recv(&mut &mut buf[..], libc::MSG_DONTWAIT) {
                Ok(n) => return Ok(Some(n.min(buf.len()))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Wait at most `timeout` for a datagram, then read it as [`Self::try_recv`]
    /// does: `None` when none came in time.
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        if !super::poll::poll_readable(self.as_fd(), timeout)? {
            return Ok(None);
        }
        self.try_recv(buf)
    }
}

impl AsFd for NlListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

fn timeout_tv(d: Duration) -> libc::timeval {
    libc::timeval {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    }
}

/// "30 s", "250 ms".
pub fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A block of `n` consecutive sequence numbers from `next` without 0 in it (a
/// block that would wrap starts again at 1): (first, next after the block).
pub fn seq_block(next: u32, n: usize) -> (u32, u32) {
    let n = u32::try_from(n).unwrap_or(u32::MAX - 1);
    let first = if next == 0 || next.checked_add(n).is_none() {
        1
    } else {
        next
    };
    (first, first.wrapping_add(n).max(1))
}

/// Which of `n` requests numbered from `first` a reply with `seq` answers.
pub fn seq_index(first: u32, n: usize, seq: u32) -> Option<usize> {
    let i = seq.wrapping_sub(first) as usize;
    (i < n).then_some(i)
}

/// The header fields of one message and the whole message, header included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMsg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub bytes: &'a [u8],
}

/// The messages of one datagram, each 4-byte aligned; a malformed length ends the
/// iteration with one error (callers choose to stop quietly or to report it).
pub fn split(buf: &[u8]) -> impl Iterator<Item = Result<RawMsg<'_>, String>> {
    let mut off = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || off >= buf.len() {
            return None;
        }
        let b = &buf[off..];
        let len = if b.len() >= NLMSG_HDRLEN {
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize
        } else {
            0
        };
        if len < NLMSG_HDRLEN || len > b.len() {
            failed = true;
            return Some(Err(format!(
                "netlink message length {len} with {} bytes left",
                b.len()
            )));
        }
        off = off.saturating_add((len + 3) & !3);
        Some(Ok(RawMsg {
            ty: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            bytes: &b[..len],
        }))
    })
}

/// One NLMSG_ERROR: the request's sequence number, the code (0 for an ACK, else
/// -errno) and the kernel's extended-ack text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub seq: u32,
    pub code: i32,
    pub ext: Option<String>,
}

/// Parse one NLMSG_ERROR message (header included).
pub fn parse_error(m: &[u8]) -> Option<Ack> {
    if m.len() < NLMSG_HDRLEN + 4 {
        return None;
    }
    let flags = u16::from_ne_bytes([m[6], m[7]]);
    let seq = u32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
    let code = i32::from_ne_bytes([m[16], m[17], m[18], m[19]]);
    Some(Ack {
        seq,
        code,
        ext: ext_ack_text(flags, &m[20..]),
    })
}

/// The extended-ack text (NLMSGERR_ATTR_MSG) of an error reply. `after_code` is what
/// follows the error code: the request's header, its payload unless NLM_F_CAPPED,
/// then the TLVs if NLM_F_ACK_TLVS.
pub fn ext_ack_text(flags: u16, after_code: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let tlvs_at = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let orig = after_code.get(..4)?;
        let len = u32::from_ne_bytes([orig[0], orig[1], orig[2], orig[3]]) as usize;
        (len + 3) & !3
    };
    msg_tlv_text(after_code.get(tlvs_at..)?)
}

/// The NLMSGERR_ATTR_MSG text among TLVs (also what follows NLMSG_DONE's code).
pub fn msg_tlv_text(tlvs: &[u8]) -> Option<String> {
    let mut off = 0usize;
    while off + 4 <= tlvs.len() {
        let l = u16::from_ne_bytes([tlvs[off], tlvs[off + 1]]) as usize;
        let t = u16::from_ne_bytes([tlvs[off + 2], tlvs[off + 3]]) & 0x3fff;
        if l < 4 || off + l > tlvs.len() {
            return None;
        }
        if t == NLMSGERR_ATTR_MSG {
            let s = &tlvs[off + 4..off + l];
            let s = s.split(|c| *c == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(s).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
        off += (l + 3) & !3;
    }
    None
}

/// Whether a dump reply says the dump was interrupted by a concurrent change.
pub fn dump_interrupted(flags: u16) -> bool {
    flags & NLM_F_DUMP_INTR != 0
}

/// What to do when a dump ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpEnd {
    /// Consistent: use it.
    Done,
    /// Interrupted: dump again.
    Retry,
    /// Interrupted on every one of [`DUMP_ATTEMPTS`] attempts: report it.
    GiveUp,
}

/// The retry rule for a dump that ended: `attempt` counts from 1.
pub fn dump_end(interrupted: bool, attempt: u32) -> DumpEnd {
    match (interrupted, attempt >= DUMP_ATTEMPTS) {
        (false, _) => DumpEnd::Done,
        (true, false) => DumpEnd::Retry,
        (true, true) => DumpEnd::GiveUp,
    }
}

/// What the error says when every dump attempt was interrupted.
pub fn dump_interrupted_text() -> String {
    format!("the dump was interrupted by concurrent changes {DUMP_ATTEMPTS} times")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An NLMSG_ERROR as the kernel sends it with capped ACKs: code, the echoed
    /// header, then NLMSGERR_ATTR_MSG if there is text.
    pub(crate) fn error_msg(seq: u32, code: i32, text: Option<&str>) -> Vec<u8> {
        let mut m = Vec::new();
        let mut body = Vec::new();
        body.extend(code.to_ne_bytes());
        body.extend([0u8; 16]); // echoed header (capped)
        if let Some(t) = text {
            let mut s = t.as_bytes().to_vec();
            s.push(0);
            body.extend(((s.len() + 4) as u16).to_ne_bytes());
            body.extend(1u16.to_ne_bytes());
            body.extend(&s);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let flags: u16 = if text.is_some() {
            NLM_F_CAPPED | NLM_F_ACK_TLVS
        } else {
            NLM_F_CAPPED
        };
        m.extend(((16 + body.len()) as u32).to_ne_bytes());
        m.extend(NLMSG_ERROR.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(body);
        m
    }

    fn msg(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend(ty.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(body);
        m
    }

    #[test]
    fn splits_aligned_messages_and_reports_a_bad_length_once() {
        let mut buf = msg(16, NLM_F_DUMP_INTR, 7, &[1, 2, 3]);
        buf.push(0); // padding to 4
        buf.extend(msg(NLMSG_DONE, 0, 7, &[0; 4]));
        let parts: Vec<_> = split(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].ty, parts[0].seq, parts[0].bytes.len()),
            (16, 7, 19)
        );
        assert!(dump_interrupted(parts[0].flags));
        assert!(!dump_interrupted(parts[1].flags));
        assert_eq!(parts[1].ty, NLMSG_DONE);
        // A length past the end: the good message, then one error, then nothing.
        let mut bad = msg(16, 0, 1, &[]);
        bad.extend([200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let r: Vec<_> = split(&bad).collect();
        assert_eq!(r.len(), 2);
        assert!(r[0].is_ok() && r[1].is_err());
        // Trailing bytes shorter than a header are an error too.
        assert!(split(&[1, 2, 3]).next().unwrap().is_err());
        assert!(split(&[]).next().is_none());
    }

    #[test]
    fn parses_acks_and_extended_ack_text() {
        let mut buf = error_msg(7, 0, None);
        buf.extend(error_msg(
            8,
            -libc::EEXIST,
            Some("Nexthop has invalid gateway"),
        ));
        let acks: Vec<Ack> = split(&buf)
            .map_while(Result::ok)
            .filter_map(|m| parse_error(m.bytes))
            .collect();
        assert_eq!(acks.len(), 2);
        assert_eq!(
            acks[0],
            Ack {
                seq: 7,
                code: 0,
                ext: None
            }
        );
        assert_eq!(
            acks[1],
            Ack {
                seq: 8,
                code: -libc::EEXIST,
                ext: Some("Nexthop has invalid gateway".into())
            }
        );
        // Without CAPPED the TLVs follow the whole echoed request (here 200 bytes,
        // absent): no text rather than a bad read.
        let m = error_msg(8, -1, Some("x"));
        assert_eq!(
            ext_ack_text(NLM_F_ACK_TLVS | NLM_F_CAPPED, &m[20..]).as_deref(),
            Some("x")
        );
        let mut uncapped = m[20..].to_vec();
        uncapped[..4].copy_from_slice(&200u32.to_ne_bytes());
        assert_eq!(ext_ack_text(NLM_F_ACK_TLVS, &uncapped), None);
        assert_eq!(ext_ack_text(0, &m[20..]), None);
        assert!(ext_ack_text(NLM_F_ACK_TLVS | NLM_F_CAPPED, &[1, 2]).is_none());
        assert!(msg_tlv_text(&[255, 255, 1, 0]).is_none());
        // Empty or blank text is no text.
        assert!(msg_tlv_text(&[5, 0, 1, 0, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn truncated_acks_do_not_panic() {
        let buf = error_msg(9, -1, Some("x"));
        for n in 0..buf.len() {
            for m in split(&buf[..n]).map_while(Result::ok) {
                let _ = parse_error(m.bytes);
            }
            let _ = parse_error(&buf[..n]);
        }
    }

    #[test]
    fn interrupted_dumps_are_retried_a_bounded_number_of_times() {
        assert_eq!(dump_end(false, 1), DumpEnd::Done);
        assert_eq!(dump_end(false, DUMP_ATTEMPTS), DumpEnd::Done);
        for a in 1..DUMP_ATTEMPTS {
            assert_eq!(dump_end(true, a), DumpEnd::Retry);
        }
        assert_eq!(dump_end(true, DUMP_ATTEMPTS), DumpEnd::GiveUp);
        assert!(dump_interrupted_text().contains("interrupted"));
    }

    #[test]
    fn sequence_blocks_skip_zero_and_match_replies() {
        assert_eq!(seq_block(1, 3), (1, 4));
        assert_eq!(seq_block(0, 1), (1, 2));
        // A block that would wrap through 0 starts again at 1.
        assert_eq!(seq_block(u32::MAX - 1, 5), (1, 6));
        assert_eq!(seq_block(u32::MAX - 5, 5), (u32::MAX - 5, u32::MAX));
        assert_eq!(seq_block(u32::MAX, 1).0, 1);
        assert_eq!(seq_index(10, 3, 10), Some(0));
        assert_eq!(seq_index(10, 3, 12), Some(2));
        assert_eq!(seq_index(10, 3, 13), None);
        assert_eq!(seq_index(10, 3, 9), None);
        assert_eq!(seq_index(10, 0, 10), None);
    }

    /// A link dump request (RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP).
    fn getlink_dump(seq: u32) -> Vec<u8> {
        let mut m = msg(18, 0x301, seq, &[0u8; 16]);
        m[0..4].copy_from_slice(&32u32.to_ne_bytes());
        m
    }

    #[test]
    fn a_listener_waits_no_longer_than_asked_and_reads_what_comes() {
        // No group joined: nothing arrives but the replies to our own request.
        let l = match NlListener::open(0, 1 << 20) {
            Ok(l) => l,
            Err(e) => return eprintln!("no netlink here ({e}); skipped"),
        };
        let mut buf = vec![0u8; 1 << 16];
        assert_eq!(l.try_recv(&mut buf).unwrap(), None);
        let t = Instant::now();
        assert_eq!(
            l.recv_timeout(&mut buf, Duration::from_millis(20)).unwrap(),
            None
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        l.send(&getlink_dump(42)).unwrap();
        let n = l
            .recv_timeout(&mut buf, Duration::from_secs(5))
            .unwrap()
            .expect("the dump's first part");
        let first = split(&buf[..n]).next().unwrap().unwrap();
        assert_eq!(first.seq, 42);
        // A buffer too small for the datagram gets what fits, never more.
        l.send(&getlink_dump(43)).unwrap();
        let mut small = [0u8; 8];
        let n = l.recv_timeout(&mut small, Duration::from_secs(5)).unwrap();
        assert!(n.is_some_and(|n| n <= 8));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(Duration::from_secs(30)), "30 s");
        assert_eq!(duration_text(Duration::from_millis(250)), "250 ms");
    }
}
