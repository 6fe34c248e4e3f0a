//! Keeping the machine clean: list labs, take them all down, find orphans (nslab's
//! marked objects whose record was lost) and stale records. Nothing unmarked and
//! unrecorded is ever removed.

use crate::error::{Error, Result, require_caps};
use crate::kernel::{conn, netns, nft, observe};
use crate::lab;
use crate::record::{self, Record};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Serialize)]
pub struct LabInfo {
    pub lab: String,
    pub mode: &'static str,
    pub nodes: usize,
    /// "up", "partial" (an `up` did not finish), "stale" (its namespaces are gone,
    /// e.g. after a reboot) or "degraded" (some namespaces are gone).
    pub state: &'static str,
    pub file: Option<String>,
    pub namespaces: usize,
    pub missing_namespaces: Vec<String>,
    /// For a "corrupt" record: what is wrong, naming the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

pub fn info(rec: &Record) -> LabInfo {
    let missing: Vec<String> = rec
        .namespaces
        .iter()
        .filter(|n| !netns::exists(n))
        .cloned()
        .collect();
    let state = if !rec.namespaces.is_empty() && missing.len() == rec.namespaces.len() {
        "stale"
    } else if rec.model.is_none() {
        "partial"
    } else if !missing.is_empty() {
        "degraded"
    } else {
        "up"
    };
    LabInfo {
        lab: rec.lab.clone(),
        mode: if rec.sandbox { "sandbox" } else { "host" },
        nodes: rec.model.as_ref().map(|m| m.nodes.len()).unwrap_or(0),
        state,
        file: rec.file.clone(),
        namespaces: rec.namespaces.len(),
        missing_namespaces: missing,
        problem: None,
    }
}

/// Every lab with a record.
pub fn ls() -> Result<Vec<LabInfo>> {
    let mut out = Vec::new();
    for name in record::list().map_err(Error::io("list labs"))? {
        match Record::load(&name) {
            Ok(Some(r)) => out.push(info(&r)),
            Ok(None) => {}
            // Listed, not hidden: the user has to decide what to do with it.
            Err(e) => out.push(LabInfo {
                lab: name.clone(),
                mode: "?",
                nodes: 0,
                state: "corrupt",
                file: None,
                namespaces: 0,
                missing_namespaces: vec![],
                problem: Some(e.to_string()),
            }),
        }
    }
    Ok(out)
}

/// Labs whose name starts with `prefix`.
pub fn labs_with_prefix(prefix: &str) -> Result<Vec<String>> {
    Ok(record::list()
        .map_err(Error::io("list labs"))?
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect())
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanReport {
    pub labs_down: Vec<String>,
    pub orphan_namespaces: Vec<String>,
    pub orphan_interfaces: Vec<String>,
    pub orphan_nft_tables: Vec<String>,
    pub stale_files: Vec<String>,
    pub etc_netns: Vec<String>,
    /// Labs without a record that had turned on the host's forwarding.
    pub forwarding_released: Vec<String>,
    /// Processes of labs without a record, found in the lab's cgroup and stopped
    /// ("PID (lab LAB)"; a machine's part: "PID (lab LAB.M or lab LAB on machine M)").
    pub orphan_processes: Vec<String>,
    /// The cgroups of labs without a record, removed: `nslab/LAB`, a machine's
    /// part `nslab/LAB.M` (with or without processes left in them).
    pub orphan_cgroups: Vec<String>,
    pub errors: Vec<String>,
    /// Labs another nslab was working on (their lock was held): left alone.
    pub busy: Vec<String>,
}

/// The locks `clean` holds, and the labs it found busy.
#[derive(Default)]
struct Locks {
    held: std::collections::HashMap<String, record::LabLock>,
    busy: BTreeSet<String>,
}

impl Locks {
    /// Lock a lab (without waiting); false if another nslab holds it.
    fn take(&mut self, lab: &str) -> bool {
        if self.held.contains_key(lab) {
            return true;
        }
        if self.busy.contains(lab) {
            return false;
        }
        match record::lock(lab, false) {
            Ok(Some(l)) => {
                self.held.insert(lab.to_string(), l);
                true
            }
            Ok(None) => {
                self.busy.insert(lab.to_string());
                false
            }
            // Not a name a lab can have: nothing of nslab's.
            Err(_) => false,
        }
    }
}

fn lab_of_mark(alias: Option<&str>) -> Option<&str> {
    alias?.strip_prefix("nslab:")
}

/// Take down every lab (with `prefix`), then remove orphans: namespaces whose `lo`
/// carries an nslab mark, interfaces and nft tables in this namespace with an nslab
/// mark, hosts files nslab wrote, processes in a lab's cgroup — each only if its
/// lab has no record.
pub fn clean(prefix: &str, kill: bool, dry_run: bool) -> Result<CleanReport> {
    if let Some(p) = crate::topology::validate::prefix_problem(prefix) {
        return Err(Error::Usage(format!("--prefix {prefix:?} {p}")));
    }
    require_caps("clean")?;
    let mut rep = CleanReport::default();
    // Every lab clean touches is locked first, and a lab whose lock another nslab
    // holds is alive (an `up` on its way): left alone, never half-removed.
    let mut locks = Locks::default();
    for l in labs_with_prefix(prefix)? {
        if !locks.take(&l) {
            continue;
        }
        if dry_run {
            rep.labs_down.push(l);
            continue;
        }
        record::remove_temporaries(&l);
        remove_stale_ns_files(&l, &mut rep);
        match lab::down_locked(&l, kill, locks.held.get(&l)) {
            Ok(_) => rep.labs_down.push(l),
            Err(e) => rep.errors.push(format!("lab {l}: {e}")),
        }
    }
    // Host forwarding that labs without a record had turned on.
    if !dry_run {
        match crate::hostfwd::prune(prefix) {
            Ok(v) => {
                rep.forwarding_released = v.into_iter().filter(|l| l.starts_with(prefix)).collect()
            }
            Err(e) => rep.errors.push(format!("host forwarding state: {e}")),
        }
    }
    let recorded: BTreeSet<String> = record::list()
        .map_err(Error::io("list labs"))?
        .into_iter()
        .collect();
    let mut o = Orphans {
        prefix,
        dry_run,
        recorded,
        locks,
        rep,
    };
    o.stop_programs();
    o.delete_namespaces();
    // Interfaces and nft tables in this namespace.
    if let Ok(mut c) = conn::open_current() {
        o.delete_host_links(&mut c);
        o.delete_nft_tables();
    }
    o.remove_lab_files();
    o.remove_etc_links();
    o.remove_stale_locks();
    o.rep.busy = o.locks.busy.into_iter().collect();
    Ok(o.rep)
}

/// Stale files of a recorded lab (a reboot with /run on disk): unmounted,
/// empty files under /run/netns that the record names.
fn remove_stale_ns_files(lab: &str, rep: &mut CleanReport) {
    if let Ok(Some(r)) = Record::load(lab) {
        for ns in &r.namespaces {
            let p = netns::path(ns);
            if p.exists()
                && !netns::is_nsfs(&p)
                && std::fs::metadata(&p).map(|m| m.len() == 0).unwrap_or(false)
                && std::fs::remove_file(&p).is_ok()
            {
                rep.stale_files.push(p.display().to_string());
            }
        }
    }
}

/// Removing what labs without a record left behind.
struct Orphans<'a> {
    prefix: &'a str,
    dry_run: bool,
    recorded: BTreeSet<String>,
    locks: Locks,
    rep: CleanReport,
}

impl Orphans<'_> {
    /// Is this lab's leftover to remove: ours by prefix, without a record, and
    /// locked by us?
    fn orphan(&mut self, lab: &str) -> bool {
        lab.starts_with(self.prefix) && !self.recorded.contains(lab) && self.locks.take(lab)
    }

    /// Programs of labs whose record was lost: everything in the lab's cgroup,
    /// first, while their namespaces still have names. A machine's part has a
    /// cgroup of its own (`LAB.M`, [`crate::programs::cgroup_key`]); a key that
    /// any lab it may belong to has a record for, or that a lab it may belong
    /// to is locked by another nslab for (an `up --machine` on its way), is
    /// left alone.
    fn stop_programs(&mut self) {
        for key in crate::kernel::cgroup::labs() {
            let owners = crate::programs::cgroup_owners(&key);
            if owners.is_empty()
                || !key.starts_with(self.prefix)
                || owners.iter().any(|(l, _)| self.recorded.contains(l))
                || !owners.iter().all(|(l, _)| self.locks.take(l))
            {
                continue;
            }
            let Some(dir) = crate::kernel::cgroup::lab_dir(&key) else {
                continue;
            };
            let whose = owners
                .iter()
                .map(|(l, m)| match m {
                    Some(m) => format!("lab {l} on machine {m}"),
                    None => format!("lab {l}"),
                })
                .collect::<Vec<_>>()
                .join(" or ");
            let pids = crate::kernel::cgroup::pids(&dir);
            if !self.dry_run
                && let Err(e) = crate::kernel::cgroup::stop(&dir, std::time::Duration::from_secs(3))
            {
                self.rep.errors.push(format!("programs of {whose}: {e}"));
                continue;
            }
            self.rep
                .orphan_processes
                .extend(pids.iter().map(|p| format!("{p} ({whose})")));
            self.rep
                .orphan_cgroups
                .push(format!("{}/{key}", crate::kernel::cgroup::TOP));
        }
    }

    /// Namespaces marked by lo's alias.
    fn delete_namespaces(&mut self) {
        let Ok(rd) = std::fs::read_dir(netns::netns_dir()) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !netns::exists(&name) {
                continue;
            }
            let Ok(mut c) = conn::open(&name) else {
                continue;
            };
            let Ok(links) = observe::links(&mut c.nl) else {
                continue;
            };
            drop(c);
            let mark = links
                .iter()
                .find(|l| l.name == "lo")
                .and_then(|l| lab_of_mark(l.alias.as_deref()).map(String::from));
            if let Some(labname) = mark.filter(|l| self.orphan(l)) {
                if !self.dry_run {
                    if let Err(e) = netns::delete(&name) {
                        self.rep.errors.push(format!("namespace {name}: {e}"));
                        continue;
                    }
                    let _ = crate::apply::remove_etc(&name);
                }
                self.rep
                    .orphan_namespaces
                    .push(format!("{name} (lab {labname})"));
            }
        }
    }

    /// Marked interfaces in this namespace.
    fn delete_host_links(&mut self, c: &mut conn::Conn) {
        let Ok(links) = observe::links(&mut c.nl) else {
            return;
        };
        // Bridges first; veth ends whose peer died with a namespace are gone already.
        let mut v: Vec<_> = links
            .iter()
            .filter(|l| lab_of_mark(l.alias.as_deref()).is_some_and(|lab| self.orphan(lab)))
            .collect();
        v.sort_by_key(|l| l.kind.as_deref() != Some("bridge"));
        for l in v {
            if !self.dry_run {
                match c.nl.request(
                    crate::kernel::msg::del_link(&l.name),
                    0,
                    format!("delete {}", l.name),
                ) {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::ENODEV => {}
                    Err(e) => {
                        self.rep.errors.push(e.to_string());
                        continue;
                    }
                }
            }
            self.rep.orphan_interfaces.push(format!(
                "{} (lab {})",
                l.name,
                lab_of_mark(l.alias.as_deref()).unwrap_or("")
            ));
        }
    }

    /// Marked nftables tables in this namespace.
    fn delete_nft_tables(&mut self) {
        let Ok(mut s) = nft::NftSocket::new() else {
            return;
        };
        let Ok(tables) = s.list_tables() else {
            return;
        };
        for t in tables {
            let Some(labname) = lab_of_mark(t.comment.as_deref()).map(String::from) else {
                continue;
            };
            if !self.orphan(&labname) {
                continue;
            }
            let mark = crate::topology::mark_for(&labname);
            // ip: the NAT table of versions before the inet one; inet: the NAT table,
            // or a host-mode loss table of `nslab shape`.
            let delete = match t.family {
                nft::Family::Ip => nft::NftSocket::delete_table_if_marked,
                nft::Family::Inet => nft::NftSocket::delete_drop_table,
                _ => continue,
            };
            if !self.dry_run
                && let Err(e) = delete(&mut s, &t.name, &mark)
            {
                self.rep
                    .errors
                    .push(format!("nftables table {}: {e}", t.name));
                continue;
            }
            self.rep
                .orphan_nft_tables
                .push(format!("{} (lab {labname})", t.name));
        }
    }

    /// The lab files (hosts, resolv.conf) and program logs of labs whose record
    /// was lost: one file, or for logs one folder, per lab, named after it.
    fn remove_lab_files(&mut self) {
        for sub in ["hosts", "resolv", "logs"] {
            let Ok(rd) = std::fs::read_dir(record::state_dir().join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let labname = e.file_name().to_string_lossy().into_owned();
                if !self.orphan(&labname) {
                    continue;
                }
                if !self.dry_run {
                    let _ = if sub == "logs" {
                        std::fs::remove_dir_all(e.path())
                    } else {
                        std::fs::remove_file(e.path())
                    };
                }
                if sub != "logs" {
                    self.rep.etc_netns.push(e.path().display().to_string());
                }
            }
        }
    }

    /// Lock files of labs that have no record (a failed `up`, or a `down` from
    /// before locks were removed): nslab's own bookkeeping, removed silently.
    fn remove_stale_locks(&mut self) {
        if self.dry_run {
            return;
        }
        for (lab, l) in std::mem::take(&mut self.locks.held) {
            if matches!(Record::load(&lab), Ok(None)) {
                l.remove();
            }
        }
        // The ones clean did not touch (locks it held were released above).
        if let Ok(v) = record::stale_locks(self.prefix) {
            for (_, l) in v {
                l.remove();
            }
        }
    }

    /// Hosts links nslab wrote for namespaces that are gone.
    fn remove_etc_links(&mut self) {
        let Ok(rd) = std::fs::read_dir("/etc/netns") else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // nslab's: a link into its hosts directory (named after the lab).
            let hosts_dir = record::state_dir().join("hosts");
            let resolv_dir = record::state_dir().join("resolv");
            let Some(labname) = std::fs::read_link(e.path().join("hosts"))
                .ok()
                .filter(|t| t.parent() == Some(hosts_dir.as_path()))
                .or_else(|| {
                    std::fs::read_link(e.path().join("resolv.conf"))
                        .ok()
                        .filter(|t| t.parent() == Some(resolv_dir.as_path()))
                })
                .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
            else {
                continue;
            };
            if self.orphan(&labname) && !netns::exists(&name) {
                if !self.dry_run {
                    let _ = crate::apply::remove_etc(&name);
                }
                self.rep.etc_netns.push(format!("/etc/netns/{name}"));
            }
        }
    }
}
