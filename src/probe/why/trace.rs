//! Firewall evidence: when routes and links say the probe should pass, send it
//! again with nftables tracing on in every namespace on its way (a marked
//! `nslab-trace` table whose first chains set `meta nftrace` on ICMP), and let
//! the kernel say which table, chain and rule dropped it. No rule is matched
//! statically: only a drop the kernel reports for this very echo counts.

use super::Reason;
use super::walk::Ctx;
use crate::kernel::netns;
use crate::kernel::nft::{self, NftSocket, TraceEvent};
use crate::probe::icmp::{self, PingOptions};
use std::net::IpAddr;
use std::time::Duration;

/// Name of the trace tables (families inet and bridge) in each namespace.
pub const TRACE_TABLE: &str = "nslab-trace";

pub(super) fn names(cx: &Ctx, places: &[usize]) -> String {
    let mut v: Vec<String> = Vec::new();
    for &p in places {
        let n = cx.name(p);
        if !v.contains(&n) {
            v.push(n);
        }
    }
    v.join(", ")
}

/// One namespace being traced: its nftables socket (to remove the table) and
/// the listener of its trace events.
struct Traced {
    place: usize,
    nft: NftSocket,
    events: netlink_sys::Socket,
}

impl Ctx<'_> {
    /// Send one echo from `src` to `dst` with tracing on at `places` (and the
    /// host, where bridges live). The first drop of that echo (or its reply)
    /// that the kernel reports becomes a [`Reason::FirewallDrop`].
    pub(super) fn trace(
        &mut self,
        src: usize,
        dst: IpAddr,
        places: &[usize],
    ) -> Result<Option<Reason>, String> {
        let mark = self.lab.mark();
        let mut on: Vec<usize> = Vec::new();
        for &p in places
            .iter()
            .chain(self.idx(&crate::topology::Place::Host).iter())
        {
            if !on.contains(&p) {
                on.push(p);
            }
        }
        let mut traced: Vec<Traced> = Vec::new();
        let mut result = Ok(());
        for &p in &on {
            let file = &self.places[p].conn.file;
            let opened = netns::run_in(file, || -> Result<Traced, String> {
                let events = nft::trace_listener().map_err(|e| e.to_string())?;
                let nft = NftSocket::new().map_err(|e| e.to_string())?;
                Ok(Traced {
                    place: p,
                    nft,
                    events,
                })
            });
            match opened.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok(mut t) => match t.nft.start_trace(TRACE_TABLE, &mark) {
                    Ok(()) => traced.push(t),
                    Err(e) => {
                        result = Err(format!("in {}: {e}", self.name(p)));
                        break;
                    }
                },
                Err(e) => {
                    result = Err(format!("in {}: {e}", self.name(p)));
                    break;
                }
            }
        }
        let outcome = result.and_then(|()| self.traced_probe(src, dst, &traced, places));
        // Remove the tables whatever happened; a leftover is ours and marked.
        for t in &mut traced {
            let _ = t.nft.stop_trace(TRACE_TABLE, &mark);
        }
        outcome
    }

    fn traced_probe(
        &self,
        src: usize,
        dst: IpAddr,
        traced: &[Traced],
        routed: &[usize],
    ) -> Result<Option<Reason>, String> {
        let opts = PingOptions {
            count: 1,
            timeout: Duration::from_millis(700),
            ..Default::default()
        };
        let file = &self.places[src].conn.file;
        let report = netns::run_in(file, || icmp::ping(dst, &opts, &mut |_| {}))
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("the traced probe: {e}"))?;
        // Events are queued by the time the reply (or the timeout) came; a
        // moment more for a drop on the far side of a slow hop.
        std::thread::sleep(Duration::from_millis(30));
        for t in traced {
            let events = nft::read_trace_events(&t.events);
            if let Some(e) = first_drop(&events, report.ident) {
                return Ok(Some(Reason::FirewallDrop {
                    at: self.name(t.place),
                    family: e.family.clone(),
                    table: e.table.clone(),
                    chain: e.chain.clone(),
                    handle: if e.kind == 3 { e.handle } else { None },
                    bridged: !routed.contains(&t.place),
                }));
            }
        }
        Ok(None)
    }
}

/// The first event that drops an echo (or echo reply) with identifier `ident`.
/// Only the first event of a pass through a hook carries the headers: the
/// others are tied to it by the trace id.
fn first_drop(events: &[TraceEvent], ident: u16) -> Option<&TraceEvent> {
    let ours: std::collections::HashSet<u32> = events
        .iter()
        .filter(|e| e.echo_ident() == Some(ident))
        .map(|e| e.id)
        .collect();
    events
        .iter()
        .filter(|e| e.table != TRACE_TABLE && ours.contains(&e.id))
        .find(|e| e.is_drop())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        table: &str,
        kind: u32,
        verdict: Option<i32>,
        policy: Option<u32>,
        id: u16,
    ) -> TraceEvent {
        let mut transport = vec![8, 0, 0, 0];
        transport.extend(id.to_be_bytes());
        TraceEvent {
            id: u32::from(id) * 100,
            family: "inet".into(),
            table: table.into(),
            chain: "input".into(),
            kind,
            handle: Some(4),
            verdict,
            policy,
            network: vec![],
            transport,
        }
    }

    #[test]
    fn only_drops_of_this_echo_count() {
        let events = vec![
            ev(TRACE_TABLE, 3, Some(-1), None, 7),
            ev("f", 3, Some(1), None, 7),
            ev("other", 3, Some(0), None, 8),
            ev("f", 1, None, Some(0), 7),
        ];
        let d = first_drop(&events, 7).expect("a drop");
        assert_eq!((d.table.as_str(), d.kind), ("f", 1));
        assert!(first_drop(&events[..3], 7).is_none());
        assert!(first_drop(&events, 9).is_none());
        // The drop itself carries no headers: its trace id ties it to the echo.
        let mut bare = ev("fw", 1, None, Some(0), 7);
        bare.transport.clear();
        let tied = vec![ev("fw", 3, Some(-1), None, 7), bare];
        assert_eq!(first_drop(&tied, 7).map(|d| d.table.as_str()), Some("fw"));
    }
}
