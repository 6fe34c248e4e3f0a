//! Root integration tests of the core: tutorial objectives 1 and 2 on real
//! namespaces, veths and bridges; idempotency, repair, down, bad input.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Talk TCP from inside a namespace: the socket is made on a thread that entered it.
fn tcp_in_ns(ns: &str, addr: &str, send: &[u8]) -> String {
    let f = nslab::kernel::netns::open(ns).unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let mut st = nslab::kernel::netns::run_in(&f, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    })
    .unwrap()
    .unwrap();
    st.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    st.write_all(send).unwrap();
    let mut out = String::new();
    let _ = st.read_to_string(&mut out);
    out
}

#[test]
fn objective1_red_and_green_talk() {
    let (p, lab, _g) = up_example("o1", "objective1-veth.yaml");
    let (red, green) = (format!("{p}red"), format!("{p}green"));
    // Both are ordinary named namespaces: `ip netns list` shows them.
    let list = netns_list();
    assert!(list.contains(&red) && list.contains(&green), "{list:?}");
    assert!(pings(&red, "192.168.1.2"));
    assert!(pings(&green, "192.168.1.1"));
    // lo is up in each node.
    let lo = ip_json(Some(&red), "link show lo");
    assert!(lo[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));

    // The tutorial's web server in red, a client in green.
    let _srv = bg(&format!(
        "ip netns exec {red} python3 -m http.server 9000 --bind 192.168.1.1"
    ));
    wait_listen(&red, 9000);
    let page = sh(&format!(
        "ip netns exec {green} curl -s -o /dev/null -w '%{{http_code}}' http://192.168.1.1:9000/"
    ));
    assert_eq!(page.trim(), "200");
    // Plain text instead of HTTP: the server answers 400 Bad request syntax.
    let answer = tcp_in_ns(&green, "192.168.1.1:9000", b"hello\r\n");
    assert!(
        answer.contains("400") && answer.contains("Bad request syntax"),
        "{answer}"
    );

    drop(_srv);
    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
}

#[test]
fn objective1_without_routes_each_pings_only_itself() {
    let p = prefix("o1r");
    let lab = format!("{p}objective1");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    // /32 addresses bring no connected route: the tutorial's first attempt.
    let no_routes = std::fs::read_to_string(example("objective1-veth.yaml"))
        .unwrap()
        .replace("/24", "/32");
    let f = write_file(&dir, "o1.yaml", &no_routes);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let (red, green) = (format!("{p}red"), format!("{p}green"));
    assert!(pings(&red, "192.168.1.1"), "red pings itself");
    assert!(pings(&green, "192.168.1.2"), "green pings itself");
    assert!(
        !pings(&red, "192.168.1.2"),
        "no route: red cannot reach green"
    );
    assert!(!pings(&green, "192.168.1.1"));
    // Adding the routes, as the tutorial does, fixes it.
    let with_routes = no_routes
        .replace("veth-red: { address: 192.168.1.1/32 }", "veth-red: { address: 192.168.1.1/32 }\n    routes: [ \"192.168.1.2 dev veth-red\" ]")
        .replace("veth-green: { address: 192.168.1.2/32 }", "veth-green: { address: 192.168.1.2/32 }\n    routes: [ \"192.168.1.1 dev veth-green\" ]");
    std::fs::write(&f, with_routes).unwrap();
    let o = ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    assert!(stdout(&o).contains("2 routes added"), "{}", text(&o));
    assert!(pings(&red, "192.168.1.2"));
    assert!(pings(&green, "192.168.1.1"));
}

#[test]
fn ipv6_pings_right_after_up() {
    let p = prefix("v6");
    let lab = format!("{p}objective1");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let v6 = std::fs::read_to_string(example("objective1-veth.yaml"))
        .unwrap()
        .replace("192.168.1.1/24", "fd00:1::1/64")
        .replace("192.168.1.2/24", "fd00:1::2/64")
        // The sandbox's host has IPv4 only: no family in common with red, which
        // validation refuses (issue 14).
        .replace("  - no_reach: host -> red\n", "");
    let f = write_file(&dir, "v6.yaml", &v6);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    // No waiting for duplicate address detection: the address is not tentative.
    let addrs = ip_json(Some(&format!("{p}red")), "-6 addr show dev veth-red");
    let info = addrs[0]["addr_info"].as_array().unwrap();
    let ula = info
        .iter()
        .find(|a| a["local"] == "fd00:1::1")
        .expect("fd00:1::1 is there");
    assert!(ula.get("tentative").is_none(), "{ula}");
    assert!(pings(&format!("{p}red"), "fd00:1::2"));
    assert!(pings(&format!("{p}green"), "fd00:1::1"));
}

fn objective2_checks(p: &str, host_ns: Option<&str>) {
    let nodes = [
        ("black", "192.168.1.1"),
        ("white", "192.168.2.1"),
        ("green", "192.168.3.1"),
    ];
    for (a, _) in nodes {
        for (b, addr) in nodes {
            if a != b {
                assert!(pings(&format!("{p}{a}"), addr), "{a} -> {b}");
            }
        }
    }
    // The host (the lab's host namespace) reaches every node through bri0.
    let host = host_ns
        .map(String::from)
        .unwrap_or_else(|| format!("{p}objective2-host"));
    for (_, addr) in nodes {
        assert!(pings(&host, addr), "host -> {addr}");
    }
    // HTTP from white to the server in black on port 800, as in the tutorial: the
    // file's `run:` starts it. (A second copy started here would find the port
    // taken, and the remains of its start-up, killed at the end, could still be
    // in the namespace when `down` looks: foreign processes.)
    let black = format!("{p}black");
    wait_listen(&black, 800);
    let code = sh(&format!(
        "ip netns exec {p}white curl -s -o /dev/null -w '%{{http_code}}' http://192.168.1.1:800/"
    ));
    assert_eq!(code.trim(), "200");
    // Names resolve inside the lab (hosts file from /etc/netns).
    let out = sh(&format!(
        "{} exec white --lab {p}objective2 -- getent hosts black",
        bin()
    ));
    assert!(out.contains("192.168.1.1"), "{out}");
}

#[test]
fn objective2_sandboxed() {
    let p = prefix("o2s");
    let lab = format!("{p}objective2");
    let _g = LabGuard::new(&lab, None);
    let before = link_names(None);
    ok(nslab(&[
        "up",
        s(&example("objective2-bridge.yaml")),
        "--sandbox",
        "--prefix",
        &p,
    ]));
    // The real host is untouched: no new interface in the root namespace.
    assert_eq!(link_names(None), before);
    let host = format!("{p}objective2-host");
    let bri = ip_json(Some(&host), "-d link show bri0");
    assert_eq!(bri[0]["linkinfo"]["info_kind"], "bridge");
    let ports = ip_json(Some(&host), "link show master bri0");
    let mut names: Vec<&str> = ports
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["ifname"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["bbrveth", "gbrveth", "wbrveth"]);
    objective2_checks(&p, None);
    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
}

#[test]
fn objective2_host_mode_in_a_test_namespace() {
    let p = prefix("o2h");
    let lab = format!("{p}objective2");
    let t = TestNs::new(&format!("{p}T"));
    let _g = LabGuard::new(&lab, Some(&t.name));
    // A namespace and an interface of the test's own, which must survive.
    let other = TestNs::new(&format!("{p}other"));
    sh(&format!(
        "ip -n {} link add mine0 type veth peer name mine1",
        t.name
    ));
    ok(nslab_in(
        Some(&t.name),
        &["up", s(&example("objective2-bridge.yaml")), "--prefix", &p],
    ));
    // Bridges and bridge ports are in the namespace nslab ran in.
    let links = link_names(Some(&t.name));
    for n in ["bri0", "bbrveth", "wbrveth", "gbrveth", "mine0", "mine1"] {
        assert!(links.contains(&n.to_string()), "{n} in {links:?}");
    }
    // No IPv6 link-local address on the lab's host interfaces (no multicast flood).
    let v6 = ip_json(Some(&t.name), "-6 addr show dev bri0");
    assert!(
        v6.as_array()
            .unwrap()
            .iter()
            .all(|x| x["addr_info"].as_array().is_none_or(|a| a.is_empty())),
        "{v6}"
    );
    objective2_checks(&p, Some(&t.name));
    ok(nslab_in(Some(&t.name), &["down", "--lab", &lab]));
    let links = link_names(Some(&t.name));
    assert!(
        !links
            .iter()
            .any(|l| ["bri0", "bbrveth", "wbrveth", "gbrveth"].contains(&l.as_str())),
        "{links:?}"
    );
    assert!(links.contains(&"mine0".to_string()) && links.contains(&"mine1".to_string()));
    assert!(netns_list().contains(&other.name));
    assert_gone(&format!("{p}b"), &lab);
}

#[test]
fn host_mode_refuses_overlap_without_force() {
    let p = prefix("ovl");
    let lab = format!("{p}objective2");
    let t = TestNs::new(&format!("{p}T"));
    let _g = LabGuard::new(&lab, Some(&t.name));
    // The "real LAN" of this host: 192.168.0.0/24 on an interface nslab does not own.
    sh(&format!(
        "ip -n {0} link add lan0 type veth peer name lan1 && ip -n {0} link set lan0 up && ip -n {0} link set lan1 up && ip -n {0} addr add 192.168.0.10/24 dev lan0",
        t.name
    ));
    let o = nslab_in(
        Some(&t.name),
        &["up", s(&example("objective2-bridge.yaml")), "--prefix", &p],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("overlaps the host's route 192.168.0.0/24 dev lan0"),
        "{}",
        text(&o)
    );
    assert!(
        !link_names(Some(&t.name)).contains(&"bri0".to_string()),
        "nothing was created"
    );
    assert!(
        !netns_list()
            .iter()
            .any(|n| n.starts_with(&p) && n != &t.name)
    );
    ok(nslab_in(
        Some(&t.name),
        &[
            "up",
            s(&example("objective2-bridge.yaml")),
            "--prefix",
            &p,
            "--force",
        ],
    ));
    assert!(link_names(Some(&t.name)).contains(&"bri0".to_string()));
}

#[test]
fn second_up_changes_nothing_and_repairs_drift() {
    let p = prefix("idem");
    let lab = format!("{p}objective2");
    let _g = LabGuard::new(&lab, None);
    let file = example("objective2-bridge.yaml");
    ok(nslab(&["up", s(&file), "--sandbox", "--prefix", &p]));
    let black = format!("{p}black");
    let host = format!("{p}objective2-host");
    // The `run:` server must have bound 192.168.1.1 before its cable is cut
    // below (a slow start would fail to bind, and status rightly says so).
    wait_listen(&black, 800);
    let before = (ifindex(Some(&black), "bveth"), ifindex(Some(&host), "bri0"));
    let o = ok(nslab(&["up", s(&file), "--sandbox", "--prefix", &p]));
    assert!(stdout(&o).contains("nothing to change"), "{}", text(&o));
    assert_eq!(
        (ifindex(Some(&black), "bveth"), ifindex(Some(&host), "bri0")),
        before,
        "nothing recreated"
    );

    // A cable deleted by hand comes back; status says ok again.
    sh(&format!("ip -n {black} link del bveth"));
    let st = nslab(&["status", "--lab", &lab]);
    assert_eq!(st.status.code(), Some(1));
    assert!(stdout(&st).contains("missing"), "{}", text(&st));
    let o = ok(nslab(&["up", s(&file), "--sandbox", "--prefix", &p]));
    assert!(stdout(&o).contains("1 cable created"), "{}", text(&o));
    let st = ok(nslab(&["status", "--lab", &lab, "--json"]));
    let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(j["ok"], true, "{j}");
    assert!(pings(&format!("{p}green"), "192.168.1.1"));

    // A node removed from the file is removed from the kernel.
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read_to_string(&file).unwrap();
    let text2 = full[..full.find("expect:").unwrap()].replace("  green:\n    interfaces:\n      gveth: { address: 192.168.3.1/24 }\n    routes: [ \"default dev gveth\" ]\n", "").replace("  - [ green:gveth, bri0:gbrveth ]\n", "");
    let f2 = write_file(&dir, "objective2-bridge.yaml", &text2);
    ok(nslab(&["up", s(&f2), "--sandbox", "--prefix", &p]));
    assert!(!netns_list().contains(&format!("{p}green")));
    assert!(!link_names(Some(&host)).contains(&"gbrveth".to_string()));
    assert!(pings(&black, "192.168.2.1"));
}

#[test]
fn status_compares_with_a_file() {
    let (p, _lab, _g) = up_example("stf", "objective2-bridge.yaml");
    let dir = tempfile::tempdir().unwrap();
    let edited = std::fs::read_to_string(example("objective2-bridge.yaml"))
        .unwrap()
        .replace("192.168.2.1/24", "192.168.2.7/24");
    let f = write_file(&dir, "objective2-bridge.yaml", &edited);
    let o = nslab(&["status", s(&f), "--prefix", &p, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let white = j["places"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["place"] == "white")
        .unwrap();
    let wveth = white["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "wveth")
        .unwrap();
    assert_eq!(wveth["status"], "different");
    assert!(
        wveth["detail"]
            .to_string()
            .contains("missing address 192.168.2.7/24"),
        "{wveth}"
    );
}

#[test]
fn down_refuses_with_foreign_processes_unless_kill() {
    let (p, lab, _g) = up_example("proc", "objective1-veth.yaml");
    let sleeper = bg(&format!("ip netns exec {p}red sleep 300"));
    let pid = sleeper.0.id();
    // Wait until the process is inside the namespace.
    let t0 = std::time::Instant::now();
    while nslab::kernel::procs::net_ino(pid as i32)
        == nslab::kernel::procs::net_ino(std::process::id() as i32)
        && t0.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = nslab(&["down", "--lab", &lab]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains(&format!("pid {pid}")), "{}", text(&o));
    assert!(
        netns_list().contains(&format!("{p}red")),
        "nothing was removed"
    );
    ok(nslab(&["down", "--lab", &lab, "--kill"]));
    assert_gone(&p, &lab);
    // Twice is fine.
    let o = ok(nslab(&["down", "--lab", &lab]));
    assert!(stdout(&o).contains("not up"));
}

#[test]
fn down_uses_the_record_even_if_the_file_changed() {
    let p = prefix("rec");
    let lab = format!("{p}objective2");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        &dir,
        "lab.yaml",
        &std::fs::read_to_string(example("objective2-bridge.yaml")).unwrap(),
    );
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    // The file now says something else entirely (but keeps its name).
    std::fs::write(&f, "name: objective2\nnodes:\n  only: {}\n").unwrap();
    ok(nslab(&["down", s(&f), "--prefix", &p]));
    assert_gone(&p, &lab);
}

#[test]
fn bad_input_exits_2_and_creates_nothing() {
    let p = prefix("bad");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown key",
            "name: x\nnodes:\n  a:\n    colour: red\n",
            "nodes.a.colour",
        ),
        (
            "unknown node",
            "name: x\nnodes:\n  a: {}\nlinks: [[a:e, b:e]]\n",
            "links[0][1]",
        ),
        (
            "duplicate",
            "name: x\nnodes:\n  a: {}\n  a: {}\n",
            "duplicate",
        ),
        (
            "long name",
            "name: x\nnodes:\n  a: {}\n  b: {}\nlinks: [[a:abcdefghijklmnop, b:e]]\n",
            "at most 15",
        ),
        ("slash", "name: x\nnodes:\n  \"a/b\": {}\n", "`/`"),
        (
            "cidr",
            "name: x\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/40 } } }\n  b: {}\nlinks: [[a:e, b:e]]\n",
            "CIDR",
        ),
        (
            "gateway",
            "name: x\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } }, routes: [\"default via 10.9.0.1\"] }\n  b: {}\nlinks: [[a:e, b:e]]\n",
            "not reachable",
        ),
        (
            "address twice",
            "name: x\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { e: { address: 10.0.0.1/24 } } }\nlinks: [[a:e, b:e]]\n",
            "only once",
        ),
        (
            "port twice",
            "name: x\nbridges: { br: {} }\nnodes:\n  a: {}\n  b: {}\nlinks: [[a:e, br:p], [b:e, br:p]]\n",
            "used twice",
        ),
        ("empty", "", "empty"),
    ];
    for (what, content, want) in cases {
        let f = write_file(&dir, &format!("{}.yaml", what.replace(' ', "-")), content);
        let o = nslab(&["up", s(&f), "--sandbox", "--prefix", &p]);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", text(&o));
        let msg = text(&o);
        assert!(
            msg.contains(&format!("{}:", f.display())),
            "{what}: names the file: {msg}"
        );
        assert!(msg.contains(want), "{what}: expected {want:?} in {msg}");
        let after = msg.split(&format!("{}:", f.display())).nth(1).unwrap_or("");
        assert!(
            after
                .split(':')
                .next()
                .is_some_and(|l| l.parse::<u32>().is_ok_and(|n| n >= 1)),
            "{what}: has a line number: {msg}"
        );
    }
    assert!(
        !netns_list().iter().any(|n| n.starts_with(&p)),
        "nothing was created"
    );
}

#[test]
fn exec_passes_stdin_stdout_and_exit_codes() {
    let (_p, lab, _g) = up_example("exec", "objective1-veth.yaml");
    // /sys shows the node's own interfaces, as with `ip netns exec`.
    let out = sh(&format!(
        "{} exec red --lab {lab} -- ls /sys/class/net",
        bin()
    ));
    let mut seen: Vec<&str> = out.split_whitespace().collect();
    seen.sort();
    assert_eq!(seen, ["lo", "veth-red"]);
    let out = sh(&format!(
        "echo through | {} exec green --lab {lab} -- cat",
        bin()
    ));
    assert_eq!(out.trim(), "through");
    let (okk, _) = sh_status(&format!(
        "{} exec green --lab {lab} -- sh -c 'exit 7'; test $? -eq 7",
        bin()
    ));
    assert!(okk);
    assert_eq!(
        nslab(&["exec", "green", "--lab", &lab, "--", "no-such-program"])
            .status
            .code(),
        Some(127)
    );
    assert_eq!(
        nslab(&["exec", "pink", "--lab", &lab, "--", "true"])
            .status
            .code(),
        Some(125)
    );
    assert_eq!(
        nslab(&["exec", "green", "--lab", "nope", "--", "true"])
            .status
            .code(),
        Some(125)
    );
}
