//! Decoding of kernel replies (pure): splitting datagrams, extended-ack text,
//! tables, chains, and rules read back as masquerades.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions,
    Hook as NlHook, ListAttribute, Meta, MetaKey, NfTablesMessage, Operator, Payload,
    RuleAttribute, TableAttribute, TableMessage,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner};

use super::wire::NlMsg;
use super::{
    BaseChainInfo, Family, Hook, IFNAMSIZ, IPV4_SADDR_OFFSET, IPV6_SADDR_OFFSET, Masquerade,
    NAT_CHAIN, NF_DROP, NFPROTO_IPV4, NFPROTO_IPV6, NFT_BITWISE_MASK_XOR,
    NFT_PAYLOAD_NETWORK_HEADER, OutMatch, SRCNAT_PRIORITY, TableInfo, UDATA_TABLE_COMMENT,
};
use crate::kernel::nlsock;

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

/// Split a datagram into its netlink messages (the shared splitter, strict: a
/// malformed length is an error).
pub(super) fn split_messages(buf: &[u8]) -> Result<Vec<&[u8]>, String> {
    nlsock::split(buf).map(|m| m.map(|m| m.bytes)).collect()
}

/// Parse one message with the crate. Its attribute parsers index nested buffers
/// without checking them in a few places (a bitwise mask shorter than an attribute
/// header panics in netlink-packet-core 0.9); a malformed reply must become an error,
/// not a panic of the caller. The panic hook still prints its message.
pub(super) fn parse_message(bytes: &[u8]) -> Result<NlMsg, String> {
    match std::panic::catch_unwind(|| NlMsg::deserialize(bytes)) {
        Ok(Ok(msg)) => Ok(msg),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the message could not be decoded".to_string()),
    }
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
                let _ = nlsock::ext_ack_text(msg.header.flags, &err.header);
            }
            NetlinkPayload::Done(done) => {
                let _ = nlsock::msg_tlv_text(&done.extended_ack);
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
fn mask_prefix_len<const N: usize>(mask: [u8; N]) -> Option<u8> {
    let m = u128::from_be_bytes({
        let mut b = [0u8; 16];
        b[..N].copy_from_slice(&mask);
        b
    });
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0 && len as usize <= N * 8).then_some(len as u8)
}

/// Read back a rule written by this module, or by `nft` from the same text. `None`
/// for anything else (other matches, statements, counters, wildcards, ...).
fn decode_masquerade(exprs: &[Expr]) -> Option<Masquerade> {
    // The family match every rule of an inet table starts with (see wire).
    let [
        Expr::Meta {
            dreg,
            key: MetaKey::Nfproto,
        },
        Expr::Cmp {
            sreg,
            op: Operator::Equal,
            data,
        },
        rest @ ..,
    ] = exprs
    else {
        return None;
    };
    if sreg != dreg {
        return None;
    }
    let (source, rest) = match data.as_slice() {
        [NFPROTO_IPV4] => decode_source_match::<4>(rest, IPV4_SADDR_OFFSET)?,
        [NFPROTO_IPV6] => decode_source_match::<16>(rest, IPV6_SADDR_OFFSET)?,
        _ => return None,
    };
    let (out, rest) = decode_out_match(rest)?;
    match rest {
        [Expr::Masq { plain: true }] => Some(Masquerade { source, out }),
        _ => None,
    }
}

/// The source prefix match of an address of N bytes at `offset` (the family's
/// whole space when there is none), and the expressions after it. `None`: a
/// source match of another shape.
fn decode_source_match<const N: usize>(exprs: &[Expr], offset: u32) -> Option<(IpNet, &[Expr])> {
    let whole = |a: [u8; N], plen: u8| -> Option<IpNet> {
        match N {
            4 => Ipv4Net::new(Ipv4Addr::from(<[u8; 4]>::try_from(&a[..]).ok()?), plen)
                .ok()
                .map(IpNet::V4),
            _ => Ipv6Net::new(Ipv6Addr::from(<[u8; 16]>::try_from(&a[..]).ok()?), plen)
                .ok()
                .map(IpNet::V6),
        }
    };
    let [
        Expr::Payload {
            dreg,
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset: o,
            len,
        },
        tail @ ..,
    ] = exprs
    else {
        return Some((whole([0; N], 0)?, exprs));
    };
    if *o != offset {
        return None;
    }
    let len = *len as usize;
    if !(1..=N).contains(&len) {
        return None;
    }
    // Without a bitwise, the loaded bytes are compared whole.
    let mut mask = [0u8; N];
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
        mask = [0; N];
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
    let mut addr = [0u8; N];
    addr[..len].copy_from_slice(data);
    let plen = mask_prefix_len(mask)?;
    let net = whole(addr, plen)?;
    // A compare against host bits never matches: not a prefix match.
    if net != net.trunc() {
        return None;
    }
    Some((net, t))
}

/// The output interface match (any when there is none), and the expressions
/// after it. `None`: an interface match of another shape (a wildcard...).
fn decode_out_match(exprs: &[Expr]) -> Option<(OutMatch, &[Expr])> {
    let [
        Expr::Meta {
            dreg,
            key: MetaKey::Oifname,
        },
        Expr::Cmp { sreg, op, data },
        tail @ ..,
    ] = exprs
    else {
        return Some((OutMatch::Any, exprs));
    };
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
    let out = match op {
        Operator::Equal => OutMatch::Out(name),
        Operator::NotEqual => OutMatch::NotOut(name),
        _ => return None,
    };
    Some((out, tail))
}

pub(super) fn decode_rule_attributes(attrs: &[RuleAttribute]) -> Option<Masquerade> {
    let exprs = attrs.iter().find_map(|a| match a {
        RuleAttribute::Expressions(e) => Some(e),
        _ => None,
    })?;
    let simple: Vec<Expr> = exprs.iter().map(simplify).collect();
    decode_masquerade(&simple)
}

pub(super) fn table_info(header: &NetfilterHeader, msg: &TableMessage) -> Option<TableInfo> {
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
pub(super) fn chain_info(
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

pub(super) fn is_our_nat_chain(c: &BaseChainInfo) -> bool {
    c.family == Family::Inet
        && c.name == NAT_CHAIN
        && c.hook == Hook::Postrouting
        && c.priority == SRCNAT_PRIORITY
        && !c.policy_drop
        && c.chain_type == "nat"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::nft::NftError;
    use crate::kernel::nft::tests::{masq, tutorial_rule};
    use crate::kernel::nft::wire::{
        encode_comment_udata, masquerade_expressions, nat_table_steps, serialize_messages,
    };
    use crate::kernel::nlsock::{NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSGERR_ATTR_MSG};
    use netlink_packet_core::NetlinkMessage;
    use netlink_packet_netfilter::NetfilterProtoFamily;
    use netlink_packet_netfilter::nftables::{HookNumber, InetHookNumber};

    /// The family match every rule of the inet table starts with, then `e`.
    fn v4(e: &[Expr]) -> Vec<Expr> {
        let mut v = vec![
            Expr::Meta {
                dreg: 1,
                key: MetaKey::Nfproto,
            },
            Expr::Cmp {
                sreg: 1,
                op: Operator::Equal,
                data: vec![NFPROTO_IPV4],
            },
        ];
        v.extend_from_slice(e);
        v
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
            let source = IpNet::V4(
                Ipv4Net::new(Ipv4Addr::new(203, 0, 113, 77), plen)
                    .expect("valid")
                    .trunc(),
            );
            for out in &outs {
                let rule = Masquerade {
                    source,
                    out: out.clone(),
                };
                assert_eq!(wire_round_trip(&rule).as_ref(), Some(&rule), "{rule}");
            }
        }
    }

    #[test]
    fn ipv6_rules_decode_back_and_ipv4_does_not_pass_for_ipv6() {
        for plen in [0u8, 7, 48, 60, 64, 127, 128] {
            let source = IpNet::V6(
                Ipv6Net::new("2001:db8:ffff:1234::77".parse().unwrap(), plen)
                    .unwrap()
                    .trunc(),
            );
            let rule = Masquerade {
                source,
                out: OutMatch::NotOut("br0".into()),
            };
            assert_eq!(wire_round_trip(&rule).as_ref(), Some(&rule), "{rule}");
        }
        // `ip6 saddr fd00::/16`: family ipv6, a 2-byte load at offset 8.
        let exprs: Vec<Expr> = masquerade_expressions(&masq("fd00::/16", OutMatch::Any))
            .iter()
            .map(simplify)
            .collect();
        assert_eq!(
            exprs[..4],
            [
                Expr::Meta {
                    dreg: 1,
                    key: MetaKey::Nfproto
                },
                Expr::Cmp {
                    sreg: 1,
                    op: Operator::Equal,
                    data: vec![NFPROTO_IPV6]
                },
                Expr::Payload {
                    dreg: 1,
                    base: 1,
                    offset: 8,
                    len: 2
                },
                Expr::Cmp {
                    sreg: 1,
                    op: Operator::Equal,
                    data: vec![0xfd, 0]
                },
            ]
        );
        // A rule without the family match (an `ip` table's) is not the inet shape.
        assert_eq!(decode_masquerade(&exprs[2..]), None);
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
            v4(&[
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
            ])
        );
        // `ip saddr 10.1.2.0/23`: 4-byte load, mask 255.255.254.0, xor 0.
        let exprs: Vec<Expr> = masquerade_expressions(&masq("10.1.2.0/23", OutMatch::Any))
            .iter()
            .map(simplify)
            .collect();
        assert_eq!(
            exprs,
            v4(&[
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
            ])
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
            decode_masquerade(&v4(&any)),
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
            decode_masquerade(&v4(&exact)),
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
            assert_eq!(decode_masquerade(&v4(e)), None, "{what}");
        }
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
            nlsock::ext_ack_text(parsed.header.flags, &e.header).as_deref(),
            Some("Table exists")
        );
        // Without CAPPED the TLVs follow the whole original request (here 200 bytes,
        // absent): no text rather than a bad read.
        assert_eq!(nlsock::ext_ack_text(NLM_F_ACK_TLVS, &e.header), None);
        assert_eq!(nlsock::ext_ack_text(0, &e.header), None);
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
        assert!(nlsock::ext_ack_text(NLM_F_ACK_TLVS | NLM_F_CAPPED, &[1, 2]).is_none());
        assert!(nlsock::msg_tlv_text(&[255, 255, 1, 0]).is_none());
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
