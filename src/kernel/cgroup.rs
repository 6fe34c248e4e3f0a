//! cgroup v2: the mark that makes programs nslab starts its own from birth.
//!
//! Each program goes into a cgroup of its own, `nslab/LAB/ORIGIN-ID`, under the
//! cgroup v2 mount (found in /proc/self/mountinfo: `/sys/fs/cgroup` on a pure v2
//! system, `/sys/fs/cgroup/unified` on a v1/v2 hybrid). The child joins it before
//! it execs, and every process it ever makes stays in it, whatever it does (double
//! fork, setsid, a cleared environment): `down` and `clean` find them all there and
//! stop them with `cgroup.kill`, also when the lab's record is lost.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The directory under the v2 root that holds nslab's cgroups.
pub const TOP: &str = "nslab";

/// Where cgroup v2 is mounted, from a mountinfo text (the first `cgroup2` mount).
pub fn parse_mountinfo(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|l| {
        // Fields: id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mp = pre.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape(mp)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 mount point of this machine, if any.
pub fn v2_mount() -> Option<PathBuf> {
    parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").ok()?)
}

/// A name that is safe as one path component.
fn safe(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// nslab's cgroup tree: `MOUNT/nslab`, if cgroup v2 is mounted and writable here
/// (created on first use).
pub fn top() -> Option<PathBuf> {
    let t = v2_mount()?.join(TOP);
    match std::fs::create_dir(&t) {
        Ok(()) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(t),
        Err(_) => None,
    }
}

/// The cgroup of one lab (not created): `MOUNT/nslab/LAB`.
pub fn lab_dir(lab: &str) -> Option<PathBuf> {
    if !safe(lab) {
        return None;
    }
    Some(v2_mount()?.join(TOP).join(lab))
}

/// Create a fresh cgroup for one program of `lab`: `nslab/LAB/ORIGIN-N`. Returns
/// its path, or None when cgroup v2 is not available or not writable.
pub fn create_program(lab: &str, origin: &str) -> io::Result<Option<PathBuf>> {
    if !safe(lab) || !safe(origin) {
        return Ok(None);
    }
    let Some(top) = top() else {
        return Ok(None);
    };
    let dir = top.join(lab);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for n in 0..1000u128 {
        let p = dir.join(format!("{origin}-{}", base + n));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(Some(p)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "no free cgroup name under {}",
        dir.display()
    )))
}

/// An open `cgroup.procs` of a cgroup, for a child to join it between fork and
/// exec: [`Joiner::join`] writes "0" (the writer itself), one async-signal-safe
/// write.
pub struct Joiner {
    fd: OwnedFd,
}

impl Joiner {
    pub fn open(cg: &Path) -> io::Result<Joiner> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(cg.join("cgroup.procs"))?;
        Ok(Joiner { fd: f.into() })
    }

    /// In the child, before exec: move the calling process into the cgroup.
    pub fn join(&self) -> io::Result<()> {
        // write(2) only: safe between fork and exec.
        match nix::unistd::write(&self.fd, b"0") {
            Ok(1) => Ok(()),
            Ok(_) => Err(io::Error::last_os_error()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The pids in a cgroup and all its descendants.
pub fn pids(cg: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_to_string(cg.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default();
    for c in children(cg) {
        out.extend(pids(&c));
    }
    out
}

fn children(cg: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cg)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Does a cgroup (or a descendant) still hold a process? (`cgroup.events`:
/// `populated 1`.) A cgroup that does not exist holds none.
pub fn populated(cg: &Path) -> bool {
    std::fs::read_to_string(cg.join("cgroup.events"))
        .map(|s| s.lines().any(|l| l.trim() == "populated 1"))
        .unwrap_or(false)
}

/// The v2 cgroup of a process, relative to the v2 root (the `0::` line of
/// /proc/PID/cgroup), e.g. `/nslab/lab/run-1`.
pub fn of_pid(pid: i32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

/// Is process `pid` in `cg` or below it?
pub fn contains(cg: &Path, pid: i32) -> bool {
    let (Some(mount), Some(rel)) = (v2_mount(), of_pid(pid)) else {
        return false;
    };
    let full = mount.join(rel.trim_start_matches('/'));
    full.starts_with(cg)
}

/// Stop every process of a cgroup tree: SIGTERM to each, then after `grace`
/// `cgroup.kill` (SIGKILL to all at once, kernel ≥ 5.14; by pid before that),
/// wait until it is empty, and remove the cgroups. Returns the pids it signalled.
pub fn stop(cg: &Path, grace: Duration) -> io::Result<Vec<i32>> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if !cg.exists() {
        return Ok(vec![]);
    }
    let first = pids(cg);
    for p in &first {
        let _ = kill(Pid::from_raw(*p), Signal::SIGTERM);
    }
    if !first.is_empty() && !wait_empty(cg, grace, &first, false) {
        kill_all(cg)?;
        if !wait_empty(cg, Duration::from_secs(5), &first, true) {
            return Err(io::Error::other(format!(
                "processes in {} did not exit after SIGKILL: {:?}",
                cg.display(),
                pids(cg)
            )));
        }
    }
    remove(cg)?;
    Ok(first)
}

/// SIGKILL everything in a cgroup tree.
fn kill_all(cg: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .open(cg.join("cgroup.kill"))
    {
        Ok(mut f) => f.write_all(b"1"),
        // Before 5.14: one by one, until none is left (a fork in between is
        // caught by the next round).
        Err(e) if e.kind() == io::ErrorKind::NotFound && cg.exists() => {
            for p in pids(cg) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Wait until a cgroup tree holds no process (reaping `ours` if they are our
/// children, so they do not stay as zombies of this process).
fn wait_empty(cg: &Path, limit: Duration, ours: &[i32], rekill: bool) -> bool {
    let t0 = Instant::now();
    loop {
        for p in ours {
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(*p),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
        if !populated(cg) {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        // Without cgroup.kill, a process forked since the last round is caught
        // by the next one.
        if rekill && !cg.join("cgroup.kill").exists() {
            let _ = kill_all(cg);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Remove a cgroup tree that holds no process (children first).
pub fn remove(cg: &Path) -> io::Result<()> {
    for c in children(cg) {
        remove(&c)?;
    }
    match std::fs::remove_dir(cg) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Labs that have a cgroup under nslab's tree.
pub fn labs() -> Vec<String> {
    let Some(t) = v2_mount().map(|m| m.join(TOP)) else {
        return vec![];
    };
    children(&t)
        .into_iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v2_mount_in_hybrid_and_pure_layouts() {
        let hybrid = "25 31 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n\
            30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n\
            31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n\
            32 30 0:28 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,name=systemd\n";
        assert_eq!(
            parse_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(parse_mountinfo(pure), Some(PathBuf::from("/sys/fs/cgroup")));
        let v1_only = "32 30 0:28 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu\n";
        assert_eq!(parse_mountinfo(v1_only), None);
        let spaced = "31 30 0:27 / /mnt/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(parse_mountinfo(spaced), Some(PathBuf::from("/mnt/my cg")));
        assert_eq!(parse_mountinfo(""), None);
        assert_eq!(parse_mountinfo("garbage - \n - cgroup2"), None);
    }

    #[test]
    fn unsafe_lab_names_get_no_cgroup_path() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert_eq!(lab_dir(bad), None, "{bad:?}");
        }
    }
}
