//! Labs over several machines: `machines:`, `on:`, the VNIs of what crosses
//! machines, and one machine's part of a lab (`up --machine`).
//!
//! No coordinator: every machine reads the same file, so everything here is
//! derived from the file alone and comes out the same on each of them.

use super::model::*;
use super::raw::{RawFile, RawLink, S};
use serde_saphyr::Location;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

type Report<'a> = dyn FnMut(&Location, String, String) + 'a;

/// The highest VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// The first derived VNI of a lab: FNV-1a of its name (prefix included, so
/// prefixed copies of a lab differ), a block of 4096 per lab.
pub fn vni_base(lab: &str) -> u32 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in lab.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    4096 * (1 + (h % 4000) as u32)
}

fn loc<T>(s: &S<T>) -> &Location {
    &s.referenced
}

/// The machine a cable's end lives on: its node's (a bridge is on every
/// machine that holds one of its members).
fn machine_of<'a>(placement: &'a BTreeMap<String, String>, e: &End) -> Option<&'a String> {
    match (&e.place, &e.bridge) {
        (Place::Node(n), _) => placement.get(n),
        _ => None,
    }
}

/// Validate `machines:` and `on:`, give what crosses machines its VNI, and fit
/// MTUs to the overlay. Adds to `lab`; reports problems through `report`.
pub fn parse(report: &mut Report, raw: &RawFile, lab: &mut Lab) {
    let top = Location::UNKNOWN;
    let mut at = |l: &Location, f: &str, m: String| report(l, f.to_string(), m);
    if raw.machines.0.is_empty() {
        for (k, n) in &raw.nodes.0 {
            if let Some(on) = &n.on {
                at(
                    loc(on),
                    &format!("nodes.{}.on", k.value),
                    "`on:` names a machine, and the file has no `machines:`".into(),
                );
            }
        }
        for (k, b) in &raw.bridges.0 {
            if let Some(on) = &b.on {
                at(
                    loc(on),
                    &format!("bridges.{}.on", k.value),
                    "`on:` names a machine, and the file has no `machines:`".into(),
                );
            }
        }
        for (i, l) in raw.links.iter().enumerate() {
            if let RawLink::Map(m) = &l.value
                && let Some(v) = &m.vni
            {
                at(
                    loc(v),
                    &format!("links[{i}].vni"),
                    "`vni:` is for a cable between machines, and the file has no `machines:`"
                        .into(),
                );
            }
        }
        return;
    }
    // Machines: names, underlay addresses (unique), MTUs.
    let mut seen: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (k, m) in &raw.machines.0 {
        let field = format!("machines.{}", k.value);
        if let Some(p) = super::validate::name_problem(&k.value) {
            at(loc(k), &field, format!("machine name {:?} {p}", k.value));
            continue;
        }
        let Ok(ip) = m.underlay.value.trim().parse::<IpAddr>() else {
            at(
                loc(&m.underlay),
                &format!("{field}.underlay"),
                format!(
                    "{:?} is not an IP address (the machine's own address on the network between the machines, like 10.9.0.1)",
                    m.underlay.value
                ),
            );
            continue;
        };
        if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
            at(
                loc(&m.underlay),
                &format!("{field}.underlay"),
                format!(
                    "{ip} cannot be a machine's underlay address: it needs a unicast address other machines reach"
                ),
            );
            continue;
        }
        if let Some(other) = seen.insert(ip, k.value.clone()) {
            at(
                loc(&m.underlay),
                &format!("{field}.underlay"),
                format!(
                    "{ip} is already the underlay address of machine {other}; each machine needs its own"
                ),
            );
            continue;
        }
        let mtu = match &m.underlay_mtu {
            Some(v) if !(68 + VXLAN_OVERHEAD..=65535).contains(&v.value) => {
                at(
                    loc(v),
                    &format!("{field}.underlay_mtu"),
                    format!(
                        "underlay_mtu {} is out of range {}..65535",
                        v.value,
                        68 + VXLAN_OVERHEAD
                    ),
                );
                continue;
            }
            Some(v) => v.value,
            None => 1500,
        };
        lab.machines.push(Machine {
            name: k.value.clone(),
            underlay: ip,
            underlay_mtu: mtu,
        });
    }
    let names: Vec<&str> = raw
        .machines
        .0
        .iter()
        .map(|(k, _)| k.value.as_str())
        .collect();
    let mut place = |what: &str, k: &S<String>, on: Option<&S<String>>, need: bool| {
        let field = format!("{what}.{}.on", k.value);
        match on {
            Some(on) if names.contains(&on.value.as_str()) => {
                lab.placement.insert(k.value.clone(), on.value.clone());
            }
            Some(on) => at(
                loc(on),
                &field,
                format!("no machine {:?}; machines: {}", on.value, names.join(", ")),
            ),
            None if need => at(
                loc(k),
                &field,
                format!(
                    "the lab spans machines: say which one {} lives on, `on: {}` (machines: {})",
                    k.value,
                    names[0],
                    names.join(", ")
                ),
            ),
            None => {}
        }
    };
    for (k, n) in &raw.nodes.0 {
        place("nodes", k, n.on.as_ref(), true);
    }
    for (k, b) in &raw.bridges.0 {
        let has_addr = b.address.is_some() || !b.addresses.is_empty();
        place("bridges", k, b.on.as_ref(), has_addr);
    }
    // What one machine's part cannot hold (yet): the host's own cables, NAT
    // and published ports belong to one host, and a file with machines has several.
    if !raw.nat.is_empty() {
        at(
            loc(&raw.nat[0]),
            "nat",
            "`nat:` is not supported in a lab with `machines:` (give a node `nat:` instead)".into(),
        );
    }
    if !raw.publish.is_empty() {
        at(
            loc(&raw.publish[0]),
            "publish",
            "`publish:` is not supported in a lab with `machines:`".into(),
        );
    }
    // Cables: which cross machines; VNIs the file sets.
    let mut explicit: BTreeMap<u32, String> = BTreeMap::new();
    let mut link_vni: BTreeMap<usize, u32> = BTreeMap::new();
    for (i, rl) in raw.links.iter().enumerate() {
        let field = format!("links[{i}]");
        let RawLink::Map(m) = &rl.value else { continue };
        let Some(v) = &m.vni else { continue };
        let Some(ends) = &m.ends else { continue };
        let text: Vec<&str> = ends.value.iter().map(|e| e.value.as_str()).collect();
        let Some(li) = lab
            .links
            .iter()
            .position(|l| text == [l.a.to_string(), l.b.to_string()])
        else {
            continue;
        };
        let l = &lab.links[li];
        let (ma, mb) = (
            machine_of(&lab.placement, &l.a),
            machine_of(&lab.placement, &l.b),
        );
        if ma.is_none() || mb.is_none() || ma == mb {
            at(loc(v), &format!("{field}.vni"), "`vni:` is for a cable between nodes on two machines; this one stays on one machine".into());
        } else if v.value == 0 || v.value > MAX_VNI {
            at(
                loc(v),
                &format!("{field}.vni"),
                format!("vni {} is out of range 1..{MAX_VNI}", v.value),
            );
        } else if let Some(other) = explicit.insert(v.value, field.clone()) {
            at(
                loc(v),
                &format!("{field}.vni"),
                format!(
                    "vni {} is already the vni of {other}; each cable between machines needs its own",
                    v.value
                ),
            );
        } else {
            link_vni.insert(li, v.value);
        }
    }
    let mtu_of = |ms: &BTreeSet<&String>, machines: &[Machine]| {
        machines
            .iter()
            .filter(|m| ms.contains(&m.name))
            .map(|m| m.underlay_mtu)
            .min()
            .unwrap_or(1500)
            - VXLAN_OVERHEAD
    };
    let base = vni_base(&lab.name);
    let mut next = 0u32;
    let mut derive = |explicit: &BTreeMap<u32, String>| loop {
        let v = base + next;
        next += 1;
        if !explicit.contains_key(&v) {
            return v;
        }
    };
    let mut overlays = Vec::new();
    for (li, l) in lab.links.iter().enumerate() {
        for e in [&l.a, &l.b] {
            if e.place == Place::Host {
                let what = if e.bridge.is_some() && l.a.bridge.is_some() && l.b.bridge.is_some() {
                    "a cable between two bridges"
                } else if e.bridge.is_some() {
                    continue;
                } else {
                    "a cable to the host"
                };
                at(
                    &top,
                    &format!("links[{li}]"),
                    format!(
                        "{what} ({} -- {}) is not supported in a lab with `machines:`",
                        l.a, l.b
                    ),
                );
                break;
            }
        }
        let (Some(ma), Some(mb)) = (
            machine_of(&lab.placement, &l.a),
            machine_of(&lab.placement, &l.b),
        ) else {
            continue;
        };
        if ma == mb {
            continue;
        }
        let vni = link_vni
            .get(&li)
            .copied()
            .unwrap_or_else(|| derive(&explicit));
        let ms: BTreeSet<&String> = [ma, mb].into();
        overlays.push(Overlay {
            vni,
            cable: Some((l.a.clone(), l.b.clone())),
            bridge: None,
            machines: vec![ma.clone(), mb.clone()],
            mtu: mtu_of(&ms, &lab.machines),
        });
    }
    for b in &lab.bridges {
        let mut ms: BTreeSet<&String> = lab.placement.get(&b.name).into_iter().collect();
        for l in &lab.links {
            for (e, o) in [(&l.a, &l.b), (&l.b, &l.a)] {
                if e.bridge.as_deref() == Some(b.name.as_str())
                    && let Some(m) = machine_of(&lab.placement, o)
                {
                    ms.insert(m);
                }
            }
        }
        if ms.len() < 2 {
            continue;
        }
        overlays.push(Overlay {
            vni: derive(&explicit),
            cable: None,
            bridge: Some(b.name.clone()),
            machines: ms.iter().map(|m| m.to_string()).collect(),
            mtu: mtu_of(&ms, &lab.machines),
        });
    }
    // MTUs: what crosses machines carries 50 bytes of headers in the underlay's MTU.
    for o in &overlays {
        let mut ends: Vec<End> = Vec::new();
        if let Some((a, b)) = &o.cable {
            ends.extend([a.clone(), b.clone()]);
        }
        if let Some(bn) = &o.bridge {
            if let Some(br) = lab.bridges.iter_mut().find(|x| &x.name == bn) {
                match br.mtu {
                    Some(m) if m > o.mtu => at(
                        &top,
                        &format!("bridges.{bn}.mtu"),
                        format!(
                            "mtu {m} does not fit bridge {bn} across machines {}: at most {} (underlay MTU less {VXLAN_OVERHEAD} bytes of VXLAN headers)",
                            o.machines.join(", "),
                            o.mtu
                        ),
                    ),
                    Some(_) => {}
                    None => br.mtu = Some(o.mtu),
                }
            }
            for l in &lab.links {
                for (e, other) in [(&l.a, &l.b), (&l.b, &l.a)] {
                    if e.bridge.as_deref() == Some(bn.as_str()) {
                        ends.push(other.clone());
                    }
                }
            }
        }
        for e in ends {
            let Place::Node(n) = &e.place else { continue };
            let Some(node) = lab.nodes.iter_mut().find(|x| &x.name == n) else {
                continue;
            };
            let Some(i) = node.interfaces.iter_mut().find(|i| i.name == e.ifname) else {
                continue;
            };
            // A stable MAC: a machine's part restarted comes back with the MACs
            // its neighbours on other machines have cached (else they keep
            // sending to the old one until their ARP entries expire).
            if i.mac.is_none() {
                i.mac = Some(super::validate::stable_mac(&lab.name, &e.to_string()));
            }
            match i.mtu {
                Some(m) if m > o.mtu => at(
                    &top,
                    &format!("nodes.{n}.interfaces.{}.mtu", e.ifname),
                    format!(
                        "mtu {m} does not fit {e}, which crosses machines {}: at most {} (underlay MTU less {VXLAN_OVERHEAD} bytes of VXLAN headers)",
                        o.machines.join(", "),
                        o.mtu
                    ),
                ),
                Some(_) => {}
                None => i.mtu = Some(o.mtu),
            }
        }
    }
    lab.overlays = overlays;
}

/// One machine's part of a lab: its nodes, the bridges it holds members of
/// (with the bridge's addresses only on the machine `on:` names), the cables
/// with both ends on it, and a VXLAN device for each cable and bridge that
/// crosses to another machine.
pub fn part(lab: &Lab, machine: &str) -> Result<Lab, String> {
    if lab.machines.is_empty() {
        return Err(format!("--machine {machine}: the file has no `machines:`"));
    }
    let Some(me) = lab.machines.iter().find(|m| m.name == machine) else {
        return Err(format!(
            "--machine {machine}: no such machine in the file; machines: {}",
            machine_names(lab)
        ));
    };
    let underlay = |name: &str| {
        lab.machines
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.underlay)
    };
    let on_me = |n: &str| lab.placement.get(n).map(String::as_str) == Some(machine);
    let mut p = lab.clone();
    p.machine = Some(machine.to_string());
    p.nodes.retain(|n| on_me(&n.name));
    p.index = Default::default();
    let local_end = |e: &End| match &e.place {
        Place::Node(n) => on_me(n),
        _ => false,
    };
    p.links.retain(|l| local_end(&l.a) || local_end(&l.b));
    let mut vxlans = Vec::new();
    for o in &lab.overlays {
        if !o.machines.iter().any(|m| m == machine) {
            continue;
        }
        let peers: Vec<String> = o
            .machines
            .iter()
            .filter(|m| *m != machine)
            .cloned()
            .collect();
        if let Some((a, b)) = &o.cable {
            let (mine, far) = if local_end(a) { (a, b) } else { (b, a) };
            p.links.retain(|l| !(l.a == *a && l.b == *b));
            vxlans.push(Vxlan {
                name: mine.ifname.clone(),
                place: mine.place.clone(),
                vni: o.vni,
                local: me.underlay,
                remote: peers.first().and_then(|m| underlay(m)),
                flood: Vec::new(),
                peers,
                master: None,
                mtu: o.mtu,
                mac: iface_mac(lab, mine).unwrap_or_else(|| {
                    super::validate::stable_mac(&lab.name, &format!("{mine}@{machine}"))
                }),
                far_end: Some(far.to_string()),
            });
        } else if let Some(b) = &o.bridge {
            vxlans.push(Vxlan {
                name: format!("vx{}", o.vni),
                place: Place::Host,
                vni: o.vni,
                local: me.underlay,
                remote: None,
                flood: peers.iter().filter_map(|m| underlay(m)).collect(),
                peers,
                master: Some(b.clone()),
                mtu: o.mtu,
                mac: super::validate::stable_mac(&lab.name, &format!("vx{}@{machine}", o.vni)),
                far_end: None,
            });
        }
    }
    // Bridges: those with a member here, or whose address lives here.
    let members: BTreeSet<String> = p
        .links
        .iter()
        .flat_map(|l| [&l.a, &l.b])
        .filter_map(|e| e.bridge.clone())
        .chain(
            lab.placement
                .iter()
                .filter(|(_, m)| *m == machine)
                .map(|(n, _)| n.clone()),
        )
        .collect();
    p.bridges.retain(|b| members.contains(&b.name));
    for b in &mut p.bridges {
        if !on_me(&b.name) {
            b.addresses.clear();
            // The bridge's MAC is its address's: one machine holds it, the
            // others' parts of the bridge need MACs of their own, or each
            // takes the frames meant for the one with the address.
            b.mac = super::validate::stable_mac(&lab.name, &format!("{}@{machine}", b.name));
        }
        let kept: BTreeSet<&str> = p
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.bridge.as_deref() == Some(b.name.as_str()))
            .map(|e| e.ifname.as_str())
            .collect();
        b.ports.retain(|x| kept.contains(x.as_str()));
    }
    let host_ifs: BTreeSet<String> = p
        .bridges
        .iter()
        .flat_map(|b| std::iter::once(b.name.clone()).chain(b.ports.iter().cloned()))
        .collect();
    p.host.interfaces.retain(|i| host_ifs.contains(&i.name));
    p.firewalls.retain(|f| match &f.place {
        Place::Node(n) => on_me(n),
        Place::Host | Place::Internet => true,
    });
    // Expectations: those sent from this machine's nodes, with destinations on
    // other machines named by address (this part knows only its own nodes).
    p.expect = lab
        .expect
        .iter()
        .filter_map(|e| localize(lab, e, &on_me))
        .collect();
    p.vxlans = vxlans;
    Ok(p)
}

/// An expectation of the whole lab as this machine's part checks it: None when
/// another machine sends it.
fn localize(lab: &Lab, e: &Expect, on_me: &dyn Fn(&str) -> bool) -> Option<Expect> {
    let to_addr = |dst: &str, family: Option<u8>| -> String {
        let local = on_me(dst.split(':').next().unwrap_or(dst));
        if local {
            return dst.to_string();
        }
        crate::probe::check::resolve(lab, dst, family.unwrap_or(4))
            .map(|a| a.to_string())
            .unwrap_or_else(|_| dst.to_string())
    };
    let mut e = e.clone();
    match &mut e.kind {
        ExpectKind::Reach {
            src, dst, family, ..
        } => {
            if !on_me(src) {
                return None;
            }
            *dst = to_addr(dst, *family);
        }
        ExpectKind::Tcp { src, dst, .. }
        | ExpectKind::Throughput { src, dst, .. }
        | ExpectKind::Loss { src, dst, .. } => {
            if !on_me(src) {
                return None;
            }
            *dst = to_addr(dst, None);
        }
        ExpectKind::Http { src, .. } => {
            if !on_me(src) {
                return None;
            }
        }
    }
    Some(e)
}

/// The MAC the file pins on a node's interface.
fn iface_mac(lab: &Lab, e: &End) -> Option<[u8; 6]> {
    let Place::Node(n) = &e.place else {
        return None;
    };
    lab.node(n)?
        .interfaces
        .iter()
        .find(|i| i.name == e.ifname)?
        .mac
}

/// The machines of a lab, for messages.
pub fn machine_names(lab: &Lab) -> String {
    lab.machines
        .iter()
        .map(|m| format!("{} ({})", m.name, m.underlay))
        .collect::<Vec<_>>()
        .join(", ")
}
