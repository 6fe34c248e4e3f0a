//! A lab's runtime state: what `nslab link`, `partition` and `shape` changed
//! after `up`. It lives in the lab's record (not in its file): `status` shows
//! it and does not call it drift, `up` keeps it, `up --reset` drops it, and
//! `down` clears it with the lab.

use serde::{Deserialize, Serialize};

pub mod link;
pub mod shape;
pub mod units;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Cable ends and bridge ports set down by `nslab link ENDPOINT down`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links_down: Vec<link::LinkDown>,
    /// Partitions made by `nslab partition`, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<link::Partition>,
    /// Egress impairments made by `nslab shape` (or by the file's link maps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<shape::Shaping>,
}

impl State {
    pub fn is_empty(&self) -> bool {
        self.links_down.is_empty() && self.partitions.is_empty() && self.shapes.is_empty()
    }
}
