//! Random loss on an interface's egress, for kernels without sch_netem: one
//! table per namespace, `table inet NAME` with the lab's mark as its comment,
//! apart from the NAT tables, holding one base chain
//! `type filter hook postrouting priority 0` (locally sent and forwarded packets
//! alike) and per interface one rule
//! `oifname "IF" numgen random mod 10000 < N drop` (N in hundredths of a percent).

use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use netlink_packet_netfilter::NetfilterProtoFamily;
use netlink_packet_netfilter::nftables::{
    Cmp, DataAttribute, Expressions, Immediate, InetHookNumber, Meta, MetaKey, NfTablesMessage,
    Operator, Register, RuleAttribute, RuleMessage, Verdict, VerdictAttribute,
};

use super::socket::NftSocket;
use super::wire::{Step, StepKind, base_chain_step, expr, new_table_step, nf_message};
use super::{IFNAMSIZ, NF_DROP, NftError, validate_ifname, validate_mark, validate_table_name};
use netlink_packet_core::DefaultNla;

/// The chain of a loss table.
pub const LOSS_CHAIN: &str = "egress";
/// The modulus of the random number: loss is set in hundredths of a percent.
pub const LOSS_MODULUS: u32 = 10_000;
const NFTA_NG_DREG: u16 = 1;
const NFTA_NG_MODULUS: u16 = 2;
const NFTA_NG_TYPE: u16 = 3;
const NFTA_NG_OFFSET: u16 = 4;
const NFT_NG_RANDOM: u32 = 1;
const NFT_REG_1: u32 = 1;
const NFTA_BYTEORDER_SREG: u16 = 1;
const NFTA_BYTEORDER_DREG: u16 = 2;
const NFTA_BYTEORDER_OP: u16 = 3;
const NFTA_BYTEORDER_LEN: u16 = 4;
const NFTA_BYTEORDER_SIZE: u16 = 5;
const NFT_BYTEORDER_HTON: u32 = 1;

/// Drop `loss` hundredths of a percent of what leaves `ifname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossRule {
    pub ifname: String,
    pub loss: u32,
}

/// The expressions of one loss rule, as nft encodes the same text.
pub(super) fn loss_expressions(
    r: &LossRule,
) -> Vec<
    netlink_packet_netfilter::nftables::ListAttribute<
        netlink_packet_netfilter::nftables::ExpressionAttribute,
    >,
> {
    let mut name = [0u8; IFNAMSIZ];
    let n = r.ifname.len().min(IFNAMSIZ - 1);
    name[..n].copy_from_slice(&r.ifname.as_bytes()[..n]);
    let be = |v: u32| v.to_be_bytes().to_vec();
    vec![
        expr(Expressions::Meta(vec![
            Meta::DestinationRegister(Register::Reg1),
            Meta::Key(MetaKey::Oifname),
        ])),
        expr(Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(name.to_vec())),
        ])),
        expr(Expressions::Other {
            expression_type: "numgen".to_string(),
            attributes: vec![
                DefaultNla::new(NFTA_NG_DREG, be(NFT_REG_1)),
                DefaultNla::new(NFTA_NG_MODULUS, be(LOSS_MODULUS)),
                DefaultNla::new(NFTA_NG_TYPE, be(NFT_NG_RANDOM)),
                DefaultNla::new(NFTA_NG_OFFSET, be(0)),
            ],
        }),
        // numgen's result is a host-order integer, and cmp's `<` compares bytes
        // (memcmp): as nft does, turn it big-endian first and compare with a
        // big-endian constant.
        expr(Expressions::Other {
            expression_type: "byteorder".to_string(),
            attributes: vec![
                DefaultNla::new(NFTA_BYTEORDER_SREG, be(NFT_REG_1)),
                DefaultNla::new(NFTA_BYTEORDER_DREG, be(NFT_REG_1)),
                DefaultNla::new(NFTA_BYTEORDER_OP, be(NFT_BYTEORDER_HTON)),
                DefaultNla::new(NFTA_BYTEORDER_LEN, be(4)),
                DefaultNla::new(NFTA_BYTEORDER_SIZE, be(4)),
            ],
        }),
        expr(Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::LessThan),
            Cmp::Data(DataAttribute::Value(be(r.loss))),
        ])),
        expr(Expressions::Immediate(vec![
            Immediate::DestinationRegister(Register::Verdict),
            Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
                Verdict::Other(NF_DROP),
            )])),
        ])),
    ]
}

/// NewTable (EXCL), its chain and one rule per interface.
pub(super) fn loss_table_steps(name: &str, mark: &str, rules: &[LossRule]) -> Vec<Step> {
    let inet = NetfilterProtoFamily::Inet;
    let mut steps = vec![
        new_table_step(inet, name, mark),
        base_chain_step(
            inet,
            name,
            LOSS_CHAIN,
            InetHookNumber::PostRouting,
            0,
            "filter",
        ),
    ];
    for r in rules {
        steps.push(Step {
            label: format!(
                "add rule inet {name} {LOSS_CHAIN}: oifname {} loss {}",
                r.ifname, r.loss
            ),
            msg: nf_message(
                inet,
                0,
                NfTablesMessage::NewRule(RuleMessage {
                    attributes: vec![
                        RuleAttribute::Table(name.to_string()),
                        RuleAttribute::Chain(LOSS_CHAIN.to_string()),
                        RuleAttribute::Expressions(loss_expressions(r)),
                    ],
                }),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
            ),
            kind: StepKind::Other,
        });
    }
    steps
}

fn validate(name: &str, mark: &str, rules: &[LossRule]) -> Result<(), NftError> {
    validate_table_name(name)?;
    validate_mark(mark)?;
    for r in rules {
        validate_ifname(&r.ifname)?;
        if r.loss > LOSS_MODULUS {
            return Err(NftError::Invalid {
                what: "loss",
                value: r.loss.to_string(),
                reason: "must be at most 10000 hundredths of a percent",
            });
        }
    }
    Ok(())
}

impl NftSocket {
    /// Make `table inet NAME` hold exactly `rules` (delete it when there are
    /// none), in one atomic batch guarded by the generation id. A table of that
    /// name without MARK is [`NftError::Foreign`] and is left alone.
    pub fn set_loss_table(
        &mut self,
        name: &str,
        mark: &str,
        rules: &[LossRule],
    ) -> Result<(), NftError> {
        validate(name, mark, rules)?;
        self.set_inet_table(name, mark, rules.is_empty(), || {
            loss_table_steps(name, mark, rules)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::nft::wire::serialize_messages;

    #[test]
    fn a_loss_table_is_one_table_one_chain_and_a_rule_per_interface() {
        let rules = [
            LossRule {
                ifname: "eth0".into(),
                loss: 2000,
            },
            LossRule {
                ifname: "eth1".into(),
                loss: 5,
            },
        ];
        let steps = loss_table_steps("nslab-x-loss", "nslab:x", &rules);
        assert_eq!(steps.len(), 4);
        let mut msgs: Vec<_> = steps.into_iter().map(|s| s.msg).collect();
        let (buf, _) = serialize_messages(&mut msgs, 1);
        // The rule carries the numgen expression with a big-endian modulus of
        // 10000, a byteorder to big endian, the threshold big-endian (cmp's `<`
        // compares bytes), and the interface name padded.
        let find = |needle: &[u8]| buf.windows(needle.len()).any(|w| w == needle);
        assert!(find(b"numgen\0"));
        assert!(find(b"byteorder\0"));
        assert!(find(&10_000u32.to_be_bytes()));
        assert!(
            find(&[8, 0, 1, 0, 0, 0, 7, 208]),
            "cmp data: 2000 big-endian"
        );
        assert!(find(b"eth1\0\0\0\0\0\0\0\0\0\0\0\0"));
        let parts = crate::kernel::nft::decode::split_messages(&buf).expect("splits");
        assert_eq!(parts.len(), 4);
        for p in parts {
            assert_eq!(p[16], 1, "family inet");
        }
        assert!(validate("t", "m", &rules).is_ok());
        let bad = LossRule {
            ifname: "x".into(),
            loss: 10_001,
        };
        assert!(validate("t", "m", &[bad]).is_err());
        let bad = LossRule {
            ifname: "a b".into(),
            loss: 1,
        };
        assert!(validate("t", "m", &[bad]).is_err());
    }
}
