//! Per-node firewalls (`firewall:`): one `table inet nslab-LAB-fw` per
//! namespace. Sandboxed labs, or host mode inside namespaces the tests made;
//! `ping`, `curl` and `nft` are the witnesses.

mod common;
use common::*;

/// web serves HTTP on 800 behind an input policy of drop; the first rule
/// (UDP 9 from bad) never matches a ping, the second drops ICMP from bad.
fn lab_file(name: &str) -> String {
    format!(
        r#"name: {name}
bridges:
  br0: {{ address: 10.0.0.254/24 }}
nodes:
  web:
    interfaces: {{ eth0: {{ address: 10.0.0.1/24 }} }}
    run: [ "python3 -m http.server 800" ]
    firewall:
      input:
        policy: drop
        rules:
          - {{ proto: udp, dport: 9, from: 10.0.0.2, action: drop }}
          - {{ proto: icmp, from: 10.0.0.2, action: drop }}
          - {{ proto: tcp, dport: "800-801", action: accept }}
          - {{ state: [established, related], action: accept }}
          - {{ proto: icmp, action: accept }}
      output:
        rules:
          - {{ proto: udp, to: 10.0.0.3, dport: 7, action: reject }}
  bad:
    interfaces: {{ eth0: {{ address: 10.0.0.2/24 }} }}
  good:
    interfaces: {{ eth0: {{ address: 10.0.0.3/24 }} }}
links:
  - [ web:eth0, br0:p-web ]
  - [ bad:eth0, br0:p-bad ]
  - [ good:eth0, br0:p-good ]
expect:
  - reach: good -> web
  - reach: bad -> web
  - tcp: good -> web:9999
"#
    )
}

/// The 1-based line of the file holding `needle`.
fn line_of(file: &str, needle: &str) -> usize {
    file.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in the file"))
        + 1
}

fn curl_ok(ns: &str, url: &str) -> bool {
    sh_status(&format!(
        "ip netns exec {ns} curl -s -4 -m 5 -o /dev/null '{url}'"
    ))
    .0
}

fn nft_rules(ns: &str, table: &str) -> Option<serde_json::Value> {
    let (ok, out) = sh_status(&format!(
        "ip netns exec {ns} nft -j list table inet {table}"
    ));
    ok.then(|| serde_json::from_str(&out).expect("nft -j output"))
}

#[track_caller]
fn status_drift(lab: &str, want: &str) {
    let st = nslab(&["status", "--lab", lab]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    assert!(text(&st).contains(want), "want {want:?} in:\n{}", text(&st));
}

#[test]
fn a_node_firewall_drops_ping_names_the_rule_lets_http_through_and_is_repaired() {
    let p = prefix("fw");
    let lab = format!("{p}fw");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let file = lab_file("fw");
    let f = write_file(&dir, "fw.yaml", &file);
    let up = ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let table = format!("nslab-{lab}-fw");
    assert!(
        text(&up).contains(&format!("firewall of web: table inet {table} made")),
        "{}",
        text(&up)
    );
    let (web, bad, good) = (format!("{p}web"), format!("{p}bad"), format!("{p}good"));
    wait_listen(&web, 800);

    // nft's own reading: policy drop on input, the rules in file order, each
    // carrying its line.
    let j = nft_rules(&web, &table).expect("the firewall table exists");
    let items = j["nftables"].as_array().unwrap();
    let input = items
        .iter()
        .find(|x| x["chain"]["name"] == "input")
        .expect("chain input");
    assert_eq!(input["chain"]["policy"], "drop", "{j}");
    assert_eq!(input["chain"]["hook"], "input", "{j}");
    let comments: Vec<&str> = items
        .iter()
        .filter(|x| x["rule"]["chain"] == "input")
        .filter_map(|x| x["rule"]["comment"].as_str())
        .collect();
    let icmp_line = line_of(&file, "proto: icmp, from: 10.0.0.2");
    let udp_line = line_of(&file, "proto: udp, dport: 9");
    assert_eq!(comments.len(), 5, "{j}");
    assert_eq!(comments[0], format!("line {udp_line}"));
    assert_eq!(comments[1], format!("line {icmp_line}"));
    let listed = sh(&format!("ip netns exec {web} nft list table inet {table}"));
    assert!(listed.contains("tcp dport 800-801 accept"), "{listed}");
    assert!(
        listed.contains("ct state established,related accept"),
        "{listed}"
    );
    assert!(listed.contains("udp dport 7 reject"), "{listed}");

    // ICMP from bad is dropped; from good it passes; HTTP from bad passes.
    assert!(!pings(&bad, "10.0.0.1"));
    assert!(pings(&good, "10.0.0.1"));
    assert!(curl_ok(&bad, "http://10.0.0.1:800/"));

    // why-not names the rule's line, not the UDP drop rule before it.
    let o = nslab(&["ping", "--json", "--lab", &lab, "bad", "web"]);
    assert!(!o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let why = &v["why_not"];
    assert_eq!(why["reason"], "firewall_drop", "{v}");
    assert_eq!(why["at"], "web", "{v}");
    assert_eq!(why["table"], table.as_str(), "{v}");
    assert_eq!(why["rule"]["line"], icmp_line, "{v}");
    assert_ne!(why["rule"]["line"], udp_line, "{v}");
    let o = nslab(&["ping", "--lab", &lab, "bad", "web"]);
    assert!(
        text(&o).contains(&format!("the rule at line {icmp_line} of web's firewall")),
        "{}",
        text(&o)
    );

    // check: the expectation bad -> web fails, naming the same line.
    let o = nslab(&["check", s(&f), "--lab", &lab]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("the rule at line {icmp_line} of web's firewall")),
        "{}",
        text(&o)
    );

    // No rule takes TCP port 9999: the chain's policy drops it, named at the
    // line of `policy: drop`.
    assert!(
        text(&o).contains(&format!(
            "the policy drop of chain input of web's firewall at line {}",
            line_of(&file, "policy: drop")
        )),
        "{}",
        text(&o)
    );

    // plan --explain says the same as nft commands.
    let plan = stdout(&ok(nslab(&[
        "plan",
        "--explain",
        s(&f),
        "--sandbox",
        "--prefix",
        &p,
    ])));
    assert!(
        plan.contains(&format!(
            "ip netns exec {web} nft 'add chain inet {table} input {{ type filter hook input priority filter; policy drop; }}'"
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "nft 'add rule inet {table} input ip saddr 10.0.0.2/32 meta l4proto icmp drop comment \"line {icmp_line}\"'"
        )),
        "{plan}"
    );
    let st = stdout(&ok(nslab(&["status", "--lab", &lab])));
    assert!(
        st.contains(&format!("firewall web: input (policy drop, 5 rules), output (policy accept, 1 rule) -- table inet {table}: ok")),
        "{st}"
    );

    // Each kind of change by hand: status shows it, plan says what up does,
    // up repairs it.
    let h = |x: usize| -> u64 {
        let j = nft_rules(&web, &table).unwrap();
        j["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["rule"]["chain"] == "input")
            .nth(x)
            .and_then(|i| i["rule"]["handle"].as_u64())
            .expect("a rule handle")
    };
    let nft = |cmd: &str| sh(&format!("ip netns exec {web} nft {cmd}"));
    let cases: Vec<(String, String)> = vec![
        (
            format!("delete rule inet {table} input handle {}", h(1)),
            format!("the file's rule of line {icmp_line}"),
        ),
        (
            format!("'chain inet {table} input {{ policy accept; }}'"),
            "chain input has policy accept, the file says drop".into(),
        ),
        (
            format!(
                "'replace rule inet {table} input handle {} tcp dport 800-802 accept comment \"line {}\"'",
                h(2),
                line_of(&file, "dport: \"800-801\"")
            ),
            "is not the file's rule of line".into(),
        ),
        (
            format!("add rule inet {table} input tcp dport 22 accept"),
            "rule(s) not in the file".into(),
        ),
        (
            format!("delete chain inet {table} output"),
            "chain output is missing".into(),
        ),
        (
            format!("delete table inet {table}"),
            format!("nftables table inet {table} in web: missing"),
        ),
    ];
    for (cmd, want) in cases {
        nft(&cmd);
        status_drift(&lab, &want);
        let plan = stdout(&ok(nslab(&["plan", s(&f), "--sandbox", "--prefix", &p])));
        assert!(plan.contains("# firewalls: `up` "), "{cmd}: {plan}");
        let up = ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
        assert!(
            text(&up).contains("firewall of web: table inet"),
            "{cmd}: {}",
            text(&up)
        );
        ok(nslab(&["status", "--lab", &lab]));
        assert!(!pings(&bad, "10.0.0.1"), "after {cmd}");
    }

    // The firewall dropped from the file: up deletes the table.
    let bare = file.replace(
        &file[file.find("    firewall:").unwrap()..file.find("  bad:").unwrap()],
        "",
    );
    let g = write_file(&dir, "bare.yaml", &bare);
    let up = ok(nslab(&["up", s(&g), "--sandbox", "--prefix", &p]));
    assert!(text(&up).contains("deleted"), "{}", text(&up));
    assert!(nft_rules(&web, &table).is_none());
    assert!(pings(&bad, "10.0.0.1"));

    ok(nslab(&["down", "--lab", &lab, "--kill"]));
    assert_gone(&p, &lab);
}

/// With br_netfilter (on in this kernel), a sandbox host's forward chain
/// sees traffic bridged between two nodes of its bridge.
#[test]
fn a_sandbox_hosts_forward_chain_sees_bridged_traffic_with_br_netfilter() {
    let p = prefix("fwbr");
    let lab = format!("{p}br");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let file = r#"name: br
bridges:
  br0: { address: 10.0.0.254/24 }
nodes:
  a:
    interfaces: { eth0: { address: 10.0.0.2/24 } }
  b:
    interfaces: { eth0: { address: 10.0.0.3/24 } }
  c:
    interfaces: { eth0: { address: 10.0.0.4/24 } }
links:
  - [ a:eth0, br0:pa ]
  - [ b:eth0, br0:pb ]
  - [ c:eth0, br0:pc ]
host:
  firewall:
    forward:
      rules:
        - { proto: icmp, from: 10.0.0.2, to: 10.0.0.3, action: drop }
"#;
    let f = write_file(&dir, "br.yaml", file);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let host = format!("{p}br-host");
    let on = sh(&format!(
        "ip netns exec {host} sysctl -n net.bridge.bridge-nf-call-iptables"
    ));
    assert_eq!(on.trim(), "1", "br_netfilter is expected on in this kernel");
    let (a, c) = (format!("{p}a"), format!("{p}c"));
    assert!(!pings(&a, "10.0.0.3"));
    assert!(pings(&a, "10.0.0.4"));
    assert!(pings(&c, "10.0.0.3"));
    let o = nslab(&["ping", "--json", "--lab", &lab, "a", "b"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["why_not"]["at"], "host", "{v}");
    assert_eq!(v["why_not"]["bridged"], true, "{v}");
    assert_eq!(
        v["why_not"]["rule"]["line"],
        line_of(file, "action: drop"),
        "{v}"
    );
    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
}

#[test]
fn bad_firewall_input_names_the_line_and_changes_nothing() {
    let p = prefix("fwbad");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{ proto: tcp, dport: 99999, action: accept }", "dport"),
        ("{ dport: 80, action: accept }", "needs proto"),
        ("{ proto: sctp, action: accept }", "proto"),
        ("{ in: nosuch, action: accept }", "not an interface"),
        ("{ action: allow }", "action"),
        ("{ state: bogus, action: accept }", "state"),
        ("{ from: 10.0.0.0/33, action: drop }", "from"),
        ("{ proto: icmp, color: red, action: drop }", "color"),
    ];
    for (rule, want) in cases {
        let file = format!(
            "name: bad\nnodes:\n  a:\n    interfaces: {{ e0: {{ address: 10.9.0.1/24 }} }}\n    firewall:\n      input:\n        rules:\n          - {rule}\n"
        );
        let f = write_file(&dir, "bad.yaml", &file);
        let o = nslab(&["up", s(&f), "--sandbox", "--prefix", &p]);
        assert_eq!(o.status.code(), Some(2), "{rule}: {}", text(&o));
        let t = text(&o);
        assert!(t.contains(want), "{rule}: {t}");
        assert!(t.contains(":8"), "{rule}: the line (8) named: {t}");
        assert!(!netns_list().iter().any(|n| n.starts_with(&p)), "{rule}");
    }
}

#[test]
fn a_host_firewall_in_host_mode_drops_only_the_labs_traffic() {
    let p = prefix("fwh");
    // Named apart from the lab's prefix, so `assert_gone` sees only the lab.
    let h = TestNs::new(&format!("x{p}h"));
    let out = TestNs::new(&format!("x{p}o"));
    // "outside": a namespace cabled to the one that plays the host; the lab
    // did not make this cable, so the host's firewall must not touch it.
    sh(&format!(
        "ip link add {p}hx netns {} type veth peer name {p}ox netns {}",
        h.name, out.name
    ));
    sh(&format!(
        "ip -n {0} addr add 198.18.0.1/24 dev {p}hx && ip -n {0} link set {p}hx up",
        h.name
    ));
    sh(&format!(
        "ip -n {0} addr add 198.18.0.2/24 dev {p}ox && ip -n {0} link set {p}ox up",
        out.name
    ));
    let lab = format!("{p}fwh");
    let _g = LabGuard::new(&lab, Some(&h.name));
    let dir = tempfile::tempdir().unwrap();
    let file = r#"name: fwh
bridges:
  br0: { address: 10.30.0.1/24 }
nodes:
  a:
    interfaces: { e0: { address: 10.30.0.2/24 } }
  b:
    interfaces: { e0: { address: 10.30.0.3/24 } }
links:
  - [ a:e0, br0:pa ]
  - [ b:e0, br0:pb ]
host:
  firewall:
    input:
      policy: drop
      rules:
        - { proto: tcp, dport: 8000, action: accept }
    forward:
      rules:
        - { proto: icmp, from: 10.30.0.2, to: 10.30.0.3, action: drop }
"#;
    let f = write_file(&dir, "fwh.yaml", file);
    ok(nslab_in(Some(&h.name), &["up", s(&f), "--prefix", &p]));
    let a = format!("{p}a");
    let table = format!("nslab-{lab}-fw");

    // The lab's node cannot reach the host; the outside still can: the
    // chain's own policy stays accept, the drop is guarded by the bridge.
    assert!(!pings(&a, "10.30.0.1"));
    assert!(pings(&out.name, "198.18.0.1"));
    // Bridged between two nodes, yet the host's forward chain drops it:
    // br_netfilter hands bridged IPv4 to the IP hooks with the bridge as
    // iifname/oifname, so the guard on br0 matches.
    let b = format!("{p}b");
    let sysctl = sh(&format!(
        "ip netns exec {} sysctl -n net.bridge.bridge-nf-call-iptables",
        h.name
    ));
    if sysctl.trim() == "1" {
        assert!(!pings(&a, "10.30.0.3"));
    } else {
        assert!(pings(&a, "10.30.0.3"));
    }
    assert!(
        !pings(&b, "10.30.0.1"),
        "b reaches the host despite its policy"
    );
    let listed = sh(&format!(
        "ip netns exec {} nft list table inet {table}",
        h.name
    ));
    assert!(listed.contains("policy accept;"), "{listed}");
    assert!(
        listed.contains(&format!(
            "iifname \"br0\" drop comment \"line {} policy\"",
            line_of(file, "policy: drop")
        )),
        "{listed}"
    );
    assert!(
        listed.contains("iifname \"br0\" meta l4proto tcp tcp dport 8000 accept")
            || listed.contains("iifname \"br0\" tcp dport 8000 accept"),
        "{listed}"
    );
    // The accepted port passes (a server in the host namespace).
    let _srv = bg(&format!(
        "ip netns exec {} python3 -m http.server 8000 --bind 10.30.0.1",
        h.name
    ));
    wait_listen(&h.name, 8000);
    assert!(curl_ok(&a, "http://10.30.0.1:8000/"));
    ok(nslab_in(Some(&h.name), &["status", "--lab", &lab]));

    // why-not names the host's policy at its line.
    let o = nslab_in(
        Some(&h.name),
        &["ping", "--json", "--lab", &lab, "a", "host"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(
        v["why_not"]["rule"]["line"],
        line_of(file, "policy: drop"),
        "{v}"
    );

    // down removes the table from the host.
    ok(nslab_in(Some(&h.name), &["down", "--lab", &lab, "--kill"]));
    assert!(nft_rules(&h.name, &table).is_none());
    assert!(pings(&out.name, "198.18.0.1"));
    assert_gone(&p, &lab);
}
