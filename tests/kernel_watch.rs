//! Root tests of the link watch `down` waits with (a socket filter keeps only
//! "interface gone" events) and of the raw link listing, against `ip -j`.
//! Everything happens in a namespace the test makes.

mod common;
use common::*;
use nslab::kernel::{netns, observe, watch};
use std::collections::BTreeSet;
use std::time::Duration;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn watch_sees_removals_and_nothing_else() {
    let ns = TestNs::new(&format!("{}w", prefix("watch")));
    let n = &ns.name;
    sh(&format!(
        "ip -n {n} link add wa type veth peer name wb && ip -n {n} link add wbr type bridge && ip -n {n} link set wb master wbr && ip -n {n} link set wa up && ip -n {n} link set wb up"
    ));
    let f = netns::open(n).unwrap();
    let mut w = netns::run_in(&f, watch::LinkWatch::new).unwrap().unwrap();

    // Changes that are not removals (including a port leaving its bridge, which
    // the kernel announces as an AF_BRIDGE RTM_DELLINK) must not count.
    sh(&format!(
        "ip -n {n} link set wa down && ip -n {n} link set wa mtu 1400 && ip -n {n} link set wb nomaster"
    ));
    match w.wait_gone(set(&["wa", "wb"]), Duration::from_millis(500)) {
        watch::Waited::TimedOut(left) => assert_eq!(left, set(&["wa", "wb"])),
        _ => panic!("a change that is not a removal counted as one"),
    }

    // Deleting one end removes both: both are seen, quickly.
    sh(&format!("ip -n {n} link del wa"));
    match w.wait_gone(set(&["wa", "wb"]), Duration::from_secs(10)) {
        watch::Waited::AllGone => {}
        watch::Waited::TimedOut(l) | watch::Waited::Overflow(l) => {
            panic!("removal of {l:?} not seen")
        }
    }
}

#[test]
fn raw_link_listing_matches_ip() {
    let ns = TestNs::new(&format!("{}l", prefix("watch")));
    let n = &ns.name;
    sh(&format!(
        "ip -n {n} link add lbr type bridge && ip -n {n} link add la mtu 1400 type veth peer name lb && ip -n {n} link set lb master lbr && ip -n {n} link set la alias hello && ip -n {n} link set la up"
    ));
    let mut c = nslab::kernel::conn::open(n).unwrap();
    let ours = observe::links(&mut c.nl).unwrap();
    let ip: serde_json::Value =
        serde_json::from_str(&sh(&format!("ip -j -d -n {n} link show"))).unwrap();
    let ip = ip.as_array().unwrap();
    assert_eq!(ours.len(), ip.len());
    for j in ip {
        let name = j["ifname"].as_str().unwrap();
        let o = ours.iter().find(|l| l.name == name).expect(name);
        assert_eq!(o.index as u64, j["ifindex"].as_u64().unwrap(), "{name}");
        assert_eq!(o.mtu.map(u64::from), j["mtu"].as_u64(), "{name}");
        assert_eq!(o.alias.as_deref(), j["ifalias"].as_str(), "{name}");
        assert_eq!(
            o.kind.as_deref(),
            j["linkinfo"]["info_kind"].as_str(),
            "{name}"
        );
        let flags: Vec<&str> = j["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(o.up, flags.contains(&"UP"), "{name}");
        let master = j["master"]
            .as_str()
            .map(|m| ours.iter().find(|l| l.name == m).unwrap().index);
        assert_eq!(o.master, master, "{name}");
    }
    // The kernel's kind filter.
    let bridges =
        observe::links_of_kind(&mut c.nl, netlink_packet_route::link::InfoKind::Bridge).unwrap();
    assert_eq!(
        bridges.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["lbr"]
    );
}
