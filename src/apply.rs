//! The executor: runs a plan's ops against the kernel. Consecutive netlink ops of
//! one namespace go out as one batch (several requests per send); namespace
//! creation runs on worker threads. Before anything is created, the caller's
//! `intent` hook records it, so a crash never leaves an unknown object behind.

use crate::kernel::conn::{self, Conn};
use crate::kernel::msg::{self, CREATE, KRoute, SetLink, VethEnd};
use crate::kernel::netlink::{NlError, Req};
use crate::kernel::netns;
use crate::plan::{HOST, Op};
use std::collections::HashMap;
use std::io;

/// What the record must know before the kernel is asked to create it.
#[derive(Debug, Clone)]
pub enum Intent {
    Namespaces(Vec<String>),
    /// Interfaces about to be created in the host namespace (host mode).
    HostLinks(Vec<String>),
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

/// Open namespaces by name; `HOST` is the namespace nslab runs in (or the lab's
/// recorded host).
pub struct Kernel {
    pub conns: HashMap<String, Conn>,
    /// The ifalias new interfaces carry: the lab's ownership mark.
    pub mark: String,
    /// The lab being applied (host forwarding is shared between labs by name).
    pub lab: String,
    /// Called with (ops done, ops in all) as the plan advances.
    pub progress: Option<Box<dyn FnMut(usize, usize)>>,
    /// Test-only: fail after this many kernel operations.
    pub fail_after: Option<usize>,
    pub done: usize,
}

impl Kernel {
    pub fn new(host: Conn, lab: &str) -> Kernel {
        let mark = crate::topology::mark_for(lab);
        let mut conns = HashMap::new();
        conns.insert(HOST.to_string(), host);
        let fail_after = std::env::var("NSLAB_TEST_FAIL_AFTER")
            .ok()
            .and_then(|v| v.parse().ok());
        Kernel {
            conns,
            mark,
            lab: lab.to_string(),
            progress: None,
            fail_after,
            done: 0,
        }
    }

    pub fn conn(&mut self, ns: &str) -> Result<&mut Conn, ApplyError> {
        if !self.conns.contains_key(ns) {
            let c = conn::open(ns).map_err(|e| ApplyError::Io {
                step: format!("open namespace {ns}"),
                source: e,
            })?;
            self.conns.insert(ns.to_string(), c);
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
        match self.fail_after {
            Some(k) => k.saturating_sub(self.done).min(n),
            None => n,
        }
    }

    fn spend(&mut self, n: usize) -> Result<(), ApplyError> {
        self.done += n;
        match self.fail_after {
            Some(k) if self.done >= k => Err(ApplyError::TestAbort(k)),
            _ => Ok(()),
        }
    }
}

fn nl_op(op: &Op) -> bool {
    matches!(
        op,
        Op::CreateBridge { .. }
            | Op::CreateVeth { .. }
            | Op::DeleteLink { .. }
            | Op::SetLink { .. }
            | Op::AddAddr { .. }
            | Op::DelAddr { .. }
            | Op::AddRoute { .. }
            | Op::DelRoute { .. }
    )
}

pub fn apply(
    k: &mut Kernel,
    ops: &[Op],
    intent: &mut dyn FnMut(Intent) -> io::Result<()>,
) -> Result<(), ApplyError> {
    let mut i = 0;
    while i < ops.len() {
        k.report(i, ops.len());
        let op = &ops[i];
        match op {
            Op::CreateNs { .. } => {
                let mut j = i;
                let mut items = Vec::new();
                while let Some(Op::CreateNs { ns, sysctls }) = ops.get(j) {
                    items.push((ns.clone(), sysctls.clone()));
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
                    for (name, r) in conn::create_many(chunk) {
                        match r {
                            Ok(c) => {
                                k.conns.insert(name, c);
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
                i = j;
            }
            Op::DeleteNs { ns } => {
                k.conns.remove(ns);
                netns::delete(ns).map_err(|e| ApplyError::Io {
                    step: op.to_string(),
                    source: e,
                })?;
                k.spend(1)?;
                i += 1;
            }
            Op::Sysctl { ns, key, value } if ns == HOST && key == "net.ipv4.ip_forward" => {
                // The real host's forwarding is shared by labs: restored by the last one.
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
                k.spend(1)?;
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
            Op::WriteHosts { ns, content } => {
                let dir = std::path::Path::new("/etc/netns").join(ns);
                std::fs::create_dir_all(&dir)
                    .and_then(|_| std::fs::write(dir.join("hosts"), content))
                    .map_err(|e| ApplyError::Io {
                        step: op.to_string(),
                        source: e,
                    })?;
                i += 1;
            }
            Op::SetNat { ns, table, rules } => {
                if ns == HOST {
                    intent(Intent::NftTable(table.clone())).map_err(|e| ApplyError::Io {
                        step: "write the lab's record".into(),
                        source: e,
                    })?;
                }
                let mark = k.mark.clone();
                let rules: Vec<_> = rules
                    .iter()
                    .map(crate::kernel::nft::Masquerade::from)
                    .collect();
                let c = k.conn(ns)?;
                let r =
                    netns::run_in(&c.file, crate::kernel::nft::NftSocket::new).map_err(|e| {
                        ApplyError::Io {
                            step: op.to_string(),
                            source: e,
                        }
                    })?;
                let mut sock = r.map_err(|e| ApplyError::Nft {
                    step: op.to_string(),
                    source: e,
                })?;
                sock.replace_nat_table(table, &mark, &rules)
                    .map_err(|e| ApplyError::Nft {
                        step: op.to_string(),
                        source: e,
                    })?;
                k.spend(1)?;
                i += 1;
            }
            Op::DeleteNat { ns, table } => {
                let mark = k.mark.clone();
                let c = k.conn(ns)?;
                let r =
                    netns::run_in(&c.file, crate::kernel::nft::NftSocket::new).map_err(|e| {
                        ApplyError::Io {
                            step: op.to_string(),
                            source: e,
                        }
                    })?;
                let mut sock = r.map_err(|e| ApplyError::Nft {
                    step: op.to_string(),
                    source: e,
                })?;
                sock.delete_table_if_marked(table, &mark)
                    .map_err(|e| ApplyError::Nft {
                        step: op.to_string(),
                        source: e,
                    })?;
                k.spend(1)?;
                i += 1;
            }
            Op::RemoveEtc { ns } => {
                remove_etc(ns).map_err(|e| ApplyError::Io {
                    step: op.to_string(),
                    source: e,
                })?;
                i += 1;
            }
            _ => {
                let ns = op.ns().to_string();
                let mut j = i;
                while j < ops.len() && nl_op(&ops[j]) && ops[j].ns() == ns {
                    j += 1;
                }
                if ns == HOST {
                    let names: Vec<String> = ops[i..j]
                        .iter()
                        .filter_map(|o| match o {
                            Op::CreateBridge { name, .. } => Some(name.clone()),
                            Op::CreateVeth { a, .. } => Some(a.name.clone()),
                            _ => None,
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
                i = j;
            }
        }
    }
    Ok(())
}

/// Remove /etc/netns/NS (only the hosts file nslab writes, then the directory if empty).
pub fn remove_etc(ns: &str) -> io::Result<()> {
    let dir = std::path::Path::new("/etc/netns").join(ns);
    match std::fs::remove_file(dir.join("hosts")) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
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
fn run_group(k: &mut Kernel, ns: &str, ops: &[Op]) -> Result<(), ApplyError> {
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

fn flush(k: &mut Kernel, ns: &str, pending: &mut Vec<(Req, &Op)>) -> Result<(), ApplyError> {
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
        if let Err(e) = r {
            return Err(ApplyError::Kernel {
                step: op.to_string(),
                source: e,
            });
        }
    }
    k.spend(n)
}

fn index(k: &mut Kernel, ns: &str, name: &str) -> Result<Option<u32>, ApplyError> {
    let c = k.conn(ns)?;
    c.index(name).map_err(|e| ApplyError::Kernel {
        step: format!("find {name}"),
        source: e,
    })
}

/// The request for one op, or None when it needs an index that is not known yet.
fn build(k: &mut Kernel, ns: &str, op: &Op) -> Result<Option<Req>, ApplyError> {
    let what = op.to_string();
    Ok(Some(match op {
        Op::CreateBridge { name, mac, mtu, .. } => Req {
            msg: msg::new_bridge(name, *mac, *mtu),
            flags: CREATE,
            what,
        },
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
            alias,
            up,
            ..
        } => {
            let m = match master {
                Some(m) => match index(k, ns, m)? {
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
                no_link_local: *no_link_local,
            };
            Req {
                msg: msg::set_link(name, &s),
                flags: 0,
                what,
            }
        }
        Op::AddAddr { dev, addr, .. } | Op::DelAddr { dev, addr, .. } => {
            let Some(i) = index(k, ns, dev)? else {
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
                Some(d) => match index(k, ns, d)? {
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
        _ => return Ok(None),
    }))
}
