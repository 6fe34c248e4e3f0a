//! The library facade: bring a lab up, take it down, compare it with the kernel.

use crate::apply::{self, Intent, Kernel};
use crate::error::{Error, Result, require_caps};
use crate::kernel::conn::{self, Conn};
use crate::kernel::msg;
use crate::kernel::netns;
use crate::kernel::observe::{self, NsState, ObsLink};
use crate::kernel::procs;
use crate::plan::{self, Ns, NsObs, Observed, Op};
use crate::record::{self, Record};
use crate::topology::{self, Lab, Place};
use ipnet::IpNet;
use netlink_packet_route::link::InfoKind;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

pub mod places;
use places::CaptureSpec;
pub use places::parse_place;

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub prefix: String,
    pub sandbox: bool,
    /// Allow host-mode addresses that overlap routes of interfaces nslab does not own.
    pub force: bool,
    /// Crash, refusal and pause points for tests.
    pub hooks: TestHooks,
}

/// Points where tests make `up` stop, fail or wait, so crashes and races are
/// deterministic. The CLI sets them from `NSLAB_TEST_*`; the library reads no
/// environment.
#[derive(Debug, Clone, Default)]
pub struct TestHooks {
    /// Stop after this many kernel operations, as if killed: nothing is rolled back.
    pub fail_after: Option<usize>,
    /// After this many kernel operations, fail as if the kernel refused the next
    /// one: what a failed `up` does then (roll back, or put the lab back) runs.
    pub refuse_after: Option<usize>,
    /// Stop the process (SIGSTOP) at this point until it gets SIGCONT: `planned`
    /// (the plan is made, nothing changed yet), `applied` (the kernel has the new
    /// lab, the record does not).
    pub pause_at: Option<String>,
}

impl TestHooks {
    fn pause(&self, point: &str) {
        if self.pause_at.as_deref() == Some(point) {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    pub lab: String,
    pub sandbox: bool,
    pub changed: bool,
    pub ops: Vec<Op>,
    /// Things found that the lab does not declare and nslab left alone.
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// Load a topology file with the command line's options.
pub fn load(file: &Path, prefix: &str, sandbox: bool) -> Result<Lab> {
    load_opts(file, prefix, sandbox, false)
}

/// [`load`] for bringing a lab up (`up`, `plan`): its `run:` programs must exist.
pub fn load_to_run(file: &Path, prefix: &str, sandbox: bool) -> Result<Lab> {
    load_opts(file, prefix, sandbox, true)
}

fn load_opts(file: &Path, prefix: &str, sandbox: bool, check_programs: bool) -> Result<Lab> {
    Ok(topology::load(
        file,
        &topology::Options {
            prefix: prefix.into(),
            sandbox,
            check_programs,
        },
    )?)
}

/// Observe every namespace in `names` that exists, plus the host in host mode;
/// in the lab's host namespace also its nftables table and forwarding.
fn observe(k: &mut Kernel, lab: &Lab, names: &BTreeSet<String>) -> Result<Observed> {
    let mut obs = Observed {
        lab_hosts: std::fs::read_to_string(record::hosts_path(&lab.name)).ok(),
        lab_resolv: std::fs::read_to_string(record::resolv_path(&lab.name)).ok(),
        ..Default::default()
    };
    // Files under /etc/netns that someone else put there, also for namespaces
    // that do not exist yet.
    obs.foreign_hosts = lab
        .nodes
        .iter()
        .map(|n| &n.ns)
        .filter(|ns| {
            let f = Path::new("/etc/netns").join(ns).join("hosts");
            std::fs::symlink_metadata(&f).is_ok() && !apply::is_our_link(&f)
        })
        .cloned()
        .collect();
    // Each node's resolv.conf, also before its namespace exists.
    for n in &lab.nodes {
        let link = Path::new("/etc/netns").join(&n.ns).join("resolv.conf");
        let found = if link.symlink_metadata().is_err() {
            plan::EtcFile::Absent
        } else if record::resolv_link_is_ours(&link) {
            plan::EtcFile::Ours(
                std::fs::read_link(&link)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
        } else {
            plan::EtcFile::Foreign
        };
        obs.resolv.insert(n.ns.clone(), found);
    }
    let host_ns = plan::ns_of(lab, &Place::Host);
    let mut all: Vec<Ns> = names.iter().map(Ns::named).collect();
    if !lab.sandbox {
        all.insert(0, host_ns.clone());
    }
    for ns in &all {
        if let Some(name) = ns.name()
            && !netns::exists(name)
        {
            continue;
        }
        let c = k.conn(ns)?;
        let st = c.observe().map_err(|e| {
            Error::Failed(format!(
                "read {}: {e}",
                if ns.is_host() {
                    "the host's interfaces".into()
                } else {
                    format!("namespace {ns}")
                }
            ))
        })?;
        let hosts = std::fs::read_link(Path::new("/etc/netns").join(ns).join("hosts"))
            .ok()
            .map(|p| p.display().to_string());
        let (mut nat, mut ip_forward) = (None, None);
        if *ns == host_ns {
            nat = read_nat(&c.file, &plan::nat_table(&lab.name))?;
            ip_forward = netns::run_in(&c.file, || netns::sysctl_get("net.ipv4.ip_forward"))
                .ok()
                .and_then(|r| r.ok())
                .map(|v| v == "1");
        }
        obs.ns.insert(
            ns.clone(),
            NsObs {
                state: st,
                hosts,
                nat,
                ip_forward,
            },
        );
    }
    Ok(obs)
}

/// The lab's nftables table in a namespace, as the planner sees it.
fn read_nat(ns: &std::fs::File, table: &str) -> Result<Option<plan::NatObs>> {
    let found = crate::kernel::nft::socket_in(ns)
        .and_then(|mut s| s.read_nat_rules(table))
        .map_err(|e| Error::Failed(format!("read nftables table {table}: {e}")))?;
    Ok(found.map(|r| {
        let rules: Vec<_> = r.masquerades.iter().filter_map(|m| m.to_nat()).collect();
        let exact = r.chain_ok
            && r.other_chains.is_empty()
            && r.unknown_rules == 0
            && rules.len() == r.masquerades.len();
        plan::NatObs {
            comment: r.comment,
            rules,
            exact,
        }
    }))
}

/// Host mode: refuse lab addresses and routes in the host that overlap a route of an
/// interface nslab does not own, so a lab never hijacks a real network.
pub fn overlaps(lab: &Lab, host: &NsState) -> Vec<String> {
    let mut mine: Vec<(String, IpNet)> = lab
        .addresses_of(&Place::Host)
        .into_iter()
        .map(|(i, a)| (format!("address {a} on {i}"), a.trunc()))
        .collect();
    mine.extend(
        lab.host
            .routes
            .iter()
            .filter(|r| !r.is_default())
            .map(|r| (format!("route {r}"), r.dst)),
    );
    let mark = lab.mark();
    let mut out = Vec::new();
    for r in &host.routes {
        if r.dst.prefix_len() == 0 {
            continue;
        }
        let Some(dev) = r.oif.and_then(|i| host.link_by_index(i)) else {
            continue;
        };
        if dev.alias.as_deref().is_some_and(|a| a == mark) || dev.name == "lo" {
            continue;
        }
        for (what, net) in &mine {
            if net.contains(&r.dst.addr()) || r.dst.contains(&net.addr()) {
                out.push(format!(
                    "lab {what} overlaps the host's route {} dev {}",
                    r.dst, dev.name
                ));
            }
        }
    }
    out
}

/// What the lab owns in its host namespace (host mode): bridges and veth ends.
fn host_link_names(lab: &Lab) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = lab.bridges.iter().map(|b| b.name.clone()).collect();
    s.extend(lab.host.interfaces.iter().map(|i| i.name.clone()));
    s
}

/// Bring a lab up, or bring it in line with its file.
pub fn up(file: &Path, opts: &UpOptions) -> Result<UpReport> {
    up_with(file, opts, None)
}

/// `up` with progress reported to `progress`.
pub fn up_with(
    file: &Path,
    opts: &UpOptions,
    progress: Option<Box<dyn FnMut(usize, usize)>>,
) -> Result<UpReport> {
    let lab = load_to_run(file, &opts.prefix, opts.sandbox)?;
    up_lab_with(lab, Some(file), opts, progress)
}

pub fn up_lab(lab: Lab, file: Option<&Path>, force: bool) -> Result<UpReport> {
    let opts = UpOptions {
        force,
        ..Default::default()
    };
    up_lab_with(lab, file, &opts, None)
}

/// `up_lab`, reporting progress (ops done, ops in all) to `progress`. Of `opts`,
/// only `force` and `hooks` are used (the lab is made already).
pub fn up_lab_with(
    lab: Lab,
    file: Option<&Path>,
    opts: &UpOptions,
    progress: Option<Box<dyn FnMut(usize, usize)>>,
) -> Result<UpReport> {
    let force = opts.force;
    require_caps("up")?;
    crate::timing::mark("start");
    let t0 = Instant::now();
    netns::raise_nofile_limit();
    let _lock = lock_lab(&lab.name)?;
    let here = netns::current_id().map_err(Error::io("identify the current network namespace"))?;
    let mut rec = Record::load(&lab.name)
        .map_err(Error::io(format!("read the record of lab {}", lab.name)))?
        .unwrap_or_else(|| Record::new(&lab.name, lab.sandbox, here));
    if rec.sandbox != lab.sandbox && (!rec.namespaces.is_empty() || rec.model.is_some()) {
        let (was, now) = if rec.sandbox {
            ("sandboxed", "in host mode")
        } else {
            ("in host mode", "sandboxed")
        };
        return Err(Error::Refused(format!(
            "lab {} is up {was}; take it down first (`nslab down --lab {}`) to bring it up {now}",
            lab.name, lab.name
        )));
    }
    if !lab.sandbox && rec.host_ns != here && rec.model.is_some() {
        return Err(Error::Refused(format!(
            "lab {} was brought up from another network namespace; run nslab from that one",
            lab.name
        )));
    }
    rec.sandbox = lab.sandbox;
    let mut k = Kernel::new(
        conn::open_current().map_err(Error::io("open a netlink socket"))?,
        &lab.name,
    );
    k.progress = progress;
    k.fail_after = opts.hooks.fail_after;
    k.refuse_after = opts.hooks.refuse_after;
    let mut names: BTreeSet<String> = lab.namespaces().into_iter().collect();
    names.extend(rec.namespaces.iter().cloned());
    let obs = observe(&mut k, &lab, &names)?;
    crate::timing::mark("observe");
    if !lab.sandbox && !force {
        let o = overlaps(&lab, &obs.ns[&Ns::HOST].state);
        if !o.is_empty() {
            return Err(Error::Refused(format!(
                "{}\nA lab in host mode must not take over a network the host already uses. Change the lab's addresses, use --sandbox (the lab gets its own host namespace), or --force if you mean it. Nothing was changed.",
                o.join("\n")
            )));
        }
    }
    let (ops, notes) = plan::plan_up(
        &lab,
        &obs,
        rec.model.as_ref(),
        &plan::Owned {
            namespaces: rec.namespaces.clone(),
            host_links: rec.host_links.clone(),
            bridge_macs: rec.bridge_macs.clone(),
        },
    )
    .map_err(|c| {
        Error::Refused(format!(
            "{}\nNothing was changed.",
            c.iter().map(|x| x.0.clone()).collect::<Vec<_>>().join("\n")
        ))
    })?;
    rec.file = file.map(|f| {
        std::fs::canonicalize(f)
            .unwrap_or(f.to_path_buf())
            .display()
            .to_string()
    });
    crate::timing::mark("plan");
    // A namespace file that is not a mounted namespace (a crash between creating
    // the file and mounting it, or a reboot with /run on disk): ours is replaced,
    // anyone else's is in the way.
    for op in &ops {
        if let Op::CreateNs { ns, .. } = op {
            let p = netns::path(ns.as_str());
            if p.exists() && !netns::is_nsfs(&p) {
                if rec.namespaces.contains(ns.as_str()) && netns::is_stale_file(ns.as_str()) {
                    std::fs::remove_file(&p)
                        .map_err(Error::io(format!("remove stale {}", p.display())))?;
                } else {
                    return Err(Error::Refused(format!(
                        "{} exists but is not a namespace (a stale file?) and is not lab {}'s; remove it. Nothing was changed.",
                        p.display(),
                        lab.name
                    )));
                }
            }
        }
    }
    opts.hooks.pause("planned");
    let before = rec.clone();
    // What this run is about to create (an intent may not have happened yet).
    let mut created: Vec<Intent> = Vec::new();
    let result = {
        let rec_ref = &mut rec;
        apply::apply(&mut k, &ops, &mut |i| {
            match &i {
                Intent::Namespaces(v) => rec_ref.namespaces.extend(v.iter().cloned()),
                Intent::HostLinks(v) => {
                    for (name, mac) in v {
                        rec_ref.host_links.insert(name.clone());
                        if let Some(m) = mac {
                            rec_ref.bridge_macs.insert(name.clone(), *m);
                        }
                    }
                }
                Intent::NftTable(t) => {
                    rec_ref.nft_tables.insert(t.clone());
                }
            }
            created.push(i);
            rec_ref.save()
        })
        .map_err(Error::Apply)
    }
    .and_then(|()| {
        crate::timing::mark("apply (last ops)");
        opts.hooks.pause("applied");
        finish(&mut k, &lab, &mut rec, here)
    });
    if let Err(e) = result {
        // The test switch plays a crash: leave everything as a killed process would.
        if matches!(e, Error::Apply(apply::ApplyError::TestAbort(_))) {
            let _ = rec.save();
            return Err(e);
        }
        k.fail_after = None;
        k.refuse_after = None;
        let undone = match before.model.clone() {
            // A running lab: bring it back to the model it had.
            Some(prev) => restore(&mut k, &prev, &lab, &before),
            None => {
                let existed: BTreeSet<String> = obs
                    .ns
                    .get(&Ns::HOST)
                    .map(|o| o.state.links.iter().map(|l| l.name.clone()).collect())
                    .unwrap_or_default();
                let undone = rollback(&mut k, &lab, &created, &existed);
                // Hosts links written (on their own thread) for every node, also
                // where a namespace turned out not to be ours: only our links go.
                for op in &ops {
                    if let Op::LinkHosts { ns, .. } | Op::LinkResolv { ns, .. } = op {
                        let _ = apply::remove_etc(ns.as_str());
                    }
                }
                let _ = std::fs::remove_file(record::hosts_path(&lab.name));
                let _ = std::fs::remove_file(record::resolv_path(&lab.name));
                undone
            }
        };
        rec = before;
        let r = if rec.model.is_none() && rec.namespaces.is_empty() && rec.host_links.is_empty() {
            rec.remove()
        } else {
            rec.save()
        };
        let mut msg = format!("{e}\n{undone}");
        if let Err(re) = r {
            msg.push_str(&format!("\nRestoring the lab's record failed too: {re}"));
        }
        return Err(Error::Failed(msg));
    }
    // Up means passing traffic: wait for the kernel's link-watch work and the
    // bridge ports before programs start and before `up` returns.
    let not_ready = crate::kernel::ready::wait_lab(&rec.namespaces, lab.sandbox, &rec.host_links);
    crate::timing::mark("wait for traffic");
    // Programs last: the network they talk over is ready now.
    let started = crate::programs::reconcile(&mut rec, &lab, &mut || {
        // The test switch (NSLAB_TEST_FAIL_AFTER) counts starting a program as
        // one more step: a crash between starting it and recording its pid.
        k.spend(1).map_err(Error::Apply)
    })
    .map_err(|e| {
        if matches!(e, Error::Apply(apply::ApplyError::TestAbort(_))) {
            return e;
        }
        let _ = rec.save();
        Error::Failed(format!(
            "{e}\nThe network of lab {} is up; the program above did not start. Fix it and run `nslab up` again (it starts only what is not running).",
            lab.name
        ))
    })?;
    rec.save().map_err(Error::io("write the lab's record"))?;
    let changed_programs = !started.is_empty();
    let mut notes = notes;
    notes.extend(not_ready);
    notes.extend(started);
    Ok(UpReport {
        lab: lab.name,
        sandbox: lab.sandbox,
        changed: !ops.is_empty() || changed_programs,
        ops,
        notes,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The last steps of `up` before its programs, each of which can fail like a
/// kernel operation (and is then rolled back like one): multicast snooping on
/// the bridges, the host's forwarding, and the record of the new model.
fn finish(k: &mut Kernel, lab: &Lab, rec: &mut Record, here: netns::NsId) -> Result<()> {
    // Bridges are born with multicast snooping off (msg::new_bridge) and get the
    // kernel's default back once their ports are in; every time, so a bridge
    // left by an `up` that was killed in between gets it too.
    let bridge_ns = plan::ns_of(lab, &Place::Host);
    for b in &lab.bridges {
        k.conn(&bridge_ns)
            .map_err(Error::Apply)?
            .nl
            .request(
                msg::bridge_snooping(&b.name, true),
                0,
                format!("turn on multicast snooping on bridge {}", b.name),
            )
            .map_err(|e| Error::Failed(e.to_string()))?;
    }
    rec.namespaces = lab.namespaces().into_iter().collect();
    rec.host_links = if lab.sandbox {
        BTreeSet::new()
    } else {
        host_link_names(lab)
    };
    rec.bridge_macs.retain(|b, _| rec.host_links.contains(b));
    if lab.sandbox || lab.nat.is_empty() {
        rec.nft_tables.clear();
    }
    if plan::host_forwarding_needed(lab) {
        // Forwarding already on (another lab turned it on): count this lab as a user.
        crate::hostfwd::join_if_tracked(&lab.name, here)
            .map_err(Error::io("record host forwarding"))?;
    } else if !lab.sandbox {
        let c = k.conn(&Ns::HOST)?;
        crate::hostfwd::release(&lab.name, here, &crate::hostfwd::setter(&c.file))
            .map_err(Error::io("restore host forwarding"))?;
    }
    rec.model = Some(lab.clone());
    rec.save().map_err(Error::io("write the lab's record"))?;
    crate::timing::mark("record");
    Ok(())
}

/// A refused change to a running lab: reconcile it back to the model of its
/// last good `up` (interfaces, addresses, routes, MTU, NAT, hosts file), removing
/// what the refused model added. Programs are not touched.
fn restore(k: &mut Kernel, prev: &Lab, failed: &Lab, before: &Record) -> String {
    let mut names: BTreeSet<String> = prev.namespaces().into_iter().collect();
    names.extend(failed.namespaces());
    names.extend(before.namespaces.iter().cloned());
    let r = observe(k, prev, &names).and_then(|obs| {
        let mut host_links = before.host_links.clone();
        host_links.extend(host_link_names(failed));
        let (ops, _) = plan::plan_up(
            prev,
            &obs,
            Some(failed),
            &plan::Owned {
                namespaces: names.clone(),
                host_links,
                bridge_macs: before.bridge_macs.clone(),
            },
        )
        .map_err(|c| Error::Failed(c.iter().map(|x| x.0.clone()).collect::<Vec<_>>().join("; ")))?;
        apply::apply(k, &ops, &mut |_| Ok(()))?;
        Ok(ops.len())
    });
    match r {
        Ok(0) => "The lab is as it was before this `up`: nothing had been changed.".into(),
        Ok(n) => format!(
            "The lab was put back as it was before this `up` ({n} change{} undone); its programs were not touched.",
            if n == 1 { "" } else { "s" }
        ),
        Err(e) => format!(
            "Putting the lab back as it was failed too: {e}. Run `nslab up` with the previous file, or `nslab down --lab {}`.",
            prev.name
        ),
    }
}

/// Undo the creates of a failed `up`: namespaces, host interfaces and nft tables
/// this run made (each only if it carries the lab's mark or was just made).
fn rollback(k: &mut Kernel, lab: &Lab, created: &[Intent], existed: &BTreeSet<String>) -> String {
    let mark = lab.mark();
    let mut gone = Vec::new();
    let mut failed = Vec::new();
    for i in created.iter().rev() {
        match i {
            Intent::Namespaces(v) => {
                for ns in v {
                    // Only the namespace this run made, checked on the object: a
                    // name someone else took meanwhile (the likely cause of the
                    // failure) is theirs.
                    let made = k.created_ns.get(ns).copied();
                    let same = made.is_some()
                        && netns::open(ns)
                            .and_then(|f| netns::id_of(&f))
                            .is_ok_and(|id| Some(id) == made);
                    k.conns.remove(ns.as_str());
                    if same {
                        match netns::delete(ns) {
                            Ok(()) => gone.push(format!("namespace {ns}")),
                            Err(e) => failed.push(format!("namespace {ns}: {e}")),
                        }
                        let _ = apply::remove_etc(ns.as_str());
                    }
                }
            }
            Intent::HostLinks(v) => {
                let Ok(c) = k.conn(&Ns::HOST) else { continue };
                let Ok(links) = crate::kernel::observe::links(&mut c.nl) else {
                    continue;
                };
                for (name, mac) in v {
                    // Only what this run made, checked on the object: not there
                    // before, and marked or (a bridge not yet marked) with the MAC
                    // it was made with. A name someone else took meanwhile (the
                    // likely cause of the failure) is left alone; an unmarked veth
                    // end of ours goes with its peer's namespace.
                    let ours = !existed.contains(name)
                        && links.iter().any(|l| {
                            &l.name == name
                                && (l.alias.as_deref() == Some(mark.as_str())
                                    || (mac.is_some() && l.mac == *mac))
                        });
                    if ours {
                        match c.nl.request(
                            crate::kernel::msg::del_link(name),
                            0,
                            format!("delete {name}"),
                        ) {
                            Ok(()) => gone.push(format!("interface {name}")),
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                }
            }
            Intent::NftTable(t) => {
                if let Ok(c) = k.conn(&Ns::HOST) {
                    let r = crate::kernel::nft::socket_in(&c.file)
                        .and_then(|mut s| s.delete_table_if_marked(t, &mark));
                    if let Ok(true) = r {
                        gone.push(format!("nftables table {t}"));
                    }
                }
            }
        }
    }
    let mut msg = if gone.is_empty() {
        "Nothing had been created; nothing was left behind.".to_string()
    } else {
        format!("Rolled back what this run created: {}.", gone.join(", "))
    };
    if !failed.is_empty() {
        msg.push_str(&format!(
            " Could not remove: {} (run `nslab down --lab {}`).",
            failed.join("; "),
            lab.name
        ));
    }
    msg
}

fn lock_lab(lab: &str) -> Result<record::LabLock> {
    match record::lock(lab, false).map_err(Error::io("lock the lab"))? {
        Some(l) => Ok(l),
        None => {
            eprintln!("nslab: waiting for another nslab working on lab {lab}...");
            Ok(record::lock(lab, true)
                .map_err(Error::io("lock the lab"))?
                .expect("blocking lock"))
        }
    }
}

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
    down_locked(lab, kill, lock.as_ref())
}

/// `down` for a caller that holds the lab's lock already (`clean`).
pub fn down_locked(lab: &str, kill: bool, _lock: Option<&record::LabLock>) -> Result<DownReport> {
    crate::timing::mark("start");
    let t0 = Instant::now();
    let mut rep = DownReport {
        lab: lab.into(),
        was_up: false,
        namespaces: vec![],
        host_links: vec![],
        stopped: vec![],
        killed: vec![],
        warnings: vec![],
        seconds: 0.0,
    };
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
    let sandbox_host = rec.sandbox.then(|| topology::sandbox_host_ns(lab, ""));
    let opened: Vec<(&String, std::fs::File)> = rec
        .namespaces
        .iter()
        .filter_map(|ns| netns::open(ns).ok().map(|f| (ns, f)))
        .collect();
    // Ours only if lo carries the mark (checked on the object, not the name): a
    // namespace re-made by hand under a node's name is left alone.
    let listed = conn::links_in(&opened.iter().map(|(_, f)| f).collect::<Vec<_>>());
    let mut held: Vec<(&String, std::fs::File)> = Vec::new();
    let mut foreign: BTreeSet<&String> = BTreeSet::new();
    // (index, peer index) of the veths in our namespaces: a recorded host end
    // not yet marked (a crash right after its creation) is ours if it is the peer
    // of one of them.
    let mut our_veths: BTreeSet<(u32, u32)> = BTreeSet::new();
    for ((ns, f), links) in opened.into_iter().zip(listed) {
        let links = links.unwrap_or_default();
        let alias = links
            .iter()
            .find(|l| l.name == "lo")
            .and_then(|l| l.alias.as_deref());
        if alias == Some(mark.as_str()) {
            our_veths.extend(
                links
                    .iter()
                    .filter(|l| l.kind.as_deref() == Some("veth"))
                    .filter_map(|l| l.peer_index.map(|p| (l.index, p))),
            );
            held.push((ns, f));
        } else {
            rep.warnings.push(format!(
                "namespace {ns} is not lab {lab}'s (its lo does not carry the mark {mark}; re-made by someone else?): left alone"
            ));
            // The lab's own links under /etc/netns/NS go (only links into nslab's
            // state directory; anything else there is kept).
            let _ = apply::remove_etc(ns.as_str());
            foreign.insert(ns);
        }
    }
    // The node namespaces to remove: ours, and stale files of ours (empty, never
    // mounted: an `up` killed between making the file and mounting it).
    let nodes: Vec<&String> = rec
        .namespaces
        .iter()
        .filter(|n| Some(*n) != sandbox_host.as_ref() && !foreign.contains(n))
        .filter(|n| held.iter().any(|(h, _)| h == n) || netns::is_stale_file(n))
        .collect();
    let inos: HashMap<u64, String> = held
        .iter()
        .filter_map(|(ns, f)| {
            use std::os::unix::fs::MetadataExt;
            f.metadata().ok().map(|m| (m.ino(), (*ns).clone()))
        })
        .collect();

    // Processes in the lab's namespaces: ours are stopped, others block `down`.
    let found = procs::in_namespaces(&inos).map_err(Error::io("list processes"))?;
    // Ours: anything in the lab's cgroup (programs nslab started and whatever
    // they started, recorded or not), or, without cgroups, a program nslab
    // started or one of its children (same session).
    let lab_cg = crate::kernel::cgroup::lab_dir(lab).filter(|d| d.exists());
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
    // Recorded programs may live outside the lab's namespaces and still hold
    // sockets in them (`serve --detach`): stop every one of them, with what it
    // started (its cgroup).
    let grace = Duration::from_secs(3);
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

    crate::timing::mark("processes");
    // The namespace that played the host: in host mode it holds bridges and veth ends.
    let mut host: Option<Conn> = None;
    if !rec.sandbox {
        match conn::find_by_id(rec.host_ns) {
            Ok(Some((_, c))) => host = Some(c),
            Ok(None) => rep.warnings.push(format!("the network namespace lab {lab} was brought up in is gone; its interfaces went with it")),
            Err(e) => rep.warnings.push(format!("cannot open the lab's host namespace: {e}")),
        }
    }
    if let Some(h) = sandbox_host
        .as_ref()
        .filter(|h| netns::exists(h) && !foreign.contains(h))
    {
        // Keep the sandbox host open while the nodes go: their veth peers live in
        // it, so we can see when the kernel has really finished.
        host = conn::open(h).ok();
    }

    // The host's forwarding first, while the kernel is not busy tearing down (a
    // write to ip_forward waits for the lock the teardown holds).
    if !rec.sandbox
        && let Some(h) = host.as_ref()
        && let Err(e) = crate::hostfwd::release(lab, rec.host_ns, &crate::hostfwd::setter(&h.file))
    {
        rep.warnings
            .push(format!("restore the host's IPv4 forwarding: {e}"));
    }
    // Subscribe to link events before deleting anything, so none is missed.
    let mut watch = host.as_ref().and_then(|h| {
        netns::run_in(&h.file, crate::kernel::watch::LinkWatch::new)
            .ok()
            .and_then(|r| r.ok())
    });
    let lab_bridges: Vec<String> = host
        .as_mut()
        .and_then(|h| observe::links_of_kind(&mut h.nl, InfoKind::Bridge).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|l| {
            l.alias.as_deref() == Some(mark.as_str())
                || (rec.host_links.contains(&l.name)
                    && l.mac.is_some()
                    && rec.bridge_macs.get(&l.name) == l.mac.as_ref())
        })
        .map(|l| l.name)
        .collect();
    // Each port leaving a bridge makes the kernel walk every other port and, with
    // multicast snooping on, re-arm each one's multicast timers: quadratic, and at
    // 1000 ports the biggest (and most variable) part of the teardown. The
    // bridges go anyway, so snooping goes off first (one cheap request each).
    if let Some(h) = host.as_mut() {
        for b in &lab_bridges {
            let _ = h.nl.request(
                msg::bridge_snooping(b, false),
                0,
                format!("turn off multicast snooping on {b}"),
            );
        }
    }
    // Bridges of the sandbox die with its host namespace.
    let bridges: Vec<String> = if rec.sandbox { vec![] } else { lab_bridges };
    let bridge_sock = match (&host, bridges.is_empty()) {
        (Some(h), false) => netns::run_in(&h.file, crate::kernel::netlink::Rtnl::new)
            .ok()
            .and_then(|r| r.ok()),
        _ => None,
    };
    let delete_bridges = |mut nl: crate::kernel::netlink::Rtnl| -> Vec<(String, Option<String>)> {
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
    };
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
    crate::timing::mark("list veths");
    let deleted_bridges = std::thread::scope(|s| -> Result<Vec<(String, Option<String>)>> {
        // Unmount every node namespace first (the fds keep them alive), then let
        // go of all at once (release_at_once). The unmounts come first and
        // alone: each waits for an RCU grace period after dropping the mount
        // lock, and those grow long while the kernel is busy elsewhere; from a
        // few threads the waits overlap.
        let chunk = nodes.len().div_ceil(4).max(1);
        let detached: Vec<Result<()>> = nodes
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> Result<()> {
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
        detached.into_iter().collect::<Result<()>>()?;
        rep.namespaces.extend(nodes.iter().map(|n| (*n).clone()));
        release_at_once(held);
        crate::timing::mark("release namespaces");
        // A bridge has no namespace to die with; it goes alongside.
        let bridge_thread = bridge_sock.map(|nl| s.spawn(|| delete_bridges(nl)));
        // The files go meanwhile (file system work; the kernel's is elsewhere).
        let files = s.spawn(|| {
            let mut errs = vec![];
            for ns in &nodes {
                if let Err(e) = netns::remove_file(ns) {
                    errs.push(format!("remove {}: {e}", netns::path(ns).display()));
                }
                if let Err(e) = apply::remove_etc(ns) {
                    errs.push(format!("remove /etc/netns/{ns}: {e}"));
                }
            }
            errs
        });
        if let Some(h) = host.as_mut() {
            if let Some(w) = watch.as_mut() {
                match w.wait_gone(left.clone(), DOWN_WAIT) {
                    crate::kernel::watch::Waited::AllGone => left.clear(),
                    crate::kernel::watch::Waited::Overflow(l)
                    | crate::kernel::watch::Waited::TimedOut(l) => left = l,
                }
            }
            // Without events (or after losing some), look until they are gone.
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
                        left.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        rep.warnings.extend(files.join().unwrap_or_default());
        Ok(bridge_thread
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default())
    })?;
    crate::timing::mark("wait for the kernel");
    for (b, err) in deleted_bridges {
        match err {
            None => rep.host_links.push(b),
            Some(e) => rep.warnings.push(e),
        }
    }
    if let Some(h) = host.as_mut() {
        if !rec.sandbox {
            for t in &rec.nft_tables {
                if let Err(e) = crate::kernel::nft::socket_in(&h.file)
                    .and_then(|mut s| s.delete_table_if_marked(t, &mark))
                {
                    rep.warnings.push(format!("delete nftables table {t}: {e}"));
                }
            }
            // A why-not trace cut short (a crash, kill -9) leaves its marked tables.
            let trace = crate::probe::why::TRACE_TABLE;
            if let Err(e) =
                crate::kernel::nft::socket_in(&h.file).and_then(|mut s| s.stop_trace(trace, &mark))
            {
                rep.warnings
                    .push(format!("delete nftables table {trace}: {e}"));
            }
        }
        for n in &rec.host_links {
            if !rep.host_links.contains(n) {
                rep.host_links.push(n.clone());
            }
        }
    }
    crate::timing::mark("bridges and nft");
    drop(watch);
    drop(host);
    if let Some(h) = sandbox_host.filter(|h| rec.namespaces.contains(h) && !foreign.contains(h)) {
        netns::delete(&h).map_err(Error::io(format!("delete namespace {h}")))?;
        apply::remove_etc(&h).map_err(Error::io(format!("remove /etc/netns/{h}")))?;
        rep.namespaces.push(h);
    }
    let _ = std::fs::remove_dir_all(crate::programs::log_dir(lab));
    let _ = std::fs::remove_file(record::hosts_path(lab));
    let _ = std::fs::remove_file(record::resolv_path(lab));
    rec.remove().map_err(Error::io("remove the lab's record"))?;
    rep.seconds = t0.elapsed().as_secs_f64();
    Ok(rep)
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
    std::thread::scope(|s| {
        for _ in 1..cpus {
            s.spawn(|| {
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

/// Which lab a command means: `--lab NAME`, or FILE with `--prefix`, or the only lab up.
pub fn select(lab: Option<&str>, file: Option<&Path>, prefix: &str) -> Result<String> {
    if let Some(p) = topology::validate::prefix_problem(prefix) {
        return Err(Error::Usage(format!("--prefix {prefix:?} {p}")));
    }
    if let Some(l) = lab {
        if let Some(p) = topology::validate::name_problem(l) {
            return Err(Error::Usage(format!("--lab {l:?}: lab name {p}")));
        }
        return Ok(l.to_string());
    }
    if let Some(f) = file {
        let name = format!("{prefix}{}", name_in_file(f)?);
        if let Some(p) = topology::validate::name_problem(&name) {
            return Err(Error::Usage(format!(
                "{}: lab name {name:?} {p}",
                f.display()
            )));
        }
        return Ok(name);
    }
    let labs = record::list().map_err(Error::io("list labs"))?;
    match labs.len() {
        1 => Ok(labs[0].clone()),
        0 => Err(Error::Usage(
            "no lab is up; bring one up with `nslab up FILE`".into(),
        )),
        _ => Err(Error::Usage(format!(
            "several labs are up ({}); name one with --lab NAME or give its FILE (and --prefix)",
            labs.join(", ")
        ))),
    }
}

/// The lab and node whose namespace is `ns` (a namespace name given where a node
/// name was expected), among the labs that are up.
pub fn node_of_namespace(ns: &str) -> Option<(String, String)> {
    record::list().ok()?.into_iter().find_map(|l| {
        let rec = Record::load(&l).ok()??;
        let node = rec.model?.nodes.into_iter().find(|n| n.ns == ns)?;
        Some((l, node.name))
    })
}

/// A lab that was brought up from a given file (see [`labs_from_file`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FromFile {
    pub lab: String,
    /// The `--prefix` it was brought up with (None: its first `up` did not finish).
    pub prefix: Option<String>,
    pub sandbox: bool,
}

/// Labs whose record says they were brought up from `file` (the same file by its
/// canonical path, whatever its `name:` says now).
pub fn labs_from_file(file: &Path) -> Result<Vec<FromFile>> {
    let want = std::fs::canonicalize(file)
        .or_else(|_| std::path::absolute(file))
        .map_err(Error::io(format!("{}", file.display())))?;
    let mut out = Vec::new();
    for l in record::list().map_err(Error::io("list labs"))? {
        if let Ok(Some(r)) = Record::load(&l)
            && r.file.as_deref().map(Path::new) == Some(want.as_path())
        {
            out.push(FromFile {
                lab: r.lab.clone(),
                prefix: r.model.as_ref().map(|m| m.prefix.clone()),
                sandbox: r.sandbox,
            });
        }
    }
    Ok(out)
}

/// The `name:` of a topology file, even if the rest of the file no longer validates
/// (`down` trusts the record, not the file).
pub fn name_in_file(f: &Path) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct NameOnly {
        name: String,
    }
    let text = topology::read_text(f).map_err(|m| Error::Usage(format!("{}: {m}", f.display())))?;
    match serde_saphyr::from_str::<NameOnly>(&text) {
        Ok(n) => Ok(n.name),
        Err(_) => Err(Error::Usage(format!(
            "{}: no `name:` found; use --lab NAME",
            f.display()
        ))),
    }
}

/// The lab's record, or a clear error if it is not up.
pub fn record_of(lab: &str) -> Result<Record> {
    match Record::load(lab).map_err(Error::io(format!("read the record of lab {lab}")))? {
        Some(r) => Ok(r),
        None => {
            let labs = record::list().unwrap_or_default();
            Err(Error::Usage(format!(
                "lab {lab} is not up{}",
                if labs.is_empty() {
                    String::new()
                } else {
                    format!(" (labs up: {})", labs.join(", "))
                }
            )))
        }
    }
}

/// The namespace of a place of a lab that is up: `host`, `internet` or a node name.
pub fn place_ns(rec: &Record, place: &str) -> Result<(Place, String)> {
    let model = rec.model.as_ref().ok_or_else(|| {
        Error::Failed(format!(
            "lab {} is not completely up; run `nslab up` again",
            rec.lab
        ))
    })?;
    let p = places::place_of_lab(model, &rec.lab, place)?;
    Ok((p.clone(), plan::ns_of(model, &p).to_string()))
}

/// The namespace of a place of a lab that is up, as an open file (host mode's host
/// is found by its recorded identity).
pub fn place_file(rec: &Record, place: &Place) -> Result<std::fs::File> {
    let model = rec.model.as_ref().ok_or_else(|| {
        Error::Failed(format!(
            "lab {} is not completely up; run `nslab up` again",
            rec.lab
        ))
    })?;
    let ns = plan::ns_of(model, place);
    if ns.is_host() {
        return match conn::find_by_id(rec.host_ns)
            .map_err(Error::io("find the lab's host namespace"))?
        {
            Some((_, c)) => Ok(c.file),
            None => Err(Error::Failed(format!(
                "the namespace lab {} was brought up in is gone",
                rec.lab
            ))),
        };
    }
    netns::open(ns.as_str()).map_err(Error::io(format!("open namespace {ns}")))
}

/// Run `f` on a thread in a namespace (a place's, from [`place_file`]); the
/// caller's thread stays where it is.
pub fn run_in<T: Send>(ns: &std::fs::File, f: impl FnOnce() -> T + Send) -> Result<T> {
    netns::run_in(ns, f).map_err(Error::io("enter the namespace"))
}

/// Why [`exec_in`] did not replace the process.
#[derive(Debug)]
pub enum ExecError {
    /// Before the program: no such place, or its namespace cannot be entered.
    Setup(String),
    /// exec itself failed (the program is not there, not executable, ...).
    Exec(std::io::Error),
}

/// Replace this process, which must be single-threaded, by `cmd` run in a place
/// of a lab that is up (`host`, `internet` or a node), as `ip netns exec` does:
/// in its network namespace, with its /etc/netns files bound over /etc. Host
/// mode's host is the namespace nslab runs in: nothing is entered. Returns only
/// if that failed.
pub fn exec_in(rec: &Record, place: &str, cmd: &[std::ffi::OsString]) -> ExecError {
    use std::os::unix::process::CommandExt;
    let ns = match place_ns(rec, place) {
        Ok((_, ns)) => Ns::named(ns),
        Err(e) => return ExecError::Setup(e.to_string()),
    };
    if let Some(ns) = ns.name() {
        let f = match netns::open(ns) {
            Ok(f) => f,
            Err(e) => return ExecError::Setup(format!("open namespace {ns}: {e}")),
        };
        let entry = match crate::kernel::exec::Entry::new(ns, f) {
            Ok(e) => e,
            Err(e) => return ExecError::Setup(format!("prepare namespace {ns}: {e}")),
        };
        if let Err(e) = entry.enter() {
            return ExecError::Setup(format!("enter namespace {ns}: {e}"));
        }
    }
    ExecError::Exec(std::process::Command::new(&cmd[0]).args(&cmd[1..]).exec())
}

/// Capture targets: `NODE:IF`, `host:IF`, `internet:IF`, `BRIDGE:PORT`, `BRIDGE`
/// (its ports), `NODE` (its interfaces) or `all`.
pub fn capture_targets(
    rec: &Record,
    specs: &[String],
) -> Result<Vec<crate::capture::engine::Target>> {
    use crate::capture::engine::Target;
    use std::sync::Arc;
    let model = rec
        .model
        .as_ref()
        .ok_or_else(|| Error::Failed(format!("lab {} is not completely up", rec.lab)))?;
    let wants = plan::wants(model);
    let ifaces_of = |p: &Place| -> Vec<String> {
        wants
            .get(&plan::ns_of(model, p))
            .map(|w| {
                w.ifaces
                    .iter()
                    .map(|i| i.name.clone())
                    .filter(|n| n != "lo")
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut want: Vec<(Place, String, String)> = Vec::new();
    for spec in specs {
        match places::capture_spec(model, &rec.lab, spec)? {
            CaptureSpec::All => {
                let mut all = vec![Place::Host];
                if model.sandbox {
                    all.push(Place::Internet);
                }
                all.extend(model.nodes.iter().map(|n| Place::Node(n.name.clone())));
                for p in all {
                    for i in ifaces_of(&p) {
                        want.push((p.clone(), i.clone(), format!("{p}:{i}")));
                    }
                }
            }
            CaptureSpec::Port(_, port) => want.push((Place::Host, port, spec.clone())),
            CaptureSpec::Iface(p, ifname) => want.push((p, ifname, spec.clone())),
            CaptureSpec::Bridge(b) => {
                for p in model
                    .bridge(&b)
                    .map(|b| b.ports.as_slice())
                    .unwrap_or_default()
                {
                    want.push((Place::Host, p.clone(), format!("host:{p}")));
                }
            }
            CaptureSpec::Place(p) => {
                let ifs = ifaces_of(&p);
                if ifs.is_empty() {
                    return Err(places::nothing_to_capture(spec));
                }
                for i in ifs {
                    want.push((p.clone(), i.clone(), format!("{p}:{i}")));
                }
            }
        }
    }
    let mut files: std::collections::BTreeMap<Place, Arc<std::fs::File>> =
        std::collections::BTreeMap::new();
    let mut out: Vec<Target> = Vec::new();
    for (p, ifname, label) in want {
        if out.iter().any(|t| t.label == label) {
            continue;
        }
        let f = match files.get(&p) {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(place_file(rec, &p)?);
                files.insert(p.clone(), f.clone());
                f
            }
        };
        out.push(Target {
            label,
            ns: f,
            ifname,
        });
    }
    Ok(out)
}

/// Record a program nslab started in a lab (under the lab's lock).
pub fn add_process(lab: &str, p: crate::record::Proc) -> Result<()> {
    let _lock = lock_lab(lab)?;
    let mut rec = record_of(lab)?;
    rec.processes.push(p);
    rec.save().map_err(Error::io("write the lab's record"))
}

#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub namespace: String,
    pub lab: Option<String>,
    /// `node NAME`, `host` or `internet`.
    pub place: Option<String>,
}

/// The named namespaces a process is in (like `ip netns identify`), with the lab
/// and place when nslab made them.
pub fn identify(pid: i32) -> std::io::Result<Vec<Identity>> {
    let ino = procs::net_ino(pid).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such process (or no access to its namespace)",
        )
    })?;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(netns::netns_dir()) else {
        return Ok(out);
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if netns::exists(&name) && procs::ns_ino(&netns::path(&name)) == Some(ino) {
            let (mut lab, mut place) = (None, None);
            for l in record::list().unwrap_or_default() {
                if let Ok(Some(r)) = Record::load(&l)
                    && r.namespaces.contains(&name)
                {
                    if let Some(m) = &r.model {
                        place = if m.host_ns().as_deref() == Some(name.as_str()) {
                            Some("host".to_string())
                        } else if m.internet_ns().as_deref() == Some(name.as_str()) {
                            Some("internet".to_string())
                        } else {
                            m.nodes
                                .iter()
                                .find(|n| n.ns == name)
                                .map(|n| format!("node {}", n.name))
                        };
                    }
                    lab = Some(l);
                }
            }
            out.push(Identity {
                namespace: name,
                lab,
                place,
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub lab: String,
    pub sandbox: bool,
    /// The lab is up already: the plan is only the difference.
    pub up: bool,
    pub ops: Vec<Op>,
    /// The same ops as the commands a person would type.
    pub commands: Vec<String>,
    pub notes: Vec<String>,
    /// Host mode: addresses that `up` would refuse without --force.
    pub overlaps: Vec<String>,
}

/// What `up` would do now, without doing it.
pub fn plan(lab: &Lab) -> Result<PlanReport> {
    let rec = Record::load(&lab.name)
        .map_err(Error::io(format!("read the record of lab {}", lab.name)))?;
    plan_with_record(lab, rec.as_ref())
}

/// [`plan`] against a record already read (`status`). In host mode the host is
/// the namespace the lab was brought up in.
pub fn plan_with_record(lab: &Lab, rec: Option<&Record>) -> Result<PlanReport> {
    let rec = rec.cloned();
    let host = match rec.as_ref().filter(|_| !lab.sandbox) {
        Some(r) => conn::find_by_id(r.host_ns)
            .map_err(Error::io("find the lab's host namespace"))?
            .map(|(_, c)| c),
        None => None,
    };
    let host = match host {
        Some(c) => c,
        None => conn::open_current().map_err(Error::io("open a netlink socket"))?,
    };
    let mut k = Kernel::new(host, &lab.name);
    let mut names: BTreeSet<String> = lab.namespaces().into_iter().collect();
    if let Some(r) = &rec {
        names.extend(r.namespaces.iter().cloned());
    }
    let obs = observe(&mut k, lab, &names)?;
    let overlaps = if lab.sandbox {
        vec![]
    } else {
        overlaps(lab, &obs.ns[&Ns::HOST].state)
    };
    let owned = rec
        .as_ref()
        .map(|r| plan::Owned {
            namespaces: r.namespaces.clone(),
            host_links: r.host_links.clone(),
            bridge_macs: r.bridge_macs.clone(),
        })
        .unwrap_or_default();
    let (ops, notes) = plan::plan_up(
        lab,
        &obs,
        rec.as_ref().and_then(|r| r.model.as_ref()),
        &owned,
    )
    .map_err(|c| Error::Refused(c.iter().map(|x| x.0.clone()).collect::<Vec<_>>().join("\n")))?;
    let commands = plan::explain::script(&ops);
    Ok(PlanReport {
        lab: lab.name.clone(),
        sandbox: lab.sandbox,
        up: rec.is_some_and(|r| r.model.is_some()),
        ops,
        commands,
        notes,
        overlaps,
    })
}
