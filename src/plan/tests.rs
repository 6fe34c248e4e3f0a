//! Planner tests without root: labs brought up on the fake kernel through the
//! real planner, executor and observation (`testkit::Run`), so plan -> apply ->
//! plan again must be empty (idempotency), and drift is repaired.

use super::*;
use crate::kernel::fake::Fake;
use crate::kernel::seam::{LinkReq, NsHandle, System};
use crate::testkit::{OBJ1, OBJ2, OBJ3, Run, lab, listing};
use crate::topology::{Options, parse_str};

/// A lab brought up on a new fake machine: the run, and the plan it applied.
fn fresh(l: &Lab) -> (Run, Vec<Op>) {
    let mut r = Run::new(&Fake::new(), l);
    let ops = r.up(l);
    (r, ops)
}

fn pos(ops: &[Op], f: impl Fn(&Op) -> bool) -> usize {
    ops.iter().position(f).expect("op present")
}

#[test]
fn objective2_sandbox_from_nothing() {
    let l = lab(OBJ2, true);
    let (_, ops) = fresh(&l);
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
    for text in [OBJ1, OBJ2, OBJ3] {
        for sandbox in [true, false] {
            let l = lab(text, sandbox);
            let (mut r, ops) = fresh(&l);
            assert!(!ops.is_empty());
            let again = r.plan(&l);
            assert!(
                again.is_empty(),
                "{} sandbox={sandbox}:\n{}",
                l.name,
                listing(&again)
            );
        }
    }
}

#[test]
fn host_mode_turns_link_local_off_per_interface_before_up() {
    let l = lab(OBJ2, false);
    let (_, ops) = fresh(&l);
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
    let (mut r, _) = fresh(&l);
    // Someone deletes black's cable end (the kernel takes its peer on the
    // bridge along), and takes white's address and route.
    let mut black = r.fake.clone().open("t-black").unwrap();
    let res = black.batch(vec![(
        LinkReq::DelLink {
            name: "bveth".into(),
        },
        "delete bveth".into(),
    )]);
    assert!(res[0].is_ok(), "{res:?}");
    let host = r.fake.state("t-objective2-host").unwrap();
    assert!(host.link("bbrveth").is_none());
    r.fake.edit("t-white", |n| {
        let wi = n.link_mut("wveth").unwrap().index;
        n.addrs.retain(|a| a.index != wi);
        n.routes.clear();
    });
    let ops = r.up(&l);
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
    assert!(r.plan(&l).is_empty());
}

#[test]
fn a_node_dropped_from_the_file_is_removed() {
    let l = lab(OBJ2, true);
    let (mut r, _) = fresh(&l);
    let smaller = OBJ2[..OBJ2.find("expect:").unwrap()]
        .to_string().replace("  green:\n    interfaces:\n      gveth: { address: 192.168.3.1/24 }\n    routes: [ \"default dev gveth\" ]\n", "").replace("  - [ green:gveth, bri0:gbrveth ]\n", "");
    let l2 = lab(&smaller, true);
    assert!(l2.node("green").is_none());
    let ops = r.up(&l2);
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::DeleteNs { ns } if ns == "t-green"))
    );
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::DeleteLink { name, .. } if name == "gbrveth")),
        "{ops:#?}"
    );
    assert!(r.plan(&l2).is_empty());
}

#[test]
fn changed_address_and_route_are_replaced() {
    let l = lab(OBJ2, true);
    let (mut r, _) = fresh(&l);
    let edited = OBJ2
        .replace("192.168.1.1/24", "192.168.1.9/24")
        .replace("\"default dev bveth\"", "\"10.0.0.0/8 dev bveth\"");
    let l2 = lab(&edited, true);
    let ops = r.up(&l2);
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
    assert!(r.plan(&l2).is_empty());
}

#[test]
fn foreign_objects_are_conflicts() {
    let l = lab(OBJ2, false);
    // A namespace with a lab node's name that is not the lab's.
    let f = Fake::new();
    f.add_foreign_ns("t-black");
    let err = Run::new(&f, &l).try_plan(&l).unwrap_err().to_string();
    assert!(
        err.contains("namespace t-black already exists and does not belong"),
        "{err}"
    );
    // An interface in the host with a bridge's name.
    let f = Fake::new();
    f.add_foreign_link(Ns::HOST.as_str(), "bri0", Some("bridge"));
    let err = Run::new(&f, &l).try_plan(&l).unwrap_err().to_string();
    assert!(err.contains("bri0") && err.contains("not nslab's"), "{err}");
}

#[test]
fn explain_reads_like_the_tutorial() {
    let l = lab(OBJ2, false);
    let (_, ops) = fresh(&l);
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
        ("objective3", OBJ3),
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
            let (_, ops) = fresh(&l);
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
    let (mut r, _) = fresh(&l);
    assert!(r.plan(&l).is_empty());
    type Drift = Box<dyn Fn(&Fake)>;
    let sysctl = |ns: &'static str, k: &'static str, v: &'static str| -> Drift {
        Box::new(move |f: &Fake| {
            f.edit(ns, |n| n.sysctls.insert(k.into(), v.into()));
        })
    };
    let link = |ns: &'static str, name: &'static str, set: fn(&mut ObsLink)| -> Drift {
        Box::new(move |f: &Fake| f.edit(ns, |n| set(n.link_mut(name).unwrap())))
    };
    let drifts: Vec<(&str, Drift)> = vec![
        ("forwarding off", sysctl("t-r", "net.ipv4.ip_forward", "0")),
        (
            "IPv6 forwarding off",
            sysctl("t-r", "net.ipv6.conf.all.forwarding", "0"),
        ),
        ("forwarding on", sysctl("t-a", "net.ipv4.ip_forward", "1")),
        (
            "MAC",
            link("t-a", "e", |l| l.mac = Some([2, 0, 0, 0, 5, 0x99])),
        ),
        (
            "bridge MAC",
            link("t-d-host", "br0", |l| l.mac = Some([2, 0, 0, 0, 0, 0x42])),
        ),
        ("MTU", link("t-a", "e", |l| l.mtu = Some(1300))),
        (
            "link down",
            Box::new(|f: &Fake| f.set_up("t-r", "e", false)),
        ),
        (
            "address gone",
            Box::new(|f: &Fake| {
                f.edit("t-r", |n| {
                    let i = n.link_mut("e").unwrap().index;
                    n.addrs.retain(|a| a.index != i);
                })
            }),
        ),
    ];
    // Repaired means the fake is as the first `up` left it, not only that the
    // planner sees nothing more to do.
    let before = machine(&r.fake);
    for (name, d) in &drifts {
        d(&r.fake);
        assert!(!r.up(&l).is_empty(), "{name} alone is not planned");
        assert_eq!(machine(&r.fake), before, "{name} alone is not repaired");
    }
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
                d(&r.fake);
                *n
            })
            .collect();
        let ops = r.up(&l);
        assert_eq!(
            ops.is_empty(),
            picked.is_empty(),
            "round {round}: {picked:?} planned as {ops:?}"
        );
        assert!(
            r.plan(&l).is_empty(),
            "round {round}: {picked:?} not repaired"
        );
        assert_eq!(
            machine(&r.fake),
            before,
            "round {round}: {picked:?} not repaired"
        );
    }
}

/// What a drift can change, by name: sysctls, links, addresses and routes.
fn machine(f: &Fake) -> BTreeSet<String> {
    let w = f.w();
    let mut s = BTreeSet::new();
    for (ns, n) in &w.ns {
        let name = |i: Option<u32>| {
            i.and_then(|i| n.links.iter().find(|l| l.index == i))
                .map(|l| l.name.clone())
        };
        // A sysctl never set reads 0, as one set to 0 does.
        s.extend(
            n.sysctls
                .iter()
                .filter(|(_, v)| v.as_str() != "0")
                .map(|(k, v)| format!("{ns}: {k}={v}")),
        );
        let st = n.state();
        for l in &st.links {
            let master = name(l.master);
            s.insert(format!(
                "{ns}: link {} up={} mac={:?} mtu={:?} master={master:?}",
                l.name, l.up, l.mac, l.mtu
            ));
        }
        for a in &st.addrs {
            s.insert(format!(
                "{ns}: addr {} on {:?}",
                a.addr,
                name(Some(a.index))
            ));
        }
        for r in &st.routes {
            s.insert(format!(
                "{ns}: route {} via {:?} dev {:?}",
                r.dst,
                r.via,
                name(r.oif)
            ));
        }
    }
    s
}

const SYSCTL_LAB: &str = r#"
name: sys
nodes:
  r:
    forward: true
    interfaces: { e: { address: 10.5.0.1/24 } }
    sysctl: { net.ipv4.conf.all.rp_filter: 1, net.ipv4.conf.e.rp_filter: "2" }
links: [ [ r:e, br0:pr ] ]
bridges: { br0: {} }
"#;

#[test]
fn node_sysctls_are_set_then_kept_and_drift_is_repaired() {
    let l = lab(SYSCTL_LAB, true);
    let (mut r, ops) = fresh(&l);
    let set: Vec<_> = ops
        .iter()
        .filter(
            |o| matches!(o, Op::Sysctl { ns, key, .. } if ns == "t-r" && key.contains("rp_filter")),
        )
        .collect();
    assert_eq!(set.len(), 2, "{}", listing(&ops));
    // The per-interface key comes after the interface exists.
    let veth = pos(&ops, |o| matches!(o, Op::CreateVeth { .. }));
    let per_if = pos(
        &ops,
        |o| matches!(o, Op::Sysctl { key, .. } if key == "net.ipv4.conf.e.rp_filter"),
    );
    assert!(veth < per_if);
    assert!(r.plan(&l).is_empty(), "{}", listing(&r.plan(&l)));
    // Changed by hand: the plan (and so status) shows it, up puts it back.
    r.fake
        .w()
        .ns
        .get_mut("t-r")
        .unwrap()
        .sysctls
        .insert("net.ipv4.conf.all.rp_filter".into(), "0".into());
    let drift = r.plan(&l);
    assert_eq!(
        listing(&drift).trim(),
        "set net.ipv4.conf.all.rp_filter=1 in t-r"
    );
    r.up(&l);
    assert!(r.plan(&l).is_empty());
    // /proc/sys writes vectors with tabs: the same value, not drift.
    r.fake
        .w()
        .ns
        .get_mut("t-r")
        .unwrap()
        .sysctls
        .insert("net.ipv4.conf.e.rp_filter".into(), "2\n".into());
    assert!(r.plan(&l).is_empty());
}

const ROUTER_NAT: &str = r#"
name: rn
nodes:
  r:
    forward: true
    interfaces: { lan: { address: 10.7.0.1/24 }, wan: { address: 10.8.0.1/24 } }
    nat: [ { source: 10.7.0.0/24, out: wan }, { source: "fd07::/64", out: wan } ]
  a:
    interfaces: { e: { address: 10.7.0.2/24 } }
links: [ [ r:lan, a:e ], [ r:wan, br0:pr ] ]
bridges: { br0: { address: 10.8.0.254/24 } }
"#;

#[test]
fn a_router_masquerades_in_its_own_namespace_and_drift_is_repaired() {
    let l = lab(ROUTER_NAT, true);
    let (mut r, ops) = fresh(&l);
    let set: Vec<_> = ops
        .iter()
        .filter_map(|o| match o {
            Op::SetNat { ns, rules, .. } => Some((ns.as_str().to_string(), rules.len())),
            _ => None,
        })
        .collect();
    assert_eq!(set, vec![("t-r".to_string(), 2)], "{}", listing(&ops));
    assert!(r.plan(&l).is_empty());
    // A rule removed by hand: the plan replaces the table.
    r.fake
        .w()
        .ns
        .get_mut("t-r")
        .unwrap()
        .nat
        .get_mut("nslab-t-rn")
        .unwrap()
        .masquerades
        .pop();
    assert!(matches!(&r.plan(&l)[..], [Op::SetNat { ns, .. }] if ns == "t-r"));
    r.up(&l);
    // The file drops the router's nat: its table goes.
    let without = lab(
        &ROUTER_NAT.replace(
            "    nat: [ { source: 10.7.0.0/24, out: wan }, { source: \"fd07::/64\", out: wan } ]\n",
            "",
        ),
        true,
    );
    assert!(matches!(&r.plan(&without)[..], [Op::DeleteNat { ns, .. }] if ns == "t-r"));
}

#[test]
fn explain_prints_router_nat_and_sysctls_as_commands() {
    let text = ROUTER_NAT.replace(
        "    forward: true\n",
        "    forward: true\n    sysctl: { net.ipv4.conf.all.rp_filter: 1, net.ipv4.ip_local_port_range: \"1024 2048\" }\n",
    );
    let (_, ops) = fresh(&lab(&text, true));
    let s = explain::script(&ops).join("\n");
    for want in [
        "ip netns exec t-r nft add table inet nslab-t-rn '{ comment \"nslab:t-rn\"; }'",
        "ip netns exec t-r nft add rule inet nslab-t-rn postrouting ip saddr 10.7.0.0/24 oifname '\"wan\"' masquerade",
        "ip netns exec t-r nft add rule inet nslab-t-rn postrouting ip6 saddr fd07::/64 oifname '\"wan\"' masquerade",
        "ip netns exec t-r sysctl -qw net.ipv4.conf.all.rp_filter=1",
        "ip netns exec t-r sysctl -qw 'net.ipv4.ip_local_port_range=1024 2048'",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
}

/// A star of `n` nodes on one bridge.
fn star_text(n: usize) -> String {
    let mut s = String::from("name: st\nbridges:\n  br0: { address: 10.0.255.254/16 }\nnodes:\n");
    for i in 0..n {
        s += &format!(
            "  n{i}:\n    interfaces: {{ e0: {{ address: 10.0.{}.{}/16 }} }}\n",
            i / 250,
            i % 250 + 1
        );
    }
    s += "links:\n";
    for i in 0..n {
        s += &format!("  - [ n{i}:e0, br0:p{i} ]\n");
    }
    s
}

#[test]
fn many_bridge_ports_in_the_sandbox_are_made_without_ipv6() {
    let default = |o: &Op, v: &str| {
        matches!(o, Op::Sysctl { key, value, .. }
            if key == "net.ipv6.conf.default.disable_ipv6" && value == v)
    };
    let l = lab(&star_text(MANY_PORTS), true);
    let (mut r, ops) = fresh(&l);
    let off = pos(&ops, |o| default(o, "1"));
    let on = pos(&ops, |o| default(o, "0"));
    let host = ops[off].ns().clone();
    assert_eq!(host, *ops[on].ns());
    // Every link of the sandbox's host is made between the two.
    let made: Vec<usize> = (0..ops.len())
        .filter(|&i| {
            matches!(&ops[i], Op::CreateBridge { .. } | Op::CreateVeth { .. })
                && *ops[i].ns() == host
        })
        .collect();
    assert_eq!(made.len(), MANY_PORTS + 2, "bridge, ports, uplink");
    assert!(
        made.iter().all(|&i| off < i && i < on),
        "{off} {on} {made:?}"
    );
    // The bridge and the uplink (addresses) get IPv6 back before they go up;
    // no port does.
    let back: Vec<&str> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Sysctl { key, value, .. } if value == "0" && key.ends_with(".disable_ipv6") => key
                .strip_prefix("net.ipv6.conf.")?
                .strip_suffix(".disable_ipv6"),
            _ => None,
        })
        .collect();
    assert_eq!(back, ["default", "br0", "uplink"]);
    let up_br0 = pos(
        &ops,
        |o| matches!(o, Op::SetLink { name, up: true, .. } if name == "br0"),
    );
    assert!(
        pos(
            &ops,
            |o| matches!(o, Op::Sysctl { key, .. } if key == "net.ipv6.conf.br0.disable_ipv6")
        ) < up_br0
    );
    // The ports are made up (their far ends, in the nodes, are not) and get
    // no `addrgenmode none` of their own; every other new link does.
    let port = |name: &str| name.starts_with('p') && name[1..].parse::<usize>().is_ok();
    for o in &ops {
        if let Op::CreateVeth { a, b } = o {
            assert_eq!(a.up, port(&a.name), "{o}");
            assert!(!b.up, "{o}");
        }
    }
    let nll: Vec<&str> = ops
        .iter()
        .filter_map(|o| match o {
            Op::SetLink {
                name,
                no_link_local: true,
                ..
            } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert!(!nll.iter().any(|n| port(n)), "{nll:?}");
    assert!(nll.contains(&"br0") && nll.contains(&"uplink"), "{nll:?}");
    assert_eq!(nll.iter().filter(|n| **n == "e0").count(), MANY_PORTS);
    // Marked and up, as every new link.
    let marked = ops
        .iter()
        .filter(|o| matches!(o, Op::SetLink { name, alias: Some(_), up: true, .. } if port(name)))
        .count();
    assert_eq!(marked, MANY_PORTS);
    assert!(r.plan(&l).is_empty(), "idempotent");
    // A cable the file wants down: its port is made down and stays down.
    let text = star_text(MANY_PORTS).replace(
        "  - [ n0:e0, br0:p0 ]\n",
        "  - { ends: [n0:e0, br0:p0], up: false }\n",
    );
    let l = lab(&text, true);
    let (r, ops) = fresh(&l);
    let made_up = |name: &str| {
        ops.iter()
            .any(|o| matches!(o, Op::CreateVeth { a, .. } if a.name == name && a.up))
    };
    assert!(!made_up("p0") && made_up("p1"));
    let w = r.fake.w();
    let up = |name: &str| {
        w.ns[host.as_str()]
            .links
            .iter()
            .any(|k| k.name == name && k.up)
    };
    assert!(!up("p0") && up("p1"));
    drop(w);
    // Fewer ports, or host mode (the real host's default is not nslab's): as before.
    for l in [
        lab(&star_text(MANY_PORTS - 1), true),
        lab(&star_text(MANY_PORTS), false),
    ] {
        let (_, ops) = fresh(&l);
        assert!(!ops.iter().any(|o| default(o, "1")), "{}", l.sandbox);
        assert!(
            !ops.iter()
                .any(|o| matches!(o, Op::CreateVeth { a, b } if a.up || b.up)),
            "{}",
            l.sandbox
        );
    }
}
