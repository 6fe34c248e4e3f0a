//! Issue 12: nslab never touches what is not its own, and a failed change
//! changes nothing. Each test fails on the code before its fix; each uses its own
//! prefix and cleans up on failure.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `nslab up` started with a pause hook; returns once it has stopped there.
fn up_paused(args: &[&str], point: &str, host: Option<&str>) -> Child {
    let mut child = nslab_cmd(host)
        .args(args)
        .env("NSLAB_TEST_PAUSE_AT", point)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        // nsenter execs nslab: the pid is nslab's.
        let st = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        let state = st
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        if state == Some("T") {
            return child;
        }
        if let Ok(Some(_)) = child.try_wait() {
            let o = child.wait_with_output().unwrap();
            panic!("up ended before pausing at {point}: {}", text(&o));
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "up never paused at {point}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn resume(child: Child) -> std::process::Output {
    sh(&format!("kill -CONT {}", child.id()));
    child.wait_with_output().unwrap()
}

fn lo_alias(ns: &str) -> Option<String> {
    ip_json(Some(ns), "link show lo")[0]["ifalias"]
        .as_str()
        .map(String::from)
}

/// Removes /etc/netns/NAME when dropped (files a test put there as a user would).
struct EtcGuard(String);
impl Drop for EtcGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.0));
    }
}

const TWO: &str = "nodes:
  red: { interfaces: { e: { address: 10.9.0.1/24 } } }
  green: { interfaces: { e: { address: 10.9.0.2/24 } } }
links: [[red:e, green:e]]
";

// 1. Rollback deletes only what this run created.
#[test]
fn rollback_never_deletes_a_namespace_that_appeared_meanwhile() {
    let p = prefix("rbf");
    let lab = format!("{p}two");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "two.yaml", &format!("name: two\n{TWO}"));
    let child = up_paused(&["up", s(&f), "--sandbox", "--prefix", &p], "planned", None);
    // Someone else takes a node's name between plan and create, with a cable in it.
    let foreign = TestNs::new(&format!("{p}red"));
    sh(&format!(
        "ip -n {p}red link add fa type veth peer name fb && ip -n {p}red link set fa up"
    ));
    let o = resume(child);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("File exists"), "{}", text(&o));
    assert!(
        netns_list().contains(&foreign.name),
        "the foreign namespace was deleted: {}",
        text(&o)
    );
    let links = link_names(Some(&foreign.name));
    assert!(links.contains(&"fa".to_string()), "its cable: {links:?}");
    assert_eq!(lo_alias(&foreign.name), None, "never marked");
    assert!(
        !netns_list().contains(&format!("{p}green")),
        "ours rolled back"
    );
    assert!(
        !netns_list().contains(&format!("{p}two-host")),
        "ours rolled back"
    );
    assert!(
        !std::path::Path::new(&format!("/etc/netns/{p}red")).exists(),
        "the hosts link nslab wrote for it is gone"
    );
}

// 1. Two labs with the same node names brought up at once: one wins, intact.
#[test]
fn two_labs_with_the_same_node_names_at_once_leave_the_winner_intact() {
    let p = prefix("race");
    let dir = tempfile::tempdir().unwrap();
    let fa = write_file(&dir, "a.yaml", &format!("name: a\n{TWO}"));
    let fb = write_file(&dir, "b.yaml", &format!("name: b\n{TWO}"));
    let _ga = LabGuard::new(&format!("{p}a"), None);
    let _gb = LabGuard::new(&format!("{p}b"), None);
    for round in 0..8 {
        let spawn = |f: &PathBuf| {
            Command::new(bin())
                .args(["up", s(f), "--sandbox", "--prefix", &p])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(&fa), spawn(&fb));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let winners: Vec<&str> = [("a", &a), ("b", &b)]
            .iter()
            .filter(|(_, o)| o.status.success())
            .map(|(n, _)| *n)
            .collect();
        assert!(
            winners.len() <= 1,
            "round {round}: both succeeded?\n{}\n{}",
            text(&a),
            text(&b)
        );
        for w in &winners {
            assert!(
                pings(&format!("{p}red"), "10.9.0.2"),
                "round {round}: lab {w} exited 0 but its cable is gone\n{}\n{}",
                text(&a),
                text(&b)
            );
            assert_eq!(
                lo_alias(&format!("{p}red")).as_deref(),
                Some(format!("nslab:{p}{w}").as_str())
            );
        }
        for l in ["a", "b"] {
            ok(nslab(&["down", "--lab", &format!("{p}{l}")]));
        }
        assert!(
            !netns_list().iter().any(|n| n.starts_with(&p)),
            "round {round}: {:?}",
            netns_list()
        );
    }
}

// 2. A hosts file nslab did not write is kept by up and by down.
#[test]
fn a_hosts_file_someone_else_wrote_is_kept() {
    let p = prefix("hst");
    let lab = format!("{p}two");
    let _g = LabGuard::new(&lab, None);
    let _e = EtcGuard(format!("{p}red"));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "two.yaml", &format!("name: two\n{TWO}"));
    let mine = format!("/etc/netns/{p}red/hosts");
    std::fs::create_dir_all(format!("/etc/netns/{p}red")).unwrap();
    std::fs::write(&mine, "10.9.0.2 mine\n").unwrap();
    let o = ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    assert!(
        text(&o).contains(&format!("/etc/netns/{p}red/hosts is not nslab's")),
        "up says so: {}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "10.9.0.2 mine\n");
    assert!(
        std::fs::symlink_metadata(&mine)
            .unwrap()
            .file_type()
            .is_file(),
        "not linked over"
    );
    // green got nslab's link.
    assert!(std::fs::read_link(format!("/etc/netns/{p}green/hosts")).is_ok());
    // A second up leaves it too.
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    ok(nslab(&["down", "--lab", &lab]));
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "10.9.0.2 mine\n");
    assert!(!std::path::Path::new(&format!("/etc/netns/{p}green")).exists());
}

// 3. A namespace re-made by hand under a node's name: up refuses, down leaves it.
#[test]
fn a_namespace_remade_by_hand_is_neither_adopted_nor_destroyed() {
    let (p, lab, _g) = up_example("remk", "objective1-veth.yaml");
    sh(&format!("ip netns del {p}red"));
    let mine = TestNs::new(&format!("{p}red"));
    let o = nslab(&[
        "up",
        s(&example("objective1-veth.yaml")),
        "--sandbox",
        "--prefix",
        &p,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("namespace {p}red")),
        "{}",
        text(&o)
    );
    assert_eq!(lo_alias(&mine.name), None, "not marked");
    assert_eq!(
        link_names(Some(&mine.name)),
        vec!["lo".to_string()],
        "nothing moved in"
    );
    let o = ok(nslab(&["down", "--lab", &lab]));
    assert!(
        text(&o).contains(&format!("namespace {p}red is not lab")),
        "down reports it: {}",
        text(&o)
    );
    assert!(netns_list().contains(&mine.name), "down deleted it");
    assert!(
        !std::path::Path::new(&format!("/etc/netns/{p}red")).exists(),
        "the lab's hosts link went with the lab"
    );
    assert!(!netns_list().contains(&format!("{p}green")));
}

// 4. Lab names from every source pass the same rules before any path is built.
#[test]
fn lab_names_that_leave_the_state_directory_are_refused() {
    let p = prefix("trav");
    let victim = tempfile::tempdir().unwrap();
    let vdir = victim.path().join("dir");
    std::fs::create_dir(&vdir).unwrap();
    std::fs::write(vdir.join("keep"), "x").unwrap();
    // A record-shaped file beside the directory.
    std::fs::write(
        victim.path().join("dir.json"),
        r#"{"version":1,"lab":"x","file":null,"sandbox":true,"host_ns":{"dev":0,"ino":0},"model":null,"namespaces":[],"host_links":[]}"#,
    )
    .unwrap();
    let rel = format!(
        "../../../../../../../..{}",
        vdir.display().to_string().trim_end_matches('/')
    );
    for bad in [rel.as_str(), "", "a/b", ".hidden", "-x"] {
        let arg = format!("--lab={bad}");
        for cmd in [vec!["down", &arg], vec!["status", &arg]] {
            let o = nslab(&cmd);
            assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", text(&o));
            assert!(text(&o).contains("--lab"), "{cmd:?}: {}", text(&o));
        }
    }
    assert!(vdir.join("keep").exists(), "deleted through --lab");
    assert!(
        !victim.path().join("dir.lock").exists(),
        "lock made outside"
    );
    let o = nslab(&["clean", "--prefix", "a/b"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = nslab(&[
        "down",
        "--prefix",
        "../x",
        s(&example("objective1-veth.yaml")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // A lab called `_host` (once the name of nslab's global lock) in host mode
    // with forwarding: must not deadlock.
    let host = TestNs::new(&format!("{p}h"));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        &dir,
        "h.yaml",
        &format!(
            "name: _host\nbridges: {{ br9: {{ address: 10.77.0.1/24 }} }}\nnodes:\n  {p}n: {{ interfaces: {{ e: {{ address: 10.77.0.2/24 }} }}, routes: [\"default via 10.77.0.1\"] }}\nlinks: [[{p}n:e, br9:p9]]\nnat: [{{ source: 10.77.0.0/24, not_out: br9 }}]\n"
        ),
    );
    let _g = LabGuard::new("_host", Some(&host.name));
    let mut c = Command::new("timeout")
        .args([
            "60",
            "nsenter",
            &format!("--net=/run/netns/{}", host.name),
            bin(),
            "up",
            s(&f),
        ])
        .output()
        .unwrap();
    assert!(c.status.success(), "up of lab _host: {}", text(&c));
    c = Command::new("timeout")
        .args([
            "60",
            "nsenter",
            &format!("--net=/run/netns/{}", host.name),
            bin(),
            "down",
            "--lab",
            "_host",
        ])
        .output()
        .unwrap();
    assert!(c.status.success(), "down of lab _host: {}", text(&c));
}

// 5. Names the kernel treats specially are refused at validation.
#[test]
fn names_the_kernel_treats_specially_are_refused_with_their_line() {
    let p = prefix("spec");
    let dir = tempfile::tempdir().unwrap();
    for (name, yaml, want) in [
        (
            "pct-bridge",
            "bridges: { \"br%d\": {} }\nnodes: { a: { interfaces: { e: {} } } }\nlinks: [[a:e, \"br%d:p\"]]\n",
            ":2:",
        ),
        (
            "pct-if",
            "nodes: { a: { interfaces: { \"e%d\": {} } }, b: { interfaces: { e: {} } } }\nlinks: [[\"a:e%d\", b:e]]\n",
            ":2:",
        ),
        (
            "all-if",
            "nodes: { a: { interfaces: { all: {} } }, b: { interfaces: { e: {} } } }\nlinks: [[a:all, b:e]]\n",
            ":2:",
        ),
        (
            "default-if",
            "nodes: { a: { interfaces: { default: {} } }, b: { interfaces: { e: {} } } }\nlinks: [[a:default, b:e]]\n",
            ":2:",
        ),
        (
            "dot-if",
            "nodes: { a: { interfaces: { \".\": {} } }, b: { interfaces: { e: {} } } }\nlinks: [[\"a:.\", b:e]]\n",
            ":2:",
        ),
        (
            "default-node",
            "nodes: { default: { interfaces: { e: {} } }, b: { interfaces: { e: {} } } }\nlinks: [[default:e, b:e]]\n",
            ":2:",
        ),
    ] {
        let f = write_file(
            &dir,
            &format!("{name}.yaml"),
            &format!("name: x{name}\n{yaml}"),
        );
        // A node `default` is special only as the whole namespace name.
        let pre = if name == "default-node" {
            ""
        } else {
            p.as_str()
        };
        let o = nslab(&["up", s(&f), "--sandbox", "--prefix", pre]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
        assert!(
            text(&o).contains(want),
            "{name}: names the line: {}",
            text(&o)
        );
        assert!(
            !netns_list()
                .iter()
                .any(|n| n.starts_with(&p) || n == "default" || n == "b"),
            "{name}: nothing changed"
        );
    }
}

// 5. Host state after a crash at every step of objective 3 in host mode.
#[test]
fn a_crash_at_every_step_in_host_mode_leaves_the_host_as_it_was() {
    let p = prefix("hcr");
    let host = TestNs::new(&format!("{p}h"));
    let h = Some(host.name.as_str());
    let file = example("objective3-nat.yaml");
    let lab = format!("{p}objective3");
    let _g = LabGuard::new(&lab, h);
    let snapshot = || {
        (
            link_names(h),
            sh(&format!(
                "ip netns exec {} sysctl -n net.ipv4.ip_forward",
                host.name
            )),
            sh(&format!("ip netns exec {} nft list tables", host.name)),
        )
    };
    let before = snapshot();
    let mut k = 1;
    loop {
        let crash = [("NSLAB_TEST_FAIL_AFTER", k.to_string())];
        let o = nslab_env(h, &["up", s(&file), "--prefix", &p], &crash);
        let done = o.status.success();
        ok(nslab_in(h, &["down", "--lab", &lab]));
        assert_eq!(snapshot(), before, "k={k}: down left the host changed");
        assert!(
            !netns_list()
                .iter()
                .any(|n| n.starts_with(&p) && n != &host.name)
        );
        if done {
            break;
        }
        // And after a crash, `up` then `down` works too (the bridge is adopted).
        if k % 3 == 0 {
            let o = nslab_env(h, &["up", s(&file), "--prefix", &p], &crash);
            assert!(!o.status.success());
            ok(nslab_in(h, &["up", s(&file), "--prefix", &p]));
            ok(nslab_in(h, &["down", "--lab", &lab]));
            assert_eq!(snapshot(), before, "k={k}: up after the crash, then down");
        }
        k += 1;
        assert!(k < 200);
    }
    assert!(
        k > 10,
        "objective 3 has more than 10 kernel operations ({k})"
    );
}

// 6. `clean` leaves a lab that is coming up alone.
#[test]
fn clean_leaves_a_lab_that_is_coming_up_alone() {
    let p = prefix("cup");
    let lab = format!("{p}objective1");
    let _g = LabGuard::new(&lab, None);
    let f = example("objective1-veth.yaml");
    for point in ["planned", "applied"] {
        let child = up_paused(&["up", s(&f), "--sandbox", "--prefix", &p], point, None);
        let o = ok(nslab(&["clean", "--prefix", &p]));
        let said = text(&o);
        let o = resume(child);
        assert!(
            o.status.success(),
            "{point}: up after clean: {}\nclean said: {said}",
            text(&o)
        );
        assert!(pings(&format!("{p}red"), "192.168.1.2"), "{point}");
        if point == "applied" {
            assert!(said.contains("left alone"), "{said}");
        }
        ok(nslab(&["down", "--lab", &lab]));
    }
}

// 7. A refused change to a running lab puts it back as it was, whatever step
//    the kernel refused.
#[test]
fn a_refused_change_to_a_running_lab_puts_it_back() {
    let p = prefix("back");
    let lab = format!("{p}m");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let v1 = "name: m
bridges: { br0: { address: 10.8.0.254/24 } }
nodes:
  a: { interfaces: { e: { address: 10.8.0.1/24, mtu: 1400 } } }
  b: { interfaces: { e: { address: 10.8.0.2/24 } } }
links: [[a:e, br0:pa], [b:e, br0:pb]]
";
    // Renames a's interface, changes b's MTU, adds an address, a node and a route.
    let v2 = "name: m
bridges: { br0: { address: 10.8.0.254/24 } }
nodes:
  a: { interfaces: { eth0: { address: 10.8.0.1/24, mtu: 1400 } }, routes: [\"10.99.0.0/16 via 10.8.0.254\"] }
  b: { interfaces: { e: { addresses: [10.8.0.2/24, 10.8.0.3/24], mtu: 1300 } } }
  c: { interfaces: { e: { address: 10.8.0.4/24 } } }
links: [[a:eth0, br0:pa], [b:e, br0:pb], [c:e, br0:pc]]
";
    let f1 = write_file(&dir, "v1.yaml", v1);
    let f2 = write_file(&dir, "v2.yaml", v2);
    ok(nslab(&["up", s(&f1), "--sandbox", "--prefix", &p]));
    let hosts = std::fs::read_to_string(state_dir().join("hosts").join(&lab)).unwrap();
    let record = || {
        let r: serde_json::Value = serde_json::from_slice(
            &std::fs::read(state_dir().join("labs").join(format!("{lab}.json"))).unwrap(),
        )
        .unwrap();
        (r["model"].clone(), r["namespaces"].clone())
    };
    let rec = record();
    let mut k = 1;
    loop {
        let o = Command::new(bin())
            .args(["up", s(&f2), "--sandbox", "--prefix", &p])
            .env("NSLAB_TEST_REFUSE_AFTER", k.to_string())
            .output()
            .unwrap();
        if o.status.success() {
            break;
        }
        let msg = text(&o);
        assert_eq!(o.status.code(), Some(1), "k={k}: {msg}");
        assert!(msg.contains("put back as it was"), "k={k}: says so: {msg}");
        // The kernel matches v1 exactly, and so do the hosts file and the record.
        let st = nslab(&["status", s(&f1), "--prefix", &p]);
        assert!(
            st.status.success(),
            "k={k}: status against v1: {}",
            text(&st)
        );
        let plan = ok(nslab(&[
            "plan",
            s(&f1),
            "--sandbox",
            "--prefix",
            &p,
            "--json",
        ]));
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        assert_eq!(
            plan["ops"],
            serde_json::json!([]),
            "k={k}: v1 has nothing to change"
        );
        assert_eq!(
            std::fs::read_to_string(state_dir().join("hosts").join(&lab)).unwrap(),
            hosts,
            "k={k}"
        );
        assert_eq!(record(), rec, "k={k}: the record");
        assert!(
            !netns_list().contains(&format!("{p}c")),
            "k={k}: the new node went"
        );
        assert!(pings(&format!("{p}a"), "10.8.0.2"), "k={k}");
        k += 1;
        assert!(k < 100);
    }
    assert!(k > 5, "the change has several steps ({k})");
    // And the change itself works (one end of a cable renamed: item 8).
    assert!(pings(&format!("{p}a"), "10.8.0.3"));
    assert!(pings(&format!("{p}c"), "10.8.0.1"));
}

// 8. Rewiring: one end of a cable renamed, node to node.
#[test]
fn renaming_one_end_of_a_cable_works() {
    let p = prefix("rew");
    let lab = format!("{p}two");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "two.yaml", &format!("name: two\n{TWO}"));
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    let f = write_file(
        &dir,
        "two.yaml",
        &format!(
            "name: two\n{}",
            TWO.replace("green: { interfaces: { e:", "green: { interfaces: { eth0:")
                .replace("green:e", "green:eth0")
        ),
    );
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    assert!(pings(&format!("{p}red"), "10.9.0.2"));
    assert!(link_names(Some(&format!("{p}green"))).contains(&"eth0".to_string()));
}

// 9. A `run:` program that cannot start is refused with its line.
#[test]
fn a_run_program_that_cannot_start_is_refused_with_its_line() {
    let p = prefix("runx");
    let dir = tempfile::tempdir().unwrap();
    for (cmd, want) in [
        ("/nonexistent/prog --x", "does not exist"),
        ("no-such-program-nslab", "not found in PATH"),
        ("'' x", "empty command"),
    ] {
        let f = write_file(
            &dir,
            "r.yaml",
            &format!(
                "name: r\nnodes:\n  a:\n    interfaces: {{ e: {{}} }}\n    run: [\"{}\"]\n  b: {{ interfaces: {{ e: {{}} }} }}\nlinks: [[a:e, b:e]]\n",
                cmd.replace('"', "\\\"")
            ),
        );
        let o = nslab(&["up", s(&f), "--sandbox", "--prefix", &p]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
        assert!(
            text(&o).contains("r.yaml:5:"),
            "{cmd}: the line: {}",
            text(&o)
        );
        assert!(text(&o).contains(want), "{cmd}: {}", text(&o));
        assert!(!netns_list().iter().any(|n| n.starts_with(&p)));
    }
}

// 10. MTU below 1280 works without IPv6 and is refused with it.
#[test]
fn small_mtu_works_for_ipv4_and_is_refused_for_ipv6() {
    let p = prefix("mtu");
    let lab = format!("{p}m");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        &dir,
        "m.yaml",
        "name: m\nnodes:\n  a: { interfaces: { e: { address: 10.6.0.1/24, mtu: 576 } } }\n  b: { interfaces: { e: { address: 10.6.0.2/24, mtu: 576 } } }\nlinks: [[a:e, b:e]]\n",
    );
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    assert_eq!(
        ip_json(Some(&format!("{p}a")), "link show e")[0]["mtu"],
        576
    );
    assert!(pings(&format!("{p}a"), "10.6.0.2"));
    ok(nslab(&["down", "--lab", &lab]));
    let f = write_file(
        &dir,
        "m6.yaml",
        "name: m\nnodes:\n  a: { interfaces: { e: { address: \"fd00::1/64\", mtu: 1000 } } }\n  b: { interfaces: { e: { address: \"fd00::2/64\" } } }\nlinks: [[a:e, b:e]]\n",
    );
    let o = nslab(&["up", s(&f), "--sandbox", "--prefix", &p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("m6.yaml:3:") && text(&o).contains("1280"),
        "{}",
        text(&o)
    );
    assert!(!netns_list().iter().any(|n| n.starts_with(&p)));
}

// 11. The record: unknown versions refused, temporaries cleaned, a full state
//     directory rolls `up` back.
#[test]
fn records_of_unknown_versions_are_refused_and_temporaries_cleaned() {
    let (p, lab, _g) = up_example("recv", "objective1-veth.yaml");
    let path = state_dir().join("labs").join(format!("{lab}.json"));
    let good = std::fs::read_to_string(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["version"] = serde_json::json!(99);
    std::fs::write(&path, v.to_string()).unwrap();
    let o = nslab(&["down", "--lab", &lab]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&path.display().to_string()) && text(&o).contains("version 99"),
        "{}",
        text(&o)
    );
    assert!(
        netns_list().contains(&format!("{p}red")),
        "nothing was done"
    );
    // A record that is not JSON at all: `ls` lists it as corrupt, with the remedy.
    std::fs::write(&path, "{ not json").unwrap();
    let o = ok(nslab(&["ls"]));
    assert!(
        stdout(&o).contains("corrupt")
            && stdout(&o).contains(&path.display().to_string())
            && stdout(&o).contains(&format!("nslab clean --prefix {lab}")),
        "{}",
        text(&o)
    );
    let o = ok(nslab(&["ls", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|l| l["lab"] == lab.as_str() && l["state"] == "corrupt"),
        "{v}"
    );
    std::fs::write(&path, good).unwrap();
    let tmp = state_dir().join("labs").join(format!(".{lab}.json.tmp"));
    std::fs::write(&tmp, "{").unwrap();
    ok(nslab(&["clean", "--prefix", &p]));
    assert!(!tmp.exists(), "clean removes a stray temporary");
}

#[test]
fn a_full_state_directory_rolls_up_back() {
    let p = prefix("full");
    let st = tempfile::tempdir().unwrap();
    let d = st.path().to_str().unwrap().to_string();
    sh(&format!("mount -t tmpfs -o size=512k nslabtest {d}"));
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).output();
        }
    }
    let _u = Unmount(d.clone());
    let lab = format!("{p}objective2");
    let run = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .env("NSLAB_STATE_DIR", &d)
            .output()
            .unwrap()
    };
    struct Down(String, String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new(bin())
                .args(["down", "--lab", &self.0, "--kill"])
                .env("NSLAB_STATE_DIR", &self.1)
                .output();
        }
    }
    let _g = Down(lab.clone(), d.clone());
    let f = example("objective2-bridge.yaml");
    let mut c = Command::new(bin());
    c.args(["up", s(&f), "--sandbox", "--prefix", &p])
        .env("NSLAB_STATE_DIR", &d)
        .env("NSLAB_TEST_PAUSE_AT", "applied")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
        .unwrap_or_default()
        .contains(") T ")
    {
        assert!(t.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(10));
    }
    // Fill the state directory, then let `up` write its record.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={d}/filler"), "bs=4k"])
        .output();
    let o = resume(child);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("write the lab's record"), "{}", text(&o));
    assert!(text(&o).contains("Rolled back"), "{}", text(&o));
    assert!(
        !netns_list().iter().any(|n| n.starts_with(&p)),
        "{:?}",
        netns_list()
    );
    std::fs::remove_file(format!("{d}/filler")).unwrap();
    let stray: Vec<_> = std::fs::read_dir(format!("{d}/labs"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(stray.is_empty(), "left in the state directory: {stray:?}");
    let o = run(&["ls", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
}
