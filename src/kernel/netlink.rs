//! Request/ACK plumbing for NETLINK_ROUTE over a blocking socket. The crates own
//! the wire format of messages; this file owns sequence numbers, batching,
//! multipart dumps and the kernel's extended-ack error text.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;
use std::io;
use std::time::Duration;

use super::nlsock::{self, DumpEnd, NLMSG_DONE, NLMSG_ERROR, NlSocket};

/// Requests per send: the ACKs of one send must fit the receive buffer.
const BATCH_MAX_MSGS: usize = 256;
const BATCH_MAX_BYTES: usize = 60 * 1024;
/// A reply that never comes must not hang nslab.
const TIMEOUT: Duration = Duration::from_secs(30);

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

    /// A reply came that nslab could not read.
    pub fn not_understood(what: impl Into<String>) -> Self {
        NlError {
            what: what.into(),
            errno: libc::EIO,
            ext: Some("reply not understood".into()),
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
    sock: NlSocket,
}

impl Rtnl {
    /// A socket in the namespace of the calling thread; it stays bound to that
    /// namespace wherever it is used from later.
    pub fn new() -> io::Result<Rtnl> {
        let mut sock = NlSocket::open(NETLINK_ROUTE, TIMEOUT)?;
        sock.set_strict_check()?;
        sock.set_rcvbuf(1 << 20);
        Ok(Rtnl { sock })
    }

    /// Serialize `msg` with sequence number `seq`, 4-byte aligned, onto `out`.
    fn serialize(msg: RouteNetlinkMessage, flags: u16, seq: u32, out: &mut Vec<u8>) {
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let start = out.len();
        out.resize(start + m.buffer_len(), 0);
        m.serialize(&mut out[start..]);
        // Messages in one datagram are 4-byte aligned.
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    /// Give the receive buffer back to the thread.
    fn release(&mut self) {
        self.sock.release();
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
            // Numbers for as many requests as may go in this send; those left
            // unused (the byte limit came first) are skipped.
            let first_seq = self.sock.take_seqs(it.len().min(BATCH_MAX_MSGS));
            let mut whats: Vec<String> = Vec::new();
            while let Some(r) =
                it.next_if(|_| whats.len() < BATCH_MAX_MSGS && out.len() < BATCH_MAX_BYTES)
            {
                let seq = first_seq.wrapping_add(whats.len() as u32);
                Self::serialize(r.msg, r.flags | NLM_F_ACK, seq, &mut out);
                whats.push(r.what);
            }
            let first = results.len();
            results.extend(whats.iter().map(|_| Ok(())));
            if let Err(e) = self.sock.send(&out) {
                for (i, what) in whats.iter().enumerate() {
                    results[first + i] = Err(NlError::io(
                        what.clone(),
                        io::Error::new(e.kind(), e.to_string()),
                    ));
                }
                continue;
            }
            let mut acked = vec![false; whats.len()];
            let mut left = whats.len();
            while left > 0 {
                let buf = match self.sock.recv(false) {
                    Ok(b) => b.unwrap_or_default(),
                    Err(e) => {
                        for (i, what) in whats.iter().enumerate() {
                            if !acked[i] {
                                results[first + i] = Err(NlError::io(
                                    what.clone(),
                                    io::Error::new(e.kind(), e.to_string()),
                                ));
                            }
                        }
                        break;
                    }
                };
                for ack in parse_acks(buf) {
                    let Some(i) = nlsock::seq_index(first_seq, whats.len(), ack.seq) else {
                        continue;
                    };
                    if std::mem::replace(&mut acked[i], true) {
                        continue;
                    }
                    left -= 1;
                    if ack.code != 0 {
                        results[first + i] = Err(NlError {
                            what: whats[i].clone(),
                            errno: -ack.code,
                            ext: ack.ext,
                        });
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
        self.query_raw_inner(
            msg,
            what,
            |m| match NetlinkMessage::<RouteNetlinkMessage>::deserialize(m) {
                Ok(NetlinkMessage {
                    payload: NetlinkPayload::InnerMessage(i),
                    ..
                }) => Some(i),
                _ => None,
            },
        )?
        .ok_or_else(|| NlError::not_understood(what))
    }

    /// A request answered by one message, handed to `f` unparsed (whole
    /// message, header included); None when `f` makes nothing of it.
    pub fn query_raw<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
        f: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, NlError> {
        let r = self.query_raw_inner(msg, what, f);
        self.release();
        r
    }

    fn query_raw_inner<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
        f: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, NlError> {
        let mut out = Vec::new();
        let seq = self.sock.take_seqs(1);
        Self::serialize(msg, 0, seq, &mut out);
        self.sock.send(&out).map_err(|e| NlError::io(what, e))?;
        loop {
            let buf = self
                .sock
                .recv(false)
                .map_err(|e| NlError::io(what, e))?
                .unwrap_or_default();
            for m in messages_of(buf) {
                if m.seq != seq {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    let code = nlsock::parse_error(m.bytes)
                        .map_or((-libc::EIO, None), |a| (a.code, a.ext));
                    return Err(NlError {
                        what: what.into(),
                        errno: if code.0 == 0 { libc::EIO } else { -code.0 },
                        ext: code.1,
                    });
                }
                return Ok(f(m.bytes));
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

    /// Dump until the kernel answers with one consistent state: a dump it marked
    /// interrupted (NLM_F_DUMP_INTR) is redone, a bounded number of times.
    fn dump_inner<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
        mut f: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>, NlError> {
        let mut attempt = 1;
        loop {
            let (msgs, interrupted) = self.dump_once(msg.clone(), what, &mut f)?;
            match nlsock::dump_end(interrupted, attempt) {
                DumpEnd::Done => return Ok(msgs),
                DumpEnd::Retry => attempt += 1,
                DumpEnd::GiveUp => {
                    return Err(NlError {
                        what: what.into(),
                        errno: libc::EINTR,
                        ext: Some(nlsock::dump_interrupted_text()),
                    });
                }
            }
        }
    }

    /// One dump: its messages, and whether the kernel marked it interrupted.
    fn dump_once<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
        f: &mut impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<(Vec<T>, bool), NlError> {
        let mut out = Vec::new();
        let seq = self.sock.take_seqs(1);
        Self::serialize(msg, NLM_F_DUMP, seq, &mut out);
        self.sock.send(&out).map_err(|e| NlError::io(what, e))?;
        let mut msgs = Vec::new();
        let mut interrupted = false;
        loop {
            let buf = self
                .sock
                .recv(false)
                .map_err(|e| NlError::io(what, e))?
                .unwrap_or_default();
            for m in messages_of(buf) {
                if m.seq != seq {
                    continue;
                }
                interrupted |= nlsock::dump_interrupted(m.flags);
                match m.ty {
                    NLMSG_DONE => return Ok((msgs, interrupted)),
                    NLMSG_ERROR => {
                        let (code, ext) = nlsock::parse_error(m.bytes)
                            .map_or((-libc::EIO, None), |a| (a.code, a.ext));
                        if code != 0 {
                            return Err(NlError {
                                what: what.into(),
                                errno: -code,
                                ext,
                            });
                        }
                    }
                    _ => msgs.extend(f(m.bytes)),
                }
            }
        }
    }
}

/// The messages of one datagram: (type, sequence number, the whole message),
/// stopping at the first malformed length.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    messages_of(buf).map(|m| (m.ty, m.seq, m.bytes))
}

fn messages_of(buf: &[u8]) -> impl Iterator<Item = nlsock::RawMsg<'_>> {
    nlsock::split(buf).map_while(Result::ok)
}

/// Every NLMSG_ERROR (ACK or error) in a datagram.
fn parse_acks(buf: &[u8]) -> impl Iterator<Item = nlsock::Ack> + '_ {
    messages_of(buf)
        .filter(|m| m.ty == NLMSG_ERROR)
        .filter_map(|m| nlsock::parse_error(m.bytes))
}

/// Everything nslab decodes from an rtnetlink reply datagram, as its batch,
/// query and dump readers do: ACKs with their extended-ack text, links with
/// our own parser, other messages through the crate and our route reduction.
/// For the fuzz target `fuzz/fuzz_targets/netlink.rs` only.
#[doc(hidden)]
pub fn fuzz_reply(buf: &[u8]) {
    let _ = parse_acks(buf).count();
    for (_, _, m) in messages(buf) {
        let _ = nlsock::parse_error(m);
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

    // ACK parsing, extended-ack text and splitting are tested in `nlsock`.

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
