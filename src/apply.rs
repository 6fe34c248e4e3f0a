//! The executor: runs a plan's ops against the kernel. Consecutive netlink ops of
//! one namespace go out as one batch (several requests per send); namespace
//! creation runs on worker threads. Before anything is created, the caller's
//! `intent` hook records it, so a crash never leaves an unknown object behind.

use crate::kernel::conn::Conn;
use crate::kernel::msg::KRoute;
use crate::kernel::netlink::NlError;
use crate::kernel::netns;
use crate::kernel::seam::{Files, LinkReq, NsHandle, PeerNs, Real, System, VethSpec};
use crate::plan::{Ns, Op, VxlanSpec};
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

/// A step of bringing a lab up that failed: the kernel's refusal (its errno
/// and extended-ack text), a file, or an nftables request.
///
/// ```
/// let e = nslab::Error::Apply(nslab::ApplyError::TestAbort(3));
/// assert!(e.to_string().contains("after 3 operations"));
/// assert_eq!(e.errno(), None);
/// ```
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

/// The test hooks: how many kernel operations ran, and when to stop.
#[derive(Debug, Default, Clone)]
pub struct Hooks {
    /// Test-only: stop after this many kernel operations, as if killed.
    pub fail_after: Option<usize>,
    /// Test-only: after this many kernel operations, fail as if the kernel refused.
    pub refuse_after: Option<usize>,
    pub done: usize,
}

impl Hooks {
    /// How many of `n` operations may still run.
    fn budget(&self, n: usize) -> usize {
        match self.fail_after.or(self.refuse_after) {
            Some(k) => k.saturating_sub(self.done).min(n),
            None => n,
        }
    }

    /// Count `n` operations; fail when the test switch says so.
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

/// Open namespaces by name; `Ns::HOST` is the namespace nslab runs in (or the lab's
/// recorded host). `S` is the kernel: the real one, or a fake in unit tests.
pub struct Kernel<S: System = Real> {
    pub sys: S,
    pub conns: HashMap<Ns, S::Handle>,
    /// The ifalias new interfaces carry: the lab's ownership mark.
    pub mark: String,
    /// The lab being applied (host forwarding is shared between labs by name).
    pub lab: String,
    /// Called with (ops done, ops in all) as the plan advances.
    pub progress: Option<Box<dyn FnMut(usize, usize)>>,
    pub hooks: Hooks,
    /// Namespaces this run created, by identity (rollback deletes only these;
    /// each is mounted under its name, so its identity stays its own while it is).
    pub created_ns: HashMap<String, netns::NsId>,
    /// At most this many handles open at once (in `conns` and taken out of it);
    /// the least recently used go first. A big lab is worked on in batches of
    /// [`Kernel::group`] namespaces, each opened, used and let go.
    pub max_open: usize,
    /// When each cached handle was last used (a tick of `clock`).
    used: HashMap<Ns, u64>,
    clock: u64,
    /// Handles taken out of `conns` by [`Kernel::take_many`], not yet given back.
    out: usize,
}

impl Kernel<Real> {
    pub fn new(host: Conn, lab: &str) -> Kernel {
        let mut k = Kernel::with(Real, host, lab);
        // Two descriptors per handle: the namespace's fd and its socket.
        k.max_open = (netns::fd_budget() / 2).max(4);
        k
    }
}

impl<S: System> Kernel<S> {
    pub fn with(sys: S, host: S::Handle, lab: &str) -> Kernel<S> {
        let mark = crate::topology::mark_for(lab);
        let mut conns = HashMap::new();
        conns.insert(Ns::HOST, host);
        Kernel {
            sys,
            conns,
            mark,
            lab: lab.to_string(),
            progress: None,
            hooks: Hooks::default(),
            created_ns: HashMap::new(),
            max_open: usize::MAX,
            used: HashMap::new(),
            clock: 0,
            out: 0,
        }
    }

    pub fn conn(&mut self, ns: &Ns) -> Result<&mut S::Handle, ApplyError> {
        if !self.conns.contains_key(ns) {
            let c = self.sys.open(ns.as_str()).map_err(|e| ApplyError::Io {
                step: format!("open namespace {ns}"),
                source: e,
            })?;
            self.put(ns.clone(), c);
        }
        self.touch(ns);
        Ok(self.conns.get_mut(ns).expect("just inserted"))
    }

    /// How many namespaces a batch may take at once (half of what may be open:
    /// the other half stays cached).
    pub fn group(&self) -> usize {
        (self.max_open / 2).max(1)
    }

    fn touch(&mut self, ns: &Ns) {
        self.clock += 1;
        self.used.insert(ns.clone(), self.clock);
    }

    /// Cache a handle, letting go of the least recently used ones when too many
    /// are open.
    pub fn put(&mut self, ns: Ns, h: S::Handle) {
        self.touch(&ns);
        self.conns.insert(ns, h);
        self.trim(self.max_open);
    }

    /// Close cached handles, least recently used first (never the host's),
    /// until at most `limit` are open; past the limit, down to three quarters
    /// of it, so that closing happens in bulk.
    fn trim(&mut self, limit: usize) {
        if self.conns.len() + self.out <= limit {
            return;
        }
        let target = (limit - limit / 4).saturating_sub(self.out);
        let mut old: Vec<(u64, Ns)> = self
            .conns
            .keys()
            .filter(|ns| !ns.is_host())
            .map(|ns| (self.used.get(ns).copied().unwrap_or(0), ns.clone()))
            .collect();
        old.sort_unstable();
        let extra = self.conns.len().saturating_sub(target);
        for (_, ns) in old.into_iter().take(extra) {
            self.conns.remove(&ns);
            self.used.remove(&ns);
        }
    }

    /// Take the handles of `nss` out of the cache (a batch's worth, see
    /// [`Kernel::group`]), opening those not open, several at once. Give them
    /// back with [`Kernel::give_back`].
    pub fn take_many(&mut self, nss: &[Ns]) -> Result<Vec<(Ns, S::Handle)>, ApplyError> {
        // The cached ones out first, so that making room cannot close them.
        let mut cached: HashMap<&Ns, S::Handle> = HashMap::new();
        for ns in nss {
            if let Some(h) = self.conns.remove(ns) {
                self.used.remove(ns);
                cached.insert(ns, h);
            }
        }
        let missing: Vec<&str> = nss
            .iter()
            .filter(|ns| !cached.contains_key(ns))
            .map(|ns| ns.as_str())
            .collect();
        // Room for the batch: what is cached plus what is out stays under the limit.
        self.out += nss.len();
        self.trim(self.max_open);
        let mut opened: HashMap<&str, S::Handle> = HashMap::new();
        let mut failed = None;
        for (name, r) in missing.iter().zip(self.sys.open_many(&missing)) {
            match r {
                Ok(h) => {
                    opened.insert(name, h);
                }
                Err(e) => {
                    failed.get_or_insert(ApplyError::Io {
                        step: format!("open namespace {name}"),
                        source: e,
                    });
                }
            }
        }
        let mut v = Vec::with_capacity(nss.len());
        for ns in nss {
            if let Some(h) = cached.remove(ns).or_else(|| opened.remove(ns.as_str())) {
                v.push((ns.clone(), h));
            }
        }
        // Only what was taken counts as out.
        self.out = self.out.saturating_sub(nss.len() - v.len());
        if let Some(e) = failed {
            self.give_back(v);
            return Err(e);
        }
        Ok(v)
    }

    /// Close cached handles so that `n` more can be opened within the limit.
    fn make_room(&mut self, n: usize) {
        self.out += n;
        self.trim(self.max_open);
        self.out -= n;
    }

    /// Return handles taken by [`Kernel::take_many`] to the cache.
    pub fn give_back(&mut self, v: Vec<(Ns, S::Handle)>) {
        for (ns, h) in v {
            self.out = self.out.saturating_sub(1);
            self.put(ns, h);
        }
    }

    fn report(&mut self, done: usize, total: usize) {
        if let Some(p) = self.progress.as_mut() {
            p(done, total);
        }
    }

    pub(crate) fn spend(&mut self, n: usize) -> Result<(), ApplyError> {
        self.hooks.spend(n)
    }

    /// A test hook decides how many operations run: one at a time, in order.
    pub fn hooked(&self) -> bool {
        self.hooks.hooked()
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
        | Op::SetBridgeStp { .. }
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
        | Op::LinkResolv { .. }
        | Op::CreateVxlan { .. }
        | Op::AddFdb { .. } => "nat and sysctls",
    }
}

/// An op sent as an rtnetlink request (batched per namespace).
fn nl_op(op: &Op) -> bool {
    match op {
        Op::CreateBridge { .. }
        | Op::SetBridgeStp { .. }
        | Op::CreateVeth { .. }
        | Op::DeleteLink { .. }
        | Op::SetLink { .. }
        | Op::AddAddr { .. }
        | Op::DelAddr { .. }
        | Op::AddRoute { .. }
        | Op::DelRoute { .. }
        | Op::CreateVxlan { .. }
        | Op::AddFdb { .. } => true,
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

pub fn apply<S: System>(
    k: &mut Kernel<S>,
    ops: &[Op],
    intent: &mut dyn FnMut(Intent) -> io::Result<()>,
) -> Result<(), ApplyError> {
    // Hosts files need nothing of the kernel: write them on another thread while
    // the kernel works (in test-abort mode everything stays in order).
    let background = !k.hooked();
    let files = k.sys.files();
    let cfg = &crate::config::inherit();
    std::thread::scope(|s| {
        let writer = background.then(|| {
            let files = &*files;
            s.spawn(move || -> Result<(), ApplyError> {
                let _cfg = cfg.enter();
                for op in ops.iter().filter(|o| is_etc_write(o)) {
                    etc_op(files, op)?;
                }
                Ok(())
            })
        });
        let r = apply_ops(k, &*files, ops, intent, background);
        let f = writer.map(|h| {
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

/// A file op that needs nothing of the kernel (written beside it).
fn is_etc_write(op: &Op) -> bool {
    matches!(
        op,
        Op::WriteLabHosts { .. }
            | Op::LinkHosts { .. }
            | Op::WriteLabResolv { .. }
            | Op::LinkResolv { .. }
    )
}

/// The lab's hosts file or resolv.conf, or a node's link to one. Files are
/// written in place (same inode): programs already running in the nodes have
/// them bound over /etc and see the update. Whatever is at a link's place and
/// is not nslab's own link (a file someone wrote) is kept.
fn etc_op(files: &dyn Files, op: &Op) -> Result<(), ApplyError> {
    let etc = |ns: &Ns, name: &str| std::path::Path::new("/etc/netns").join(ns).join(name);
    let r = match op {
        Op::WriteLabHosts { path, content } | Op::WriteLabResolv { path, content } => {
            files.write(std::path::Path::new(path), content)
        }
        Op::LinkHosts { ns, target } => files.link_etc(&etc(ns, "hosts"), target),
        Op::LinkResolv { ns, target } => files.link_etc(&etc(ns, "resolv.conf"), target),
        Op::RemoveEtc { ns } => files.remove_etc(ns.as_str()),
        Op::CreateNs { .. }
        | Op::DeleteNs { .. }
        | Op::Sysctl { .. }
        | Op::CreateBridge { .. }
        | Op::SetBridgeStp { .. }
        | Op::CreateVeth { .. }
        | Op::DeleteLink { .. }
        | Op::SetLink { .. }
        | Op::AddAddr { .. }
        | Op::DelAddr { .. }
        | Op::AddRoute { .. }
        | Op::DelRoute { .. }
        | Op::SetNat { .. }
        | Op::DeleteNat { .. }
        | Op::CreateVxlan { .. }
        | Op::AddFdb { .. } => Ok(()),
    };
    r.map_err(|e| ApplyError::Io {
        step: op.to_string(),
        source: e,
    })
}

fn apply_ops<S: System>(
    k: &mut Kernel<S>,
    files: &dyn Files,
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
        let io_err = |e| ApplyError::Io {
            step: op.to_string(),
            source: e,
        };
        match op {
            Op::CreateNs { .. } => i = create_namespaces(k, ops, i, intent)?,
            Op::DeleteNs { ns } => {
                k.conns.remove(ns);
                k.sys.delete(ns.as_str()).map_err(io_err)?;
                k.spend(1)?;
                i += 1;
            }
            Op::Sysctl { ns, key, value } if ns.is_host() => {
                host_sysctl(k, op, ns, key, value)?;
                i += 1;
            }
            Op::Sysctl { ns, key, value } => {
                k.conn(ns)?.sysctl_set(key, value).map_err(io_err)?;
                k.spend(1)?;
                i += 1;
            }
            Op::WriteLabHosts { .. }
            | Op::LinkHosts { .. }
            | Op::WriteLabResolv { .. }
            | Op::LinkResolv { .. }
            | Op::RemoveEtc { .. } => {
                if !files_in_background || !is_etc_write(op) {
                    etc_op(files, op)?;
                }
                i += 1;
            }
            Op::SetNat { .. } | Op::DeleteNat { .. } => {
                nat_op(k, op, intent)?;
                i += 1;
            }
            Op::CreateBridge { .. }
            | Op::SetBridgeStp { .. }
            | Op::CreateVeth { .. }
            | Op::DeleteLink { .. }
            | Op::SetLink { .. }
            | Op::AddAddr { .. }
            | Op::DelAddr { .. }
            | Op::AddRoute { .. }
            | Op::DelRoute { .. }
            | Op::CreateVxlan { .. }
            | Op::AddFdb { .. }
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
            | Op::SetBridgeStp { .. }
            | Op::CreateVeth { .. }
            | Op::DeleteLink { .. }
            | Op::SetLink { .. }
            | Op::AddAddr { .. }
            | Op::DelAddr { .. }
            | Op::AddRoute { .. }
            | Op::DelRoute { .. }
            | Op::CreateVxlan { .. }
            | Op::AddFdb { .. } => {
                i = netlink_run(k, ops, i, intent)?;
            }
        }
    }
    Ok(())
}

/// The lab's nftables table, created or replaced (recorded first when in the
/// host), or deleted when it carries the lab's mark.
fn nat_op<S: System>(
    k: &mut Kernel<S>,
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
                intent(Intent::NftTable(table.clone())).map_err(record_err)?;
            }
            let rules: Vec<_> = rules
                .iter()
                .map(crate::kernel::nft::Masquerade::from)
                .collect();
            k.conn(ns)?
                .nat_replace(table, &mark, &rules)
                .map_err(nft_err)?;
        }
        Op::DeleteNat { ns, table } => {
            k.conn(ns)?
                .nat_delete_if_marked(table, &mark)
                .map_err(nft_err)?;
        }
        Op::CreateNs { .. }
        | Op::DeleteNs { .. }
        | Op::Sysctl { .. }
        | Op::CreateBridge { .. }
        | Op::SetBridgeStp { .. }
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
        | Op::LinkResolv { .. }
        | Op::CreateVxlan { .. }
        | Op::AddFdb { .. } => return Ok(()),
    }
    k.spend(1)
}

fn record_err(e: io::Error) -> ApplyError {
    ApplyError::Io {
        step: "write the lab's record".into(),
        source: e,
    }
}

/// A run of netlink ops of one namespace from `i` on, batched (host links are
/// recorded first). Returns the index after the run.
fn netlink_run<S: System>(
    k: &mut Kernel<S>,
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
            .flat_map(|o| match o {
                Op::CreateBridge { name, mac, .. } => vec![(name.clone(), Some(*mac))],
                // A cable between two bridges has both ends in the host.
                Op::CreateVeth { a, b } if b.ns == a.ns => {
                    vec![(a.name.clone(), None), (b.name.clone(), None)]
                }
                Op::CreateVeth { a, .. } => vec![(a.name.clone(), None)],
                // A bridge's VXLAN port stays in the host.
                Op::CreateVxlan { into, vxlan, .. } if into.is_host() => {
                    vec![(vxlan.name.clone(), Some(vxlan.mac))]
                }
                Op::CreateVxlan { .. } | Op::AddFdb { .. } => vec![],
                Op::CreateNs { .. }
                | Op::SetBridgeStp { .. }
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
                | Op::LinkResolv { .. } => vec![],
            })
            .collect();
        if !names.is_empty() {
            intent(Intent::HostLinks(names)).map_err(record_err)?;
        }
    }
    // The far ends' namespaces, opened first: a veth's request carries their
    // fds. A run with more of them than a batch may hold goes out in parts.
    let mut start = i;
    while start < j {
        let mut far: Vec<Ns> = Vec::new();
        let mut seen: std::collections::HashSet<&Ns> = std::collections::HashSet::new();
        let mut end = start;
        while end < j {
            let into = if let Op::CreateVeth { b, .. } = &ops[end] {
                Some(&b.ns)
            } else if let Op::CreateVxlan { into, .. } = &ops[end] {
                Some(into)
            } else {
                None
            };
            if let Some(into) = into
                && *into != ns
                && !seen.contains(into)
            {
                if far.len() == k.group() {
                    break;
                }
                seen.insert(into);
                far.push(into.clone());
            }
            end += 1;
        }
        let mut taken = k.take_many(&far)?;
        let peers: HashMap<Ns, PeerNs> = taken
            .iter()
            .map(|(p, h)| (p.clone(), h.as_peer(p)))
            .collect();
        let r = k.conn(&ns).map(|_| ()).and_then(|()| {
            let group: Vec<&Op> = ops[start..end].iter().collect();
            let h = k.conns.get_mut(&ns).expect("just opened");
            run_batched(h, &group, &peers, Some(&mut k.hooks))
        });
        // A veth end made in another namespace may take a name remembered
        // there (made again after a delete): forget them (asking again costs
        // one reply per name).
        for (_, c) in taken.iter_mut() {
            c.mark_stale();
        }
        if r.is_ok() {
            settle_far_ends(&ops[start..end], &ns, &mut taken);
        }
        k.give_back(taken);
        r?;
        start = end;
    }
    Ok(j)
}

/// Asks each far end just made in another namespace for its index (and
/// remembers it), at once rather than when that namespace is configured.
/// The kernel queues a link-watch event for every new veth end (its carrier
/// goes off once registered), and while the end is down that event is not
/// urgent: each urgent run of the link-watch worker (every carrier that comes
/// on while nodes are configured) walks past all of them under RTNL, with
/// interrupts off. At 10,000 nodes those walks were a seventh of the machine's
/// time while the nodes were configured. RTM_GETLINK settles the device's
/// pending event (rtnl_getlink calls linkwatch_sync_dev), and in the far
/// end's own namespace its reply is cheap (the namespace has one peer id).
/// A failed look-up only leaves the event queued: the namespace's own
/// configuration asks again and reports it.
fn settle_far_ends<H: NsHandle>(ops: &[Op], ns: &Ns, taken: &mut [(Ns, H)]) {
    let at: HashMap<Ns, usize> = taken
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.clone(), i))
        .collect();
    for op in ops {
        if let Op::CreateVeth { b, .. } = op
            && b.ns != *ns
            && let Some(&i) = at.get(&b.ns)
        {
            let _ = taken[i].1.index(&b.name);
        }
    }
}

/// A run of CreateNs from `i` on, made together (in chunks): each namespace is
/// recorded before it is made. Returns the index after the run.
fn create_namespaces<S: System>(
    k: &mut Kernel<S>,
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
    let allowed = k.hooks.budget(items.len());
    items.truncate(allowed);
    intent(Intent::Namespaces(
        items.iter().map(|x| x.0.clone()).collect(),
    ))
    .map_err(record_err)?;
    k.sys.prepare().map_err(|e| ApplyError::Io {
        step: format!("prepare {}", netns::netns_dir().display()),
        source: e,
    })?;
    let mut failed: Vec<(String, io::Error)> = Vec::new();
    // In chunks, so progress can be shown between them and no more namespaces
    // are open than a batch may hold.
    let chunk = 128.min(k.group());
    for (n, part) in items.chunks(chunk).enumerate() {
        let mark = k.mark.clone();
        k.make_room(part.len());
        for (name, r) in k.sys.create_many(part, &mark) {
            match r {
                Ok(c) => {
                    // The object this run made: rollback deletes only these.
                    if let Ok(id) = c.id() {
                        k.created_ns.insert(name.clone(), id);
                    }
                    k.put(Ns::named(name), c);
                }
                Err(e) => failed.push((name, e)),
            }
        }
        k.report(i + n * chunk + part.len(), ops.len());
        if !failed.is_empty() {
            return Err(create_failed(failed));
        }
    }
    k.spend(items.len())?;
    Ok(j)
}

/// One error for namespaces that could not be made, however many: those that
/// failed alike are counted and the first few named; the first error's errno
/// is kept.
fn create_failed(failed: Vec<(String, io::Error)>) -> ApplyError {
    let text = failed[0].1.to_string();
    let (alike, other): (Vec<_>, Vec<_>) =
        failed.into_iter().partition(|(_, e)| e.to_string() == text);
    let names: Vec<&str> = alike.iter().map(|(n, _)| n.as_str()).collect();
    let others = if other.is_empty() {
        String::new()
    } else {
        format!(
            "; {} failed with other errors, the first {}: {}",
            crate::util::count(other.len()),
            other[0].0,
            other[0].1
        )
    };
    let step = if names.len() == 1 && others.is_empty() {
        format!("create namespace {}", names[0])
    } else {
        format!(
            "create {} ({}{others})",
            crate::util::counted(names.len(), "namespace"),
            crate::util::names(&names)
        )
    };
    let source = alike.into_iter().next().expect("one at least").1;
    ApplyError::Io { step, source }
}

/// The real host's sysctls (forwarding, and the file's allow-listed `host:
/// sysctl:`) are shared by labs: the old value is recorded before the first write
/// and put back by the last lab that set it.
fn host_sysctl<S: System>(
    k: &mut Kernel<S>,
    op: &Op,
    ns: &Ns,
    key: &str,
    value: &str,
) -> Result<(), ApplyError> {
    let io_err = |e| ApplyError::Io {
        step: op.to_string(),
        source: e,
    };
    let lab = k.lab.clone();
    let store = crate::hostfwd::Store::at(k.sys.forwarding_dir());
    let c = k.conn(ns)?;
    let id = c.id().map_err(io_err)?;
    {
        let c = std::cell::RefCell::new(c);
        let set = |v: Option<&str>| -> io::Result<String> {
            let mut c = c.borrow_mut();
            match v {
                Some(v) => c.sysctl_set(key, v),
                None => c.sysctl_get(key),
            }
        };
        store
            .acquire_key(&lab, id, key, value, &set)
            .map_err(io_err)?;
    }
    k.spend(1)
}

/// A VXLAN device refused because its VNI is taken on its port in the
/// namespace of its socket: say so, naming the device there that holds it
/// (and its lab, by its mark) when this namespace shows it.
fn vni_taken<H: NsHandle>(h: &mut H, op: &Op, e: &NlError) -> Option<String> {
    let Op::CreateVxlan {
        vxlan: VxlanSpec { vni, port, .. },
        ..
    } = op
    else {
        return None;
    };
    if e.errno != libc::EEXIST {
        return None;
    }
    h.mark_stale();
    let holder = h.observe().ok().and_then(|st| {
        st.links.into_iter().find(|l| {
            l.vxlan
                .as_ref()
                .is_some_and(|x| x.vni == *vni && (x.port == *port || x.port == 0))
        })
    });
    let by = match holder {
        Some(l) => format!(
            ": VXLAN device {} holds it{}",
            l.name,
            l.alias
                .as_deref()
                .and_then(|a| a.strip_prefix("nslab:"))
                .map(|lab| format!(" (lab {lab})"))
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    Some(format!(
        "{op}: vni {vni} is taken on udp {port} in this namespace (the kernel allows one device per VNI and port){by}"
    ))
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
        | Op::SetBridgeStp { .. }
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
        | Op::LinkResolv { .. }
        | Op::CreateVxlan { .. }
        | Op::AddFdb { .. } => false,
    }
}

/// A delete whose interface is not there: nothing left to delete.
fn delete_without_dev(op: &Op) -> bool {
    matches!(op, Op::DelAddr { .. } | Op::DelRoute { .. })
}

/// An op that needs no namespace but its own.
fn local(op: &Op) -> bool {
    !matches!(op, Op::CreateVeth { .. } | Op::CreateVxlan { .. })
}

/// Run the ops of several namespaces at once: each namespace's ops stay in order
/// on one thread, with that namespace's own socket.
fn run_parallel<S: System>(k: &mut Kernel<S>, ops: &[Op]) -> Result<(), ApplyError> {
    let mut order: Vec<Ns> = Vec::new();
    let mut by_ns: HashMap<Ns, Vec<&Op>> = HashMap::new();
    for op in ops {
        let e = by_ns.entry(op.ns().clone()).or_insert_with(|| {
            order.push(op.ns().clone());
            Vec::new()
        });
        e.push(op);
    }
    // In batches of namespaces, each opened (if not open), configured, let go;
    // those still open first (namespaces are independent here), so a lab
    // bigger than the budget reopens as few as it can.
    order.sort_by_key(|ns| !k.conns.contains_key(ns));
    for part in order.chunks(k.group()) {
        let mut work: Vec<(Ns, S::Handle, Vec<&Op>)> = k
            .take_many(part)?
            .into_iter()
            .map(|(ns, c)| {
                let v = by_ns.remove(&ns).unwrap_or_default();
                (ns, c, v)
            })
            .collect();
        let r = run_side_by_side::<S>(&mut work);
        let n: usize = work.iter().map(|w| w.2.len()).sum();
        k.give_back(work.into_iter().map(|(ns, c, _)| (ns, c)).collect());
        r?;
        k.hooks.done += n;
    }
    Ok(())
}

/// Each namespace's ops in order on its own socket, a few namespaces at once.
fn run_side_by_side<S: System>(work: &mut [(Ns, S::Handle, Vec<&Op>)]) -> Result<(), ApplyError> {
    let workers = crate::util::workers_for(work.len());
    let chunk = work.len().div_ceil(workers).max(1);
    let no_peers = HashMap::new();
    let cfg = &crate::config::inherit();
    let results: Vec<Result<(), ApplyError>> = std::thread::scope(|s| {
        let hs: Vec<_> = work
            .chunks_mut(chunk)
            .map(|part| {
                let no_peers = &no_peers;
                s.spawn(move || {
                    let _cfg = cfg.enter();
                    for (_, c, v) in part.iter_mut() {
                        run_batched(c, v, no_peers, None)?;
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
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// The files nslab links under /etc/netns/NS (`ip netns exec` binds them over /etc).
pub const ETC_FILES: &[&str] = &["hosts", "resolv.conf"];

/// Remove /etc/netns/NS: the files nslab linked there (only links of ours), then
/// the directory if nothing else is in it.
pub fn remove_etc(ns: &str) -> io::Result<()> {
    crate::kernel::seam::Disk.remove_etc(ns)
}

/// Requests built before a send, at most.
const BATCH_MAX: usize = 512;

/// The one batch path: build and send the requests of consecutive ops of one
/// namespace, several per send. When an op needs an interface index not yet
/// known (a link made earlier in this run), what is built so far is sent first
/// and the index asked for again. `hooks` (test mode) limits how many go out.
fn run_batched<H: NsHandle>(
    h: &mut H,
    ops: &[&Op],
    peers: &HashMap<Ns, PeerNs>,
    mut hooks: Option<&mut Hooks>,
) -> Result<(), ApplyError> {
    let mut pending: Vec<(LinkReq, &Op)> = Vec::new();
    let mut idx = 0;
    while idx < ops.len() {
        let op = ops[idx];
        match build(h, peers, op)? {
            Some(req) => {
                pending.push((req, op));
                idx += 1;
                // Bounded: the sandbox host of 10,000 nodes has 20,000 requests
                // (veths, ports), ~30 MiB built at once; in chunks the sends
                // are as few as makes no difference.
                if pending.len() >= BATCH_MAX {
                    send(h, &mut pending, hooks.as_deref_mut())?;
                }
            }
            // A delete whose interface is not there: nothing left to delete.
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
            // Unknown index: send what is built, ask again, retry once.
            None => {
                send(h, &mut pending, hooks.as_deref_mut())?;
                h.mark_stale();
            }
        }
    }
    send(h, &mut pending, hooks)
}

/// Send the pending requests in one batch; deletes of what is already gone pass.
fn send<H: NsHandle>(
    h: &mut H,
    pending: &mut Vec<(LinkReq, &Op)>,
    hooks: Option<&mut Hooks>,
) -> Result<(), ApplyError> {
    if pending.is_empty() {
        return Ok(());
    }
    let allowed = hooks
        .as_ref()
        .map_or(pending.len(), |k| k.budget(pending.len()));
    let batch: Vec<(LinkReq, &Op)> = pending.drain(..).take(allowed).collect();
    let changes_links = batch.iter().any(|(_, o)| {
        matches!(
            o,
            Op::CreateBridge { .. }
                | Op::SetBridgeStp { .. }
                | Op::CreateVeth { .. }
                | Op::CreateVxlan { .. }
                | Op::DeleteLink { .. }
        )
    });
    let n = batch.len();
    let ops: Vec<&Op> = batch.iter().map(|(_, o)| *o).collect();
    let results = h.batch(batch.into_iter().map(|(r, o)| (r, o.to_string())).collect());
    if changes_links {
        h.mark_stale();
    }
    for (r, op) in results.into_iter().zip(ops) {
        if let Err(mut e) = r
            && !already_gone(op, &e)
        {
            // The error names the step (`what`): for a VNI taken, say so.
            if let Some(w) = vni_taken(h, op, &e) {
                e.what = w;
            }
            return Err(ApplyError::Kernel {
                step: op.to_string(),
                source: e,
            });
        }
    }
    match hooks {
        Some(k) => k.spend(n),
        None => Ok(()),
    }
}

fn index_of<H: NsHandle>(h: &mut H, name: &str) -> Result<Option<u32>, ApplyError> {
    h.index(name).map_err(|e| ApplyError::Kernel {
        step: format!("find {name}"),
        source: e,
    })
}

/// The index of an optional device; Err(None) when the device is not known yet.
fn dev_index<H: NsHandle>(
    h: &mut H,
    dev: Option<&str>,
) -> Result<Result<Option<u32>, ()>, ApplyError> {
    Ok(match dev {
        Some(d) => index_of(h, d)?.map(Some).ok_or(()),
        None => Ok(None),
    })
}

/// The change for one op, or None when it needs an index that is not known yet.
fn build<H: NsHandle>(
    h: &mut H,
    peers: &HashMap<Ns, PeerNs>,
    op: &Op,
) -> Result<Option<LinkReq>, ApplyError> {
    Ok(Some(match op {
        Op::CreateVeth { a, b } => {
            let Ok(master) = dev_index(h, a.master.as_deref())? else {
                return Ok(None);
            };
            let end = |e: &crate::plan::VEnd, master| VethSpec {
                name: e.name.clone(),
                mtu: e.mtu,
                mac: e.mac,
                master,
                up: e.up,
            };
            LinkReq::NewVeth {
                a: end(a, master),
                b: end(b, None),
                b_ns: peers.get(&b.ns).cloned(),
            }
        }
        Op::CreateVxlan { into, vxlan, .. } => LinkReq::NewVxlan {
            vxlan: vxlan.clone(),
            ns: peers.get(into).cloned(),
        },
        Op::AddFdb { dev, dst, .. } => {
            let Some(index) = index_of(h, dev)? else {
                return Ok(None);
            };
            LinkReq::AppendFdb { index, dst: *dst }
        }
        Op::CreateBridge { name, mac, mtu, .. } => LinkReq::NewBridge {
            name: name.clone(),
            mac: *mac,
            mtu: *mtu,
        },
        Op::SetBridgeStp { name, stp, .. } => LinkReq::SetBridgeStp {
            name: name.clone(),
            stp: *stp,
        },
        Op::DeleteLink { name, .. } => LinkReq::DelLink { name: name.clone() },
        Op::SetLink {
            name,
            no_link_local,
            master,
            mtu,
            mac,
            alias,
            up,
            down,
            ..
        } => {
            let Ok(master) = dev_index(h, master.as_deref())? else {
                return Ok(None);
            };
            LinkReq::SetLink {
                name: name.clone(),
                up: *up,
                master,
                alias: alias.clone(),
                mtu: *mtu,
                mac: *mac,
                no_link_local: *no_link_local,
                down: *down,
            }
        }
        Op::AddAddr { dev, addr, .. } | Op::DelAddr { dev, addr, .. } => {
            let Some(index) = index_of(h, dev)? else {
                return Ok(None);
            };
            let addr = *addr;
            if matches!(op, Op::AddAddr { .. }) {
                LinkReq::NewAddr { index, addr }
            } else {
                LinkReq::DelAddr { index, addr }
            }
        }
        Op::AddRoute { route, .. } | Op::DelRoute { route, .. } => {
            let Ok(oif) = dev_index(h, route.dev.as_deref())? else {
                return Ok(None);
            };
            let kr = KRoute {
                dst: route.dst,
                via: route.via,
                oif,
                onlink: route.onlink,
                metric: route.metric,
            };
            if matches!(op, Op::AddRoute { .. }) {
                LinkReq::NewRoute(kr)
            } else {
                LinkReq::DelRoute(kr)
            }
        }
        // Not rtnetlink requests (apply_ops routes them elsewhere).
        Op::CreateNs { .. }
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

#[cfg(test)]
mod tests;
