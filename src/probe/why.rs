//! "Why not": walk the path a packet would take through the lab, asking each
//! namespace's kernel (route lookups like `ip route get`, link states, forwarding,
//! firewalls), and name the first thing that stops it.

use crate::kernel::conn::Conn;
use crate::kernel::msg;
use crate::kernel::netns;
use crate::kernel::observe::NsState;
use crate::topology::{Lab, Place};
use netlink_packet_route::RouteNetlinkMessage as M;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The first obstacle found on the path. In JSON the variant is the `reason`
/// field (`"no_route"`, `"firewall_drop"`, ...) and `at` names the place (a node,
/// `host` or `internet`) where the obstacle is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The route lookup in `at` finds nothing for `dst`.
    NoRoute { at: String, dst: IpAddr },
    /// The interface the packet must leave (or enter) by is administratively down.
    InterfaceDown { at: String, interface: String },
    /// `interface` in `at` has no carrier because the far end of its cable,
    /// `far_interface` in `far_at`, is down.
    PeerDown {
        at: String,
        interface: String,
        far_at: String,
        far_interface: String,
    },
    /// The bridge the path crosses is down (`at` is the place holding it).
    BridgeDown { at: String, bridge: String },
    /// A port of the bridge is down, or not in the forwarding state.
    BridgePortDown {
        at: String,
        bridge: String,
        port: String,
        state: String,
    },
    /// The interface has no address of the probe's family, so the packet leaves
    /// with another interface's address (or none).
    NoAddress {
        at: String,
        interface: String,
        family: u8,
    },
    /// Nothing on the link answers for the next hop.
    NoNeighbour {
        at: String,
        next_hop: IpAddr,
        interface: String,
    },
    /// A hop that must forward does not.
    NotForwarding { at: String, kind: PlaceKind },
    /// An nftables rule (or a chain's policy) drops the probe; seen in a trace.
    FirewallDrop {
        at: String,
        family: String,
        table: String,
        chain: String,
        /// The rule's handle; None when the chain's policy dropped it.
        handle: Option<u64>,
        /// The rule as `nft list` prints it, when it could be read.
        rule: Option<String>,
    },
    /// The probe leaves `host` untranslated and nothing outside routes back.
    NoNat {
        host: String,
        src: IpAddr,
        out: String,
        /// The nat entry that exists but does not apply to `out`.
        excluded_by: Option<String>,
    },
    /// On the way back, `at` has no route to the probe's source.
    NoRouteBack { at: String, to: IpAddr },
    /// A blackhole, unreachable, prohibit or throw route in `at` covers `dst`.
    BlockingRoute {
        at: String,
        dst: IpAddr,
        kind: String,
        route: String,
    },
    /// Reverse-path filtering in `at` drops the packet from `src` arriving on
    /// `interface`.
    RpFilter {
        at: String,
        interface: String,
        src: IpAddr,
        mode: String,
    },
    /// The packet (`size` bytes on the wire) does not fit the MTU of `interface`.
    Mtu {
        at: String,
        interface: String,
        mtu: u32,
        size: usize,
    },
    /// The packet goes round in circles; `path` is the loop.
    RoutingLoop { at: String, path: Vec<String> },
    /// Another interface answers for the destination's address.
    DuplicateAddress {
        at: String,
        address: IpAddr,
        answered_mac: String,
        expected_mac: String,
        /// The place and interface that has the answering MAC, when in the lab.
        impostor: Option<String>,
    },
    /// Nothing on the path explains it; `checked` lists what was looked at.
    Unknown {
        detail: String,
        checked: Vec<String>,
    },
}

/// What a place is, for advice: only nodes are the user's to reconfigure freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    Node,
    Host,
    Internet,
}

impl PlaceKind {
    pub fn of(p: &Place) -> PlaceKind {
        match p {
            Place::Node(_) => PlaceKind::Node,
            Place::Host => PlaceKind::Host,
            Place::Internet => PlaceKind::Internet,
        }
    }
}

impl Reason {
    /// The JSON name of the reason (`no_route`, ...).
    pub fn class(&self) -> &'static str {
        match self {
            Reason::NoRoute { .. } => "no_route",
            Reason::InterfaceDown { .. } => "interface_down",
            Reason::PeerDown { .. } => "peer_down",
            Reason::BridgeDown { .. } => "bridge_down",
            Reason::BridgePortDown { .. } => "bridge_port_down",
            Reason::NoAddress { .. } => "no_address",
            Reason::NoNeighbour { .. } => "no_neighbour",
            Reason::NotForwarding { .. } => "not_forwarding",
            Reason::FirewallDrop { .. } => "firewall_drop",
            Reason::NoNat { .. } => "no_nat",
            Reason::NoRouteBack { .. } => "no_route_back",
            Reason::BlockingRoute { .. } => "blocking_route",
            Reason::RpFilter { .. } => "rp_filter",
            Reason::Mtu { .. } => "mtu",
            Reason::RoutingLoop { .. } => "routing_loop",
            Reason::DuplicateAddress { .. } => "duplicate_address",
            Reason::Unknown { .. } => "unknown",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Reason::NoRoute { at, dst } => write!(
                f,
                "no route in {at} to {dst} (`ip route get {dst}` fails there): add a route or a default route"
            ),
            Reason::InterfaceDown { at, interface } => {
                write!(f, "interface {interface} in {at} is down")
            }
            Reason::PeerDown {
                at,
                interface,
                far_at,
                far_interface,
            } => write!(
                f,
                "interface {interface} in {at} has no carrier: the far end of its cable, {far_interface} in {far_at}, is down"
            ),
            Reason::BridgeDown { at, bridge } => {
                write!(f, "bridge {bridge} in {at} is down")
            }
            Reason::BridgePortDown {
                at,
                bridge,
                port,
                state,
            } => write!(f, "port {port} of bridge {bridge} in {at} is {state}"),
            Reason::NoAddress {
                at,
                interface,
                family,
            } => write!(
                f,
                "interface {interface} in {at} has no IPv{family} address: packets leave it with another interface's address, or none"
            ),
            Reason::NoNeighbour {
                at,
                next_hop,
                interface,
            } => write!(
                f,
                "no neighbour answers for {next_hop} on {interface} in {at}: nothing on that link has this address (a wrong gateway?)"
            ),
            Reason::NotForwarding { at, kind } => match kind {
                PlaceKind::Node => write!(
                    f,
                    "{at} does not forward packets (net.ipv4.ip_forward=0): give it `forward: true`"
                ),
                PlaceKind::Host => write!(
                    f,
                    "host does not forward packets (net.ipv4.ip_forward=0): nslab turns it on when the file has a `nat` entry"
                ),
                PlaceKind::Internet => write!(
                    f,
                    "internet stands for the outside world and does not forward packets: the lab cannot be reached through it"
                ),
            },
            Reason::FirewallDrop {
                at,
                family,
                table,
                chain,
                handle,
                rule,
            } => {
                match handle {
                    Some(h) => write!(
                        f,
                        "a firewall rule in {at} drops the probe: table {family} {table}, chain {chain}, rule handle {h}"
                    )?,
                    None => write!(
                        f,
                        "a firewall in {at} drops the probe: the policy of chain {chain} in table {family} {table}"
                    )?,
                }
                if let Some(r) = rule {
                    write!(f, " ({r})")?;
                }
                Ok(())
            }
            Reason::NoNat {
                host,
                src,
                out,
                excluded_by,
            } => match excluded_by {
                Some(n) => write!(
                    f,
                    "{src} leaves {host} by {out} without NAT: the nat entry `{n}` does not apply to {out}, and nothing on the other side has a route back to {src}"
                ),
                None => write!(
                    f,
                    "{src} leaves {host} by {out} without NAT, and nothing on the other side has a route back to {src}: add a `nat` entry (masquerade)"
                ),
            },
            Reason::NoRouteBack { at, to } => write!(f, "no route back: {at} has no route to {to}"),
            Reason::BlockingRoute {
                at,
                dst,
                kind,
                route,
            } => write!(f, "{at} has a {kind} route for {dst}: `{route}`"),
            Reason::RpFilter {
                at,
                interface,
                src,
                mode,
            } => write!(
                f,
                "reverse-path filtering ({mode}) in {at} drops packets from {src} arriving on {interface}: the way back to {src} leaves by another interface"
            ),
            Reason::Mtu {
                at,
                interface,
                mtu,
                size,
            } => write!(
                f,
                "a {size}-byte packet does not fit {interface} in {at} (MTU {mtu}) and may not be fragmented"
            ),
            Reason::RoutingLoop { at, path } => write!(
                f,
                "routing loop through {at}: {} (the TTL runs out)",
                path.join(" -> ")
            ),
            Reason::DuplicateAddress {
                at,
                address,
                answered_mac,
                expected_mac,
                impostor,
            } => {
                write!(
                    f,
                    "duplicate address: {address} answers from {answered_mac}, but {at} has it on {expected_mac}"
                )?;
                if let Some(i) = impostor {
                    write!(f, " ({answered_mac} is {i})")?;
                }
                Ok(())
            }
            Reason::Unknown { detail, checked } => {
                write!(f, "{detail}")?;
                if !checked.is_empty() {
                    write!(f, "; checked: {}", checked.join("; "))?;
                }
                Ok(())
            }
        }
    }
}

/// What the failed probe was, as far as the walk cares.
#[derive(Debug, Clone, Default)]
pub struct WhyOpts {
    /// ICMP payload bytes of a probe sent with DF set (`reach: size:`, `ping -s`).
    pub size: Option<usize>,
}

/// What the walk needs to know of one place.
pub struct PlaceView {
    pub place: Place,
    pub conn: Conn,
    pub state: NsState,
    pub forwarding: (bool, bool),
    /// A forward-hook base chain with policy drop, if any.
    pub forward_drop: Option<String>,
}

pub struct Ctx<'a> {
    pub lab: &'a Lab,
    pub places: Vec<PlaceView>,
}

/// Result of `ip route get`.
struct Lookup {
    kind: RouteType,
    oif: Option<u32>,
    gateway: Option<IpAddr>,
    prefsrc: Option<IpAddr>,
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

fn route_get(c: &mut Conn, dst: IpAddr) -> Result<Lookup, i32> {
    match c.nl.query(msg::route_get(dst), "route get") {
        Ok(M::NewRoute(r)) => {
            let mut l = Lookup {
                kind: r.header.kind,
                oif: None,
                gateway: None,
                prefsrc: None,
            };
            for a in &r.attributes {
                match a {
                    RouteAttribute::Oif(o) => l.oif = Some(*o),
                    RouteAttribute::Gateway(g) => l.gateway = ip_of(g),
                    RouteAttribute::PrefSource(p) => l.prefsrc = ip_of(p),
                    _ => {}
                }
            }
            Ok(l)
        }
        Ok(_) => Err(libc::EIO),
        Err(e) => Err(e.errno),
    }
}

impl<'a> Ctx<'a> {
    /// Open every place of the lab and read what the walk needs.
    pub fn open(lab: &'a Lab, files: Vec<(Place, std::fs::File)>) -> std::io::Result<Ctx<'a>> {
        let mut places = Vec::new();
        for (place, file) in files {
            let nl = netns::run_in(&file, crate::kernel::netlink::Rtnl::new)??;
            let mut conn = Conn::new(file, nl);
            let state = conn
                .observe()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let fwd = netns::run_in(&conn.file, || {
                (
                    netns::sysctl_get("net.ipv4.ip_forward")
                        .map(|v| v == "1")
                        .unwrap_or(false),
                    netns::sysctl_get("net.ipv6.conf.all.forwarding")
                        .map(|v| v == "1")
                        .unwrap_or(false),
                )
            })?;
            let forward_drop = netns::run_in(&conn.file, || {
                crate::kernel::nft::NftSocket::new()
                    .ok()
                    .and_then(|mut s| s.list_base_chains().ok())
                    .and_then(|chains| {
                        chains
                            .into_iter()
                            .find(|c| c.hook == crate::kernel::nft::Hook::Forward && c.policy_drop)
                            .map(|c| c.to_string())
                    })
            })?;
            places.push(PlaceView {
                place,
                conn,
                state,
                forwarding: fwd,
                forward_drop,
            });
        }
        Ok(Ctx { lab, places })
    }

    fn idx(&self, p: &Place) -> Option<usize> {
        self.places.iter().position(|v| &v.place == p)
    }

    /// The place holding an address (from the kernel's own address lists).
    fn owner(&self, a: IpAddr) -> Option<usize> {
        self.places
            .iter()
            .position(|v| v.state.addrs.iter().any(|x| x.addr.addr() == a))
    }

    fn name(&self, i: usize) -> String {
        self.places[i].place.to_string()
    }

    /// Layer-2 segment of each (place, interface): veth peers and bridge ports share one.
    fn segments(&self) -> BTreeMap<(Place, String), usize> {
        let mut seg: BTreeMap<(Place, String), usize> = BTreeMap::new();
        let mut next = 0;
        for l in crate::plan::all_links(self.lab) {
            let ka = (
                l.a.place.clone(),
                l.a.bridge.clone().unwrap_or_else(|| l.a.ifname.clone()),
            );
            let kb = (
                l.b.place.clone(),
                l.b.bridge.clone().unwrap_or_else(|| l.b.ifname.clone()),
            );
            let id = seg.get(&ka).or(seg.get(&kb)).copied().unwrap_or_else(|| {
                next += 1;
                next
            });
            seg.insert(ka, id);
            seg.insert(kb, id);
            seg.insert((l.a.place.clone(), l.a.ifname.clone()), id);
            seg.insert((l.b.place.clone(), l.b.ifname.clone()), id);
        }
        seg
    }

    /// A declared route of the place covering `dst` whose device is down.
    fn down_route_dev(&self, i: usize, dst: IpAddr) -> Option<String> {
        let p = &self.places[i];
        let routes = match &p.place {
            Place::Node(n) => self.lab.node(n)?.routes.clone(),
            Place::Host => self.lab.host.routes.clone(),
            Place::Internet => vec![],
        };
        routes
            .iter()
            .filter(|r| r.dst.contains(&dst))
            .filter_map(|r| r.dev.clone())
            .find(|d| p.state.link(d).is_some_and(|l| !l.up))
    }

    fn ifname(&self, i: usize, index: u32) -> String {
        self.places[i]
            .state
            .link_by_index(index)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("if{index}"))
    }

    /// Why does `src` not reach `dst` with a default-size ping?
    pub fn why_not(&mut self, src: &Place, dst: IpAddr) -> Reason {
        self.why_not_with(src, dst, &WhyOpts::default())
    }

    /// Why does `src` not reach `dst` with the probe `opts` describes?
    pub fn why_not_with(&mut self, src: &Place, dst: IpAddr, opts: &WhyOpts) -> Reason {
        let _ = opts;
        let Some(mut here) = self.idx(src) else {
            return Reason::Unknown {
                detail: format!("{src} is not open"),
                checked: vec![],
            };
        };
        let segs = self.segments();
        let v6 = dst.is_ipv6();
        let mut src_addr: Option<IpAddr> = None;
        let mut translated = false;
        for _ in 0..16 {
            let look = match route_get(&mut self.places[here].conn, dst) {
                Ok(l) => l,
                Err(e) if e == libc::ENETUNREACH || e == libc::EHOSTUNREACH => {
                    // A link that is down takes its routes with it: say so.
                    if let Some(i) = self.down_route_dev(here, dst) {
                        return Reason::InterfaceDown {
                            at: self.name(here),
                            interface: i,
                        };
                    }
                    return Reason::NoRoute {
                        at: self.name(here),
                        dst,
                    };
                }
                Err(e) => {
                    return Reason::Unknown {
                        detail: format!(
                            "route lookup in {} failed: {}",
                            self.name(here),
                            crate::kernel::netlink::errno_text(e)
                        ),
                        checked: vec![],
                    };
                }
            };
            match look.kind {
                RouteType::Local => break,
                RouteType::Unicast => {}
                k => {
                    return Reason::BlockingRoute {
                        at: self.name(here),
                        dst,
                        kind: format!("{k:?}").to_lowercase(),
                        route: String::new(),
                    };
                }
            }
            let Some(oif) = look.oif else {
                return Reason::Unknown {
                    detail: format!("route in {} to {dst} has no device", self.name(here)),
                    checked: vec![],
                };
            };
            let ifname = self.ifname(here, oif);
            if src_addr.is_none() {
                src_addr = look.prefsrc.or_else(|| {
                    self.places[here]
                        .state
                        .addrs_of(oif)
                        .map(|a| a.addr())
                        .find(|a| a.is_ipv6() == v6)
                });
            }
            if let Some(l) = self.places[here].state.link_by_index(oif) {
                if !l.up {
                    return Reason::InterfaceDown {
                        at: self.name(here),
                        interface: ifname,
                    };
                }
                if !l.lower_up {
                    return Reason::PeerDown {
                        at: self.name(here),
                        interface: ifname,
                        far_at: String::new(),
                        far_interface: String::new(),
                    };
                }
            }
            // NAT on the way out of the host: the source becomes the host's address.
            if self.places[here].place == Place::Host
                && let Some(s @ IpAddr::V4(s4)) = src_addr
            {
                let out_ok = |o: &crate::topology::NatOut| match o {
                    crate::topology::NatOut::NotOut(x) => x != &ifname,
                    crate::topology::NatOut::Out(x) => x == &ifname,
                };
                if self
                    .lab
                    .nat
                    .iter()
                    .any(|n| n.source.contains(&s4) && out_ok(&n.out))
                {
                    src_addr = look
                        .prefsrc
                        .or_else(|| {
                            self.places[here]
                                .state
                                .addrs_of(oif)
                                .map(|a| a.addr())
                                .find(|a| a.is_ipv4())
                        })
                        .or(Some(s));
                    translated = true;
                }
            }
            let next_hop = look.gateway.unwrap_or(dst);
            let Some(owner) = self.owner(next_hop) else {
                return Reason::NoNeighbour {
                    at: self.name(here),
                    next_hop,
                    interface: ifname,
                };
            };
            // The next hop must sit on the same link (veth pair or bridge) as the device.
            let here_seg = segs.get(&(self.places[here].place.clone(), ifname.clone()));
            let owner_if = self.places[owner]
                .state
                .addrs
                .iter()
                .find(|a| a.addr.addr() == next_hop)
                .and_then(|a| self.places[owner].state.link_by_index(a.index))
                .map(|l| l.name.clone());
            let owner_seg = owner_if
                .as_ref()
                .and_then(|n| segs.get(&(self.places[owner].place.clone(), n.clone())));
            // (An address on lo, like the internet's 198.51.100.8, is on no link.)
            if here_seg.is_some() && here_seg != owner_seg {
                return Reason::NoNeighbour {
                    at: self.name(here),
                    next_hop,
                    interface: ifname,
                };
            }
            if self.places[owner]
                .state
                .addrs
                .iter()
                .any(|a| a.addr.addr() == dst)
            {
                here = owner;
                break;
            }
            // A hop in between must forward.
            let fwd = if v6 {
                self.places[owner].forwarding.1
            } else {
                self.places[owner].forwarding.0
            };
            if !fwd {
                return Reason::NotForwarding {
                    at: self.name(owner),
                    kind: PlaceKind::of(&self.places[owner].place),
                };
            }
            if let Some(c) = &self.places[owner].forward_drop {
                return Reason::FirewallDrop {
                    at: self.name(owner),
                    family: String::new(),
                    table: String::new(),
                    chain: c.clone(),
                    handle: None,
                    rule: None,
                };
            }
            here = owner;
        }
        // At the destination: is there a way back?
        let Some(back) = src_addr else {
            return Reason::Unknown {
                detail: "no source address for the probe".into(),
                checked: vec![],
            };
        };
        match route_get(&mut self.places[here].conn, back) {
            Ok(l) if l.kind == RouteType::Unicast || l.kind == RouteType::Local => {}
            Ok(l) => {
                return Reason::BlockingRoute {
                    at: self.name(here),
                    dst: back,
                    kind: format!("{:?}", l.kind).to_lowercase(),
                    route: String::new(),
                };
            }
            Err(_) => {
                // No way back to a private source that crossed the host untranslated.
                if !translated
                    && self.places[here].place == Place::Internet
                    && let Some(h) = self.idx(&Place::Host)
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
                        src: back,
                        out,
                        excluded_by: None,
                    };
                }
                return Reason::NoRouteBack {
                    at: self.name(here),
                    to: back,
                };
            }
        }
        Reason::Unknown {
            detail: format!(
                "the routes, links and forwarding on the path look right; a firewall inside a node, or a neighbour that did not answer in time? (source {back})"
            ),
            checked: vec![],
        }
    }
}
