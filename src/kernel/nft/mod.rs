//! nftables NAT over NETLINK_NETFILTER, without the `nft` or `iptables` binaries.
//!
//! One table per lab and namespace, `table inet NAME`, marked with a comment (the table's user data,
//! in libnftnl's TLV form so `nft list` shows it as `comment`), holding one base chain
//! `postrouting` (`type nat hook postrouting priority srcnat; policy accept;`) with one
//! masquerade rule per [`Masquerade`]. Everything that changes the ruleset goes out as
//! one nfnetlink batch, which the kernel applies atomically or not at all.
//!
//! The wire format belongs to `netlink-packet-netfilter`; this module owns the
//! request/reply plumbing and the few things the crate lacks (the `masq` expression,
//! the generation id in BatchBegin, extended-ack text, user-data TLVs).
//!
//! A [`NftSocket`] works in the network namespace of the thread that created it, for
//! its whole life: create it on a thread that entered the namespace.
//!
//! Here: the public types, errors and validation. Message building is in `wire`,
//! reply decoding in `decode`, the socket in `socket`, why-not tracing in `trace`;
//! the `nft` commands of `plan --explain` are in `crate::plan::nft_text`.

use std::fmt;
use std::io;
use std::time::Duration;

use netlink_packet_netfilter::NetfilterProtoFamily;

mod decode;
mod dnat;
pub mod filter;
mod firewall;
mod loss;
mod socket;
mod trace;
mod wire;

#[doc(hidden)]
pub use decode::fuzz_reply;
pub use firewall::{FILTER_PRIORITY, FwChain, FwRuleView, FwTable, firewall_diff};
pub use loss::{LOSS_CHAIN, LOSS_MODULUS, LossRule};
pub use socket::{NftSocket, socket_in};
pub use trace::{TraceEvent, parse_trace_events, read_trace_events, trace_listener};
// The `nft` command text of `plan --explain` lives with the planner; these are
// its old paths.

pub use crate::model::nat::{Masquerade, NAT_CHAIN, OutMatch};
/// `priority srcnat` (NF_IP_PRI_NAT_SRC).
pub const SRCNAT_PRIORITY: i32 = 100;
/// Receive timeout of a new socket: replies to a batch are queued before send returns,
/// so this only bounds a kernel that never answers.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

// include/uapi/linux/netfilter/nfnetlink.h and nf_tables.h
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u8 = 16;
const NFNL_BATCH_GENID: u16 = 1;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const IPV4_SADDR_OFFSET: u32 = 12;
const IPV6_SADDR_OFFSET: u32 = 8;
// NFPROTO_IPV4 / NFPROTO_IPV6 as `meta nfproto` loads them (one byte).
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
/// The NAT table's family: `inet`, so one table masquerades IPv4 and IPv6 sources.
/// Versions before it wrote `ip` tables; those are replaced (see `NatRules::legacy`).
const NAT_FAMILY: NetfilterProtoFamily = NetfilterProtoFamily::Inet;
const NFT_BITWISE_MASK_XOR: u32 = 0;
const IFNAMSIZ: usize = 16;
// libnftnl's NFTNL_UDATA_TABLE_COMMENT and nft's NFTNL_UDATA_COMMENT_MAXLEN.
const UDATA_TABLE_COMMENT: u8 = 0;
const COMMENT_MAXLEN: usize = 127;
const NFT_NAME_MAXLEN: usize = 255;
// include/uapi/linux/netlink.h
use super::nlsock::NLMSG_HDRLEN;
/// How often a read-check-write is redone when another process commits in between.
const GENERATION_ATTEMPTS: u32 = 5;

// ---------------------------------------------------------------------------
// Errors

/// Errors of this module. Each keeps the errno when there is one ([`NftError::errno`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    /// A socket call failed.
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    /// The kernel refused a request; `msg` is its extended-ack text when it gave one.
    #[error("{op}: {}{}", io::Error::from_raw_os_error(*.errno), .msg.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel {
        op: String,
        errno: i32,
        msg: Option<String>,
    },
    /// `create_nat_table` found a table of that name (EEXIST); nothing was changed.
    #[error("nftables table {name} exists already; nothing was changed")]
    Exists { name: String },
    /// The table exists but does not carry our mark: it is never changed nor deleted.
    #[error(
        "nftables table {name} is not ours (its comment is {found:?}, expected {expected:?}); it was left untouched"
    )]
    Foreign {
        name: String,
        found: Option<String>,
        expected: String,
    },
    /// The ruleset changed between our check and our batch every time we tried
    /// (ERESTART from the generation id check); nothing was applied.
    #[error(
        "{op}: the nftables ruleset changed between our check and our batch (generation id check, {attempts} attempt(s)); nothing was applied"
    )]
    GenerationChanged { op: String, attempts: u32 },
    /// No reply within the socket's receive timeout.
    #[error("{op}: no reply from the kernel within {timeout:?}")]
    Timeout { op: String, timeout: Duration },
    /// A reply was missing, malformed or unexpected.
    #[error("{op}: unexpected reply from the kernel: {reason}")]
    Protocol { op: String, reason: String },
    /// An argument cannot be written to the kernel or as an `nft` command.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl NftError {
    /// The errno behind this error, if any (EEXIST for [`NftError::Exists`], ERESTART
    /// for [`NftError::GenerationChanged`], ETIMEDOUT for a timeout).
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Io { source, .. } => source.raw_os_error(),
            NftError::Kernel { errno, .. } => Some(*errno),
            NftError::Exists { .. } => Some(libc::EEXIST),
            NftError::GenerationChanged { .. } => Some(libc::ERESTART),
            NftError::Timeout { .. } => Some(libc::ETIMEDOUT),
            NftError::Foreign { .. } | NftError::Protocol { .. } | NftError::Invalid { .. } => None,
        }
    }
}

fn io_err(op: &str, source: io::Error) -> NftError {
    NftError::Io {
        op: op.to_string(),
        source,
    }
}

fn protocol(op: &str, reason: impl Into<String>) -> NftError {
    NftError::Protocol {
        op: op.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------
// Public data types

/// nftables address families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
    Arp,
    Bridge,
    Netdev,
    Other(u8),
}

impl From<NetfilterProtoFamily> for Family {
    fn from(f: NetfilterProtoFamily) -> Self {
        match f {
            NetfilterProtoFamily::IPv4 => Family::Ip,
            NetfilterProtoFamily::IPv6 => Family::Ip6,
            NetfilterProtoFamily::Inet => Family::Inet,
            NetfilterProtoFamily::ARP => Family::Arp,
            NetfilterProtoFamily::Bridge => Family::Bridge,
            NetfilterProtoFamily::NetDev => Family::Netdev,
            other => Family::Other(u8::from(other)),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Family::Ip => f.write_str("ip"),
            Family::Ip6 => f.write_str("ip6"),
            Family::Inet => f.write_str("inet"),
            Family::Arp => f.write_str("arp"),
            Family::Bridge => f.write_str("bridge"),
            Family::Netdev => f.write_str("netdev"),
            Family::Other(n) => write!(f, "family-{n}"),
        }
    }
}

/// Hook of a base chain, named as `nft` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
    Ingress,
    Egress,
    Other(u32),
}

impl Hook {
    /// Hook numbers are per family: netdev and arp number theirs differently.
    fn from_raw(family: Family, n: u32) -> Hook {
        match (family, n) {
            (Family::Netdev, 0) => Hook::Ingress,
            (Family::Netdev, 1) => Hook::Egress,
            (Family::Netdev, n) => Hook::Other(n),
            (Family::Arp, 0) => Hook::Input,
            (Family::Arp, 1) => Hook::Output,
            (Family::Arp, 2) => Hook::Forward,
            (Family::Arp, n) => Hook::Other(n),
            (_, 0) => Hook::Prerouting,
            (_, 1) => Hook::Input,
            (_, 2) => Hook::Forward,
            (_, 3) => Hook::Output,
            (_, 4) => Hook::Postrouting,
            (_, 5) => Hook::Ingress,
            (_, n) => Hook::Other(n),
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hook::Prerouting => f.write_str("prerouting"),
            Hook::Input => f.write_str("input"),
            Hook::Forward => f.write_str("forward"),
            Hook::Output => f.write_str("output"),
            Hook::Postrouting => f.write_str("postrouting"),
            Hook::Ingress => f.write_str("ingress"),
            Hook::Egress => f.write_str("egress"),
            Hook::Other(n) => write!(f, "hook-{n}"),
        }
    }
}

/// A table as listed by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub family: Family,
    pub name: String,
    /// The comment of the table's user data, if it has one.
    pub comment: Option<String>,
}

/// A base chain (one attached to a hook) as listed by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChainInfo {
    pub family: Family,
    pub table: String,
    pub name: String,
    pub hook: Hook,
    pub priority: i32,
    pub policy_drop: bool,
    /// `filter`, `nat` or `route`.
    pub chain_type: String,
}

impl fmt::Display for BaseChainInfo {
    /// `table ip T chain C { type filter hook forward priority 0; policy drop; }`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {} {} chain {} {{ type {} hook {} priority {}; policy {}; }}",
            self.family,
            self.table,
            self.name,
            self.chain_type,
            self.hook,
            self.priority,
            if self.policy_drop { "drop" } else { "accept" }
        )
    }
}

/// What [`NftSocket::read_nat_rules`] found in `table inet NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatRules {
    /// The table's comment (our mark, if the table is ours).
    pub comment: Option<String>,
    /// Whether chain `postrouting` exists as `type nat hook postrouting priority
    /// srcnat; policy accept;`.
    pub chain_ok: bool,
    /// Names of the table's other chains (we create none).
    pub other_chains: Vec<String>,
    /// Masquerade rules of chain `postrouting`, in order.
    pub masquerades: Vec<Masquerade>,
    /// Rules in the table that are not of the shape this module writes.
    pub unknown_rules: usize,
    /// A `table ip NAME` as older versions wrote it is there too (or instead: then
    /// the other fields describe no inet table); `replace` deletes it if marked.
    pub legacy: bool,
}

impl NatRules {
    /// True if the table is exactly what `create_nat_table(name, mark, rules)` makes.
    pub fn matches(&self, mark: &str, rules: &[Masquerade]) -> bool {
        self.comment.as_deref() == Some(mark)
            && !self.legacy
            && self.chain_ok
            && self.other_chains.is_empty()
            && self.unknown_rules == 0
            && self.masquerades == rules
    }
}

// ---------------------------------------------------------------------------
// Validation (before anything reaches the kernel)

fn invalid(what: &'static str, value: &str, reason: &'static str) -> NftError {
    NftError::Invalid {
        what,
        value: value.to_string(),
        reason,
    }
}

fn validate_table_name(name: &str) -> Result<(), NftError> {
    if name.is_empty() || name.len() > NFT_NAME_MAXLEN {
        return Err(invalid("table name", name, "must be 1 to 255 bytes"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(invalid(
            "table name",
            name,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn validate_mark(mark: &str) -> Result<(), NftError> {
    if mark.is_empty() || mark.len() > COMMENT_MAXLEN {
        return Err(invalid("table mark", mark, "must be 1 to 127 bytes"));
    }
    // Quotes and backslashes could not be written back as an `nft` comment.
    if mark
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\'' | '\\'))
    {
        return Err(invalid(
            "table mark",
            mark,
            "must not contain quotes, backslashes or control characters",
        ));
    }
    Ok(())
}

fn validate_ifname(ifname: &str) -> Result<(), NftError> {
    if ifname.is_empty() || ifname.len() >= IFNAMSIZ {
        return Err(invalid("interface name", ifname, "must be 1 to 15 bytes"));
    }
    if ifname == "." || ifname == ".." {
        return Err(invalid("interface name", ifname, "is not a valid name"));
    }
    // The kernel forbids '/', ':' and whitespace; nft reads a trailing '*' as a
    // wildcard and cannot quote '"'.
    if !ifname.bytes().all(|b| {
        b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'"' | b'\'' | b'\\' | b'*' | b'`')
    }) {
        return Err(invalid(
            "interface name",
            ifname,
            "must be printable ASCII without / : * \\ ` or quotes",
        ));
    }
    Ok(())
}

fn validate_rules(rules: &[Masquerade]) -> Result<(), NftError> {
    for rule in rules {
        if rule.source != rule.source.trunc() {
            return Err(invalid(
                "masquerade source",
                &rule.source.to_string(),
                "has host bits set (use the network address)",
            ));
        }
        match &rule.out {
            OutMatch::Any => {}
            OutMatch::Out(ifname) | OutMatch::NotOut(ifname) => validate_ifname(ifname)?,
        }
    }
    Ok(())
}

fn validate_all(name: &str, mark: &str, rules: &[Masquerade]) -> Result<(), NftError> {
    validate_table_name(name)?;
    validate_mark(mark)?;
    validate_rules(rules)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) use crate::model::nat::tests::{masq, tutorial_rule};

    #[test]
    fn validation_rejects_what_cannot_be_written() {
        let ok = tutorial_rule();
        assert!(validate_all("nslab-x", "nslab:owner=x", std::slice::from_ref(&ok)).is_ok());
        let bad_rules = [
            masq("192.168.1.0/16", OutMatch::Any),
            masq("10.0.0.0/8", OutMatch::Out(String::new())),
            masq("10.0.0.0/8", OutMatch::Out("sixteen-bytes-xx".into())),
            masq("10.0.0.0/8", OutMatch::Out("a b".into())),
            masq("10.0.0.0/8", OutMatch::NotOut("br\"0".into())),
            masq("10.0.0.0/8", OutMatch::NotOut("br*".into())),
            masq("10.0.0.0/8", OutMatch::NotOut("..".into())),
        ];
        for r in bad_rules {
            assert!(validate_rules(std::slice::from_ref(&r)).is_err(), "{r:?}");
        }
        assert!(validate_all("", "m", &[]).is_err());
        assert!(validate_all(&"x".repeat(256), "m", &[]).is_err());
        assert!(validate_all("t\0", "m", &[]).is_err());
        assert!(validate_all("t", "", &[]).is_err());
        assert!(validate_all("t", "it's", &[]).is_err());
        assert!(validate_all("t", &"m".repeat(128), &[]).is_err());
        assert!(validate_all("t", &"m".repeat(127), &[]).is_ok());
    }
}
