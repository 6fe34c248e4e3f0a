//! The executor: runs a plan's ops against the kernel. Consecutive netlink ops of
//! one namespace go out as one batch (several requests per send); namespace
//! creation runs on worker threads. Before anything is created, the caller's
//! `intent` hook records it, so a crash never leaves an unknown object behind.

use crate::kernel::conn::{self, Conn};
use crate::kernel::msg::{self, CREATE, KRoute, SetLink, VethEnd};
use crate::kernel::netlink::{NlError, Req};
use crate::kernel::netns;
use crate::plan::{Ns, Op};
use std::collections::HashMap;
use std::io;

/// What the record must know before the kernel is asked to create it.
#[derive(Debug, Clone)]
pub enum Intent {
    Namespaces(Vec<String>),
    /// Interfaces about to be created in the host namespace (host mode), with
    /// the MAC a bridge gets.
    HostLinks(Vec<(String, Option<[u8; 6]>)>),
    /// An nftables table about to be created in the host namespace (host mode).
    NftTable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// `source` names the step already.
    #[error("{source}")]
    Kernel { step: String, source: NlError },
    #[error("{step}: {source}")]
    Io { step: String, source: io::Error },
    #[error("{step}: {source}")]
    Nft {
        step: String,
        source: crate::kernel::nft::NftError,
    },
    #[error("stopped after {0} operations (NSLAB_TEST_FAIL_AFTER)")]
    TestAbort(usize),
}

/// Open namespaces by name; `Ns::HOST` is the namespace nslab runs in (or the lab's
/// recorded host).
pub struct Kernel {
    pub conns: HashMap<Ns, Conn>,
    /// The ifalias new interfaces carry: the lab's ownership mark.
    pub mark: String,
    /// The lab being applied (host forwarding is shared between labs by name).
    pub lab: String,
    /// Called with (ops done, ops in all) as the plan advances.
    pub progress: Option<Box<dyn FnMut(usize, usize)>>,
    /// Test-only: stop after this many kernel operations, as if killed.
    pub fail_after: Option<usize>,
    /// Test-only: after this many kernel operations, fail as if the kernel refused.
    pub refuse_after: Option<usize>,
    pub done: usize,
    /// Namespaces this run created, by identity (their fds stay open in `conns`,
    /// so the identity cannot be reused while the run lasts).
    pub created_ns: HashMap<String, netns::NsId>,
}

impl Kernel {
    pub fn new(host: Conn, lab: &str) -> Kernel {
        let mark = crate::topology::mark_for(lab);
        let mut conns = HashMap::new();
        conns.insert(Ns::HOST, host);
        Kernel {
            conns,
            mark,
            lab: lab.to_string(),
            progress: None,
            fail_after: None,
            refuse_after: None,
            done: 0,
            created_ns: HashMap::new(),
        }
    }

    pub fn conn(&mut self, ns: &Ns) -> Result<&mut Conn, ApplyError> {
        if !self.conns.contains_key(ns) {
            let c = conn::open(ns.as_str()).map_err(|e| ApplyError::Io {
                step: format!("open namespace {ns}"),
                source: e,
            })?;
            self.conns.insert(ns.clone(), c);
        }
        Ok(self.conns.get_mut(ns).expect("just inserted"))
    }

    fn report(&mut self, done: usize, total: usize) {
        if let Some(p) = self.progress.as_mut() {
            p(done, total);
        }
    }

    /// Count `n` operations; fail when the test switch says so. Returns how many of
    /// the `n` may still run.
    fn budget(&mut self, n: usize) -> usize {
        match self.fail_after.or(self.refuse_after) {
            Some(k) => k.saturating_sub(self.done).min(n),
            None => n,
        }
    }

    pub(crate) fn spend(&mut self, n: usize) -> Result<(), ApplyError> {
        self.done += n;
        match (self.fail_after, self.refuse_after) {
            (Some(k), _) if self.done >= k => Err(ApplyError::TestAbort(k)),
            (_, Some(k)) if self.done >= k => Err(ApplyError::Kernel {
                step: format!("operation {}", k + 1),
                source: NlError {
                    what: format!("operation {} (NSLAB_TEST_REFUSE_AFTER)", k + 1),
                    errno: libc::EPERM,
                    ext: Some("refused by the test hook".into()),
                },
            }),
            _ => Ok(()),
        }
    }

    /// A test hook decides how many operations run: one at a time, in order.
    pub fn hooked(&self) -> bool {
        self.fail_after.is_some() || self.refuse_after.is_some()
    }
}

/// A coarse name of what an op does, for NSLAB_TIMING.
fn phase(op: &Op) -> &'static str {
    match op {
        Op::CreateNs { .. } => "create namespaces",
        Op::DeleteNs { .. } => "delete namespaces",
        o if o.is_file_op() => "files",
        o if nl_op(o) && o.ns().is_host() => "netlink in the host",
        o if nl_op(o) => "netlink in the lab's namespaces",
        Op::Sysctl { .. }
        | Op::SetNat { .. }
        | Op::DeleteNat { .. }
        | Op::CreateBridge { .. }
        | Op::CreateVeth { .. }
        | Op::DeleteLink { .. }
        | Op::SetLink { .. }
        | Op::AddAddr { .. }
        | Op::DelAddr { .. }
        | Op::AddRoute { .. }
        | Op::DelRoute { .. }
        | Op::WriteLabHosts { .. }
        | Op::LinkHosts { .. }
        | Op::RemoveEtc { .. }
        | Op::WriteLabResolv { .. }
        | Op::LinkResolv { .. } => "nat and sysctls",
    }
}

/// An op sent as an rtnetlink request (batched per namespace).
fn nl_op(op: &Op) -> bool {
    match op {
        Op::CreateBridge { .. }
        | Op::CreateVeth { .. }
        | Op::DeleteLink { .. }
        | Op::SetLink { .. }
        | Op::AddAddr { .. }
        | Op::DelAddr { .. }
        | Op::AddRoute { .. }
        | Op::DelRoute { .. } => true,
        Op::CreateNs { .. }
        | Op::DeleteNs { .. }
        | Op::Sysctl { .. }
        | Op::SetNat { .. }
        | Op::DeleteNat { .. }
        | Op::WriteLabHosts { .. }
        | Op::LinkHosts { .. }
        | Op::RemoveEtc { .. }
        | Op::WriteLabResolv { .. }
        | Op::LinkResolv { .. } => false,
    }
}

pub fn apply(
    k: &mut Kernel,
    ops: &[Op],
    intent: &mut dyn FnMut(Intent) -> io::Result<()>,
) -> Result<(), ApplyError> {
    // Hosts files need nothing of the kernel: write them on another thread while
    // the kernel works (in test-abort mode everything stays in order).
    let background = !k.hooked();
    std::thread::scope(|s| {
        let files = background.then(|| {
            s.spawn(|| -> Result<(), ApplyError> {
                for op in ops.iter().filter(|o| {
                    matches!(
                        o,
                        Op::WriteLabHosts { .. }
                            | Op::LinkHosts { .. }
                            | Op::WriteLabResolv { .. }
                            | Op::LinkResolv { .. }
                    )
                }) {
                    etc_op(op)?;
                }
                Ok(())
            })
        });
        let r = apply_ops(k, ops, intent, background);
        let f = files.map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(ApplyError::Io {
                    step: "write hosts files".into(),
                    source: io::Error::other("thread panicked"),
                })
            })
        });
        r?;
        f.unwrap_or(Ok(()))
    })
}

/// The lab's hosts file or resolv.conf, or a node's link to one. Files are
/// written in place (same inode): programs already running in the nodes have
/// them bound over /etc and see the update. Whatever is at a link's place and
/// is not nslab's own link (a file someone wrote) is kept.
fn etc_op(op: &Op) -> Result<(), ApplyError> {
    let link = |ns: &crate::plan::Ns, name: &str, target: &str| {
        let dir = std::path::Path::new("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).and_then(|_| link_etc(&dir.join(name), target))
    };
    let r = match op {
        Op::WriteLabHosts { path, content } | Op::WriteLabResolv { path, content } => {
            let p = std::path::Path::new(path);
            p.parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .and_then(|_| std::fs::write(p, content))
        }
        Op::LinkHosts { ns, target } => link(ns, "hosts", target),
        Op::LinkResolv { ns, target } => link(ns, "resolv.conf", target),
        Op::CreateNs { .. }
        | Op::DeleteNs { .. }
        | Op::Sysctl { .. }
        | Op::CreateBridge { .. }
        | Op::CreateVeth { .. }
        | Op::DeleteLink { .. }
        | Op::SetLink { .. }
        | Op::AddAddr { .. }
        | Op::DelAddr { .. }
        | Op::AddRoute { .. }
        | Op::DelRoute { .. }
        | Op::SetNat { .. }
        | Op::DeleteNat { .. }
        | Op::RemoveEtc { .. } => Ok(()),
    };
    r.map_err(|e| ApplyError::Io {
        step: op.to_string(),
        source: e,
    })
}

fn apply_ops(
    k: &mut Kernel,
    ops: &[Op],
    intent: &mut dyn FnMut(Intent) -> io::Result<()>,
    files_in_background: bool,
) -> Result<(), ApplyError> {
    let mut i = 0;
    while i < ops.len() {
        k.report(i, ops.len());
        let op = &ops[i];
        if i > 0 && phase(op) != phase(&ops[i - 1]) {
            crate::timing::mark(phase(&ops[i - 1]));
        }
        match op {
            Op::CreateNs { .. } => i = create_namespaces(k, ops, i, intent)?,
            Op::DeleteNs { ns } => {
                k.conns.remove(ns);
                netns::delete(ns.as_str()).map_err(|e| ApplyError::Io {
                    step: op.to_string(),
                    source: e,
                })?;
                k.spend(1)?;
                i += 1;
            }
            Op::Sysctl { ns, key, value } if ns.is_host() && key == "net.ipv4.ip_forward" => {
                host_forwarding(k, op, ns, value)?;
                i += 1;
            }
            Op::Sysctl { ns, key, value } => {
                let c = k.conn(ns)?;
                let r = netns::run_in(&c.file, || netns::sysctl_set(key, value)).and_then(|r| r);
                r.map_err(|e| ApplyError::Io {
                    step: op.to_string(),
                    source: e,
                })?;
                k.spend(1)?;
                i += 1;
            }
            Op::WriteLabHosts { .. }
            | Op::LinkHosts { .. }
            | Op::WriteLabResolv { .. }
            | Op::LinkResolv { .. } => {
                if !files_in_background {
                    etc_op(op)?;
                }
                i += 1;
            }
            Op::SetNat { .. } | Op::DeleteNat { .. } => {
                nat_op(k, op, intent)?;
                i += 1;
            }
            Op::RemoveEtc { ns } => {
                remove_etc(ns.as_str()).map_err(|e| ApplyError::Io {
                    step: op.to_string(),
                    source: e,
                })?;
                i += 1;
            }
            Op::CreateBridge { .. }
            | Op::CreateVeth { .. }
            | Op::DeleteLink { .. }
            | Op::SetLink { .. }
            | Op::AddAddr { .. }
            | Op::DelAddr { .. }
            | Op::AddRoute { .. }
            | Op::DelRoute { .. }
                if !k.hooked() && !op.ns().is_host() && local(op) =>
            {
                // A run of namespaces that each need only themselves (their links
                // exist): configure them side by side on a few threads.
                let mut j = i;
                while j < ops.len() && nl_op(&ops[j]) && !ops[j].ns().is_host() && local(&ops[j]) {
                    j += 1;
                }
                run_parallel(k, &ops[i..j])?;
                i = j;
            }
            Op::CreateBridge { .. }
            | Op::CreateVeth { .. }
            | Op::DeleteLink { .. }
            | Op::SetLink { .. }
            | Op::AddAddr { .. }
            | Op::DelAddr { .. }
            | Op::AddRoute { .. }
            | Op::DelRoute { .. } => {
                i = netlink_run(k, ops, i, intent)?;
            }
        }
    }
    Ok(())
}

/// The lab's nftables table, created or replaced (recorded first when in the
/// host), or deleted when it carries the lab's mark.
fn nat_op(
    k: &mut Kernel,
    op: &Op,
    intent: &mut dyn FnMut(Intent) -> io::Result<()>,
) -> Result<(), ApplyError> {
    let nft_err = |e| ApplyError::Nft {
        step: op.to_string(),
        source: e,
    };
    let mark = k.mark.clone();
    match op {
        Op::SetNat { ns, table, rules } => {
            if ns.is_host() {
                intent(Intent::NftTable(table.clone())).map_err(|e| ApplyError::Io {
                    step: "write the lab's record".into(),
                    source: e,
                })?;
            }
            let rules: Vec<_> = rules
                .iter()
                .map(crate::kernel::nft::Masquerade::from)
                .collect();
            let c = k.conn(ns)?;
            crate::kernel::nft::socket_in(&c.file)
                .and_then(|mut s| s.replace_nat_table(table, &mark, &rules))
                .map_err(nft_err)?;
        }
        Op::DeleteNat { ns, table } => {
            let c = k.conn(ns)?;
            crate::kernel::nft::socket_in(&c.file)
                .and_then(|mut s| s.delete_table_if_marked(table, &mark))
                .map_err(nft_err)?;
        }
        Op::CreateNs { .. }
        | Op::DeleteNs { .. }
        | Op::Sysctl { .. }
        | Op::CreateBridge { .. }
        | Op::CreateVeth { .. }
        | Op::DeleteLink { .. }
        | Op::SetLink { .. }
        | Op::AddAddr { .. }
        | Op::DelAddr { .. }
        | Op::AddRoute { .. }
        | Op::DelRoute { .. }
        | Op::WriteLabHosts { .. }
        | Op::LinkHosts { .. }
        | Op::RemoveEtc { .. }
        | Op::WriteLabResolv { .. }
        | Op::LinkResolv { .. } => return Ok(()),
    }
    k.spend(1)
}

/// A run of netlink ops of one namespace from `i` on, batched (host links are
/// recorded first). Returns the index after the run.
fn netlink_run(
    k: &mut Kernel,
    ops: &[Op],
    i: usize,
    intent: &mut dyn FnMut(Intent) -> io::Result<()>,
) -> Result<usize, ApplyError> {
    let ns = ops[i].ns().clone();
    let mut j = i;
    while j < ops.len() && nl_op(&ops[j]) && *ops[j].ns() == ns {
        j += 1;
    }
    if ns.is_host() {
        let names: Vec<(String, Option<[u8; 6]>)> = ops[i..j]
            .iter()
            .filter_map(|o| match o {
                Op::CreateBridge { name, mac, .. } => Some((name.clone(), Some(*mac))),
                Op::CreateVeth { a, .. } => Some((a.name.clone(), None)),
                Op::CreateNs { .. }
                | Op::DeleteNs { .. }
                | Op::Sysctl { .. }
                | Op::DeleteLink { .. }
                | Op::SetLink { .. }
                | Op::AddAddr { .. }
                | Op::DelAddr { .. }
                | Op::AddRoute { .. }
                | Op::DelRoute { .. }
                | Op::SetNat { .. }
                | Op::DeleteNat { .. }
                | Op::WriteLabHosts { .. }
                | Op::LinkHosts { .. }
                | Op::RemoveEtc { .. }
                | Op::WriteLabResolv { .. }
                | Op::LinkResolv { .. } => None,
            })
            .collect();
        if !names.is_empty() {
            intent(Intent::HostLinks(names)).map_err(|e| ApplyError::Io {
                step: "write the lab's record".into(),
                source: e,
            })?;
        }
    }
    run_group(k, &ns, &ops[i..j])?;
    Ok(j)
}

/// A run of CreateNs from `i` on, made together (in chunks): each namespace is
/// recorded before it is made. Returns the index after the run.
fn create_namespaces(
    k: &mut Kernel,
    ops: &[Op],
    i: usize,
    intent: &mut dyn FnMut(Intent) -> io::Result<()>,
) -> Result<usize, ApplyError> {
    let mut j = i;
    let mut items = Vec::new();
    while let Some(Op::CreateNs { ns, sysctls, .. }) = ops.get(j) {
        items.push((ns.to_string(), sysctls.clone()));
        j += 1;
    }
    let allowed = k.budget(items.len());
    items.truncate(allowed);
    intent(Intent::Namespaces(
        items.iter().map(|x| x.0.clone()).collect(),
    ))
    .map_err(|e| ApplyError::Io {
        step: "write the lab's record".into(),
        source: e,
    })?;
    netns::ensure_dir().map_err(|e| ApplyError::Io {
        step: format!("prepare {}", netns::netns_dir().display()),
        source: e,
    })?;
    let mut first_err = None;
    // In chunks, so progress can be shown between them.
    for (n, chunk) in items.chunks(128).enumerate() {
        for (name, r) in conn::create_many(chunk, &k.mark) {
            match r {
                Ok(c) => {
                    // The object this run made: rollback deletes only these.
                    if let Ok(id) = netns::id_of(&c.file) {
                        k.created_ns.insert(name.clone(), id);
                    }
                    k.conns.insert(Ns::named(name), c);
                }
                Err(e) => {
                    first_err.get_or_insert(ApplyError::Io {
                        step: format!("create namespace {name}"),
                        source: e,
                    });
                }
            }
        }
        k.report(i + n * 128 + chunk.len(), ops.len());
        if first_err.is_some() {
            break;
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    k.spend(items.len())?;
    Ok(j)
}

/// The real host's forwarding is shared by labs: restored by the last one.
fn host_forwarding(k: &mut Kernel, op: &Op, ns: &Ns, value: &str) -> Result<(), ApplyError> {
    let lab = k.lab.clone();
    let c = k.conn(ns)?;
    let id = netns::id_of(&c.file).map_err(|e| ApplyError::Io {
        step: op.to_string(),
        source: e,
    })?;
    debug_assert_eq!(value, "1");
    {
        let set = crate::hostfwd::setter(&c.file);
        crate::hostfwd::acquire(&lab, id, &set).map_err(|e| ApplyError::Io {
            step: op.to_string(),
            source: e,
        })?;
    }
    k.spend(1)
}

/// Deleting what is already gone is success: deleting one end of a veth takes
/// its peer with it, and a namespace's routes go with their interface.
fn already_gone(op: &Op, e: &NlError) -> bool {
    match op {
        Op::DeleteLink { .. } => e.errno == libc::ENODEV,
        Op::DelAddr { .. } => matches!(e.errno, libc::EADDRNOTAVAIL | libc::ENODEV),
        Op::DelRoute { .. } => matches!(e.errno, libc::ESRCH | libc::ENODEV),
        Op::CreateNs { .. }
        | Op::DeleteNs { .. }
        | Op::Sysctl { .. }
        | Op::CreateBridge { .. }
        | Op::CreateVeth { .. }
        | Op::SetLink { .. }
        | Op::AddAddr { .. }
        | Op::AddRoute { .. }
        | Op::SetNat { .. }
        | Op::DeleteNat { .. }
        | Op::WriteLabHosts { .. }
        | Op::LinkHosts { .. }
        | Op::RemoveEtc { .. }
        | Op::WriteLabResolv { .. }
        | Op::LinkResolv { .. } => false,
    }
}

/// A delete whose interface is not there: nothing left to delete.
fn delete_without_dev(op: &Op) -> bool {
    matches!(op, Op::DelAddr { .. } | Op::DelRoute { .. })
}

/// An op that needs no namespace but its own.
fn local(op: &Op) -> bool {
    !matches!(op, Op::CreateVeth { .. })
}

/// Run the ops of several namespaces at once: each namespace's ops stay in order
/// on one thread, with that namespace's own socket.
fn run_parallel(k: &mut Kernel, ops: &[Op]) -> Result<(), ApplyError> {
    let mut order: Vec<Ns> = Vec::new();
    let mut by_ns: HashMap<Ns, Vec<&Op>> = HashMap::new();
    for op in ops {
        let e = by_ns.entry(op.ns().clone()).or_insert_with(|| {
            order.push(op.ns().clone());
            Vec::new()
        });
        e.push(op);
    }
    let mut work: Vec<(Ns, Conn, Vec<&Op>)> = Vec::with_capacity(order.len());
    for ns in order {
        k.conn(&ns)?;
        let c = k.conns.remove(&ns).expect("just opened");
        let v = by_ns.remove(&ns).unwrap_or_default();
        work.push((ns, c, v));
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
        .min(work.len().max(1));
    let chunk = work.len().div_ceil(workers).max(1);
    let results: Vec<Result<(), ApplyError>> = std::thread::scope(|s| {
        let hs: Vec<_> = work
            .chunks_mut(chunk)
            .map(|part| {
                s.spawn(move || {
                    for (_, c, v) in part.iter_mut() {
                        run_local(c, v)?;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ApplyError::Io {
                        step: "configure namespaces".into(),
                        source: io::Error::other("worker panicked"),
                    })
                })
            })
            .collect()
    });
    let n: usize = work.iter().map(|w| w.2.len()).sum();
    for (ns, c, _) in work {
        k.conns.insert(ns, c);
    }
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    k.done += n;
    Ok(())
}

/// `run_group` for one namespace's own socket (no budget: not in test-abort mode).
fn run_local(c: &mut Conn, ops: &[&Op]) -> Result<(), ApplyError> {
    let mut pending: Vec<(Req, &Op)> = Vec::new();
    let mut idx = 0;
    let send = |c: &mut Conn, pending: &mut Vec<(Req, &Op)>| -> Result<(), ApplyError> {
        let (reqs, ops): (Vec<Req>, Vec<&Op>) = pending.drain(..).unzip();
        let changes = ops
            .iter()
            .any(|o| matches!(o, Op::CreateBridge { .. } | Op::DeleteLink { .. }));
        let results = c.nl.batch(reqs);
        if changes {
            c.mark_stale();
        }
        for (r, op) in results.into_iter().zip(ops) {
            match r {
                Err(e) if !already_gone(op, &e) => {
                    return Err(ApplyError::Kernel {
                        step: op.to_string(),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        Ok(())
    };
    while idx < ops.len() {
        let op = ops[idx];
        match build_local(c, op)? {
            Some(req) => {
                pending.push((req, op));
                idx += 1;
            }
            None if pending.is_empty() && delete_without_dev(op) => idx += 1,
            None if pending.is_empty() => {
                return Err(ApplyError::Kernel {
                    step: op.to_string(),
                    source: NlError {
                        what: op.to_string(),
                        errno: libc::ENODEV,
                        ext: Some("interface not found".into()),
                    },
                });
            }
            None => {
                send(c, &mut pending)?;
                c.mark_stale();
            }
        }
    }
    if !pending.is_empty() {
        send(c, &mut pending)?;
    }
    Ok(())
}

/// The files nslab links under /etc/netns/NS (`ip netns exec` binds them over /etc).
pub const ETC_FILES: &[&str] = &["hosts", "resolv.conf"];

/// Is `p` a link nslab made (one pointing into its state directory)? Files under
/// /etc/netns that are anything else are someone else's: never replaced or removed.
pub fn is_our_link(p: &std::path::Path) -> bool {
    std::fs::read_link(p).is_ok_and(|t| t.starts_with(crate::record::state_dir()))
}

/// Make `link` point to `target`, replacing only a link of ours. A file someone
/// else put there (even one that appeared since the plan was made) is kept.
fn link_etc(link: &std::path::Path, target: &str) -> io::Result<()> {
    if is_our_link(link) {
        std::fs::remove_file(link)?;
    }
    match std::os::unix::fs::symlink(target, link) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// Remove /etc/netns/NS: the files nslab linked there (only links of ours), then
/// the directory if nothing else is in it.
pub fn remove_etc(ns: &str) -> io::Result<()> {
    let dir = std::path::Path::new("/etc/netns").join(ns);
    for f in ETC_FILES {
        let p = dir.join(f);
        if is_our_link(&p) {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    match std::fs::remove_dir(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // Someone put other files there: leave them.
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Build and send the requests of consecutive ops of one namespace. When an op
/// needs an interface index not yet known (a link made earlier in this group),
/// what is built so far is sent first and the namespace's links re-read.
fn run_group(k: &mut Kernel, ns: &Ns, ops: &[Op]) -> Result<(), ApplyError> {
    let mut pending: Vec<(Req, &Op)> = Vec::new();
    let mut idx = 0;
    while idx < ops.len() {
        let op = &ops[idx];
        match build(k, ns, op)? {
            Some(req) => {
                pending.push((req, op));
                // A veth end created in another namespace changes its indexes.
                if let Op::CreateVeth { b, .. } = op
                    && let Some(c) = k.conns.get_mut(&b.ns)
                {
                    c.mark_stale();
                }
                idx += 1;
            }
            None => {
                // Unknown index: flush and retry once after the namespace is re-read.
                if pending.is_empty() && delete_without_dev(op) {
                    idx += 1;
                    continue;
                }
                if pending.is_empty() {
                    return Err(ApplyError::Kernel {
                        step: op.to_string(),
                        source: NlError {
                            what: format!("{op}"),
                            errno: libc::ENODEV,
                            ext: Some("interface not found".into()),
                        },
                    });
                }
                flush(k, ns, &mut pending)?;
                k.conn(ns)?.mark_stale();
            }
        }
    }
    flush(k, ns, &mut pending)
}

fn flush(k: &mut Kernel, ns: &Ns, pending: &mut Vec<(Req, &Op)>) -> Result<(), ApplyError> {
    if pending.is_empty() {
        return Ok(());
    }
    let allowed = k.budget(pending.len());
    let batch: Vec<(Req, &Op)> = pending.drain(..).take(allowed).collect();
    let (reqs, ops): (Vec<Req>, Vec<&Op>) = batch.into_iter().unzip();
    let n = reqs.len();
    let changes_links = ops.iter().any(|o| {
        matches!(
            o,
            Op::CreateBridge { .. } | Op::CreateVeth { .. } | Op::DeleteLink { .. }
        )
    });
    let c = k.conn(ns)?;
    let results = c.nl.batch(reqs);
    if changes_links {
        c.mark_stale();
    }
    for (r, op) in results.into_iter().zip(ops) {
        if let Err(e) = r
            && !already_gone(op, &e)
        {
            return Err(ApplyError::Kernel {
                step: op.to_string(),
                source: e,
            });
        }
    }
    k.spend(n)
}

fn index(k: &mut Kernel, ns: &Ns, name: &str) -> Result<Option<u32>, ApplyError> {
    index_in(k.conn(ns)?, name)
}

fn index_in(c: &mut Conn, name: &str) -> Result<Option<u32>, ApplyError> {
    c.index(name).map_err(|e| ApplyError::Kernel {
        step: format!("find {name}"),
        source: e,
    })
}

/// The request for one op, or None when it needs an index that is not known yet.
fn build(k: &mut Kernel, ns: &Ns, op: &Op) -> Result<Option<Req>, ApplyError> {
    let what = op.to_string();
    Ok(Some(match op {
        Op::CreateVeth { a, b } => {
            let master = match &a.master {
                Some(m) => match index(k, ns, m)? {
                    Some(i) => Some(i),
                    None => return Ok(None),
                },
                None => None,
            };
            let b_fd = if b.ns == a.ns {
                None
            } else {
                Some(netns::raw(&k.conn(&b.ns)?.file))
            };
            let ea = VethEnd {
                name: &a.name,
                ns_fd: None,
                mtu: a.mtu,
                mac: a.mac,
                master,
            };
            let eb = VethEnd {
                name: &b.name,
                ns_fd: b_fd,
                mtu: b.mtu,
                mac: b.mac,
                master: None,
            };
            Req {
                msg: msg::new_veth(&ea, &eb),
                flags: CREATE,
                what,
            }
        }
        Op::CreateBridge { .. }
        | Op::DeleteLink { .. }
        | Op::SetLink { .. }
        | Op::AddAddr { .. }
        | Op::DelAddr { .. }
        | Op::AddRoute { .. }
        | Op::DelRoute { .. }
        | Op::CreateNs { .. }
        | Op::DeleteNs { .. }
        | Op::Sysctl { .. }
        | Op::SetNat { .. }
        | Op::DeleteNat { .. }
        | Op::WriteLabHosts { .. }
        | Op::LinkHosts { .. }
        | Op::RemoveEtc { .. }
        | Op::WriteLabResolv { .. }
        | Op::LinkResolv { .. } => return build_local(k.conn(ns)?, op),
    }))
}

/// The request for an op that needs only its own namespace (all but CreateVeth).
fn build_local(c: &mut Conn, op: &Op) -> Result<Option<Req>, ApplyError> {
    let what = op.to_string();
    Ok(Some(match op {
        Op::CreateBridge { name, mac, mtu, .. } => Req {
            msg: msg::new_bridge(name, *mac, *mtu),
            flags: CREATE,
            what,
        },
        Op::DeleteLink { name, .. } => Req {
            msg: msg::del_link(name),
            flags: 0,
            what,
        },
        Op::SetLink {
            name,
            no_link_local,
            master,
            mtu,
            mac,
            alias,
            up,
            ..
        } => {
            let m = match master {
                Some(m) => match index_in(c, m)? {
                    Some(i) => Some(i),
                    None => return Ok(None),
                },
                None => None,
            };
            let s = SetLink {
                up: up.then_some(true),
                master: m,
                alias: alias.as_deref(),
                mtu: *mtu,
                mac: *mac,
                no_link_local: *no_link_local,
            };
            Req {
                msg: msg::set_link(name, &s),
                flags: 0,
                what,
            }
        }
        Op::AddAddr { dev, addr, .. } | Op::DelAddr { dev, addr, .. } => {
            let Some(i) = index_in(c, dev)? else {
                return Ok(None);
            };
            if matches!(op, Op::AddAddr { .. }) {
                Req {
                    msg: msg::new_addr(i, addr),
                    flags: CREATE,
                    what,
                }
            } else {
                Req {
                    msg: msg::del_addr(i, addr),
                    flags: 0,
                    what,
                }
            }
        }
        Op::AddRoute { route, .. } | Op::DelRoute { route, .. } => {
            let oif = match &route.dev {
                Some(d) => match index_in(c, d)? {
                    Some(i) => Some(i),
                    None => return Ok(None),
                },
                None => None,
            };
            let kr = KRoute {
                dst: route.dst,
                via: route.via,
                oif,
                onlink: route.onlink,
                metric: route.metric,
            };
            if matches!(op, Op::AddRoute { .. }) {
                Req {
                    msg: msg::new_route(&kr),
                    flags: CREATE,
                    what,
                }
            } else {
                Req {
                    msg: msg::del_route(&kr),
                    flags: 0,
                    what,
                }
            }
        }
        // Not rtnetlink requests built here (apply_ops routes them elsewhere;
        // CreateVeth needs the peer's namespace and goes through `build`).
        Op::CreateVeth { .. }
        | Op::CreateNs { .. }
        | Op::DeleteNs { .. }
        | Op::Sysctl { .. }
        | Op::SetNat { .. }
        | Op::DeleteNat { .. }
        | Op::WriteLabHosts { .. }
        | Op::LinkHosts { .. }
        | Op::RemoveEtc { .. }
        | Op::WriteLabResolv { .. }
        | Op::LinkResolv { .. } => return Ok(None),
    }))
}
