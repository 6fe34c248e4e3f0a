//! Request/ACK plumbing for NETLINK_ROUTE over a blocking socket. The crates own
//! the wire format of messages; this file owns sequence numbers, batching,
//! multipart dumps and the kernel's extended-ack error text.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::io;
use std::os::fd::AsRawFd;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Requests per send: the ACKs of one send must fit the receive buffer.
const BATCH_MAX_MSGS: usize = 256;
const BATCH_MAX_BYTES: usize = 60 * 1024;

/// Receive buffer size: dumps come in datagrams of up to 32 KiB.
const RECV_BUF: usize = 1 << 16;

thread_local! {
    /// One receive buffer per thread, lent to a socket while it waits for replies:
    /// a lab of 1000 namespaces holds 1000 sockets, not 1000 buffers.
    static BUF: std::cell::Cell<Option<Vec<u8>>> = const { std::cell::Cell::new(None) };
}

/// A failed request: what we tried, the errno, and the kernel's own words if any.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {}{}", errno_text(*errno), ext.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
pub struct NlError {
    pub what: String,
    pub errno: i32,
    pub ext: Option<String>,
}

pub fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno)
        .to_string()
        .replace(&format!(" (os error {errno})"), "")
}

impl NlError {
    pub fn io(what: impl Into<String>, e: io::Error) -> Self {
        NlError {
            what: what.into(),
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            ext: None,
        }
    }
}

/// One request of a batch.
pub struct Req {
    pub msg: RouteNetlinkMessage,
    /// NLM_F_CREATE | NLM_F_EXCL etc.; REQUEST and ACK are added.
    pub flags: u16,
    pub what: String,
}

pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// A socket in the namespace of the calling thread; it stays bound to that
    /// namespace wherever it is used from later.
    pub fn new() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.set_ext_ack(true)?;
        // Errors then echo only the request's header, not the whole request.
        sock.set_cap_ack(true)?;
        sock.set_netlink_get_strict_chk(true)?;
        let _ = sock.set_rx_buf_sz(1 << 20);
        sock.connect(&SocketAddr::new(0, 0))?;
        // A reply that never comes must not hang nslab.
        let tv = libc::timeval {
            tv_sec: 30,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a valid timeval of the right size on our own fd.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        Ok(Rtnl {
            sock,
            seq: 1,
            buf: Vec::new(),
        })
    }

    fn serialize(&mut self, msg: RouteNetlinkMessage, flags: u16, out: &mut Vec<u8>) -> u32 {
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        self.seq = self.seq.wrapping_add(1).max(1);
        header.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let start = out.len();
        out.resize(start + m.buffer_len(), 0);
        m.serialize(&mut out[start..]);
        // Messages in one datagram are 4-byte aligned.
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        self.seq
    }

    fn recv(&mut self) -> io::Result<usize> {
        if self.buf.is_empty() {
            self.buf = BUF
                .with(|b| b.take())
                .unwrap_or_else(|| vec![0u8; RECV_BUF]);
        }
        // SAFETY: recv into our own buffer of the given length.
        let n = unsafe {
            libc::recv(
                self.sock.as_raw_fd(),
                self.buf.as_mut_ptr() as *mut libc::c_void,
                self.buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer from the kernel within 30 s",
                ));
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    /// Give the receive buffer back to the thread.
    fn release(&mut self) {
        if !self.buf.is_empty() {
            let b = std::mem::take(&mut self.buf);
            BUF.with(|c| c.set(Some(b)));
        }
    }

    /// Send one request and wait for its ACK.
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: impl Into<String>,
    ) -> Result<(), NlError> {
        let mut r = self.batch(vec![Req {
            msg,
            flags,
            what: what.into(),
        }]);
        r.pop().unwrap_or(Ok(()))
    }

    /// Send many requests, several per datagram, and return one result per request
    /// in order. The kernel handles them in order; a failure does not stop the rest.
    pub fn batch(&mut self, reqs: Vec<Req>) -> Vec<Result<(), NlError>> {
        let r = self.batch_inner(reqs);
        self.release();
        r
    }

    fn batch_inner(&mut self, reqs: Vec<Req>) -> Vec<Result<(), NlError>> {
        let mut results = Vec::with_capacity(reqs.len());
        let mut it = reqs.into_iter().peekable();
        while it.peek().is_some() {
            let mut out = Vec::with_capacity(BATCH_MAX_BYTES + 4096);
            let mut pending: Vec<(u32, String)> = Vec::new();
            while let Some(r) =
                it.next_if(|_| pending.len() < BATCH_MAX_MSGS && out.len() < BATCH_MAX_BYTES)
            {
                let seq = self.serialize(r.msg, r.flags | NLM_F_ACK, &mut out);
                pending.push((seq, r.what));
            }
            let first = results.len();
            results.extend(pending.iter().map(|_| Ok(())));
            if let Err(e) = self.sock.send(&out, 0) {
                for (i, (_, what)) in pending.iter().enumerate() {
                    results[first + i] = Err(NlError::io(
                        what.clone(),
                        io::Error::new(e.kind(), e.to_string()),
                    ));
                }
                continue;
            }
            let mut acked = 0usize;
            while acked < pending.len() {
                let n = match self.recv() {
                    Ok(n) => n,
                    Err(e) => {
                        for (i, (_, what)) in pending.iter().enumerate().skip(acked) {
                            results[first + i] = Err(NlError::io(
                                what.clone(),
                                io::Error::new(e.kind(), e.to_string()),
                            ));
                        }
                        break;
                    }
                };
                for (seq, code, ext) in parse_acks(&self.buf[..n]) {
                    if let Some(i) = pending.iter().position(|(s, _)| *s == seq) {
                        acked += 1;
                        if code != 0 {
                            results[first + i] = Err(NlError {
                                what: pending[i].1.clone(),
                                errno: -code,
                                ext,
                            });
                        }
                    }
                }
            }
        }
        results
    }

    /// A request answered by one message (e.g. RTM_GETROUTE for one address, as
    /// `ip route get` does), or the kernel's error.
    pub fn query(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<RouteNetlinkMessage, NlError> {
        let r = self.query_inner(msg, what);
        self.release();
        r
    }

    fn query_inner(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<RouteNetlinkMessage, NlError> {
        let mut out = Vec::new();
        let seq = self.serialize(msg, 0, &mut out);
        self.sock.send(&out, 0).map_err(|e| NlError::io(what, e))?;
        loop {
            let n = self.recv().map_err(|e| NlError::io(what, e))?;
            for (ty, mseq, m) in messages(&self.buf[..n]) {
                if mseq != seq {
                    continue;
                }
                if ty == NLMSG_ERROR {
                    let (_, code, ext) = parse_error(m).unwrap_or((seq, -libc::EIO, None));
                    return Err(NlError {
                        what: what.into(),
                        errno: if code == 0 { libc::EIO } else { -code },
                        ext,
                    });
                }
                if let Ok(NetlinkMessage {
                    payload: NetlinkPayload::InnerMessage(i),
                    ..
                }) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(m)
                {
                    return Ok(i);
                }
            }
        }
    }

    /// A dump request (NLM_F_DUMP): every reply message until NLMSG_DONE.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        // A message the crate cannot parse (new kernel attribute layouts) is
        // skipped rather than failing the whole dump.
        self.dump_raw(
            msg,
            what,
            |m| match NetlinkMessage::<RouteNetlinkMessage>::deserialize(m) {
                Ok(NetlinkMessage {
                    payload: NetlinkPayload::InnerMessage(i),
                    ..
                }) => Some(i),
                _ => None,
            },
        )
    }

    /// A dump whose replies (whole messages, header included) go through `f`
    /// unparsed: for dumps big enough that a full parse shows.
    pub fn dump_raw<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
        f: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>, NlError> {
        let r = self.dump_inner(msg, what, f);
        self.release();
        r
    }

    fn dump_inner<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
        mut f: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>, NlError> {
        let mut out = Vec::new();
        let seq = self.serialize(msg, NLM_F_DUMP, &mut out);
        self.sock.send(&out, 0).map_err(|e| NlError::io(what, e))?;
        let mut msgs = Vec::new();
        loop {
            let n = self.recv().map_err(|e| NlError::io(what, e))?;
            for (ty, mseq, m) in messages(&self.buf[..n]) {
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(msgs),
                    NLMSG_ERROR => {
                        let (_, code, ext) = parse_error(m).unwrap_or((seq, -libc::EIO, None));
                        if code != 0 {
                            return Err(NlError {
                                what: what.into(),
                                errno: -code,
                                ext,
                            });
                        }
                    }
                    _ => msgs.extend(f(m)),
                }
            }
        }
    }
}

/// The messages of one datagram: (type, sequence number, the whole message),
/// stopping at the first malformed length.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let b = buf.get(off..)?;
        if b.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < 16 || len > b.len() {
            return None;
        }
        off += (len + 3) & !3;
        Some((
            u16::from_ne_bytes([b[4], b[5]]),
            u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            &b[..len],
        ))
    })
}

/// (seq, code, extended-ack text) of every NLMSG_ERROR in a datagram.
fn parse_acks(buf: &[u8]) -> Vec<(u32, i32, Option<String>)> {
    messages(buf)
        .filter(|(ty, _, _)| *ty == NLMSG_ERROR)
        .filter_map(|(_, _, m)| parse_error(m))
        .collect()
}

/// Parse one NLMSG_ERROR: code, and the NLMSGERR_ATTR_MSG text when the kernel
/// appended TLVs (NLM_F_ACK_TLVS). The crate does not parse these, so we do.
fn parse_error(m: &[u8]) -> Option<(u32, i32, Option<String>)> {
    if m.len() < 20 {
        return None;
    }
    let flags = u16::from_ne_bytes([m[6], m[7]]);
    let seq = u32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
    let code = i32::from_ne_bytes([m[16], m[17], m[18], m[19]]);
    let mut ext = None;
    if flags & NLM_F_ACK_TLVS != 0 && m.len() >= 36 {
        // After the code: the echoed request header (16 bytes when capped, else the
        // whole echoed request), then TLVs.
        let echoed = if flags & NLM_F_CAPPED != 0 {
            16
        } else {
            u32::from_ne_bytes([m[20], m[21], m[22], m[23]]) as usize
        };
        let mut off = 20 + ((echoed + 3) & !3);
        while off + 4 <= m.len() {
            let l = u16::from_ne_bytes([m[off], m[off + 1]]) as usize;
            let t = u16::from_ne_bytes([m[off + 2], m[off + 3]]) & 0x3fff;
            if l < 4 || off + l > m.len() {
                break;
            }
            if t == NLMSGERR_ATTR_MSG {
                let s = &m[off + 4..off + l];
                let s = s.split(|c| *c == 0).next().unwrap_or(s);
                ext = Some(String::from_utf8_lossy(s).into_owned());
            }
            off += (l + 3) & !3;
        }
    }
    Some((seq, code, ext))
}

/// Everything nslab decodes from an rtnetlink reply datagram, as its batch,
/// query and dump readers do: ACKs with their extended-ack text, links with
/// our own parser, other messages through the crate and our route reduction.
/// For the fuzz target `fuzz/fuzz_targets/netlink.rs` only.
#[doc(hidden)]
pub fn fuzz_reply(buf: &[u8]) {
    let _ = parse_acks(buf);
    for (_, _, m) in messages(buf) {
        let _ = parse_error(m);
        let _ = super::observe::parse_link(m);
        if let Ok(NetlinkMessage {
            payload: NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)),
            ..
        }) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(m)
        {
            let _ = super::observe::parse_route(&r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_msg(seq: u32, code: i32, text: Option<&str>) -> Vec<u8> {
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

    #[test]
    fn parses_acks_and_extended_ack_text() {
        let mut buf = error_msg(7, 0, None);
        buf.extend(error_msg(
            8,
            -libc::EEXIST,
            Some("Nexthop has invalid gateway"),
        ));
        let acks = parse_acks(&buf);
        assert_eq!(acks.len(), 2);
        assert_eq!(acks[0], (7, 0, None));
        assert_eq!(
            acks[1],
            (8, -libc::EEXIST, Some("Nexthop has invalid gateway".into()))
        );
    }

    #[test]
    fn truncated_acks_do_not_panic() {
        let buf = error_msg(9, -1, Some("x"));
        for n in 0..buf.len() {
            let _ = parse_acks(&buf[..n]);
        }
    }

    #[test]
    fn error_text_names_the_step() {
        let e = NlError {
            what: "create veth bveth in black".into(),
            errno: libc::EEXIST,
            ext: Some("boom".into()),
        };
        assert_eq!(
            e.to_string(),
            "create veth bveth in black: File exists (boom)"
        );
    }

    proptest::proptest! {
        /// What the fuzz target `netlink` runs, on random datagrams and on
        /// random bytes behind a plausible header (the fuzzer goes much further).
        #[test]
        fn reply_decoding_never_panics(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            ty in proptest::prelude::prop_oneof![
                proptest::prelude::Just(2u16), proptest::prelude::Just(16u16), proptest::prelude::Just(24u16),
                proptest::prelude::Just(0x0a00u16 | 3), proptest::prelude::Just(0x0a00u16 | 6)],
        ) {
            fuzz_reply(&body);
            crate::kernel::nft::fuzz_reply(&body);
            let mut m = ((body.len() + 16) as u32).to_ne_bytes().to_vec();
            m.extend_from_slice(&ty.to_ne_bytes());
            m.extend_from_slice(&[0; 10]);
            m.extend_from_slice(&body);
            fuzz_reply(&m);
            crate::kernel::nft::fuzz_reply(&m);
        }
    }
}
