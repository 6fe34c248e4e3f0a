//! Waiting until a lab passes traffic: every interface that should carry
//! traffic has operstate UP and every bridge port it plugs into forwards.
//!
//! Why operstate: when a link gets its carrier, the kernel's link-watch work
//! (run up to ~1 s later) sets the RFC 2863 operstate (`rfc2863_policy`),
//! activates the device's queue (until then sends fail with ENOBUFS) and only
//! then announces the change; a bridge enables a port (and, without STP, makes it
//! forwarding) on that announcement. So "operstate UP on both veth ends, bridge
//! ports forwarding, the bridge itself UP" is what "passes traffic" looks like
//! from netlink.
//!
//! How: every namespace is dumped once (links, and the AF_BRIDGE view that
//! carries each port's state) on a short-lived socket in no multicast group,
//! from a few threads that move into the namespaces; those not ready are dumped
//! again in rounds until they are. Only a few big namespaces (thousands of
//! bridge ports) are watched on events instead: subscribe, then dump, so no
//! change is missed. See `wait_until` for why no socket per namespace
//! subscribes.
//!
//! Not waited for: interfaces down (administratively), veths without carrier
//! (the other end is down, by the file or at runtime), ports that STP holds
//! blocking, and `lo`.

use super::nlsock::NlListener;
use super::observe::{attrs, c_str, u32_of};
use netlink_sys::protocols::NETLINK_ROUTE;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

const RTNLGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const AF_BRIDGE: u8 = 7;
const IFF_UP: u32 = 1;
const IFF_LOWER_UP: u32 = 1 << 16;
const IF_OPER_UNKNOWN: u8 = 0;
const IF_OPER_UP: u8 = 6;
const BR_STATE_FORWARDING: u8 = 3;
const BR_STATE_BLOCKING: u8 = 4;

/// One namespace to watch: a label for notes, its file, and (host mode) the
/// only interfaces of the lab in it; `None` means every interface but `lo`.
pub struct Space {
    pub label: String,
    pub file: File,
    pub only: Option<BTreeSet<String>>,
}

/// What the kernel says about one interface, from link messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub flags: u32,
    pub operstate: u8,
    pub master: Option<u32>,
    /// The bridge port state (IFLA_PROTINFO / IFLA_BRPORT_STATE), from AF_BRIDGE messages.
    pub port_state: Option<u8>,
}

/// The links of one namespace by index, updated by dumps and events.
#[derive(Debug, Clone, Default)]
pub struct NsLinks {
    pub links: BTreeMap<u32, LinkState>,
}

impl NsLinks {
    /// Apply one netlink message (dump reply or event); others are ignored.
    pub fn apply(&mut self, m: &[u8]) {
        if m.len() < 32 {
            return;
        }
        let ty = u16::from_ne_bytes([m[4], m[5]]);
        if ty != RTM_NEWLINK && ty != RTM_DELLINK {
            return;
        }
        let family = m[16];
        let index = u32::from_ne_bytes([m[20], m[21], m[22], m[23]]);
        let flags = u32::from_ne_bytes([m[24], m[25], m[26], m[27]]);
        if ty == RTM_DELLINK {
            if family == AF_BRIDGE {
                // The port left its bridge; the interface is still there.
                if let Some(l) = self.links.get_mut(&index) {
                    l.port_state = None;
                    l.master = None;
                }
            } else {
                self.links.remove(&index);
            }
            return;
        }
        let l = self.links.entry(index).or_insert_with(|| LinkState {
            index,
            ..Default::default()
        });
        l.flags = flags;
        let mut master = None;
        for (t, v) in attrs(&m[32..]) {
            match t {
                3 => l.name = c_str(v),                              // IFLA_IFNAME
                10 => master = u32_of(v),                            // IFLA_MASTER
                16 => l.operstate = v.first().copied().unwrap_or(0), // IFLA_OPERSTATE
                18 => {
                    // IFLA_LINKINFO / IFLA_INFO_KIND
                    if let Some((_, k)) = attrs(v).find(|(t, _)| *t == 1) {
                        l.kind = Some(c_str(k));
                    }
                }
                12 if family == AF_BRIDGE => {
                    // IFLA_PROTINFO / IFLA_BRPORT_STATE
                    if let Some((_, s)) = attrs(v).find(|(t, _)| *t == 1) {
                        l.port_state = s.first().copied();
                    }
                }
                _ => {}
            }
        }
        l.master = master;
        if family != AF_BRIDGE && master.is_none() {
            l.port_state = None;
        }
    }

    /// Whether some link is a port of a bridge here: only then does readiness
    /// depend on port states, which only the AF_BRIDGE dump carries.
    pub fn has_bridge_port(&self) -> bool {
        self.links.values().any(|l| {
            l.master.is_some_and(|m| {
                self.links
                    .get(&m)
                    .is_some_and(|b| b.kind.as_deref() == Some("bridge"))
            })
        })
    }

    /// What keeps this namespace from passing traffic (empty: ready).
    pub fn not_ready(&self, only: Option<&BTreeSet<String>>) -> Vec<String> {
        let mut out = Vec::new();
        let ours = |l: &LinkState| l.name != "lo" && only.is_none_or(|o| o.contains(&l.name));
        let up = |l: &LinkState| l.flags & IFF_UP != 0;
        let carrier = |l: &LinkState| l.flags & IFF_LOWER_UP != 0;
        let strict = |l: &LinkState| matches!(l.kind.as_deref(), Some("veth") | Some("bridge"));
        for l in self.links.values().filter(|l| ours(l) && up(l)) {
            let is_bridge = l.kind.as_deref() == Some("bridge");
            if is_bridge {
                // A bridge has carrier once a port forwards; wait for it then.
                let forwarding = self.links.values().any(|p| {
                    p.master == Some(l.index) && p.port_state == Some(BR_STATE_FORWARDING)
                });
                if forwarding && (!carrier(l) || l.operstate != IF_OPER_UP) {
                    out.push(format!("{} (bridge not up yet)", l.name));
                }
                continue;
            }
            if !carrier(l) {
                continue; // the other end is down: not expected to pass traffic
            }
            let oper_ok =
                l.operstate == IF_OPER_UP || (!strict(l) && l.operstate == IF_OPER_UNKNOWN);
            if !oper_ok {
                out.push(format!("{} (operstate {})", l.name, oper_name(l.operstate)));
                continue;
            }
            let port_of_bridge = l.master.is_some_and(|m| {
                self.links
                    .get(&m)
                    .is_some_and(|b| b.kind.as_deref() == Some("bridge"))
            });
            if port_of_bridge {
                match l.port_state {
                    Some(BR_STATE_FORWARDING) | Some(BR_STATE_BLOCKING) => {}
                    Some(s) => out.push(format!("{} (bridge port {})", l.name, port_name(s))),
                    None => out.push(format!("{} (bridge port state unknown)", l.name)),
                }
            }
        }
        out
    }
}

fn oper_name(s: u8) -> &'static str {
    match s {
        0 => "unknown",
        1 => "notpresent",
        2 => "down",
        3 => "lowerlayerdown",
        4 => "testing",
        5 => "dormant",
        6 => "up",
        _ => "?",
    }
}

/// A bridge port's STP state as `bridge link` names it.
pub(crate) fn port_name(s: u8) -> &'static str {
    match s {
        0 => "disabled",
        1 => "listening",
        2 => "learning",
        3 => "forwarding",
        4 => "blocking",
        _ => "in an unknown state",
    }
}

/// A GETLINK dump request of a family, with IFLA_EXT_MASK skipping statistics;
/// with `kind`, of the links of that kind only (the kernel filters: a link
/// left out costs nothing, see [`Target::read`]).
fn dump_request(family: u8, seq: u32, kind: Option<&str>) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&40u32.to_ne_bytes());
    b.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    b.extend_from_slice(&(0x1u16 | 0x300).to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&[family, 0, 0, 0]);
    b.extend_from_slice(&[0; 12]); // index, flags, change
    b.extend_from_slice(&8u16.to_ne_bytes()); // IFLA_EXT_MASK
    b.extend_from_slice(&29u16.to_ne_bytes());
    let mask: u32 = if family == AF_BRIDGE { 0 } else { 1 << 3 }; // RTEXT_FILTER_SKIP_STATS
    b.extend_from_slice(&mask.to_ne_bytes());
    if let Some(kind) = kind {
        // IFLA_LINKINFO { IFLA_INFO_KIND "kind\0" }
        let inner = 4 + kind.len() + 1;
        let padded = inner.next_multiple_of(4);
        b.extend_from_slice(&((4 + padded) as u16).to_ne_bytes());
        b.extend_from_slice(&18u16.to_ne_bytes());
        b.extend_from_slice(&(inner as u16).to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(kind.as_bytes());
        b.resize(b.len() + padded - inner + 1, 0);
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
    }
    b
}

/// A note saying what keeps a namespace from passing traffic, if anything.
fn note_of(
    label: &str,
    links: &NsLinks,
    only: Option<&BTreeSet<String>>,
    limit: Duration,
) -> Option<String> {
    let nr = links.not_ready(only);
    if nr.is_empty() {
        return None;
    }
    let shown: Vec<&str> = nr.iter().take(5).map(String::as_str).collect();
    let more = if nr.len() > 5 {
        format!(" and {} more", nr.len() - 5)
    } else {
        String::new()
    };
    Some(format!(
        "not passing traffic yet after {:.0} s in {}: {}{more}",
        limit.as_secs_f64(),
        label,
        shown.join(", ")
    ))
}

/// Dump links, then bridge ports if any link is one, on `sock` into `links`,
/// applying events that a subscribed socket receives meanwhile too. Whether the
/// kernel flagged the dump as interrupted by a concurrent change
/// (NLM_F_DUMP_INTR). The AF_BRIDGE dump (`rtnl_bridge_getlink`) runs under
/// RTNL, where it competes with the link-watch work the wait is waiting for: a
/// node namespace without bridge ports skips it.
fn dump_links(
    sock: &NlListener,
    links: &mut NsLinks,
    seq: &mut u32,
    buf: &mut [u8],
    until: Instant,
) -> io::Result<bool> {
    let mut interrupted = false;
    for family in [0u8, AF_BRIDGE] {
        if family == AF_BRIDGE && !links.has_bridge_port() {
            break;
        }
        interrupted |= dump_family(sock, links, seq, buf, until, family, None)?;
    }
    Ok(interrupted)
}

/// One GETLINK dump of `family` (of the links of `kind` only, if given) into
/// `links` (see `dump_links`).
fn dump_family(
    sock: &NlListener,
    links: &mut NsLinks,
    seq: &mut u32,
    buf: &mut [u8],
    until: Instant,
    family: u8,
    kind: Option<&str>,
) -> io::Result<bool> {
    let mut interrupted = false;
    {
        *seq = seq.wrapping_add(1);
        sock.send(&dump_request(family, *seq, kind))?;
        'reply: loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "link dump"));
            }
            let wait = left.min(Duration::from_secs(1));
            // A failed wait is waited again, as a quiet one is.
            if !super::poll::poll_readable(sock.as_fd(), wait).unwrap_or(false) {
                continue;
            }
            let n = match sock.try_recv(buf) {
                Ok(Some(n)) => n,
                Ok(None) => continue,
                // Events overflowed the socket; the dump itself goes on.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(e),
            };
            for m in super::nlsock::split(&buf[..n]).map_while(Result::ok) {
                match m.ty {
                    NLMSG_DONE | NLMSG_ERROR if m.seq == *seq => break 'reply,
                    // Events (sequence 0) and this dump's replies; not what is
                    // left of an earlier dump that timed out.
                    _ if m.seq == *seq || m.seq == 0 => {
                        if m.seq == *seq && super::nlsock::dump_interrupted(m.flags) {
                            interrupted = true;
                        }
                        links.apply(m.bytes);
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(interrupted)
}

/// Where a namespace is: named by the target's label under /run/netns, opened
/// only while it is read (10,000 namespaces need no descriptor each), or an
/// open file.
enum Where {
    Named,
    File(File),
}

impl Where {
    /// Move the calling thread into the namespace.
    fn enter(&self, label: &str) -> Result<(), Failure> {
        let opened;
        let f = match self {
            Where::Named => {
                opened = super::netns::open(label).map_err(Failure::Open)?;
                &opened
            }
            Where::File(f) => f,
        };
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Failure::Read(e.into()))
    }
}

/// Why a namespace could not be read.
enum Failure {
    Open(io::Error),
    Read(io::Error),
}

/// One namespace waited for, and its links as last read.
struct Target {
    label: String,
    at: Where,
    only: Option<BTreeSet<String>>,
    links: NsLinks,
    /// The socket of a namespace not ready yet, kept for the next rounds
    /// (within the descriptor budget): a re-read is then two requests, without
    /// entering the namespace and making a socket again.
    sock: Option<NlListener>,
    seq: u32,
    /// Whether this read may keep its socket (decided before each round).
    may_keep: bool,
}

impl Target {
    /// One fresh read, on the kept socket or on a new one made on the calling
    /// thread (which moves into the namespace): whether the namespace is done
    /// with (ready, and the dump not interrupted; its links are then not kept,
    /// for memory). The socket is kept while it is not done and `may_keep` or
    /// it was kept already. The socket joins no
    /// multicast group: joining or leaving one runs `netlink_update_listeners`
    /// under the global `netlink_table_grab`, which walks every subscribed
    /// NETLINK_ROUTE socket of the system, so a subscribed socket per namespace
    /// made the wait quadratic in namespaces (and stalled every multicast).
    fn read(&mut self, buf: &mut [u8], until: Instant) -> Result<bool, Failure> {
        let kept = self.sock.is_some();
        let sock = match self.sock.take() {
            Some(s) => s,
            None => {
                self.at.enter(&self.label)?;
                NlListener::open(NETLINK_ROUTE, 256 << 10).map_err(Failure::Read)?
            }
        };
        let mut links = NsLinks::default();
        let mut interrupted =
            dump_links(&sock, &mut links, &mut self.seq, buf, until).map_err(Failure::Read)?;
        // Port states come from the second dump, link states from the first: a
        // bridge that came up in between looks down next to ports that already
        // forward (and is skipped as down). Read the bridges again so they are
        // no older than the port states before saying ready. Only the bridges:
        // each veth in a link dump costs the kernel a walk of the namespace's
        // peer ids (`peernet2id`, linear in them), so reading 10,000 ports
        // again cost the wait of a 10,000-node sandbox about a second.
        if !interrupted && links.has_bridge_port() && links.not_ready(self.only.as_ref()).is_empty()
        {
            interrupted = dump_family(
                &sock,
                &mut links,
                &mut self.seq,
                buf,
                until,
                0,
                Some("bridge"),
            )
            .map_err(Failure::Read)?;
        }
        if !interrupted && links.not_ready(self.only.as_ref()).is_empty() {
            self.links = NsLinks::default();
            return Ok(true);
        }
        self.links = links;
        if kept || self.may_keep {
            self.sock = Some(sock);
        }
        Ok(false)
    }

    fn new(label: String, at: Where, only: Option<BTreeSet<String>>) -> Target {
        Target {
            label,
            at,
            only,
            links: NsLinks::default(),
            sock: None,
            seq: 0,
            may_keep: false,
        }
    }
}

/// Which targets may keep their socket after this read: those without one, in
/// order, as long as the sockets kept stay within `budget`.
fn allow_keeping(targets: &mut [Target], budget: usize) {
    let mut held = targets.iter().filter(|t| t.sock.is_some()).count();
    for t in targets.iter_mut() {
        t.may_keep = t.sock.is_none() && held < budget;
        if t.may_keep {
            held += 1;
        }
    }
}

/// Read every target once, on a few short-lived threads (each moves into the
/// namespaces it reads): the outcome of each, in order.
fn read_all(targets: &mut [Target], until: Instant) -> Vec<Result<bool, Failure>> {
    if targets.is_empty() {
        return Vec::new();
    }
    let workers = crate::util::workers_for(targets.len());
    let chunk = targets.len().div_ceil(workers).max(1);
    let cfg = &crate::config::inherit();
    std::thread::scope(|s| {
        let hs: Vec<_> = targets
            .chunks_mut(chunk)
            .map(|part| {
                let n = part.len();
                let h = s.spawn(move || {
                    let _cfg = cfg.enter();
                    let mut buf = vec![0u8; 1 << 16];
                    part.iter_mut()
                        .map(|t| t.read(&mut buf, until))
                        .collect::<Vec<_>>()
                });
                (h, n)
            })
            .collect();
        let mut out = Vec::new();
        for (h, n) in hs {
            match h.join() {
                Ok(rs) => out.extend(rs),
                Err(_) => out.extend(
                    (0..n).map(|_| Err(Failure::Read(io::Error::other("reader panicked")))),
                ),
            }
        }
        out
    })
}

/// A namespace with more links than this that is not ready at its first read
/// (the sandbox host, or host mode's host, with a port per node) is watched on
/// events rather than re-read: a dump of thousands of links per round would
/// cost more than the events do.
const BIG: usize = 256;
/// At most this many namespaces are watched on events (each a subscribed socket).
const MAX_WATCHED: usize = 16;

/// The first pause between rounds of re-reads, and the longest.
const FIRST_GAP: Duration = Duration::from_millis(10);
const MAX_GAP: Duration = Duration::from_millis(100);

/// The pause before the next round of re-reads: doubling from [`FIRST_GAP`] up
/// to [`MAX_GAP`], and never shorter than the last round took, so re-reading
/// takes at most about half of the time while the kernel brings links up.
fn next_gap(prev: Duration, round_took: Duration) -> Duration {
    (prev * 2).min(MAX_GAP).max(round_took)
}

/// A big namespace watched on events: a socket subscribed to RTNLGRP_LINK, made
/// on a short-lived thread inside it; subscribed first, then dumped, so no
/// change is missed. If it overflows, or stays not ready without any event for a
/// second, it is dumped again (a change racing the dump can reach us before the
/// dump's older view of it).
struct Watched {
    label: String,
    only: Option<BTreeSet<String>>,
    sock: NlListener,
    links: NsLinks,
    seq: u32,
    ready: bool,
    last_event: Instant,
}

impl Watched {
    fn open(t: &Target, until: Instant) -> io::Result<Watched> {
        let opened;
        let f = match &t.at {
            Where::Named => {
                opened = super::netns::open(&t.label)?;
                &opened
            }
            Where::File(f) => f,
        };
        let sock = super::netns::run_in(f, || -> io::Result<NlListener> {
            let sock = NlListener::open(NETLINK_ROUTE, 4 << 20)?;
            sock.join(RTNLGRP_LINK)?;
            Ok(sock)
        })??;
        let mut w = Watched {
            label: t.label.clone(),
            only: t.only.clone(),
            sock,
            links: NsLinks::default(),
            seq: 0,
            ready: false,
            last_event: Instant::now(),
        };
        w.dump(&mut vec![0u8; 1 << 16], until)?;
        Ok(w)
    }

    fn dump(&mut self, buf: &mut [u8], until: Instant) -> io::Result<()> {
        dump_links(&self.sock, &mut self.links, &mut self.seq, buf, until)?;
        self.last_event = Instant::now();
        self.update();
        Ok(())
    }

    /// Apply the events queued; whether they overflowed (a dump is needed).
    fn read_events(&mut self, buf: &mut [u8]) -> bool {
        loop {
            match self.sock.try_recv(buf) {
                Ok(Some(n)) => {
                    for (_, _, m) in super::netlink::messages(&buf[..n]) {
                        self.links.apply(m);
                    }
                    self.last_event = Instant::now();
                }
                Ok(None) => return false,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Bring it up to date after a wait; a note if it can no longer be read (it
    /// is then left alone).
    fn refresh(&mut self, readable: bool, buf: &mut [u8], until: Instant) -> Option<String> {
        let mut redump = readable && self.read_events(buf);
        if self.last_event.elapsed() >= Duration::from_secs(1) {
            redump = true;
        }
        if redump && let Err(e) = self.dump(buf, until) {
            self.ready = true;
            return Some(format!("could not read the links of {}: {e}", self.label));
        }
        self.update();
        None
    }

    fn update(&mut self) {
        self.ready = self.links.not_ready(self.only.as_ref()).is_empty();
    }
}

/// Wait until every target passes traffic or `until`; notes on the rest.
///
/// Every namespace is read once (a dump on an unsubscribed socket); those not
/// ready are re-read in rounds, each read a fresh dump (a namespace read as
/// ready was ready when its dump ran; a dump the kernel flags as interrupted
/// is read again). Only the few big namespaces are watched on events.
///
/// Not chosen: one socket with NETLINK_LISTEN_ALL_NSID in the namespace that
/// holds the other ends. It hears only namespaces with an nsid there, and the
/// kernel delivers each event to it after `peernet2id`, an `idr_for_each` over
/// all nsids of that namespace (linear in nodes, on the link-watch worker that
/// holds RTNL): quadratic again at 10,000 nodes.
fn wait_until(targets: Vec<Target>, until: Instant, limit: Duration, notes: &mut Vec<String>) {
    // Reads that start when the time is up still run once (a note on what is
    // not ready, not a failed read).
    let read_until = || until.max(Instant::now() + Duration::from_secs(2));
    let budget = super::netns::fd_budget();
    let mut targets = targets;
    allow_keeping(&mut targets, budget);
    let first = read_all(&mut targets, read_until());
    let mut pending = Vec::new();
    let mut watched: Vec<Watched> = Vec::new();
    for (t, r) in targets.into_iter().zip(first) {
        match r {
            Err(Failure::Open(e)) => notes.push(format!(
                "could not open namespace {} to wait for its links: {e}",
                t.label
            )),
            Err(Failure::Read(e)) => {
                notes.push(format!("could not watch the links of {}: {e}", t.label))
            }
            Ok(true) => {}
            Ok(false) => {
                if t.links.links.len() > BIG
                    && watched.len() < MAX_WATCHED
                    && let Ok(w) = Watched::open(&t, read_until())
                {
                    watched.push(w);
                    continue;
                }
                pending.push(t);
            }
        }
    }
    crate::timing::mark("wait: first read");
    let mut buf = vec![0u8; 1 << 16];
    let mut gap = FIRST_GAP;
    let mut next_round = Instant::now() + gap;
    let mut rounds = 0u32;
    loop {
        if pending.is_empty() && watched.iter().all(|w| w.ready) {
            break;
        }
        let now = Instant::now();
        if now >= until {
            break;
        }
        let mut wake = until.min(now + Duration::from_millis(250));
        if !pending.is_empty() {
            wake = wake.min(next_round);
        }
        let left = wake.saturating_duration_since(now);
        let waiting: Vec<usize> = (0..watched.len()).filter(|&i| !watched[i].ready).collect();
        if waiting.is_empty() {
            std::thread::sleep(left);
        } else {
            let fds: Vec<BorrowedFd<'_>> =
                waiting.iter().map(|&i| watched[i].sock.as_fd()).collect();
            let polled = super::poll::wait_readable(&fds, left)
                .unwrap_or_else(|_| vec![false; waiting.len()]);
            drop(fds);
            for (&i, readable) in waiting.iter().zip(polled) {
                notes.extend(watched[i].refresh(readable, &mut buf, until));
            }
        }
        if pending.is_empty() || Instant::now() < next_round {
            continue;
        }
        let started = Instant::now();
        allow_keeping(&mut pending, budget);
        let reads = read_all(&mut pending, read_until());
        rounds += 1;
        let mut still = Vec::new();
        for (t, r) in pending.into_iter().zip(reads) {
            match r {
                Ok(true) => {}
                Ok(false) => still.push(t),
                Err(Failure::Open(e) | Failure::Read(e)) => {
                    notes.push(format!("could not read the links of {}: {e}", t.label))
                }
            }
        }
        pending = still;
        gap = next_gap(gap, started.elapsed());
        next_round = Instant::now() + gap;
    }
    crate::timing::mark(&format!("wait: {rounds} rounds of re-reads"));
    notes.extend(
        pending
            .iter()
            .filter_map(|t| note_of(&t.label, &t.links, t.only.as_ref(), limit)),
    );
    notes.extend(
        watched
            .iter()
            .filter_map(|w| note_of(&w.label, &w.links, w.only.as_ref(), limit)),
    );
}

/// Wait until every space passes traffic, or `limit` passed. Returns a note per
/// namespace that is not ready then (empty: all ready). Failing to watch a
/// namespace is a note too: the lab is up, only the wait could not be done.
pub fn wait_for_traffic(spaces: Vec<Space>, limit: Duration) -> Vec<String> {
    let until = Instant::now() + limit;
    let mut notes = Vec::new();
    let targets = spaces
        .into_iter()
        .map(|sp| Target::new(sp.label, Where::File(sp.file), sp.only))
        .collect();
    wait_until(targets, until, limit, &mut notes);
    notes
}
/// How long `up` waits for its lab to pass traffic before it says what is not ready.
pub const LIMIT: Duration = Duration::from_secs(10);

/// The wait for a lab whose bridges run STP with these timers (clock_t): a
/// port listens for one forward delay and learns for another, after a
/// topology change the old root is forgotten only after max age; plus a margin.
pub fn limit_for_stp(timers: impl IntoIterator<Item = (u32, u32)>) -> Duration {
    timers
        .into_iter()
        .map(|(fd, age)| {
            Duration::from_millis(u64::from(2 * fd + age) * 10) + Duration::from_secs(5)
        })
        .fold(LIMIT, Duration::max)
}

/// The wait of `up`: the lab's namespaces, and in host mode the lab's links in
/// the namespace nslab runs in. Returns notes naming what is not ready. A
/// namespace's file is open only while it is read, so a big lab needs no
/// descriptor per namespace.
pub fn wait_lab(
    namespaces: &BTreeSet<String>,
    sandbox: bool,
    host_links: &BTreeSet<String>,
    limit: Duration,
) -> Vec<String> {
    let until = Instant::now() + limit;
    let mut notes = Vec::new();
    let mut targets: Vec<Target> = namespaces
        .iter()
        .map(|ns| Target::new(ns.clone(), Where::Named, None))
        .collect();
    if !sandbox && !host_links.is_empty() {
        match super::netns::current() {
            Ok(file) => targets.push(Target::new(
                "the host".into(),
                Where::File(file),
                Some(host_links.clone()),
            )),
            Err(e) => notes.push(format!("could not watch the host's links: {e}")),
        }
    }
    wait_until(targets, until, limit, &mut notes);
    // A note per namespace: thousands for a big lab that is slow to come up.
    // The first few, and how many more.
    let shown = crate::util::SHOWN;
    if notes.len() > shown + 1 {
        let more = notes.len() - shown;
        notes.truncate(shown);
        notes.push(format!(
            "… and {} more notes like these",
            crate::util::count(more)
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(family: u8, ty: u16, index: u32, flags: u32, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![0u8; 32];
        b[4..6].copy_from_slice(&ty.to_ne_bytes());
        b[16] = family;
        b[20..24].copy_from_slice(&index.to_ne_bytes());
        b[24..28].copy_from_slice(&flags.to_ne_bytes());
        for (t, v) in attrs {
            let len = 4 + v.len();
            b.extend_from_slice(&(len as u16).to_ne_bytes());
            b.extend_from_slice(&t.to_ne_bytes());
            b.extend_from_slice(v);
            while !b.len().is_multiple_of(4) {
                b.push(0);
            }
        }
        let l = b.len() as u32;
        b[0..4].copy_from_slice(&l.to_ne_bytes());
        b
    }

    fn name(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    fn kind(k: &str) -> Vec<u8> {
        let n = name(k);
        let mut v = ((4 + n.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&1u16.to_ne_bytes());
        v.extend_from_slice(&n);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    fn link(index: u32, n: &str, k: &str, flags: u32, oper: u8, master: Option<u32>) -> Vec<u8> {
        let mut a = vec![(3, name(n)), (16, vec![oper]), (18, kind(k))];
        if let Some(m) = master {
            a.push((10, m.to_ne_bytes().to_vec()));
        }
        msg(0, RTM_NEWLINK, index, flags, &a)
    }

    fn port(index: u32, state: u8, master: u32) -> Vec<u8> {
        let protinfo = vec![5u8, 0, 1, 0, state, 0, 0, 0];
        msg(
            AF_BRIDGE,
            RTM_NEWLINK,
            index,
            IFF_UP | IFF_LOWER_UP,
            &[(10, master.to_ne_bytes().to_vec()), (12, protinfo)],
        )
    }

    const UP: u32 = IFF_UP | IFF_LOWER_UP;

    #[test]
    fn stp_lengthens_the_wait_to_cover_listening_learning_and_max_age() {
        assert_eq!(limit_for_stp([]), LIMIT);
        assert_eq!(
            limit_for_stp([(200, 600)]),
            LIMIT.max(Duration::from_secs(15))
        );
        assert_eq!(
            limit_for_stp([(200, 600), (3000, 4000)]),
            Duration::from_secs(105)
        );
    }

    #[test]
    fn veth_waits_for_operstate_up() {
        let mut s = NsLinks::default();
        s.apply(&link(1, "lo", "", IFF_UP, 0, None));
        s.apply(&link(2, "bveth", "veth", UP, 2, None));
        assert_eq!(s.not_ready(None), vec!["bveth (operstate down)"]);
        s.apply(&link(2, "bveth", "veth", UP, IF_OPER_UP, None));
        assert!(s.not_ready(None).is_empty());
    }

    #[test]
    fn down_or_carrierless_links_are_not_waited_for() {
        let mut s = NsLinks::default();
        s.apply(&link(2, "a", "veth", 0, 2, None));
        s.apply(&link(3, "b", "veth", IFF_UP, 3, None));
        assert!(s.not_ready(None).is_empty());
    }

    #[test]
    fn bridge_ports_must_forward_and_the_bridge_be_up() {
        let mut s = NsLinks::default();
        s.apply(&link(5, "bri0", "bridge", IFF_UP, 2, None));
        s.apply(&link(6, "p1", "veth", UP, IF_OPER_UP, Some(5)));
        assert_eq!(s.not_ready(None), vec!["p1 (bridge port state unknown)"]);
        s.apply(&port(6, 2, 5));
        assert_eq!(s.not_ready(None), vec!["p1 (bridge port learning)"]);
        s.apply(&port(6, BR_STATE_FORWARDING, 5));
        assert_eq!(s.not_ready(None), vec!["bri0 (bridge not up yet)"]);
        s.apply(&link(5, "bri0", "bridge", UP, IF_OPER_UP, None));
        assert!(s.not_ready(None).is_empty());
        // A port STP holds blocking is not waited for.
        s.apply(&port(6, BR_STATE_BLOCKING, 5));
        assert!(s.not_ready(None).is_empty());
        // A link event for the port keeps the state the bridge reported.
        s.apply(&link(6, "p1", "veth", UP, IF_OPER_UP, Some(5)));
        assert_eq!(s.links[&6].port_state, Some(BR_STATE_BLOCKING));
    }

    #[test]
    fn host_mode_only_looks_at_the_labs_links() {
        let mut s = NsLinks::default();
        s.apply(&link(2, "eth0", "veth", UP, 2, None));
        s.apply(&link(3, "labp", "veth", UP, IF_OPER_UP, None));
        let only: BTreeSet<String> = ["labp".to_string()].into();
        assert!(s.not_ready(Some(&only)).is_empty());
        assert_eq!(s.not_ready(None).len(), 1);
    }

    #[test]
    fn deleted_links_are_forgotten() {
        let mut s = NsLinks::default();
        s.apply(&link(2, "a", "veth", UP, 2, None));
        s.apply(&msg(0, RTM_DELLINK, 2, 0, &[]));
        assert!(s.not_ready(None).is_empty());
    }

    #[test]
    fn rounds_back_off_to_the_longest_gap_and_never_outpace_their_reads() {
        let mut g = FIRST_GAP;
        let mut seen = vec![g];
        for _ in 0..6 {
            g = next_gap(g, Duration::from_millis(1));
            seen.push(g);
        }
        let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [10, 20, 40, 80, 100, 100, 100]);
        // A round that took longer than the gap is waited as long again.
        assert_eq!(
            next_gap(MAX_GAP, Duration::from_millis(300)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn a_note_names_at_most_five_links_and_counts_the_rest() {
        let mut s = NsLinks::default();
        for i in 0..7 {
            s.apply(&link(10 + i, &format!("v{i}"), "veth", UP, 2, None));
        }
        let n = note_of("n1", &s, None, LIMIT).unwrap();
        assert_eq!(
            n,
            "not passing traffic yet after 10 s in n1: v0 (operstate down), v1 (operstate down), \
             v2 (operstate down), v3 (operstate down), v4 (operstate down) and 2 more"
        );
        assert!(note_of("n1", &NsLinks::default(), None, LIMIT).is_none());
    }

    #[test]
    fn the_bridge_dump_is_needed_only_with_a_port_of_a_bridge() {
        let mut s = NsLinks::default();
        s.apply(&link(1, "lo", "", IFF_UP, 0, None));
        s.apply(&link(2, "e0", "veth", UP, IF_OPER_UP, None));
        assert!(!s.has_bridge_port());
        // A master that is not a bridge (a VRF, a bond) has no port states.
        s.apply(&link(3, "vrf0", "vrf", UP, IF_OPER_UP, None));
        s.apply(&link(2, "e0", "veth", UP, IF_OPER_UP, Some(3)));
        assert!(!s.has_bridge_port());
        s.apply(&link(4, "br0", "bridge", UP, IF_OPER_UP, None));
        s.apply(&link(5, "p0", "veth", UP, IF_OPER_UP, Some(4)));
        assert!(s.has_bridge_port());
    }

    fn target(label: &str) -> Target {
        Target::new(label.into(), Where::Named, None)
    }

    #[test]
    fn sockets_are_kept_within_the_budget_counting_those_held() {
        let mut ts: Vec<Target> = (0..5).map(|i| target(&format!("n{i}"))).collect();
        allow_keeping(&mut ts, 3);
        let keep: Vec<bool> = ts.iter().map(|t| t.may_keep).collect();
        assert_eq!(keep, [true, true, true, false, false]);
        // Two of them hold a socket now: one more may be kept.
        let sock = || Some(NlListener::open(NETLINK_ROUTE, 4096).unwrap());
        ts[0].sock = sock();
        ts[2].sock = sock();
        allow_keeping(&mut ts, 3);
        let keep: Vec<bool> = ts.iter().map(|t| t.may_keep).collect();
        assert_eq!(keep, [false, true, false, false, false]);
    }

    #[test]
    fn dump_request_is_well_formed() {
        let r = dump_request(AF_BRIDGE, 7, None);
        assert_eq!(r.len(), 40);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 40);
        assert_eq!(r[16], AF_BRIDGE);
        // With a kind: IFLA_LINKINFO (len 16) { IFLA_INFO_KIND (len 11) "bridge\0" + pad }.
        let r = dump_request(0, 8, Some("bridge"));
        assert_eq!(r.len(), 56);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 56);
        assert_eq!(&r[40..44], &[16, 0, 18, 0]);
        assert_eq!(&r[44..48], &[11, 0, 1, 0]);
        assert_eq!(&r[48..56], b"bridge\0\0");
    }
}
