//! nslab's top-level error. Which exit code each kind means is the CLI's
//! business (`cli::exit_code`), not the library's.

use crate::apply::ApplyError;
use crate::topology::TopologyError;
use std::io;

/// What went wrong, worded as the CLI words it. A kernel's refusal keeps its
/// errno and extended-ack text in the source chain ([`Error::errno`],
/// [`Error::kernel_message`]); a bad topology keeps file, line and column.
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
    #[doc(hidden)]
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// The errno behind the error, when a system call or the kernel gave one
    /// (`EEXIST`, `EPERM`, ...): found by walking the source chain
    /// (`std::error::Error::source`, and the error inside an `io::Error`).
    ///
    /// ```
    /// use std::error::Error as _;
    /// let e = nslab::Error::Io {
    ///     what: "open namespace t-a".into(),
    ///     source: std::io::Error::from_raw_os_error(2),
    /// };
    /// assert_eq!(e.errno(), Some(2)); // ENOENT
    /// assert!(e.source().is_some());
    /// assert_eq!(e.kernel_message(), None);
    /// assert_eq!(nslab::Error::Usage("bad".into()).errno(), None);
    /// ```
    pub fn errno(&self) -> Option<i32> {
        chain(self).find_map(errno_of)
    }

    /// The kernel's own words about a refused request (netlink's extended
    /// acknowledgement, e.g. "Nexthop has invalid gateway"), when it gave any.
    pub fn kernel_message(&self) -> Option<&str> {
        chain(self).find_map(|e| {
            if let Some(nl) = e.downcast_ref::<crate::kernel::netlink::NlError>() {
                return nl.ext.as_deref();
            }
            match e.downcast_ref::<crate::kernel::nft::NftError>() {
                Some(crate::kernel::nft::NftError::Kernel { msg, .. }) => msg.as_deref(),
                _ => None,
            }
        })
    }
}

type DynError = dyn std::error::Error + 'static;

/// `e` and its sources, looking inside `io::Error`s that wrap another error
/// (their `source()` skips the wrapped error itself).
fn chain(e: &Error) -> impl Iterator<Item = &DynError> {
    let mut next: Option<&DynError> = Some(e);
    std::iter::from_fn(move || {
        let cur = next?;
        next = match cur.downcast_ref::<io::Error>() {
            Some(io) => io.get_ref().map(|i| i as &DynError),
            None => cur.source(),
        };
        Some(cur)
    })
}

fn errno_of(e: &DynError) -> Option<i32> {
    use crate::kernel::nft::NftError;
    if let Some(nl) = e.downcast_ref::<crate::kernel::netlink::NlError>() {
        return Some(nl.errno);
    }
    if let Some(NftError::Kernel { errno, .. }) = e.downcast_ref::<NftError>() {
        return Some(*errno);
    }
    if let Some(p) = e.downcast_ref::<crate::probe::tcp::ProbeError>() {
        return p.errno();
    }
    e.downcast_ref::<io::Error>()
        .and_then(io::Error::raw_os_error)
}

/// The library's result: an [`Error`] on failure.
///
/// ```
/// fn name(t: &nslab::Topology) -> nslab::Result<String> {
///     t.lab_name(&nslab::Options { prefix: "x-".into(), ..Default::default() })
/// }
/// # fn main() -> nslab::Result<()> {
/// assert_eq!(name(&nslab::Topology::from_yaml("name: lab\nnodes:\n  a: {}\n"))?, "x-lab");
/// # Ok(())
/// # }
/// ```
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ApplyError;
    use crate::kernel::netlink::NlError;
    use std::error::Error as _;

    fn kernel_error() -> Error {
        Error::Apply(ApplyError::Kernel {
            step: "add route".into(),
            source: NlError {
                what: "add route default via 10.0.0.9 in t-a".into(),
                errno: libc::ENETUNREACH,
                ext: Some("Nexthop has invalid gateway".into()),
            },
        })
    }

    #[test]
    fn the_source_chain_reaches_the_kernels_errno() {
        let e = kernel_error();
        let apply = e.source().expect("Error::Apply has a source");
        assert!(apply.downcast_ref::<ApplyError>().is_some());
        let nl = apply.source().expect("ApplyError::Kernel has a source");
        assert_eq!(
            nl.downcast_ref::<NlError>().map(|n| n.errno),
            Some(libc::ENETUNREACH)
        );
        assert_eq!(e.errno(), Some(libc::ENETUNREACH));
        assert_eq!(e.kernel_message(), Some("Nexthop has invalid gateway"));
    }

    #[test]
    fn errno_inside_io_errors_and_nft() {
        let wrapped = Error::Io {
            what: "x".into(),
            source: io::Error::other(NlError {
                what: "y".into(),
                errno: libc::EEXIST,
                ext: None,
            }),
        };
        assert_eq!(wrapped.errno(), Some(libc::EEXIST));
        assert_eq!(wrapped.kernel_message(), None);
        let nft = Error::Apply(ApplyError::Nft {
            step: "nat".into(),
            source: crate::kernel::nft::NftError::Kernel {
                op: "add table".into(),
                errno: libc::EPERM,
                msg: Some("no".into()),
            },
        });
        assert_eq!(nft.errno(), Some(libc::EPERM));
        assert_eq!(nft.kernel_message(), Some("no"));
        let plain = Error::Io {
            what: "z".into(),
            source: io::Error::other("no errno"),
        };
        assert_eq!(plain.errno(), None);
        assert_eq!(Error::Failed("f".into()).errno(), None);
        assert_eq!(Error::Apply(ApplyError::TestAbort(3)).errno(), None);
    }
}
