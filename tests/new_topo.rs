//! `nslab new --topo KIND,ARGS`: bad arguments exit 2 naming what is wrong,
//! `-o` keeps an existing file, and the labs it writes come up in a sandbox
//! where `check` passes `reach: all -> all` and plain `ping` over every pair
//! agrees.

mod common;
use common::*;
use serde_json::Value;

#[test]
fn bad_arguments_exit_2_naming_the_problem() {
    for (args, want) in [
        (
            vec!["new", "--topo", "mesh,3"],
            "--topo mesh,3: unknown topology kind \"mesh\": expected one of single, linear, tree, star, ring, chain, fattree",
        ),
        (
            vec!["new", "--topo", "tree,depht=2"],
            "tree has no parameter \"depht\"; its parameters are depth, fanout",
        ),
        (
            vec!["new", "--topo", "linear,x"],
            "linear: k must be a whole number, got \"x\"",
        ),
        (
            vec!["new", "--topo", "fattree,5"],
            "fattree: k must be even (2, 4, 6 or 8), got 5",
        ),
        (
            vec!["new", "--topo", "single,2,3"],
            "single takes at most 1 value (k)",
        ),
        (
            vec!["new", "--topo", "ring,2"],
            "ring: n must be 3 to 1000, got 2",
        ),
        (
            vec!["new", "--topo", "single,3", "--name", "../x"],
            "--name \"../x\" must not contain `/`",
        ),
        (vec!["new"], "--topo <KIND,ARGS>"),
    ] {
        let o = nslab(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
        assert!(o.stdout.is_empty(), "{args:?} printed a file");
    }
}

#[test]
fn output_file_is_kept_unless_force() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "lab.yaml", "mine\n");
    let o = nslab(&["new", "--topo", "single,3", "-o", s(&f)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("exists"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "mine\n");

    ok(nslab(&[
        "new",
        "--topo",
        "single,3",
        "-o",
        s(&f),
        "--force",
    ]));
    let written = std::fs::read_to_string(&f).unwrap();
    // Without -o the same file goes to stdout.
    let o = ok(nslab(&["new", "--topo", "single,3"]));
    assert_eq!(stdout(&o), written);
    assert!(written.starts_with("# Made by `nslab new --topo single,3`."));
    assert!(
        written.ends_with("expect:\n  - reach: all -> all\n"),
        "{written}"
    );
    assert!(written.contains("\nname: single3\n"), "{written}");
}

#[test]
fn a_reader_that_goes_away_is_no_panic() {
    use std::io::Read;
    // single,1000 is ~100 KB, more than a pipe holds: nslab is still writing
    // when the reader closes.
    let mut c = std::process::Command::new(bin())
        .args(["new", "--topo", "single,1000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 9];
    c.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"# Made by");
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The node names of a generated file, in its order.
fn nodes(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| *l != "nodes:")
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(|l| l.trim().trim_end_matches(':').to_string())
        .collect()
}

/// The IPv4 addresses of a namespace, as `ip` (not nslab) sees them.
fn ipv4(ns: &str) -> Vec<String> {
    ip_json(Some(ns), "-4 addr show scope global")
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().map(String::from))
        .collect()
}

/// `nslab new --topo SPEC`, up in a sandbox: `check` passes `all -> all` over
/// every pair, and `ping` from every node reaches every address of every other.
fn comes_up_and_every_pair_reaches(spec: &str, tag: &str) {
    let p = prefix(tag);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("lab.yaml");
    ok(nslab(&["new", "--topo", spec, "-o", s(&f)]));
    let yaml = std::fs::read_to_string(&f).unwrap();
    let name = yaml
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .expect("a name");
    let lab = format!("{p}{name}");
    {
        let _g = LabGuard::new(&lab, None);
        ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
        let o = nslab(&["check", "--lab", &lab, "--json", "--nodes-only"]);
        let j: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        assert_eq!(o.status.code(), Some(0), "{spec}: {j:#}");
        let nodes = nodes(&yaml);
        let n = nodes.len();
        let ex = &j["expectations"][0];
        assert_eq!(ex["name"], "reach: all -> all", "{j:#}");
        assert_eq!(ex["ok"], true, "{j:#}");
        assert_eq!(ex["pairs"], n * (n - 1), "{spec}: every ordered pair");

        let mut failed = Vec::new();
        for src in &nodes {
            for dst in nodes.iter().filter(|d| *d != src) {
                let addrs = ipv4(&format!("{p}{dst}"));
                assert!(!addrs.is_empty(), "{dst} has no address");
                for a in addrs {
                    let cmd = format!("ip netns exec {p}{src} ping -c1 -W1 {a}");
                    if !sh_status(&cmd).0 {
                        failed.push(format!("{src} -> {dst} ({a})"));
                    }
                }
            }
        }
        assert!(
            failed.is_empty(),
            "{spec}: ping disagrees with check: {failed:?}"
        );
    }
    assert_gone(&p, &lab);
}

#[test]
fn single_3_comes_up() {
    comes_up_and_every_pair_reaches("single,3", "ngs");
}

#[test]
fn star_4_comes_up() {
    comes_up_and_every_pair_reaches("star,4", "ngr");
}

#[test]
fn chain_3_comes_up() {
    comes_up_and_every_pair_reaches("chain,3", "ngc");
}

// Switch-to-switch cables: bridge-to-bridge links.
#[test]
fn linear_4_comes_up() {
    comes_up_and_every_pair_reaches("linear,4", "ngl");
}

#[test]
fn tree_2_3_comes_up() {
    comes_up_and_every_pair_reaches("tree,depth=2,fanout=3", "ngt");
}

// Loops of switches: STP blocks the redundant ports; `up` waits until the others
// forward, so `check` straight after `up` must pass.
#[test]
fn ring_5_comes_up() {
    comes_up_and_every_pair_reaches("ring,5", "ngo");
}

#[test]
fn fattree_4_comes_up() {
    comes_up_and_every_pair_reaches("fattree,4", "ngf");
}
