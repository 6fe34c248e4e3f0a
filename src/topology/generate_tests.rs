//! `nslab new`: the files it writes parse, validate and pass the schema, and
//! Mininet's kinds keep Mininet's names, ports and addresses.

use super::generate::{Spec, generate};
use super::schema_tests::{as_json, errors, validator};
use super::{Options, parse_str};
use serde_json::Value;

fn spec(s: &str) -> Spec {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn file(s: &str) -> String {
    let sp = spec(s);
    generate(&sp, &sp.default_name())
}

/// The spec's file validates as nslab itself does for `up --sandbox`, and passes the schema.
#[track_caller]
fn valid(s: &str) {
    let text = file(s);
    let opts = Options {
        prefix: "t-".into(),
        sandbox: true,
        check_programs: false,
    };
    if let Err(e) = parse_str(&text, &format!("{s}.yaml"), &opts) {
        panic!("{s}: {e}\n{text}");
    }
    let errs = errors(&validator(), &text);
    assert!(errs.is_empty(), "{s}: {errs:?}\n{text}");
}

/// (node, interface) -> address, from the file as YAML sees it.
fn address(j: &Value, node: &str, iface: &str) -> String {
    j["nodes"][node]["interfaces"][iface]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("{node}:{iface} has no address: {j:#}"))
        .to_string()
}

fn links(j: &Value) -> Vec<String> {
    j["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| format!("{} {}", l[0].as_str().unwrap(), l[1].as_str().unwrap()))
        .collect()
}

/// The keys of a top-level section in the order the file has them (JSON
/// objects here are sorted).
fn keys(text: &str, section: &str) -> Vec<String> {
    let head = format!("{section}:");
    text.lines()
        .skip_while(|l| *l != head)
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(|l| l.trim().split(':').next().unwrap().to_string())
        .collect()
}

fn err(s: &str) -> String {
    s.parse::<Spec>().expect_err(s)
}

#[test]
fn single_3_is_mininets() {
    let t = file("single,3");
    let j = as_json(&t);
    assert_eq!(j["name"], "single3");
    assert_eq!(keys(&t, "bridges"), ["s1"]);
    assert_eq!(keys(&t, "nodes"), ["h1", "h2", "h3"]);
    assert_eq!(
        links(&j),
        [
            "h1:h1-eth0 s1:s1-eth1",
            "h2:h2-eth0 s1:s1-eth2",
            "h3:h3-eth0 s1:s1-eth3"
        ]
    );
    assert_eq!(address(&j, "h1", "h1-eth0"), "10.0.0.1/8");
    assert_eq!(address(&j, "h3", "h3-eth0"), "10.0.0.3/8");
    assert_eq!(j["expect"][0]["reach"], "all -> all");
}

#[test]
fn linear_4_is_mininets() {
    let t = file("linear,4");
    let j = as_json(&t);
    assert_eq!(j["name"], "linear4");
    assert_eq!(keys(&t, "bridges"), ["s1", "s2", "s3", "s4"]);
    assert_eq!(keys(&t, "nodes"), ["h1", "h2", "h3", "h4"]);
    // Mininet adds each switch's host, then the cable to the switch before.
    assert_eq!(
        links(&j),
        [
            "h1:h1-eth0 s1:s1-eth1",
            "h2:h2-eth0 s2:s2-eth1",
            "s2:s2-eth2 s1:s1-eth2",
            "h3:h3-eth0 s3:s3-eth1",
            "s3:s3-eth2 s2:s2-eth3",
            "h4:h4-eth0 s4:s4-eth1",
            "s4:s4-eth2 s3:s3-eth3"
        ]
    );
    for i in 1..=4 {
        assert_eq!(
            address(&j, &format!("h{i}"), &format!("h{i}-eth0")),
            format!("10.0.0.{i}/8")
        );
    }
}

#[test]
fn linear_2_2_numbers_hosts_in_natural_order_as_mininet() {
    let t = file("linear,2,2");
    let j = as_json(&t);
    assert_eq!(j["name"], "linear2-2");
    // `h%ss%d` % (j, i): host j of switch i; Mininet's net.hosts (and its
    // addresses) follow topo.hosts(), sorted naturally.
    assert_eq!(keys(&t, "nodes"), ["h1s1", "h1s2", "h2s1", "h2s2"]);
    assert_eq!(address(&j, "h1s1", "h1s1-eth0"), "10.0.0.1/8");
    assert_eq!(address(&j, "h1s2", "h1s2-eth0"), "10.0.0.2/8");
    assert_eq!(address(&j, "h2s1", "h2s1-eth0"), "10.0.0.3/8");
    assert_eq!(address(&j, "h2s2", "h2s2-eth0"), "10.0.0.4/8");
    assert_eq!(
        links(&j),
        [
            "h1s1:h1s1-eth0 s1:s1-eth1",
            "h2s1:h2s1-eth0 s1:s1-eth2",
            "h1s2:h1s2-eth0 s2:s2-eth1",
            "h2s2:h2s2-eth0 s2:s2-eth2",
            "s2:s2-eth3 s1:s1-eth3"
        ]
    );
}

#[test]
fn tree_2_3_is_mininets_in_both_spellings() {
    let text = file("tree,depth=2,fanout=3");
    assert_eq!(
        generate(&spec("tree,2,3"), "tree2-3")
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        text.lines().skip(1).collect::<Vec<_>>(),
        "positional and key=value give the same lab"
    );
    let j = as_json(&text);
    let t = &text;
    assert_eq!(j["name"], "tree2-3");
    assert_eq!(keys(t, "bridges"), ["s1", "s2", "s3", "s4"]);
    let hosts: Vec<String> = (1..=9).map(|i| format!("h{i}")).collect();
    assert_eq!(keys(t, "nodes"), hosts);
    // Depth first: s2 and its hosts h1..h3 before the cable s1 -> s2, whose
    // end on s2 is therefore port 4.
    assert_eq!(
        links(&j),
        [
            "s2:s2-eth1 h1:h1-eth0",
            "s2:s2-eth2 h2:h2-eth0",
            "s2:s2-eth3 h3:h3-eth0",
            "s1:s1-eth1 s2:s2-eth4",
            "s3:s3-eth1 h4:h4-eth0",
            "s3:s3-eth2 h5:h5-eth0",
            "s3:s3-eth3 h6:h6-eth0",
            "s1:s1-eth2 s3:s3-eth4",
            "s4:s4-eth1 h7:h7-eth0",
            "s4:s4-eth2 h8:h8-eth0",
            "s4:s4-eth3 h9:h9-eth0",
            "s1:s1-eth3 s4:s4-eth4"
        ]
    );
    assert_eq!(address(&j, "h1", "h1-eth0"), "10.0.0.1/8");
    assert_eq!(address(&j, "h9", "h9-eth0"), "10.0.0.9/8");
}

#[test]
fn mininets_defaults_without_arguments() {
    assert_eq!(spec("single").default_name(), "single2");
    assert_eq!(spec("linear").default_name(), "linear2");
    assert_eq!(spec("tree").default_name(), "tree1-2");
    assert_eq!(spec("tree,fanout=4").default_name(), "tree1-4");
    assert_eq!(spec("linear,n=3").default_name(), "linear2-3");
}

#[test]
fn star_hosts_have_their_own_subnet_and_gateway() {
    let t = file("star,3");
    let j = as_json(&t);
    assert_eq!(keys(&t, "nodes"), ["r1", "h1", "h2", "h3"]);
    assert!(keys(&t, "bridges").is_empty());
    assert_eq!(j["nodes"]["r1"]["forward"], true);
    assert_eq!(address(&j, "h2", "h2-eth0"), "10.0.2.2/24");
    assert_eq!(address(&j, "r1", "r1-eth1"), "10.0.2.1/24");
    assert_eq!(j["nodes"]["h2"]["routes"][0], "default via 10.0.2.1");
    assert!(links(&j).contains(&"h3:h3-eth0 r1:r1-eth2".to_string()));
}

#[test]
fn chain_routers_route_every_subnet_they_are_not_on() {
    let t = file("chain,3");
    let j = as_json(&t);
    assert_eq!(keys(&t, "nodes"), ["h1", "r1", "r2", "r3", "h2"]);
    assert_eq!(
        links(&j),
        [
            "h1:h1-eth0 r1:r1-eth0",
            "r1:r1-eth1 r2:r2-eth0",
            "r2:r2-eth1 r3:r3-eth0",
            "r3:r3-eth1 h2:h2-eth0"
        ]
    );
    assert_eq!(address(&j, "r1", "r1-eth1"), "10.100.0.1/30");
    assert_eq!(address(&j, "r2", "r2-eth0"), "10.100.0.2/30");
    assert_eq!(address(&j, "r2", "r2-eth1"), "10.100.0.5/30");
    assert_eq!(address(&j, "r3", "r3-eth1"), "10.0.2.1/24");
    assert_eq!(address(&j, "h2", "h2-eth0"), "10.0.2.2/24");
    let routes = |n: &str| -> Vec<String> {
        j["nodes"][n]["routes"]
            .as_array()
            .map(|a| a.iter().map(|r| r.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        routes("r1"),
        ["10.100.0.4/30 via 10.100.0.2", "10.0.2.0/24 via 10.100.0.2"]
    );
    assert_eq!(
        routes("r2"),
        ["10.0.1.0/24 via 10.100.0.1", "10.0.2.0/24 via 10.100.0.6"]
    );
    assert_eq!(
        routes("r3"),
        ["10.0.1.0/24 via 10.100.0.5", "10.100.0.0/30 via 10.100.0.5"]
    );
    assert_eq!(routes("h1"), ["default via 10.0.1.1"]);
    for r in ["r1", "r2", "r3"] {
        assert_eq!(j["nodes"][r]["forward"], true, "{r}");
    }
}

#[test]
fn ring_and_fattree_bridges_run_stp() {
    let t = file("ring,3");
    let j = as_json(&t);
    assert_eq!(keys(&t, "bridges"), ["s1", "s2", "s3"]);
    assert!(links(&j).contains(&"s3:s3-eth3 s1:s1-eth3".to_string()));
    assert!(j["bridges"]["s2"]["stp"] == true);

    let t = file("fattree,4");
    let j = as_json(&t);
    let bridges = keys(&t, "bridges");
    assert_eq!(bridges.len(), 4 + 8 + 8, "(k/2)^2 core, k/2 + k/2 per pod");
    assert!(bridges.iter().all(|b| j["bridges"][b]["stp"] == true));
    assert_eq!(keys(&t, "nodes").len(), 16, "k^3/4 hosts");
    assert_eq!(
        links(&j).len(),
        16 + 16 + 16,
        "hosts, edge-aggregation, aggregation-core"
    );
    assert_eq!(address(&j, "h16", "h16-eth0"), "10.0.0.16/8");
    // Edge e1: its hosts on ports 1-2, aggregation on 3-4; core c1 reaches every pod.
    let l = links(&j);
    assert!(l.contains(&"e1:e1-eth3 a1:a1-eth1".to_string()), "{l:?}");
    assert!(l.contains(&"a1:a1-eth3 c1:c1-eth1".to_string()), "{l:?}");
    assert!(l.contains(&"a8:a8-eth4 c4:c4-eth4".to_string()), "{l:?}");
    // Every switch of a fat tree has k ports.
    let mut ports = std::collections::BTreeMap::<&str, usize>::new();
    for end in l.iter().flat_map(|x| x.split(' ')) {
        let owner = end.split(':').next().unwrap();
        if bridges.iter().any(|b| b == owner) {
            *ports.entry(owner).or_default() += 1;
        }
    }
    assert_eq!(ports.len(), 20);
    assert!(ports.values().all(|&n| n == 4), "{ports:?}");
}

#[test]
fn the_header_names_the_command_on_one_line() {
    let t = generate(&spec(" tree, depth=2 ,\nfanout=3 "), "x");
    assert!(
        t.starts_with("# Made by `nslab new --topo tree,depth=2,fanout=3 --name x`.\n# "),
        "{t}"
    );
    assert!(
        t.lines()
            .take_while(|l| !l.starts_with("name:"))
            .all(|l| l.starts_with('#'))
    );
}

/// The largest files allowed keep interface names within 15 bytes and bridge
/// ports unique in the host.
#[test]
fn the_largest_specs_keep_names_valid() {
    for s in [
        "single,1000",
        "linear,1000",
        "linear,10,100",
        "tree,3,10",
        "tree,depth=9,fanout=2",
        "star,254",
        "ring,1000",
        "chain,60",
        "fattree,8",
    ] {
        let j = as_json(&file(s));
        let mut ports = std::collections::HashSet::new();
        for l in links(&j) {
            for end in l.split(' ') {
                let (owner, ifname) = end.split_once(':').unwrap();
                assert!(
                    super::validate::ifname_problem(ifname).is_none(),
                    "{s}: {ifname}"
                );
                if j["bridges"][owner].is_object() {
                    assert!(ports.insert(ifname.to_string()), "{s}: {ifname} twice");
                }
            }
        }
        assert_eq!(j["expect"][0]["reach"], "all -> all", "{s}");
    }
}

// Kinds without cables between switches validate today.
#[test]
fn single_validates() {
    valid("single,3");
    valid("single,2");
    valid("linear,1,3");
}

#[test]
fn star_validates() {
    valid("star,4");
    valid("star,254");
}

#[test]
fn chain_validates() {
    valid("chain,1");
    valid("chain,3");
    valid("chain,60");
}

#[test]
fn a_quoted_name_validates() {
    let t = generate(&spec("single,2"), "123");
    assert!(t.contains("name: \"123\""), "{t}");
    let lab = parse_str(&t, "t.yaml", &Options::default()).expect("valid");
    assert_eq!(lab.name, "123");
}

// Kinds with switch-to-switch cables (and `stp:`) need bridge-to-bridge links.
#[test]
fn linear_validates() {
    valid("linear,4");
    valid("linear,2,2");
}

#[test]
fn tree_validates() {
    valid("tree,2,3");
}

#[test]
fn ring_validates() {
    valid("ring,3");
}

#[test]
fn fattree_validates() {
    valid("fattree,2");
    valid("fattree,4");
}

#[test]
fn bad_specs_say_what_is_wrong() {
    for (s, want) in [
        (
            "",
            "no topology kind given; expected KIND[,ARGS] with KIND one of single, linear, tree, star, ring, chain, fattree, e.g. linear,3",
        ),
        (
            "mesh,3",
            "unknown topology kind \"mesh\": expected one of single, linear, tree, star, ring, chain, fattree",
        ),
        (
            "tree,depht=2",
            "tree has no parameter \"depht\"; its parameters are depth, fanout",
        ),
        ("single,1", "single: k must be 2 to 1000, got 1"),
        (
            "linear,1,1",
            "linear,1,1 has 1 host; at least 2, for its `reach: all -> all`",
        ),
        ("tree,3,1", "tree: fanout must be 2 to 1000, got 1"),
        ("single,x", "single: k must be a whole number, got \"x\""),
        (
            "single,2.5",
            "single: k must be a whole number, got \"2.5\"",
        ),
        ("linear,-1", "linear: k must be a whole number, got \"-1\""),
        ("linear,,2", "linear: k must be a whole number, got \"\""),
        (
            "single,2,3",
            "single takes at most 1 value (k), got more: \"single,2,3\"",
        ),
        ("tree,2,depth=3", "tree: depth is given twice"),
        ("star", "star needs n: e.g. star,4"),
        ("ring,2", "ring: n must be 3 to 1000, got 2"),
        ("chain,61", "chain: n must be 1 to 60, got 61"),
        ("fattree,3", "fattree: k must be even (2, 4, 6 or 8), got 3"),
        ("fattree,10", "fattree: k must be 2 to 8, got 10"),
        (
            "linear,100,100",
            "linear,100,100 has 10000 hosts; at most 1000",
        ),
        (
            "tree,10,10",
            "tree,10,10 has 10000000000 hosts; at most 1000",
        ),
        (
            "tree,depth=1000,fanout=1000",
            "tree,depth=1000,fanout=1000 has too many hosts; at most 1000",
        ),
    ] {
        assert_eq!(err(s), want, "{s:?}");
    }
}
