//! The pure part of `nslab web`'s packet stream: which cable a captured
//! packet crossed and which way, what is background noise, and how many
//! events a client gets per second (the rest are counted and reported as a
//! `sampling` event).

use crate::capture::decode::{Detail, Filter, Protocol, Summary};
use crate::capture::pcap::Direction;
use crate::graph::Layout;
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One packet on one cable, as the page gets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CableEvent {
    /// The cable's id in the layout (`black:bveth--bri0:bbrveth`).
    pub cable: String,
    /// The end it left and the end it went to (endpoint grammar).
    pub from: String,
    pub to: String,
    /// From the cable's `a` end to its `b` end (left to right in the picture).
    pub forward: bool,
    /// Where it was captured (`bri0:bbrveth`).
    #[serde(rename = "where")]
    pub label: String,
    /// Capture time, seconds since the epoch.
    pub ts: f64,
    /// The tcpdump-style decode, as `nslab capture` prints it.
    pub text: String,
    pub proto: String,
    pub len: u32,
    /// ARP, neighbour discovery, MLD or STP: what the page can hide.
    pub noise: bool,
}

/// A cable as seen from the end captured on it.
#[derive(Debug, Clone)]
pub struct CapturedEnd {
    /// The cable's id in the layout.
    pub cable: String,
    /// The captured end and the other one (endpoint grammar).
    pub mine: String,
    pub other: String,
    /// The captured end is the cable's `a` end.
    pub mine_is_a: bool,
}

impl CapturedEnd {
    /// The event of a packet seen at `label` going `dir` there at `ts`
    /// (seconds since the epoch): live (`nslab web`) and replayed alike.
    pub fn event(
        &self,
        label: &str,
        dir: Direction,
        ts: f64,
        len: u32,
        summary: &Summary,
        text: &str,
    ) -> CableEvent {
        // Sent by the captured end: it leaves there; received: it came from the other end.
        let (from, to, from_is_a) = match dir {
            Direction::Out => (&self.mine, &self.other, self.mine_is_a),
            Direction::In => (&self.other, &self.mine, !self.mine_is_a),
        };
        CableEvent {
            cable: self.cable.clone(),
            from: from.clone(),
            to: to.clone(),
            forward: from_is_a,
            label: label.to_string(),
            ts,
            text: text.to_string(),
            proto: summary.proto.to_string(),
            len,
            noise: is_noise(summary),
        }
    }
}

/// The cables of a layout by the end captured on each: one end per cable,
/// the bridge port (it lives in the host) or the host's end when there is one.
#[derive(Debug, Clone)]
pub struct CableMap {
    /// Capture label → its cable.
    by_label: HashMap<String, CapturedEnd>,
    targets: Vec<String>,
}

impl CableMap {
    pub fn new(layout: &Layout) -> CableMap {
        let kind = |id: &str| {
            layout
                .boxes
                .iter()
                .find(|b| b.id == id)
                .map(|b| b.kind)
                .unwrap_or("")
        };
        let mut by_label = HashMap::new();
        let mut targets = Vec::new();
        for c in &layout.cables {
            let rank = |box_id: &str| match kind(box_id) {
                "bridge" => 0,
                "host" => 1,
                _ => 2,
            };
            let a_side = rank(&c.from) <= rank(&c.to);
            let (mine, other) = if a_side { (&c.a, &c.b) } else { (&c.b, &c.a) };
            targets.push(mine.clone());
            by_label.insert(
                mine.clone(),
                CapturedEnd {
                    cable: c.id.clone(),
                    mine: mine.clone(),
                    other: other.clone(),
                    mine_is_a: a_side,
                },
            );
        }
        CableMap { by_label, targets }
    }

    /// The cable captured at `label`.
    pub fn end(&self, label: &str) -> Option<&CapturedEnd> {
        self.by_label.get(label)
    }

    /// What to capture on: one end of each cable, in the layout's order.
    pub fn targets(&self) -> &[String] {
        &self.targets
    }

    /// The event of a packet seen at `label` going `dir` there (None: not one of ours).
    pub fn event(
        &self,
        label: &str,
        dir: Direction,
        ts: (i64, u32),
        len: u32,
        summary: &Summary,
        text: &str,
    ) -> Option<CableEvent> {
        let ts = ts.0 as f64 + f64::from(ts.1) / 1e9;
        Some(
            self.by_label
                .get(label)?
                .event(label, dir, ts, len, summary, text),
        )
    }
}

/// Background chatter nobody sent on purpose: ARP, IPv6 neighbour discovery
/// and MLD (ICMPv6 types 130 to 143), IGMP (a bridge with an address sends
/// reports), STP and other 802.3/LLC frames.
pub fn is_noise(s: &Summary) -> bool {
    const IGMP: u8 = 2;
    match (&s.proto, &s.detail) {
        (Protocol::Arp, _) | (Protocol::OtherIp(IGMP), _) => true,
        (_, Detail::Llc { .. }) => true,
        (Protocol::Icmp6, Detail::Icmp6(i)) => (130..=143).contains(&i.icmp_type),
        _ => false,
    }
}

/// What one client asked to see: a capture filter, and whether noise is hidden.
#[derive(Debug, Clone, Default)]
pub struct ClientFilter {
    pub filter: Option<Filter>,
    pub hide_noise: bool,
}

impl ClientFilter {
    pub fn passes(&self, e: &CableEvent, s: &Summary) -> bool {
        !(self.hide_noise && e.noise) && self.filter.as_ref().is_none_or(|f| s.matches(f))
    }
}

/// Packets offered to one client in the last second and how many it got.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sampling {
    pub offered: u64,
    pub sent: u64,
    /// sent / offered: the share of packets shown.
    pub ratio: f64,
}

/// At most `max` events per one-second window; the first `max` of a window
/// pass. A window that dropped some reports it (a `sampling` event) when it ends.
#[derive(Debug, Clone)]
pub struct Sampler {
    max: u64,
    start: Instant,
    offered: u64,
    sent: u64,
}

const WINDOW: Duration = Duration::from_secs(1);

impl Sampler {
    pub fn new(max_per_second: u64, now: Instant) -> Sampler {
        Sampler {
            max: max_per_second,
            start: now,
            offered: 0,
            sent: 0,
        }
    }

    /// End the window if it is over: its report when it dropped packets.
    pub fn tick(&mut self, now: Instant) -> Option<Sampling> {
        if now.duration_since(self.start) < WINDOW {
            return None;
        }
        let report = (self.offered > self.sent).then(|| Sampling {
            offered: self.offered,
            sent: self.sent,
            ratio: self.sent as f64 / self.offered as f64,
        });
        self.start = now;
        self.offered = 0;
        self.sent = 0;
        report
    }

    /// A packet for the client: whether it is sent (call `tick` first).
    pub fn offer(&mut self) -> bool {
        self.offered += 1;
        if self.sent < self.max {
            self.sent += 1;
            true
        } else {
            false
        }
    }

    /// Packets the client lost before they were offered (it fell behind).
    pub fn lost(&mut self, n: u64) {
        self.offered += n;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::capture::decode::summarize;

    /// The layout of examples/objective2-bridge.yaml.
    pub(in crate::web) fn objective2() -> Layout {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/objective2-bridge.yaml");
        let lab = crate::lab::load(&file, "", true).unwrap();
        crate::graph::layout(&lab, &crate::graph::Overlay::of_file(&lab)).unwrap()
    }

    /// An Ethernet frame: IPv4 ICMP echo request from `src` to `dst`.
    pub(in crate::web) fn ping_frame(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .icmpv4_echo_request(7, 1);
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 8]).unwrap();
        v
    }

    fn arp_frame() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.extend([0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 192, 168, 3, 1]);
        f.extend([0, 0, 0, 0, 0, 0, 192, 168, 1, 1]);
        f
    }

    #[test]
    fn captures_the_bridge_port_of_each_cable_and_the_uplink_host_end() {
        let m = CableMap::new(&objective2());
        let mut t = m.targets().to_vec();
        t.sort();
        assert_eq!(
            t,
            [
                "bri0:bbrveth",
                "bri0:gbrveth",
                "bri0:wbrveth",
                &format!("host:{}", crate::topology::UPLINK_IF)
            ]
        );
    }

    #[test]
    fn a_ping_from_green_to_black_crosses_two_cables_towards_black() {
        let m = CableMap::new(&objective2());
        let f = ping_frame([192, 168, 3, 1], [192, 168, 1, 1]);
        let s = summarize(&f);
        // Received by the bridge port of green: it came from green.
        let e = m
            .event(
                "bri0:gbrveth",
                Direction::In,
                (10, 500_000_000),
                50,
                &s,
                "x",
            )
            .unwrap();
        assert_eq!(e.cable, "green:gveth--bri0:gbrveth");
        assert_eq!(
            (e.from.as_str(), e.to.as_str()),
            ("green:gveth", "bri0:gbrveth")
        );
        assert!(e.forward);
        assert_eq!(e.ts, 10.5);
        assert_eq!(e.proto, "icmp");
        assert!(!e.noise);
        // Sent by black's bridge port: towards black, right to left in the picture.
        let e = m
            .event("bri0:bbrveth", Direction::Out, (10, 0), 50, &s, "x")
            .unwrap();
        assert_eq!(e.cable, "black:bveth--bri0:bbrveth");
        assert_eq!(
            (e.from.as_str(), e.to.as_str()),
            ("bri0:bbrveth", "black:bveth")
        );
        assert!(!e.forward);
        assert_eq!(e.label, "bri0:bbrveth");
        // Somewhere that is not a captured end.
        assert!(
            m.event("green:gveth", Direction::In, (0, 0), 1, &s, "")
                .is_none()
        );
    }

    #[test]
    fn arp_is_noise_and_filters_apply_per_client() {
        let m = CableMap::new(&objective2());
        let arp = summarize(&arp_frame());
        let e = m
            .event("bri0:gbrveth", Direction::In, (0, 0), 42, &arp, "arp")
            .unwrap();
        assert!(e.noise, "{arp:?}");
        let quiet = ClientFilter {
            filter: None,
            hide_noise: true,
        };
        assert!(!quiet.passes(&e, &arp));
        assert!(ClientFilter::default().passes(&e, &arp));

        let s = summarize(&ping_frame([192, 168, 3, 1], [192, 168, 1, 1]));
        let p = m
            .event("bri0:gbrveth", Direction::In, (0, 0), 50, &s, "icmp")
            .unwrap();
        assert!(quiet.passes(&p, &s));
        let tcp_only = ClientFilter {
            filter: Some(Filter::new(Some("tcp"), None, None).unwrap()),
            hide_noise: false,
        };
        assert!(!tcp_only.passes(&p, &s));
        let to_black = ClientFilter {
            filter: Some(Filter::new(None, Some("192.168.1.1"), None).unwrap()),
            hide_noise: false,
        };
        assert!(to_black.passes(&p, &s));
        assert!(!to_black.passes(&p, &summarize(&ping_frame([10, 0, 0, 1], [10, 0, 0, 2]))));
    }

    #[test]
    fn sampler_passes_max_per_second_and_reports_the_ratio() {
        let t0 = Instant::now();
        let mut s = Sampler::new(3, t0);
        let sent: Vec<bool> = (0..5).map(|_| s.offer()).collect();
        assert_eq!(sent, [true, true, true, false, false]);
        assert_eq!(s.tick(t0 + Duration::from_millis(999)), None);
        s.lost(5);
        let r = s.tick(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!((r.offered, r.sent), (10, 3));
        assert!((r.ratio - 0.3).abs() < 1e-9);
        // A new window: everything passes again, and no report when nothing was dropped.
        assert!(s.offer() && s.offer());
        assert_eq!(s.tick(t0 + Duration::from_secs(2)), None);
    }
}
