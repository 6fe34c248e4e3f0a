//! Raw file -> validated model. Every name, address, reference and route is
//! checked here, before anything touches the kernel. All mistakes are collected,
//! each with its line, column and field.

use super::model::*;
use super::raw::*;
use ipnet::IpNet;
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

/// One mistake in a topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub line: u64,
    pub column: u64,
    /// Dotted path of the field, e.g. `nodes.black.interfaces.bveth.address`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

/// Options that shape the model: they come from the command line, not the file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub prefix: String,
    pub sandbox: bool,
    /// Check that each `run:` program is found in PATH (for `up`, which starts
    /// them; not for `graph` on another machine).
    pub check_programs: bool,
}

pub const MAX_IFNAME: usize = 15;
pub const MAX_BRIDGE_PORTS: usize = 1024;
const RESERVED: &[&str] = &["host", "internet", "all"];

struct Ctx {
    issues: Vec<Issue>,
    /// MACs the file sets, with where and on what: each must be unique in the lab.
    macs: Vec<([u8; 6], Location, String)>,
}

impl Ctx {
    fn at(&mut self, loc: &Location, field: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            line: loc.line(),
            column: loc.column(),
            field: field.into(),
            message: message.into(),
        });
    }
}

fn loc<T>(s: &Spanned<T>) -> &Location {
    &s.referenced
}

/// What is wrong with a name that becomes part of a file name (a namespace under
/// /run/netns, a record, a lock) or an identifier, if anything. Lab names from
/// every source (the file, `--lab`, `--prefix`, records found on disk) pass it
/// before any path is built from them.
pub fn name_problem(n: &str) -> Option<String> {
    if n.is_empty() {
        Some("is empty".to_string())
    } else if n.len() > 64 {
        Some(format!("is {} bytes long; at most 64", n.len()))
    } else if n.contains('/') || n.contains("..") || n.contains('\0') {
        Some("must not contain `/`, `..` or NUL (it becomes a file name under /run/netns)".into())
    } else if let Some(c) = n
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.'))
    {
        Some(format!(
            "contains {c:?}; use letters, digits, `-`, `_` and `.`"
        ))
    } else if n.starts_with('-') || n.starts_with('.') {
        Some("must not start with `-` or `.`".into())
    } else {
        None
    }
}

/// A `--prefix`: like a name, but may end in anything a name may contain (it is
/// the front of one), and may be empty.
pub fn prefix_problem(p: &str) -> Option<String> {
    if p.is_empty() {
        return None;
    }
    name_problem(p)
}

/// Namespace names (prefix + node, each checked on its own) that `ip netns`
/// gives a meaning of their own (`ip netns exec all` runs in every namespace).
pub fn ns_name_problem(ns: &str) -> Option<String> {
    SPECIAL_NAMES.contains(&ns).then(|| {
        format!(
            "namespace name {ns:?} means something else to `ip netns` and the kernel; pick another name"
        )
    })
}

/// Names the kernel or iproute2 treat specially.
const SPECIAL_NAMES: &[&str] = &[".", "..", "all", "default"];

fn check_name(cx: &mut Ctx, s: &S<String>, field: &str, what: &str) -> bool {
    if let Some(b) = name_problem(&s.value) {
        cx.at(loc(s), field, format!("{what} {:?} {b}", s.value));
        return false;
    }
    true
}

/// Linux interface names: 1 to 15 bytes, no `/`, `:` or whitespace.
pub fn ifname_problem(n: &str) -> Option<String> {
    if n.is_empty() {
        Some("is empty".into())
    } else if n.len() > MAX_IFNAME {
        Some(format!(
            "is {} bytes long; Linux allows at most {MAX_IFNAME}",
            n.len()
        ))
    } else if SPECIAL_NAMES.contains(&n) {
        Some("has a meaning of its own to the kernel (`all` and `default` name its sysctl sets); pick another name".into())
    } else if n
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
    {
        Some("must not contain `/`, `:`, NUL or spaces".into())
    } else if n.contains('%') {
        // The kernel expands `%d` to the first free number (`br%d` -> br0): the
        // interface would get a name nslab never asked for.
        Some("must not contain `%` (the kernel would pick a numbered name of its own)".into())
    } else {
        None
    }
}

fn check_ifname(cx: &mut Ctx, s: &S<String>, field: &str) -> bool {
    if let Some(p) = ifname_problem(&s.value) {
        cx.at(loc(s), field, format!("interface name {:?} {p}", s.value));
        return false;
    }
    if s.value == "lo" {
        cx.at(
            loc(s),
            field,
            "`lo` is the loopback interface; nslab brings it up in every node by itself",
        );
        return false;
    }
    true
}

fn parse_cidr(cx: &mut Ctx, s: &S<String>, field: &str) -> Option<IpNet> {
    let v = s.value.trim();
    match v.parse::<IpNet>() {
        Ok(n) => Some(n),
        Err(_) => {
            if v.parse::<IpAddr>().is_ok() {
                cx.at(
                    loc(s),
                    field,
                    format!("address {v:?} needs a prefix length, e.g. {v}/24"),
                );
            } else {
                cx.at(
                    loc(s),
                    field,
                    format!(
                        "{v:?} is not an address in CIDR form like 192.168.1.1/24 or fd00::1/64"
                    ),
                );
            }
            None
        }
    }
}

fn parse_mac(cx: &mut Ctx, s: &S<String>, field: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.value.split(':').collect();
    let mut mac = [0u8; 6];
    let ok = parts.len() == 6
        && parts
            .iter()
            .zip(mac.iter_mut())
            .all(|(p, m)| p.len() == 2 && u8::from_str_radix(p, 16).map(|v| *m = v).is_ok());
    if !ok {
        cx.at(
            loc(s),
            field,
            format!("{:?} is not a MAC address like 02:00:00:00:00:01", s.value),
        );
        return None;
    }
    if mac[0] & 1 == 1 {
        cx.at(
            loc(s),
            field,
            format!("{} is a multicast MAC address (the first byte is odd); an interface needs a unicast one, like 02:00:00:00:00:01 (first byte even; 02 marks it locally administered)", s.value),
        );
        return None;
    }
    if mac == [0; 6] {
        cx.at(
            loc(s),
            field,
            format!("{} is the all-zero MAC address, which no interface can have; pick one like 02:00:00:00:00:01", s.value),
        );
        return None;
    }
    if let Some((_, l, prev)) = cx.macs.iter().find(|m| m.0 == mac) {
        let msg = format!(
            "MAC address {} is already set on {prev} (line {}); each interface in a lab needs its own MAC",
            s.value,
            l.line()
        );
        cx.at(loc(s), field, msg);
        return None;
    }
    cx.macs
        .push((mac, *loc(s), field.trim_end_matches(".mac").to_string()));
    Some(mac)
}

/// Why `a` cannot be an interface's address, if it cannot: the kernel would
/// refuse it, or take it but never use it as a unicast address.
fn address_problem(a: &IpNet) -> Option<String> {
    let ip = a.addr();
    let kind = if ip.is_unspecified() {
        "the unspecified address (it means \"any\")"
    } else if ip.is_loopback() {
        "a loopback address (it belongs to `lo`, which every node has already)"
    } else if ip.is_multicast() {
        "a multicast address (a group joined by programs, not an interface address)"
    } else if let IpNet::V4(n) = a {
        if n.addr().is_broadcast() {
            "the broadcast address"
        } else if n.prefix_len() < 31 && n.addr() == n.broadcast() {
            "the broadcast address of its prefix"
        } else {
            return None;
        }
    } else {
        return None;
    };
    let example = if a.addr().is_ipv4() {
        "192.168.1.1/24"
    } else {
        "fd00::1/64"
    };
    Some(format!(
        "{a} is {kind}; an interface needs a unicast address, like {example}"
    ))
}

fn check_mtu(cx: &mut Ctx, m: &Option<S<u32>>, field: &str) -> Option<u32> {
    let m = m.as_ref()?;
    if !(68..=65535).contains(&m.value) {
        cx.at(
            loc(m),
            field,
            format!("mtu {} is out of range 68..65535", m.value),
        );
        return None;
    }
    Some(m.value)
}

fn addresses(
    cx: &mut Ctx,
    one: &Option<S<String>>,
    many: &[S<String>],
    field: &str,
) -> Vec<(IpNet, Location)> {
    let mut out = Vec::new();
    for (i, a) in one
        .iter()
        .map(|a| (None, a))
        .chain(many.iter().enumerate().map(|(i, a)| (Some(i), a)))
    {
        let f = match i {
            None => format!("{field}.address"),
            Some(i) => format!("{field}.addresses[{i}]"),
        };
        if let Some(n) = parse_cidr(cx, a, &f) {
            match address_problem(&n) {
                Some(m) => cx.at(loc(a), &f, m),
                None => out.push((n, *loc(a))),
            }
        }
    }
    out
}

/// Parse iproute2-style route words: `default dev IF`, `PREFIX via GW [dev IF] [onlink]`, `metric N`.
pub fn parse_route(text: &str) -> Result<Route, String> {
    let mut words = text.split_whitespace();
    let first = words.next().ok_or("the route is empty")?;
    let mut dst: Option<IpNet> = if first == "default" {
        None
    } else {
        Some(match first.parse::<IpNet>() {
            Ok(n) => n.trunc(),
            Err(_) => match first.parse::<IpAddr>() {
                Ok(a) => IpNet::from(a),
                Err(_) => {
                    return Err(format!(
                        "{first:?} is not `default` or a prefix like 10.0.0.0/8"
                    ));
                }
            },
        })
    };
    let (mut via, mut dev, mut onlink, mut metric) = (None, None, false, None);
    while let Some(w) = words.next() {
        match w {
            "via" => {
                let g = words.next().ok_or("`via` needs a gateway address")?;
                via = Some(
                    g.parse::<IpAddr>()
                        .map_err(|_| format!("gateway {g:?} is not an IP address"))?,
                );
            }
            "dev" => {
                let d = words.next().ok_or("`dev` needs an interface name")?;
                if let Some(p) = ifname_problem(d) {
                    return Err(format!("interface name {d:?} {p}"));
                }
                dev = Some(d.to_string());
            }
            "onlink" => onlink = true,
            "metric" | "priority" | "preference" => {
                let m = words.next().ok_or("`metric` needs a number")?;
                metric = Some(
                    m.parse::<u32>()
                        .map_err(|_| format!("metric {m:?} is not a number"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown word {other:?}; a route is `default|PREFIX [via GW] [dev IF] [onlink] [metric N]`"
                ));
            }
        }
    }
    if via.is_none() && dev.is_none() {
        return Err("a route needs `via GATEWAY` or `dev INTERFACE` (or both)".into());
    }
    if onlink && via.is_none() {
        return Err("`onlink` only makes sense with `via GATEWAY`".into());
    }
    if onlink && dev.is_none() {
        return Err(
            "`onlink` needs `dev INTERFACE` (the kernel must know where the gateway is)".into(),
        );
    }
    let dst = match dst.take() {
        Some(d) => d,
        None => match via {
            Some(IpAddr::V6(_)) => "::/0".parse().expect("constant"),
            _ => "0.0.0.0/0".parse().expect("constant"),
        },
    };
    if let Some(g) = via
        && g.is_ipv4() != matches!(dst, IpNet::V4(_))
    {
        return Err(format!(
            "gateway {g} and destination {dst} are of different IP families"
        ));
    }
    Ok(Route {
        dst,
        via,
        dev,
        onlink,
        metric,
    })
}

/// Where an endpoint string points.
enum EndRef {
    Node(String, String),
    Bridge(String, String),
    Host(String),
}

/// Deterministic locally administered MAC for a bridge, from the lab and bridge names.
pub fn stable_mac(lab: &str, name: &str) -> [u8; 6] {
    // FNV-1a: stable across runs and Rust versions (std's hasher is not).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in lab.bytes().chain([0u8]).chain(name.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let b = h.to_be_bytes();
    [0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// An interface being validated: name, where, addresses, mtu, mac.
type IfDraft = (
    String,
    Location,
    Vec<(IpNet, Location)>,
    Option<u32>,
    Option<[u8; 6]>,
);

struct NodeDraft {
    name: String,
    ifaces: Vec<IfDraft>,
    routes: Vec<(S<String>, usize)>,
    forward: bool,
    run: Vec<String>,
}

pub fn validate(mut raw: RawFile, opts: &Options) -> Result<Lab, Vec<Issue>> {
    let mut cx = Ctx {
        issues: Vec::new(),
        macs: Vec::new(),
    };
    let top = Location::UNKNOWN;

    let base_name = check_lab_name(&mut cx, raw.name.as_ref(), opts);
    let lab_name = format!("{}{}", opts.prefix, base_name);

    // Names of nodes and bridges share one space: `X:IF` must mean one thing.
    let mut names: HashMap<String, &'static str> = HashMap::new();
    let nodes = node_drafts(&mut cx, &raw.nodes, opts, &base_name, &mut names);
    let host_raw = raw.host.take().unwrap_or_default();
    let hostk = Spanned::new("host".to_string(), top, top);
    let host = node_draft(
        &mut cx,
        "host",
        &hostk,
        &host_raw.interfaces,
        &host_raw.routes,
        false,
        &[],
        false,
    );
    let node_at = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let host_ifnames = host.ifaces.iter().map(|i| i.0.clone()).collect();
    let mut d = Drafts {
        names,
        nodes,
        host,
        bridges: Vec::new(),
        bridge_locs: Vec::new(),
        links: Vec::new(),
        used: HashMap::new(),
        bridge_edges: Vec::new(),
        node_at,
        host_ifnames,
    };
    d.add_bridges(&mut cx, &raw.bridges, &lab_name);
    d.add_links(&mut cx, &raw.links);
    d.check_bridge_ports(&mut cx);
    if opts.sandbox && d.host.ifaces.iter().any(|i| i.0 == UPLINK_IF) {
        cx.at(&top, "host", format!("{UPLINK_IF:?} is the sandbox host's uplink to the emulated internet; pick another name"));
    }
    d.check_ipv6_mtus(&mut cx, raw.ipv6_link_local);
    d.check_unplugged(&mut cx);
    d.check_duplicate_addresses(&mut cx, opts.sandbox);
    let (out_nodes, host_node) = d.nodes_with_routes(&mut cx, &opts.prefix);
    let nat = parse_nat(&mut cx, &raw.nat, "nat");
    let mut out_nodes = out_nodes;
    let at: HashMap<String, usize> = (out_nodes.iter().enumerate())
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    for (k, n) in &raw.nodes.0 {
        if let Some(node) = at.get(&k.value).map(|&i| &mut out_nodes[i]) {
            let field = format!("nodes.{}", k.value);
            node.sysctl = parse_sysctls(&mut cx, &n.sysctl, &format!("{field}.sysctl"), false);
            node.nat = parse_nat(&mut cx, &n.nat, &format!("{field}.nat"));
        }
    }
    let mut host_node = host_node;
    host_node.sysctl = parse_sysctls(&mut cx, &host_raw.sysctl, "host.sysctl", !opts.sandbox);

    let mut lab = Lab {
        name: lab_name,
        base_name,
        prefix: opts.prefix.clone(),
        sandbox: opts.sandbox,
        nodes: out_nodes,
        bridges: d.bridges,
        links: {
            let mut l = d.links;
            l.shrink_to_fit();
            l
        },
        host: host_node,
        nat,
        publish: Vec::new(),
        firewalls: Vec::new(),
        ipv6_link_local: false,
        expect: Vec::new(),
        index: Default::default(),
        machines: Vec::new(),
        placement: Default::default(),
        overlays: Vec::new(),
        machine: None,
        vxlans: Vec::new(),
    };
    lab.ipv6_link_local = raw.ipv6_link_local.unwrap_or_else(|| lab.uses_ipv6());
    lab.publish = crate::model::publish::parse(&mut |l, f, m| cx.at(l, f, m), &raw.publish, &lab);
    let fws: Vec<(&str, &crate::model::firewall::RawFirewall)> = (raw.nodes.0.iter())
        .filter_map(|(k, n)| n.firewall.as_deref().map(|f| (k.value.as_str(), f)))
        .collect();
    lab.firewalls = crate::model::firewall::parse_all(
        &mut |l, f, m| cx.at(l, f, m),
        &fws,
        host_raw.firewall.as_ref(),
        &lab,
    );
    lab.expect = super::expect::parse_expects(&mut |l, f, m| cx.at(l, f, m), &raw.expect, &lab);
    super::machines::parse(&mut |l, f, m| cx.at(l, f, m), &raw, &mut lab);

    if cx.issues.is_empty() {
        Ok(lab)
    } else {
        cx.issues.sort_by_key(|i| (i.line, i.column));
        Err(cx.issues)
    }
}

/// Check `--prefix` and the lab's `name:`; the name, or "" when it is missing.
fn check_lab_name(cx: &mut Ctx, name: Option<&S<String>>, opts: &Options) -> String {
    let top = Location::UNKNOWN;
    if !opts.prefix.is_empty() {
        let p = Spanned::new(opts.prefix.clone(), top, top);
        check_name(cx, &p, "--prefix", "prefix");
    }
    match name {
        Some(n) => {
            check_name(cx, n, "name", "lab name");
            n.value.clone()
        }
        None => {
            cx.issues.push(Issue {
                line: 1,
                column: 1,
                field: "name".into(),
                message: "missing: every lab needs a `name:`".into(),
            });
            String::new()
        }
    }
}

/// Drafts of the file's nodes, each name checked and recorded in `names`.
fn node_drafts(
    cx: &mut Ctx,
    raw: &OrderedMap<RawNode>,
    opts: &Options,
    base_name: &str,
    names: &mut HashMap<String, &'static str>,
) -> Vec<NodeDraft> {
    let mut nodes = Vec::new();
    for (k, n) in &raw.0 {
        let field = format!("nodes.{}", k.value);
        if !check_name(cx, k, &field, "node name") {
            continue;
        }
        if RESERVED.contains(&k.value.as_str()) {
            cx.at(loc(k), &field, format!("{:?} is a reserved word (it names the lab's host, internet or every node); pick another node name", k.value));
            continue;
        }
        let ns = format!("{}{}", opts.prefix, k.value);
        if ns.len() > 200 {
            cx.at(loc(k), &field, "namespace name (prefix + node) is too long");
        } else if let Some(p) = ns_name_problem(&ns) {
            cx.at(loc(k), &field, p);
        }
        if opts.sandbox
            && (ns == sandbox_host_ns(&opts.prefix, base_name)
                || ns == sandbox_inet_ns(&opts.prefix, base_name))
        {
            cx.at(
                loc(k),
                &field,
                format!(
                    "node {:?} would have the same namespace as the sandbox's host or internet",
                    k.value
                ),
            );
        }
        names.insert(k.value.clone(), "node");
        nodes.push(node_draft(
            cx,
            &field,
            k,
            &n.interfaces,
            &n.routes,
            n.forward.as_ref().map(|f| f.value).unwrap_or(false),
            &n.run,
            opts.check_programs,
        ));
    }
    nodes
}

/// The lab as validation builds it: drafts of the nodes, the host and the
/// bridges, and the links between them.
struct Drafts {
    /// Names of nodes ("node") and bridges ("bridge").
    names: HashMap<String, &'static str>,
    nodes: Vec<NodeDraft>,
    host: NodeDraft,
    bridges: Vec<Bridge>,
    bridge_locs: Vec<Location>,
    links: Vec<Link>,
    /// Link ends taken so far, as (namespace owner, interface), with where.
    used: HashMap<(String, String), Location>,
    /// Bridge-to-bridge cables so far, as the two bridges' names.
    bridge_edges: Vec<(String, String)>,
    /// Node name -> position in `nodes`, and the names in `host.ifaces`: a
    /// lab of 10,000 cables searched lists per cable (quadratic).
    node_at: HashMap<String, usize>,
    host_ifnames: HashSet<String>,
}

/// The bridges on a path of bridge-to-bridge cables from `from` to `to`
/// (both included; just `[from]` when they are the same bridge), if any.
pub fn bridge_path(edges: &[(String, String)], from: &str, to: &str) -> Option<Vec<String>> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    prev.insert(from, from);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut path = vec![to.to_string()];
            let mut at = to;
            while at != from {
                at = prev[at];
                path.push(at.to_string());
            }
            path.reverse();
            return Some(path);
        }
        for (x, y) in edges {
            let next = if x == n {
                y.as_str()
            } else if y == n {
                x.as_str()
            } else {
                continue;
            };
            if !prev.contains_key(next) {
                prev.insert(next, n);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The STP settings of a bridge: off unless `stp: true`; the timers only with it.
fn bridge_stp(cx: &mut Ctx, b: &RawBridge, field: &str) -> Option<Stp> {
    let on = b.stp.as_ref().is_some_and(|s| s.value);
    let mut stp = Stp::DEFAULT;
    for (key, raw, slot, (lo, hi)) in [
        (
            "forward_delay",
            &b.forward_delay,
            &mut stp.forward_delay,
            (2, 30),
        ),
        ("max_age", &b.max_age, &mut stp.max_age, (6, 40)),
    ] {
        let Some(v) = raw else { continue };
        let f = format!("{field}.{key}");
        if !on {
            cx.at(
                loc(v),
                &f,
                format!("{key} is an STP timer; it needs stp: true on the bridge"),
            );
            continue;
        }
        let text = match &v.value {
            Scalar::Text(t) => t.clone(),
            Scalar::Unsigned(_) | Scalar::Signed(_) | Scalar::Float(_) | Scalar::Bool(_) => {
                cx.at(
                    loc(v),
                    &f,
                    format!("{key}: give a duration with its unit, like \"{lo}s\""),
                );
                continue;
            }
        };
        match crate::units::parse_time(key, &text) {
            Ok(us) if us < lo * 1_000_000 || us > hi * 1_000_000 => cx.at(
                loc(v),
                &f,
                format!("{key} {text:?}: the kernel takes {lo}s to {hi}s"),
            ),
            // The kernel keeps clock_t: hundredths of a second.
            Ok(us) => *slot = (us / 10_000) as u32,
            Err(e) => cx.at(loc(v), &f, e),
        }
    }
    on.then_some(stp)
}

impl Drafts {
    /// Every node draft, the host last.
    fn all(&self) -> impl Iterator<Item = &NodeDraft> {
        self.nodes.iter().chain(std::iter::once(&self.host))
    }

    fn add_bridges(&mut self, cx: &mut Ctx, raw: &OrderedMap<RawBridge>, lab_name: &str) {
        for (k, b) in &raw.0 {
            let field = format!("bridges.{}", k.value);
            if !check_ifname(cx, k, &field) {
                continue;
            }
            if RESERVED.contains(&k.value.as_str()) {
                cx.at(
                    loc(k),
                    &field,
                    format!("{:?} is a reserved word; pick another bridge name", k.value),
                );
                continue;
            }
            if self.names.contains_key(&k.value) {
                cx.at(
                    loc(k),
                    &field,
                    format!(
                        "{:?} is already the name of a node; nodes and bridges need different names",
                        k.value
                    ),
                );
                continue;
            }
            self.names.insert(k.value.clone(), "bridge");
            let addrs = addresses(cx, &b.address, &b.addresses, &field);
            let mac = match &b.mac {
                Some(m) => parse_mac(cx, m, &format!("{field}.mac")).unwrap_or([2, 0, 0, 0, 0, 1]),
                None => stable_mac(lab_name, &k.value),
            };
            self.host
                .ifaces
                .push((k.value.clone(), *loc(k), addrs.clone(), None, None));
            let stp = bridge_stp(cx, b, &field);
            self.bridges.push(Bridge {
                name: k.value.clone(),
                addresses: addrs.iter().map(|a| a.0).collect(),
                mtu: check_mtu(cx, &b.mtu, &format!("{field}.mtu")),
                mac,
                ports: Vec::new(),
                stp,
            });
            self.bridge_locs.push(*loc(k));
        }
    }

    /// Links: each end used once; ports and host ends become host interfaces.
    fn add_links(&mut self, cx: &mut Ctx, raw: &[S<RawLink>]) {
        for (i, l) in raw.iter().enumerate() {
            let field = format!("links[{i}]");
            let Some(raw_ends) = link_ends(cx, l, &field) else {
                continue;
            };
            if raw_ends.len() != 2 {
                cx.at(loc(l), &field, format!("a link is a cable with two ends, like [black:bveth, bri0:bbrveth]; this one has {}", raw_ends.len()));
                continue;
            }
            let mut ends = Vec::new();
            for (j, e) in raw_ends.iter().enumerate() {
                if let Some(r) = self.claim_end(cx, e, &format!("{field}[{j}]")) {
                    ends.push((r, *loc(e)));
                }
            }
            if ends.len() != 2 {
                continue;
            }
            let (a, b) = (end_of(&ends[0].0), end_of(&ends[1].0));
            let joins_bridges = a.bridge.is_some() && b.bridge.is_some();
            if joins_bridges {
                self.check_loop(cx, loc(l), &field, &a, &b);
            } else if a.place == Place::Host && b.place == Place::Host {
                cx.at(
                    loc(l),
                    &field,
                    "both ends are in the host; a link needs at least one node",
                );
                continue;
            }
            self.plug(cx, &field, &a, &ends[0].1);
            self.plug(cx, &field, &b, &ends[1].1);
            let (up, shapes) = match &l.value {
                RawLink::Map(m) => (
                    m.up.as_ref().is_none_or(|u| u.value),
                    link_shapes(
                        cx,
                        m,
                        &field,
                        loc(l),
                        [(&raw_ends[0], &a), (&raw_ends[1], &b)],
                    ),
                ),
                RawLink::Ends(_) => (true, Vec::new()),
            };
            self.links.push(Link { a, b, up, shapes });
        }
    }

    /// Parse one endpoint of a link and take it, unless it is unknown or
    /// already taken.
    fn claim_end(&mut self, cx: &mut Ctx, e: &S<String>, f: &str) -> Option<EndRef> {
        let Some((left, right)) = e.value.split_once(':') else {
            cx.at(
                loc(e),
                f,
                format!(
                    "{:?} is not an endpoint; write NODE:INTERFACE, BRIDGE:PORT or host:INTERFACE",
                    e.value
                ),
            );
            return None;
        };
        let ifs = Spanned::new(right.to_string(), *loc(e), *loc(e));
        if !check_ifname(cx, &ifs, f) {
            return None;
        }
        let r = if left == "host" {
            EndRef::Host(right.into())
        } else {
            match self.names.get(left) {
                Some(&"node") => EndRef::Node(left.into(), right.into()),
                Some(_) => EndRef::Bridge(left.into(), right.into()),
                None => {
                    let known: Vec<&str> = self
                        .names
                        .keys()
                        .map(|s| s.as_str())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    cx.at(
                        loc(e),
                        f,
                        format!(
                            "{left:?} is not a node or bridge of this lab (known: {})",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                    return None;
                }
            }
        };
        // Bridge ports and host ends all live in the host namespace.
        let key = match &r {
            EndRef::Node(n, i) => (n.clone(), i.clone()),
            EndRef::Bridge(_, i) | EndRef::Host(i) => ("host".to_string(), i.clone()),
        };
        if let Some(prev) = self.used.get(&key) {
            let what = match &r {
                EndRef::Bridge(b, p) => format!(
                    "bridge port {b}:{p} is used twice (first at line {})",
                    prev.line()
                ),
                EndRef::Node(n, i) => format!(
                    "interface {n}:{i} is used by two links (first at line {})",
                    prev.line()
                ),
                EndRef::Host(i) => format!(
                    "host interface {i} is used twice (first at line {})",
                    prev.line()
                ),
            };
            cx.at(loc(e), f, what);
            return None;
        }
        self.used.insert(key, *loc(e));
        Some(r)
    }

    /// Give a link's end its interface: on its node, or in the host (as a
    /// bridge port or a plain host interface).
    fn plug(&mut self, cx: &mut Ctx, field: &str, end: &End, l2: &Location) {
        match (&end.place, &end.bridge) {
            (Place::Node(n), _) => {
                let d = &mut self.nodes[self.node_at[n.as_str()]];
                if !d.ifaces.iter().any(|x| x.0 == end.ifname) {
                    d.ifaces
                        .push((end.ifname.clone(), *l2, Vec::new(), None, None));
                }
            }
            (Place::Host, Some(b)) => {
                let br = self
                    .bridges
                    .iter_mut()
                    .find(|x| &x.name == b)
                    .expect("known bridge");
                br.ports.push(end.ifname.clone());
                if !self.host_ifnames.insert(end.ifname.clone()) {
                    cx.at(l2, field, format!("{:?} is already the name of a host interface or bridge; names in the host must differ", end.ifname));
                } else {
                    self.host
                        .ifaces
                        .push((end.ifname.clone(), *l2, Vec::new(), None, None));
                }
            }
            (Place::Host, None) => {
                if self.host_ifnames.insert(end.ifname.clone()) {
                    self.host
                        .ifaces
                        .push((end.ifname.clone(), *l2, Vec::new(), None, None));
                } else if self.bridges.iter().any(|b| b.name == end.ifname) {
                    cx.at(
                        l2,
                        field,
                        format!(
                            "{:?} is a bridge; use {0}:PORT to plug a cable into it",
                            end.ifname
                        ),
                    );
                }
            }
            (Place::Internet, _) => {}
        }
    }

    /// A cable between two bridges that closes a loop of bridge-to-bridge
    /// cables is refused unless every bridge of the loop runs STP: without it
    /// the kernel floods broadcasts around the loop forever. Only cables that
    /// join bridges directly count (a node in between does not forward L2).
    fn check_loop(&mut self, cx: &mut Ctx, at: &Location, field: &str, a: &End, b: &End) {
        let (Some(ba), Some(bb)) = (a.bridge.clone(), b.bridge.clone()) else {
            return;
        };
        let path = bridge_path(&self.bridge_edges, &ba, &bb);
        self.bridge_edges.push((ba.clone(), bb.clone()));
        let Some(mut cycle) = path else { return };
        // Name it from the bridge first in the file, towards its earlier neighbour.
        let pos = |n: &String| self.bridges.iter().position(|x| &x.name == n);
        let first = (0..cycle.len())
            .min_by_key(|&i| pos(&cycle[i]))
            .unwrap_or(0);
        cycle.rotate_left(first);
        if cycle.len() > 2 && pos(&cycle[cycle.len() - 1]) < pos(&cycle[1]) {
            cycle[1..].reverse();
        }
        let mut no_stp: Vec<&String> = cycle
            .iter()
            .filter(|n| pos(n).is_some_and(|i| self.bridges[i].stp.is_none()))
            .collect();
        no_stp.sort_by_key(|n| pos(n));
        no_stp.dedup();
        let no_stp: Vec<String> = no_stp.into_iter().cloned().collect();
        cycle.push(cycle[0].clone());
        if !no_stp.is_empty() {
            cx.at(
                at,
                field,
                format!(
                    "{} is a loop; without STP a switched loop floods forever: set stp: true on {}",
                    cycle.join(" -- "),
                    no_stp.join(", ")
                ),
            );
        }
    }

    fn check_bridge_ports(&self, cx: &mut Ctx) {
        for (b, l) in self.bridges.iter().zip(&self.bridge_locs) {
            if b.ports.len() > MAX_BRIDGE_PORTS {
                cx.at(
                    l,
                    format!("bridges.{}", b.name),
                    format!(
                        "{} ports; a Linux bridge holds at most {MAX_BRIDGE_PORTS}",
                        b.ports.len()
                    ),
                );
            }
        }
    }

    /// IPv6 needs an MTU of at least 1280: the kernel turns IPv6 off on a smaller
    /// link, so it can carry no IPv6 address, link-local included. Other links
    /// may go down to 68.
    fn check_ipv6_mtus(&self, cx: &mut Ctx, ipv6_link_local: Option<bool>) {
        let any_v6 = self
            .all()
            .flat_map(|d| d.ifaces.iter())
            .any(|(_, _, addrs, ..)| addrs.iter().any(|(a, _)| a.addr().is_ipv6()));
        let link_local = ipv6_link_local.unwrap_or(any_v6);
        for d in self.all() {
            for (name, l, addrs, mtu, _) in &d.ifaces {
                let Some(m) = mtu.filter(|m| *m < 1280) else {
                    continue;
                };
                let why = if addrs.iter().any(|(a, _)| a.addr().is_ipv6()) {
                    "it has an IPv6 address"
                } else if link_local {
                    "the lab uses IPv6 link-local addresses (`ipv6_link_local`, on when any interface has an IPv6 address)"
                } else {
                    continue;
                };
                cx.at(
                    l,
                    format!("{}.interfaces.{name}.mtu", place_field(&d.name)),
                    format!("mtu {m} is below 1280, the least IPv6 allows, and {why}; raise the MTU or use IPv4 only"),
                );
            }
        }
    }

    /// Declared interfaces must be plugged into something.
    fn check_unplugged(&self, cx: &mut Ctx) {
        let connected: BTreeSet<(String, String)> = self.used.keys().cloned().collect();
        for d in self.all() {
            for (name, l, ..) in &d.ifaces {
                let is_bridge = d.name == "host" && self.bridges.iter().any(|b| &b.name == name);
                if !is_bridge && !connected.contains(&(d.name.clone(), name.clone())) {
                    cx.at(
                        l,
                        format!(
                            "{}.interfaces.{name}",
                            if d.name == "host" {
                                "host".into()
                            } else {
                                format!("nodes.{}", d.name)
                            }
                        ),
                        format!(
                            "interface {name} of {} is not the end of any link; add it to `links`",
                            d.name
                        ),
                    );
                }
            }
        }
    }

    /// One address once in the whole lab.
    fn check_duplicate_addresses(&self, cx: &mut Ctx, sandbox: bool) {
        let mut seen_addr: BTreeMap<IpAddr, (String, u64)> = BTreeMap::new();
        for d in self.all() {
            for (ifn, _, addrs, ..) in &d.ifaces {
                for (a, l) in addrs {
                    let who = format!("{}:{ifn}", d.name);
                    if let Some((prev, pl)) = seen_addr.get(&a.addr()) {
                        cx.at(l, format!("{}.interfaces.{ifn}", place_field(&d.name)), format!("address {} is already on {prev} (line {pl}); one address can be in a lab only once", a.addr()));
                    } else {
                        seen_addr.insert(a.addr(), (who, l.line()));
                    }
                    if sandbox_reserved(a) && sandbox {
                        cx.at(l, format!("{}.interfaces.{ifn}", place_field(&d.name)), format!("{a} overlaps 203.0.113.0/24, 198.51.100.0/24 or 2001:db8:ffff::/48, which the sandbox's emulated internet uses"));
                    }
                }
            }
        }
    }

    /// The finished nodes, each with its checked routes, and the host.
    fn nodes_with_routes(&self, cx: &mut Ctx, prefix: &str) -> (Vec<Node>, Node) {
        let mut out_nodes = Vec::new();
        let mut host_node = None;
        for d in self.all() {
            let node = Node {
                name: d.name.clone(),
                ns: if d.name == "host" {
                    String::new()
                } else {
                    format!("{}{}", prefix, d.name)
                },
                interfaces: d
                    .ifaces
                    .iter()
                    .filter(|x| !(d.name == "host" && self.bridges.iter().any(|b| b.name == x.0)))
                    .map(|(n, _, a, mtu, mac)| Iface {
                        name: n.clone(),
                        addresses: a.iter().map(|x| x.0).collect(),
                        mtu: *mtu,
                        mac: *mac,
                    })
                    .collect(),
                routes: {
                    let mut r = checked_routes(cx, d);
                    r.shrink_to_fit();
                    r
                },
                forward: d.forward,
                run: d.run.clone(),
                sysctl: Default::default(),
                nat: Vec::new(),
            };
            if d.name == "host" {
                host_node = Some(node);
            } else {
                out_nodes.push(node);
            }
        }
        // Pushed one by one: up to half of it spare, for as long as the lab lives.
        out_nodes.shrink_to_fit();
        (out_nodes, host_node.expect("host draft"))
    }
}

/// The model's end for a resolved endpoint.
/// A link's ends as written: the list, or a map's `ends` (its unknown keys
/// reported here).
fn link_ends<'a>(cx: &mut Ctx, l: &'a S<RawLink>, field: &str) -> Option<&'a [S<String>]> {
    match &l.value {
        RawLink::Ends(v) => Some(v),
        RawLink::Map(m) => {
            for k in &m.unknown {
                cx.at(
                    loc(k),
                    format!("{field}.{}", k.value),
                    format!(
                        "unknown key {:?} in a link map; known keys: ends, up, egress, vni, {}",
                        k.value,
                        SHAPE_KEYS.join(", ")
                    ),
                );
            }
            match &m.ends {
                Some(e) => Some(&e.value),
                None => {
                    cx.at(
                        loc(l),
                        field,
                        "a link map needs its two ends: `ends: [black:bveth, bri0:bbrveth]`",
                    );
                    None
                }
            }
        }
    }
}

/// The text of a shaping value (`10mbit`, `1%`, `100`), or why it is none.
fn shape_text(v: &Scalar) -> Result<String, String> {
    match v {
        Scalar::Text(t) => Ok(t.clone()),
        Scalar::Unsigned(n) => Ok(n.to_string()),
        Scalar::Signed(n) => Ok(n.to_string()),
        Scalar::Float(f) => Ok(f.to_string()),
        Scalar::Bool(b) => Err(format!(
            "{b} is not a shaping value; write a rate (10mbit), a time (20ms), a loss (1%) or packets (100)"
        )),
    }
}

/// Check the values of one shaping map (a link's or an egress entry's) and
/// put them into `req`, each mistake at its place as `{field}.{key}`.
fn shape_values(
    cx: &mut Ctx,
    raw: &RawShape,
    field: &str,
    req: &mut crate::runtime::shape::Request,
) {
    for (k, v) in &raw.values {
        let f = format!("{field}.{}", k.value);
        let text = shape_text(&v.value).and_then(|t| {
            match k.value.as_str() {
                "rate" => crate::units::parse_rate(&t).map(|_| ()),
                "delay" | "jitter" => crate::units::parse_time(&k.value, &t).map(|_| ()),
                "loss" => crate::units::parse_loss(&t).map(|_| ()),
                _ => crate::units::parse_limit(&t).map(|_| ()),
            }
            .map(|()| t)
        });
        let t = match text {
            Ok(t) => Some(t),
            Err(e) => {
                cx.at(loc(v), &f, e);
                continue;
            }
        };
        match k.value.as_str() {
            "rate" => req.rate = t,
            "delay" => req.delay = t,
            "jitter" => req.jitter = t,
            "loss" => req.loss = t,
            _ => req.limit = t,
        }
    }
}

/// The shaping of a link map's ends: the map's values for each end's egress,
/// with an `egress` entry's values over them for that end.
fn link_shapes(
    cx: &mut Ctx,
    m: &RawLinkMap,
    field: &str,
    at: &Location,
    ends: [(&S<String>, &End); 2],
) -> Vec<crate::runtime::shape::Shaping> {
    use crate::runtime::shape::{Request, Shaping};
    let mut base = Request::default();
    shape_values(cx, &m.shape, field, &mut base);
    let mut per = [base.clone(), base];
    for (k, e) in &m.egress {
        let f = format!("{field}.egress.{:?}", k.value);
        for u in &e.unknown {
            cx.at(
                loc(u),
                format!("{f}.{}", u.value),
                format!(
                    "unknown key {:?} in an egress entry; known keys: {}",
                    u.value,
                    SHAPE_KEYS.join(", ")
                ),
            );
        }
        match ends.iter().position(|(raw, _)| raw.value == k.value) {
            Some(j) => shape_values(cx, &e.shape, &f, &mut per[j]),
            None => cx.at(
                loc(k),
                &f,
                format!(
                    "{:?} is not one of this link's ends ({}, {})",
                    k.value, ends[0].0.value, ends[1].0.value
                ),
            ),
        }
    }
    let mut out = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for ((_, end), req) in ends.iter().zip(&per) {
        let any = [&req.rate, &req.delay, &req.jitter, &req.loss, &req.limit]
            .iter()
            .any(|v| v.is_some());
        if !any {
            continue;
        }
        let e = end.to_string();
        match Shaping::parse(&e, &end.place.to_string(), &end.ifname, req) {
            Ok(s) => out.push(s),
            Err(msg) => {
                let msg = msg.replace("--", "");
                if !refused.contains(&msg) {
                    cx.at(at, field, format!("{e}: {msg}"));
                    refused.push(msg);
                }
            }
        }
    }
    out
}

fn end_of(r: &EndRef) -> End {
    match r {
        EndRef::Node(n, i) => End {
            place: Place::Node(n.clone()),
            ifname: i.clone(),
            bridge: None,
        },
        EndRef::Bridge(b, p) => End {
            place: Place::Host,
            ifname: p.clone(),
            bridge: Some(b.clone()),
        },
        EndRef::Host(i) => End {
            place: Place::Host,
            ifname: i.clone(),
            bridge: None,
        },
    }
}

/// Routes: parse, check the device, check the gateway can be reached.
fn checked_routes(cx: &mut Ctx, d: &NodeDraft) -> Vec<Route> {
    let pf = place_field(&d.name);
    let mut routes = Vec::new();
    for (r, i) in &d.routes {
        let field = format!("{pf}.routes[{i}]");
        let route = match parse_route(&r.value) {
            Ok(x) => x,
            Err(e) => {
                cx.at(loc(r), &field, format!("{:?}: {e}", r.value));
                continue;
            }
        };
        if let Some(dev) = &route.dev
            && !d.ifaces.iter().any(|x| &x.0 == dev)
        {
            let have: Vec<&str> = d.ifaces.iter().map(|x| x.0.as_str()).collect();
            cx.at(
                loc(r),
                &field,
                format!(
                    "route device {dev:?} is not an interface of {} (it has: {})",
                    d.name,
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                ),
            );
            continue;
        }
        if let Some(gw) = route.via
            && let Some((ifn, ..)) = d
                .ifaces
                .iter()
                .find(|x| x.2.iter().any(|(a, _)| a.addr() == gw))
        {
            cx.at(loc(r), &field, format!("gateway {gw} is the address of {}:{ifn} itself; a gateway is the next router's address (another node's or the bridge's), or leave out `via` for `PREFIX dev IF`", d.name));
            continue;
        }
        if let Some(gw) = route.via
            && !route.onlink
            && !gateway_reachable(gw, route.dev.as_deref(), d, &d.routes)
        {
            cx.at(loc(r), &field, format!("gateway {gw} is not reachable: no address of {} has a prefix containing it and no on-link route (`PREFIX dev IF`) covers it; add such a route before this one, or `onlink`", d.name));
            continue;
        }
        if routes
            .iter()
            .any(|x: &Route| x.dst == route.dst && x.metric == route.metric)
        {
            cx.at(
                loc(r),
                &field,
                format!(
                    "a route to {} is already declared",
                    r.value.split_whitespace().next().unwrap_or("")
                ),
            );
            continue;
        }
        routes.push(route);
    }
    routes
}

/// Host sysctls a lab may set in host mode. Each is put back at `down`, and none
/// can cut the machine off: reverse-path filtering and martian logging change what
/// the host accepts from the lab's networks, the neighbour-table limits are what
/// large labs exhaust. Left out on purpose: net.ipv4.ip_forward (nslab manages it
/// itself), net.ipv6.conf.*.forwarding (the host then ignores router
/// advertisements and may lose its IPv6 default route), route_localnet and the
/// like (they open the loopback network to the outside).
pub const HOST_SYSCTL_ALLOW: &[&str] = &[
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter",
    "net.ipv4.conf.all.log_martians",
    "net.ipv4.conf.default.log_martians",
    "net.ipv4.neigh.default.gc_thresh1",
    "net.ipv4.neigh.default.gc_thresh2",
    "net.ipv4.neigh.default.gc_thresh3",
    "net.ipv6.neigh.default.gc_thresh1",
    "net.ipv6.neigh.default.gc_thresh2",
    "net.ipv6.neigh.default.gc_thresh3",
];

/// What is wrong with a sysctl key, if anything. Only `net.*` is per network
/// namespace; the key becomes a path under /proc/sys, so no empty parts, `..`,
/// `/` or odd characters.
pub fn sysctl_key_problem(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Some(format!("{key:?} is not a dotted sysctl name (empty part)"));
    }
    if key.contains('/') || key.contains("..") {
        return Some(format!("{key:?}: a sysctl name has no `/` or `..`"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
    {
        return Some(format!(
            "{key:?}: a sysctl name has only letters, digits, `.`, `_`, `-` and `@`"
        ));
    }
    if parts[0] != "net" || parts.len() < 2 {
        return Some(format!(
            "{key:?}: only `net.*` sysctls belong to a network namespace"
        ));
    }
    None
}

/// A `sysctl:` map, each key checked; `host_mode` limits it to [`HOST_SYSCTL_ALLOW`].
fn parse_sysctls(
    cx: &mut Ctx,
    raw: &OrderedMap<super::raw::SysctlValue>,
    field: &str,
    host_mode: bool,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in &raw.0 {
        let f = format!("{field}.{}", k.value);
        if let Some(p) = sysctl_key_problem(&k.value) {
            cx.at(loc(k), f, p);
            continue;
        }
        // nslab owns these (`forward:`, the sandbox host, host mode's NAT): two
        // owners would undo each other at every `up`.
        if ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"].contains(&k.value.as_str()) {
            cx.at(loc(k), f, format!("{:?} is set by nslab: use `forward: true` on a node (the sandbox host always forwards)", k.value));
            continue;
        }
        if host_mode && !HOST_SYSCTL_ALLOW.contains(&k.value.as_str()) {
            cx.at(
                loc(k),
                f,
                format!(
                    "{:?} cannot be set on the real host (host mode allows only {}); use --sandbox",
                    k.value,
                    HOST_SYSCTL_ALLOW.join(", ")
                ),
            );
            continue;
        }
        let value = v.0.split_whitespace().collect::<Vec<_>>().join(" ");
        if value.is_empty() || v.0.chars().any(|c| c.is_control() && c != '\t') {
            cx.at(loc(k), f, "the value is empty or has control characters");
            continue;
        }
        if out.insert(k.value.clone(), value).is_some() {
            cx.at(loc(k), f, "set twice");
        }
    }
    out
}

/// A `nat:` list (the lab's, or a node's): masquerades of an IPv4 or IPv6 source,
/// out of (or not out of) an interface.
fn parse_nat(cx: &mut Ctx, raw: &[S<RawNat>], at: &str) -> Vec<Nat> {
    let mut nat = Vec::new();
    for (i, n) in raw.iter().enumerate() {
        let field = format!("{at}[{i}]");
        let src = match parse_cidr(cx, &n.value.source, &format!("{field}.source")) {
            Some(s) => s.trunc(),
            None => continue,
        };
        let out = match (&n.value.not_out, &n.value.out) {
            (Some(x), None) => {
                if !check_ifname(cx, x, &format!("{field}.not_out")) {
                    continue;
                }
                NatOut::NotOut(x.value.clone())
            }
            (None, Some(x)) => {
                if !check_ifname(cx, x, &format!("{field}.out")) {
                    continue;
                }
                NatOut::Out(x.value.clone())
            }
            _ => {
                cx.at(loc(n), &field, "give exactly one of `not_out: BRIDGE` (any interface but the bridge, like `! -o bri0`) or `out: UPLINK`");
                continue;
            }
        };
        nat.push(Nat { source: src, out });
    }
    nat
}

fn place_field(name: &str) -> String {
    if name == "host" {
        "host".into()
    } else {
        format!("nodes.{name}")
    }
}

fn sandbox_reserved(a: &IpNet) -> bool {
    let r1: IpNet = "203.0.113.0/24".parse().expect("constant");
    let r2: IpNet = "198.51.100.0/24".parse().expect("constant");
    [r1, r2, sandbox_inet_prefix6()]
        .iter()
        .any(|r| r.contains(&a.addr()) || a.contains(&r.addr()))
}

#[allow(clippy::too_many_arguments)]
fn node_draft(
    cx: &mut Ctx,
    field: &str,
    k: &S<String>,
    ifaces: &OrderedMap<RawIface>,
    routes: &[S<String>],
    forward: bool,
    run: &[S<String>],
    check_programs: bool,
) -> NodeDraft {
    let mut d = NodeDraft {
        name: k.value.clone(),
        ifaces: Vec::new(),
        routes: routes
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (r, i))
            .collect(),
        forward,
        run: Vec::new(),
    };
    for (ik, iv) in &ifaces.0 {
        let f = format!("{field}.interfaces.{}", ik.value);
        if !check_ifname(cx, ik, &f) {
            continue;
        }
        let addrs = addresses(cx, &iv.address, &iv.addresses, &f);
        let mtu = check_mtu(cx, &iv.mtu, &format!("{f}.mtu"));
        let mac = iv
            .mac
            .as_ref()
            .and_then(|m| parse_mac(cx, m, &format!("{f}.mac")));
        d.ifaces.push((ik.value.clone(), *loc(ik), addrs, mtu, mac));
    }
    for (i, r) in run.iter().enumerate() {
        if r.value.trim().is_empty() {
            cx.at(loc(r), format!("{field}.run[{i}]"), "empty command");
        } else {
            match crate::util::split_command(&r.value) {
                Err(_) => cx.at(
                    loc(r),
                    format!("{field}.run[{i}]"),
                    "unbalanced quotes in the command",
                ),
                Ok(words) if words.first().is_none_or(|w| w.is_empty()) => {
                    cx.at(loc(r), format!("{field}.run[{i}]"), "empty command")
                }
                Ok(words) => {
                    if check_programs && let Err(e) = crate::util::find_program(&words[0]) {
                        cx.at(loc(r), format!("{field}.run[{i}]"), e);
                    }
                    d.run.push(r.value.clone());
                }
            }
        }
    }
    d
}

/// Can `gw` be reached from this node by a connected prefix or an on-link route?
fn gateway_reachable(
    gw: IpAddr,
    dev: Option<&str>,
    d: &NodeDraft,
    routes: &[(S<String>, usize)],
) -> bool {
    let connected = d.ifaces.iter().any(|(n, _, addrs, ..)| {
        dev.is_none_or(|x| x == n) && addrs.iter().any(|(a, _)| a.trunc().contains(&gw))
    });
    if connected {
        return true;
    }
    routes
        .iter()
        .filter_map(|(r, _)| parse_route(&r.value).ok())
        .any(|r| {
            r.via.is_none()
                && r.dev.is_some()
                && r.dst.contains(&gw)
                && dev.is_none_or(|x| Some(x) == r.dev.as_deref())
        })
}
