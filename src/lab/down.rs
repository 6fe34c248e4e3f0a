//! `down`: take a lab down, everything its record owns and nothing else.

use super::*;

/// What `down` removed and stopped.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let r: nslab::DownReport = lab.down()?;
/// println!("{} namespaces removed in {:.2} s", r.namespaces.len(), r.seconds);
/// for w in &r.warnings {
///     eprintln!("warning: {w}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    pub lab: String,
    pub was_up: bool,
    pub namespaces: Vec<String>,
    pub host_links: Vec<String>,
    pub stopped: Vec<procs::ProcInfo>,
    pub killed: Vec<procs::ProcInfo>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

/// How long `down` waits for the kernel to finish removing the lab's interfaces.
const DOWN_WAIT: Duration = Duration::from_secs(60);

/// Take a lab down: everything its record owns, nothing else.
pub fn down(lab: &str, kill: bool) -> Result<DownReport> {
    if let Some(p) = topology::validate::name_problem(lab) {
        return Err(Error::Usage(format!("--lab {lab:?}: lab name {p}")));
    }
    require_caps("down")?;
    // A lab that is not up: nothing to lock (no lock file for a typo).
    let lock = if Record::load(lab)
        .map_err(Error::io(format!("read the record of lab {lab}")))?
        .is_some()
    {
        Some(lock_lab(lab)?)
    } else {
        None
    };
    let rep = down_locked(lab, kill, lock.as_ref())?;
    // The lab is gone: its lock file goes too (they would pile up otherwise).
    if let Some(l) = lock
        && matches!(Record::load(lab), Ok(None))
    {
        l.remove();
    }
    Ok(rep)
}

/// `down` for a caller that holds the lab's lock already (`clean`).
pub fn down_locked(lab: &str, kill: bool, _lock: Option<&record::LabLock>) -> Result<DownReport> {
    crate::timing::mark("start");
    let t0 = Instant::now();
    let mut rep = DownReport::nothing(lab);
    let Some(rec) =
        Record::load(lab).map_err(Error::io(format!("read the record of lab {lab}")))?
    else {
        rep.seconds = t0.elapsed().as_secs_f64();
        return Ok(rep);
    };
    rep.was_up = true;

    // Open every node namespace once: its inode finds the processes in it, and the
    // fd keeps it alive until all of them are let go together (see below).
    let mark = topology::mark_for(lab);
    let sandbox_host = rec.sandbox.then(|| {
        rec.model
            .as_ref()
            .and_then(|m| m.host_ns())
            .unwrap_or_else(|| topology::sandbox_host_ns(lab, ""))
    });
    // Descriptors for namespaces: a lab bigger than the budget is opened (and
    // let go) in batches.
    let batch = netns::fd_budget().saturating_sub(8).max(8);
    let (held, foreign, our_veths) = sort_namespaces(&rec, lab, &mark, batch, &mut rep);
    let nodes = nodes_to_remove(&rec, sandbox_host.as_ref(), &foreign, &held);
    let inos = inodes(&held);

    stop_processes(&rec, lab, kill, &inos, &mut rep)?;

    crate::timing::mark("processes");
    // The namespace that played the host: in host mode it holds bridges and veth ends.
    let mut host = open_host(&rec, lab, sandbox_host.as_ref(), &foreign, &mut rep);

    // The host's forwarding first, while the kernel is not busy tearing down (a
    // write to ip_forward waits for the lock the teardown holds).
    if !rec.sandbox
        && let Some(h) = host.as_ref()
    {
        release_forwarding(h, lab, &rec, &mut rep);
    }
    // Subscribe to link events before deleting anything, so none is missed.
    let mut watch = host.as_ref().and_then(|h| {
        netns::run_in(&h.file, crate::kernel::watch::LinkWatch::new)
            .ok()
            .and_then(|r| r.ok())
    });
    let (bridges, bridge_sock) = prepare_bridges(host.as_mut(), &rec, &mark);
    let ours = |l: &ObsLink| {
        let peer_of_ours = l
            .peer_index
            .is_some_and(|p| our_veths.contains(&(p, l.index)));
        (l.alias.as_deref() == Some(mark.as_str()) || peer_of_ours)
            && (rec.sandbox || rec.host_links.contains(&l.name))
    };
    let host_veths = |h: &mut Conn| -> BTreeSet<String> {
        observe::links_of_kind(&mut h.nl, InfoKind::Veth)
            .map(|ls| ls.into_iter().filter(|l| ours(l)).map(|l| l.name).collect())
            .unwrap_or_default()
    };
    crate::timing::mark("prepare");

    // What to wait for: the lab's veth ends in the host. Nothing is gone yet,
    // and the watch will see each removal after this.
    let mut left: BTreeSet<String> = host.as_mut().map(host_veths).unwrap_or_default();
    // A cable between two bridges has both ends in the host: no node namespace
    // takes it along. In a sandbox it dies with the host namespace; in host
    // mode one end is deleted (the peer goes with it) beside the bridges.
    let mut bridges = bridges;
    // A machine's VXLAN bridge ports (labs over several machines) live in the
    // host: deleted by name before their bridges, when marked and recorded.
    if !rec.sandbox
        && let Some(h) = host.as_mut()
    {
        for v in observe::links_of_kind(&mut h.nl, InfoKind::Vxlan).unwrap_or_default() {
            if v.alias.as_deref() == Some(mark.as_str()) && rec.host_links.contains(&v.name) {
                bridges.insert(0, v.name);
            }
        }
    }
    for l in rec.model.iter().flat_map(|m| &m.links) {
        if l.a.bridge.is_some() && l.b.bridge.is_some() {
            let (a, b) = (&l.a.ifname, &l.b.ifname);
            if !rec.sandbox && left.contains(a) {
                bridges.insert(0, a.clone());
            }
            left.remove(a);
            left.remove(b);
        }
    }
    crate::timing::mark("list veths");
    let cfg = &crate::config::inherit();
    let deleted_bridges = std::thread::scope(|s| -> Result<Vec<(String, Option<String>)>> {
        // Unmount every node namespace first (the fds keep them alive), then let
        // go of all at once (release_at_once). The unmounts come first and
        // alone: each waits for an RCU grace period after dropping the mount
        // lock, and those grow long while the kernel is busy elsewhere; from a
        // few threads the waits overlap.
        // Past the descriptor budget, batch by batch: each batch reopened
        // (the same namespaces only), unmounted and let go.
        let held_names: BTreeSet<&String> = held.iter().map(|h| h.name).collect();
        let node_set: BTreeSet<&String> = nodes.iter().copied().collect();
        let stale: Vec<&String> = nodes
            .iter()
            .filter(|n| !held_names.contains(*n))
            .copied()
            .collect();
        unmount_nodes(&stale)?;
        let mut held = held;
        while !held.is_empty() {
            let rest = held.split_off(batch.min(held.len()));
            let part = std::mem::replace(&mut held, rest);
            let files = reopen(part, &mut rep);
            // The sandbox's host is held too (let go with its batch) but
            // unmounted only after the nodes are gone.
            let names: Vec<&String> = files
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| node_set.contains(n))
                .collect();
            unmount_nodes(&names)?;
            release_at_once(files);
        }
        rep.namespaces.extend(nodes.iter().map(|n| (*n).clone()));
        crate::timing::mark("release namespaces");
        // A bridge has no namespace to die with; it goes alongside.
        let bridge_thread = bridge_sock.map(|nl| {
            s.spawn(|| {
                let _cfg = cfg.enter();
                delete_bridges(nl, &bridges)
            })
        });
        // The files go meanwhile (file system work; the kernel's is elsewhere).
        let files = s.spawn(|| {
            let _cfg = cfg.enter();
            remove_node_files(&nodes)
        });
        if let Some(h) = host.as_mut() {
            wait_veths_gone(h, watch.as_mut(), &mut left, &host_veths, &mut rep);
        }
        rep.warnings.extend(files.join().unwrap_or_default());
        Ok(bridge_thread
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default())
    })?;
    crate::timing::mark("wait for the kernel");
    finish_host(host.as_ref(), &rec, &mark, deleted_bridges, &mut rep);
    crate::timing::mark("bridges and nft");
    drop(watch);
    drop(host);
    if let Some(h) = sandbox_host.filter(|h| rec.namespaces.contains(h) && !foreign.contains(h)) {
        netns::delete(&h).map_err(Error::io(format!("delete namespace {h}")))?;
        apply::remove_etc(&h).map_err(Error::io(format!("remove /etc/netns/{h}")))?;
        rep.namespaces.push(h);
    }
    remove_lab_files(lab, &rec)?;
    rep.seconds = t0.elapsed().as_secs_f64();
    Ok(rep)
}

/// Report the bridges deleted (or why not), delete the lab's nftables tables,
/// and report the recorded host links as gone.
fn finish_host(
    host: Option<&Conn>,
    rec: &Record,
    mark: &str,
    deleted_bridges: Vec<(String, Option<String>)>,
    rep: &mut DownReport,
) {
    for (b, err) in deleted_bridges {
        match err {
            None => rep.host_links.push(b),
            Some(e) => rep.warnings.push(e),
        }
    }
    if let Some(h) = host {
        if !rec.sandbox {
            delete_nft_tables(h, rec, mark, rep);
            rep.warnings
                .extend(crate::runtime::shape::remove_host_table(rec));
            rep.warnings
                .extend(crate::runtime::publish::remove(&h.file, rec));
            rep.warnings
                .extend(crate::runtime::firewall::remove(&h.file, rec));
        }
        for n in &rec.host_links {
            if !rep.host_links.contains(n) {
                rep.host_links.push(n.clone());
            }
        }
    }
}

/// The node namespaces to remove: ours, and stale files of ours (empty, never
/// mounted: an `up` killed between making the file and mounting it).
fn nodes_to_remove<'a>(
    rec: &'a Record,
    sandbox_host: Option<&String>,
    foreign: &BTreeSet<&'a String>,
    held: &[Held<'a>],
) -> Vec<&'a String> {
    let held: BTreeSet<&String> = held.iter().map(|h| h.name).collect();
    rec.namespaces
        .iter()
        .filter(|n| Some(*n) != sandbox_host && !foreign.contains(n))
        .filter(|n| held.contains(n) || netns::is_stale_file(n))
        .collect()
}

/// The inode of each namespace held open, which finds the processes in it.
fn inodes(held: &[Held]) -> HashMap<u64, String> {
    held.iter().map(|h| (h.id.ino, h.name.clone())).collect()
}

/// A namespace of the lab, checked as ours: its identity, and its fd while
/// the whole lab fits in the descriptor budget (else it is reopened when its
/// batch goes).
struct Held<'a> {
    name: &'a String,
    id: netns::NsId,
    file: Option<std::fs::File>,
}

/// The fds of a batch of namespaces: those still open, the others reopened
/// if they are still the namespace that was checked (one re-made meanwhile
/// under the name is someone else's: left alone, with a warning).
fn reopen<'a>(part: Vec<Held<'a>>, rep: &mut DownReport) -> Vec<(&'a String, std::fs::File)> {
    part.into_iter()
        .filter_map(|h| {
            if let Some(f) = h.file {
                return Some((h.name, f));
            }
            let f = netns::open(h.name).ok()?;
            if netns::id_of(&f).ok() == Some(h.id) {
                Some((h.name, f))
            } else {
                rep.warnings.push(format!(
                    "namespace {} was re-made by someone else while the lab went down: left alone",
                    h.name
                ));
                None
            }
        })
        .collect()
}

/// The lab's bridges to delete (none in a sandbox: they die with its host
/// namespace), with snooping off, and a socket in the host to delete them by.
fn prepare_bridges(
    host: Option<&mut Conn>,
    rec: &Record,
    mark: &str,
) -> (Vec<String>, Option<crate::kernel::netlink::Rtnl>) {
    let Some(h) = host else {
        return (Vec::new(), None);
    };
    let lab_bridges = bridges_of_lab(h, rec, mark);
    // Each port leaving a bridge makes the kernel walk every other port and, with
    // multicast snooping on, re-arm each one's multicast timers: quadratic, and at
    // 1000 ports the biggest (and most variable) part of the teardown. The
    // bridges go anyway, so snooping goes off first (one cheap request each).
    snooping_off(h, &lab_bridges);
    // Bridges of the sandbox die with its host namespace.
    let bridges: Vec<String> = if rec.sandbox { vec![] } else { lab_bridges };
    let bridge_sock = if bridges.is_empty() && !has_bridge_cables(rec) {
        None
    } else {
        netns::run_in(&h.file, crate::kernel::netlink::Rtnl::new)
            .ok()
            .and_then(|r| r.ok())
    };
    (bridges, bridge_sock)
}

/// Does the lab (host mode) have cables between two bridges, to delete by hand?
fn has_bridge_cables(rec: &Record) -> bool {
    !rec.sandbox
        && rec
            .model
            .iter()
            .flat_map(|m| &m.links)
            .any(|l| l.a.bridge.is_some() && l.b.bridge.is_some())
}

/// The lab's files (program logs, hosts, resolv.conf), then its record.
fn remove_lab_files(lab: &str, rec: &Record) -> Result<()> {
    let _ = std::fs::remove_dir_all(crate::programs::log_dir(lab));
    let _ = std::fs::remove_file(record::hosts_path(lab));
    let _ = std::fs::remove_file(record::resolv_path(lab));
    rec.remove().map_err(Error::io("remove the lab's record"))
}

/// Let go of the namespaces (drop their fds) so that the kernel frees them in one
/// cleanup_net run. The cleanup worker starts as soon as the first namespace is
/// queued, and a run takes only what was queued when it started: closing 1000 fds
/// takes ~1 ms, enough for the worker to start on the other CPU with a few, and
/// the rest then waits for that run to end (its RCU waits included, ~40 ms). So
/// for that millisecond every CPU runs a real-time (SCHED_FIFO) thread of ours,
/// which the worker cannot preempt. Measured (interleaved runs, 8 each): `down`
/// at N=100 0.108 s -> 0.068 s, at N=1000 0.63 s -> 0.57 s. Without the right to
/// real-time scheduling, or with more CPUs than spinners, the fds just close.
fn release_at_once<T: Send>(held: Vec<T>) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    // SAFETY (both): sched_setscheduler on the calling thread, with a valid param.
    let fifo = || unsafe {
        let p = libc::sched_param { sched_priority: 1 };
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) == 0
    };
    let normal = || unsafe {
        let p = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &p);
    };
    const SPIN_LIMIT: Duration = Duration::from_millis(50);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(16);
    let done = AtomicBool::new(false);
    let ready = AtomicUsize::new(0);
    let cfg = &crate::config::inherit();
    std::thread::scope(|s| {
        for _ in 1..cpus {
            s.spawn(|| {
                let _cfg = cfg.enter();
                let rt = fifo();
                ready.fetch_add(1, Ordering::SeqCst);
                // Bounded: a real-time thread must never spin for long.
                let t = Instant::now();
                while rt && !done.load(Ordering::Relaxed) && t.elapsed() < SPIN_LIMIT {
                    std::hint::spin_loop();
                }
                if rt {
                    normal();
                }
            });
        }
        let t = Instant::now();
        while ready.load(Ordering::SeqCst) < cpus - 1 && t.elapsed() < SPIN_LIMIT {
            std::hint::spin_loop();
        }
        let rt = fifo();
        drop(held);
        done.store(true, Ordering::Relaxed);
        if rt {
            normal();
        }
    });
}

/// The lab's recorded namespaces, checked: those whose lo carries the mark
/// (held: open if all fit in `batch` descriptors), the others (left alone, with a
/// warning), and the (index, peer index) of the veths in ours. Read `batch`
/// namespaces at a time.
#[allow(clippy::type_complexity)]
fn sort_namespaces<'a>(
    rec: &'a Record,
    lab: &str,
    mark: &str,
    batch: usize,
    rep: &mut DownReport,
) -> (Vec<Held<'a>>, BTreeSet<&'a String>, BTreeSet<(u32, u32)>) {
    let keep_open = rec.namespaces.len() <= batch;
    let all: Vec<&String> = rec.namespaces.iter().collect();
    let mut held: Vec<Held> = Vec::new();
    let mut foreign: BTreeSet<&String> = BTreeSet::new();
    // (index, peer index) of the veths in our namespaces: a recorded host end
    // not yet marked (a crash right after its creation) is ours if it is the peer
    // of one of them.
    let mut our_veths: BTreeSet<(u32, u32)> = BTreeSet::new();
    for part in all.chunks(batch) {
        let opened: Vec<(&String, std::fs::File)> = part
            .iter()
            .filter_map(|ns| netns::open(ns).ok().map(|f| (*ns, f)))
            .collect();
        // Ours only if lo carries the mark (checked on the object, not the name): a
        // namespace re-made by hand under a node's name is left alone.
        let listed = conn::links_in(&opened.iter().map(|(_, f)| f).collect::<Vec<_>>());
        for ((ns, f), links) in opened.into_iter().zip(listed) {
            let links = links.unwrap_or_default();
            let alias = links
                .iter()
                .find(|l| l.name == "lo")
                .and_then(|l| l.alias.as_deref());
            match netns::id_of(&f) {
                Ok(id) if alias == Some(mark) => {
                    our_veths.extend(
                        links
                            .iter()
                            .filter(|l| l.kind.as_deref() == Some("veth"))
                            .filter_map(|l| l.peer_index.map(|p| (l.index, p))),
                    );
                    held.push(Held {
                        name: ns,
                        id,
                        file: keep_open.then_some(f),
                    });
                }
                _ => {
                    rep.warnings.push(format!(
                        "namespace {ns} is not lab {lab}'s (its lo does not carry the mark {mark}; re-made by someone else?): left alone"
                    ));
                    // The lab's own links under /etc/netns/NS go (only links into nslab's
                    // state directory; anything else there is kept).
                    let _ = apply::remove_etc(ns.as_str());
                    foreign.insert(ns);
                }
            }
        }
    }
    (held, foreign, our_veths)
}

/// Processes in the lab's namespaces: ours are stopped, others block `down`
/// (or are killed with `kill`); recorded programs are stopped wherever they run.
fn stop_processes(
    rec: &Record,
    lab: &str,
    kill: bool,
    inos: &HashMap<u64, String>,
    rep: &mut DownReport,
) -> Result<()> {
    // Processes in the lab's namespaces: ours are stopped, others block `down`.
    let found = procs::in_namespaces(inos).map_err(Error::io("list processes"))?;
    // Ours: anything in the lab's cgroup (programs nslab started and whatever
    // they started, recorded or not), or, without cgroups, a program nslab
    // started or one of its children (same session).
    let machine = rec.model.as_ref().and_then(|m| m.machine.as_deref());
    let lab_cg = crate::kernel::cgroup::lab_dir(&crate::programs::cgroup_key(lab, machine))
        .filter(|d| d.exists());
    let (ours, mut others): (Vec<_>, Vec<_>) = found.into_iter().partition(|(_, p)| {
        lab_cg
            .as_ref()
            .is_some_and(|d| crate::kernel::cgroup::contains(d, p.pid))
            || rec.processes.iter().any(|r| {
                r.pid > 0
                    && ((r.pid == p.pid && (r.start_time == p.start_time || r.start_time == 0))
                        || (p.session == r.pid && crate::programs::alive(r)))
            })
    });
    // One that exited while we looked (its cgroup could not be read any more) is
    // nobody's problem.
    others.retain(|(_, p)| {
        procs::stat(p.pid).is_some_and(|s| s.start_time == p.start_time && !s.gone())
    });
    if !others.is_empty() && !kill {
        let list: Vec<String> = others
            .iter()
            .map(|(ns, p)| format!("  pid {} in {ns}: {}", p.pid, p.command))
            .collect();
        return Err(Error::Failed(format!(
            "lab {lab} has processes that nslab did not start:\n{}\nStop them, or run `nslab down --kill` to kill them. Nothing was changed.",
            list.join("\n")
        )));
    }
    let grace = Duration::from_secs(3);
    let mut reported = stop_recorded(rec, grace, rep);
    // Whatever else is in the lab's cgroup (a program an `up` started and was
    // killed before recording).
    if let Some(d) = &lab_cg {
        match crate::kernel::cgroup::stop(d, grace) {
            Ok(pids) => {
                for pid in pids {
                    if !reported.contains(&pid) && !ours.iter().any(|(_, p)| p.pid == pid) {
                        reported.insert(pid);
                        rep.stopped.push(procs::ProcInfo {
                            pid,
                            start_time: 0,
                            command: "(in the lab's cgroup)".into(),
                            session: 0,
                        });
                    }
                }
            }
            Err(e) => rep.warnings.push(format!("stop the lab's cgroup: {e}")),
        }
    }
    for (_, p) in &ours {
        if !reported.insert(p.pid) {
            continue; // stopped above, as a recorded program
        }
        procs::stop(p.pid, p.start_time, grace);
        rep.stopped.push(p.clone());
    }
    for (_, p) in &others {
        procs::stop(p.pid, p.start_time, grace);
        rep.killed.push(p.clone());
    }
    Ok(())
}

/// Recorded programs may live outside the lab's namespaces and still hold
/// sockets in them (`serve --detach`): stop every one of them, with what it
/// started (its cgroup). Returns the pids reported as stopped.
fn stop_recorded(
    rec: &Record,
    grace: Duration,
    rep: &mut DownReport,
) -> std::collections::HashSet<i32> {
    let mut reported: std::collections::HashSet<i32> = std::collections::HashSet::new();
    for r in &rec.processes {
        let running = crate::programs::alive(r);
        // A program whose pid was never recorded (`up` killed right after
        // starting it): the first process of its cgroup.
        let pid = match (&r.cgroup, r.pid) {
            (Some(cg), 0) => crate::kernel::cgroup::pids(Path::new(cg))
                .first()
                .copied()
                .unwrap_or(0),
            _ => r.pid,
        };
        match crate::programs::stop(r, grace) {
            Ok(_) if running => {
                reported.insert(pid);
                rep.stopped.push(procs::ProcInfo {
                    pid,
                    start_time: r.start_time,
                    command: r.command.clone(),
                    session: r.pid,
                });
            }
            Ok(_) => {}
            Err(e) => rep.warnings.push(e.to_string()),
        }
    }
    reported
}

/// The lab's nftables tables in the host, and a why-not trace table left behind
/// (a crash, kill -9).
fn delete_nft_tables(h: &Conn, rec: &Record, mark: &str, rep: &mut DownReport) {
    for t in &rec.nft_tables {
        if let Err(e) = crate::kernel::nft::socket_in(&h.file)
            .and_then(|mut s| s.delete_table_if_marked(t, mark))
        {
            rep.warnings.push(format!("delete nftables table {t}: {e}"));
        }
    }
    // A why-not trace cut short (a crash, kill -9) leaves its marked tables.
    let trace = crate::probe::why::TRACE_TABLE;
    if let Err(e) =
        crate::kernel::nft::socket_in(&h.file).and_then(|mut s| s.stop_trace(trace, mark))
    {
        rep.warnings
            .push(format!("delete nftables table {trace}: {e}"));
    }
}

/// The namespace that played the host: in host mode it holds bridges and veth
/// ends; a sandbox's host is kept open while the nodes go (their veth peers live
/// in it, so `down` can see when the kernel has really finished).
fn open_host(
    rec: &Record,
    lab: &str,
    sandbox_host: Option<&String>,
    foreign: &BTreeSet<&String>,
    rep: &mut DownReport,
) -> Option<Conn> {
    let mut host: Option<Conn> = None;
    if !rec.sandbox {
        match conn::find_by_id(rec.host_ns) {
            Ok(Some((_, c))) => host = Some(c),
            Ok(None) => rep.warnings.push(format!("the network namespace lab {lab} was brought up in is gone; its interfaces went with it")),
            Err(e) => rep.warnings.push(format!("cannot open the lab's host namespace: {e}")),
        }
    }
    if let Some(h) = sandbox_host.filter(|h| netns::exists(h) && !foreign.contains(*h)) {
        // Keep the sandbox host open while the nodes go: their veth peers live in
        // it, so we can see when the kernel has really finished.
        host = conn::open(h).ok();
    }
    host
}

/// The lab's bridges in the host: marked, or recorded with the MAC they were
/// made with (a crash before the mark was set).
fn bridges_of_lab(h: &mut Conn, rec: &Record, mark: &str) -> Vec<String> {
    observe::links_of_kind(&mut h.nl, InfoKind::Bridge)
        .unwrap_or_default()
        .into_iter()
        .filter(|l| {
            l.alias.as_deref() == Some(mark)
                || (rec.host_links.contains(&l.name)
                    && l.mac.is_some()
                    && rec.bridge_macs.get(&l.name) == l.mac.as_ref())
        })
        .map(|l| l.name)
        .collect()
}

/// Unmount every node namespace (the fds in `held` keep them alive), from a few
/// threads: each unmount waits for an RCU grace period after dropping the mount
/// lock, and those grow long while the kernel is busy elsewhere; on several
/// threads the waits overlap.
fn unmount_nodes(nodes: &[&String]) -> Result<()> {
    let cfg = &crate::config::inherit();
    std::thread::scope(|s| {
        let chunk = nodes.len().div_ceil(4).max(1);
        let detached: Vec<Result<()>> = nodes
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> Result<()> {
                    let _cfg = cfg.enter();
                    for ns in part {
                        netns::detach(ns).map_err(Error::io(format!("delete namespace {ns}")))?;
                    }
                    Ok(())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Failed("unmount thread panicked".into())))
            })
            .collect();
        detached.into_iter().collect::<Result<()>>()
    })
}

/// Wait until the lab's veth ends in the host (`left`) are gone: on the link
/// events of `watch`, else (or after losing some) by looking, up to DOWN_WAIT.
fn wait_veths_gone(
    h: &mut Conn,
    watch: Option<&mut crate::kernel::watch::LinkWatch>,
    left: &mut BTreeSet<String>,
    host_veths: &dyn Fn(&mut Conn) -> BTreeSet<String>,
    rep: &mut DownReport,
) {
    if let Some(w) = watch {
        match w.wait_gone(left.clone(), DOWN_WAIT) {
            crate::kernel::watch::Waited::AllGone => left.clear(),
            crate::kernel::watch::Waited::Overflow(l)
            | crate::kernel::watch::Waited::TimedOut(l) => *left = l,
        }
    }
    let until = Instant::now() + DOWN_WAIT;
    while !left.is_empty() {
        let now = host_veths(h);
        left.retain(|n| now.contains(n));
        if left.is_empty() {
            break;
        }
        if Instant::now() > until {
            rep.warnings.push(format!(
                "the kernel had not finished removing {} after {DOWN_WAIT:?}",
                crate::util::names(&left.iter().collect::<Vec<_>>())
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl DownReport {
    /// The report of a lab that was not up.
    fn nothing(lab: &str) -> DownReport {
        DownReport {
            lab: lab.into(),
            was_up: false,
            namespaces: vec![],
            host_links: vec![],
            stopped: vec![],
            killed: vec![],
            warnings: vec![],
            seconds: 0.0,
        }
    }
}

/// Host mode: the host's forwarding, shared by labs, restored by the last one.
fn release_forwarding(h: &Conn, lab: &str, rec: &Record, rep: &mut DownReport) {
    if let Err(e) = crate::hostfwd::release(lab, rec.host_ns, &crate::hostfwd::setter(&h.file)) {
        rep.warnings
            .push(format!("restore the host's IPv4 forwarding: {e}"));
    }
    if let Err(e) = crate::hostfwd::release_keys(lab, rec.host_ns, &h.file, &|_| true) {
        rep.warnings
            .push(format!("restore the host's sysctls: {e}"));
    }
}

/// Multicast snooping off on the lab's bridges (one cheap request each).
fn snooping_off(h: &mut Conn, bridges: &[String]) {
    for b in bridges {
        let _ = h.nl.request(
            msg::bridge_snooping(b, false),
            0,
            format!("turn off multicast snooping on {b}"),
        );
    }
}

/// Delete the lab's bridges in the host (one already gone is no error): each
/// deleted bridge, with the error if it could not be.
fn delete_bridges(
    mut nl: crate::kernel::netlink::Rtnl,
    bridges: &[String],
) -> Vec<(String, Option<String>)> {
    bridges
        .iter()
        .filter_map(
            |b| match nl.request(msg::del_link(b), 0, format!("delete bridge {b}")) {
                Ok(()) => Some((b.clone(), None)),
                Err(e) if e.errno == libc::ENODEV => None,
                Err(e) => Some((b.clone(), Some(e.to_string()))),
            },
        )
        .collect()
}

/// The node namespaces' files (/run/netns/NS, /etc/netns/NS): what could not be
/// removed.
fn remove_node_files(nodes: &[&String]) -> Vec<String> {
    let mut errs = vec![];
    for ns in nodes {
        if let Err(e) = netns::remove_file(ns) {
            errs.push(format!("remove {}: {e}", netns::path(ns).display()));
        }
        if let Err(e) = apply::remove_etc(ns) {
            errs.push(format!("remove /etc/netns/{ns}: {e}"));
        }
    }
    errs
}
