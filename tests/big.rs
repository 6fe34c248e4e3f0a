//! Big labs under a small open-file limit (issue 23): nslab holds a bounded
//! number of descriptors, so a lab of more nodes than the limit allows
//! descriptors comes up, reads clean and goes down. The 10,000-node run is a
//! benchmark (bench/big.sh), not a test.

mod common;
use common::*;
use std::process::{Command, Stdio};

/// One bridge of `n` nodes, each cabled to it (bench/multistar.py's lab).
fn star(n: usize) -> String {
    let mut t = String::from("name: big\nbridges:\n  br0: { address: 10.0.255.254/16 }\nnodes:\n");
    for k in 0..n {
        t += &format!(
            "  n{k}:\n    interfaces: {{ e0: {{ address: 10.0.{}.{}/16 }} }}\n    routes: [ \"default dev e0\" ]\n",
            k / 250,
            k % 250 + 1
        );
    }
    t += "links:\n";
    for k in 0..n {
        t += &format!("  - [ n{k}:e0, br0:p{k} ]\n");
    }
    t
}

/// nslab under an open-file limit of `limit` (soft and hard: it cannot raise it).
fn limited(limit: u32, args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run nslab")
}

#[test]
fn three_hundred_nodes_under_a_limit_of_256_descriptors() {
    let p = prefix("big");
    let lab = format!("{p}big");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "big.yaml", &star(300));
    let f = file.to_str().unwrap();
    // 300 nodes would need ~600 descriptors held at once before issue 23.
    let o = limited(256, &["up", f, "--sandbox", "--prefix", &p]);
    assert!(o.status.success(), "up: {}", text(&o));
    assert_eq!(
        netns_list().iter().filter(|n| n.starts_with(&p)).count(),
        302,
        "300 nodes, the sandbox's host and internet"
    );
    // Every node is cabled to the bridge, both ends in the right place.
    for k in [0, 149, 299] {
        let ns = format!("{p}n{k}");
        assert!(
            link_names(Some(&ns)).contains(&"e0".to_string()),
            "e0 in {ns}"
        );
    }
    let host = format!("{p}big-host");
    let ports = ip_json(Some(&host), "link show master br0");
    assert_eq!(ports.as_array().map(Vec::len), Some(300));
    assert!(pings(&format!("{p}n0"), "10.0.1.50"), "n0 -> n299");
    // Many ports: made without IPv6 (no route of theirs in the host's IPv6
    // table to walk at each carrier change); the bridge and the uplink keep
    // it, and the host's default is back to the kernel's.
    let v6_off = |dev: &str| {
        let o = Command::new("ip")
            .args(["netns", "exec", &host, "cat"])
            .arg(format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"))
            .output()
            .expect("ip netns exec");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    for (dev, want) in [
        ("p0", "1"),
        ("p299", "1"),
        ("br0", "0"),
        ("uplink", "0"),
        ("default", "0"),
    ] {
        assert_eq!(v6_off(dev), want, "disable_ipv6 of {dev} in {host}");
    }
    let v6 = ip_json(Some(&host), "-6 route show table all");
    let on_ports = v6
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dev"].as_str().is_some_and(|d| d.starts_with('p')))
        .count();
    assert_eq!(on_ports, 0, "IPv6 routes on ports: {v6}");
    // Reading the lab (status, plan, a second up) under the same limit.
    let st = limited(256, &["status", "--lab", &lab, "--json"]);
    assert!(st.status.success(), "status: {}", text(&st));
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status JSON");
    assert_eq!(v["ok"], true, "{}", text(&st));
    assert_eq!(v["drift"].as_array().map(Vec::len), Some(0));
    let again = limited(256, &["up", f, "--sandbox", "--prefix", &p, "--json"]);
    assert!(again.status.success(), "second up: {}", text(&again));
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).expect("up JSON");
    assert_eq!(v["changed"], false, "{}", text(&again));
    let d = limited(256, &["down", "--lab", &lab]);
    assert!(d.status.success(), "down: {}", text(&d));
    assert_gone(&p, &lab);
}
