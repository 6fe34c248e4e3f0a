//! The Mermaid (`flowchart LR`) rendering of a `Scene`.

use super::{
    BRIDGE_FILL, HOST_FILL, INET_FILL, Key, NODE_FILL, Panel, ROUTER_FILL, Scene, if_line,
};
use std::fmt::Write as _;

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

pub(super) fn mermaid(sc: &Scene) -> String {
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
            "  {} {}|\"{}\"| {}",
            mm_id(e.from.key),
            if e.down { "-.-" } else { "---" },
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
