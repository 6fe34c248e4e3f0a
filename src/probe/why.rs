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

/// The first obstacle found on the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    NoRoute {
        at: String,
        dst: IpAddr,
    },
    InterfaceDown {
        at: String,
        interface: String,
    },
    PeerDown {
        at: String,
        interface: String,
    },
    NoNeighbour {
        at: String,
        next_hop: IpAddr,
        interface: String,
    },
    NotForwarding {
        at: String,
    },
    FirewallDrop {
        at: String,
        chain: String,
    },
    NoNat {
        host: String,
        src: IpAddr,
        out: String,
    },
    NoRouteBack {
        at: String,
        to: IpAddr,
    },
    Unreachable {
        at: String,
        dst: IpAddr,
        kind: String,
    },
    Unknown {
        detail: String,
    },
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
            Reason::PeerDown { at, interface } => write!(
                f,
                "interface {interface} in {at} has no carrier: the other end of its cable is down"
            ),
            Reason::NoNeighbour {
                at,
                next_hop,
                interface,
            } => write!(
                f,
                "no neighbour answers for {next_hop} on {interface} in {at}: nothing on that link has this address (a wrong gateway?)"
            ),
            Reason::NotForwarding { at } => write!(
                f,
                "{at} does not forward packets (net.ipv4.ip_forward=0): give it `forward: true`"
            ),
            Reason::FirewallDrop { at, chain } => {
                write!(f, "a firewall in {at} drops forwarded traffic ({chain})")
            }
            Reason::NoNat { host, src, out } => write!(
                f,
                "{src} leaves {host} by {out} without NAT, and nothing on the other side has a route back to {src}: add a `nat` entry (masquerade)"
            ),
            Reason::NoRouteBack { at, to } => write!(f, "no route back: {at} has no route to {to}"),
            Reason::Unreachable { at, dst, kind } => {
                write!(f, "{at} has a route of type {kind} to {dst}")
            }
            Reason::Unknown { detail } => write!(f, "{detail}"),
        }
    }
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

    /// Why does `src` not reach `dst`? None if the kernel's state says it should.
    pub fn why_not(&mut self, src: &Place, dst: IpAddr) -> Reason {
        let Some(mut here) = self.idx(src) else {
            return Reason::Unknown {
                detail: format!("{src} is not open"),
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
                    };
                }
            };
            match look.kind {
                RouteType::Local => break,
                RouteType::Unicast => {}
                k => {
                    return Reason::Unreachable {
                        at: self.name(here),
                        dst,
                        kind: format!("{k:?}").to_lowercase(),
                    };
                }
            }
            let Some(oif) = look.oif else {
                return Reason::Unknown {
                    detail: format!("route in {} to {dst} has no device", self.name(here)),
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
                };
            }
            if let Some(c) = &self.places[owner].forward_drop {
                return Reason::FirewallDrop {
                    at: self.name(owner),
                    chain: c.clone(),
                };
            }
            here = owner;
        }
        // At the destination: is there a way back?
        let Some(back) = src_addr else {
            return Reason::Unknown {
                detail: "no source address for the probe".into(),
            };
        };
        match route_get(&mut self.places[here].conn, back) {
            Ok(l) if l.kind == RouteType::Unicast || l.kind == RouteType::Local => {}
            Ok(l) => {
                return Reason::Unreachable {
                    at: self.name(here),
                    dst: back,
                    kind: format!("{:?}", l.kind).to_lowercase(),
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
        }
    }
}
