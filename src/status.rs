//! `nslab status`: each object of a lab compared with what the kernel has.

use crate::apply::Kernel;
use crate::error::{Error, Result};
use crate::kernel::seam::{NsHandle, System};
use crate::lab;
use crate::model::observed::NsState;
use crate::plan::{self, Ns};
use crate::record::Record;
use crate::topology::{Lab, Place};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// How an object of the lab compares with the kernel.
///
/// ```
/// use nslab::status::State;
/// assert_eq!(serde_json::to_string(&State::Missing).unwrap(), "\"missing\"");
/// assert_ne!(State::Ok, State::Different);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Missing,
    Different,
}

impl State {
    fn word(&self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Missing => "missing",
            State::Different => "different",
        }
    }
}

/// An interface of a place: its link state, addresses, bridge, and how it
/// compares.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// for i in lab.status()?.places.iter().flat_map(|p| &p.interfaces) {
///     println!("{} {} {:?} {:?}", i.name, i.link, i.addresses, i.status);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct IfStatus {
    pub name: String,
    pub kind: Option<String>,
    /// "up", "down" or "absent"
    pub link: String,
    pub addresses: Vec<String>,
    pub master: Option<String>,
    pub status: State,
    pub detail: Vec<String>,
}

/// A route of a place, declared or found.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let s = lab.status()?;
/// let extra = s.places.iter().flat_map(|p| &p.routes).filter(|r| !r.declared);
/// for r in extra {
///     println!("not declared: {}", r.route);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct RouteStatus {
    pub route: String,
    /// Declared by the lab (else: found in the kernel only).
    pub declared: bool,
    pub status: State,
}

/// A node (or `host`, `internet`) as the kernel has it.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// for p in &lab.status()?.places {
///     println!("{} in namespace {:?}: {:?}", p.place, p.namespace, p.status);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct PlaceStatus {
    /// Node name, `host` or `internet`.
    pub place: String,
    /// Namespace under /run/netns ("" = the namespace nslab runs in).
    pub namespace: String,
    pub status: State,
    pub interfaces: Vec<IfStatus>,
    pub routes: Vec<RouteStatus>,
}

/// A bridge of the lab, its addresses and ports.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// for b in &lab.status()?.bridges {
///     println!("{}: {} ports, {:?}", b.name, b.ports.len(), b.status);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct BridgeStatus {
    pub name: String,
    pub addresses: Vec<String>,
    pub ports: Vec<(String, State)>,
    pub status: State,
    /// Its spanning tree as the kernel has it: `off`, or `on, forward delay
    /// 2 s, max age 6 s` (the timers in use: the root's); None when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stp: Option<String>,
    /// With STP on: each port's state (`forwarding`, `blocking`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub port_states: Vec<(String, String)>,
    /// Cables to other bridges: `PORT -> BRIDGE:PORT`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cables: Vec<String>,
}

/// A lab compared with the kernel (as `nslab status`): every place,
/// interface, route and bridge, and the drift `up` would repair.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let s: nslab::Status = lab.status()?;
/// if !s.ok {
///     for d in &s.drift {
///         println!("drift: {d}");
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub lab: String,
    pub mode: &'static str,
    pub file: Option<String>,
    /// What the kernel was compared with: "record" or the file's path.
    pub compared_with: String,
    pub places: Vec<PlaceStatus>,
    pub bridges: Vec<BridgeStatus>,
    /// What differs, as the steps `nslab up` would take to repair it: the one
    /// comparison `plan` and `up` make (MTU, MAC, forwarding, NAT contents, ...).
    pub drift: Vec<String>,
    pub ok: bool,
    /// Egress shaping made by `nslab shape` (runtime state: not drift).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shaping: Vec<crate::runtime::shape::ShapeView>,
    /// The file's published ports and the state of their table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<String>,
    /// The firewalls (`firewall:`) and the state of their tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewalls: Vec<String>,
    /// Runtime state (`nslab link`, `partition`): shown, never drift.
    #[serde(default)]
    pub runtime: crate::runtime::State,
    /// The sysctls the file sets, wanted against found.
    #[serde(default)]
    pub sysctls: Vec<SysctlStatus>,
    /// The lab's NAT tables (the host's, and routers' with `nat:`).
    #[serde(default)]
    pub nat: Vec<NatStatus>,
    /// A machine's part of a lab over several machines: its VXLAN devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vxlans: Vec<VxlanStatus>,
}

/// A VXLAN device of a machine's part: what it joins, and how the kernel's compares.
#[derive(Debug, Clone, Serialize)]
pub struct VxlanStatus {
    /// Node name (a cable's end) or `host` (a bridge port).
    pub place: String,
    pub name: String,
    pub vni: u32,
    pub local: std::net::IpAddr,
    /// A cable: the other machine's underlay address; a bridge: its flood list.
    pub remotes: Vec<std::net::IpAddr>,
    /// The other machines.
    pub machines: Vec<String>,
    /// A cable's far end (`b:eth0`), or the bridge it is a port of.
    pub joins: String,
    /// Whether the host has a route to every remote (the underlay reaches it).
    pub underlay_routed: bool,
    pub status: State,
    /// The flood entries the kernel has (`bridge fdb show dev VX`, all-zero
    /// MAC): a bridge port missing one of `remotes` is different.
    #[serde(default)]
    pub flood: Vec<std::net::IpAddr>,
}

/// Each VXLAN device of a machine's part, against what was observed.
fn vxlan_statuses(model: &Lab, observed: &BTreeMap<Ns, Option<NsState>>) -> Vec<VxlanStatus> {
    let host = observed
        .get(&plan::underlay_ns(model))
        .and_then(|o| o.as_ref());
    model
        .vxlans
        .iter()
        .map(|v| {
            let ns = plan::ns_of(model, &v.place);
            let o = observed
                .get(&ns)
                .and_then(|o| o.as_ref())
                .and_then(|st| st.link(&v.name));
            let remotes: Vec<std::net::IpAddr> = v.remote.iter().chain(&v.flood).copied().collect();
            let flood: Vec<std::net::IpAddr> = o
                .and_then(|o| o.vxlan.as_ref())
                .map(|x| x.flood.clone())
                .unwrap_or_default();
            let underlay_routed = host.is_some_and(|h| {
                remotes.iter().all(|r| {
                    h.routes.iter().any(|x| x.dst.contains(r))
                        || h.addrs.iter().any(|a| a.addr.contains(r))
                })
            });
            VxlanStatus {
                place: v.place.to_string(),
                name: v.name.clone(),
                vni: v.vni,
                local: v.local,
                remotes,
                machines: v.peers.clone(),
                joins: v
                    .far_end
                    .clone()
                    .or_else(|| v.master.clone())
                    .unwrap_or_default(),
                underlay_routed,
                status: match o {
                    None => State::Missing,
                    Some(o)
                        if plan::vxlan_matches(o, v)
                            && v.flood.iter().all(|d| flood.contains(d)) =>
                    {
                        State::Ok
                    }
                    Some(_) => State::Different,
                },
                flood,
            }
        })
        .collect()
}

/// One NAT table of the lab: where, its rules as the file wants them, and how
/// the kernel's compares.
#[derive(Debug, Clone, Serialize)]
pub struct NatStatus {
    /// Node name or `host`.
    pub place: String,
    /// `inet nslab-LAB`.
    pub table: String,
    /// The rules the file wants, as `nft list` prints them.
    pub rules: Vec<String>,
    pub status: State,
}

/// Each NAT table the file wants, read back from its namespace.
fn nat_statuses<S: System>(k: &mut Kernel<S>, model: &Lab) -> Vec<NatStatus> {
    let table = plan::nat_table(&model.name);
    let mark = model.mark();
    let places = std::iter::once((Place::Host, &model.nat)).chain(
        model
            .nodes
            .iter()
            .map(|n| (Place::Node(n.name.clone()), &n.nat)),
    );
    let mut out = Vec::new();
    for (p, want) in places {
        if want.is_empty() {
            continue;
        }
        let rules: Vec<crate::model::nat::Masquerade> = want.iter().map(Into::into).collect();
        let ns = plan::ns_of(model, &p);
        let exists = ns.name().is_none_or(|n| k.sys.exists(n));
        let found = if exists {
            k.conn(&ns)
                .ok()
                .and_then(|c| c.nat_read(&table).ok().flatten())
        } else {
            None
        };
        out.push(NatStatus {
            place: p.to_string(),
            table: format!("inet {table}"),
            rules: rules.iter().map(|r| r.to_string()).collect(),
            status: match found {
                None => State::Missing,
                Some(f) if f.matches(&mark, &rules) => State::Ok,
                Some(_) => State::Different,
            },
        });
    }
    out
}

/// A sysctl the file sets in a place, and what the kernel has.
#[derive(Debug, Clone, Serialize)]
pub struct SysctlStatus {
    /// Node name or `host`.
    pub place: String,
    pub key: String,
    pub want: String,
    /// None: the namespace or the key is not there.
    pub found: Option<String>,
    pub status: State,
}

/// Each sysctl the file sets, read from its namespace.
fn sysctl_statuses<S: System>(k: &mut Kernel<S>, model: &Lab) -> Vec<SysctlStatus> {
    let mut out = Vec::new();
    let places = std::iter::once((Place::Host, &model.host.sysctl)).chain(
        model
            .nodes
            .iter()
            .map(|n| (Place::Node(n.name.clone()), &n.sysctl)),
    );
    for (p, want) in places {
        if want.is_empty() {
            continue;
        }
        let ns = plan::ns_of(model, &p);
        let exists = ns.name().is_none_or(|n| k.sys.exists(n));
        for (key, value) in want {
            let found = if exists {
                k.conn(&ns).ok().and_then(|c| c.sysctl_get(key).ok())
            } else {
                None
            };
            let found = found.map(|f| plan::sysctl_norm(&f));
            out.push(SysctlStatus {
                place: p.to_string(),
                key: key.clone(),
                want: value.clone(),
                status: match &found {
                    None => State::Missing,
                    Some(f) if f == value => State::Ok,
                    Some(_) => State::Different,
                },
                found,
            });
        }
    }
    out
}

/// Compare the kernel with `model` (the record's, or a file's).
#[doc(hidden)]
pub fn status(rec: &Record, model: &Lab, compared_with: String) -> Result<Status> {
    // In host mode the host is the namespace the lab was brought up in.
    let host = if model.sandbox {
        None
    } else {
        crate::kernel::conn::find_by_id(rec.host_ns)
            .map_err(Error::io("open the lab's host namespace"))?
            .map(|(_, c)| c)
    };
    // A host namespace that is gone shows as such, not as the one we run in.
    let host_lost = !model.sandbox && host.is_none();
    let host = match host {
        Some(c) => c,
        None => crate::kernel::conn::open_current().map_err(Error::io("open a netlink socket"))?,
    };
    let mut k = Kernel::new(host, &model.name);
    let mut s = status_in(&mut k, rec, model, compared_with, host_lost)?;
    s.shaping = crate::runtime::shape::status_views(rec, model);
    let shape_drift = crate::runtime::shape::drift(&s.shaping);
    if !shape_drift.is_empty() {
        s.ok = false;
        s.drift.extend(shape_drift);
    }
    s.published = crate::runtime::publish::status_lines(rec, model);
    let publish_drift = crate::runtime::publish::drift(rec, model);
    if !publish_drift.is_empty() {
        s.ok = false;
        s.drift.extend(publish_drift);
    }
    s.firewalls = crate::runtime::firewall::status_lines(rec, model);
    let fw_drift = crate::runtime::firewall::drift(rec, model);
    if !fw_drift.is_empty() {
        s.ok = false;
        s.drift.extend(fw_drift);
    }
    Ok(s)
}

/// [`status`] on a kernel already open (the real one, or a fake).
pub(crate) fn status_in<S: System>(
    k: &mut Kernel<S>,
    rec: &Record,
    model: &Lab,
    compared_with: String,
    host_lost: bool,
) -> Result<Status> {
    let mut observed = observe_places(k, model);
    if host_lost {
        observed.insert(Ns::HOST, None);
    }
    // The planner's comparison decides: what `plan` lists and `up` repairs is
    // exactly what status calls different.
    let mut drift: Vec<String> = match lab::plan_in(k, model, Some(rec)) {
        Ok(p) => p.ops.iter().map(|o| o.to_string()).collect(),
        // Something in the way that `up` would refuse to touch: that is drift too.
        Err(Error::Refused(m)) => m.lines().map(|l| format!("in the way: {l}")).collect(),
        Err(e) => return Err(e),
    };
    drift.extend(programs_not_running(rec, model));
    let mut st = compare_held(model, &observed, drift, &rec.runtime);
    if model.sandbox && !model.vxlans.is_empty() {
        // A sandboxed machine's part: the underlay is the real host's.
        let under = plan::underlay_ns(model);
        let taken = k.take_many(std::slice::from_ref(&under));
        if let Ok(mut taken) = taken {
            for (ns, c) in taken.iter_mut() {
                observed.insert(ns.clone(), c.observe().ok());
            }
            k.give_back(taken);
        }
    }
    st.vxlans = vxlan_statuses(model, &observed);
    st.ok &= st.vxlans.iter().all(|x| x.status == State::Ok);
    st.sysctls = sysctl_statuses(k, model);
    st.nat = nat_statuses(k, model);
    st.ok &= st.sysctls.iter().all(|x| x.status == State::Ok)
        && st.nat.iter().all(|x| x.status == State::Ok);
    st.lab = rec.lab.clone();
    st.file = rec.file.clone();
    st.compared_with = compared_with;
    Ok(st)
}

/// Interfaces set down on purpose (`nslab link`), by place.
type Held = std::collections::BTreeSet<(Place, String)>;

/// The places of the lab in the order `status` shows them.
fn places(model: &Lab) -> Vec<Place> {
    let mut order: Vec<Place> = vec![Place::Host];
    if model.sandbox {
        order.push(Place::Internet);
    }
    order.extend(model.nodes.iter().map(|n| Place::Node(n.name.clone())));
    order
}

/// What the kernel has in each place's namespace (None: it does not exist or
/// cannot be read).
fn observe_places<S: System>(k: &mut Kernel<S>, model: &Lab) -> BTreeMap<Ns, Option<NsState>> {
    let mut out = BTreeMap::new();
    let mut present = Vec::new();
    for p in places(model) {
        let ns = plan::ns_of(model, &p);
        if ns.name().is_none_or(|n| k.sys.exists(n)) {
            present.push(ns.clone());
        }
        out.insert(ns, None);
    }
    // A batch of namespaces at a time (see Kernel::group); one that cannot be
    // opened is read alone, so the others still are.
    for part in present.chunks(k.group()) {
        let taken = match k.take_many(part) {
            Ok(t) => t,
            Err(_) => part
                .iter()
                .filter_map(|ns| k.take_many(std::slice::from_ref(ns)).ok())
                .flatten()
                .collect(),
        };
        let mut taken = taken;
        for (ns, c) in taken.iter_mut() {
            out.insert(ns.clone(), c.observe().ok());
        }
        k.give_back(taken);
    }
    out
}

/// `up` starts each `run:` program that is not running.
fn programs_not_running(rec: &Record, model: &Lab) -> Vec<String> {
    let mut out = Vec::new();
    for n in &model.nodes {
        for c in &n.run {
            let running = rec.processes.iter().any(|p| {
                p.origin == "run"
                    && p.node == n.name
                    && &p.command == c
                    && crate::programs::alive(p)
            });
            if !running {
                out.push(format!("start `{c}` in {} (not running)", n.name));
            }
        }
    }
    out
}

/// The comparison itself, from what was observed (pure: no kernel). `drift` is
/// the planner's verdict; the caller fills in lab, file and compared_with.
#[doc(hidden)]
pub fn compare(
    model: &Lab,
    observed: &BTreeMap<Ns, Option<NsState>>,
    drift: Vec<String>,
) -> Status {
    compare_held(model, observed, drift, &Default::default())
}

/// [`compare`], with the lab's runtime state: interfaces and bridge ports set
/// down with `nslab link` (or by the file's `up: false`) are down on purpose
/// (ok, not different).
#[doc(hidden)]
pub fn compare_held(
    model: &Lab,
    observed: &BTreeMap<Ns, Option<NsState>>,
    drift: Vec<String>,
    rt: &crate::runtime::State,
) -> Status {
    // The file's `up: false` cables are down on purpose too.
    let held: Held = rt
        .links_down
        .iter()
        .map(|d| (d.place.clone(), d.interface.clone()))
        .chain(
            crate::runtime::file_down(rt, model)
                .into_iter()
                .map(|e| (e.place.clone(), e.ifname.clone())),
        )
        .collect();
    let wants = plan::wants(model);
    let empty = NsState::default();
    let mut places_out = Vec::new();
    for p in places(model) {
        let ns = plan::ns_of(model, &p);
        let st = observed.get(&ns).and_then(|o| o.as_ref());
        places_out.push(place_status(model, &p, &ns, wants.get(&ns), st, &held));
    }
    let host = observed
        .get(&plan::ns_of(model, &Place::Host))
        .and_then(|o| o.as_ref())
        .unwrap_or(&empty);
    let bridges: Vec<BridgeStatus> = model
        .bridges
        .iter()
        .map(|b| bridge_status(model, b, host, &held))
        .collect();
    let ok = places_out.iter().all(|p| p.status == State::Ok)
        && bridges.iter().all(|b| b.status == State::Ok)
        && drift.is_empty();
    Status {
        lab: model.name.clone(),
        mode: if model.sandbox { "sandbox" } else { "host" },
        file: None,
        compared_with: String::new(),
        places: places_out,
        bridges,
        drift,
        ok,
        shaping: Vec::new(),
        published: Vec::new(),
        firewalls: Vec::new(),
        runtime: rt.clone(),
        sysctls: Vec::new(),
        nat: Vec::new(),
        vxlans: Vec::new(),
    }
}

/// One place: its interfaces and routes against what the lab wants there.
fn place_status(
    model: &Lab,
    p: &Place,
    ns: &Ns,
    want: Option<&plan::Want>,
    st: Option<&NsState>,
    held: &Held,
) -> PlaceStatus {
    let empty = NsState::default();
    let s = st.unwrap_or(&empty);
    let (mut ifs, mut routes) = (Vec::new(), Vec::new());
    if let Some(w) = want {
        ifs = iface_statuses(model, p, ns, w, s, st.is_some(), held);
        routes = forwarding_status(model, p, s);
        routes.extend(route_statuses(p, ns, w, s, held));
    }
    let status = if st.is_none() && !ns.is_host() {
        State::Missing
    } else if ifs.iter().all(|i| i.status == State::Ok)
        && routes.iter().all(|r| r.status == State::Ok)
    {
        State::Ok
    } else {
        State::Different
    };
    PlaceStatus {
        place: p.to_string(),
        namespace: ns.to_string(),
        status,
        interfaces: ifs,
        routes,
    }
}

/// The interfaces the lab wants in one namespace (bridges are shown apart).
fn iface_statuses(
    model: &Lab,
    p: &Place,
    ns: &Ns,
    w: &plan::Want,
    s: &NsState,
    exists: bool,
    held: &Held,
) -> Vec<IfStatus> {
    let mark = model.mark();
    let bridge_names: Vec<&str> = model.bridges.iter().map(|b| b.name.as_str()).collect();
    let mut ifs = Vec::new();
    // lo first in nodes, as `ip addr` shows it.
    if !ns.is_host()
        && let Some(lo) = s.link("lo")
    {
        ifs.push(if_status(s, "lo", lo.up, &[], None, &mark, true));
    }
    for wi in w
        .ifaces
        .iter()
        .filter(|i| i.name != "lo" && !bridge_names.contains(&i.name.as_str()))
    {
        let mut x = if_status(
            s,
            &wi.name,
            !held.contains(&(p.clone(), wi.name.clone())),
            &wi.addrs,
            wi.master.as_deref(),
            &mark,
            !ns.is_host(),
        );
        if !exists {
            x.status = State::Missing;
        }
        if let Some(l) = s.link(&wi.name) {
            set_details(&mut x, wi, l);
        }
        ifs.push(x);
    }
    ifs
}

/// MTU and MAC the file sets: both values when they differ.
fn set_details(x: &mut IfStatus, wi: &plan::WIf, l: &crate::model::observed::ObsLink) {
    let hex = |m: &[u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if let Some(want) = wi.mtu.filter(|m| l.mtu != Some(*m)) {
        x.detail.push(format!(
            "mtu {} (the lab says {want})",
            l.mtu.map(|m| m.to_string()).unwrap_or("?".into())
        ));
    }
    if let Some(want) = wi.mac.filter(|m| l.mac != Some(*m)) {
        x.detail.push(format!(
            "MAC {} (the lab says {})",
            l.mac.as_ref().map(hex).unwrap_or("?".into()),
            hex(&want)
        ));
    }
    if !x.detail.is_empty() {
        x.status = State::Different;
    }
}

/// Forwarding, as the kernel shows it on lo, against the lab's node.
fn forwarding_status(model: &Lab, p: &Place, s: &NsState) -> Vec<RouteStatus> {
    if let Place::Node(n) = p
        && let Some(node) = model.node(n)
        && let Some((Some(v4), _)) = s.link("lo").map(|l| l.forwarding)
        && v4 != node.forward
    {
        return vec![RouteStatus {
            route: format!(
                "forwarding is {} (the lab says forward: {})",
                if v4 { "on" } else { "off" },
                node.forward
            ),
            declared: true,
            status: State::Different,
        }];
    }
    vec![]
}

/// The declared routes (ok or missing), then the others the kernel has.
fn route_statuses(
    p: &Place,
    ns: &Ns,
    w: &plan::Want,
    s: &NsState,
    held: &Held,
) -> Vec<RouteStatus> {
    let idx = |d: &str| s.link(d).map(|l| l.index);
    let mut routes = Vec::new();
    for r in &w.routes {
        // A route through a link down on purpose went with it: not missing.
        let ok = s.routes.iter().any(|o| plan::route_matches(o, r, &idx))
            || plan::route_uses(w, r, |d| held.contains(&(p.clone(), d.to_string())));
        routes.push(RouteStatus {
            route: r.to_string(),
            declared: true,
            status: if ok { State::Ok } else { State::Missing },
        });
    }
    for o in &s.routes {
        if w.routes.iter().any(|r| plan::route_matches(o, r, &idx)) {
            continue;
        }
        let dev = o
            .oif
            .and_then(|i| s.link_by_index(i))
            .map(|l| l.name.clone());
        // In host mode only routes through the lab's own interfaces are shown.
        if ns.is_host()
            && !dev
                .as_ref()
                .is_some_and(|d| w.ifaces.iter().any(|i| &i.name == d))
        {
            continue;
        }
        let r = crate::topology::Route {
            dst: o.dst,
            via: o.via,
            dev,
            onlink: o.onlink,
            metric: o.metric,
        };
        let kernel = if o.protocol == "kernel" {
            " proto kernel"
        } else {
            ""
        };
        routes.push(RouteStatus {
            route: format!("{r}{kernel}"),
            declared: false,
            status: State::Ok,
        });
    }
    routes
}

/// A bridge in the host namespace, its ports and addresses.
fn bridge_status(
    model: &Lab,
    b: &crate::topology::Bridge,
    s: &NsState,
    held: &Held,
) -> BridgeStatus {
    let mark = &model.mark();
    let o = s.link(&b.name);
    let stp_obs = o.and_then(|l| l.stp);
    let stp_ok = stp_obs.is_none_or(|x| plan::stp_matches(&x, b.stp.as_ref()));
    let stp = stp_obs.map(|x| {
        if x.on {
            format!(
                "on, forward delay {} s, max age {} s",
                x.forward_delay as f64 / 100.0,
                x.max_age as f64 / 100.0
            )
        } else {
            "off".to_string()
        }
    });
    let port_states = if stp_obs.is_some_and(|x| x.on) {
        b.ports
            .iter()
            .filter_map(|p| {
                let st = s.link(p)?.port_state?;
                Some((p.clone(), crate::kernel::ready::port_name(st).to_string()))
            })
            .collect()
    } else {
        Vec::new()
    };
    let cables = model
        .links
        .iter()
        .filter(|l| l.a.bridge.is_some() && l.b.bridge.is_some())
        .flat_map(|l| [(&l.a, &l.b), (&l.b, &l.a)])
        .filter(|(x, _)| x.bridge.as_deref() == Some(b.name.as_str()))
        .map(|(x, y)| format!("{} -> {y}", x.ifname))
        .collect();
    let ports: Vec<(String, State)> = b
        .ports
        .iter()
        .map(|p| {
            let st = match (s.link(p), o) {
                (None, _) => State::Missing,
                (Some(pl), Some(bl))
                    if pl.master == Some(bl.index)
                        && (pl.up || held.contains(&(Place::Host, p.clone()))) =>
                {
                    State::Ok
                }
                _ => State::Different,
            };
            (p.clone(), st)
        })
        .collect();
    let addrs: Vec<String> = o
        .map(|l| s.addrs_of(l.index).map(|a| a.to_string()).collect())
        .unwrap_or_default();
    let status = match o {
        None => State::Missing,
        Some(l)
            if l.up
                && stp_ok
                && l.alias.as_deref() == Some(mark.as_str())
                && b.addresses.iter().all(|a| addrs.contains(&a.to_string()))
                && ports.iter().all(|p| p.1 == State::Ok) =>
        {
            State::Ok
        }
        Some(_) => State::Different,
    };
    BridgeStatus {
        name: b.name.clone(),
        addresses: addrs,
        ports,
        status,
        stp,
        port_states,
        cables,
    }
}

fn if_status(
    s: &NsState,
    name: &str,
    want_up: bool,
    addrs: &[ipnet::IpNet],
    master: Option<&str>,
    mark: &str,
    in_lab_ns: bool,
) -> IfStatus {
    let Some(l) = s.link(name) else {
        return IfStatus {
            name: name.into(),
            kind: None,
            link: "absent".into(),
            addresses: vec![],
            master: master.map(String::from),
            status: State::Missing,
            detail: vec![],
        };
    };
    let have: Vec<ipnet::IpNet> = s.addrs_of(l.index).cloned().collect();
    let mut detail = Vec::new();
    if want_up && !l.up {
        detail.push("down".to_string());
    }
    for a in addrs {
        if !have.contains(a) {
            detail.push(format!("missing address {a}"));
        }
    }
    let master_name = l
        .master
        .and_then(|i| s.link_by_index(i))
        .map(|m| m.name.clone());
    if let Some(m) = master
        && master_name.as_deref() != Some(m)
    {
        detail.push(format!("not a port of {m}"));
    }
    if name != "lo" && l.alias.as_deref() != Some(mark) && !in_lab_ns {
        detail.push("not marked as the lab's".into());
    }
    IfStatus {
        name: name.into(),
        kind: l.kind.clone(),
        link: if l.up { "up".into() } else { "down".into() },
        addresses: have.iter().map(|a| a.to_string()).collect(),
        master: master_name,
        status: if detail.is_empty() {
            State::Ok
        } else {
            State::Different
        },
        detail,
    }
}

/// A table after a blank line: its head, then a row per item.
fn push_table(o: &mut String, head: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let mut all = vec![head.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    all.extend(rows);
    o.push('\n');
    o.push_str(&crate::util::table(&all));
}

/// The human table.
#[doc(hidden)]
pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "lab {} ({}{}), compared with {}",
        s.lab,
        s.mode,
        s.file
            .as_ref()
            .map(|f| format!(", from {f}"))
            .unwrap_or_default(),
        s.compared_with
    );
    o.push_str(&crate::util::table(&interface_rows(s)));
    let routes = route_rows(s);
    if routes.len() > 1 {
        o.push('\n');
        o.push_str(&crate::util::table(&routes));
    }
    if !s.bridges.is_empty() {
        o.push('\n');
        o.push_str(&crate::util::table(&bridge_rows(s)));
        for b in &s.bridges {
            if b.stp.as_deref().is_some_and(|x| x != "off") {
                let _ = writeln!(o, "STP {}: {}", b.name, b.stp.as_deref().unwrap_or(""));
            }
        }
        // Each cable between bridges once, from the bridge first in the file.
        let mut seen = BTreeSet::new();
        for b in &s.bridges {
            for c in &b.cables {
                let (port, far) = c.split_once(" -> ").unwrap_or((c, ""));
                if seen.insert(far.to_string()) {
                    seen.insert(format!("{}:{port}", b.name));
                    let _ = writeln!(o, "cable between bridges: {}:{port} -- {far}", b.name);
                }
            }
        }
    }
    if !s.vxlans.is_empty() {
        let head = [
            "NODE", "VXLAN", "VNI", "JOINS", "MACHINES", "REMOTE", "UNDERLAY", "STATUS",
        ];
        push_table(
            &mut o,
            &head,
            s.vxlans.iter().map(|v| {
                vec![
                    v.place.clone(),
                    v.name.clone(),
                    v.vni.to_string(),
                    v.joins.clone(),
                    v.machines.join(" "),
                    v.remotes
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    if v.underlay_routed {
                        "routed"
                    } else {
                        "no route"
                    }
                    .into(),
                    v.status.word().into(),
                ]
            }),
        );
    }
    if !s.sysctls.is_empty() {
        let head = ["NODE", "SYSCTL", "WANT", "FOUND", "STATUS"];
        push_table(
            &mut o,
            &head,
            s.sysctls.iter().map(|x| {
                vec![
                    x.place.clone(),
                    x.key.clone(),
                    x.want.clone(),
                    x.found.clone().unwrap_or_else(|| "-".into()),
                    x.status.word().into(),
                ]
            }),
        );
    }
    if !s.nat.is_empty() {
        let head = ["NODE", "NAT TABLE", "RULES", "STATUS"];
        push_table(
            &mut o,
            &head,
            s.nat.iter().map(|x| {
                vec![
                    x.place.clone(),
                    x.table.clone(),
                    x.rules.join("; "),
                    x.status.word().into(),
                ]
            }),
        );
    }
    for line in crate::runtime::shape::status_lines(&s.shaping) {
        let _ = write!(o, "\n{line}");
    }
    for line in &s.published {
        let _ = write!(o, "\n{line}");
    }
    for line in &s.firewalls {
        let _ = write!(o, "\n{line}");
    }
    let runtime = crate::runtime::describe(&s.runtime);
    if !runtime.is_empty() {
        let _ = write!(
            o,
            "\nruntime state (kept by `nslab up`, dropped by `up --reset`; not drift):\n"
        );
        for r in &runtime {
            let _ = writeln!(o, "  {r}");
        }
    }
    if !s.drift.is_empty() {
        let _ = write!(o, "\nwhat differs (what `nslab up` would do about it):\n");
        for d in &s.drift {
            let _ = writeln!(o, "  {d}");
        }
    }
    let _ = write!(
        o,
        "\n{}",
        if s.ok {
            "everything matches"
        } else {
            "some objects are missing or different: run `nslab up` to repair"
        }
    );
    o
}

fn words_or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" ")
    }
}

/// One row per interface of each place (or one for a place without any).
fn interface_rows(s: &Status) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "NODE".to_string(),
        "NAMESPACE".into(),
        "INTERFACE".into(),
        "LINK".into(),
        "ADDRESSES".into(),
        "STATUS".into(),
    ]];
    for p in &s.places {
        let ns = if p.namespace.is_empty() {
            "(this one)".to_string()
        } else {
            p.namespace.clone()
        };
        if p.interfaces.is_empty() {
            rows.push(vec![
                p.place.clone(),
                ns.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                p.status.word().into(),
            ]);
        }
        for i in &p.interfaces {
            let st = if i.detail.is_empty() {
                i.status.word().to_string()
            } else {
                format!("{} ({})", i.status.word(), i.detail.join(", "))
            };
            let name = match &i.master {
                Some(m) => format!("{} @{m}", i.name),
                None => i.name.clone(),
            };
            rows.push(vec![
                p.place.clone(),
                ns.clone(),
                name,
                i.link.clone(),
                words_or_dash(&i.addresses),
                st,
            ]);
        }
    }
    rows
}

fn route_rows(s: &Status) -> Vec<Vec<String>> {
    let mut rr = vec![vec!["NODE".to_string(), "ROUTE".into(), "STATUS".into()]];
    for p in &s.places {
        for r in &p.routes {
            rr.push(vec![
                p.place.clone(),
                r.route.clone(),
                if r.declared {
                    r.status.word().to_string()
                } else {
                    "(not declared)".into()
                },
            ]);
        }
    }
    rr
}

fn bridge_rows(s: &Status) -> Vec<Vec<String>> {
    let mut br = vec![vec![
        "BRIDGE".to_string(),
        "ADDRESSES".into(),
        "PORTS".into(),
        "STATUS".into(),
    ]];
    for b in &s.bridges {
        let ports: Vec<String> = b
            .ports
            .iter()
            .map(|(p, st)| {
                // With STP on: the port's state, unless it forwards.
                let stp = b
                    .port_states
                    .iter()
                    .find(|(q, x)| q == p && x != "forwarding")
                    .map(|(_, x)| x.as_str());
                match (*st == State::Ok, stp) {
                    (true, None) => p.clone(),
                    (true, Some(x)) => format!("{p} ({x})"),
                    (false, _) => format!("{p} ({})", st.word()),
                }
            })
            .collect();
        br.push(vec![
            b.name.clone(),
            words_or_dash(&b.addresses),
            ports.join(" "),
            b.status.word().into(),
        ]);
    }
    br
}

/// Status of a lab that is up, against its record or a file.
#[doc(hidden)]
pub fn for_lab(lab_name: &str, file: Option<&std::path::Path>, prefix: &str) -> Result<Status> {
    let rec = lab::record_of(lab_name)?;
    let (model, with) = match file {
        Some(f) => (lab::load(f, prefix, rec.sandbox)?, f.display().to_string()),
        None => (
            rec.model.clone().ok_or_else(|| {
                Error::Failed(format!(
                    "lab {lab_name} never finished coming up; run `nslab up` again"
                ))
            })?,
            "its record".to_string(),
        ),
    };
    status(&rec, &model, with)
}

#[cfg(test)]
mod tests;
