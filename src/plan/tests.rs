//! Planner tests without root: a fake kernel applies ops to an `Observed`, so
//! plan -> apply -> plan again must be empty (idempotency), and drift is repaired.

use super::*;
use crate::model::observed::{ObsAddr, ObsLink, ObsRoute};
use crate::topology::{Options, parse_str};

fn lab(text: &str, sandbox: bool) -> Lab {
    parse_str(
        text,
        "t.yaml",
        &Options {
            prefix: "t-".into(),
            sandbox,
            check_programs: false,
        },
    )
    .unwrap()
}

const OBJ1: &str = include_str!("../../examples/objective1-veth.yaml");
const OBJ2: &str = include_str!("../../examples/objective2-bridge.yaml");

/// A tiny model of the kernel: enough to apply what the planner emits.
struct Fake {
    obs: Observed,
    next: u32,
}

impl Fake {
    fn new(host_mode: bool) -> Fake {
        let mut obs = Observed::default();
        if host_mode {
            let mut st = NsState::default();
            st.links.push(link(1, "lo", None));
            st.links.push(link(2, "eth0", None));
            obs.ns.insert(
                Ns::HOST,
                NsObs {
                    state: st,
                    ..Default::default()
                },
            );
        }
        Fake { obs, next: 100 }
    }

    fn st(&mut self, ns: &str) -> &mut NsState {
        &mut self
            .obs
            .ns
            .get_mut(ns)
            .unwrap_or_else(|| panic!("namespace {ns:?} does not exist"))
            .state
    }

    fn add_link(
        &mut self,
        ns: &str,
        name: &str,
        kind: &str,
        master: Option<&str>,
        mac: Option<[u8; 6]>,
    ) {
        self.next += 1;
        let idx = self.next;
        let m = master.map(|m| self.st(ns).link(m).expect("master exists").index);
        let st = self.st(ns);
        assert!(st.link(name).is_none(), "{name} exists already in {ns:?}");
        let mut l = link(idx, name, Some(kind));
        l.master = m;
        // A MAC of the kernel's choosing unless the request gives one.
        l.mac = Some(mac.unwrap_or([0x0a, 0, 0, 0, (idx >> 8) as u8, idx as u8]));
        st.links.push(l);
    }

    fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::CreateNs { ns, mark, sysctls } => {
                    assert!(!self.obs.ns.contains_key(ns));
                    let mut st = NsState::default();
                    let mut lo = link(1, "lo", None);
                    lo.up = true;
                    lo.alias = Some(mark.clone());
                    // The kernel shows the namespace's forwarding on every link.
                    let fw = sysctls
                        .iter()
                        .any(|(k, v)| k == "net.ipv4.ip_forward" && v == "1");
                    lo.forwarding = (Some(fw), Some(fw));
                    st.links.push(lo);
                    self.obs.ns.insert(
                        ns.clone(),
                        NsObs {
                            state: st,
                            ..Default::default()
                        },
                    );
                }
                Op::DeleteNs { ns } => {
                    self.obs.ns.remove(ns);
                }
                Op::CreateBridge { ns, name, mac, .. } => {
                    self.add_link(ns.as_str(), name, "bridge", None, Some(*mac))
                }
                Op::CreateVeth { a, b } => {
                    self.add_link(a.ns.as_str(), &a.name, "veth", a.master.as_deref(), a.mac);
                    self.add_link(b.ns.as_str(), &b.name, "veth", b.master.as_deref(), b.mac);
                }
                Op::DeleteLink { ns, name } => {
                    let st = self.st(ns.as_str());
                    let i = st.link(name).expect("link to delete").index;
                    st.links.retain(|l| l.index != i);
                    st.addrs.retain(|a| a.index != i);
                    st.routes.retain(|r| r.oif != Some(i));
                }
                Op::SetLink {
                    ns,
                    name,
                    master,
                    alias,
                    mac,
                    mtu,
                    up,
                    ..
                } => {
                    let m = master
                        .as_ref()
                        .map(|m| self.st(ns.as_str()).link(m).expect("master").index);
                    let st = self.st(ns.as_str());
                    let l = st
                        .links
                        .iter_mut()
                        .find(|l| &l.name == name)
                        .expect("link to set");
                    if *up {
                        l.up = true;
                    }
                    if m.is_some() {
                        l.master = m;
                    }
                    if alias.is_some() {
                        l.alias = alias.clone();
                    }
                    if mac.is_some() {
                        l.mac = *mac;
                    }
                    if mtu.is_some() {
                        l.mtu = *mtu;
                    }
                }
                Op::AddAddr { ns, dev, addr } => {
                    let st = self.st(ns.as_str());
                    let i = st.link(dev).expect("dev").index;
                    assert!(
                        !st.addrs.iter().any(|a| a.index == i && &a.addr == addr),
                        "address added twice"
                    );
                    st.addrs.push(ObsAddr {
                        index: i,
                        addr: *addr,
                    });
                    st.routes.push(ObsRoute {
                        dst: addr.trunc(),
                        via: None,
                        oif: Some(i),
                        metric: None,
                        onlink: false,
                        protocol: "kernel".into(),
                        scope_link: true,
                    });
                }
                Op::DelAddr { ns, dev, addr } => {
                    let st = self.st(ns.as_str());
                    let i = st.link(dev).expect("dev").index;
                    st.addrs.retain(|a| !(a.index == i && &a.addr == addr));
                }
                Op::AddRoute { ns, route } => {
                    let st = self.st(ns.as_str());
                    let oif = route
                        .dev
                        .as_ref()
                        .map(|d| st.link(d).expect("route dev").index);
                    st.routes.push(ObsRoute {
                        dst: route.dst,
                        via: route.via,
                        oif,
                        metric: route.metric,
                        onlink: route.onlink,
                        protocol: "static".into(),
                        scope_link: route.via.is_none(),
                    });
                }
                Op::DelRoute { ns, route } => {
                    let st = self.st(ns.as_str());
                    st.routes.retain(|r| {
                        !(r.dst == route.dst && r.via == route.via && r.protocol == "static")
                    });
                }
                Op::Sysctl { ns, key, value } if key.contains("forward") && !ns.is_host() => {
                    let on = value == "1";
                    let lo = self
                        .st(ns.as_str())
                        .links
                        .iter_mut()
                        .find(|l| l.name == "lo")
                        .expect("lo");
                    if key == "net.ipv4.ip_forward" {
                        lo.forwarding.0 = Some(on);
                    } else {
                        lo.forwarding.1 = Some(on);
                    }
                }
                Op::Sysctl { .. } => {}
                Op::SetNat { ns, rules, .. } => {
                    self.obs.ns.get_mut(ns).unwrap().nat = Some(NatObs {
                        comment: Some("nslab:t-objective3".into()),
                        rules: rules.clone(),
                        exact: true,
                    })
                }
                Op::DeleteNat { ns, .. } => self.obs.ns.get_mut(ns).unwrap().nat = None,
                Op::WriteLabHosts { content, .. } => self.obs.lab_hosts = Some(content.clone()),
                Op::LinkHosts { ns, target } => {
                    self.obs.ns.get_mut(ns).unwrap().hosts = Some(target.clone())
                }
                Op::RemoveEtc { .. } => {}
                Op::WriteLabResolv { content, .. } => self.obs.lab_resolv = Some(content.clone()),
                Op::LinkResolv { ns, target } => {
                    self.obs
                        .resolv
                        .insert(ns.to_string(), EtcFile::Ours(target.clone()));
                }
            }
        }
    }
}

fn link(index: u32, name: &str, kind: Option<&str>) -> ObsLink {
    ObsLink {
        index,
        name: name.into(),
        kind: kind.map(String::from),
        alias: None,
        up: false,
        lower_up: false,
        master: None,
        mtu: None,
        mac: None,
        peer_index: None,
        forwarding: (None, None),
        port_state: None,
    }
}

fn up(f: &mut Fake, l: &Lab, prev: Option<&Lab>) -> Vec<Op> {
    let owned = Owned {
        namespaces: prev
            .map(|p| p.namespaces().into_iter().collect())
            .unwrap_or_default(),
        host_links: BTreeSet::new(),
        bridge_macs: Default::default(),
    };
    let (ops, _) = plan_up(l, &f.obs, prev, &owned).expect("no conflicts");
    f.apply(&ops);
    ops
}

fn pos(ops: &[Op], f: impl Fn(&Op) -> bool) -> usize {
    ops.iter().position(f).expect("op present")
}

#[test]
fn objective2_sandbox_from_nothing() {
    let l = lab(OBJ2, true);
    let mut f = Fake::new(false);
    let ops = up(&mut f, &l, None);
    let count = |p: fn(&Op) -> bool| ops.iter().filter(|o| p(o)).count();
    assert_eq!(
        count(|o| matches!(o, Op::CreateNs { .. })),
        5,
        "host, internet and three nodes"
    );
    assert_eq!(count(|o| matches!(o, Op::CreateBridge { .. })), 1);
    assert_eq!(
        count(|o| matches!(o, Op::CreateVeth { .. })),
        4,
        "three cables and the uplink"
    );
    assert_eq!(count(|o| matches!(o, Op::LinkHosts { .. })), 3);
    assert_eq!(count(|o| matches!(o, Op::WriteLabHosts { .. })), 1);
    // Dependencies: namespaces, then cables, then addresses and routes.
    let last_ns = ops
        .iter()
        .rposition(|o| matches!(o, Op::CreateNs { .. }))
        .unwrap();
    let first_veth = pos(&ops, |o| matches!(o, Op::CreateVeth { .. }));
    let bridge = pos(&ops, |o| matches!(o, Op::CreateBridge { .. }));
    assert!(last_ns < bridge && bridge < first_veth);
    let addr = pos(
        &ops,
        |o| matches!(o, Op::AddAddr { dev, .. } if dev == "bveth"),
    );
    let route = pos(
        &ops,
        |o| matches!(o, Op::AddRoute { ns, .. } if ns == "t-black"),
    );
    assert!(first_veth < addr && addr < route);
    // Bridge ports get the bridge as master when created, from the host side.
    assert!(ops.iter().any(|o| matches!(o, Op::CreateVeth { a, b } if a.name == "bbrveth" && a.master.as_deref() == Some("bri0") && a.ns == "t-objective2-host" && b.ns == "t-black")));
    // The sandbox host forwards from the start.
    let host_sysctls = ops.iter().find_map(|o| match o {
        Op::CreateNs { ns, sysctls, .. } if ns == "t-objective2-host" => Some(sysctls.clone()),
        _ => None,
    });
    let s = host_sysctls.unwrap();
    assert!(s.contains(&("net.ipv4.ip_forward".into(), "1".into())));
    // Link-local goes off per interface, in a request before the one that brings
    // it up: here the node end of the bridge cable.
    let pos = |up: bool| {
        ops.iter().position(|o| {
            matches!(o, Op::SetLink { ns, name, no_link_local, up: u, .. }
            if ns == "t-black" && name == "bveth" && *no_link_local != up && *u == up)
        })
    };
    assert!(pos(false).unwrap() < pos(true).unwrap());
}

#[test]
fn second_plan_is_empty() {
    for (text, sandbox) in [(OBJ1, true), (OBJ1, false), (OBJ2, true), (OBJ2, false)] {
        let l = lab(text, sandbox);
        let mut f = Fake::new(!sandbox);
        assert!(!up(&mut f, &l, None).is_empty());
        let again = up(&mut f, &l, Some(&l));
        assert!(again.is_empty(), "{} sandbox={sandbox}: {again:#?}", l.name);
    }
}

#[test]
fn host_mode_turns_link_local_off_per_interface_before_up() {
    let l = lab(OBJ2, false);
    let mut f = Fake::new(true);
    let ops = up(&mut f, &l, None);
    let nll = pos(
        &ops,
        |o| matches!(o, Op::SetLink { name, no_link_local: true, .. } if name == "bri0"),
    );
    let upi = pos(
        &ops,
        |o| matches!(o, Op::SetLink { name, up: true, .. } if name == "bri0"),
    );
    assert!(nll < upi);
    // Every other interface brought up too, in the node namespaces as well: each
    // gets its own `addrgenmode none` request first.
    for (i, o) in ops.iter().enumerate() {
        if let Op::SetLink {
            ns, name, up: true, ..
        } = o
            && name != "lo"
        {
            let before = ops[..i].iter().any(|p| matches!(p, Op::SetLink { ns: n2, name: m2, no_link_local: true, up: false, .. } if n2 == ns && m2 == name));
            assert!(
                before,
                "{name} in {ns} comes up with no addrgenmode none before"
            );
        }
    }
}

#[test]
fn repairs_what_was_removed_by_hand() {
    let l = lab(OBJ2, true);
    let mut f = Fake::new(false);
    up(&mut f, &l, None);
    // Someone deletes black's cable end, and takes white's address and route.
    f.apply(&[Op::DeleteLink {
        ns: "t-black".into(),
        name: "bveth".into(),
    }]);
    f.st("t-objective2-host")
        .links
        .retain(|x| x.name != "bbrveth");
    let wi = f.st("t-white").link("wveth").unwrap().index;
    f.st("t-white").addrs.retain(|a| a.index != wi);
    f.st("t-white").routes.clear();
    let ops = up(&mut f, &l, Some(&l));
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::CreateVeth { a, .. } if a.name == "bbrveth"))
    );
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::AddAddr { dev, .. } if dev == "wveth"))
    );
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::AddRoute { ns, .. } if ns == "t-white"))
    );
    assert!(
        !ops.iter()
            .any(|o| matches!(o, Op::CreateNs { .. } | Op::CreateBridge { .. }))
    );
    assert!(up(&mut f, &l, Some(&l)).is_empty());
}

#[test]
fn a_node_dropped_from_the_file_is_removed() {
    let l = lab(OBJ2, true);
    let mut f = Fake::new(false);
    up(&mut f, &l, None);
    let smaller = OBJ2[..OBJ2.find("expect:").unwrap()]
        .to_string().replace("  green:\n    interfaces:\n      gveth: { address: 192.168.3.1/24 }\n    routes: [ \"default dev gveth\" ]\n", "").replace("  - [ green:gveth, bri0:gbrveth ]\n", "");
    let l2 = lab(&smaller, true);
    assert!(l2.node("green").is_none());
    let ops = up(&mut f, &l2, Some(&l));
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::DeleteNs { ns } if ns == "t-green"))
    );
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::DeleteLink { name, .. } if name == "gbrveth")),
        "{ops:#?}"
    );
    assert!(up(&mut f, &l2, Some(&l2)).is_empty());
}

#[test]
fn changed_address_and_route_are_replaced() {
    let l = lab(OBJ2, true);
    let mut f = Fake::new(false);
    up(&mut f, &l, None);
    let edited = OBJ2
        .replace("192.168.1.1/24", "192.168.1.9/24")
        .replace("\"default dev bveth\"", "\"10.0.0.0/8 dev bveth\"");
    let l2 = lab(&edited, true);
    let ops = up(&mut f, &l2, Some(&l));
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::DelAddr { addr, .. } if addr.to_string() == "192.168.1.1/24"))
    );
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::AddAddr { addr, .. } if addr.to_string() == "192.168.1.9/24"))
    );
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::DelRoute { route, .. } if route.is_default()))
    );
    assert!(up(&mut f, &l2, Some(&l2)).is_empty());
}

#[test]
fn foreign_objects_are_conflicts() {
    let l = lab(OBJ2, false);
    // A namespace with a lab node's name that is not the lab's.
    let mut f = Fake::new(true);
    f.obs.ns.insert(
        "t-black".into(),
        NsObs {
            state: NsState {
                links: vec![link(1, "lo", None)],
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let err = plan_up(&l, &f.obs, None, &Owned::default()).unwrap_err();
    assert!(
        err[0]
            .0
            .contains("namespace t-black already exists and does not belong"),
        "{err:?}"
    );
    // An interface in the host with a bridge's name.
    let mut f = Fake::new(true);
    f.st(Ns::HOST.as_str())
        .links
        .push(link(9, "bri0", Some("bridge")));
    let err = plan_up(&l, &f.obs, None, &Owned::default()).unwrap_err();
    assert!(
        err[0].0.contains("bri0") && err[0].0.contains("not nslab's"),
        "{err:?}"
    );
}

#[test]
fn explain_reads_like_the_tutorial() {
    let l = lab(OBJ2, false);
    let mut f = Fake::new(true);
    let ops = up(&mut f, &l, None);
    let s = explain::script(&ops).join("\n");
    assert!(s.contains("ip netns add t-black"), "{s}");
    assert!(
        s.contains("ip link add bbrveth master bri0 type veth peer name bveth netns t-black"),
        "{s}"
    );
    assert!(
        s.contains("ip -n t-black addr add 192.168.1.1/24 broadcast + dev bveth"),
        "{s}"
    );
    assert!(
        s.contains("ip -n t-black route add default dev bveth proto static"),
        "{s}"
    );
    assert!(s.contains("ip link set bri0 addrgenmode none"), "{s}");
}

/// The plan of each tutorial example as the commands a person would type, from
/// nothing (snapshots under src/plan/snapshots; review changes with `cargo insta`).
#[test]
fn explain_snapshots() {
    for (name, text) in [
        ("objective1", OBJ1),
        ("objective2", OBJ2),
        (
            "objective3",
            include_str!("../../examples/objective3-nat.yaml"),
        ),
    ] {
        for sandbox in [false, true] {
            let l = parse_str(
                text,
                "t.yaml",
                &Options {
                    prefix: String::new(),
                    sandbox,
                    check_programs: false,
                },
            )
            .unwrap();
            let mut f = Fake::new(!sandbox);
            let ops = up(&mut f, &l, None);
            // The snapshots show the default state directory, whatever
            // NSLAB_STATE_DIR the suite runs with.
            let script = explain::script(&ops)
                .join("\n")
                .replace(&*crate::record::state_dir().to_string_lossy(), "/run/nslab");
            insta::assert_snapshot!(
                format!("{name}-{}", if sandbox { "sandbox" } else { "host" }),
                script
            );
        }
    }
}

/// Issue 17: every kind of drift the one comparison knows is planned (what
/// `status` reports as different) and, once applied, gone (what `up` repairs),
/// over random sequences of drifts.
#[test]
fn every_drift_is_planned_and_repaired() {
    let l = lab(
        "name: d
bridges: { br0: { address: 10.5.0.254/24 } }
nodes:
  a: { interfaces: { e: { address: 10.5.0.1/24, mtu: 1400, mac: \"02:00:00:00:05:01\" } } }
  r: { interfaces: { e: { address: 10.5.0.3/24 } }, forward: true }
links: [[a:e, br0:pa], [r:e, br0:pr]]
",
        true,
    );
    let mut f = Fake::new(false);
    up(&mut f, &l, None);
    assert!(up(&mut f, &l, Some(&l)).is_empty());
    type Drift = Box<dyn Fn(&mut Fake)>;
    let drifts: Vec<(&str, Drift)> = vec![
        (
            "forwarding off",
            Box::new(|f: &mut Fake| {
                let lo = f
                    .st("t-r")
                    .links
                    .iter_mut()
                    .find(|x| x.name == "lo")
                    .unwrap();
                lo.forwarding = (Some(false), Some(false));
            }),
        ),
        (
            "forwarding on",
            Box::new(|f: &mut Fake| {
                let lo = f
                    .st("t-a")
                    .links
                    .iter_mut()
                    .find(|x| x.name == "lo")
                    .unwrap();
                lo.forwarding.0 = Some(true);
            }),
        ),
        (
            "MAC",
            Box::new(|f: &mut Fake| {
                f.st("t-a")
                    .links
                    .iter_mut()
                    .find(|x| x.name == "e")
                    .unwrap()
                    .mac = Some([2, 0, 0, 0, 5, 0x99]);
            }),
        ),
        (
            "bridge MAC",
            Box::new(|f: &mut Fake| {
                f.st("t-d-host")
                    .links
                    .iter_mut()
                    .find(|x| x.name == "br0")
                    .unwrap()
                    .mac = Some([2, 0, 0, 0, 0, 0x42]);
            }),
        ),
        (
            "MTU",
            Box::new(|f: &mut Fake| {
                f.st("t-a")
                    .links
                    .iter_mut()
                    .find(|x| x.name == "e")
                    .unwrap()
                    .mtu = Some(1300);
            }),
        ),
        (
            "link down",
            Box::new(|f: &mut Fake| {
                f.st("t-r")
                    .links
                    .iter_mut()
                    .find(|x| x.name == "e")
                    .unwrap()
                    .up = false;
            }),
        ),
        (
            "address gone",
            Box::new(|f: &mut Fake| {
                let i = f.st("t-r").link("e").unwrap().index;
                f.st("t-r").addrs.retain(|a| a.index != i);
            }),
        ),
    ];
    // A deterministic walk through subsets of drifts.
    let mut seed = 0x2545_f491_u64;
    for round in 0..40 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let picked: Vec<&str> = drifts
            .iter()
            .enumerate()
            .filter(|(i, _)| seed >> i & 1 == 1)
            .map(|(_, (n, d))| {
                d(&mut f);
                *n
            })
            .collect();
        let ops = up(&mut f, &l, Some(&l));
        assert_eq!(
            ops.is_empty(),
            picked.is_empty(),
            "round {round}: {picked:?} planned as {ops:?}"
        );
        assert!(
            up(&mut f, &l, Some(&l)).is_empty(),
            "round {round}: {picked:?} not repaired"
        );
    }
}
