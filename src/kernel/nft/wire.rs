//! Message building (pure): the nfnetlink messages that create and delete the
//! NAT table, and batch framing with sequence numbers.

use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage,
};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions,
    Hook as NlHook, HookNumber, InetHookNumber, ListAttribute, Meta, MetaKey, NfTablesMessage,
    Operator, Payload, Register, RuleAttribute, RuleMessage, TableAttribute, TableFlags,
    TableMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use ipnet::IpNet;

use super::{
    Family, IFNAMSIZ, IPV4_SADDR_OFFSET, IPV6_SADDR_OFFSET, Masquerade, NAT_CHAIN, NAT_FAMILY,
    NF_ACCEPT, NFNL_BATCH_GENID, NFNL_MSG_BATCH_BEGIN, NFNL_SUBSYS_NFTABLES, NFPROTO_IPV4,
    NFPROTO_IPV6, NFT_PAYLOAD_NETWORK_HEADER, OutMatch, SRCNAT_PRIORITY, UDATA_TABLE_COMMENT,
};

pub(super) type NlMsg = NetlinkMessage<NetfilterMessage>;

/// One message of a batch, with what to call it in errors.
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub(super) label: String,
    pub(super) msg: NlMsg,
    pub(super) kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StepKind {
    /// EEXIST on it means the table exists: [`NftError::Exists`](super::NftError::Exists).
    NewTable {
        name: String,
    },
    Other,
}

pub(super) fn nf_message(
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
pub(super) fn encode_comment_udata(comment: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(comment.len() + 3);
    v.push(UDATA_TABLE_COMMENT);
    // validate_mark keeps this below 256.
    v.push(u8::try_from(comment.len() + 1).unwrap_or(u8::MAX));
    v.extend_from_slice(comment.as_bytes());
    v.push(0);
    v
}

pub(super) fn expr(e: Expressions) -> ListAttribute<ExpressionAttribute> {
    e.into()
}

/// Expressions of one rule, as nft 1.0 encodes the same rule text: a byte-aligned
/// prefix loads only its bytes; another needs a 4-byte load and a mask.
pub(super) fn masquerade_expressions(rule: &Masquerade) -> Vec<ListAttribute<ExpressionAttribute>> {
    let mut exprs = Vec::new();
    // An inet table sees both families: first the family, as nft does for
    // `ip saddr` / `ip6 saddr` there (`meta nfproto ipv4`).
    let (nfproto, offset, addr, netmask) = match rule.source {
        IpNet::V4(s) => (
            NFPROTO_IPV4,
            IPV4_SADDR_OFFSET,
            s.network().octets().to_vec(),
            s.netmask().octets().to_vec(),
        ),
        IpNet::V6(s) => (
            NFPROTO_IPV6,
            IPV6_SADDR_OFFSET,
            s.network().octets().to_vec(),
            s.netmask().octets().to_vec(),
        ),
    };
    exprs.push(expr(Expressions::Meta(vec![
        Meta::DestinationRegister(Register::Reg1),
        Meta::Key(MetaKey::Nfproto),
    ])));
    exprs.push(expr(Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(Operator::Equal),
        Cmp::Data(DataAttribute::Value(vec![nfproto])),
    ])));
    let plen = u32::from(rule.source.prefix_len());
    let full = addr.len() as u32;
    if plen > 0 {
        let aligned = plen % 8 == 0;
        // nft loads only the bytes of a byte-aligned prefix, else up to the byte
        // that holds its last bit, and masks.
        let load_len = plen.div_ceil(8);
        let load_len = if aligned || full == 16 { load_len } else { 4 };
        exprs.push(expr(Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(NFT_PAYLOAD_NETWORK_HEADER),
            Payload::Offset(offset),
            Payload::Len(load_len),
        ])));
        if !aligned {
            exprs.push(expr(Expressions::Bitwise(vec![
                Bitwise::SourceRegister(Register::Reg1),
                Bitwise::DestinationRegister(Register::Reg1),
                Bitwise::Length(load_len),
                Bitwise::Mask(DataAttribute::Value(netmask[..load_len as usize].to_vec())),
                Bitwise::Xor(DataAttribute::Value(vec![0; load_len as usize])),
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
pub(super) fn nat_table_steps(name: &str, mark: &str, rules: &[Masquerade]) -> Vec<Step> {
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    let ipv4 = NAT_FAMILY;
    let mut steps = vec![
        new_table_step(ipv4, name, mark),
        base_chain_step(
            ipv4,
            name,
            NAT_CHAIN,
            InetHookNumber::PostRouting,
            SRCNAT_PRIORITY,
            "nat",
        ),
    ];
    for (i, rule) in rules.iter().enumerate() {
        steps.push(Step {
            label: format!("add rule {} to inet {name} {NAT_CHAIN}: {rule}", i + 1),
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

pub(super) fn delete_table_step(name: &str) -> Step {
    delete_family_table_step(NAT_FAMILY, name)
}

/// `delete table FAMILY NAME`.
pub(super) fn delete_family_table_step(family: NetfilterProtoFamily, name: &str) -> Step {
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

/// `add table FAMILY NAME { comment MARK }`, EXCL: without it an existing table
/// is silently reused, keeping its old comment and gaining duplicate rules.
pub(super) fn new_table_step(family: NetfilterProtoFamily, name: &str, mark: &str) -> Step {
    Step {
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
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ),
        kind: StepKind::NewTable {
            name: name.to_string(),
        },
    }
}

/// A base chain with policy accept.
pub(super) fn base_chain_step(
    family: NetfilterProtoFamily,
    table: &str,
    chain: &str,
    hook: InetHookNumber,
    priority: i32,
    chain_type: &str,
) -> Step {
    Step {
        label: format!("create chain {} {table} {chain}", Family::from(family)),
        msg: nf_message(
            family,
            0,
            NfTablesMessage::NewChain(ChainMessage {
                attributes: vec![
                    ChainAttribute::Table(table.to_string()),
                    ChainAttribute::Name(chain.to_string()),
                    ChainAttribute::Hook(vec![
                        NlHook::Number(HookNumber::Inet(hook)),
                        // The attribute is a u32 carrying an s32.
                        NlHook::Priority(priority as u32),
                    ]),
                    ChainAttribute::Type(chain_type.to_string()),
                    ChainAttribute::Policy(NF_ACCEPT),
                ],
            }),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        ),
        kind: StepKind::Other,
    }
}

/// BatchBegin, optionally carrying the generation id the batch was computed against:
/// the kernel then refuses the whole batch with ERESTART if the ruleset changed since.
/// The crate has no variant for that attribute, hence `Other` with the begin type.
pub(super) fn batch_begin(genid: Option<u32>) -> NlMsg {
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

pub(super) fn batch_end() -> NlMsg {
    nf_message(
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        ControlMessage::BatchEnd,
        NLM_F_REQUEST,
    )
}

/// Give each message its own sequence number, from `first_seq`, and serialize them
/// into one buffer. Returns the buffer and the sequence numbers in order.
pub(super) fn serialize_messages(msgs: &mut [NlMsg], first_seq: u32) -> (Vec<u8>, Vec<u32>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::nft::decode::{chain_info, is_our_nat_chain, parse_message, split_messages};
    use crate::kernel::nft::tests::tutorial_rule;
    use netlink_packet_core::NetlinkPayload;

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
        // Table, chain and rule messages: NFNL_SUBSYS_NFTABLES << 8 | type, inet.
        let types: Vec<u16> = parts
            .iter()
            .map(|p| u16::from_ne_bytes([p[4], p[5]]))
            .collect();
        assert_eq!(types, vec![16, 0x0a00, 0x0a03, 0x0a06, 17]);
        for p in &parts[1..4] {
            assert_eq!(p[16], 1, "family inet");
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
}
