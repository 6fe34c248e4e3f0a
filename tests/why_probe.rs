//! Issue 15, the probe side: `reach:` with `size:` (DF set) and `ping -s` make
//! MTU faults testable and show the kernel's send errors as it words them; a
//! duplicate address made at run time is named, with its impostor, by `ping`,
//! `check`'s `reach:` and its `tcp:` probe.

mod common;
use common::*;
use serde_json::Value;

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// The MAC of an interface, as `ip -j link` reports it.
fn mac_of(ns: &str, ifname: &str) -> String {
    ip_json(Some(ns), &format!("link show {ifname}"))[0]["address"]
        .as_str()
        .expect("a MAC")
        .to_string()
}

/// a:eth0 (MTU 9000) is cabled to b:eth0 (MTU 1500): a sends what b's end
/// drops (the veth refuses it, and the send says "No buffer space
/// available"). a:eth1 (MTU 1500) is cabled to c: a sends nothing bigger than
/// 1500 with DF set ("Message too long"), over IPv4 or IPv6.
const MTU_LAB: &str = "name: mtu\nnodes:\n  a:\n    interfaces:\n      eth0: { address: 10.0.0.1/24, mtu: 9000 }\n      eth1: { addresses: [10.0.1.1/24, \"fd01::1/64\"] }\n  b:\n    interfaces:\n      eth0: { address: 10.0.0.2/24, mtu: 1500 }\n  c:\n    interfaces:\n      eth0: { addresses: [10.0.1.2/24, \"fd01::2/64\"] }\nlinks:\n  - [ a:eth0, b:eth0 ]\n  - [ a:eth1, c:eth0 ]\nexpect:\n  - reach: a -> b\n    size: 8000\n  - reach: a -> b\n    size: 1000\n  - reach: a -> c\n    size: 8000\n  - reach: a -> c\n    size: 1400\n  - reach: a -> c\n  - reach: a -> c\n    family: 6\n    size: 8000\n";

#[test]
fn size_makes_mtu_faults_testable_and_shows_the_send_error() {
    let p = prefix("wpmtu");
    let lab = format!("{p}mtu");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "mtu.yaml", MTU_LAB);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));

    let o = nslab(&["check", "--lab", &lab, "--json", "--no-matrix"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j = json(&o);
    let ex = j["expectations"].as_array().unwrap();
    let summary = format!("{j:#}");
    // The size is in the JSON (and the name); the default probe has none.
    let sizes: Vec<Value> = ex.iter().map(|e| e["size"].clone()).collect();
    let want: Vec<Value> = vec![
        8000.into(),
        1000.into(),
        8000.into(),
        1400.into(),
        Value::Null,
        8000.into(),
    ];
    assert_eq!(sizes, want, "{summary}");
    assert_eq!(ex[0]["name"], "reach: a -> b (size 8000)");
    let oks: Vec<bool> = ex.iter().map(|e| e["ok"] == true).collect();
    assert_eq!(oks, [false, true, false, true, true, false], "{summary}");
    // Failures of the network, not of the probe: no `error`, a `why`.
    for e in [&ex[0], &ex[2], &ex[5]] {
        assert!(e["error"].is_null(), "{summary}");
        assert!(e["why"].is_object(), "{summary}");
    }
    // The kernel's words, as it said them.
    let d0 = ex[0]["detail"].as_str().unwrap();
    assert!(
        d0.contains("8000 bytes, DF") && d0.contains("sendmsg: No buffer space available"),
        "{d0}"
    );
    let d2 = ex[2]["detail"].as_str().unwrap();
    assert!(d2.contains("sendmsg: Message too long"), "{d2}");
    let d5 = ex[5]["detail"].as_str().unwrap();
    assert!(
        d5.contains("fd01::2, 8000 bytes, DF") && d5.contains("sendmsg: Message too long"),
        "{d5}"
    );

    // ping -s: DF set, the send error printed as ping prints it, exit 1.
    let o = nslab(&[
        "ping", "--lab", &lab, "a", "c", "-s", "8000", "-c", "2", "-i", "0.2",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("ping: sendmsg: Message too long"), "{out}");
    assert!(out.contains(", +2 errors,"), "{out}");
    // No unrelated reason for a packet that never left: the MTU, or nothing.
    assert!(!out.contains("why not:") || out.contains("MTU"), "{out}");
    let o = nslab(&[
        "ping", "--lab", &lab, "a", "b", "-s", "8000", "-c", "2", "-i", "0.2",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains("ping: sendmsg: No buffer space available"),
        "{out}"
    );
    let o = nslab(&[
        "ping", "--lab", &lab, "a", "c", "-s", "8000", "-c", "1", "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j = json(&o);
    assert_eq!(
        (j["size"].clone(), j["dont_fragment"].clone()),
        (Value::from(8000), Value::from(true)),
        "{j:#}"
    );
    assert_eq!(j["events"][0]["event"], "send_error", "{j:#}");
    assert_eq!(j["events"][0]["message"], "Message too long", "{j:#}");
    assert!(
        j["why_not"].is_null() || j["why_not"]["reason"] == "mtu",
        "{j:#}"
    );
    // The same sizes that fit pass; without -s nothing changed.
    ok(nslab(&[
        "ping", "--lab", &lab, "a", "c", "-s", "1400", "-c", "1",
    ]));
    ok(nslab(&[
        "ping", "--lab", &lab, "a", "b", "-s", "1000", "-c", "1",
    ]));
    let o = ok(nslab(&[
        "ping", "--lab", &lab, "a", "b", "-c", "1", "--json",
    ]));
    let j = json(&o);
    assert_eq!(
        (j["size"].clone(), j["dont_fragment"].clone()),
        (Value::from(56), Value::from(false)),
        "{j:#}"
    );
    // A size no echo request can carry is bad usage.
    let o = nslab(&["ping", "--lab", &lab, "a", "c", "-s", "70000"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("at most 65507 bytes"), "{}", text(&o));
}

/// The tutorial's bridge lab with the expectations given.
fn bridge_lab(expect: &str) -> String {
    let t = std::fs::read_to_string(example("objective2-bridge.yaml")).unwrap();
    let base = &t[..t.find("expect:").unwrap()];
    format!("{base}expect:\n{expect}")
}

#[test]
fn a_duplicate_address_made_at_run_time_is_named_with_its_impostor() {
    let p = prefix("wpdup");
    let lab = format!("{p}objective2");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    // The tcp probe first: it finds green's neighbour entry as the flush left it.
    let f = write_file(
        &dir,
        "dup.yaml",
        &bridge_lab(
            "  - tcp: green -> black:800\n  - reach: green -> black\n  - reach: green -> white\n",
        ),
    );
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    wait_listen(&format!("{p}black"), 800);
    let (green, white, black) = (
        format!("{p}green"),
        format!("{p}white"),
        format!("{p}black"),
    );
    let flush = || sh(&format!("ip -n {green} neigh flush dev gveth"));

    // Control: the lab as the file says has no duplicate.
    flush();
    let o = nslab(&["check", "--lab", &lab, "--json", "--no-matrix"]);
    let j = json(&o);
    assert_eq!(o.status.code(), Some(0), "{j:#}");
    assert!(!format!("{j}").contains("duplicate_address"), "{j:#}");
    let o = ok(nslab(&["ping", "--lab", &lab, "green", "black", "-c", "1"]));
    assert!(!stdout(&o).contains("duplicate"), "{}", text(&o));

    // The impostor: white takes black's address. Both would answer green's
    // ARP request and the first reply wins (later ones within locktime are
    // ignored), a race. So black is made not to answer ARP at all
    // (arp_ignore=8: "do not reply for local addresses"); it keeps the
    // address, and only white's reply can fill green's (flushed) entry.
    sh(&format!(
        "ip netns exec {black} sysctl -qw net.ipv4.conf.bveth.arp_ignore=8"
    ));
    sh(&format!("ip -n {white} addr add 192.168.1.1/32 dev wveth"));
    let (white_mac, black_mac) = (mac_of(&white, "wveth"), mac_of(&black, "bveth"));

    // ping: replies come (from white), and yet: duplicate address, exit 1.
    flush();
    let o = nslab(&[
        "ping", "--lab", &lab, "green", "black", "-c", "2", "-i", "0.2",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("64 bytes from 192.168.1.1"), "{out}");
    assert!(
        out.contains(&format!(
            "why not: duplicate address: 192.168.1.1 answers from {white_mac}, but black has it on {black_mac}"
        )) && out.contains("white:wveth"),
        "{out}"
    );
    flush();
    let o = nslab(&["ping", "--lab", &lab, "green", "black", "-c", "1", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["report"]["received"], 1, "{j:#}");
    let w = &j["why_not"];
    assert_eq!(w["reason"], "duplicate_address", "{j:#}");
    assert_eq!(w["at"], "black", "{j:#}");
    assert_eq!(w["address"], "192.168.1.1", "{j:#}");
    assert_eq!(w["answered_mac"], white_mac.as_str(), "{j:#}");
    assert_eq!(w["expected_mac"], black_mac.as_str(), "{j:#}");
    assert_eq!(w["impostor"], "white:wveth", "{j:#}");

    // check: the tcp probe (refused by white, which has no server) stops at
    // once with the duplicate instead of retrying; reach fails the same way.
    flush();
    let o = nslab(&["check", "--lab", &lab, "--json", "--no-matrix"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j = json(&o);
    let ex = j["expectations"].as_array().unwrap();
    for e in &ex[..2] {
        assert_eq!(e["ok"], false, "{j:#}");
        assert_eq!(e["why"]["reason"], "duplicate_address", "{j:#}");
        assert_eq!(e["why"]["impostor"], "white:wveth", "{j:#}");
        assert!(
            e["detail"]
                .as_str()
                .unwrap()
                .contains("duplicate address: 192.168.1.1"),
            "{j:#}"
        );
    }
    assert!(
        ex[0]["detail"].as_str().unwrap().contains("refused"),
        "{j:#}"
    );
    // Other destinations are not affected.
    assert_eq!(ex[2]["ok"], true, "{j:#}");
    assert!(ex[2]["why"].is_null(), "{j:#}");

    // An impostor that answers ARP but drops pings: no reply, and the reason
    // is still the duplicate (not a walk along a path that looks right).
    sh(&format!(
        "ip netns exec {white} sysctl -qw net.ipv4.icmp_echo_ignore_all=1"
    ));
    flush();
    let o = nslab(&[
        "ping", "--lab", &lab, "green", "black", "-c", "1", "-W", "1", "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["report"]["received"], 0, "{j:#}");
    assert_eq!(j["why_not"]["reason"], "duplicate_address", "{j:#}");
    assert_eq!(j["why_not"]["impostor"], "white:wveth", "{j:#}");
    flush();
    let o = nslab(&["check", "--lab", &lab, "--json", "--no-matrix"]);
    let j = json(&o);
    assert_eq!(j["expectations"][1]["ok"], false, "{j:#}");
    assert_eq!(
        j["expectations"][1]["why"]["reason"], "duplicate_address",
        "{j:#}"
    );
}

#[test]
fn a_bad_size_is_refused_naming_the_expectation_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = prefix("wpval");
    let base = "name: bad\nnodes:\n  a:\n    interfaces: { e: { address: 10.0.0.1/24 } }\n  b:\n    interfaces: { e: { address: 10.0.0.2/24 } }\nlinks:\n  - [ a:e, b:e ]\nexpect:\n  - reach: a -> b\n  - reach: b -> a\n";
    for (i, (v, want)) in [
        ("70000", "size 70000 is out of range"),
        ("-5", "size -5 is out of range"),
        ("big", "size \"big\" is not a number"),
        ("\"1000\"", "size \"1000\" is not a number"),
        ("1.5", "size 1.5 is not a whole number"),
    ]
    .iter()
    .enumerate()
    {
        let f = write_file(
            &dir,
            &format!("bad{i}.yaml"),
            &format!("{base}    size: {v}\n"),
        );
        for sandbox in [true, false] {
            let mut args = vec!["up", s(&f), "--prefix", &p];
            if sandbox {
                args.push("--sandbox");
            }
            let o = nslab(&args);
            let t = text(&o);
            assert_eq!(o.status.code(), Some(2), "{v}: {t}");
            assert!(
                t.contains(&format!("{}:12:", s(&f)))
                    && t.contains("expect[1].size: reach: b -> a: ")
                    && t.contains(want),
                "{v}: {t}"
            );
        }
        assert_gone(&p, &format!("{p}bad"));
    }
    // `size` on a tcp expectation is a mistake too.
    let f = write_file(
        &dir,
        "tcp.yaml",
        &base.replace("  - reach: b -> a\n", "  - tcp: b -> a:80\n    size: 100\n"),
    );
    let o = nslab(&["up", s(&f), "--sandbox", "--prefix", &p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("`size` applies to `reach` and `no_reach`"),
        "{}",
        text(&o)
    );
    assert_gone(&p, &format!("{p}bad"));
}
