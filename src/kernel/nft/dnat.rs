//! Port publishing (DNAT): `table inet nslab-LAB-pub`, marked like the NAT
//! table, apart from it, with three base chains (what each is for:
//! `crate::model::publish`). Rules are encoded as `nft` 1.x encodes the same
//! text (`nft --debug=netlink`), e.g. for
//! `fib daddr type local tcp dport 8080 dnat ip to 192.168.1.1:800`:
//! ```text
//! [ fib daddr type => reg 1 ]  [ cmp eq reg 1 0x00000002 ]
//! [ meta load l4proto => reg 1 ]  [ cmp eq reg 1 0x00000006 ]
//! [ payload load 2b @ transport header + 2 => reg 1 ]  [ cmp eq reg 1 0x0000901f ]
//! [ immediate reg 1 0x0101a8c0 ]  [ immediate reg 2 0x00002003 ]
//! [ nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2 ]
//! ```

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{DefaultNla, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use netlink_packet_netfilter::NetfilterProtoFamily;
use netlink_packet_netfilter::nftables::{
    Bitwise, Cmp, DataAttribute, ExpressionAttribute, Expressions, Immediate, InetHookNumber,
    ListAttribute, Meta, MetaKey, NfTablesMessage, Operator, Payload, Register, RuleAttribute,
    RuleMessage,
};

use super::socket::NftSocket;
use super::wire::{Step, StepKind, base_chain_step, expr, new_table_step, nf_message};
use super::{
    IFNAMSIZ, NFT_PAYLOAD_NETWORK_HEADER, NftError, SRCNAT_PRIORITY, validate_ifname,
    validate_mark, validate_table_name,
};
use crate::model::publish::{Hairpin, OUTPUT, POSTROUTING, PREROUTING, Publish};

type Expr = ListAttribute<ExpressionAttribute>;

/// `priority dstnat` (NF_IP_PRI_NAT_DST); also nft's priority for NAT on output.
pub const DSTNAT_PRIORITY: i32 = -100;
// include/uapi/linux/netfilter/nf_tables.h
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFTA_FIB_F_DADDR: u32 = 1 << 1;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const RTN_LOCAL: u32 = 2;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFT_CT_STATUS: u32 = 2;
const IPS_DST_NAT: u32 = 1 << 5;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFTA_NAT_FLAGS: u16 = 7;
const NFT_NAT_DNAT: u32 = 1;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;

pub(super) fn be(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

pub(super) fn cmp(op: Operator, data: Vec<u8>) -> Expr {
    expr(Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(op),
        Cmp::Data(DataAttribute::Value(data)),
    ]))
}

pub(super) fn meta(key: MetaKey) -> Expr {
    expr(Expressions::Meta(vec![
        // In nft's order (key, then register), so the bytes are nft's.
        Meta::Key(key),
        Meta::DestinationRegister(Register::Reg1),
    ]))
}

pub(super) fn payload(base: u32, offset: u32, len: u32) -> Expr {
    expr(Expressions::Payload(vec![
        Payload::DestinationRegister(Register::Reg1),
        Payload::Base(base),
        Payload::Offset(offset),
        Payload::Len(len),
    ]))
}

pub(super) fn nfproto(v4: bool) -> Vec<Expr> {
    vec![
        meta(MetaKey::Nfproto),
        cmp(
            Operator::Equal,
            vec![if v4 { NFPROTO_IPV4 } else { NFPROTO_IPV6 }],
        ),
    ]
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `[ip|ip6] saddr|daddr NET` (with `op`), as nft loads a prefix: only its
/// bytes when byte-aligned, else the whole address and a mask.
pub(super) fn prefix_match(net: IpNet, saddr: bool, op: Operator) -> Vec<Expr> {
    let (off, alen) = match (net, saddr) {
        (IpNet::V4(_), true) => (12, 4),
        (IpNet::V4(_), false) => (16, 4),
        (IpNet::V6(_), true) => (8, 16),
        (IpNet::V6(_), false) => (24, 16),
    };
    let plen = u32::from(net.prefix_len());
    let aligned = plen % 8 == 0;
    let len = if aligned { plen / 8 } else { alen };
    let mut out = vec![payload(NFT_PAYLOAD_NETWORK_HEADER, off, len)];
    if !aligned {
        out.push(expr(Expressions::Bitwise(vec![
            Bitwise::SourceRegister(Register::Reg1),
            Bitwise::DestinationRegister(Register::Reg1),
            Bitwise::Length(alen),
            Bitwise::Mask(DataAttribute::Value(ip_bytes(net.netmask()))),
            Bitwise::Xor(DataAttribute::Value(vec![0; alen as usize])),
        ])));
    }
    out.push(cmp(op, ip_bytes(net.network())[..len as usize].to_vec()));
    out
}

/// The expressions of one DNAT rule of `chain` (the output chain leaves
/// loopback alone: DNAT of 127.0.0.1 would need route_localnet).
pub(super) fn dnat_expressions(p: &Publish, chain: &str) -> Vec<Expr> {
    let v4 = p.addr.is_ipv4();
    let mut e = Vec::new();
    if chain == OUTPUT {
        e.extend(nfproto(v4));
        let lo: IpNet = if v4 {
            "127.0.0.0/8".parse().expect("a prefix")
        } else {
            "::1/128".parse().expect("a prefix")
        };
        e.extend(prefix_match(lo, false, Operator::NotEqual));
    }
    e.push(expr(Expressions::Other {
        expression_type: "fib".into(),
        attributes: vec![
            DefaultNla::new(NFTA_FIB_FLAGS, be(NFTA_FIB_F_DADDR)),
            DefaultNla::new(NFTA_FIB_RESULT, be(NFT_FIB_RESULT_ADDRTYPE)),
            DefaultNla::new(NFTA_FIB_DREG, be(NFT_REG_1)),
        ],
    }));
    // The fib result is a host-order u32 in the register.
    e.push(cmp(Operator::Equal, RTN_LOCAL.to_ne_bytes().to_vec()));
    e.push(meta(MetaKey::L4Proto));
    e.push(cmp(Operator::Equal, vec![p.proto.number()]));
    e.push(payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2));
    e.push(cmp(Operator::Equal, p.port.to_be_bytes().to_vec()));
    e.push(expr(Expressions::Immediate(vec![
        Immediate::DestinationRegister(Register::Reg1),
        Immediate::Data(DataAttribute::Value(ip_bytes(p.addr))),
    ])));
    e.push(expr(Expressions::Immediate(vec![
        Immediate::DestinationRegister(Register::Reg2),
        Immediate::Data(DataAttribute::Value(p.to_port.to_be_bytes().to_vec())),
    ])));
    e.push(expr(Expressions::Other {
        expression_type: "nat".into(),
        attributes: vec![
            DefaultNla::new(NFTA_NAT_TYPE, be(NFT_NAT_DNAT)),
            DefaultNla::new(
                NFTA_NAT_FAMILY,
                be(u32::from(if v4 { NFPROTO_IPV4 } else { NFPROTO_IPV6 })),
            ),
            DefaultNla::new(NFTA_NAT_REG_ADDR_MIN, be(NFT_REG_1)),
            DefaultNla::new(NFTA_NAT_REG_PROTO_MIN, be(NFT_REG_2)),
            DefaultNla::new(NFTA_NAT_FLAGS, be(NF_NAT_RANGE_PROTO_SPECIFIED)),
        ],
    }));
    e
}

/// `ct status dnat oifname "IF" ip saddr NET masquerade`.
pub(super) fn hairpin_expressions(h: &Hairpin) -> Vec<Expr> {
    let mut e = vec![
        expr(Expressions::Other {
            expression_type: "ct".into(),
            attributes: vec![
                DefaultNla::new(NFTA_CT_DREG, be(NFT_REG_1)),
                DefaultNla::new(NFTA_CT_KEY, be(NFT_CT_STATUS)),
            ],
        }),
        // ct status is a host-order bit field.
        expr(Expressions::Bitwise(vec![
            Bitwise::SourceRegister(Register::Reg1),
            Bitwise::DestinationRegister(Register::Reg1),
            Bitwise::Length(4),
            Bitwise::Mask(DataAttribute::Value(IPS_DST_NAT.to_ne_bytes().to_vec())),
            Bitwise::Xor(DataAttribute::Value(vec![0; 4])),
        ])),
        cmp(Operator::NotEqual, vec![0; 4]),
        meta(MetaKey::Oifname),
    ];
    let mut name = [0u8; IFNAMSIZ];
    let n = h.ifname.len().min(IFNAMSIZ - 1);
    name[..n].copy_from_slice(&h.ifname.as_bytes()[..n]);
    e.push(cmp(Operator::Equal, name.to_vec()));
    e.extend(nfproto(h.source.addr().is_ipv4()));
    if h.source.prefix_len() > 0 {
        e.extend(prefix_match(h.source, true, Operator::Equal));
    }
    e.push(ListAttribute::Element(vec![ExpressionAttribute::Name(
        "masq".to_string(),
    )]));
    e
}

fn rule_step(table: &str, chain: &str, label: String, exprs: Vec<Expr>) -> Step {
    Step {
        label,
        msg: nf_message(
            NetfilterProtoFamily::Inet,
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

/// NewTable (EXCL), its three chains, the DNAT rules and the hairpins.
pub(super) fn publish_table_steps(
    name: &str,
    mark: &str,
    rules: &[Publish],
    hairpins: &[Hairpin],
) -> Vec<Step> {
    let inet = NetfilterProtoFamily::Inet;
    let mut steps = vec![
        new_table_step(inet, name, mark),
        base_chain_step(
            inet,
            name,
            PREROUTING,
            InetHookNumber::PreRouting,
            DSTNAT_PRIORITY,
            "nat",
        ),
        base_chain_step(
            inet,
            name,
            OUTPUT,
            InetHookNumber::LocalOut,
            DSTNAT_PRIORITY,
            "nat",
        ),
        base_chain_step(
            inet,
            name,
            POSTROUTING,
            InetHookNumber::PostRouting,
            SRCNAT_PRIORITY,
            "nat",
        ),
    ];
    for chain in [PREROUTING, OUTPUT] {
        for p in rules {
            steps.push(rule_step(
                name,
                chain,
                format!("add rule inet {name} {chain}: {}", p.text()),
                dnat_expressions(p, chain),
            ));
        }
    }
    for h in hairpins {
        steps.push(rule_step(
            name,
            POSTROUTING,
            format!(
                "add rule inet {name} {POSTROUTING}: {}",
                crate::model::publish::hairpin_text(h)
            ),
            hairpin_expressions(h),
        ));
    }
    steps
}

fn validate(name: &str, mark: &str, hairpins: &[Hairpin]) -> Result<(), NftError> {
    validate_table_name(name)?;
    validate_mark(mark)?;
    for h in hairpins {
        validate_ifname(&h.ifname)?;
    }
    Ok(())
}

impl NftSocket {
    /// Make `table inet NAME` hold exactly `rules` and `hairpins` (delete it
    /// when there are no rules), in one atomic batch guarded by the generation
    /// id. A table of that name without MARK is [`NftError::Foreign`] and is
    /// left alone.
    pub fn set_publish_table(
        &mut self,
        name: &str,
        mark: &str,
        rules: &[Publish],
        hairpins: &[Hairpin],
    ) -> Result<(), NftError> {
        validate(name, mark, hairpins)?;
        self.set_inet_table(name, mark, rules.is_empty(), || {
            publish_table_steps(name, mark, rules, hairpins)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::nft::wire::serialize_messages;
    use crate::model::publish::Proto;

    fn publish(addr: &str) -> Publish {
        Publish {
            port: 8080,
            proto: Proto::Tcp,
            node: "black".into(),
            iface: "bveth".into(),
            addr: addr.parse().unwrap(),
            to_port: 800,
        }
    }

    fn bytes(exprs: Vec<Expr>) -> Vec<u8> {
        let step = rule_step("t", "c", String::new(), exprs);
        let (buf, _) = serialize_messages(&mut [step.msg], 1);
        buf
    }

    fn has(buf: &[u8], needle: &[u8]) -> bool {
        buf.windows(needle.len()).any(|w| w == needle)
    }

    /// An attribute as it is on the wire: length, type, value (4-aligned).
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        v.extend(kind.to_ne_bytes());
        v.extend(value);
        v
    }

    #[test]
    fn a_dnat_rule_is_what_nft_sends_for_the_same_text() {
        // nft --debug=netlink, `fib daddr type local tcp dport 8080 dnat ip to
        // 192.168.1.1:800`: see the module's comment.
        let p = publish("192.168.1.1");
        let names = |e: &[Expr]| -> Vec<String> {
            e.iter()
                .map(|x| match x {
                    ListAttribute::Element(a) => a
                        .iter()
                        .find_map(|a| match a {
                            ExpressionAttribute::Name(n) => Some(n.clone()),
                            _ => None,
                        })
                        .unwrap_or_default(),
                    _ => String::new(),
                })
                .collect()
        };
        let pre = dnat_expressions(&p, PREROUTING);
        assert_eq!(
            names(&pre),
            [
                "fib",
                "cmp",
                "meta",
                "cmp",
                "payload",
                "cmp",
                "immediate",
                "immediate",
                "nat"
            ]
        );
        let buf = bytes(pre);
        // fib daddr type => reg 1; cmp eq 2 (host order).
        assert!(has(&buf, &nla(NFTA_FIB_RESULT, &be(3))));
        assert!(has(&buf, &nla(NFTA_FIB_FLAGS, &be(2))));
        assert!(has(&buf, &2u32.to_ne_bytes()));
        // dport 8080 is 0x1f90 big-endian; 800 is 0x0320.
        assert!(has(&buf, &[0x1f, 0x90]));
        assert!(has(&buf, &[0x03, 0x20]));
        assert!(has(&buf, &[192, 168, 1, 1]));
        // nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2
        for (k, v) in [(1, 1), (2, 2), (3, 1), (5, 2), (7, 2)] {
            assert!(has(&buf, &nla(k, &be(v))), "nat attribute {k}");
        }
        // The output chain first leaves loopback alone: meta nfproto ipv4,
        // payload 1b @ network header + 16, cmp neq 0x7f.
        let out = dnat_expressions(&p, OUTPUT);
        assert_eq!(names(&out)[..4], ["meta", "cmp", "payload", "cmp"]);
        let buf = bytes(out);
        assert!(has(&buf, b"\x7f\0\0\0"), "cmp data 0x7f (padded)");
        // IPv6: the address in register 1 and family ip6 in the nat expression.
        let p6 = publish("fd00::1");
        let buf = bytes(dnat_expressions(&p6, PREROUTING));
        assert!(has(
            &buf,
            &"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
        ));
        assert!(has(&buf, &nla(NFTA_NAT_FAMILY, &be(10))));
        let buf = bytes(dnat_expressions(&p6, OUTPUT));
        assert!(has(&buf, &std::net::Ipv6Addr::LOCALHOST.octets()));
    }

    /// The leaf attributes of netlink attributes `buf`, depth first, as
    /// (path of types, value); only attributes flagged NLA_F_NESTED are
    /// entered, as nft's `--debug=mnl` dump shows them (`N-`).
    fn leaves(buf: &[u8], path: &str, out: &mut Vec<(String, Vec<u8>)>) {
        let mut i = 0;
        while i + 4 <= buf.len() {
            let len = u16::from_ne_bytes([buf[i], buf[i + 1]]) as usize;
            let kind = u16::from_ne_bytes([buf[i + 2], buf[i + 3]]);
            let value = &buf[i + 4..i + len];
            let p = format!("{path}{}", kind & 0x3fff);
            if kind & 0x8000 != 0 {
                leaves(value, &format!("{p}."), out);
            } else {
                out.push((p, value.to_vec()));
            }
            i += (len + 3) & !3;
        }
    }

    /// Each expression of a rule, as (path within the expression, value).
    fn dump(exprs: Vec<Expr>) -> Vec<Vec<(String, Vec<u8>)>> {
        exprs
            .into_iter()
            .map(|e| {
                let step = rule_step("t", "c", String::new(), vec![e]);
                let (buf, _) = serialize_messages(&mut [step.msg], 1);
                // After the netlink (16) and nfgen (4) headers; the
                // expressions are attribute 4, one list element (1) each.
                let mut all = Vec::new();
                leaves(&buf[20..], "", &mut all);
                all.into_iter()
                    .filter_map(|(p, v)| p.strip_prefix("4.1.").map(|p| (p.to_string(), v)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_dnat_rule_has_the_bytes_of_nfts() {
        // `nft --debug=mnl` for `fib daddr type local tcp dport 8080 dnat ip
        // to 192.168.1.1:800` in an inet table (nft 1.x, kernel 6.18):
        // (attribute path, value) of each expression, in nft's order.
        let b = |v: &[u8]| v.to_vec();
        let want: Vec<Vec<(&str, Vec<u8>)>> = vec![
            vec![
                ("1", b(b"fib\0")),
                ("2.3", b(&[0, 0, 0, 2])),
                ("2.2", b(&[0, 0, 0, 3])),
                ("2.1", b(&[0, 0, 0, 1])),
            ],
            vec![
                ("1", b(b"cmp\0")),
                ("2.1", b(&[0, 0, 0, 1])),
                ("2.2", b(&[0, 0, 0, 0])),
                ("2.3.1", b(&2u32.to_ne_bytes())),
            ],
            vec![
                ("1", b(b"meta\0")),
                ("2.2", b(&[0, 0, 0, 0x10])),
                ("2.1", b(&[0, 0, 0, 1])),
            ],
            vec![
                ("1", b(b"cmp\0")),
                ("2.1", b(&[0, 0, 0, 1])),
                ("2.2", b(&[0, 0, 0, 0])),
                ("2.3.1", b(&[6])),
            ],
            vec![
                ("1", b(b"payload\0")),
                ("2.1", b(&[0, 0, 0, 1])),
                ("2.2", b(&[0, 0, 0, 2])),
                ("2.3", b(&[0, 0, 0, 2])),
                ("2.4", b(&[0, 0, 0, 2])),
            ],
            vec![
                ("1", b(b"cmp\0")),
                ("2.1", b(&[0, 0, 0, 1])),
                ("2.2", b(&[0, 0, 0, 0])),
                ("2.3.1", b(&[0x1f, 0x90])),
            ],
            vec![
                ("1", b(b"immediate\0")),
                ("2.1", b(&[0, 0, 0, 1])),
                ("2.2.1", b(&[192, 168, 1, 1])),
            ],
            vec![
                ("1", b(b"immediate\0")),
                ("2.1", b(&[0, 0, 0, 2])),
                ("2.2.1", b(&[3, 0x20])),
            ],
            vec![
                ("1", b(b"nat\0")),
                ("2.1", b(&[0, 0, 0, 1])),
                ("2.2", b(&[0, 0, 0, 2])),
                ("2.3", b(&[0, 0, 0, 1])),
                ("2.5", b(&[0, 0, 0, 2])),
                ("2.7", b(&[0, 0, 0, 2])),
            ],
        ];
        let got = dump(dnat_expressions(&publish("192.168.1.1"), PREROUTING));
        let got: Vec<Vec<(&str, Vec<u8>)>> = got
            .iter()
            .map(|e| e.iter().map(|(p, v)| (p.as_str(), v.clone())).collect())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_hairpin_is_ct_status_dnat_oifname_saddr_masq() {
        let h = Hairpin {
            ifname: "bri0".into(),
            source: "192.168.0.0/16".parse().unwrap(),
        };
        let buf = bytes(hairpin_expressions(&h));
        assert!(has(&buf, b"ct\0"));
        assert!(has(&buf, &nla(NFTA_CT_KEY, &be(NFT_CT_STATUS))));
        assert!(has(&buf, &0x20u32.to_ne_bytes()));
        assert!(has(&buf, b"bri0\0\0\0\0\0\0\0\0\0\0\0\0"));
        // payload load 2b @ network header + 12; cmp eq 192.168.
        assert!(has(&buf, &[192, 168, 0, 0]));
        assert!(has(&buf, b"masq\0"));
        // A prefix not on a byte boundary is loaded whole and masked.
        let h = Hairpin {
            ifname: "bri0".into(),
            source: "10.0.0.0/12".parse().unwrap(),
        };
        let buf = bytes(hairpin_expressions(&h));
        assert!(has(&buf, b"bitwise\0"));
        assert!(has(&buf, &[255, 240, 0, 0]));
    }

    #[test]
    fn a_publish_table_is_a_table_three_chains_and_the_rules() {
        let steps = publish_table_steps(
            "nslab-x-pub",
            "nslab:x",
            &[publish("192.168.1.1"), publish("fd00::1")],
            &[],
        );
        assert_eq!(steps.len(), 1 + 3 + 4);
        let mut msgs: Vec<_> = steps.into_iter().map(|s| s.msg).collect();
        let (buf, _) = serialize_messages(&mut msgs, 1);
        for p in crate::kernel::nft::decode::split_messages(&buf).expect("splits") {
            assert_eq!(p[16], 1, "family inet");
        }
        assert!(validate("t", "m", &[]).is_ok());
        let bad = Hairpin {
            ifname: "a b".into(),
            source: "10.0.0.0/8".parse().unwrap(),
        };
        assert!(validate("t", "m", &[bad]).is_err());
    }
}
