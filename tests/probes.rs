//! Probes: ping, check (matrix, expectations, why not), serve, run:, identify.

mod common;
use common::*;
use serde_json::Value;

fn read(name: &str) -> String {
    std::fs::read_to_string(example(name)).unwrap()
}

/// Replace the `expect` section of a file by one expectation.
fn with_expect(text: &str, expect: &str) -> String {
    let base = text.find("expect:").map(|i| &text[..i]).unwrap_or(text);
    format!("{base}expect:\n  - {expect}\n")
}

#[test]
fn the_tutorial_examples_pass_their_expectations() {
    for (name, lab) in [
        ("objective1-veth.yaml", "objective1"),
        ("objective2-bridge.yaml", "objective2"),
        ("objective3-nat.yaml", "objective3"),
    ] {
        let p = prefix(&format!("ex{}", &lab[9..]));
        let full = format!("{p}{lab}");
        let _g = LabGuard::new(&full, None);
        ok(nslab(&[
            "up",
            s(&example(name)),
            "--sandbox",
            "--prefix",
            &p,
        ]));
        let o = nslab(&["check", "--lab", &full, "--json"]);
        let j: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        assert_eq!(o.status.code(), Some(0), "{name}: {j:#}");
        let ex = j["expectations"].as_array().unwrap();
        assert!(
            ex.len() >= 3 && ex.iter().all(|e| e["ok"] == true),
            "{name}: {j:#}"
        );
        // The unreachable cases of the tutorial are stated and hold.
        assert!(
            ex.iter()
                .any(|e| e["name"].as_str().unwrap().starts_with("no_reach")),
            "{name}"
        );
    }
}

#[test]
fn objective3_without_nat_cannot_reach_the_internet() {
    let p = prefix("nonat");
    let lab = format!("{p}objective3");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let t = read("objective3-nat.yaml");
    let no_nat = t.replace("nat:\n  - { source: 192.168.0.0/16, not_out: bri0 }\n", "");
    let f = write_file(
        &dir,
        "objective3-nat.yaml",
        &with_expect(&no_nat, "no_reach: green -> internet"),
    );
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let o = ok(nslab(&["check", "--lab", &lab, "--json", "--no-matrix"]));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["expectations"][0]["ok"], true);
    assert_eq!(j["expectations"][0]["why"]["reason"], "no_nat", "{j:#}");
}

#[test]
fn a_failing_expectation_exits_1_with_json_and_junit() {
    let p = prefix("fail");
    let lab = format!("{p}objective2");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        &dir,
        "objective2-bridge.yaml",
        &with_expect(&read("objective2-bridge.yaml"), "reach: green -> internet"),
    );
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let junit = dir.path().join("junit.xml");
    let o = nslab(&["check", "--lab", &lab, "--junit", s(&junit)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("FAIL reach: green -> internet"), "{out}");
    assert!(
        out.contains("no neighbour answers for 198.51.100.8 on gveth in green"),
        "names the reason: {out}"
    );
    // The matrix: every node reaches every other node and the host.
    assert!(out.contains("IPv4: from \\ to"), "{out}");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.starts_with("<?xml")
            && x.contains("tests=\"1\" failures=\"1\"")
            && x.contains("<failure message="),
        "{x}"
    );
    // Parse it back with a real XML parser's rules: balanced tags, escaped text.
    let opened = x.matches("<testcase").count();
    assert_eq!(opened, x.matches("</testcase>").count());
    let o = nslab(&["check", "--lab", &lab, "--json"]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ok"], false);
    let cells = j["matrix"].as_array().unwrap();
    let cell = |a: &str, b: &str| {
        cells
            .iter()
            .find(|c| c["src"] == a && c["dst"] == b)
            .unwrap()["reach"]
            .clone()
    };
    assert_eq!(cell("green", "black"), true);
    assert_eq!(cell("host", "white"), true);
    assert_eq!(cell("internet", "green"), false);
}

/// Bring up a variant, check one `reach` expectation, return its reason.
fn reason_of(
    tag: &str,
    file_text: &str,
    lab_base: &str,
    expect: &str,
    tweak: &dyn Fn(&str),
) -> String {
    let p = prefix(tag);
    let lab = format!("{p}{lab_base}");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "lab.yaml", &with_expect(file_text, expect));
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    tweak(&p);
    let o = nslab(&["check", "--lab", &lab, "--json", "--no-matrix"]);
    assert_eq!(o.status.code(), Some(1), "{tag}: {}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &j["expectations"][0];
    assert_eq!(e["ok"], false);
    e["why"]["reason"].as_str().unwrap_or("").to_string()
        + " | "
        + e["detail"].as_str().unwrap_or("")
}

const CHAIN: &str = "name: chain\nnodes:\n  a:\n    interfaces: { e: { address: 10.0.1.2/24 } }\n    routes: [\"default via 10.0.1.1\"]\n  r:\n    interfaces:\n      left: { address: 10.0.1.1/24 }\n      right: { address: 10.0.2.1/24 }\n  b:\n    interfaces: { e: { address: 10.0.2.2/24 } }\n    routes: [\"default via 10.0.2.1\"]\nlinks:\n  - [a:e, r:left]\n  - [r:right, b:e]\n";

#[test]
fn broken_variants_get_the_right_reason() {
    let o3 = read("objective3-nat.yaml");
    let o2 = read("objective2-bridge.yaml");
    let none = |_: &str| {};

    // 1. No route in the source.
    let t = o3.replace(
        "    routes: [ \"192.168.0.0/16 dev gveth\", \"default via 192.168.0.1\" ]\n",
        "",
    );
    let r = reason_of("w1", &t, "objective3", "reach: green -> internet", &none);
    assert!(
        r.starts_with("no_route |") && r.contains("no route in green to 198.51.100.8"),
        "{r}"
    );

    // 2. No route back: black has no route to green's network.
    let t = o2.replace("    routes: [ \"default dev bveth\" ]\n", "");
    let r = reason_of("w2", &t, "objective2", "reach: green -> black", &none);
    assert!(
        r.starts_with("no_route_back |") && r.contains("black has no route to 192.168.3.1"),
        "{r}"
    );

    // 3. An interface down (set down by hand after up), and the far end of a cable down.
    let r = reason_of(
        "w3",
        &o2,
        "objective2",
        "reach: green -> black",
        &|p: &str| {
            sh(&format!("ip -n {p}green link set gveth down"));
        },
    );
    assert!(
        r.starts_with("interface_down |") && r.contains("gveth in green is down"),
        "{r}"
    );
    let r = reason_of(
        "w3b",
        &o2,
        "objective2",
        "reach: green -> black",
        &|p: &str| {
            sh(&format!("ip -n {p}objective2-host link set gbrveth down"));
        },
    );
    assert!(
        r.starts_with("bridge_port_down |")
            && r.contains("port gbrveth of bridge bri0 in host is down"),
        "{r}"
    );

    // 4. A router that does not forward.
    let r = reason_of("w4", CHAIN, "chain", "reach: a -> b", &none);
    assert!(
        r.starts_with("not_forwarding |") && r.contains("r does not forward"),
        "{r}"
    );

    // 5. Traffic to the outside with no NAT.
    let t = o3.replace("nat:\n  - { source: 192.168.0.0/16, not_out: bri0 }\n", "");
    let r = reason_of("w5", &t, "objective3", "reach: green -> internet", &none);
    assert!(
        r.starts_with("no_nat |") && r.contains("192.168.3.1 leaves host by uplink without NAT"),
        "{r}"
    );

    // 6. A wrong gateway: nobody has 192.168.0.254.
    let t = o3.replace(
        "\"default via 192.168.0.1\" ]\n  white",
        "\"default via 192.168.0.254\" ]\n  white",
    );
    let r = reason_of("w6", &t, "objective3", "reach: black -> internet", &none);
    assert!(
        r.starts_with("no_neighbour |") && r.contains("192.168.0.254"),
        "{r}"
    );

    // 7. A host firewall dropping forwarded traffic (like Docker's FORWARD policy).
    let r = reason_of(
        "w7",
        &o3,
        "objective3",
        "reach: green -> internet",
        &|p: &str| {
            sh(&format!(
                "ip netns exec {p}objective3-host nft add table ip fw && ip netns exec {p}objective3-host nft add chain ip fw forward '{{ type filter hook forward priority 0; policy drop; }}'"
            ));
        },
    );
    assert!(
        r.starts_with("firewall_drop |")
            && r.contains(
                "a firewall in host drops the probe: the policy of chain forward in table ip fw"
            ),
        "{r}"
    );
}

#[test]
fn ping_prints_like_ping_and_explains_failure() {
    let (_p, lab, _g) = up_example("ping", "objective2-bridge.yaml");
    let o = ok(nslab(&[
        "ping", "--lab", &lab, "green", "black", "-c", "2", "-i", "0.2",
    ]));
    let out = stdout(&o);
    assert!(
        out.contains("64 bytes from 192.168.1.1: icmp_seq=1"),
        "{out}"
    );
    assert!(out.contains("2 packets transmitted, 2 received"), "{out}");
    let o = nslab(&[
        "ping",
        "--lab",
        &lab,
        "green",
        "198.51.100.8",
        "-c",
        "1",
        "-W",
        "0.5",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["report"]["received"], 0);
    assert_eq!(j["why_not"]["reason"], "no_neighbour", "{j:#}");
    assert_eq!(
        nslab(&["ping", "--lab", &lab, "pink", "black"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn serve_answers_curl_and_plain_text_gets_400() {
    let (p, lab, _g) = up_example("serve", "objective1-veth.yaml");
    let o = ok(nslab(&[
        "serve", "--lab", &lab, "red", "--port", "9000", "--detach",
    ]));
    assert!(stdout(&o).contains("serving HTTP in red"), "{}", text(&o));
    let body = sh(&format!(
        "ip netns exec {p}green curl -s http://192.168.1.1:9000/"
    ));
    assert!(body.contains("red"), "the page names the node: {body}");
    // The tutorial's experiment: plain text over TCP.
    let ans = sh(&format!(
        "ip netns exec {p}green python3 -c \"import socket; s=socket.create_connection(('192.168.1.1',9000)); s.sendall(b'hello\\r\\n'); s.shutdown(1); print(s.recv(9000).decode())\""
    ));
    assert!(
        ans.contains("Error code: 400") && ans.contains("Bad request syntax"),
        "{ans}"
    );
    // Recorded with the lab; `down` stops it.
    let rec: Value = serde_json::from_str(
        &std::fs::read_to_string(common::state(&format!("labs/{lab}.json"))).unwrap(),
    )
    .unwrap();
    let pid = rec["processes"][0]["pid"].as_i64().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    ok(nslab(&["down", "--lab", &lab]));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .is_empty()
    );
    assert_gone(&p, &lab);
}

#[test]
fn run_programs_start_with_up_and_stop_with_down() {
    let (p, lab, _g) = up_example("run", "objective2-bridge.yaml");
    let rec: Value = serde_json::from_str(
        &std::fs::read_to_string(common::state(&format!("labs/{lab}.json"))).unwrap(),
    )
    .unwrap();
    let procs = rec["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1);
    let pid = procs[0]["pid"].as_i64().unwrap();
    // It runs inside black's namespace and answers.
    let ns = sh(&format!("ip netns identify {pid}"));
    assert_eq!(ns.trim(), format!("{p}black"));
    wait_listen(&format!("{p}black"), 800);
    // A second `up` leaves it running (same pid).
    ok(nslab(&[
        "up",
        s(&example("objective2-bridge.yaml")),
        "--sandbox",
        "--prefix",
        &p,
    ]));
    let rec2: Value = serde_json::from_str(
        &std::fs::read_to_string(common::state(&format!("labs/{lab}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(rec2["processes"][0]["pid"].as_i64(), Some(pid));
    let o = ok(nslab(&["down", "--lab", &lab]));
    assert!(
        stdout(&o).contains(&format!("stopped pid {pid}")),
        "{}",
        text(&o)
    );
    assert_gone(&p, &lab);
}

#[test]
fn identify_names_the_node_like_ip_netns_identify() {
    let (p, lab, _g) = up_example("ident", "objective1-veth.yaml");
    let out = sh(&format!(
        "{} exec green --lab {lab} -- {} identify",
        bin(),
        bin()
    ));
    assert_eq!(out.trim(), format!("{p}green\t(lab {lab}, node green)"));
    let sleeper = bg(&format!("{} exec red --lab {lab} -- sleep 30", bin()));
    let pid = sleeper.0.id();
    let t0 = std::time::Instant::now();
    let mut seen = String::new();
    while t0.elapsed() < std::time::Duration::from_secs(5) {
        seen = stdout(&nslab(&["identify", &pid.to_string(), "--json"]));
        if seen.contains("red") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let j: Value = serde_json::from_str(&seen).unwrap();
    assert_eq!(j[0]["namespace"], format!("{p}red"));
    assert_eq!(j[0]["place"], "node red");
    // Same answer as iproute2's.
    assert_eq!(
        sh(&format!("ip netns identify {pid}")).trim(),
        format!("{p}red")
    );
    drop(sleeper);
    // A process in the root namespace: nothing, as `ip netns identify` prints.
    let o = ok(nslab(&["identify"]));
    assert_eq!(stdout(&o), "");
    let o = ok(nslab(&["identify", &std::process::id().to_string()]));
    assert_eq!(stdout(&o), "");
    ok(nslab(&["down", "--lab", &lab, "--kill"]));
}
