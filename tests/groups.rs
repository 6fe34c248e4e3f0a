//! Groups in expectations (`reach: all -> all`) and `check --nodes-only`, on a
//! sandboxed lab of four nodes on one bridge.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];

fn addr(n: &str) -> String {
    format!("10.21.0.{}", &n[1..])
}

fn lab_file() -> String {
    let mut y = String::from("name: grp\nbridges:\n  br0: { address: 10.21.0.254/24 }\nnodes:\n");
    for n in NODES {
        y.push_str(&format!(
            "  {n}:\n    interfaces: {{ e: {{ address: {}/24 }} }}\n",
            addr(n)
        ));
    }
    // A web server in n4 for `tcp: all -> n4:8000`.
    y.push_str("    run: [ \"python3 -m http.server --bind 10.21.0.4 8000\" ]\n");
    y.push_str("links:\n");
    for n in NODES {
        y.push_str(&format!("  - [ {n}:e, br0:p{n} ]\n"));
    }
    y.push_str(
        "expect:\n  - reach: all -> all\n  - no_reach: '[n1, n2] -> n3'\n  - tcp: all -> n4:8000\n",
    );
    y
}

fn check(lab: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["check", "--lab", lab, "--json"];
    args.extend(extra);
    let o = nslab(&args);
    let j: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (o.status.code(), j, text(&o))
}

fn failed_pairs(e: &Value) -> BTreeSet<(String, String)> {
    e["failed_pairs"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|p| {
                    (
                        p["src"].as_str().unwrap().to_string(),
                        p["dst"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn reach_all_to_all_lists_exactly_the_failing_pairs() {
    let p = format!("t21g-{}-", std::process::id() % 10000);
    let lab = format!("{p}grp");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "grp.yaml", &lab_file());
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));

    // All up: every pair reaches; `no_reach [n1, n2] -> n3` fails on its two pairs.
    let (code, j, out) = check(&lab, &["--nodes-only"]);
    assert_eq!(code, Some(1), "{out}");
    let ex = j["expectations"].as_array().unwrap();
    assert_eq!(ex[0]["name"], "reach: all -> all");
    assert_eq!(ex[0]["ok"], true, "{j:#}");
    assert_eq!(ex[0]["pairs"], 12, "4 nodes, not with themselves");
    assert!(failed_pairs(&ex[0]).is_empty());
    assert_eq!(ex[1]["ok"], false);
    let want: BTreeSet<(String, String)> = [("n1", "n3"), ("n2", "n3")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(failed_pairs(&ex[1]), want, "{j:#}");
    // Pair by pair for tcp: n1, n2, n3 to n4 (not n4 to itself).
    assert_eq!(ex[2]["ok"], true, "{j:#}");
    assert_eq!(ex[2]["pairs"], 3, "{j:#}");
    // --nodes-only: no host or internet rows, columns or cells.
    for fp in j["family_places"].as_array().unwrap() {
        for k in ["rows", "columns"] {
            let v: Vec<&str> = fp[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect();
            assert_eq!(v, NODES, "{k}: {j:#}");
        }
    }
    let cells = j["matrix"].as_array().unwrap();
    assert_eq!(cells.len(), 12);
    assert!(cells.iter().all(|c| c["reach"] == true), "{j:#}");
    assert_eq!(
        j["summary"],
        serde_json::json!({"pairs": 12, "pairs_reach": 12, "expectations": 3, "expectations_hold": 2})
    );
    // Without it the matrix has the host and the internet.
    let (_, all, _) = check(&lab, &[]);
    assert!(
        all["matrix"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["src"] == "host" || c["dst"] == "internet"),
        "{all:#}"
    );
    let o = nslab(&["check", "--lab", &lab, "--nodes-only"]);
    assert!(
        stdout(&o).contains("matrix: 12 of 12 pairs reach; expectations: 2 of 3 hold"),
        "{}",
        text(&o)
    );

    // n3's interface down, by hand: exactly the pairs involving n3 fail.
    sh(&format!("ip netns exec {p}n3 ip link set e down"));
    let mut broken = BTreeSet::new();
    for a in NODES {
        for b in NODES.iter().filter(|b| **b != a) {
            let reaches = pings(&format!("{p}{a}"), &addr(b));
            let involves = a == "n3" || *b == "n3";
            // The computed set and the system's ping agree.
            assert_eq!(reaches, !involves, "ping {a} -> {b}");
            if !reaches {
                broken.insert((a.to_string(), b.to_string()));
            }
        }
    }
    assert_eq!(broken.len(), 6);
    let junit = dir.path().join("junit.xml");
    let (code, j, out) = check(&lab, &["--no-matrix", "--junit", s(&junit)]);
    assert_eq!(code, Some(1), "{out}");
    let ex = j["expectations"].as_array().unwrap();
    assert_eq!(ex[0]["ok"], false);
    assert_eq!(failed_pairs(&ex[0]), broken, "{j:#}");
    assert!(
        ex[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("6 of 12 pairs fail: "),
        "{j:#}"
    );
    // The pairs from n3 say why: its interface is down.
    let from_n3 = ex[0]["failed_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["src"] == "n3")
        .unwrap();
    assert!(
        from_n3["why"].is_object(),
        "a failed pair says why: {from_n3:#}"
    );
    // The no_reach to n3 now holds; of the tcp pairs, n3's fails.
    assert_eq!(ex[1]["ok"], true, "{j:#}");
    let n3_n4: BTreeSet<(String, String)> = [("n3".to_string(), "n4".to_string())].into();
    assert_eq!(failed_pairs(&ex[2]), n3_n4, "{j:#}");
    assert_eq!(j["summary"]["expectations_hold"], 1);
    assert_eq!(j["summary"]["pairs"], 0, "no matrix");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("failures=\"2\""), "{x}");
    for (a, b) in &broken {
        assert!(x.contains(&format!("{a} -&gt; {b}")), "{a} -> {b} in {x}");
    }
    // The text lists every failing pair under the expectation.
    let o = nslab(&["check", "--lab", &lab, "--no-matrix"]);
    let t = stdout(&o);
    assert!(t.contains("FAIL reach: all -> all (line "), "{t}");
    for (a, b) in &broken {
        assert!(
            t.contains(&format!("      {a} -> {b} (")),
            "{a} -> {b} in {t}"
        );
    }
    assert!(t.contains("expectations: 1 of 3 hold"), "{t}");
}

#[test]
fn a_group_naming_an_unknown_node_is_refused_with_file_line_and_field() {
    let p = format!("t21g-{}b-", std::process::id() % 10000);
    let dir = tempfile::tempdir().unwrap();
    let bad = lab_file().replace("'[n1, n2] -> n3'", "'[n1, n9] -> @br0'");
    let f = write_file(&dir, "grp.yaml", &bad);
    let o = nslab(&["up", s(&f), "--sandbox", "--prefix", &p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = text(&o);
    assert!(
        e.contains("grp.yaml:21:") && e.contains("expect[1].no_reach") && e.contains("\"n9\""),
        "{e}"
    );
    assert!(
        !netns_list().iter().any(|n| n.starts_with(&p)),
        "nothing was made"
    );
}
