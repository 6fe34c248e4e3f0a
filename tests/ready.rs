//! The readiness wait of `up` (`nslab::kernel::ready`) on real namespaces: a
//! namespace with hundreds of links not ready at its first read is watched on
//! events, a small one is read again in rounds; both end when the kernel says
//! their links pass traffic.

mod common;
use common::*;
use nslab::kernel::ready::{Space, wait_for_traffic};
use std::time::Duration;

fn space(n: &str) -> Space {
    Space {
        label: n.to_string(),
        file: std::fs::File::open(format!("/run/netns/{n}")).unwrap(),
        only: None,
    }
}

/// A bridge, down (so its ports are disabled), with `ports` veth pairs: one end
/// of each a port, both ends up.
fn bridge_with_ports(ns: &str, ports: usize) {
    let mut batch = String::from("link add b0 type bridge\n");
    for i in 0..ports {
        batch += &format!(
            "link add p{i} type veth peer name q{i}\nlink set p{i} master b0\nlink set p{i} up\nlink set q{i} up\n"
        );
    }
    let file = std::env::temp_dir().join(format!("{ns}.batch"));
    std::fs::write(&file, batch).unwrap();
    sh(&format!("ip -n {ns} -batch {}", file.display()));
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_big_namespace_on_events_and_a_small_one_in_rounds_are_both_waited_for() {
    let p = prefix("rdy");
    let big = TestNs::new(&format!("{p}big"));
    let small = TestNs::new(&format!("{p}small"));
    bridge_with_ports(&big.name, 300);
    bridge_with_ports(&small.name, 1);
    let notes = wait_for_traffic(
        vec![space(&big.name), space(&small.name)],
        Duration::from_millis(500),
    );
    assert_eq!(notes.len(), 2, "{notes:?}");
    let of = |ns: &str| {
        notes
            .iter()
            .find(|n| n.contains(&format!(" in {ns}: ")))
            .cloned()
    };
    let b = of(&big.name).expect("a note on the big namespace");
    assert!(b.contains("(bridge port disabled)"), "{b}");
    assert!(b.contains(" and 295 more"), "{b}");
    let s = of(&small.name).expect("a note on the small namespace");
    assert!(s.contains("p0 (bridge port disabled)"), "{s}");
    // The bridges come up while the wait runs (or before it: the same end).
    let (bn, sn) = (big.name.clone(), small.name.clone());
    let upper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        sh(&format!(
            "ip -n {bn} link set b0 up && ip -n {sn} link set b0 up"
        ));
    });
    let notes = wait_for_traffic(
        vec![space(&big.name), space(&small.name)],
        Duration::from_secs(20),
    );
    upper.join().unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    for ns in [&big.name, &small.name] {
        let links = ip_json(Some(ns), "link show");
        for l in links.as_array().unwrap() {
            if l["ifname"] != "lo" {
                assert_eq!(l["operstate"], "UP", "{ns}: {l:#}");
            }
        }
    }
}
