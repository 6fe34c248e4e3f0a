//! The validated model of a lab: names resolved, addresses parsed, every
//! reference checked. Only `validate` builds it; the planner and the record use it.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Where an interface lives: a node's namespace, the lab's host, or (sandbox) the
/// emulated internet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    Host,
    Internet,
    Node(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Place::Host => f.write_str("host"),
            Place::Internet => f.write_str("internet"),
            Place::Node(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    /// The lab's name: the file's `name` with the prefix in front.
    pub name: String,
    /// The file's `name`.
    pub base_name: String,
    pub prefix: String,
    pub sandbox: bool,
    pub nodes: Vec<Node>,
    pub bridges: Vec<Bridge>,
    pub links: Vec<Link>,
    /// Interfaces and routes of the host (its veth ends, besides bridge ports).
    pub host: Node,
    pub nat: Vec<Nat>,
    /// Ports of the host published to nodes (DNAT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<crate::model::publish::Publish>,
    /// Firewalls of nodes and of the host (`firewall:`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewalls: Vec<crate::model::firewall::Firewall>,
    /// Interfaces get IPv6 link-local addresses (and the multicast that comes with them).
    pub ipv6_link_local: bool,
    #[serde(default)]
    pub expect: Vec<Expect>,
    /// Node name -> position in `nodes`, built on first use (labs have 1000s of nodes).
    #[serde(skip)]
    pub index: NodeIndex,
    /// The machines the lab spans (`machines:`); empty: one machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<Machine>,
    /// Node or bridge -> the machine it is `on:`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub placement: BTreeMap<String, String>,
    /// The VNI of each cable and bridge that crosses machines (whole lab).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<Overlay>,
    /// Set on one machine's part of the lab (`up --machine`): its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The VXLAN devices of this machine's part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vxlans: Vec<Vxlan>,
}

/// The UDP port of VXLAN (IANA).
pub const VXLAN_PORT: u16 = 4789;
/// Outer IPv4 + UDP + VXLAN + inner Ethernet headers.
pub const VXLAN_OVERHEAD: u32 = 50;

/// A machine of a lab that spans several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub name: String,
    pub underlay: IpAddr,
    pub underlay_mtu: u32,
}

/// A cable or a bridge that crosses machines, and its VXLAN network identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    pub vni: u32,
    /// A cable between nodes on two machines: its ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cable: Option<(End, End)>,
    /// A bridge with members on several machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// The machines it joins.
    pub machines: Vec<String>,
    /// Underlay MTU less the VXLAN headers (the least of its machines).
    pub mtu: u32,
}

/// A VXLAN device of one machine's part. A cable's end is the device itself,
/// made from the host namespace (where its UDP socket stays, on the underlay)
/// straight into the node's namespace under the end's name; a bridge's is a
/// port of the bridge, flooding to each other machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vxlan {
    /// Its name where it lives (the node's interface, or `vxVNI` on a bridge).
    pub name: String,
    /// Where it lives: the node, or the host (bridge port).
    pub place: Place,
    pub vni: u32,
    pub local: IpAddr,
    /// A cable: the one remote machine (unicast `remote`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<IpAddr>,
    /// A bridge: static flood entries, one per other machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flood: Vec<IpAddr>,
    /// The other machines, by name, for messages.
    pub peers: Vec<String>,
    /// The bridge it is a port of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    pub mtu: u32,
    /// Its MAC: the file's, else derived from the lab, machine and name (made
    /// with it, so a device of ours is known before it carries the mark, and a
    /// machine's part restarted keeps its MACs for its neighbours).
    pub mac: [u8; 6],
    /// A cable: its far end (`b:eth0`), for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub far_end: Option<String>,
}

/// A lazily built name index; not part of a lab's identity.
#[derive(Debug, Default)]
pub struct NodeIndex(
    std::sync::OnceLock<std::collections::HashMap<String, usize>>,
    /// Namespace -> position in `nodes` (plan asks per namespace: quadratic by search).
    std::sync::OnceLock<std::collections::HashMap<String, usize>>,
    /// Interface name -> position in `host.interfaces` (10,000 bridge ports).
    std::sync::OnceLock<std::collections::HashMap<String, usize>>,
);

impl Clone for NodeIndex {
    fn clone(&self) -> Self {
        NodeIndex::default()
    }
}

impl PartialEq for NodeIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for NodeIndex {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// The namespace under /run/netns (prefix + name). Empty for the host in host mode.
    pub ns: String,
    pub interfaces: Vec<Iface>,
    pub routes: Vec<Route>,
    pub forward: bool,
    #[serde(default)]
    pub run: Vec<String>,
    /// Sysctls the file sets in the namespace (key -> value as written to /proc/sys).
    /// Absent when empty, so records stay as older versions wrote them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sysctl: std::collections::BTreeMap<String, String>,
    /// Masquerade in the node's namespace (the host's is `Lab::nat`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nat: Vec<Nat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iface {
    pub name: String,
    pub addresses: Vec<IpNet>,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    pub name: String,
    pub addresses: Vec<IpNet>,
    pub mtu: Option<u32>,
    /// A fixed MAC: a bridge otherwise takes the lowest MAC of its ports and
    /// changes it as ports come and go, which breaks its neighbours' ARP caches.
    pub mac: [u8; 6],
    pub ports: Vec<String>,
    /// The kernel's spanning tree, when the file turns it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stp: Option<Stp>,
}

/// STP timers of a bridge, in the kernel's unit (clock_t: centiseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stp {
    pub forward_delay: u32,
    pub max_age: u32,
}

impl Stp {
    /// Forward delay 4 s, max age 6 s (the kernel's least max age): the fastest
    /// timers that keep 802.1D's 2 x (forward delay - 1 s) >= max age. With the
    /// kernel's least forward delay (2 s) a port can forward before stale root
    /// information has aged out: a transient loop, and a broadcast storm that
    /// outlives `up` (measured: 4 of 16 ring/fat-tree runs on a busy machine
    /// lost every pair for seconds after `up`; 0 of 16 with 4 s).
    pub const DEFAULT: Stp = Stp {
        forward_delay: 400,
        max_age: 600,
    };
}

/// One end of a cable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct End {
    pub place: Place,
    pub ifname: String,
    /// The bridge this end is a port of (it then lives in the host).
    pub bridge: Option<String>,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.bridge {
            Some(b) => write!(f, "{b}:{}", self.ifname),
            None => write!(f, "{}:{}", self.place, self.ifname),
        }
    }
}

/// A veth pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub a: End,
    pub b: End,
    /// `up: false` in the file: `up` creates both ends down (desired state).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub up: bool,
    /// Egress shaping of its ends from the file's link map (desired state).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<crate::runtime::shape::Shaping>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Lab {
    /// The file's shaping of every cable end (desired state), in file order.
    pub fn file_shapes(&self) -> Vec<crate::runtime::shape::Shaping> {
        self.links.iter().flat_map(|l| l.shapes.clone()).collect()
    }

    /// Cable ends the file wants down (`up: false`).
    pub fn file_down_ends(&self) -> Vec<&End> {
        self.links
            .iter()
            .filter(|l| !l.up)
            .flat_map(|l| [&l.a, &l.b])
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub onlink: bool,
    pub metric: Option<u32>,
}

impl Route {
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }
}

impl fmt::Display for Route {
    /// iproute2's words, as a person would type them after `ip route add`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.is_default() {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatOut {
    /// Any interface but this one (`! -o bri0`).
    NotOut(String),
    /// Only this interface (`-o eth0`).
    Out(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat {
    /// IPv4 or IPv6 (records of older versions hold IPv4 only: the same text).
    pub source: ipnet::IpNet,
    pub out: NatOut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expect {
    pub name: String,
    pub kind: ExpectKind,
    /// The line in the file, for messages.
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectKind {
    Reach {
        src: String,
        dst: String,
        family: Option<u8>,
        reach: bool,
        /// ICMP payload bytes (as `ping -s`), sent with DF set; None: the
        /// default 56 bytes, fragmentation allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<usize>,
    },
    Tcp {
        src: String,
        dst: String,
        port: u16,
        open: bool,
    },
    Http {
        src: String,
        url: String,
        status: u16,
    },
    /// Goodput from `src` to `dst` (bits per second) within bounds.
    Throughput {
        src: String,
        dst: String,
        udp: bool,
        /// UDP's pace (bits per second); None: 1 Mbit/s.
        rate: Option<u64>,
        /// How long to send, milliseconds.
        millis: u64,
        at_least: Option<u64>,
        at_most: Option<u64>,
    },
    /// UDP loss from `src` to `dst` at `rate`, in parts per million.
    Loss {
        src: String,
        dst: String,
        rate: Option<u64>,
        millis: u64,
        at_least_ppm: Option<u32>,
        at_most_ppm: Option<u32>,
    },
}

impl Lab {
    pub fn node(&self, name: &str) -> Option<&Node> {
        let idx = self.index.0.get_or_init(|| {
            self.nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), i))
                .collect()
        });
        idx.get(name)
            .and_then(|&i| self.nodes.get(i))
            .filter(|n| n.name == name)
    }

    /// The host's interface `name`, if any.
    pub fn host_iface(&self, name: &str) -> Option<&Iface> {
        let idx = self.index.2.get_or_init(|| {
            (self.host.interfaces.iter().enumerate())
                .map(|(i, f)| (f.name.clone(), i))
                .collect()
        });
        idx.get(name)
            .and_then(|&i| self.host.interfaces.get(i))
            .filter(|f| f.name == name)
    }

    /// The node living in namespace `ns`, if any.
    pub fn node_in(&self, ns: &str) -> Option<&Node> {
        let idx = self.index.1.get_or_init(|| {
            self.nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.ns.clone(), i))
                .collect()
        });
        idx.get(ns)
            .and_then(|&i| self.nodes.get(i))
            .filter(|n| n.ns == ns)
    }

    pub fn bridge(&self, name: &str) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// Name of the lab's private host namespace (sandbox), or None in host mode.
    pub fn host_ns(&self) -> Option<String> {
        self.sandbox
            .then(|| sandbox_host_ns(&self.prefix, &self.sandbox_base()))
    }

    pub fn internet_ns(&self) -> Option<String> {
        self.sandbox
            .then(|| sandbox_inet_ns(&self.prefix, &self.sandbox_base()))
    }

    /// A machine's part has a sandbox of its own (`LAB-m1-host`): machines
    /// simulated on one computer share /run/netns.
    fn sandbox_base(&self) -> String {
        match &self.machine {
            Some(m) => format!("{}-{m}", self.base_name),
            None => self.base_name.clone(),
        }
    }

    /// Every namespace the lab owns, in creation order.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.host_ns().into_iter().collect();
        v.extend(self.internet_ns());
        v.extend(self.nodes.iter().map(|n| n.ns.clone()));
        v
    }

    /// The ifalias every interface of the lab carries, so it is known as ours.
    pub fn mark(&self) -> String {
        mark_for(&self.name)
    }

    /// Does any interface of the lab carry an IPv6 address?
    pub fn uses_ipv6(&self) -> bool {
        let v6 = |a: &IpNet| matches!(a, IpNet::V6(_));
        self.nodes
            .iter()
            .chain(std::iter::once(&self.host))
            .any(|n| {
                n.interfaces.iter().any(|i| i.addresses.iter().any(v6))
                    || n.routes.iter().any(|r| matches!(r.dst, IpNet::V6(_)))
            })
            || self.bridges.iter().any(|b| b.addresses.iter().any(v6))
    }

    /// The sandbox's uplink and internet speak IPv6 too (2001:db8:ffff::/48), in
    /// labs that use IPv6: the others keep no IPv6 at all (no link-local multicast).
    pub fn sandbox_ipv6(&self) -> bool {
        self.sandbox && self.uses_ipv6()
    }

    /// All addresses of a place's interfaces, with the interface name.
    pub fn addresses_of(&self, place: &Place) -> Vec<(String, IpNet)> {
        let mut out = Vec::new();
        match place {
            Place::Node(n) => {
                if let Some(node) = self.node(n) {
                    for i in &node.interfaces {
                        out.extend(i.addresses.iter().map(|a| (i.name.clone(), *a)));
                    }
                }
            }
            Place::Host => {
                for b in &self.bridges {
                    out.extend(b.addresses.iter().map(|a| (b.name.clone(), *a)));
                }
                for i in &self.host.interfaces {
                    out.extend(i.addresses.iter().map(|a| (i.name.clone(), *a)));
                }
                if self.sandbox {
                    out.push((UPLINK_IF.to_string(), sandbox_uplink_host_addr()));
                    if self.sandbox_ipv6() {
                        out.push((UPLINK_IF.to_string(), sandbox_uplink_host_addr6()));
                    }
                }
            }
            Place::Internet => {
                if self.sandbox {
                    out.push((INET_IF.to_string(), sandbox_uplink_inet_addr()));
                    if self.sandbox_ipv6() {
                        out.push((INET_IF.to_string(), sandbox_uplink_inet_addr6()));
                    }
                    out.push(("lo".to_string(), sandbox_inet_service_addr()));
                }
            }
        }
        out
    }
}

pub fn mark_for(lab: &str) -> String {
    format!("nslab:{lab}")
}

pub fn sandbox_host_ns(prefix: &str, base: &str) -> String {
    format!("{prefix}{base}-host")
}

pub fn sandbox_inet_ns(prefix: &str, base: &str) -> String {
    format!("{prefix}{base}-inet")
}

/// The sandbox host's uplink to the emulated internet, and the internet's end.
pub const UPLINK_IF: &str = "uplink";
pub const INET_IF: &str = "isp";

pub fn sandbox_uplink_host_addr() -> IpNet {
    "203.0.113.2/24".parse().expect("constant")
}
pub fn sandbox_uplink_inet_addr() -> IpNet {
    "203.0.113.1/24".parse().expect("constant")
}
/// The emulated internet's IPv6 prefix: only this /48 of 2001:db8::/32 is taken,
/// so labs can use the rest of the documentation prefix.
pub fn sandbox_inet_prefix6() -> IpNet {
    "2001:db8:ffff::/48".parse().expect("constant")
}
pub fn sandbox_uplink_host_addr6() -> IpNet {
    "2001:db8:ffff::2/64".parse().expect("constant")
}
pub fn sandbox_uplink_inet_addr6() -> IpNet {
    "2001:db8:ffff::1/64".parse().expect("constant")
}
/// The stand-in for the tutorial's 8.8.8.8.
pub fn sandbox_inet_service_addr() -> IpNet {
    "198.51.100.8/32".parse().expect("constant")
}
