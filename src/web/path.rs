//! The path a probe's packets really took, from what the capture saw: the
//! packets of one flow during the probe's time window, in order, with the
//! addresses they carried on each cable (so NAT rewrites show). Pure: the
//! server hands it the events it collected.

use super::events::CableEvent;
use crate::capture::decode::{Detail, Protocol, Summary, TcpFlags};
use serde::Serialize;
use std::collections::HashSet;
use std::net::IpAddr;

/// Which packets belong to a probe. Matched by what NAT leaves alone: the
/// ICMP echo identifier, the TCP ports of the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Flow {
    /// An echo request/reply exchange with this identifier, and the ICMP
    /// errors sent back to its source.
    Icmp { ident: u16 },
    /// A TCP connection to `port` on `dst`: its first SYN there names the
    /// client's port, then every segment between the two ports belongs.
    Tcp { dst: IpAddr, port: u16 },
}

/// One packet of the flow on one cable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    /// 1 for the first packet seen, in capture time order.
    pub n: usize,
    pub cable: String,
    /// `ab` from the cable's `a` end to its `b` end, `ba` the other way.
    pub dir: &'static str,
    pub from: String,
    pub to: String,
    /// The addresses (and ports) the packet carried on this cable.
    pub src: String,
    pub dst: String,
    /// `request`, `reply`, `reset`, `error` (an ICMP error) or `segment`.
    pub kind: &'static str,
    pub text: String,
    pub ts: f64,
}

fn addr(a: Option<IpAddr>, port: Option<u16>) -> String {
    match (a, port) {
        (Some(IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => "?".into(),
    }
}

/// The hops of `flow` among `seen` (in any order), sorted by capture time.
pub fn path(seen: &[(CableEvent, Summary)], flow: &Flow) -> Vec<Hop> {
    let mut order: Vec<&(CableEvent, Summary)> = seen.iter().collect();
    order.sort_by(|a, b| a.0.ts.total_cmp(&b.0.ts));
    // The source addresses the flow used, as seen on each cable (NAT may change them).
    let mut sources: HashSet<IpAddr> = HashSet::new();
    let mut client_port: Option<u16> = None;
    let mut hops = Vec::new();
    for (e, s) in order {
        let kind = match (flow, &s.detail) {
            (Flow::Icmp { ident }, Detail::Icmp(i) | Detail::Icmp6(i)) => {
                let v6 = s.proto == Protocol::Icmp6;
                let (req, rep) = if v6 { (128, 129) } else { (8, 0) };
                if i.id == Some(*ident) && i.icmp_type == req {
                    sources.extend(s.src);
                    "request"
                } else if i.id == Some(*ident) && i.icmp_type == rep {
                    "reply"
                } else if i.id.is_none() && s.dst.is_some_and(|d| sources.contains(&d)) {
                    "error"
                } else {
                    continue;
                }
            }
            (Flow::Tcp { dst, port }, Detail::Tcp(t)) => {
                let (sp, dp) = (s.src_port, s.dst_port);
                let syn = t.flags.contains(TcpFlags::SYN) && !t.flags.contains(TcpFlags::ACK);
                if client_port.is_none() && syn && dp == Some(*port) && s.dst == Some(*dst) {
                    client_port = sp;
                }
                let Some(cp) = client_port else { continue };
                let pair = (sp, dp);
                if pair != (Some(cp), Some(*port)) && pair != (Some(*port), Some(cp)) {
                    continue;
                }
                if t.flags.contains(TcpFlags::RST) {
                    "reset"
                } else {
                    "segment"
                }
            }
            _ => continue,
        };
        hops.push(Hop {
            n: hops.len() + 1,
            cable: e.cable.clone(),
            dir: if e.forward { "ab" } else { "ba" },
            from: e.from.clone(),
            to: e.to.clone(),
            src: addr(s.src, s.src_port),
            dst: addr(s.dst, s.dst_port),
            kind,
            text: e.text.clone(),
            ts: e.ts,
        });
    }
    hops
}

/// The place of an endpoint (`black:bveth` → `black`).
pub fn place_of(end: &str) -> &str {
    end.rsplit_once(':').map_or(end, |(p, _)| p)
}

/// Where a why-not reason stops the flow in the path: the last hop that
/// touches `at` (it reached `at`, or left it), else None (the packets never
/// got near it, or nothing was captured).
pub fn hop_at(hops: &[Hop], at: &str) -> Option<usize> {
    hops.iter()
        .rposition(|h| place_of(&h.to) == at || place_of(&h.from) == at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::summarize;
    use crate::capture::pcap::Direction;
    use crate::web::events::CableMap;

    fn map() -> CableMap {
        CableMap::new(&crate::web::events::tests::objective2())
    }

    fn icmp(src: [u8; 4], dst: [u8; 4], id: u16, reply: bool) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64);
        let b = if reply {
            b.icmpv4_echo_reply(id, 1)
        } else {
            b.icmpv4_echo_request(id, 1)
        };
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 8]).unwrap();
        v
    }

    fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), syn: bool, rst: bool) -> Vec<u8> {
        let mut b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.0, dst.0, 64)
            .tcp(src.1, dst.1, 1, 100);
        if syn {
            b = b.syn();
        }
        if rst {
            b = b.rst().ack(2);
        }
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    fn ev(m: &CableMap, label: &str, dir: Direction, t: f64, f: &[u8]) -> (CableEvent, Summary) {
        let s = summarize(f);
        let ts = (t.trunc() as i64, (t.fract() * 1e9) as u32);
        (m.event(label, dir, ts, f.len() as u32, &s, "t").unwrap(), s)
    }

    #[test]
    fn a_ping_goes_green_bri0_black_and_back_in_time_order() {
        let m = map();
        let (g, b) = ([192, 168, 3, 1], [192, 168, 1, 1]);
        let seen = vec![
            // Out of order on purpose, and another ping's packets that do not belong.
            ev(&m, "bri0:bbrveth", Direction::In, 1.3, &icmp(b, g, 7, true)),
            ev(
                &m,
                "bri0:gbrveth",
                Direction::In,
                1.1,
                &icmp(g, b, 7, false),
            ),
            ev(
                &m,
                "bri0:bbrveth",
                Direction::Out,
                1.2,
                &icmp(g, b, 7, false),
            ),
            ev(
                &m,
                "bri0:gbrveth",
                Direction::Out,
                1.4,
                &icmp(b, g, 7, true),
            ),
            ev(
                &m,
                "bri0:wbrveth",
                Direction::In,
                1.25,
                &icmp(g, b, 8, false),
            ),
        ];
        let hops = path(&seen, &Flow::Icmp { ident: 7 });
        let got: Vec<(&str, &str, &str)> = hops
            .iter()
            .map(|h| (h.cable.as_str(), h.dir, h.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("green:gveth--bri0:gbrveth", "ab", "request"),
                ("black:bveth--bri0:bbrveth", "ba", "request"),
                ("black:bveth--bri0:bbrveth", "ab", "reply"),
                ("green:gveth--bri0:gbrveth", "ba", "reply"),
            ]
        );
        assert_eq!(
            (hops[0].n, hops[0].src.as_str(), hops[0].dst.as_str()),
            (1, "192.168.3.1", "192.168.1.1")
        );
        assert_eq!(hops[3].n, 4);
        assert!(path(&seen, &Flow::Icmp { ident: 9 }).is_empty());
    }

    #[test]
    fn nat_rewrites_keep_the_flow_and_show_the_new_addresses() {
        let m = map();
        // The source is rewritten between the two cables (as masquerade does).
        let seen = vec![
            ev(
                &m,
                "bri0:gbrveth",
                Direction::In,
                1.0,
                &icmp([10, 0, 0, 2], [1, 1, 1, 1], 5, false),
            ),
            ev(
                &m,
                "bri0:bbrveth",
                Direction::Out,
                1.1,
                &icmp([9, 9, 9, 9], [1, 1, 1, 1], 5, false),
            ),
        ];
        let hops = path(&seen, &Flow::Icmp { ident: 5 });
        assert_eq!(hops.len(), 2);
        assert_eq!(
            (hops[0].src.as_str(), hops[1].src.as_str()),
            ("10.0.0.2", "9.9.9.9")
        );
    }

    #[test]
    fn a_tcp_connect_to_a_closed_port_ends_in_a_reset_from_the_server() {
        let m = map();
        let (g, b) = ([192, 168, 3, 1], [192, 168, 1, 1]);
        let dst: IpAddr = "192.168.1.1".parse().unwrap();
        let seen = vec![
            // A segment of an older connection on the same server port does not belong.
            ev(
                &m,
                "bri0:gbrveth",
                Direction::In,
                0.9,
                &tcp((g, 4000), (b, 81), false, false),
            ),
            ev(
                &m,
                "bri0:gbrveth",
                Direction::In,
                1.0,
                &tcp((g, 5000), (b, 81), true, false),
            ),
            ev(
                &m,
                "bri0:bbrveth",
                Direction::Out,
                1.1,
                &tcp((g, 5000), (b, 81), true, false),
            ),
            ev(
                &m,
                "bri0:bbrveth",
                Direction::In,
                1.2,
                &tcp((b, 81), (g, 5000), false, true),
            ),
            ev(
                &m,
                "bri0:gbrveth",
                Direction::Out,
                1.3,
                &tcp((b, 81), (g, 5000), false, true),
            ),
        ];
        let hops = path(&seen, &Flow::Tcp { dst, port: 81 });
        let kinds: Vec<&str> = hops.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, ["segment", "segment", "reset", "reset"]);
        assert_eq!(hops[2].cable, "black:bveth--bri0:bbrveth");
        assert_eq!(hops[2].from, "black:bveth");
        assert_eq!(hops[2].src, "192.168.1.1:81");
        assert_eq!(hop_at(&hops, "black"), Some(2));
        assert_eq!(hop_at(&hops, "white"), None);
    }
}
