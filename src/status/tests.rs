//! `status` against the fake kernel: the same lab, drifted by hand in the fake,
//! must be reported as the planner sees it (no root needed).

use super::*;
use crate::testkit::*;

fn status_of(r: &mut Run, l: &Lab) -> Status {
    let rec = r.rec.clone();
    status_in(&mut r.k, &rec, l, "record".into(), false).expect("status")
}

fn place<'a>(s: &'a Status, name: &str) -> &'a PlaceStatus {
    s.places
        .iter()
        .find(|p| p.place == name)
        .unwrap_or_else(|| panic!("no place {name} in {s:#?}"))
}

#[test]
fn a_lab_just_brought_up_is_ok_everywhere() {
    for (text, sandbox) in [(OBJ1, true), (OBJ2, false), (OBJ3, true), (OBJ3, false)] {
        let (mut r, l) = up_from_nothing(text, sandbox);
        let s = status_of(&mut r, &l);
        // Only the programs are not running (the fake runs none).
        let programs = l.nodes.iter().map(|n| n.run.len()).sum::<usize>();
        assert_eq!(s.drift.len(), programs, "{}", render(&s));
        assert!(s.drift.iter().all(|d| d.ends_with("(not running)")));
        assert_eq!(s.ok, programs == 0, "{}", render(&s));
        assert!(s.places.iter().all(|p| p.status == State::Ok));
        assert_eq!(s.bridges.len(), l.bridges.len());
        assert_eq!(s.mode, if sandbox { "sandbox" } else { "host" });
    }
}

#[test]
fn a_missing_address_is_different_and_drift_says_how_to_repair_it() {
    let (mut r, l) = up_from_nothing(OBJ1, true);
    r.fake.w().ns.get_mut("t-red").unwrap().addrs.clear();
    let s = status_of(&mut r, &l);
    assert!(!s.ok);
    let red = place(&s, "red");
    assert_eq!(red.status, State::Different);
    let veth = red
        .interfaces
        .iter()
        .find(|i| i.name == "veth-red")
        .unwrap();
    assert_eq!(
        veth.detail,
        vec!["missing address 192.168.1.1/24".to_string()]
    );
    assert!(
        s.drift
            .iter()
            .any(|d| d.contains("add address 192.168.1.1/24")),
        "{:?}",
        s.drift
    );
    assert_eq!(place(&s, "green").status, State::Ok);
}

#[test]
fn a_deleted_node_is_missing_and_its_cable_went_with_it() {
    let (mut r, l) = up_from_nothing(OBJ1, true);
    // As `ip netns del t-green` would.
    r.fake.clone().delete("t-green").unwrap();
    let s = status_of(&mut r, &l);
    assert_eq!(place(&s, "green").status, State::Missing);
    // The fake, like the kernel, took the far end of the veth along: red's
    // interface is gone too.
    let red = place(&s, "red");
    let veth = red
        .interfaces
        .iter()
        .find(|i| i.name == "veth-red")
        .unwrap();
    assert_eq!(veth.status, State::Missing, "{}", render(&s));
    assert!(
        s.drift.iter().any(|d| d.contains("t-green")),
        "{:?}",
        s.drift
    );
}

#[test]
fn mtu_and_forwarding_show_both_values() {
    let text = OBJ1
        .replace(
            "veth-red: { address: 192.168.1.1/24 }",
            "veth-red: { address: 192.168.1.1/24, mtu: 1400 }",
        )
        .replace("  red:\n", "  red:\n    forward: true\n");
    let (mut r, l) = up_from_nothing(&text, true);
    {
        let mut w = r.fake.w();
        let red = w.ns.get_mut("t-red").unwrap();
        red.links
            .iter_mut()
            .find(|x| x.name == "veth-red")
            .unwrap()
            .mtu = Some(1500);
        red.sysctls.insert("net.ipv4.ip_forward".into(), "0".into());
    }
    let s = status_of(&mut r, &l);
    let red = place(&s, "red");
    let veth = red
        .interfaces
        .iter()
        .find(|i| i.name == "veth-red")
        .unwrap();
    assert_eq!(
        veth.detail,
        vec!["mtu 1500 (the lab says 1400)".to_string()]
    );
    assert!(
        red.routes
            .iter()
            .any(|x| x.route == "forwarding is off (the lab says forward: true)"),
        "{:#?}",
        red.routes
    );
    assert!(!s.ok);
}

#[test]
fn a_port_taken_off_its_bridge_is_different() {
    let (mut r, l) = up_from_nothing(OBJ2, false);
    {
        let mut w = r.fake.w();
        let host = w.ns.get_mut("").unwrap();
        host.links
            .iter_mut()
            .find(|x| x.name == "wbrveth")
            .unwrap()
            .master = None;
    }
    let s = status_of(&mut r, &l);
    let b = &s.bridges[0];
    assert_eq!(b.status, State::Different);
    assert!(b.ports.contains(&("wbrveth".to_string(), State::Different)));
    assert!(b.ports.contains(&("bbrveth".to_string(), State::Ok)));
    assert!(
        s.drift.iter().any(|d| d.contains("wbrveth")),
        "{:?}",
        s.drift
    );
}

#[test]
fn a_program_not_running_is_drift() {
    let text = OBJ1.replace("  green:\n", "  green:\n    run: [\"sleep 1000\"]\n");
    let (mut r, l) = up_from_nothing(&text, true);
    let s = status_of(&mut r, &l);
    assert_eq!(
        s.drift,
        vec!["start `sleep 1000` in green (not running)".to_string()]
    );
    assert!(!s.ok);
}

#[test]
fn a_lost_host_namespace_shows_its_interfaces_missing() {
    let (mut r, l) = up_from_nothing(OBJ2, false);
    let rec = r.rec.clone();
    let s = status_in(&mut r.k, &rec, &l, "record".into(), true).unwrap();
    let host = place(&s, "host");
    assert!(host.interfaces.iter().all(|i| i.status == State::Missing));
    assert_eq!(host.status, State::Different);
}

#[test]
fn a_link_down_on_purpose_is_runtime_state_not_drift() {
    let (mut r, l) = up_from_nothing(OBJ2, true);
    let host = crate::plan::ns_of(&l, &Place::Host);
    r.fake.set_up("t-black", "bveth", false);
    r.fake.set_up(host.as_str(), "wbrveth", false);
    let not_programs = |s: &Status| {
        s.drift
            .iter()
            .filter(|d| !d.ends_with("(not running)"))
            .cloned()
            .collect::<Vec<_>>()
    };
    // Down by hand: different, and `up` would bring both up (and put back
    // the route the kernel dropped with bveth).
    let s = status_of(&mut r, &l);
    assert_eq!(place(&s, "black").status, State::Different);
    assert_eq!(not_programs(&s).len(), 3, "{}", render(&s));
    assert_eq!(r.plan(&l).len(), 3);
    // Down by `nslab link`: ok, no drift, shown as runtime state; `up` keeps it.
    r.rec.runtime.links_down = ["black:bveth", "bri0:wbrveth"]
        .iter()
        .map(|e| crate::runtime::link::resolve(&l, e).unwrap())
        .collect();
    let s = status_of(&mut r, &l);
    assert!(not_programs(&s).is_empty(), "{}", render(&s));
    assert!(
        s.places.iter().all(|p| p.status == State::Ok),
        "{}",
        render(&s)
    );
    assert!(
        s.bridges.iter().all(|b| b.status == State::Ok),
        "{}",
        render(&s)
    );
    let text = render(&s);
    assert!(
        text.contains("link black:bveth is down (nslab link)"),
        "{text}"
    );
    assert!(
        text.contains("link bri0:wbrveth is down (nslab link)"),
        "{text}"
    );
    assert!(r.plan(&l).is_empty(), "{}", listing(&r.plan(&l)));
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["runtime"]["links_down"][1]["endpoint"], "bri0:wbrveth");
}
