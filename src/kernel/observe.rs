//! What the kernel has in one namespace: links, addresses and routes, read by one
//! dump each and reduced to the fields nslab plans with (the types of
//! `crate::model::observed`, which the planner reads).

use super::msg;
use super::netlink::{NlError, Rtnl};
use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage as M;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoKind, LinkFlags};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteProtocol, RouteScope, RouteType,
};
use std::net::IpAddr;

pub use crate::model::observed::{NsState, ObsAddr, ObsLink, ObsRoute};

pub fn links(nl: &mut Rtnl) -> Result<Vec<ObsLink>, NlError> {
    nl.dump_raw(msg::get_links(), "list interfaces", parse_link)
}

/// The index of the link of this name (None: no such link), asked of the
/// kernel alone: no dump.
pub fn link_named(nl: &mut Rtnl, name: &str) -> Result<Option<u32>, NlError> {
    let what = format!("find {name}");
    match nl.query_raw(msg::get_link_named(name), &what, |m| {
        parse_link(m).filter(|l| l.name == name).map(|l| l.index)
    }) {
        Ok(Some(i)) => Ok(Some(i)),
        Ok(None) => Err(NlError::not_understood(what)),
        Err(e) if e.errno == libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

/// The links of one kind (the kernel filters).
pub fn links_of_kind(nl: &mut Rtnl, kind: InfoKind) -> Result<Vec<ObsLink>, NlError> {
    nl.dump_raw(msg::get_links_of_kind(kind), "list interfaces", parse_link)
}

/// The attributes of a netlink message body, as (type, value), stopping at the
/// first malformed length.
pub(crate) fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff; // without NLA_F_NESTED etc.
        if len < 4 || len > b.len() {
            return None;
        }
        let v = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, v))
    })
}

pub(crate) fn c_str(v: &[u8]) -> String {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

pub(crate) fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

/// One RTM_NEWLINK (whole message) reduced to an [`ObsLink`], reading only the
/// attributes nslab uses. A dump of 1000 links is ~1.5 MB, mostly IPv6
/// settings; parsing all of it into typed attributes took longer than the
/// kernel took to write it.
pub fn parse_link(m: &[u8]) -> Option<ObsLink> {
    const RTM_NEWLINK: u16 = 16;
    const IFLA_ADDRESS: u16 = 1;
    const IFLA_IFNAME: u16 = 3;
    const IFLA_MTU: u16 = 4;
    const IFLA_LINK: u16 = 5;
    const IFLA_MASTER: u16 = 10;
    const IFLA_LINKINFO: u16 = 18;
    const IFLA_IFALIAS: u16 = 20;
    const IFLA_AF_SPEC: u16 = 26;
    const IFLA_INFO_KIND: u16 = 1;
    const IFLA_INFO_SLAVE_DATA: u16 = 5;
    const IFLA_BRPORT_STATE: u16 = 1;
    const IFLA_INFO_DATA: u16 = 2;
    let mut data = None;
    if m.len() < 32 || u16::from_ne_bytes([m[4], m[5]]) != RTM_NEWLINK {
        return None;
    }
    let flags = LinkFlags::from_bits_retain(u32::from_ne_bytes(m[24..28].try_into().ok()?));
    let mut o = ObsLink {
        index: u32::from_ne_bytes(m[20..24].try_into().ok()?),
        name: String::new(),
        kind: None,
        alias: None,
        up: flags.contains(LinkFlags::Up),
        lower_up: flags.contains(LinkFlags::LowerUp),
        master: None,
        mtu: None,
        mac: None,
        peer_index: None,
        forwarding: (None, None),
        port_state: None,
        vxlan: None,
        stp: None,
    };
    for (ty, v) in attrs(&m[32..]) {
        match ty {
            IFLA_IFNAME => o.name = c_str(v),
            IFLA_IFALIAS => o.alias = Some(c_str(v)),
            IFLA_MASTER => o.master = u32_of(v),
            IFLA_MTU => o.mtu = u32_of(v),
            IFLA_LINK => o.peer_index = u32_of(v),
            IFLA_ADDRESS if v.len() == 6 => o.mac = v.try_into().ok(),
            IFLA_LINKINFO => {
                for (t, x) in attrs(v) {
                    match t {
                        IFLA_INFO_KIND => o.kind = Some(c_str(x)),
                        IFLA_INFO_DATA => data = Some(x),
                        IFLA_INFO_SLAVE_DATA => {
                            o.port_state = attrs(x)
                                .find(|(t, _)| *t == IFLA_BRPORT_STATE)
                                .and_then(|(_, s)| s.first().copied());
                        }
                        _ => {}
                    }
                }
            }
            IFLA_AF_SPEC => o.forwarding = forwarding(v),
            _ => {}
        }
    }
    if o.kind.as_deref() == Some("bridge")
        && let Some(d) = data
    {
        o.stp = bridge_stp(d);
    }
    if o.kind.as_deref() == Some("vxlan")
        && let Some(d) = data
    {
        o.vxlan = vxlan_info(d);
    }
    Some(o)
}

/// A VXLAN device's VNI, local and remote addresses and port (IFLA_VXLAN_*).
fn vxlan_info(data: &[u8]) -> Option<crate::model::observed::ObsVxlan> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    const ID: u16 = 1;
    const GROUP: u16 = 2;
    const LOCAL: u16 = 4;
    const PORT: u16 = 15;
    const GROUP6: u16 = 16;
    const LOCAL6: u16 = 17;
    let mut o = crate::model::observed::ObsVxlan {
        vni: 0,
        local: None,
        remote: None,
        port: 0,
        flood: vec![],
    };
    let ip = |v: &[u8]| -> Option<IpAddr> {
        match v.len() {
            4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?))),
            16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?))),
            _ => None,
        }
    };
    let set = |v: Option<IpAddr>| v.filter(|a| !a.is_unspecified());
    for (t, v) in attrs(data) {
        match t {
            ID => o.vni = u32_of(v)?,
            GROUP | GROUP6 => o.remote = set(ip(v)).or(o.remote),
            LOCAL | LOCAL6 => o.local = set(ip(v)).or(o.local),
            PORT => o.port = u16::from_be_bytes(v.get(..2)?.try_into().ok()?),
            _ => {}
        }
    }
    Some(o)
}

/// A bridge's STP state and timers from its IFLA_INFO_DATA (IFLA_BR_*, u32 each).
fn bridge_stp(data: &[u8]) -> Option<crate::model::observed::ObsStp> {
    const IFLA_BR_FORWARD_DELAY: u16 = 1;
    const IFLA_BR_MAX_AGE: u16 = 3;
    const IFLA_BR_STP_STATE: u16 = 5;
    let get = |k: u16| {
        attrs(data)
            .find(|(t, _)| *t == k)
            .and_then(|(_, v)| u32_of(v))
    };
    let on = get(IFLA_BR_STP_STATE)? != 0;
    // IFLA_BR_ROOT_PORT (u16) is 0 on the root. (IFLA_BR_ROOT_ID is no help:
    // on 6.18 it equals IFLA_BR_BRIDGE_ID on every bridge of a ring.)
    const IFLA_BR_ROOT_PORT: u16 = 13;
    let root_port = attrs(data)
        .find(|(t, _)| *t == IFLA_BR_ROOT_PORT)
        .and_then(|(_, v)| Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?)));
    Some(crate::model::observed::ObsStp {
        on,
        forward_delay: get(IFLA_BR_FORWARD_DELAY)?,
        max_age: get(IFLA_BR_MAX_AGE)?,
        root: !on || root_port.is_none_or(|p| p == 0),
    })
}

/// IPv4 and IPv6 forwarding from IFLA_AF_SPEC: AF_INET / IFLA_INET_CONF holds
/// the IPv4 devconf values (u32 each, FORWARDING first); AF_INET6 /
/// IFLA_INET6_CONF the IPv6 ones (DEVCONF_FORWARDING first).
fn forwarding(spec: &[u8]) -> (Option<bool>, Option<bool>) {
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    const IFLA_INET_CONF: u16 = 1;
    const IFLA_INET6_CONF: u16 = 2;
    let first = |v: &[u8], key: u16| {
        attrs(v)
            .find(|(t, _)| *t == key)
            .and_then(|(_, c)| u32_of(c))
            .map(|x| x != 0)
    };
    let (mut v4, mut v6) = (None, None);
    for (family, v) in attrs(spec) {
        match family {
            AF_INET => v4 = first(v, IFLA_INET_CONF),
            AF_INET6 => v6 = first(v, IFLA_INET6_CONF),
            _ => {}
        }
    }
    (v4, v6)
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

/// The flood list of a VXLAN device: the destinations of its all-zero fdb
/// entries, sorted. One small dump for that device only.
pub fn flood(nl: &mut Rtnl, index: u32) -> Result<Vec<IpAddr>, NlError> {
    let mut out = nl.dump_raw(msg::get_fdb(index), "list fdb entries", |m| {
        parse_flood(m).filter(|(i, _)| *i == index).map(|(_, d)| d)
    })?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// One RTM_NEWNEIGH of an AF_BRIDGE dump as (device index, destination) when
/// it is a flood entry: NDA_LLADDR all zero and an NDA_DST (a VXLAN remote).
/// The bridge's own entries (no NDA_DST) and learned MACs are not.
pub fn parse_flood(m: &[u8]) -> Option<(u32, IpAddr)> {
    const AF_BRIDGE: u8 = 7;
    let n = super::neigh::raw_neigh(m).filter(|n| n.family == AF_BRIDGE)?;
    let zero = n
        .lladdr
        .is_some_and(|v| v.len() == 6 && v.iter().all(|&b| b == 0));
    Some((
        n.index,
        n.dst.and_then(super::neigh::ip_of).filter(|_| zero)?,
    ))
}

/// One namespace's state in three dumps, and one more per VXLAN device (its
/// flood entries): a namespace without VXLAN devices pays nothing for them.
pub fn ns_state(nl: &mut Rtnl) -> Result<NsState, NlError> {
    let mut links = links(nl)?;
    for l in &mut links {
        if let Some(x) = &mut l.vxlan {
            x.flood = flood(nl, l.index)?;
        }
    }
    Ok(NsState {
        links,
        addrs: addrs(nl)?,
        routes: routes(nl)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::link::{
        AfSpecInet6, AfSpecUnspec, InfoData, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
    };

    fn wire(m: LinkMessage) -> Vec<u8> {
        let mut nl = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(M::NewLink(m)),
        );
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        buf
    }

    #[test]
    fn raw_link_parse_reads_what_nslab_uses() {
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName("eth0".into()));
        let mut m = LinkMessage::default();
        m.header.index = 42;
        m.header.flags = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Broadcast;
        m.attributes = vec![
            LinkAttribute::IfName("p7".into()),
            LinkAttribute::Mtu(1400),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 7]),
            LinkAttribute::Controller(3),
            LinkAttribute::Link(9),
            LinkAttribute::IfAlias("nslab:lab".into()),
            // Something big and nested before the link info, as the kernel sends.
            LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::Flags(
                netlink_packet_route::link::Inet6IfaceFlags::empty(),
            )])]),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                // The peer's own name, nested: not this link's.
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ];
        let o = parse_link(&wire(m)).expect("a link");
        assert_eq!(
            o,
            ObsLink {
                index: 42,
                name: "p7".into(),
                kind: Some("veth".into()),
                alias: Some("nslab:lab".into()),
                up: true,
                lower_up: true,
                master: Some(3),
                mtu: Some(1400),
                mac: Some([2, 0, 0, 0, 0, 7]),
                peer_index: Some(9),
                forwarding: (None, None),
                port_state: None,
                vxlan: None,
                stp: None,
            }
        );
    }

    #[test]
    fn forwarding_comes_from_the_af_spec_devconf() {
        // attr(len, type, value), padded to 4 bytes.
        fn attr(ty: u16, v: &[u8]) -> Vec<u8> {
            let mut b = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
            b.extend(ty.to_ne_bytes());
            b.extend(v);
            b.resize(b.len().div_ceil(4) * 4, 0);
            b
        }
        let conf = |first: u32| {
            let mut v = first.to_ne_bytes().to_vec();
            v.extend([0u8; 12]);
            v
        };
        let spec = [
            attr(2, &attr(1, &conf(1))),  // AF_INET / IFLA_INET_CONF: forwarding on
            attr(10, &attr(2, &conf(0))), // AF_INET6 / IFLA_INET6_CONF: off
        ]
        .concat();
        assert_eq!(forwarding(&spec), (Some(true), Some(false)));
        assert_eq!(
            forwarding(&attr(2, &attr(1, &[1, 2]))),
            (None, None),
            "truncated"
        );
        assert_eq!(forwarding(&[]), (None, None));
    }

    #[test]
    fn flood_entries_are_the_all_zero_ones_with_a_destination() {
        let wire = |m: M| {
            let mut nl =
                NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(m));
            nl.finalize();
            let mut buf = vec![0u8; nl.buffer_len()];
            nl.serialize(&mut buf);
            buf
        };
        // What `bridge fdb append` sends is what a dump answers, as RTM_NEWNEIGH.
        let entry = |dst: IpAddr| {
            let M::NewNeighbour(n) = msg::fdb_append(9, dst) else {
                unreachable!()
            };
            n
        };
        let d: IpAddr = "10.9.0.3".parse().unwrap();
        assert_eq!(parse_flood(&wire(M::NewNeighbour(entry(d)))), Some((9, d)));
        let d6: IpAddr = "fd00::3".parse().unwrap();
        assert_eq!(
            parse_flood(&wire(M::NewNeighbour(entry(d6)))),
            Some((9, d6))
        );
        // A learned MAC (not all zero) is not a flood entry.
        use netlink_packet_route::neighbour::NeighbourAttribute;
        let mut learned = entry(d);
        learned.attributes[0] = NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 1]);
        assert_eq!(parse_flood(&wire(M::NewNeighbour(learned))), None);
        // The bridge's entry for the port: no destination.
        let mut own = entry(d);
        own.attributes.truncate(1);
        assert_eq!(parse_flood(&wire(M::NewNeighbour(own))), None);
        // An ARP entry (AF_INET) is not an fdb entry.
        let mut arp = entry(d);
        arp.header.family = netlink_packet_route::AddressFamily::Inet;
        assert_eq!(parse_flood(&wire(M::NewNeighbour(arp))), None);
        let good = wire(M::NewNeighbour(entry(d)));
        for n in 0..good.len() {
            let _ = parse_flood(&good[..n]);
        }
    }

    #[test]
    fn raw_link_parse_survives_garbage() {
        let mut m = LinkMessage::default();
        m.attributes = vec![LinkAttribute::IfName("eth0".into())];
        let good = wire(m);
        assert_eq!(parse_link(&good).map(|l| l.name), Some("eth0".into()));
        // Cut anywhere: never a panic; a cut attribute is simply not read.
        for n in 0..good.len() {
            let _ = parse_link(&good[..n]);
        }
        // Not a link message.
        let mut other = good.clone();
        other[4] = 20;
        assert!(parse_link(&other).is_none());
        // An attribute length pointing past the end.
        let mut bad = good.clone();
        bad[32] = 0xff;
        assert_eq!(parse_link(&bad).map(|l| l.name), Some(String::new()));
    }
}
