//! `nslab new --topo KIND,ARGS`: lab files for standard topologies, written as
//! YAML text a person can read and edit.
//!
//! Mininet's kinds (`single`, `linear`, `tree`) keep Mininet's names, port
//! numbering and addressing, so `h1 ping h2` means the same thing in both:
//! ports are numbered in the order `Topo.addLink` adds them (hosts from
//! `eth0`, switches from `eth1`), and hosts get 10.0.0.1, 10.0.0.2, ... of
//! 10.0.0.0/8 in `Topo.hosts()` order, which is natural sort order (in
//! `linear,2,2`, h1s2 is 10.0.0.2 and h2s1 is 10.0.0.3). The arguments are
//! parsed like Mininet's `--topo`: positional values and `key=value`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The kinds, in the order they are listed to people.
pub const KINDS: &[&str] = &[
    "single", "linear", "tree", "star", "ring", "chain", "fattree",
];

/// At most this many hosts in one file: a probe of `all -> all` is quadratic,
/// and a bridge holds at most 1024 ports. At least two, or `all -> all` has no
/// pair to check.
pub const MAX_HOSTS: u64 = 1000;
pub const MIN_HOSTS: u64 = 2;

/// A parsed `--topo` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub kind: Kind,
    /// The text as given, for the file's header.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Single { k: u32 },
    Linear { k: u32, n: u32 },
    Tree { depth: u32, fanout: u32 },
    Star { n: u32 },
    Ring { n: u32 },
    Chain { n: u32 },
    FatTree { k: u32 },
}

/// One parameter of a kind: its Mininet keyword, default, and range.
struct Param {
    key: &'static str,
    default: Option<u32>,
    min: u32,
    max: u32,
}

const fn p(key: &'static str, default: Option<u32>, min: u32, max: u32) -> Param {
    Param {
        key,
        default,
        min,
        max,
    }
}

/// Each kind's parameters, in Mininet's order. Mininet's defaults for its
/// kinds (`--topo single` is 2 hosts); ours need a value.
const PARAMS: &[(&str, &[Param])] = &[
    ("single", &[p("k", Some(2), 2, 1000)]),
    (
        "linear",
        &[p("k", Some(2), 1, 1000), p("n", Some(1), 1, 1000)],
    ),
    (
        "tree",
        &[p("depth", Some(1), 1, 1000), p("fanout", Some(2), 2, 1000)],
    ),
    ("star", &[p("n", None, 1, 254)]),
    ("ring", &[p("n", None, 3, 1000)]),
    // A packet's TTL (64) must outlive the chain.
    ("chain", &[p("n", None, 1, 60)]),
    ("fattree", &[p("k", None, 2, 8)]),
];

fn params(kind: &str) -> Option<&'static [Param]> {
    PARAMS.iter().find(|(k, _)| *k == kind).map(|(_, p)| *p)
}

impl std::str::FromStr for Spec {
    type Err = String;

    /// `KIND,ARGS`: positional values fill the kind's parameters in order,
    /// `key=value` names one (Mininet's `splitArgs`).
    fn from_str(s: &str) -> Result<Spec, String> {
        // Without the spaces around items: the text goes into a one-line comment.
        let text = s.split(',').map(str::trim).collect::<Vec<_>>().join(",");
        let text = text.as_str();
        let mut items = text.split(',');
        let kind = items.next().unwrap_or("").trim();
        if kind.is_empty() {
            return Err(format!(
                "no topology kind given; expected KIND[,ARGS] with KIND one of {}, e.g. linear,3",
                KINDS.join(", ")
            ));
        }
        let ps = params(kind).ok_or_else(|| {
            format!(
                "unknown topology kind {kind:?}: expected one of {}",
                KINDS.join(", ")
            )
        })?;
        let keys = || ps.iter().map(|p| p.key).collect::<Vec<_>>().join(", ");
        let mut vals: Vec<Option<u32>> = vec![None; ps.len()];
        let mut next = 0;
        for item in items {
            let item = item.trim();
            let (i, raw) = match item.split_once('=') {
                Some((k, v)) => {
                    let k = k.trim();
                    let i = ps.iter().position(|p| p.key == k).ok_or_else(|| {
                        format!(
                            "{kind} has no parameter {k:?}; its parameters are {}",
                            keys()
                        )
                    })?;
                    (i, v.trim())
                }
                None => {
                    if next >= ps.len() {
                        return Err(format!(
                            "{kind} takes at most {} value{} ({}), got more: {text:?}",
                            ps.len(),
                            if ps.len() == 1 { "" } else { "s" },
                            keys()
                        ));
                    }
                    next += 1;
                    (next - 1, item)
                }
            };
            let p = &ps[i];
            if vals[i].is_some() {
                return Err(format!("{kind}: {} is given twice", p.key));
            }
            let v: u32 = raw
                .parse()
                .map_err(|_| format!("{kind}: {} must be a whole number, got {raw:?}", p.key))?;
            if v < p.min || v > p.max {
                return Err(format!(
                    "{kind}: {} must be {} to {}, got {v}",
                    p.key, p.min, p.max
                ));
            }
            vals[i] = Some(v);
        }
        let mut v = Vec::with_capacity(ps.len());
        for (p, got) in ps.iter().zip(&vals) {
            match got.or(p.default) {
                Some(x) => v.push(x),
                None => {
                    return Err(format!(
                        "{kind} needs {}: e.g. {kind},{}",
                        p.key,
                        p.min.max(4)
                    ));
                }
            }
        }
        let kind = match kind {
            "single" => Kind::Single { k: v[0] },
            "linear" => Kind::Linear { k: v[0], n: v[1] },
            "tree" => Kind::Tree {
                depth: v[0],
                fanout: v[1],
            },
            "star" => Kind::Star { n: v[0] },
            "ring" => Kind::Ring { n: v[0] },
            "chain" => Kind::Chain { n: v[0] },
            _ => {
                if v[0] % 2 != 0 {
                    return Err(format!(
                        "fattree: k must be even (2, 4, 6 or 8), got {}",
                        v[0]
                    ));
                }
                Kind::FatTree { k: v[0] }
            }
        };
        let (hosts, _) = kind.size();
        if hosts > MAX_HOSTS {
            return Err(format!(
                "{text} has {} hosts; at most {MAX_HOSTS}",
                big(hosts)
            ));
        }
        if hosts < MIN_HOSTS {
            return Err(format!(
                "{text} has {hosts} host; at least {MIN_HOSTS}, for its `reach: all -> all`"
            ));
        }
        Ok(Spec {
            kind,
            text: text.to_string(),
        })
    }
}

/// "1 host", "2 hosts".
fn count(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn big(n: u64) -> String {
    if n == u64::MAX {
        "too many".into()
    } else {
        n.to_string()
    }
}

impl Kind {
    /// (hosts, switches or routers), saturating.
    pub fn size(&self) -> (u64, u64) {
        match *self {
            Kind::Single { k } => (k.into(), 1),
            Kind::Linear { k, n } => (u64::from(k) * u64::from(n), k.into()),
            Kind::Tree { depth, fanout } => {
                let f = u64::from(fanout);
                let mut level = 1u64; // switches at this depth
                let mut switches = 0u64;
                for _ in 0..depth {
                    switches = switches.saturating_add(level);
                    level = level.saturating_mul(f);
                }
                (level, switches)
            }
            Kind::Star { n } => (n.into(), 1),
            Kind::Ring { n } => (n.into(), n.into()),
            Kind::Chain { n } => (2, n.into()),
            Kind::FatTree { k } => {
                let k = u64::from(k);
                (k * k * k / 4, k * k + k * k / 4)
            }
        }
    }
}

impl Spec {
    /// The lab's name when `--name` is not given: `linear4`, `linear2-2`, `tree2-3`.
    pub fn default_name(&self) -> String {
        match self.kind {
            Kind::Single { k } => format!("single{k}"),
            Kind::Linear { k, n: 1 } => format!("linear{k}"),
            Kind::Linear { k, n } => format!("linear{k}-{n}"),
            Kind::Tree { depth, fanout } => format!("tree{depth}-{fanout}"),
            Kind::Star { n } => format!("star{n}"),
            Kind::Ring { n } => format!("ring{n}"),
            Kind::Chain { n } => format!("chain{n}"),
            Kind::FatTree { k } => format!("fattree{k}"),
        }
    }
}

/// A topology being built the way Mininet's `Topo` builds one, so ports get
/// Mininet's numbers.
#[derive(Default)]
struct Net {
    bridges: Vec<(String, bool)>,
    nodes: Vec<Node>,
    /// (a, a's interface, b, b's interface), in the order they were added.
    links: Vec<(String, String, String, String)>,
    /// Interfaces so far per switch or node (Mininet's `len(ports[node])`).
    ports: std::collections::HashMap<String, u32>,
}

#[derive(Default)]
struct Node {
    name: String,
    /// (interface, address).
    ifaces: Vec<(String, Option<String>)>,
    routes: Vec<String>,
    forward: bool,
}

impl Net {
    fn switch(&mut self, name: String, stp: bool) -> String {
        self.bridges.push((name.clone(), stp));
        name
    }

    fn host(&mut self, name: String) -> String {
        self.nodes.push(Node {
            name: name.clone(),
            ..Node::default()
        });
        name
    }

    fn is_switch(&self, n: &str) -> bool {
        self.bridges.iter().any(|(b, _)| b == n)
    }

    /// The next port of `n`: `h1-eth0` for a node, `s1-eth1` for a switch.
    fn port(&mut self, n: &str) -> String {
        let base = if self.is_switch(n) { 1 } else { 0 };
        let c = self.ports.entry(n.to_string()).or_insert(0);
        let name = format!("{n}-eth{}", *c + base);
        *c += 1;
        name
    }

    /// Mininet's `addLink(a, b)`; returns the two interface names.
    fn link(&mut self, a: &str, b: &str) -> (String, String) {
        let (pa, pb) = (self.port(a), self.port(b));
        if let Some(n) = self.nodes.iter_mut().find(|x| x.name == a) {
            n.ifaces.push((pa.clone(), None));
        }
        if let Some(n) = self.nodes.iter_mut().find(|x| x.name == b) {
            n.ifaces.push((pb.clone(), None));
        }
        self.links
            .push((a.to_string(), pa.clone(), b.to_string(), pb.clone()));
        (pa, pb)
    }

    fn node(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|x| x.name == name)
            .expect("a node added before")
    }

    fn address(&mut self, node: &str, iface: &str, addr: String) {
        let n = self.node(node);
        if let Some(i) = n.ifaces.iter_mut().find(|(i, _)| i == iface) {
            i.1 = Some(addr);
        }
    }

    /// Mininet's addressing: hosts in natural name order get 10.0.0.1, .2, ...
    /// of 10.0.0.0/8 on their first interface (their only one here).
    fn mininet_addresses(&mut self) {
        self.nodes.sort_by_key(|n| natural(&n.name));
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let a = Ipv4Addr::from(0x0a00_0000u32 + i as u32 + 1);
            if let Some(f) = n.ifaces.first_mut() {
                f.1 = Some(format!("{a}/8"));
            }
        }
    }
}

/// Mininet's `natural` sort key: digit runs compare as numbers (h2 < h10).
fn natural(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.starts_with(|c: char| c.is_ascii_digit());
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (part, tail) = rest.split_at(end);
        out.push(if digits {
            (String::new(), part.parse().unwrap_or(u64::MAX))
        } else {
            (part.to_string(), 0)
        });
        rest = tail;
    }
    out
}

fn v4(base: u32, off: u32) -> Ipv4Addr {
    Ipv4Addr::from(base + off)
}

/// The lab file for `spec`, named `name`, as YAML text.
pub fn generate(spec: &Spec, name: &str) -> String {
    let mut net = Net::default();
    let about: Vec<String>;
    match spec.kind {
        Kind::Single { k } => {
            let s = net.switch("s1".into(), false);
            for h in 1..=k {
                let h = net.host(format!("h{h}"));
                net.link(&h, &s);
            }
            net.mininet_addresses();
            about = vec![
                format!(
                    "Mininet's `single,{k}`: one switch s1 (a Linux bridge) and {k} hosts h1..h{k},"
                ),
                "hN-eth0 cabled to s1-ethN; hosts 10.0.0.1, 10.0.0.2, ... of one flat 10.0.0.0/8."
                    .into(),
            ];
        }
        Kind::Linear { k, n } => {
            let mut last: Option<String> = None;
            for i in 1..=k {
                let s = net.switch(format!("s{i}"), false);
                for j in 1..=n {
                    let h = if n == 1 {
                        format!("h{i}")
                    } else {
                        format!("h{j}s{i}")
                    };
                    let h = net.host(h);
                    net.link(&h, &s);
                }
                if let Some(l) = &last {
                    net.link(&s, l);
                }
                last = Some(s);
            }
            net.mininet_addresses();
            let hosts = if n == 1 {
                format!("one host each (h1..h{k})")
            } else {
                format!("{n} hosts each (hJsI is host J of switch sI)")
            };
            about = vec![
                format!("Mininet's `linear,{k},{n}`: {k} switches s1..s{k} (Linux bridges) in a line, {hosts};"),
                "hosts 10.0.0.1, 10.0.0.2, ... of one flat 10.0.0.0/8, in natural name order (as Mininet).".into(),
            ];
        }
        Kind::Tree { depth, fanout } => {
            let mut counters = (1u32, 1u32);
            tree(&mut net, depth, fanout, &mut counters);
            net.mininet_addresses();
            about = vec![
                format!(
                    "Mininet's `tree,depth={depth},fanout={fanout}`: a tree of switches (Linux bridges), s1 at the root,"
                ),
                format!(
                    "{fanout} children under each switch, hosts h1.. at depth {depth}; numbered depth first as Mininet;"
                ),
                "hosts 10.0.0.1, 10.0.0.2, ... of one flat 10.0.0.0/8.".into(),
            ];
        }
        Kind::Star { n } => {
            let r = net.host("r1".into());
            for i in 1..=n {
                let h = net.host(format!("h{i}"));
                let (hi, ri) = net.link(&h, &r);
                let sub = 0x0a00_0000 + (i << 8);
                net.address(&h, &hi, format!("{}/24", v4(sub, 2)));
                net.address(&r, &ri, format!("{}/24", v4(sub, 1)));
                net.node(&h)
                    .routes
                    .push(format!("default via {}", v4(sub, 1)));
            }
            net.node(&r).forward = true;
            about = vec![
                format!("A star: router r1 in the middle and {n} hosts h1..h{n}, each on a cable of its own"),
                "(hI-eth0 to r1-eth(I-1)) and its own subnet 10.0.I.0/24: the host is .2, r1 is .1 and".into(),
                "the host's default gateway; r1 forwards. No switch: every path crosses r1.".into(),
            ];
        }
        Kind::Ring { n } => {
            for i in 1..=n {
                let s = net.switch(format!("s{i}"), true);
                let h = net.host(format!("h{i}"));
                net.link(&h, &s);
            }
            for i in 1..=n {
                net.link(&format!("s{i}"), &format!("s{}", i % n + 1));
            }
            net.mininet_addresses();
            about = vec![
                format!(
                    "A ring of {n} switches s1..s{n} (Linux bridges), sI cabled to s(I+1) and s{n} to s1,"
                ),
                "one host hI on each; a loop, so every bridge runs STP (`stp: true`), which blocks"
                    .into(),
                "one port to break it (allow it some seconds to converge after `up`).".into(),
                "Hosts 10.0.0.1, 10.0.0.2, ... of one flat 10.0.0.0/8.".into(),
            ];
        }
        Kind::Chain { n } => {
            chain(&mut net, n);
            about = vec![
                format!("A chain of {n} routers r1..r{n}: rI-eth1 cabled to r(I+1)-eth0, each cable a /30 of"),
                "10.100.0.0/16 (10.100.0.0/30, 10.100.0.4/30, ...: the left router .1, the right .2).".into(),
                format!("Host h1 is behind r1 on 10.0.1.0/24, h2 behind r{n} on 10.0.2.0/24 (routers .1, hosts .2,"),
                "their default gateway). Routers forward, with a static route to every subnet they are not on.".into(),
            ];
        }
        Kind::FatTree { k } => {
            fattree(&mut net, k);
            let h = k / 2;
            about = vec![
                format!("A k={k} fat tree of switches (Linux bridges): {k} pods of {h} edge (e..) and {h} aggregation"),
                format!("(a..) switches, {} (c..); each edge switch has {} and is cabled to every", count(h * h, "core switch", "core switches"), count(h, "host", "hosts")),
                format!("aggregation switch of its pod; aggregation switch J of a pod to core switches (J-1)*{h}+1 to J*{h}."),
                format!("{} hosts h1.. in one flat 10.0.0.0/8 (10.0.0.1, ...). Loops: every bridge runs STP", k * k * k / 4),
                "(`stp: true`), which blocks ports to break them; allow it time to converge after `up`.".into(),
            ];
        }
    }
    render(&net, spec, name, &about)
}

/// Mininet's `TreeTopo.addTree`: switches and hosts numbered depth first.
fn tree(net: &mut Net, depth: u32, fanout: u32, c: &mut (u32, u32)) -> String {
    if depth > 0 {
        let s = net.switch(format!("s{}", c.0), false);
        c.0 += 1;
        for _ in 0..fanout {
            let child = tree(net, depth - 1, fanout, c);
            net.link(&s, &child);
        }
        s
    } else {
        let h = net.host(format!("h{}", c.1));
        c.1 += 1;
        h
    }
}

/// Routers r1..rN in a line with h1 and h2 at the ends; static routes to
/// every subnet a router is not on, via the neighbour on that side.
fn chain(net: &mut Net, n: u32) {
    const LAN1: u32 = 0x0a00_0100; // 10.0.1.0/24
    const LAN2: u32 = 0x0a00_0200; // 10.0.2.0/24
    const P2P: u32 = 0x0a64_0000; // 10.100.0.0/16
    let h1 = net.host("h1".into());
    let routers: Vec<String> = (1..=n).map(|i| net.host(format!("r{i}"))).collect();
    let h2 = net.host("h2".into());
    // Subnets in order from left to right, with who is on each.
    let mut subnets: Vec<String> = Vec::new();
    let (a, b) = net.link(&h1, &routers[0]);
    net.address(&h1, &a, format!("{}/24", v4(LAN1, 2)));
    net.address(&routers[0], &b, format!("{}/24", v4(LAN1, 1)));
    net.node(&h1)
        .routes
        .push(format!("default via {}", v4(LAN1, 1)));
    subnets.push(format!("{}/24", v4(LAN1, 0)));
    for i in 0..routers.len() - 1 {
        let base = P2P + 4 * i as u32;
        let (a, b) = net.link(&routers[i], &routers[i + 1]);
        net.address(&routers[i], &a, format!("{}/30", v4(base, 1)));
        net.address(&routers[i + 1], &b, format!("{}/30", v4(base, 2)));
        subnets.push(format!("{}/30", v4(base, 0)));
    }
    let last = &routers[routers.len() - 1];
    let (a, b) = net.link(last, &h2);
    net.address(last, &a, format!("{}/24", v4(LAN2, 1)));
    net.address(&h2, &b, format!("{}/24", v4(LAN2, 2)));
    net.node(&h2)
        .routes
        .push(format!("default via {}", v4(LAN2, 1)));
    subnets.push(format!("{}/24", v4(LAN2, 0)));
    // Router i (0-based) is on subnets i (left) and i+1 (right).
    for (i, r) in routers.iter().enumerate() {
        let left = (i > 0).then(|| v4(P2P + 4 * (i as u32 - 1), 1));
        let right = (i + 1 < routers.len()).then(|| v4(P2P + 4 * i as u32, 2));
        let node = net.node(r);
        node.forward = true;
        for (j, s) in subnets.iter().enumerate() {
            if j < i {
                let gw = left.expect("a router left of it");
                node.routes.push(format!("{s} via {gw}"));
            } else if j > i + 1 {
                let gw = right.expect("a router right of it");
                node.routes.push(format!("{s} via {gw}"));
            }
        }
    }
}

/// The k-ary fat tree (Al-Fares et al.): pods of edge and aggregation
/// switches over a core, hosts under the edge switches.
fn fattree(net: &mut Net, k: u32) {
    let h = k / 2;
    let core: Vec<String> = (1..=h * h)
        .map(|i| net.switch(format!("c{i}"), true))
        .collect();
    let mut host = 0;
    for pod in 0..k {
        let edges: Vec<String> = (0..h)
            .map(|i| net.switch(format!("e{}", pod * h + i + 1), true))
            .collect();
        for e in &edges {
            for _ in 0..h {
                host += 1;
                let hn = net.host(format!("h{host}"));
                net.link(&hn, e);
            }
        }
        let aggs: Vec<String> = (0..h)
            .map(|j| net.switch(format!("a{}", pod * h + j + 1), true))
            .collect();
        for e in &edges {
            for a in &aggs {
                net.link(e, a);
            }
        }
        for (j, a) in aggs.iter().enumerate() {
            for m in 0..h as usize {
                net.link(a, &core[j * h as usize + m]);
            }
        }
    }
    // Bridges listed core, aggregation, edge: from the top down.
    net.bridges.sort_by_key(|(b, _)| {
        let layer = match b.as_bytes()[0] {
            b'c' => 0,
            b'a' => 1,
            _ => 2,
        };
        (layer, natural(b))
    });
    net.mininet_addresses();
}

/// A YAML plain scalar for a name, quoted when YAML would read it as something
/// else (`true`, `null`, `123`).
fn yaml_name(n: &str) -> String {
    let plain = n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !matches!(
            n.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "nan" | "inf"
        );
    if plain {
        n.to_string()
    } else {
        format!("{n:?}")
    }
}

fn render(net: &Net, spec: &Spec, name: &str, about: &[String]) -> String {
    let mut y = String::new();
    let mut cmd = format!("nslab new --topo {}", spec.text);
    if name != spec.default_name() {
        cmd.push_str(&format!(" --name {name}"));
    }
    let _ = writeln!(y, "# Made by `{cmd}`.");
    for l in about {
        let _ = writeln!(y, "# {l}");
    }
    let _ = writeln!(
        y,
        "# Try it: nslab up --sandbox FILE; nslab check FILE; nslab down FILE"
    );
    let _ = writeln!(y, "name: {}", yaml_name(name));
    if !net.bridges.is_empty() {
        let _ = writeln!(y, "bridges:");
        for (b, stp) in &net.bridges {
            if *stp {
                let _ = writeln!(y, "  {b}: {{ stp: true }}");
            } else {
                let _ = writeln!(y, "  {b}: {{}}");
            }
        }
    }
    let _ = writeln!(y, "nodes:");
    for n in &net.nodes {
        let _ = writeln!(y, "  {}:", n.name);
        let _ = writeln!(y, "    interfaces:");
        for (i, a) in &n.ifaces {
            match a {
                Some(a) => {
                    let _ = writeln!(y, "      {i}: {{ address: {a} }}");
                }
                None => {
                    let _ = writeln!(y, "      {i}: {{}}");
                }
            }
        }
        match n.routes.len() {
            0 => {}
            1 => {
                let _ = writeln!(y, "    routes: [ \"{}\" ]", n.routes[0]);
            }
            _ => {
                let _ = writeln!(y, "    routes:");
                for r in &n.routes {
                    let _ = writeln!(y, "      - \"{r}\"");
                }
            }
        }
        if n.forward {
            let _ = writeln!(y, "    forward: true");
        }
    }
    let _ = writeln!(y, "links:");
    for (a, ai, b, bi) in &net.links {
        let _ = writeln!(y, "  - [ {a}:{ai}, {b}:{bi} ]");
    }
    let _ = writeln!(y, "expect:");
    let _ = writeln!(y, "  - reach: all -> all");
    y
}
