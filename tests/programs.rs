//! Programs nslab starts (`run:`) are the lab's from birth: crashes of `up` at
//! every step and at many moments never leave a foreign or duplicate program, and
//! `down` / `clean` stop programs that double-fork, call setsid and clear their
//! environment. Every test has its own prefix and tags its programs with numbers
//! no other test uses, to count them in /proc.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Processes whose command line is exactly `cmd`.
fn count(cmd: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<i32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|b| {
                    let s: Vec<String> = b
                        .split(|c| *c == 0)
                        .filter(|x| !x.is_empty())
                        .map(|x| String::from_utf8_lossy(x).into_owned())
                        .collect();
                    s.join(" ") == cmd
                })
                .unwrap_or(false)
        })
        // Zombies keep their pid but not their cmdline; a dying one may linger.
        .filter(|e| {
            std::fs::read_to_string(e.path().join("stat"))
                .map(|s| {
                    let st = s.rsplit(')').next().unwrap_or("").trim_start();
                    !st.starts_with('Z') && !st.starts_with('X')
                })
                .unwrap_or(false)
        })
        .count()
}

/// Wait (bounded) until exactly `n` processes run `cmd`; the count when it gave up.
fn wait_count(cmd: &str, n: usize) -> usize {
    let t0 = Instant::now();
    loop {
        let c = count(cmd);
        if c == n || t0.elapsed() > Duration::from_secs(10) {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A two-node lab whose node `a` runs a plain program and one that double-forks,
/// calls setsid and clears its environment (the `sleep` it leaves behind has
/// init as its parent, a session of its own and no NSLAB anything).
struct Progs {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
    plain: String,
    escaper: String,
}

fn progs_lab(tag: u32) -> Progs {
    let dir = tempfile::tempdir().unwrap();
    let plain = format!("sleep 97{tag}");
    let escaper = format!("sleep 98{tag}");
    let yaml = format!(
        r#"name: progs
nodes:
  a:
    interfaces: {{ eth0: {{ address: 10.77.0.1/24 }} }}
    run:
      - "{plain}"
      - "sh -c '(setsid env -i sh -c \"{escaper}; true\" &); exit 0'"
  b:
    interfaces: {{ eth0: {{ address: 10.77.0.2/24 }} }}
links:
  - [ a:eth0, b:eth0 ]
"#
    );
    let file = write_file(&dir, "progs.yaml", &yaml);
    Progs {
        _dir: dir,
        file,
        plain,
        escaper,
    }
}

fn tag() -> u32 {
    std::process::id() % 100_000
}

fn up_ok(file: &std::path::Path, p: &str) {
    ok(nslab(&["up", s(file), "--sandbox", "--prefix", p]));
}

/// After a repairing `up`: exactly one copy of each program; after `down`: none,
/// and nothing else of the lab.
fn repaired_then_down(l: &Progs, p: &str, lab: &str, what: &str) {
    up_ok(&l.file, p);
    assert_eq!(
        wait_count(&l.plain, 1),
        1,
        "{what}: one `{}` after up",
        l.plain
    );
    assert_eq!(
        wait_count(&l.escaper, 1),
        1,
        "{what}: one `{}` after up",
        l.escaper
    );
    assert!(
        pings(&format!("{p}a"), "10.77.0.2"),
        "{what}: the lab works"
    );
    let o = ok(nslab(&["down", "--lab", lab]));
    assert_eq!(
        wait_count(&l.plain, 0),
        0,
        "{what}: down left `{}`",
        l.plain
    );
    assert_eq!(
        wait_count(&l.escaper, 0),
        0,
        "{what}: down left `{}`",
        l.escaper
    );
    assert_gone(p, lab);
    let out = stdout(&o);
    // Each program is reported once.
    for line in out.lines().filter(|x| x.starts_with("stopped pid ")) {
        assert_eq!(out.matches(line).count(), 1, "{what}: twice: {out}");
    }
}

#[test]
fn fail_after_every_step_including_between_starting_a_program_and_recording_it() {
    let p = prefix("pfa");
    let lab = format!("{p}progs");
    let _g = LabGuard::new(&lab, None);
    let l = progs_lab(tag());
    let mut k = 1;
    let mut program_points = 0;
    loop {
        let o = Command::new(bin())
            .args(["up", s(&l.file), "--sandbox", "--prefix", &p])
            .env("NSLAB_TEST_FAIL_AFTER", k.to_string())
            .output()
            .unwrap();
        if o.status.success() {
            break;
        }
        assert!(
            text(&o).contains("NSLAB_TEST_FAIL_AFTER"),
            "k={k}: {}",
            text(&o)
        );
        // The crash point right after a program started: it runs, unrecorded by pid.
        if count(&l.plain) + count(&l.escaper) > 0 {
            program_points += 1;
        }
        repaired_then_down(&l, &p, &lab, &format!("k={k}"));
        k += 1;
        assert!(k < 200, "the abort switch never let up finish");
    }
    assert_eq!(
        program_points, 2,
        "two crash points with a program started and its pid not recorded"
    );
    ok(nslab(&["down", "--lab", &lab]));
    assert_eq!(wait_count(&l.plain, 0), 0);
}

#[test]
fn sigkill_of_up_at_many_moments() {
    let p = prefix("psk");
    let lab = format!("{p}progs");
    let _g = LabGuard::new(&lab, None);
    let l = progs_lab(tag() + 1);
    // Time offsets from the start of `up` (this lab takes ~30-60 ms in a debug
    // build); 20 rounds, spread over it and a little past.
    let mut with_program = 0;
    for round in 0..20u64 {
        let delay = Duration::from_micros(round * 4_000 + (round * 7_919) % 3_000);
        let mut child = Command::new(bin())
            .args(["up", s(&l.file), "--sandbox", "--prefix", &p])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL, by the pid we started
        let _ = child.wait();
        if count(&l.plain) > 0 {
            with_program += 1;
        }
        repaired_then_down(&l, &p, &lab, &format!("round {round} ({delay:?})"));
    }
    eprintln!("{with_program} of 20 kills came after a program had started");
}

#[test]
fn clean_stops_the_programs_of_a_lab_whose_record_was_lost() {
    let p = prefix("pcl");
    let lab = format!("{p}progs");
    let _g = LabGuard::new(&lab, None);
    let l = progs_lab(tag() + 2);
    up_ok(&l.file, &p);
    assert_eq!(wait_count(&l.escaper, 1), 1);
    std::fs::remove_file(state(&format!("labs/{lab}.json"))).unwrap();
    let o = ok(nslab(&["clean", "--prefix", &p, "--json"]));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(wait_count(&l.plain, 0), 0, "clean left `{}`: {j}", l.plain);
    assert_eq!(
        wait_count(&l.escaper, 0),
        0,
        "clean left `{}`: {j}",
        l.escaper
    );
    assert!(
        j["orphan_processes"]
            .as_array()
            .is_some_and(|a| a.len() >= 2),
        "{j}"
    );
    assert_gone(&p, &lab);
    assert!(
        !state(&format!("logs/{lab}")).exists(),
        "clean left the lost lab's logs"
    );
    let cg = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if let Some(mount) = cg.lines().find_map(|x| {
        let (pre, post) = x.split_once(" - ")?;
        post.starts_with("cgroup2 ")
            .then(|| pre.split_whitespace().nth(4).map(String::from))?
    }) {
        assert!(
            !std::path::Path::new(&format!("{mount}/nslab/{lab}")).exists(),
            "the lab's cgroup is left"
        );
    }
}

#[test]
fn a_program_started_by_a_crashed_up_is_not_started_twice() {
    let p = prefix("pdu");
    let lab = format!("{p}progs");
    let _g = LabGuard::new(&lab, None);
    let l = progs_lab(tag() + 3);
    up_ok(&l.file, &p);
    // `up` again, and again: still one copy each.
    up_ok(&l.file, &p);
    up_ok(&l.file, &p);
    assert_eq!(wait_count(&l.plain, 1), 1);
    assert_eq!(wait_count(&l.escaper, 1), 1);
    // `down` does not call the escaped program foreign.
    let o = ok(nslab(&["down", "--lab", &lab]));
    assert!(!text(&o).contains("did not start"), "{}", text(&o));
    assert_eq!(wait_count(&l.escaper, 0), 0);
    assert_gone(&p, &lab);
}

/// A cgroup under nslab's tree made by the test as a crashed `up` leaves one
/// (`nslab/KEY/run-NODE-N`), with a `sleep` in it or empty; on drop the sleep
/// is killed (by its pid) and what is left of the cgroup removed.
struct TestCg {
    key: std::path::PathBuf,
    prog: Option<Bg>,
}

impl TestCg {
    fn new(top: &std::path::Path, key: &str, prog: Option<&str>) -> TestCg {
        let key = top.join(key);
        let run = key.join("run-a-1");
        std::fs::create_dir_all(&run).unwrap();
        let prog = prog.map(|cmd| {
            let procs = run.join("cgroup.procs");
            let b = bg(&format!(
                "sh -c 'echo $$ > {} && exec {cmd}'",
                procs.display()
            ));
            assert_eq!(wait_count(cmd, 1), 1, "`{cmd}` did not start");
            b
        });
        TestCg { key, prog }
    }
}

impl Drop for TestCg {
    fn drop(&mut self) {
        drop(self.prog.take());
        let _ = std::fs::remove_dir(self.key.join("run-a-1"));
        let _ = std::fs::remove_dir(&self.key);
    }
}

/// A part of a lab over several machines (`up --machine m1`, in a namespace
/// that plays the machine) keeps its programs in a cgroup of its own,
/// `nslab/LAB.m1`. With its record lost, `clean` stops them, removes that
/// cgroup and an empty one a crash left (`LAB.m3`), and says so; it leaves
/// alone the key of a lab of another prefix and one whose lab another nslab
/// is working on (its lock held: an `up --machine` on its way).
#[test]
fn clean_removes_the_cgroup_of_a_machines_part_whose_record_was_lost() {
    let p = prefix("pcm");
    let q = prefix("pcq");
    let lab = format!("{p}mh");
    let t = tag() + 4;
    // The machine: a namespace of another prefix (it outlives the lab).
    let m1 = TestNs::new(&format!("{}m1", prefix("pcn")));
    sh(&format!(
        "ip -n {0} link add ul type veth peer name ul2 && ip -n {0} addr add 10.9.0.1/24 dev ul && ip -n {0} link set ul up && ip -n {0} link set ul2 up",
        m1.name
    ));
    let _g = LabGuard::new(&lab, Some(&m1.name));
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find_map(|x| {
            let (pre, post) = x.split_once(" - ")?;
            post.starts_with("cgroup2 ")
                .then(|| pre.split_whitespace().nth(4).map(String::from))?
        })
        .expect("this test needs cgroup v2");
    let top = std::path::Path::new(&mount).join("nslab");
    let prog = format!("sleep 96{t}");
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        &dir,
        "mh.yaml",
        &format!(
            r#"name: mh
machines:
  m1: {{ underlay: 10.9.0.1 }}
  m2: {{ underlay: 10.9.0.2 }}
nodes:
  a:
    on: m1
    interfaces: {{ e: {{ address: 10.77.0.1/24 }} }}
    run: ["{prog}"]
  b: {{ on: m1, interfaces: {{ e: {{ address: 10.77.0.2/24 }} }} }}
  c: {{ on: m2, interfaces: {{ e: {{ address: 10.77.1.1/24 }} }} }}
  d: {{ on: m2, interfaces: {{ e: {{ address: 10.77.1.2/24 }} }} }}
links:
  - [a:e, b:e]
  - [c:e, d:e]
"#
        ),
    );
    ok(nslab_in(
        Some(&m1.name),
        &["up", s(&file), "--machine", "m1", "--prefix", &p],
    ));
    assert_eq!(wait_count(&prog, 1), 1);
    let part = top.join(format!("{lab}.m1"));
    assert!(part.is_dir(), "no cgroup {}", part.display());
    // What a crash left besides, and what is not this clean's business.
    let empty = TestCg::new(&top, &format!("{p}gone.m3"), None);
    let other_prog = format!("sleep 95{t}");
    let other = TestCg::new(&top, &format!("{q}x.m1"), Some(&other_prog));
    let busy_prog = format!("sleep 94{t}");
    let busy = TestCg::new(&top, &format!("{p}busy.m2"), Some(&busy_prog));
    std::fs::create_dir_all(state("locks")).unwrap();
    let lock = std::fs::File::create(state(&format!("locks/{p}busy.lock"))).unwrap();
    let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();

    std::fs::remove_file(state(&format!("labs/{lab}.json"))).unwrap();
    let o = ok(nslab_in(
        Some(&m1.name),
        &["clean", "--prefix", &p, "--json"],
    ));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = |k: &str| -> Vec<String> {
        j[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    assert_eq!(wait_count(&prog, 0), 0, "clean left `{prog}`: {j}");
    assert!(!part.exists(), "clean left {}: {j}", part.display());
    assert!(
        !empty.key.exists(),
        "clean left {}: {j}",
        empty.key.display()
    );
    let mut cgs = list("orphan_cgroups");
    cgs.sort();
    assert_eq!(
        cgs,
        [format!("nslab/{p}gone.m3"), format!("nslab/{lab}.m1")],
        "{j}"
    );
    assert!(
        list("orphan_processes")
            .iter()
            .any(|s| s.ends_with(&format!("lab {lab} on machine m1)"))),
        "{j}"
    );
    assert_eq!(list("busy"), [format!("{p}busy")], "{j}");
    assert_gone(&p, &lab);
    // Left alone: still there, their programs running.
    for (cg, cmd) in [(&other, &other_prog), (&busy, &busy_prog)] {
        assert!(cg.key.is_dir(), "clean removed {}: {j}", cg.key.display());
        assert_eq!(count(cmd), 1, "clean stopped `{cmd}`: {j}");
    }
    drop(lock);
    let _ = std::fs::remove_file(state(&format!("locks/{p}busy.lock")));
}
