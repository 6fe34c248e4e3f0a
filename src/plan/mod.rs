//! The planner: desired model + observed kernel state + the lab's record ->
//! an ordered list of [`Op`]. Pure: no syscalls, so it is unit-tested without root.

pub mod explain;
pub mod nft_text;
pub mod ns;

pub use ns::Ns;

use crate::model::observed::{NsState, ObsLink, ObsRoute};
use crate::topology::*;
use ipnet::IpNet;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The MTU the kernel gives a new veth or bridge.
pub const DEFAULT_MTU: u32 = 1500;

/// One end of a veth to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VEnd {
    pub ns: Ns,
    pub name: String,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    /// Bridge this end is a port of (in the same namespace).
    pub master: Option<String>,
    /// Made up (its ports in a big sandbox, see `host_ports_without_ipv6`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub up: bool,
}

/// A VXLAN device to create: what the op, the kernel request and the netlink
/// message carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub local: std::net::IpAddr,
    /// Unicast remote (a cable); None: flood entries decide (a bridge port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<std::net::IpAddr>,
    pub port: u16,
    pub mtu: u32,
    pub mac: [u8; 6],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Create a named namespace, with sysctls set before any interface exists
    /// (so new interfaces inherit them).
    CreateNs {
        ns: Ns,
        sysctls: Vec<(String, String)>,
        /// The lab's mark, put on `lo` (which goes up) before the namespace gets
        /// its name.
        mark: String,
    },
    DeleteNs {
        ns: Ns,
    },
    Sysctl {
        ns: Ns,
        key: String,
        value: String,
    },
    CreateBridge {
        ns: Ns,
        name: String,
        mac: [u8; 6],
        mtu: Option<u32>,
    },
    /// Turn a bridge's spanning tree on (with its timers) or off.
    SetBridgeStp {
        ns: Ns,
        name: String,
        stp: Option<Stp>,
    },
    /// Both ends in one request; sent from `a.ns`. Boxed: inline, the two ends
    /// made every op (~100,000 at 10,000 nodes) half as large again.
    CreateVeth {
        a: Box<VEnd>,
        b: Box<VEnd>,
    },
    DeleteLink {
        ns: Ns,
        name: String,
    },
    SetLink {
        ns: Ns,
        name: String,
        /// Turn off IPv6 link-local addresses (before the link goes up).
        no_link_local: bool,
        master: Option<String>,
        mtu: Option<u32>,
        /// A MAC the file sets that the interface does not have (any more).
        #[serde(skip_serializing_if = "Option::is_none")]
        mac: Option<[u8; 6]>,
        alias: Option<String>,
        up: bool,
        /// Set it down (the file's `up: false` cable that is up).
        #[serde(default, skip_serializing_if = "is_false")]
        down: bool,
    },
    AddAddr {
        ns: Ns,
        dev: String,
        addr: IpNet,
    },
    DelAddr {
        ns: Ns,
        dev: String,
        addr: IpNet,
    },
    AddRoute {
        ns: Ns,
        route: Route,
    },
    DelRoute {
        ns: Ns,
        route: Route,
    },
    /// The lab's nftables table (masquerade), created or replaced in one batch.
    SetNat {
        ns: Ns,
        table: String,
        rules: Vec<Nat>,
    },
    DeleteNat {
        ns: Ns,
        table: String,
    },
    /// The lab's hosts file (one per lab, naming every node's addresses).
    WriteLabHosts {
        path: String,
        content: String,
    },
    /// /etc/netns/NS/hosts as a link to the lab's hosts file, so the lab's names
    /// resolve inside the node (`ip netns exec` binds it over /etc/hosts).
    LinkHosts {
        ns: Ns,
        target: String,
    },
    RemoveEtc {
        ns: Ns,
    },
    /// The lab's resolv.conf (one per lab): no resolver, on 127.0.0.1, so a name
    /// lookup in a node fails at once instead of waiting for one that is not there.
    WriteLabResolv {
        path: String,
        content: String,
    },
    /// /etc/netns/NS/resolv.conf as a link to the lab's resolv.conf.
    LinkResolv {
        ns: Ns,
        target: String,
    },
    /// A VXLAN device, sent from `ns` (the lab's host, where the underlay is:
    /// its UDP socket stays there) and made in `into` under its final name (a
    /// node's end of a cable to another machine, or a bridge port in the host).
    CreateVxlan {
        ns: Ns,
        into: Ns,
        /// Flattened: the JSON of `plan --json` / `up --json` keeps its fields.
        #[serde(flatten)]
        vxlan: VxlanSpec,
    },
    /// A static flood entry of a VXLAN bridge port: broadcasts and unknown
    /// destinations go to `dst` (another machine) too.
    AddFdb {
        ns: Ns,
        dev: String,
        dst: std::net::IpAddr,
    },
}

/// The host, borrowed for as long as anyone likes.
static HOST_NS: Ns = Ns::HOST;

impl Op {
    pub fn ns(&self) -> &Ns {
        match self {
            Op::CreateNs { ns, .. }
            | Op::DeleteNs { ns }
            | Op::Sysctl { ns, .. }
            | Op::CreateBridge { ns, .. }
            | Op::SetBridgeStp { ns, .. }
            | Op::DeleteLink { ns, .. }
            | Op::SetLink { ns, .. }
            | Op::AddAddr { ns, .. }
            | Op::DelAddr { ns, .. }
            | Op::AddRoute { ns, .. }
            | Op::DelRoute { ns, .. }
            | Op::LinkHosts { ns, .. }
            | Op::SetNat { ns, .. }
            | Op::DeleteNat { ns, .. }
            | Op::RemoveEtc { ns }
            | Op::LinkResolv { ns, .. }
            | Op::CreateVxlan { ns, .. }
            | Op::AddFdb { ns, .. } => ns,
            Op::CreateVeth { a, .. } => &a.ns,
            Op::WriteLabHosts { .. } | Op::WriteLabResolv { .. } => &HOST_NS,
        }
    }

    /// Ops that only touch files, not the kernel's network state.
    pub fn is_file_op(&self) -> bool {
        match self {
            Op::WriteLabHosts { .. }
            | Op::LinkHosts { .. }
            | Op::RemoveEtc { .. }
            | Op::WriteLabResolv { .. }
            | Op::LinkResolv { .. } => true,
            Op::CreateNs { .. }
            | Op::DeleteNs { .. }
            | Op::Sysctl { .. }
            | Op::CreateBridge { .. }
            | Op::SetBridgeStp { .. }
            | Op::CreateVeth { .. }
            | Op::DeleteLink { .. }
            | Op::SetLink { .. }
            | Op::AddAddr { .. }
            | Op::DelAddr { .. }
            | Op::AddRoute { .. }
            | Op::DelRoute { .. }
            | Op::SetNat { .. }
            | Op::DeleteNat { .. }
            | Op::CreateVxlan { .. }
            | Op::AddFdb { .. } => false,
        }
    }
}

fn at(ns: &Ns) -> String {
    if ns.is_host() {
        "the host".into()
    } else {
        ns.to_string()
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Op::CreateNs { ns, .. } => write!(f, "create namespace {ns}"),
            Op::DeleteNs { ns } => write!(f, "delete namespace {ns}"),
            Op::Sysctl { ns, key, value } => write!(f, "set {key}={value} in {}", at(ns)),
            Op::CreateBridge { ns, name, .. } => write!(f, "create bridge {name} in {}", at(ns)),
            Op::SetBridgeStp { ns, name, stp } => match stp {
                Some(s) => write!(
                    f,
                    "turn on STP on bridge {name} in {} (forward delay {} s, max age {} s)",
                    at(ns),
                    s.forward_delay as f64 / 100.0,
                    s.max_age as f64 / 100.0
                ),
                None => write!(f, "turn off STP on bridge {name} in {}", at(ns)),
            },
            Op::CreateVeth { a, b } => write!(
                f,
                "create veth {} in {} <-> {} in {}{}",
                a.name,
                at(&a.ns),
                b.name,
                at(&b.ns),
                b.master
                    .as_ref()
                    .map(|m| format!(" (port of {m})"))
                    .unwrap_or_default()
                    + if a.up || b.up { ", up at once" } else { "" }
            ),
            Op::DeleteLink { ns, name } => write!(f, "delete interface {name} in {}", at(ns)),
            Op::SetLink {
                ns,
                name,
                master,
                mtu,
                mac,
                alias,
                up,
                down,
                ..
            } => {
                let mut parts = Vec::new();
                if let Some(m) = master {
                    parts.push(format!("port of {m}"));
                }
                if let Some(m) = mtu {
                    parts.push(format!("mtu {m}"));
                }
                if let Some(m) = mac {
                    parts.push(format!(
                        "MAC {}",
                        m.iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<Vec<_>>()
                            .join(":")
                    ));
                }
                if alias.is_some() {
                    parts.push("mark".into());
                }
                if *up {
                    parts.push("up".into());
                }
                if *down {
                    parts.push("down (the file's `up: false`)".into());
                }
                if parts.is_empty() {
                    parts.push("configure".into());
                }
                write!(f, "set {name} in {}: {}", at(ns), parts.join(", "))
            }
            Op::AddAddr { ns, dev, addr } => write!(f, "add address {addr} to {dev} in {}", at(ns)),
            Op::DelAddr { ns, dev, addr } => {
                write!(f, "remove address {addr} from {dev} in {}", at(ns))
            }
            Op::AddRoute { ns, route } => write!(f, "add route {route} in {}", at(ns)),
            Op::DelRoute { ns, route } => write!(f, "remove route {route} in {}", at(ns)),
            Op::SetNat { ns, table, rules } => write!(
                f,
                "set nftables table inet {table} in {} ({} masquerade rule{})",
                at(ns),
                rules.len(),
                if rules.len() == 1 { "" } else { "s" }
            ),
            Op::DeleteNat { ns, table } => {
                write!(f, "delete nftables table inet {table} in {}", at(ns))
            }
            Op::WriteLabHosts { path, .. } => write!(f, "write the lab's hosts file {path}"),
            Op::LinkHosts { ns, .. } => {
                write!(f, "link /etc/netns/{ns}/hosts to the lab's hosts file")
            }
            Op::RemoveEtc { ns } => write!(f, "remove /etc/netns/{ns}"),
            Op::CreateVxlan { ns, into, vxlan: v } => {
                write!(
                    f,
                    "create VXLAN {} (vni {}, udp {}, local {}",
                    v.name, v.vni, v.port, v.local
                )?;
                if let Some(r) = v.remote {
                    write!(f, ", remote {r}")?;
                }
                write!(f, ") from {}", at(ns))?;
                if into != ns {
                    write!(f, " into {}", at(into))?;
                }
                Ok(())
            }
            Op::AddFdb { ns, dev, dst } => {
                write!(f, "flood {dev} in {} to {dst}", at(ns))
            }
            Op::WriteLabResolv { path, .. } => write!(f, "write the lab's resolv.conf {path}"),
            Op::LinkResolv { ns, .. } => {
                write!(
                    f,
                    "link /etc/netns/{ns}/resolv.conf to the lab's resolv.conf"
                )
            }
        }
    }
}

/// What is there now in one namespace the lab uses.
#[derive(Debug, Clone, Default)]
pub struct NsObs {
    pub state: NsState,
    /// Where /etc/netns/NS/hosts links to, if it is a link.
    pub hosts: Option<String>,
    /// The lab's nftables table as found (the host namespace, and nodes with `nat:`): None = absent.
    pub nat: Option<NatObs>,
    /// net.ipv4.ip_forward as found (host namespace only).
    pub ip_forward: Option<bool>,
    /// The sysctls the file sets here, as found (None: no such key in the kernel).
    pub sysctls: BTreeMap<String, Option<String>>,
}

/// The sysctls the file sets in a namespace of the lab (`sysctl:` of a node, or of
/// `host` in the lab's host namespace).
pub fn wanted_sysctls<'a>(lab: &'a Lab, ns: &Ns) -> Option<&'a BTreeMap<String, String>> {
    if *ns == ns_of(lab, &Place::Host) {
        return Some(&lab.host.sysctl);
    }
    let name = ns.name()?;
    lab.node_in(name).map(|n| &n.sysctl)
}

/// A sysctl value as the file would write it: /proc/sys separates a vector's
/// numbers with tabs, the file with spaces.
pub fn sysctl_norm(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A file nslab links into /etc/netns/NS, as found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EtcFile {
    #[default]
    Absent,
    /// nslab's own link (into its state directory), with its target.
    Ours(String),
    /// Anything else (a file or link someone else put there): kept.
    Foreign,
}

/// The lab's nftables table as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatObs {
    pub comment: Option<String>,
    /// Exactly the table nslab would write for these rules (chain shape included).
    pub rules: Vec<Nat>,
    pub exact: bool,
}

/// The name of a lab's nftables table.
pub fn nat_table(lab: &str) -> String {
    format!("nslab-{lab}")
}

/// Host mode: does the lab need the host to forward IPv4 (NAT, or nodes routing
/// through an address of the host)?
pub fn host_forwarding_needed(lab: &Lab) -> bool {
    if lab.sandbox {
        return false;
    }
    if !lab.nat.is_empty() || !lab.publish.is_empty() {
        return true;
    }
    // Routing through the host only needs forwarding if the host has somewhere
    // else in the lab to send it: a second network of its own, or routes.
    let host = lab.addresses_of(&Place::Host);
    let nets: BTreeSet<IpNet> = host.iter().map(|(_, a)| a.trunc()).collect();
    let through_host = lab.nodes.iter().any(|n| {
        n.routes.iter().any(|r| {
            r.via
                .is_some_and(|v| host.iter().any(|(_, a)| a.addr() == v))
        })
    });
    through_host && (nets.len() > 1 || !lab.host.routes.is_empty())
}

/// The kernel as observed before planning. A namespace absent from `ns` does not exist.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub ns: BTreeMap<Ns, NsObs>,
    /// Content of the lab's hosts file, if present.
    pub lab_hosts: Option<String>,
    /// Namespaces whose /etc/netns/NS/hosts is there and not nslab's (a file, or
    /// a link to elsewhere): kept as it is.
    pub foreign_hosts: BTreeSet<String>,
    /// Content of the lab's resolv.conf, if present.
    pub lab_resolv: Option<String>,
    /// What is at /etc/netns/NS/resolv.conf of each node (whether or not its
    /// namespace exists yet); a node absent here has none.
    pub resolv: BTreeMap<String, EtcFile>,
}

/// What the lab's record says it owns.
#[derive(Debug, Clone, Default)]
pub struct Owned {
    pub namespaces: BTreeSet<String>,
    /// Interfaces in the host namespace (host mode).
    pub host_links: BTreeSet<String>,
    /// The MAC each recorded host bridge was created with.
    pub bridge_macs: BTreeMap<String, [u8; 6]>,
    /// Interfaces set down on purpose (`nslab link ENDPOINT down`): runtime
    /// state, not drift, so `up` leaves them down and `status` does not flag them.
    pub links_down: BTreeSet<(Ns, String)>,
    /// Of those, the ends the file wants down (`up: false`, not set up with
    /// `nslab link`): desired state, so one that is up is drift `up` repairs.
    pub force_down: BTreeSet<(Ns, String)>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Something in the way that nslab must not touch: the plan is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict(pub String);

/// Every interface one namespace of the lab should have.
#[derive(Debug, Default)]
pub struct Want {
    pub ifaces: Vec<WIf>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct WIf {
    pub name: String,
    pub addrs: Vec<IpNet>,
    pub mtu: Option<u32>,
    pub master: Option<String>,
    /// The MAC the file (or, for a bridge, nslab) pins.
    pub mac: Option<[u8; 6]>,
}

/// The namespace name of a place, given the lab.
/// Where a machine's VXLAN sockets live and its underlay address is: the lab's
/// host in host mode; with `--sandbox`, the namespace nslab runs in (the real
/// host), since the sandbox's host is private and has no underlay. The devices
/// are made from there straight into the sandbox (bridge ports) or the nodes:
/// their UDP sockets stay where they were made, nothing else of the lab does.
pub fn underlay_ns(lab: &Lab) -> Ns {
    if lab.sandbox {
        Ns::HOST
    } else {
        ns_of(lab, &Place::Host)
    }
}

pub fn ns_of(lab: &Lab, p: &Place) -> Ns {
    match p {
        // Host mode: the namespace nslab was started in.
        Place::Host => lab.host_ns().map(Ns::named).unwrap_or(Ns::HOST),
        Place::Internet => lab.internet_ns().map(Ns::named).unwrap_or(Ns::HOST),
        Place::Node(n) => Ns::named(
            lab.node(n)
                .map(|x| x.ns.clone())
                .unwrap_or_else(|| format!("{}{n}", lab.prefix)),
        ),
    }
}

/// All veth pairs of the lab, including the sandbox's uplink to the internet.
pub fn all_links(lab: &Lab) -> Vec<Link> {
    let mut v = lab.links.clone();
    if lab.sandbox {
        v.push(Link {
            a: End {
                place: Place::Host,
                ifname: UPLINK_IF.into(),
                bridge: None,
            },
            b: End {
                place: Place::Internet,
                ifname: INET_IF.into(),
                bridge: None,
            },
            up: true,
            shapes: Vec::new(),
        });
    }
    v
}

fn iface_of<'a>(lab: &'a Lab, p: &Place, name: &str) -> Option<&'a Iface> {
    match p {
        Place::Node(n) => lab.node(n)?.interfaces.iter().find(|i| i.name == name),
        Place::Host => lab.host_iface(name),
        Place::Internet => None,
    }
}

/// What each namespace of the lab should hold, by namespace name.
pub fn wants(lab: &Lab) -> BTreeMap<Ns, Want> {
    let mut m: BTreeMap<Ns, Want> = BTreeMap::new();
    let mut places = vec![Place::Host];
    if lab.sandbox {
        places.push(Place::Internet);
    }
    places.extend(lab.nodes.iter().map(|n| Place::Node(n.name.clone())));
    for p in &places {
        m.entry(ns_of(lab, p)).or_default();
    }
    let host = ns_of(lab, &Place::Host);
    for b in &lab.bridges {
        m.get_mut(&host).expect("host").ifaces.push(WIf {
            name: b.name.clone(),
            addrs: b.addresses.clone(),
            mtu: b.mtu,
            master: None,
            mac: Some(b.mac),
        });
    }
    for l in all_links(lab) {
        for e in [&l.a, &l.b] {
            let ns = ns_of(lab, &e.place);
            let (addrs, mtu, mac) = match iface_of(lab, &e.place, &e.ifname) {
                Some(i) => (i.addresses.clone(), i.mtu, i.mac),
                None => (
                    lab.addresses_of(&e.place)
                        .into_iter()
                        .filter(|(n, _)| n == &e.ifname)
                        .map(|x| x.1)
                        .collect(),
                    None,
                    None,
                ),
            };
            m.entry(ns).or_default().ifaces.push(WIf {
                name: e.ifname.clone(),
                addrs,
                mtu,
                master: e.bridge.clone(),
                mac,
            });
        }
    }
    // A machine's VXLAN devices: a node's end of a cable, or a bridge port.
    for v in &lab.vxlans {
        let i = iface_of(lab, &v.place, &v.name);
        m.entry(ns_of(lab, &v.place)).or_default().ifaces.push(WIf {
            name: v.name.clone(),
            addrs: i.map(|i| i.addresses.clone()).unwrap_or_default(),
            mtu: Some(v.mtu),
            master: v.master.clone(),
            mac: i.and_then(|i| i.mac),
        });
    }
    for n in &lab.nodes {
        m.entry(Ns::named(n.ns.clone())).or_default().routes = n.routes.clone();
    }
    let hw = m.get_mut(&host).expect("host");
    hw.routes = lab.host.routes.clone();
    if lab.sandbox {
        hw.routes.push(Route {
            dst: "0.0.0.0/0".parse().expect("constant"),
            via: Some(sandbox_uplink_inet_addr().addr()),
            dev: None,
            onlink: false,
            metric: None,
        });
        if lab.sandbox_ipv6() {
            hw.routes.push(Route {
                dst: "::/0".parse().expect("constant"),
                via: Some(crate::topology::sandbox_uplink_inet_addr6().addr()),
                dev: None,
                onlink: false,
                metric: None,
            });
        }
        if let Some(inet) = lab.internet_ns() {
            // The stand-in for the outside world's well-known address lives on lo.
            m.get_mut(inet.as_str()).expect("inet").ifaces.push(WIf {
                name: "lo".into(),
                addrs: vec![sandbox_inet_service_addr()],
                mtu: None,
                master: None,
                mac: None,
            });
        }
    }
    // Pushed one by one: at 10,000 namespaces the spare capacity is megabytes.
    for w in m.values_mut() {
        w.ifaces.shrink_to_fit();
        w.routes.shrink_to_fit();
    }
    m
}

/// Sysctls a namespace of the lab gets when it is created.
pub fn creation_sysctls(lab: &Lab, ns: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    // Without link-local addresses, each new interface gets `addrgenmode none`
    // before it comes up (see plan_up). Not through the namespace's default: a
    // write under /proc/sys costs a lookup through every namespace's entries
    // (proc_sys_compare), ~0.25 ms each at 1000 namespaces: quadratic.
    if lab.ipv6_link_local {
        // Link-local addresses usable at once (routers' next hops are link-local):
        // no duplicate address detection in a lab whose addresses nslab assigns.
        v.push(("net.ipv6.conf.default.accept_dad".into(), "0".into()));
        v.push(("net.ipv6.conf.all.accept_dad".into(), "0".into()));
    }
    v.extend(
        forward_sysctls(lab, ns)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    v
}

/// Forwarding wanted in a namespace of the lab: routers and the sandbox host.
fn forward_sysctls(lab: &Lab, ns: &str) -> Vec<(&'static str, &'static str)> {
    let forwards = (lab.sandbox && Some(ns) == lab.host_ns().as_deref())
        || lab.node_in(ns).is_some_and(|n| n.forward);
    if forwards {
        vec![
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
        ]
    } else {
        vec![]
    }
}

/// The /etc/netns/NS/hosts every node gets: each node's addresses by name.
/// The lab's resolv.conf: no resolver runs on 127.0.0.1 in a node, so a lookup
/// (like the one `python3 -m http.server` makes of its bind address) fails at
/// once; one try of at most a second if something drops the query instead.
pub fn resolv_file(lab: &Lab) -> String {
    format!(
        "# written by nslab for lab {} (removed by `nslab down`)\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        lab.name
    )
}

pub fn hosts_file(lab: &Lab) -> String {
    let mut s = format!(
        "# written by nslab for lab {} (removed by `nslab down`)\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        lab.name
    );
    for n in &lab.nodes {
        for i in &n.interfaces {
            for a in &i.addresses {
                s.push_str(&format!("{}\t{} {}-{}\n", a.addr(), n.name, n.name, i.name));
            }
        }
    }
    for (ifn, a) in lab.addresses_of(&Place::Host) {
        s.push_str(&format!("{}\thost-{ifn}\n", a.addr()));
    }
    s
}

/// Does a bridge's observed STP state match the file's (`None`: off)?
pub fn stp_matches(o: &crate::model::observed::ObsStp, want: Option<&Stp>) -> bool {
    match want {
        // Only the root shows its own timers (see ObsStp::root).
        Some(w) => {
            o.on && (!o.root || (o.forward_delay == w.forward_delay && o.max_age == w.max_age))
        }
        None => !o.on,
    }
}

/// Is an observed link the VXLAN device the model wants (VNI, addresses, port)?
pub fn vxlan_matches(o: &ObsLink, v: &Vxlan) -> bool {
    o.kind.as_deref() == Some("vxlan")
        && o.vxlan.as_ref().is_some_and(|x| {
            x.vni == v.vni
                && x.local == Some(v.local)
                && x.remote == v.remote
                && x.port == VXLAN_PORT
        })
}

fn is_ours(l: &ObsLink, mark: &str) -> bool {
    l.alias.as_deref() == Some(mark)
}

/// Does an observed route equal a wanted one (device resolved by `idx`)?
pub fn route_matches(o: &ObsRoute, r: &Route, idx: &dyn Fn(&str) -> Option<u32>) -> bool {
    o.dst == r.dst
        && o.via == r.via
        && o.metric == r.metric
        && match &r.dev {
            Some(d) => idx(d).is_some() && o.oif == idx(d),
            None => true,
        }
}

/// The plan for `up`: create what is missing, fix what differs, remove what the
/// previous model (the record) had and the new one dropped.
pub fn plan_up(
    lab: &Lab,
    obs: &Observed,
    prev: Option<&Lab>,
    owned: &Owned,
) -> Result<(Vec<Op>, Vec<String>), Vec<Conflict>> {
    let cx = UpCx::new(lab, obs, prev, owned);
    let mut up = UpOps::default();
    up.namespaces_gone(&cx);
    up.namespaces(&cx);
    up.bridges(&cx);
    up.cables(&cx);
    up.vxlans(&cx);
    up.underlay(&cx);
    up.links_gone(&cx);
    for (ns, w) in &cx.want {
        up.configure_ns(&cx, ns, w);
    }
    up.nat(&cx);
    up.finish(&cx)
}

/// What `plan_up` reads: the lab wanted, what is there, and what the record
/// says was there.
struct UpCx<'a> {
    lab: &'a Lab,
    obs: &'a Observed,
    prev: Option<&'a Lab>,
    owned: &'a Owned,
    mark: String,
    want: BTreeMap<Ns, Want>,
    prev_want: BTreeMap<Ns, Want>,
    host_ns: Ns,
    /// One hosts file for the whole lab, linked from each node's /etc/netns.
    hosts_target: String,
    /// Likewise one resolv.conf.
    resolv_target: String,
    node_ns: BTreeSet<&'a str>,
    /// The state of a namespace that is not there.
    empty: NsState,
}

impl<'a> UpCx<'a> {
    fn new(lab: &'a Lab, obs: &'a Observed, prev: Option<&'a Lab>, owned: &'a Owned) -> Self {
        UpCx {
            lab,
            obs,
            prev,
            owned,
            mark: lab.mark(),
            want: wants(lab),
            prev_want: prev.map(wants).unwrap_or_default(),
            host_ns: ns_of(lab, &Place::Host),
            hosts_target: crate::record::hosts_path(&lab.name).display().to_string(),
            resolv_target: crate::record::resolv_path(&lab.name).display().to_string(),
            node_ns: lab.nodes.iter().map(|n| n.ns.as_str()).collect(),
            empty: NsState::default(),
        }
    }

    // Ours: carries the mark, or sits in a namespace the lab owns, or is a host
    // interface the record owns (made just before a crash, not yet marked).
    // A namespace is the lab's when its `lo` carries the mark (set before the
    // namespace got its name), never by name alone: one re-made by hand under a
    // node's name is someone else's.
    fn ns_ours(&self, ns: &Ns) -> bool {
        self.obs
            .ns
            .get(ns)
            .and_then(|o| o.state.link("lo"))
            .is_some_and(|l| is_ours(l, &self.mark))
    }

    // A host bridge made just before a crash, not yet marked: recorded, and with
    // the MAC it was made with.
    fn adopt(&self, ns: &Ns, l: &ObsLink) -> bool {
        is_ours(l, &self.mark)
            || (!ns.is_host() && self.ns_ours(ns))
            || (ns.is_host()
                && self.owned.host_links.contains(&l.name)
                && l.kind.as_deref() == Some("bridge")
                && l.mac.is_some()
                && self.owned.bridge_macs.get(&l.name) == l.mac.as_ref())
    }

    // A host veth end made just before a crash, not yet marked: recorded, and
    // the peer of the other end of the cable, which is in a namespace of ours.
    fn cable_of_ours(&self, ns: &Ns, l: &ObsLink, other_ns: &Ns, other: Option<&ObsLink>) -> bool {
        ns.is_host()
            && self.owned.host_links.contains(&l.name)
            && l.kind.as_deref() == Some("veth")
            && !other_ns.is_host()
            && self.ns_ours(other_ns)
            && other.is_some_and(|p| p.peer_index == Some(l.index) && l.peer_index == Some(p.index))
    }

    fn state(&self, ns: &Ns) -> &NsState {
        self.obs.ns.get(ns).map(|o| &o.state).unwrap_or(&self.empty)
    }

    /// The interface as the previous model wanted it.
    fn prev_iface(&self, ns: &Ns, name: &str) -> Option<&WIf> {
        self.prev_want
            .get(ns)
            .and_then(|pw| pw.ifaces.iter().find(|x| x.name == name))
    }
}

/// The plan for `up` as it is built, by kind of step.
#[derive(Default)]
struct UpOps {
    conflicts: Vec<Conflict>,
    notes: Vec<String>,
    dels: Vec<Op>,
    creates_ns: Vec<Op>,
    creates_link: Vec<Op>,
    /// The lab's host's configuration: first, bridge ports must be up before
    /// nodes talk through them.
    host_config: Vec<Op>,
    /// The other namespaces' configuration, one after the other in the order
    /// of `want` (written straight here: at 10,000 nodes, one list per
    /// namespace cost ~7 MiB more at the plan's peak).
    config: Vec<Op>,
    nat_ops: Vec<Op>,
    files: Vec<Op>,
    /// Links this plan (re)creates: what the kernel had of them does not count.
    fresh: BTreeSet<(Ns, String)>,
    /// Fresh veth ends that join their bridge after creation: the kernel takes
    /// IFLA_MASTER only for the end the request names, not for the peer (the
    /// second port of a bridge-to-bridge cable).
    late_master: BTreeSet<(Ns, String)>,
}

impl UpOps {
    /// Namespaces the lab had and no longer wants.
    fn namespaces_gone(&mut self, cx: &UpCx) {
        let Some(p) = cx.prev else { return };
        for ns in p.namespaces().into_iter().map(Ns::named) {
            if !cx.want.contains_key(&ns) && cx.obs.ns.contains_key(&ns) {
                if cx.ns_ours(&ns) {
                    self.dels.push(Op::DeleteNs { ns: ns.clone() });
                    self.files.push(Op::RemoveEtc { ns });
                } else {
                    self.notes.push(format!("namespace {ns} is no longer the lab's: its lo does not carry the mark {} (re-made by someone else?); left alone", cx.mark));
                }
            }
        }
    }

    /// Ownership of existing namespaces: lo marked by us. Recorded but unmarked
    /// means the lab's namespace went and someone made another under its name.
    fn namespaces(&mut self, cx: &UpCx) {
        for ns in cx.want.keys().filter(|n| !n.is_host()) {
            if cx.obs.ns.contains_key(ns) {
                if !cx.ns_ours(ns) {
                    let why = if cx.owned.namespaces.contains(ns.as_str()) {
                        "was the lab's, but the one there now is not (its lo does not carry the mark; re-made by someone else?)"
                    } else {
                        "already exists and does not belong to the lab"
                    };
                    self.conflicts.push(Conflict(format!("namespace {ns} {why}; nslab will not touch it. Remove it (`ip netns del {ns}`) or use --prefix to pick other names (lab {})", cx.lab.name)));
                }
            } else {
                self.creates_ns.push(Op::CreateNs {
                    ns: ns.clone(),
                    sysctls: creation_sysctls(cx.lab, ns.as_str()),
                    mark: cx.mark.clone(),
                });
            }
        }
    }

    fn bridges(&mut self, cx: &UpCx) {
        let (host_ns, mark) = (&cx.host_ns, &cx.mark);
        for b in &cx.lab.bridges {
            match cx.state(host_ns).link(&b.name) {
                Some(l) if cx.adopt(host_ns, l) => {}
                Some(_) => self.conflicts.push(Conflict(format!("interface {} in {} exists and is not nslab's (no mark {mark}); nslab will not take it over", b.name, at(host_ns)))),
                None => {
                    self.creates_link.push(Op::CreateBridge { ns: host_ns.clone(), name: b.name.clone(), mac: b.mac, mtu: b.mtu });
                    self.fresh.insert((host_ns.clone(), b.name.clone()));
                    if b.stp.is_some() {
                        self.creates_link.push(Op::SetBridgeStp { ns: host_ns.clone(), name: b.name.clone(), stp: b.stp });
                    }
                    continue;
                }
            }
            // Drift: STP on or off, or other timers, than the file says.
            if let Some(o) = cx.state(host_ns).link(&b.name).and_then(|l| l.stp)
                && !stp_matches(&o, b.stp.as_ref())
            {
                self.creates_link.push(Op::SetBridgeStp {
                    ns: host_ns.clone(),
                    name: b.name.clone(),
                    stp: b.stp,
                });
            }
        }
    }

    /// Cables: a veth whose ends are both there and ours stays; otherwise (re)create.
    fn cables(&mut self, cx: &UpCx) {
        let lab = cx.lab;
        for l in all_links(lab) {
            // Create from the host side (or the first node): its socket does the work.
            // (Both in the host, a cable between bridges: as the file has it.)
            let (a, b) = if l.b.place == Place::Host && l.a.place != Place::Host {
                (&l.b, &l.a)
            } else {
                (&l.a, &l.b)
            };
            let (na, nb) = (ns_of(lab, &a.place), ns_of(lab, &b.place));
            let (oa, ob) = (cx.state(&na).link(&a.ifname), cx.state(&nb).link(&b.ifname));
            let mut ok = true;
            for (o, ns, name, other_ns, other) in
                [(oa, &na, &a.ifname, &nb, ob), (ob, &nb, &b.ifname, &na, oa)]
            {
                if let Some(o) = o
                    && !cx.adopt(ns, o)
                    && !cx.cable_of_ours(ns, o, other_ns, other)
                {
                    self.conflicts.push(Conflict(format!("interface {name} in {} exists and is not nslab's (no mark {}); nslab will not take it over", at(ns), cx.mark)));
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
            let intact = oa.is_some_and(|o| o.kind.as_deref() == Some("veth"))
                && ob.is_some_and(|o| o.kind.as_deref() == Some("veth"));
            if intact {
                continue;
            }
            for (o, ns, name) in [(oa, &na, &a.ifname), (ob, &nb, &b.ifname)] {
                if o.is_some() {
                    self.dels.push(Op::DeleteLink {
                        ns: ns.clone(),
                        name: name.clone(),
                    });
                }
            }
            let ia = iface_of(lab, &a.place, &a.ifname);
            let ib = iface_of(lab, &b.place, &b.ifname);
            self.creates_link.push(Op::CreateVeth {
                a: Box::new(VEnd {
                    ns: na.clone(),
                    name: a.ifname.clone(),
                    mtu: ia.and_then(|i| i.mtu),
                    mac: ia.and_then(|i| i.mac),
                    master: a.bridge.clone(),
                    up: false,
                }),
                b: Box::new(VEnd {
                    ns: nb.clone(),
                    name: b.ifname.clone(),
                    mtu: ib.and_then(|i| i.mtu),
                    mac: ib.and_then(|i| i.mac),
                    master: b.bridge.clone(),
                    up: false,
                }),
            });
            self.fresh.insert((na, a.ifname.clone()));
            if b.bridge.is_some() {
                self.late_master.insert((nb.clone(), b.ifname.clone()));
            }
            self.fresh.insert((nb, b.ifname.clone()));
        }
    }

    /// VXLAN devices of a machine's part: one that is there, ours, with the
    /// VNI, addresses and port the file says stays (its missing flood entries
    /// added again); otherwise (re)create it. Flood entries go with a new
    /// bridge port.
    fn vxlans(&mut self, cx: &UpCx) {
        for v in &cx.lab.vxlans {
            let into = ns_of(cx.lab, &v.place);
            let o = cx.state(&into).link(&v.name);
            if let Some(o) = o
                && !cx.adopt(&into, o)
            {
                self.conflicts.push(Conflict(format!("interface {} in {} exists and is not nslab's (no mark {}); nslab will not take it over", v.name, at(&into), cx.mark)));
                continue;
            }
            if let Some(o) = o.filter(|o| vxlan_matches(o, v)) {
                self.flood(&into, o, v);
                continue;
            }
            if o.is_some() {
                self.dels.push(Op::DeleteLink {
                    ns: into.clone(),
                    name: v.name.clone(),
                });
            }
            self.creates_link.push(Op::CreateVxlan {
                ns: underlay_ns(cx.lab),
                into: into.clone(),
                vxlan: VxlanSpec {
                    name: v.name.clone(),
                    vni: v.vni,
                    local: v.local,
                    remote: v.remote,
                    port: VXLAN_PORT,
                    mtu: v.mtu,
                    mac: v.mac,
                },
            });
            for dst in &v.flood {
                self.creates_link.push(Op::AddFdb {
                    ns: into.clone(),
                    dev: v.name.clone(),
                    dst: *dst,
                });
            }
            // Readiness: `up` waits for this machine's part only; what crosses
            // to another machine passes traffic once that machine's part is up.
            let what = match (&v.far_end, &v.master) {
                (Some(far), _) => format!("cable {}:{} -- {far}", v.place, v.name),
                (None, Some(b)) => format!("bridge {b} (port {})", v.name),
                (None, None) => v.name.clone(),
            };
            self.notes.push(format!(
                "{what} goes over VXLAN (vni {}) to {}: it passes traffic once the part there is up; `up` does not wait for it",
                v.vni,
                v.peers.join(", "),
            ));
            if v.master.is_some() {
                // Made without a master: it joins its bridge as it is configured.
                self.late_master.insert((into.clone(), v.name.clone()));
            }
            self.fresh.insert((into, v.name.clone()));
        }
    }

    /// The flood entries of a VXLAN bridge port that is there and matches:
    /// one the file wants and the kernel lacks is added again; one the file
    /// does not name (someone's `bridge fdb append`) is left alone, with a note.
    fn flood(&mut self, into: &Ns, o: &ObsLink, v: &Vxlan) {
        let have: &[std::net::IpAddr] = o.vxlan.as_ref().map_or(&[], |x| &x.flood);
        for dst in v.flood.iter().filter(|d| !have.contains(d)) {
            self.creates_link.push(Op::AddFdb {
                ns: into.clone(),
                dev: v.name.clone(),
                dst: *dst,
            });
        }
        // A cable's unicast remote is an all-zero entry of its own.
        let extra: Vec<String> = (have.iter())
            .filter(|d| !v.flood.contains(d) && v.remote.as_ref() != Some(*d))
            .map(|d| d.to_string())
            .collect();
        if !extra.is_empty() {
            self.notes.push(format!(
                "VXLAN {} in {} also floods to {}, which the file does not name: nslab leaves it (`bridge fdb del 00:00:00:00:00:00 dev {} dst ADDR` removes it)",
                v.name,
                at(into),
                extra.join(", "),
                v.name,
            ));
        }
    }

    /// A machine's part needs its underlay: its own address in the host
    /// namespace (else the file and the machine disagree: refused before
    /// anything changes), and a route to each other machine it talks to.
    fn underlay(&mut self, cx: &UpCx) {
        let Some(me) = &cx.lab.machine else { return };
        let Some(m) = cx.lab.machines.iter().find(|m| &m.name == me) else {
            return;
        };
        let under = underlay_ns(cx.lab);
        let host = cx.state(&under);
        if !host.addrs.iter().any(|a| a.addr.addr() == m.underlay) {
            self.conflicts.push(Conflict(format!("machine {me}'s underlay address {} is not an address of {} (machines: {}); run `up --machine` on the machine that has it, or fix `machines.{me}.underlay`", m.underlay, at(&under), crate::topology::machines::machine_names(cx.lab))));
            return;
        }
        let mut seen = BTreeSet::new();
        for v in &cx.lab.vxlans {
            for (peer, dst) in v.peers.iter().zip(v.remote.iter().chain(&v.flood)) {
                if !seen.insert(*dst) {
                    continue;
                }
                let routed = host.routes.iter().any(|r| r.dst.contains(dst))
                    || host.addrs.iter().any(|a| a.addr.contains(dst));
                if !routed {
                    // The rule: the other machines must be routable, else
                    // the part would come up deaf. Refused before anything changes.
                    self.conflicts.push(Conflict(format!("no route to machine {peer}'s underlay address {dst} in {}: VXLAN {} (vni {}) could not reach it; add a route to the underlay or fix `machines.{peer}.underlay`", at(&under), v.name, v.vni)));
                }
            }
        }
    }

    /// Links the previous model had that are gone now (host side; node namespaces
    /// that stay keep only what is wanted).
    fn links_gone(&mut self, cx: &UpCx) {
        for (ns, pw) in &cx.prev_want {
            let Some(w) = cx.want.get(ns) else { continue };
            for pi in &pw.ifaces {
                if pi.name != "lo"
                    && !w.ifaces.iter().any(|i| i.name == pi.name)
                    && let Some(o) = cx.state(ns).link(&pi.name)
                    && cx.adopt(ns, o)
                {
                    self.dels.push(Op::DeleteLink {
                        ns: ns.clone(),
                        name: pi.name.clone(),
                    });
                }
            }
        }
    }

    /// Per namespace: links up (and configured), addresses, routes, files.
    fn configure_ns(&mut self, cx: &UpCx, ns: &Ns, w: &Want) {
        let to_host = *ns == cx.host_ns;
        let mut ops = std::mem::take(if to_host {
            &mut self.host_config
        } else {
            &mut self.config
        });
        let new_ns = !cx.obs.ns.contains_key(ns) && !ns.is_host();
        let lo = cx.state(ns).link("lo");
        // A new namespace gets lo up (and marked) as it is made.
        if !ns.is_host() && !new_ns && lo.is_some_and(|l| !l.up) {
            ops.push(Op::SetLink {
                ns: ns.clone(),
                name: "lo".into(),
                no_link_local: false,
                master: None,
                mtu: None,
                mac: None,
                alias: None,
                up: true,
                down: false,
            });
        }
        if !new_ns && !ns.is_host() {
            forwarding(cx, ns, lo, &mut ops);
        }
        for i in &w.ifaces {
            let is_fresh = self.fresh.contains(&(ns.clone(), i.name.clone()));
            let o = if is_fresh {
                None
            } else {
                cx.state(ns).link(&i.name)
            };
            if i.name != "lo" {
                let late = self.late_master.contains(&(ns.clone(), i.name.clone()));
                link_settings(cx, ns, i, o, (is_fresh, late), &mut ops);
            }
            self.addresses(cx, ns, i, o, &mut ops);
        }
        self.routes(cx, ns, w, &mut ops);
        self.sysctls(cx, ns, w, &mut ops);
        self.extra_links(cx, ns, w);
        self.etc_links(cx, ns);
        if to_host {
            self.host_config = ops;
        } else {
            self.config = ops;
        }
    }

    /// The file's sysctls that differ from the kernel's (all of them in a new
    /// namespace). A key the kernel does not have refuses the plan, unless it names
    /// an interface `up` is about to make.
    fn sysctls(&mut self, cx: &UpCx, ns: &Ns, w: &Want, ops: &mut Vec<Op>) {
        let Some(want) = wanted_sysctls(cx.lab, ns) else {
            return;
        };
        let found = cx.obs.ns.get(ns).map(|o| &o.sysctls);
        for (key, value) in want {
            match found.map(|f| f.get(key)) {
                Some(Some(Some(v))) if sysctl_norm(v) == *value => continue,
                Some(Some(None)) => {
                    let parts: Vec<&str> = key.split('.').collect();
                    let new_if = parts.len() > 3
                        && parts[2] == "conf"
                        && w.ifaces.iter().any(|i| i.name == parts[3])
                        && cx.state(ns).link(parts[3]).is_none();
                    if !new_if {
                        self.conflicts.push(Conflict(format!(
                            "sysctl {key} does not exist in {} (no /proc/sys/{})",
                            at(ns),
                            key.replace('.', "/")
                        )));
                        continue;
                    }
                }
                _ => {}
            }
            ops.push(Op::Sysctl {
                ns: ns.clone(),
                key: key.clone(),
                value: value.clone(),
            });
        }
    }

    /// Addresses to add, the previous model's to remove, and others to report.
    fn addresses(&mut self, cx: &UpCx, ns: &Ns, i: &WIf, o: Option<&ObsLink>, ops: &mut Vec<Op>) {
        let st = cx.state(ns);
        let have: Vec<IpNet> = o
            .map(|l| st.addrs_of(l.index).cloned().collect())
            .unwrap_or_default();
        for a in &i.addrs {
            if !have.contains(a) {
                ops.push(Op::AddAddr {
                    ns: ns.clone(),
                    dev: i.name.clone(),
                    addr: *a,
                });
            }
        }
        // Addresses the previous model put here and the new one does not want.
        if let Some(pi) = cx.prev_iface(ns, &i.name) {
            for a in &pi.addrs {
                if !i.addrs.contains(a) && have.contains(a) {
                    self.dels.push(Op::DelAddr {
                        ns: ns.clone(),
                        dev: i.name.clone(),
                        addr: *a,
                    });
                }
            }
        }
        if let Some(l) = o {
            for a in &have {
                let expected = i.addrs.contains(a)
                    || cx
                        .prev_iface(ns, &i.name)
                        .is_some_and(|pi| pi.addrs.contains(a));
                let auto = matches!(a, IpNet::V6(v) if v.addr().segments()[0] & 0xffc0 == 0xfe80)
                    || (i.name == "lo" && a.addr().is_loopback());
                if !expected && !auto {
                    self.notes.push(format!(
                        "{} in {} has address {a} that the lab does not declare (left alone)",
                        l.name,
                        at(ns)
                    ));
                }
            }
        }
    }

    /// Routes: the kernel ones come with addresses; static ones are ours.
    fn routes(&mut self, cx: &UpCx, ns: &Ns, w: &Want, ops: &mut Vec<Op>) {
        let st = cx.state(ns);
        let idx = |d: &str| st.link(d).map(|l| l.index);
        // On-link routes first: a gateway must be reachable when its route is added.
        let mut wr: Vec<&Route> = w.routes.iter().collect();
        wr.sort_by_key(|r| r.via.is_some());
        for r in wr {
            // A link down on purpose took its routes along; they come back with it.
            if route_held(cx, ns, w, r) {
                continue;
            }
            let dev_fresh = r
                .dev
                .as_ref()
                .is_some_and(|d| self.fresh.contains(&(ns.clone(), d.clone())));
            let present = !dev_fresh && st.routes.iter().any(|o| route_matches(o, r, &idx));
            if !present {
                // Same destination with other details: replace it.
                if !dev_fresh
                    && let Some(o) = st
                        .routes
                        .iter()
                        .find(|o| o.dst == r.dst && o.metric == r.metric && o.protocol == "static")
                {
                    let old = Route {
                        dst: o.dst,
                        via: o.via,
                        dev: o
                            .oif
                            .and_then(|i| st.link_by_index(i))
                            .map(|l| l.name.clone()),
                        onlink: o.onlink,
                        metric: o.metric,
                    };
                    self.dels.push(Op::DelRoute {
                        ns: ns.clone(),
                        route: old,
                    });
                }
                ops.push(Op::AddRoute {
                    ns: ns.clone(),
                    route: r.clone(),
                });
            }
        }
        if let Some(pw) = cx.prev_want.get(ns) {
            for r in &pw.routes {
                if !w
                    .routes
                    .iter()
                    .any(|x| x.dst == r.dst && x.metric == r.metric)
                    && st.routes.iter().any(|o| route_matches(o, r, &idx))
                {
                    self.dels.push(Op::DelRoute {
                        ns: ns.clone(),
                        route: r.clone(),
                    });
                }
            }
        }
    }

    /// Unmarked extra interfaces are reported, never removed.
    fn extra_links(&mut self, cx: &UpCx, ns: &Ns, w: &Want) {
        if ns.is_host() {
            return;
        }
        for l in &cx.state(ns).links {
            if l.name != "lo" && !w.ifaces.iter().any(|i| i.name == l.name) && !is_ours(l, &cx.mark)
            {
                self.notes.push(format!(
                    "{} has interface {} that the lab does not declare (left alone)",
                    at(ns),
                    l.name
                ));
            }
        }
    }

    /// Node namespaces link the lab's hosts file and resolv.conf, unless
    /// someone else's is there.
    fn etc_links(&mut self, cx: &UpCx, ns: &Ns) {
        let node = cx.node_ns.contains(ns.as_str());
        if node && cx.obs.foreign_hosts.contains(ns.as_str()) {
            self.notes.push(format!("/etc/netns/{ns}/hosts is not nslab's: kept as it is (the lab's names do not resolve in {ns})"));
        } else if node
            && cx.obs.ns.get(ns).and_then(|o| o.hosts.as_deref()) != Some(cx.hosts_target.as_str())
        {
            self.files.push(Op::LinkHosts {
                ns: ns.clone(),
                target: cx.hosts_target.clone(),
            });
        }
        if node {
            match cx.obs.resolv.get(ns.as_str()) {
                Some(EtcFile::Foreign) => self.notes.push(format!(
                    "/etc/netns/{ns}/resolv.conf is not nslab's: kept (name lookups in {ns} use it)"
                )),
                Some(EtcFile::Ours(t)) if *t == cx.resolv_target => {}
                _ => self.files.push(Op::LinkResolv {
                    ns: ns.clone(),
                    target: cx.resolv_target.clone(),
                }),
            }
        }
    }

    /// NAT: one table per lab in its host namespace, replaced whole when it
    /// differs; and the host's forwarding when the lab needs it.
    fn nat(&mut self, cx: &UpCx) {
        let lab = cx.lab;
        self.nat_table(cx, &cx.host_ns, &lab.nat);
        // Routers' own tables (`nat:` of a node), in the node's namespace.
        for n in &lab.nodes {
            self.nat_table(cx, &Ns::named(&n.ns), &n.nat);
        }
        if host_forwarding_needed(lab)
            && cx.obs.ns.get(&Ns::HOST).and_then(|o| o.ip_forward) == Some(false)
        {
            self.nat_ops.push(Op::Sysctl {
                ns: Ns::HOST,
                key: "net.ipv4.ip_forward".into(),
                value: "1".into(),
            });
        }
    }

    /// The lab's table in one namespace: made, replaced whole when it differs
    /// (an `ip` table of older versions included), or deleted when not wanted.
    fn nat_table(&mut self, cx: &UpCx, ns: &Ns, want: &[Nat]) {
        let mark = &cx.mark;
        let table = nat_table(&cx.lab.name);
        let found = cx.obs.ns.get(ns).and_then(|o| o.nat.clone());
        match (&found, want.is_empty()) {
            (Some(f), _) if f.comment.as_deref() != Some(mark.as_str()) => {
                self.conflicts.push(Conflict(format!("nftables table inet {table} in {} exists and is not nslab's (its comment is not {mark}); nslab will not touch it", at(ns))));
            }
            (Some(f), false) if f.exact && f.rules == want => {}
            (_, false) => self.nat_ops.push(Op::SetNat {
                ns: ns.clone(),
                table: table.clone(),
                rules: want.to_vec(),
            }),
            (Some(_), true) => self.dels.push(Op::DeleteNat {
                ns: ns.clone(),
                table: table.clone(),
            }),
            (None, true) => {}
        }
    }

    /// The steps in order, or the conflicts that refuse the plan.
    fn finish(mut self, cx: &UpCx) -> Result<(Vec<Op>, Vec<String>), Vec<Conflict>> {
        if !self.conflicts.is_empty() {
            return Err(self.conflicts);
        }
        let lab = cx.lab;
        self.host_ports_without_ipv6(cx);
        // Order: deletions (routes, addresses, links, namespaces), namespaces, links,
        // then per namespace its configuration, then files.
        self.dels.sort_by_key(deletion_rank);
        self.dels.dedup();
        // The final list is built where the largest part, the namespaces'
        // configuration, already is: at 10,000 nodes (~100,000 ops) a second
        // full-size list next to all the parts was the peak of `plan`. The
        // other parts go in one after the other, each freed once moved (large
        // lists are mapped pages: freed, they go back at once).
        let mut ops = self.config;
        let head = self.dels.len()
            + self.creates_ns.len()
            + self.creates_link.len()
            + self.host_config.len();
        ops.reserve_exact(head + self.nat_ops.len() + 2 + self.files.len());
        // Exact sizes: the tail moves once, and the reserve above is not grown.
        ops.splice(
            0..0,
            self.dels
                .into_iter()
                .chain(self.creates_ns)
                .chain(self.creates_link)
                // The host first: bridge ports must be up before nodes talk
                // through them.
                .chain(self.host_config),
        );
        ops.extend(self.nat_ops);
        let hosts_content = hosts_file(lab);
        if !lab.nodes.is_empty() && cx.obs.lab_hosts.as_deref() != Some(hosts_content.as_str()) {
            ops.push(Op::WriteLabHosts {
                path: cx.hosts_target.clone(),
                content: hosts_content,
            });
        }
        let resolv_content = resolv_file(lab);
        if !lab.nodes.is_empty() && cx.obs.lab_resolv.as_deref() != Some(resolv_content.as_str()) {
            ops.push(Op::WriteLabResolv {
                path: cx.resolv_target.clone(),
                content: resolv_content,
            });
        }
        ops.extend(self.files);
        // The configuration's list grew by doubling; its spare end goes (in
        // place).
        ops.shrink_to_fit();
        Ok((ops, self.notes))
    }
}

/// From how many new bridge ports on in the sandbox's host they are made
/// without IPv6 (below, the two extra plan lines are not worth it).
const MANY_PORTS: usize = 256;

impl UpOps {
    /// New bridge ports in the sandbox's host (nslab's own namespace) are made
    /// with IPv6 off: `net.ipv6.conf.default.disable_ipv6` is 1 while the host's
    /// links are created. A port needs no IPv6 to bridge it, and with it each
    /// port that gets a carrier adds its ff00::/8 route to the host's one IPv6
    /// table and makes the kernel walk all of that table (`fib6_add_rt2node`,
    /// `fib6_ifup`, in the link-watch worker, under RTNL): quadratic in the
    /// ports, ~10% of the CPU of `up` at 10,000 nodes and the lock the
    /// namespaces' configuration waited on. The host's other new interfaces
    /// (bridges, uplinks) get IPv6 back before they are configured; with
    /// `ipv6_link_local`, or in host mode (the real host's default is not
    /// nslab's), nothing changes.
    fn host_ports_without_ipv6(&mut self, cx: &UpCx) {
        let host = &cx.host_ns;
        if !cx.lab.sandbox || cx.lab.ipv6_link_local {
            return;
        }
        let Some(w) = cx.want.get(host) else {
            return;
        };
        let (ports, others): (Vec<&WIf>, Vec<&WIf>) = w
            .ifaces
            .iter()
            .filter(|i| self.fresh.contains(&(host.clone(), i.name.clone())))
            .partition(|i| i.master.is_some() && i.addrs.is_empty());
        // A name with a dot has no sysctl key that says it.
        if ports.len() < MANY_PORTS || others.iter().any(|i| i.name.contains('.')) {
            return;
        }
        let makes_here = |o: &Op| match o {
            Op::CreateBridge { ns, .. } => ns == host,
            Op::CreateVeth { a, b } => a.ns == *host || b.ns == *host,
            Op::CreateVxlan { into, .. } => into == host,
            _ => false,
        };
        let (Some(first), Some(last)) = (
            self.creates_link.iter().position(makes_here),
            self.creates_link.iter().rposition(makes_here),
        ) else {
            return;
        };
        let set = |key: String, value: &str| Op::Sysctl {
            ns: host.clone(),
            key,
            value: value.into(),
        };
        let default = "net.ipv6.conf.default.disable_ipv6";
        self.creates_link.insert(last + 1, set(default.into(), "0"));
        self.creates_link.insert(first, set(default.into(), "1"));
        let back: Vec<Op> = others
            .iter()
            .map(|i| set(format!("net.ipv6.conf.{}.disable_ipv6", i.name), "0"))
            .collect();
        self.host_config.splice(0..0, back);
        // The ports are made up, and need no `addrgenmode none` (no IPv6):
        // a port made down queues a link-watch event that stays queued, not
        // urgent, until the port comes up, and every urgent run of the
        // link-watch worker (a carrier that comes on) walks past all of those
        // under RTNL with interrupts off. Made down, 10,000 ports cost the
        // nodes' configuration about 4 s of that walking.
        // A port held down (the file's `up: false`, `nslab link ... down`)
        // is made down, as any link.
        let names: BTreeSet<&str> = ports.iter().map(|i| i.name.as_str()).collect();
        let held = |name: &str| {
            cx.owned
                .links_down
                .contains(&(host.clone(), name.to_string()))
        };
        for op in &mut self.creates_link {
            if let Op::CreateVeth { a, b } = op {
                for e in [a, b] {
                    if e.ns == *host
                        && e.master.is_some()
                        && names.contains(e.name.as_str())
                        && !held(&e.name)
                    {
                        e.up = true;
                    }
                }
            }
        }
        self.host_config.retain(|o| {
            !matches!(o, Op::SetLink { ns, name, no_link_local: true, .. }
                if ns == host && names.contains(name.as_str()))
        });
    }
}

/// Forwarding of an existing namespace, as the kernel has it (on lo: see
/// ObsLink::forwarding), or as the previous model had it.
fn forwarding(cx: &UpCx, ns: &Ns, lo: Option<&ObsLink>, ops: &mut Vec<Op>) {
    let fw = forward_sysctls(cx.lab, ns.as_str());
    let want = !fw.is_empty();
    let differs = match lo.map(|l| l.forwarding) {
        Some((Some(v4), v6)) => v4 != want || v6.is_some_and(|v6| v6 != want),
        _ => {
            fw != cx
                .prev
                .map(|p| forward_sysctls(p, ns.as_str()))
                .unwrap_or_default()
        }
    };
    if differs {
        let v = if want { "1" } else { "0" };
        for k in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
            ops.push(Op::Sysctl {
                ns: ns.clone(),
                key: k.into(),
                value: v.into(),
            });
        }
    }
}

/// Bring a link to what the lab wants (master, MTU, MAC, mark, up), if it
/// differs or was just made.
fn link_settings(
    cx: &UpCx,
    ns: &Ns,
    i: &WIf,
    o: Option<&ObsLink>,
    (is_fresh, late_master): (bool, bool),
    ops: &mut Vec<Op>,
) {
    let st = cx.state(ns);
    let master_idx = i.master.as_ref().and_then(|m| st.link(m).map(|l| l.index));
    let master_ok = i.master.is_none()
        || (o.is_some() && o.and_then(|l| l.master) == master_idx && master_idx.is_some());
    // A link set down on purpose stays down: not drift, not repaired.
    let held_down = cx.owned.links_down.contains(&(ns.clone(), i.name.clone()));
    let force_down = cx.owned.force_down.contains(&(ns.clone(), i.name.clone()));
    let up_ok = if force_down {
        o.is_some_and(|l| !l.up)
    } else {
        held_down || o.is_some_and(|l| l.up)
    };
    // An MTU the file no longer sets goes back to the kernel's default.
    let prev_mtu = cx.prev_iface(ns, &i.name).and_then(|pi| pi.mtu);
    let want_mtu = i.mtu.or(prev_mtu.map(|_| DEFAULT_MTU));
    let mtu_ok = want_mtu.is_none() || o.and_then(|l| l.mtu) == want_mtu;
    // Below 1280 the kernel gives a link no IPv6 at all (and refuses
    // its IPv6 settings with EAFNOSUPPORT).
    let nll = is_fresh && !cx.lab.ipv6_link_local && i.mtu.is_none_or(|m| m >= 1280);
    if nll {
        // A request of its own, before the one that brings the link up.
        ops.push(Op::SetLink {
            ns: ns.clone(),
            name: i.name.clone(),
            no_link_local: true,
            master: None,
            mtu: None,
            mac: None,
            alias: None,
            up: false,
            down: false,
        });
    }
    // A new link gets its MAC in the create request.
    let mac_ok = i.mac.is_none() || is_fresh || o.and_then(|l| l.mac) == i.mac;
    let marked = o.is_some_and(|l| is_ours(l, &cx.mark));
    if !(master_ok && up_ok && mtu_ok && mac_ok && marked) || is_fresh {
        ops.push(Op::SetLink {
            ns: ns.clone(),
            name: i.name.clone(),
            no_link_local: false,
            // A fresh veth gets its master at creation.
            master: if master_ok || (is_fresh && !late_master) {
                None
            } else {
                i.master.clone()
            },
            mtu: if mtu_ok { None } else { want_mtu },
            mac: if mac_ok { None } else { i.mac },
            // The kernel ignores IFLA_IFALIAS in a create request: mark it here.
            alias: (is_fresh || !marked).then(|| cx.mark.clone()),
            up: !held_down,
            down: force_down && o.is_some_and(|l| l.up),
        });
    }
}

/// A route the kernel cannot hold while an interface it uses is down on
/// purpose (`nslab link`): by its device, or by a gateway on that interface.
fn route_held(cx: &UpCx, ns: &Ns, w: &Want, r: &Route) -> bool {
    route_uses(w, r, |d| {
        cx.owned.links_down.contains(&(ns.clone(), d.to_string()))
    })
}

/// Does route `r` of `w` use an interface for which `held` is true (as its
/// device, or by a gateway in one of its subnets)?
pub fn route_uses(w: &Want, r: &Route, held: impl Fn(&str) -> bool) -> bool {
    r.dev.as_deref().is_some_and(&held)
        || r.via.is_some_and(|v| {
            w.ifaces
                .iter()
                .any(|i| held(&i.name) && i.addrs.iter().any(|a| a.trunc().contains(&v)))
        })
}

/// Deletions run first, in this order: routes, addresses, links, NAT, then
/// namespaces (and anything else).
fn deletion_rank(o: &Op) -> u8 {
    match o {
        Op::DelRoute { .. } => 0,
        Op::DelAddr { .. } => 1,
        Op::DeleteLink { .. } => 2,
        Op::DeleteNat { .. } => 3,
        Op::CreateNs { .. }
        | Op::DeleteNs { .. }
        | Op::Sysctl { .. }
        | Op::CreateBridge { .. }
        | Op::SetBridgeStp { .. }
        | Op::CreateVeth { .. }
        | Op::SetLink { .. }
        | Op::AddAddr { .. }
        | Op::AddRoute { .. }
        | Op::SetNat { .. }
        | Op::WriteLabHosts { .. }
        | Op::LinkHosts { .. }
        | Op::RemoveEtc { .. }
        | Op::WriteLabResolv { .. }
        | Op::LinkResolv { .. }
        | Op::CreateVxlan { .. }
        | Op::AddFdb { .. } => 4,
    }
}

#[cfg(test)]
mod tests;
