//! Port publishing (`publish:`): DNAT of a host port to a node, in the lab's
//! own `table inet nslab-LAB-pub`. Sandboxed labs, or host mode inside
//! namespaces the tests made; `curl`, `tcpdump` and `nft` are the witnesses.

mod common;
use common::*;

/// black serves HTTP on port 800 (IPv4 and IPv6); white sits on the same
/// bridge; the host's port 8080 goes to black over both families.
fn lab_file(name: &str, publish: bool) -> String {
    let mut t = format!(
        r#"name: {name}
bridges:
  bri0: {{ addresses: [192.168.0.1/16, "fd00:1::1/64"] }}
nodes:
  black:
    interfaces: {{ bveth: {{ addresses: [192.168.1.1/24, "fd00:1::10/64"] }} }}
    routes: [ "192.168.0.0/16 dev bveth", "default via 192.168.0.1", "default via fd00:1::1" ]
    run: [ "python3 -m http.server 800 --bind ::" ]
  white:
    interfaces: {{ wveth: {{ address: 192.168.2.1/24 }} }}
    routes: [ "192.168.0.0/16 dev wveth", "default via 192.168.0.1" ]
links:
  - [ black:bveth, bri0:bbrveth ]
  - [ white:wveth, bri0:wbrveth ]
expect:
  - tcp: internet -> host:8080
"#
    );
    if publish {
        t.push_str(
            "publish:\n  - { port: 8080, to: black:800 }\n  - { port: 8080, to: \"black:bveth:800\", family: 6 }\n",
        );
    }
    t
}

/// `curl` in `ns`: the page, or None when it fails.
fn curl(ns: &str, url: &str) -> Option<String> {
    let six = if url.contains('[') { "-6 -g" } else { "-4" };
    let (ok, out) = sh_status(&format!("ip netns exec {ns} curl -s {six} -m 5 '{url}'"));
    ok.then_some(out)
}

#[track_caller]
fn gets_page(ns: &str, url: &str) {
    let page = curl(ns, url).unwrap_or_else(|| panic!("curl {url} from {ns} failed"));
    assert!(page.contains("Directory listing for"), "{url}: {page}");
}

fn nft_table(ns: &str, table: &str) -> Option<serde_json::Value> {
    let (ok, out) = sh_status(&format!(
        "ip netns exec {ns} nft -j list table inet {table}"
    ));
    ok.then(|| serde_json::from_str(&out).expect("nft -j output"))
}

#[test]
fn a_published_port_from_the_host_a_node_the_internet_and_over_ipv6() {
    let p = prefix("pub");
    let lab = format!("{p}pub");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "pub.yaml", &lab_file("pub", true));
    let up = ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let table = format!("nslab-{lab}-pub");
    assert!(
        text(&up).contains(&format!("table inet {table} made")),
        "{}",
        text(&up)
    );
    let (black, white, host, inet) = (
        format!("{p}black"),
        format!("{p}white"),
        format!("{p}pub-host"),
        format!("{p}pub-inet"),
    );
    wait_listen(&black, 800);

    // From the host itself, to its bridge and uplink addresses; loopback is
    // not published (DNAT from 127.0.0.1 would need route_localnet).
    gets_page(&host, "http://192.168.0.1:8080/");
    gets_page(&host, "http://203.0.113.2:8080/");
    assert!(curl(&host, "http://127.0.0.1:8080/").is_none());

    // Hairpin: white asks the host's address on its own bridge; black sees the
    // host as the source (masqueraded), so its reply goes back through it.
    let dump = Tcpdump::start(&black, "bveth", "ip and tcp port 800");
    gets_page(&white, "http://192.168.0.1:8080/");
    let seen = dump.stop();
    assert!(seen.contains("192.168.0.1."), "{seen}");
    assert!(seen.contains("> 192.168.1.1.800:"), "{seen}");
    assert!(!seen.contains("192.168.2.1."), "{seen}");

    // From the emulated internet to the uplink address: black sees the
    // internet's own address (no masquerade on that path).
    let dump = Tcpdump::start(&black, "bveth", "ip and tcp port 800");
    gets_page(&inet, "http://203.0.113.2:8080/");
    let seen = dump.stop();
    assert!(seen.contains("203.0.113.1."), "{seen}");
    assert!(seen.contains("> 192.168.1.1.800:"), "{seen}");

    // IPv6: the host's IPv6 address goes to black's.
    let dump = Tcpdump::start(&black, "bveth", "ip6 and tcp port 800");
    gets_page(&host, "http://[fd00:1::1]:8080/");
    let seen = dump.stop();
    assert!(seen.contains("> fd00:1::10.800:"), "{seen}");

    // nft's own reading of the table: three nat chains, the DNAT rules.
    let j = nft_table(&host, &table).expect("the publish table exists");
    let items = j["nftables"].as_array().unwrap();
    let chains: Vec<&str> = items
        .iter()
        .filter_map(|x| x["chain"]["name"].as_str())
        .collect();
    assert_eq!(chains, ["prerouting", "output", "postrouting"], "{j}");
    let rules: Vec<&serde_json::Value> = items.iter().filter_map(|x| x.get("rule")).collect();
    let dnat = |chain: &str, addr: &str| {
        rules.iter().any(|r| {
            r["chain"] == chain
                && r["expr"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["dnat"]["addr"] == addr && e["dnat"]["port"] == 800)
        })
    };
    for chain in ["prerouting", "output"] {
        assert!(dnat(chain, "192.168.1.1"), "{chain}: {j}");
        assert!(dnat(chain, "fd00:1::10"), "{chain}: {j}");
    }
    let listed = sh(&format!("ip netns exec {host} nft list table inet {table}"));
    assert!(
        listed.contains("ct status dnat oifname \"bri0\" ip saddr 192.168.0.0/16 masquerade"),
        "{listed}"
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
            "nft 'add rule inet {table} prerouting fib daddr type local tcp dport 8080 dnat ip to 192.168.1.1:800'"
        )),
        "{plan}"
    );

    // The expectation holds; status shows the table.
    let check = nslab(&["check", s(&f), "--lab", &lab]);
    assert!(check.status.success(), "{}", text(&check));
    let st = stdout(&ok(nslab(&["status", "--lab", &lab])));
    assert!(
        st.contains(&format!("published (table inet {table}: ok)")),
        "{st}"
    );

    // Deleted by hand: status names the drift, check's why-not too, up repairs.
    sh(&format!(
        "ip netns exec {host} nft delete table inet {table}"
    ));
    let st = nslab(&["status", "--lab", &lab]);
    assert!(!st.status.success());
    assert!(
        text(&st).contains(&format!("nftables table inet {table}: missing")),
        "{}",
        text(&st)
    );
    let plan = stdout(&ok(nslab(&["plan", s(&f), "--sandbox", "--prefix", &p])));
    assert!(
        plan.contains(&format!(
            "# published ports: `up` makes table inet {table} (missing in the kernel)"
        )),
        "{plan}"
    );
    let check = nslab(&["check", s(&f), "--lab", &lab]);
    assert!(!check.status.success());
    assert!(
        text(&check).contains(&format!(
            "tcp port 8080 is published but table inet {table} is missing"
        )),
        "{}",
        text(&check)
    );
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    gets_page(&inet, "http://203.0.113.2:8080/");

    // The publish removed from the file: `up` deletes the table, the
    // expectation fails and says why.
    let g = write_file(&dir, "pub.yaml", &lab_file("pub", false));
    ok(nslab(&["up", s(&g), "--sandbox", "--prefix", &p]));
    assert!(nft_table(&host, &table).is_none());
    let check = nslab(&["check", s(&g), "--lab", &lab]);
    assert!(!check.status.success());
    assert!(
        text(&check).contains("no publish for tcp port 8080 on host"),
        "{}",
        text(&check)
    );

    ok(nslab(&["down", "--lab", &lab, "--kill"]));
    assert_gone(&p, &lab);
}

#[test]
fn host_mode_publishes_to_the_outside_refuses_a_second_lab_and_down_removes_the_table() {
    let p = prefix("pubh");
    // Named apart from the lab's prefix, so `assert_gone` sees only the lab.
    let h = TestNs::new(&format!("x{p}h"));
    let out = TestNs::new(&format!("x{p}o"));
    // "outside": a namespace cabled to the one that plays the host, with
    // benchmarking addresses (198.18.0.0/15) only.
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
    let lab = format!("{p}pub");
    let _g = LabGuard::new(&lab, Some(&h.name));
    let dir = tempfile::tempdir().unwrap();
    let text1 = lab_file("pub", true).replace("expect:\n  - tcp: internet -> host:8080\n", "");
    let f = write_file(&dir, "pub.yaml", &text1);
    ok(nslab_in(Some(&h.name), &["up", s(&f), "--prefix", &p]));
    let black = format!("{p}black");
    wait_listen(&black, 800);
    let table = format!("nslab-{lab}-pub");

    // From outside the machine to the host's own address on that cable.
    let dump = Tcpdump::start(&black, "bveth", "ip and tcp port 800");
    gets_page(&out.name, "http://198.18.0.1:8080/");
    let seen = dump.stop();
    assert!(seen.contains("198.18.0.2."), "{seen}");

    // A second host-mode lab on the same host publishing the same port is
    // refused, naming the first, and nothing of it is made.
    let lab2 = format!("{p}pub2");
    let _g2 = LabGuard::new(&lab2, Some(&h.name));
    let second = r#"name: pub2
bridges:
  br2: { address: 10.20.0.1/24 }
nodes:
  red:
    interfaces: { r0: { address: 10.20.0.2/24 } }
links:
  - [ red:r0, br2:rp ]
publish:
  - { port: 8080, to: red:80 }
"#;
    let f2 = write_file(&dir, "pub2.yaml", second);
    let o = nslab_in(Some(&h.name), &["up", s(&f2), "--prefix", &p]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("lab {lab} publishes tcp port 8080")),
        "{}",
        text(&o)
    );
    assert!(!netns_list().contains(&format!("{p}red")));
    assert!(!sh(&format!("ip netns exec {} nft list tables", h.name)).contains("pub2"));

    // down removes the table from the host.
    assert!(nft_table(&h.name, &table).is_some());
    let fwd = format!("ip netns exec {} sysctl -n net.ipv4.ip_forward", h.name);
    assert_eq!(sh(&fwd).trim(), "1", "the host forwards for the lab");
    ok(nslab_in(Some(&h.name), &["down", "--lab", &lab, "--kill"]));
    assert!(nft_table(&h.name, &table).is_none());
    assert_eq!(sh(&fwd).trim(), "0", "forwarding put back");
    assert_gone(&p, &lab);
}
