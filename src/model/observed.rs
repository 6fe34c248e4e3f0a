//! What the kernel has in one namespace, reduced to the fields nslab plans with:
//! filled by `kernel::observe`, read by `plan`, `status` and the probes.

use ipnet::IpNet;
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
    /// IPv4 and IPv6 forwarding of the interface (IFLA_AF_SPEC). On `lo` they
    /// are the namespace's `net.ipv4.ip_forward` and `net.ipv6.conf.all.forwarding`:
    /// the kernel sets every interface when those change, so they are read here
    /// with the links instead of through /proc/sys in every namespace.
    #[serde(skip)]
    pub forwarding: (Option<bool>, Option<bool>),
    /// For a bridge port: its STP state (BR_STATE_DISABLED 0 .. FORWARDING 3,
    /// BLOCKING 4), from IFLA_INFO_SLAVE_DATA.
    #[serde(skip)]
    pub port_state: Option<u8>,
    /// For a bridge: its spanning tree state and timers (IFLA_INFO_DATA).
    #[serde(skip)]
    pub stp: Option<ObsStp>,
    /// For a VXLAN device: its VNI, addresses and port (IFLA_INFO_DATA).
    #[serde(skip)]
    pub vxlan: Option<ObsVxlan>,
}

/// A VXLAN device's settings as the kernel has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsVxlan {
    pub vni: u32,
    pub local: Option<std::net::IpAddr>,
    /// The unicast remote (IFLA_VXLAN_GROUP); None for a flooding bridge port.
    pub remote: Option<std::net::IpAddr>,
    pub port: u16,
    /// The destinations of its all-zero fdb entries (`bridge fdb show dev
    /// VX`: `00:00:00:00:00:00 dst R`), sorted: where broadcasts and unknown
    /// destinations go. A device with a unicast remote has that one too.
    pub flood: Vec<std::net::IpAddr>,
}

/// A bridge's STP as the kernel has it; timers in clock_t (centiseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObsStp {
    pub on: bool,
    pub forward_delay: u32,
    pub max_age: u32,
    /// The bridge is the root of its spanning tree. The kernel reports the
    /// timers in use, which a bridge that is not the root learns from the
    /// root: only the root's show what was set on it.
    pub root: bool,
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

/// The kernel's answer to `ip route get`: the route type as `ip route` names it
/// ("unicast", "local", "blackhole", "unreachable", "prohibit", "throw", ...),
/// the interface and gateway it leaves by, and the source it would pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub kind: String,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
}
