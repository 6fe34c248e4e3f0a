//! `nslab graph`: a picture of a lab, drawn from the validated model only (no
//! kernel, no root).
//!
//! Three renderings of one `Scene` (what is drawn, whatever the format):
//! - DOT for Graphviz: namespaces as tables with one row (and port) per
//!   interface, the host as a cluster holding its bridges, cables as edges.
//! - Mermaid `flowchart LR`, which GitHub renders in Markdown.
//! - SVG laid out in pure Rust by `layout-rs` (no Graphviz needed). It has no
//!   clusters, so bridges are their own boxes, tied to the host by dotted lines.
//!
//! Mermaid has limits of its own: GitHub refuses diagrams over 50 000
//! characters or 500 edges (a few hundred nodes here); use DOT or SVG for big labs.
//!
//! Every rendering is deterministic: the same lab gives byte-identical output
//! (everything is walked in the model's order; no hash maps).
//!
//! Left to right the pictures read: nodes, bridges and the host, then (sandbox)
//! the emulated internet. A cable's label names its two interfaces in the same
//! order (`bveth — bbrveth`: node end, then bridge port).

use crate::topology::{
    End, INET_IF, Lab, Nat, NatOut, Place, UPLINK_IF, sandbox_inet_service_addr,
};
use std::fmt::{self, Write as _};
use std::str::FromStr;

mod dot;
mod mermaid;
mod svg;
#[cfg(test)]
mod tests;
mod web;

/// The output formats of `nslab graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Graphviz DOT text (`dot -Tsvg` draws it).
    Dot,
    /// A Mermaid flowchart (GitHub renders it in Markdown).
    Mermaid,
    /// A standalone SVG picture, laid out without Graphviz.
    Svg,
}

impl Format {
    /// Every format, in the order they are listed in messages.
    pub const ALL: [Format; 3] = [Format::Dot, Format::Mermaid, Format::Svg];

    /// The word on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Dot => "dot",
            Format::Mermaid => "mermaid",
            Format::Svg => "svg",
        }
    }

    /// The usual file extension of the format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Dot => "dot",
            Format::Mermaid => "mmd",
            Format::Svg => "svg",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = GraphError;

    /// `dot`, `mermaid` (or `mmd`), `svg`; case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dot" | "graphviz" | "gv" => Ok(Format::Dot),
            "mermaid" | "mmd" => Ok(Format::Mermaid),
            "svg" => Ok(Format::Svg),
            _ => Err(GraphError::UnknownFormat(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("unknown graph format {0:?}; choose one of: dot, mermaid, svg")]
    UnknownFormat(String),
    /// The SVG layout engine gave up on this lab (a bug of ours or of
    /// `layout-rs`); DOT and Mermaid still work.
    #[error("cannot lay out the SVG picture: {0}; try --format dot or --format mermaid")]
    Layout(String),
}

/// Draw `lab` in `format`: the file's shaping and `up: false` cables.
pub fn render(lab: &Lab, format: Format) -> Result<String, GraphError> {
    render_with(lab, format, &Overlay::of_file(lab))
}

/// What a running lab changes in the picture: the shaping in force (the file's
/// with `nslab shape` over it) and the cable ends that are down.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub shapes: Vec<crate::runtime::shape::Shaping>,
    /// Ends held down (`nslab link`, or the file's `up: false`), as (place, interface).
    pub down: Vec<(Place, String)>,
}

impl Overlay {
    /// The file's own: its link maps' shaping and `up: false` cables.
    pub fn of_file(lab: &Lab) -> Overlay {
        Overlay {
            shapes: lab.file_shapes(),
            down: lab
                .file_down_ends()
                .into_iter()
                .map(|e| (e.place.clone(), e.ifname.clone()))
                .collect(),
        }
    }

    /// The file's, with a running lab's runtime state (from its record) over it.
    pub fn of_running(lab: &Lab, rt: &crate::runtime::State) -> Overlay {
        let mut o = Overlay::of_file(lab);
        o.shapes = crate::runtime::shape::effective_for(lab, &rt.shapes);
        o.down.extend(
            rt.links_down
                .iter()
                .map(|d| (d.place.clone(), d.interface.clone())),
        );
        o
    }

    fn shaping(&self, e: &End) -> Option<String> {
        let place = e.place.to_string();
        self.shapes
            .iter()
            .find(|s| s.place == place && s.ifname == e.ifname)
            .map(short_shaping)
    }

    fn is_down(&self, e: &End) -> bool {
        self.down
            .iter()
            .any(|(p, i)| p == &e.place && i == &e.ifname)
    }
}

/// `10mbit 1% loss 20ms delay`: a shaping as a cable's label says it.
fn short_shaping(s: &crate::runtime::shape::Shaping) -> String {
    use crate::units::{loss_text, rate_text, time_text};
    let mut v = Vec::new();
    if let Some(r) = s.rate {
        v.push(rate_text(r).to_ascii_lowercase());
    }
    if let Some(l) = s.loss {
        v.push(format!("{} loss", loss_text(l)));
    }
    if let Some(d) = s.delay_us {
        v.push(format!("{} delay", time_text(d)));
    }
    if let Some(j) = s.jitter_us {
        v.push(format!("±{}", time_text(j)));
    }
    v.join(" ")
}

/// Draw `lab` in `format` with `overlay`'s shaping and down cables.
pub fn render_with(lab: &Lab, format: Format, overlay: &Overlay) -> Result<String, GraphError> {
    let scene = Scene::of(lab, overlay);
    match format {
        Format::Dot => Ok(dot::dot(&scene)),
        Format::Mermaid => Ok(mermaid::mermaid(&scene)),
        Format::Svg => svg::svg(&scene),
    }
}

pub use web::{BoxView, CableView, Layout, layout};

// ---------------------------------------------------------------------------
// The scene: what is drawn, independent of the format.

/// A box in the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// `lab.nodes[i]`
    Node(usize),
    /// `lab.bridges[i]`
    Bridge(usize),
    Host,
    Internet,
}

/// One interface row of a namespace box.
#[derive(Debug, Clone)]
struct IfRow {
    name: String,
    addresses: Vec<String>,
}

/// A namespace (node, host or internet) as a box of rows.
#[derive(Debug, Clone)]
struct Panel {
    key: Key,
    /// `black`, `host (this namespace)`, `internet (p-lab-inet)`.
    title: String,
    /// Extra header lines: the namespace when it differs from the name, `router`.
    badges: Vec<String>,
    router: bool,
    ifaces: Vec<IfRow>,
    /// Routes in iproute2 words.
    routes: Vec<String>,
    /// NAT rules (host only).
    nat: Vec<String>,
}

impl Panel {
    fn has_rows(&self) -> bool {
        !(self.ifaces.is_empty() && self.routes.is_empty() && self.nat.is_empty())
    }

    /// Every line of the box, title first, as plain text.
    fn lines(&self, with_title: bool) -> Vec<String> {
        let mut out = Vec::new();
        if with_title {
            out.push(self.title.clone());
            out.extend(self.badges.iter().cloned());
        }
        for i in &self.ifaces {
            out.push(if_line(i));
        }
        out.extend(self.routes.iter().map(|r| format!("route {r}")));
        out.extend(self.nat.iter().map(|n| format!("NAT: {n}")));
        out
    }
}

fn if_line(i: &IfRow) -> String {
    if i.addresses.is_empty() {
        i.name.clone()
    } else {
        format!("{} {}", i.name, i.addresses.join(", "))
    }
}

#[derive(Debug, Clone)]
struct BridgeBox {
    name: String,
    addresses: Vec<String>,
    ports: usize,
    stp: bool,
}

impl BridgeBox {
    fn lines(&self) -> Vec<String> {
        let kind = if self.stp {
            "bridge (switch), STP"
        } else {
            "bridge (switch)"
        };
        let mut out = vec![self.name.clone(), kind.to_string()];
        out.extend(self.addresses.iter().cloned());
        out
    }
}

/// One end of an edge: a box, and the interface row it attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    key: Key,
    row: Option<usize>,
}

#[derive(Debug, Clone)]
struct Edge {
    /// Drawn on the left.
    from: Anchor,
    to: Anchor,
    /// `bveth — bbrveth`: the interface names in the order of `from`, `to`,
    /// then the shaping of each end's egress (`bveth: 10mbit 1% loss`).
    label: String,
    /// An end of the cable is down: drawn dashed.
    down: bool,
    /// The cable's ends as the endpoint grammar names them (`black:bveth`,
    /// `bri0:bbrveth`), in the order of `from`, `to`.
    ends: [String; 2],
    /// An end of the cable is shaped (`nslab shape`, the file's link map).
    shaped: bool,
}

#[derive(Debug, Clone)]
struct Scene {
    /// The lab's name (with prefix).
    lab: String,
    sandbox: bool,
    nodes: Vec<Panel>,
    bridges: Vec<BridgeBox>,
    /// The host, when there is anything in it to show.
    host: Option<Panel>,
    internet: Option<Panel>,
    edges: Vec<Edge>,
}

/// Box fills, the same in every format.
const NODE_FILL: &str = "#dbe9f6";
const ROUTER_FILL: &str = "#f9dcc4";
const HOST_FILL: &str = "#e8e8e8";
const BRIDGE_FILL: &str = "#fff2b3";
const INET_FILL: &str = "#d5f0d5";

const DASH: &str = "—";

fn addrs<T: fmt::Display>(v: &[T]) -> Vec<String> {
    v.iter().map(|a| a.to_string()).collect()
}

fn nat_text(n: &Nat) -> String {
    match &n.out {
        NatOut::NotOut(i) => format!("masquerade {} ! -o {i}", n.source),
        NatOut::Out(i) => format!("masquerade {} -o {i}", n.source),
    }
}

impl Scene {
    fn of(lab: &Lab, overlay: &Overlay) -> Scene {
        let nodes: Vec<Panel> = lab
            .nodes
            .iter()
            .enumerate()
            .map(|(k, n)| {
                let mut p = node_panel(k, n);
                // A lab over several machines: where each node lives.
                if let Some(m) = lab.placement.get(&n.name) {
                    p.badges.push(format!("on {}", clean(m)));
                }
                p
            })
            .collect();
        let bridges: Vec<BridgeBox> = lab
            .bridges
            .iter()
            .map(|b| BridgeBox {
                name: match lab
                    .overlays
                    .iter()
                    .find(|o| o.bridge.as_ref() == Some(&b.name))
                {
                    Some(o) => clean(&format!(
                        "{} (VXLAN vni {} over {})",
                        b.name,
                        o.vni,
                        o.machines.join(" ")
                    )),
                    None => clean(&b.name),
                },
                addresses: addrs(&b.addresses),
                ports: b.ports.len(),
                stp: b.stp.is_some(),
            })
            .collect();
        let host_panel = host_panel(lab);
        let host =
            (lab.sandbox || !bridges.is_empty() || host_panel.has_rows()).then_some(host_panel);
        let internet = internet_panel(lab);
        let edges = edges(lab, &nodes, &host, &internet, overlay);
        Scene {
            lab: clean(&lab.name),
            sandbox: lab.sandbox,
            nodes,
            bridges,
            host,
            internet,
            edges,
        }
    }

    fn mode(&self) -> &'static str {
        if self.sandbox { "sandbox" } else { "host mode" }
    }
}

fn node_panel(k: usize, n: &crate::topology::Node) -> Panel {
    let mut badges = Vec::new();
    if !n.ns.is_empty() && n.ns != n.name {
        badges.push(format!("netns {}", clean(&n.ns)));
    }
    if n.forward {
        badges.push("router (forwarding on)".to_string());
    }
    Panel {
        key: Key::Node(k),
        title: clean(&n.name),
        badges,
        router: n.forward,
        ifaces: n
            .interfaces
            .iter()
            .map(|i| IfRow {
                name: clean(&i.name),
                addresses: addrs(&i.addresses),
            })
            .collect(),
        routes: n.routes.iter().map(|r| clean(&r.to_string())).collect(),
        nat: n.nat.iter().map(|x| clean(&nat_text(x))).collect(),
    }
}

/// The host box lists what is in the host besides bridges and their
/// ports: the host ends of cables, the uplink, routes and NAT.
fn host_panel(lab: &Lab) -> Panel {
    let is_port = |name: &str| {
        lab.bridges
            .iter()
            .any(|b| b.ports.iter().any(|p| p == name))
    };
    let mut host_ifaces: Vec<IfRow> = lab
        .host
        .interfaces
        .iter()
        .filter(|i| !is_port(&i.name))
        .map(|i| IfRow {
            name: clean(&i.name),
            addresses: addrs(&i.addresses),
        })
        .collect();
    if lab.sandbox {
        host_ifaces.push(IfRow {
            name: UPLINK_IF.to_string(),
            addresses: lab
                .addresses_of(&Place::Host)
                .iter()
                .filter(|(i, _)| i == UPLINK_IF)
                .map(|(_, a)| a.to_string())
                .collect(),
        });
    }
    let host_title = match lab.host_ns() {
        Some(ns) => format!("host ({})", clean(&ns)),
        None => "host (this namespace)".to_string(),
    };
    Panel {
        key: Key::Host,
        title: host_title,
        badges: Vec::new(),
        router: false,
        ifaces: host_ifaces,
        routes: lab
            .host
            .routes
            .iter()
            .map(|r| clean(&r.to_string()))
            .collect(),
        nat: lab.nat.iter().map(|n| clean(&nat_text(n))).collect(),
    }
}

fn internet_panel(lab: &Lab) -> Option<Panel> {
    lab.internet_ns().map(|ns| Panel {
        key: Key::Internet,
        title: format!("internet ({})", clean(&ns)),
        badges: Vec::new(),
        router: false,
        ifaces: vec![
            IfRow {
                name: INET_IF.to_string(),
                addresses: lab
                    .addresses_of(&Place::Internet)
                    .iter()
                    .filter(|(i, _)| i == INET_IF)
                    .map(|(_, a)| a.to_string())
                    .collect(),
            },
            IfRow {
                name: "lo".to_string(),
                addresses: vec![sandbox_inet_service_addr().to_string()],
            },
        ],
        routes: Vec::new(),
        nat: Vec::new(),
    })
}

/// The cables, and the sandbox's uplink, between the panels drawn.
/// `ea — eb`, then `; 10mbit 1% loss each way` (both ends alike) or
/// `; ea: 10mbit` per shaped end, then `; down` for a cable with an end down.
fn cable_label(a: &End, b: &End, overlay: &Overlay) -> String {
    let mut label = format!("{} {DASH} {}", a.ifname, b.ifname);
    match (overlay.shaping(a), overlay.shaping(b)) {
        (Some(x), Some(y)) if x == y => label.push_str(&format!("; {x} each way")),
        (sa, sb) => {
            for (e, s) in [(a, sa), (b, sb)] {
                if let Some(s) = s {
                    label.push_str(&format!("; {}: {s}", e.ifname));
                }
            }
        }
    }
    if overlay.is_down(a) || overlay.is_down(b) {
        label.push_str("; down");
    }
    label
}

fn edges(
    lab: &Lab,
    nodes: &[Panel],
    host: &Option<Panel>,
    internet: &Option<Panel>,
    overlay: &Overlay,
) -> Vec<Edge> {
    let anchor = |e: &End| -> Anchor {
        match (&e.place, &e.bridge) {
            (_, Some(b)) => match lab.bridges.iter().position(|x| &x.name == b) {
                Some(k) => Anchor {
                    key: Key::Bridge(k),
                    row: None,
                },
                // A valid lab has the bridge; draw the port on the host otherwise.
                None => host_anchor(host, &e.ifname),
            },
            (Place::Node(n), None) => match lab.nodes.iter().position(|x| &x.name == n) {
                Some(k) => Anchor {
                    key: Key::Node(k),
                    row: nodes[k]
                        .ifaces
                        .iter()
                        .position(|i| i.name == clean(&e.ifname)),
                },
                None => host_anchor(host, &e.ifname),
            },
            (Place::Host, None) => host_anchor(host, &e.ifname),
            (Place::Internet, None) => Anchor {
                key: Key::Internet,
                row: internet
                    .as_ref()
                    .and_then(|p| p.ifaces.iter().position(|i| i.name == clean(&e.ifname))),
            },
        }
    };
    let outer = |e: &End| -> u8 {
        match (&e.place, &e.bridge) {
            (Place::Node(_), None) => 0,
            (Place::Internet, None) => 2,
            _ => 1,
        }
    };

    let mut edges = Vec::new();
    for l in &lab.links {
        // Nodes on the left, the host in the middle, the internet on the right.
        let (a, b) = if outer(&l.a) > outer(&l.b) {
            (&l.b, &l.a)
        } else {
            (&l.a, &l.b)
        };
        let (from, to) = (anchor(a), anchor(b));
        // An end that points at nothing drawn (impossible in a valid lab) is skipped.
        if !exists(&from, nodes, host, internet) || !exists(&to, nodes, host, internet) {
            continue;
        }
        let mut label = cable_label(a, b, overlay);
        // A cable between machines: its VXLAN and the machines it joins.
        if let Some(o) = lab
            .overlays
            .iter()
            .find(|o| o.cable.as_ref() == Some(&(l.a.clone(), l.b.clone())))
        {
            label.push_str(&format!(
                " (VXLAN vni {} {})",
                o.vni,
                o.machines.join(&format!(" {DASH} "))
            ));
        }
        edges.push(Edge {
            from,
            to,
            label: clean(&label),
            down: overlay.is_down(a) || overlay.is_down(b),
            ends: [a.to_string(), b.to_string()],
            shaped: overlay.shaping(a).is_some() || overlay.shaping(b).is_some(),
        });
    }
    if let (Some(h), Some(i)) = (host, internet) {
        edges.push(Edge {
            from: Anchor {
                key: Key::Host,
                row: h.ifaces.iter().position(|r| r.name == UPLINK_IF),
            },
            to: Anchor {
                key: Key::Internet,
                row: i.ifaces.iter().position(|r| r.name == INET_IF),
            },
            label: format!("{UPLINK_IF} {DASH} {INET_IF}"),
            down: false,
            ends: [format!("host:{UPLINK_IF}"), format!("internet:{INET_IF}")],
            shaped: false,
        });
    }
    edges
}

/// Control characters (a valid interface name may hold some) would make the
/// DOT HTML labels and the SVG invalid XML: show them as `\xNN` instead.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn host_anchor(host: &Option<Panel>, ifname: &str) -> Anchor {
    Anchor {
        key: Key::Host,
        row: host
            .as_ref()
            .and_then(|h| h.ifaces.iter().position(|i| i.name == clean(ifname))),
    }
}

fn exists(a: &Anchor, nodes: &[Panel], host: &Option<Panel>, internet: &Option<Panel>) -> bool {
    match a.key {
        Key::Node(k) => k < nodes.len(),
        Key::Bridge(_) => true,
        Key::Host => host.is_some(),
        Key::Internet => internet.is_some(),
    }
}
