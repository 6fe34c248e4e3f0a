//! Watching a namespace's links go away: a netlink socket subscribed to link
//! events (RTNLGRP_LINK), so `down` waits for the kernel without polling dumps.

use super::nlsock::NlListener;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkAttribute;
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const RTNLGRP_LINK: u32 = 1;
const RTM_DELLINK: u16 = 17;

/// A socket filter (classic BPF, run by the kernel before queueing) that keeps
/// only RTM_DELLINK of family AF_UNSPEC: an interface gone. Tearing down 1000
/// bridge ports sends ~5 other link events per port (7 MB); copying them to us
/// and parsing them kept a CPU busy, and a busy CPU slows the RCU grace periods
/// that each port removal waits for.
fn only_interface_removals(sock: &Socket) -> io::Result<()> {
    // BPF_H loads are big-endian; nlmsg_type is in host order.
    let dellink = u16::from_be_bytes(RTM_DELLINK.to_ne_bytes()) as u32;
    let ins = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let prog = [
        ins(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 4), // nlmsg_type
        ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 3, dellink),
        ins(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 16), // ifi_family
        ins(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, 0),
        ins(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
        ins(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // nix 0.32 has no SO_ATTACH_FILTER option, hence the raw call.
    // SAFETY: fprog points at `prog`, alive for the call; the kernel copies it.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub struct LinkWatch {
    sock: NlListener,
}

/// What waiting ended with.
pub enum Waited {
    AllGone,
    /// Events were lost (the socket overflowed): the caller should look again.
    Overflow(BTreeSet<String>),
    TimedOut(BTreeSet<String>),
}

impl LinkWatch {
    /// Subscribe in the namespace of the calling thread. Subscribe before the
    /// deletions start, so no event is missed.
    pub fn new() -> io::Result<LinkWatch> {
        let sock = NlListener::open(NETLINK_ROUTE, 8 << 20)?;
        // The filter first: no unfiltered event gets queued.
        only_interface_removals(sock.socket())?;
        sock.join(RTNLGRP_LINK)?;
        Ok(LinkWatch { sock })
    }

    /// Wait until every name in `names` has been deleted, or `limit` passed.
    pub fn wait_gone(&mut self, mut names: BTreeSet<String>, limit: Duration) -> Waited {
        let until = Instant::now() + limit;
        let mut buf = vec![0u8; 1 << 16];
        while !names.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::TimedOut(names);
            }
            let wait = left.min(Duration::from_secs(1));
            let n = match self.sock.recv_timeout(&mut buf, wait) {
                Ok(Some(n)) => n,
                Ok(None) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Waited::Overflow(names);
                }
                Err(_) => continue,
            };
            for (_, _, m) in super::netlink::messages(&buf[..n]) {
                // Only interfaces gone get here (the socket filter drops the
                // AF_BRIDGE RTM_DELLINK of a port leaving its bridge, and the rest).
                if let Ok(NetlinkMessage {
                    payload: NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)),
                    ..
                }) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(m)
                {
                    for a in &l.attributes {
                        if let LinkAttribute::IfName(name) = a {
                            names.remove(name);
                        }
                    }
                }
            }
        }
        Waited::AllGone
    }
}
