//! Many echo requests from one namespace at once: one raw socket per family,
//! every destination pinged together, those without a reply tried again (up to
//! `attempts` times, with growing timeouts) before they count as unreachable.
//! A probe that cannot run (no socket, EPERM, ENOBUFS that persists) is an
//! error, never an unreachable destination.

use super::icmp::{
    Parsed, PingOptions, build_echo_request, make_payload, next_ident, open_socket, parse_v4,
    parse_v6, receive, send_echo, strip_os_error,
};
use serde::Serialize;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
    /// ICMP payload bytes, sent with DF set (`reach: size:`); None: 56 bytes,
    /// and the kernel may fragment.
    pub size: Option<usize>,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            attempts: 3,
            timeout: Duration::from_millis(250),
            size: None,
        }
    }
}

/// Payload bytes of a probe without `size`.
pub const DEFAULT_SIZE: usize = 56;

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
/// One outcome per address, in order. See [`sweep_window`].
pub fn sweep(dsts: &[IpAddr], opts: &SweepOptions) -> Vec<Outcome> {
    sweep_window(dsts, opts, usize::MAX, &mut |n, _| n, &mut |_| {})
}

/// [`sweep`], and per address the kernel's words for the last send that
/// failed when the outcome is [`Outcome::NoReply`] (e.g. `sendmsg: Message
/// too long` for a probe with `size` larger than the MTU).
pub fn sweep_detailed(dsts: &[IpAddr], opts: &SweepOptions) -> Vec<(Outcome, Option<String>)> {
    let (out, sends) = sweep_inner(dsts, opts, usize::MAX, &mut |n, _| n, &mut |_| {});
    out.into_iter().zip(sends).collect()
}

/// Wait for a try: the first `timeout`, each retry twice as long.
pub fn attempt_timeout(opts: &SweepOptions, attempt: u32) -> Duration {
    opts.timeout.saturating_mul(1 << attempt.min(8))
}

/// How soon a try whose send found no route is repeated.
const NO_ROUTE_RETRY: Duration = Duration::from_millis(50);

struct Active {
    idx: usize,
    /// Tries sent (or failed to send) so far.
    tries: u32,
    deadline: Instant,
    /// Sequence numbers of the tries sent: a late reply to an earlier try counts.
    seqs: Vec<u16>,
}

/// [`sweep`] with at most `window` addresses in flight: `before_start(n, idle)`
/// is asked before up to `n` addresses start and says how many may (to pace
/// them against a budget shared with other sweeps; when `idle`, nothing of this
/// sweep is in flight and it must grant at least one), and `done(indexes)` gets
/// addresses that are finished (to forget what they taught the neighbour table
/// and give their budget back).
pub fn sweep_window(
    dsts: &[IpAddr],
    opts: &SweepOptions,
    window: usize,
    before_start: &mut dyn FnMut(usize, bool) -> usize,
    done: &mut dyn FnMut(&[usize]),
) -> Vec<Outcome> {
    sweep_inner(dsts, opts, window, before_start, done).0
}

fn sweep_inner(
    dsts: &[IpAddr],
    opts: &SweepOptions,
    window: usize,
    before_start: &mut dyn FnMut(usize, bool) -> usize,
    done: &mut dyn FnMut(&[usize]),
) -> (Vec<Outcome>, Vec<Option<String>>) {
    let attempts = opts.attempts.max(1);
    let window = window.max(1);
    let mut sw = Sweep::new(dsts, opts);
    let mut next = 0usize;
    let mut active: Vec<Active> = Vec::new();
    let mut finished: Vec<usize> = Vec::new();
    loop {
        // Fill the window.
        let room = window.saturating_sub(active.len()).min(dsts.len() - next);
        let room = if room > 0 {
            before_start(room, active.is_empty()).min(room)
        } else {
            0
        };
        if room > 0 {
            for _ in 0..room {
                let mut a = Active {
                    idx: next,
                    tries: 0,
                    deadline: Instant::now(),
                    seqs: Vec::new(),
                };
                next += 1;
                if sw.send(&mut a) {
                    active.push(a);
                } else {
                    finished.push(a.idx);
                }
            }
        }
        if active.is_empty() {
            if !finished.is_empty() {
                done(&finished);
                finished.clear();
            }
            if next >= dsts.len() {
                break;
            }
            continue;
        }
        // Wait for replies until the earliest deadline.
        let until = active.iter().map(|a| a.deadline).min().expect("active");
        sw.receive_replies(&active, until);
        sw.finish_or_retry(&mut active, &mut finished, attempts);
        if finished.len() >= window.min(8) {
            done(&finished);
            finished.clear();
        }
    }
    let mut out = sw.out;
    let mut send_err = sw.send_err;
    for (o, e) in out.iter_mut().zip(send_err.iter_mut()) {
        if *o != Outcome::NoReply {
            *e = None;
        }
    }
    (out, send_err)
}

/// One sweep's sockets, probe identity and what it found so far.
struct Sweep<'a> {
    dsts: &'a [IpAddr],
    opts: &'a SweepOptions,
    socks: [Option<io::Result<OwnedFd>>; 2],
    ident: u16,
    sized: bool,
    payload: Vec<u8>,
    ping_opts: PingOptions,
    seq: u16,
    buf: Vec<u8>,
    out: Vec<Outcome>,
    last_err: Vec<Option<String>>,
    // With `size`, a send the kernel refuses for the packet's size is the
    // answer, not a broken probe: kept to be shown as it is.
    send_err: Vec<Option<String>>,
}

impl<'a> Sweep<'a> {
    fn new(dsts: &'a [IpAddr], opts: &'a SweepOptions) -> Self {
        let ident = next_ident();
        let sized = opts.size.is_some();
        let size = opts.size.unwrap_or(DEFAULT_SIZE);
        Sweep {
            dsts,
            opts,
            socks: [None, None],
            ident,
            sized,
            payload: make_payload(ident, size),
            ping_opts: PingOptions {
                dont_fragment: sized,
                ..PingOptions::default()
            },
            seq: 0,
            // A reply carries the whole payload (and IPv4 its header); a bigger
            // datagram than the buffer would be dropped as truncated.
            buf: vec![0u8; (size + 128).max(4096)],
            out: vec![Outcome::NoReply; dsts.len()],
            last_err: vec![None; dsts.len()],
            send_err: vec![None; dsts.len()],
        }
    }

    /// Send one try for `a`; false when the address is finished already (no socket).
    fn send(&mut self, a: &mut Active) -> bool {
        let dst = self.dsts[a.idx];
        let fam = usize::from(dst.is_ipv6());
        let ping_opts = &self.ping_opts;
        let sock = self.socks[fam].get_or_insert_with(|| open_socket(dst, ping_opts));
        let fd = match sock {
            Ok(fd) => fd,
            Err(e) => {
                self.out[a.idx] = Outcome::Error(format!("open a raw ICMP socket: {e}"));
                return false;
            }
        };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let packet = build_echo_request(dst.is_ipv6(), self.ident, seq, &self.payload);
        match send_echo(fd.as_fd(), dst, &packet) {
            Ok(()) => {
                a.seqs.push(seq);
                self.last_err[a.idx] = None;
                self.send_err[a.idx] = None;
            }
            Err(e) if self.sized && e.raw_os_error() == Some(libc::EMSGSIZE) => {
                // Larger than the MTU on the way out, DF set: no reply can
                // come, and the next try fails alike.
                self.last_err[a.idx] = None;
                self.send_err[a.idx] = Some(format!("sendmsg: {}", strip_os_error(&e)));
                a.deadline = Instant::now() + NO_ROUTE_RETRY;
                a.tries += 1;
                return true;
            }
            Err(e) if self.sized && e.raw_os_error() == Some(libc::ENOBUFS) => {
                // A veth drops what does not fit its far end's MTU and the
                // send reports ENOBUFS; tried again like any ENOBUFS, but if
                // it persists it is the size's doing, not the probe's.
                self.send_err[a.idx] = Some(format!("sendmsg: {}", strip_os_error(&e)));
            }
            Err(e) if network_errno(&e) => {
                // No route: no reply can come, and no neighbour entry was
                // made; the next try need not wait long.
                self.last_err[a.idx] = None;
                a.deadline = Instant::now() + NO_ROUTE_RETRY;
                a.tries += 1;
                return true;
            }
            // ENOBUFS (a queue not active yet), EPERM...: tried again; an error
            // only if it persists.
            Err(e) => self.last_err[a.idx] = Some(format!("send to {dst}: {e}")),
        }
        a.deadline = Instant::now() + attempt_timeout(self.opts, a.tries);
        a.tries += 1;
        true
    }

    /// Wait for replies until `until`, and mark the addresses that answered.
    fn receive_replies(&mut self, active: &[Active], until: Instant) {
        let left = until.saturating_duration_since(Instant::now());
        let open: Vec<(bool, &OwnedFd)> = self
            .socks
            .iter()
            .enumerate()
            .filter_map(|(f, s)| match s {
                Some(Ok(fd)) => Some((f == 1, fd)),
                _ => None,
            })
            .collect();
        let fds: Vec<BorrowedFd<'_>> = open.iter().map(|(_, fd)| fd.as_fd()).collect();
        let ready = crate::kernel::poll::wait_readable(&fds, left).unwrap_or_default();
        if !ready.contains(&true) {
            return;
        }
        for ((v6, fd), r) in open.iter().zip(&ready) {
            if !r {
                continue;
            }
            while let Ok(Some(got)) = receive(fd.as_fd(), &mut self.buf, *v6) {
                let packet = &self.buf[..got.len];
                let parsed = match (*v6, got.from) {
                    (false, _) => parse_v4(packet),
                    (true, Some(IpAddr::V6(src))) => parse_v6(packet, src, got.hop_limit),
                    _ => None,
                };
                // ICMP errors (a router or the destination said no) are
                // no reply: the try times out and is retried.
                let s = match parsed {
                    Some(Parsed::EchoReply {
                        ident: id,
                        seq: s,
                        data,
                        ..
                    }) if id == self.ident && data == self.payload.as_slice() => s,
                    _ => continue,
                };
                if let Some(a) = active
                    .iter()
                    .find(|a| a.seqs.contains(&s) && self.dsts[a.idx].is_ipv6() == *v6)
                {
                    self.out[a.idx] = Outcome::Reply;
                }
            }
        }
    }

    /// Finish or retry what is answered or past its deadline.
    fn finish_or_retry(
        &mut self,
        active: &mut Vec<Active>,
        finished: &mut Vec<usize>,
        attempts: u32,
    ) {
        let now = Instant::now();
        let mut i = 0;
        while i < active.len() {
            let a = &mut active[i];
            let answered = self.out[a.idx] == Outcome::Reply;
            if !answered && now < a.deadline {
                i += 1;
                continue;
            }
            if !answered && a.tries < attempts {
                if !self.send(a) {
                    finished.push(active.swap_remove(i).idx);
                    continue;
                }
                i += 1;
                continue;
            }
            let a = active.swap_remove(i);
            if self.out[a.idx] == Outcome::NoReply
                && let Some(e) = self.last_err[a.idx].take()
            {
                self.out[a.idx] = Outcome::Error(e);
            }
            finished.push(a.idx);
        }
    }
}
