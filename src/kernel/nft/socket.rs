//! [`NftSocket`]: the NETLINK_NETFILTER socket, its batches, dumps and
//! generation-checked changes.

use std::io;
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkPayload};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, GenAttribute, GenMessage, NfTablesMessage, RuleAttribute,
    RuleMessage, TableMessage,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::protocols::NETLINK_NETFILTER;

use super::decode::{
    chain_info, decode_rule_attributes, is_our_nat_chain, parse_message, split_messages, table_info,
};
use super::wire::{
    NlMsg, Step, StepKind, batch_begin, batch_end, delete_family_table_step, delete_table_step,
    nat_table_steps, nf_message, serialize_messages,
};
use super::{
    BaseChainInfo, DEFAULT_TIMEOUT, Family, GENERATION_ATTEMPTS, Masquerade, NAT_CHAIN, NAT_FAMILY,
    NatRules, NftError, TableInfo, io_err, protocol, validate_all, validate_mark,
    validate_table_name,
};
use crate::kernel::nlsock::{self, NlSocket, ext_ack_text, msg_tlv_text};

/// A NETLINK_NETFILTER socket, bound to the network namespace of the thread that
/// created it.
#[derive(Debug)]
pub struct NftSocket {
    sock: NlSocket,
}

/// What the receive loop should do after a message.
enum Flow {
    More,
    Stop,
}

/// A dump whose result the kernel marked inconsistent (NLM_F_DUMP_INTR).
pub(super) struct Interrupted;

impl NftSocket {
    /// Open the socket in the calling thread's network namespace, with extended ACKs
    /// and a receive timeout of [`DEFAULT_TIMEOUT`].
    pub fn new() -> Result<Self, NftError> {
        let sock = NlSocket::open(NETLINK_NETFILTER, DEFAULT_TIMEOUT)
            .map_err(|e| io_err("open NETLINK_NETFILTER socket", e))?;
        Ok(NftSocket { sock })
    }

    /// Set the receive timeout (at least one millisecond).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), NftError> {
        self.sock
            .set_timeout(timeout)
            .map_err(|e| io_err("set receive timeout", e))
    }

    fn take_seqs(&mut self, n: usize) -> u32 {
        self.sock.take_seqs(n)
    }

    fn send(&self, op: &str, buf: &[u8]) -> Result<(), NftError> {
        self.sock.send(buf).map_err(|e| io_err(op, e))
    }

    /// Feed every reply whose sequence number is in `seqs` to `handle` until it says
    /// stop (or, with `nowait`, until nothing is queued). Replies to earlier requests
    /// (a timed-out one) are skipped.
    fn receive(
        &mut self,
        op: &str,
        seqs: &[u32],
        nowait: bool,
        handle: impl FnMut(NlMsg) -> Result<Flow, NftError>,
    ) -> Result<(), NftError> {
        let r = self.receive_inner(op, seqs, nowait, handle);
        self.sock.release();
        r
    }

    fn receive_inner(
        &mut self,
        op: &str,
        seqs: &[u32],
        nowait: bool,
        mut handle: impl FnMut(NlMsg) -> Result<Flow, NftError>,
    ) -> Result<(), NftError> {
        let timeout = self.sock.timeout();
        loop {
            let dgram = match self.sock.recv(nowait) {
                Ok(Some(d)) => d,
                Ok(None) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(NftError::Timeout {
                        op: op.to_string(),
                        timeout,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Other => {
                    return Err(protocol(op, e.to_string()));
                }
                Err(e) => return Err(io_err(op, e)),
            };
            for raw in split_messages(dgram).map_err(|r| protocol(op, r))? {
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
    pub(super) fn run_batch(
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
        self.sock.ensure_sndbuf(buf.len());
        self.sock.ensure_rcvbuf(steps.len());
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
                let text = ext_ack_text(msg.header.flags, &err.header);
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

    /// The chains and the rules of `table FAMILY NAME`, one dump each (the rule
    /// dump is filtered by table in the kernel; callers filter again in case an
    /// older kernel ignores the filter). Err(Interrupted): read again.
    #[allow(clippy::type_complexity)]
    pub(super) fn dump_table_contents(
        &mut self,
        op: &str,
        family: NetfilterProtoFamily,
        name: &str,
    ) -> Result<
        Result<
            (
                Vec<(NetfilterHeader, NfTablesMessage)>,
                Vec<(NetfilterHeader, NfTablesMessage)>,
            ),
            Interrupted,
        >,
        NftError,
    > {
        let chains = match self.dump_once(
            op,
            family,
            NfTablesMessage::GetChain(ChainMessage {
                attributes: vec![ChainAttribute::Table(name.to_string())],
            }),
        )? {
            Ok(c) => c,
            Err(i) => return Ok(Err(i)),
        };
        let rules = match self.dump_once(
            op,
            family,
            NfTablesMessage::GetRule(RuleMessage {
                attributes: vec![RuleAttribute::Table(name.to_string())],
            }),
        )? {
            Ok(r) => r,
            Err(i) => return Ok(Err(i)),
        };
        Ok(Ok((chains, rules)))
    }

    /// A dump request (NLM_F_DUMP), collecting the nf_tables messages until DONE.
    pub(super) fn dump_once(
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
            if nlsock::dump_interrupted(msg.header.flags) {
                interrupted = true;
            }
            match msg.payload {
                NetlinkPayload::Done(done) => {
                    if done.code < 0 {
                        return Err(NftError::Kernel {
                            op: op.to_string(),
                            errno: -done.code,
                            msg: msg_tlv_text(&done.extended_ack),
                        });
                    }
                    Ok(Flow::Stop)
                }
                NetlinkPayload::Error(err) => match err.code {
                    Some(code) => Err(NftError::Kernel {
                        op: op.to_string(),
                        errno: -code.get(),
                        msg: ext_ack_text(msg.header.flags, &err.header),
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
                    msg: ext_ack_text(msg.header.flags, &err.header),
                }),
                None => Ok(Flow::Stop),
            },
            _ => Ok(Flow::More),
        })?;
        id.ok_or_else(|| protocol(op, "no generation id in the reply"))
    }

    pub(super) fn dump_tables_once(
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
    pub(super) fn consistent<T>(
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

    /// The masquerade rules of `table inet NAME`, decoded; `None` if there is no such
    /// table. Rules of other shapes are counted in [`NatRules::unknown_rules`].
    pub fn read_nat_rules(&mut self, name: &str) -> Result<Option<NatRules>, NftError> {
        validate_table_name(name)?;
        let op = format!("read nftables table inet {name}");
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
        let legacy = tables
            .iter()
            .find(|t| t.family == Family::Ip && t.name == name)
            .cloned();
        let Some(table) = tables
            .into_iter()
            .find(|t| t.family == Family::Inet && t.name == name)
        else {
            // Only the old `ip` table: what the planner must replace.
            return Ok(Ok(legacy.map(|t| NatRules {
                comment: t.comment,
                legacy: true,
                ..NatRules::default()
            })));
        };
        let (chains, rules) = match self.dump_table_contents(op, NAT_FAMILY, name)? {
            Ok(d) => d,
            Err(i) => return Ok(Err(i)),
        };
        let mut out = NatRules {
            comment: table.comment,
            legacy: legacy.is_some(),
            ..NatRules::default()
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
            match base {
                Some(b) if is_our_nat_chain(&b) => out.chain_ok = true,
                _ => out.other_chains.push(chain),
            }
        }
        for (h, m) in &rules {
            let NfTablesMessage::NewRule(r) = m else {
                continue;
            };
            if Family::from(h.family) != Family::Inet {
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

    /// Create `table inet NAME` (comment MARK), its nat postrouting chain and one
    /// masquerade rule per entry, in one atomic batch. If the table exists, fails with
    /// [`NftError::Exists`] and changes nothing.
    pub fn create_nat_table(
        &mut self,
        name: &str,
        mark: &str,
        rules: &[Masquerade],
    ) -> Result<(), NftError> {
        validate_all(name, mark, rules)?;
        let op = format!("create nftables table inet {name}");
        self.run_batch(&op, None, nat_table_steps(name, mark, rules))
    }

    /// Replace `table inet NAME` (and an old `table ip NAME`) by a fresh one, in one batch: delete the old table (only
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
        self.delete_legacy(name, mark)?;
        let op = format!("replace nftables table inet {name}");
        self.checked_batch(&op, at, Family::Inet, name, mark, |exists| {
            let mut steps = Vec::new();
            if exists {
                steps.push(delete_table_step(name));
            }
            steps.extend(nat_table_steps(name, mark, rules));
            Some(steps)
        })
        .map(|_| ())
    }

    /// Delete `table inet NAME` (and an old `table ip NAME`) if its comment is MARK. `Ok(false)` if there is no such
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
        let legacy = self.delete_legacy(name, mark)?;
        let op = format!("delete nftables table inet {name}");
        self.checked_batch(&op, at, Family::Inet, name, mark, |exists| {
            exists.then(|| vec![delete_table_step(name)])
        })
        .map(|gone| gone || legacy)
    }

    /// Delete `table ip NAME` as versions before the inet table wrote it, if it
    /// carries MARK (one that does not is left alone: not ours).
    fn delete_legacy(&mut self, name: &str, mark: &str) -> Result<bool, NftError> {
        let op = format!("delete nftables table ip {name} (the old NAT table)");
        let ipv4 = NetfilterProtoFamily::IPv4;
        match self.checked_batch(&op, None, Family::Ip, name, mark, |exists| {
            exists.then(|| vec![delete_family_table_step(ipv4, name)])
        }) {
            Err(NftError::Foreign { .. }) => Ok(false),
            r => r,
        }
    }

    /// Make the marked `table inet NAME` hold exactly what `steps` builds, or
    /// delete it when `empty`: one atomic batch guarded by the generation id (the
    /// loss, publish and firewall tables). A table of that name without MARK is
    /// [`NftError::Foreign`] and is left alone.
    pub(super) fn set_inet_table(
        &mut self,
        name: &str,
        mark: &str,
        empty: bool,
        steps: impl Fn() -> Vec<Step>,
    ) -> Result<(), NftError> {
        let op = format!("set nftables table inet {name}");
        self.checked_batch(&op, None, Family::Inet, name, mark, |exists| {
            let mut v = Vec::new();
            if exists {
                v.push(delete_family_table_step(NetfilterProtoFamily::Inet, name));
            }
            if !empty {
                v.extend(steps());
            }
            (!v.is_empty()).then_some(v)
        })
        .map(|_| ())
    }

    /// The ruleset's generation id. Every commit in the namespace, by anyone, changes
    /// it; pass it to the `*_at` methods to act only on the state that was observed.
    pub fn generation(&mut self) -> Result<u32, NftError> {
        self.generation_for("read nftables generation id")
    }

    /// Read the generation and `table FAMILY NAME`; refuse a foreign table; send the steps
    /// from `plan(exists)` in a batch tied to that generation. With `at`, the state
    /// must still be at that generation and there is one attempt; without, a batch
    /// refused with ERESTART is re-checked and retried. Returns whether a batch was sent.
    pub(super) fn checked_batch(
        &mut self,
        op: &str,
        at: Option<u32>,
        family: Family,
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
                .find(|t| t.family == family && t.name == name);
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

/// An nftables socket inside the namespace of `ns` (made on a throwaway thread
/// that entered it; the socket keeps that namespace).
pub fn socket_in(ns: &std::fs::File) -> Result<NftSocket, NftError> {
    crate::kernel::netns::run_in(ns, NftSocket::new).map_err(|source| NftError::Io {
        op: "enter the namespace".into(),
        source,
    })?
}
