//! Issue 12's property: for random valid labs, a crash after any state-changing
//! step of `up` (fail-after k, for every k), then `down` and `clean`, leaves the
//! host exactly as before, and everything that was there before `up` survives.
//! Host mode, inside a namespace the test made, so bridges, NAT and forwarding
//! are exercised where they would touch the real host.

mod common;
use common::*;

include!("common/random_lab.rs");

/// A valid lab: 1-4 nodes, 0-2 bridges, cables to bridges or between nodes,
/// sometimes IPv6, routes, forwarding and NAT.
fn random_lab(seed: u64) -> String {
    random_lab_with(seed, false)
}

/// Everything of the test's host that nslab could touch.
fn snapshot(host: &str, p: &str, lab: &str) -> String {
    let etc: Vec<String> = std::fs::read_dir("/etc/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(p))
                .map(|n| {
                    let f = format!("/etc/netns/{n}/hosts");
                    format!("{n}: {:?}", std::fs::read_to_string(f).ok())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ns: Vec<String> = netns_list()
        .into_iter()
        .filter(|n| n.starts_with(p))
        .collect();
    ns.sort();
    let st = state_dir();
    let files: Vec<bool> = [
        st.join("labs").join(format!("{lab}.json")),
        st.join("labs").join(format!(".{lab}.json.tmp")),
        st.join("hosts").join(lab),
    ]
    .iter()
    .map(|f| f.exists())
    .collect();
    format!(
        "links: {}\naddrs: {}\nroutes: {}\nnft: {}\nforward: {}\nnamespaces: {ns:?}\netc: {etc:?}\nstate files: {files:?}",
        sh(&format!("ip -n {host} -o link | cut -d' ' -f2,9-")),
        sh(&format!("ip -n {host} -o addr")),
        sh(&format!("ip -n {host} route; ip -n {host} -6 route")),
        sh(&format!("ip netns exec {host} nft list ruleset")),
        sh(&format!(
            "ip netns exec {host} sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding"
        )),
    )
}

fn run_seeds(tag: &str, seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let p = prefix(&format!("{tag}{seed}"));
        let host = TestNs::new(&format!("{p}h"));
        let h = Some(host.name.as_str());
        let lab = format!("{p}r{seed}");
        let _g = LabGuard::new(&lab, h);
        // Things that were there before and are not nslab's.
        sh(&format!(
            "ip -n {0} link add fx0 type veth peer name fx1 && ip -n {0} link set fx0 up && \
             ip -n {0} addr add 192.0.2.1/24 dev fx0 && \
             ip netns exec {0} nft add table ip foreign && \
             ip netns exec {0} nft add chain ip foreign c",
            host.name
        ));
        let other = TestNs::new(&format!("{p}other"));
        std::fs::create_dir_all(format!("/etc/netns/{}", other.name)).unwrap();
        std::fs::write(format!("/etc/netns/{}/hosts", other.name), "192.0.2.9 x\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let yaml = random_lab(seed);
        let f = write_file(&dir, "lab.yaml", &yaml);
        let before = snapshot(&host.name, &p, &lab);
        let mut k = 1;
        loop {
            let crash = [("NSLAB_TEST_FAIL_AFTER", k.to_string())];
            let o = nslab_env(h, &["up", s(&f), "--prefix", &p], &crash);
            let finished = o.status.success();
            if !finished {
                assert!(
                    text(&o).contains("NSLAB_TEST_FAIL_AFTER"),
                    "seed {seed} k={k}: up failed otherwise:\n{}\n{yaml}",
                    text(&o)
                );
            }
            let d = nslab_in(h, &["down", "--lab", &lab]);
            assert!(
                d.status.success(),
                "seed {seed} k={k}: down: {}\n{yaml}",
                text(&d)
            );
            let c = nslab_in(h, &["clean", "--prefix", &p]);
            assert!(
                c.status.success(),
                "seed {seed} k={k}: clean: {}\n{yaml}",
                text(&c)
            );
            let after = snapshot(&host.name, &p, &lab);
            assert_eq!(after, before, "seed {seed} k={k}: the host changed\n{yaml}");
            if finished {
                break;
            }
            k += 1;
            assert!(k < 400, "seed {seed}: up never finished");
        }
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", other.name));
        eprintln!("seed {seed}: {k} crash points, host unchanged after each");
    }
}

#[test]
fn crash_anywhere_then_down_and_clean_restore_the_host_seeds_1_to_6() {
    run_seeds("cpa", 1..7);
}

#[test]
fn crash_anywhere_then_down_and_clean_restore_the_host_seeds_7_to_12() {
    run_seeds("cpb", 7..13);
}

#[test]
fn crash_anywhere_then_down_and_clean_restore_the_host_seeds_13_to_18() {
    run_seeds("cpc", 13..19);
}

#[test]
fn crash_anywhere_then_down_and_clean_restore_the_host_seeds_19_to_24() {
    run_seeds("cpd", 19..25);
}

#[test]
fn the_generator_makes_valid_and_varied_labs() {
    let mut with_bridge = 0;
    let mut with_nat = 0;
    for seed in 1..25 {
        let y = random_lab(seed);
        nslab::topology::parse_str(
            &y,
            "lab.yaml",
            &nslab::topology::Options {
                prefix: "t-".into(),
                sandbox: false,
                check_programs: false,
            },
        )
        .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{y}"));
        with_bridge += y.contains("bridges:") as u32;
        with_nat += y.contains("nat:") as u32;
    }
    assert!(
        with_bridge >= 8 && with_nat >= 3,
        "{with_bridge} {with_nat}"
    );
}
