//! Tutorial objective 3: NAT to an emulated outside, router nodes, host forwarding.
//! Traffic stays between namespaces the tests made (documentation prefixes only).

mod common;
use common::*;

fn without_nat() -> String {
    let t = std::fs::read_to_string(example("objective3-nat.yaml")).unwrap();
    let i = t.find("nat:").unwrap();
    t[..i].to_string()
}

#[test]
fn the_tutorials_story_in_a_sandbox() {
    let p = prefix("nat");
    let lab = format!("{p}objective3");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "objective3-nat.yaml", &without_nat());
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let (green, host, inet) = (
        format!("{p}green"),
        format!("{p}objective3-host"),
        format!("{p}objective3-inet"),
    );

    // Without NAT the ping leaves by the uplink but no answer comes back: the
    // internet has no route to 192.168.0.0/16.
    let before = tx_packets(&host, "uplink");
    assert!(!pings(&green, "198.51.100.8"));
    assert!(
        tx_packets(&host, "uplink") > before,
        "the request left by the uplink"
    );

    // With the tutorial's masquerade the same ping works, and the internet sees the
    // host's uplink address, never a 192.168.x one.
    ok(nslab(&[
        "up",
        s(&example("objective3-nat.yaml")),
        "--sandbox",
        "--prefix",
        &p,
    ]));
    let dump = Tcpdump::start(&inet, "isp", "icmp");
    assert!(pings(&green, "198.51.100.8"));
    let seen = dump.stop();
    assert!(
        seen.contains("203.0.113.2 > 198.51.100.8: ICMP echo request"),
        "{seen}"
    );
    assert!(!seen.contains("192.168."), "{seen}");

    // The lab's table, as nft sees it.
    let rs = sh(&format!("ip netns exec {host} nft -j list ruleset"));
    let j: serde_json::Value = serde_json::from_str(&rs).unwrap();
    let items = j["nftables"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|x| x["table"]["name"] == format!("nslab-{lab}")),
        "{rs}"
    );
    assert!(rs.contains("\"masquerade\""), "{rs}");
    let text = sh(&format!("ip netns exec {host} nft list ruleset"));
    assert!(
        text.contains("ip saddr 192.168.0.0/16 oifname != \"bri0\" masquerade"),
        "{text}"
    );

    // Removed by hand: `up` puts it back.
    sh(&format!(
        "ip netns exec {host} nft delete table inet nslab-{lab}"
    ));
    ok(nslab(&[
        "up",
        s(&example("objective3-nat.yaml")),
        "--sandbox",
        "--prefix",
        &p,
    ]));
    assert!(sh(&format!("ip netns exec {host} nft list tables")).contains(&format!("nslab-{lab}")));
    assert!(pings(&green, "198.51.100.8"));

    // Dropping `nat` from the file removes the table.
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    assert!(
        !sh(&format!("ip netns exec {host} nft list tables")).contains(&format!("nslab-{lab}"))
    );
    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
}

/// A test-made host T with its own emulated uplink to U (the "internet").
struct Upstream {
    t: TestNs,
    u: TestNs,
}

fn upstream(p: &str) -> Upstream {
    let t = TestNs::new(&format!("{p}T"));
    let u = TestNs::new(&format!("{p}U"));
    sh(&format!(
        "ip -n {t} link add wan0 type veth peer name isp0 netns {u} && \
         ip -n {t} addr add 203.0.113.2/24 dev wan0 && ip -n {t} link set wan0 up && \
         ip -n {u} addr add 203.0.113.1/24 dev isp0 && ip -n {u} link set isp0 up && \
         ip -n {u} addr add 198.51.100.8/32 dev lo && \
         ip -n {t} route add default via 203.0.113.1",
        t = t.name,
        u = u.name
    ));
    Upstream { t, u }
}

fn forwarding(ns: &str) -> String {
    sh(&format!("ip netns exec {ns} sysctl -n net.ipv4.ip_forward"))
        .trim()
        .to_string()
}

#[test]
fn host_mode_nat_in_a_test_namespace() {
    let p = prefix("hnat");
    let lab = format!("{p}objective3");
    let up = upstream(&p);
    let t = up.t.name.clone();
    let _g = LabGuard::new(&lab, Some(&t));
    // A table of someone else, which must survive.
    sh(&format!(
        "ip netns exec {t} nft add table ip theirs && ip netns exec {t} nft add chain ip theirs c '{{ type filter hook forward priority 0; policy accept; }}'"
    ));
    assert_eq!(forwarding(&t), "0");
    ok(nslab_in(
        Some(&t),
        &["up", s(&example("objective3-nat.yaml")), "--prefix", &p],
    ));
    assert_eq!(forwarding(&t), "1", "NAT needs the host to forward");
    let dump = Tcpdump::start(&up.u.name, "isp0", "icmp");
    assert!(pings(&format!("{p}white"), "198.51.100.8"));
    let seen = dump.stop();
    assert!(seen.contains("203.0.113.2 > 198.51.100.8"), "{seen}");
    let tables = sh(&format!("ip netns exec {t} nft list tables"));
    assert!(
        tables.contains("theirs") && tables.contains(&format!("nslab-{lab}")),
        "{tables}"
    );
    ok(nslab_in(Some(&t), &["down", "--lab", &lab]));
    let tables = sh(&format!("ip netns exec {t} nft list tables"));
    assert!(
        tables.contains("table ip theirs") && !tables.contains("nslab-"),
        "{tables}"
    );
    assert_eq!(forwarding(&t), "0", "forwarding is put back");
}

#[test]
fn forwarding_is_restored_by_the_last_lab() {
    let p = prefix("fwd");
    let up = upstream(&p);
    let t = up.t.name.clone();
    let dir = tempfile::tempdir().unwrap();
    // Two labs in the same host, both with NAT, on different bridges and prefixes.
    let a = write_file(
        &dir,
        "a.yaml",
        "name: a\nbridges: { bra: { address: 10.1.0.1/16 } }\nnodes:\n  n: { interfaces: { e: { address: 10.1.1.1/24 } }, routes: [\"10.1.0.0/16 dev e\", \"default via 10.1.0.1\"] }\nlinks: [[n:e, bra:pa]]\nnat: [{ source: 10.1.0.0/16, not_out: bra }]\n",
    );
    let b = write_file(
        &dir,
        "b.yaml",
        "name: b\nbridges: { brb: { address: 10.2.0.1/16 } }\nnodes:\n  n: { interfaces: { e: { address: 10.2.1.1/24 } }, routes: [\"10.2.0.0/16 dev e\", \"default via 10.2.0.1\"] }\nlinks: [[n:e, brb:pb]]\nnat: [{ source: 10.2.0.0/16, not_out: brb }]\n",
    );
    let pa = format!("{p}a-");
    let pb = format!("{p}b-");
    let _ga = LabGuard::new(&format!("{pa}a"), Some(&t));
    let _gb = LabGuard::new(&format!("{pb}b"), Some(&t));
    ok(nslab_in(Some(&t), &["up", s(&a), "--prefix", &pa]));
    ok(nslab_in(Some(&t), &["up", s(&b), "--prefix", &pb]));
    assert_eq!(forwarding(&t), "1");
    assert!(pings(&format!("{pb}n"), "198.51.100.8"));
    ok(nslab_in(Some(&t), &["down", "--lab", &format!("{pa}a")]));
    assert_eq!(forwarding(&t), "1", "lab b still needs it");
    assert!(pings(&format!("{pb}n"), "198.51.100.8"));
    ok(nslab_in(Some(&t), &["down", "--lab", &format!("{pb}b")]));
    assert_eq!(forwarding(&t), "0");
}

#[test]
fn a_router_node_forwards_between_two_subnets() {
    let p = prefix("rtr");
    let lab = format!("{p}chain");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let text = "name: chain\nnodes:\n  a:\n    interfaces: { e: { address: 10.0.1.2/24 } }\n    routes: [\"default via 10.0.1.1\"]\n  r:\n    forward: true\n    interfaces:\n      left: { address: 10.0.1.1/24 }\n      right: { address: 10.0.2.1/24 }\n  b:\n    interfaces: { e: { address: 10.0.2.2/24 } }\n    routes: [\"default via 10.0.2.1\"]\nlinks:\n  - [a:e, r:left]\n  - [r:right, b:e]\n";
    let f = write_file(&dir, "chain.yaml", text);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    assert!(pings(&format!("{p}a"), "10.0.2.2"), "a reaches b through r");
    assert!(pings(&format!("{p}b"), "10.0.1.2"));
    // Without `forward`, r drops what is not addressed to it.
    std::fs::write(&f, text.replace("    forward: true\n", "")).unwrap();
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    assert_eq!(forwarding(&format!("{p}r")), "0");
    assert!(!pings(&format!("{p}a"), "10.0.2.2"));
    assert!(
        pings(&format!("{p}a"), "10.0.1.1"),
        "r itself still answers"
    );
}
