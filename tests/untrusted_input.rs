//! Untrusted input (issue 13): topology files that are not regular files, and
//! mistakes caught at validation instead of by the kernel. Each case exits 2
//! quickly, names the file (and the place), and changes nothing.
mod common;
use common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run nslab, killing it after `limit`: a hang fails the test instead of the suite.
fn nslab_timeout(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nslab");
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "nslab {args:?} still running after {limit:?}; output so far:\n{}",
                text(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn refused(o: &Output, needles: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(2), "want exit 2, got:\n{t}");
    for n in needles {
        assert!(t.contains(n), "want {n:?} in:\n{t}");
    }
}

#[test]
fn a_fifo_as_topology_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("lab.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let p = prefix("fifo");
    for cmd in ["plan", "up", "down", "graph", "status"] {
        let o = nslab_timeout(&[cmd, s(&fifo), "--prefix", &p], Duration::from_secs(10));
        refused(&o, &[s(&fifo), "FIFO"]);
    }
    assert_gone(&p, &format!("{p}x"));
}

#[test]
fn a_device_as_topology_file_is_refused_without_reading_it() {
    let p = prefix("dev");
    for cmd in ["plan", "up", "down"] {
        let o = nslab_timeout(&[cmd, "/dev/zero", "--prefix", &p], Duration::from_secs(10));
        refused(&o, &["/dev/zero", "character device"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let o = nslab_timeout(&["plan", s(dir.path())], Duration::from_secs(10));
    refused(&o, &[s(dir.path()), "directory"]);
}

/// Two nodes on one cable; `red_if` is the body of red's interface (line 5),
/// `red_extra` more lines of red (from line 6).
fn lab_text(red_if: &str, red_extra: &str) -> String {
    format!(
        "name: bad\nnodes:\n  red:\n    interfaces:\n      e0: {{ {red_if} }}\n{red_extra}  green:\n    interfaces:\n      e1: {{ address: 10.0.0.2/24, mac: \"02:00:00:00:00:02\" }}\nlinks:\n  - [ red:e0, green:e1 ]\nbridges:\n  br0: {{ address: 10.9.0.1/24 }}\n"
    )
}

#[test]
fn mistakes_the_kernel_would_meet_are_refused_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    let p = prefix("val");
    let gw = "    routes: [ \"default via 10.0.0.1\" ]\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            lab_text("address: \"ff02::5/64\"", ""),
            ":5:22:",
            "multicast",
        ),
        (lab_text("address: \"::1/128\"", ""), ":5:22:", "loopback"),
        (lab_text("address: 0.0.0.0/0", ""), ":5:22:", "unspecified"),
        (lab_text("address: 224.0.0.9/24", ""), ":5:22:", "multicast"),
        (lab_text("address: 127.0.0.2/8", ""), ":5:22:", "loopback"),
        (
            lab_text("address: 10.0.0.255/24", ""),
            ":5:22:",
            "broadcast",
        ),
        (
            lab_text("address: 10.0.0.1/24", "").replace("10.9.0.1/24", "255.255.255.255/32"),
            ":12:19:",
            "broadcast",
        ),
        (
            lab_text("address: 10.0.0.1/24, mac: \"00:00:00:00:00:00\"", ""),
            ":5:40:",
            "all-zero",
        ),
        (
            lab_text("address: 10.0.0.1/24, mac: \"01:00:5e:00:00:01\"", ""),
            ":5:40:",
            "multicast MAC",
        ),
        (
            lab_text("address: 10.0.0.1/24, mac: \"02:00:00:00:00:02\"", ""),
            ":8:40:",
            "already set on nodes.red.interfaces.e0",
        ),
        (
            lab_text("address: 10.0.0.1/24", gw),
            ":6:",
            "is the address of red:e0 itself",
        ),
        (
            lab_text("address: 10.0.0.1/24, mtu: \"1500\"", ""),
            ":5:",
            "expected a whole number",
        ),
        (
            lab_text("address: 10.0.0.1/24", "    forward: \"true\"\n"),
            ":6:",
            "expected a boolean",
        ),
    ];
    for (i, (body, place, want)) in cases.iter().enumerate() {
        let f = write_file(&dir, &format!("bad{i}.yaml"), body);
        for sandbox in [true, false] {
            let mut args = vec!["up", s(&f), "--prefix", &p];
            if sandbox {
                args.push("--sandbox");
            }
            let o = nslab_timeout(&args, Duration::from_secs(20));
            refused(&o, &[&format!("{}{place}", s(&f)), want]);
            assert!(!text(&o).contains("overlaps"), "{}", text(&o));
        }
        assert_gone(&p, &format!("{p}bad"));
    }
}

#[test]
fn clean_refuses_a_prefix_no_name_can_have() {
    let (p, lab, _g) = up_example("cln", "objective1-veth.yaml");
    for bad in ["a/b", "x y", "a:b", "e%d", "tab\there"] {
        let o = nslab_timeout(&["clean", "--prefix", bad], Duration::from_secs(20));
        refused(
            &o,
            &["--prefix", "cannot be part of a lab or namespace name"],
        );
    }
    let bad = format!("{p}/");
    let o = nslab_timeout(&["clean", "--prefix", &bad], Duration::from_secs(20));
    refused(&o, &["cannot be part of"]);
    // The lab is untouched.
    assert!(
        state_dir()
            .join("labs")
            .join(format!("{lab}.json"))
            .exists()
    );
    assert!(netns_list().iter().any(|n| n.starts_with(&p)));
}
