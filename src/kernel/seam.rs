//! The seam between the core and the kernel: what the executor (and the code that
//! observes a lab) asks of the kernel, as two traits. [`Real`] and [`Conn`] are the
//! kernel; the fake in `kernel/fake.rs` models its side effects (a veth dies with
//! its peer, a link takes its addresses and routes along, a namespace takes
//! everything in it), so the executor is unit-tested without root.

use super::conn::{self, Conn, NewNs};
use super::msg::{self, CREATE, KRoute, SetLink, VethEnd};
use super::neigh::ObsNeigh;
use super::netlink::{NlError, Req};
use super::netns::{self, NsId};
use super::nft::{Masquerade, NatRules, NftError};
use crate::model::observed::{Lookup, NsState};
use crate::plan::{Ns, VxlanSpec};
use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage as M;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// One end of a veth pair to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    pub name: String,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub master: Option<u32>,
    /// Up from the start (see [`crate::plan::VEnd::up`]).
    pub up: bool,
}

/// Where the far end of a new veth goes: the kernel needs the namespace's fd, a
/// fake its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerNs {
    pub ns: Ns,
    pub fd: RawFd,
}

/// One rtnetlink change, typed: the kernel turns it into a message, a fake
/// applies it to its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkReq {
    NewVeth {
        a: VethSpec,
        b: VethSpec,
        /// None: the same namespace as `a`.
        b_ns: Option<PeerNs>,
    },
    NewBridge {
        name: String,
        mac: [u8; 6],
        mtu: Option<u32>,
    },
    /// Turn a bridge's STP on (with its timers) or off.
    SetBridgeStp {
        name: String,
        stp: Option<crate::topology::Stp>,
    },
    DelLink {
        name: String,
    },
    SetLink {
        name: String,
        up: bool,
        master: Option<u32>,
        alias: Option<String>,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        no_link_local: bool,
        /// Set it down (else `up` false leaves its state as it is).
        down: bool,
    },
    NewAddr {
        index: u32,
        addr: IpNet,
    },
    DelAddr {
        index: u32,
        addr: IpNet,
    },
    NewRoute(KRoute),
    DelRoute(KRoute),
    /// A VXLAN device, made from this namespace (its UDP socket stays here)
    /// into `ns` (None: here).
    NewVxlan {
        vxlan: VxlanSpec,
        ns: Option<PeerNs>,
    },
    /// A static flood entry of a VXLAN device (`bridge fdb append`).
    AppendFdb {
        index: u32,
        dst: IpAddr,
    },
}

impl LinkReq {
    /// The rtnetlink request for this change.
    pub fn to_req(&self, what: String) -> Req {
        let (msg, flags) = match self {
            LinkReq::NewVeth { a, b, b_ns } => {
                let ea = VethEnd {
                    name: &a.name,
                    ns_fd: None,
                    mtu: a.mtu,
                    mac: a.mac,
                    master: a.master,
                    up: a.up,
                };
                let eb = VethEnd {
                    name: &b.name,
                    ns_fd: b_ns.as_ref().map(|p| p.fd),
                    mtu: b.mtu,
                    mac: b.mac,
                    master: b.master,
                    up: b.up,
                };
                (msg::new_veth(&ea, &eb), CREATE)
            }
            LinkReq::NewBridge { name, mac, mtu } => (msg::new_bridge(name, *mac, *mtu), CREATE),
            LinkReq::SetBridgeStp { name, stp } => (msg::bridge_stp(name, stp.as_ref()), 0),
            LinkReq::DelLink { name } => (msg::del_link(name), 0),
            LinkReq::SetLink {
                name,
                up,
                master,
                alias,
                mtu,
                mac,
                no_link_local,
                down,
            } => {
                let s = SetLink {
                    up: if *down {
                        Some(false)
                    } else {
                        up.then_some(true)
                    },
                    master: *master,
                    alias: alias.as_deref(),
                    mtu: *mtu,
                    mac: *mac,
                    no_link_local: *no_link_local,
                };
                (msg::set_link(name, &s), 0)
            }
            LinkReq::NewAddr { index, addr } => (msg::new_addr(*index, addr), CREATE),
            LinkReq::DelAddr { index, addr } => (msg::del_addr(*index, addr), 0),
            LinkReq::NewRoute(r) => (msg::new_route(r), CREATE),
            LinkReq::DelRoute(r) => (msg::del_route(r), 0),
            LinkReq::NewVxlan { vxlan, ns } => {
                (msg::new_vxlan(vxlan, ns.as_ref().map(|p| p.fd)), CREATE)
            }
            LinkReq::AppendFdb { index, dst } => (
                msg::fdb_append(*index, *dst),
                netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_APPEND,
            ),
        };
        Req { msg, flags, what }
    }
}

/// One open namespace, as the core uses it.
pub trait NsHandle: Send {
    /// The index of an interface (None: no such interface): remembered, or
    /// asked of the kernel by name (never a dump of all links).
    fn index(&mut self, name: &str) -> Result<Option<u32>, NlError>;
    /// Interfaces were deleted, or made again under names asked for before:
    /// forget the indexes remembered.
    fn mark_stale(&mut self);
    /// Several changes in one send; one result each, in order.
    fn batch(&mut self, reqs: Vec<(LinkReq, String)>) -> Vec<Result<(), NlError>>;
    /// Links, addresses and routes.
    fn observe(&mut self) -> Result<NsState, NlError>;
    /// Set a sysctl; returns the old value.
    fn sysctl_set(&mut self, key: &str, value: &str) -> io::Result<String>;
    fn sysctl_get(&mut self, key: &str) -> io::Result<String>;
    /// Create or replace the lab's NAT table.
    fn nat_replace(
        &mut self,
        table: &str,
        mark: &str,
        rules: &[Masquerade],
    ) -> Result<(), NftError>;
    /// Delete the table if it carries `mark`; true when it was deleted.
    fn nat_delete_if_marked(&mut self, table: &str, mark: &str) -> Result<bool, NftError>;
    fn nat_read(&mut self, table: &str) -> Result<Option<NatRules>, NftError>;
    /// The namespace's identity (stable while the handle is open).
    fn id(&self) -> io::Result<NsId>;
    /// How the far end of a veth is sent here.
    fn as_peer(&self, ns: &Ns) -> PeerNs;
    /// `ip route get DST [from SRC] [iif IIF]`: Err is the kernel's errno
    /// (EXDEV/EINVAL when reverse-path filtering refuses a forwarded packet).
    fn route_get(
        &mut self,
        dst: IpAddr,
        src: Option<IpAddr>,
        iif: Option<u32>,
    ) -> Result<Lookup, i32>;
    /// Blackhole, unreachable, prohibit and throw routes, with their type.
    fn blocking_routes(&mut self) -> Vec<(IpNet, String)>;
    /// Every ARP and NDP entry.
    fn neighbours(&mut self) -> Result<Vec<ObsNeigh>, NlError>;
    /// The namespace file, to enter the namespace (None for a fake).
    fn ns_file(&self) -> Option<&std::fs::File>;
}

/// The files nslab keeps outside the kernel: the lab's hosts file and resolv.conf
/// in the state directory, and the links to them under /etc/netns. Sync: the
/// executor writes them on another thread while the kernel works.
pub trait Files: Send + Sync {
    fn state_dir(&self) -> PathBuf;
    fn read(&self, p: &Path) -> Option<String>;
    fn read_link(&self, p: &Path) -> Option<PathBuf>;
    /// Is something (file, link, dangling link) at `p`?
    fn present(&self, p: &Path) -> bool;
    /// Write `content` at `p` in place (same inode), making its directory.
    fn write(&self, p: &Path, content: &str) -> io::Result<()>;
    /// Make `link` point to `target`, replacing only a link of ours; keep
    /// whatever else is there.
    fn link_etc(&self, link: &Path, target: &str) -> io::Result<()>;
    /// Remove /etc/netns/NS: our links, then the directory if it is empty.
    fn remove_etc(&self, ns: &str) -> io::Result<()>;

    /// Is `p` a link nslab made (one pointing into its state directory)?
    fn is_our_link(&self, p: &Path) -> bool {
        self.read_link(p)
            .is_some_and(|t| t.starts_with(self.state_dir()))
    }
}

/// The namespaces of the machine, and the files.
pub trait System {
    type Handle: NsHandle;
    /// Open an existing named namespace.
    fn open(&mut self, name: &str) -> io::Result<Self::Handle>;
    /// Open several existing named namespaces (the real kernel: a few at once).
    fn open_many(&mut self, names: &[&str]) -> Vec<io::Result<Self::Handle>> {
        names.iter().map(|n| self.open(n)).collect()
    }
    fn exists(&self, name: &str) -> bool;
    /// Make the place namespaces are named in ready.
    fn prepare(&mut self) -> io::Result<()>;
    /// Create namespaces, each marked (lo up with `mark` as its alias) and with
    /// its sysctls set before it gets its name.
    fn create_many(
        &mut self,
        items: &[NewNs],
        mark: &str,
    ) -> Vec<(String, io::Result<Self::Handle>)>;
    fn delete(&mut self, name: &str) -> io::Result<()>;
    /// Where host forwarding's shared state is kept (see `hostfwd`).
    fn forwarding_dir(&self) -> PathBuf;
    fn files(&self) -> std::sync::Arc<dyn Files>;
}

/// The kernel of this machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Real;

/// Files on this machine's disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct Disk;

impl Files for Disk {
    fn state_dir(&self) -> PathBuf {
        crate::record::state_dir()
    }

    fn read(&self, p: &Path) -> Option<String> {
        std::fs::read_to_string(p).ok()
    }

    fn read_link(&self, p: &Path) -> Option<PathBuf> {
        std::fs::read_link(p).ok()
    }

    fn present(&self, p: &Path) -> bool {
        p.symlink_metadata().is_ok()
    }

    fn write(&self, p: &Path, content: &str) -> io::Result<()> {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, content)
    }

    fn link_etc(&self, link: &Path, target: &str) -> io::Result<()> {
        if let Some(d) = link.parent() {
            std::fs::create_dir_all(d)?;
        }
        if self.is_our_link(link) {
            std::fs::remove_file(link)?;
        }
        match std::os::unix::fs::symlink(target, link) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
    }

    fn remove_etc(&self, ns: &str) -> io::Result<()> {
        let dir = Path::new("/etc/netns").join(ns);
        for f in crate::apply::ETC_FILES {
            let p = dir.join(f);
            if self.is_our_link(&p) {
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
}

impl System for Real {
    type Handle = Conn;

    fn open(&mut self, name: &str) -> io::Result<Conn> {
        conn::open(name)
    }

    fn open_many(&mut self, names: &[&str]) -> Vec<io::Result<Conn>> {
        conn::open_many(names)
    }

    fn exists(&self, name: &str) -> bool {
        netns::exists(name)
    }

    fn prepare(&mut self) -> io::Result<()> {
        netns::ensure_dir()
    }

    fn create_many(&mut self, items: &[NewNs], mark: &str) -> Vec<(String, io::Result<Conn>)> {
        conn::create_many(items, mark)
    }

    fn delete(&mut self, name: &str) -> io::Result<()> {
        netns::delete(name)
    }

    fn forwarding_dir(&self) -> PathBuf {
        crate::record::state_dir()
    }

    fn files(&self) -> std::sync::Arc<dyn Files> {
        std::sync::Arc::new(Disk)
    }
}

impl NsHandle for Conn {
    fn index(&mut self, name: &str) -> Result<Option<u32>, NlError> {
        Conn::index(self, name)
    }

    fn mark_stale(&mut self) {
        Conn::mark_stale(self)
    }

    fn batch(&mut self, reqs: Vec<(LinkReq, String)>) -> Vec<Result<(), NlError>> {
        self.nl
            .batch(reqs.into_iter().map(|(r, what)| r.to_req(what)).collect())
    }

    fn observe(&mut self) -> Result<NsState, NlError> {
        Conn::observe(self)
    }

    fn sysctl_set(&mut self, key: &str, value: &str) -> io::Result<String> {
        netns::run_in(&self.file, || netns::sysctl_set(key, value)).and_then(|r| r)
    }

    fn sysctl_get(&mut self, key: &str) -> io::Result<String> {
        netns::run_in(&self.file, || netns::sysctl_get(key)).and_then(|r| r)
    }

    fn nat_replace(
        &mut self,
        table: &str,
        mark: &str,
        rules: &[Masquerade],
    ) -> Result<(), NftError> {
        super::nft::socket_in(&self.file).and_then(|mut s| s.replace_nat_table(table, mark, rules))
    }

    fn nat_delete_if_marked(&mut self, table: &str, mark: &str) -> Result<bool, NftError> {
        super::nft::socket_in(&self.file).and_then(|mut s| s.delete_table_if_marked(table, mark))
    }

    fn nat_read(&mut self, table: &str) -> Result<Option<NatRules>, NftError> {
        super::nft::socket_in(&self.file).and_then(|mut s| s.read_nat_rules(table))
    }

    fn id(&self) -> io::Result<NsId> {
        netns::id_of(&self.file)
    }

    fn as_peer(&self, ns: &Ns) -> PeerNs {
        PeerNs {
            ns: ns.clone(),
            fd: netns::raw(&self.file),
        }
    }

    fn route_get(
        &mut self,
        dst: IpAddr,
        src: Option<IpAddr>,
        iif: Option<u32>,
    ) -> Result<Lookup, i32> {
        match self.nl.query(msg::route_lookup(dst, src, iif), "route get") {
            Ok(M::NewRoute(r)) => {
                let mut l = Lookup {
                    kind: kind_name(r.header.kind),
                    oif: None,
                    gateway: None,
                    prefsrc: None,
                };
                for a in &r.attributes {
                    match a {
                        RouteAttribute::Oif(o) => l.oif = Some(*o),
                        RouteAttribute::Gateway(g) => l.gateway = ip_of(g),
                        RouteAttribute::PrefSource(p) => l.prefsrc = ip_of(p),
                        _ => {}
                    }
                }
                Ok(l)
            }
            Ok(_) => Err(libc::EIO),
            Err(e) => Err(e.errno),
        }
    }

    fn blocking_routes(&mut self) -> Vec<(IpNet, String)> {
        let mut out = Vec::new();
        for v6 in [false, true] {
            let Ok(msgs) = self.nl.dump(msg::get_routes(v6), "list routes") else {
                continue;
            };
            for m in msgs {
                let M::NewRoute(r) = m else { continue };
                if !matches!(
                    r.header.kind,
                    RouteType::BlackHole
                        | RouteType::Unreachable
                        | RouteType::Prohibit
                        | RouteType::Throw
                ) {
                    continue;
                }
                let dst = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(d) => ip_of(d),
                    _ => None,
                });
                let dst = dst.unwrap_or(if v6 {
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                });
                if let Ok(n) = IpNet::new(dst, r.header.destination_prefix_length) {
                    out.push((n, kind_name(r.header.kind)));
                }
            }
        }
        out
    }

    fn neighbours(&mut self) -> Result<Vec<ObsNeigh>, NlError> {
        super::neigh::neighbours(&mut self.nl)
    }

    fn ns_file(&self) -> Option<&std::fs::File> {
        Some(&self.file)
    }
}

/// A route type as `ip route` names it.
fn kind_name(k: RouteType) -> String {
    format!("{k:?}").to_lowercase()
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}
