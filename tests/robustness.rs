//! Robustness: crashes at every step, foreign look-alikes, stale state,
//! concurrency, not root. Every test has its own prefix.

mod common;
use common::*;
use std::process::Command;

fn something_left(p: &str, lab: &str) -> bool {
    netns_list().iter().any(|n| n.starts_with(p))
        || common::state(&format!("labs/{lab}.json")).exists()
}

#[test]
fn abort_after_every_kernel_operation_then_up_and_down_leave_nothing() {
    let p = prefix("kill");
    let lab = format!("{p}objective2");
    let _g = LabGuard::new(&lab, None);
    let file = example("objective2-bridge.yaml");
    let mut k = 1;
    loop {
        let o = Command::new(bin())
            .args(["up", s(&file), "--sandbox", "--prefix", &p])
            .env("NSLAB_TEST_FAIL_AFTER", k.to_string())
            .output()
            .unwrap();
        if o.status.success() {
            break; // k is past the last operation
        }
        assert!(
            text(&o).contains("NSLAB_TEST_FAIL_AFTER"),
            "k={k}: {}",
            text(&o)
        );
        assert!(
            something_left(&p, &lab),
            "k={k}: the partial state is not empty"
        );
        ok(nslab(&["up", s(&file), "--sandbox", "--prefix", &p]));
        let st = nslab(&["status", "--lab", &lab]);
        assert!(
            st.status.success(),
            "k={k}: status after repair: {}",
            text(&st)
        );
        ok(nslab(&["down", "--lab", &lab]));
        assert_gone(&p, &lab);
        k += 1;
        assert!(k < 500, "the abort switch never let up finish");
    }
    assert!(
        k > 20,
        "objective 2 takes more than 20 kernel operations (got {k})"
    );
    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
}

#[test]
fn sigkill_at_random_times() {
    let p = prefix("sigk");
    let lab = format!("{p}objective3");
    let _g = LabGuard::new(&lab, None);
    let file = example("objective3-nat.yaml");
    // A simple xorshift: different delays each round, no extra crate.
    let mut x: u64 = std::process::id() as u64 | 1;
    for round in 0..12 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = std::time::Duration::from_micros(x % 25_000);
        let mut child = Command::new(bin())
            .args(["up", s(&file), "--sandbox", "--prefix", &p])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL, by the pid we started
        let _ = child.wait();
        ok(nslab(&["up", s(&file), "--sandbox", "--prefix", &p]));
        assert!(
            pings(&format!("{p}green"), "198.51.100.8"),
            "round {round}: the repaired lab works"
        );
        ok(nslab(&["down", "--lab", &lab]));
        assert_gone(&p, &lab);
    }
}

#[test]
fn foreign_look_alikes_survive_everything() {
    let p = prefix("alike");
    let lab = format!("{p}objective3");
    let t = TestNs::new(&format!("{p}T"));
    let _g = LabGuard::new(&lab, Some(&t.name));
    let file = example("objective3-nat.yaml");
    // Someone else's namespace with a node's name: up fails and it survives.
    let black = TestNs::new(&format!("{p}black"));
    let o = nslab_in(Some(&t.name), &["up", s(&file), "--prefix", &p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("namespace {p}black already exists")),
        "{}",
        text(&o)
    );
    drop(black);
    // Someone else's nft table with the lab's table name (no mark).
    sh(&format!(
        "ip netns exec {} nft add table ip nslab-{lab}",
        t.name
    ));
    let o = nslab_in(Some(&t.name), &["up", s(&file), "--prefix", &p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not nslab's"), "{}", text(&o));
    sh(&format!(
        "ip netns exec {} nft delete table ip nslab-{lab}",
        t.name
    ));
    // Now the lab is up, next to look-alikes of another (unrecorded) lab: an
    // interface, a namespace and an nft table named like nslab's but unmarked.
    ok(nslab_in(Some(&t.name), &["up", s(&file), "--prefix", &p]));
    let alike_ns = TestNs::new(&format!("{p}ghost-host"));
    sh(&format!(
        "ip -n {} link add br-ghost type bridge && ip netns exec {0} nft add table ip nslab-{p}ghost",
        t.name
    ));
    ok(nslab_in(Some(&t.name), &["down", "--all", "--prefix", &p]));
    ok(nslab_in(Some(&t.name), &["clean", "--prefix", &p]));
    assert!(netns_list().contains(&alike_ns.name));
    assert!(link_names(Some(&t.name)).contains(&"br-ghost".to_string()));
    assert!(
        sh(&format!("ip netns exec {} nft list tables", t.name))
            .contains(&format!("nslab-{p}ghost"))
    );
    assert!(!link_names(Some(&t.name)).contains(&"bri0".to_string()));
    assert_gone(&format!("{p}b"), &lab);
}

#[test]
fn clean_removes_orphans_whose_record_was_lost() {
    let p = prefix("orph");
    let lab = format!("{p}objective3");
    let t = TestNs::new(&format!("{p}T"));
    let _g = LabGuard::new(&lab, Some(&t.name));
    ok(nslab_in(
        Some(&t.name),
        &["up", s(&example("objective3-nat.yaml")), "--prefix", &p],
    ));
    // A shaped bridge port puts a loss table (inet) in the host namespace too.
    ok(nslab_in(
        Some(&t.name),
        &["shape", "bri0:bbrveth", "--loss", "10%", "--lab", &lab],
    ));
    assert!(
        sh(&format!("ip netns exec {} nft list tables", t.name))
            .contains(&format!("table inet nslab-{lab}-loss"))
    );
    // The record is lost (say /run/nslab was wiped).
    std::fs::remove_file(common::state(&format!("labs/{lab}.json"))).unwrap();
    let o = ok(nslab_in(
        Some(&t.name),
        &["clean", "--prefix", &p, "--json"],
    ));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["orphan_namespaces"].as_array().unwrap().len(), 3, "{j}");
    assert!(j["orphan_interfaces"].to_string().contains("bri0"), "{j}");
    assert!(
        j["orphan_nft_tables"]
            .to_string()
            .contains(&format!("nslab-{lab} ")),
        "{j}"
    );
    assert!(
        j["orphan_nft_tables"]
            .to_string()
            .contains(&format!("nslab-{lab}-loss")),
        "{j}"
    );
    assert!(
        !netns_list()
            .iter()
            .any(|n| n.starts_with(&p) && *n != t.name)
    );
    assert!(!link_names(Some(&t.name)).contains(&"bri0".to_string()));
    assert!(!sh(&format!("ip netns exec {} nft list tables", t.name)).contains("nslab-"));
    assert!(!std::path::Path::new(&format!("/etc/netns/{p}black")).exists());
    assert!(!common::state(&format!("hosts/{lab}")).exists());
    // The forwarding the lost lab had turned on is put back, and forgotten.
    assert_eq!(
        sh(&format!(
            "ip netns exec {} sysctl -n net.ipv4.ip_forward",
            t.name
        ))
        .trim(),
        "0"
    );
    let fwd = std::fs::read_to_string(common::state("host-forwarding.json")).unwrap_or_default();
    assert!(!fwd.contains(&lab), "{fwd}");
}

#[test]
fn stale_records_after_a_reboot_are_reported_and_cleared() {
    let (p, lab, _g) = up_example("stale", "objective1-veth.yaml");
    // A reboot with /run on disk: the namespaces are gone, empty files remain.
    // Lazy: another test's nslab may hold the file open for a moment (finding a
    // host namespace by id opens each file in /run/netns), and a plain umount
    // then fails with "target is busy".
    for n in ["red", "green", "objective1-host", "objective1-inet"] {
        let path = format!("/run/netns/{p}{n}");
        sh(&format!("umount -l {path} && rm {path} && touch {path}"));
    }
    let o = ok(nslab(&["ls", "--json"]));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let me = j
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lab"] == lab)
        .unwrap();
    assert_eq!(me["state"], "stale", "{me}");
    let st = nslab(&["status", "--lab", &lab]);
    assert_eq!(st.status.code(), Some(1));
    assert!(stdout(&st).contains("missing"), "{}", text(&st));
    ok(nslab(&["clean", "--prefix", &p]));
    for n in ["red", "green"] {
        assert!(!std::path::Path::new(&format!("/run/netns/{p}{n}")).exists());
    }
    assert_gone(&p, &lab);
}

#[test]
fn two_ups_of_one_lab_at_once_and_two_labs_in_parallel() {
    let p = prefix("par");
    let lab = format!("{p}objective2");
    let _g = LabGuard::new(&lab, None);
    let file = example("objective2-bridge.yaml");
    let run = |pre: String, f: std::path::PathBuf| {
        std::thread::spawn(move || {
            Command::new(bin())
                .args(["up", f.to_str().unwrap(), "--sandbox", "--prefix", &pre])
                .output()
                .unwrap()
        })
    };
    let (a, b) = (run(p.clone(), file.clone()), run(p.clone(), file.clone()));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        text(&a),
        text(&b)
    );
    let said = format!("{}{}", stdout(&a), stdout(&b));
    assert!(
        said.contains("nothing to change"),
        "one waited for the other, then found nothing to do: {said}"
    );
    ok(nslab(&["status", "--lab", &lab]));
    // Two different labs at the same time.
    let p2 = format!("{p}x-");
    let _g2 = LabGuard::new(&format!("{p2}objective1"), None);
    let (a, b) = (
        run(p2.clone(), example("objective1-veth.yaml")),
        run(format!("{p}y-"), example("objective1-veth.yaml")),
    );
    let _g3 = LabGuard::new(&format!("{p}y-objective1"), None);
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        text(&a),
        text(&b)
    );
    assert!(pings(&format!("{p2}red"), "192.168.1.2"));
    assert!(pings(&format!("{p}y-red"), "192.168.1.2"));
}

#[test]
fn a_kernel_refusal_midway_rolls_back_and_quotes_the_reason() {
    let p = prefix("roll");
    let lab = format!("{p}objective2");
    let _g = LabGuard::new(&lab, None);
    // The kernel refuses the 12th operation (the test hook plays the refusal:
    // everything the kernel itself would refuse is now caught by validation).
    let o = Command::new(bin())
        .args([
            "up",
            s(&example("objective2-bridge.yaml")),
            "--sandbox",
            "--prefix",
            &p,
        ])
        .env("NSLAB_TEST_REFUSE_AFTER", "11")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let msg = text(&o);
    assert!(msg.contains("operation 12"), "names the step: {msg}");
    assert!(
        msg.contains("refused by the test hook"),
        "quotes the kernel: {msg}"
    );
    assert!(msg.contains("Rolled back"), "{msg}");
    assert_gone(&p, &lab);
}

#[test]
fn not_root_is_refused_with_the_missing_capability() {
    let p = prefix("user");
    let o = as_nobody(&[
        "up",
        s(&example("objective1-veth.yaml")),
        "--sandbox",
        "--prefix",
        &p,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains("CAP_NET_ADMIN")
            && msg.contains("CAP_SYS_ADMIN")
            && msg.contains("Nothing was changed"),
        "{msg}"
    );
    assert!(!netns_list().iter().any(|n| n.starts_with(&p)));
}
