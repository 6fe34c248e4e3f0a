//! A fake kernel for unit tests: namespaces, links, addresses, routes, sysctls,
//! NAT tables and the files under /etc/netns, with the side effects the real
//! kernel has and the executor relies on (or once tripped over):
//! - deleting one end of a veth deletes its peer, wherever the peer is;
//! - deleting a link drops its addresses and the routes through it, and frees
//!   its bridge ports;
//! - deleting a namespace deletes everything in it, and the far ends of its veths;
//! - an IPv4/IPv6 address on an up link brings its prefix route (proto kernel);
//! - a route through a gateway needs a connected route to it (ENETUNREACH);
//! - creating what exists is EEXIST, deleting what is not there ENODEV/ESRCH/
//!   EADDRNOTAVAIL.
//!
//! Every request is logged, so tests can see what went out in which batch.

use super::conn::NewNs;
use super::msg::KRoute;
use super::neigh::ObsNeigh;
use super::netlink::NlError;
use super::netns::NsId;
use super::nft::{Masquerade, NatRules, NftError};
use super::seam::{Files, LinkReq, NsHandle, PeerNs, System, VethSpec};
use crate::model::observed::{Lookup, NsState, ObsAddr, ObsLink, ObsRoute};
use crate::plan::Ns;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One namespace of the fake kernel.
#[derive(Debug, Clone, Default)]
pub struct FakeNs {
    pub id: u64,
    pub links: Vec<ObsLink>,
    pub addrs: Vec<ObsAddr>,
    /// Routes added by request (the kernel's own prefix routes are derived).
    pub routes: Vec<ObsRoute>,
    pub sysctls: BTreeMap<String, String>,
    pub nat: BTreeMap<String, NatRules>,
    /// Blackhole, unreachable, prohibit and throw routes, by type name.
    pub blocking: Vec<(IpNet, String)>,
    /// ARP/NDP entries (the fake resolves nothing by itself).
    pub neigh: Vec<ObsNeigh>,
}

impl FakeNs {
    pub fn link_mut(&mut self, name: &str) -> Option<&mut ObsLink> {
        self.links.iter_mut().find(|l| l.name == name)
    }

    /// Prefix routes the kernel adds for addresses on up links.
    fn connected(&self) -> Vec<ObsRoute> {
        self.addrs
            .iter()
            .filter(|a| self.links.iter().any(|l| l.index == a.index && l.up))
            .filter(|a| a.addr.prefix_len() < a.addr.max_prefix_len())
            .map(|a| ObsRoute {
                dst: a.addr.trunc(),
                via: None,
                oif: Some(a.index),
                metric: matches!(a.addr, IpNet::V6(_)).then_some(256),
                onlink: false,
                protocol: "kernel".into(),
                scope_link: true,
            })
            .collect()
    }

    /// RTM_NEWLINK on an existing link: only what the request carries changes.
    fn set_link(&mut self, req: &LinkReq) -> Result<(), i32> {
        let LinkReq::SetLink {
            name,
            up,
            master,
            alias,
            mtu,
            mac,
            no_link_local: _,
            down,
        } = req
        else {
            return Err(libc::EINVAL);
        };
        if let Some(m) = master
            && !self
                .links
                .iter()
                .any(|l| l.index == *m && l.kind.as_deref() == Some("bridge"))
        {
            return Err(libc::EINVAL);
        }
        let l = self.link_mut(name).ok_or(libc::ENODEV)?;
        l.up = (l.up || *up) && !*down;
        l.master = master.or(l.master);
        l.alias = alias.clone().or(l.alias.take());
        l.mtu = mtu.or(l.mtu);
        l.mac = mac.or(l.mac);
        Ok(())
    }

    fn has_link(&self, index: u32) -> bool {
        self.links.iter().any(|l| l.index == index)
    }

    fn add_addr(&mut self, index: u32, addr: IpNet) -> Result<(), i32> {
        if !self.has_link(index) {
            return Err(libc::ENODEV);
        }
        if self
            .addrs
            .iter()
            .any(|a| a.index == index && a.addr == addr)
        {
            return Err(libc::EEXIST);
        }
        self.addrs.push(ObsAddr { index, addr });
        Ok(())
    }

    fn del_addr(&mut self, index: u32, addr: IpNet) -> Result<(), i32> {
        if !self.has_link(index) {
            return Err(libc::ENODEV);
        }
        let before = self.addrs.len();
        self.addrs.retain(|a| !(a.index == index && a.addr == addr));
        if self.addrs.len() == before {
            return Err(libc::EADDRNOTAVAIL);
        }
        Ok(())
    }

    fn add_route(&mut self, r: &KRoute) -> Result<(), i32> {
        if r.oif.is_some_and(|o| !self.has_link(o)) {
            return Err(libc::ENODEV);
        }
        if self
            .routes
            .iter()
            .any(|x| x.dst == r.dst && x.metric == r.metric)
        {
            return Err(libc::EEXIST);
        }
        let oif = match (r.via, r.onlink) {
            (Some(g), false) => {
                // The gateway must be on a connected network (of `oif`, if
                // given): an address's prefix, or a device route (scope link).
                let mut on_link = self.connected();
                on_link.extend(self.routes.iter().filter(|x| x.via.is_none()).cloned());
                let on = on_link
                    .into_iter()
                    .find(|c| c.dst.contains(&g) && (r.oif.is_none() || c.oif == r.oif));
                on.ok_or(libc::ENETUNREACH)?.oif
            }
            _ => r.oif,
        };
        self.routes.push(ObsRoute {
            dst: r.dst,
            via: r.via,
            oif,
            // As the observer reports it: IPv6's default metric is no metric.
            metric: r.metric,
            onlink: r.onlink,
            protocol: "static".into(),
            scope_link: r.via.is_none(),
        });
        Ok(())
    }

    fn del_route(&mut self, r: &KRoute) -> Result<(), i32> {
        let at = self.routes.iter().position(|x| {
            x.dst == r.dst
                && x.metric == r.metric
                && (r.via.is_none() || x.via == r.via)
                && (r.oif.is_none() || x.oif == r.oif)
        });
        self.routes.remove(at.ok_or(libc::ESRCH)?);
        Ok(())
    }

    fn is_up(&self, index: u32) -> bool {
        self.links.iter().any(|l| l.index == index && l.up)
    }

    fn sysctl_num(&self, k: &str) -> u8 {
        self.sysctls
            .get(k)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn is_local(&self, a: IpAddr) -> bool {
        a.is_loopback() || self.addrs.iter().any(|x| x.addr.addr() == a)
    }

    /// The output route lookup, as the kernel does it: the longest prefix among
    /// the prefix routes of up links, the routes through up links and the
    /// blocking routes; then the lowest metric.
    fn output_route(&self, dst: IpAddr) -> Result<Lookup, i32> {
        let mut cands: Vec<(IpNet, u32, Result<ObsRoute, String>)> = self
            .connected()
            .into_iter()
            .chain(
                self.routes
                    .iter()
                    .filter(|r| r.oif.is_none_or(|o| self.is_up(o)))
                    .cloned(),
            )
            .map(|r| (r.dst, r.metric.unwrap_or(0), Ok(r)))
            .collect();
        cands.extend(self.blocking.iter().map(|(n, k)| (*n, 0, Err(k.clone()))));
        let best = cands
            .into_iter()
            .filter(|(n, _, _)| n.contains(&dst))
            // Longest prefix first, then the lowest metric.
            .min_by_key(|(n, m, _)| (std::cmp::Reverse(n.prefix_len()), *m));
        match best {
            None => Err(libc::ENETUNREACH),
            Some((_, _, Err(kind))) => Err(match kind.as_str() {
                "unreachable" => libc::EHOSTUNREACH,
                "prohibit" => libc::EACCES,
                "blackhole" => libc::EINVAL,
                _ => libc::ENETUNREACH,
            }),
            Some((_, _, Ok(r))) => {
                let v6 = dst.is_ipv6();
                let of_family = |a: &&ObsAddr| a.addr.addr().is_ipv6() == v6;
                let prefsrc = self
                    .addrs
                    .iter()
                    .filter(of_family)
                    .find(|a| Some(a.index) == r.oif)
                    .or_else(|| {
                        self.addrs
                            .iter()
                            .filter(of_family)
                            .find(|a| !a.addr.addr().is_loopback())
                    })
                    .map(|a| a.addr.addr());
                Ok(Lookup {
                    kind: "unicast".into(),
                    oif: r.oif,
                    gateway: r.via,
                    prefsrc,
                })
            }
        }
    }

    /// `ip route get DST [from SRC] [iif IIF]`. With an arrival interface the
    /// source passes reverse-path filtering first (EXDEV when it fails):
    /// strict (1) wants the route back to leave by `iif`, loose (2) any route.
    fn route_get(&self, dst: IpAddr, src: Option<IpAddr>, iif: Option<u32>) -> Result<Lookup, i32> {
        if let (Some(iif), Some(src)) = (iif, src)
            && src.is_ipv4()
            && !self.is_local(src)
        {
            let name = self
                .links
                .iter()
                .find(|l| l.index == iif)
                .map(|l| l.name.clone())
                .unwrap_or_default();
            let mode = self
                .sysctl_num("net.ipv4.conf.all.rp_filter")
                .max(self.sysctl_num(&format!("net.ipv4.conf.{name}.rp_filter")));
            let back = self.output_route(src);
            let refused = match (mode, back) {
                (1, Ok(b)) => b.oif != Some(iif),
                (1 | 2, Err(_)) => true,
                _ => false,
            };
            if refused {
                return Err(libc::EXDEV);
            }
        }
        if self.is_local(dst) {
            return Ok(Lookup {
                kind: "local".into(),
                oif: Some(1),
                gateway: None,
                prefsrc: Some(dst),
            });
        }
        self.output_route(dst)
    }

    /// What a dump shows: links (forwarding as the kernel shows it on every
    /// link), addresses, and the routes of the main table.
    pub fn state(&self) -> NsState {
        let on = |k: &str| self.sysctls.get(k).is_some_and(|v| v == "1");
        let fw = (
            Some(on("net.ipv4.ip_forward")),
            Some(on("net.ipv6.conf.all.forwarding")),
        );
        let mut routes = self.connected();
        routes.extend(self.routes.iter().cloned());
        let bridges: Vec<u32> = self
            .links
            .iter()
            .filter(|l| l.kind.as_deref() == Some("bridge"))
            .map(|l| l.index)
            .collect();
        NsState {
            links: self
                .links
                .iter()
                .cloned()
                .map(|mut l| {
                    l.forwarding = fw;
                    // A bridge port forwards when it is up (no STP here).
                    if l.master.is_some_and(|m| bridges.contains(&m)) {
                        l.port_state = Some(if l.up && l.lower_up { 3 } else { 0 });
                    }
                    l
                })
                .collect(),
            addrs: self.addrs.clone(),
            routes,
        }
    }
}

/// A file-system entry under the fake's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(String),
    Link(PathBuf),
}

/// The whole fake machine.
#[derive(Debug, Default)]
pub struct World {
    /// By name; the host is "".
    pub ns: BTreeMap<String, FakeNs>,
    pub files: BTreeMap<PathBuf, Entry>,
    /// Every kernel call, in order: `batch NS [what, ...]`, `create [..]`, ...
    pub log: Vec<String>,
    /// Requests refused with this errno, by the `what` of the op.
    pub refuse: BTreeMap<String, i32>,
    /// VXLAN devices by (namespace of their socket, VNI, port): where they are.
    pub vxlan_vnis: BTreeMap<(String, u32, u16), (String, u32)>,
    /// Static flood entries: (namespace, device index, destination).
    pub fdb: std::collections::BTreeSet<(String, u32, std::net::IpAddr)>,
    /// Per namespace: interfaces asked for by name, and reads of all its links
    /// through a handle (the kernel's costs that grow with the lab).
    pub lookups: BTreeMap<String, usize>,
    pub link_dumps: BTreeMap<String, usize>,
    next_index: u32,
    next_id: u64,
}

fn nl(errno: i32, what: &str) -> NlError {
    NlError {
        what: what.to_string(),
        errno,
        ext: None,
    }
}

impl World {
    fn index(&mut self) -> u32 {
        self.next_index += 1;
        self.next_index + 1
    }

    fn new_ns(&mut self) -> FakeNs {
        self.next_id += 1;
        let mut n = FakeNs {
            id: self.next_id,
            ..Default::default()
        };
        n.links.push(ObsLink {
            index: 1,
            name: "lo".into(),
            kind: None,
            alias: None,
            up: false,
            lower_up: false,
            master: None,
            mtu: Some(65536),
            mac: Some([0; 6]),
            peer_index: None,
            forwarding: (None, None),
            port_state: None,
            vxlan: None,
            stp: None,
        });
        n
    }

    fn ns_mut(&mut self, ns: &str) -> Result<&mut FakeNs, NlError> {
        self.ns
            .get_mut(ns)
            .ok_or_else(|| nl(libc::ENOENT, &format!("namespace {ns:?} is gone")))
    }

    fn new_link(&mut self, ns: &str, spec: &VethSpec, kind: &str) -> Result<u32, NlError> {
        let index = self.index();
        let n = self.ns_mut(ns)?;
        if n.links.iter().any(|l| l.name == spec.name) {
            return Err(nl(libc::EEXIST, &spec.name));
        }
        if let Some(m) = spec.master
            && !n.links.iter().any(|l| l.index == m)
        {
            return Err(nl(libc::ENODEV, &spec.name));
        }
        n.links.push(ObsLink {
            index,
            name: spec.name.clone(),
            kind: Some(kind.into()),
            alias: None,
            up: spec.up,
            lower_up: false,
            master: spec.master,
            mtu: Some(spec.mtu.unwrap_or(1500)),
            mac: Some(
                spec.mac
                    .unwrap_or([0x0a, 0x5a, 0, 0, (index >> 8) as u8, index as u8]),
            ),
            peer_index: None,
            forwarding: (None, None),
            port_state: None,
            vxlan: None,
            // A new bridge has STP off and the kernel's default timers (15 s, 20 s).
            stp: (kind == "bridge").then_some(crate::model::observed::ObsStp {
                on: false,
                forward_delay: 1500,
                max_age: 2000,
                root: true,
            }),
        });
        Ok(index)
    }

    /// Delete a link and what goes with it: its addresses, its routes, its
    /// ports' master, and a veth's peer.
    fn del_link(&mut self, ns: &str, name: &str) -> Result<(), NlError> {
        let n = self.ns_mut(ns)?;
        let Some(l) = n.links.iter().find(|l| l.name == name).cloned() else {
            return Err(nl(libc::ENODEV, name));
        };
        drop_link(n, l.index);
        if let Some(p) = l.peer_index {
            for other in self.ns.values_mut() {
                if other
                    .links
                    .iter()
                    .any(|x| x.index == p && x.peer_index == Some(l.index))
                {
                    drop_link(other, p);
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, ns: &str, req: &LinkReq, what: &str) -> Result<(), NlError> {
        if let Some(e) = self.refuse.get(what) {
            return Err(nl(*e, what));
        }
        let errno = |e: i32| nl(e, what);
        match req {
            LinkReq::NewVeth { a, b, b_ns } => {
                let b_ns = b_ns.as_ref().map_or(ns.to_string(), |p| p.ns.to_string());
                self.new_veth(ns, a, &b_ns, b).map_err(errno)?;
            }
            LinkReq::NewBridge { name, mac, mtu } => {
                let spec = VethSpec {
                    name: name.clone(),
                    mtu: *mtu,
                    mac: Some(*mac),
                    master: None,
                    up: false,
                };
                self.new_link(ns, &spec, "bridge")?;
            }
            LinkReq::SetBridgeStp { name, stp } => {
                let l = self
                    .ns_mut(ns)?
                    .link_mut(name)
                    .ok_or_else(|| nl(libc::ENODEV, what))?;
                let o = l.stp.as_mut().ok_or_else(|| nl(libc::EOPNOTSUPP, what))?;
                o.on = stp.is_some();
                if let Some(s) = stp {
                    o.forward_delay = s.forward_delay;
                    o.max_age = s.max_age;
                }
            }
            LinkReq::DelLink { name } => self.del_link(ns, name)?,
            LinkReq::SetLink { .. } => {
                self.ns_mut(ns)?.set_link(req).map_err(errno)?;
                self.carrier();
            }
            LinkReq::NewAddr { index, addr } => {
                self.ns_mut(ns)?.add_addr(*index, *addr).map_err(errno)?
            }
            LinkReq::DelAddr { index, addr } => {
                self.ns_mut(ns)?.del_addr(*index, *addr).map_err(errno)?
            }
            LinkReq::NewRoute(r) => self.ns_mut(ns)?.add_route(r).map_err(errno)?,
            LinkReq::DelRoute(r) => self.ns_mut(ns)?.del_route(r).map_err(errno)?,
            LinkReq::NewVxlan { vxlan: v, ns: into } => {
                // The kernel's rule: one VNI per UDP port in the namespace whose
                // socket carries it (the one the request came from).
                if let Some((t, i)) = self.vxlan_vnis.get(&(ns.to_string(), v.vni, v.port))
                    && self
                        .ns
                        .get(t)
                        .is_some_and(|n| n.links.iter().any(|l| l.index == *i))
                {
                    return Err(errno(libc::EEXIST));
                }
                let target = into.as_ref().map_or(ns.to_string(), |p| p.ns.to_string());
                let spec = VethSpec {
                    name: v.name.clone(),
                    mtu: Some(v.mtu),
                    mac: Some(v.mac),
                    master: None,
                    up: false,
                };
                let index = self.new_link(&target, &spec, "vxlan")?;
                if let Some(l) = self.ns_mut(&target)?.link_mut(&v.name) {
                    l.vxlan = Some(crate::model::observed::ObsVxlan {
                        vni: v.vni,
                        local: Some(v.local),
                        remote: v.remote,
                        port: v.port,
                        flood: vec![],
                    });
                }
                // The kernel's default entry: a unicast remote is an all-zero
                // fdb entry too.
                if let Some(r) = v.remote {
                    self.fdb.insert((target.clone(), index, r));
                }
                self.vxlan_vnis
                    .insert((ns.to_string(), v.vni, v.port), (target, index));
            }
            LinkReq::AppendFdb { index, dst } => {
                let n = self.ns_mut(ns)?;
                if !n.links.iter().any(|l| l.index == *index) {
                    return Err(errno(libc::ENODEV));
                }
                self.fdb.insert((ns.to_string(), *index, *dst));
            }
        }
        Ok(())
    }

    /// A veth pair: `a` in `ns`, `b` in `b_ns`, each the other's peer.
    fn new_veth(&mut self, ns: &str, a: &VethSpec, b_ns: &str, b: &VethSpec) -> Result<(), i32> {
        let Some(far) = self.ns.get(b_ns) else {
            return Err(libc::EBADF);
        };
        if far.links.iter().any(|l| l.name == b.name) {
            return Err(libc::EEXIST);
        }
        let ia = self.new_link(ns, a, "veth").map_err(|e| e.errno)?;
        let ib = self.new_link(b_ns, b, "veth").map_err(|e| e.errno)?;
        let set_peer = |w: &mut World, ns: &str, name: &str, peer: u32| {
            if let Some(l) = w.ns.get_mut(ns).and_then(|n| n.link_mut(name)) {
                l.peer_index = Some(peer);
            }
        };
        set_peer(self, ns, &a.name, ib);
        set_peer(self, b_ns, &b.name, ia);
        self.carrier();
        Ok(())
    }

    /// A veth has carrier when both ends are up; a bridge when it is up.
    pub fn carrier(&mut self) {
        let up: HashMap<u32, bool> = self
            .ns
            .values()
            .flat_map(|n| n.links.iter().map(|l| (l.index, l.up)))
            .collect();
        for n in self.ns.values_mut() {
            for l in &mut n.links {
                l.lower_up = l.up
                    && match l.peer_index {
                        Some(p) => up.get(&p).copied().unwrap_or(false),
                        None => true,
                    };
            }
        }
    }

    fn delete_ns(&mut self, name: &str) -> io::Result<()> {
        let Some(n) = self.ns.remove(name) else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        // The far ends of its veths die with it.
        let peers: Vec<u32> = n.links.iter().filter_map(|l| l.peer_index).collect();
        for other in self.ns.values_mut() {
            for p in &peers {
                if other.links.iter().any(|l| l.index == *p) {
                    drop_link(other, *p);
                }
            }
        }
        Ok(())
    }
}

fn drop_link(n: &mut FakeNs, index: u32) {
    n.links.retain(|l| l.index != index);
    n.addrs.retain(|a| a.index != index);
    n.routes.retain(|r| r.oif != Some(index));
    for l in &mut n.links {
        if l.master == Some(index) {
            l.master = None;
        }
    }
}

/// The fake machine, shared by its handles.
#[derive(Debug, Clone)]
pub struct Fake {
    pub world: Arc<Mutex<World>>,
    /// The state directory the planner's paths point into (links under
    /// /etc/netns that point there are nslab's).
    state_dir: PathBuf,
    /// Host forwarding's bookkeeping is a real file: kept in a temporary
    /// directory that goes with the last clone.
    fwd: Arc<tempfile::TempDir>,
    /// Handles open now, and the most ever open at once (the real kernel's
    /// descriptors: tests of big labs check that they stay bounded).
    handles: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Fake {
    /// The most handles that were open at once.
    pub fn peak_handles(&self) -> usize {
        self.handles.1.load(Ordering::SeqCst)
    }

    /// A machine whose host namespace has `lo` and `eth0` (up, 192.0.2.10/24).
    pub fn new() -> Fake {
        let mut w = World::default();
        let mut host = w.new_ns();
        host.links[0].up = true;
        let eth0 = w.index();
        host.links.push(ObsLink {
            index: eth0,
            name: "eth0".into(),
            kind: None,
            alias: None,
            up: true,
            lower_up: true,
            master: None,
            mtu: Some(1500),
            mac: Some([2, 0, 0, 0, 0, 1]),
            peer_index: None,
            forwarding: (None, None),
            port_state: None,
            vxlan: None,
            stp: None,
        });
        host.addrs.push(ObsAddr {
            index: eth0,
            addr: "192.0.2.10/24".parse().expect("valid"),
        });
        host.sysctls
            .insert("net.ipv4.ip_forward".into(), "0".into());
        w.ns.insert(String::new(), host);
        Fake {
            world: Arc::new(Mutex::new(w)),
            state_dir: crate::record::state_dir(),
            fwd: Arc::new(tempfile::tempdir().expect("a temporary directory")),
            handles: Arc::default(),
        }
    }

    pub fn w(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle on the host namespace.
    pub fn host(&self) -> FakeHandle {
        self.handle("")
    }

    fn handle(&self, ns: &str) -> FakeHandle {
        let now = self.handles.0.fetch_add(1, Ordering::SeqCst) + 1;
        self.handles.1.fetch_max(now, Ordering::SeqCst);
        FakeHandle {
            fake: self.clone(),
            ns: ns.to_string(),
            idx: HashMap::new(),
        }
    }

    /// `ip link set NAME up|down` in `ns`. Down, like the kernel, takes the
    /// IPv4 routes through the link with it.
    pub fn set_up(&self, ns: &str, name: &str, up: bool) {
        let mut w = self.w();
        let n = w.ns.get_mut(ns).expect("namespace");
        let l = n.link_mut(name).expect("link");
        l.up = up;
        let i = l.index;
        if !up {
            n.routes
                .retain(|r| !(r.oif == Some(i) && r.dst.addr().is_ipv4()));
        }
        w.carrier();
    }

    /// Run `f` on one namespace of the fake (to break something by hand).
    pub fn edit<T>(&self, ns: &str, f: impl FnOnce(&mut FakeNs) -> T) -> T {
        let mut w = self.w();
        let t = f(w.ns.get_mut(ns).expect("namespace"));
        w.carrier();
        t
    }

    /// The state of one namespace, as a dump shows it.
    pub fn state(&self, ns: &str) -> Option<NsState> {
        let w = self.w();
        let mut st = w.ns.get(ns).map(FakeNs::state)?;
        // A VXLAN device's flood entries, as the AF_BRIDGE neighbour dump
        // shows them (see `observe::flood`).
        for l in &mut st.links {
            if let Some(x) = &mut l.vxlan {
                x.flood = (w.fdb.iter())
                    .filter(|(n, i, _)| n == ns && *i == l.index)
                    .map(|(_, _, d)| *d)
                    .collect();
            }
        }
        Some(st)
    }

    /// A namespace made by someone else: `lo` only (down, no mark).
    pub fn add_foreign_ns(&self, name: &str) {
        let mut w = self.w();
        let n = w.new_ns();
        w.ns.insert(name.into(), n);
    }

    /// A link made by someone else, down, of `kind` (None: a device); its index.
    pub fn add_foreign_link(&self, ns: &str, name: &str, kind: Option<&str>) -> u32 {
        let mut w = self.w();
        let index = w.index();
        let n = w.ns.get_mut(ns).expect("namespace");
        assert!(
            n.link_mut(name).is_none(),
            "{name} exists already in {ns:?}"
        );
        n.links.push(ObsLink {
            index,
            name: name.into(),
            kind: kind.map(String::from),
            alias: None,
            up: false,
            lower_up: false,
            master: None,
            mtu: Some(1500),
            mac: Some([0x0a, 0x5b, 0, 0, (index >> 8) as u8, index as u8]),
            peer_index: None,
            forwarding: (None, None),
            port_state: None,
            vxlan: None,
            stp: None,
        });
        index
    }
}

/// One open namespace of the fake, with an index cache like the real one (so a
/// stale cache shows up in tests as it would against the kernel).
#[derive(Debug)]
pub struct FakeHandle {
    fake: Fake,
    ns: String,
    idx: HashMap<String, u32>,
}

impl Drop for FakeHandle {
    fn drop(&mut self) {
        self.fake.handles.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn nft_gone(ns: &str) -> NftError {
    NftError::Io {
        op: format!("open namespace {ns:?}"),
        source: io::Error::from_raw_os_error(libc::ENOENT),
    }
}

impl NsHandle for FakeHandle {
    fn index(&mut self, name: &str) -> Result<Option<u32>, NlError> {
        if let Some(&i) = self.idx.get(name) {
            return Ok(Some(i));
        }
        let mut w = self.fake.w();
        *w.lookups.entry(self.ns.clone()).or_default() += 1;
        let n =
            w.ns.get(&self.ns)
                .ok_or_else(|| nl(libc::ENOENT, &format!("find {name}")))?;
        let found = n.links.iter().find(|l| l.name == name).map(|l| l.index);
        if let Some(i) = found {
            self.idx.insert(name.to_string(), i);
        }
        Ok(found)
    }

    fn mark_stale(&mut self) {
        self.idx.clear();
    }

    fn batch(&mut self, reqs: Vec<(LinkReq, String)>) -> Vec<Result<(), NlError>> {
        let mut w = self.fake.w();
        let whats: Vec<&str> = reqs.iter().map(|(_, w)| w.as_str()).collect();
        let line = format!("batch {:?} {:?}", self.ns, whats);
        w.log.push(line);
        let results: Vec<_> = reqs
            .iter()
            .map(|(r, what)| w.apply(&self.ns, r, what))
            .collect();
        for (e, (_, what)) in results.iter().zip(&reqs) {
            if let Err(e) = e {
                let line = format!("  {what}: errno {}", e.errno);
                w.log.push(line);
            }
        }
        results
    }

    fn observe(&mut self) -> Result<NsState, NlError> {
        let st = self
            .fake
            .state(&self.ns)
            .ok_or_else(|| nl(libc::ENOENT, "list links"))?;
        *self.fake.w().link_dumps.entry(self.ns.clone()).or_default() += 1;
        self.idx = st.links.iter().map(|l| (l.name.clone(), l.index)).collect();
        Ok(st)
    }

    fn sysctl_set(&mut self, key: &str, value: &str) -> io::Result<String> {
        let mut w = self.fake.w();
        w.log.push(format!("sysctl {:?} {key}={value}", self.ns));
        let n = w.ns.get_mut(&self.ns).ok_or(io::ErrorKind::NotFound)?;
        Ok(n.sysctls
            .insert(key.into(), value.into())
            .unwrap_or_else(|| "0".into()))
    }

    fn sysctl_get(&mut self, key: &str) -> io::Result<String> {
        let w = self.fake.w();
        let n = w.ns.get(&self.ns).ok_or(io::ErrorKind::NotFound)?;
        Ok(n.sysctls.get(key).cloned().unwrap_or_else(|| "0".into()))
    }

    fn nat_replace(
        &mut self,
        table: &str,
        mark: &str,
        rules: &[Masquerade],
    ) -> Result<(), NftError> {
        let mut w = self.fake.w();
        w.log.push(format!("nat {:?} replace {table}", self.ns));
        let n = w.ns.get_mut(&self.ns).ok_or_else(|| nft_gone(&self.ns))?;
        n.nat.insert(
            table.into(),
            NatRules {
                comment: Some(mark.into()),
                chain_ok: true,
                other_chains: vec![],
                masquerades: rules.to_vec(),
                unknown_rules: 0,
                legacy: false,
            },
        );
        Ok(())
    }

    fn nat_delete_if_marked(&mut self, table: &str, mark: &str) -> Result<bool, NftError> {
        let mut w = self.fake.w();
        w.log.push(format!("nat {:?} delete {table}", self.ns));
        let n = w.ns.get_mut(&self.ns).ok_or_else(|| nft_gone(&self.ns))?;
        if n.nat
            .get(table)
            .is_some_and(|t| t.comment.as_deref() == Some(mark))
        {
            n.nat.remove(table);
            return Ok(true);
        }
        Ok(false)
    }

    fn nat_read(&mut self, table: &str) -> Result<Option<NatRules>, NftError> {
        let w = self.fake.w();
        let n = w.ns.get(&self.ns).ok_or_else(|| nft_gone(&self.ns))?;
        Ok(n.nat.get(table).cloned())
    }

    fn id(&self) -> io::Result<NsId> {
        let w = self.fake.w();
        let n = w.ns.get(&self.ns).ok_or(io::ErrorKind::NotFound)?;
        Ok(NsId { dev: 4, ino: n.id })
    }

    fn as_peer(&self, ns: &Ns) -> PeerNs {
        PeerNs {
            ns: ns.clone(),
            fd: -1,
        }
    }

    fn route_get(
        &mut self,
        dst: IpAddr,
        src: Option<IpAddr>,
        iif: Option<u32>,
    ) -> Result<Lookup, i32> {
        let w = self.fake.w();
        let n = w.ns.get(&self.ns).ok_or(libc::ENOENT)?;
        n.route_get(dst, src, iif)
    }

    fn blocking_routes(&mut self) -> Vec<(IpNet, String)> {
        let w = self.fake.w();
        w.ns.get(&self.ns)
            .map(|n| n.blocking.clone())
            .unwrap_or_default()
    }

    fn neighbours(&mut self) -> Result<Vec<ObsNeigh>, NlError> {
        let w = self.fake.w();
        let n =
            w.ns.get(&self.ns)
                .ok_or_else(|| nl(libc::ENOENT, "list neighbours"))?;
        Ok(n.neigh.clone())
    }

    fn ns_file(&self) -> Option<&std::fs::File> {
        None
    }
}

impl System for Fake {
    type Handle = FakeHandle;

    fn open(&mut self, name: &str) -> io::Result<FakeHandle> {
        if !self.exists(name) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(self.handle(name))
    }

    fn exists(&self, name: &str) -> bool {
        self.w().ns.contains_key(name)
    }

    fn prepare(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn create_many(
        &mut self,
        items: &[NewNs],
        mark: &str,
    ) -> Vec<(String, io::Result<FakeHandle>)> {
        let names: Vec<&str> = items.iter().map(|(n, _)| n.as_str()).collect();
        self.w().log.push(format!("create {names:?}"));
        items
            .iter()
            .map(|(name, sysctls)| {
                let mut w = self.w();
                let r = if w.ns.contains_key(name) {
                    Err(io::Error::from_raw_os_error(libc::EEXIST))
                } else {
                    let mut n = w.new_ns();
                    n.links[0].up = true;
                    n.links[0].alias = Some(mark.into());
                    n.sysctls.extend(sysctls.iter().cloned());
                    w.ns.insert(name.clone(), n);
                    Ok(())
                };
                drop(w);
                (name.clone(), r.map(|_| self.handle(name)))
            })
            .collect()
    }

    fn delete(&mut self, name: &str) -> io::Result<()> {
        let mut w = self.w();
        w.log.push(format!("delete {name:?}"));
        w.delete_ns(name)
    }

    fn forwarding_dir(&self) -> PathBuf {
        self.fwd.path().to_path_buf()
    }

    fn files(&self) -> Arc<dyn Files> {
        Arc::new(FakeFiles {
            world: self.world.clone(),
            state_dir: self.state_dir.clone(),
        })
    }
}

impl Default for Fake {
    fn default() -> Fake {
        Fake::new()
    }
}

/// The fake's files, in its world.
struct FakeFiles {
    world: Arc<Mutex<World>>,
    state_dir: PathBuf,
}

impl FakeFiles {
    fn w(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Files for FakeFiles {
    fn state_dir(&self) -> PathBuf {
        self.state_dir.clone()
    }

    fn read(&self, p: &Path) -> Option<String> {
        match self.w().files.get(p) {
            Some(Entry::File(s)) => Some(s.clone()),
            _ => None,
        }
    }

    fn read_link(&self, p: &Path) -> Option<PathBuf> {
        match self.w().files.get(p) {
            Some(Entry::Link(t)) => Some(t.clone()),
            _ => None,
        }
    }

    fn present(&self, p: &Path) -> bool {
        self.w().files.contains_key(p)
    }

    fn write(&self, p: &Path, content: &str) -> io::Result<()> {
        self.w()
            .files
            .insert(p.to_path_buf(), Entry::File(content.into()));
        Ok(())
    }

    fn link_etc(&self, link: &Path, target: &str) -> io::Result<()> {
        let ours = self.is_our_link(link);
        let mut w = self.w();
        if ours || !w.files.contains_key(link) {
            w.files
                .insert(link.to_path_buf(), Entry::Link(PathBuf::from(target)));
        }
        Ok(())
    }

    fn remove_etc(&self, ns: &str) -> io::Result<()> {
        let dir = Path::new("/etc/netns").join(ns);
        for f in crate::apply::ETC_FILES {
            let p = dir.join(f);
            if self.is_our_link(&p) {
                self.w().files.remove(&p);
            }
        }
        Ok(())
    }
}
