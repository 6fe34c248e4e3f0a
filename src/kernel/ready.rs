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
//! How: one netlink socket per namespace subscribed to RTNLGRP_LINK, made on a
//! short-lived thread inside the namespace; subscribe first, then dump (links,
//! and the AF_BRIDGE view that carries each port's state), so no change is
//! missed; then wait on the events. A namespace whose socket overflowed, or that
//! stays not ready without any event for a second, is dumped again (a change
//! racing the dump can reach us before the dump's older view of it).
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

/// A GETLINK dump request of a family, with IFLA_EXT_MASK skipping statistics.
fn dump_request(family: u8, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(40);
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
    b
}

struct Watched {
    label: String,
    only: Option<BTreeSet<String>>,
    sock: NlListener,
    links: NsLinks,
    seq: u32,
    ready: bool,
    last_event: Instant,
}

fn subscribe() -> io::Result<NlListener> {
    let sock = NlListener::open(NETLINK_ROUTE, 4 << 20)?;
    sock.join(RTNLGRP_LINK)?;
    Ok(sock)
}

impl Watched {
    /// Subscribe in the namespace of `sp` (the calling thread moves there), then
    /// dump its links.
    fn open(sp: Space, buf: &mut [u8], until: Instant) -> io::Result<Watched> {
        nix::sched::setns(sp.file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
        let mut w = Watched {
            label: sp.label,
            only: sp.only,
            sock: subscribe()?,
            links: NsLinks::default(),
            seq: 0,
            ready: false,
            last_event: Instant::now(),
        };
        w.dump(buf, until)?;
        w.update();
        Ok(w)
    }

    /// Dump links and bridge ports, applying events that arrive meanwhile too.
    fn dump(&mut self, buf: &mut [u8], until: Instant) -> io::Result<()> {
        for family in [0u8, AF_BRIDGE] {
            self.seq = self.seq.wrapping_add(1);
            let req = dump_request(family, self.seq);
            self.sock.send(&req)?;
            'reply: loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "link dump"));
                }
                let wait = left.min(Duration::from_secs(1));
                // A failed wait is waited again, as a quiet one is.
                if !super::poll::poll_readable(self.sock.as_fd(), wait).unwrap_or(false) {
                    continue;
                }
                let n = match self.sock.try_recv(buf) {
                    Ok(Some(n)) => n,
                    Ok(None) => continue,
                    // Events overflowed the socket; the dump itself goes on.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                    Err(e) => return Err(e),
                };
                for (ty, seq, m) in super::netlink::messages(&buf[..n]) {
                    match ty {
                        NLMSG_DONE if seq == self.seq => break 'reply,
                        NLMSG_ERROR if seq == self.seq => break 'reply,
                        _ => self.links.apply(m),
                    }
                }
            }
        }
        self.last_event = Instant::now();
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

    /// Bring one not-ready namespace up to date after a wait; a note if it can
    /// no longer be read (it is then left alone).
    fn refresh(&mut self, readable: bool, buf: &mut [u8], until: Instant) -> Option<String> {
        let mut redump = readable && self.read_events(buf);
        // A change racing the first dump can be overtaken by the dump's
        // older view; a quiet namespace that is still not ready is read again.
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

    /// The note saying what is not ready, if anything.
    fn not_ready_note(&self, limit: Duration) -> Option<String> {
        let nr = self.links.not_ready(self.only.as_ref());
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
            self.label,
            shown.join(", ")
        ))
    }
}

/// Subscribe in every space and dump it, on a few short-lived threads (each
/// moves into the namespaces it opens): the label and outcome of each.
fn open_all(spaces: Vec<Space>, until: Instant) -> Vec<(String, io::Result<Watched>)> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
        .min(spaces.len().max(1));
    let chunk = spaces.len().div_ceil(workers).max(1);
    let mut parts: Vec<Vec<Space>> = Vec::new();
    let mut it = spaces.into_iter().peekable();
    while it.peek().is_some() {
        parts.push(it.by_ref().take(chunk).collect());
    }
    let cfg = &crate::config::inherit();
    std::thread::scope(|s| {
        let hs: Vec<_> = parts
            .into_iter()
            .map(|part| {
                s.spawn(move || {
                    let _cfg = cfg.enter();
                    let mut buf = vec![0u8; 1 << 16];
                    part.into_iter()
                        .map(|sp| (sp.label.clone(), Watched::open(sp, &mut buf, until)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Wait on the events of the namespaces not ready yet until all are, or `until`.
fn watch_until_ready(ws: &mut [Watched], until: Instant, notes: &mut Vec<String>) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if ws.iter().all(|w| w.ready) {
            break;
        }
        let now = Instant::now();
        if now >= until {
            break;
        }
        let left = until
            .saturating_duration_since(now)
            .min(Duration::from_millis(250));
        let waiting: Vec<usize> = (0..ws.len()).filter(|&i| !ws[i].ready).collect();
        let fds: Vec<BorrowedFd<'_>> = waiting.iter().map(|&i| ws[i].sock.as_fd()).collect();
        let Ok(polled) = super::poll::wait_readable(&fds, left) else {
            continue;
        };
        drop(fds);
        let mut readable = vec![false; ws.len()];
        for (&i, r) in waiting.iter().zip(polled) {
            readable[i] = r;
        }
        for (w, readable) in ws.iter_mut().zip(readable) {
            if !w.ready {
                notes.extend(w.refresh(readable, &mut buf, until));
            }
        }
    }
}

/// Wait until every space passes traffic, or `limit` passed. Returns a note per
/// namespace that is not ready then (empty: all ready). Failing to watch a
/// namespace is a note too: the lab is up, only the wait could not be done.
pub fn wait_for_traffic(spaces: Vec<Space>, limit: Duration) -> Vec<String> {
    let until = Instant::now() + limit;
    let mut notes = Vec::new();
    wait_until(spaces, until, limit, &mut notes);
    notes
}

fn wait_until(spaces: Vec<Space>, until: Instant, limit: Duration, notes: &mut Vec<String>) {
    let mut ws = Vec::new();
    // A batch that starts when earlier ones used up the time is still read
    // once (a note on what is not ready, not a failed watch).
    let read_until = until.max(Instant::now() + Duration::from_secs(2));
    for (label, r) in open_all(spaces, read_until) {
        match r {
            Ok(w) => ws.push(w),
            Err(e) => notes.push(format!("could not watch the links of {label}: {e}")),
        }
    }
    crate::timing::mark("wait: subscribe and dump");
    watch_until_ready(&mut ws, until, notes);
    crate::timing::mark("wait: events");
    notes.extend(ws.iter().filter_map(|w| w.not_ready_note(limit)));
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
/// watch holds a socket per namespace (and its fd while subscribing): a big lab
/// is watched in batches within the descriptor budget, one after the other
/// under one time limit (the kernel brings them all up meanwhile).
pub fn wait_lab(
    namespaces: &BTreeSet<String>,
    sandbox: bool,
    host_links: &BTreeSet<String>,
    limit: Duration,
) -> Vec<String> {
    let until = Instant::now() + limit;
    let batch = (super::netns::fd_budget() / 2).max(1);
    let mut notes = Vec::new();
    let names: Vec<&String> = namespaces.iter().collect();
    for part in names.chunks(batch) {
        let mut spaces = Vec::new();
        for ns in part {
            match super::netns::open(ns) {
                Ok(file) => spaces.push(Space {
                    label: (*ns).clone(),
                    file,
                    only: None,
                }),
                Err(e) => notes.push(format!(
                    "could not open namespace {ns} to wait for its links: {e}"
                )),
            }
        }
        wait_until(spaces, until, limit, &mut notes);
    }
    if !sandbox && !host_links.is_empty() {
        match super::netns::current() {
            Ok(file) => {
                let host = vec![Space {
                    label: "the host".into(),
                    file,
                    only: Some(host_links.clone()),
                }];
                wait_until(host, until, limit, &mut notes);
            }
            Err(e) => notes.push(format!("could not watch the host's links: {e}")),
        }
    }
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
    fn dump_request_is_well_formed() {
        let r = dump_request(AF_BRIDGE, 7);
        assert_eq!(r.len(), 40);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 40);
        assert_eq!(r[16], AF_BRIDGE);
    }
}
