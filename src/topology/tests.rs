use super::*;

fn parse(text: &str) -> Result<Lab, TopologyError> {
    parse_str(text, "t.yaml", &Options::default())
}

fn sandboxed(text: &str) -> Result<Lab, TopologyError> {
    parse_str(
        text,
        "t.yaml",
        &Options {
            prefix: "p-".into(),
            sandbox: true,
            check_programs: false,
        },
    )
}

/// The one issue of a bad file: (line, field, message).
fn issue(text: &str) -> (u64, String, String) {
    let e = parse(text).expect_err("the file should be refused");
    assert!(!e.issues.is_empty());
    let i = &e.issues[0];
    (i.line, i.field.clone(), i.message.clone())
}

const OBJ1: &str = include_str!("../../examples/objective1-veth.yaml");
const OBJ2: &str = include_str!("../../examples/objective2-bridge.yaml");

#[test]
fn objective1_builds_the_tutorials_model() {
    let lab = parse(OBJ1).unwrap();
    assert_eq!(lab.name, "objective1");
    assert_eq!(lab.nodes.len(), 2);
    let red = lab.node("red").unwrap();
    assert_eq!(red.ns, "red");
    assert_eq!(red.interfaces[0].name, "veth-red");
    assert_eq!(red.interfaces[0].addresses[0].to_string(), "192.168.1.1/24");
    assert_eq!(lab.links.len(), 1);
    assert_eq!(lab.links[0].a.to_string(), "red:veth-red");
    assert!(
        !lab.ipv6_link_local,
        "an IPv4-only lab gets no link-local addresses"
    );
}

#[test]
fn objective2_has_bridge_ports_and_onlink_defaults() {
    let lab = parse(OBJ2).unwrap();
    let b = lab.bridge("bri0").unwrap();
    assert_eq!(b.ports, ["bbrveth", "wbrveth", "gbrveth"]);
    assert_eq!(b.addresses[0].to_string(), "192.168.0.1/16");
    assert_eq!(b.mac[0], 0x02, "locally administered, unicast");
    let green = lab.node("green").unwrap();
    assert_eq!(green.routes[0].to_string(), "default dev gveth");
    assert!(green.routes[0].via.is_none());
    let host_ifs: Vec<&str> = lab
        .host
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(host_ifs, ["bbrveth", "wbrveth", "gbrveth"]);
}

#[test]
fn prefix_and_sandbox_shape_names() {
    let lab = sandboxed(OBJ2).unwrap();
    assert_eq!(lab.name, "p-objective2");
    assert_eq!(lab.node("black").unwrap().ns, "p-black");
    // By namespace: the node's, not its name's, nor the host's.
    assert_eq!(lab.node_in("p-black").unwrap().name, "black");
    assert!(lab.node_in("black").is_none());
    assert!(lab.node_in("p-objective2-host").is_none());
    assert_eq!(lab.host_ns().as_deref(), Some("p-objective2-host"));
    assert_eq!(lab.internet_ns().as_deref(), Some("p-objective2-inet"));
    assert_eq!(
        lab.namespaces(),
        [
            "p-objective2-host",
            "p-objective2-inet",
            "p-black",
            "p-white",
            "p-green"
        ]
    );
    // The bridge MAC is stable for a lab name, and differs between copies.
    let again = sandboxed(OBJ2).unwrap();
    assert_eq!(lab.bridges[0].mac, again.bridges[0].mac);
    assert_ne!(lab.bridges[0].mac, parse(OBJ2).unwrap().bridges[0].mac);
}

#[test]
fn ipv6_labs_keep_link_local() {
    let t = "name: v6\nnodes:\n  a: { interfaces: { e: { address: fd00:1::1/64 } } }\n  b: { interfaces: { e: { address: fd00:1::2/64 } } }\nlinks: [[a:e, b:e]]\n";
    let lab = parse(t).unwrap();
    assert!(lab.uses_ipv6());
    assert!(lab.ipv6_link_local);
}

#[test]
fn routes_in_iproute2_words() {
    for (text, shown) in [
        ("default dev bveth", "default dev bveth"),
        ("192.168.0.0/16 dev gveth", "192.168.0.0/16 dev gveth"),
        (
            "10.1.2.3/8 via 192.168.1.254",
            "10.0.0.0/8 via 192.168.1.254",
        ),
        ("default via 192.168.0.1", "default via 192.168.0.1"),
        (
            "default via 10.0.0.1 dev e onlink",
            "default via 10.0.0.1 dev e onlink",
        ),
        ("default via fd00::1", "default via fd00::1"),
        ("10.0.0.5 dev e metric 7", "10.0.0.5/32 dev e metric 7"),
    ] {
        assert_eq!(parse_route(text).unwrap().to_string(), shown, "{text}");
    }
    for bad in [
        "",
        "default",
        "default via",
        "default via x",
        "1.2.3.4/99 dev e",
        "default dev e onlink",
        "default via 10.0.0.1 onlink",
        "10.0.0.0/8 via fd00::1",
        "default dev e bogus",
    ] {
        assert!(parse_route(bad).is_err(), "{bad:?} should be refused");
    }
}

// The mistakes of the core issue, each with line, field and a clear message.

#[test]
fn unknown_key() {
    let (line, field, msg) = issue("name: x\nnodes:\n  red:\n    interfaces: {}\n    rutes: []\n");
    assert_eq!(line, 5);
    assert_eq!(field, "nodes.red.rutes");
    assert!(msg.contains("unknown field `rutes`"), "{msg}");
}

#[test]
fn link_to_unknown_node() {
    let (line, field, msg) = issue("name: x\nnodes:\n  red: {}\nlinks:\n  - [ red:a, pink:b ]\n");
    assert_eq!((line, field.as_str()), (5, "links[0][1]"));
    assert!(msg.contains("\"pink\" is not a node or bridge"), "{msg}");
}

#[test]
fn duplicate_names() {
    let (line, _, msg) = issue("name: x\nnodes:\n  red: {}\n  red: {}\n");
    assert_eq!(line, 4);
    assert!(msg.contains("duplicate mapping key"), "{msg}");
    let (line, field, msg) = issue("name: x\nnodes:\n  red: {}\nbridges:\n  red: {}\n");
    assert_eq!((line, field.as_str()), (5, "bridges.red"));
    assert!(msg.contains("already the name of a node"), "{msg}");
}

#[test]
fn interface_name_too_long() {
    let (line, field, msg) = issue(
        "name: x\nnodes:\n  red:\n    interfaces:\n      a-very-long-name-here: {}\n  green: {}\nlinks:\n  - [ red:a-very-long-name-here, green:e ]\n",
    );
    assert_eq!(
        (line, field.as_str()),
        (5, "nodes.red.interfaces.a-very-long-name-here")
    );
    assert!(msg.contains("at most 15"), "{msg}");
}

#[test]
fn namespace_names_are_file_names() {
    let (line, field, msg) = issue("name: x\nnodes:\n  \"a/b\": {}\n");
    assert_eq!((line, field.as_str()), (3, "nodes.a/b"));
    assert!(msg.contains("`/`"), "{msg}");
    let (_, _, msg) = issue("name: x\nnodes:\n  \"..\": {}\n");
    assert!(msg.contains("`..`"), "{msg}");
    let e = parse_str(
        "name: x\nnodes: {}\n",
        "t.yaml",
        &Options {
            prefix: "../".into(),
            sandbox: false,
            check_programs: false,
        },
    )
    .unwrap_err();
    assert_eq!(e.issues[0].field, "--prefix");
}

#[test]
fn invalid_cidr() {
    let (line, field, msg) = issue(
        "name: x\nnodes:\n  red:\n    interfaces:\n      e: { address: 192.168.1.300/24 }\n  g: {}\nlinks: [[red:e, g:e]]\n",
    );
    assert_eq!(
        (line, field.as_str()),
        (5, "nodes.red.interfaces.e.address")
    );
    assert!(msg.contains("not an address in CIDR form"), "{msg}");
    let (_, _, msg) = issue(
        "name: x\nnodes:\n  red:\n    interfaces:\n      e: { address: 192.168.1.3 }\n  g: {}\nlinks: [[red:e, g:e]]\n",
    );
    assert!(msg.contains("needs a prefix length"), "{msg}");
}

#[test]
fn unreachable_gateway() {
    let (line, field, msg) = issue(
        "name: x\nnodes:\n  red:\n    interfaces:\n      e: { address: 192.168.3.1/24 }\n    routes: [ \"default via 192.168.0.1\" ]\n  g: {}\nlinks: [[red:e, g:e]]\n",
    );
    assert_eq!((line, field.as_str()), (6, "nodes.red.routes[0]"));
    assert!(
        msg.contains("gateway 192.168.0.1 is not reachable"),
        "{msg}"
    );
    // The tutorial's fix: an on-link route covering the gateway first.
    let ok = "name: x\nnodes:\n  red:\n    interfaces:\n      e: { address: 192.168.3.1/24 }\n    routes: [ \"192.168.0.0/16 dev e\", \"default via 192.168.0.1\" ]\n  g: {}\nlinks: [[red:e, g:e]]\n";
    assert!(parse(ok).is_ok());
}

#[test]
fn one_address_twice() {
    let (line, field, msg) = issue(
        "name: x\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { e: { address: 10.0.0.1/24 } } }\nlinks: [[a:e, b:e]]\n",
    );
    assert_eq!((line, field.as_str()), (4, "nodes.b.interfaces.e"));
    assert!(msg.contains("already on a:e"), "{msg}");
}

#[test]
fn one_bridge_port_twice() {
    let (line, field, msg) = issue(
        "name: x\nbridges: { br: {} }\nnodes:\n  a: {}\n  b: {}\nlinks:\n  - [ a:e, br:p1 ]\n  - [ b:e, br:p1 ]\n",
    );
    assert_eq!((line, field.as_str()), (8, "links[1][1]"));
    assert!(
        msg.contains("bridge port br:p1 is used twice (first at line 7)"),
        "{msg}"
    );
}

#[test]
fn empty_file() {
    for t in ["", "\n\n", "# only a comment\n"] {
        let (line, _, msg) = issue(t);
        assert_eq!(line, 1);
        assert!(msg.contains("the file is empty"), "{msg}");
    }
}

#[test]
fn more_mistakes() {
    let cases: &[(&str, &str)] = &[
        ("nodes: {}\n", "every lab needs a `name:`"),
        ("name: x\nnodes:\n  red: { forward: yes }\n", "bool"),
        ("name: x\nnodes:\n  host: {}\n", "reserved word"),
        (
            "name: x\nnodes:\n  a: { interfaces: { e: {} } }\n",
            "not the end of any link",
        ),
        (
            "name: x\nnodes:\n  a: {}\n  b: {}\nlinks: [[a:e, b:e, b:f]]\n",
            "two ends",
        ),
        (
            "name: x\nnodes:\n  a: { routes: [\"default dev nope\"] }\n",
            "route device \"nope\" is not an interface",
        ),
        (
            "name: x\nnodes:\n  a: { routes: [\"to the moon\"] }\n",
            "not `default` or a prefix",
        ),
        (
            "name: x\nnodes:\n  a: {}\nlinks: [[a:e, a:e]]\n",
            "used by two links",
        ),
        (
            "name: x\nnodes:\n  a: {}\nlinks: [[a-e, a:f]]\n",
            "not an endpoint",
        ),
        (
            "name: x\nnodes:\n  a: { interfaces: { e: { mtu: 20 } } }\n  b: {}\nlinks: [[a:e, b:e]]\n",
            "out of range",
        ),
        (
            "name: x\nnat: [ { source: 10.0.0.0/8 } ]\n",
            "exactly one of `not_out",
        ),
        (
            "name: x\nnodes:\n  a: { interfaces: { lo: {} } }\n",
            "loopback",
        ),
        ("name: [x\n", "expected"),
    ];
    for (t, want) in cases {
        let e = parse(t).expect_err(t);
        let all = e.to_string();
        assert!(all.contains(want), "{t:?}: expected {want:?} in:\n{all}");
        assert!(
            e.issues.iter().all(|i| i.line >= 1),
            "{t:?}: every issue has a line: {all}"
        );
    }
}

#[test]
fn sandbox_reserves_the_internet_prefixes() {
    let t = "name: x\nnodes:\n  a: { interfaces: { e: { address: 203.0.113.9/24 } } }\n  b: {}\nlinks: [[a:e, b:e]]\n";
    assert!(parse(t).is_ok());
    let e = sandboxed(t).unwrap_err();
    assert!(e.to_string().contains("emulated internet"));
}

#[test]
fn errors_name_file_line_and_field() {
    let e = parse("name: x\nnodes:\n  red:\n    rutes: []\n").unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("t.yaml:4:5: nodes.red.rutes: unknown field `rutes`"),
        "{s}"
    );
    assert!(s.contains("4 |     rutes: []"), "shows the line: {s}");
}

#[test]
fn field_paths_follow_indentation() {
    let t = "name: x\nnodes:\n  red:\n    interfaces:\n      e: {}\n";
    assert_eq!(field_path_at(t, 5), "nodes.red.interfaces.e");
    assert_eq!(field_path_at(t, 1), "name");
    assert_eq!(field_path_at(t, 99), "");
}

#[test]
fn expectations_parse_and_check_names() {
    let base = "name: x\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { e: { address: 10.0.0.2/24 } } }\nlinks: [[a:e, b:e]]\n";
    let ok = format!(
        "{base}expect:\n  - reach: a -> b\n  - no_reach: a -> 10.9.9.9\n  - tcp: a -> b:80\n  - http: a -> http://b:80/\n    status: 404\n"
    );
    let lab = parse(&ok).unwrap();
    assert_eq!(lab.expect.len(), 4);
    assert!(matches!(
        &lab.expect[1].kind,
        ExpectKind::Reach { reach: false, .. }
    ));
    assert!(matches!(
        &lab.expect[3].kind,
        ExpectKind::Http { status: 404, .. }
    ));
    let bad = format!("{base}expect:\n  - reach: a -> c\n");
    assert!(
        parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("\"c\" is not a node")
    );
    // `internet` is allowed: such expectations are skipped in host mode.
    assert!(parse(&format!("{base}expect:\n  - reach: internet -> a\n")).is_ok());
}

#[test]
fn reach_size_is_parsed_and_checked_against_the_family() {
    let base = "name: x\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { e: { address: 10.0.0.2/24 } } }\nlinks: [[a:e, b:e]]\n";
    let lab = parse(&format!(
        "{base}expect:\n  - reach: a -> b\n    size: 8000\n  - no_reach: a -> b\n    size: 0\n  - reach: a -> b\n"
    ))
    .unwrap();
    assert!(matches!(
        &lab.expect[0].kind,
        ExpectKind::Reach {
            size: Some(8000),
            reach: true,
            ..
        }
    ));
    assert_eq!(lab.expect[0].name, "reach: a -> b (size 8000)");
    assert!(matches!(
        &lab.expect[1].kind,
        ExpectKind::Reach { size: Some(0), .. }
    ));
    assert!(matches!(
        &lab.expect[2].kind,
        ExpectKind::Reach { size: None, .. }
    ));
    assert_eq!(lab.expect[2].name, "reach: a -> b");
    // Out of range, negative, fractional, quoted, text: each names the expectation.
    for (v, words) in [
        ("65508", "size 65508 is out of range"),
        ("-1", "size -1 is out of range"),
        ("1.5", "size 1.5 is not a whole number"),
        ("\"8000\"", "size \"8000\" is not a number"),
        ("big", "size \"big\" is not a number"),
        ("true", "size true is not a number"),
    ] {
        let (line, field, msg) = issue(&format!(
            "{base}expect:\n  - reach: a -> b\n  - reach: b -> a\n    size: {v}\n"
        ));
        assert_eq!((line, field.as_str()), (9, "expect[1].size"), "{v}: {msg}");
        assert!(msg.starts_with("reach: b -> a: "), "{v}: {msg}");
        assert!(
            msg.contains(words) && msg.contains("0 to 65507"),
            "{v}: {msg}"
        );
    }
    // The IPv6 limit is the IPv6 one.
    let v6 = "name: x\nnodes:\n  a: { interfaces: { e: { address: fd00::1/64 } } }\n  b: { interfaces: { e: { address: fd00::2/64 } } }\nlinks: [[a:e, b:e]]\n";
    assert!(
        parse(&format!(
            "{v6}expect:\n  - reach: a -> b\n    size: 65527\n"
        ))
        .is_ok()
    );
    let (_, _, msg) = issue(&format!(
        "{v6}expect:\n  - reach: a -> b\n    size: 65528\n"
    ));
    assert!(msg.contains("0 to 65527 for IPv6"), "{msg}");
    // Only pings have a size.
    let (_, field, msg) = issue(&format!(
        "{base}expect:\n  - tcp: a -> b:80\n    size: 100\n"
    ));
    assert_eq!(field, "expect[0].size");
    assert!(
        msg.contains("`size` applies to `reach` and `no_reach`"),
        "{msg}"
    );
}

mod hardening {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Arbitrary text never panics the parser.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,400}") {
            let _ = parse(&s).map_err(|e| e.to_string());
        }

        /// YAML-shaped text built from the file's own words never panics either.
        #[test]
        fn yaml_shaped_text_never_panics(lines in proptest::collection::vec(
            (0usize..4, prop::sample::select(vec!["name", "nodes", "bridges", "links", "nat", "expect", "interfaces", "routes", "address", "addresses", "forward", "run", "red", "bri0", "- [a:e, b:e]", "- reach: a -> b", "10.0.0.1/24", "default via 10.0.0.1", "{", "[", "&x", "*x", "<<: *x", "~", "yes"]),
             prop::sample::select(vec![":", ": ", ": {}", ": []", ": x", "", ": 1", ": [a:e]", ": { address: 1.2.3.4/8 }"])), 0..30)) {
            let text: String = lines.iter().map(|(ind, k, v)| format!("{}{k}{v}\n", "  ".repeat(*ind))).collect();
            let _ = parse(&text).map_err(|e| e.to_string());
            let _ = sandboxed(&text).map_err(|e| e.to_string());
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            "name: x\nnodes: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse(&deep).is_err());
        let deep_map = format!(
            "name: x\nnodes:\n{}",
            (0..5000)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>()
        );
        assert!(parse(&deep_map).is_err());
    }

    #[test]
    fn alias_bombs_are_refused() {
        // "Billion laughs": each level refers to the previous one ten times.
        let mut t = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            t.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        t.push_str("name: x\n");
        let t0 = std::time::Instant::now();
        assert!(parse(&t).is_err());
        assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn huge_files_are_refused_before_parsing() {
        let big = "#".repeat(MAX_FILE_BYTES + 1);
        let e = parse(&big).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }
}

#[test]
fn only_regular_files_are_read_and_at_most_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lab.yaml");
    std::fs::write(&p, "name: x\n").unwrap();
    assert_eq!(read_text(&p).unwrap(), "name: x\n");
    // A sparse file one byte over the limit: refused before reading.
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(MAX_FILE_BYTES as u64 + 1).unwrap();
    let e = read_text(&p).unwrap_err();
    assert!(e.contains("larger than"), "{e}");
    // Exactly the limit is fine (it then fails as YAML, not here).
    f.set_len(MAX_FILE_BYTES as u64).unwrap();
    assert_eq!(read_text(&p).unwrap().len(), MAX_FILE_BYTES);
    let e = read_text(dir.path()).unwrap_err();
    assert!(e.contains("directory"), "{e}");
    let e = read_text(std::path::Path::new("/dev/zero")).unwrap_err();
    assert!(e.contains("character device"), "{e}");
    let e = read_text(&dir.path().join("missing.yaml")).unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
}

/// Two nodes on one cable; `red_if` is the body of red's interface (line 5).
fn two_nodes(red_if: &str) -> String {
    format!(
        "name: x\nnodes:\n  red:\n    interfaces:\n      e0: {{ {red_if} }}\n  green:\n    interfaces:\n      e1: {{ address: 10.0.0.2/24, mac: \"02:00:00:00:00:02\" }}\nlinks:\n  - [ red:e0, green:e1 ]\n"
    )
}

#[test]
fn addresses_an_interface_cannot_have() {
    for (addr, kind) in [
        ("ff02::5/64", "multicast"),
        ("::1/128", "loopback"),
        ("0.0.0.0/0", "unspecified"),
        ("::/0", "unspecified"),
        ("224.0.0.5/24", "multicast"),
        ("127.0.0.2/8", "loopback"),
        ("255.255.255.255/32", "broadcast"),
        ("10.0.0.255/24", "broadcast address of its prefix"),
    ] {
        let t = two_nodes(&format!("address: \"{addr}\""));
        let e = parse(&t).expect_err(addr);
        let i = &e.issues[0];
        assert_eq!(e.issues.len(), 1, "{addr}: {e}");
        assert_eq!((i.line, i.column), (5, 22), "{addr}: {e}");
        assert_eq!(i.field, "nodes.red.interfaces.e0.address", "{addr}");
        assert!(i.message.contains(kind), "{addr}: {}", i.message);
        assert!(
            i.message.contains("needs a unicast address"),
            "{addr}: {}",
            i.message
        );
        // Not the sandbox's overlap message (0.0.0.0/0 contains 203.0.113.0/24).
        let e = sandboxed(&t).expect_err(addr);
        assert!(!e.to_string().contains("overlaps"), "{e}");
    }
    // On a bridge too.
    let (line, field, msg) = issue("name: x\nbridges:\n  br0: { address: ff02::1/64 }\n");
    assert_eq!((line, field.as_str()), (3, "bridges.br0.address"));
    assert!(msg.contains("multicast"), "{msg}");
    // Still fine: /31 and /32 ends, the network address, link-local IPv6.
    for ok in [
        "10.0.0.1/31",
        "10.0.0.255/32",
        "10.0.0.255/23",
        "fe80::1/64",
    ] {
        parse(&two_nodes(&format!("address: \"{ok}\""))).expect(ok);
    }
}

#[test]
fn macs_an_interface_cannot_have() {
    for (mac, want) in [
        ("00:00:00:00:00:00", "all-zero"),
        ("01:00:5e:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
    ] {
        let e = parse(&two_nodes(&format!("address: 10.0.0.1/24, mac: \"{mac}\""))).expect_err(mac);
        let i = &e.issues[0];
        assert_eq!(e.issues.len(), 1, "{mac}: {e}");
        assert_eq!(i.field, "nodes.red.interfaces.e0.mac", "{mac}");
        assert!(i.message.contains(want), "{mac}: {}", i.message);
    }
    // The second of two equal MACs is refused, naming the first.
    let e = parse(&two_nodes(
        "address: 10.0.0.1/24, mac: \"02:00:00:00:00:02\"",
    ))
    .unwrap_err();
    assert_eq!(e.issues.len(), 1, "{e}");
    assert_eq!(
        (e.issues[0].line, e.issues[0].field.as_str()),
        (8, "nodes.green.interfaces.e1.mac")
    );
    assert!(
        e.issues[0]
            .message
            .contains("already set on nodes.red.interfaces.e0 (line 5)"),
        "{e}"
    );
    // A bridge's MAC takes part in the uniqueness too.
    let e = parse(
        "name: x\nbridges:\n  br0: { mac: \"02:00:00:00:00:07\" }\n  br1: { mac: \"02:00:00:00:00:07\" }\n",
    )
    .unwrap_err();
    assert_eq!(e.issues[0].line, 4, "{e}");
    assert!(e.issues[0].message.contains("bridges.br0"), "{e}");
    parse(&two_nodes(
        "address: 10.0.0.1/24, mac: \"02:00:00:00:00:01\"",
    ))
    .unwrap();
}

#[test]
fn a_gateway_is_not_the_nodes_own_address() {
    let t = "name: x\nnodes:\n  red:\n    interfaces:\n      e0: { address: 10.0.0.1/24 }\n    routes: [ \"default via 10.0.0.1\" ]\n  green:\n    interfaces:\n      e1: { address: 10.0.0.2/24 }\nlinks:\n  - [ red:e0, green:e1 ]\n";
    let (line, field, msg) = issue(t);
    assert_eq!((line, field.as_str()), (6, "nodes.red.routes[0]"));
    assert!(
        msg.contains("gateway 10.0.0.1 is the address of red:e0 itself"),
        "{msg}"
    );
    parse(&t.replace("via 10.0.0.1", "via 10.0.0.2")).unwrap();
}

#[test]
fn numbers_and_booleans_are_not_strings() {
    for (from, to, want) in [
        (
            "mtu: 1400",
            "mtu: \"1500\"",
            "string \"1500\", expected a whole number",
        ),
        ("mtu: 1400", "mtu: 1500.5", "expected a whole number"),
        ("mtu: 1400", "mtu: -1", "expected a whole number"),
        ("mtu: 1400", "mtu: 4294967296", "expected a whole number"),
        (
            "forward: true",
            "forward: \"true\"",
            "string \"true\", expected a boolean",
        ),
        ("forward: true", "forward: yes", "expected a boolean"),
        ("forward: true", "forward: 1", "expected a boolean"),
    ] {
        let good = format!(
            "name: x\nnodes:\n  red:\n    {from}\n    interfaces:\n      e0: {{ address: 10.0.0.1/24, {from} }}\n  green:\n    interfaces:\n      e1: {{ address: 10.0.0.2/24 }}\nlinks:\n  - [ red:e0, green:e1 ]\n"
        );
        // `forward` belongs to the node, `mtu` to the interface: keep one of each.
        let good = if from.starts_with("mtu") {
            good.replacen("    mtu: 1400\n", "", 1)
        } else {
            good.replacen(", forward: true", "", 1)
        };
        parse(&good).unwrap_or_else(|e| panic!("{from}: {e}"));
        let bad = good.replace(from, to);
        let e = parse(&bad).expect_err(to);
        let i = &e.issues[0];
        assert!(i.message.contains(want), "{to}: {}", i.message);
        let line = if from.starts_with("mtu") { 5 } else { 4 };
        assert_eq!(i.line, line, "{to}: {e}");
    }
    let e = parse("name: x\nipv6_link_local: \"true\"\n").unwrap_err();
    assert!(e.issues[0].message.contains("expected a boolean"), "{e}");
    let base =
        "name: x\nnodes:\n  a: {}\nexpect:\n  - http: a -> http://a:80/\n    status: \"200\"\n";
    let e = parse(base).unwrap_err();
    assert_eq!(e.issues[0].line, 6, "{e}");
    assert!(
        e.issues[0].message.contains("expected a whole number"),
        "{e}"
    );
    parse(&base.replace("\"200\"", "200")).unwrap();
}

/// No Rust types, debug structs or library API in a message meant for the file's author.
#[track_caller]
fn speaks_to_the_user(e: &TopologyError) {
    let m = e.to_string();
    for bad in [
        "{ ",
        " }",
        "Option<",
        "from_str",
        "Options",
        "DuplicateKeyPolicy",
        "=",
        "Cow<",
    ] {
        assert!(!m.contains(bad), "{bad:?} in:\n{m}");
    }
}

#[test]
fn yaml_limits_are_explained_in_words() {
    // Too many anchors: a budget breach (was "budget breached: Anchors { anchors: 50001 }").
    let mut t = String::from("name: x\nlinks:\n");
    for i in 0..50_001 {
        t.push_str(&format!("  - [&a{i} x, y]\n"));
    }
    let e = parse(&t).unwrap_err();
    speaks_to_the_user(&e);
    assert!(
        e.issues[0]
            .message
            .contains("too large or too complex to read: 50001 anchors"),
        "{e}"
    );
    assert_eq!(e.issues[0].line, 50_003);

    // An alias bomb where strings are expected.
    let mut t = String::from("name: x\ndescription: &a0 xxxxxxxxxxxxxxxx\nlinks:\n");
    for i in 1..40 {
        let refs = vec![format!("*a{}", i - 1); 8].join(", ");
        t.push_str(&format!("  - &a{i} [{refs}]\n"));
    }
    let e = parse(&t).unwrap_err();
    speaks_to_the_user(&e);
}

#[test]
fn yaml_errors_carry_no_library_hints() {
    let e = parse("name: x\n---\nname: y\n").unwrap_err();
    speaks_to_the_user(&e);
    assert_eq!(e.issues[0].line, 3);
    assert!(e.issues[0].message.contains("one YAML document"), "{e}");
    let e = parse("name: x\nnodes:\n  a:\n    run: [ ~ ]\n").unwrap_err();
    speaks_to_the_user(&e);
    assert!(
        e.issues[0].message.contains("a value is missing here"),
        "{e}"
    );
    let e = parse("name: x\nname: y\n").unwrap_err();
    speaks_to_the_user(&e);
    assert!(e.issues[0].message.contains("duplicate"), "{e}");
}

#[test]
fn long_lines_are_cut_around_the_column() {
    let long = format!(
        "name: x\ndescription: {} \"oops\": [\n",
        "b".repeat(200_000)
    );
    let e = parse(&long).unwrap_err();
    let m = e.to_string();
    assert!(m.len() < 600, "{} bytes echoed", m.len());
    let lines: Vec<&str> = m.lines().collect();
    assert_eq!(lines.len(), 3, "{m}");
    // The caret still points at the character the column names.
    let col = e.issues[0].column as usize;
    let shown = lines[1].split_once(" | ").unwrap().1;
    let caret = lines[2].split_once(" | ").unwrap().1.chars().count() - 1;
    let at: char = long.lines().nth(1).unwrap().chars().nth(col - 1).unwrap();
    assert_eq!(shown.chars().nth(caret), Some(at), "{m}");
    assert!(shown.chars().count() <= 122, "{m}");
    assert!(shown.starts_with('…'), "{m}");

    assert_eq!(excerpt("short", 2, 120), ("short".to_string(), 2));
    let l: String = ('a'..='z').collect();
    assert_eq!(excerpt(&l, 0, 10), ("abcdefghij…".to_string(), 0));
    assert_eq!(excerpt(&l, 25, 10), ("…qrstuvwxyz".to_string(), 10));
    assert_eq!(excerpt(&l, 13, 10), ("…ijklmnopqr…".to_string(), 6));
    // Multi-byte characters are never split.
    let (s, c) = excerpt(&"é".repeat(300), 150, 120);
    assert_eq!((s.chars().count(), c), (122, 61));
}

mod expect_family {
    use crate::topology::expect::expect_family;

    fn lab() -> crate::topology::Lab {
        let y = "name: f
bridges:
  br0: { addresses: [ 10.1.0.1/24, fd00::1/64 ] }
nodes:
  both:
    interfaces: { e: { addresses: [ 10.1.0.2/24, fd00::2/64 ] } }
  v6:
    interfaces: { e: { address: fd00::6/64 } }
  v4:
    interfaces: { e: { address: 10.1.0.4/24 } }
links:
  - [ both:e, br0:p1 ]
  - [ v6:e, br0:p2 ]
  - [ v4:e, br0:p3 ]
";
        crate::topology::parse_str(y, "f.yaml", &crate::topology::Options::default()).unwrap()
    }

    #[test]
    fn the_family_both_ends_have() {
        let l = lab();
        assert_eq!(expect_family(&l, "both", "both", None), Ok(4));
        assert_eq!(expect_family(&l, "both", "v6", None), Ok(6));
        assert_eq!(expect_family(&l, "v6", "both", None), Ok(6));
        assert_eq!(expect_family(&l, "v4", "both", None), Ok(4));
        assert_eq!(expect_family(&l, "both", "fd00::6", None), Ok(6));
        assert_eq!(expect_family(&l, "both", "v6", Some(6)), Ok(6));
        assert_eq!(expect_family(&l, "host", "v6", None), Ok(6));
        let e = expect_family(&l, "v4", "v6", None).unwrap_err();
        assert!(e.contains("no address family in common"), "{e}");
        assert!(expect_family(&l, "both", "v6", Some(4)).is_err());
    }
}

#[test]
fn throughput_and_loss_expectations_parse_with_units() {
    let base = "name: x\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { e: { address: 10.0.0.2/24 } } }\nlinks: [[a:e, b:e]]\n";
    let lab = parse(&format!(
        "{base}expect:\n  - throughput: a -> b\n    at_least: 50mbit\n  - throughput: a -> b\n    at_most: 12Mbit\n    udp: true\n    rate: 20mbit\n    seconds: 3\n  - loss: a -> b\n    at_most: 5%\n    rate: 5mbit\n  - loss: a -> b\n    at_least: 0.5%\n    seconds: 0.5\n"
    ))
    .unwrap();
    assert_eq!(
        lab.expect[0].kind,
        ExpectKind::Throughput {
            src: "a".into(),
            dst: "b".into(),
            udp: false,
            rate: None,
            millis: 2000,
            at_least: Some(50_000_000),
            at_most: None,
        }
    );
    assert_eq!(lab.expect[0].name, "throughput: a -> b (at least 50mbit)");
    assert_eq!(
        lab.expect[1].kind,
        ExpectKind::Throughput {
            src: "a".into(),
            dst: "b".into(),
            udp: true,
            rate: Some(20_000_000),
            millis: 3000,
            at_least: None,
            at_most: Some(12_000_000),
        }
    );
    assert_eq!(
        lab.expect[2].kind,
        ExpectKind::Loss {
            src: "a".into(),
            dst: "b".into(),
            rate: Some(5_000_000),
            millis: 2000,
            at_least_ppm: None,
            at_most_ppm: Some(50_000),
        }
    );
    assert_eq!(
        lab.expect[2].name,
        "loss: a -> b (at most 5%, at rate 5mbit)"
    );
    assert!(matches!(
        lab.expect[3].kind,
        ExpectKind::Loss {
            at_least_ppm: Some(5_000),
            millis: 500,
            ..
        }
    ));
}

#[test]
fn throughput_and_loss_mistakes_keep_line_and_field() {
    let base = "name: x\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { e: { address: 10.0.0.2/24 } } }\nlinks: [[a:e, b:e]]\n";
    // (the expectation's lines after `expect:`, line, field, words)
    for (body, line, field, words) in [
        (
            "  - throughput: a -> b\n    at_least: 50mbps\n",
            8,
            "expect[0].at_least",
            "ambiguous",
        ),
        (
            "  - throughput: a -> b\n    at_most: fast\n",
            8,
            "expect[0].at_most",
            "not a number",
        ),
        (
            "  - throughput: a -> b\n",
            7,
            "expect[0].throughput",
            "give `at_least` or `at_most`",
        ),
        (
            "  - loss: a -> b\n    at_most: 5\n",
            8,
            "expect[0].at_most",
            "with `%`",
        ),
        (
            "  - loss: a -> b\n    at_most: 150%\n",
            8,
            "expect[0].at_most",
            "out of range",
        ),
        (
            "  - loss: a -> b\n    at_most: 5%\n    udp: true\n",
            9,
            "expect[0].udp",
            "always measured over UDP",
        ),
        (
            "  - throughput: a -> b\n    at_least: 1mbit\n    rate: 5mbit\n",
            9,
            "expect[0].rate",
            "add `udp: true`",
        ),
        (
            "  - throughput: a -> b\n    at_least: 1mbit\n    seconds: 0\n",
            9,
            "expect[0].seconds",
            "0.1 to 3600",
        ),
        (
            "  - throughput: a -> c\n    at_least: 1mbit\n",
            7,
            "expect[0].throughput",
            "\"c\" is not a node",
        ),
        (
            "  - throughput: z -> b\n    at_least: 1mbit\n",
            7,
            "expect[0].throughput",
            "\"z\" is not a node",
        ),
        (
            "  - reach: a -> b\n    at_least: 1mbit\n",
            8,
            "expect[0].at_least",
            "applies to `throughput` and `loss` only",
        ),
        (
            "  - throughput: a -> b\n    at_least: 1mbit\n    size: 100\n",
            9,
            "expect[0].size",
            "`size` applies to `reach`",
        ),
        (
            "  - throughput: a -> b\n    loss: a -> b\n    at_most: 5%\n",
            7,
            "expect[0]",
            "exactly one of",
        ),
        (
            "  - throughput: a -> b\n    at_least: 1mbit\n    udp: \"yes\"\n",
            9,
            "",
            "expected a boolean",
        ),
    ] {
        let (l, f, msg) = issue(&format!("{base}expect:\n{body}"));
        assert_eq!(l, line, "{body}: {f}: {msg}");
        if !field.is_empty() {
            assert_eq!(f, field, "{body}: {msg}");
        }
        assert!(msg.contains(words), "{body}: {msg}");
    }
}

#[test]
fn group_expectations_parse_and_keep_line_and_field() {
    let base = "name: x\nbridges:\n  br0: {}\n  br1: {}\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { e: { address: 10.0.0.2/24 } } }\n  c: { interfaces: { e: { address: 10.0.0.3/24 } } }\n  d: { interfaces: { e: { address: 10.0.0.4/24 } } }\nlinks:\n  - [a:e, br0:pa]\n  - [b:e, br0:pb]\n  - [c:e, br1:pc]\n  - [d:e, br1:pd]\n";
    // Line 15 is the first expectation.
    let ok = format!(
        "{base}expect:\n  - reach: '[a, b, c] -> [a, b, c]'\n  - no_reach: a,b -> @br1\n  - tcp: '@br0 -> c:80'\n  - reach: 'a -> [b, c]'\n"
    );
    let lab = parse(&ok).unwrap();
    assert_eq!(lab.expect.len(), 4);
    assert_eq!(lab.expect[0].name, "reach: [a, b, c] -> [a, b, c]");
    assert_eq!(lab.expect[0].line, 16);
    let pairs = |i: usize| {
        crate::topology::expect::group_pairs(&lab, &lab.expect[i].kind).map(|r| r.unwrap())
    };
    // Not paired with itself: 3 x 2.
    assert_eq!(pairs(0).unwrap().len(), 6);
    let nr = pairs(1).unwrap();
    assert_eq!(nr.len(), 4, "a,b x c,d: {nr:?}");
    assert!(
        matches!(&nr[0], ExpectKind::Reach { src, dst, reach: false, .. } if src == "a" && dst == "c")
    );
    let tcp = pairs(2).unwrap();
    assert!(
        matches!(&tcp[1], ExpectKind::Tcp { src, dst, port: 80, .. } if src == "b" && dst == "c")
    );
    assert_eq!(pairs(3).unwrap().len(), 2);
    // `all` is every node, and not host or internet; a node with itself is skipped.
    let v4 = "name: x\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { e: { address: 10.0.0.2/24 } } }\nlinks: [[a:e, b:e]]\nexpect:\n  - reach: all -> all\n";
    let lab = parse(v4).unwrap();
    let p = crate::topology::expect::group_pairs(&lab, &lab.expect[0].kind)
        .unwrap()
        .unwrap();
    let ends: Vec<(String, String)> = p
        .iter()
        .map(|k| match k {
            ExpectKind::Reach { src, dst, .. } => (src.clone(), dst.clone()),
            _ => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(ends, [("a".into(), "b".into()), ("b".into(), "a".into())]);
    // http: a group of sources, not paired with the URL's host.
    let h = parse(&format!("{base}expect:\n  - http: all -> http://b:80/x\n")).unwrap();
    let v = crate::topology::expect::group_pairs(&h, &h.expect[0].kind)
        .unwrap()
        .unwrap();
    let srcs: Vec<&str> = v
        .iter()
        .map(|k| match k {
            ExpectKind::Http { src, url, .. } if url == "http://b:80/x" => src.as_str(),
            _ => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(srcs, ["a", "c", "d"]);
    // A plain expectation is no group.
    let plain = parse(&format!("{base}expect:\n  - reach: a -> b\n")).unwrap();
    assert!(crate::topology::expect::group_pairs(&plain, &plain.expect[0].kind).is_none());
}

#[test]
fn bad_group_expectations_name_file_line_field_and_word() {
    let base = "name: x\nbridges:\n  br0: {}\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { e: { address: 10.0.0.2/24 } } }\n  v6: { interfaces: { e: { address: fd00::9/64 } } }\nlinks:\n  - [a:e, br0:pa]\n  - [b:e, br0:pb]\n  - [v6:e, br0:p6]\n";
    // The expectation is on line 14 (field expect[1]).
    for (e, want) in [
        (
            "reach: '[a, nope] -> all'",
            "t.yaml:14:12: expect[1].reach: [a, nope] -> all: \"nope\" is not a node",
        ),
        (
            "no_reach: all -> @br9",
            "t.yaml:14:15: expect[1].no_reach: all -> @br9: \"br9\" is not a bridge",
        ),
        (
            "tcp: all -> @brx:80",
            "expect[1].tcp: all -> @brx:80: \"brx\" is not a bridge",
        ),
        ("reach: 'a -> [a]'", "no pair to check"),
        ("reach: '[a, b -> b'", "closing `]`"),
        // Every pair must have a family in common.
        ("reach: all -> all", "have no address family in common"),
        ("reach: all -> a\n    size: 99999", "expect[1].size"),
    ] {
        let t = format!("{base}expect:\n  - reach: a -> b\n  - {e}\n");
        let s = parse(&t).unwrap_err().to_string();
        assert!(s.contains(want), "{e}: {s}");
        assert!(
            s.starts_with("t.yaml:14:") || s.starts_with("t.yaml:15:"),
            "{e}: {s}"
        );
    }
}

/// A ring of bridges s1..s4 (hosts h1..h4, one on each), `bridge_extra` added
/// to every bridge's map.
fn ring(bridge_extra: &str) -> String {
    let mut t = String::from("name: ring\nbridges:\n");
    for i in 1..=4 {
        t += &format!("  s{i}: {{ {bridge_extra} }}\n");
    }
    t += "nodes:\n";
    for i in 1..=4 {
        t += &format!("  h{i}: {{ interfaces: {{ h{i}-eth0: {{ address: 10.0.0.{i}/8 }} }} }}\n");
    }
    t += "links:\n";
    for i in 1..=4 {
        t += &format!("  - [ h{i}:h{i}-eth0, s{i}:s{i}-eth1 ]\n");
    }
    for i in 1..=4 {
        let j = i % 4 + 1;
        t += &format!("  - [ s{i}:s{i}-eth2, s{j}:s{j}-eth3 ]\n");
    }
    t
}

#[test]
fn bridges_join_by_a_cable_between_their_ports() {
    let lab = parse(&ring("").replace("  - [ s4:s4-eth2, s1:s1-eth3 ]\n", "")).unwrap();
    let l = &lab.links[4];
    assert_eq!(l.a.to_string(), "s1:s1-eth2");
    assert_eq!(l.b.to_string(), "s2:s2-eth3");
    assert_eq!(
        (l.a.place.clone(), l.b.place.clone()),
        (Place::Host, Place::Host)
    );
    assert_eq!(
        lab.bridge("s2").unwrap().ports,
        ["s2-eth1", "s2-eth3", "s2-eth2"]
    );
    assert!(lab.bridges.iter().all(|b| b.stp.is_none()));
}

#[test]
fn a_loop_of_bridges_without_stp_is_refused_naming_it() {
    let (line, field, msg) = issue(&ring(""));
    assert_eq!(field, "links[7]");
    assert_eq!(line, 20);
    assert!(
        msg.contains("s4 -- s1 -- s2 -- s3 -- s4 is a loop")
            || msg.contains("s1 -- s2 -- s3 -- s4 -- s1 is a loop"),
        "{msg}"
    );
    assert!(msg.contains("set stp: true on s1, s2, s3, s4"), "{msg}");
    // One bridge without STP is enough to refuse it, and is the one named.
    let mut t = ring("stp: true");
    t = t.replacen("s3: { stp: true }", "s3: { }", 1);
    let (_, _, msg) = issue(&t);
    assert!(msg.ends_with("set stp: true on s3"), "{msg}");
}

#[test]
fn a_loop_of_bridges_with_stp_gets_the_least_safe_timers() {
    let lab = parse(&ring("stp: true")).unwrap();
    for b in &lab.bridges {
        assert_eq!(
            b.stp,
            Some(Stp {
                forward_delay: 400,
                max_age: 600
            })
        );
    }
    let lab = parse(&ring("stp: true, forward_delay: 4s, max_age: 12500ms")).unwrap();
    assert_eq!(
        lab.bridges[0].stp,
        Some(Stp {
            forward_delay: 400,
            max_age: 1250
        })
    );
}

#[test]
fn two_cables_between_the_same_bridges_are_a_loop() {
    let t =
        "name: two\nbridges: { a: {}, b: {} }\nlinks:\n  - [ a:a1, b:b1 ]\n  - [ a:a2, b:b2 ]\n";
    let (line, field, msg) = issue(t);
    assert_eq!((line, field.as_str()), (5, "links[1]"));
    assert!(msg.starts_with("a -- b -- a is a loop"), "{msg}");
    let t = "name: self\nbridges: { a: {} }\nlinks:\n  - [ a:a1, a:a2 ]\n";
    let (_, _, msg) = issue(t);
    assert!(msg.starts_with("a -- a is a loop"), "{msg}");
}

#[test]
fn a_node_between_bridges_makes_no_loop() {
    let t = "name: n\nbridges: { a: {}, b: {} }\nnodes:\n  r: {}\nlinks:\n  - [ a:a1, b:b1 ]\n  - [ r:e0, a:a2 ]\n  - [ r:e1, b:b2 ]\n";
    parse(t).unwrap();
}

#[test]
fn stp_timers_are_checked_against_the_kernels_range() {
    let bad = [
        ("stp: true, forward_delay: 1s", "forward_delay", "2s to 30s"),
        (
            "stp: true, forward_delay: 31s",
            "forward_delay",
            "2s to 30s",
        ),
        ("stp: true, max_age: 5s", "max_age", "6s to 40s"),
        ("stp: true, max_age: 41s", "max_age", "6s to 40s"),
        ("stp: true, max_age: 10", "max_age", "with its unit"),
        ("stp: true, max_age: 10parsecs", "max_age", "unknown unit"),
        ("forward_delay: 2s", "forward_delay", "needs stp: true"),
        ("stp: false, max_age: 6s", "max_age", "needs stp: true"),
    ];
    for (extra, key, want) in bad {
        let t = format!("name: b\nbridges:\n  s1: {{ {extra} }}\n");
        let (line, field, msg) = issue(&t);
        assert_eq!(
            (line, field.as_str()),
            (3, &*format!("bridges.s1.{key}")),
            "{extra}"
        );
        assert!(msg.contains(want), "{extra}: {msg}");
    }
    let (_, _, msg) = issue("name: b\nbridges:\n  s1: { stp: \"yes\" }\n");
    assert!(msg.contains("boolean"), "{msg}");
}

#[test]
fn sysctl_keys_are_checked_with_their_line() {
    let base = "name: s\nnodes:\n  a:\n    sysctl:\n      ";
    for (key, want) in [
        ("kernel.panic: 1", "only `net.*`"),
        ("net..x: 1", "empty part"),
        ("net.ipv4/conf: 1", "no `/`"),
        ("net.ipv4.conf.all.rp_filter: true", "integer or a string"),
        ("net.ipv4.conf.all.rp_filter: \"\"", "empty"),
        ("net.ipv4.ip_forward: 1", "use `forward: true`"),
    ] {
        let e = parse(&format!("{base}{key}\n")).expect_err(key);
        let i = &e.issues[0];
        assert!(i.message.contains(want), "{key}: {}", i.message);
        if !want.contains("integer") {
            assert_eq!(i.line, 5, "{key}");
            assert!(i.field.starts_with("nodes.a.sysctl"), "{}", i.field);
        }
    }
    let l = parse(&format!("{base}net.ipv4.conf.all.rp_filter: 1\n      net.ipv4.ip_local_port_range: \"1024   2048\"\n")).unwrap();
    let s = &l.node("a").unwrap().sysctl;
    assert_eq!(s["net.ipv4.conf.all.rp_filter"], "1");
    assert_eq!(s["net.ipv4.ip_local_port_range"], "1024 2048");
}

#[test]
fn host_sysctls_in_host_mode_only_from_the_allow_list() {
    let file = |k: &str| format!("name: s\nhost:\n  sysctl: {{ {k}: 1 }}\n");
    let (line, field, msg) = issue(&file("net.ipv4.conf.all.route_localnet"));
    assert_eq!(
        (line, field.as_str()),
        (3, "host.sysctl.net.ipv4.conf.all.route_localnet")
    );
    assert!(msg.contains("host mode allows only"), "{msg}");
    let l = parse(&file("net.ipv4.conf.all.rp_filter")).unwrap();
    assert_eq!(l.host.sysctl["net.ipv4.conf.all.rp_filter"], "1");
    // A sandbox's host is the lab's own namespace: any net.* key.
    let l = sandboxed(&file("net.ipv4.conf.all.route_localnet")).unwrap();
    assert_eq!(l.host.sysctl.len(), 1);
}

/// The lab of bench/multistar.py: `b` bridges of `n` nodes, each node with one
/// cable, an address and a default route (~11 YAML values a node).
fn multistar(b: usize, n: usize) -> String {
    let mut t = String::from("name: ms\nbridges:\n");
    for j in 0..b {
        t.push_str(&format!("  br{j}: {{ address: 10.{j}.255.254/16 }}\n"));
    }
    t.push_str("nodes:\n");
    for j in 0..b {
        for k in 0..n {
            t.push_str(&format!(
                "  b{j}n{k}:\n    interfaces: {{ e0: {{ address: 10.{j}.{}.{}/16 }} }}\n    routes: [ \"default dev e0\" ]\n",
                k / 250,
                k % 250 + 1
            ));
        }
    }
    t.push_str("links:\n");
    for j in 0..b {
        for k in 0..n {
            t.push_str(&format!("  - [ b{j}n{k}:e0, br{j}:p{j}x{k} ]\n"));
        }
    }
    t
}

#[test]
fn thirty_thousand_nodes_load() {
    // Past serde-saphyr's default budget of 250,000 values (~22,700 such nodes).
    let lab = parse(&multistar(30, 1000)).unwrap();
    assert_eq!(lab.nodes.len(), 30_000);
    // The budget grows with the file, not with what aliases expand to: a bomb
    // in a big file is still refused, in words.
    // (Appended to the file's last list, `links:`, under a key the reader
    // skips whole, so the aliases are expanded, not refused by type.)
    let mut t = format!("description: &a0 xxxxxxxxxxxxxxxx\n{}", multistar(3, 1000));
    for i in 1..40 {
        let refs = vec![format!("*a{}", i - 1); 8].join(", ");
        t.push_str(&format!(
            "  - {{ ends: [ b0n0:e0, br0:q{i} ], junk: &a{i} [{refs}] }}\n"
        ));
    }
    let e = parse(&t).unwrap_err();
    let m = &e.issues[0].message;
    assert!(m.contains("too large or too complex to read"), "{e}");
    assert!(m.contains("values"), "{e}");
}
