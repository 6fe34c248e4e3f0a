//! The main job: `nslab demo` runs the tutorial end to end and leaves nothing,
//! also when interrupted; completions and the man page generate.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_json_every_step_succeeds_and_nothing_is_left() {
    let p = prefix("demo");
    let before = link_names(None);
    let o = Command::new(bin())
        .args(["demo", "--json", "--prefix", &p])
        .output()
        .unwrap();
    let j: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert!(o.status.success(), "{j:#}");
    assert_eq!(j["ok"], true);
    let steps = j["steps"].as_array().unwrap();
    assert!(steps.len() >= 20, "{} steps", steps.len());
    assert!(steps.iter().all(|s| s["ok"] == true), "{j:#}");
    // The tutorial's milestones are there.
    let titles: Vec<&str> = steps.iter().map(|s| s["title"].as_str().unwrap()).collect();
    for want in [
        "each namespace can ping itself",
        "Bad request syntax",
        "tcpdump -i bbrveth",
        "ip netns identify",
        "green cannot reach the internet",
        "green reaches the internet",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "no step about {want:?}: {titles:#?}"
        );
    }
    for labname in ["objective1", "objective2", "objective3"] {
        assert_gone(&p, &format!("{p}{labname}"));
    }
    assert_eq!(
        link_names(None),
        before,
        "the real host's interfaces are untouched"
    );
}

#[test]
fn demo_interrupted_by_sigint_leaves_nothing() {
    let p = prefix("dint");
    let child = Command::new(bin())
        .args(["demo", "--prefix", &p])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Bg(child);
    // Interrupt once the lab of objective 2 exists: midway.
    let t0 = Instant::now();
    while !netns_list().iter().any(|n| n == &format!("{p}black")) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the demo never reached objective 2"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signalling the child we started, by its pid.
    unsafe { libc::kill(guard.0.id() as i32, libc::SIGINT) };
    let st = guard.0.wait().unwrap();
    assert_eq!(st.code(), Some(130), "{st:?}");
    for labname in ["objective1", "objective2", "objective3"] {
        assert_gone(&p, &format!("{p}{labname}"));
    }
}

#[test]
fn completions_and_man_page_generate() {
    let o = ok(nslab(&["completions", "bash"]));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "nslab.bash", &stdout(&o));
    let (good, out) = sh_status(&format!("bash -n {}", f.display()));
    assert!(good, "{out}");
    assert!(stdout(&o).contains("capture"));
    let o = ok(nslab(&["man"]));
    let m = stdout(&o);
    assert!(
        m.contains(".TH nslab 1") && m.contains("nslab\\-up") || m.contains("nslab up"),
        "{}",
        &m[..m.len().min(500)]
    );
}

#[test]
fn piped_output_has_no_terminal_escapes() {
    let p = prefix("pipe");
    let lab = format!("{p}objective2");
    let _g = LabGuard::new(&lab, None);
    for args in [
        vec![
            "up",
            example("objective2-bridge.yaml").to_str().unwrap(),
            "--sandbox",
            "--prefix",
            &p,
        ],
        vec!["status", "--lab", &lab],
        vec!["check", "--lab", &lab],
        vec!["down", "--lab", &lab],
    ] {
        let o = nslab(&args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            !all.contains('\x1b') && !all.contains('\r'),
            "{args:?}: {all:?}"
        );
    }
}
