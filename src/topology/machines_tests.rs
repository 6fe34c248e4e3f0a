//! `machines:`, `on:` and `vni:`: validation, VNIs, MTUs, and one machine's part.

use super::machines::{part, vni_base};
use super::*;

fn parse(text: &str) -> Result<Lab, TopologyError> {
    parse_str(text, "t.yaml", &Options::default())
}

/// Three machines; a and b on m1 and m2 joined by a cable; a bridge with
/// members on all three (its address on m1).
const LAB: &str = "name: mh
machines:
  m1: { underlay: 10.9.0.1 }
  m2: { underlay: 10.9.0.2 }
  m3: { underlay: 10.9.0.3, underlay_mtu: 9000 }
bridges:
  sw: { address: 10.1.0.254/24, on: m1 }
nodes:
  a: { on: m1, interfaces: { x: { address: 10.0.0.1/24 }, s: { address: 10.1.0.1/24 } } }
  b: { on: m2, interfaces: { x: { address: 10.0.0.2/24 }, s: { address: 10.1.0.2/24 } } }
  c: { on: m3, interfaces: { s: { address: 10.1.0.3/24 } } }
links:
  - [a:x, b:x]
  - [a:s, sw:pa]
  - [b:s, sw:pb]
  - [c:s, sw:pc]
";

fn messages(text: &str) -> Vec<String> {
    parse(text)
        .expect_err("refused")
        .issues
        .iter()
        .map(|i| format!("{}: {}", i.field, i.message))
        .collect()
}

#[test]
fn vnis_are_derived_from_the_file_alone_and_unique() {
    let l1 = parse(LAB).unwrap();
    let l2 = parse(LAB).unwrap();
    assert_eq!(l1.overlays, l2.overlays);
    let vnis: Vec<u32> = l1.overlays.iter().map(|o| o.vni).collect();
    let base = vni_base("mh");
    assert_eq!(vnis, vec![base, base + 1]);
    assert_eq!(l1.overlays[0].machines, vec!["m1", "m2"]);
    assert_eq!(l1.overlays[1].bridge.as_deref(), Some("sw"));
    assert_eq!(l1.overlays[1].machines, vec!["m1", "m2", "m3"]);
    // Another lab name, other VNIs (two labs on one machine share port 4789).
    let other = parse(&LAB.replace("name: mh", "name: other")).unwrap();
    assert_ne!(other.overlays[0].vni, base);
    assert!(vni_base("anything") + 4096 <= super::machines::MAX_VNI);
}

#[test]
fn a_vni_in_the_file_wins_and_derived_ones_avoid_it() {
    let base = vni_base("mh");
    let t = LAB.replace(
        "- [a:x, b:x]",
        &format!("- {{ ends: [a:x, b:x], vni: {} }}", base + 1),
    );
    let l = parse(&t).unwrap();
    let vnis: Vec<u32> = l.overlays.iter().map(|o| o.vni).collect();
    assert_eq!(vnis, vec![base + 1, base]);
}

#[test]
fn the_overlay_mtu_is_applied_and_a_declared_mtu_that_does_not_fit_is_refused() {
    let l = parse(LAB).unwrap();
    let mtu = |n: &str, i: &str| {
        l.node(n)
            .unwrap()
            .interfaces
            .iter()
            .find(|x| x.name == i)
            .unwrap()
            .mtu
    };
    assert_eq!(mtu("a", "x"), Some(1450));
    // The bridge's least underlay MTU is 1500 (m3's 9000 does not count alone).
    assert_eq!(mtu("c", "s"), Some(1450));
    assert_eq!(l.bridge("sw").unwrap().mtu, Some(1450));
    let t = LAB.replace(
        "x: { address: 10.0.0.1/24 }",
        "x: { address: 10.0.0.1/24, mtu: 1500 }",
    );
    let m = messages(&t);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].starts_with("nodes.a.interfaces.x.mtu: mtu 1500 does not fit a:x"),
        "{m:?}"
    );
    assert!(m[0].contains("at most 1450"), "{m:?}");
}

#[test]
fn mistakes_are_named() {
    let dup = LAB.replace("underlay: 10.9.0.2", "underlay: 10.9.0.1");
    assert!(
        messages(&dup).iter().any(|m| m.starts_with(
            "machines.m2.underlay: 10.9.0.1 is already the underlay address of machine m1"
        )),
        "{:?}",
        messages(&dup)
    );
    let bad = LAB.replace("underlay: 10.9.0.2", "underlay: ten");
    assert!(messages(&bad)[0].starts_with("machines.m2.underlay: \"ten\" is not an IP address"));
    let unplaced = LAB.replace("c: { on: m3, ", "c: { ");
    assert!(
        messages(&unplaced)[0].starts_with("nodes.c.on: the lab spans machines"),
        "{:?}",
        messages(&unplaced)
    );
    let unknown = LAB.replace("c: { on: m3", "c: { on: m9");
    assert_eq!(
        messages(&unknown),
        vec!["nodes.c.on: no machine \"m9\"; machines: m1, m2, m3"]
    );
    let local = LAB.replace("- [c:s, sw:pc]", "- { ends: [c:s, sw:pc], vni: 7 }");
    assert!(messages(&local)[0].contains("stays on one machine"));
    let base = vni_base("mh");
    let t = format!("{LAB}  - {{ ends: [a:y, c:y], vni: {base} }}\n").replace(
        "- [a:x, b:x]",
        &format!("- {{ ends: [a:x, b:x], vni: {base} }}"),
    );
    assert!(
        messages(&t)
            .iter()
            .any(|m| m.contains(&format!("vni {base} is already the vni of links[0]"))),
        "{:?}",
        messages(&t)
    );
    let no_machines = "name: x\nnodes: { a: { on: m1 } }\n";
    assert!(messages(no_machines)[0].contains("the file has no `machines:`"));
}

#[test]
fn a_machines_part_holds_its_nodes_and_vxlans() {
    let l = parse(LAB).unwrap();
    let base = vni_base("mh");
    let p1 = part(&l, "m1").unwrap();
    assert_eq!(
        p1.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        vec!["a"]
    );
    assert_eq!(p1.links.len(), 1, "only a's cable to the bridge");
    assert_eq!(p1.bridge("sw").unwrap().addresses.len(), 1);
    assert_eq!(p1.bridge("sw").unwrap().ports, vec!["pa"]);
    let cable = &p1.vxlans[0];
    assert_eq!((cable.name.as_str(), cable.vni), ("x", base));
    assert_eq!(cable.place, Place::Node("a".into()));
    assert_eq!(cable.remote, Some("10.9.0.2".parse().unwrap()));
    assert_eq!(cable.local, "10.9.0.1".parse::<std::net::IpAddr>().unwrap());
    let port = &p1.vxlans[1];
    assert_eq!(port.master.as_deref(), Some("sw"));
    assert_eq!(
        port.flood,
        vec![
            "10.9.0.2".parse::<std::net::IpAddr>().unwrap(),
            "10.9.0.3".parse().unwrap()
        ]
    );
    // m3: c and the bridge without its address; no cable VXLAN.
    let p3 = part(&l, "m3").unwrap();
    assert!(p3.bridge("sw").unwrap().addresses.is_empty());
    let p2 = part(&l, "m2").unwrap();
    let macs = [&p1, &p2, &p3].map(|p| p.bridge("sw").unwrap().mac);
    assert_eq!(macs[0], l.bridge("sw").unwrap().mac);
    assert!(macs[0] != macs[1] && macs[1] != macs[2] && macs[0] != macs[2]);
    assert_eq!(p3.vxlans.len(), 1);
    assert_eq!(p3.vxlans[0].flood.len(), 2);
    assert!(part(&l, "m9").unwrap_err().contains("no such machine"));
}

/// The fake host's address (eth0, 192.0.2.10/24) is m1's underlay.
const FAKE_LAB: &str = "name: mh
machines:
  m1: { underlay: 192.0.2.10 }
  m2: { underlay: 192.0.2.11 }
bridges:
  sw: { on: m1 }
nodes:
  a: { on: m1, interfaces: { x: { address: 10.0.0.1/24 }, s: { address: 10.1.0.1/24 } } }
  b: { on: m2, interfaces: { x: { address: 10.0.0.2/24 }, s: { address: 10.1.0.2/24 } } }
links:
  - { ends: [a:x, b:x], vni: 4242 }
  - [a:s, sw:pa]
  - [b:s, sw:pb]
";

#[test]
fn a_machines_part_comes_up_on_the_fake_kernel_and_a_second_plan_is_empty() {
    use crate::plan::Op;
    use crate::testkit::{Run, listing};
    let fake = crate::kernel::fake::Fake::new();
    let l = part(&crate::testkit::lab(FAKE_LAB, false), "m1").unwrap();
    let mut r = Run::new(&fake, &l);
    let ops = r.up(&l);
    let text = listing(&ops);
    assert!(text.contains("create VXLAN x (vni 4242, udp 4789, local 192.0.2.10, remote 192.0.2.11) from the host into t-a"), "{text}");
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::AddFdb { dst, .. } if dst.to_string() == "192.0.2.11")),
        "{text}"
    );
    let again = r.plan(&l);
    assert!(again.is_empty(), "second plan:\n{}", listing(&again));
    let a = fake.state("t-a").unwrap();
    let x = a.link("x").unwrap();
    assert_eq!(x.kind.as_deref(), Some("vxlan"));
    assert_eq!(x.vxlan.as_ref().unwrap().vni, 4242);
    let host = fake.state("").unwrap();
    let port = l.vxlans.iter().find(|v| v.master.is_some()).unwrap();
    let sw = host.link("sw").unwrap();
    assert_eq!(host.link(&port.name).unwrap().master, Some(sw.index));
    assert!(
        r.rec.host_links.contains(&port.name),
        "the bridge port is recorded"
    );
    // Changed behind nslab's back (another VNI): deleted and made again.
    fake.edit("t-a", |n| {
        n.link_mut("x").unwrap().vxlan.as_mut().unwrap().vni = 7
    });
    let fix = r.up(&l);
    assert!(
        listing(&fix).contains("delete interface x in t-a"),
        "{}",
        listing(&fix)
    );
    assert!(r.plan(&l).is_empty());
}

#[test]
fn a_flood_entry_removed_by_hand_is_drift_and_up_adds_it_again() {
    use crate::plan::Op;
    use crate::testkit::{Run, listing};
    let fake = crate::kernel::fake::Fake::new();
    let l = part(&crate::testkit::lab(FAKE_LAB, false), "m1").unwrap();
    let mut r = Run::new(&fake, &l);
    r.up(&l);
    let port = l.vxlans.iter().find(|v| v.master.is_some()).unwrap();
    let m2: std::net::IpAddr = "192.0.2.11".parse().unwrap();
    let flood = |f: &crate::kernel::fake::Fake| {
        let st = f.state("").unwrap();
        st.link(&port.name)
            .unwrap()
            .vxlan
            .as_ref()
            .unwrap()
            .flood
            .clone()
    };
    assert_eq!(flood(&fake), vec![m2], "observed after up");
    // The cable's unicast remote is an all-zero entry too: not an extra one.
    let a = fake.state("t-a").unwrap();
    assert_eq!(a.link("x").unwrap().vxlan.as_ref().unwrap().flood, vec![m2]);
    // Complete: nothing planned, status ok.
    assert!(r.plan(&l).is_empty());
    let rec = r.rec.clone();
    let s = crate::status::status_in(&mut r.k, &rec, &l, "record".into(), false).unwrap();
    let vs = s.vxlans.iter().find(|v| v.name == port.name).unwrap();
    assert_eq!(
        (vs.status, &vs.flood),
        (crate::status::State::Ok, &vec![m2])
    );
    assert!(s.ok, "{:?}", s.drift);

    // `bridge fdb del 00:00:00:00:00:00 dev vxN dst 192.0.2.11`.
    let index = fake.state("").unwrap().link(&port.name).unwrap().index;
    assert!(fake.w().fdb.remove(&(String::new(), index, m2)));
    assert!(flood(&fake).is_empty());
    let s = crate::status::status_in(&mut r.k, &rec, &l, "record".into(), false).unwrap();
    let vs = s.vxlans.iter().find(|v| v.name == port.name).unwrap();
    assert_eq!(vs.status, crate::status::State::Different);
    assert!(vs.flood.is_empty());
    assert!(!s.ok);
    let want = format!("flood {} in the host to 192.0.2.11", port.name);
    assert_eq!(s.drift, vec![want.clone()], "status names the entry");
    // Only the entry is planned: the device stays.
    let ops = r.plan(&l);
    assert!(
        matches!(&ops[..], [Op::AddFdb { dev, dst, .. }] if dev == &port.name && *dst == m2),
        "{}",
        listing(&ops)
    );
    r.up(&l);
    assert_eq!(flood(&fake), vec![m2], "repaired");
    assert_eq!(
        fake.state("").unwrap().link(&port.name).unwrap().index,
        index,
        "the same device"
    );
    assert!(r.plan(&l).is_empty());

    // An entry the file does not name is left alone, with a note.
    let other: std::net::IpAddr = "192.0.2.99".parse().unwrap();
    fake.w().fdb.insert((String::new(), index, other));
    let p = crate::lab::plan_in(&mut r.k, &l, Some(&rec)).unwrap();
    assert!(p.ops.is_empty(), "{}", listing(&p.ops));
    assert!(
        p.notes.iter().any(|n| n.contains(&format!(
            "VXLAN {} in the host also floods to 192.0.2.99",
            port.name
        ))),
        "{:?}",
        p.notes
    );
    let s = crate::status::status_in(&mut r.k, &rec, &l, "record".into(), false).unwrap();
    let vs = s.vxlans.iter().find(|v| v.name == port.name).unwrap();
    assert_eq!(vs.flood, vec![m2, other]);
    assert_eq!(vs.status, crate::status::State::Ok);
}

#[test]
fn a_vni_taken_in_the_namespace_is_refused_by_the_kernel() {
    use crate::testkit::Run;
    let fake = crate::kernel::fake::Fake::new();
    let l = part(&crate::testkit::lab(FAKE_LAB, false), "m1").unwrap();
    let mut r = Run::new(&fake, &l);
    r.up(&l);
    // Another copy of the lab (another prefix) with the same VNI on this machine.
    let text = FAKE_LAB
        .replace("sw", "sx")
        .replace("pa", "qa")
        .replace("pb", "qb");
    let other = parse_str(
        &text,
        "t.yaml",
        &Options {
            prefix: "u-".into(),
            ..Options::default()
        },
    )
    .unwrap();
    let other = part(&other, "m1").unwrap();
    let mut r2 = Run::new(&fake, &other);
    let ops = r2.plan(&other);
    let e = r2.apply(&ops).unwrap_err().to_string();
    assert!(e.contains("vni 4242") && e.contains("File exists"), "{e}");
}

#[test]
fn a_machines_part_is_refused_where_its_underlay_address_is_not() {
    let fake = crate::kernel::fake::Fake::new();
    let l = part(&crate::testkit::lab(FAKE_LAB, false), "m2").unwrap();
    let mut r = crate::testkit::Run::new(&fake, &l);
    let e = r.try_plan(&l).unwrap_err().to_string();
    assert!(
        e.contains("machine m2's underlay address 192.0.2.11 is not an address of the host"),
        "{e}"
    );
}

#[test]
fn the_graph_shows_placement_and_what_crosses_machines() {
    use crate::graph::{Format, render};
    let l = parse(&LAB.replace("- [a:x, b:x]", "- { ends: [a:x, b:x], vni: 4242 }")).unwrap();
    let bridge_vni = l.overlays[1].vni;
    for f in [Format::Dot, Format::Mermaid] {
        let g = render(&l, f).unwrap();
        assert!(g.contains("VXLAN vni 4242 m1"), "{g}");
        assert!(
            g.contains(&format!("sw (VXLAN vni {bridge_vni} over m1 m2 m3)")),
            "{g}"
        );
        assert!(g.contains("on m3"), "{g}");
    }
    // A lab without machines draws as before.
    let plain = parse("name: x\nnodes: { a: { interfaces: { e: {} } }, b: { interfaces: { e: {} } } }\nlinks: [[a:e, b:e]]\n").unwrap();
    assert!(!render(&plain, Format::Mermaid).unwrap().contains("VXLAN"));
}
