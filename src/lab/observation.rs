//! Reading what the kernel has for a lab: its namespaces, the host's NAT table
//! and forwarding, and what in the host overlaps the lab.

use super::*;
use crate::kernel::seam::{NsHandle, System};

/// Observe every namespace in `names` that exists, plus the host in host mode;
/// in the lab's host namespace also its nftables table and forwarding.
pub(crate) fn observe<S: System>(
    k: &mut Kernel<S>,
    lab: &Lab,
    names: &BTreeSet<String>,
    other: Option<&Lab>,
) -> Result<Observed> {
    // Node namespaces whose NAT table is read: where this model or the other one
    // (the record's, or the refused one) has node `nat:`. Not every node: one
    // nftables socket per namespace is costly in labs of 1000 nodes.
    let nat_in: BTreeSet<&str> = std::iter::once(lab)
        .chain(other)
        .flat_map(|l| l.nodes.iter())
        .filter(|n| !n.nat.is_empty())
        .map(|n| n.ns.as_str())
        .collect();
    let files = k.sys.files();
    let state = files.state_dir();
    let mut obs = Observed {
        lab_hosts: files.read(&record::hosts_path_in(&state, &lab.name)),
        lab_resolv: files.read(&record::resolv_path_in(&state, &lab.name)),
        ..Default::default()
    };
    // Files under /etc/netns that someone else put there, also for namespaces
    // that do not exist yet.
    let etc = |ns: &str, f: &str| Path::new("/etc/netns").join(ns).join(f);
    obs.foreign_hosts = lab
        .nodes
        .iter()
        .map(|n| &n.ns)
        .filter(|ns| {
            let f = etc(ns, "hosts");
            files.present(&f) && !files.is_our_link(&f)
        })
        .cloned()
        .collect();
    // Each node's resolv.conf, also before its namespace exists.
    let resolv_dir = state.join("resolv");
    for n in &lab.nodes {
        let link = etc(&n.ns, "resolv.conf");
        let found = match files.read_link(&link) {
            _ if !files.present(&link) => plan::EtcFile::Absent,
            Some(t) if t.parent() == Some(resolv_dir.as_path()) => {
                plan::EtcFile::Ours(t.display().to_string())
            }
            _ => plan::EtcFile::Foreign,
        };
        obs.resolv.insert(n.ns.clone(), found);
    }
    let host_ns = plan::ns_of(lab, &Place::Host);
    let mut all: Vec<Ns> = names.iter().map(Ns::named).collect();
    if !lab.sandbox {
        all.insert(0, host_ns.clone());
    } else if !lab.vxlans.is_empty() {
        // A sandboxed machine's part: its underlay is the real host's.
        all.insert(0, plan::underlay_ns(lab));
    }
    let present: Vec<Ns> = all
        .into_iter()
        .filter(|ns| ns.name().is_none_or(|name| k.sys.exists(name)))
        .collect();
    // In batches: a big lab is read a batch of namespaces at a time, each
    // opened, read and let go (see Kernel::group).
    let group = k.group();
    for part in present.chunks(group) {
        let mut taken = k.take_many(part)?;
        let r = taken
            .iter_mut()
            .try_for_each(|(ns, c)| observe_one(&mut obs, ns, c, &host_ns, lab, &nat_in, &*files));
        k.give_back(taken);
        r?;
    }
    Ok(obs)
}

/// Read one namespace into `obs`: its links, addresses and routes, the link
/// to the hosts file; in the lab's host also its NAT table and forwarding.
fn observe_one<H: NsHandle>(
    obs: &mut Observed,
    ns: &Ns,
    c: &mut H,
    host_ns: &Ns,
    lab: &Lab,
    nat_in: &BTreeSet<&str>,
    files: &dyn crate::kernel::seam::Files,
) -> Result<()> {
    let etc = |ns: &str, f: &str| Path::new("/etc/netns").join(ns).join(f);
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
    let hosts = files
        .read_link(&etc(ns.as_str(), "hosts"))
        .map(|p| p.display().to_string());
    let (mut nat, mut ip_forward) = (None, None);
    if ns == host_ns {
        nat = read_nat(c, &plan::nat_table(&lab.name))?;
        ip_forward = c.sysctl_get("net.ipv4.ip_forward").ok().map(|v| v == "1");
    } else if nat_in.contains(ns.as_str()) {
        nat = read_nat(c, &plan::nat_table(&lab.name))?;
    }
    let sysctls = plan::wanted_sysctls(lab, ns)
        .into_iter()
        .flat_map(|w| w.keys())
        .map(|key| (key.clone(), c.sysctl_get(key).ok()))
        .collect();
    obs.ns.insert(
        ns.clone(),
        NsObs {
            state: st,
            hosts,
            nat,
            ip_forward,
            sysctls,
        },
    );
    Ok(())
}

/// The lab's nftables table in a namespace, as the planner sees it.
fn read_nat<H: NsHandle>(ns: &mut H, table: &str) -> Result<Option<plan::NatObs>> {
    let found = ns
        .nat_read(table)
        .map_err(|e| Error::Failed(format!("read nftables table {table}: {e}")))?;
    Ok(found.map(|r| {
        let rules: Vec<_> = r.masquerades.iter().filter_map(|m| m.to_nat()).collect();
        let exact = r.chain_ok
            && !r.legacy
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
pub(super) fn host_link_names(lab: &Lab) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = lab.bridges.iter().map(|b| b.name.clone()).collect();
    s.extend(lab.host.interfaces.iter().map(|i| i.name.clone()));
    // A machine's VXLAN bridge ports.
    s.extend(
        (lab.vxlans.iter())
            .filter(|v| v.place == crate::topology::Place::Host)
            .map(|v| v.name.clone()),
    );
    s
}
