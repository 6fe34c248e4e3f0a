//! The record of a lab: what it was built from and everything it owns, kept under
//! /run/nslab (NSLAB_STATE_DIR overrides). Written before each create (intent), so
//! after a crash every object that may exist is known to be ours.

use crate::kernel::netns::NsId;
use crate::topology::Lab;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

pub const VERSION: u32 = 1;

/// The state directory (see [`crate::config`]).
pub fn state_dir() -> PathBuf {
    crate::config::get().state_dir.clone()
}

fn labs_dir() -> PathBuf {
    state_dir().join("labs")
}

/// The lab's hosts file; each node's /etc/netns/NS/hosts links to it.
pub fn hosts_path(lab: &str) -> PathBuf {
    hosts_path_in(&state_dir(), lab)
}

pub fn hosts_path_in(state: &Path, lab: &str) -> PathBuf {
    state.join("hosts").join(lab)
}

/// The lab's resolv.conf; each node's /etc/netns/NS/resolv.conf links to it.
pub fn resolv_path(lab: &str) -> PathBuf {
    resolv_path_in(&state_dir(), lab)
}

pub fn resolv_path_in(state: &Path, lab: &str) -> PathBuf {
    state.join("resolv").join(lab)
}

/// Is `link` a symlink into nslab's resolv.conf directory (nslab's own)?
pub fn resolv_link_is_ours(link: &Path) -> bool {
    std::fs::read_link(link)
        .ok()
        .is_some_and(|t| t.parent() == Some(state_dir().join("resolv").as_path()))
}

pub fn path_of(lab: &str) -> PathBuf {
    labs_dir().join(format!("{lab}.json"))
}

/// A sysctl nslab changed in the host, with the value to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlChange {
    pub key: String,
    pub old: String,
    pub new: String,
}

/// A program nslab started in a node (`run:` or `serve --detach`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: i32,
    /// /proc/PID/stat start time, so a reused pid is never mistaken for ours.
    pub start_time: u64,
    pub node: String,
    pub command: String,
    pub log: Option<String>,
    /// "run" (the file's `run:` list) or "serve" (`nslab serve --detach`).
    #[serde(default)]
    pub origin: String,
    /// The cgroup (v2) the program was started in, absolute path: it holds the
    /// program and everything it ever starts. None: no writable cgroup v2 here,
    /// the program is known by pid, start time and session only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub lab: String,
    /// The topology file it was last brought up from.
    pub file: Option<String>,
    pub sandbox: bool,
    /// The network namespace that played the host (host mode).
    pub host_ns: NsId,
    /// The model of the last successful `up` (None until the first one finished).
    pub model: Option<Lab>,
    /// Namespaces the lab owns (created, or about to be).
    pub namespaces: BTreeSet<String>,
    /// Interfaces the lab owns in the host namespace (host mode).
    pub host_links: BTreeSet<String>,
    #[serde(default)]
    pub sysctls: Vec<SysctlChange>,
    #[serde(default)]
    pub processes: Vec<Proc>,
    #[serde(default)]
    pub nft_tables: BTreeSet<String>,
    /// The MAC each host bridge was created with: the kernel takes no alias in a
    /// create request, so until the mark is set this is how `down` and `up` know
    /// a recorded bridge is the one this lab made.
    #[serde(default)]
    pub bridge_macs: BTreeMap<String, [u8; 6]>,
    /// What `nslab link`, `partition` and `shape` changed since `up`.
    #[serde(default, skip_serializing_if = "crate::runtime::State::is_empty")]
    pub runtime: crate::runtime::State,
}

impl Record {
    /// Take in what the executor is about to create.
    pub fn note(&mut self, i: &crate::apply::Intent) {
        use crate::apply::Intent;
        match i {
            Intent::Namespaces(v) => self.namespaces.extend(v.iter().cloned()),
            Intent::HostLinks(v) => {
                for (name, mac) in v {
                    self.host_links.insert(name.clone());
                    if let Some(m) = mac {
                        self.bridge_macs.insert(name.clone(), *m);
                    }
                }
            }
            Intent::NftTable(t) => {
                self.nft_tables.insert(t.clone());
            }
        }
    }

    pub fn new(lab: &str, sandbox: bool, host_ns: NsId) -> Record {
        Record {
            version: VERSION,
            lab: lab.into(),
            file: None,
            sandbox,
            host_ns,
            model: None,
            namespaces: BTreeSet::new(),
            host_links: BTreeSet::new(),
            sysctls: Vec::new(),
            processes: Vec::new(),
            nft_tables: BTreeSet::new(),
            bridge_macs: BTreeMap::new(),
            runtime: Default::default(),
        }
    }

    pub fn load(lab: &str) -> io::Result<Option<Record>> {
        check_name(lab)?;
        load_path(&path_of(lab))
    }

    /// Write atomically (temp file, fsync, rename), so a crash leaves the old or the new record.
    pub fn save(&self) -> io::Result<()> {
        check_name(&self.lab)?;
        let dir = labs_dir();
        std::fs::create_dir_all(&dir)?;
        let p = path_of(&self.lab);
        let tmp = dir.join(format!(".{}.json.tmp", self.lab));
        let r = (|| {
            // Streamed: a 10,000-node lab's record is ~10 MB of JSON, and
            // building it in memory first made the peak of `up`.
            let mut w = io::BufWriter::new(File::create(&tmp)?);
            serde_json::to_writer_pretty(&mut w, self).map_err(io::Error::other)?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)
        })();
        if r.is_err() {
            // A full disk leaves a part-written temporary: never leave it behind.
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }

    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_file(path_of(&self.lab)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Remove a temporary record a killed nslab left (call with the lab's lock held).
pub fn remove_temporaries(lab: &str) {
    if check_name(lab).is_ok() {
        let _ = std::fs::remove_file(labs_dir().join(format!(".{lab}.json.tmp")));
    }
}

/// A lab name is part of file names here: refuse any that could leave the state
/// directory or name nslab's own files (those start with `.`).
fn check_name(lab: &str) -> io::Result<()> {
    match crate::topology::validate::name_problem(lab) {
        None => Ok(()),
        Some(p) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("lab name {lab:?} {p}"),
        )),
    }
}

pub fn load_path(p: &Path) -> io::Result<Option<Record>> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let corrupt = |e: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {e}; this record cannot be trusted. Delete the file; then `nslab clean --prefix {}` removes what the lab made (found by its marks)",
                p.display(),
                p.file_stem()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
        )
    };
    match std::fs::read(p) {
        Ok(b) => {
            // Refuse a version this nslab does not know before trusting any field.
            let v: Version = serde_json::from_slice(&b).map_err(|e| corrupt(e.to_string()))?;
            if v.version != VERSION {
                return Err(corrupt(format!(
                    "record version {} is not one this nslab knows ({VERSION})",
                    v.version
                )));
            }
            serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| corrupt(e.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Names of all labs with a record.
pub fn list() -> io::Result<Vec<String>> {
    let mut v = Vec::new();
    match std::fs::read_dir(labs_dir()) {
        Ok(rd) => {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                // Only files a lab could have written: a hand-made `../x.json`
                // link or `a b.json` is not a lab.
                if let Some(lab) = n.strip_suffix(".json")
                    && crate::topology::validate::name_problem(lab).is_none()
                {
                    v.push(lab.to_string());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    v.sort();
    Ok(v)
}

/// An exclusive lock on one lab, held until dropped: two `up`s of one lab never
/// interleave. `wait` = block until free; otherwise fail at once if taken.
pub struct LabLock {
    _f: nix::fcntl::Flock<File>,
    path: PathBuf,
}

impl LabLock {
    /// Remove the lock file, then release the lock: for a lab that is gone, so
    /// lock files do not pile up. Safe against waiters because [`lock_in`] only
    /// trusts a lock on the file that is still at the path.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn lock(lab: &str, wait: bool) -> io::Result<Option<LabLock>> {
    check_name(lab)?;
    lock_file(&format!("{lab}.lock"), wait)
}

fn lock_file(name: &str, wait: bool) -> io::Result<Option<LabLock>> {
    lock_in(&state_dir(), name, wait)
}

/// A lock file `name` under `state/locks`, taken exclusively (waiting, or not).
pub(crate) fn lock_in(state: &Path, name: &str, wait: bool) -> io::Result<Option<LabLock>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::MetadataExt;
    let dir = state.join("locks");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    let op = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    loop {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        let f = match Flock::lock(f, op) {
            Ok(f) => f,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(e.into()),
        };
        // The holder before us may have removed the file (`LabLock::remove`) while
        // we waited: our lock is then on an unlinked inode that a newcomer would not
        // see, so it protects nothing. Only a lock on the file at the path counts.
        let held = f.metadata()?;
        match std::fs::metadata(&path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                return Ok(Some(LabLock { _f: f, path }));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
}

/// Lock files of labs that have no record, for `clean` to remove (each taken
/// without waiting; a busy one is left). Dot files (`.host.lock`) are not labs'.
pub fn stale_locks(prefix: &str) -> io::Result<Vec<(String, LabLock)>> {
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(state_dir().join("locks")) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e),
    };
    for e in rd {
        let name = e?.file_name().to_string_lossy().into_owned();
        let Some(lab) = name.strip_suffix(".lock") else {
            continue;
        };
        if lab.starts_with('.') || !lab.starts_with(prefix) || check_name(lab).is_err() {
            continue;
        }
        if Record::load(lab)?.is_some() {
            continue;
        }
        if let Some(l) = lock(lab, false)? {
            // Checked again under the lock: an `up` may have recorded it meanwhile.
            if Record::load(lab)?.is_none() {
                v.push((lab.to_string(), l));
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_removed_lock_leaves_no_file() {
        let d = tempfile::tempdir().unwrap();
        let l = lock_in(d.path(), "a.lock", false).unwrap().unwrap();
        assert!(d.path().join("locks/a.lock").exists());
        l.remove();
        assert!(!d.path().join("locks/a.lock").exists());
        // And the name can be locked again.
        assert!(lock_in(d.path(), "a.lock", false).unwrap().is_some());
    }

    #[test]
    fn a_waiter_does_not_trust_a_lock_on_a_removed_file() {
        let d = tempfile::tempdir().unwrap();
        let first = lock_in(d.path(), "b.lock", false).unwrap().unwrap();
        let dir = d.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let l = lock_in(&dir, "b.lock", true).unwrap().unwrap();
            tx.send(()).unwrap();
            // Hold it until the main thread has tried.
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(l);
        });
        // Let the waiter open the old file and block on it (ordering, not timing:
        // if it has not opened yet, it simply finds no file).
        std::thread::sleep(std::time::Duration::from_millis(200));
        first.remove();
        rx.recv().unwrap();
        // The waiter's lock must be on the file at the path: a newcomer is refused.
        // (Trusting the lock on the unlinked inode, the newcomer would create a
        // new file and get a second lock on the same lab.)
        assert!(lock_in(d.path(), "b.lock", false).unwrap().is_none());
        waiter.join().unwrap();
    }
}
