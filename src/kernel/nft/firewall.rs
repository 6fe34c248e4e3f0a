//! Per-node firewalls: `table inet nslab-LAB-fw` in a namespace, marked like
//! the NAT table, base chains `input`/`output`/`forward` (type filter,
//! priority filter), one rule per file rule with its line as the rule's user
//! data (libnftnl's comment TLV). What the rules mean:
//! `crate::model::firewall`. Encoded as `nft --debug=netlink` shows nft 1.x
//! encoding the same text, e.g. `ip saddr 192.168.3.0/24 meta l4proto icmp
//! drop`:
//! ```text
//! [ meta load nfproto => reg 1 ]  [ cmp eq reg 1 0x00000002 ]
//! [ payload load 3b @ network header + 12 => reg 1 ]  [ cmp eq reg 1 0x0003a8c0 ]
//! [ meta load l4proto => reg 1 ]  [ cmp eq reg 1 0x00000001 ]
//! [ immediate reg 0 drop ]
//! ```
//! a port range is `[ cmp gte ] [ cmp lte ]` on the big-endian port, `ct
//! state established,related` is `[ ct load state ] [ bitwise & 0x6 ] [ cmp
//! neq 0 ]`, and `reject` in an inet table is `[ reject type 2 code 1 ]`
//! (icmpx port unreachable).
//!
//! Drift: the table read back is compared whole with what `up` writes, each
//! expression in a canonical form (its attributes' leaves, sorted), so a
//! rule changed by hand, a rule added, removed or moved, a policy changed, a
//! chain added or dropped, all show.

use netlink_packet_core::{
    DefaultNla, Emitable, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};
use netlink_packet_netfilter::NetfilterProtoFamily;
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, DataAttribute, ExpressionAttribute, Expressions,
    Hook as NlHook, HookNumber, Immediate, InetHookNumber, ListAttribute, MetaKey, NfTablesMessage,
    Operator, Register, RuleAttribute, RuleMessage, Verdict, VerdictAttribute,
};

use super::decode::chain_info;
use super::dnat::{be, cmp, meta, payload, prefix_match};
use super::socket::{Interrupted, NftSocket};
use super::wire::{Step, StepKind, encode_comment_udata, expr, new_table_step, nf_message};
use super::{
    Family, IFNAMSIZ, NF_ACCEPT, NF_DROP, NftError, validate_ifname, validate_mark,
    validate_table_name,
};
use crate::model::firewall::{Action, Hook, L4, Rule, comment};

type Expr = ListAttribute<ExpressionAttribute>;

/// `priority filter` (NF_IP_PRI_FILTER).
pub const FILTER_PRIORITY: i32 = 0;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFT_CT_STATE: u32 = 0;
const NFTA_REJECT_TYPE: u16 = 1;
const NFTA_REJECT_ICMP_CODE: u16 = 2;
const NFT_REJECT_ICMPX_UNREACH: u32 = 2;
const NFT_REJECT_ICMPX_PORT_UNREACH: u8 = 1;
// NFTA_BITWISE_OP: the kernel dumps it (0, mask-and-xor) though nft omits it.
const NFTA_BITWISE_OP: u16 = 6;

/// One chain as `up` writes it: its hook, policy and rules (in the kernel's
/// form: `crate::model::firewall::kernel_rules`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwChain {
    pub hook: Hook,
    pub policy: Action,
    pub rules: Vec<Rule>,
}

fn ifname_cmp(name: &str) -> Expr {
    let mut b = [0u8; IFNAMSIZ];
    let n = name.len().min(IFNAMSIZ - 1);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    cmp(Operator::Equal, b.to_vec())
}

fn nfproto_is(v4: bool) -> Vec<Expr> {
    super::dnat::nfproto(v4)
}

/// The expressions of one rule, in the order of `model::firewall::rule_text`.
pub(super) fn rule_expressions(r: &Rule) -> Vec<Expr> {
    let mut e = Vec::new();
    if let Some(i) = &r.iif {
        e.push(meta(MetaKey::Iifname));
        e.push(ifname_cmp(i));
    }
    if let Some(o) = &r.oif {
        e.push(meta(MetaKey::Oifname));
        e.push(ifname_cmp(o));
    }
    let mut fam: Option<bool> = None;
    for (net, saddr) in [(r.from, true), (r.to, false)] {
        let Some(net) = net else { continue };
        let v4 = net.addr().is_ipv4();
        // `ip saddr` in an inet table needs nft's implicit `meta nfproto`
        // dependency (once), else an IPv6 packet's bytes would be compared.
        if fam != Some(v4) {
            e.extend(nfproto_is(v4));
            fam = Some(v4);
        }
        if net.prefix_len() > 0 {
            e.extend(prefix_match(net, saddr, Operator::Equal));
        }
    }
    if let Some(p) = r.proto {
        e.push(meta(MetaKey::L4Proto));
        e.push(cmp(Operator::Equal, vec![p.number()]));
        for (ports, off) in [(r.sport, 0), (r.dport, 2)] {
            let Some((lo, hi)) = ports else { continue };
            if !matches!(p, L4::Tcp | L4::Udp) {
                continue;
            }
            e.push(payload(NFT_PAYLOAD_TRANSPORT_HEADER, off, 2));
            if lo == hi {
                e.push(cmp(Operator::Equal, lo.to_be_bytes().to_vec()));
            } else {
                e.push(cmp(Operator::GreatherThanEqual, lo.to_be_bytes().to_vec()));
                e.push(cmp(Operator::LessThanEqual, hi.to_be_bytes().to_vec()));
            }
        }
    }
    if !r.state.is_empty() {
        let bits = r.state.iter().fold(0u32, |a, s| a | s.bit());
        e.push(expr(Expressions::Other {
            expression_type: "ct".into(),
            attributes: vec![
                DefaultNla::new(NFTA_CT_DREG, be(1)),
                DefaultNla::new(NFTA_CT_KEY, be(NFT_CT_STATE)),
            ],
        }));
        // ct state is a host-order bit field.
        e.push(expr(Expressions::Bitwise(vec![
            Bitwise::SourceRegister(Register::Reg1),
            Bitwise::DestinationRegister(Register::Reg1),
            Bitwise::Length(4),
            Bitwise::Mask(DataAttribute::Value(bits.to_ne_bytes().to_vec())),
            Bitwise::Xor(DataAttribute::Value(vec![0; 4])),
        ])));
        e.push(cmp(Operator::NotEqual, vec![0; 4]));
    }
    e.push(match r.action {
        Action::Accept | Action::Drop => expr(Expressions::Immediate(vec![
            Immediate::DestinationRegister(Register::Verdict),
            Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
                Verdict::Other(if r.action == Action::Accept {
                    NF_ACCEPT
                } else {
                    NF_DROP
                }),
            )])),
        ])),
        Action::Reject => expr(Expressions::Other {
            expression_type: "reject".into(),
            attributes: vec![
                DefaultNla::new(NFTA_REJECT_TYPE, be(NFT_REJECT_ICMPX_UNREACH)),
                DefaultNla::new(NFTA_REJECT_ICMP_CODE, vec![NFT_REJECT_ICMPX_PORT_UNREACH]),
            ],
        }),
    });
    e
}

fn inet_hook(h: Hook) -> InetHookNumber {
    match h {
        Hook::Input => InetHookNumber::LocalIn,
        Hook::Output => InetHookNumber::LocalOut,
        Hook::Forward => InetHookNumber::Forward,
    }
}

fn chain_step(table: &str, c: &FwChain) -> Step {
    Step {
        label: format!("create chain inet {table} {}", c.hook.name()),
        msg: nf_message(
            NetfilterProtoFamily::Inet,
            0,
            NfTablesMessage::NewChain(ChainMessage {
                attributes: vec![
                    ChainAttribute::Table(table.to_string()),
                    ChainAttribute::Name(c.hook.name().to_string()),
                    ChainAttribute::Hook(vec![
                        NlHook::Number(HookNumber::Inet(inet_hook(c.hook))),
                        NlHook::Priority(FILTER_PRIORITY as u32),
                    ]),
                    ChainAttribute::Type("filter".to_string()),
                    ChainAttribute::Policy(if c.policy == Action::Drop {
                        NF_DROP
                    } else {
                        NF_ACCEPT
                    }),
                ],
            }),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        ),
        kind: StepKind::Other,
    }
}

fn rule_step(table: &str, chain: Hook, r: &Rule) -> Step {
    Step {
        label: format!(
            "add rule inet {table} {}: {}",
            chain.name(),
            crate::model::firewall::rule_text(r)
        ),
        msg: nf_message(
            NetfilterProtoFamily::Inet,
            0,
            NfTablesMessage::NewRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(table.to_string()),
                    RuleAttribute::Chain(chain.name().to_string()),
                    RuleAttribute::Expressions(rule_expressions(r)),
                    RuleAttribute::UserData(encode_comment_udata(&comment(r))),
                ],
            }),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
        ),
        kind: StepKind::Other,
    }
}

/// NewTable (EXCL), its chains and their rules.
pub(super) fn firewall_table_steps(name: &str, mark: &str, chains: &[FwChain]) -> Vec<Step> {
    let mut steps = vec![new_table_step(NetfilterProtoFamily::Inet, name, mark)];
    steps.extend(chains.iter().map(|c| chain_step(name, c)));
    for c in chains {
        steps.extend(c.rules.iter().map(|r| rule_step(name, c.hook, r)));
    }
    steps
}

// ---------------------------------------------------------------------------
// Canonical form, for the drift comparison

/// The leaf attributes of netlink attributes `buf` as (path, value), nested
/// ones (NLA_F_NESTED) entered.
fn leaves(buf: &[u8], path: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let mut i = 0;
    while i + 4 <= buf.len() {
        let len = u16::from_ne_bytes([buf[i], buf[i + 1]]) as usize;
        let kind = u16::from_ne_bytes([buf[i + 2], buf[i + 3]]);
        if len < 4 || i + len > buf.len() {
            out.push((format!("{path}?"), buf[i..].to_vec()));
            return;
        }
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

/// One expression, canonical: its leaves sorted (the kernel dumps attributes
/// in its own order), minus what the kernel adds with its default value.
pub type Canon = Vec<(String, Vec<u8>)>;

pub(super) fn canon(e: &Expr) -> Canon {
    let mut buf = vec![0u8; e.buffer_len()];
    e.emit(&mut buf);
    let mut out = Vec::new();
    leaves(&buf, "", &mut out);
    let is_bitwise = out.iter().any(|(p, v)| p == "1.1" && v == b"bitwise\0");
    out.retain(|(p, v)| {
        !(is_bitwise && *p == format!("1.2.{NFTA_BITWISE_OP}") && v.iter().all(|b| *b == 0))
    });
    out.sort();
    out
}

/// A rule read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwRuleView {
    pub chain: String,
    pub handle: u64,
    /// Its user data's comment (`line 12`), if any.
    pub comment: Option<String>,
    pub exprs: Vec<Canon>,
}

/// A base chain read back: hook, priority, policy drop, type.
pub type BaseView = (String, i32, bool, String);

/// A firewall table read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FwTable {
    pub comment: Option<String>,
    /// Chains: name, and for base chains (hook, priority, policy drop, type).
    pub chains: Vec<(String, Option<BaseView>)>,
    pub rules: Vec<FwRuleView>,
}

/// A comment from libnftnl user data TLVs (type 0).
fn udata_comment(u: &[u8]) -> Option<String> {
    let mut i = 0;
    while i + 2 <= u.len() {
        let (t, l) = (u[i], u[i + 1] as usize);
        let v = u.get(i + 2..i + 2 + l)?;
        if t == 0 {
            let v = v.strip_suffix(&[0]).unwrap_or(v);
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        i += 2 + l;
    }
    None
}

/// What differs between the table read back and the chains `up` writes (and
/// the mark); None when they are the same.
pub fn firewall_diff(t: &FwTable, mark: &str, want: &[FwChain]) -> Option<String> {
    if t.comment.as_deref() != Some(mark) {
        return Some(format!("its comment is not {mark}"));
    }
    for (name, base) in &t.chains {
        if !want.iter().any(|c| c.hook.name() == name) {
            return Some(format!("chain {name} is not in the file"));
        }
        let Some((hook, prio, drop, kind)) = base else {
            return Some(format!("chain {name} is not a base chain"));
        };
        let c = want.iter().find(|c| c.hook.name() == name)?;
        if hook != c.hook.name() || *prio != FILTER_PRIORITY || kind != "filter" {
            return Some(format!(
                "chain {name} is not type filter hook {name} priority filter"
            ));
        }
        let wdrop = c.policy == Action::Drop;
        if *drop != wdrop {
            return Some(format!(
                "chain {name} has policy {}, the file says {}",
                if *drop { "drop" } else { "accept" },
                if wdrop { "drop" } else { "accept" }
            ));
        }
    }
    for c in want {
        let name = c.hook.name();
        if !t.chains.iter().any(|(n, _)| n == name) {
            return Some(format!("chain {name} is missing"));
        }
        let got: Vec<&FwRuleView> = t.rules.iter().filter(|r| r.chain == name).collect();
        for (i, r) in c.rules.iter().enumerate() {
            let want_c = comment(r);
            let Some(g) = got.get(i) else {
                return Some(format!("chain {name}: the rule of {want_c} is missing"));
            };
            let we: Vec<Canon> = rule_expressions(r).iter().map(canon).collect();
            if g.comment.as_deref() != Some(want_c.as_str()) || g.exprs != we {
                return Some(format!(
                    "chain {name}: rule {} (handle {}) is not the file's rule of {want_c}",
                    i + 1,
                    g.handle
                ));
            }
        }
        if got.len() > c.rules.len() {
            return Some(format!(
                "chain {name}: {} rule(s) not in the file (handle {})",
                got.len() - c.rules.len(),
                got[c.rules.len()].handle
            ));
        }
    }
    None
}

fn validate(name: &str, mark: &str, chains: &[FwChain]) -> Result<(), NftError> {
    validate_table_name(name)?;
    validate_mark(mark)?;
    for r in chains.iter().flat_map(|c| &c.rules) {
        for i in r.iif.iter().chain(r.oif.iter()) {
            validate_ifname(i)?;
        }
    }
    Ok(())
}

impl NftSocket {
    /// Make `table inet NAME` hold exactly `chains` (delete it when there are
    /// none), in one atomic batch guarded by the generation id. A table of
    /// that name without MARK is [`NftError::Foreign`] and is left alone.
    pub fn set_firewall_table(
        &mut self,
        name: &str,
        mark: &str,
        chains: &[FwChain],
    ) -> Result<(), NftError> {
        validate(name, mark, chains)?;
        self.set_inet_table(name, mark, chains.is_empty(), || {
            firewall_table_steps(name, mark, chains)
        })
    }

    /// `table inet NAME` read back (None: no such table).
    pub fn read_firewall_table(&mut self, name: &str) -> Result<Option<FwTable>, NftError> {
        validate_table_name(name)?;
        let op = format!("read nftables table inet {name}");
        Ok(self.consistent(&op, |s| s.read_fw_once(&op, name))?.0)
    }

    fn read_fw_once(
        &mut self,
        op: &str,
        name: &str,
    ) -> Result<Result<Option<FwTable>, Interrupted>, NftError> {
        let tables = match self.dump_tables_once(op)? {
            Ok(t) => t,
            Err(i) => return Ok(Err(i)),
        };
        let Some(table) = tables
            .into_iter()
            .find(|t| t.family == Family::Inet && t.name == name)
        else {
            return Ok(Ok(None));
        };
        let contents = self.dump_table_contents(op, NetfilterProtoFamily::Inet, name)?;
        let (chains, rules) = match contents {
            Ok(d) => d,
            Err(i) => return Ok(Err(i)),
        };
        let mut out = FwTable {
            comment: table.comment,
            ..FwTable::default()
        };
        for (h, m) in &chains {
            let NfTablesMessage::NewChain(c) = m else {
                continue;
            };
            let Some((t, chain, base)) = chain_info(h, c) else {
                continue;
            };
            if t != name || Family::from(h.family) != Family::Inet {
                continue;
            }
            out.chains.push((
                chain,
                base.map(|b| (b.hook.to_string(), b.priority, b.policy_drop, b.chain_type)),
            ));
        }
        for (h, m) in &rules {
            let NfTablesMessage::NewRule(r) = m else {
                continue;
            };
            if Family::from(h.family) != Family::Inet {
                continue;
            }
            let mut v = FwRuleView {
                chain: String::new(),
                handle: 0,
                comment: None,
                exprs: Vec::new(),
            };
            let mut table = None;
            for a in &r.attributes {
                match a {
                    RuleAttribute::Table(t) => table = Some(t.as_str()),
                    RuleAttribute::Chain(c) => v.chain = c.clone(),
                    RuleAttribute::Handle(n) => v.handle = *n,
                    RuleAttribute::UserData(u) => v.comment = udata_comment(u),
                    RuleAttribute::Expressions(e) => v.exprs = e.iter().map(canon).collect(),
                    _ => {}
                }
            }
            if table == Some(name) {
                out.rules.push(v);
            }
        }
        Ok(Ok(Some(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::nft::wire::serialize_messages;
    use crate::model::firewall::CtState;

    fn rule(action: Action) -> Rule {
        Rule {
            line: 12,
            action,
            proto: None,
            from: None,
            to: None,
            sport: None,
            dport: None,
            iif: None,
            oif: None,
            state: Vec::new(),
            policy: false,
        }
    }

    /// Each expression as nft's `--debug=netlink` names it and the bytes it
    /// compares: name, then (path, value) leaves in canonical order.
    fn names(e: &[Expr]) -> Vec<String> {
        e.iter()
            .map(|x| {
                let c = canon(x);
                let n = &c.iter().find(|(p, _)| p == "1.1").expect("a name").1;
                String::from_utf8_lossy(&n[..n.len() - 1]).into_owned()
            })
            .collect()
    }

    fn has(e: &[Expr], path: &str, value: &[u8]) -> bool {
        e.iter()
            .any(|x| canon(x).iter().any(|(p, v)| p == path && v == value))
    }

    #[test]
    fn rules_are_encoded_as_nft_encodes_the_same_text() {
        // `ip saddr 192.168.3.0/24 meta l4proto icmp drop` (nft --debug=netlink:
        // meta nfproto, cmp 2, payload 3b @ nh + 12, cmp 0x0003a8c0, meta
        // l4proto, cmp 1, immediate reg 0 drop).
        let mut r = rule(Action::Drop);
        r.from = Some("192.168.3.0/24".parse().unwrap());
        r.proto = Some(L4::Icmp);
        let e = rule_expressions(&r);
        assert_eq!(
            names(&e),
            ["meta", "cmp", "payload", "cmp", "meta", "cmp", "immediate"]
        );
        assert!(has(&e, "1.2.3.1", &[2]), "nfproto ipv4");
        assert!(has(&e, "1.2.4", &be(3)), "3 bytes of the prefix");
        assert!(has(&e, "1.2.3.1", &[192, 168, 3]));
        assert!(has(&e, "1.2.3.1", &[1]), "l4proto icmp");
        // immediate reg 0 (verdict), data verdict code 0 (drop).
        assert!(has(&e, "1.2.1", &be(0)));
        assert!(has(&e, "1.2.2.2.1", &be(0)));
        // `udp dport 1000-2000 accept`: cmp gte 0x03e8, cmp lte 0x07d0.
        let mut r = rule(Action::Accept);
        r.proto = Some(L4::Udp);
        r.dport = Some((1000, 2000));
        let e = rule_expressions(&r);
        assert_eq!(
            names(&e),
            ["meta", "cmp", "payload", "cmp", "cmp", "immediate"]
        );
        assert!(has(&e, "1.2.3", &be(2)), "offset 2: dport");
        assert!(has(&e, "1.2.2", &be(5)), "gte is NFT_CMP_GTE 5");
        assert!(has(&e, "1.2.3.1", &[0x03, 0xe8]));
        assert!(has(&e, "1.2.2", &be(3)), "lte is NFT_CMP_LTE 3");
        assert!(has(&e, "1.2.3.1", &[0x07, 0xd0]));
        assert!(has(&e, "1.2.2.2.1", &be(1)), "accept");
        // `ct state established,related accept`: bitwise & 0x6, cmp neq 0.
        let mut r = rule(Action::Accept);
        r.state = vec![CtState::Established, CtState::Related];
        let e = rule_expressions(&r);
        assert_eq!(names(&e), ["ct", "bitwise", "cmp", "immediate"]);
        assert!(has(&e, "1.2.2", &be(NFT_CT_STATE)));
        assert!(has(&e, "1.2.4.1", &6u32.to_ne_bytes()));
        // `iifname "eth0" reject`: 16 bytes of name; reject type 2 code 1.
        let mut r = rule(Action::Reject);
        r.iif = Some("eth0".into());
        let e = rule_expressions(&r);
        assert_eq!(names(&e), ["meta", "cmp", "reject"]);
        assert!(has(&e, "1.2.3.1", b"eth0\0\0\0\0\0\0\0\0\0\0\0\0"));
        assert!(has(&e, "1.2.1", &be(2)));
        assert!(has(&e, "1.2.2", &[1]));
        // IPv6: nfproto 10, 8 bytes of fd00::/64 at nh + 24.
        let mut r = rule(Action::Accept);
        r.to = Some("fd00::/64".parse().unwrap());
        let e = rule_expressions(&r);
        assert!(has(&e, "1.2.3.1", &[10]));
        assert!(has(&e, "1.2.3", &be(24)));
    }

    #[test]
    fn the_user_data_is_the_line_and_reads_back() {
        let r = rule(Action::Drop);
        let step = rule_step("t", Hook::Input, &r);
        let (buf, _) = serialize_messages(&mut [step.msg], 1);
        // `nft --debug=netlink ... comment "line 3"`: userdata = { \x00\x07line 3\x00 }
        let want = b"\x00\x08line 12\x00";
        assert!(buf.windows(want.len()).any(|w| w == want));
        assert_eq!(udata_comment(want).as_deref(), Some("line 12"));
    }

    #[test]
    fn the_diff_names_what_differs() {
        let mut r = rule(Action::Drop);
        r.proto = Some(L4::Icmp);
        let want = vec![FwChain {
            hook: Hook::Input,
            policy: Action::Drop,
            rules: vec![r.clone()],
        }];
        let view = |rules: Vec<FwRuleView>, drop: bool| FwTable {
            comment: Some("nslab:x".into()),
            chains: vec![(
                "input".into(),
                Some(("input".into(), 0, drop, "filter".into())),
            )],
            rules,
        };
        let good = FwRuleView {
            chain: "input".into(),
            handle: 4,
            comment: Some("line 12".into()),
            exprs: rule_expressions(&r).iter().map(canon).collect(),
        };
        assert_eq!(
            firewall_diff(&view(vec![good.clone()], true), "nslab:x", &want),
            None
        );
        let d = firewall_diff(&view(vec![good.clone()], false), "nslab:x", &want).unwrap();
        assert!(d.contains("policy accept"), "{d}");
        let d = firewall_diff(&view(vec![], true), "nslab:x", &want).unwrap();
        assert!(d.contains("line 12 is missing"), "{d}");
        let mut changed = good.clone();
        changed.exprs.pop();
        let d = firewall_diff(&view(vec![changed], true), "nslab:x", &want).unwrap();
        assert!(d.contains("handle 4"), "{d}");
        let d = firewall_diff(&view(vec![good.clone(), good], true), "nslab:x", &want).unwrap();
        assert!(d.contains("not in the file"), "{d}");
    }
}
