//! Issue 17: one comparison for `status`, `plan` and `up`. Each drift is made by
//! hand on a running lab: `status` exits 1 naming it, `plan` lists the fix, `up`
//! repairs it, and `status` then exits 0.

mod common;
use common::*;

const LAB: &str = "name: drift
bridges: { br0: { address: 10.5.0.254/24 } }
nodes:
  a: { interfaces: { e: { address: 10.5.0.1/24, mtu: 1400, mac: \"02:00:00:00:05:01\" } }, routes: [\"10.5.1.0/24 via 10.5.0.3\"] }
  r:
    interfaces: { e: { address: 10.5.0.3/24 }, f: { address: 10.5.1.3/24 } }
    forward: true
  b: { interfaces: { f: { address: 10.5.1.2/24 } }, routes: [\"10.5.0.0/24 via 10.5.1.3\"] }
links: [[a:e, br0:pa], [r:e, br0:pr], [r:f, b:f]]
nat: [{ source: 10.5.0.0/24, not_out: br0 }]
";

/// `status` exits 1 and its output names `what`; `plan --json` has a step;
/// `up` repairs; `status` exits 0 again.
#[track_caller]
fn drift_is_seen_and_repaired(file: &str, p: &str, lab: &str, what: &str) {
    // Compared with the file (for a drift of the kernel, the same as the record).
    let st = nslab(&["status", file, "--prefix", p]);
    let said = text(&st);
    assert_eq!(st.status.code(), Some(1), "status sees {what}: {said}");
    assert!(said.contains(what), "status names {what}: {said}");
    let j = nslab(&["status", file, "--prefix", p, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let plan = ok(nslab(&["plan", file, "--sandbox", "--prefix", p, "--json"]));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert!(
        !plan["ops"].as_array().unwrap().is_empty(),
        "plan lists the fix for {what}"
    );
    let up = ok(nslab(&["up", file, "--sandbox", "--prefix", p]));
    assert!(!text(&up).contains("nothing to change"), "{}", text(&up));
    for st in [
        nslab(&["status", "--lab", lab]),
        nslab(&["status", file, "--prefix", p]),
    ] {
        assert!(st.status.success(), "after up, {what}: {}", text(&st));
    }
}

#[test]
fn each_drift_is_shown_by_status_listed_by_plan_and_repaired_by_up() {
    let p = prefix("drf");
    let lab = format!("{p}drift");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "drift.yaml", LAB);
    let file = s(&f);
    ok(nslab(&["up", file, "--sandbox", "--prefix", &p]));
    ok(nslab(&["status", "--lab", &lab]));
    assert!(pings(&format!("{p}a"), "10.5.1.2"), "through the router");

    // A router's forwarding turned off.
    sh(&format!(
        "ip netns exec {p}r sysctl -qw net.ipv4.ip_forward=0"
    ));
    let st = nslab(&["status", "--lab", &lab]);
    assert!(
        text(&st).contains("forwarding is off (the lab says forward: true)"),
        "both values: {}",
        text(&st)
    );
    assert!(!pings(&format!("{p}a"), "10.5.1.2"));
    drift_is_seen_and_repaired(file, &p, &lab, "net.ipv4.ip_forward=1");
    assert!(pings(&format!("{p}a"), "10.5.1.2"), "forwarding again");

    // A changed MAC.
    sh(&format!("ip -n {p}a link set e address 02:00:00:00:05:99"));
    let st = nslab(&["status", "--lab", &lab]);
    assert!(
        text(&st).contains("MAC 02:00:00:00:05:99 (the lab says 02:00:00:00:05:01)"),
        "both values: {}",
        text(&st)
    );
    drift_is_seen_and_repaired(file, &p, &lab, "MAC 02:00:00:00:05:01");
    assert_eq!(
        ip_json(Some(&format!("{p}a")), "link show e")[0]["address"],
        "02:00:00:00:05:01"
    );

    // A changed MTU.
    sh(&format!("ip -n {p}a link set e mtu 1300"));
    let st = nslab(&["status", "--lab", &lab]);
    assert!(
        text(&st).contains("mtu 1300 (the lab says 1400)"),
        "both values: {}",
        text(&st)
    );
    drift_is_seen_and_repaired(file, &p, &lab, "mtu 1400");
    assert_eq!(
        ip_json(Some(&format!("{p}a")), "link show e")[0]["mtu"],
        1400
    );

    // The contents of the lab's NAT table.
    sh(&format!(
        "ip netns exec {p}drift-host nft add rule inet nslab-{lab} postrouting ip saddr 10.5.9.0/24 masquerade"
    ));
    drift_is_seen_and_repaired(file, &p, &lab, "nftables table inet nslab-");
    let rules = sh(&format!(
        "ip netns exec {p}drift-host nft list table inet nslab-{lab}"
    ));
    assert!(!rules.contains("10.5.9.0"), "the extra rule went: {rules}");

    // A MAC changed in the file (once "nothing to change").
    let f2 = write_file(&dir, "drift.yaml", &LAB.replace("05:01", "05:02"));
    drift_is_seen_and_repaired(s(&f2), &p, &lab, "MAC 02:00:00:00:05:02");
    let _ = f2;
}

#[test]
fn a_program_that_died_is_drift_and_up_starts_it_again() {
    let p = prefix("drp");
    let lab = format!("{p}prog");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        &dir,
        "prog.yaml",
        "name: prog\nnodes:\n  a: { interfaces: { e: { address: 10.4.0.1/24 } }, run: [\"sleep 600\"] }\n  b: { interfaces: { e: { address: 10.4.0.2/24 } } }\nlinks: [[a:e, b:e]]\n",
    );
    let file = s(&f);
    ok(nslab(&["up", file, "--sandbox", "--prefix", &p]));
    ok(nslab(&["status", "--lab", &lab]));
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state_dir().join("labs").join(format!("{lab}.json"))).unwrap(),
    )
    .unwrap();
    let pid = rec["processes"][0]["pid"].as_i64().expect("a recorded pid");
    sh(&format!("kill {pid}"));
    let t = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // `plan` lists kernel steps only; status and up know the program.
    let st = nslab(&["status", "--lab", &lab]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    assert!(
        text(&st).contains("start `sleep 600` in a (not running)"),
        "{}",
        text(&st)
    );
    let up = ok(nslab(&["up", file, "--sandbox", "--prefix", &p]));
    assert!(text(&up).contains("started `sleep 600`"), "{}", text(&up));
    ok(nslab(&["status", "--lab", &lab]));
}
