//! What the kernel has in one namespace: links, addresses and routes, read by one
//! dump each and reduced to the fields nslab plans with.

use super::msg;
use super::netlink::{NlError, Rtnl};
use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage as M;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteProtocol, RouteScope, RouteType,
};
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObsLink {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub alias: Option<String>,
    pub up: bool,
    /// Carrier: the other end of a veth is up too.
    pub lower_up: bool,
    pub master: Option<u32>,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    /// For a veth: the peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObsAddr {
    pub index: u32,
    pub addr: IpNet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObsRoute {
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: Option<u32>,
    pub onlink: bool,
    /// "kernel", "static", "boot", ...
    pub protocol: String,
    pub scope_link: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NsState {
    pub links: Vec<ObsLink>,
    pub addrs: Vec<ObsAddr>,
    pub routes: Vec<ObsRoute>,
}

impl NsState {
    pub fn link(&self, name: &str) -> Option<&ObsLink> {
        self.links.iter().find(|l| l.name == name)
    }
    pub fn link_by_index(&self, i: u32) -> Option<&ObsLink> {
        self.links.iter().find(|l| l.index == i)
    }
    pub fn addrs_of(&self, index: u32) -> impl Iterator<Item = &IpNet> {
        self.addrs
            .iter()
            .filter(move |a| a.index == index)
            .map(|a| &a.addr)
    }
}

pub fn links(nl: &mut Rtnl) -> Result<Vec<ObsLink>, NlError> {
    let mut out = Vec::new();
    for m in nl.dump(msg::get_links(), "list interfaces")? {
        let M::NewLink(l) = m else { continue };
        let mut o = ObsLink {
            index: l.header.index,
            name: String::new(),
            kind: None,
            alias: None,
            up: l.header.flags.contains(LinkFlags::Up),
            lower_up: l.header.flags.contains(LinkFlags::LowerUp),
            master: None,
            mtu: None,
            mac: None,
            peer_index: None,
        };
        for a in l.attributes {
            match a {
                LinkAttribute::IfName(n) => o.name = n,
                LinkAttribute::IfAlias(s) => o.alias = Some(s),
                LinkAttribute::Controller(i) => o.master = Some(i),
                LinkAttribute::Mtu(m) => o.mtu = Some(m),
                LinkAttribute::Link(i) => o.peer_index = Some(i),
                LinkAttribute::Address(mac) if mac.len() == 6 => {
                    let mut x = [0u8; 6];
                    x.copy_from_slice(&mac);
                    o.mac = Some(x);
                }
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            o.kind = Some(kind_name(&k));
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(o);
    }
    Ok(out)
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Veth => "veth".into(),
        InfoKind::Bridge => "bridge".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

pub fn addrs(nl: &mut Rtnl) -> Result<Vec<ObsAddr>, NlError> {
    let mut out = Vec::new();
    for m in nl.dump(msg::get_addrs(), "list addresses")? {
        let M::NewAddress(a) = m else { continue };
        let mut local = None;
        let mut address = None;
        for at in &a.attributes {
            match at {
                AddressAttribute::Local(l) => local = Some(*l),
                AddressAttribute::Address(l) => address = Some(*l),
                _ => {}
            }
        }
        if let Some(ip) = local.or(address)
            && let Ok(n) = IpNet::new(ip, a.header.prefix_len)
        {
            out.push(ObsAddr {
                index: a.header.index,
                addr: n,
            });
        }
    }
    Ok(out)
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

/// Unicast routes of the main table (IPv4 and IPv6).
pub fn routes(nl: &mut Rtnl) -> Result<Vec<ObsRoute>, NlError> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        for m in nl.dump(msg::get_routes(v6), "list routes")? {
            let M::NewRoute(r) = m else { continue };
            if let Some(o) = parse_route(&r) {
                out.push(o);
            }
        }
    }
    Ok(out)
}

pub fn parse_route(r: &netlink_packet_route::route::RouteMessage) -> Option<ObsRoute> {
    let mut table = r.header.table as u32;
    let mut dst = None;
    let mut via = None;
    let mut oif = None;
    let mut metric = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => via = ip_of(g),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::Priority(p) => metric = Some(*p),
            _ => {}
        }
    }
    if table != 254 || r.header.kind != RouteType::Unicast {
        return None;
    }
    let v6 = r.header.address_family == netlink_packet_route::AddressFamily::Inet6;
    let dst = match dst {
        Some(d) => IpNet::new(d, r.header.destination_prefix_length).ok()?,
        None if v6 => "::/0".parse().ok()?,
        None => "0.0.0.0/0".parse().ok()?,
    };
    // IPv6 link-local and multicast routes come with every interface; not ours to plan.
    if let IpNet::V6(n) = dst
        && (n.addr().segments()[0] & 0xffc0 == 0xfe80 || n.addr().segments()[0] & 0xff00 == 0xff00)
    {
        return None;
    }
    let protocol = match r.header.protocol {
        RouteProtocol::Kernel => "kernel".to_string(),
        RouteProtocol::Static => "static".to_string(),
        RouteProtocol::Boot => "boot".to_string(),
        RouteProtocol::Ra => "ra".to_string(),
        RouteProtocol::Dhcp => "dhcp".to_string(),
        other => format!("{other:?}").to_lowercase(),
    };
    Some(ObsRoute {
        dst,
        via,
        oif,
        metric: if v6 && metric == Some(1024) {
            None
        } else {
            metric
        },
        onlink: r.header.flags.contains(RouteFlags::Onlink),
        protocol,
        scope_link: r.header.scope == RouteScope::Link,
    })
}

/// One namespace's state in three dumps.
pub fn ns_state(nl: &mut Rtnl) -> Result<NsState, NlError> {
    Ok(NsState {
        links: links(nl)?,
        addrs: addrs(nl)?,
        routes: routes(nl)?,
    })
}
