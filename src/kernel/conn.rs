//! Open namespaces: a namespace fd plus a netlink socket created inside it, and a
//! cache of interface indexes. Sockets are made once per namespace on a throwaway
//! thread; after that no thread ever changes namespace for netlink work.

use super::netlink::{NlError, Rtnl};
use super::netns;
use super::observe::{self, NsState};
use std::collections::HashMap;
use std::fs::File;
use std::io;

pub struct Conn {
    pub file: File,
    pub nl: Rtnl,
    /// Interface indexes already asked for. Creating links leaves existing
    /// indexes as they are; after a delete the executor forgets them all.
    idx: HashMap<String, u32>,
}

impl Conn {
    pub fn new(file: File, nl: Rtnl) -> Conn {
        Conn {
            file,
            nl,
            idx: HashMap::new(),
        }
    }

    /// Links were deleted (or made again under a known name): forget every index.
    pub fn mark_stale(&mut self) {
        self.idx.clear();
    }

    /// The index of an interface, asked of the kernel by name on a miss: one
    /// reply, where a dump of the sandbox host's links would make the kernel
    /// walk all of its peer namespace ids once per veth (quadratic at 10,000).
    pub fn index(&mut self, name: &str) -> Result<Option<u32>, NlError> {
        if let Some(&i) = self.idx.get(name) {
            return Ok(Some(i));
        }
        let found = observe::link_named(&mut self.nl, name)?;
        if let Some(i) = found {
            self.idx.insert(name.to_string(), i);
        }
        Ok(found)
    }

    pub fn observe(&mut self) -> Result<NsState, NlError> {
        let st = observe::ns_state(&mut self.nl)?;
        self.idx = st.links.iter().map(|l| (l.name.clone(), l.index)).collect();
        Ok(st)
    }
}

/// Open an existing namespace (by /run/netns name) and make its socket.
pub fn open(ns: &str) -> io::Result<Conn> {
    let file = netns::open(ns)?;
    let nl = netns::run_in(&file, Rtnl::new)??;
    Ok(Conn::new(file, nl))
}

/// Open several existing namespaces, each with its socket, on a few
/// short-lived threads that enter them in turn: reopening a batch of a big lab
/// costs no thread per namespace.
pub fn open_many(names: &[&str]) -> Vec<io::Result<Conn>> {
    if names.len() < 2 {
        return names.iter().map(|n| open(n)).collect();
    }
    scoped_chunks(
        names,
        || Err(io::Error::other("namespace worker panicked")),
        |name| {
            let file = netns::open(name)?;
            use std::os::fd::AsFd;
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(Conn::new(file, Rtnl::new()?))
        },
    )
}

/// `f` over `items` on up to 4 short-lived scoped threads, each taking a
/// contiguous part in turn (it may enter namespaces: the threads die after),
/// with the caller's config; results in the order of `items`, `failed()` for
/// each item of a part whose thread panicked.
fn scoped_chunks<T: Sync, R: Send>(
    items: &[T],
    failed: impl Fn() -> R + Sync,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if items.is_empty() {
        return Vec::new();
    }
    let workers = crate::util::workers_for(items.len());
    let chunk = items.len().div_ceil(workers);
    let cfg = &crate::config::inherit();
    let (f, failed) = (&f, &failed);
    std::thread::scope(|s| {
        let hs: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let h = s.spawn(move || {
                    let _cfg = cfg.enter();
                    part.iter().map(f).collect::<Vec<_>>()
                });
                (part.len(), h)
            })
            .collect();
        hs.into_iter()
            .flat_map(|(n, h)| {
                h.join()
                    .unwrap_or_else(|_| (0..n).map(|_| failed()).collect())
            })
            .collect()
    })
}

/// The namespace nslab runs in.
pub fn open_current() -> io::Result<Conn> {
    Ok(Conn::new(netns::current()?, Rtnl::new()?))
}

/// Open a namespace by its identity, searching /run/netns (host mode labs whose
/// host was itself a named namespace, as in tests).
pub fn find_by_id(id: netns::NsId) -> io::Result<Option<(String, Conn)>> {
    if netns::current_id()? == id {
        return Ok(Some((String::new(), open_current()?)));
    }
    let Ok(rd) = std::fs::read_dir(netns::netns_dir()) else {
        return Ok(None);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(f) = netns::open(&name)
            && netns::id_of(&f)? == id
        {
            return Ok(Some((name.clone(), open(&name)?)));
        }
    }
    Ok(None)
}

/// A namespace to create: its name and the sysctls to set in it.
pub type NewNs = (String, Vec<(String, String)>);

/// Mark a namespace as the lab's (`lo` up, with the mark as its alias), from a
/// socket inside it.
pub fn mark_lo(nl: &mut Rtnl, mark: &str) -> Result<(), NlError> {
    let s = super::msg::SetLink {
        up: Some(true),
        master: None,
        alias: Some(mark),
        mtu: None,
        mac: None,
        no_link_local: false,
    };
    nl.request(super::msg::set_link("lo", &s), 0, "mark lo".to_string())
}

/// Create namespaces on a few worker threads. Each worker moves itself into each
/// new namespace in turn (unshare), so it can set the namespace's sysctls, make
/// its netlink socket and mark its `lo` with `mark` right there, with no extra
/// thread per namespace. Only then does the namespace get its name (the bind
/// mount): a named namespace without the mark is never one nslab made, even if
/// nslab was killed half-way.
pub fn create_many(items: &[NewNs], mark: &str) -> Vec<(String, io::Result<Conn>)> {
    if items.is_empty() {
        return Vec::new();
    }
    let workers = crate::config::get().ns_workers.map_or_else(
        || crate::util::workers_for(items.len()),
        |w| w.clamp(1, items.len()),
    );
    // The files first, in one go (see create_files); a name whose file could not
    // be made is not ours to mount on or remove.
    let names: Vec<&str> = items.iter().map(|(n, _)| n.as_str()).collect();
    let files: Vec<io::Result<()>> = netns::create_files(&names);
    let items: Vec<(&NewNs, io::Result<()>)> = items.iter().zip(files).collect();
    let chunk = items.len().div_ceil(workers);
    let cfg = &crate::config::inherit();
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let _cfg = cfg.enter();
                    part.iter()
                        .map(|((name, sysctls), file)| {
                            let r = (|| -> io::Result<Conn> {
                                if let Err(e) = file {
                                    return Err(io::Error::new(e.kind(), e.to_string()));
                                }
                                let unpublished = || {
                                    let _ = std::fs::remove_file(netns::path(name));
                                };
                                netns::enter_new().inspect_err(|_| unpublished())?;
                                let mut nl = Rtnl::new().inspect_err(|_| unpublished())?;
                                for (k, v) in sysctls {
                                    netns::sysctl_write(k, v).map_err(|e| {
                                        unpublished();
                                        io::Error::new(
                                            e.kind(),
                                            format!("set {k}={v} in {name}: {e}"),
                                        )
                                    })?;
                                }
                                mark_lo(&mut nl, mark).map_err(|e| {
                                    unpublished();
                                    io::Error::other(format!("mark lo in {name}: {e}"))
                                })?;
                                netns::publish_here(name)?;
                                let file = netns::open(name)?;
                                Ok(Conn::new(file, nl))
                            })();
                            (name.clone(), r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(
                        String::new(),
                        Err(io::Error::other("namespace worker panicked")),
                    )]
                })
            })
            .collect()
    })
}

/// The links of each namespace (None where they cannot be read), read on a few
/// short-lived threads that enter the namespaces in turn: the ownership check of
/// `down` and `clean` (the mark on `lo`, the peers of veths), cheap enough for a
/// thousand namespaces.
pub fn links_in(files: &[&File]) -> Vec<Option<Vec<observe::ObsLink>>> {
    scoped_chunks(
        files,
        || None,
        |f| {
            use std::os::fd::AsFd;
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            let mut nl = Rtnl::new().ok()?;
            observe::links(&mut nl).ok()
        },
    )
}
