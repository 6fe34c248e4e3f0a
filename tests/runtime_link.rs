//! Issue 20, runtime link control: `nslab link ENDPOINT down|up`, `nslab
//! partition GROUP -- GROUP`, `nslab heal`, kept by `up`, dropped by `up
//! --reset` and `down`, shown by `status` (not as drift) and named by why-not.
//! Every reachability claim is cross-checked with the system's `ping` run with
//! `ip netns exec`; link state with `ip -j`, tables with `nft -j`.

mod common;
use common::*;
use serde_json::Value;

/// A sandboxed lab of one test, taken down when dropped (also on panic).
struct Lab {
    p: String,
    lab: String,
    file: std::path::PathBuf,
    _g: LabGuard,
    _dir: tempfile::TempDir,
}

impl Lab {
    fn start(tag: &str, base: &str, text: &str) -> Lab {
        let p = format!("t20l-{tag}-");
        let lab = format!("{p}{base}");
        let g = LabGuard::new(&lab, None);
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(&dir, "lab.yaml", text);
        let l = Lab {
            p,
            lab,
            file,
            _g: g,
            _dir: dir,
        };
        ok(l.up(&[]));
        l
    }

    fn up(&self, extra: &[&str]) -> std::process::Output {
        let mut a = vec!["up", s(&self.file), "--sandbox", "--prefix", &self.p];
        a.extend(extra);
        nslab(&a)
    }

    fn ns(&self, n: &str) -> String {
        format!("{}{n}", self.p)
    }

    fn host(&self, base: &str) -> String {
        format!("{}{base}-host", self.p)
    }

    /// nslab with `--lab` (other labs may be up on this machine).
    fn run(&self, args: &[&str]) -> std::process::Output {
        // Before the arguments: what follows `--` is a partition's group.
        let mut a: Vec<&str> = vec![args[0], "--lab", &self.lab];
        a.extend(&args[1..]);
        nslab(&a)
    }

    fn record(&self) -> String {
        std::fs::read_to_string(state(&format!("labs/{}.json", self.lab))).unwrap()
    }

    fn status_json(&self) -> (Option<i32>, Value) {
        let o = self.run(&["status", "--json"]);
        (o.status.code(), serde_json::from_slice(&o.stdout).unwrap())
    }
}

/// `ping` from node namespace `ns` gets a reply within `secs` seconds (it keeps
/// sending until one comes: a link just set up needs the kernel's link watch).
fn reaches_within(ns: &str, dst: &str, secs: u32) -> bool {
    sh_status(&format!(
        "ip netns exec {ns} ping -4 -n -c 1 -w {secs} {dst}"
    ))
    .0
}

/// Two pings, one second each, both unanswered.
fn cut(ns: &str, dst: &str) -> bool {
    !sh_status(&format!("ip netns exec {ns} ping -4 -n -c 2 -W 1 {dst}")).0
}

/// Is interface `dev` administratively up in `ns` (`ip -j link`)?
fn admin_up(ns: &str, dev: &str) -> bool {
    let v = ip_json(Some(ns), &format!("link show dev {dev}"));
    v[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

/// Names of the nftables tables in a namespace (`nft -j list tables`).
fn nft_tables(ns: &str) -> Vec<String> {
    let out = sh(&format!("ip netns exec {ns} nft -j list tables"));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["table"]["name"].as_str().map(String::from))
        .collect()
}

const PAIR: &str = "name: ln
bridges:
  bri0: { addresses: [10.20.0.254/24, 10.20.9.254/24] }
nodes:
  a:
    interfaces: { eth0: { address: 10.20.0.1/24 } }
    routes: [ 10.20.9.0/24 via 10.20.0.254 ]
  b: { interfaces: { eth0: { address: 10.20.0.2/24 } } }
links:
  - [ a:eth0, bri0:abr ]
  - [ b:eth0, bri0:bbr ]
expect:
  - reach: a -> b
";

#[test]
fn link_down_up_kept_by_up_dropped_by_reset_and_down() {
    let l = Lab::start("l", "ln", PAIR);
    let (a, b, host) = (l.ns("a"), l.ns("b"), l.host("ln"));
    assert!(reaches_within(&a, "10.20.0.2", 5), "the lab works first");
    assert!(reaches_within(&a, "10.20.9.254", 5), "and its route");

    // Down: the interface is down in the kernel, ping fails, why-not names it.
    let o = ok(l.run(&["link", "a:eth0", "down"]));
    assert!(stdout(&o).contains("link a:eth0 is down"), "{}", text(&o));
    assert!(!admin_up(&a, "eth0"));
    assert!(cut(&a, "10.20.0.2"));
    let o = l.run(&["check", "--no-matrix"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("link a:eth0 is down (nslab link)"),
        "{}",
        text(&o)
    );
    // Status shows it as runtime state and exits 0: it is not drift.
    let st = l.run(&["status"]);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));
    assert!(stdout(&st).contains("runtime state"), "{}", text(&st));
    assert!(stdout(&st).contains("link a:eth0 is down (nslab link)"));
    let (code, j) = l.status_json();
    assert_eq!(code, Some(0));
    assert_eq!(j["runtime"]["links_down"][0]["endpoint"], "a:eth0");
    assert_eq!(j["drift"].as_array().unwrap().len(), 0, "{j}");
    // Twice is fine, and says so.
    let o = ok(l.run(&["link", "a:eth0", "down", "--json"]));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (r["state"].as_str(), r["changed"].as_bool()),
        (Some("down"), Some(false))
    );

    // `up` keeps it: nothing to change, still down.
    let o = ok(l.up(&[]));
    assert!(stdout(&o).contains("nothing to change"), "{}", text(&o));
    assert!(!admin_up(&a, "eth0"));
    assert!(cut(&a, "10.20.0.2"));

    // Up again: restored, with the route the kernel dropped with the link.
    ok(l.run(&["link", "a:eth0", "up"]));
    assert!(admin_up(&a, "eth0"));
    assert!(reaches_within(&a, "10.20.0.2", 5));
    assert!(
        reaches_within(&a, "10.20.9.254", 5),
        "the file's route is back"
    );
    assert_eq!(l.run(&["status"]).status.code(), Some(0));
    assert!(l.status_json().1["runtime"]["links_down"].is_null());

    // A bridge port: the far side of b's cable, in the lab's host.
    ok(l.run(&["link", "bri0:bbr", "down"]));
    assert!(!admin_up(&host, "bbr"));
    assert!(cut(&a, "10.20.0.2"));
    let o = l.run(&["check", "--no-matrix"]);
    assert!(
        text(&o).contains("link bri0:bbr is down (nslab link)"),
        "{}",
        text(&o)
    );
    assert_eq!(l.run(&["status"]).status.code(), Some(0));
    ok(l.up(&[]));
    assert!(!admin_up(&host, "bbr"), "up keeps a port set down");

    // `up --reset` drops it: the port is up and traffic flows.
    ok(l.up(&["--reset"]));
    assert!(admin_up(&host, "bbr"));
    assert!(reaches_within(&a, "10.20.0.2", 5));
    assert!(!l.record().contains("links_down"), "{}", l.record());

    // `down` clears it with the lab: nothing left.
    ok(l.run(&["link", "b:eth0", "down"]));
    ok(l.run(&["partition", "a", "--", "b"]));
    ok(nslab(&["down", "--lab", &l.lab]));
    assert_gone(&l.p, &l.lab);
    let _ = b;
}

#[test]
fn bad_endpoints_and_groups_exit_2_and_change_nothing() {
    let l = Lab::start("b", "ln", PAIR);
    let a = l.ns("a");
    let before = l.record();
    for (args, want) in [
        (vec!["link", "a:eth9", "down"], "\"a:eth9\""),
        (
            vec!["link", "zed:eth0", "down"],
            "valid endpoints: a:eth0, bri0:abr",
        ),
        (vec!["link", "bri0", "down"], "\"bri0\""),
        (vec!["link", "a:eth0", "sideways"], "\"sideways\""),
        (vec!["partition", "a", "--", "a"], "a is in both groups"),
        (vec!["partition", "a", "--", "nope"], "\"nope\""),
        (
            vec!["partition", "host", "--", "b"],
            "\"host\" is not a node",
        ),
        (vec!["partition", "@br7", "--", "b"], "br7"),
        (vec!["heal", "7"], "no partition 7"),
        (
            vec!["partition", "a", "--", "b", "--json"],
            "options go before `--`",
        ),
    ] {
        let o = l.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
    // A partition needs both groups.
    let o = l.run(&["partition", "a"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(l.record(), before, "the record is untouched");
    assert!(admin_up(&a, "eth0"));
    assert!(!nft_tables(&a).iter().any(|t| t.starts_with("nslab-part")));
    assert!(reaches_within(&a, "10.20.0.2", 5));
}

/// Six nodes on one bridge in two subnets: n1-n3 in 10.21.1.0/24, n4-n6 in
/// 10.21.2.0/24, so a pair across goes through the host (which routes between
/// the subnets and forwards), a pair inside stays on the bridge.
fn star() -> String {
    let mut y = String::from(
        "name: st\nbridges:\n  br0: { addresses: [10.21.1.254/24, 10.21.2.254/24] }\nnodes:\n",
    );
    for i in 1..=6 {
        let net = if i <= 3 { 1 } else { 2 };
        y.push_str(&format!(
            "  n{i}:\n    interfaces: {{ e: {{ address: 10.21.{net}.{i}/24 }} }}\n    routes: [ \"default via 10.21.{net}.254\" ]\n"
        ));
    }
    y.push_str("nat:\n  - { source: 10.21.0.0/16, not_out: br0 }\nlinks:\n");
    for i in 1..=6 {
        y.push_str(&format!("  - [ n{i}:e, br0:p{i} ]\n"));
    }
    y
}

fn addr(i: usize) -> String {
    format!("10.21.{}.{i}", if i <= 3 { 1 } else { 2 })
}

/// Every ordered pair (i, j), pinged in parallel: true when it answers.
fn matrix(l: &Lab) -> Vec<((usize, usize), bool)> {
    let mut hs = Vec::new();
    for i in 1..=6 {
        for j in 1..=6 {
            if i != j {
                let ns = l.ns(&format!("n{i}"));
                hs.push(std::thread::spawn(move || {
                    ((i, j), reaches_within(&ns, &addr(j), 3))
                }));
            }
        }
    }
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_partition_of_a_star_cuts_across_and_heal_restores() {
    let l = Lab::start("p", "st", &star());
    let side = |i: usize| i <= 3;
    let m = matrix(&l);
    assert!(m.iter().all(|x| x.1), "all pairs reach before: {m:?}");

    let o = ok(l.run(&[
        "partition",
        "--json",
        "n1,n2,n3",
        "--",
        "[n4,",
        "n5,",
        "n6]",
    ]));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["partition"]["id"], 1, "{r}");
    assert_eq!(
        r["partition"]["right"],
        serde_json::json!(["n4", "n5", "n6"])
    );
    let cmds: Vec<&str> = r["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let want = format!(
        "ip netns exec {} nft add rule inet nslab-part-1 output ip daddr 10.21.2.4 drop",
        l.ns("n1")
    );
    assert!(cmds.contains(&want.as_str()), "{cmds:?}");
    for ((i, j), reached) in matrix(&l) {
        assert_eq!(reached, side(i) == side(j), "n{i} -> n{j}: {reached}");
    }
    // The host itself still reaches everyone (the partition is between nodes).
    let host = l.host("st");
    for j in 1..=6 {
        assert!(reaches_within(&host, &addr(j), 3), "host -> n{j}");
    }
    assert!(nft_tables(&l.ns("n4")).contains(&"nslab-part-1".to_string()));
    // why-not names it; status shows it and exits 0.
    let o = l.run(&["ping", "n1", "n5", "-c", "1", "-W", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("n1 and n5 are partitioned (nslab partition 1)"),
        "{}",
        text(&o)
    );
    let st = l.run(&["status"]);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));
    assert!(stdout(&st).contains("partition 1: [n1, n2, n3] -- [n4, n5, n6]"));

    // A second one coexists; `up` keeps both; heal 2 removes only it.
    let o = ok(l.run(&["partition", "n1", "--", "n2"]));
    assert!(stdout(&o).starts_with("partition 2:"), "{}", text(&o));
    assert!(cut(&l.ns("n1"), &addr(2)));
    ok(l.up(&[]));
    assert!(cut(&l.ns("n1"), &addr(2)));
    assert!(cut(&l.ns("n6"), &addr(3)));
    ok(l.run(&["heal", "2"]));
    assert!(reaches_within(&l.ns("n1"), &addr(2), 3));
    assert!(cut(&l.ns("n1"), &addr(4)));
    assert!(!nft_tables(&l.ns("n2")).contains(&"nslab-part-2".to_string()));

    // heal: every pair reaches again, no table is left.
    let o = ok(l.run(&["heal", "--json"]));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["healed"][0]["id"], 1, "{r}");
    let m = matrix(&l);
    assert!(m.iter().all(|x| x.1), "all pairs reach after heal: {m:?}");
    for i in 1..=6 {
        let t = nft_tables(&l.ns(&format!("n{i}")));
        assert!(
            !t.iter().any(|t| t.starts_with("nslab-part")),
            "n{i}: {t:?}"
        );
    }
    assert!(!l.record().contains("partitions"));
}

/// Host mode (inside a namespace the test made, playing the host): a bridge
/// port set down lives in the host; `down` leaves nothing of it behind, and
/// a partition's tables go with the nodes' namespaces.
#[test]
fn host_mode_down_clears_runtime_state_and_leaves_nothing() {
    let p = "t20l-h-".to_string();
    let lab = format!("{p}ln");
    let t = TestNs::new("t20l-hT");
    let g = LabGuard::new(&lab, Some(&t.name));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "lab.yaml", PAIR);
    let run = |args: &[&str]| nslab_in(Some(&t.name), args);
    ok(run(&["up", s(&f), "--prefix", &p]));
    let before: Vec<String> = link_names(Some(&t.name));
    assert!(before.contains(&"abr".to_string()), "{before:?}");
    ok(run(&["link", "--lab", &lab, "bri0:abr", "down"]));
    assert!(!admin_up(&t.name, "abr"));
    assert!(cut(&format!("{p}a"), "10.20.0.2"));
    ok(run(&["partition", "--lab", &lab, "a", "--", "b"]));
    assert_eq!(run(&["status", "--lab", &lab]).status.code(), Some(0));
    ok(run(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
    let left: Vec<String> = link_names(Some(&t.name));
    assert_eq!(
        left,
        vec!["lo".to_string()],
        "host interfaces left: {left:?}"
    );
    drop(g);
}
