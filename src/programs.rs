//! Programs nslab starts inside nodes: the file's `run:` lists (started by `up`
//! once the network is ready) and `serve --detach`. Each runs in a cgroup of its
//! own under the lab's (see `crate::kernel::cgroup`), recorded before it starts,
//! logs to a file, and is stopped by `down` with everything it started. Without a
//! writable cgroup v2 they are known by pid, start time and session.

use crate::error::{Error, Result};
use crate::kernel::{cgroup, exec::Entry, netns, procs};
use crate::record::{Proc, Record};
use crate::topology::Lab;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

pub fn log_dir(lab: &str) -> std::path::PathBuf {
    crate::record::state_dir().join("logs").join(lab)
}

/// Is a recorded program still running? With a cgroup: while anything is in it
/// (the program or whatever it started). Without: the same pid and start time.
pub fn alive(p: &Proc) -> bool {
    match &p.cgroup {
        Some(cg) => cgroup::populated(std::path::Path::new(cg)),
        None => procs::stat(p.pid).is_some_and(|s| s.start_time == p.start_time && !s.gone()),
    }
}

/// Stop a recorded program and everything it started: its whole cgroup, or
/// (without one) its pid. Returns the pids it signalled.
pub fn stop(p: &Proc, grace: std::time::Duration) -> Result<Vec<i32>> {
    match &p.cgroup {
        Some(cg) => cgroup::stop(std::path::Path::new(cg), grace)
            .map_err(Error::io(format!("stop the programs in cgroup {cg}"))),
        None => {
            if !alive(p) {
                return Ok(vec![]);
            }
            procs::stop(p.pid, p.start_time, grace);
            Ok(vec![p.pid])
        }
    }
}

/// Remove a cgroup made by [`new_cgroup`] (and any below it).
pub fn remove_cgroup(c: &std::path::Path) -> std::io::Result<()> {
    cgroup::remove(c)
}

/// A fresh cgroup for a program of `lab` (None: no writable cgroup v2 here).
pub fn new_cgroup(lab: &str, origin: &str) -> Result<Option<std::path::PathBuf>> {
    cgroup::create_program(lab, origin).map_err(Error::io(format!("create a cgroup for lab {lab}")))
}

/// How programs of a lab (by its cgroup key) are tracked, for the user.
pub fn tracking(lab: &str) -> String {
    match cgroup::lab_dir(lab).filter(|_| cgroup::top().is_some()) {
        Some(d) => format!("programs are tracked by cgroup {}", d.display()),
        None => "no writable cgroup v2 here: programs are tracked by pid, start time and session (one that leaves its session is not found by `down`)".into(),
    }
}

/// Start `argv` in namespace `ns` like `nslab exec` would, detached (own session),
/// output to `log`; in cgroup `cg` (if any) before it runs any of its own code.
pub fn spawn(
    ns: &crate::plan::Ns,
    argv: &[String],
    log: &std::path::Path,
    cg: Option<&std::path::Path>,
) -> Result<(i32, u64)> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| Error::Usage("empty command".into()))?;
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d).map_err(Error::io(format!("create {}", d.display())))?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(Error::io(format!("open {}", log.display())))?;
    let err = out.try_clone().map_err(Error::io("log file"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    let joiner = cg
        .map(|c| cgroup::Joiner::open(c).map_err(Error::io(format!("open cgroup {}", c.display()))))
        .transpose()?;
    let entry = match ns.name() {
        None => None,
        Some(ns) => {
            let f = netns::open(ns).map_err(Error::io(format!("open namespace {ns}")))?;
            Some(Entry::new(ns, f).map_err(Error::io(format!("prepare namespace {ns}")))?)
        }
    };
    // SAFETY: between fork and exec the child only makes syscalls (write to
    // cgroup.procs, setns, unshare, mount, setsid); everything they need was
    // prepared before.
    unsafe {
        cmd.pre_exec(move || {
            // First: from here on, everything the child does is in the lab's cgroup.
            if let Some(j) = &joiner {
                j.join()?;
            }
            if let Some(e) = &entry {
                e.enter()?;
            }
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::Failed(format!("start `{}` in {ns}: {e}", argv.join(" "))))?;
    let pid = child.id() as i32;
    // Not waited for: the record owns it; `down` stops it by cgroup (or pid and
    // start time).
    std::mem::forget(child);
    let start = procs::start_time(pid).unwrap_or(0);
    Ok((pid, start))
}

/// Bring the `run:` programs in line with the model: stop recorded ones that are
/// no longer wanted, start wanted ones that are not running. A program's record
/// (with its cgroup) is written before it starts, so one started by an `up`
/// killed before it wrote the pid is found by its cgroup, not started twice.
/// `after_spawn` runs between starting a program and recording its pid (a test
/// hook plays a crash there).
/// The cgroup directory of a lab's programs (`nslab/KEY`): a machine's part
/// has one of its own (`LAB.m1`), so parts simulated on one computer, which
/// share the cgroup tree, never stop each other's programs.
pub fn cgroup_key(lab: &str, machine: Option<&str>) -> String {
    match machine {
        Some(m) => format!("{lab}.{m}"),
        None => lab.to_string(),
    }
}

/// The readings of a cgroup key, as (lab, machine): the key itself as a lab's
/// name, and `LAB.MACHINE` at each dot. Lab and machine names may both contain
/// dots, so `a.b.m1` reads three ways; only valid names count.
pub fn cgroup_owners(key: &str) -> Vec<(String, Option<String>)> {
    let valid = |n: &str| crate::topology::validate::name_problem(n).is_none();
    let mut v = Vec::new();
    if valid(key) {
        v.push((key.to_string(), None));
    }
    for (i, _) in key.match_indices('.') {
        let (lab, machine) = (&key[..i], &key[i + 1..]);
        if valid(lab) && valid(machine) {
            v.push((lab.to_string(), Some(machine.to_string())));
        }
    }
    v
}

pub fn reconcile(
    rec: &mut Record,
    lab: &Lab,
    after_spawn: &mut dyn FnMut() -> Result<()>,
) -> Result<Vec<String>> {
    let mut said = Vec::new();
    let wanted: Vec<(String, String, String)> = lab
        .nodes
        .iter()
        .flat_map(|n| {
            n.run
                .iter()
                .map(move |c| (n.name.clone(), n.ns.clone(), c.clone()))
        })
        .collect();
    let grace = std::time::Duration::from_secs(3);
    stop_unwanted(rec, &wanted, grace, &mut said)?;
    let cg_key = cgroup_key(&lab.name, lab.machine.as_deref());
    stop_unrecorded_cgroups(rec, &cg_key, grace, &mut said)?;
    let mut told = false;
    for (i, (node, ns, command)) in wanted.iter().enumerate() {
        if rec
            .processes
            .iter()
            .any(|p| p.origin == "run" && &p.node == node && &p.command == command)
        {
            continue;
        }
        if !told {
            said.push(tracking(&cg_key));
            told = true;
        }
        let log = log_dir(&lab.name).join(format!("{node}-{i}.log"));
        let (pid, start_time) = start_recorded(rec, &cg_key, node, ns, command, &log)?;
        after_spawn()?;
        said.push(format!(
            "started `{command}` in {node} (pid {pid}, log {})",
            log.display()
        ));
        if let Some(p) = rec.processes.last_mut() {
            p.pid = pid;
            p.start_time = start_time;
        }
        rec.save().map_err(Error::io("write the lab's record"))?;
    }
    Ok(said)
}

/// Stop recorded `run:` programs the model no longer wants (or that died), and
/// keep the rest.
fn stop_unwanted(
    rec: &mut Record,
    wanted: &[(String, String, String)],
    grace: std::time::Duration,
    said: &mut Vec<String>,
) -> Result<()> {
    let mut keep = Vec::new();
    for mut p in std::mem::take(&mut rec.processes) {
        let still = p.origin != "run"
            || wanted
                .iter()
                .any(|(n, _, c)| *n == p.node && *c == p.command);
        let running = alive(&p);
        if still && (p.origin != "run" || running) {
            // Started by an `up` that was killed before it recorded the pid.
            if p.pid == 0
                && let Some(cg) = &p.cgroup
                && let Some(first) = cgroup::pids(std::path::Path::new(cg)).first()
            {
                p.pid = *first;
                p.start_time = procs::start_time(*first).unwrap_or(0);
            }
            keep.push(p);
        } else {
            if running {
                said.push(format!(
                    "stopped `{}` in {} (pid {})",
                    p.command, p.node, p.pid
                ));
            }
            // Also removes an empty cgroup left behind.
            stop(&p, grace)?;
        }
    }
    rec.processes = keep;
    Ok(())
}

/// Program cgroups of this lab that no record names (its record was lost and
/// the lab brought up again): ours by their mark, and in the way of the new ones.
fn stop_unrecorded_cgroups(
    rec: &Record,
    lab: &str,
    grace: std::time::Duration,
    said: &mut Vec<String>,
) -> Result<()> {
    if let Some(dir) = cgroup::lab_dir(lab)
        && let Ok(rd) = std::fs::read_dir(&dir)
    {
        for e in rd.flatten() {
            let path = e.path();
            // `serve --detach` records its program once it answers: not ours to judge.
            let is_run = e.file_name().to_string_lossy().starts_with("run-");
            if !is_run
                || !path.is_dir()
                || rec
                    .processes
                    .iter()
                    .any(|p| p.cgroup.as_deref() == Some(&*path.to_string_lossy()))
            {
                continue;
            }
            let gone = cgroup::stop(&path, grace).map_err(Error::io(format!(
                "stop the programs in {}",
                path.display()
            )))?;
            if !gone.is_empty() {
                said.push(format!(
                    "stopped {} process(es) in {} that no record names (a lost record?)",
                    gone.len(),
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Record a `run:` program (with its cgroup, pid still 0), then start it: its
/// pid and start time. A program that fails to start is taken out of the record.
fn start_recorded(
    rec: &mut Record,
    lab: &str,
    node: &str,
    ns: &str,
    command: &str,
    log: &std::path::Path,
) -> Result<(i32, u64)> {
    let argv = crate::util::split_command(command).map_err(Error::Usage)?;
    // Record first (with its cgroup), then start.
    let cg = new_cgroup(lab, "run")?;
    rec.processes.push(Proc {
        pid: 0,
        start_time: 0,
        node: node.to_string(),
        command: command.to_string(),
        log: Some(log.display().to_string()),
        origin: "run".into(),
        cgroup: cg.as_ref().map(|c| c.display().to_string()),
    });
    rec.save().map_err(Error::io("write the lab's record"))?;
    match spawn(&crate::plan::Ns::named(ns), &argv, log, cg.as_deref()) {
        Ok(x) => Ok(x),
        Err(e) => {
            rec.processes.pop();
            if let Some(c) = &cg {
                let _ = cgroup::remove(c);
            }
            rec.save().map_err(Error::io("write the lab's record"))?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_keys_read_back_as_their_labs_and_machines() {
        let own = |l: &str, m: Option<&str>| (l.to_string(), m.map(String::from));
        assert_eq!(cgroup_owners("lab"), [own("lab", None)]);
        assert_eq!(
            cgroup_owners(&cgroup_key("lab", Some("m1"))),
            [own("lab.m1", None), own("lab", Some("m1"))]
        );
        assert_eq!(
            cgroup_owners("a.b.m1"),
            [
                own("a.b.m1", None),
                own("a", Some("b.m1")),
                own("a.b", Some("m1"))
            ]
        );
        // Not a name a lab or machine can have: nobody's.
        assert!(cgroup_owners(".x").is_empty());
        assert_eq!(cgroup_owners("lab."), [own("lab.", None)]);
    }

    /// Without a cgroup (no writable cgroup v2): known by pid and start time,
    /// stopped by pid.
    #[test]
    fn without_a_cgroup_a_program_is_known_by_pid_and_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("p.log");
        let argv = ["sleep".to_string(), "300".to_string()];
        let (pid, start_time) = spawn(&crate::plan::Ns::HOST, &argv, &log, None).unwrap();
        let p = Proc {
            pid,
            start_time,
            node: "n".into(),
            command: "sleep 300".into(),
            log: None,
            origin: "run".into(),
            cgroup: None,
        };
        assert!(alive(&p));
        // Its own session (setsid before exec).
        assert_eq!(procs::stat(pid).unwrap().session, pid);
        // A reused pid (another start time) is not ours.
        assert!(!alive(&Proc {
            start_time: start_time + 1,
            ..p.clone()
        }));
        assert_eq!(stop(&p, std::time::Duration::from_secs(3)).unwrap(), [pid]);
        assert!(!alive(&p));
        assert!(
            stop(&p, std::time::Duration::from_secs(1))
                .unwrap()
                .is_empty()
        );
    }
}
