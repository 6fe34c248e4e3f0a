//! The tcpdump text of a `Summary`: the line `tcpdump -nn` prints after the
//! timestamp.

use super::{
    ArpInfo, Detail, IPPROTO_IGMP, IPPROTO_TCP, IPPROTO_UDP, IcmpInfo, Layer, Protocol, Summary,
    TcpFlags, TcpInfo,
};
use std::fmt;
use std::net::IpAddr;

/// `Some(x)` as `x`, `None` as `?` (only for fields a short packet lacks).
struct Opt<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("?"),
        }
    }
}

impl Summary {
    fn has_ports(&self) -> bool {
        matches!(self.proto, Protocol::Tcp | Protocol::Udp)
    }

    /// `IP 10.0.0.1.5353 > 10.0.0.2.53: ` (ports only for TCP/UDP).
    fn write_ip_prefix(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = matches!(self.src, Some(IpAddr::V6(_)));
        f.write_str(if v6 { "IP6 " } else { "IP " })?;
        write!(f, "{}", Opt(self.src))?;
        if let (true, Some(p)) = (self.has_ports(), self.src_port) {
            write!(f, ".{p}")?;
        }
        write!(f, " > {}", Opt(self.dst))?;
        if let (true, Some(p)) = (self.has_ports(), self.dst_port) {
            write!(f, ".{p}")?;
        }
        f.write_str(": ")
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = self.vlan {
            write!(f, "vlan {v}, ")?;
        }
        match &self.detail {
            Detail::Llc { length } => write!(f, "802.3 LLC, length {length}"),
            Detail::Ethertype { length } => {
                write!(
                    f,
                    "ethertype 0x{:04x}, length {length}",
                    self.ethertype.unwrap_or(0)
                )
            }
            Detail::Arp(a) => fmt_arp(f, a),
            Detail::Truncated { layer, length } | Detail::Invalid { layer, length } => {
                let what = if matches!(self.detail, Detail::Truncated { .. }) {
                    "truncated"
                } else {
                    "invalid header"
                };
                if self.src.is_some() && *layer != Layer::Arp && self.proto != Protocol::Arp {
                    self.write_ip_prefix(f)?;
                }
                write!(f, "{} {what}, length {length}", layer.name())
            }
            Detail::Ip {
                proto,
                length,
                fragment,
            } => {
                self.write_ip_prefix(f)?;
                match proto {
                    &IPPROTO_IGMP => f.write_str("igmp")?,
                    p => write!(f, "ip-proto-{p}")?,
                }
                if *fragment {
                    f.write_str(" fragment")?;
                }
                write!(f, ", length {length}")
            }
            Detail::Udp { length } => {
                self.write_ip_prefix(f)?;
                match &self.vxlan {
                    // tcpdump's words; it starts the inner frame on a new
                    // line, here it follows on the same one (one line a frame).
                    Some(v) => {
                        let i = if v.flags & 0x08 != 0 { "I" } else { "." };
                        write!(
                            f,
                            "VXLAN, flags [{i}] (0x{:02x}), vni {}: {}",
                            v.flags, v.vni, v.inner
                        )
                    }
                    None => write!(f, "UDP, length {length}"),
                }
            }
            Detail::Tcp(t) => {
                self.write_ip_prefix(f)?;
                fmt_tcp(f, t)
            }
            Detail::Icmp(i) => {
                self.write_ip_prefix(f)?;
                fmt_icmp4(f, i)
            }
            Detail::Icmp6(i) => {
                self.write_ip_prefix(f)?;
                fmt_icmp6(f, i)
            }
        }
    }
}

fn fmt_arp(f: &mut fmt::Formatter<'_>, a: &ArpInfo) -> fmt::Result {
    f.write_str("ARP, ")?;
    match (a.sender_ip, a.target_ip, a.sender_mac, a.target_mac) {
        (Some(spa), Some(tpa), Some(sha), Some(tha)) => match a.op {
            1 => {
                write!(f, "Request who-has {tpa}")?;
                // tcpdump shows the target MAC only when a request sets one.
                if !tha.is_zero() {
                    write!(f, " ({tha})")?;
                }
                write!(f, " tell {spa}")?;
            }
            2 => write!(f, "Reply {spa} is-at {sha}")?,
            3 => write!(f, "Reverse Request who-is {tha} tell {sha}")?,
            4 => write!(f, "Reverse Reply {tha} at {tpa}")?,
            op => write!(f, "Unknown (op {op}) {spa} > {tpa}")?,
        },
        _ => write!(
            f,
            "hardware {} proto 0x{:04x} op {}",
            a.htype, a.ptype, a.op
        )?,
    }
    write!(f, ", length {}", a.length)
}

fn fmt_tcp(f: &mut fmt::Formatter<'_>, t: &TcpInfo) -> fmt::Result {
    write!(f, "Flags [{}]", t.flags)?;
    // Like tcpdump: seq only when it means something (data, SYN, FIN, RST).
    if t.length > 0 {
        let len = u32::try_from(t.length).unwrap_or(u32::MAX);
        write!(f, ", seq {}:{}", t.seq, t.seq.wrapping_add(len))?;
    } else if t.flags.0 & (TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST) != 0 {
        write!(f, ", seq {}", t.seq)?;
    }
    if t.flags.contains(TcpFlags::ACK) {
        write!(f, ", ack {}", t.ack)?;
    }
    write!(f, ", win {}", t.window)?;
    if t.flags.contains(TcpFlags::URG) {
        write!(f, ", urg {}", t.urgent)?;
    }
    if !t.options.is_empty() {
        write!(f, ", options [{}]", t.options.join(","))?;
    }
    write!(f, ", length {}", t.length)
}

fn fmt_icmp4(f: &mut fmt::Formatter<'_>, i: &IcmpInfo) -> fmt::Result {
    f.write_str("ICMP ")?;
    let d = Opt(i.quoted.as_ref().map(|q| q.dst));
    let (id, seq) = (Opt(i.id), Opt(i.seq));
    match (i.icmp_type, i.code) {
        (0, _) => write!(f, "echo reply, id {id}, seq {seq}")?,
        (8, _) => write!(f, "echo request, id {id}, seq {seq}")?,
        (3, 2) => write!(
            f,
            "{d} protocol {} unreachable",
            Opt(i.quoted.as_ref().map(|q| q.proto))
        )?,
        (3, 3) => match &i.quoted {
            Some(q) => match (q.proto, q.dst_port) {
                (IPPROTO_TCP, Some(p)) => write!(f, "{d} tcp port {p} unreachable")?,
                (IPPROTO_UDP, Some(p)) => write!(f, "{d} udp port {p} unreachable")?,
                (proto, Some(p)) => write!(f, "{d} protocol {proto} port {p} unreachable")?,
                (proto, None) => write!(f, "{d} protocol {proto} port unreachable")?,
            },
            None => write!(f, "{d} port unreachable")?,
        },
        (3, 4) => write!(f, "{d} unreachable - need to frag (mtu {})", Opt(i.mtu))?,
        (3, code) => {
            let text = match code {
                0 => "net {} unreachable",
                1 => "host {} unreachable",
                5 => "{} unreachable - source route failed",
                6 => "net {} unreachable - unknown",
                7 => "host {} unreachable - unknown",
                8 => "{} unreachable - source host isolated",
                9 => "net {} unreachable - admin prohibited",
                10 => "host {} unreachable - admin prohibited",
                11 => "net {} unreachable - tos prohibited",
                12 => "host {} unreachable - tos prohibited",
                13 => "host {} unreachable - admin prohibited filter",
                14 => "host {} unreachable - host precedence violation",
                15 => "host {} unreachable - precedence cutoff",
                _ => "{} unreachable - #",
            };
            let (before, after) = text.split_once("{}").unwrap_or((text, ""));
            write!(f, "{before}{d}{after}")?;
            if code > 15 {
                write!(f, "{code}")?;
            }
        }
        (4, _) => f.write_str("source quench")?,
        (5, code) => {
            let (kind, to) = match code {
                0 => ("redirect", "net"),
                1 => ("redirect", "host"),
                2 => ("redirect-tos", "net"),
                3 => ("redirect-tos", "host"),
                _ => ("redirect-#", "host"),
            };
            write!(f, "{kind} {d} to {to} {}", Opt(i.gateway))?;
        }
        (9, _) => f.write_str("router advertisement")?,
        (10, _) => f.write_str("router solicitation")?,
        (11, 0) => f.write_str("time exceeded in-transit")?,
        (11, 1) => f.write_str("ip reassembly time exceeded")?,
        (11, code) => write!(f, "time exceeded-#{code}")?,
        (12, 0) => write!(f, "parameter problem - octet {}", Opt(i.pointer))?,
        (12, code) => write!(f, "parameter problem - code {code}")?,
        (13, _) => write!(f, "time stamp query id {id} seq {seq}")?,
        (14, _) => write!(f, "time stamp reply id {id} seq {seq}")?,
        (15, _) => write!(f, "information request id {id} seq {seq}")?,
        (16, _) => write!(f, "information reply id {id} seq {seq}")?,
        (17, _) => write!(f, "address mask request id {id} seq {seq}")?,
        (18, _) => write!(f, "address mask reply id {id} seq {seq}")?,
        (t, _) => write!(f, "type-#{t}")?,
    }
    write!(f, ", length {}", i.length)
}

fn fmt_icmp6(f: &mut fmt::Formatter<'_>, i: &IcmpInfo) -> fmt::Result {
    f.write_str("ICMP6, ")?;
    let d = Opt(i.quoted.as_ref().map(|q| q.dst));
    match i.icmp_type {
        1 => {
            f.write_str("destination unreachable, ")?;
            match i.code {
                0 => write!(f, "unreachable route {d}")?,
                1 => write!(f, "unreachable prohibited {d}")?,
                2 => write!(
                    f,
                    "beyond scope {d}, source address {}",
                    Opt(i.quoted.as_ref().map(|q| q.src))
                )?,
                3 => write!(f, "unreachable address {d}")?,
                4 => {
                    f.write_str("unreachable port")?;
                    if let Some(q) = &i.quoted {
                        match (q.proto, q.dst_port) {
                            (IPPROTO_TCP, Some(p)) => write!(f, ", {d} tcp port {p}")?,
                            (IPPROTO_UDP, Some(p)) => write!(f, ", {d} udp port {p}")?,
                            (proto, _) => write!(f, ", {d} protocol {proto}")?,
                        }
                    }
                }
                5 => write!(f, "source address failed ingress/egress policy {d}")?,
                6 => write!(f, "reject route to destination {d}")?,
                c => write!(f, "unknown unreach code ({c})")?,
            }
        }
        2 => write!(f, "packet too big, mtu {}", Opt(i.mtu))?,
        3 => {
            f.write_str("time exceeded in-transit")?;
            match i.code {
                0 => write!(f, " for {d}")?,
                1 => f.write_str(" (reassembly)")?,
                c => write!(f, " (code {c})")?,
            }
        }
        4 => {
            f.write_str("parameter problem, ")?;
            let p = Opt(i.pointer);
            match i.code {
                0 => write!(f, "erroneous - octet {p}")?,
                1 => write!(f, "next header - octet {p}")?,
                2 => write!(f, "option - octet {p}")?,
                c => write!(f, "code {c} - octet {p}")?,
            }
        }
        128 => write!(f, "echo request, id {}, seq {}", Opt(i.id), Opt(i.seq))?,
        129 => write!(f, "echo reply, id {}, seq {}", Opt(i.id), Opt(i.seq))?,
        130 => f.write_str("multicast listener query")?,
        131 => f.write_str("multicast listener report")?,
        132 => f.write_str("multicast listener done")?,
        133 => f.write_str("router solicitation")?,
        134 => f.write_str("router advertisement")?,
        135 => {
            f.write_str("neighbor solicitation")?;
            if let Some(t) = i.target {
                write!(f, ", who has {t}")?;
            }
        }
        136 => {
            f.write_str("neighbor advertisement")?;
            if let Some(t) = i.target {
                write!(f, ", tgt is {t}")?;
            }
        }
        137 => write!(f, "redirect, {} to {}", Opt(i.target), Opt(i.gateway))?,
        143 => {
            f.write_str("multicast listener report v2")?;
            if let Some(n) = i.records {
                write!(f, ", {n} group record(s)")?;
            }
        }
        t => write!(f, "unknown icmp6 type ({t})")?,
    }
    write!(f, ", length {}", i.length)
}

/// Cross-check against the real tcpdump: frames go through our pcap writer,
/// `tcpdump -nn -t -S -r` prints them, and each of its lines must agree with
/// our Summary on the meaningful fields (and, for the stable core formats,
/// word for word). Needs tcpdump installed (`apt-get install -y tcpdump`).
#[cfg(test)]
mod tcpdump_compat {
    use crate::capture::decode::tests::*;
    use crate::capture::decode::*;
    use crate::capture::pcap::PcapWriter;
    use etherparse::TcpOptionElement;
    use std::process::Command;

    /// What both lines must agree on.
    #[derive(Debug, PartialEq)]
    struct Fields<'a> {
        /// `IP a.p > b.q` (family, addresses, ports), or "" for ARP.
        head: &'a str,
        /// First word after the head: ICMP, ICMP6, Flags, UDP, ARP, ...
        kind: &'a str,
        length: Option<&'a str>,
        flags: Option<&'a str>,
        seq: Option<&'a str>,
        ack: Option<&'a str>,
    }

    fn after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        let (_, rest) = line.split_once(key)?;
        rest.split([',', ' ', ']']).next()
    }

    fn fields(line: &str) -> Fields<'_> {
        let (head, rest) = match line.split_once(": ") {
            Some((h, r)) if h.starts_with("IP") => (h, r),
            _ => ("", line),
        };
        Fields {
            head,
            kind: rest.split([' ', ',']).next().unwrap_or(""),
            length: line.rsplit_once(", length ").map(|(_, n)| n.trim()),
            flags: after(line, "Flags ["),
            seq: after(line, ", seq "),
            ack: after(line, ", ack "),
        }
    }

    /// `frames`: (bytes, whether tcpdump's text must be identical); a frame
    /// shorter than its IP header says is written as cut by a snaplen.
    fn tcpdump_lines(frames: &[(Vec<u8>, bool)]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("compat.pcap");
        let file = std::fs::File::create(&path).unwrap();
        let mut w = PcapWriter::new(std::io::BufWriter::new(file)).unwrap();
        for (i, (f, _)) in frames.iter().enumerate() {
            let wire = match summarize(f).detail {
                Detail::Truncated { length, .. } => f.len().max(14 + 20 + length),
                _ => f.len(),
            };
            w.write((1_700_000_000 + i as i64, 0), wire as u32, f)
                .unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let out = Command::new("tcpdump")
            .args(["-nn", "-t", "-S", "-r"])
            .arg(&path)
            .output()
            .expect("tcpdump must be installed for this test (apt-get install -y tcpdump)");
        assert!(
            out.status.success(),
            "tcpdump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// tcpdump prints a VXLAN frame as two lines (the outer packet and
    /// header, then the inner frame); ours is one line joining them with ": ".
    #[test]
    fn vxlan_agrees_with_tcpdump() {
        let arp = arp_frame(1, [2, 0, 0, 0, 0, 2], "10.0.0.1", [0; 6], "10.0.0.2");
        let frames: Vec<(Vec<u8>, bool)> = vec![
            (vxlan_frame(0x08, 4097, &echo_request()), true),
            (vxlan_frame(0x08, 16_777_215, &arp), true),
            (
                vxlan_frame(0x08, 1, &tcp_frame("S", 1, 0, 1, &[], &[])),
                true,
            ),
        ];
        let lines = tcpdump_lines(&frames);
        assert_eq!(
            lines.len(),
            2 * frames.len(),
            "tcpdump printed:\n{}",
            lines.join("\n")
        );
        for ((frame, _), two) in frames.iter().zip(lines.chunks(2)) {
            let s = summarize(frame);
            let vni = s.vxlan.as_ref().expect("VXLAN").vni;
            assert!(two[0].ends_with(&format!("vni {vni}")), "{}", two[0]);
            assert_eq!(s.to_string(), format!("{}: {}", two[0], two[1]));
        }
    }

    #[test]
    fn lines_agree_with_tcpdump() {
        let opts = [
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(3_000_000_000, 0),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ];
        let mut padded_arp = arp_frame(
            2,
            [2, 0, 0, 0, 0, 1],
            "203.0.113.1",
            [2, 0, 0, 0, 0, 2],
            "203.0.113.2",
        );
        padded_arp.resize(60, 0);
        let syn = tcp_frame("S", 1, 0, 1, &[], &[]);
        // (frame, whether tcpdump's text must be identical)
        let frames: Vec<(Vec<u8>, bool)> = vec![
            (
                arp_frame(1, [2, 0, 0, 0, 0, 2], "192.168.3.1", [0; 6], "192.168.1.1"),
                true,
            ),
            (
                arp_frame(
                    2,
                    [2, 0, 0, 0, 0, 1],
                    "192.168.1.1",
                    [2, 0, 0, 0, 0, 2],
                    "192.168.3.1",
                ),
                true,
            ),
            (padded_arp, true),
            (echo_request(), true),
            (port_unreachable(), true),
            (icmp_error(3, 0, [0; 4]), true),
            (icmp_error(3, 1, [0; 4]), true),
            (icmp_error(3, 2, [0; 4]), true),
            (icmp_error(3, 4, [0, 0, 5, 0xdc]), true),
            (icmp_error(3, 13, [0; 4]), true),
            (icmp_error(11, 0, [0; 4]), true),
            (icmp_error(11, 1, [0; 4]), true),
            (icmp_error(5, 1, [10, 0, 0, 253]), true),
            (icmp_error(12, 0, [9, 0, 0, 0]), false),
            (icmp6_echo(), true),
            (neighbor_solicitation(), true),
            (neighbor_advertisement(), true),
            (router_solicitation(), true),
            (router_advertisement(), true),
            (mld_report(), true),
            (syn.clone(), true),
            (tcp_frame("S", 123, 0, 64240, &opts, &[]), true),
            (tcp_frame("S.", 456, 124, 65160, &opts, &[]), true),
            (tcp_frame(".", 124, 457, 502, &[], &[]), true),
            (tcp_frame("P.", 124, 457, 502, &[], b"0123456789"), true),
            (tcp_frame("F.", 134, 457, 502, &[], &[]), true),
            (tcp_frame("R", 0, 0, 0, &[], &[]), true),
            (tcp_frame("R.", 0, 124, 0, &[], &[]), true),
            (udp_frame(40001, 40002), true),
            // Cut inside the TCP header: both only agree on the addresses.
            (syn[..14 + 20 + 10].to_vec(), false),
        ];
        let lines = tcpdump_lines(&frames);
        assert_eq!(
            lines.len(),
            frames.len(),
            "tcpdump printed:\n{}",
            lines.join("\n")
        );
        for ((frame, exact), theirs) in frames.iter().zip(&lines) {
            let ours = summarize(frame).to_string();
            if *exact {
                assert_eq!(&ours, theirs);
            } else {
                let (o, t) = (fields(&ours), fields(theirs));
                assert_eq!(o.head, t.head, "\nours:    {ours}\ntcpdump: {theirs}");
                if !ours.contains("truncated") {
                    assert_eq!(
                        (o.kind, o.length),
                        (t.kind, t.length),
                        "\nours:    {ours}\ntcpdump: {theirs}"
                    );
                }
            }
            // Field-level agreement holds for every line that decodes fully.
            if !ours.contains("truncated") {
                assert_eq!(
                    fields(&ours),
                    fields(theirs),
                    "\nours:    {ours}\ntcpdump: {theirs}"
                );
            }
        }
    }
}
