//! The why-not walk on the fake kernel: one test per fault of tests/why_not.rs
//! (which breaks real namespaces as root), here without root and in
//! milliseconds. Each names the place and the object; a healthy lab names none.

use super::walk::{Ctx, WhyOpts};
use super::{PlaceKind, Reason};
use crate::kernel::fake::FakeHandle;
use crate::kernel::neigh::{NUD_INCOMPLETE, ObsNeigh};
use crate::kernel::seam::System;
use crate::testkit::*;
use crate::topology::{Lab, Place};
use std::net::IpAddr;

const CHAIN3: &str = include_str!("../../../tests/data/chain3.yaml");

fn ctx<'a>(r: &Run, l: &'a Lab) -> Ctx<'a, FakeHandle> {
    let open = crate::probe::check::places(l)
        .into_iter()
        .map(|p| {
            let ns = crate::plan::ns_of(l, &p);
            let h = match ns.name() {
                None => r.fake.host(),
                Some(n) => r.fake.clone().open(n).expect("namespace"),
            };
            (p, h)
        })
        .collect();
    Ctx::with_places(l, open).expect("read the places")
}

fn node(n: &str) -> Place {
    Place::Node(n.into())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Why `from` does not reach `to`, by the walk alone (no traced probe: the
/// fake has no firewall).
fn why(r: &Run, l: &Lab, from: &str, to: &str) -> Reason {
    why_with(r, l, from, to, None)
}

fn why_with(r: &Run, l: &Lab, from: &str, to: &str, size: Option<usize>) -> Reason {
    let from = match from {
        "host" => Place::Host,
        n => node(n),
    };
    let opts = WhyOpts {
        size,
        no_trace: true,
        tcp_port: None,
    };
    ctx(r, l).why_not_with(&from, ip(to), &opts)
}

/// A healthy walk ends in "let the probe through" and names the hops it checked.
fn assert_clear(reason: Reason, hops: &[&str]) {
    let Reason::Unknown { detail, checked } = &reason else {
        panic!("a healthy lab was given a fault: {reason}");
    };
    assert!(detail.contains("let the probe through"), "{reason}");
    for h in hops {
        assert!(
            checked.iter().any(|c| c.starts_with(h)),
            "{h} not in {checked:#?}"
        );
    }
}

#[test]
fn a_healthy_lab_has_no_fault() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    assert_clear(
        why(&r, &l, "a", "10.70.4.2"),
        &["a:", "r1:", "r2:", "r3:", "b:"],
    );
    assert_clear(why(&r, &l, "b", "10.70.1.1"), &["b:", "r3:", "r2:", "r1:"]);
    let (r, l) = up_from_nothing(OBJ3, true);
    assert_clear(why(&r, &l, "black", "198.51.100.8"), &["black:", "host:"]);
    assert_clear(why(&r, &l, "green", "192.168.1.1"), &["green:"]);
}

#[test]
fn interface_down_at_the_source() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    r.fake.set_up("t-a", "e", false);
    let w = why(&r, &l, "a", "10.70.4.2");
    assert!(
        matches!(&w, Reason::InterfaceDown { at, interface } if at == "a" && interface == "e"),
        "{w}"
    );
}

#[test]
fn far_end_of_a_cable_down() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    r.fake.set_up("t-r1", "l", false);
    let w = why(&r, &l, "a", "10.70.4.2");
    assert!(
        matches!(&w, Reason::PeerDown { at, interface, far_at, far_interface }
            if at == "a" && interface == "e" && far_at == "r1" && far_interface == "l"),
        "{w}"
    );
}

#[test]
fn a_router_that_does_not_forward() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    r.fake.edit("t-r2", |n| {
        n.sysctls.insert("net.ipv4.ip_forward".into(), "0".into())
    });
    let w = why(&r, &l, "a", "10.70.4.2");
    assert!(
        matches!(&w, Reason::NotForwarding { at, kind: PlaceKind::Node } if at == "r2"),
        "{w:?}"
    );
}

#[test]
fn no_route_on_the_way_there() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    r.fake.edit("t-r2", |n| {
        n.routes.retain(|x| x.dst.to_string() != "10.70.4.0/24")
    });
    let w = why(&r, &l, "a", "10.70.4.2");
    assert!(
        matches!(&w, Reason::NoRoute { at, dst } if at == "r2" && *dst == ip("10.70.4.2")),
        "{w}"
    );
}

#[test]
fn no_route_on_the_way_back() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    r.fake.edit("t-r2", |n| {
        n.routes.retain(|x| x.dst.to_string() != "10.70.1.0/24")
    });
    let w = why(&r, &l, "a", "10.70.4.2");
    assert!(
        matches!(&w, Reason::NoRouteBack { at, to } if at == "r2" && *to == ip("10.70.1.2")),
        "{w}"
    );
}

#[test]
fn a_blackhole_route_in_a_router() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    r.fake.edit("t-r2", |n| {
        n.blocking
            .push(("10.70.4.0/25".parse().unwrap(), "blackhole".into()))
    });
    let w = why(&r, &l, "a", "10.70.4.2");
    assert!(
        matches!(&w, Reason::BlockingRoute { at, kind, route, .. }
            if at == "r2" && kind == "blackhole" && route == "blackhole 10.70.4.0/25"),
        "{w}"
    );
}

#[test]
fn an_mtu_too_small_for_the_probe() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    r.fake
        .edit("t-r2", |n| n.link_mut("r").unwrap().mtu = Some(1300));
    // Default-size pings pass; 1400 bytes with DF do not.
    assert_clear(why(&r, &l, "a", "10.70.4.2"), &["r2:"]);
    let w = why_with(&r, &l, "a", "10.70.4.2", Some(1400));
    assert!(
        matches!(&w, Reason::Mtu { at, interface, mtu: 1300, size: 1428 } if at == "r2" && interface == "r"),
        "{w:?}"
    );
}

#[test]
fn a_holder_that_does_not_answer_arp() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    let e = r.fake.state("t-a").unwrap().link("e").unwrap().index;
    r.fake.edit("t-a", |n| {
        n.neigh.push(ObsNeigh {
            index: e,
            dst: ip("10.70.1.1"),
            lladdr: None,
            state: NUD_INCOMPLETE,
        })
    });
    let w = why(&r, &l, "a", "10.70.4.2");
    assert!(
        matches!(&w, Reason::NoNeighbour { at, holder: Some(h), state: Some(s), .. }
            if at == "a" && h == "r1:l" && s == "incomplete"),
        "{w:?}"
    );
}

#[test]
fn a_lost_address_is_named_not_the_route_it_took_along() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    // `ip addr flush dev e` in a: the kernel drops the routes through e too.
    r.fake.edit("t-a", |n| {
        let e = n.link_mut("e").unwrap().index;
        n.addrs.retain(|a| a.index != e);
        n.routes.retain(|x| x.oif != Some(e));
    });
    let w = why(&r, &l, "a", "10.70.4.2");
    assert!(
        matches!(&w, Reason::NoAddress { at, interface, family: 4 } if at == "a" && interface == "e"),
        "{w}"
    );
}

#[test]
fn a_bridge_port_down_and_a_bridge_down() {
    let (r, l) = up_from_nothing(OBJ2, true);
    assert_clear(why(&r, &l, "green", "192.168.1.1"), &["green:"]);
    let host = crate::plan::ns_of(&l, &Place::Host);
    r.fake.set_up(host.as_str(), "bbrveth", false);
    let w = why(&r, &l, "green", "192.168.1.1");
    assert!(
        matches!(&w, Reason::BridgePortDown { bridge, port, .. } if bridge == "bri0" && port == "bbrveth"),
        "{w}"
    );
    r.fake.set_up(host.as_str(), "bbrveth", true);
    r.fake.set_up(host.as_str(), "bri0", false);
    let w = why(&r, &l, "green", "192.168.1.1");
    assert!(
        matches!(&w, Reason::BridgeDown { bridge, .. } if bridge == "bri0"),
        "{w}"
    );
}

#[test]
fn a_private_source_without_nat_is_a_missing_nat() {
    let text = OBJ3.replace("nat:\n  - { source: 192.168.0.0/16, not_out: bri0 }\n", "");
    assert!(!text.contains("nat:"), "the example changed: {text}");
    let (r, l) = up_from_nothing(&text, true);
    let w = why(&r, &l, "black", "198.51.100.8");
    assert!(
        matches!(&w, Reason::NoNat { src, .. } if *src == ip("192.168.1.1")),
        "{w}"
    );
}

/// Two ways between ann and bob: out by r1, back by r2 onto ann's ae2 (cy is
/// a router off the path).
const ASYM: &str = include_str!("../../../tests/data/asym.yaml");

#[test]
fn strict_reverse_path_filtering_drops_an_asymmetric_reply() {
    let (r, l) = up_from_nothing(ASYM, true);
    // Control: strict filtering in cy, a router the probe does not cross.
    r.fake.edit("t-cy", |n| {
        n.sysctls
            .insert("net.ipv4.conf.all.rp_filter".into(), "1".into())
    });
    assert_clear(
        why(&r, &l, "ann", "10.0.2.2"),
        &["ann:", "r1:", "bob:", "r2:"],
    );
    r.fake.edit("t-ann", |n| {
        n.sysctls
            .insert("net.ipv4.conf.all.rp_filter".into(), "1".into())
    });
    let w = why(&r, &l, "ann", "10.0.2.2");
    assert!(
        matches!(&w, Reason::RpFilter { at, interface, mode, .. }
            if at == "ann" && interface == "ae2" && mode == "strict"),
        "{w}"
    );
}

/// ann - r1 - r2 - bob; r1 and r2 send 10.7.7.0/24 to each other (off the path).
const LOOP: &str = include_str!("../../../tests/data/loop.yaml");

#[test]
fn a_routing_loop_between_two_routers() {
    let (r, l) = up_from_nothing(LOOP, true);
    assert_clear(why(&r, &l, "ann", "10.0.2.2"), &["r1:", "r2:"]);
    // r2 sends bob's address back to r1.
    let x = r.fake.state("t-r2").unwrap().link("r2x").unwrap().index;
    r.fake.edit("t-r2", |n| {
        n.routes.push(crate::model::observed::ObsRoute {
            dst: "10.0.2.2/32".parse().unwrap(),
            via: Some(ip("10.0.9.1")),
            oif: Some(x),
            metric: None,
            onlink: false,
            protocol: "static".into(),
            scope_link: false,
        })
    });
    let w = why(&r, &l, "ann", "10.0.2.2");
    let Reason::RoutingLoop { path, .. } = &w else {
        panic!("{w}");
    };
    assert!(
        path.iter().any(|p| p == "r1") && path.iter().any(|p| p == "r2"),
        "{w}"
    );
    assert!(!path.iter().any(|p| p == "bob"), "{w}");
}

/// Why-not with the lab's runtime state (what `nslab link` and `partition`
/// recorded): a walk in the fake kernel, `runtime` set as the record has it.
fn why_rt(r: &Run, l: &Lab, from: &str, to: &str, rt: &crate::runtime::State) -> Reason {
    let opts = WhyOpts {
        size: None,
        no_trace: true,
        tcp_port: None,
    };
    let mut cx = ctx(r, l);
    cx.runtime = rt.clone();
    cx.why_not_with(&node(from), ip(to), &opts)
}

fn held(l: &Lab, endpoints: &[&str]) -> crate::runtime::State {
    crate::runtime::State {
        links_down: endpoints
            .iter()
            .map(|e| crate::runtime::link::resolve(l, e).expect("endpoint"))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn a_link_set_down_with_nslab_link_is_named_as_such() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    // At the source, and as the far end of the source's cable.
    r.fake.set_up("t-a", "e", false);
    let w = why_rt(&r, &l, "a", "10.70.4.2", &held(&l, &["a:e"]));
    assert!(
        matches!(&w, Reason::LinkDown { at, interface, endpoint, .. }
            if at == "a" && interface == "e" && endpoint == "a:e"),
        "{w:?}"
    );
    assert_eq!(w.to_string(), "link a:e is down (nslab link)");
    assert_eq!(w.class(), "link_down");
    // Down by hand, not by nslab: the kernel's symptom, as before.
    let w = why_rt(&r, &l, "a", "10.70.4.2", &held(&l, &["r3:r"]));
    assert!(matches!(&w, Reason::InterfaceDown { .. }), "{w:?}");
    let (r, l) = up_from_nothing(CHAIN3, true);
    r.fake.set_up("t-r1", "l", false);
    let w = why_rt(&r, &l, "a", "10.70.4.2", &held(&l, &["r1:l"]));
    assert_eq!(w.to_string(), "link r1:l is down (nslab link)");
}

#[test]
fn a_bridge_port_set_down_with_nslab_link_is_named() {
    let (r, l) = up_from_nothing(OBJ2, true);
    let host = crate::plan::ns_of(&l, &Place::Host);
    r.fake.set_up(host.as_str(), "bbrveth", false);
    let w = why_rt(&r, &l, "green", "192.168.1.1", &held(&l, &["bri0:bbrveth"]));
    assert_eq!(
        w.to_string(),
        "link bri0:bbrveth is down (nslab link)",
        "{w:?}"
    );
}

#[test]
fn a_partition_is_named_in_both_directions_and_only_across() {
    let (r, l) = up_from_nothing(CHAIN3, true);
    let rt = crate::runtime::State {
        partitions: vec![crate::runtime::link::Partition {
            id: 2,
            left: vec!["a".into()],
            right: vec!["b".into(), "r3".into()],
        }],
        ..Default::default()
    };
    let w = why_rt(&r, &l, "a", "10.70.4.2", &rt);
    assert_eq!(w.to_string(), "a and b are partitioned (nslab partition 2)");
    assert_eq!(w.class(), "partitioned");
    let w = why_rt(&r, &l, "b", "10.70.1.2", &rt);
    assert!(
        matches!(&w, Reason::Partitioned { at, peer, id: 2 } if at == "b" && peer == "a"),
        "{w:?}"
    );
    // a and r1 are not on opposite sides: the walk goes on, and finds no fault.
    assert_clear(why_rt(&r, &l, "a", "10.70.2.1", &rt), &["a:"]);
}

#[test]
fn a_shaped_cable_on_the_path_is_named_when_nothing_else_stops_the_probe() {
    let text = CHAIN3.replace(
        "  - [ r1:r, r2:l ]",
        "  - { ends: [ r1:r, r2:l ], rate: 10mbit, loss: 20% }",
    );
    assert_ne!(text, CHAIN3);
    let (r, l) = up_from_nothing(&text, true);
    let reason = why(&r, &l, "a", "10.70.4.2");
    let Reason::Shaped { at, shaped, .. } = &reason else {
        panic!("not named as shaped: {reason}");
    };
    assert_eq!(at, "r1");
    assert_eq!(
        shaped,
        &[
            "r1:r sends at most 10 Mbit/s, drops 20% (the file's link map)",
            "r2:l sends at most 10 Mbit/s, drops 20% (the file's link map)",
        ]
    );
    assert!(
        reason
            .to_string()
            .starts_with("the path is shaped: r1:r sends at most 10 Mbit/s")
    );
    assert_eq!(reason.class(), "shaped");
    // a -> r1 does not cross the shaped cable.
    assert_clear(why(&r, &l, "a", "10.70.1.1"), &["a:"]);
    // `nslab shape` on the last cable: named as such, on the way to b only.
    let mut cx = ctx(&r, &l);
    let req = crate::runtime::shape::Request {
        loss: Some("5%".into()),
        ..Default::default()
    };
    cx.runtime
        .shapes
        .push(crate::runtime::shape::Shaping::parse("b:e", "b", "e", &req).unwrap());
    let opts = WhyOpts {
        size: None,
        no_trace: true,
        tcp_port: None,
    };
    let Reason::Shaped { shaped, .. } = cx.why_not_with(&node("a"), ip("10.70.4.2"), &opts) else {
        panic!("not shaped");
    };
    assert_eq!(shaped.last().unwrap(), "b:e drops 5% (nslab shape)");
    let to_r2 = cx.why_not_with(&node("a"), ip("10.70.2.2"), &opts);
    let Reason::Shaped { shaped, .. } = &to_r2 else {
        panic!("a -> r2 crosses r1 -- r2: {to_r2}");
    };
    assert!(shaped.iter().all(|s| !s.starts_with("b:e")), "{shaped:?}");
}

#[test]
fn a_cable_the_file_wants_down_is_named_as_such() {
    let text = CHAIN3.replace(
        "  - [ r3:r, b:e ]",
        "  - { ends: [ r3:r, b:e ], up: false }",
    );
    assert_ne!(text, CHAIN3);
    let (r, l) = up_from_nothing(&text, true);
    let w = why(&r, &l, "a", "10.70.4.2");
    assert!(
        matches!(&w, Reason::LinkDown { endpoint, by_file: true, .. } if endpoint == "r3:r" || endpoint == "b:e"),
        "{w:?}"
    );
    assert!(
        w.to_string().ends_with("is down (the file's `up: false`)"),
        "{w}"
    );
}

/// s1 -- s2 -- s3 in a line, h1 on s1 and h3 on s3; with `ring`, s3 -- s1 too.
fn switched(ring: bool) -> String {
    let stp = if ring { "stp: true" } else { "" };
    let mut t = format!(
        "name: sw\nbridges: {{ s1: {{ {stp} }}, s2: {{ {stp} }}, s3: {{ {stp} }} }}\nnodes:\n  h1: {{ interfaces: {{ h1-eth0: {{ address: 10.0.0.1/8 }} }} }}\n  h3: {{ interfaces: {{ h3-eth0: {{ address: 10.0.0.3/8 }} }} }}\nlinks:\n  - [ h1:h1-eth0, s1:s1-eth1 ]\n  - [ h3:h3-eth0, s3:s3-eth1 ]\n  - [ s1:s1-eth2, s2:s2-eth1 ]\n  - [ s2:s2-eth2, s3:s3-eth2 ]\n"
    );
    if ring {
        t += "  - [ s3:s3-eth3, s1:s1-eth3 ]\n";
    }
    t
}

#[test]
fn a_cut_between_bridges_is_named_and_another_path_is_no_fault() {
    let (r, l) = up_from_nothing(&switched(false), true);
    assert_clear(why(&r, &l, "h1", "10.0.0.3"), &["h1:"]);
    let host = crate::plan::ns_of(&l, &Place::Host);
    // Down by hand: the port set down, not its peer that lost its carrier.
    r.fake.set_up(host.as_str(), "s3-eth2", false);
    let w = why(&r, &l, "h1", "10.0.0.3");
    assert!(
        matches!(&w, Reason::BridgePortDown { bridge, port, state, .. }
            if bridge == "s3" && port == "s3-eth2" && state == "down"),
        "{w:?}"
    );
    // Set down with `nslab link`: named as that.
    let w = why_rt(&r, &l, "h3", "10.0.0.1", &held(&l, &["s3:s3-eth2"]));
    assert_eq!(
        w.to_string(),
        "link s3:s3-eth2 is down (nslab link)",
        "{w:?}"
    );
    // In a ring the same cut leaves a path: no fault on the way.
    let (r, l) = up_from_nothing(&switched(true), true);
    let host = crate::plan::ns_of(&l, &Place::Host);
    r.fake.set_up(host.as_str(), "s3-eth2", false);
    assert_clear(why(&r, &l, "h1", "10.0.0.3"), &["h1:"]);
    // Both cables of s3 cut: the first one found on the border is named.
    r.fake.set_up(host.as_str(), "s1-eth3", false);
    let w = why(&r, &l, "h1", "10.0.0.3");
    assert!(
        matches!(&w, Reason::BridgePortDown { port, .. } if port == "s3-eth2" || port == "s1-eth3"),
        "{w:?}"
    );
}

/// a behind router r, whose wan is on br0 with far (no route back to a's LAN).
const ROUTER_NAT: &str = r#"
name: rnat
bridges: { br0: {} }
nodes:
  a:
    interfaces: { e: { address: 10.71.0.2/24 } }
    routes: [ "default via 10.71.0.1" ]
  r:
    forward: true
    interfaces: { lan: { address: 10.71.0.1/24 }, wan: { address: 10.72.0.2/24 } }
    nat: [ { source: 10.71.0.0/24, out: wan } ]
  far:
    interfaces: { e: { address: 10.72.0.3/24 } }
links: [ [ a:e, r:lan ], [ r:wan, br0:pr ], [ far:e, br0:pf ] ]
"#;

#[test]
fn nat_in_a_router_is_followed_and_named_when_it_excludes_the_way_out() {
    // The router masquerades: the reply comes back to its wan address.
    let (r, l) = up_from_nothing(ROUTER_NAT, true);
    assert_clear(why(&r, &l, "a", "10.72.0.3"), &["a:", "r:"]);
    // Its entry excludes wan: the router is named, with the entry.
    let text = ROUTER_NAT.replace("out: wan }", "not_out: wan }");
    let (r, l) = up_from_nothing(&text, true);
    let w = why(&r, &l, "a", "10.72.0.3");
    assert!(
        matches!(&w, Reason::NoNat { host, out, excluded_by: Some(e), .. }
            if host == "r" && out == "wan" && e.contains("not_out: wan")),
        "{w}"
    );
}
