//! The DOT rendering of a `Scene`, for Graphviz.

use super::{Anchor, BRIDGE_FILL, HOST_FILL, INET_FILL, Key, NODE_FILL, Panel, ROUTER_FILL, Scene};
use crate::util::xml;
use std::fmt::Write as _;

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
/// line break as `<BR/>`.
pub(super) fn html(s: &str) -> String {
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

pub(super) fn dot(sc: &Scene) -> String {
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
            "  {} -- {} [label={}{}];",
            dot_anchor(&e.from),
            dot_anchor(&e.to),
            dot_quote(&e.label),
            if e.down { ", style=dashed" } else { "" }
        );
    }
    s.push_str("}\n");
    s
}
