use super::*;
use crate::topology::{Options, parse_str};
use proptest::prelude::*;

const OBJ1: &str = include_str!("../../examples/objective1-veth.yaml");
const OBJ2: &str = include_str!("../../examples/objective2-bridge.yaml");
const OBJ3: &str = include_str!("../../examples/objective3-nat.yaml");
const EXAMPLES: [(&str, &str); 3] = [
    ("objective1", OBJ1),
    ("objective2", OBJ2),
    ("objective3", OBJ3),
];

fn lab(text: &str, sandbox: bool) -> Lab {
    let opts = Options {
        prefix: if sandbox {
            "demo-".into()
        } else {
            String::new()
        },
        sandbox,
        check_programs: false,
    };
    parse_str(text, "t.yaml", &opts).unwrap_or_else(|e| panic!("{e}"))
}

fn mode(sandbox: bool) -> &'static str {
    if sandbox { "sandbox" } else { "host" }
}

/// Every piece of character data in an SVG document (titles, `<tspan>`s, ...).
fn svg_texts(svg: &str) -> Vec<String> {
    let doc =
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("SVG is not XML: {e}\n{svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Does any text line of the SVG start with `word` (a box title)?
fn has_title(texts: &[String], word: &str) -> bool {
    texts
        .iter()
        .any(|t| t == word || t.starts_with(&format!("{word} ")))
}

/// Render in every format and check what holds for any lab.
fn render_all(lab: &Lab) -> [String; 3] {
    let d = render(lab, Format::Dot).expect("dot");
    let m = render(lab, Format::Mermaid).expect("mermaid");
    let s = render(lab, Format::Svg).expect("svg");
    assert!(d.contains("graph ") && d.trim_end().ends_with('}'));
    assert!(m.lines().any(|l| l == "flowchart LR"));
    let texts = svg_texts(&s);
    for n in &lab.nodes {
        assert!(
            has_title(&texts, &clean(&n.name)),
            "node {} not in the SVG",
            n.name
        );
    }
    for b in &lab.bridges {
        assert!(
            has_title(&texts, &clean(&b.name)),
            "bridge {} not in the SVG",
            b.name
        );
    }
    if lab.sandbox {
        assert!(has_title(&texts, "internet"), "no internet in the SVG");
        assert!(has_title(&texts, "host"), "no host in the SVG");
    }
    [d, m, s]
}

// ---------------------------------------------------------------------------
// Snapshots: the tutorial's three objectives, host mode and sandbox.

#[test]
fn snapshots_dot_and_mermaid() {
    for (name, text) in EXAMPLES {
        for sandbox in [false, true] {
            let lab = lab(text, sandbox);
            let dot = render(&lab, Format::Dot).unwrap();
            insta::assert_snapshot!(format!("{name}_{}_dot", mode(sandbox)), dot);
            let mmd = render(&lab, Format::Mermaid).unwrap();
            insta::assert_snapshot!(format!("{name}_{}_mermaid", mode(sandbox)), mmd);
        }
    }
}

#[test]
fn output_is_deterministic() {
    for (_, text) in EXAMPLES {
        for sandbox in [false, true] {
            let l = lab(text, sandbox);
            for f in Format::ALL {
                let a = render(&l, f).unwrap();
                let b = render(&l.clone(), f).unwrap();
                assert_eq!(a, b, "{f} output differs between two runs");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// SVG

#[test]
fn svg_parses_and_names_every_node_bridge_and_the_internet() {
    for (name, text) in EXAMPLES {
        for sandbox in [false, true] {
            let l = lab(text, sandbox);
            let svg = render(&l, Format::Svg).unwrap();
            let texts = svg_texts(&svg);
            for n in &l.nodes {
                assert!(
                    has_title(&texts, &n.name),
                    "{name}: node {} missing",
                    n.name
                );
            }
            for b in &l.bridges {
                assert!(
                    has_title(&texts, &b.name),
                    "{name}: bridge {} missing",
                    b.name
                );
            }
            for link in &l.links {
                let label = format!("{} — {}", link.a.ifname, link.b.ifname);
                assert!(
                    texts.contains(&label),
                    "{name}: cable {label} missing in {texts:?}"
                );
            }
            if sandbox {
                assert!(
                    texts.iter().any(|t| t == "internet (demo-objective3-inet)"
                        || t.starts_with("internet (demo-"))
                );
                assert!(texts.iter().any(|t| t == "uplink — isp"));
                assert!(texts.iter().any(|t| t.contains("198.51.100.8/32")));
                assert!(texts.iter().any(|t| t.starts_with("host (demo-")));
            } else {
                assert!(!texts.iter().any(|t| t.starts_with("internet")));
            }
            if name == "objective3" {
                assert!(
                    texts
                        .iter()
                        .any(|t| t.contains("masquerade 192.168.0.0/16 ! -o bri0")),
                    "NAT missing"
                );
            }
        }
    }
}

#[test]
fn svg_canvas_fits_the_picture() {
    let svg = render(&lab(OBJ1, false), Format::Svg).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let root = doc.root_element();
    let h: f64 = root.attribute("height").unwrap().parse().unwrap();
    let w: f64 = root.attribute("width").unwrap().parse().unwrap();
    // Two boxes side by side: wide and flat, not layout-rs's text-length guess.
    assert!(h < 200.0 && w > h, "{w} x {h}");
}

// ---------------------------------------------------------------------------
// What the pictures say

#[test]
fn dot_shows_ports_clusters_and_labels() {
    let d = render(&lab(OBJ2, false), Format::Dot).unwrap();
    assert!(d.contains(r#"subgraph "cluster_host" {"#));
    assert!(d.contains(r#"label="host (this namespace)";"#));
    assert!(d.contains(r#""node0":"if0" -- "bridge0" [label="bveth — bbrveth"];"#));
    assert!(d.contains("default dev bveth"));
    assert!(d.contains("shape=box3d"));
    // No NAT and no host ends in objective 2: the host holds only the bridge.
    assert!(!d.contains(r#""host" [shape"#));

    let d = render(&lab(OBJ3, true), Format::Dot).unwrap();
    assert!(d.contains(r#"label="host (demo-objective3-host)";"#));
    assert!(d.contains("NAT: masquerade 192.168.0.0/16 ! -o bri0"));
    assert!(d.contains(r#""host":"if0" -- "internet":"if0" [label="uplink — isp"];"#));
    assert!(d.contains("<B>uplink</B> 203.0.113.2/24"));
    assert!(d.contains("<B>isp</B> 203.0.113.1/24"));
    assert!(d.contains("<B>lo</B> 198.51.100.8/32"));
}

#[test]
fn objective1_in_host_mode_has_no_host() {
    let l = lab(OBJ1, false);
    let [d, m, s] = render_all(&l);
    assert!(!d.contains("cluster_host"));
    assert!(!m.contains("subgraph"));
    assert!(!svg_texts(&s).iter().any(|t| t.starts_with("host")));
    assert!(d.contains(r#""node0":"if0" -- "node1":"if0" [label="veth-red — veth-green"];"#));
    assert!(m.contains(r#"node0 ---|"veth-red — veth-green"| node1"#));
}

const ROUTED: &str = r#"
name: my-lab.v2
bridges:
  br-lan: { addresses: [ 10.0.0.1/24, "fd00::1/64" ] }
nodes:
  r1.core_a:
    forward: true
    interfaces:
      eth-0: { addresses: [ 10.0.0.2/24, "fd00::2/64" ] }
      eth-1: { address: "2001:db8:fffe:ffff:ffff:ffff:ffff:1/64" }
    routes: [ "default via 10.0.0.1", "::/0 via fd00::1" ]
  end:
    interfaces:
      e0: { address: "2001:db8:fffe:ffff:ffff:ffff:ffff:2/64" }
  lonely: {}
host:
  interfaces:
    h-0: { address: 172.31.0.1/30 }
  routes: [ "172.16.0.0/12 via 172.31.0.2" ]
links:
  - [ r1.core_a:eth-0, br-lan:p-r1 ]
  - [ r1.core_a:eth-1, end:e0 ]
  - [ end:e1, host:h-0 ]
nat:
  - { source: 10.0.0.0/24, out: h-0 }
"#;

#[test]
fn routers_ipv6_host_ends_and_odd_names() {
    for sandbox in [false, true] {
        let l = lab(ROUTED, sandbox);
        let [d, m, s] = render_all(&l);
        // Routers are marked in every format.
        assert!(d.contains("router (forwarding on)"));
        assert!(m.contains("router (forwarding on)") && m.contains("class node0 router"));
        assert!(svg_texts(&s).iter().any(|t| t == "router (forwarding on)"));
        // IPv6 addresses and routes.
        assert!(d.contains("fd00::2/64") && d.contains("default via fd00::1"));
        assert!(m.contains("2001:db8:fffe:ffff:ffff:ffff:ffff:1/64"));
        // The host end of a cable is a row of the host box; host routes and NAT.
        assert!(
            d.contains(r#""node1":"if1" -- "host":"if0" [label="e1 — h-0"];"#),
            "{d}"
        );
        assert!(d.contains("172.16.0.0/12 via 172.31.0.2"));
        assert!(d.contains("NAT: masquerade 10.0.0.0/24 -o h-0"));
        // Names with `-`, `.`, `_` and Mermaid's keyword `end` never become ids.
        for line in m.lines().filter(|l| l.contains("---")) {
            let ids: Vec<&str> = line.split_whitespace().collect();
            assert!(ids[0].chars().all(|c| c.is_ascii_alphanumeric()), "{line}");
            assert!(
                ids[ids.len() - 1]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric()),
                "{line}"
            );
        }
        assert!(m.contains("node1[\"<b>end</b>"));
        // A node with no interfaces is still drawn.
        assert!(d.contains("<B>lonely</B>"));
    }
}

#[test]
fn a_lab_without_links_or_nodes() {
    let l = lab("name: solo\nnodes:\n  a: {}\n  b: {}\n", false);
    let [d, m, _] = render_all(&l);
    assert!(!d.contains(" -- "));
    assert!(!m.contains("---"));
    for sandbox in [false, true] {
        let l = lab("name: empty\nnodes: {}\n", sandbox);
        render_all(&l);
    }
}

#[test]
fn long_names() {
    let long = format!("n{}", "x-y.z_".repeat(10));
    let text = format!(
        "name: {long}\nnodes:\n  {long}:\n    interfaces: {{ abcdefghijklmno: {{ address: 10.1.1.1/24 }} }}\n  {long}2: {{ interfaces: {{ z: {{}} }} }}\nlinks:\n  - [ {long}:abcdefghijklmno, {long}2:z ]\n"
    );
    for sandbox in [false, true] {
        render_all(&lab(&text, sandbox));
    }
}

/// Interface names may hold almost any character; none may break the syntax.
#[test]
fn hostile_interface_names_are_escaped() {
    // Build the lab by hand: YAML would make these names awkward to write.
    let mut l = lab(OBJ1, true);
    let weird = "a\"b\\c<&>#|`\u{1}";
    l.nodes[0].interfaces[0].name = weird.into();
    l.links[0].a.ifname = weird.into();
    let [d, m, s] = render_all(&l);
    // DOT: the quoted edge label keeps its quotes and backslashes escaped.
    assert!(
        d.contains(r#"[label="a\"b\\c<&>#|`\\x01 — veth-green"];"#),
        "{d}"
    );
    // DOT: inside HTML-like labels, XML escapes.
    assert!(d.contains("<B>a&quot;b\\c&lt;&amp;&gt;#|`\\x01</B>"), "{d}");
    // Mermaid: no raw quote, `<`, `|` or backtick inside a label.
    assert!(
        m.contains("a#quot;b\\c#lt;#amp;#gt;#35;#124;#96;\\x01 192.168.1.1/24"),
        "{m}"
    );
    for line in m.lines() {
        if let Some((_, rest)) = line.split_once("[\"") {
            let inner = rest.trim_end_matches("\"]");
            assert!(!inner.contains('"') && !inner.contains('`'), "{line}");
        }
    }
    // SVG: still XML, the name shown with the control character spelled out.
    assert!(
        svg_texts(&s)
            .iter()
            .any(|t| t.starts_with("a\"b\\c<&>#|`\\x01"))
    );
}

// ---------------------------------------------------------------------------
// Big labs

fn star(n: usize) -> String {
    let mut t = String::from("name: star\nbridges:\n  br0: { address: 10.0.0.1/16 }\nnodes:\n");
    for i in 0..n {
        let _ = writeln!(
            t,
            "  n{i}:\n    forward: {}\n    interfaces: {{ e{i}: {{ address: 10.0.{}.{}/16 }} }}\n    routes: [ \"default via 10.0.0.1\" ]",
            i % 7 == 0,
            1 + i / 250,
            1 + i % 250
        );
    }
    t.push_str("links:\n");
    for i in 0..n {
        let _ = writeln!(t, "  - [ n{i}:e{i}, br0:p{i} ]");
    }
    t.push_str("nat:\n  - { source: 10.0.0.0/16, not_out: br0 }\n");
    t
}

#[test]
#[ignore = "timing: cargo test --release -- --ignored big_star"]
fn big_star() {
    let l = lab(&star(1000), true);
    for f in Format::ALL {
        let t = std::time::Instant::now();
        let out = render(&l, f).unwrap();
        eprintln!("{f}: {} bytes in {:?}", out.len(), t.elapsed());
    }
}

#[test]
fn fifty_nodes_on_one_bridge() {
    for sandbox in [false, true] {
        let l = lab(&star(50), sandbox);
        let [d, m, _] = render_all(&l);
        assert_eq!(d.matches(" -- \"bridge0\"").count(), 50);
        assert_eq!(m.matches("| bridge0").count(), 50);
    }
}

// ---------------------------------------------------------------------------
// Random labs: every format renders, the SVG layout never gives up.

#[derive(Debug, Clone)]
struct Spec {
    nodes: usize,
    bridges: usize,
    /// (node, node-or-bridge-or-host selector)
    links: Vec<(usize, usize)>,
    forward: Vec<bool>,
    v6: bool,
    sandbox: bool,
    nat: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        1usize..10,
        0usize..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(nodes, bridges, v6, sandbox, nat)| {
            (
                proptest::collection::vec((0..nodes, 0..nodes + bridges + 1), 0..nodes * 2),
                proptest::collection::vec(any::<bool>(), nodes),
            )
                .prop_map(move |(links, forward)| Spec {
                    nodes,
                    bridges,
                    links,
                    forward,
                    v6,
                    sandbox,
                    nat,
                })
        })
}

/// A valid topology file for the spec (links to oneself are dropped; every
/// cable end gets its own interface).
fn spec_text(s: &Spec) -> String {
    let mut ifaces: Vec<Vec<String>> = vec![Vec::new(); s.nodes];
    let mut links = Vec::new();
    let mut host_ifs = Vec::new();
    for (k, &(a, b)) in s.links.iter().enumerate() {
        if a == b {
            continue;
        }
        let ia = format!("l{k}a");
        ifaces[a].push(ia.clone());
        let other = if b < s.nodes {
            let ib = format!("l{k}b");
            ifaces[b].push(ib.clone());
            format!("n-{b}.x:{ib}")
        } else if b < s.nodes + s.bridges {
            format!("br{}:p{k}", b - s.nodes)
        } else {
            host_ifs.push(format!("h{k}"));
            format!("host:h{k}")
        };
        links.push(format!("  - [ n-{a}.x:{ia}, {other} ]"));
    }
    let mut t = String::from("name: rand\n");
    if s.bridges > 0 {
        t.push_str("bridges:\n");
        for b in 0..s.bridges {
            let _ = writeln!(t, "  br{b}: {{ address: 10.{b}.0.1/24 }}");
        }
    }
    t.push_str("nodes:\n");
    for (n, (names, forward)) in ifaces.iter().zip(&s.forward).enumerate() {
        let _ = writeln!(t, "  n-{n}.x:\n    forward: {forward}\n    interfaces:");
        if names.is_empty() {
            t.push_str("      {}\n");
        }
        for (j, i) in names.iter().enumerate() {
            if s.v6 {
                let _ = writeln!(t, "      {i}: {{ address: \"fd{n:02x}::{:x}/64\" }}", j + 1);
            } else {
                let _ = writeln!(t, "      {i}: {{ address: 10.{}.{}.{}/24 }}", 100 + n, j, 1);
            }
        }
    }
    if !links.is_empty() {
        t.push_str("links:\n");
        t.push_str(&links.join("\n"));
        t.push('\n');
    }
    if s.nat {
        let out = s
            .bridges
            .checked_sub(1)
            .map(|b| format!("br{b}"))
            .unwrap_or("x0".into());
        let _ = writeln!(t, "nat:\n  - {{ source: 10.0.0.0/8, not_out: {out} }}");
    }
    t
}

proptest! {
    // GRAPH_CASES=5000 for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("GRAPH_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200),
        ..ProptestConfig::default()
    })]
    #[test]
    fn random_labs_render_in_every_format(s in spec()) {
        let text = spec_text(&s);
        let opts = Options { prefix: "r-".into(), sandbox: s.sandbox,  check_programs: false,};
        let l = parse_str(&text, "rand.yaml", &opts).unwrap_or_else(|e| panic!("{e}\n{text}"));
        render_all(&l);
    }
}

// ---------------------------------------------------------------------------
// Format names

#[test]
fn format_names() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>().unwrap(), f);
        assert_eq!(f.to_string(), f.name());
    }
    assert_eq!("MMD".parse::<Format>().unwrap(), Format::Mermaid);
    assert_eq!(" Svg ".parse::<Format>().unwrap(), Format::Svg);
    let e = "png".parse::<Format>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown graph format \"png\"; choose one of: dot, mermaid, svg"
    );
}

// ---------------------------------------------------------------------------
// Graphviz, when it happens to be installed (it is not required).

#[test]
fn graphviz_accepts_the_dot_when_installed() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if Command::new("dot").arg("-V").output().is_err() {
        eprintln!("graphviz is not installed; skipped");
        return;
    }
    let mut labs: Vec<Lab> = Vec::new();
    for (_, t) in EXAMPLES {
        labs.push(lab(t, false));
        labs.push(lab(t, true));
    }
    labs.push(lab(ROUTED, true));
    let mut weird = lab(OBJ1, false);
    weird.nodes[0].interfaces[0].name = "a\"b\\c<&>#|`".into();
    weird.links[0].a.ifname = "a\"b\\c<&>#|`".into();
    labs.push(weird);
    for l in &labs {
        let dot = render(l, Format::Dot).unwrap();
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "dot said: {err}\n{dot}"
        );
        let svg = String::from_utf8(out.stdout).unwrap();
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        roxmltree::Document::parse_with_options(&svg, opts).expect("graphviz's SVG");
    }
}

#[test]
fn layout_rs_assertion_case() {
    let s = Spec {
        nodes: 3,
        bridges: 2,
        links: vec![(0, 4), (2, 5), (0, 5), (1, 4), (1, 2)],
        forward: vec![false; 3],
        v6: true,
        sandbox: false,
        nat: true,
    };
    let text = spec_text(&s);
    eprintln!("{text}");
    let l = parse_str(&text, "rand.yaml", &Options::default()).unwrap();
    render_all(&l);
}

#[test]
#[ignore = "writes pictures to $GRAPH_OUT for a person to look at"]
fn write_pictures() {
    let dir = std::env::var("GRAPH_OUT").unwrap_or("/tmp".into());
    let mut labs: Vec<(String, Lab)> = Vec::new();
    for (n, t) in EXAMPLES {
        labs.push((format!("{n}-host"), lab(t, false)));
        labs.push((format!("{n}-sandbox"), lab(t, true)));
    }
    labs.push(("routed".into(), lab(ROUTED, true)));
    labs.push(("star20".into(), lab(&star(20), true)));
    let mut weird = lab(OBJ1, true);
    weird.nodes[0].interfaces[0].name = "a\"b\\c<&>#|`;end".into();
    weird.links[0].a.ifname = "a\"b\\c<&>#|`;end".into();
    labs.push(("weird".into(), weird));
    for (n, l) in labs {
        for f in Format::ALL {
            std::fs::write(
                format!("{dir}/{n}.{}", f.extension()),
                render(&l, f).unwrap(),
            )
            .unwrap();
        }
    }
}

#[test]
fn html_label_text_escapes_and_breaks_lines() {
    assert_eq!(
        super::dot::html("a'b\"<&>\r\nc"),
        "a&apos;b&quot;&lt;&amp;&gt;<BR/>c"
    );
    assert_eq!(super::dot::html(""), "");
}

const SHAPED: &str = "name: g
bridges: { br0: {} }
nodes:
  a: { interfaces: { ea: { address: 10.74.0.1/24 } } }
  b: { interfaces: { eb: { address: 10.74.0.2/24 } } }
  c: { interfaces: { ec: { address: 10.74.0.3/24 } } }
links:
  - { ends: [a:ea, br0:pa], rate: 10mbit, loss: 1% }
  - { ends: [b:eb, br0:pb], egress: { \"b:eb\": { rate: 5mbit } }, up: false }
  - [c:ec, br0:pc]
";

#[test]
fn shaped_and_down_cables_from_the_file() {
    let l = lab(SHAPED, false);
    let dot = render(&l, Format::Dot).unwrap();
    assert!(
        dot.contains("[label=\"ea — pa; 10mbit 1% loss each way\"];"),
        "{dot}"
    );
    assert!(
        dot.contains("[label=\"eb — pb; eb: 5mbit; down\", style=dashed];"),
        "{dot}"
    );
    assert!(dot.contains("[label=\"ec — pc\"];"), "{dot}");
    let mmd = render(&l, Format::Mermaid).unwrap();
    assert!(
        mmd.contains("node1 -.-|\"eb — pb; eb: 5mbit; down\"| bridge0"),
        "{mmd}"
    );
    assert!(
        mmd.contains("node0 ---|\"ea — pa; 10mbit 1% loss each way\"|"),
        "{mmd}"
    );
    let svg = render(&l, Format::Svg).unwrap();
    let texts = svg_texts(&svg);
    assert!(
        texts.iter().any(|t| t.contains("10mbit 1% loss")),
        "{texts:?}"
    );
}

#[test]
fn a_running_labs_runtime_state_is_drawn() {
    let l = lab(SHAPED, false);
    let mut rt = crate::runtime::State::default();
    // `nslab shape c:ec --loss 20%` and `nslab link c:ec down`; `nslab shape
    // a:ea` overrides the file's shaping of that end.
    let req = |rate: Option<&str>, loss: Option<&str>| crate::runtime::shape::Request {
        rate: rate.map(Into::into),
        loss: loss.map(Into::into),
        ..Default::default()
    };
    rt.shapes.push(
        crate::runtime::shape::Shaping::parse("c:ec", "c", "ec", &req(None, Some("20%"))).unwrap(),
    );
    rt.shapes.push(
        crate::runtime::shape::Shaping::parse("a:ea", "a", "ea", &req(Some("1mbit"), None))
            .unwrap(),
    );
    rt.links_down.push(crate::runtime::link::LinkDown {
        endpoint: "c:ec".into(),
        place: Place::Node("c".into()),
        interface: "ec".into(),
    });
    let dot = render_with(&l, Format::Dot, &Overlay::of_running(&l, &rt)).unwrap();
    assert!(
        dot.contains("[label=\"ec — pc; ec: 20% loss; down\", style=dashed];"),
        "{dot}"
    );
    assert!(
        dot.contains("[label=\"ea — pa; ea: 1mbit; pa: 10mbit 1% loss\"];"),
        "{dot}"
    );
    // Without runtime state, the file's picture.
    let plain = render_with(
        &l,
        Format::Dot,
        &Overlay::of_running(&l, &Default::default()),
    );
    assert_eq!(plain.unwrap(), render(&l, Format::Dot).unwrap());
}

/// A ring of four STP bridges, one host on each (Mininet names).
const RING: &str = "name: ring
bridges: { s1: { stp: true }, s2: { stp: true }, s3: { stp: true }, s4: { stp: true } }
nodes:
  h1: { interfaces: { h1-eth0: { address: 10.0.0.1/8 } } }
  h2: { interfaces: { h2-eth0: { address: 10.0.0.2/8 } } }
  h3: { interfaces: { h3-eth0: { address: 10.0.0.3/8 } } }
  h4: { interfaces: { h4-eth0: { address: 10.0.0.4/8 } } }
links:
  - [ h1:h1-eth0, s1:s1-eth1 ]
  - [ h2:h2-eth0, s2:s2-eth1 ]
  - [ h3:h3-eth0, s3:s3-eth1 ]
  - [ h4:h4-eth0, s4:s4-eth1 ]
  - [ s1:s1-eth2, s2:s2-eth2 ]
  - [ s2:s2-eth3, s3:s3-eth2 ]
  - [ s3:s3-eth3, s4:s4-eth2 ]
  - [ s4:s4-eth3, s1:s1-eth3 ]
";

#[test]
fn cables_between_bridges_are_drawn_bridge_to_bridge() {
    let l = lab(RING, true);
    let [d, m, s] = render_all(&l);
    assert!(
        d.contains(r#""bridge0" -- "bridge1" [label="s1-eth2 — s2-eth2"]"#),
        "{d}"
    );
    assert!(
        d.contains(r#""bridge3" -- "bridge0" [label="s4-eth3 — s1-eth3"]"#),
        "{d}"
    );
    assert!(d.contains("bridge (switch), STP"), "{d}");
    assert!(
        m.contains(r#"bridge1 ---|"s2-eth3 — s3-eth2"| bridge2"#),
        "{m}"
    );
    let texts = svg_texts(&s);
    for label in [
        "s1-eth2 — s2-eth2",
        "s4-eth3 — s1-eth3",
        "bridge (switch), STP",
    ] {
        assert!(texts.iter().any(|t| t == label), "{label} not in {texts:?}");
    }
    insta::assert_snapshot!("ring_stp_sandbox_dot", d);
}
