//! Tracing: why-not asks the kernel which rule drops a probe (trace tables,
//! the trace listener, trace events).

use std::io;

use crate::kernel::nlsock::NlListener;
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, NlasIterator};
use netlink_packet_netfilter::NetfilterProtoFamily;
use netlink_packet_netfilter::nftables::{
    Cmp, DataAttribute, Expressions, InetHookNumber, Meta, MetaKey, NfTablesMessage, Operator,
    Register, RuleAttribute, RuleMessage,
};
use netlink_sys::protocols::NETLINK_NETFILTER;

use super::decode::split_messages;
use super::socket::NftSocket;
use super::wire::{
    Step, StepKind, base_chain_step, delete_family_table_step, expr, new_table_step, nf_message,
};
use super::{
    Family, NF_DROP, NFNL_SUBSYS_NFTABLES, NLMSG_HDRLEN, NftError, validate_mark,
    validate_table_name,
};

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
    let mut steps = Vec::new();
    for family in [NetfilterProtoFamily::Inet, NetfilterProtoFamily::Bridge] {
        steps.push(new_table_step(family, name, mark));
        for (chain, hook) in [
            ("pre", InetHookNumber::PreRouting),
            ("out", InetHookNumber::LocalOut),
        ] {
            steps.push(base_chain_step(
                family,
                name,
                chain,
                hook,
                TRACE_PRIORITY,
                "filter",
            ));
            for proto in [IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP] {
                steps.push(trace_rule(family, name, chain, proto));
            }
        }
    }
    steps
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

    /// Steps deleting the trace tables of ours that exist.
    fn delete_trace_steps(&mut self, name: &str, mark: &str) -> Result<Vec<Step>, NftError> {
        Ok(self
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
            .collect())
    }

    /// Create the trace tables (replacing leftovers of ours) in one batch.
    pub fn start_trace(&mut self, name: &str, mark: &str) -> Result<(), NftError> {
        validate_table_name(name)?;
        validate_mark(mark)?;
        let mut steps = self.delete_trace_steps(name, mark)?;
        steps.extend(trace_table_steps(name, mark));
        self.run_batch(&format!("create trace tables {name}"), None, steps)
    }

    /// Delete the trace tables named `name` that carry `mark`.
    pub fn stop_trace(&mut self, name: &str, mark: &str) -> Result<(), NftError> {
        let steps = self.delete_trace_steps(name, mark)?;
        if steps.is_empty() {
            return Ok(());
        }
        self.run_batch(&format!("delete trace tables {name}"), None, steps)
    }
}

/// A socket that receives the trace events of the calling thread's namespace;
/// reading it never waits. Events are only generated while someone listens.
pub fn trace_listener() -> io::Result<NlListener> {
    // Every traced packet makes one event per chain it crosses.
    let s = NlListener::open(NETLINK_NETFILTER, 4 << 20)?;
    s.join(NFNLGRP_NFTRACE)?;
    Ok(s)
}

/// Drain what the listener has queued.
pub fn read_trace_events(s: &NlListener) -> Vec<TraceEvent> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match s.try_recv(&mut buf) {
            Ok(Some(0)) | Ok(None) => break,
            Ok(Some(n)) => out.extend(parse_trace_events(&buf[..n])),
            // ENOBUFS: events were lost; keep what came.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
