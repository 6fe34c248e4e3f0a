//! A lab's runtime state: what `nslab link`, `partition` and `shape` changed
//! after `up`. It lives in the lab's record (not in its file): `status` shows
//! it and does not call it drift, `up` keeps it, `up --reset` drops it, and
//! `down` clears it with the lab.

use serde::{Deserialize, Serialize};

pub mod link;
pub mod partition;
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
