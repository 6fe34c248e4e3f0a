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
    sandbox_uplink_host_addr, sandbox_uplink_inet_addr,
};
use crate::util::xml;
use std::fmt::{self, Write as _};
use std::str::FromStr;

#[cfg(test)]
mod tests;

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

/// Draw `lab` in `format`.
pub fn render(lab: &Lab, format: Format) -> Result<String, GraphError> {
    let scene = Scene::of(lab);
    match format {
        Format::Dot => Ok(dot(&scene)),
        Format::Mermaid => Ok(mermaid(&scene)),
        Format::Svg => svg(&scene),
    }
}

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
}

impl BridgeBox {
    fn lines(&self) -> Vec<String> {
        let mut out = vec![self.name.clone(), "bridge (switch)".to_string()];
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
    /// `bveth — bbrveth`: the interface names in the order of `from`, `to`.
    label: String,
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
    fn of(lab: &Lab) -> Scene {
        let nodes: Vec<Panel> = lab
            .nodes
            .iter()
            .enumerate()
            .map(|(k, n)| {
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
                    nat: Vec::new(),
                }
            })
            .collect();

        let bridges: Vec<BridgeBox> = lab
            .bridges
            .iter()
            .map(|b| BridgeBox {
                name: clean(&b.name),
                addresses: addrs(&b.addresses),
                ports: b.ports.len(),
            })
            .collect();

        // The host box lists what is in the host besides bridges and their
        // ports: the host ends of cables, the uplink, routes and NAT.
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
                addresses: vec![sandbox_uplink_host_addr().to_string()],
            });
        }
        let host_title = match lab.host_ns() {
            Some(ns) => format!("host ({})", clean(&ns)),
            None => "host (this namespace)".to_string(),
        };
        let host_panel = Panel {
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
        };
        let host =
            (lab.sandbox || !bridges.is_empty() || host_panel.has_rows()).then_some(host_panel);

        let internet = lab.internet_ns().map(|ns| Panel {
            key: Key::Internet,
            title: format!("internet ({})", clean(&ns)),
            badges: Vec::new(),
            router: false,
            ifaces: vec![
                IfRow {
                    name: INET_IF.to_string(),
                    addresses: vec![sandbox_uplink_inet_addr().to_string()],
                },
                IfRow {
                    name: "lo".to_string(),
                    addresses: vec![sandbox_inet_service_addr().to_string()],
                },
            ],
            routes: Vec::new(),
            nat: Vec::new(),
        });

        let anchor = |e: &End| -> Anchor {
            match (&e.place, &e.bridge) {
                (_, Some(b)) => match lab.bridges.iter().position(|x| &x.name == b) {
                    Some(k) => Anchor {
                        key: Key::Bridge(k),
                        row: None,
                    },
                    // A valid lab has the bridge; draw the port on the host otherwise.
                    None => host_anchor(&host, &e.ifname),
                },
                (Place::Node(n), None) => match lab.nodes.iter().position(|x| &x.name == n) {
                    Some(k) => Anchor {
                        key: Key::Node(k),
                        row: nodes[k]
                            .ifaces
                            .iter()
                            .position(|i| i.name == clean(&e.ifname)),
                    },
                    None => host_anchor(&host, &e.ifname),
                },
                (Place::Host, None) => host_anchor(&host, &e.ifname),
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
            if !exists(&from, &nodes, &host, &internet) || !exists(&to, &nodes, &host, &internet) {
                continue;
            }
            edges.push(Edge {
                from,
                to,
                label: clean(&format!("{} {DASH} {}", a.ifname, b.ifname)),
            });
        }
        if let (Some(h), Some(i)) = (&host, &internet) {
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
            });
        }

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

// ---------------------------------------------------------------------------
// DOT

/// A DOT quoted string: `"` and `\` escaped, newlines as `\n` (centered lines).
fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text inside a DOT HTML-like label: XML escapes (Graphviz knows &apos;), a
/// line break as <BR/>.
fn html(s: &str) -> String {
    s.split('\n')
        .map(|l| xml(&l.replace('\r', "")))
        .collect::<Vec<_>>()
        .join("<BR/>")
}

fn dot_id(key: Key) -> String {
    match key {
        Key::Node(k) => format!("node{k}"),
        Key::Bridge(k) => format!("bridge{k}"),
        Key::Host => "host".to_string(),
        Key::Internet => "internet".to_string(),
    }
}

fn dot_anchor(a: &Anchor) -> String {
    match a.row {
        Some(r) => format!("{}:\"if{r}\"", dot_quote(&dot_id(a.key))),
        None => dot_quote(&dot_id(a.key)),
    }
}

const NODE_FILL: &str = "#dbe9f6";
const ROUTER_FILL: &str = "#f9dcc4";
const HOST_FILL: &str = "#e8e8e8";
const BRIDGE_FILL: &str = "#fff2b3";
const INET_FILL: &str = "#d5f0d5";

/// A namespace as an HTML-like table: header, one row (port `ifN`) per
/// interface, then routes and NAT in a smaller font.
fn dot_table(p: &Panel, header: bool, fill: &str) -> String {
    let mut s =
        String::from("<<TABLE BORDER=\"0\" CELLBORDER=\"1\" CELLSPACING=\"0\" CELLPADDING=\"4\">");
    if header {
        let _ = write!(s, "<TR><TD BGCOLOR=\"{fill}\"><B>{}</B>", html(&p.title));
        for b in &p.badges {
            let _ = write!(s, "<BR/><FONT POINT-SIZE=\"9\">{}</FONT>", html(b));
        }
        s.push_str("</TD></TR>");
    }
    for (k, i) in p.ifaces.iter().enumerate() {
        let _ = write!(
            s,
            "<TR><TD PORT=\"if{k}\" ALIGN=\"LEFT\"><B>{}</B>",
            html(&i.name)
        );
        if !i.addresses.is_empty() {
            let _ = write!(s, " {}", html(&i.addresses.join(", ")));
        }
        s.push_str("</TD></TR>");
    }
    let notes: Vec<String> = p
        .routes
        .iter()
        .map(|r| html(r))
        .chain(p.nat.iter().map(|n| format!("NAT: {}", html(n))))
        .collect();
    if !notes.is_empty() {
        s.push_str("<TR><TD ALIGN=\"LEFT\" BALIGN=\"LEFT\"><FONT POINT-SIZE=\"9\">");
        s.push_str(&notes.join("<BR/>"));
        s.push_str("</FONT></TD></TR>");
    }
    if !header && p.ifaces.is_empty() && notes.is_empty() {
        // An HTML table needs at least one cell.
        let _ = write!(s, "<TR><TD>{}</TD></TR>", html(&p.title));
    }
    s.push_str("</TABLE>>");
    s
}

fn dot(sc: &Scene) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "// nslab graph of lab {} ({})", sc.lab, sc.mode());
    let _ = writeln!(s, "graph {} {{", dot_quote(&sc.lab));
    let _ = writeln!(
        s,
        "  graph [rankdir=LR, nodesep=0.4, ranksep=1.0, fontname=\"Helvetica\", labelloc=t, label={}];",
        dot_quote(&format!("lab {} ({})", sc.lab, sc.mode()))
    );
    s.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
    s.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");

    for p in &sc.nodes {
        let fill = if p.router { ROUTER_FILL } else { NODE_FILL };
        let _ = writeln!(
            s,
            "  {} [shape=plaintext, label={}];",
            dot_quote(&dot_id(p.key)),
            dot_table(p, true, fill)
        );
    }

    if let Some(h) = &sc.host {
        s.push_str("  subgraph \"cluster_host\" {\n");
        let _ = writeln!(
            s,
            "    label={}; style=\"rounded,filled\"; fillcolor=\"#f4f4f4\"; color=\"#888888\";",
            dot_quote(&h.title)
        );
        for (k, b) in sc.bridges.iter().enumerate() {
            let mut label = b.lines();
            if b.ports > 0 {
                label.push(format!(
                    "{} port{}",
                    b.ports,
                    if b.ports == 1 { "" } else { "s" }
                ));
            }
            let _ = writeln!(
                s,
                "    {} [shape=box3d, style=filled, fillcolor=\"{BRIDGE_FILL}\", label={}];",
                dot_quote(&dot_id(Key::Bridge(k))),
                dot_quote(&label.join("\n"))
            );
        }
        if h.has_rows() {
            let _ = writeln!(
                s,
                "    {} [shape=plaintext, label={}];",
                dot_quote(&dot_id(Key::Host)),
                dot_table(h, false, HOST_FILL)
            );
            // Bridges left of the host box: the cables from the nodes reach
            // them without crossing it.
            for k in 0..sc.bridges.len() {
                let _ = writeln!(
                    s,
                    "    {} -- {} [style=invis];",
                    dot_quote(&dot_id(Key::Bridge(k))),
                    dot_quote(&dot_id(Key::Host))
                );
            }
        }
        s.push_str("  }\n");
    }

    if let Some(i) = &sc.internet {
        s.push_str("  subgraph \"cluster_internet\" {\n");
        s.push_str(
            "    label=\"emulated internet\"; style=\"rounded,dashed\"; color=\"#4a8a4a\";\n",
        );
        let _ = writeln!(
            s,
            "    {} [shape=plaintext, label={}];",
            dot_quote(&dot_id(Key::Internet)),
            dot_table(i, true, INET_FILL)
        );
        s.push_str("  }\n");
    }

    for e in &sc.edges {
        let _ = writeln!(
            s,
            "  {} -- {} [label={}];",
            dot_anchor(&e.from),
            dot_anchor(&e.to),
            dot_quote(&e.label)
        );
    }
    s.push_str("}\n");
    s
}

// ---------------------------------------------------------------------------
// Mermaid

/// Text inside a quoted Mermaid label: entity codes for what Mermaid or the
/// HTML it makes would read as syntax; newlines become line breaks.
fn mm(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push_str("#96;"),
            '|' => out.push_str("#124;"),
            '\n' => out.push_str("<br/>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn mm_id(key: Key) -> String {
    match key {
        Key::Node(k) => format!("node{k}"),
        Key::Bridge(k) => format!("bridge{k}"),
        Key::Host => "hostns".to_string(),
        Key::Internet => "internetns".to_string(),
    }
}

fn mm_panel(p: &Panel, with_title: bool) -> String {
    let mut parts = Vec::new();
    if with_title {
        parts.push(format!("<b>{}</b>", mm(&p.title)));
        parts.extend(p.badges.iter().map(|b| format!("<i>{}</i>", mm(b))));
    }
    parts.extend(p.ifaces.iter().map(|i| mm(&if_line(i))));
    parts.extend(p.routes.iter().map(|r| format!("<i>{}</i>", mm(r))));
    parts.extend(p.nat.iter().map(|n| format!("NAT: {}", mm(n))));
    if parts.is_empty() {
        parts.push(mm(&p.title));
    }
    parts.join("<br/>")
}

fn mermaid(sc: &Scene) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "%% nslab graph of lab {} ({})", mm(&sc.lab), sc.mode());
    s.push_str("flowchart LR\n");
    for p in &sc.nodes {
        let _ = writeln!(s, "  {}[\"{}\"]", mm_id(p.key), mm_panel(p, true));
    }
    // The host is a subgraph holding its bridges and, when it has anything
    // else to show (cable ends, uplink, routes, NAT), a box for that.
    let host_box = sc.host.as_ref().filter(|h| h.has_rows());
    if let Some(h) = &sc.host {
        let _ = writeln!(s, "  subgraph hostgroup[\"{}\"]", mm(&h.title));
        for (k, b) in sc.bridges.iter().enumerate() {
            let lines: Vec<String> = b.lines().iter().map(|l| mm(l)).collect();
            let _ = writeln!(
                s,
                "    {}{{{{\"{}\"}}}}",
                mm_id(Key::Bridge(k)),
                lines.join("<br/>")
            );
        }
        if let Some(h) = host_box {
            let _ = writeln!(s, "    {}[\"{}\"]", mm_id(Key::Host), mm_panel(h, false));
            // Invisible links put the bridges left of the host box, so the
            // cables from the nodes reach them without crossing it.
            for k in 0..sc.bridges.len() {
                let _ = writeln!(s, "    {} ~~~ {}", mm_id(Key::Bridge(k)), mm_id(Key::Host));
            }
        }
        s.push_str("  end\n");
    }
    if let Some(i) = &sc.internet {
        let _ = writeln!(s, "  {}[\"{}\"]", mm_id(Key::Internet), mm_panel(i, true));
    }
    for e in &sc.edges {
        let _ = writeln!(
            s,
            "  {} ---|\"{}\"| {}",
            mm_id(e.from.key),
            mm(&e.label),
            mm_id(e.to.key)
        );
    }
    for (class, fill, stroke) in [
        ("ns", NODE_FILL, "#4a6f8a"),
        ("router", ROUTER_FILL, "#a0522d"),
        ("bridge", BRIDGE_FILL, "#a08a00"),
        ("host", HOST_FILL, "#666666"),
        ("inet", INET_FILL, "#4a8a4a"),
    ] {
        let _ = writeln!(s, "  classDef {class} fill:{fill},stroke:{stroke}");
    }
    let class_line = |s: &mut String, ids: Vec<String>, class: &str| {
        // One `class` line per 50 ids keeps lines short for big labs.
        for chunk in ids.chunks(50) {
            let _ = writeln!(s, "  class {} {class}", chunk.join(","));
        }
    };
    class_line(
        &mut s,
        sc.nodes
            .iter()
            .filter(|p| !p.router)
            .map(|p| mm_id(p.key))
            .collect(),
        "ns",
    );
    class_line(
        &mut s,
        sc.nodes
            .iter()
            .filter(|p| p.router)
            .map(|p| mm_id(p.key))
            .collect(),
        "router",
    );
    class_line(
        &mut s,
        (0..sc.bridges.len())
            .map(|k| mm_id(Key::Bridge(k)))
            .collect(),
        "bridge",
    );
    if host_box.is_some() {
        class_line(&mut s, vec![mm_id(Key::Host)], "host");
    }
    if sc.internet.is_some() {
        class_line(&mut s, vec![mm_id(Key::Internet)], "inet");
    }
    s
}

// ---------------------------------------------------------------------------
// SVG (layout-rs)

fn svg(sc: &Scene) -> Result<String, GraphError> {
    // layout-rs asserts its own invariants; a failed one must not take nslab down.
    std::panic::catch_unwind(|| svg_layout(sc)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "layout-rs failed".to_string());
        GraphError::Layout(msg)
    })
}

/// Font sizes (px) of the SVG: boxes, cable labels. They must differ: the
/// style sheet tells labels from box text by their class, named after the size.
const BOX_FONT: usize = 13;
const EDGE_FONT: usize = 12;

fn svg_layout(sc: &Scene) -> String {
    use layout::backends::svg::SVGWriter;
    use layout::core::base::Orientation;
    use layout::core::color::Color;
    use layout::core::geometry::Point;
    use layout::core::style::{LineStyleKind, StyleAttr};
    use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
    use layout::topo::layout::VisualGraph;

    const FONT: usize = BOX_FONT;
    let dir = Orientation::LeftToRight;
    let look = |fill: &str, rounded: usize| {
        StyleAttr::new(
            Color::fast("#333333"),
            1,
            Some(Color::fast(fill)),
            rounded,
            FONT,
        )
    };
    // layout-rs sizes a box by its text: font size per character and line.
    let size = |lines: &[String]| {
        let w = lines
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(1)
            .max(1);
        let h = lines.len().max(1);
        Point::new(
            w as f64 * FONT as f64 * 0.62 + 16.0,
            h as f64 * FONT as f64 * 1.25 + 14.0,
        )
    };
    let mut vg = VisualGraph::new(dir);
    let add = |vg: &mut VisualGraph, lines: Vec<String>, fill: &str, rounded: usize| {
        let text = lines.join("\n");
        vg.add_node(Element::create(
            ShapeKind::new_box(&text),
            look(fill, rounded),
            dir,
            size(&lines),
        ))
    };

    let nodes: Vec<_> = sc
        .nodes
        .iter()
        .map(|p| {
            add(
                &mut vg,
                p.lines(true),
                if p.router { ROUTER_FILL } else { NODE_FILL },
                0,
            )
        })
        .collect();
    let bridges: Vec<_> = sc
        .bridges
        .iter()
        .map(|b| add(&mut vg, b.lines(), BRIDGE_FILL, 12))
        .collect();
    let host = sc
        .host
        .as_ref()
        .map(|h| add(&mut vg, h.lines(true), HOST_FILL, 0));
    let internet = sc
        .internet
        .as_ref()
        .map(|i| add(&mut vg, i.lines(true), INET_FILL, 0));
    if nodes.is_empty() && host.is_none() && internet.is_none() {
        // layout-rs cannot lay out an empty graph.
        add(
            &mut vg,
            vec![format!("lab {}", sc.lab), "(no nodes)".to_string()],
            HOST_FILL,
            0,
        );
    }
    let handle = |k: Key| match k {
        Key::Node(i) => nodes.get(i).copied(),
        Key::Bridge(i) => bridges.get(i).copied(),
        Key::Host => host,
        Key::Internet => internet,
    };
    let cable = |label: &str, style: LineStyleKind| {
        let mut look = StyleAttr::simple();
        look.font_size = EDGE_FONT;
        look.line_width = 2;
        look.line_color = Color::fast("#333333");
        Arrow::new(
            LineEndKind::None,
            LineEndKind::None,
            style,
            label,
            &look,
            &None,
            &None,
        )
    };
    for e in &sc.edges {
        if let (Some(a), Some(b)) = (handle(e.from.key), handle(e.to.key)) {
            // Two blank lines under the label lift it above the line through
            // the middle of its connector.
            let label = format!("{}\n \n ", e.label);
            vg.add_edge(cable(&label, LineStyleKind::Normal), a, b);
        }
    }
    // Bridges live in the host: a dotted line, so they sit between nodes and host.
    if let Some(h) = host {
        for b in &bridges {
            vg.add_edge(cable("", LineStyleKind::Dashed), *b, h);
        }
    }

    let mut w = SVGWriter::new();
    // Without layout-rs's crossing optimizer (the second flag): with it, some
    // small valid labs trip its internal assertions (see the test
    // `layout_rs_assertion_case`) and 1000 nodes on a bridge take minutes
    // instead of under a second.
    vg.do_it(false, true, false, &mut w);

    // layout-rs sizes the canvas from a rough guess at text extents (far too
    // tall) and lists its font classes from a hash map (in random order): put
    // our own canvas size and style sheet in instead.
    let mut bounds: Option<(Point, Point)> = None;
    for h in vg.iter_nodes() {
        let (a, b) = vg.pos(h).bbox(false);
        bounds = Some(match bounds {
            None => (a, b),
            Some((lo, hi)) => (
                Point::new(lo.x.min(a.x), lo.y.min(a.y)),
                Point::new(hi.x.max(b.x), hi.y.max(b.y)),
            ),
        });
    }
    let (lo, hi) = bounds.unwrap_or((Point::new(0., 0.), Point::new(200., 40.)));
    let margin = 20.0;
    let (x0, y0) = ((lo.x - margin).floor(), (lo.y - margin).floor());
    let (wd, ht) = ((hi.x + margin).ceil() - x0, (hi.y + margin).ceil() - y0);
    let head = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{wd}\" height=\"{ht}\" viewBox=\"{x0} {y0} {wd} {ht}\">\n<title>{}</title>\n<rect x=\"{x0}\" y=\"{y0}\" width=\"{wd}\" height=\"{ht}\" fill=\"#ffffff\"/>\n",
        xml(&format!("nslab lab {} ({})", sc.lab, sc.mode()))
    );
    let style = format!(
        "<style>\n.a{BOX_FONT} {{ font-size: {BOX_FONT}px; font-family: Helvetica, Arial, sans-serif; }}\n.a{EDGE_FONT} {{ font-size: {EDGE_FONT}px; font-family: Helvetica, Arial, sans-serif; paint-order: stroke; stroke: #ffffff; stroke-width: 4px; stroke-linejoin: round; }}\n</style>\n"
    );
    let raw = w.finalize();
    let mut out = String::with_capacity(raw.len() + 512);
    let body = match (raw.find("<svg "), raw.find("<defs>")) {
        (Some(a), Some(b)) if a < b => {
            out.push_str(&raw[..a]);
            out.push_str(&head);
            &raw[b..]
        }
        _ => raw.as_str(),
    };
    match (body.find("<style>"), body.find("</style>\n")) {
        (Some(a), Some(b)) if a < b => {
            out.push_str(&body[..a]);
            out.push_str(&style);
            out.push_str(&body[b + "</style>\n".len()..]);
        }
        _ => out.push_str(body),
    }
    touch_up(&out)
}

/// Box titles in bold. And layout-rs draws cable labels before the cables, so
/// the lines would cross them out: move the labels (the text of class
/// `a{EDGE_FONT}`) to the end of the picture, on top of everything.
fn touch_up(svg: &str) -> String {
    const OPEN: &str = "<text dominant-baseline";
    const CLOSE: &str = "</text>";
    let class = format!("class=\"a{EDGE_FONT}\"");
    let Some(end) = svg.rfind("</svg>") else {
        return svg.to_string();
    };
    let (mut body, mut labels) = (String::with_capacity(svg.len()), String::new());
    let mut rest = &svg[..end];
    while let Some(a) = rest.find(OPEN) {
        let Some(len) = rest[a..].find(CLOSE) else {
            break;
        };
        let b = a + len + CLOSE.len();
        body.push_str(&rest[..a]);
        let text = &rest[a..b];
        if text.contains(&class) {
            labels.push_str(text);
            labels.push('\n');
        } else {
            // The first line of a box is its title.
            body.push_str(&text.replacen("<tspan ", "<tspan font-weight=\"bold\" ", 1));
        }
        rest = &rest[b..];
    }
    body.push_str(rest);
    body.push_str(&labels);
    body.push_str(&svg[end..]);
    if !body.ends_with('\n') {
        body.push('\n');
    }
    body
}
