//! The static walk: follow the probe hop by hop from its source to its
//! destination and the reply back, asking each namespace's kernel what it would
//! do with the packet (`ip route get`, with the arrival interface for every hop
//! after the first, so forwarding and reverse-path filtering are the kernel's own
//! verdicts), and checking the links, bridges and MTUs on the way.

use super::{PlaceKind, Reason};
use crate::kernel::conn::Conn;
use crate::kernel::netns;
use crate::kernel::seam::NsHandle;
use crate::model::observed::{Lookup, NsState, ObsLink};
use crate::topology::{End, Lab, NatOut, Place};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What the failed probe was, as far as the walk cares.
#[derive(Debug, Clone, Default)]
pub struct WhyOpts {
    /// ICMP payload bytes of a probe sent with DF set (`reach: size:`, `ping -s`).
    pub size: Option<usize>,
    /// Do not send a traced probe to look for firewall drops.
    pub no_trace: bool,
    /// The probe was a TCP connection to this port (a `tcp:` or `http:`
    /// expectation): the traced probe is one too.
    pub tcp_port: Option<u16>,
}

/// What the walk needs to know of one place. `H` is its namespace: the
/// kernel's, or a fake's in unit tests.
pub struct PlaceView<H: NsHandle = Conn> {
    pub place: Place,
    pub conn: H,
    pub state: NsState,
    /// IPv4 and IPv6 forwarding of the namespace.
    pub forwarding: (bool, bool),
    /// Blackhole, unreachable, prohibit and throw routes, read when a lookup
    /// there first fails (most walks never need them).
    pub(super) blocking: Option<Vec<(IpNet, String)>>,
}

pub struct Ctx<'a, H: NsHandle = Conn> {
    pub lab: &'a Lab,
    pub places: Vec<PlaceView<H>>,
    /// Layer-2 segment of each (place, interface): veth peers and bridge ports share one.
    pub(super) segs: BTreeMap<(Place, String), usize>,
    /// The far end of each cable end, from the lab's file.
    far: BTreeMap<(Place, String), End>,
    /// Traced probes this context may still send (each takes up to a second).
    traces_left: usize,
    /// The lab's runtime state (links set down, partitions), to name it.
    pub runtime: crate::runtime::State,
    /// The places of the last walk's legs (there, back), when both arrived.
    pub(super) last_legs: Vec<Vec<usize>>,
    /// The namespace with the underlay when it is not a place of the lab
    /// (a sandboxed machine's part: the real host).
    pub underlay: Option<NsState>,
}

/// Traced probes per context: a check of a lab where many pairs are cut by a
/// firewall explains the first ones and lists what it checked for the rest.
const TRACES: usize = 16;

/// Where a leg of the walk ended.
pub(super) struct Arrival {
    pub at: usize,
    pub iif: Option<u32>,
    /// The source address the packet carried when it arrived.
    pub src: Option<IpAddr>,
    /// Where NAT rewrote the source on the way, and the source before.
    pub nat: Option<(usize, IpAddr)>,
    /// The places crossed, in order (start and end included).
    pub path: Vec<usize>,
    /// The interface the packet was sent by, when it has no address of the
    /// family (the kernel then takes the source from another interface).
    pub bare_out: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Forward,
    Return,
}

impl<'a> Ctx<'a> {
    /// Open every place of the lab and read what the walk needs.
    pub fn open(lab: &'a Lab, files: Vec<(Place, std::fs::File)>) -> std::io::Result<Ctx<'a>> {
        let mut conns = Vec::new();
        for (place, file) in files {
            let nl = netns::run_in(&file, crate::kernel::netlink::Rtnl::new)??;
            conns.push((place, Conn::new(file, nl)));
        }
        let mut cx = Ctx::with_places(lab, conns)?;
        if lab.sandbox && !lab.vxlans.is_empty() {
            // The VXLAN sockets and the underlay are in the namespace nslab runs in.
            let mut c = crate::kernel::conn::open_current()?;
            cx.underlay = c.observe().ok();
        }
        if let Ok(Some(rec)) = crate::record::Record::load(&lab.name) {
            cx.runtime = rec.runtime;
        }
        Ok(cx)
    }
}

impl<'a, H: NsHandle> Ctx<'a, H> {
    /// Read what the walk needs of every place of the lab, already open.
    pub fn with_places(lab: &'a Lab, open: Vec<(Place, H)>) -> std::io::Result<Ctx<'a, H>> {
        let mut places = Vec::new();
        for (place, mut conn) in open {
            let state = conn
                .observe()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut on = |k: &str| conn.sysctl_get(k).is_ok_and(|v| v.trim() == "1");
            let fwd = (
                on("net.ipv4.ip_forward"),
                on("net.ipv6.conf.all.forwarding"),
            );
            places.push(PlaceView {
                place,
                conn,
                state,
                forwarding: fwd,
                blocking: None,
            });
        }
        let mut segs: BTreeMap<(Place, String), usize> = BTreeMap::new();
        let mut far = BTreeMap::new();
        let mut next = 0;
        for l in crate::plan::all_links(lab) {
            let key = |e: &End| {
                (
                    e.place.clone(),
                    e.bridge.clone().unwrap_or(e.ifname.clone()),
                )
            };
            let (ka, kb) = (key(&l.a), key(&l.b));
            let id = segs.get(&ka).or(segs.get(&kb)).copied().unwrap_or_else(|| {
                next += 1;
                next
            });
            // Two bridges joined by a cable: both keep one segment id.
            let old: Vec<usize> = [segs.get(&ka), segs.get(&kb)]
                .into_iter()
                .flatten()
                .copied()
                .filter(|o| *o != id)
                .collect();
            for v in segs.values_mut() {
                if old.contains(v) {
                    *v = id;
                }
            }
            for k in [
                ka,
                kb,
                (l.a.place.clone(), l.a.ifname.clone()),
                (l.b.place.clone(), l.b.ifname.clone()),
            ] {
                segs.insert(k, id);
            }
            far.insert((l.a.place.clone(), l.a.ifname.clone()), l.b.clone());
            far.insert((l.b.place.clone(), l.b.ifname.clone()), l.a.clone());
        }
        Ok(Ctx {
            lab,
            places,
            segs,
            far,
            traces_left: TRACES,
            runtime: Default::default(),
            last_legs: Vec::new(),
            underlay: None,
        })
    }

    pub(super) fn idx(&self, p: &Place) -> Option<usize> {
        self.places.iter().position(|v| &v.place == p)
    }

    pub(super) fn name(&self, i: usize) -> String {
        self.places[i].place.to_string()
    }

    fn ifname(&self, i: usize, index: u32) -> String {
        self.places[i]
            .state
            .link_by_index(index)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("if{index}"))
    }

    fn has_addr(&self, i: usize, a: IpAddr) -> bool {
        self.places[i]
            .state
            .addrs
            .iter()
            .any(|x| x.addr.addr() == a)
    }

    fn forwards(&self, i: usize, v6: bool) -> bool {
        let f = self.places[i].forwarding;
        if v6 { f.1 } else { f.0 }
    }

    /// Interfaces and routes the file gives a place (bridges count as the host's).
    fn declared(&self, i: usize) -> (Vec<(String, Vec<IpNet>)>, Vec<crate::topology::Route>) {
        let node = match &self.places[i].place {
            Place::Node(n) => self.lab.node(n),
            Place::Host => Some(&self.lab.host),
            Place::Internet => None,
        };
        let mut ifs: Vec<(String, Vec<IpNet>)> = node
            .map(|n| {
                n.interfaces
                    .iter()
                    .map(|f| (f.name.clone(), f.addresses.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if self.places[i].place == Place::Host {
            ifs.extend(
                self.lab
                    .bridges
                    .iter()
                    .map(|b| (b.name.clone(), b.addresses.clone())),
            );
        }
        (ifs, node.map(|n| n.routes.clone()).unwrap_or_default())
    }

    /// A declared address of `ifname` in the family of `v6` that the kernel lacks.
    fn missing_address(&self, i: usize, ifname: &str, v6: bool) -> bool {
        let (ifs, _) = self.declared(i);
        let Some((_, want)) = ifs.iter().find(|(n, _)| n == ifname) else {
            return false;
        };
        let st = &self.places[i].state;
        let Some(l) = st.link(ifname) else {
            return false;
        };
        want.iter()
            .filter(|a| a.addr().is_ipv6() == v6)
            .any(|a| !st.addrs_of(l.index).any(|x| x.addr() == a.addr()))
    }

    /// The state of the neighbour entry of `next_hop` on `oif` in `i` when
    /// resolution is failing (INCOMPLETE or FAILED).
    fn unresolved(&mut self, i: usize, oif: u32, next_hop: IpAddr) -> Option<String> {
        use crate::kernel::neigh;
        let all = self.places[i].conn.neighbours().ok()?;
        let e = all.iter().find(|n| n.index == oif && n.dst == next_hop)?;
        (e.state & (neigh::NUD_INCOMPLETE | neigh::NUD_FAILED) != 0)
            .then(|| e.state_name().to_lowercase())
    }

    /// The place and interface the file gives address `a` to.
    fn declared_holder(&self, a: IpAddr) -> Option<(usize, String)> {
        (0..self.places.len()).find_map(|i| {
            let (ifs, _) = self.declared(i);
            ifs.into_iter()
                .find(|(_, addrs)| addrs.iter().any(|x| x.addr() == a))
                .map(|(n, _)| (i, n))
        })
    }

    /// No route in `i` to `dst`: an interface the file routes `dst` through that
    /// is down, or lost its address, took the route with it.
    fn lost_route(&self, i: usize, dst: IpAddr) -> Option<Reason> {
        let (ifs, routes) = self.declared(i);
        let st = &self.places[i].state;
        let v6 = dst.is_ipv6();
        // Interfaces whose own network holds dst or the gateway of a route to dst.
        let mut targets: Vec<IpAddr> = vec![dst];
        targets.extend(
            routes
                .iter()
                .filter(|r| r.dst.contains(&dst))
                .filter_map(|r| r.via),
        );
        let mut through: Vec<String> = routes
            .iter()
            .filter(|r| r.dst.contains(&dst))
            .filter_map(|r| r.dev.clone())
            .collect();
        for (name, addrs) in &ifs {
            if addrs
                .iter()
                .any(|a| targets.iter().any(|t| a.trunc().contains(t)))
            {
                through.push(name.clone());
            }
        }
        for name in through {
            let Some(l) = st.link(&name) else { continue };
            if !l.up {
                return Some(Reason::InterfaceDown {
                    at: self.name(i),
                    interface: name,
                });
            }
            if self.missing_address(i, &name, v6) {
                return Some(Reason::NoAddress {
                    at: self.name(i),
                    interface: name,
                    family: if v6 { 6 } else { 4 },
                });
            }
        }
        None
    }

    fn rp_mode(&mut self, i: usize, ifname: &str) -> String {
        let conn = &mut self.places[i].conn;
        let mut get = |k: String| {
            conn.sysctl_get(&k)
                .ok()
                .and_then(|v| v.trim().parse::<u8>().ok())
                .unwrap_or(0)
        };
        // The kernel applies the larger of `all` and the interface's value.
        let m = get("net.ipv4.conf.all.rp_filter".into())
            .max(get(format!("net.ipv4.conf.{ifname}.rp_filter")));
        match m {
            1 => "strict".into(),
            2 => "loose".into(),
            _ => format!("rp_filter={m}"),
        }
    }

    /// Would rp_filter in `i` drop a packet from `src` arriving on `iif`? Strict
    /// mode wants the route back to `src` to leave by `iif`; loose mode any route.
    fn rp_filtered(&mut self, i: usize, iif: u32, src: IpAddr) -> Option<Reason> {
        if src.is_ipv6() {
            return None;
        }
        let interface = self.ifname(i, iif);
        let mode = self.rp_mode(i, &interface);
        let back = self.places[i].conn.route_get(src, None, None);
        let dropped = match (mode.as_str(), back) {
            ("strict", Ok(l)) => l.oif != Some(iif),
            ("strict" | "loose", Err(_)) => true,
            _ => false,
        };
        dropped.then(|| Reason::RpFilter {
            at: self.name(i),
            interface,
            src,
            mode,
        })
    }

    /// Why a route lookup failed with `errno`.
    fn lookup_failure(
        &mut self,
        i: usize,
        dst: IpAddr,
        src: Option<IpAddr>,
        iif: Option<u32>,
        errno: i32,
        dir: Dir,
    ) -> Reason {
        let at = self.name(i);
        // Reverse-path filtering refuses the packet: EXDEV on a forwarded packet,
        // EINVAL ("martian source") on one for a local address.
        if (errno == libc::EXDEV || errno == libc::EINVAL)
            && let (Some(iif), Some(src)) = (iif, src)
            && let Some(r) = self.rp_filtered(i, iif, src)
        {
            return r;
        }
        // The most specific blackhole/unreachable/prohibit route covering dst.
        let v = &mut self.places[i];
        let blocking = v.blocking.get_or_insert_with(|| v.conn.blocking_routes());
        if let Some((net, kind)) = blocking
            .iter()
            .filter(|(n, _)| n.contains(&dst))
            .max_by_key(|(n, _)| n.prefix_len())
        {
            return Reason::BlockingRoute {
                at,
                dst,
                kind: kind.clone(),
                route: format!("{kind} {net}"),
            };
        }
        if errno == libc::ENETUNREACH || errno == libc::EHOSTUNREACH {
            if let Some(r) = self.lost_route(i, dst) {
                return r;
            }
            return match dir {
                Dir::Forward => Reason::NoRoute { at, dst },
                Dir::Return => Reason::NoRouteBack { at, to: dst },
            };
        }
        Reason::Unknown {
            detail: format!(
                "route lookup in {at} for {dst} failed: {}",
                crate::kernel::netlink::errno_text(errno)
            ),
            checked: vec![],
        }
    }

    fn link(&self, i: usize, name: &str) -> Option<&ObsLink> {
        self.places[i].state.link(name)
    }

    fn host_idx(&self) -> Option<usize> {
        self.idx(&Place::Host)
    }

    /// `ifname` in `i` has no carrier: name the far end of its cable.
    fn far_end_down(&self, i: usize, ifname: &str) -> Reason {
        if let Some(f) = self
            .far
            .get(&(self.places[i].place.clone(), ifname.to_string()))
        {
            if let Some(b) = &f.bridge {
                return Reason::BridgePortDown {
                    at: f.place.to_string(),
                    bridge: b.clone(),
                    port: f.ifname.clone(),
                    state: "down".into(),
                };
            }
            return Reason::PeerDown {
                at: self.name(i),
                interface: ifname.to_string(),
                far_at: f.place.to_string(),
                far_interface: f.ifname.clone(),
            };
        }
        Reason::PeerDown {
            at: self.name(i),
            interface: ifname.to_string(),
            far_at: "?".into(),
            far_interface: "?".into(),
        }
    }

    /// The place across the link from (`i`, `ifname`) that takes packets for
    /// `next_hop`, and its interface on that link.
    fn across(&self, i: usize, ifname: &str, next_hop: IpAddr) -> Option<(usize, String)> {
        let seg = self
            .segs
            .get(&(self.places[i].place.clone(), ifname.to_string()));
        let Some(seg) = seg else {
            // A link the file does not have (the real uplink in host mode): the
            // place holding the address, on the interface holding it.
            let o = (0..self.places.len()).find(|&o| o != i && self.has_addr(o, next_hop))?;
            let st = &self.places[o].state;
            let a = st.addrs.iter().find(|a| a.addr.addr() == next_hop)?;
            return Some((o, st.link_by_index(a.index)?.name.clone()));
        };
        for (o, v) in self.places.iter().enumerate() {
            if o == i || !self.has_addr(o, next_hop) {
                continue;
            }
            // ARP/ND answers for any address of the place, on the interface the
            // question came in by; bridge ports hand packets to their bridge.
            let mut on_seg: Vec<&ObsLink> = v
                .state
                .links
                .iter()
                .filter(|l| self.segs.get(&(v.place.clone(), l.name.clone())) == Some(seg))
                .filter(|l| l.master.is_none())
                .collect();
            on_seg.sort_by_key(|l| !v.state.addrs_of(l.index).any(|a| a.addr() == next_hop));
            if let Some(l) = on_seg.first() {
                return Some((o, l.name.clone()));
            }
        }
        None
    }

    fn wire_size(&self, opts: &WhyOpts, v6: bool) -> Option<usize> {
        opts.size.map(|s| s + 8 + if v6 { 40 } else { 20 })
    }

    fn mtu_check(&self, i: usize, ifname: &str, size: Option<usize>) -> Result<(), Reason> {
        if let (Some(size), Some(mtu)) = (size, self.link(i, ifname).and_then(|l| l.mtu))
            && (mtu as usize) < size
        {
            return Err(Reason::Mtu {
                at: self.name(i),
                interface: ifname.to_string(),
                mtu,
                size,
            });
        }
        Ok(())
    }

    /// A bridge port on the way: up, forwarding, big enough.
    fn port_check(&self, end: &End, size: Option<usize>) -> Result<(), Reason> {
        let (Some(b), Some(h)) = (&end.bridge, self.idx(&end.place)) else {
            return Ok(());
        };
        let at = self.name(h);
        match self.link(h, b) {
            Some(l) if !l.up => {
                return Err(Reason::BridgeDown {
                    at,
                    bridge: b.clone(),
                });
            }
            _ => {}
        }
        if let Some(p) = self.link(h, &end.ifname) {
            if !p.up {
                return Err(Reason::BridgePortDown {
                    at,
                    bridge: b.clone(),
                    port: end.ifname.clone(),
                    state: "down".into(),
                });
            }
            if let Some(s) = p.port_state
                && s != 3
            {
                return Err(Reason::BridgePortDown {
                    at,
                    bridge: b.clone(),
                    port: end.ifname.clone(),
                    state: crate::kernel::ready::port_name(s).to_string(),
                });
            }
        }
        self.mtu_check(h, &end.ifname, size)
    }

    /// One end of a cable between bridges: Ok when it forwards, Err(Some) when
    /// it is at fault (down, no carrier, disabled), Err(None) when STP holds it
    /// (listening, learning, blocking: not a fault while another path exists).
    // The error is the walk's one answer per probe, built once: its size costs nothing.
    #[allow(clippy::result_large_err)]
    fn bridge_end(&self, h: usize, e: &End, size: Option<usize>) -> Result<(), Option<Reason>> {
        let Some(b) = &e.bridge else { return Ok(()) };
        let at = self.name(h);
        let down = |state: &str| {
            Some(Reason::BridgePortDown {
                at: at.clone(),
                bridge: b.clone(),
                port: e.ifname.clone(),
                state: state.into(),
            })
        };
        let Some(p) = self.link(h, &e.ifname) else {
            return Err(down("missing"));
        };
        if !p.up {
            return Err(down("down"));
        }
        if !p.lower_up {
            return Err(down("without carrier"));
        }
        if let Err(r) = self.mtu_check(h, &e.ifname, size) {
            return Err(Some(r));
        }
        match p.port_state {
            // Unknown (not reported): nothing to say against it.
            None | Some(3) => Ok(()),
            Some(0) => Err(down("disabled")),
            Some(_) => Err(None),
        }
    }

    /// A forwarding path of bridge-to-bridge cables from bridge `from` to `to`,
    /// or the reason there is none: a cable end down on the border of what
    /// `from` reaches (the cut), else the ports STP holds there.
    #[allow(clippy::result_large_err)] // as bridge_end: one answer per probe
    fn bridge_path(&self, from: &str, to: &str, size: Option<usize>) -> Result<(), Reason> {
        let Some(h) = self.host_idx() else {
            return Ok(());
        };
        let cables: Vec<(&End, &End)> = self
            .lab
            .links
            .iter()
            .filter(|l| l.a.bridge.is_some() && l.b.bridge.is_some())
            .map(|l| (&l.a, &l.b))
            .collect();
        let state = |a: &End, b: &End| -> Result<(), Option<Reason>> {
            let (x, y) = (self.bridge_end(h, a, size), self.bridge_end(h, b, size));
            let carrierless = |r: &Reason| matches!(r, Reason::BridgePortDown { state, .. } if state == "without carrier");
            match (x, y) {
                (Ok(()), Ok(())) => Ok(()),
                // The end set down, not the one that lost its carrier by it.
                (Err(Some(r)), Err(Some(q))) if carrierless(&r) => Err(Some(q)),
                // A fault of either end before STP's holding of the other.
                (Err(Some(r)), _) | (_, Err(Some(r))) => Err(Some(r)),
                _ => Err(None),
            }
        };
        let mut reached: std::collections::BTreeSet<&str> = [from].into();
        let mut grew = true;
        while grew {
            grew = false;
            for (a, b) in &cables {
                let (ba, bb) = (
                    a.bridge.as_deref().unwrap_or(""),
                    b.bridge.as_deref().unwrap_or(""),
                );
                if reached.contains(ba) != reached.contains(bb) && state(a, b).is_ok() {
                    reached.insert(ba);
                    reached.insert(bb);
                    grew = true;
                }
            }
        }
        if reached.contains(to) {
            return Ok(());
        }
        let border: Vec<(&End, &End)> = cables
            .iter()
            .copied()
            .filter(|(a, b)| {
                reached.contains(a.bridge.as_deref().unwrap_or(""))
                    != reached.contains(b.bridge.as_deref().unwrap_or(""))
            })
            .collect();
        if let Some(r) = border.iter().find_map(|(a, b)| state(a, b).err().flatten()) {
            return Err(r);
        }
        let held: Vec<String> = border
            .iter()
            .flat_map(|(a, b)| [*a, *b])
            .filter_map(|e| {
                let s = self.link(h, &e.ifname)?.port_state?;
                (s != 3).then(|| format!("{e} {}", crate::kernel::ready::port_name(s)))
            })
            .collect();
        Err(Reason::Unknown {
            detail: format!(
                "no forwarding path of bridge-to-bridge cables from {from} to {to}{}",
                if held.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": STP holds {} (the spanning tree may still be converging; it takes up to max age + 2 x forward delay)",
                        held.join(", ")
                    )
                }
            ),
            checked: vec![format!("the cables between bridges {from} and {to}")],
        })
    }

    /// Crossing the link from (`i`, `out`) to (`o`, `inn`): the bridge and its
    /// ports between, the receiving interface, the MTU at each step.
    fn cross(
        &self,
        i: usize,
        out: &str,
        o: usize,
        inn: &str,
        size: Option<usize>,
    ) -> Result<(), Reason> {
        let far_out = self
            .far
            .get(&(self.places[i].place.clone(), out.to_string()));
        if let Some(f) = far_out {
            self.port_check(f, size)?;
        }
        let far_in = self
            .far
            .get(&(self.places[o].place.clone(), inn.to_string()));
        if let Some(f) = far_in {
            self.port_check(f, size)?;
        }
        // Two bridges joined by cables: a path of them must forward.
        if let (Some(ba), Some(bb)) = (
            far_out.and_then(|f| f.bridge.as_deref()),
            far_in.and_then(|f| f.bridge.as_deref()),
        ) && ba != bb
        {
            self.bridge_path(ba, bb, size)?;
        }
        if let Some(l) = self.link(o, inn) {
            if !l.up {
                return Err(Reason::InterfaceDown {
                    at: self.name(o),
                    interface: inn.to_string(),
                });
            }
            if !l.lower_up && l.kind.as_deref() == Some("veth") {
                return Err(self.far_end_down(o, inn));
            }
        }
        self.mtu_check(o, inn, size)
    }

    /// The masquerade entries of a place: the lab's `nat:` in the host, a node's own.
    fn nat_rules(&self, at: usize) -> &[crate::topology::Nat] {
        match &self.places[at].place {
            Place::Host => &self.lab.nat,
            Place::Node(n) => self.lab.node(n).map(|n| &n.nat[..]).unwrap_or(&[]),
            Place::Internet => &[],
        }
    }

    /// The nat entry of `at` that covers `src` but not `out`, as the file writes it.
    fn excluded_nat(&self, at: usize, src: IpAddr, out: &str) -> Option<String> {
        self.nat_rules(at)
            .iter()
            .filter(|n| n.source.contains(&src))
            .find_map(|n| match &n.out {
                NatOut::NotOut(x) if x == out => {
                    Some(format!("{{ source: {}, not_out: {x} }}", n.source))
                }
                NatOut::Out(x) if x != out => Some(format!("{{ source: {}, out: {x} }}", n.source)),
                _ => None,
            })
    }

    fn nat_applies(&self, at: usize, src: IpAddr, out: &str) -> bool {
        self.nat_rules(at).iter().any(|n| {
            n.source.contains(&src)
                && match &n.out {
                    NatOut::NotOut(x) => x != out,
                    NatOut::Out(x) => x == out,
                }
        })
    }

    /// The interface of place `i` on a segment (cable or bridge) that place `j`
    /// is on too.
    fn iface_towards(&self, i: usize, j: usize) -> Option<String> {
        let (pi, pj) = (&self.places[i].place, &self.places[j].place);
        self.segs.iter().find_map(|((p, ifname), seg)| {
            (p == pi
                && self
                    .segs
                    .iter()
                    .any(|((q, _), other)| q == pj && other == seg))
            .then(|| ifname.clone())
        })
    }

    /// Follow one direction from `from` to `dst`. `iif` is None where the packet
    /// is sent (an output lookup) and the arrival interface where it is forwarded.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn leg(
        &mut self,
        from: usize,
        iif: Option<u32>,
        src: Option<IpAddr>,
        dst: IpAddr,
        dir: Dir,
        opts: &WhyOpts,
        checked: &mut Vec<String>,
    ) -> Result<Arrival, Reason> {
        let size = self.wire_size(opts, dst.is_ipv6());
        let mut w = Walk {
            here: from,
            iif,
            src,
            dst,
            dir,
            size,
            nat: None,
            bare_out: None,
            seen: Vec::new(),
            path: Vec::new(),
        };
        for _ in 0..2 * self.places.len() + 2 {
            if let Some(arrived) = self.hop(&mut w, checked)? {
                return Ok(arrived);
            }
        }
        let names: Vec<String> = w.path.iter().map(|&p| self.name(p)).collect();
        Err(Reason::RoutingLoop {
            at: self.name(w.here),
            path: names,
        })
    }

    /// One hop of a leg: arrive at `w.here`, look the destination up, leave
    /// (or arrive for good: Some).
    fn hop(&mut self, w: &mut Walk, checked: &mut Vec<String>) -> Result<Option<Arrival>, Reason> {
        let (here, dst) = (w.here, w.dst);
        let v6 = dst.is_ipv6();
        // A packet that comes back to a namespace it went through goes round.
        if let Some(k) = w.seen.iter().position(|s| s.0 == here) {
            let mut names: Vec<String> = w.path[k..].iter().map(|&p| self.name(p)).collect();
            names.push(self.name(here));
            return Err(Reason::RoutingLoop {
                at: self.name(here),
                path: names,
            });
        }
        w.seen.push((here, w.iif));
        w.path.push(here);
        if w.iif.is_some() && !self.has_addr(here, dst) && !self.forwards(here, v6) {
            return Err(Reason::NotForwarding {
                at: self.name(here),
                kind: PlaceKind::of(&self.places[here].place),
            });
        }
        let look = self.lookup(w)?;
        if look.kind == "local" {
            checked.push(format!("{}: {dst} is local", self.name(here)));
            return Ok(Some(Arrival {
                at: here,
                iif: w.iif,
                src: w.src,
                nat: w.nat,
                path: w.path.clone(),
                bare_out: w.bare_out.clone(),
            }));
        }
        let Some(oif) = look.oif else {
            return Err(Reason::Unknown {
                detail: format!("the route in {} to {dst} has no device", self.name(here)),
                checked: checked.clone(),
            });
        };
        let ifname = self.ifname(here, oif);
        if w.iif.is_none() {
            self.sending(w, &look, oif, &ifname)?;
        }
        self.leaving(here, &ifname, w.size)?;
        self.masquerade(w, &look, oif, &ifname);
        let next_hop = look.gateway.unwrap_or(dst);
        checked.push(match look.gateway {
            Some(g) => format!("{}: {dst} via {g} on {ifname}", self.name(here)),
            None => format!("{}: {dst} on {ifname}", self.name(here)),
        });
        let (o, inn) = self.next_place(here, &ifname, next_hop, v6, checked)?;
        self.cross(here, &ifname, o, &inn, w.size)?;
        // The holder is there, but did it answer? The entry the failed probe
        // left says (the matrix flushes its entries; then there is none).
        if let Some(state) = self.unresolved(here, oif, next_hop) {
            // Strict rp_filter in the holder refuses the ARP request itself when
            // its sender (the packet's source if it is on this interface, else
            // the interface's address) would be answered by another interface.
            let own: Vec<IpAddr> = self.places[here]
                .state
                .addrs_of(oif)
                .map(|a| a.addr())
                .filter(|a| a.is_ipv4())
                .collect();
            let sender = w.src.filter(|s| own.contains(s)).or(own.first().copied());
            if !v6
                && let Some(sender) = sender
                && let Some(iif) = self.link(o, &inn).map(|l| l.index)
                && let Some(r) = self.rp_filtered(o, iif, sender)
            {
                return Err(r);
            }
            return Err(Reason::NoNeighbour {
                at: self.name(here),
                next_hop,
                interface: ifname,
                holder: Some(format!("{}:{inn}", self.name(o))),
                state: Some(state),
            });
        }
        w.iif = self.link(o, &inn).map(|l| l.index);
        w.here = o;
        Ok(None)
    }

    /// The kernel's route lookup at `w.here`; a failure, or a route that is not
    /// unicast or local, is explained.
    fn lookup(&mut self, w: &Walk) -> Result<Lookup, Reason> {
        let here = w.here;
        let look = match self.places[here].conn.route_get(w.dst, w.src, w.iif) {
            Ok(l) => l,
            Err(e) => return Err(self.lookup_failure(here, w.dst, w.src, w.iif, e, w.dir)),
        };
        if look.kind == "local" || look.kind == "unicast" {
            return Ok(look);
        }
        let k = look.kind.clone();
        Err(
            match self.lookup_failure(here, w.dst, w.src, w.iif, -1, w.dir) {
                Reason::Unknown { .. } => Reason::BlockingRoute {
                    at: self.name(here),
                    dst: w.dst,
                    kind: k.clone(),
                    route: k,
                },
                r => r,
            },
        )
    }

    /// Where the probe starts: the interface it leaves by has an address of the
    /// family (or the source comes from another one), and there is a source.
    fn sending(&self, w: &mut Walk, look: &Lookup, oif: u32, ifname: &str) -> Result<(), Reason> {
        let here = w.here;
        let v6 = w.dst.is_ipv6();
        let no_address = || Reason::NoAddress {
            at: self.name(here),
            interface: ifname.to_string(),
            family: if v6 { 6 } else { 4 },
        };
        if self.missing_address(here, ifname, v6) {
            return Err(no_address());
        }
        let st = &self.places[here].state;
        if !st.addrs_of(oif).any(|a| a.addr().is_ipv6() == v6) {
            w.bare_out = Some(ifname.to_string());
        }
        if w.src.is_none() {
            w.src = look.prefsrc.or_else(|| {
                st.addrs
                    .iter()
                    .map(|a| a.addr.addr())
                    .find(|a| a.is_ipv6() == v6 && !a.is_loopback())
            });
        }
        if w.src.is_none() {
            return Err(no_address());
        }
        Ok(())
    }

    /// The interface the packet leaves by: up, with carrier, big enough.
    fn leaving(&self, here: usize, ifname: &str, size: Option<usize>) -> Result<(), Reason> {
        if let Some(l) = self.link(here, ifname) {
            if !l.up {
                return Err(Reason::InterfaceDown {
                    at: self.name(here),
                    interface: ifname.to_string(),
                });
            }
            if !l.lower_up {
                return Err(self.far_end_down(here, ifname));
            }
        }
        self.mtu_check(here, ifname, size)
    }

    /// NAT on the way out of the host: the source becomes the host's address.
    fn masquerade(&self, w: &mut Walk, look: &Lookup, oif: u32, ifname: &str) {
        let here = w.here;
        if self.places[here].place != Place::Internet
            && let Some(s) = w.src
            && self.nat_applies(here, s, ifname)
        {
            let new = look
                .prefsrc
                .filter(|p| p.is_ipv4() == s.is_ipv4())
                .or_else(|| {
                    self.places[here]
                        .state
                        .addrs_of(oif)
                        .map(|a| a.addr())
                        .find(|a| {
                            a.is_ipv4() == s.is_ipv4()
                                && !matches!(a, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80)
                        })
                });
            if let Some(n) = new {
                w.nat = Some((here, s));
                w.src = Some(n);
            }
        }
    }

    /// The place and interface across the link that take packets for
    /// `next_hop`, or why there is none.
    fn next_place(
        &self,
        here: usize,
        ifname: &str,
        next_hop: IpAddr,
        v6: bool,
        checked: &[String],
    ) -> Result<(usize, String), Reason> {
        if let Some(found) = self.across(here, ifname, next_hop) {
            return Ok(found);
        }
        let modelled = self
            .segs
            .contains_key(&(self.places[here].place.clone(), ifname.to_string()));
        if !modelled && self.places[here].place == Place::Host && !self.lab.sandbox {
            // Host mode: the real uplink. What is beyond is not the lab's.
            return Err(Reason::Unknown {
                detail: format!(
                    "the probe leaves the lab by {ifname} in host (next hop {next_hop}); nslab cannot follow it beyond"
                ),
                checked: checked.to_vec(),
            });
        }
        // The file gives the next hop's address to an interface that lost it:
        // that is the fault, not the gateway.
        if let Some((o, name)) = self.declared_holder(next_hop)
            && self.missing_address(o, &name, v6)
        {
            return Err(Reason::NoAddress {
                at: self.name(o),
                interface: name,
                family: if v6 { 6 } else { 4 },
            });
        }
        if let Some(detail) = self.across_machines(here, ifname) {
            return Err(Reason::AcrossMachines {
                at: self.name(here),
                next_hop,
                interface: ifname.to_string(),
                detail,
            });
        }
        Err(Reason::NoNeighbour {
            at: self.name(here),
            next_hop,
            interface: ifname.to_string(),
            holder: None,
            state: None,
        })
    }

    /// A lab over several machines: the next hop may be on another machine,
    /// behind `ifname` (a VXLAN cable, or a port of a bridge with a VXLAN
    /// port). Name the VXLAN, the machines, and whether the underlay routes there.
    fn across_machines(&self, here: usize, ifname: &str) -> Option<String> {
        let place = &self.places[here].place;
        let bridge = match self.far.get(&(place.clone(), ifname.to_string())) {
            Some(e) => e.bridge.clone(),
            // The host's own bridge (its address is on it).
            None if *place == Place::Host => Some(ifname.to_string()),
            None => None,
        };
        let v = self.lab.vxlans.iter().find(|v| {
            (v.place == *place && v.name == ifname && v.far_end.is_some())
                || (v.master.is_some() && v.master == bridge)
        })?;
        let remotes: Vec<IpAddr> = v.remote.iter().chain(&v.flood).copied().collect();
        let host = match &self.underlay {
            Some(u) => Some(u),
            None => self
                .places
                .iter()
                .find(|p| p.place == Place::Host)
                .map(|p| &p.state),
        };
        let unrouted: Vec<String> = remotes
            .iter()
            .filter(|r| {
                !host.is_some_and(|h| {
                    h.routes.iter().any(|x| x.dst.contains(*r))
                        || h.addrs.iter().any(|a| a.addr.contains(*r))
                })
            })
            .map(|r| r.to_string())
            .collect();
        let what = match (&v.far_end, &v.master) {
            (Some(far), _) => format!(
                "{ifname} is VXLAN {} (vni {}) to {far} on machine",
                v.name, v.vni
            ),
            (None, Some(b)) => format!(
                "bridge {b} spans machines over its VXLAN port {} (vni {}) to machine",
                v.name, v.vni
            ),
            (None, None) => format!("VXLAN {} (vni {}) to machine", v.name, v.vni),
        };
        let machines: Vec<String> = v
            .peers
            .iter()
            .zip(&remotes)
            .map(|(m, r)| format!("{m} ({r})"))
            .collect();
        let underlay = if unrouted.is_empty() {
            format!(
                "the underlay routes there: is the part of {} up?",
                v.peers.join(", ")
            )
        } else {
            format!(
                "the host has no route to {} over the underlay",
                unrouted.join(", ")
            )
        };
        Some(format!(
            "{what}{} {}; {underlay}",
            if v.peers.len() == 1 { "" } else { "s" },
            machines.join(", ")
        ))
    }
}

/// Where a leg is, hop by hop.
struct Walk {
    here: usize,
    iif: Option<u32>,
    src: Option<IpAddr>,
    dst: IpAddr,
    dir: Dir,
    size: Option<usize>,
    nat: Option<(usize, IpAddr)>,
    bare_out: Option<String>,
    seen: Vec<(usize, Option<u32>)>,
    path: Vec<usize>,
}

impl<H: NsHandle> Ctx<'_, H> {
    /// Why does `src` not reach `dst` with a default-size ping?
    pub fn why_not(&mut self, src: &Place, dst: IpAddr) -> Reason {
        self.why_not_with(src, dst, &WhyOpts::default())
    }

    /// Why does `src` not reach `dst` with the probe `opts` describes? A
    /// partition between them first; then the walk there and back; then, when
    /// the kernel's routes and links say the probe should pass, a traced probe
    /// to catch a firewall drop. A link on the way that `nslab link` set down
    /// is named as such.
    pub fn why_not_with(&mut self, src: &Place, dst: IpAddr, opts: &WhyOpts) -> Reason {
        if let Some(r) = self.partitioned(src, dst) {
            return r;
        }
        self.last_legs.clear();
        let r = self.walk_why(src, dst, opts);
        let r = self.held_down(r, dst);
        self.name_shaping(r)
    }

    fn walk_why(&mut self, src: &Place, dst: IpAddr, opts: &WhyOpts) -> Reason {
        let Some(start) = self.idx(src) else {
            return Reason::Unknown {
                detail: format!("{src} is not open"),
                checked: vec![],
            };
        };
        let mut checked = Vec::new();
        let there = match self.leg(start, None, None, dst, Dir::Forward, opts, &mut checked) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let Some(back_to) = there.src else {
            return Reason::Unknown {
                detail: "no source address for the probe".into(),
                checked,
            };
        };
        // The reply: from the address probed, to the source as it arrived.
        let back = self.leg(
            there.at,
            None,
            Some(dst),
            back_to,
            Dir::Return,
            opts,
            &mut checked,
        );
        let back = match back {
            Ok(a) => a,
            // The reply went to an address of another interface: the bare one is
            // the fault (the kernel picked `back_to` because it had none).
            Err(_) if there.bare_out.is_some() => {
                return Reason::NoAddress {
                    at: self.name(start),
                    interface: there.bare_out.clone().unwrap_or_default(),
                    family: if dst.is_ipv6() { 6 } else { 4 },
                };
            }
            Err(r) => return self.explain_return_failure(r, &there, back_to, start),
        };
        // Undone NAT: the host hands the reply on to the original source.
        let back = match there.nat {
            Some((h, orig)) if back.at == h => {
                match self.leg(
                    h,
                    back.iif,
                    Some(dst),
                    orig,
                    Dir::Return,
                    opts,
                    &mut checked,
                ) {
                    Ok(a) => a,
                    Err(r) => return r,
                }
            }
            _ => back,
        };
        if back.at != start {
            return Reason::Unknown {
                detail: format!(
                    "the reply to {back_to} goes to {} instead of {}",
                    self.name(back.at),
                    self.name(start)
                ),
                checked,
            };
        }
        self.last_legs = vec![there.path.clone(), back.path.clone()];
        // Routes and links are fine: ask the firewalls on the way.
        if !opts.no_trace && self.traces_left == 0 {
            checked.push(format!(
                "no nftables trace: at most {TRACES} probes are traced per run"
            ));
        } else if !opts.no_trace {
            self.traces_left -= 1;
            let mut on_path: Vec<usize> = there.path.clone();
            on_path.extend(back.path.iter().copied());
            match self.trace(start, dst, opts.tcp_port, &on_path) {
                Ok(Some(r)) => return r,
                Ok(None) => checked.push(format!(
                    "nftables trace in {}: no rule dropped the probe",
                    super::trace::names(self, &on_path)
                )),
                Err(e) => checked.push(format!("nftables trace: {e}")),
            }
        }
        Reason::Unknown {
            detail: "the routes, links, bridges and firewalls on the way there and back let the probe through"
                .into(),
            checked,
        }
    }

    /// The reply could not get back: an untranslated private source that left
    /// the host for the outside is a missing NAT; a source taken from another
    /// interface is that interface's missing address.
    fn explain_return_failure(
        &self,
        r: Reason,
        there: &Arrival,
        back_to: IpAddr,
        start: usize,
    ) -> Reason {
        let Reason::NoRouteBack { at, to } = r else {
            return r;
        };
        // A router on the way out that masquerades (`nat:` of a node) but not
        // this packet: its entries exclude it, or none covers the source.
        if there.nat.is_none() {
            let mut routers = there.path.windows(2).rev().filter(|w| {
                matches!(self.places[w[0]].place, Place::Node(_))
                    && !self.nat_rules(w[0]).is_empty()
            });
            if let Some(w) = routers.next() {
                let out = self
                    .iface_towards(w[0], w[1])
                    .unwrap_or_else(|| "its way out".into());
                return Reason::NoNat {
                    host: self.name(w[0]),
                    src: back_to,
                    excluded_by: self.excluded_nat(w[0], back_to, &out),
                    out,
                };
            }
        }
        if there.nat.is_none()
            && self.places[there.at].place == Place::Internet
            && let Some(h) = self.host_idx()
        {
            let out = self.places[h]
                .state
                .links
                .iter()
                .find(|l| l.name == crate::topology::UPLINK_IF)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| "its uplink".into());
            return Reason::NoNat {
                host: self.name(h),
                src: back_to,
                excluded_by: self.excluded_nat(h, back_to, &out),
                out,
            };
        }
        let _ = start;
        Reason::NoRouteBack { at, to }
    }
}
