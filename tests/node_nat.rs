//! Issue #22, items 3 and 4: NAT in a router node, IPv6 masquerade to the
//! sandbox internet, per-node and host sysctls (rp_filter on a router), each
//! changed by hand and repaired by `up`. Sandboxed labs, or host mode inside a
//! namespace the test made; documentation and private prefixes only.

mod common;
use common::*;

/// `a` behind router `r`; `r`'s wan on bridge br0 with `far`, which has no route
/// back to a's LAN: only r's masquerade lets a reach it.
const ROUTER: &str = r#"
name: rnat
bridges: { br0: {} }
nodes:
  a:
    interfaces: { e: { address: 10.71.0.2/24 } }
    routes: [ "default via 10.71.0.1" ]
  r:
    forward: true
    interfaces: { lan: { address: 10.71.0.1/24 }, wan: { address: 10.72.0.2/24 } }
    nat: [ { source: 10.71.0.0/24, out: wan } ]
  far:
    interfaces: { e: { address: 10.72.0.3/24 } }
links: [ [ a:e, r:lan ], [ r:wan, br0:pr ], [ far:e, br0:pf ] ]
"#;

fn without_router_nat() -> String {
    ROUTER.replace("    nat: [ { source: 10.71.0.0/24, out: wan } ]\n", "")
}

#[test]
fn a_router_node_masquerades_for_the_lan_behind_it() {
    let p = prefix("rnat");
    let lab = format!("{p}rnat");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "rnat.yaml", ROUTER);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let (a, r, far) = (format!("{p}a"), format!("{p}r"), format!("{p}far"));

    // far sees r's wan address, never a's.
    let dump = Tcpdump::start(&far, "e", "icmp");
    assert!(pings(&a, "10.72.0.3"));
    let seen = dump.stop();
    assert!(
        seen.contains("10.72.0.2 > 10.72.0.3: ICMP echo request"),
        "{seen}"
    );
    assert!(!seen.contains("10.71.0.2"), "{seen}");

    // The router's table, as nft sees it: inet, marked, one masquerade.
    let j: serde_json::Value = serde_json::from_str(&sh(&format!(
        "ip netns exec {r} nft -j list table inet nslab-{lab}"
    )))
    .unwrap();
    let items = j["nftables"].as_array().unwrap();
    let listed = sh(&format!(
        "ip netns exec {r} nft list table inet nslab-{lab}"
    ));
    assert!(
        listed.contains(&format!("comment \"nslab:{lab}\"")),
        "{listed}"
    );
    let rules: Vec<&serde_json::Value> = items.iter().filter_map(|x| x.get("rule")).collect();
    assert_eq!(rules.len(), 1, "{j}");
    let expr = rules[0]["expr"].to_string();
    assert!(
        expr.contains("10.71.0.0") && expr.contains("masquerade") && expr.contains("wan"),
        "{expr}"
    );

    // The table deleted by hand: status shows it, up repairs it.
    sh(&format!(
        "ip netns exec {r} nft delete table inet nslab-{lab}"
    ));
    let st = nslab(&["status", "--lab", &lab]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    assert!(
        text(&st).contains(&format!("set nftables table inet nslab-{lab} in {r}")),
        "{}",
        text(&st)
    );
    let j: serde_json::Value =
        serde_json::from_slice(&nslab(&["status", "--lab", &lab, "--json"]).stdout).unwrap();
    assert_eq!(
        j["nat"],
        serde_json::json!([{"place": "r", "table": format!("inet nslab-{lab}"),
            "rules": ["ip saddr 10.71.0.0/24 oifname \"wan\" masquerade"], "status": "missing"}]),
        "{j}"
    );
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let st = ok(nslab(&["status", "--lab", &lab]));
    assert!(stdout(&st).contains("NAT TABLE"), "{}", text(&st));
    assert!(pings(&a, "10.72.0.3"));

    // A router's nat entry that excludes the way out: the ping fails and why-not
    // names the router and its entry.
    let f2 = write_file(
        &dir,
        "rnat.yaml",
        &ROUTER.replace("out: wan }", "not_out: wan }"),
    );
    ok(nslab(&["up", s(&f2), "--sandbox", "--prefix", &p]));
    assert!(!pings(&a, "10.72.0.3"));
    let o = nslab(&[
        "ping",
        "a",
        "10.72.0.3",
        "-c",
        "1",
        "-W",
        "1",
        "--lab",
        &lab,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(
            "10.71.0.2 leaves r by wan without NAT: the nat entry `{ source: 10.71.0.0/24, not_out: wan }` does not apply to wan"
        ),
        "{}",
        text(&o)
    );
    // Without the router's nat its table goes.
    let f3 = write_file(&dir, "rnat.yaml", &without_router_nat());
    ok(nslab(&["up", s(&f3), "--sandbox", "--prefix", &p]));
    let tables = sh(&format!("ip netns exec {r} nft list tables"));
    assert!(
        !tables.contains("nslab-"),
        "the router's table went: {tables}"
    );
    assert!(!pings(&a, "10.72.0.3"));
    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
}

/// An IPv6 lab behind the sandbox host: its ULA source is masqueraded to the
/// uplink's 2001:db8:ffff::2 on the way to the internet's 2001:db8:ffff::1.
const SIX: &str = r#"
name: six
bridges: { br6: { address: "fd66::1/64" } }
nodes:
  n:
    interfaces: { e: { address: "fd66::2/64" } }
    routes: [ "default via fd66::1" ]
links: [ [ n:e, br6:pn ] ]
nat: [ { source: "fd66::/64", not_out: br6 } ]
"#;

#[test]
fn ipv6_masquerade_to_the_sandbox_internet() {
    let p = prefix("nat6");
    let lab = format!("{p}six");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let no_nat = SIX.replace("nat: [ { source: \"fd66::/64\", not_out: br6 } ]\n", "");
    let f = write_file(&dir, "six.yaml", &no_nat);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let (n, inet, host) = (
        format!("{p}n"),
        format!("{p}six-inet"),
        format!("{p}six-host"),
    );
    // The internet's IPv6 end, and the sandbox host's default route to it.
    let addrs = sh(&format!("ip -n {inet} -6 addr show dev isp"));
    assert!(addrs.contains("2001:db8:ffff::1/64"), "{addrs}");
    let routes = sh(&format!("ip -n {host} -6 route show default"));
    assert!(routes.contains("via 2001:db8:ffff::1"), "{routes}");
    // Without NAT the internet has no route back to fd66::/64.
    assert!(!pings(&n, "2001:db8:ffff::1"));

    let f = write_file(&dir, "six.yaml", SIX);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let dump = Tcpdump::start(&inet, "isp", "icmp6 and ip6[40] == 128");
    assert!(pings(&n, "2001:db8:ffff::1"));
    let seen = dump.stop();
    assert!(
        seen.contains("2001:db8:ffff::2 > 2001:db8:ffff::1"),
        "{seen}"
    );
    assert!(!seen.contains("fd66::2"), "{seen}");
    let rules = sh(&format!(
        "ip netns exec {host} nft list table inet nslab-{lab}"
    ));
    assert!(
        rules.contains("ip6 saddr fd66::/64 oifname != \"br6\" masquerade"),
        "{rules}"
    );
    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
}

/// The previous version's NAT table (`table ip`, marked) in a lab that is up:
/// `up` replaces it by the inet table, and only that remains.
#[test]
fn up_replaces_the_old_ip_table() {
    let p = prefix("natmig");
    let lab = format!("{p}objective3");
    let _g = LabGuard::new(&lab, None);
    let f = example("objective3-nat.yaml");
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let host = format!("{p}objective3-host");
    // The table as the old version built it, instead of the new one.
    sh(&format!(
        "ip netns exec {host} nft delete table inet nslab-{lab} && \
         ip netns exec {host} nft add table ip nslab-{lab} '{{ comment \"nslab:{lab}\"; }}' && \
         ip netns exec {host} nft add chain ip nslab-{lab} postrouting '{{ type nat hook postrouting priority srcnat; policy accept; }}' && \
         ip netns exec {host} nft add rule ip nslab-{lab} postrouting ip saddr 192.168.0.0/16 oifname != bri0 masquerade"
    ));
    let st = nslab(&["status", "--lab", &lab]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let tables = sh(&format!("ip netns exec {host} nft list tables"));
    assert_eq!(tables.trim(), format!("table inet nslab-{lab}"), "{tables}");
    ok(nslab(&["status", "--lab", &lab]));
    assert!(pings(&format!("{p}green"), "198.51.100.8"));
}

/// c reaches s through router r, whose route back to c goes by another cable
/// (x2): an asymmetric path. Strict rp_filter on r drops c's packets.
const RP: &str = r#"
name: rp
nodes:
  c:
    interfaces: { e1: { address: 10.81.0.2/24 }, e2: { address: 10.83.0.2/24 } }
    routes: [ "10.82.0.0/24 via 10.81.0.1" ]
  r:
    forward: true
    interfaces: { x1: { address: 10.81.0.1/24 }, x2: { address: 10.83.0.1/24 }, y: { address: 10.82.0.1/24 } }
    routes: [ "10.81.0.2/32 via 10.83.0.2" ]
    sysctl: { net.ipv4.conf.all.rp_filter: 1 }
  s:
    interfaces: { e: { address: 10.82.0.2/24 } }
    routes: [ "default via 10.82.0.1" ]
links: [ [ c:e1, r:x1 ], [ c:e2, r:x2 ], [ r:y, s:e ] ]
"#;

#[test]
fn strict_rp_filter_on_a_router_is_named_and_repaired_by_up() {
    let p = prefix("rpf");
    let lab = format!("{p}rp");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "rp.yaml", RP);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let (c, r) = (format!("{p}c"), format!("{p}r"));
    let get = |ns: &str| {
        sh(&format!(
            "ip netns exec {ns} sysctl -n net.ipv4.conf.all.rp_filter"
        ))
    };
    assert_eq!(get(&r).trim(), "1");

    // The probe fails, and why-not names rp_filter in r.
    assert!(!pings(&c, "10.82.0.2"));
    let o = nslab(&[
        "ping",
        "c",
        "10.82.0.2",
        "-c",
        "1",
        "-W",
        "1",
        "--lab",
        &lab,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(
            "reverse-path filtering (strict) in r drops packets from 10.81.0.2 arriving on x1"
        ),
        "{t}"
    );

    // Changed by hand: status shows wanted and found, plan lists it, up repairs it.
    sh(&format!(
        "ip netns exec {r} sysctl -qw net.ipv4.conf.all.rp_filter=0"
    ));
    let st = nslab(&["status", "--lab", &lab, "--json"]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let x = &j["sysctls"][0];
    assert_eq!(
        (
            &x["place"],
            &x["key"],
            &x["want"],
            &x["found"],
            &x["status"]
        ),
        (
            &serde_json::json!("r"),
            &serde_json::json!("net.ipv4.conf.all.rp_filter"),
            &serde_json::json!("1"),
            &serde_json::json!("0"),
            &serde_json::json!("different")
        ),
        "{j}"
    );
    assert!(
        j["drift"]
            .to_string()
            .contains(&format!("set net.ipv4.conf.all.rp_filter=1 in {r}")),
        "{j}"
    );
    // Meanwhile (rp_filter off) the asymmetric path works, once c forgets the
    // ARP request strict mode refused (a FAILED entry fails sends at once for a
    // while instead of asking again).
    sh(&format!("ip -n {c} neigh flush all"));
    assert!(pings(&c, "10.82.0.2"));
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    assert_eq!(get(&r).trim(), "1");
    ok(nslab(&["status", "--lab", &lab]));
    assert!(!pings(&c, "10.82.0.2"));

    // The same lab without the sysctl passes (a new namespace has rp_filter 0).
    let f2 = write_file(
        &dir,
        "rp.yaml",
        &RP.replace("    sysctl: { net.ipv4.conf.all.rp_filter: 1 }\n", ""),
    );
    ok(nslab(&["down", "--lab", &lab]));
    ok(nslab(&["up", s(&f2), "--sandbox", "--prefix", &p]));
    assert_eq!(get(&r).trim(), "0");
    assert!(pings(&c, "10.82.0.2"));
    ok(nslab(&["ping", "c", "10.82.0.2", "-c", "1", "--lab", &lab]));
    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
}

#[test]
fn a_sysctl_the_kernel_does_not_have_is_refused_at_up() {
    let p = prefix("sysno");
    let lab = format!("{p}sysno");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        &dir,
        "sysno.yaml",
        "name: sysno\nnodes:\n  a:\n    sysctl: { net.ipv4.no_such_key: 1 }\n",
    );
    let o = nslab(&["up", s(&f), "--sandbox", "--prefix", &p]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("net.ipv4.no_such_key"), "{}", text(&o));
    // What the run made is rolled back.
    assert_gone(&p, &lab);
}

/// Host mode inside a namespace the test made: an allow-listed host sysctl is
/// set at up, its old value put back at down; others are refused by validation.
#[test]
fn host_mode_sysctls_are_allow_listed_and_put_back() {
    let p = prefix("hsys");
    let lab = format!("{p}hsys");
    let t = TestNs::new(&format!("{p}T"));
    let _g = LabGuard::new(&lab, Some(&t.name));
    let dir = tempfile::tempdir().unwrap();
    let key = "net.ipv4.conf.all.log_martians";
    let get = || {
        sh(&format!("ip netns exec {} sysctl -n {key}", t.name))
            .trim()
            .to_string()
    };
    assert_eq!(get(), "0");
    let f = write_file(
        &dir,
        "hsys.yaml",
        &format!("name: hsys\nhost:\n  sysctl: {{ {key}: 1 }}\nnodes:\n  a: {{}}\n"),
    );
    ok(nslab_in(Some(&t.name), &["up", s(&f), "--prefix", &p]));
    assert_eq!(get(), "1");
    // Changed by hand: status says so, up sets it again.
    sh(&format!("ip netns exec {} sysctl -qw {key}=0", t.name));
    let st = nslab_in(Some(&t.name), &["status", "--lab", &lab]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    ok(nslab_in(Some(&t.name), &["up", s(&f), "--prefix", &p]));
    assert_eq!(get(), "1");
    ok(nslab_in(Some(&t.name), &["down", "--lab", &lab]));
    assert_eq!(get(), "0", "the old value is put back at down");

    // Not on the allow-list: refused, nothing made.
    let bad = write_file(
        &dir,
        "bad.yaml",
        "name: hsys\nhost:\n  sysctl: { net.ipv4.conf.all.route_localnet: 1 }\n",
    );
    let o = nslab_in(Some(&t.name), &["up", s(&bad), "--prefix", &p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.yaml:3"), "{}", text(&o));
    assert!(text(&o).contains("route_localnet"), "{}", text(&o));
    assert_eq!(
        sh(&format!(
            "ip netns exec {} sysctl -n net.ipv4.conf.all.route_localnet",
            t.name
        ))
        .trim(),
        "0"
    );
}
