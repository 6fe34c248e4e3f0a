//! Processes and the network namespaces they are in, read from /proc.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProcInfo {
    pub pid: i32,
    pub start_time: u64,
    pub command: String,
    pub session: i32,
}

/// The inode of a process's network namespace.
pub fn net_ino(pid: i32) -> Option<u64> {
    let l = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let s = l.to_string_lossy();
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Start time of a process (clock ticks since boot): with the pid, it names one
/// process for good, even after the pid is reused.
pub fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Session id of a process (field 6 of /proc/PID/stat): programs nslab starts
/// lead their own session, so their children are known as theirs.
pub fn session(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(3)?.parse().ok()
}

pub fn command(pid: i32) -> String {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(b) if !b.is_empty() => b
            .split(|c| *c == 0)
            .filter(|x| !x.is_empty())
            .map(|x| String::from_utf8_lossy(x).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        _ => std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| format!("[{}]", s.trim()))
            .unwrap_or_default(),
    }
}

/// Every process whose network namespace is one of `inos` (inode -> name).
pub fn in_namespaces(inos: &HashMap<u64, String>) -> io::Result<Vec<(String, ProcInfo)>> {
    let mut out = Vec::new();
    if inos.is_empty() {
        return Ok(out);
    }
    let me = std::process::id() as i32;
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Some(ino) = net_ino(pid)
            && let Some(ns) = inos.get(&ino)
        {
            out.push((
                ns.clone(),
                ProcInfo {
                    pid,
                    start_time: start_time(pid).unwrap_or(0),
                    command: command(pid),
                    session: session(pid).unwrap_or(0),
                },
            ));
        }
    }
    out.sort_by_key(|p| p.1.pid);
    Ok(out)
}

/// Inode of a named namespace's nsfs file.
pub fn ns_ino(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Stop a process: SIGTERM, then SIGKILL if it is still there after `grace`.
/// Only if its start time still matches (the pid was not reused).
pub fn stop(pid: i32, start: u64, grace: std::time::Duration) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let same = || start_time(pid).is_some_and(|s| start == 0 || s == start);
    if !same() {
        return;
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let t0 = std::time::Instant::now();
    while t0.elapsed() < grace {
        // Reap it if it is our child; otherwise wait until /proc says it is gone.
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        if !same() || is_zombie(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    let t1 = std::time::Instant::now();
    while same() && !is_zombie(pid) && t1.elapsed() < std::time::Duration::from_secs(5) {
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .and_then(|i| s.get(i + 2..i + 3).map(|c| c == "Z"))
        })
        .unwrap_or(false)
}
