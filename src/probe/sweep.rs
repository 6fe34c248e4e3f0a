//! Many echo requests from one namespace at once: one raw socket per family,
//! every destination pinged together, those without a reply tried again (up to
//! `attempts` times, with growing timeouts) before they count as unreachable.
//! A probe that cannot run (no socket, EPERM, ENOBUFS that persists) is an
//! error, never an unreachable destination.

use super::icmp::{
    Parsed, PingOptions, build_echo_request, make_payload, next_ident, open_socket, parse_v4,
    parse_v6, receive, send_echo,
};
use serde::Serialize;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// What probing one address found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Reply,
    NoReply,
    /// The probe itself failed: says nothing about the network.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Tries before an address is unreachable.
    pub attempts: u32,
    /// Wait for replies of the first try; each retry waits twice as long.
    pub timeout: Duration,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            attempts: 3,
            timeout: Duration::from_millis(400),
        }
    }
}

/// Errors of a send that describe the network (no route, a router said no),
/// not the probe.
fn network_errno(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETUNREACH)
            | Some(libc::EHOSTUNREACH)
            | Some(libc::EHOSTDOWN)
            | Some(libc::ECONNREFUSED)
            | Some(libc::ENONET)
            | Some(libc::EADDRNOTAVAIL)
    )
}

/// Ping every address of `dsts` from the namespace of the calling thread.
/// One outcome per address, in order.
pub fn sweep(dsts: &[IpAddr], opts: &SweepOptions) -> Vec<Outcome> {
    let mut out = vec![Outcome::NoReply; dsts.len()];
    let mut socks: [Option<io::Result<OwnedFd>>; 2] = [None, None];
    let ident = next_ident();
    let payload = make_payload(ident, 56);
    let mut seq: u16 = 0;
    let mut buf = vec![0u8; 4096];
    // The last error of a probe that could not be sent, per address.
    let mut last_err: Vec<Option<String>> = vec![None; dsts.len()];
    let mut timeout = opts.timeout;
    for attempt in 0..opts.attempts.max(1) {
        let last = attempt + 1 == opts.attempts.max(1);
        let todo: Vec<usize> = (0..dsts.len())
            .filter(|&i| out[i] == Outcome::NoReply)
            .collect();
        if todo.is_empty() {
            break;
        }
        let mut pending: HashMap<(bool, u16), usize> = HashMap::new();
        for &i in &todo {
            let dst = dsts[i];
            let fam = usize::from(dst.is_ipv6());
            let sock = socks[fam].get_or_insert_with(|| open_socket(dst, &PingOptions::default()));
            let fd = match sock {
                Ok(fd) => fd,
                Err(e) => {
                    out[i] = Outcome::Error(format!("open a raw ICMP socket: {e}"));
                    continue;
                }
            };
            seq = seq.wrapping_add(1);
            let packet = build_echo_request(dst.is_ipv6(), ident, seq, &payload);
            match send_echo(fd.as_fd(), dst, &packet) {
                Ok(()) => {
                    pending.insert((dst.is_ipv6(), seq), i);
                    last_err[i] = None;
                }
                Err(e) if network_errno(&e) => last_err[i] = None,
                Err(e) => {
                    // ENOBUFS (a queue not active yet), EPERM...: try again; an
                    // error only if it persists.
                    last_err[i] = Some(format!("send to {dst}: {e}"));
                }
            }
        }
        let until = Instant::now() + timeout;
        while !pending.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Wait on whichever sockets are open; poll both in turn briefly.
            let open: Vec<(bool, &OwnedFd)> = socks
                .iter()
                .enumerate()
                .filter_map(|(f, s)| match s {
                    Some(Ok(fd)) => Some((f == 1, fd)),
                    _ => None,
                })
                .collect();
            let mut pfds: Vec<libc::pollfd> = open
                .iter()
                .map(|(_, fd)| libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(*fd),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            let ms = left.as_millis().min(i32::MAX as u128) as i32 + 1;
            // SAFETY: a valid array of pollfd for the call.
            let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
            if r <= 0 {
                continue;
            }
            for ((v6, fd), p) in open.iter().zip(&pfds) {
                if p.revents == 0 {
                    continue;
                }
                while let Ok(Some(got)) = receive(fd.as_fd(), &mut buf, *v6) {
                    let packet = &buf[..got.len];
                    let parsed = match (*v6, got.from) {
                        (false, _) => parse_v4(packet),
                        (true, Some(IpAddr::V6(src))) => parse_v6(packet, src, got.hop_limit),
                        _ => None,
                    };
                    match parsed {
                        Some(Parsed::EchoReply {
                            ident: id,
                            seq: s,
                            data,
                            ..
                        }) if id == ident && data == payload.as_slice() => {
                            if let Some(i) = pending.remove(&(*v6, s)) {
                                out[i] = Outcome::Reply;
                            }
                        }
                        Some(Parsed::Error {
                            ident: id, seq: s, ..
                        }) if id == ident => {
                            // A router or the destination said no: no reply this time.
                            pending.remove(&(*v6, s));
                        }
                        _ => {}
                    }
                }
            }
        }
        if last {
            for i in 0..dsts.len() {
                if out[i] == Outcome::NoReply
                    && let Some(e) = last_err[i].take()
                {
                    out[i] = Outcome::Error(e);
                }
            }
        }
        timeout = timeout.saturating_mul(2);
    }
    out
}
