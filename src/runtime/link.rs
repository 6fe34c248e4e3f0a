//! `nslab link ENDPOINT down|up`: set one end of a cable, or a bridge port,
//! down or up at run time, recorded in the lab's record so that `up` keeps it,
//! `status` shows it (not as drift) and why-not names it.

use crate::error::{Error, Result};
use crate::kernel::conn::Conn;
use crate::kernel::msg::{self, SetLink};
use crate::record::Record;
use crate::topology::{End, Lab, Place};
use serde::{Deserialize, Serialize};

/// One cable end or bridge port set down at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDown {
    /// The endpoint as nslab names it: `node:iface`, `host:iface`, or
    /// `bridge:port` for a bridge port.
    pub endpoint: String,
    /// Where the interface lives (a bridge port lives in `host`).
    pub place: Place,
    pub interface: String,
}

/// One partition between two groups of nodes.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let p: nslab::Partition = lab.partition(&["a", "b"], &["c"])?.partition;
/// assert!(p.separates("a", "c") && !p.separates("a", "b"));
/// println!("nslab heal {}", p.id);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// The id `nslab partition` printed; `nslab heal ID` removes it.
    pub id: u32,
    pub left: Vec<String>,
    pub right: Vec<String>,
}

impl Partition {
    /// Are `a` and `b` on opposite sides of this partition?
    pub fn separates(&self, a: &str, b: &str) -> bool {
        let l = |x: &str| self.left.iter().any(|n| n == x);
        let r = |x: &str| self.right.iter().any(|n| n == x);
        (l(a) && r(b)) || (r(a) && l(b))
    }
}

/// What `nslab link` did ([`Lab::link_down`](crate::Lab::link_down), [`Lab::link_up`](crate::Lab::link_up)).
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let r: nslab::LinkReport = lab.link_down("a:eth0")?;
/// assert_eq!((r.endpoint.as_str(), r.state.as_str()), ("a:eth0", "down"));
/// assert!(!lab.link_down("a:eth0")?.changed); // down already
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkReport {
    pub lab: String,
    pub endpoint: String,
    /// "down" or "up": the state the endpoint is in now.
    pub state: String,
    /// False when it was in that state (by nslab) already.
    pub changed: bool,
}

/// Parse `down` / `up` (the command line's last word).
pub fn parse_state(word: &str) -> Result<bool> {
    match word {
        "up" => Ok(true),
        "down" => Ok(false),
        w => Err(Error::Usage(format!(
            "{w:?} is not a link state: say `down` or `up`"
        ))),
    }
}

/// Every endpoint `nslab link` accepts in a lab: both ends of each cable of its
/// file (the sandbox's own uplink is not the file's).
pub fn endpoints(model: &Lab) -> Vec<End> {
    model
        .links
        .iter()
        .flat_map(|l| [l.a.clone(), l.b.clone()])
        .collect()
}

/// The cable end or bridge port `spec` names: `node:iface`, `host:iface`, or
/// `bridge:port` (also `host:port`). Unknown: a usage error listing the valid ones.
pub fn resolve(model: &Lab, spec: &str) -> Result<LinkDown> {
    let ends = endpoints(model);
    let found = ends.iter().find(|e| {
        e.to_string() == spec || (e.place == Place::Host && format!("host:{}", e.ifname) == spec)
    });
    match found {
        Some(e) => Ok(LinkDown {
            endpoint: e.to_string(),
            place: e.place.clone(),
            interface: e.ifname.clone(),
        }),
        None => {
            let valid: Vec<String> = ends.iter().map(|e| e.to_string()).collect();
            let shown = if valid.len() > 24 {
                format!("{}, ... ({} in all)", valid[..24].join(", "), valid.len())
            } else {
                valid.join(", ")
            };
            Err(Error::Usage(format!(
                "{spec:?} is not a cable end or bridge port of lab {}; valid endpoints: {}",
                model.name,
                if shown.is_empty() {
                    "none (the lab has no cables)".into()
                } else {
                    shown
                }
            )))
        }
    }
}

/// Set `spec` down (`up` false) or up in the lab `lab`, and record it, under
/// the lab's lock. Going down, the record is written first (intent), so a crash
/// leaves a link that is down and known to be down on purpose.
pub fn set(lab: &str, spec: &str, up: bool) -> Result<LinkReport> {
    crate::error::require_caps("link")?;
    let _lock = crate::lab::lock_lab(lab)?;
    let mut rec = crate::lab::record_of(lab)?;
    let model = model_of(&rec)?;
    let ld = resolve(&model, spec)?;
    if model
        .file_down_ends()
        .iter()
        .any(|e| e.place == ld.place && e.ifname == ld.interface)
    {
        return set_file_down(lab, rec, &model, ld, up);
    }
    let was_down = rec
        .runtime
        .links_down
        .iter()
        .any(|d| d.endpoint == ld.endpoint);
    let mut conn = open(&rec, &ld.place)?;
    if !up && !was_down {
        rec.runtime.links_down.push(ld.clone());
        save(&rec)?;
    }
    if let Err(e) = set_state(&mut conn, &ld, up) {
        if !up && !was_down {
            rec.runtime.links_down.retain(|d| d.endpoint != ld.endpoint);
            let _ = rec.save();
        }
        return Err(e);
    }
    if up && was_down {
        rec.runtime.links_down.retain(|d| d.endpoint != ld.endpoint);
        save(&rec)?;
    }
    if up {
        // The kernel dropped the routes that used the link: the file's come back.
        restore_routes(&rec, &model, &crate::plan::ns_of(&model, &ld.place))?;
    }
    Ok(LinkReport {
        lab: lab.to_string(),
        endpoint: ld.endpoint,
        state: if up { "up" } else { "down" }.into(),
        changed: up == was_down,
    })
}

/// `nslab link` on an end of a cable the file wants down (`up: false`): up
/// is runtime state (recorded in `links_up`, kept by `up`), down is the file's
/// state again.
fn set_file_down(
    lab: &str,
    mut rec: Record,
    model: &Lab,
    ld: LinkDown,
    up: bool,
) -> Result<LinkReport> {
    let was_up = rec
        .runtime
        .links_up
        .iter()
        .any(|d| d.endpoint == ld.endpoint);
    rec.runtime.links_up.retain(|d| d.endpoint != ld.endpoint);
    if up {
        rec.runtime.links_up.push(ld.clone());
    }
    save(&rec)?;
    let mut conn = open(&rec, &ld.place)?;
    set_state(&mut conn, &ld, up)?;
    if up {
        restore_routes(&rec, model, &crate::plan::ns_of(model, &ld.place))?;
    }
    Ok(LinkReport {
        lab: lab.to_string(),
        endpoint: ld.endpoint,
        state: if up { "up" } else { "down" }.into(),
        changed: up != was_up,
    })
}

/// Put the links of `rec.runtime` down again (after `up` brought the lab in
/// line). Ends that no longer exist in the model are dropped from the record.
pub(crate) fn reapply(rec: &mut Record, model: &Lab) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let keep: Vec<LinkDown> = rec
        .runtime
        .links_down
        .iter()
        .filter(|d| {
            let ok = resolve(model, &d.endpoint).is_ok();
            if !ok {
                notes.push(format!(
                    "{} is no longer in the file: its `nslab link down` is dropped",
                    d.endpoint
                ));
            }
            ok
        })
        .cloned()
        .collect();
    rec.runtime.links_down = keep;
    // Ends set up against the file's `up: false`: only while the file says so.
    let file_down = model.file_down_ends();
    rec.runtime.links_up.retain(|u| {
        let still = file_down
            .iter()
            .any(|e| e.place == u.place && e.ifname == u.interface);
        if !still {
            notes.push(format!(
                "{} is no longer `up: false` in the file: its `nslab link up` is dropped",
                u.endpoint
            ));
        }
        still
    });
    for d in rec.runtime.links_down.clone() {
        let mut c = open(rec, &d.place)?;
        set_state(&mut c, &d, false)?;
    }
    Ok(notes)
}

/// Bring every link of `rec.runtime` up again and forget them (`up --reset`);
/// ends set up against the file's `up: false` are forgotten (the plan then
/// sets them down).
pub(crate) fn reset(rec: &mut Record) -> Result<()> {
    rec.runtime.links_up.clear();
    for d in std::mem::take(&mut rec.runtime.links_down) {
        // A namespace or interface that is gone has nothing to bring up.
        if let Ok(mut c) = open(rec, &d.place)
            && c.index(&d.interface).ok().flatten().is_some()
        {
            set_state(&mut c, &d, true)?;
        }
    }
    Ok(())
}

/// Add the routes of the file that namespace `ns` lacks (as `up` would), and
/// nothing else.
fn restore_routes(rec: &Record, model: &Lab, ns: &crate::plan::Ns) -> Result<()> {
    use crate::kernel::conn;
    let host = match model.sandbox {
        false => conn::find_by_id(rec.host_ns)
            .map_err(Error::io("find the lab's host namespace"))?
            .map(|(_, c)| c),
        true => None,
    };
    let host = match host {
        Some(c) => c,
        None => conn::open_current().map_err(Error::io("open a netlink socket"))?,
    };
    let mut k = crate::apply::Kernel::new(host, &model.name);
    let plan = crate::lab::plan_in(&mut k, model, Some(rec))?;
    let ops: Vec<crate::plan::Op> = plan
        .ops
        .into_iter()
        .filter(|o| matches!(o, crate::plan::Op::AddRoute { ns: n, .. } if n == ns))
        .collect();
    crate::apply::apply(&mut k, &ops, &mut |_| Ok(())).map_err(Error::Apply)
}

pub(crate) fn model_of(rec: &Record) -> Result<Lab> {
    rec.model.clone().ok_or_else(|| {
        Error::Failed(format!(
            "lab {} is not completely up; run `nslab up` again",
            rec.lab
        ))
    })
}

pub(crate) fn save(rec: &Record) -> Result<()> {
    rec.save().map_err(Error::io("write the lab's record"))
}

/// A netlink socket in a place's namespace.
pub(crate) fn open(rec: &Record, place: &Place) -> Result<Conn> {
    let file = crate::lab::place_file(rec, place)?;
    let nl = crate::kernel::netns::run_in(&file, crate::kernel::netlink::Rtnl::new)
        .map_err(Error::io(format!("enter the namespace of {place}")))?
        .map_err(Error::io(format!("open a netlink socket in {place}")))?;
    Ok(Conn::new(file, nl))
}

fn set_state(c: &mut Conn, d: &LinkDown, up: bool) -> Result<()> {
    let s = SetLink {
        up: Some(up),
        master: None,
        alias: None,
        mtu: None,
        mac: None,
        no_link_local: false,
    };
    let word = if up { "up" } else { "down" };
    c.nl.request(
        msg::set_link(&d.interface, &s),
        0,
        format!("set {} {word}", d.endpoint),
    )
    .map_err(|e| Error::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Lab {
        let y = r#"
name: t
bridges:
  bri0: { address: 10.0.0.254/24 }
nodes:
  a: { interfaces: { eth0: { address: 10.0.0.1/24 } } }
  b: { interfaces: { eth0: { address: 10.0.0.2/24 } } }
  c: { interfaces: { e1: { address: 10.0.1.1/24 } } }
  d: { interfaces: { e1: { address: 10.0.1.2/24 } } }
links:
  - [ a:eth0, bri0:abr ]
  - [ b:eth0, bri0:bbr ]
  - [ c:e1, d:e1 ]
"#;
        crate::topology::parse_str(y, "t.yaml", &crate::topology::Options::default())
            .expect("valid")
    }

    #[test]
    fn endpoints_resolve_to_their_namespace_and_interface() {
        let m = lab();
        let a = resolve(&m, "a:eth0").unwrap();
        assert_eq!(a.place, Place::Node("a".into()));
        assert_eq!(a.interface, "eth0");
        let p = resolve(&m, "bri0:abr").unwrap();
        assert_eq!((p.place, p.interface.as_str()), (Place::Host, "abr"));
        assert_eq!(p.endpoint, "bri0:abr");
        // A bridge port may also be named as the host's interface.
        assert_eq!(resolve(&m, "host:bbr").unwrap().endpoint, "bri0:bbr");
        assert_eq!(resolve(&m, "d:e1").unwrap().place, Place::Node("d".into()));
    }

    #[test]
    fn unknown_endpoints_are_named_with_the_valid_ones() {
        let m = lab();
        for bad in [
            "a:eth9",
            "zz:eth0",
            "a",
            "bri0",
            "bri0:nope",
            "",
            "a:eth0:x",
        ] {
            let e = resolve(&m, bad).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}: {e}");
            let t = e.to_string();
            assert!(t.contains(&format!("{bad:?}")), "{t}");
            assert!(
                t.contains("a:eth0") && t.contains("bri0:bbr") && t.contains("d:e1"),
                "{t}"
            );
        }
    }

    #[test]
    fn states_parse() {
        assert!(parse_state("up").unwrap());
        assert!(!parse_state("down").unwrap());
        assert!(matches!(parse_state("Down"), Err(Error::Usage(_))));
        assert!(matches!(parse_state("off"), Err(Error::Usage(_))));
    }

    #[test]
    fn a_partition_separates_only_across() {
        let p = Partition {
            id: 1,
            left: vec!["a".into(), "b".into()],
            right: vec!["c".into()],
        };
        assert!(p.separates("a", "c") && p.separates("c", "b"));
        assert!(!p.separates("a", "b") && !p.separates("c", "c") && !p.separates("a", "x"));
    }
}
