//! `down` finds its lab by the file its record names (whatever the prefix or the
//! file's `name:` now), accepts --sandbox when it matches, creates nothing for a
//! lab that is not up, and says so with exit 0.

mod common;
use common::*;
use std::process::Command;

/// A private copy of objective 1 (other tests bring the example itself up).
fn copy(dir: &tempfile::TempDir) -> std::path::PathBuf {
    write_file(
        dir,
        "objective1.yaml",
        &std::fs::read_to_string(example("objective1-veth.yaml")).unwrap(),
    )
}

fn up(file: &std::path::Path, p: &str) {
    ok(nslab(&["up", s(file), "--sandbox", "--prefix", p]));
}

fn is_up(lab: &str) -> bool {
    state(&format!("labs/{lab}.json")).exists()
}

#[track_caller]
fn exit(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn down_file_finds_the_lab_brought_up_with_a_prefix() {
    let p = prefix("dnf");
    let lab = format!("{p}objective1");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = copy(&dir);
    up(&f, &p);
    // Without the --prefix of `up`.
    let o = ok(nslab(&["down", s(&f)]));
    assert!(
        text(&o).contains(&format!("lab {lab} is down")),
        "{}",
        text(&o)
    );
    assert_gone(&p, &lab);
    // Its lock file went with it (they used to pile up under locks/).
    assert!(!state(&format!("locks/{lab}.lock")).exists());
    // Twice is fine: not up, a note, exit 0.
    let o = ok(nslab(&["down", s(&f)]));
    assert!(text(&o).contains("not up"), "{}", text(&o));
}

#[test]
fn clean_removes_lock_files_of_labs_without_a_record() {
    let p = prefix("dlk");
    let stale = state(&format!("locks/{p}gone.lock"));
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "").unwrap();
    // Another prefix's lock file is not this clean's business.
    let other = state(&format!("locks/{}keep.lock", prefix("dlq")));
    std::fs::write(&other, "").unwrap();
    ok(nslab(&["clean", "--prefix", &p]));
    assert!(!stale.exists(), "clean left {}", stale.display());
    assert!(other.exists());
    std::fs::remove_file(&other).unwrap();
}

#[test]
fn several_labs_from_one_file_are_listed_and_prefix_chooses() {
    let p1 = prefix("dn1");
    let p2 = prefix("dn2");
    let (l1, l2) = (format!("{p1}objective1"), format!("{p2}objective1"));
    let _g1 = LabGuard::new(&l1, None);
    let _g2 = LabGuard::new(&l2, None);
    let dir = tempfile::tempdir().unwrap();
    let f = copy(&dir);
    up(&f, &p1);
    up(&f, &p2);
    let o = nslab(&["down", s(&f)]);
    assert_eq!(exit(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains(&l1) && text(&o).contains(&l2),
        "{}",
        text(&o)
    );
    assert!(is_up(&l1) && is_up(&l2), "nothing changed");
    ok(nslab(&["down", s(&f), "--prefix", &p1]));
    assert!(!is_up(&l1) && is_up(&l2));
    assert_gone(&p1, &l1);
    // One left: FILE alone finds it.
    ok(nslab(&["down", s(&f)]));
    assert_gone(&p2, &l2);
}

#[test]
fn a_file_whose_name_changed_since_up_is_found_by_its_path() {
    let p = prefix("dnn");
    let lab = format!("{p}objective1");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = copy(&dir);
    up(&f, &p);
    let text0 = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        text0.replace("name: objective1", "name: renamed-meanwhile"),
    )
    .unwrap();
    ok(nslab(&["down", s(&f), "--prefix", &p]));
    assert_gone(&p, &lab);
}

#[test]
fn down_sandbox_must_match_the_record() {
    let p = prefix("dns");
    let lab = format!("{p}objective1");
    // Not under the prefix: assert_gone checks that nothing of it is left.
    let t = TestNs::new(&format!("h{p}"));
    let _g = LabGuard::new(&lab, Some(&t.name));
    let dir = tempfile::tempdir().unwrap();
    let f = copy(&dir);
    // Host mode (inside the test's namespace): --sandbox does not match.
    ok(nslab_in(Some(&t.name), &["up", s(&f), "--prefix", &p]));
    let o = nslab_in(Some(&t.name), &["down", "--lab", &lab, "--sandbox"]);
    assert_eq!(exit(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("host mode"), "{}", text(&o));
    assert!(is_up(&lab), "nothing changed");
    ok(nslab_in(Some(&t.name), &["down", "--lab", &lab]));
    assert_gone(&p, &lab);
    // Sandboxed: --sandbox is accepted.
    up(&f, &p);
    ok(nslab(&["down", s(&f), "--sandbox"]));
    assert_gone(&p, &lab);
}

#[test]
fn a_lab_that_is_not_up_is_a_note_and_creates_nothing() {
    let p = prefix("dnu");
    let lab = format!("{p}typo");
    let o = ok(nslab(&["down", "--lab", &lab]));
    assert!(text(&o).contains("not up"), "{}", text(&o));
    assert!(
        !state(&format!("locks/{lab}.lock")).exists(),
        "down of an unknown lab created a lock file"
    );
    assert!(!is_up(&lab));
    // By FILE (never brought up).
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "x.yaml", &format!("name: {p}never\nnodes: {{}}\n"));
    let o = ok(nslab(&["down", s(&f)]));
    assert!(text(&o).contains("not up"), "{}", text(&o));
    // Named by nothing, with no lab up at all (a state directory of its own).
    let empty = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .arg("down")
        .env("NSLAB_STATE_DIR", empty.path())
        .output()
        .unwrap();
    assert_eq!(exit(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("no lab is up"), "{}", text(&o));
    // A FILE that does not exist and that no record names is bad input.
    let o = nslab(&["down", "/nonexistent/nslab-topology.yaml"]);
    assert_eq!(exit(&o), 2, "{}", text(&o));
}
