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
