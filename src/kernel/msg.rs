//! Builders for the rtnetlink messages nslab sends. Pure: no syscalls here.

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, BridgeStpState, In6AddrGenMode, InfoBridge, InfoData, InfoKind,
    InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage as M};
use std::net::IpAddr;

pub const CREATE: u16 = NLM_F_CREATE | NLM_F_EXCL;

fn link_named(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m
}

pub fn new_bridge(name: &str, mac: [u8; 6], mtu: Option<u32>) -> M {
    let mut m = link_named(name);
    m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    // Born with multicast snooping off: with it on, each port that joins makes
    // the kernel re-arm the multicast timers of every port already there
    // (quadratic; ~10% of `up` at 1000 ports). `up` turns it on once the ports
    // are in (bridge_snooping), which costs one pass over them.
    m.attributes.push(bridge_info(false));
    M::NewLink(m)
}

fn bridge_info(snooping: bool) -> LinkAttribute {
    LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bridge),
        LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::MulticastSnooping(
            snooping,
        )])),
    ])
}

/// One end of a veth to create.
pub struct VethEnd<'a> {
    pub name: &'a str,
    /// Namespace fd to create this end in; None = the socket's namespace.
    pub ns_fd: Option<i32>,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    /// Bridge (by index, in the socket's namespace) this end is a port of.
    pub master: Option<u32>,
    /// Up from the start: the kernel applies each end's ifinfomsg flags once
    /// it is registered (rtnl_configure_link, for the peer in veth_newlink).
    pub up: bool,
}

fn set_up(m: &mut LinkMessage, up: bool) {
    if up {
        m.header.change_mask = LinkFlags::Up;
        m.header.flags = LinkFlags::Up;
    }
}

/// Both ends in one RTM_NEWLINK: each may land in its own namespace. The
/// namespace fds must stay open until the ACK arrives.
pub fn new_veth(a: &VethEnd, b: &VethEnd) -> M {
    let mut peer = link_named(b.name);
    if let Some(fd) = b.ns_fd {
        peer.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    if let Some(mtu) = b.mtu {
        peer.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = b.mac {
        peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    set_up(&mut peer, b.up);
    let mut m = link_named(a.name);
    set_up(&mut m, a.up);
    if let Some(fd) = a.ns_fd {
        m.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    if let Some(mtu) = a.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = a.mac {
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(idx) = a.master {
        m.attributes.push(LinkAttribute::Controller(idx));
    }
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    M::NewLink(m)
}

/// Turn a bridge's multicast snooping on or off (RTM_NEWLINK on an existing
/// link: RTM_SETLINK ignores IFLA_LINKINFO). Send without NLM_F_CREATE.
pub fn bridge_snooping(name: &str, on: bool) -> M {
    let mut m = link_named(name);
    m.attributes.push(bridge_info(on));
    M::NewLink(m)
}

/// Turn a bridge's STP on with its timers (clock_t) or off; RTM_NEWLINK on an
/// existing link like `bridge_snooping`. The kernel sets the timers before
/// the state, and checks their range only while STP is on.
pub fn bridge_stp(name: &str, stp: Option<&crate::topology::Stp>) -> M {
    let mut m = link_named(name);
    let data = match stp {
        Some(s) => vec![
            InfoBridge::ForwardDelay(s.forward_delay),
            InfoBridge::MaxAge(s.max_age),
            InfoBridge::StpState(BridgeStpState::KernelStp),
        ],
        None => vec![InfoBridge::StpState(BridgeStpState::Disabled)],
    };
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bridge),
        LinkInfo::Data(InfoData::Bridge(data)),
    ]));
    M::NewLink(m)
}

pub fn del_link(name: &str) -> M {
    M::DelLink(link_named(name))
}

/// Change a link found by name: any of up, master, alias, no IPv6 link-local.
#[derive(Default)]
pub struct SetLink<'a> {
    pub up: Option<bool>,
    pub master: Option<u32>,
    pub alias: Option<&'a str>,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub no_link_local: bool,
}

pub fn set_link(name: &str, s: &SetLink) -> M {
    let mut m = link_named(name);
    if let Some(up) = s.up {
        m.header.change_mask = LinkFlags::Up;
        if up {
            m.header.flags = LinkFlags::Up;
        }
    }
    if let Some(idx) = s.master {
        m.attributes.push(LinkAttribute::Controller(idx));
    }
    if let Some(a) = s.alias {
        m.attributes.push(LinkAttribute::IfAlias(a.to_string()));
    }
    if let Some(mtu) = s.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = s.mac {
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if s.no_link_local {
        // Must reach the kernel before the link goes up, or fe80:: is already there.
        m.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
    }
    M::SetLink(m)
}

/// A link dump request without statistics (a third less to fill and parse).
fn links_dump() -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    m
}

/// Ask for one link by name (index 0 with IFLA_IFNAME): one reply, or ENODEV.
pub fn get_link_named(name: &str) -> M {
    let mut m = links_dump();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    M::GetLink(m)
}

/// Dump every link.
pub fn get_links() -> M {
    M::GetLink(links_dump())
}

/// Dump the links of one kind only: the kernel filters, so asking for the one
/// bridge among 1000 veths costs next to nothing.
pub fn get_links_of_kind(kind: InfoKind) -> M {
    let mut m = links_dump();
    m.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]));
    M::GetLink(m)
}

fn addr_msg(index: u32, addr: &IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(addr.addr());
    m.header.prefix_len = addr.prefix_len();
    m.header.index = index;
    m.header.scope = AddressScope::Universe;
    m.attributes.push(AddressAttribute::Local(addr.addr()));
    m.attributes.push(AddressAttribute::Address(addr.addr()));
    m
}

pub fn new_addr(index: u32, addr: &IpNet) -> M {
    let mut m = addr_msg(index, addr);
    if let IpNet::V4(n) = addr {
        if n.prefix_len() < 31 {
            m.attributes
                .push(AddressAttribute::Broadcast(n.broadcast()));
        }
    } else {
        // No duplicate address detection: the address works at once.
        m.header.flags = AddressHeaderFlags::Nodad;
    }
    M::NewAddress(m)
}

pub fn del_addr(index: u32, addr: &IpNet) -> M {
    M::DelAddress(addr_msg(index, addr))
}

pub fn get_addrs() -> M {
    M::GetAddress(AddressMessage::default())
}

fn family(a: IpAddr) -> AddressFamily {
    if a.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// A route to install: the model's route with the device resolved to an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KRoute {
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub oif: Option<u32>,
    pub onlink: bool,
    pub metric: Option<u32>,
}

// RouteHeader is #[non_exhaustive]: it can only be built from Default and assigned.
#[allow(clippy::field_reassign_with_default)]
fn route_msg(r: &KRoute) -> RouteMessage {
    let mut m = RouteMessage::default();
    let mut h = RouteHeader::default();
    h.address_family = family(r.dst.addr());
    h.destination_prefix_length = r.dst.prefix_len();
    h.table = RouteHeader::RT_TABLE_MAIN;
    h.protocol = RouteProtocol::Static;
    // A route without gateway is "on the link": the kernel's scope link.
    h.scope = if r.via.is_none() {
        RouteScope::Link
    } else {
        RouteScope::Universe
    };
    h.kind = RouteType::Unicast;
    if r.onlink {
        h.flags = RouteFlags::Onlink;
    }
    m.header = h;
    if r.dst.prefix_len() > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                r.dst.addr(),
            )));
    }
    if let Some(g) = r.via {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(g)));
    }
    if let Some(o) = r.oif {
        m.attributes.push(RouteAttribute::Oif(o));
    }
    if let Some(p) = r.metric {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    m
}

pub fn new_route(r: &KRoute) -> M {
    M::NewRoute(route_msg(r))
}

pub fn del_route(r: &KRoute) -> M {
    let mut m = route_msg(r);
    // Deleting matches on what is given; scope must not narrow the match.
    m.header.scope = RouteScope::NoWhere;
    m.header.protocol = RouteProtocol::Unspec;
    M::DelRoute(m)
}

pub fn get_routes(v6: bool) -> M {
    let mut m = RouteMessage::default();
    m.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    M::GetRoute(m)
}

/// `ip route get DST` from this namespace: the kernel's route lookup.
pub fn route_get(dst: IpAddr) -> M {
    route_lookup(dst, None, None)
}

/// `ip route get DST [from SRC] [iif IF]`: with `iif`, the kernel does the input
/// lookup a packet from SRC arriving on IF gets, forwarding checks and reverse-path
/// filtering included (EXDEV when rp_filter drops it).
pub fn route_lookup(dst: IpAddr, src: Option<IpAddr>, iif: Option<u32>) -> M {
    let mut m = RouteMessage::default();
    m.header.address_family = family(dst);
    m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    if let Some(s) = src {
        m.header.source_prefix_length = if s.is_ipv4() { 32 } else { 128 };
        m.attributes
            .push(RouteAttribute::Source(RouteAddress::from(s)));
    }
    if let Some(i) = iif {
        m.attributes.push(RouteAttribute::Iif(i));
    }
    M::GetRoute(m)
}

/// Delete the neighbour (ARP/NDP) entry of `addr` on the interface `index`.
pub fn del_neigh(index: u32, addr: IpAddr) -> M {
    use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourMessage};
    let mut m = NeighbourMessage::default();
    m.header.family = family(addr);
    m.header.ifindex = index;
    m.attributes
        .push(NeighbourAttribute::Destination(addr.into()));
    M::DelNeighbour(m)
}

/// Dump every neighbour (ARP and NDP) entry of the namespace, like `ip neigh`.
pub fn get_neighbours() -> M {
    use netlink_packet_route::neighbour::NeighbourMessage;
    // Family unspecified: the kernel dumps both tables. Strict checking wants
    // every other header field zero, which the default is.
    M::GetNeighbour(NeighbourMessage::default())
}

/// `ip link add NAME [netns NS] mtu M type vxlan id N local L [remote R]
/// dstport P nolearning`, in one RTM_NEWLINK. `ns_fd`: the namespace the
/// device goes to; None = the socket's namespace. The device's UDP socket
/// stays in the socket's namespace either way.
pub fn new_vxlan(v: &crate::plan::VxlanSpec, ns_fd: Option<i32>) -> M {
    use netlink_packet_route::link::InfoVxlan;
    let mut m = link_named(&v.name);
    if let Some(fd) = ns_fd {
        m.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    m.attributes.push(LinkAttribute::Mtu(v.mtu));
    m.attributes.push(LinkAttribute::Address(v.mac.to_vec()));
    let mut data = vec![InfoVxlan::Id(v.vni)];
    match v.local {
        IpAddr::V4(a) => data.push(InfoVxlan::Local(a)),
        IpAddr::V6(a) => data.push(InfoVxlan::Local6(a)),
    }
    match v.remote {
        Some(IpAddr::V4(a)) => data.push(InfoVxlan::Group(a)),
        Some(IpAddr::V6(a)) => data.push(InfoVxlan::Group6(a)),
        None => {}
    }
    data.push(InfoVxlan::Port(v.port));
    data.push(InfoVxlan::Learning(false));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vxlan),
        LinkInfo::Data(InfoData::Vxlan(data)),
    ]));
    M::NewLink(m)
}

/// `bridge fdb append 00:00:00:00:00:00 dev VX dst R`: a static flood entry
/// (send broadcast and unknown destinations to R too). Send with
/// NLM_F_CREATE | NLM_F_APPEND.
pub fn fdb_append(index: u32, dst: IpAddr) -> M {
    use netlink_packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
    };
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
    m.attributes
        .push(NeighbourAttribute::Destination(match dst {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    M::NewNeighbour(m)
}

/// Dump the fdb entries of one device (AF_BRIDGE RTM_GETNEIGH with the
/// device as ndm_ifindex, like `bridge fdb show dev VX`): for a VXLAN device,
/// its own entries (and, when it is a bridge port, the bridge's for that port).
pub fn get_fdb(index: u32) -> M {
    use netlink_packet_route::neighbour::NeighbourMessage;
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    M::GetNeighbour(m)
}
