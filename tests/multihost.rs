//! Labs over several machines, simulated: three namespaces the test makes play
//! three machines on an underlay bridge in a fourth; each machine runs its own
//! `nslab up --machine` (host mode inside its namespace, its own state
//! directory). Cables and bridges that cross machines ride VXLAN over it.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

/// The underlay and three machines, made by the test; removed on drop.
struct Sim {
    p: String,
    dir: tempfile::TempDir,
    file: PathBuf,
    /// Each machine's part in a sandbox of its own (`up --sandbox`).
    sandbox: bool,
    // Dropped last (after the machines' parts are down).
    _ns: Vec<TestNs>,
}

const LAB: &str = "name: mh
machines:
  m1: { underlay: 10.9.0.1 }
  m2: { underlay: 10.9.0.2 }
  m3: { underlay: 10.9.0.3 }
bridges:
  sw: { address: 10.1.0.254/24, on: m1 }
nodes:
  a: { on: m1, interfaces: { x: { address: 10.0.0.1/24 }, s: { address: 10.1.0.1/24 } } }
  b:
    on: m2
    interfaces: { x: { address: 10.0.0.2/24 }, s: { address: 10.1.0.2/24 } }
    run: [python3 -m http.server 8080 --bind 10.0.0.2]
  c: { on: m3, interfaces: { s: { address: 10.1.0.3/24 } } }
links:
  - { ends: [a:x, b:x], vni: 4242 }
  - [a:s, sw:pa]
  - [b:s, sw:pb]
  - [c:s, sw:pc]
expect:
  - reach: a -> b
";

impl Sim {
    fn new(tag: &str, lab: &str) -> Sim {
        let p = prefix(tag);
        let u = format!("{p}u");
        let mut ns = vec![TestNs::new(&u)];
        sh(&format!(
            "ip -n {u} link add u0 type bridge && ip -n {u} link set u0 up"
        ));
        for i in 1..=3 {
            let m = format!("{p}m{i}");
            ns.push(TestNs::new(&m));
            sh(&format!(
                "ip link add ul netns {m} type veth peer name p{i} netns {u} && ip -n {u} link set p{i} master u0 up && ip -n {m} addr add 10.9.0.{i}/24 dev ul && ip -n {m} link set ul up"
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(&dir, "lab.yaml", lab);
        // The underlay namespace goes last: reverse order on drop.
        ns.reverse();
        Sim {
            p,
            dir,
            file,
            sandbox: false,
            _ns: ns,
        }
    }

    fn machine_ns(&self, m: &str) -> String {
        format!("{}{m}", self.p)
    }

    /// nslab on machine `m` (in its namespace, with its own state directory).
    fn on(&self, m: &str, args: &[&str]) -> Output {
        let state = self.dir.path().join(m);
        nslab_env(
            Some(&self.machine_ns(m)),
            args,
            &[("NSLAB_STATE_DIR", state.display().to_string())],
        )
    }

    fn up(&self, m: &str) -> Output {
        let f = s(&self.file).to_string();
        let mut args = vec!["up", &f, "--machine", m, "--prefix", &self.p];
        if self.sandbox {
            args.push("--sandbox");
        }
        self.on(m, &args)
    }

    fn down(&self, m: &str) -> Output {
        let f = s(&self.file).to_string();
        self.on(
            m,
            &["down", &f, "--machine", m, "--prefix", &self.p, "--kill"],
        )
    }

    fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.p)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        for m in ["m1", "m2", "m3"] {
            let lab = format!("{}mh", self.p);
            let _ = self.on(m, &["down", "--lab", &lab, "--kill"]);
        }
    }
}

/// Ping until it answers (a machine's part that just came up), at most 10 s.
fn pings_soon(ns: &str, dst: &str) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if pings(ns, dst) {
            return true;
        }
    }
    false
}

fn f_json(sim: &Sim) -> String {
    s(&sim.file).to_string()
}

fn vxlan_ids(ns: &str) -> Vec<(String, u64, Option<String>)> {
    let v = ip_json(Some(ns), "-d link show type vxlan");
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let d = &l["linkinfo"]["info_data"];
            (
                l["ifname"].as_str().unwrap().to_string(),
                d["id"].as_u64().unwrap(),
                d["remote"].as_str().map(String::from),
            )
        })
        .collect()
}

#[test]
fn three_machines_ping_serve_http_and_leave_nothing() {
    let sim = Sim::new("mh", LAB);
    // Any order: m3 first, then m1, m2.
    for m in ["m3", "m1", "m2"] {
        ok(sim.up(m));
    }
    let (a, b, c) = (sim.ns("a"), sim.ns("b"), sim.ns("c"));
    // The cable a:x -- b:x is a VXLAN device in the node, its VNI the file's,
    // unicast to the other machine.
    let ax = vxlan_ids(&a);
    assert_eq!(
        ax,
        vec![("x".to_string(), 4242, Some("10.9.0.2".to_string()))]
    );
    // The bridge's VXLAN port on each machine: one VNI, the same everywhere.
    let ports: Vec<_> = ["m1", "m2", "m3"]
        .iter()
        .map(|m| vxlan_ids(&sim.machine_ns(m)))
        .collect();
    assert!(
        ports
            .iter()
            .all(|p| p.len() == 1 && p[0].1 == ports[0][0].1),
        "{ports:?}"
    );
    let bridge_vni = ports[0][0].1;
    assert_ne!(bridge_vni, 4242);
    // Static flood entries to the two other machines (bridge fdb).
    let fdb = sh(&format!(
        "ip netns exec {} bridge fdb show dev {}",
        sim.machine_ns("m1"),
        ports[0][0].0
    ));
    assert!(
        fdb.contains("dst 10.9.0.2") && fdb.contains("dst 10.9.0.3"),
        "{fdb}"
    );

    let dump = Tcpdump::start(&format!("{}u", sim.p), "u0", "udp port 4789");
    assert!(pings_soon(&a, "10.0.0.2"), "a -> b across the cable");
    assert!(pings_soon(&a, "10.1.0.3"), "a -> c across the bridge");
    assert!(pings_soon(&c, "10.1.0.2"), "c -> b across the bridge");
    assert!(
        pings_soon(&c, "10.1.0.254"),
        "c -> the bridge's address on m1"
    );
    let seen = dump.stop();
    assert!(seen.contains("vni 4242"), "{seen}");
    assert!(seen.contains(&format!("vni {bridge_vni}")), "{seen}");

    // HTTP across machines (b's `run:` program).
    wait_listen(&b, 8080);
    let code = sh(&format!(
        "ip netns exec {a} curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 http://10.0.0.2:8080/"
    ));
    assert_eq!(code.trim(), "200");

    for m in ["m1", "m2", "m3"] {
        let f = s(&sim.file).to_string();
        let st = sim.on(m, &["status", &f, "--machine", m, "--prefix", &sim.p]);
        assert_eq!(st.status.code(), Some(0), "{m}: {}", text(&st));
    }
    // status --json lists m1's VXLAN devices: the cable's and the bridge port.
    let st = ok(sim.on(
        "m1",
        &[
            "status",
            &f_json(&sim),
            "--machine",
            "m1",
            "--prefix",
            &sim.p,
            "--json",
        ],
    ));
    let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let vx = j["vxlans"].as_array().expect("vxlans");
    assert_eq!(vx.len(), 2, "{j}");
    assert!(
        vx.iter()
            .all(|v| v["status"] == "ok" && v["underlay_routed"] == true),
        "{j}"
    );
    assert_eq!(vx[0]["joins"], "b:x");
    assert_eq!(vx[0]["vni"], 4242);
    // The bridge port's flood entries, as observed.
    assert_eq!(
        vx[1]["flood"],
        serde_json::json!(["10.9.0.2", "10.9.0.3"]),
        "{j}"
    );

    // A flood entry removed by hand is drift: status names it, up adds it again.
    let (m1, port) = (sim.machine_ns("m1"), ports[0][0].0.clone());
    sh(&format!(
        "ip netns exec {m1} bridge fdb del 00:00:00:00:00:00 dev {port} dst 10.9.0.3"
    ));
    assert!(!pings(&a, "10.1.0.3"), "a -> c: nothing floods to m3");
    let f = s(&sim.file).to_string();
    let st = sim.on("m1", &["status", &f, "--machine", "m1", "--prefix", &sim.p]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    assert!(
        text(&st).contains(&format!("flood {port} in the host to 10.9.0.3")),
        "{}",
        text(&st)
    );
    let fixed = text(&ok(sim.up("m1")));
    assert!(fixed.contains(" 1 change "), "only the entry: {fixed}");
    let fdb = sh(&format!("ip netns exec {m1} bridge fdb show dev {port}"));
    assert!(fdb.contains("dst 10.9.0.3"), "{fdb}");
    assert!(pings_soon(&a, "10.1.0.3"), "a -> c across the bridge again");
    let st = sim.on("m1", &["status", &f, "--machine", "m1", "--prefix", &sim.p]);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));
    // An entry the file does not name (inside the underlay, where no machine
    // answers) is left alone: `up` notes it, status stays ok.
    sh(&format!(
        "ip netns exec {m1} bridge fdb append 00:00:00:00:00:00 dev {port} dst 10.9.0.99"
    ));
    let noted = text(&ok(sim.up("m1")));
    assert!(
        noted.contains(&format!(
            "VXLAN {port} in the host also floods to 10.9.0.99"
        )),
        "{noted}"
    );
    let st = sim.on("m1", &["status", &f, "--machine", "m1", "--prefix", &sim.p]);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));
    let fdb = sh(&format!("ip netns exec {m1} bridge fdb show dev {port}"));
    assert!(fdb.contains("dst 10.9.0.99"), "left alone: {fdb}");
    sh(&format!(
        "ip netns exec {m1} bridge fdb del 00:00:00:00:00:00 dev {port} dst 10.9.0.99"
    ));
    // Asking for another machine's part here is refused.
    let f = s(&sim.file).to_string();
    let wrong = sim.on("m1", &["status", &f, "--machine", "m2", "--prefix", &sim.p]);
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));

    // One machine's part restarted while the others stay up: traffic resumes.
    ok(sim.down("m2"));
    assert!(!netns_list().contains(&b));
    // Meanwhile m1's check fails, and why-not names the VXLAN, the machine and
    // the underlay (which routes there: it is m2's part that is missing).
    let f = s(&sim.file).to_string();
    let chk = sim.on(
        "m1",
        &[
            "check",
            &f,
            "--machine",
            "m1",
            "--prefix",
            &sim.p,
            "--no-matrix",
        ],
    );
    assert_eq!(chk.status.code(), Some(1), "{}", text(&chk));
    assert!(
        text(&chk).contains(
            "x is VXLAN x (vni 4242) to b:x on machine m2 (10.9.0.2); the underlay routes there"
        ),
        "{}",
        text(&chk)
    );
    ok(sim.up("m2"));
    assert!(pings_soon(&a, "10.0.0.2"), "a -> b after m2 restarted");
    assert!(pings_soon(&c, "10.1.0.2"), "c -> b after m2 restarted");

    for m in ["m1", "m2", "m3"] {
        ok(sim.down(m));
        let left = link_names(Some(&sim.machine_ns(m)));
        assert_eq!(left, vec!["lo", "ul"], "{m} keeps only its own links");
    }
    let nss = netns_list();
    for n in [&a, &b, &c] {
        assert!(!nss.contains(n), "{n} left");
    }
    for m in ["m1", "m2", "m3"] {
        let labs = sim.dir.path().join(m).join("labs");
        let n = std::fs::read_dir(&labs).map(|d| d.count()).unwrap_or(0);
        assert_eq!(n, 0, "{m}: a record left in {}", labs.display());
    }
}

/// `--sandbox` per machine: bridges live in each machine's own sandbox host
/// (`LAB-m1-host`); only the VXLAN sockets are in the machine's namespace,
/// whose links and routes stay as they were.
#[test]
fn sandboxed_parts_leave_the_machines_network_as_it_was() {
    let mut sim = Sim::new("mhs", LAB);
    sim.sandbox = true;
    let ms = ["m1", "m2", "m3"];
    // From `ip -j` (stdout only: `ip` may warn on stderr about peers in
    // namespaces other tests are deleting at the time).
    let net = |m: &str| {
        let ns = sim.machine_ns(m);
        let routes = ip_json(Some(&ns), "-4 route show");
        let routes: Vec<String> = routes
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!("{} dev {}", r["dst"], r["dev"]))
            .collect();
        let addrs = ip_json(Some(&ns), "-4 addr show");
        let addrs: Vec<String> = addrs
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| {
                let name = l["ifname"].to_string();
                l["addr_info"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |a| format!("{name} {}/{}", a["local"], a["prefixlen"]))
            })
            .collect();
        (link_names(Some(&ns)), routes, addrs)
    };
    let before: Vec<_> = ms.iter().map(|m| net(m)).collect();
    for m in ["m2", "m3", "m1"] {
        ok(sim.up(m));
    }
    let after: Vec<_> = ms.iter().map(|m| net(m)).collect();
    assert_eq!(
        before, after,
        "the machines' own links, routes and addresses"
    );
    // The bridge and its VXLAN port are in each machine's sandbox host.
    let hosts: Vec<String> = ms.iter().map(|m| format!("{}mh-{m}-host", sim.p)).collect();
    let vnis: Vec<_> = hosts.iter().map(|h| vxlan_ids(h)).collect();
    assert!(
        vnis.iter().all(|v| v.len() == 1 && v[0].1 == vnis[0][0].1),
        "{vnis:?}"
    );
    let (a, b, c) = (sim.ns("a"), sim.ns("b"), sim.ns("c"));
    assert_eq!(
        vxlan_ids(&a),
        vec![("x".to_string(), 4242, Some("10.9.0.2".to_string()))]
    );
    let dump = Tcpdump::start(&format!("{}u", sim.p), "u0", "udp port 4789");
    assert!(pings_soon(&a, "10.0.0.2"), "a -> b across the cable");
    assert!(pings_soon(&a, "10.1.0.3"), "a -> c across the bridge");
    assert!(
        pings_soon(&c, "10.1.0.254"),
        "c -> the bridge's address on m1"
    );
    let seen = dump.stop();
    assert!(seen.contains("vni 4242"), "{seen}");
    let f = f_json(&sim);
    for m in ms {
        let st = sim.on(m, &["status", &f, "--machine", m, "--prefix", &sim.p]);
        assert_eq!(st.status.code(), Some(0), "status on {m}: {}", text(&st));
    }
    for m in ms {
        ok(sim.down(m));
    }
    let after: Vec<_> = ms.iter().map(|m| net(m)).collect();
    assert_eq!(before, after, "down leaves the machines as they were");
    let nss = netns_list();
    for n in [&a, &b, &c].into_iter().chain(&hosts) {
        assert!(!nss.contains(n), "{n} left");
    }
}

#[test]
fn clear_errors_change_nothing() {
    let sim = Sim::new("mhe", LAB);
    let f = s(&sim.file).to_string();
    // No --machine on a file with machines: exit 2, machines listed.
    let o = sim.on("m1", &["up", &f, "--prefix", &sim.p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("m1 (10.9.0.1), m2 (10.9.0.2), m3 (10.9.0.3)"),
        "{}",
        text(&o)
    );
    // m1's part where m1's underlay address is not: refused before any change.
    let o = sim.on("m2", &["up", &f, "--machine", "m1", "--prefix", &sim.p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("underlay address 10.9.0.1 is not an address"),
        "{}",
        text(&o)
    );
    assert!(!netns_list().contains(&sim.ns("a")));
    // Another machine the underlay does not route to: refused, nothing made.
    let far = LAB.replace("m3: { underlay: 10.9.0.3 }", "m3: { underlay: 10.77.0.3 }");
    let farf = write_file(&sim.dir, "far.yaml", &far);
    let o = sim.on(
        "m1",
        &["up", s(&farf), "--machine", "m1", "--prefix", &sim.p],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no route to machine m3's underlay address 10.77.0.3"),
        "{}",
        text(&o)
    );
    assert!(!netns_list().contains(&sim.ns("a")));
    // An MTU that does not fit the overlay: exit 2, the field named.
    let big = LAB.replace(
        "x: { address: 10.0.0.1/24 }",
        "x: { address: 10.0.0.1/24, mtu: 1500 }",
    );
    let bigf = write_file(&sim.dir, "big.yaml", &big);
    let o = sim.on(
        "m1",
        &["up", s(&bigf), "--machine", "m1", "--prefix", &sim.p],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("nodes.a.interfaces.x.mtu") && text(&o).contains("at most 1450"),
        "{}",
        text(&o)
    );
    // A VNI another VXLAN device on port 4789 holds: the kernel refuses, the
    // error names the VNI, and what this run made is rolled back.
    let m1 = sim.machine_ns("m1");
    sh(&format!(
        "ip -n {m1} link add vxother type vxlan id 4242 dstport 4789 local 10.9.0.1"
    ));
    let o = sim.up("m1");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("vni 4242 is taken on udp 4789")
            && text(&o).contains("VXLAN device vxother holds it")
            && text(&o).contains("VNI already exists"),
        "{}",
        text(&o)
    );
    assert!(!netns_list().contains(&sim.ns("a")));
    let t0 = Instant::now();
    // The veth end of the rolled-back namespace goes with it (asynchronously).
    while link_names(Some(&m1)) != ["lo", "ul", "vxother"] {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{:?}",
            link_names(Some(&m1))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sh(&format!("ip -n {m1} link del vxother"));
}

#[test]
fn the_example_simulation_passes_and_leaves_nothing() {
    let p = prefix("mhx");
    let script = examples().join("multihost/simulate.sh");
    let o = std::process::Command::new("sh")
        .arg(&script)
        .env("NSLAB", bin())
        .env("PREFIX", &p)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("3 of 3 expectations hold"), "{out}");
    assert!(
        !netns_list().iter().any(|n| n.starts_with(&p)),
        "{:?}",
        netns_list()
    );
}
