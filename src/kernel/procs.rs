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

/// The fields of /proc/PID/stat nslab uses, read in one go so they belong to
/// one moment of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// State letter: R, S, D, Z (zombie), X (dead), ...
    pub state: char,
    /// Session id: programs nslab starts lead their own session, so their
    /// children are known as theirs.
    pub session: i32,
    /// Clock ticks since boot: with the pid, it names one process for good,
    /// even after the pid is reused.
    pub start_time: u64,
}

impl Stat {
    /// A zombie or a dead task: it has left its namespaces already.
    pub fn gone(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parse a /proc/PID/stat line. The command (field 2) may contain spaces and
/// parentheses: the fields after it start after the last ')'.
pub fn parse_stat(s: &str) -> Option<Stat> {
    let rest = s.get(s.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so field n is f[n - 3].
    Some(Stat {
        state: f.first()?.chars().next()?,
        session: f.get(3)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

pub fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Start time of a process (see [`Stat::start_time`]).
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
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
        // A process that exits while we look (a short-lived child of a program,
        // like the `basename` a pyenv shim runs) is skipped once its stat is gone
        // or says it is dead: it no longer holds the namespace.
        if let Some(ino) = net_ino(pid)
            && let Some(ns) = inos.get(&ino)
            && let Some(st) = stat(pid)
            && !st.gone()
        {
            out.push((
                ns.clone(),
                ProcInfo {
                    pid,
                    start_time: st.start_time,
                    command: command(pid),
                    session: st.session,
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
    // Still the same process (the pid was not reused), and not yet a zombie.
    let running = || stat(pid).is_some_and(|s| (start == 0 || s.start_time == start) && !s.gone());
    // Reap it if it is our child; otherwise wait until /proc says it is gone.
    let gone_within = |limit: std::time::Duration, step: u64| {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < limit {
            let _ = nix::sys::wait::waitpid(
                Pid::from_raw(pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
            if !running() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(step));
        }
        false
    };
    if !running() {
        return;
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    if !gone_within(grace, 20) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        gone_within(std::time::Duration::from_secs(5), 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_with_spaces_and_parens() {
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                session: 4242,
                start_time: 987654
            })
        );
        let z = parse_stat(&line.replace(") S ", ") Z ")).unwrap();
        assert!(z.gone());
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn stat_of_this_process() {
        let me = stat(std::process::id() as i32).unwrap();
        assert!(!me.gone());
        assert!(me.start_time > 0);
        assert_eq!(
            Some(me.session),
            nix::unistd::getsid(None).ok().map(|p| p.as_raw())
        );
    }
}
