//! nftables NAT over NETLINK_NETFILTER, without the `nft` or `iptables` binaries.
//!
//! One table per lab, `table ip NAME`, marked with a comment (the table's user data,
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

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use ipnet::Ipv4Net;
use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
    NetlinkBuffer, NetlinkMessage, NetlinkPayload, NlaBuffer, NlasIterator,
};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions,
    GenAttribute, GenMessage, Hook as NlHook, HookNumber, InetHookNumber, ListAttribute, Meta,
    MetaKey, NfTablesMessage, Operator, Payload, Register, RuleAttribute, RuleMessage,
    TableAttribute, TableFlags, TableMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

/// Name of the one chain of a NAT table.
pub const NAT_CHAIN: &str = "postrouting";
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
const NFT_BITWISE_MASK_XOR: u32 = 0;
const IFNAMSIZ: usize = 16;
// libnftnl's NFTNL_UDATA_TABLE_COMMENT and nft's NFTNL_UDATA_COMMENT_MAXLEN.
const UDATA_TABLE_COMMENT: u8 = 0;
const COMMENT_MAXLEN: usize = 127;
const NFT_NAME_MAXLEN: usize = 255;
// include/uapi/linux/netlink.h
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
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
    #[error("nftables table ip {name} exists already; nothing was changed")]
    Exists { name: String },
    /// The table exists but does not carry our mark: it is never changed nor deleted.
    #[error(
        "nftables table ip {name} is not ours (its comment is {found:?}, expected {expected:?}); it was left untouched"
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

/// Which output interface a masquerade rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutMatch {
    /// Any output interface.
    Any,
    /// `oifname == IF`
    Out(String),
    /// `oifname != IF` (the tutorial's `! -o bri0`)
    NotOut(String),
}

/// `ip saddr SOURCE [oifname [!=] IF] masquerade`. A /0 source matches every IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Masquerade {
    pub source: Ipv4Net,
    pub out: OutMatch,
}

impl fmt::Display for Masquerade {
    /// The rule as `nft list` prints it (without shell quoting).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source.prefix_len() > 0 {
            write!(f, "ip saddr {} ", self.source)?;
        }
        match &self.out {
            OutMatch::Any => {}
            OutMatch::Out(ifname) => write!(f, "oifname \"{ifname}\" ")?,
            OutMatch::NotOut(ifname) => write!(f, "oifname != \"{ifname}\" ")?,
        }
        f.write_str("masquerade")
    }
}

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

/// What [`NftSocket::read_nat_rules`] found in `table ip NAME`.
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
}

impl NatRules {
    /// True if the table is exactly what `create_nat_table(name, mark, rules)` makes.
    pub fn matches(&self, mark: &str, rules: &[Masquerade]) -> bool {
        self.comment.as_deref() == Some(mark)
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

// ---------------------------------------------------------------------------
// `nft` commands (teaching / --explain)

/// Quote a word for a POSIX shell, only when needed.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b'@' | b'%' | b'+' | b'=' | b',' | b':'
                )
        })
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// An interface name as an `nft` string on a shell command line. `"bri0"` reaches nft
/// as the bare word bri0, which nft takes as a string; words that are nft keywords
/// (`bridge`, `counter`) or start with a digit are not, so those keep their double
/// quotes inside single ones.
fn nft_ifname_arg(ifname: &str) -> String {
    let bytes = ifname.as_bytes();
    let bare_ok = bytes.first().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.last().is_some_and(|b| b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if bare_ok {
        format!("\"{ifname}\"")
    } else {
        format!("'\"{ifname}\"'")
    }
}

/// The rule part after the chain name, shell-quoted.
fn explain_rule(rule: &Masquerade) -> String {
    let mut words = Vec::new();
    if rule.source.prefix_len() > 0 {
        words.push(format!("ip saddr {}", rule.source));
    }
    match &rule.out {
        OutMatch::Any => {}
        OutMatch::Out(ifname) => words.push(format!("oifname {}", nft_ifname_arg(ifname))),
        OutMatch::NotOut(ifname) => words.push(format!("oifname != {}", nft_ifname_arg(ifname))),
    }
    words.push("masquerade".to_string());
    words.join(" ")
}

/// The `nft` commands a person would type to build the same table as
/// [`NftSocket::create_nat_table`]. Table names must be nft identifiers (letters,
/// digits, `-_./`, not starting with a digit, not an nft keyword) for the commands
/// to parse; interface names and marks are quoted as nft needs.
pub fn explain_nat_table(name: &str, mark: &str, rules: &[Masquerade]) -> Vec<String> {
    let table = shell_word(name);
    let mut out = vec![
        format!("nft add table ip {table} '{{ comment \"{mark}\"; }}'"),
        format!(
            "nft add chain ip {table} {NAT_CHAIN} '{{ type nat hook postrouting priority srcnat; policy accept; }}'"
        ),
    ];
    out.extend(
        rules
            .iter()
            .map(|r| format!("nft add rule ip {table} {NAT_CHAIN} {}", explain_rule(r))),
    );
    out
}

/// The `nft` command that deletes the table.
pub fn explain_delete_table(name: &str) -> String {
    format!("nft delete table ip {}", shell_word(name))
}

// ---------------------------------------------------------------------------
// Message building (pure)

type NlMsg = NetlinkMessage<NetfilterMessage>;

/// One message of a batch, with what to call it in errors.
#[derive(Debug, Clone)]
struct Step {
    label: String,
    msg: NlMsg,
    kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StepKind {
    /// EEXIST on it means the table exists: [`NftError::Exists`].
    NewTable {
        name: String,
    },
    Other,
}

fn nf_message(
    family: NetfilterProtoFamily,
    res_id: u16,
    inner: impl Into<NetfilterMessageInner>,
    flags: u16,
) -> NlMsg {
    let mut msg = NetlinkMessage::from(NetfilterMessage::new(
        NetfilterHeader::new(family, 0, res_id),
        inner,
    ));
    msg.header.flags = flags;
    msg
}

/// libnftnl user data: TLVs of (type u8, len u8, value); a comment is NUL-terminated.
fn encode_comment_udata(comment: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(comment.len() + 3);
    v.push(UDATA_TABLE_COMMENT);
    // validate_mark keeps this below 256.
    v.push(u8::try_from(comment.len() + 1).unwrap_or(u8::MAX));
    v.extend_from_slice(comment.as_bytes());
    v.push(0);
    v
}

fn decode_comment_udata(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while let [kind, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let value = tail.get(..len)?;
        if *kind == UDATA_TABLE_COMMENT {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        rest = &tail[len..];
    }
    None
}

fn expr(e: Expressions) -> ListAttribute<ExpressionAttribute> {
    e.into()
}

/// Expressions of one rule, as nft 1.0 encodes the same rule text: a byte-aligned
/// prefix loads only its bytes; another needs a 4-byte load and a mask.
fn masquerade_expressions(rule: &Masquerade) -> Vec<ListAttribute<ExpressionAttribute>> {
    let mut exprs = Vec::new();
    let plen = u32::from(rule.source.prefix_len());
    if plen > 0 {
        let addr = rule.source.network().octets();
        let aligned = plen % 8 == 0;
        let load_len = if aligned { plen / 8 } else { 4 };
        exprs.push(expr(Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(NFT_PAYLOAD_NETWORK_HEADER),
            Payload::Offset(IPV4_SADDR_OFFSET),
            Payload::Len(load_len),
        ])));
        if !aligned {
            exprs.push(expr(Expressions::Bitwise(vec![
                Bitwise::SourceRegister(Register::Reg1),
                Bitwise::DestinationRegister(Register::Reg1),
                Bitwise::Length(4),
                Bitwise::Mask(DataAttribute::Value(
                    rule.source.netmask().octets().to_vec(),
                )),
                Bitwise::Xor(DataAttribute::Value(vec![0; 4])),
            ])));
        }
        exprs.push(expr(Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(addr[..load_len as usize].to_vec())),
        ])));
    }
    let (op, ifname) = match &rule.out {
        OutMatch::Any => (None, ""),
        OutMatch::Out(i) => (Some(Operator::Equal), i.as_str()),
        OutMatch::NotOut(i) => (Some(Operator::NotEqual), i.as_str()),
    };
    if let Some(op) = op {
        exprs.push(expr(Expressions::Meta(vec![
            Meta::DestinationRegister(Register::Reg1),
            Meta::Key(MetaKey::Oifname),
        ])));
        // An exact name is compared over the whole IFNAMSIZ, zero padded.
        let mut name = [0u8; IFNAMSIZ];
        let n = ifname.len().min(IFNAMSIZ - 1);
        name[..n].copy_from_slice(&ifname.as_bytes()[..n]);
        exprs.push(expr(Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(op),
            Cmp::Data(DataAttribute::Value(name.to_vec())),
        ])));
    }
    // The crate has no masq type; a bare named element with no data is what nft
    // sends for a plain `masquerade`.
    exprs.push(ListAttribute::Element(vec![ExpressionAttribute::Name(
        "masq".to_string(),
    )]));
    exprs
}

/// NewTable (EXCL), NewChain, and one NewRule per masquerade.
fn nat_table_steps(name: &str, mark: &str, rules: &[Masquerade]) -> Vec<Step> {
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    let ipv4 = NetfilterProtoFamily::IPv4;
    let mut steps = vec![
        Step {
            label: format!("create table ip {name}"),
            msg: nf_message(
                ipv4,
                0,
                NfTablesMessage::NewTable(TableMessage {
                    attributes: vec![
                        TableAttribute::Name(name.to_string()),
                        TableAttribute::Flags(TableFlags::empty()),
                        TableAttribute::UserData(encode_comment_udata(mark)),
                    ],
                }),
                // EXCL: without it an existing table is silently reused, keeping its
                // old comment and gaining duplicate rules.
                ack | NLM_F_CREATE | NLM_F_EXCL,
            ),
            kind: StepKind::NewTable {
                name: name.to_string(),
            },
        },
        Step {
            label: format!("create chain ip {name} {NAT_CHAIN}"),
            msg: nf_message(
                ipv4,
                0,
                NfTablesMessage::NewChain(ChainMessage {
                    attributes: vec![
                        ChainAttribute::Table(name.to_string()),
                        ChainAttribute::Name(NAT_CHAIN.to_string()),
                        ChainAttribute::Hook(vec![
                            NlHook::Number(HookNumber::Inet(InetHookNumber::PostRouting)),
                            // The attribute is a u32 carrying an s32.
                            NlHook::Priority(SRCNAT_PRIORITY as u32),
                        ]),
                        ChainAttribute::Type("nat".to_string()),
                        ChainAttribute::Policy(NF_ACCEPT),
                    ],
                }),
                ack | NLM_F_CREATE,
            ),
            kind: StepKind::Other,
        },
    ];
    for (i, rule) in rules.iter().enumerate() {
        steps.push(Step {
            label: format!("add rule {} to ip {name} {NAT_CHAIN}: {rule}", i + 1),
            msg: nf_message(
                ipv4,
                0,
                NfTablesMessage::NewRule(RuleMessage {
                    attributes: vec![
                        RuleAttribute::Table(name.to_string()),
                        RuleAttribute::Chain(NAT_CHAIN.to_string()),
                        RuleAttribute::Expressions(masquerade_expressions(rule)),
                    ],
                }),
                ack | NLM_F_CREATE | NLM_F_APPEND,
            ),
            kind: StepKind::Other,
        });
    }
    steps
}

fn delete_table_step(name: &str) -> Step {
    Step {
        label: format!("delete table ip {name}"),
        msg: nf_message(
            NetfilterProtoFamily::IPv4,
            0,
            NfTablesMessage::DeleteTable(TableMessage {
                attributes: vec![TableAttribute::Name(name.to_string())],
            }),
            NLM_F_REQUEST | NLM_F_ACK,
        ),
        kind: StepKind::Other,
    }
}

/// BatchBegin, optionally carrying the generation id the batch was computed against:
/// the kernel then refuses the whole batch with ERESTART if the ruleset changed since.
/// The crate has no variant for that attribute, hence `Other` with the begin type.
fn batch_begin(genid: Option<u32>) -> NlMsg {
    let inner = match genid {
        None => ControlMessage::BatchBegin,
        Some(id) => ControlMessage::Other {
            message_type: NFNL_MSG_BATCH_BEGIN,
            attributes: vec![DefaultNla::new(NFNL_BATCH_GENID, id.to_be_bytes().to_vec())],
        },
    };
    nf_message(
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        inner,
        NLM_F_REQUEST,
    )
}

fn batch_end() -> NlMsg {
    nf_message(
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        ControlMessage::BatchEnd,
        NLM_F_REQUEST,
    )
}

/// Give each message its own sequence number, from `first_seq`, and serialize them
/// into one buffer. Returns the buffer and the sequence numbers in order.
fn serialize_messages(msgs: &mut [NlMsg], first_seq: u32) -> (Vec<u8>, Vec<u32>) {
    let mut seqs = Vec::with_capacity(msgs.len());
    let mut buf = Vec::new();
    for (i, msg) in msgs.iter_mut().enumerate() {
        let seq = first_seq.wrapping_add(i as u32);
        msg.header.sequence_number = seq;
        msg.finalize();
        let start = buf.len();
        buf.resize(start + msg.buffer_len(), 0);
        msg.serialize(&mut buf[start..]);
        seqs.push(seq);
    }
    (buf, seqs)
}

// ---------------------------------------------------------------------------
// Decoding of kernel replies (pure)

/// Split a datagram into its netlink messages.
fn split_messages(buf: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        let rest = &buf[off..];
        let nl = NetlinkBuffer::new_checked(rest).map_err(|e| e.to_string())?;
        let len = nl.length() as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(format!(
                "netlink message length {len} with {} bytes left",
                rest.len()
            ));
        }
        out.push(&rest[..len]);
        off += (len + 3) & !3;
    }
    Ok(out)
}

/// Parse one message with the crate. Its attribute parsers index nested buffers
/// without checking them in a few places (a bitwise mask shorter than an attribute
/// header panics in netlink-packet-core 0.9); a malformed reply must become an error,
/// not a panic of the caller. The panic hook still prints its message.
fn parse_message(bytes: &[u8]) -> Result<NlMsg, String> {
    match std::panic::catch_unwind(|| NlMsg::deserialize(bytes)) {
        Ok(Ok(msg)) => Ok(msg),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the message could not be decoded".to_string()),
    }
}

/// The extended-ack text (NLMSGERR_ATTR_MSG) of an error reply. `after_code` is what
/// follows the error code: the request's header, its payload unless NLM_F_CAPPED, then
/// the TLVs if NLM_F_ACK_TLVS.
fn ext_ack_message(flags: u16, after_code: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let tlvs_at = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let orig = after_code.get(..4)?;
        let len = u32::from_ne_bytes([orig[0], orig[1], orig[2], orig[3]]) as usize;
        (len + 3) & !3
    };
    find_msg_tlv(after_code.get(tlvs_at..)?)
}

fn find_msg_tlv(tlvs: &[u8]) -> Option<String> {
    for nla in NlasIterator::new(tlvs) {
        let nla: NlaBuffer<&[u8]> = nla.ok()?;
        if nla.kind() == NLMSGERR_ATTR_MSG {
            let text = nla.value().split(|b| *b == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(text).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
    }
    None
}

/// Everything nslab decodes from an nftables reply datagram, as its dump and
/// batch readers do: split, parse, extended-ack text, and the table, chain and
/// rule reductions. For the fuzz target `fuzz/fuzz_targets/netlink.rs` only.
#[doc(hidden)]
pub fn fuzz_reply(buf: &[u8]) {
    let Ok(parts) = split_messages(buf) else {
        return;
    };
    for raw in parts {
        let Ok(msg) = parse_message(raw) else {
            continue;
        };
        match &msg.payload {
            NetlinkPayload::Error(err) => {
                let _ = ext_ack_message(msg.header.flags, &err.header);
            }
            NetlinkPayload::Done(done) => {
                let _ = find_msg_tlv(&done.extended_ack);
            }
            NetlinkPayload::InnerMessage(NetfilterMessage {
                header,
                inner: NetfilterMessageInner::NfTables(m),
                ..
            }) => match m {
                NfTablesMessage::NewTable(t) => {
                    let _ = table_info(header, t);
                }
                NfTablesMessage::NewChain(c) => {
                    if let Some((_, _, Some(b))) = chain_info(header, c) {
                        let _ = is_our_nat_chain(&b);
                    }
                }
                NfTablesMessage::NewRule(r) => {
                    let _ = decode_rule_attributes(&r.attributes);
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// One step of a rule, reduced to what the masquerade matcher needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Payload {
        dreg: u32,
        base: u32,
        offset: u32,
        len: u32,
    },
    Bitwise {
        sreg: u32,
        dreg: u32,
        len: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
        plain: bool,
    },
    Cmp {
        sreg: u32,
        op: Operator,
        data: Vec<u8>,
    },
    Meta {
        dreg: u32,
        key: MetaKey,
    },
    Masq {
        plain: bool,
    },
    Other,
}

fn value_of(data: &DataAttribute) -> Option<Vec<u8>> {
    match data {
        DataAttribute::Value(v) => Some(v.clone()),
        _ => None,
    }
}

fn simplify(element: &ListAttribute<ExpressionAttribute>) -> Expr {
    let ListAttribute::Element(attrs) = element else {
        return Expr::Other;
    };
    let name = attrs.iter().find_map(|a| match a {
        ExpressionAttribute::Name(n) => Some(n.as_str()),
        _ => None,
    });
    let data = attrs.iter().find_map(|a| match a {
        ExpressionAttribute::Data(d) => Some(d),
        _ => None,
    });
    match (name, data) {
        // `masquerade` with options (ports, random, ...) carries data: not ours.
        (Some("masq"), None) => Expr::Masq { plain: true },
        (Some("masq"), Some(Expressions::Other { attributes, .. })) => Expr::Masq {
            plain: attributes.is_empty(),
        },
        (Some("payload"), Some(Expressions::Payload(ps))) => {
            let (mut dreg, mut base, mut offset, mut len) = (None, None, None, None);
            for p in ps {
                match p {
                    Payload::DestinationRegister(r) => dreg = Some(u32::from(*r)),
                    Payload::Base(b) => base = Some(*b),
                    Payload::Offset(o) => offset = Some(*o),
                    Payload::Len(l) => len = Some(*l),
                    // A payload write (sreg) or checksum update is not a match.
                    _ => return Expr::Other,
                }
            }
            match (dreg, base, offset, len) {
                (Some(dreg), Some(base), Some(offset), Some(len)) => Expr::Payload {
                    dreg,
                    base,
                    offset,
                    len,
                },
                _ => Expr::Other,
            }
        }
        (Some("bitwise"), Some(Expressions::Bitwise(bs))) => {
            let (mut sreg, mut dreg, mut len, mut mask, mut xor) = (None, None, None, None, None);
            let mut plain = true;
            for b in bs {
                match b {
                    Bitwise::SourceRegister(r) => sreg = Some(u32::from(*r)),
                    Bitwise::DestinationRegister(r) => dreg = Some(u32::from(*r)),
                    Bitwise::Length(l) => len = Some(*l),
                    Bitwise::Mask(d) => mask = value_of(d),
                    Bitwise::Xor(d) => xor = value_of(d),
                    Bitwise::Op(op) => plain &= *op == NFT_BITWISE_MASK_XOR,
                    _ => plain = false,
                }
            }
            match (sreg, dreg, len, mask, xor) {
                (Some(sreg), Some(dreg), Some(len), Some(mask), Some(xor)) => Expr::Bitwise {
                    sreg,
                    dreg,
                    len,
                    mask,
                    xor,
                    plain,
                },
                _ => Expr::Other,
            }
        }
        (Some("cmp"), Some(Expressions::Cmp(cs))) => {
            let (mut sreg, mut op, mut data) = (None, None, None);
            for c in cs {
                match c {
                    Cmp::SourceRegister(r) => sreg = Some(u32::from(*r)),
                    Cmp::Op(o) => op = Some(*o),
                    Cmp::Data(d) => data = value_of(d),
                    _ => return Expr::Other,
                }
            }
            match (sreg, op, data) {
                (Some(sreg), Some(op), Some(data)) => Expr::Cmp { sreg, op, data },
                _ => Expr::Other,
            }
        }
        (Some("meta"), Some(Expressions::Meta(ms))) => {
            let (mut dreg, mut key) = (None, None);
            for m in ms {
                match m {
                    Meta::DestinationRegister(r) => dreg = Some(u32::from(*r)),
                    Meta::Key(k) => key = Some(*k),
                    _ => return Expr::Other,
                }
            }
            match (dreg, key) {
                (Some(dreg), Some(key)) => Expr::Meta { dreg, key },
                _ => Expr::Other,
            }
        }
        _ => Expr::Other,
    }
}

/// Prefix length of a contiguous netmask, if it is one.
fn mask_prefix_len(mask: [u8; 4]) -> Option<u8> {
    let m = u32::from_be_bytes(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// Read back a rule written by this module, or by `nft` from the same text. `None`
/// for anything else (other matches, statements, counters, wildcards, ...).
fn decode_masquerade(exprs: &[Expr]) -> Option<Masquerade> {
    let mut rest = exprs;
    let mut source = Ipv4Net::default(); // 0.0.0.0/0

    if let [
        Expr::Payload {
            dreg,
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset: IPV4_SADDR_OFFSET,
            len,
        },
        tail @ ..,
    ] = rest
    {
        let len = *len as usize;
        if !(1..=4).contains(&len) {
            return None;
        }
        // Without a bitwise, the loaded bytes are compared whole.
        let mut mask = [0u8; 4];
        mask[..len].fill(0xff);
        let mut tail = tail;
        if let [
            Expr::Bitwise {
                sreg,
                dreg: bdreg,
                len: blen,
                mask: m,
                xor,
                plain: true,
            },
            t @ ..,
        ] = tail
        {
            if sreg != dreg || bdreg != dreg || *blen as usize != len || m.len() != len {
                return None;
            }
            if xor.len() != len || xor.iter().any(|b| *b != 0) {
                return None;
            }
            mask = [0; 4];
            mask[..len].copy_from_slice(m);
            tail = t;
        }
        let [
            Expr::Cmp {
                sreg,
                op: Operator::Equal,
                data,
            },
            t @ ..,
        ] = tail
        else {
            return None;
        };
        if sreg != dreg || data.len() != len {
            return None;
        }
        let mut addr = [0u8; 4];
        addr[..len].copy_from_slice(data);
        let plen = mask_prefix_len(mask)?;
        let net = Ipv4Net::new(Ipv4Addr::from(addr), plen).ok()?;
        // A compare against host bits never matches: not a prefix match.
        if net != net.trunc() {
            return None;
        }
        source = net;
        rest = t;
    }

    let mut out = OutMatch::Any;
    if let [
        Expr::Meta {
            dreg,
            key: MetaKey::Oifname,
        },
        Expr::Cmp { sreg, op, data },
        tail @ ..,
    ] = rest
    {
        if sreg != dreg {
            return None;
        }
        // An exact name ends in a NUL (nft pads to IFNAMSIZ); without one it is a
        // wildcard prefix like `br*`.
        let end = data.iter().position(|b| *b == 0)?;
        if end == 0 || data.len() > IFNAMSIZ || data[end..].iter().any(|b| *b != 0) {
            return None;
        }
        let name = std::str::from_utf8(&data[..end]).ok()?.to_string();
        out = match op {
            Operator::Equal => OutMatch::Out(name),
            Operator::NotEqual => OutMatch::NotOut(name),
            _ => return None,
        };
        rest = tail;
    }

    match rest {
        [Expr::Masq { plain: true }] => Some(Masquerade { source, out }),
        _ => None,
    }
}

fn decode_rule_attributes(attrs: &[RuleAttribute]) -> Option<Masquerade> {
    let exprs = attrs.iter().find_map(|a| match a {
        RuleAttribute::Expressions(e) => Some(e),
        _ => None,
    })?;
    let simple: Vec<Expr> = exprs.iter().map(simplify).collect();
    decode_masquerade(&simple)
}

fn table_info(header: &NetfilterHeader, msg: &TableMessage) -> Option<TableInfo> {
    let mut name = None;
    let mut comment = None;
    for a in &msg.attributes {
        match a {
            TableAttribute::Name(n) => name = Some(n.clone()),
            TableAttribute::UserData(u) => comment = decode_comment_udata(u),
            _ => {}
        }
    }
    Some(TableInfo {
        family: header.family.into(),
        name: name?,
        comment,
    })
}

/// A chain: its table and name, and its base-chain facts if it has a hook.
fn chain_info(
    header: &NetfilterHeader,
    msg: &ChainMessage,
) -> Option<(String, String, Option<BaseChainInfo>)> {
    let family = Family::from(header.family);
    let (mut table, mut name, mut hook, mut prio, mut policy, mut ctype) =
        (None, None, None, None, None, None);
    for a in &msg.attributes {
        match a {
            ChainAttribute::Table(t) => table = Some(t.clone()),
            ChainAttribute::Name(n) => name = Some(n.clone()),
            ChainAttribute::Hook(hs) => {
                for h in hs {
                    match h {
                        NlHook::Number(n) => hook = Some(u32::from(*n)),
                        NlHook::Priority(p) => prio = Some(*p as i32),
                        _ => {}
                    }
                }
            }
            ChainAttribute::Policy(p) => policy = Some(*p),
            ChainAttribute::Type(t) => ctype = Some(t.clone()),
            _ => {}
        }
    }
    let (table, name) = (table?, name?);
    let base = hook.map(|h| BaseChainInfo {
        family,
        table: table.clone(),
        name: name.clone(),
        hook: Hook::from_raw(family, h),
        priority: prio.unwrap_or(0),
        // Base chains always report a policy; absent means accept (the default).
        policy_drop: policy == Some(NF_DROP),
        chain_type: ctype.unwrap_or_else(|| "filter".to_string()),
    });
    Some((table, name, base))
}

fn is_our_nat_chain(c: &BaseChainInfo) -> bool {
    c.family == Family::Ip
        && c.name == NAT_CHAIN
        && c.hook == Hook::Postrouting
        && c.priority == SRCNAT_PRIORITY
        && !c.policy_drop
        && c.chain_type == "nat"
}

// ---------------------------------------------------------------------------
// The socket

/// A NETLINK_NETFILTER socket, bound to the network namespace of the thread that
/// created it.
pub struct NftSocket {
    sock: Socket,
    seq: u32,
    timeout: Duration,
}

impl fmt::Debug for NftSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NftSocket")
            .field("fd", &self.sock.as_raw_fd())
            .field("seq", &self.seq)
            .finish()
    }
}

/// What the receive loop should do after a message.
enum Flow {
    More,
    Stop,
}

/// A dump whose result the kernel marked inconsistent (NLM_F_DUMP_INTR).
struct Interrupted;

impl NftSocket {
    /// Open the socket in the calling thread's network namespace, with extended ACKs
    /// and a receive timeout of [`DEFAULT_TIMEOUT`].
    pub fn new() -> Result<Self, NftError> {
        let op = "open NETLINK_NETFILTER socket";
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| io_err(op, e))?;
        sock.bind_auto().map_err(|e| io_err(op, e))?;
        sock.set_ext_ack(true).map_err(|e| io_err(op, e))?;
        // Errors then carry only the request's header, not its whole payload.
        sock.set_cap_ack(true).map_err(|e| io_err(op, e))?;
        let mut s = NftSocket {
            sock,
            // Replies come only to this socket; numbers only tell its own requests
            // apart (and skip the late replies of one that timed out).
            seq: 1,
            timeout: DEFAULT_TIMEOUT,
        };
        s.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(s)
    }

    /// Set the receive timeout (at least one millisecond).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), NftError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let tv = libc::timeval {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: setsockopt reads a timeval of the given size from a valid pointer.
        let rc = unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io_err("set receive timeout", io::Error::last_os_error()));
        }
        self.timeout = timeout;
        Ok(())
    }

    fn take_seqs(&mut self, n: usize) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(n as u32);
        first
    }

    /// Make room for a batch of `len` bytes: netlink refuses a datagram larger than
    /// the send buffer (EMSGSIZE).
    fn ensure_sndbuf(&self, len: usize) {
        let want = len.saturating_add(4096).min(256 << 20);
        self.force_buffer(libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, want);
    }

    /// Make room for `n` replies: each ACK costs about a page of receive buffer, and
    /// a reply the kernel cannot queue is lost (ENOBUFS).
    fn ensure_rcvbuf(&self, n: usize) {
        let want = (n + 8).saturating_mul(4096).min(64 << 20);
        if self.sock.get_rx_buf_sz().is_ok_and(|cur| cur >= want) {
            return;
        }
        self.force_buffer(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, want);
    }

    /// Set a socket buffer size. The FORCE option needs CAP_NET_ADMIN, which changing
    /// nftables needs anyway; the plain one is capped by net.core.[rw]mem_max. A
    /// buffer still too small shows up as EMSGSIZE or ENOBUFS, both reported.
    fn force_buffer(&self, force: libc::c_int, plain: libc::c_int, size: usize) {
        let v = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        for opt in [force, plain] {
            // SAFETY: setsockopt reads a c_int from a valid pointer.
            let rc = unsafe {
                libc::setsockopt(
                    self.sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return;
            }
        }
    }

    fn send(&self, op: &str, buf: &[u8]) -> Result<(), NftError> {
        loop {
            match self.sock.send(buf, 0) {
                Ok(n) if n == buf.len() => return Ok(()),
                Ok(n) => {
                    return Err(protocol(op, format!("sent {n} of {} bytes", buf.len())));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(op, e)),
            }
        }
    }

    /// Receive one datagram whole. `Ok(None)` when `nowait` and nothing is queued.
    fn recv_datagram(&self, op: &str, nowait: bool) -> Result<Option<Vec<u8>>, NftError> {
        let wait_flag = if nowait { libc::MSG_DONTWAIT } else { 0 };
        loop {
            // Peek the size first so a large dump part is never truncated.
            let mut probe: Vec<u8> = Vec::with_capacity(64);
            let size = match self
                .sock
                .recv(&mut probe, libc::MSG_PEEK | libc::MSG_TRUNC | wait_flag)
            {
                Ok(n) => n,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) if nowait => return Ok(None),
                    Some(libc::EAGAIN) => {
                        return Err(NftError::Timeout {
                            op: op.to_string(),
                            timeout: self.timeout,
                        });
                    }
                    _ => return Err(io_err(op, e)),
                },
            };
            let mut buf: Vec<u8> = Vec::with_capacity(size.max(1));
            match self.sock.recv(&mut buf, libc::MSG_DONTWAIT) {
                Ok(n) if n == buf.len() => return Ok(Some(buf)),
                Ok(n) => {
                    return Err(protocol(
                        op,
                        format!("datagram of {n} bytes truncated to {}", buf.len()),
                    ));
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(io_err(op, e)),
            }
        }
    }

    /// Feed every reply whose sequence number is in `seqs` to `handle` until it says
    /// stop. Replies to earlier requests (a timed-out one) are skipped.
    fn receive(
        &self,
        op: &str,
        seqs: &[u32],
        nowait: bool,
        mut handle: impl FnMut(NlMsg) -> Result<Flow, NftError>,
    ) -> Result<(), NftError> {
        loop {
            let Some(dgram) = self.recv_datagram(op, nowait)? else {
                return Ok(());
            };
            for raw in split_messages(&dgram).map_err(|r| protocol(op, r))? {
                let msg = parse_message(raw).map_err(|r| protocol(op, r))?;
                if !seqs.contains(&msg.header.sequence_number) {
                    continue;
                }
                if let Flow::Stop = handle(msg)? {
                    return Ok(());
                }
            }
        }
    }

    /// Send a batch (BatchBegin [genid], steps, BatchEnd) and read every reply: each
    /// step carries NLM_F_ACK, so exactly one ACK or error comes back per step. An
    /// ACK only means that step was accepted; the batch commits only if none failed,
    /// so any error fails the whole operation.
    fn run_batch(
        &mut self,
        op: &str,
        genid: Option<u32>,
        steps: Vec<Step>,
    ) -> Result<(), NftError> {
        let mut msgs = Vec::with_capacity(steps.len() + 2);
        msgs.push(batch_begin(genid));
        msgs.extend(steps.iter().map(|s| s.msg.clone()));
        msgs.push(batch_end());
        let first = self.take_seqs(msgs.len());
        let (buf, seqs) = serialize_messages(&mut msgs, first);
        self.ensure_sndbuf(buf.len());
        self.ensure_rcvbuf(steps.len());
        self.send(op, &buf)?;

        let begin_seq = seqs[0];
        let step_seqs = &seqs[1..seqs.len() - 1];
        let mut pending: Vec<u32> = step_seqs.to_vec();
        let expect_replies = !pending.is_empty();
        let mut first_error: Option<NftError> = None;

        let mut on_reply = |msg: NlMsg| -> Result<Flow, NftError> {
            let NetlinkPayload::Error(err) = &msg.payload else {
                return Ok(Flow::More);
            };
            let seq = msg.header.sequence_number;
            if let Some(code) = err.code {
                let errno = -code.get();
                let text = ext_ack_message(msg.header.flags, &err.header);
                let step = step_seqs
                    .iter()
                    .position(|s| *s == seq)
                    .and_then(|i| steps.get(i));
                let e = match step {
                    Some(Step {
                        kind: StepKind::NewTable { name },
                        ..
                    }) if errno == libc::EEXIST => NftError::Exists { name: name.clone() },
                    Some(s) => NftError::Kernel {
                        op: format!("{op}: {}", s.label),
                        errno,
                        msg: text,
                    },
                    None => NftError::Kernel {
                        op: format!("{op}: batch"),
                        errno,
                        msg: text,
                    },
                };
                if first_error.is_none() {
                    first_error = Some(e);
                }
                // A batch-level error (on BatchBegin's number) may come alone: the
                // kernel refused the batch before looking at its messages.
                if seq == begin_seq {
                    return Ok(Flow::Stop);
                }
            }
            pending.retain(|s| *s != seq);
            Ok(if pending.is_empty() {
                Flow::Stop
            } else {
                Flow::More
            })
        };
        let res = if expect_replies {
            self.receive(op, &seqs, false, &mut on_reply)
        } else {
            Ok(())
        };
        // All replies were queued before send returned: take what is left, so a
        // batch-level error after the ACKs (or ACKs after it) is not missed or left
        // for the next request.
        let drained = self.receive(op, &seqs, true, |m| {
            on_reply(m)?;
            Ok(Flow::More)
        });
        // Any error reply means nothing was applied.
        if let Some(e) = first_error {
            return Err(e);
        }
        // Without one, a missing reply leaves the outcome unknown: say so.
        res.and(drained).map_err(|e| match e {
            NftError::Io { op, source } if source.raw_os_error() == Some(libc::ENOBUFS) => {
                NftError::Io {
                    op: format!(
                        "{op}: replies lost (receive buffer full), so whether the batch was applied is unknown; read the table again"
                    ),
                    source,
                }
            }
            NftError::Timeout { op, timeout } => NftError::Timeout {
                op: format!("{op} (whether the batch was applied is unknown)"),
                timeout,
            },
            e => e,
        })
    }

    /// A dump request (NLM_F_DUMP), collecting the nf_tables messages until DONE.
    fn dump_once(
        &mut self,
        op: &str,
        family: NetfilterProtoFamily,
        request: NfTablesMessage,
    ) -> Result<Result<Vec<(NetfilterHeader, NfTablesMessage)>, Interrupted>, NftError> {
        let mut msgs = [nf_message(family, 0, request, NLM_F_REQUEST | NLM_F_DUMP)];
        let first = self.take_seqs(1);
        let (buf, seqs) = serialize_messages(&mut msgs, first);
        self.send(op, &buf)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        self.receive(op, &seqs, false, |msg| {
            if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                interrupted = true;
            }
            match msg.payload {
                NetlinkPayload::Done(done) => {
                    if done.code < 0 {
                        return Err(NftError::Kernel {
                            op: op.to_string(),
                            errno: -done.code,
                            msg: find_msg_tlv(&done.extended_ack),
                        });
                    }
                    Ok(Flow::Stop)
                }
                NetlinkPayload::Error(err) => match err.code {
                    Some(code) => Err(NftError::Kernel {
                        op: op.to_string(),
                        errno: -code.get(),
                        msg: ext_ack_message(msg.header.flags, &err.header),
                    }),
                    None => Ok(Flow::Stop),
                },
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    header,
                    inner: NetfilterMessageInner::NfTables(m),
                    ..
                }) => {
                    out.push((header, m));
                    Ok(Flow::More)
                }
                _ => Ok(Flow::More),
            }
        })?;
        Ok(if interrupted {
            Err(Interrupted)
        } else {
            Ok(out)
        })
    }

    /// The ruleset's generation id; it changes with every commit in the namespace.
    fn generation_for(&mut self, op: &str) -> Result<u32, NftError> {
        let mut msgs = [nf_message(
            NetfilterProtoFamily::Unspec,
            0,
            NfTablesMessage::GetGen(GenMessage { attributes: vec![] }),
            NLM_F_REQUEST | NLM_F_ACK,
        )];
        let first = self.take_seqs(1);
        let (buf, seqs) = serialize_messages(&mut msgs, first);
        self.send(op, &buf)?;
        let mut id = None;
        self.receive(op, &seqs, false, |msg| match msg.payload {
            NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::NfTables(NfTablesMessage::NewGen(g)),
                ..
            }) => {
                id = g.attributes.iter().find_map(|a| match a {
                    GenAttribute::Id(id) => Some(*id),
                    _ => None,
                });
                Ok(Flow::More)
            }
            NetlinkPayload::Error(err) => match err.code {
                Some(code) => Err(NftError::Kernel {
                    op: format!("{op}: read generation id"),
                    errno: -code.get(),
                    msg: ext_ack_message(msg.header.flags, &err.header),
                }),
                None => Ok(Flow::Stop),
            },
            _ => Ok(Flow::More),
        })?;
        id.ok_or_else(|| protocol(op, "no generation id in the reply"))
    }

    fn dump_tables_once(
        &mut self,
        op: &str,
    ) -> Result<Result<Vec<TableInfo>, Interrupted>, NftError> {
        let msgs = match self.dump_once(
            op,
            NetfilterProtoFamily::Unspec,
            NfTablesMessage::GetTable(TableMessage { attributes: vec![] }),
        )? {
            Ok(m) => m,
            Err(i) => return Ok(Err(i)),
        };
        Ok(Ok(msgs
            .iter()
            .filter_map(|(h, m)| match m {
                NfTablesMessage::NewTable(t) => table_info(h, t),
                _ => None,
            })
            .collect()))
    }

    /// Run `read` between two generation reads until both match, so the result is one
    /// consistent state of the ruleset. Returns the generation it is valid for.
    fn consistent<T>(
        &mut self,
        op: &str,
        mut read: impl FnMut(&mut Self) -> Result<Result<T, Interrupted>, NftError>,
    ) -> Result<(T, u32), NftError> {
        for _ in 0..GENERATION_ATTEMPTS {
            let before = self.generation_for(op)?;
            let Ok(value) = read(self)? else { continue };
            if self.generation_for(op)? == before {
                return Ok((value, before));
            }
        }
        Err(NftError::GenerationChanged {
            op: op.to_string(),
            attempts: GENERATION_ATTEMPTS,
        })
    }

    /// All tables of all families.
    pub fn list_tables(&mut self) -> Result<Vec<TableInfo>, NftError> {
        let op = "list nftables tables";
        Ok(self.consistent(op, |s| s.dump_tables_once(op))?.0)
    }

    /// All base chains of all tables and families (to explain, say, a forward chain
    /// with policy drop left by a firewall).
    pub fn list_base_chains(&mut self) -> Result<Vec<BaseChainInfo>, NftError> {
        let op = "list nftables chains";
        let (chains, _) = self.consistent(op, |s| {
            Ok(s.dump_once(
                op,
                NetfilterProtoFamily::Unspec,
                NfTablesMessage::GetChain(ChainMessage { attributes: vec![] }),
            )?
            .map(|msgs| {
                msgs.iter()
                    .filter_map(|(h, m)| match m {
                        NfTablesMessage::NewChain(c) => chain_info(h, c).and_then(|c| c.2),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            }))
        })?;
        Ok(chains)
    }

    /// The masquerade rules of `table ip NAME`, decoded; `None` if there is no such
    /// table. Rules of other shapes are counted in [`NatRules::unknown_rules`].
    pub fn read_nat_rules(&mut self, name: &str) -> Result<Option<NatRules>, NftError> {
        validate_table_name(name)?;
        let op = format!("read nftables table ip {name}");
        Ok(self
            .consistent(&op, |s| s.read_nat_rules_once(&op, name))?
            .0)
    }

    fn read_nat_rules_once(
        &mut self,
        op: &str,
        name: &str,
    ) -> Result<Result<Option<NatRules>, Interrupted>, NftError> {
        let tables = match self.dump_tables_once(op)? {
            Ok(t) => t,
            Err(i) => return Ok(Err(i)),
        };
        let Some(table) = tables
            .into_iter()
            .find(|t| t.family == Family::Ip && t.name == name)
        else {
            return Ok(Ok(None));
        };
        let chains = match self.dump_once(
            op,
            NetfilterProtoFamily::IPv4,
            NfTablesMessage::GetChain(ChainMessage {
                attributes: vec![ChainAttribute::Table(name.to_string())],
            }),
        )? {
            Ok(c) => c,
            Err(i) => return Ok(Err(i)),
        };
        // The rule dump is filtered by table in the kernel; rules of other tables
        // are filtered again here in case an older kernel ignores the filter.
        let rules = match self.dump_once(
            op,
            NetfilterProtoFamily::IPv4,
            NfTablesMessage::GetRule(RuleMessage {
                attributes: vec![RuleAttribute::Table(name.to_string())],
            }),
        )? {
            Ok(r) => r,
            Err(i) => return Ok(Err(i)),
        };
        let mut out = NatRules {
            comment: table.comment,
            ..NatRules::default()
        };
        for (h, m) in &chains {
            let NfTablesMessage::NewChain(c) = m else {
                continue;
            };
            let Some((t, chain, base)) = chain_info(h, c) else {
                continue;
            };
            if t != name || Family::from(h.family) != Family::Ip {
                continue;
            }
            match base {
                Some(b) if is_our_nat_chain(&b) => out.chain_ok = true,
                _ => out.other_chains.push(chain),
            }
        }
        for (h, m) in &rules {
            let NfTablesMessage::NewRule(r) = m else {
                continue;
            };
            if Family::from(h.family) != Family::Ip {
                continue;
            }
            let (mut table, mut chain) = (None, None);
            for a in &r.attributes {
                match a {
                    RuleAttribute::Table(t) => table = Some(t.as_str()),
                    RuleAttribute::Chain(c) => chain = Some(c.as_str()),
                    _ => {}
                }
            }
            if table != Some(name) {
                continue;
            }
            match (chain, decode_rule_attributes(&r.attributes)) {
                (Some(NAT_CHAIN), Some(m)) if out.chain_ok => out.masquerades.push(m),
                _ => out.unknown_rules += 1,
            }
        }
        Ok(Ok(Some(out)))
    }

    /// Create `table ip NAME` (comment MARK), its nat postrouting chain and one
    /// masquerade rule per entry, in one atomic batch. If the table exists, fails with
    /// [`NftError::Exists`] and changes nothing.
    pub fn create_nat_table(
        &mut self,
        name: &str,
        mark: &str,
        rules: &[Masquerade],
    ) -> Result<(), NftError> {
        validate_all(name, mark, rules)?;
        let op = format!("create nftables table ip {name}");
        self.run_batch(&op, None, nat_table_steps(name, mark, rules))
    }

    /// Replace `table ip NAME` by a fresh one, in one batch: delete the old table (only
    /// if it carries MARK, else [`NftError::Foreign`]) and create the new one. The
    /// batch carries the generation id the check was made against, so a concurrent
    /// change makes the kernel refuse it (ERESTART) rather than race; the check is then
    /// redone a few times before giving up with [`NftError::GenerationChanged`]. An
    /// absent table is created.
    pub fn replace_nat_table(
        &mut self,
        name: &str,
        mark: &str,
        rules: &[Masquerade],
    ) -> Result<(), NftError> {
        self.replace(None, name, mark, rules)
    }

    /// Like [`Self::replace_nat_table`], but only if the ruleset is still at
    /// `generation` (from [`Self::generation`], read when the caller observed it);
    /// otherwise [`NftError::GenerationChanged`] and nothing is changed. No retry.
    pub fn replace_nat_table_at(
        &mut self,
        generation: u32,
        name: &str,
        mark: &str,
        rules: &[Masquerade],
    ) -> Result<(), NftError> {
        self.replace(Some(generation), name, mark, rules)
    }

    fn replace(
        &mut self,
        at: Option<u32>,
        name: &str,
        mark: &str,
        rules: &[Masquerade],
    ) -> Result<(), NftError> {
        validate_all(name, mark, rules)?;
        let op = format!("replace nftables table ip {name}");
        self.checked_batch(&op, at, name, mark, |exists| {
            let mut steps = Vec::new();
            if exists {
                steps.push(delete_table_step(name));
            }
            steps.extend(nat_table_steps(name, mark, rules));
            Some(steps)
        })
        .map(|_| ())
    }

    /// Delete `table ip NAME` if its comment is MARK. `Ok(false)` if there is no such
    /// table; [`NftError::Foreign`] if it carries another comment or none (it is never
    /// deleted then). Guarded by the generation id like [`Self::replace_nat_table`].
    pub fn delete_table_if_marked(&mut self, name: &str, mark: &str) -> Result<bool, NftError> {
        self.delete_if_marked(None, name, mark)
    }

    /// Like [`Self::delete_table_if_marked`], but only if the ruleset is still at
    /// `generation`; otherwise [`NftError::GenerationChanged`]. No retry.
    pub fn delete_table_if_marked_at(
        &mut self,
        generation: u32,
        name: &str,
        mark: &str,
    ) -> Result<bool, NftError> {
        self.delete_if_marked(Some(generation), name, mark)
    }

    fn delete_if_marked(
        &mut self,
        at: Option<u32>,
        name: &str,
        mark: &str,
    ) -> Result<bool, NftError> {
        validate_table_name(name)?;
        validate_mark(mark)?;
        let op = format!("delete nftables table ip {name}");
        self.checked_batch(&op, at, name, mark, |exists| {
            exists.then(|| vec![delete_table_step(name)])
        })
    }

    /// The ruleset's generation id. Every commit in the namespace, by anyone, changes
    /// it; pass it to the `*_at` methods to act only on the state that was observed.
    pub fn generation(&mut self) -> Result<u32, NftError> {
        self.generation_for("read nftables generation id")
    }

    /// Read the generation and `table ip NAME`; refuse a foreign table; send the steps
    /// from `plan(exists)` in a batch tied to that generation. With `at`, the state
    /// must still be at that generation and there is one attempt; without, a batch
    /// refused with ERESTART is re-checked and retried. Returns whether a batch was sent.
    fn checked_batch(
        &mut self,
        op: &str,
        at: Option<u32>,
        name: &str,
        mark: &str,
        plan: impl Fn(bool) -> Option<Vec<Step>>,
    ) -> Result<bool, NftError> {
        let attempts = if at.is_some() { 1 } else { GENERATION_ATTEMPTS };
        let changed = || NftError::GenerationChanged {
            op: op.to_string(),
            attempts,
        };
        for _ in 0..attempts {
            let (tables, current) = self.consistent(op, |s| s.dump_tables_once(op))?;
            // With `at`, the kernel itself refuses the batch if anything changed since
            // (including between `at` and the check just made).
            let genid = at.unwrap_or(current);
            let existing = tables
                .into_iter()
                .find(|t| t.family == Family::Ip && t.name == name);
            if let Some(t) = &existing
                && t.comment.as_deref() != Some(mark)
            {
                return Err(NftError::Foreign {
                    name: name.to_string(),
                    found: t.comment.clone(),
                    expected: mark.to_string(),
                });
            }
            let Some(steps) = plan(existing.is_some()) else {
                return Ok(false);
            };
            match self.run_batch(op, Some(genid), steps) {
                Err(NftError::Kernel { errno, .. }) if errno == libc::ERESTART => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok(true),
            }
        }
        Err(changed())
    }
}

// ---------------------------------------------------------------------------
// Tracing: why-not asks the kernel which rule drops a probe

/// `priority` of the trace chains: before every other chain (raw is -300,
/// conntrack -200), so the packet is marked before anything can drop it.
const TRACE_PRIORITY: i32 = -10000;
/// nfnetlink multicast group of trace events (NFNLGRP_NFTRACE).
const NFNLGRP_NFTRACE: u32 = 9;
const NFT_MSG_TRACE: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_TCP: u8 = 6;

/// One trace event (NFT_MSG_TRACE): a packet marked with `meta nftrace` went
/// through a rule, or a chain's policy decided it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceEvent {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// NFT_TRACETYPE_POLICY 1, _RETURN 2, _RULE 3.
    pub kind: u32,
    pub handle: Option<u64>,
    /// NF_DROP 0, NF_ACCEPT 1, NFT_CONTINUE -1, NFT_JUMP -3, ...
    pub verdict: Option<i32>,
    pub policy: Option<u32>,
    /// Events of one pass through a hook share an id; only the first carries
    /// the packet's headers.
    pub id: u32,
    pub network: Vec<u8>,
    pub transport: Vec<u8>,
}

impl TraceEvent {
    /// The packet was dropped here (by a rule, a reject, or the chain's policy).
    pub fn is_drop(&self) -> bool {
        match self.kind {
            1 => self.policy == Some(NF_DROP),
            3 => self.verdict == Some(NF_DROP as i32),
            _ => false,
        }
    }

    /// The transport protocol, from the network header (IPv4's protocol,
    /// IPv6's first next header).
    pub fn l4proto(&self) -> Option<u8> {
        match self.network.first().map(|b| b >> 4) {
            Some(4) => self.network.get(9).copied(),
            Some(6) => self.network.get(6).copied(),
            _ => None,
        }
    }

    /// The ICMP or ICMPv6 echo identifier of the traced packet, if it is an echo.
    pub fn echo_ident(&self) -> Option<u16> {
        let t = &self.transport;
        if matches!(self.l4proto(), Some(p) if p != IPPROTO_ICMP && p != IPPROTO_ICMPV6) {
            return None;
        }
        if t.len() < 6 || !matches!(t[0], 0 | 8 | 128 | 129) {
            return None;
        }
        Some(u16::from_be_bytes([t[4], t[5]]))
    }

    /// Source and destination port of a traced TCP segment.
    pub fn tcp_ports(&self) -> Option<(u16, u16)> {
        let t = &self.transport;
        if self.l4proto() != Some(IPPROTO_TCP) || t.len() < 4 {
            return None;
        }
        Some((
            u16::from_be_bytes([t[0], t[1]]),
            u16::from_be_bytes([t[2], t[3]]),
        ))
    }
}

fn family_name(f: u8) -> String {
    Family::from(NetfilterProtoFamily::from(f)).to_string()
}

/// Decode the trace events in one datagram; anything else is skipped.
pub fn parse_trace_events(buf: &[u8]) -> Vec<TraceEvent> {
    let Ok(msgs) = split_messages(buf) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in msgs {
        // nlmsghdr (16) + nfgenmsg (4: family, version, res_id).
        if m.len() < NLMSG_HDRLEN + 4 {
            continue;
        }
        let ty = u16::from_ne_bytes([m[4], m[5]]);
        if ty != (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_TRACE) {
            continue;
        }
        let mut e = TraceEvent {
            family: family_name(m[NLMSG_HDRLEN]),
            ..Default::default()
        };
        let be32 = |v: &[u8]| {
            v.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let text = |v: &[u8]| {
            String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
        };
        for nla in NlasIterator::new(&m[NLMSG_HDRLEN + 4..]).flatten() {
            let v = nla.value();
            match nla.kind() & 0x3fff {
                1 => e.table = text(v),
                2 => e.chain = text(v),
                3 => {
                    e.handle = v
                        .get(..8)
                        .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
                }
                4 => e.kind = be32(v).unwrap_or(0),
                5 => {
                    // NFTA_VERDICT_CODE (1) inside NFTA_TRACE_VERDICT.
                    e.verdict = NlasIterator::new(v)
                        .flatten()
                        .find(|a| a.kind() & 0x3fff == 1)
                        .and_then(|a| be32(a.value()))
                        .map(|c| c as i32);
                }
                6 => e.id = be32(v).unwrap_or(0),
                8 => e.network = v.to_vec(),
                9 => e.transport = v.to_vec(),
                16 => e.policy = be32(v),
                _ => {}
            }
        }
        out.push(e);
    }
    out
}

fn trace_rule(family: NetfilterProtoFamily, table: &str, chain: &str, proto: u8) -> Step {
    let exprs = vec![
        expr(Expressions::Meta(vec![
            Meta::DestinationRegister(Register::Reg1),
            Meta::Key(MetaKey::L4Proto),
        ])),
        expr(Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(vec![proto])),
        ])),
        expr(Expressions::Immediate(vec![
            netlink_packet_netfilter::nftables::Immediate::DestinationRegister(Register::Reg1),
            netlink_packet_netfilter::nftables::Immediate::Data(DataAttribute::Value(vec![1])),
        ])),
        expr(Expressions::Meta(vec![
            Meta::Key(MetaKey::NftraceBit),
            Meta::SourceRegister(Register::Reg1),
        ])),
    ];
    Step {
        label: format!("add trace rule to {table} {chain}"),
        msg: nf_message(
            family,
            0,
            NfTablesMessage::NewRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(table.to_string()),
                    RuleAttribute::Chain(chain.to_string()),
                    RuleAttribute::Expressions(exprs),
                ],
            }),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
        ),
        kind: StepKind::Other,
    }
}

/// `table inet NAME` and `table bridge NAME`, marked, whose chains (before all
/// others, at prerouting and output) set `meta nftrace` on ICMP, ICMPv6 and TCP. The
/// bridge table marks bridged packets before bridge-family chains see them; the
/// inet one everything routed, and bridged IPv4/IPv6 when br_netfilter is on.
fn trace_table_steps(name: &str, mark: &str) -> Vec<Step> {
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    let mut steps = Vec::new();
    for family in [NetfilterProtoFamily::Inet, NetfilterProtoFamily::Bridge] {
        steps.push(Step {
            label: format!("create table {} {name}", Family::from(family)),
            msg: nf_message(
                family,
                0,
                NfTablesMessage::NewTable(TableMessage {
                    attributes: vec![
                        TableAttribute::Name(name.to_string()),
                        TableAttribute::Flags(TableFlags::empty()),
                        TableAttribute::UserData(encode_comment_udata(mark)),
                    ],
                }),
                ack | NLM_F_CREATE | NLM_F_EXCL,
            ),
            kind: StepKind::NewTable {
                name: name.to_string(),
            },
        });
        for (chain, hook) in [
            ("pre", InetHookNumber::PreRouting),
            ("out", InetHookNumber::LocalOut),
        ] {
            steps.push(Step {
                label: format!("create chain {} {name} {chain}", Family::from(family)),
                msg: nf_message(
                    family,
                    0,
                    NfTablesMessage::NewChain(ChainMessage {
                        attributes: vec![
                            ChainAttribute::Table(name.to_string()),
                            ChainAttribute::Name(chain.to_string()),
                            ChainAttribute::Hook(vec![
                                NlHook::Number(HookNumber::Inet(hook)),
                                NlHook::Priority(TRACE_PRIORITY as u32),
                            ]),
                            ChainAttribute::Type("filter".to_string()),
                            ChainAttribute::Policy(NF_ACCEPT),
                        ],
                    }),
                    ack | NLM_F_CREATE,
                ),
                kind: StepKind::Other,
            });
            for proto in [IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP] {
                steps.push(trace_rule(family, name, chain, proto));
            }
        }
    }
    steps
}

fn delete_family_table_step(family: NetfilterProtoFamily, name: &str) -> Step {
    Step {
        label: format!("delete table {} {name}", Family::from(family)),
        msg: nf_message(
            family,
            0,
            NfTablesMessage::DeleteTable(TableMessage {
                attributes: vec![TableAttribute::Name(name.to_string())],
            }),
            NLM_F_REQUEST | NLM_F_ACK,
        ),
        kind: StepKind::Other,
    }
}

impl NftSocket {
    /// The trace tables named `name` (inet and bridge) that carry `mark`; an error
    /// if one of that name carries another mark (it is not ours: never touched).
    fn our_trace_tables(&mut self, name: &str, mark: &str) -> Result<Vec<Family>, NftError> {
        let op = format!("list nftables tables for {name}");
        let (tables, _) = self.consistent(&op, |s| s.dump_tables_once(&op))?;
        let mut ours = Vec::new();
        for t in tables.iter().filter(|t| t.name == name) {
            if !matches!(t.family, Family::Inet | Family::Bridge) {
                continue;
            }
            if t.comment.as_deref() != Some(mark) {
                return Err(NftError::Foreign {
                    name: name.to_string(),
                    found: t.comment.clone(),
                    expected: mark.to_string(),
                });
            }
            ours.push(t.family);
        }
        Ok(ours)
    }

    /// Create the trace tables (replacing leftovers of ours) in one batch.
    pub fn start_trace(&mut self, name: &str, mark: &str) -> Result<(), NftError> {
        validate_table_name(name)?;
        validate_mark(mark)?;
        let mut steps: Vec<Step> = self
            .our_trace_tables(name, mark)?
            .into_iter()
            .map(|f| {
                let nf = if f == Family::Bridge {
                    NetfilterProtoFamily::Bridge
                } else {
                    NetfilterProtoFamily::Inet
                };
                delete_family_table_step(nf, name)
            })
            .collect();
        steps.extend(trace_table_steps(name, mark));
        self.run_batch(&format!("create trace tables {name}"), None, steps)
    }

    /// Delete the trace tables named `name` that carry `mark`.
    pub fn stop_trace(&mut self, name: &str, mark: &str) -> Result<(), NftError> {
        let steps: Vec<Step> = self
            .our_trace_tables(name, mark)?
            .into_iter()
            .map(|f| {
                let nf = if f == Family::Bridge {
                    NetfilterProtoFamily::Bridge
                } else {
                    NetfilterProtoFamily::Inet
                };
                delete_family_table_step(nf, name)
            })
            .collect();
        if steps.is_empty() {
            return Ok(());
        }
        self.run_batch(&format!("delete trace tables {name}"), None, steps)
    }
}

/// A socket that receives the trace events of the calling thread's namespace,
/// non-blocking. Events are only generated while someone listens.
pub fn trace_listener() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_NETFILTER)?;
    s.bind_auto()?;
    s.add_membership(NFNLGRP_NFTRACE)?;
    s.set_non_blocking(true)?;
    // Every traced packet makes one event per chain it crosses.
    let _ = s.set_rx_buf_sz(4 << 20);
    Ok(s)
}

/// Drain what the listener has queued.
pub fn read_trace_events(s: &Socket) -> Vec<TraceEvent> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match s.recv(&mut &mut buf[..], 0) {
            Ok(0) => break,
            Ok(n) => out.extend(parse_trace_events(&buf[..n])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // WouldBlock: drained. ENOBUFS: events were lost; keep what came.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
            Err(_) => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Unit tests (no root)

/// An nftables socket inside the namespace of `ns` (made on a throwaway thread
/// that entered it; the socket keeps that namespace).
pub fn socket_in(ns: &std::fs::File) -> Result<NftSocket, NftError> {
    crate::kernel::netns::run_in(ns, NftSocket::new).map_err(|source| NftError::Io {
        op: "enter the namespace".into(),
        source,
    })?
}

impl From<&crate::topology::Nat> for Masquerade {
    fn from(n: &crate::topology::Nat) -> Masquerade {
        let out = match &n.out {
            crate::topology::NatOut::NotOut(i) => OutMatch::NotOut(i.clone()),
            crate::topology::NatOut::Out(i) => OutMatch::Out(i.clone()),
        };
        Masquerade {
            source: n.source,
            out,
        }
    }
}

impl Masquerade {
    /// Back to the model's form; `Any` (not written by nslab) has none.
    pub fn to_nat(&self) -> Option<crate::topology::Nat> {
        let out = match &self.out {
            OutMatch::NotOut(i) => crate::topology::NatOut::NotOut(i.clone()),
            OutMatch::Out(i) => crate::topology::NatOut::Out(i.clone()),
            OutMatch::Any => return None,
        };
        Some(crate::topology::Nat {
            source: self.source,
            out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masq(source: &str, out: OutMatch) -> Masquerade {
        Masquerade {
            source: source.parse().expect("test prefix"),
            out,
        }
    }

    fn tutorial_rule() -> Masquerade {
        masq("192.168.0.0/16", OutMatch::NotOut("bri0".into()))
    }

    #[test]
    fn explain_renders_the_tutorial_table() {
        let lines = explain_nat_table("nslab-test", "nslab:owner=objective3", &[tutorial_rule()]);
        assert_eq!(
            lines,
            vec![
                "nft add table ip nslab-test '{ comment \"nslab:owner=objective3\"; }'",
                "nft add chain ip nslab-test postrouting '{ type nat hook postrouting priority srcnat; policy accept; }'",
                "nft add rule ip nslab-test postrouting ip saddr 192.168.0.0/16 oifname != \"bri0\" masquerade",
            ]
        );
        assert_eq!(
            explain_delete_table("nslab-test"),
            "nft delete table ip nslab-test"
        );
    }

    #[test]
    fn explain_quotes_what_nft_would_misread() {
        let rules = [
            masq("0.0.0.0/0", OutMatch::Any),
            masq("10.1.2.3/32", OutMatch::Out("bridge".into())),
            masq("10.0.0.0/8", OutMatch::NotOut("1abc".into())),
            masq("10.0.0.0/8", OutMatch::Out("veth-a1".into())),
        ];
        let lines = explain_nat_table("t", "m", &rules);
        assert_eq!(lines[2], "nft add rule ip t postrouting masquerade");
        assert_eq!(
            lines[3],
            "nft add rule ip t postrouting ip saddr 10.1.2.3/32 oifname '\"bridge\"' masquerade"
        );
        assert_eq!(
            lines[4],
            "nft add rule ip t postrouting ip saddr 10.0.0.0/8 oifname != '\"1abc\"' masquerade"
        );
        assert_eq!(
            lines[5],
            "nft add rule ip t postrouting ip saddr 10.0.0.0/8 oifname \"veth-a1\" masquerade"
        );
    }

    #[test]
    fn display_is_nft_list_syntax() {
        assert_eq!(
            tutorial_rule().to_string(),
            "ip saddr 192.168.0.0/16 oifname != \"bri0\" masquerade"
        );
        assert_eq!(masq("0.0.0.0/0", OutMatch::Any).to_string(), "masquerade");
    }

    #[test]
    fn comment_udata_round_trips_in_libnftnl_form() {
        let u = encode_comment_udata("nslab:x");
        assert_eq!(u, b"\x00\x08nslab:x\x00");
        assert_eq!(decode_comment_udata(&u).as_deref(), Some("nslab:x"));
        // Other TLVs before the comment are skipped; truncated input is no comment.
        assert_eq!(
            decode_comment_udata(b"\x01\x02ab\x00\x02c\x00").as_deref(),
            Some("c")
        );
        assert_eq!(decode_comment_udata(b"\x00\x09abc"), None);
        assert_eq!(decode_comment_udata(b"\x00"), None);
        assert_eq!(decode_comment_udata(b""), None);
    }

    /// Serialize a rule as it goes on the wire, parse it back with the crate, decode.
    fn wire_round_trip(rule: &Masquerade) -> Option<Masquerade> {
        let mut steps = nat_table_steps("t", "m", std::slice::from_ref(rule));
        let mut msgs: Vec<NlMsg> = steps.drain(2..).map(|s| s.msg).collect();
        let (buf, _) = serialize_messages(&mut msgs, 7);
        let parsed = parse_message(&buf).expect("own message parses");
        let NetlinkPayload::InnerMessage(NetfilterMessage {
            inner: NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(r)),
            ..
        }) = parsed.payload
        else {
            panic!("not a NewRule: {parsed:?}");
        };
        decode_rule_attributes(&r.attributes)
    }

    #[test]
    fn rules_decode_back_to_what_was_encoded() {
        let outs = [
            OutMatch::Any,
            OutMatch::Out("eth0".into()),
            OutMatch::NotOut("bri0".into()),
            OutMatch::NotOut("a-fifteen-bytes".into()),
        ];
        for plen in 0..=32u8 {
            let source = Ipv4Net::new(Ipv4Addr::new(203, 0, 113, 77), plen)
                .expect("valid")
                .trunc();
            for out in &outs {
                let rule = Masquerade {
                    source,
                    out: out.clone(),
                };
                assert_eq!(wire_round_trip(&rule).as_ref(), Some(&rule), "{rule}");
            }
        }
    }

    /// The bytes nft 1.0.6 sends for `ip saddr 192.168.0.0/16 oifname != "bri0"
    /// masquerade` (from `nft --debug=netlink`): a 2-byte load, no bitwise, the name
    /// padded to 16 bytes, then a bare masq.
    #[test]
    fn encoding_matches_nft() {
        let exprs: Vec<Expr> = masquerade_expressions(&tutorial_rule())
            .iter()
            .map(simplify)
            .collect();
        let mut bri0 = b"bri0".to_vec();
        bri0.resize(16, 0);
        assert_eq!(
            exprs,
            vec![
                Expr::Payload {
                    dreg: 1,
                    base: 1,
                    offset: 12,
                    len: 2
                },
                Expr::Cmp {
                    sreg: 1,
                    op: Operator::Equal,
                    data: vec![192, 168]
                },
                Expr::Meta {
                    dreg: 1,
                    key: MetaKey::Oifname
                },
                Expr::Cmp {
                    sreg: 1,
                    op: Operator::NotEqual,
                    data: bri0
                },
                Expr::Masq { plain: true },
            ]
        );
        // `ip saddr 10.1.2.0/23`: 4-byte load, mask 255.255.254.0, xor 0.
        let exprs: Vec<Expr> = masquerade_expressions(&masq("10.1.2.0/23", OutMatch::Any))
            .iter()
            .map(simplify)
            .collect();
        assert_eq!(
            exprs,
            vec![
                Expr::Payload {
                    dreg: 1,
                    base: 1,
                    offset: 12,
                    len: 4
                },
                Expr::Bitwise {
                    sreg: 1,
                    dreg: 1,
                    len: 4,
                    mask: vec![255, 255, 254, 0],
                    xor: vec![0; 4],
                    plain: true
                },
                Expr::Cmp {
                    sreg: 1,
                    op: Operator::Equal,
                    data: vec![10, 1, 2, 0]
                },
                Expr::Masq { plain: true },
            ]
        );
    }

    #[test]
    fn nft_spellings_decode_too() {
        // nft writes `ip saddr 0.0.0.0/0` as a load with a zero mask.
        let any = [
            Expr::Payload {
                dreg: 1,
                base: 1,
                offset: 12,
                len: 4,
            },
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                len: 4,
                mask: vec![0; 4],
                xor: vec![0; 4],
                plain: true,
            },
            Expr::Cmp {
                sreg: 1,
                op: Operator::Equal,
                data: vec![0; 4],
            },
            Expr::Masq { plain: true },
        ];
        assert_eq!(
            decode_masquerade(&any),
            Some(masq("0.0.0.0/0", OutMatch::Any))
        );
        // A name compared with its NUL only (no padding) is still exact.
        let exact = [
            Expr::Meta {
                dreg: 8,
                key: MetaKey::Oifname,
            },
            Expr::Cmp {
                sreg: 8,
                op: Operator::Equal,
                data: b"eth0\0".to_vec(),
            },
            Expr::Masq { plain: true },
        ];
        assert_eq!(
            decode_masquerade(&exact),
            Some(masq("0.0.0.0/0", OutMatch::Out("eth0".into())))
        );
    }

    #[test]
    fn other_shapes_are_not_masquerades() {
        let wildcard = [
            Expr::Meta {
                dreg: 1,
                key: MetaKey::Oifname,
            },
            Expr::Cmp {
                sreg: 1,
                op: Operator::Equal,
                data: b"br".to_vec(),
            },
            Expr::Masq { plain: true },
        ];
        let host_bits = [
            Expr::Payload {
                dreg: 1,
                base: 1,
                offset: 12,
                len: 4,
            },
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                len: 4,
                mask: vec![255, 255, 0, 0],
                xor: vec![0; 4],
                plain: true,
            },
            Expr::Cmp {
                sreg: 1,
                op: Operator::Equal,
                data: vec![10, 0, 0, 1],
            },
            Expr::Masq { plain: true },
        ];
        let holes = [
            Expr::Payload {
                dreg: 1,
                base: 1,
                offset: 12,
                len: 4,
            },
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                len: 4,
                mask: vec![255, 0, 255, 0],
                xor: vec![0; 4],
                plain: true,
            },
            Expr::Cmp {
                sreg: 1,
                op: Operator::Equal,
                data: vec![10, 0, 0, 0],
            },
            Expr::Masq { plain: true },
        ];
        let daddr = [
            Expr::Payload {
                dreg: 1,
                base: 1,
                offset: 16,
                len: 4,
            },
            Expr::Cmp {
                sreg: 1,
                op: Operator::Equal,
                data: vec![10, 0, 0, 0],
            },
            Expr::Masq { plain: true },
        ];
        let counter = [Expr::Other, Expr::Masq { plain: true }];
        let no_masq = [
            Expr::Meta {
                dreg: 1,
                key: MetaKey::Oifname,
            },
            Expr::Cmp {
                sreg: 1,
                op: Operator::Equal,
                data: b"eth0\0".to_vec(),
            },
        ];
        let masq_with_options = [Expr::Masq { plain: false }];
        let wrong_reg = [
            Expr::Meta {
                dreg: 1,
                key: MetaKey::Oifname,
            },
            Expr::Cmp {
                sreg: 2,
                op: Operator::Equal,
                data: b"eth0\0".to_vec(),
            },
            Expr::Masq { plain: true },
        ];
        for (what, e) in [
            ("wildcard", &wildcard[..]),
            ("host bits", &host_bits[..]),
            ("non-contiguous mask", &holes[..]),
            ("daddr", &daddr[..]),
            ("counter", &counter[..]),
            ("no masq", &no_masq[..]),
            ("masq options", &masq_with_options[..]),
            ("register mismatch", &wrong_reg[..]),
            ("empty", &[][..]),
        ] {
            assert_eq!(decode_masquerade(e), None, "{what}");
        }
    }

    #[test]
    fn batch_is_framed_and_numbered() {
        let mut msgs = vec![batch_begin(Some(0x01020304))];
        msgs.extend(
            nat_table_steps("t", "m", &[tutorial_rule()])
                .into_iter()
                .map(|s| s.msg),
        );
        msgs.push(batch_end());
        let (buf, seqs) = serialize_messages(&mut msgs, u32::MAX - 1);
        assert_eq!(seqs, vec![u32::MAX - 1, u32::MAX, 0, 1, 2]);
        let parts = split_messages(&buf).expect("splits");
        assert_eq!(parts.len(), 5);
        // BatchBegin: type NFNL_MSG_BATCH_BEGIN in subsystem 0, res_id 10 (big
        // endian) and the generation id attribute (type 1, big endian).
        let begin = parts[0];
        assert_eq!(u16::from_ne_bytes([begin[4], begin[5]]), 16);
        assert_eq!(u16::from_ne_bytes([begin[6], begin[7]]), NLM_F_REQUEST);
        assert_eq!(&begin[16..20], &[0, 0, 0, 10]);
        assert_eq!(&begin[20..28], &[8, 0, 1, 0, 1, 2, 3, 4]);
        // Table, chain and rule messages: NFNL_SUBSYS_NFTABLES << 8 | type, IPv4.
        let types: Vec<u16> = parts
            .iter()
            .map(|p| u16::from_ne_bytes([p[4], p[5]]))
            .collect();
        assert_eq!(types, vec![16, 0x0a00, 0x0a03, 0x0a06, 17]);
        for p in &parts[1..4] {
            assert_eq!(p[16], 2, "family ip");
            let flags = u16::from_ne_bytes([p[6], p[7]]);
            assert_ne!(flags & NLM_F_ACK, 0);
        }
        let table_flags = u16::from_ne_bytes([parts[1][6], parts[1][7]]);
        assert_eq!(
            table_flags,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        // The chain's priority travels as the s32's bits.
        let chain = parse_message(parts[2]).expect("chain parses");
        let NetlinkPayload::InnerMessage(NetfilterMessage {
            header,
            inner: NetfilterMessageInner::NfTables(NfTablesMessage::NewChain(c)),
            ..
        }) = chain.payload
        else {
            panic!("not a chain");
        };
        let (_, _, base) = chain_info(&header, &c).expect("chain info");
        let base = base.expect("base chain");
        assert!(is_our_nat_chain(&base), "{base:?}");
    }

    #[test]
    fn negative_priorities_survive() {
        let c = ChainMessage {
            attributes: vec![
                ChainAttribute::Table("f".into()),
                ChainAttribute::Name("fw".into()),
                ChainAttribute::Hook(vec![
                    NlHook::Number(HookNumber::Inet(InetHookNumber::Forward)),
                    NlHook::Priority(-150i32 as u32),
                ]),
                ChainAttribute::Policy(NF_DROP),
                ChainAttribute::Type("filter".into()),
            ],
        };
        let h = NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0);
        let (_, _, base) = chain_info(&h, &c).expect("info");
        let base = base.expect("base");
        assert_eq!(base.priority, -150);
        assert!(base.policy_drop);
        assert_eq!(base.hook, Hook::Forward);
        assert_eq!(
            base.to_string(),
            "table inet f chain fw { type filter hook forward priority -150; policy drop; }"
        );
    }

    #[test]
    fn error_replies_give_errno_and_ext_ack_text() {
        // NLMSG_ERROR, flags CAPPED|ACK_TLVS, seq 42: code -17, the request's header,
        // then NLMSGERR_ATTR_MSG "Table exists".
        let text = b"Table exists\0";
        let tlv_len = 4 + text.len();
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-17i32).to_ne_bytes());
        let mut orig = [0u8; 16];
        orig[..4].copy_from_slice(&200u32.to_ne_bytes());
        payload.extend_from_slice(&orig);
        payload.extend_from_slice(&(tlv_len as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        while payload.len() % 4 != 0 {
            payload.push(0);
        }
        let mut msg = Vec::new();
        msg.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&2u16.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_CAPPED | NLM_F_ACK_TLVS).to_ne_bytes());
        msg.extend_from_slice(&42u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&payload);
        let parsed: NetlinkMessage<NetfilterMessage> = parse_message(&msg).expect("parses");
        let NetlinkPayload::Error(e) = &parsed.payload else {
            panic!("not an error");
        };
        assert_eq!(e.code.map(|c| c.get()), Some(-17));
        assert_eq!(
            ext_ack_message(parsed.header.flags, &e.header).as_deref(),
            Some("Table exists")
        );
        // Without CAPPED the TLVs follow the whole original request (here 200 bytes,
        // absent): no text rather than a bad read.
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS, &e.header), None);
        assert_eq!(ext_ack_message(0, &e.header), None);
        let err = NftError::Kernel {
            op: "create".into(),
            errno: 17,
            msg: Some("Table exists".into()),
        };
        assert_eq!(
            err.to_string(),
            "create: File exists (os error 17): Table exists"
        );
        assert_eq!(err.errno(), Some(libc::EEXIST));
    }

    #[test]
    fn garbage_replies_are_errors_not_panics() {
        let inputs: [&[u8]; 5] = [
            &[],
            &[1, 2, 3],
            &[8, 0, 0, 0, 0, 0, 0, 0],
            &[40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9],
        ];
        for input in inputs {
            let _ = split_messages(input);
        }
        // A rule whose bitwise mask attribute is shorter than an attribute header.
        let mut m = Vec::new();
        let rule_payload: Vec<u8> = {
            let mut p = vec![2, 0, 0, 0]; // nfgenmsg: ip, v0, res 0
            // NFTA_RULE_EXPRESSIONS > elem > name "bitwise", data > mask of 2 bytes
            let mask = [6u8, 0, 4, 0x80, 0xff, 0xff, 0, 0];
            let mut data = vec![(4 + mask.len()) as u8, 0, 2, 0x80];
            data.extend_from_slice(&mask);
            let mut elem = vec![12, 0, 1, 0];
            elem.extend_from_slice(b"bitwise\0");
            elem.extend_from_slice(&data);
            let mut list = vec![(4 + elem.len()) as u8, 0, 1, 0x80];
            list.extend_from_slice(&elem);
            p.extend_from_slice(&[(4 + list.len()) as u8, 0, 4, 0x80]);
            p.extend_from_slice(&list);
            p
        };
        m.extend_from_slice(&((16 + rule_payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&0x0a06u16.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&rule_payload);
        assert!(parse_message(&m).is_err());
        assert!(ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &[1, 2]).is_none());
        assert!(find_msg_tlv(&[255, 255, 1, 0]).is_none());
    }

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

    /// A trace event as the kernel sends it (nf_tables_trace.c): nlmsghdr,
    /// nfgenmsg, then big-endian attributes; the verdict nested.
    #[test]
    fn trace_events_decode() {
        fn nla(ty: u16, v: &[u8]) -> Vec<u8> {
            let mut b = Vec::new();
            b.extend(((4 + v.len()) as u16).to_ne_bytes());
            b.extend(ty.to_ne_bytes());
            b.extend(v);
            while b.len() % 4 != 0 {
                b.push(0);
            }
            b
        }
        let mut attrs = Vec::new();
        attrs.extend(nla(1, b"fw\0"));
        attrs.extend(nla(2, b"forward\0"));
        attrs.extend(nla(3, &7u64.to_be_bytes()));
        attrs.extend(nla(4, &3u32.to_be_bytes()));
        attrs.extend(nla(0x8000 | 5, &nla(1, &0u32.to_be_bytes())));
        attrs.extend(nla(6, &0xabcdu32.to_be_bytes()));
        attrs.extend(nla(9, &[8, 0, 0, 0, 0x12, 0x34, 0, 1]));
        let mut m = Vec::new();
        m.extend(((16 + 4 + attrs.len()) as u32).to_ne_bytes());
        m.extend(((NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_TRACE)).to_ne_bytes());
        m.extend(0u16.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend([2u8, 0, 0, 0]);
        m.extend(attrs);
        let ev = parse_trace_events(&m);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let e = &ev[0];
        assert_eq!(
            (e.family.as_str(), e.table.as_str(), e.chain.as_str()),
            ("ip", "fw", "forward")
        );
        assert_eq!(
            (e.kind, e.handle, e.verdict, e.id),
            (3, Some(7), Some(0), 0xabcd)
        );
        assert!(e.is_drop());
        assert_eq!(e.echo_ident(), Some(0x1234));
        // Garbage is skipped, never a panic.
        assert!(parse_trace_events(&m[..30]).is_empty());
        assert!(parse_trace_events(&[0xff; 64]).is_empty());
    }

    #[test]
    fn mask_prefix_lengths() {
        assert_eq!(mask_prefix_len([0, 0, 0, 0]), Some(0));
        assert_eq!(mask_prefix_len([255, 255, 255, 255]), Some(32));
        assert_eq!(mask_prefix_len([255, 254, 0, 0]), Some(15));
        assert_eq!(mask_prefix_len([255, 0, 255, 0]), None);
        assert_eq!(mask_prefix_len([0, 0, 0, 1]), None);
    }
}
