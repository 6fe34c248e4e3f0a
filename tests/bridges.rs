//! Bridges joined by cables (Mininet's linear and tree topologies, a ring with
//! STP): sandboxed labs, checked with nslab's own probes and with `ping` and
//! `ip -j -d link` as independent witnesses.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A switched lab in Mininet's words: switches s1.., hosts h1.. (10.0.0.N/8,
/// interface hN-eth0), switch ports sK-ethM.
struct Topo {
    name: &'static str,
    stp: bool,
    switches: Vec<String>,
    /// (host, its switch, the switch's port)
    hosts: Vec<(String, String, String)>,
    /// (switch, port, switch, port)
    cables: Vec<(String, String, String, String)>,
    ports: BTreeMap<String, usize>,
}

impl Topo {
    fn new(name: &'static str, stp: bool) -> Topo {
        Topo {
            name,
            stp,
            switches: vec![],
            hosts: vec![],
            cables: vec![],
            ports: BTreeMap::new(),
        }
    }
    fn port(&mut self, s: &str) -> String {
        let n = self.ports.entry(s.to_string()).or_default();
        *n += 1;
        format!("{s}-eth{n}")
    }
    fn switch(&mut self) -> String {
        let s = format!("s{}", self.switches.len() + 1);
        self.switches.push(s.clone());
        s
    }
    fn host(&mut self, s: &str) {
        let h = format!("h{}", self.hosts.len() + 1);
        let p = self.port(s);
        self.hosts.push((h, s.into(), p));
    }
    fn cable(&mut self, a: &str, b: &str) {
        let (pa, pb) = (self.port(a), self.port(b));
        self.cables.push((a.into(), pa, b.into(), pb));
    }

    /// Mininet `--topo linear,n`: h_i on s_i, s_i linked to s_{i-1}.
    fn linear(n: usize) -> Topo {
        let mut t = Topo::new("lin", false);
        for i in 0..n {
            let s = t.switch();
            t.host(&s);
            if i > 0 {
                t.cable(&s, &format!("s{i}"));
            }
        }
        t
    }

    /// Mininet `--topo tree,depth=2,fanout=3`: s1 above s2, s3, s4, three hosts each.
    fn tree() -> Topo {
        let mut t = Topo::new("tree", false);
        let root = t.switch();
        for _ in 0..3 {
            let s = t.switch();
            for _ in 0..3 {
                t.host(&s);
            }
            t.cable(&s, &root);
        }
        t
    }

    /// A ring of 4 switches, one host each.
    fn ring(stp: bool) -> Topo {
        let mut t = Topo::new("ring", stp);
        for _ in 0..4 {
            let s = t.switch();
            t.host(&s);
        }
        for i in 1..=4 {
            t.cable(&format!("s{i}"), &format!("s{}", i % 4 + 1));
        }
        t
    }

    fn yaml(&self) -> String {
        let mut y = format!("name: {}\nbridges:\n", self.name);
        for s in &self.switches {
            y += &format!("  {s}: {{ {} }}\n", if self.stp { "stp: true" } else { "" });
        }
        y += "nodes:\n";
        for (i, (h, ..)) in self.hosts.iter().enumerate() {
            y += &format!(
                "  {h}: {{ interfaces: {{ {h}-eth0: {{ address: 10.0.0.{}/8 }} }} }}\n",
                i + 1
            );
        }
        y += "links:\n";
        for (h, s, p) in &self.hosts {
            y += &format!("  - [ {h}:{h}-eth0, {s}:{p} ]\n");
        }
        for (a, pa, b, pb) in &self.cables {
            y += &format!("  - [ {a}:{pa}, {b}:{pb} ]\n");
        }
        y += "expect:\n  - reach: all -> all\n";
        y
    }

    fn addr(&self, i: usize) -> String {
        format!("10.0.0.{}", i + 1)
    }

    /// The switches reachable from `from` without crossing cable `cut`.
    fn side(&self, from: &str, cut: usize) -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = [from.to_string()].into();
        loop {
            let before = seen.len();
            for (k, (a, _, b, _)) in self.cables.iter().enumerate() {
                if k != cut && (seen.contains(a) || seen.contains(b)) {
                    seen.insert(a.clone());
                    seen.insert(b.clone());
                }
            }
            if seen.len() == before {
                return seen;
            }
        }
    }

    /// Host pairs (by index) that cannot reach each other with cable `cut` down.
    fn cut_pairs(&self, cut: usize) -> BTreeSet<(usize, usize)> {
        let mut out = BTreeSet::new();
        for (i, (_, si, _)) in self.hosts.iter().enumerate() {
            let side = self.side(si, cut);
            for (j, (_, sj, _)) in self.hosts.iter().enumerate() {
                if i != j && !side.contains(sj) {
                    out.insert((i, j));
                }
            }
        }
        out
    }
}

/// A lab up from a topology, sandboxed under its own prefix.
struct Up {
    p: String,
    lab: String,
    host_ns: String,
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
    _g: LabGuard,
}

fn up(tag: &str, t: &Topo) -> Up {
    let p = prefix(tag);
    let lab = format!("{p}{}", t.name);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "lab.yaml", &t.yaml());
    let g = LabGuard::new(&lab, None);
    let t0 = Instant::now();
    ok(nslab(&["up", s(&file), "--sandbox", "--prefix", &p]));
    println!("{lab}: up in {:.2} s", t0.elapsed().as_secs_f64());
    Up {
        host_ns: format!("{lab}-host"),
        p,
        lab,
        _dir: dir,
        file,
        _g: g,
    }
}

/// The pairs (by index) where `ping -c1 -W1` from one host to the other
/// fails; each source pings on its own thread.
fn failing_pairs(u: &Up, t: &Topo) -> BTreeSet<(usize, usize)> {
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..t.hosts.len())
            .map(|i| {
                sc.spawn(move || {
                    let ns = format!("{}{}", u.p, t.hosts[i].0);
                    (0..t.hosts.len())
                        .filter(|&j| j != i)
                        .filter(|&j| {
                            !sh_status(&format!("ip netns exec {ns} ping -4 -c1 -W1 {}", t.addr(j)))
                                .0
                        })
                        .map(|j| (i, j))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

fn names(t: &Topo, pairs: &BTreeSet<(usize, usize)>) -> Vec<String> {
    pairs
        .iter()
        .map(|(i, j)| format!("{} -> {}", t.hosts[*i].0, t.hosts[*j].0))
        .collect()
}

/// `ip -j -d link show` in the lab's host namespace, by name.
fn links_in(u: &Up) -> BTreeMap<String, serde_json::Value> {
    let v = ip_json(Some(&u.host_ns), "-d link show");
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| (l["ifname"].as_str().unwrap().to_string(), l.clone()))
        .collect()
}

/// Every port is on its bridge, as the kernel says; STP as the file says.
fn assert_wiring(u: &Up, t: &Topo) {
    let links = links_in(u);
    for s in &t.switches {
        let d = &links[s]["linkinfo"]["info_data"];
        assert_eq!(d["stp_state"], u32::from(t.stp), "{s}: {d}");
        if t.stp {
            assert_eq!(d["forward_delay"], 400, "{s}: {d}");
            assert_eq!(d["max_age"], 600, "{s}: {d}");
        }
    }
    let mut ports: Vec<(&String, &String)> = t.hosts.iter().map(|(_, s, p)| (s, p)).collect();
    for (a, pa, b, pb) in &t.cables {
        ports.push((a, pa));
        ports.push((b, pb));
    }
    for (s, p) in ports {
        assert_eq!(links[p]["master"], s.as_str(), "{p} is a port of {s}");
    }
    // A cable's two ends are each other's peer.
    for (_, pa, _, pb) in &t.cables {
        assert_eq!(links[pa]["link"], pb.as_str(), "{pa} <-> {pb}");
    }
}

fn check_passes(u: &Up) {
    let o = nslab(&["check", "--lab", &u.lab]);
    assert!(o.status.success(), "check failed:\n{}", text(&o));
    assert!(
        stdout(&o).contains("1 of 1 expectations hold"),
        "{}",
        text(&o)
    );
}

/// Up, check and ping every pair; then cut cable `cut` by hand and see exactly
/// the pairs across it fail, and why-not name the cut.
fn switched_lab_and_a_cut(tag: &str, t: &Topo, cut: usize) {
    let u = up(tag, t);
    assert_wiring(&u, t);
    check_passes(&u);
    let failing = failing_pairs(&u, t);
    assert!(failing.is_empty(), "ping fails: {:?}", names(t, &failing));

    let (near_sw, port, far_sw, far) = &t.cables[cut];
    // Capture on a cable between bridges sees traffic crossing it.
    let (i, j) = *t.cut_pairs(cut).iter().next().unwrap();
    let ep = format!("{near_sw}:{port}");
    let cap = CaptureRun::start(&["--lab", &u.lab, &ep, "-c", "6"]);
    let ns = format!("{}{}", u.p, t.hosts[i].0);
    sh(&format!(
        "ip netns exec {ns} ping -4 -c4 -i0.2 -W1 {}",
        t.addr(j)
    ));
    let (out, _) = cap.finish();
    assert!(out.contains(&ep) && out.contains("ICMP"), "{out}");
    // status lists the cable once, from each side's bridge.
    let v: serde_json::Value =
        serde_json::from_slice(&ok(nslab(&["status", "--lab", &u.lab, "--json"])).stdout).unwrap();
    let br = v["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == near_sw.as_str())
        .unwrap();
    let want = format!("{port} -> {far_sw}:{far}");
    assert!(
        br["cables"].as_array().unwrap().iter().any(|c| c == &want),
        "{br}"
    );
    assert_eq!(br["stp"], "off", "{br}");

    sh(&format!("ip -n {} link set {port} down", u.host_ns));
    let want = t.cut_pairs(cut);
    assert!(!want.is_empty() && want.len() < t.hosts.len() * (t.hosts.len() - 1));
    let failing = failing_pairs(&u, t);
    assert_eq!(
        names(t, &failing),
        names(t, &want),
        "the pairs across {port}"
    );

    // nslab's own probe agrees and names the port set down.
    let (i, j) = *want.iter().next().unwrap();
    let o = nslab(&[
        "ping",
        "--lab",
        &u.lab,
        &t.hosts[i].0,
        &t.hosts[j].0,
        "-c1",
        "--json",
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    let why = &v["why_not"];
    assert_eq!(why["reason"], "bridge_port_down", "{why}");
    assert_eq!(why["port"], port.as_str(), "{why}");
    let o = nslab(&["check", "--lab", &u.lab]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains(&format!("port {port} of bridge")),
        "{}",
        text(&o)
    );
    // Set down with `nslab link` at the other end, it is named as that.
    sh(&format!("ip -n {} link set {port} up", u.host_ns));
    let ep = format!("{far_sw}:{far}");
    ok(nslab(&["link", "--lab", &u.lab, &ep, "down"]));
    let o = nslab(&[
        "ping",
        "--lab",
        &u.lab,
        &t.hosts[j].0,
        &t.hosts[i].0,
        "-c1",
        "--json",
    ]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(v["why_not"]["reason"], "link_down", "{}", v["why_not"]);
    assert_eq!(v["why_not"]["endpoint"], ep.as_str(), "{}", v["why_not"]);
    ok(nslab(&["link", "--lab", &u.lab, &ep, "up"]));
    check_passes(&u);
}

#[test]
fn linear_4_reaches_all_pairs_and_a_cut_splits_it() {
    let t = Topo::linear(4);
    // s2 -- s3: h1, h2 on one side, h3, h4 on the other.
    let cut = t.cables.iter().position(|c| c.0 == "s3").unwrap();
    switched_lab_and_a_cut("bl", &t, cut);
}

#[test]
fn tree_depth_2_fanout_3_reaches_all_pairs_and_a_cut_splits_it() {
    let t = Topo::tree();
    assert_eq!((t.switches.len(), t.hosts.len()), (4, 9));
    // s3's uplink: h4..h6 cut off from the rest.
    let cut = t.cables.iter().position(|c| c.0 == "s3").unwrap();
    switched_lab_and_a_cut("bt", &t, cut);
}

#[test]
fn a_ring_with_stp_reaches_all_pairs_and_again_after_a_cut() {
    let t = Topo::ring(true);
    let u = up("br", &t);
    assert_wiring(&u, &t);
    // `up` returned once no port listens or learns; STP blocks one port of the ring.
    let links = links_in(&u);
    let states: BTreeMap<&str, String> = t
        .cables
        .iter()
        .flat_map(|(_, a, _, b)| [a, b])
        .map(|p| {
            let st = links[p]["linkinfo"]["info_slave_data"]["state"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            (p.as_str(), st)
        })
        .collect();
    println!("port states after up: {states:?}");
    assert!(
        states
            .values()
            .all(|s| s == "forwarding" || s == "blocking"),
        "{states:?}"
    );
    assert!(states.values().any(|s| s == "blocking"), "{states:?}");
    let failing = failing_pairs(&u, &t);
    assert!(failing.is_empty(), "ping fails: {:?}", names(&t, &failing));
    check_passes(&u);
    // status shows STP and the port STP blocks (as `ip` does).
    let st = stdout(&ok(nslab(&["status", "--lab", &u.lab])));
    assert!(
        st.contains("STP s1: on, forward delay 4 s, max age 6 s"),
        "{st}"
    );
    let (blocked, _) = states.iter().find(|(_, s)| *s == "blocking").unwrap();
    assert!(st.contains(&format!("{blocked} (blocking)")), "{st}");
    // plan --explain of the file from nothing: what a person would type.
    let o = ok(nslab(&[
        "plan",
        s(&u.file),
        "--sandbox",
        "--prefix",
        "tbx-",
        "--explain",
    ]));
    let ex = stdout(&o);
    for want in [
        "ip -n tbx-ring-host link set s1 type bridge stp_state 1 forward_delay 400 max_age 600",
        "link add s1-eth2 master s1 type veth peer name s2-eth2",
        "ip -n tbx-ring-host link set s2-eth2 master s2",
    ] {
        assert!(ex.contains(want), "{want} not in:\n{ex}");
    }

    // Cut a forwarding cable of the ring: STP opens the blocked port.
    let (_, port, ..) = t
        .cables
        .iter()
        .find(|(_, a, _, b)| {
            states[a.as_str()] == "forwarding" && states[b.as_str()] == "forwarding"
        })
        .unwrap();
    sh(&format!("ip -n {} link set {port} down", u.host_ns));
    let t0 = Instant::now();
    let mut failing = failing_pairs(&u, &t);
    while !failing.is_empty() && t0.elapsed() < Duration::from_secs(60) {
        failing = failing_pairs(&u, &t);
    }
    println!(
        "ring reconverged after {port} went down in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(failing.is_empty(), "after 60 s: {:?}", names(&t, &failing));
    check_passes(&u);
}

#[test]
fn a_ring_without_stp_is_refused_naming_the_loop() {
    let t = Topo::ring(false);
    let p = prefix("bn");
    let before = netns_list();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "lab.yaml", &t.yaml());
    let g = LabGuard::new(&format!("{p}ring"), None);
    let o = nslab(&["up", s(&file), "--sandbox", "--prefix", &p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains("s1 -- s2 -- s3 -- s4 -- s1 is a loop"),
        "{msg}"
    );
    assert!(msg.contains("set stp: true on s1, s2, s3, s4"), "{msg}");
    assert!(msg.contains("links[7]"), "{msg}");
    // Other tests run alongside: only this test's prefix counts.
    let made: Vec<String> = netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&p) && !before.contains(n))
        .collect();
    assert!(made.is_empty(), "created: {made:?}");
    drop(g);
    assert_gone(&p, &format!("{p}ring"));
}

#[test]
fn host_mode_makes_and_removes_cables_between_bridges() {
    let p = prefix("bh");
    let host = TestNs::new(&format!("{p}hostns"));
    let t = Topo::linear(3);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "lab.yaml", &t.yaml());
    let lab = format!("{p}lin");
    let g = LabGuard::new(&lab, Some(&host.name));
    ok(nslab_in(
        Some(&host.name),
        &["up", s(&file), "--prefix", &p],
    ));
    let links = link_names(Some(&host.name));
    for (_, a, _, b) in &t.cables {
        assert!(links.contains(a) && links.contains(b), "{links:?}");
    }
    assert!(pings(&format!("{p}h1"), "10.0.0.3"));
    let o = ok(nslab_in(Some(&host.name), &["down", "--lab", &lab]));
    assert!(!text(&o).contains("had not finished"), "{}", text(&o));
    drop(g);
    assert_eq!(link_names(Some(&host.name)), ["lo"], "left in the host");
    drop(host);
    assert_gone(&p, &lab);
}
