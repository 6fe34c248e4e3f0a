//! The library facade: bring a lab up, take it down, compare it with the kernel.

use crate::apply::{self, Intent, Kernel};
use crate::error::{Error, Result, require_caps};
use crate::kernel::conn::{self, Conn};
use crate::kernel::msg;
use crate::kernel::netns;
use crate::kernel::observe::{self, NsState, ObsLink};
use crate::kernel::procs;
use crate::plan::{self, Ns, NsObs, Observed, Op};
use crate::record::{self, Record};
use crate::topology::{self, Lab, Place};
use ipnet::IpNet;
use netlink_packet_route::link::InfoKind;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

mod down;
mod observation;
pub mod places;
mod up;

pub use down::*;
pub use observation::*;
use places::CaptureSpec;
pub use places::parse_place;
pub use up::*;

/// Called with the lab's name when an operation has to wait for another nslab
/// working on the same lab (set by [`on_lock_wait`]; nothing by default).
static LOCK_WAIT: std::sync::RwLock<Option<fn(&str)>> = std::sync::RwLock::new(None);

/// Have `f` told (with the lab's name) when an operation is about to wait for
/// another nslab working on the same lab, before it blocks. The library itself
/// prints nothing; the CLI passes a function that says so on stderr.
pub fn on_lock_wait(f: fn(&str)) {
    *LOCK_WAIT.write().unwrap_or_else(|e| e.into_inner()) = Some(f);
}

pub(crate) fn lock_lab(lab: &str) -> Result<record::LabLock> {
    match record::lock(lab, false).map_err(Error::io("lock the lab"))? {
        Some(l) => Ok(l),
        None => {
            if let Some(f) = *LOCK_WAIT.read().unwrap_or_else(|e| e.into_inner()) {
                f(lab);
            }
            Ok(record::lock(lab, true)
                .map_err(Error::io("lock the lab"))?
                .expect("blocking lock"))
        }
    }
}

/// Which lab a command means: `--lab NAME`, or FILE with `--prefix`, or the only lab up.
pub fn select(lab: Option<&str>, file: Option<&Path>, prefix: &str) -> Result<String> {
    if let Some(p) = topology::validate::prefix_problem(prefix) {
        return Err(Error::Usage(format!("--prefix {prefix:?} {p}")));
    }
    if let Some(l) = lab {
        if let Some(p) = topology::validate::name_problem(l) {
            return Err(Error::Usage(format!("--lab {l:?}: lab name {p}")));
        }
        return Ok(l.to_string());
    }
    if let Some(f) = file {
        let name = format!("{prefix}{}", name_in_file(f)?);
        if let Some(p) = topology::validate::name_problem(&name) {
            return Err(Error::Usage(format!(
                "{}: lab name {name:?} {p}",
                f.display()
            )));
        }
        return Ok(name);
    }
    let labs = record::list().map_err(Error::io("list labs"))?;
    match labs.len() {
        1 => Ok(labs[0].clone()),
        0 => Err(Error::Usage(
            "no lab is up; bring one up with `nslab up FILE`".into(),
        )),
        _ => Err(Error::Usage(format!(
            "several labs are up ({}); name one with --lab NAME or give its FILE (and --prefix)",
            labs.join(", ")
        ))),
    }
}

/// The lab and node whose namespace is `ns` (a namespace name given where a node
/// name was expected), among the labs that are up.
pub fn node_of_namespace(ns: &str) -> Option<(String, String)> {
    record::list().ok()?.into_iter().find_map(|l| {
        let rec = Record::load(&l).ok()??;
        let node = rec.model?.nodes.into_iter().find(|n| n.ns == ns)?;
        Some((l, node.name))
    })
}

/// A lab that was brought up from a given file (see [`labs_from_file`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FromFile {
    pub lab: String,
    /// The `--prefix` it was brought up with (None: its first `up` did not finish).
    pub prefix: Option<String>,
    pub sandbox: bool,
}

/// Labs whose record says they were brought up from `file` (the same file by its
/// canonical path, whatever its `name:` says now).
pub fn labs_from_file(file: &Path) -> Result<Vec<FromFile>> {
    let want = std::fs::canonicalize(file)
        .or_else(|_| std::path::absolute(file))
        .map_err(Error::io(format!("{}", file.display())))?;
    let mut out = Vec::new();
    for l in record::list().map_err(Error::io("list labs"))? {
        if let Ok(Some(r)) = Record::load(&l)
            && r.file.as_deref().map(Path::new) == Some(want.as_path())
        {
            out.push(FromFile {
                lab: r.lab.clone(),
                prefix: r.model.as_ref().map(|m| m.prefix.clone()),
                sandbox: r.sandbox,
            });
        }
    }
    Ok(out)
}

/// The `name:` of a topology file, even if the rest of the file no longer validates
/// (`down` trusts the record, not the file).
pub fn name_in_file(f: &Path) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct NameOnly {
        name: String,
    }
    let text = topology::read_text(f).map_err(|m| Error::Usage(format!("{}: {m}", f.display())))?;
    match serde_saphyr::from_str::<NameOnly>(&text) {
        Ok(n) => Ok(n.name),
        Err(_) => Err(Error::Usage(format!(
            "{}: no `name:` found; use --lab NAME",
            f.display()
        ))),
    }
}

/// The lab's record, or a clear error if it is not up.
pub fn record_of(lab: &str) -> Result<Record> {
    match Record::load(lab).map_err(Error::io(format!("read the record of lab {lab}")))? {
        Some(r) => Ok(r),
        None => {
            let labs = record::list().unwrap_or_default();
            Err(Error::Usage(format!(
                "lab {lab} is not up{}",
                if labs.is_empty() {
                    String::new()
                } else {
                    format!(" (labs up: {})", labs.join(", "))
                }
            )))
        }
    }
}

/// The namespace of a place of a lab that is up: `host`, `internet` or a node name.
pub fn place_ns(rec: &Record, place: &str) -> Result<(Place, Ns)> {
    let model = rec.model.as_ref().ok_or_else(|| {
        Error::Failed(format!(
            "lab {} is not completely up; run `nslab up` again",
            rec.lab
        ))
    })?;
    let p = places::place_of_lab(model, &rec.lab, place)?;
    Ok((p.clone(), plan::ns_of(model, &p)))
}

/// The namespace of a place of a lab that is up, as an open file (host mode's host
/// is found by its recorded identity).
pub fn place_file(rec: &Record, place: &Place) -> Result<std::fs::File> {
    let model = rec.model.as_ref().ok_or_else(|| {
        Error::Failed(format!(
            "lab {} is not completely up; run `nslab up` again",
            rec.lab
        ))
    })?;
    let ns = plan::ns_of(model, place);
    if ns.is_host() {
        return match conn::find_by_id(rec.host_ns)
            .map_err(Error::io("find the lab's host namespace"))?
        {
            Some((_, c)) => Ok(c.file),
            None => Err(Error::Failed(format!(
                "the namespace lab {} was brought up in is gone",
                rec.lab
            ))),
        };
    }
    netns::open(ns.as_str()).map_err(Error::io(format!("open namespace {ns}")))
}

/// Run `f` on a thread in a namespace (a place's, from [`place_file`]); the
/// caller's thread stays where it is.
pub fn run_in<T: Send>(ns: &std::fs::File, f: impl FnOnce() -> T + Send) -> Result<T> {
    netns::run_in(ns, f).map_err(Error::io("enter the namespace"))
}

/// Capture targets: `NODE:IF`, `host:IF`, `internet:IF`, `BRIDGE:PORT`, `BRIDGE`
/// (its ports), `NODE` (its interfaces) or `all`.
pub fn capture_targets(
    rec: &Record,
    specs: &[String],
) -> Result<Vec<crate::capture::engine::Target>> {
    use crate::capture::engine::Target;
    use std::sync::Arc;
    let model = rec
        .model
        .as_ref()
        .ok_or_else(|| Error::Failed(format!("lab {} is not completely up", rec.lab)))?;
    let wants = plan::wants(model);
    let ifaces_of = |p: &Place| -> Vec<String> {
        wants
            .get(&plan::ns_of(model, p))
            .map(|w| {
                w.ifaces
                    .iter()
                    .map(|i| i.name.clone())
                    .filter(|n| n != "lo")
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut want: Vec<(Place, String, String)> = Vec::new();
    for spec in specs {
        match places::capture_spec(model, &rec.lab, spec)? {
            CaptureSpec::All => {
                let mut all = vec![Place::Host];
                if model.sandbox {
                    all.push(Place::Internet);
                }
                all.extend(model.nodes.iter().map(|n| Place::Node(n.name.clone())));
                for p in all {
                    for i in ifaces_of(&p) {
                        want.push((p.clone(), i.clone(), format!("{p}:{i}")));
                    }
                }
            }
            CaptureSpec::Port(_, port) => want.push((Place::Host, port, spec.clone())),
            CaptureSpec::Iface(p, ifname) => want.push((p, ifname, spec.clone())),
            CaptureSpec::Bridge(b) => {
                for p in model
                    .bridge(&b)
                    .map(|b| b.ports.as_slice())
                    .unwrap_or_default()
                {
                    want.push((Place::Host, p.clone(), format!("host:{p}")));
                }
            }
            CaptureSpec::Place(p) => {
                let ifs = ifaces_of(&p);
                if ifs.is_empty() {
                    return Err(places::nothing_to_capture(spec));
                }
                for i in ifs {
                    want.push((p.clone(), i.clone(), format!("{p}:{i}")));
                }
            }
        }
    }
    let mut files: std::collections::BTreeMap<Place, Arc<std::fs::File>> =
        std::collections::BTreeMap::new();
    let mut out: Vec<Target> = Vec::new();
    for (p, ifname, label) in want {
        if out.iter().any(|t| t.label == label) {
            continue;
        }
        let f = match files.get(&p) {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(place_file(rec, &p)?);
                files.insert(p.clone(), f.clone());
                f
            }
        };
        out.push(Target {
            label,
            ns: f,
            ifname,
        });
    }
    Ok(out)
}

/// Record a program nslab started in a lab (under the lab's lock).
pub fn add_process(lab: &str, p: crate::record::Proc) -> Result<()> {
    let _lock = lock_lab(lab)?;
    let mut rec = record_of(lab)?;
    rec.processes.push(p);
    rec.save().map_err(Error::io("write the lab's record"))
}

/// Forget a program of the lab's record (it was stopped); under the lab's lock.
pub fn remove_process(lab: &str, p: &crate::record::Proc) -> Result<()> {
    let _lock = lock_lab(lab)?;
    let mut rec = record_of(lab)?;
    rec.processes
        .retain(|q| !(q.pid == p.pid && q.start_time == p.start_time));
    rec.save().map_err(Error::io("write the lab's record"))
}

#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub namespace: String,
    pub lab: Option<String>,
    /// `node NAME`, `host` or `internet`.
    pub place: Option<String>,
}

/// The named namespaces a process is in (like `ip netns identify`), with the lab
/// and place when nslab made them.
pub fn identify(pid: i32) -> std::io::Result<Vec<Identity>> {
    let ino = procs::net_ino(pid).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such process (or no access to its namespace)",
        )
    })?;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(netns::netns_dir()) else {
        return Ok(out);
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if netns::exists(&name) && procs::ns_ino(&netns::path(&name)) == Some(ino) {
            let (mut lab, mut place) = (None, None);
            for l in record::list().unwrap_or_default() {
                if let Ok(Some(r)) = Record::load(&l)
                    && r.namespaces.contains(&name)
                {
                    if let Some(m) = &r.model {
                        place = if m.host_ns().as_deref() == Some(name.as_str()) {
                            Some("host".to_string())
                        } else if m.internet_ns().as_deref() == Some(name.as_str()) {
                            Some("internet".to_string())
                        } else {
                            m.nodes
                                .iter()
                                .find(|n| n.ns == name)
                                .map(|n| format!("node {}", n.name))
                        };
                    }
                    lab = Some(l);
                }
            }
            out.push(Identity {
                namespace: name,
                lab,
                place,
            });
        }
    }
    Ok(out)
}

/// What `up` would change (as `nslab plan`): the steps and the commands a
/// person would type for them.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// let topo = nslab::Topology::from_file("examples/objective1-veth.yaml")?;
/// let r: nslab::PlanReport = nslab::Lab::plan_for(&topo, &nslab::Options::default())?;
/// for c in &r.commands {
///     println!("{c}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub lab: String,
    pub sandbox: bool,
    /// The lab is up already: the plan is only the difference.
    pub up: bool,
    pub ops: Vec<Op>,
    /// The same ops as the commands a person would type.
    pub commands: Vec<String>,
    pub notes: Vec<String>,
    /// Host mode: addresses that `up` would refuse without --force.
    pub overlaps: Vec<String>,
    /// The `run:` programs `up` would start, as the commands a person would
    /// type (`# then, in NODE: ip netns exec NS CMD &`), for `plan --explain`
    /// of a lab that is not up (not in the JSON).
    #[serde(skip)]
    pub programs: Vec<String>,
    /// The shapings recorded by `nslab shape`, as the tc/nft commands a person
    /// would type (kept by `up`; not part of the plan's steps).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shaping: Vec<String>,
    /// The file's published ports, as the nft commands a person would type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// What `up` would change in the publish table of a lab that is up.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publish_changes: Vec<String>,
    /// The file's firewalls, as the nft commands a person would type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub firewall: Vec<String>,
    /// What `up` would change in the firewall tables of a lab that is up.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub firewall_changes: Vec<String>,
}

/// What `up` would do now, without doing it.
pub fn plan(lab: &Lab) -> Result<PlanReport> {
    // What `up` refuses (delay or jitter without netem), `plan` refuses too.
    crate::runtime::shape::check_file_shapes(lab)?;
    let rec = Record::load(&lab.name)
        .map_err(Error::io(format!("read the record of lab {}", lab.name)))?;
    plan_with_record(lab, rec.as_ref())
}

/// `plan` against a record already read (`status`). In host mode the host is
/// the namespace the lab was brought up in.
pub fn plan_with_record(lab: &Lab, rec: Option<&Record>) -> Result<PlanReport> {
    let rec = rec.cloned();
    let host = match rec.as_ref().filter(|_| !lab.sandbox) {
        Some(r) => conn::find_by_id(r.host_ns)
            .map_err(Error::io("find the lab's host namespace"))?
            .map(|(_, c)| c),
        None => None,
    };
    let host = match host {
        Some(c) => c,
        None => conn::open_current().map_err(Error::io("open a netlink socket"))?,
    };
    let mut k = Kernel::new(host, &lab.name);
    let mut r = plan_in(&mut k, lab, rec.as_ref())?;
    r.shaping = crate::runtime::shape::explain_recorded(lab, rec.as_ref());
    let pre = match plan::ns_of(lab, &Place::Host).name() {
        Some(ns) => format!("ip netns exec {ns} "),
        None => String::new(),
    };
    r.publish = crate::model::publish::explain(lab, &pre);
    r.firewall = crate::runtime::firewall::explain(lab);
    if let Some(rc) = rec.as_ref().filter(|r| r.model.is_some()) {
        r.publish_changes = crate::runtime::publish::plan_changes(rc, lab);
        r.firewall_changes = crate::runtime::firewall::plan_changes(rc, lab);
    }
    Ok(r)
}

/// [`plan_with_record`] on a kernel already open (the real one, or a fake).
pub(crate) fn plan_in<S: crate::kernel::seam::System>(
    k: &mut Kernel<S>,
    lab: &Lab,
    rec: Option<&Record>,
) -> Result<PlanReport> {
    let mut names: BTreeSet<String> = lab.namespaces().into_iter().collect();
    if let Some(r) = rec {
        names.extend(r.namespaces.iter().cloned());
    }
    let obs = observe(k, lab, &names, rec.and_then(|r| r.model.as_ref()))?;
    let overlaps = if lab.sandbox {
        vec![]
    } else {
        overlaps(lab, &obs.ns[&Ns::HOST].state)
    };
    let owned = rec
        .map(|r| plan::Owned {
            namespaces: r.namespaces.clone(),
            host_links: r.host_links.clone(),
            bridge_macs: r.bridge_macs.clone(),
            links_down: crate::runtime::down_set(&r.runtime, lab),
            force_down: crate::runtime::force_down_set(&r.runtime, lab),
        })
        .unwrap_or_default();
    let (ops, notes) = plan::plan_up(lab, &obs, rec.and_then(|r| r.model.as_ref()), &owned)
        .map_err(|c| Error::Refused(up::conflict_lines(&c)))?;
    let commands = plan::explain::script(&ops);
    Ok(PlanReport {
        lab: lab.name.clone(),
        sandbox: lab.sandbox,
        up: rec.is_some_and(|r| r.model.is_some()),
        ops,
        commands,
        notes,
        overlaps,
        programs: lab
            .nodes
            .iter()
            .flat_map(|n| {
                n.run
                    .iter()
                    .map(|cmd| format!("# then, in {}: ip netns exec {} {cmd} &", n.name, n.ns))
            })
            .collect(),
        shaping: Vec::new(),
        publish: Vec::new(),
        publish_changes: Vec::new(),
        firewall: Vec::new(),
        firewall_changes: Vec::new(),
    })
}
