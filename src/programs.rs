//! Programs nslab starts inside nodes: the file's `run:` lists (started by `up`
//! once the network is ready) and `serve --detach`. Each is recorded by pid and
//! start time, logs to a file, and is stopped by `down`.

use crate::error::{Error, Result};
use crate::kernel::{exec::Entry, netns, procs};
use crate::record::{Proc, Record};
use crate::topology::Lab;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

pub fn log_dir(lab: &str) -> std::path::PathBuf {
    crate::record::state_dir().join("logs").join(lab)
}

/// Is a recorded program still the same running process?
pub fn alive(p: &Proc) -> bool {
    procs::stat(p.pid).is_some_and(|s| s.start_time == p.start_time && !s.gone())
}

/// Start `argv` in namespace `ns` like `nslab exec` would, detached (own session),
/// output to `log`.
pub fn spawn(ns: &str, argv: &[String], log: &std::path::Path) -> Result<(i32, u64)> {
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
    if !ns.is_empty() {
        let f = netns::open(ns).map_err(Error::io(format!("open namespace {ns}")))?;
        let entry = Entry::new(ns, f).map_err(Error::io(format!("prepare namespace {ns}")))?;
        // SAFETY: between fork and exec the child only makes syscalls (setns,
        // unshare, mount, setsid); everything they need was prepared before.
        unsafe {
            cmd.pre_exec(move || {
                entry.enter()?;
                nix::unistd::setsid()?;
                Ok(())
            });
        }
    } else {
        // SAFETY: setsid only.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                Ok(())
            });
        }
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::Failed(format!("start `{}` in {ns}: {e}", argv.join(" "))))?;
    let pid = child.id() as i32;
    // Not waited for: the record owns it; `down` stops it by pid and start time.
    std::mem::forget(child);
    let start = procs::start_time(pid).unwrap_or(0);
    Ok((pid, start))
}

/// Bring the `run:` programs in line with the model: stop recorded ones that are
/// no longer wanted, start wanted ones that are not running.
pub fn reconcile(rec: &mut Record, lab: &Lab) -> Result<Vec<String>> {
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
    let mut keep = Vec::new();
    for p in std::mem::take(&mut rec.processes) {
        let still = p.origin != "run"
            || wanted
                .iter()
                .any(|(n, _, c)| *n == p.node && *c == p.command);
        if still && (p.origin != "run" || alive(&p)) {
            keep.push(p);
        } else if alive(&p) {
            procs::stop(p.pid, p.start_time, std::time::Duration::from_secs(3));
            said.push(format!(
                "stopped `{}` in {} (pid {})",
                p.command, p.node, p.pid
            ));
        }
    }
    rec.processes = keep;
    for (i, (node, ns, command)) in wanted.iter().enumerate() {
        if rec
            .processes
            .iter()
            .any(|p| p.origin == "run" && &p.node == node && &p.command == command)
        {
            continue;
        }
        let argv = crate::util::split_command(command).map_err(Error::Usage)?;
        let log = log_dir(&lab.name).join(format!("{node}-{i}.log"));
        let (pid, start_time) = spawn(ns, &argv, &log)?;
        said.push(format!(
            "started `{command}` in {node} (pid {pid}, log {})",
            log.display()
        ));
        rec.processes.push(Proc {
            pid,
            start_time,
            node: node.clone(),
            command: command.clone(),
            log: Some(log.display().to_string()),
            origin: "run".into(),
        });
        rec.save().map_err(Error::io("write the lab's record"))?;
    }
    Ok(said)
}
