//! A lab's runtime state: what `nslab link`, `partition` and `shape` changed
//! after `up`. It lives in the lab's record (not in its file): `status` shows
//! it and does not call it drift, `up` keeps it, `up --reset` drops it, and
//! `down` clears it with the lab.

use serde::{Deserialize, Serialize};

pub mod firewall;
pub mod link;
pub mod partition;
pub mod publish;
pub mod shape;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Cable ends and bridge ports set down by `nslab link ENDPOINT down`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links_down: Vec<link::LinkDown>,
    /// Ends of the file's `up: false` cables set up by `nslab link ENDPOINT up`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links_up: Vec<link::LinkDown>,
    /// Partitions made by `nslab partition`, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<link::Partition>,
    /// Egress impairments made by `nslab shape` (or by the file's link maps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<shape::Shaping>,
}

impl State {
    pub fn is_empty(&self) -> bool {
        self.links_down.is_empty()
            && self.links_up.is_empty()
            && self.partitions.is_empty()
            && self.shapes.is_empty()
    }
}

/// The interfaces held down on purpose, by namespace, for the planner: `up`
/// leaves them down and `status` does not call them drift (`nslab link`'s,
/// and the ends of the file's `up: false` cables, see [`force_down_set`]).
pub fn down_set(
    st: &State,
    model: &crate::topology::Lab,
) -> std::collections::BTreeSet<(crate::plan::Ns, String)> {
    st.links_down
        .iter()
        .map(|d| (crate::plan::ns_of(model, &d.place), d.interface.clone()))
        .chain(force_down_set(st, model))
        .collect()
}

/// The ends of the file's `up: false` cables that `nslab link ENDPOINT up`
/// did not set up: desired down (one that is up is drift `up` repairs).
pub fn force_down_set(
    st: &State,
    model: &crate::topology::Lab,
) -> std::collections::BTreeSet<(crate::plan::Ns, String)> {
    file_down(st, model)
        .into_iter()
        .map(|e| (crate::plan::ns_of(model, &e.place), e.ifname.clone()))
        .collect()
}

/// The file's down ends (`up: false`) not set up at run time.
pub fn file_down<'a>(st: &State, model: &'a crate::topology::Lab) -> Vec<&'a crate::topology::End> {
    model
        .file_down_ends()
        .into_iter()
        .filter(|e| {
            !st.links_up
                .iter()
                .any(|u| u.place == e.place && u.interface == e.ifname)
        })
        .collect()
}

/// After `up` brought the lab in line with its file: put the runtime state
/// back (links down, partitions), or, with `reset`, drop it. Notes say what
/// no longer applies.
pub(crate) fn after_up(
    rec: &mut crate::record::Record,
    model: &crate::topology::Lab,
    reset: bool,
) -> crate::error::Result<Vec<String>> {
    if reset {
        let had = rec.runtime.links_down.len()
            + rec.runtime.links_up.len()
            + rec.runtime.partitions.len()
            + rec.runtime.shapes.len();
        link::reset(rec)?;
        partition::reset(rec, model)?;
        // Shaping lives on interfaces `up` does not recreate: remove it here.
        let mut notes = shape::remove_all(rec);
        rec.runtime.shapes.clear();
        if had > 0 {
            notes.push(format!(
                "--reset: dropped the lab's runtime state ({had} link{s} down, partition{s} or shaping{s})",
                s = if had == 1 { "" } else { "s" },
            ));
        }
        return Ok(notes);
    }
    let mut notes = link::reapply(rec, model)?;
    notes.extend(partition::reapply(rec, model)?);
    Ok(notes)
}

/// One line per piece of runtime state, as `status` shows it.
pub fn describe(st: &State) -> Vec<String> {
    let mut out: Vec<String> = st
        .links_down
        .iter()
        .map(|d| format!("link {} is down (nslab link)", d.endpoint))
        .collect();
    out.extend(st.links_up.iter().map(|d| {
        format!(
            "link {} is up (nslab link; the file says `up: false`)",
            d.endpoint
        )
    }));
    out.extend(st.partitions.iter().map(|p| {
        format!(
            "partition {}: [{}] -- [{}] (nslab heal {})",
            p.id,
            p.left.join(", "),
            p.right.join(", "),
            p.id
        )
    }));
    out
}

#[cfg(test)]
mod tests {
    use crate::plan::Op;
    use crate::testkit::*;

    const TEXT: &str = "name: x
nodes:
  a: { interfaces: { ea: { address: 10.9.0.1/24 }, ec: { address: 10.9.1.1/24 } } }
  b: { interfaces: { eb: { address: 10.9.0.2/24 }, ed: { address: 10.9.1.2/24 } } }
links:
  - [a:ea, b:eb]
  - { ends: [a:ec, b:ed], up: false }
";

    fn is_up(r: &Run, ns: &str, name: &str) -> bool {
        let w = r.fake.w();
        w.ns[ns].links.iter().any(|l| l.name == name && l.up)
    }

    #[test]
    fn the_files_down_cable_is_desired_state_and_link_up_overrides_it() {
        let (mut r, l) = up_from_nothing(TEXT, true);
        let (na, nb) = (
            l.node("a").unwrap().ns.clone(),
            l.node("b").unwrap().ns.clone(),
        );
        assert!(is_up(&r, &na, "ea") && is_up(&r, &nb, "eb"));
        assert!(!is_up(&r, &na, "ec") && !is_up(&r, &nb, "ed"));
        // Set up by hand: drift, which the plan sets down again.
        r.fake.set_up(&na, "ec", true);
        let ops = r.plan(&l);
        assert_eq!(ops.len(), 1, "{}", listing(&ops));
        assert!(
            matches!(&ops[0], Op::SetLink { name, down: true, .. } if name == "ec"),
            "{}",
            listing(&ops)
        );
        assert!(
            crate::plan::explain::commands(&ops[0])
                .iter()
                .any(|c| c.ends_with("link set ec down")),
            "{:?}",
            crate::plan::explain::commands(&ops[0])
        );
        r.apply(&ops).unwrap();
        assert!(!is_up(&r, &na, "ec"));
        assert!(r.plan(&l).is_empty());
        // `nslab link a:ec up` is runtime state: up is then what is wanted.
        r.rec.runtime.links_up.push(super::link::LinkDown {
            endpoint: "a:ec".into(),
            place: crate::topology::Place::Node("a".into()),
            interface: "ec".into(),
        });
        r.fake.set_up(&na, "ec", true);
        let ops = r.plan(&l);
        assert!(
            ops.iter()
                .all(|o| !matches!(o, Op::SetLink { down: true, .. })),
            "{}",
            listing(&ops)
        );
        assert!(super::describe(&r.rec.runtime)[0].contains("a:ec is up"));
    }
}
