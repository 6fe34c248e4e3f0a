//! nslab's top-level error. Which exit code each kind means is the CLI's
//! business (`cli::exit_code`), not the library's.

use crate::apply::ApplyError;
use crate::topology::TopologyError;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Topology(#[from] TopologyError),
    /// Bad command-line use.
    #[error("{0}")]
    Usage(String),
    /// The request is understood but refused, to protect something (nothing was changed).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Apply(#[from] ApplyError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// The operation ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Linux capability numbers nslab needs.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

const CAP_NET_RAW: u32 = 13;

/// A capability a command needs: its number and name.
#[doc(hidden)]
pub type Cap = (u32, &'static str);
#[doc(hidden)]
pub const NET_ADMIN: Cap = (CAP_NET_ADMIN, "CAP_NET_ADMIN");
#[doc(hidden)]
pub const SYS_ADMIN: Cap = (CAP_SYS_ADMIN, "CAP_SYS_ADMIN");
#[doc(hidden)]
pub const NET_RAW: Cap = (CAP_NET_RAW, "CAP_NET_RAW");

/// Refuse early, before anything is touched, when the caller lacks the
/// capabilities (not root): namespaces need CAP_SYS_ADMIN, interfaces CAP_NET_ADMIN.
#[doc(hidden)]
pub fn require_caps(what: &str) -> Result<()> {
    require(
        what,
        &[NET_ADMIN, SYS_ADMIN],
        "to manage network namespaces and interfaces",
        true,
    )
}

/// Refuse early when the caller lacks `caps`, naming them and `why` they are
/// needed; `changes` says whether the command would have changed anything.
#[doc(hidden)]
pub fn require(what: &str, caps: &[Cap], why: &str, changes: bool) -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = caps
        .iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, n)| *n)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "`nslab {what}` needs {} {why}; run it as root (e.g. `sudo nslab {what} ...`).{}",
            missing.join(" and "),
            if changes {
                " Nothing was changed."
            } else {
                " It could not look, so it tells nothing about the lab."
            }
        )))
    }
}
