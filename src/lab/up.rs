//! `up`: bring a lab up, or in line with its file, and roll back what failed.

use super::*;

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub prefix: String,
    pub sandbox: bool,
    /// Allow host-mode addresses that overlap routes of interfaces nslab does not own.
    pub force: bool,
    /// Drop the lab's runtime state (`nslab link` downs, partitions) instead
    /// of keeping it: the lab comes back exactly as its file says.
    pub reset: bool,
    /// Crash, refusal and pause points for tests.
    pub hooks: TestHooks,
}

/// Points where tests make `up` stop, fail or wait, so crashes and races are
/// deterministic. The CLI sets them from `NSLAB_TEST_*`; the library reads no
/// environment.
///
/// ```
/// let hooks = nslab::TestHooks { refuse_after: Some(4), ..Default::default() };
/// let opts = nslab::Options { hooks, sandbox: true, ..Default::default() };
/// assert_eq!(opts.hooks.fail_after, None);
/// ```
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

/// What `up` did: the steps (ops), whether anything changed, notes on
/// things found and left alone.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// let topo = nslab::Topology::from_file("examples/objective1-veth.yaml")?;
/// let opts = nslab::Options { prefix: "doc-".into(), sandbox: true, ..Default::default() };
/// let (lab, r): (nslab::Lab, nslab::UpReport) = nslab::Lab::up_with(&topo, &opts, None)?;
/// assert!(r.changed);
/// # drop(lab);
/// # Ok(())
/// # }
/// ```
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
/// only `force`, `reset` and `hooks` are used (the lab is made already).
pub fn up_lab_with(
    lab: Lab,
    file: Option<&Path>,
    opts: &UpOptions,
    progress: Option<Box<dyn FnMut(usize, usize)>>,
) -> Result<UpReport> {
    up_lab_returning(lab, file, opts, progress).map(|(rep, _)| rep)
}

/// `up_lab_with`, handing the model back: a caller that keeps it (the
/// library's `Lab` handle) need not hold a copy through `up` (at 10,000
/// nodes a model is ~8 MiB, and `up`'s peak is its plan).
pub(crate) fn up_lab_returning(
    lab: Lab,
    file: Option<&Path>,
    opts: &UpOptions,
    progress: Option<Box<dyn FnMut(usize, usize)>>,
) -> Result<(UpReport, Lab)> {
    require_caps("up")?;
    crate::timing::mark("start");
    let t0 = Instant::now();
    netns::raise_nofile_limit();
    crate::runtime::shape::check_file_shapes(&lab)?;
    let _lock = lock_lab(&lab.name)?;
    crate::runtime::publish::refuse_conflicts(&lab)?;
    let (mut rec, here) = open_record(&lab)?;
    let shapes_before = crate::runtime::shape::effective(&rec);
    let published_before = crate::runtime::publish::wanted(&rec);
    let firewalls_before = crate::runtime::firewall::wanted(&rec);
    // `--reset` drops runtime state first, so the plan brings those links up.
    let mut runtime_notes = if opts.reset {
        crate::runtime::after_up(&mut rec, &lab, true)?
    } else {
        Vec::new()
    };
    let mut k = Kernel::new(
        conn::open_current().map_err(Error::io("open a netlink socket"))?,
        &lab.name,
    );
    k.progress = progress;
    k.hooks.fail_after = opts.hooks.fail_after;
    k.hooks.refuse_after = opts.hooks.refuse_after;
    let mut names: BTreeSet<String> = lab.namespaces().into_iter().collect();
    names.extend(rec.namespaces.iter().cloned());
    let obs = observe(&mut k, &lab, &names, rec.model.as_ref())?;
    drop(names);
    crate::timing::mark("observe");
    if !lab.sandbox && !opts.force {
        refuse_overlaps(&lab, &obs)?;
    }
    let (ops, notes) = plan_ops(&lab, &obs, &rec)?;
    rec.file = file.map(|f| {
        std::fs::canonicalize(f)
            .unwrap_or(f.to_path_buf())
            .display()
            .to_string()
    });
    crate::timing::mark("plan");
    // The plan's working lists (a copy of the wanted state, the ops by kind)
    // are freed, but glibc keeps their pages: at 10,000 nodes ~10 MiB held
    // through the netlink phase.
    crate::topology::give_back_freed_memory();
    clear_stale_ns_files(&lab, &ops, &rec)?;
    opts.hooks.pause("planned");
    let before = rec.clone();
    // What this run is about to create (an intent may not have happened yet).
    let mut created: Vec<Intent> = Vec::new();
    let result = apply_recorded(&mut k, &ops, &mut rec, &mut created).and_then(|()| {
        crate::timing::mark("apply (last ops)");
        opts.hooks.pause("applied");
        finish(&mut k, &lab, &mut rec, here)
    });
    if let Err(e) = result {
        return Err(undo(&mut k, e, &lab, rec, before, &obs, &created, &ops));
    }
    // Only a rollback needs these; at 10,000 nodes they are megabytes the wait
    // below would hold, and the apply's freed buffers go back too.
    drop((before, created, obs));
    crate::topology::give_back_freed_memory();
    // Runtime state is kept: links set down stay down, partitions stay.
    if !opts.reset {
        runtime_notes = crate::runtime::after_up(&mut rec, &lab, false)?;
    }
    // Up means passing traffic: wait for the kernel's link-watch work and the
    // bridge ports before programs start and before `up` returns.
    // STP holds new ports listening, then learning, a forward delay each.
    let limit = crate::kernel::ready::limit_for_stp(
        lab.bridges
            .iter()
            .filter_map(|b| b.stp.map(|s| (s.forward_delay, s.max_age))),
    );
    // The wait reads every namespace's links (at 10,000 nodes the peak of
    // `up`). The record's copy of the model is not needed for it (the record
    // is not saved meanwhile): ~9 MiB at 10,000 nodes, made again after.
    rec.model = None;
    let not_ready =
        crate::kernel::ready::wait_lab(&rec.namespaces, lab.sandbox, &rec.host_links, limit);
    rec.model = Some(lab.clone());
    crate::timing::mark("wait for traffic");
    let started = start_programs(&mut k, &mut rec, &lab)?;
    rec.save().map_err(Error::io("write the lab's record"))?;
    let changed_programs = !started.is_empty();
    let mut notes = notes;
    notes.extend(not_ready);
    notes.extend(runtime_notes);
    notes.extend(started);
    notes.extend(crate::runtime::shape::reapply(&rec, &shapes_before));
    let published = crate::runtime::publish::reconcile(&rec, published_before)?;
    notes.extend(published.clone());
    let firewalled = crate::runtime::firewall::reconcile(&rec, firewalls_before)?;
    notes.extend(firewalled.clone());
    let rep = UpReport {
        lab: lab.name.clone(),
        sandbox: lab.sandbox,
        changed: !ops.is_empty()
            || changed_programs
            || !published.is_empty()
            || !firewalled.is_empty(),
        ops,
        notes,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((rep, lab))
}

/// The lab's record (a new one if it has none), and the namespace nslab runs in;
/// refused when the lab is up in the other mode or from another namespace.
fn open_record(lab: &Lab) -> Result<(Record, netns::NsId)> {
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
    Ok((rec, here))
}

/// Host mode: refuse a lab whose networks the host already uses.
fn refuse_overlaps(lab: &Lab, obs: &Observed) -> Result<()> {
    let o = overlaps(lab, &obs.ns[&Ns::HOST].state);
    if !o.is_empty() {
        return Err(Error::Refused(format!(
            "{}\nA lab in host mode must not take over a network the host already uses. Change the lab's addresses, use --sandbox (the lab gets its own host namespace), or --force if you mean it. Nothing was changed.",
            o.join("\n")
        )));
    }
    Ok(())
}

/// The ops that bring the kernel in line with the lab, and notes; refused on
/// conflicts (nothing changed).
fn plan_ops(lab: &Lab, obs: &Observed, rec: &Record) -> Result<(Vec<Op>, Vec<String>)> {
    plan::plan_up(
        lab,
        obs,
        rec.model.as_ref(),
        &plan::Owned {
            namespaces: rec.namespaces.clone(),
            host_links: rec.host_links.clone(),
            bridge_macs: rec.bridge_macs.clone(),
            links_down: crate::runtime::down_set(&rec.runtime, lab),
            force_down: crate::runtime::force_down_set(&rec.runtime, lab),
        },
    )
    .map_err(|c| Error::Refused(format!("{}\nNothing was changed.", conflict_lines(&c))))
}

/// One line per conflict, the first few: 10,000 namespaces in the way are one
/// problem, said a few times and counted.
pub(crate) fn conflict_lines(c: &[plan::Conflict]) -> String {
    let mut lines: Vec<String> = c
        .iter()
        .take(crate::util::SHOWN)
        .map(|x| x.0.clone())
        .collect();
    if c.len() > crate::util::SHOWN + 1 {
        lines.push(format!(
            "… and {} more conflicts like these",
            crate::util::count(c.len() - crate::util::SHOWN)
        ));
    } else {
        lines.extend(c.iter().skip(crate::util::SHOWN).map(|x| x.0.clone()));
    }
    lines.join("\n")
}

/// A namespace file that is not a mounted namespace (a crash between creating
/// the file and mounting it, or a reboot with /run on disk): ours is replaced,
/// anyone else's is in the way.
fn clear_stale_ns_files(lab: &Lab, ops: &[Op], rec: &Record) -> Result<()> {
    for op in ops {
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
    Ok(())
}

/// Apply the ops, writing each intent into the record before it is carried out
/// (and into `created`, for rollback).
fn apply_recorded(
    k: &mut Kernel,
    ops: &[Op],
    rec: &mut Record,
    created: &mut Vec<Intent>,
) -> Result<()> {
    apply::apply(k, ops, &mut |i| {
        rec.note(&i);
        created.push(i);
        rec.save()
    })
    .map_err(Error::Apply)
}

/// After a failed apply: restore the model the lab had (or remove what this run
/// made), put the record back as it was, and say what happened.
#[allow(clippy::too_many_arguments)]
fn undo(
    k: &mut Kernel,
    e: Error,
    lab: &Lab,
    rec: Record,
    before: Record,
    obs: &Observed,
    created: &[Intent],
    ops: &[Op],
) -> Error {
    // The test switch plays a crash: leave everything as a killed process would.
    if matches!(e, Error::Apply(apply::ApplyError::TestAbort(_))) {
        let _ = rec.save();
        return e;
    }
    k.hooks.fail_after = None;
    k.hooks.refuse_after = None;
    let undone = match before.model.clone() {
        // A running lab: bring it back to the model it had.
        Some(prev) => restore(k, &prev, lab, &before),
        None => {
            let existed: BTreeSet<String> = obs
                .ns
                .get(&Ns::HOST)
                .map(|o| o.state.links.iter().map(|l| l.name.clone()).collect())
                .unwrap_or_default();
            let undone = rollback(k, lab, created, &existed);
            // Hosts links written (on their own thread) for every node, also
            // where a namespace turned out not to be ours: only our links go.
            for op in ops {
                if let Op::LinkHosts { ns, .. } | Op::LinkResolv { ns, .. } = op {
                    let _ = apply::remove_etc(ns.as_str());
                }
            }
            let _ = std::fs::remove_file(record::hosts_path(&lab.name));
            let _ = std::fs::remove_file(record::resolv_path(&lab.name));
            undone
        }
    };
    let rec = before;
    let r = if rec.model.is_none() && rec.namespaces.is_empty() && rec.host_links.is_empty() {
        rec.remove()
    } else {
        rec.save()
    };
    let mut msg = format!("{e}\n{undone}");
    if let Err(re) = r {
        msg.push_str(&format!("\nRestoring the lab's record failed too: {re}"));
    }
    Error::Failed(msg)
}

/// Programs last: the network they talk over is ready now.
fn start_programs(k: &mut Kernel, rec: &mut Record, lab: &Lab) -> Result<Vec<String>> {
    let started = crate::programs::reconcile(rec, lab, &mut || {
        // The test switch (NSLAB_TEST_FAIL_AFTER) counts starting a program as
        // one more step: a crash between starting it and recording its pid.
        k.spend(1).map_err(Error::Apply)
    });
    started.map_err(|e| {
        if matches!(e, Error::Apply(apply::ApplyError::TestAbort(_))) {
            return e;
        }
        let _ = rec.save();
        Error::Failed(format!(
            "{e}\nThe network of lab {} is up; the program above did not start. Fix it and run `nslab up` again (it starts only what is not running).",
            lab.name
        ))
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
    if !lab.sandbox {
        // Host sysctls the file no longer sets go back to what they were.
        let c = k.conn(&Ns::HOST)?;
        let wanted = &lab.host.sysctl;
        crate::hostfwd::release_keys(&lab.name, here, &c.file, &|key| !wanted.contains_key(key))
            .map_err(Error::io("restore host sysctls"))?;
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
    let r = observe(k, prev, &names, Some(failed)).and_then(|obs| {
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
                links_down: crate::runtime::down_set(&before.runtime, prev),
                force_down: crate::runtime::force_down_set(&before.runtime, prev),
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
    let mut gone_ns: Vec<String> = Vec::new();
    let mut gone_links: Vec<String> = Vec::new();
    let mut gone = Vec::new();
    let mut failed = Vec::new();
    for i in created.iter().rev() {
        match i {
            Intent::Namespaces(v) => {
                for ns in v {
                    // Only the namespace this run made, checked on the object: a
                    // name someone else took meanwhile (the likely cause of the
                    // failure) is theirs.
                    // Its handle closed first: the check below needs a
                    // descriptor, and a failure for want of them (EMFILE) must
                    // not leave a namespace of ours behind.
                    k.conns.remove(ns.as_str());
                    let made = k.created_ns.get(ns).copied();
                    let same = made.is_some()
                        && netns::open(ns)
                            .and_then(|f| netns::id_of(&f))
                            .is_ok_and(|id| Some(id) == made);
                    if same {
                        match netns::delete(ns) {
                            Ok(()) => gone_ns.push(ns.clone()),
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
                            Ok(()) => gone_links.push(name.clone()),
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
    // Counted, with the first few names: a lab of 10,000 nodes rolled back
    // is one readable line.
    use crate::util::{counted, names};
    let mut parts: Vec<String> = Vec::new();
    if !gone_ns.is_empty() {
        gone_ns.sort();
        parts.push(format!(
            "{} ({})",
            counted(gone_ns.len(), "namespace"),
            names(&gone_ns)
        ));
    }
    if !gone_links.is_empty() {
        parts.push(format!(
            "{} ({})",
            counted(gone_links.len(), "interface"),
            names(&gone_links)
        ));
    }
    parts.extend(gone);
    let mut msg = if parts.is_empty() {
        "Nothing had been created; nothing was left behind.".to_string()
    } else {
        format!("Rolled back what this run created: {}.", parts.join(", "))
    };
    if !failed.is_empty() {
        msg.push_str(&format!(
            " Could not remove {}: {} (run `nslab down --lab {}`).",
            if failed.len() == 1 {
                "1 thing".to_string()
            } else {
                format!("{} things", crate::util::count(failed.len()))
            },
            names(&failed),
            lab.name
        ));
    }
    msg
}
