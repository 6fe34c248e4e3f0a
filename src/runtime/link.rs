//! `nslab link ENDPOINT down|up`, `nslab partition`, `nslab heal`.

use serde::{Deserialize, Serialize};

/// One cable end or bridge port set down at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDown {
    /// The endpoint as the user named it (`node:iface`, or a bridge port).
    pub endpoint: String,
}

/// One partition between two groups of nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub id: u32,
    pub left: Vec<String>,
    pub right: Vec<String>,
}
