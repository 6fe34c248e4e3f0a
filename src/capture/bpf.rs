//! Capture filters ([`Filter`]: protocol, host, port) compiled to classic
//! BPF, attached to each capture socket so the kernel drops what cannot
//! match before it is copied into the ring.
//!
//! The program is a conservative pre-filter: it drops only frames the
//! user-space check ([`Summary::matches`](super::decode::Summary::matches))
//! would drop, and lets through what it cannot judge (802.1Q tags, IPv6
//! extension headers, UDP to tunnel ports whose inner packet a decoder may
//! look at). User space still applies the filter to every frame, so what a
//! capture shows is the same with or without the program. A load past the
//! end of a frame makes the kernel drop it, so fields are loaded in the
//! order the user-space check needs them (source port before destination).

use super::decode::Filter;
use super::decode::Proto;
use std::net::IpAddr;

/// One classic BPF instruction, laid out as `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcodes (linux/filter.h, linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LD_H_IND: u16 = 0x48;
const LD_W_LEN: u16 = 0x80;
const LDX_B_MSH: u16 = 0xb1;
const SUB_X: u16 = 0x1c;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// `SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT`: 1 if the kernel moved a tag to metadata.
const VLAN_TAG_PRESENT: u32 = (-0x1000i32 + 48) as u32;

/// UDP ports of encapsulations (VXLAN, Linux's old VXLAN port, Geneve): their
/// frames always go to user space, where a decoder may read the inner packet.
pub const TUNNEL_UDP_PORTS: [u16; 3] = [4789, 8472, 6081];

const ETH_IPV4: u32 = 0x0800;
const ETH_IPV6: u32 = 0x86dd;
const ETH_ARP: u32 = 0x0806;
const VLAN_TPIDS: [u32; 3] = [0x8100, 0x88a8, 0x9100];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    Next,
    Accept,
    Reject,
    Label(usize),
}

/// A tiny assembler: forward jumps to labels, accept and reject at the end.
#[derive(Default)]
struct Asm {
    ops: Vec<(u16, To, To, u32)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn stmt(&mut self, code: u16, k: u32) {
        self.ops.push((code, To::Next, To::Next, k));
    }
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.ops.push((code, jt, jf, k));
    }
    fn goto(&mut self, to: To) {
        self.ops.push((JA, to, To::Next, 0));
    }
    fn label(&mut self) -> To {
        self.labels.push(None);
        To::Label(self.labels.len() - 1)
    }
    fn here(&mut self, l: To) {
        if let To::Label(i) = l {
            self.labels[i] = Some(self.ops.len());
        }
    }

    /// The program, or None if a jump is too long for its 8-bit offset.
    fn finish(self) -> Option<Vec<Insn>> {
        let accept = self.ops.len();
        let reject = accept + 1;
        let pos = |to: To, i: usize| -> Option<usize> {
            let t = match to {
                To::Next => i + 1,
                To::Accept => accept,
                To::Reject => reject,
                To::Label(l) => self.labels.get(l).copied().flatten()?,
            };
            t.checked_sub(i + 1)
        };
        let mut out = Vec::with_capacity(self.ops.len() + 2);
        for (i, &(code, jt, jf, k)) in self.ops.iter().enumerate() {
            out.push(if code == JA {
                Insn {
                    code,
                    jt: 0,
                    jf: 0,
                    k: u32::try_from(pos(jt, i)?).ok()?,
                }
            } else {
                Insn {
                    code,
                    jt: u8::try_from(pos(jt, i)?).ok()?,
                    jf: u8::try_from(pos(jf, i)?).ok()?,
                    k,
                }
            });
        }
        // Accept the whole frame.
        out.push(Insn {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: u32::MAX,
        });
        out.push(Insn {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: 0,
        });
        Some(out)
    }
}

/// The IP protocol number a protocol word asks for.
fn ip_number(p: Proto) -> Option<u32> {
    match p {
        Proto::Icmp => Some(1),
        Proto::Tcp => Some(6),
        Proto::Udp => Some(17),
        Proto::Icmp6 => Some(58),
        Proto::Arp | Proto::Ip | Proto::Ip6 => None,
    }
}

/// Compiles `f` (None for the empty filter, or a program too long to jump over).
pub fn compile(f: &Filter) -> Option<Vec<Insn>> {
    if f.is_empty() {
        return None;
    }
    let mut a = Asm::default();
    let (v4, v6, arp) = (a.label(), a.label(), a.label());
    // Tagged frames: user space decodes the inner ethertype.
    a.stmt(LD_W_ABS, VLAN_TAG_PRESENT);
    a.jump(JEQ_K, 0, To::Next, To::Accept);
    a.stmt(LD_H_ABS, 12);
    for t in VLAN_TPIDS {
        a.jump(JEQ_K, t, To::Accept, To::Next);
    }
    a.jump(JEQ_K, ETH_IPV4, v4, To::Next);
    a.jump(JEQ_K, ETH_IPV6, v6, To::Next);
    a.jump(JEQ_K, ETH_ARP, arp, To::Reject);

    // IPv4: protocol at 23, addresses at 26 and 30, ports after the IHL.
    a.here(v4);
    if matches!(f.proto, Some(Proto::Arp | Proto::Ip6)) {
        a.goto(To::Reject);
    } else {
        let (not_udp, frag) = (a.label(), a.label());
        a.stmt(LD_B_ABS, 23);
        a.jump(JEQ_K, 17, To::Next, not_udp);
        a.stmt(LD_H_ABS, 20);
        a.jump(JSET_K, 0x1fff, not_udp, To::Next);
        tunnel_ports(&mut a, Some(14), not_udp);
        a.here(not_udp);
        match f.host {
            Some(IpAddr::V4(h)) => {
                let ok = a.label();
                a.stmt(LD_W_ABS, 26);
                a.jump(JEQ_K, u32::from(h), ok, To::Next);
                a.stmt(LD_W_ABS, 30);
                a.jump(JEQ_K, u32::from(h), ok, To::Reject);
                a.here(ok);
            }
            Some(IpAddr::V6(_)) => a.goto(To::Reject),
            None => {}
        }
        if let Some(n) = f.proto.and_then(ip_number) {
            a.stmt(LD_B_ABS, 23);
            a.jump(JEQ_K, n, To::Next, To::Reject);
        }
        if let Some(p) = f.port {
            // Ports only in TCP and UDP, and only in a first fragment.
            a.stmt(LD_B_ABS, 23);
            a.jump(JEQ_K, 6, frag, To::Next);
            a.jump(JEQ_K, 17, frag, To::Reject);
            a.here(frag);
            a.stmt(LD_H_ABS, 20);
            a.jump(JSET_K, 0x1fff, To::Reject, To::Next);
            a.stmt(LDX_B_MSH, 14);
            a.stmt(LD_H_IND, 14);
            a.jump(JEQ_K, u32::from(p), To::Accept, To::Next);
            a.stmt(LD_H_IND, 16);
            a.jump(JEQ_K, u32::from(p), To::Accept, To::Reject);
        } else {
            a.goto(To::Accept);
        }
    }

    // IPv6: next header at 20, addresses at 22 and 38, ports at 54 when no
    // extension header comes first.
    a.here(v6);
    if matches!(f.proto, Some(Proto::Arp | Proto::Ip)) {
        a.goto(To::Reject);
    } else {
        let not_udp = a.label();
        a.stmt(LD_B_ABS, 20);
        a.jump(JEQ_K, 17, To::Next, not_udp);
        tunnel_ports(&mut a, None, not_udp);
        a.here(not_udp);
        match f.host {
            Some(IpAddr::V6(h)) => {
                let (src_no, ok) = (a.label(), a.label());
                let w = h.octets();
                let words: Vec<u32> = w
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                for (i, word) in words.iter().enumerate() {
                    a.stmt(LD_W_ABS, 22 + 4 * i as u32);
                    let last = i == 3;
                    a.jump(JEQ_K, *word, if last { ok } else { To::Next }, src_no);
                }
                a.here(src_no);
                for (i, word) in words.iter().enumerate() {
                    a.stmt(LD_W_ABS, 38 + 4 * i as u32);
                    let last = i == 3;
                    a.jump(JEQ_K, *word, if last { ok } else { To::Next }, To::Reject);
                }
                a.here(ok);
            }
            Some(IpAddr::V4(_)) => a.goto(To::Reject),
            None => {}
        }
        let n = f.proto.and_then(ip_number);
        if n.is_some() || f.port.is_some() {
            let judge = a.label();
            a.stmt(LD_B_ABS, 20);
            // Another next header may be an extension header: user space walks them.
            for final_proto in [1, 6, 17, 58] {
                a.jump(JEQ_K, final_proto, judge, To::Next);
            }
            a.goto(To::Accept);
            a.here(judge);
            if let Some(n) = n {
                a.jump(JEQ_K, n, To::Next, To::Reject);
            }
            if let Some(p) = f.port {
                let ports = a.label();
                a.jump(JEQ_K, 6, ports, To::Next);
                a.jump(JEQ_K, 17, ports, To::Reject);
                a.here(ports);
                a.stmt(LD_H_ABS, 54);
                a.jump(JEQ_K, u32::from(p), To::Accept, To::Next);
                a.stmt(LD_H_ABS, 56);
                a.jump(JEQ_K, u32::from(p), To::Accept, To::Reject);
            } else {
                a.goto(To::Accept);
            }
        } else {
            a.goto(To::Accept);
        }
    }

    // ARP: sender and target protocol addresses at 28 and 38.
    a.here(arp);
    if f.port.is_some() || f.proto.is_some_and(|p| p != Proto::Arp) {
        a.goto(To::Reject);
    } else {
        match f.host {
            Some(IpAddr::V4(h)) => {
                a.stmt(LD_W_ABS, 28);
                a.jump(JEQ_K, u32::from(h), To::Accept, To::Next);
                a.stmt(LD_W_ABS, 38);
                a.jump(JEQ_K, u32::from(h), To::Accept, To::Reject);
            }
            Some(IpAddr::V6(_)) => a.goto(To::Reject),
            None => a.goto(To::Accept),
        }
    }
    a.finish()
}

/// Accepts a UDP datagram to or from a tunnel port, else goes on at `skip`.
/// `Some(ip)`: IPv4 at `ip`, ports after the IHL; `None`: IPv6 without
/// extension headers, ports at 54. Only if the ports are in the frame (a
/// load past its end would drop it, and user space may match it otherwise).
fn tunnel_ports(a: &mut Asm, v4_at: Option<u32>, skip: To) {
    let load = match v4_at {
        Some(ip) => {
            a.stmt(LDX_B_MSH, ip);
            a.stmt(LD_W_LEN, 0);
            a.stmt(SUB_X, 0);
            a.jump(JGE_K, ip + 4, To::Next, skip);
            LD_H_IND
        }
        None => {
            a.stmt(LD_W_LEN, 0);
            a.jump(JGE_K, 58, To::Next, skip);
            LD_H_ABS
        }
    };
    let first = v4_at.unwrap_or(54);
    for (i, at) in [first, first + 2].into_iter().enumerate() {
        a.stmt(load, at);
        for (j, port) in TUNNEL_UDP_PORTS.iter().enumerate() {
            let last = j + 1 == TUNNEL_UDP_PORTS.len();
            let miss = if last && i == 1 { skip } else { To::Next };
            a.jump(JEQ_K, u32::from(*port), To::Accept, miss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::summarize;
    use etherparse::PacketBuilder;

    const M1: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const M2: [u8; 6] = [2, 0, 0, 0, 0, 2];

    /// Runs a program over a frame as the kernel does (a load past the end
    /// drops the frame): the number of bytes kept, 0 for dropped.
    fn run(prog: &[Insn], pkt: &[u8], vlan_present: bool) -> u32 {
        let load = |off: u32, n: usize| -> Option<u32> {
            let off = off as usize;
            let b = pkt.get(off..off.checked_add(n)?)?;
            Some(b.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x)))
        };
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            let r = match i.code {
                LD_W_ABS if i.k == VLAN_TAG_PRESENT => Some(u32::from(vlan_present)),
                LD_W_ABS => load(i.k, 4),
                LD_H_ABS => load(i.k, 2),
                LD_B_ABS => load(i.k, 1),
                LD_H_IND => load(x.wrapping_add(i.k), 2),
                LD_W_LEN => Some(pkt.len() as u32),
                LDX_B_MSH => match load(i.k, 1) {
                    Some(v) => {
                        x = 4 * (v & 0xf);
                        Some(a)
                    }
                    None => None,
                },
                SUB_X => Some(a.wrapping_sub(x)),
                JA => {
                    pc += i.k as usize;
                    Some(a)
                }
                JEQ_K | JGE_K | JSET_K => {
                    let yes = match i.code {
                        JEQ_K => a == i.k,
                        JGE_K => a >= i.k,
                        _ => a & i.k != 0,
                    };
                    pc += usize::from(if yes { i.jt } else { i.jf });
                    Some(a)
                }
                RET_K => return i.k,
                c => panic!("opcode {c:#x} not in the interpreter"),
            };
            match r {
                Some(v) => a = v,
                None => return 0,
            }
        }
    }

    fn frames() -> Vec<(&'static str, Vec<u8>)> {
        let v4 = || PacketBuilder::ethernet2(M1, M2).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
        let v6 = || {
            let a: [u8; 16] = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
            let b: [u8; 16] = "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
            PacketBuilder::ethernet2(M1, M2).ipv6(a, b, 64)
        };
        let out = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            f(&mut v);
            v
        };
        let inner = out(&|v| {
            PacketBuilder::ethernet2(M2, M1)
                .ipv4([192, 168, 9, 1], [192, 168, 9, 2], 64)
                .tcp(1234, 80, 1, 1000)
                .write(v, b"x")
                .unwrap()
        });
        let mut vxlan = vec![8, 0, 0, 0, 0, 0, 1, 0];
        vxlan.extend_from_slice(&inner);
        let mut list = vec![
            (
                "icmp4",
                out(&|v| v4().icmpv4_echo_request(1, 2).write(v, b"ping").unwrap()),
            ),
            ("udp4", out(&|v| v4().udp(5353, 53).write(v, b"q").unwrap())),
            (
                "tcp4",
                out(&|v| v4().tcp(40000, 80, 1, 1000).write(v, b"GET").unwrap()),
            ),
            (
                "vxlan4",
                out(&|v| v4().udp(50000, 4789).write(v, &vxlan).unwrap()),
            ),
            (
                "icmp6",
                out(&|v| v6().icmpv6_echo_request(1, 2).write(v, b"ping").unwrap()),
            ),
            ("udp6", out(&|v| v6().udp(53, 5353).write(v, b"a").unwrap())),
            (
                "tcp6",
                out(&|v| v6().tcp(80, 40000, 1, 1000).write(v, b"OK").unwrap()),
            ),
            (
                "vlan",
                out(&|v| {
                    PacketBuilder::ethernet2(M1, M2)
                        .single_vlan(etherparse::VlanId::try_new(7).unwrap())
                        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                        .udp(1, 53)
                        .write(v, b"")
                        .unwrap()
                }),
            ),
        ];
        // ARP request: who has 10.0.0.2, tell 10.0.0.1.
        let mut arp = [M2, M1].concat();
        arp[..6].copy_from_slice(&[0xff; 6]);
        arp.extend([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend(M1);
        arp.extend([10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        list.push(("arp", arp));
        // IPv6 with a hop-by-hop header before UDP.
        let mut hbh = list[5].1.clone();
        hbh[20] = 0;
        hbh.splice(54..54, [17, 0, 1, 4, 0, 0, 0, 0]);
        let plen = u16::from_be_bytes([hbh[18], hbh[19]]) + 8;
        hbh[18..20].copy_from_slice(&plen.to_be_bytes());
        list.push(("hbh6", hbh));
        // A later fragment of a UDP datagram (offset 8 units): no ports.
        let mut frag = list[1].1.clone();
        frag[20..22].copy_from_slice(&1u16.to_be_bytes());
        list.push(("frag4", frag));
        // LLDP: neither IP nor ARP.
        let mut lldp = [[0x01, 0x80, 0xc2, 0, 0, 0x0e], M1].concat();
        lldp.extend([0x88, 0xcc, 2, 7, 4, 2, 0, 0, 0, 0, 1]);
        list.push(("lldp", lldp));
        list
    }

    fn filters() -> Vec<Filter> {
        let protos = [
            None,
            Some("arp"),
            Some("icmp"),
            Some("icmp6"),
            Some("tcp"),
            Some("udp"),
            Some("ip"),
            Some("ip6"),
        ];
        let hosts = [
            None,
            Some("10.0.0.1"),
            Some("10.0.0.2"),
            Some("10.0.0.9"),
            Some("fd00::1"),
            Some("fd00::2"),
            Some("fd00::9"),
            Some("192.168.9.1"),
        ];
        let ports = [
            None,
            Some("53"),
            Some("80"),
            Some("4789"),
            Some("40000"),
            Some("99"),
        ];
        let mut out = Vec::new();
        for p in protos {
            for h in hosts {
                for port in ports {
                    out.push(Filter::new(p, h, port).unwrap());
                }
            }
        }
        out
    }

    /// Every frame and every prefix of it, every filter: what user space
    /// would keep, the program keeps; on whole frames it can judge (no tag,
    /// tunnel or extension header) it keeps exactly that.
    #[test]
    fn the_program_keeps_what_user_space_keeps() {
        let frames = frames();
        let mut dropped = 0;
        for f in filters() {
            let Some(prog) = compile(&f) else {
                assert!(f.is_empty());
                continue;
            };
            assert!(prog.len() < 4096, "{f:?}");
            for (name, frame) in &frames {
                for cut in 0..=frame.len() {
                    let pkt = &frame[..cut];
                    let wants = summarize(pkt).matches(&f);
                    let keeps = run(&prog, pkt, false) != 0;
                    assert!(
                        keeps || !wants,
                        "{name} cut at {cut}: {f:?} matches but BPF drops it"
                    );
                    assert_ne!(run(&prog, pkt, true), 0, "tagged frames go to user space");
                    if cut == frame.len() && !["vlan", "vxlan4", "hbh6"].contains(name) {
                        assert_eq!(keeps, wants, "{name}: {f:?}");
                    }
                    dropped += usize::from(!keeps);
                }
            }
        }
        assert!(
            dropped > 1000,
            "the programs drop next to nothing: {dropped}"
        );
    }

    #[test]
    fn the_empty_filter_has_no_program_and_accept_keeps_whole_frames() {
        assert_eq!(compile(&Filter::default()), None);
        let prog = compile(&"udp".parse().unwrap()).unwrap();
        assert_eq!(prog[prog.len() - 2].k, u32::MAX);
        assert_eq!(prog[prog.len() - 1].k, 0);
    }
}
