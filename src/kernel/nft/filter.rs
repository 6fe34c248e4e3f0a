//! Drop tables: `table inet NAME` (marked) whose `output` and `input` chains
//! drop packets to and from a list of addresses. `nslab partition` puts one in
//! each partitioned node's namespace, so every path between the two groups
//! (direct, routed, through the host and its NAT) is cut at both ends.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use netlink_packet_netfilter::NetfilterProtoFamily;
use netlink_packet_netfilter::nftables::{
    Cmp, DataAttribute, Expressions, Immediate, InetHookNumber, ListAttribute, Meta, MetaKey,
    NfTablesMessage, Operator, Payload, Register, RuleAttribute, RuleMessage, Verdict,
    VerdictAttribute,
};

use super::socket::NftSocket;
use super::wire::{
    Step, StepKind, base_chain_step, delete_family_table_step, expr, new_table_step, nf_message,
};
use super::{
    Family, NF_DROP, NFT_PAYLOAD_NETWORK_HEADER, NftError, validate_mark, validate_table_name,
};

/// The chains of a drop table and their hooks.
pub const DROP_CHAINS: [(&str, Hook); 2] = [("output", Hook::Out), ("input", Hook::In)];

/// Which way a drop chain matches: packets sent to, or received from, an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Out,
    In,
}

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// `meta nfproto ipvX ip[6] daddr|saddr ADDR drop`, as nft encodes it.
fn drop_rule_expressions(addr: IpAddr, hook: Hook) -> Vec<ListAttribute<ExpressionAttribute>> {
    let (proto, offset, bytes) = match (addr, hook) {
        (IpAddr::V4(a), Hook::Out) => (NFPROTO_IPV4, 16, a.octets().to_vec()),
        (IpAddr::V4(a), Hook::In) => (NFPROTO_IPV4, 12, a.octets().to_vec()),
        (IpAddr::V6(a), Hook::Out) => (NFPROTO_IPV6, 24, a.octets().to_vec()),
        (IpAddr::V6(a), Hook::In) => (NFPROTO_IPV6, 8, a.octets().to_vec()),
    };
    vec![
        expr(Expressions::Meta(vec![
            Meta::DestinationRegister(Register::Reg1),
            Meta::Key(MetaKey::Nfproto),
        ])),
        expr(Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(vec![proto])),
        ])),
        expr(Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(NFT_PAYLOAD_NETWORK_HEADER),
            Payload::Offset(offset),
            Payload::Len(bytes.len() as u32),
        ])),
        expr(Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(bytes)),
        ])),
        expr(Expressions::Immediate(vec![
            Immediate::DestinationRegister(Register::Verdict),
            Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
                Verdict::Other(NF_DROP),
            )])),
        ])),
    ]
}

use netlink_packet_netfilter::nftables::ExpressionAttribute;

/// The steps that create the drop table `name` for `addrs`.
fn drop_table_steps(name: &str, mark: &str, addrs: &[IpAddr]) -> Vec<Step> {
    let inet = NetfilterProtoFamily::Inet;
    let mut steps = vec![new_table_step(inet, name, mark)];
    for (chain, hook) in DROP_CHAINS {
        let nl_hook = match hook {
            Hook::Out => InetHookNumber::LocalOut,
            Hook::In => InetHookNumber::LocalIn,
        };
        steps.push(base_chain_step(inet, name, chain, nl_hook, 0, "filter"));
        for a in addrs {
            let word = if hook == Hook::Out { "daddr" } else { "saddr" };
            steps.push(Step {
                label: format!("add rule inet {name} {chain} {word} {a} drop"),
                msg: nf_message(
                    inet,
                    0,
                    NfTablesMessage::NewRule(RuleMessage {
                        attributes: vec![
                            RuleAttribute::Table(name.to_string()),
                            RuleAttribute::Chain(chain.to_string()),
                            RuleAttribute::Expressions(drop_rule_expressions(*a, hook)),
                        ],
                    }),
                    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
                ),
                kind: StepKind::Other,
            });
        }
    }
    steps
}

/// The `nft` commands that make the same table (for people, and `--explain`).
pub fn drop_table_commands(name: &str, mark: &str, addrs: &[IpAddr]) -> Vec<String> {
    let mut out = vec![format!(
        "nft add table inet {name} '{{ comment \"{mark}\"; }}'"
    )];
    for (chain, hook) in DROP_CHAINS {
        let h = if hook == Hook::Out { "output" } else { "input" };
        out.push(format!(
            "nft add chain inet {name} {chain} '{{ type filter hook {h} priority 0; policy accept; }}'"
        ));
        for a in addrs {
            let (fam, word) = match (a, hook) {
                (IpAddr::V4(_), Hook::Out) => ("ip", "daddr"),
                (IpAddr::V4(_), Hook::In) => ("ip", "saddr"),
                (IpAddr::V6(_), Hook::Out) => ("ip6", "daddr"),
                (IpAddr::V6(_), Hook::In) => ("ip6", "saddr"),
            };
            out.push(format!(
                "nft add rule inet {name} {chain} {fam} {word} {a} drop"
            ));
        }
    }
    out
}

impl NftSocket {
    /// Is there a `table inet NAME`? An error if it carries another mark (not ours).
    fn inet_table_is_ours(&mut self, name: &str, mark: &str) -> Result<bool, NftError> {
        let op = format!("list nftables tables for {name}");
        let (tables, _) = self.consistent(&op, |s| s.dump_tables_once(&op))?;
        match tables
            .iter()
            .find(|t| t.family == Family::Inet && t.name == name)
        {
            None => Ok(false),
            Some(t) if t.comment.as_deref() == Some(mark) => Ok(true),
            Some(t) => Err(NftError::Foreign {
                name: name.to_string(),
                found: t.comment.clone(),
                expected: mark.to_string(),
            }),
        }
    }

    /// Create (or replace one of ours) `table inet NAME`, marked, dropping
    /// packets sent to and received from `addrs`, in one batch.
    pub fn replace_drop_table(
        &mut self,
        name: &str,
        mark: &str,
        addrs: &[IpAddr],
    ) -> Result<(), NftError> {
        validate_table_name(name)?;
        validate_mark(mark)?;
        let mut steps = Vec::new();
        if self.inet_table_is_ours(name, mark)? {
            steps.push(delete_family_table_step(NetfilterProtoFamily::Inet, name));
        }
        steps.extend(drop_table_steps(name, mark, addrs));
        self.run_batch(&format!("create nftables table inet {name}"), None, steps)
    }

    /// Delete `table inet NAME` if it carries `mark`; false if there is none.
    pub fn delete_drop_table(&mut self, name: &str, mark: &str) -> Result<bool, NftError> {
        validate_table_name(name)?;
        validate_mark(mark)?;
        if !self.inet_table_is_ours(name, mark)? {
            return Ok(false);
        }
        let step = delete_family_table_step(NetfilterProtoFamily::Inet, name);
        self.run_batch(
            &format!("delete nftables table inet {name}"),
            None,
            vec![step],
        )?;
        Ok(true)
    }

    /// The names of the `inet` tables that carry `mark` and start with `prefix`.
    pub fn marked_inet_tables(
        &mut self,
        prefix: &str,
        mark: &str,
    ) -> Result<Vec<String>, NftError> {
        let op = "list nftables tables";
        let (tables, _) = self.consistent(op, |s| s.dump_tables_once(op))?;
        Ok(tables
            .into_iter()
            .filter(|t| {
                t.family == Family::Inet
                    && t.name.starts_with(prefix)
                    && t.comment.as_deref() == Some(mark)
            })
            .map(|t| t.name)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::nft::wire::serialize_messages;

    #[test]
    fn a_drop_table_has_two_chains_and_a_rule_per_address_each() {
        let addrs: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let steps = drop_table_steps("nslab-part-1", "nslab:t", &addrs);
        // table, output chain + 2 rules, input chain + 2 rules
        assert_eq!(steps.len(), 7);
        assert!(steps[2].label.contains("output daddr 10.0.0.2 drop"));
        assert!(steps[6].label.contains("input saddr fd00::2 drop"));
        let mut msgs: Vec<_> = steps.into_iter().map(|s| s.msg).collect();
        let (buf, seqs) = serialize_messages(&mut msgs, 1);
        assert_eq!(seqs.len(), 7);
        // Every message is family inet (1).
        let parts = crate::kernel::nft::decode::split_messages(&buf).unwrap();
        assert!(parts.iter().all(|p| p[16] == 1));
        // The IPv4 address travels in the output rule, the IPv6 one in the input rule.
        let hay = |p: &[u8], n: &[u8]| p.windows(n.len()).any(|w| w == n);
        assert!(hay(parts[2], &[10, 0, 0, 2]));
        let v6: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
        assert!(hay(parts[6], &v6.octets()));
    }

    #[test]
    fn offsets_follow_the_ip_headers() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let offs = |a, h| {
            drop_rule_expressions(a, h)
                .iter()
                .find_map(|e| match e {
                    ListAttribute::Element(v) => v.iter().find_map(|x| match x {
                        ExpressionAttribute::Data(Expressions::Payload(p)) => {
                            p.iter().find_map(|y| match y {
                                Payload::Offset(o) => Some(*o),
                                _ => None,
                            })
                        }
                        _ => None,
                    }),
                    _ => None,
                })
                .unwrap()
        };
        assert_eq!(offs(v4, Hook::Out), 16);
        assert_eq!(offs(v4, Hook::In), 12);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(offs(v6, Hook::Out), 24);
        assert_eq!(offs(v6, Hook::In), 8);
        let cmds = drop_table_commands("p", "nslab:t", &[v4, v6]);
        assert!(cmds.contains(&"nft add rule inet p output ip daddr 192.0.2.1 drop".into()));
        assert!(cmds.contains(&"nft add rule inet p input ip6 saddr 2001:db8::1 drop".into()));
    }
}
