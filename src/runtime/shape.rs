//! `nslab shape ENDPOINT`: egress rate, delay, jitter, loss and queue limit.

use serde::{Deserialize, Serialize};

/// The impairment of one endpoint's egress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shaping {
    /// The endpoint as the user named it (`node:iface`).
    pub endpoint: String,
}
