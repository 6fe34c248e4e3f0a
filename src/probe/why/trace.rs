//! Firewall evidence: when routes and links say the probe should pass, send it
//! again with nftables tracing on in every namespace on its way (a marked
//! `nslab-trace` table whose first chains set `meta nftrace` on ICMP), and let
//! the kernel say which table, chain and rule dropped it. No rule is matched
//! statically: only a drop the kernel reports for this very echo counts.

use super::Reason;
use super::walk::Ctx;
use crate::kernel::netns;
use crate::kernel::nft::{self, NftSocket, TraceEvent};
use crate::kernel::seam::NsHandle;
use crate::probe::icmp::{self, PingOptions};
use std::net::IpAddr;
use std::time::Duration;

/// Name of the trace tables (families inet and bridge) in each namespace.
pub const TRACE_TABLE: &str = "nslab-trace";

pub(super) fn names<H: NsHandle>(cx: &Ctx<'_, H>, places: &[usize]) -> String {
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
    events: crate::kernel::nlsock::NlListener,
}

impl<H: NsHandle> Ctx<'_, H> {
    /// Send one echo from `src` to `dst` with tracing on at `places` (and the
    /// host, where bridges live). The first drop of that echo (or its reply)
    /// that the kernel reports becomes a [`Reason::FirewallDrop`].
    pub(super) fn trace(
        &mut self,
        src: usize,
        dst: IpAddr,
        tcp_port: Option<u16>,
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
            let Some(file) = self.places[p].conn.ns_file() else {
                result = Err(format!("{} has no namespace to trace in", self.name(p)));
                break;
            };
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
        let outcome = result.and_then(|()| self.traced_probe(src, dst, tcp_port, &traced, places));
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
        tcp_port: Option<u16>,
        traced: &[Traced],
        routed: &[usize],
    ) -> Result<Option<Reason>, String> {
        let file = self.places[src]
            .conn
            .ns_file()
            .ok_or_else(|| format!("{} has no namespace to send from", self.name(src)))?;
        let wait = Duration::from_millis(700);
        let probe = match tcp_port {
            Some(port) => {
                let sa = std::net::SocketAddr::new(dst, port);
                // Refused or timed out alike: the trace says what happened.
                netns::run_in(file, || crate::probe::tcp::tcp_connect(sa, wait))
                    .map_err(|e| e.to_string())?
                    .ok();
                Probe::Tcp(dst, port)
            }
            None => {
                let opts = PingOptions {
                    count: 1,
                    timeout: wait,
                    ..Default::default()
                };
                let report = netns::run_in(file, || icmp::ping(dst, &opts, &mut |_| {}))
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("the traced probe: {e}"))?;
                Probe::Echo(report.ident)
            }
        };
        // Events are queued by the time the reply (or the timeout) came; a
        // moment more for a drop on the far side of a slow hop.
        std::thread::sleep(Duration::from_millis(30));
        for t in traced {
            let events = nft::read_trace_events(&t.events);
            if let Some(e) = first_drop(&events, &probe) {
                let handle = if e.kind == 3 { e.handle } else { None };
                let ns = self.places[t.place].conn.ns_file();
                let rule = crate::runtime::firewall::blame(
                    self.lab,
                    &self.places[t.place].place,
                    &e.table,
                    &e.chain,
                    handle,
                    |table| {
                        let f = ns?;
                        netns::run_in(f, || {
                            NftSocket::new()
                                .and_then(|mut s| s.read_firewall_table(table))
                                .ok()
                                .flatten()
                        })
                        .ok()
                        .flatten()
                    },
                );
                return Ok(Some(Reason::FirewallDrop {
                    at: self.name(t.place),
                    family: e.family.clone(),
                    table: e.table.clone(),
                    chain: e.chain.clone(),
                    handle,
                    bridged: !routed.contains(&t.place),
                    rule: rule.map(|(line, text)| Box::new(super::BlamedRule { line, text })),
                }));
            }
        }
        Ok(None)
    }
}

/// What the traced probe was, to pick its packets out of the trace.
enum Probe {
    /// An echo with this identifier (and its reply).
    Echo(u16),
    /// A connection to this address and port (and the answers from it).
    Tcp(IpAddr, u16),
}

/// The destination (or, for an answer, source) address in a network header.
fn addr_at(net: &[u8], v4_off: usize, v6_off: usize) -> Option<IpAddr> {
    match net.first().map(|b| b >> 4) {
        Some(4) => <[u8; 4]>::try_from(net.get(v4_off..v4_off + 4)?)
            .ok()
            .map(IpAddr::from),
        Some(6) => <[u8; 16]>::try_from(net.get(v6_off..v6_off + 16)?)
            .ok()
            .map(IpAddr::from),
        _ => None,
    }
}

impl Probe {
    fn matches(&self, e: &TraceEvent) -> bool {
        match *self {
            Probe::Echo(ident) => e.echo_ident() == Some(ident),
            Probe::Tcp(dst, port) => match e.tcp_ports() {
                Some((_, dport)) if dport == port => addr_at(&e.network, 16, 24) == Some(dst),
                Some((sport, _)) if sport == port => addr_at(&e.network, 12, 8) == Some(dst),
                _ => false,
            },
        }
    }
}

/// The first event that drops the probe or its answer. Only the first event
/// of a pass through a hook carries the headers: the others are tied to it by
/// the trace id.
fn first_drop<'e>(events: &'e [TraceEvent], probe: &Probe) -> Option<&'e TraceEvent> {
    let ours: std::collections::HashSet<u32> = events
        .iter()
        .filter(|e| probe.matches(e))
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
        let d = first_drop(&events, &Probe::Echo(7)).expect("a drop");
        assert_eq!((d.table.as_str(), d.kind), ("f", 1));
        assert!(first_drop(&events[..3], &Probe::Echo(7)).is_none());
        assert!(first_drop(&events, &Probe::Echo(9)).is_none());
        // The drop itself carries no headers: its trace id ties it to the echo.
        let mut bare = ev("fw", 1, None, Some(0), 7);
        bare.transport.clear();
        let tied = vec![ev("fw", 3, Some(-1), None, 7), bare];
        assert_eq!(
            first_drop(&tied, &Probe::Echo(7)).map(|d| d.table.as_str()),
            Some("fw")
        );
    }

    #[test]
    fn tcp_probes_match_by_port_and_address() {
        // IPv4 header (protocol 6, 10.0.0.1 -> 10.0.0.2), then TCP 40000 -> 80.
        let mut net = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0];
        net.extend([10, 0, 0, 1, 10, 0, 0, 2]);
        let syn = TraceEvent {
            table: "f".into(),
            kind: 3,
            verdict: Some(0),
            network: net.clone(),
            transport: vec![0x9c, 0x40, 0, 80],
            ..Default::default()
        };
        let dst: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(Probe::Tcp(dst, 80).matches(&syn));
        assert!(!Probe::Tcp(dst, 81).matches(&syn));
        assert!(!Probe::Tcp("10.0.0.3".parse().unwrap(), 80).matches(&syn));
        assert!(!Probe::Echo(0x9c40).matches(&syn));
    }
}
