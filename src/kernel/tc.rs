//! Queueing disciplines over rtnetlink: a `tbf` root qdisc for a rate, a `netem`
//! root qdisc for delay/jitter (where the kernel has sch_netem), their removal,
//! and a probe for netem. netlink-packet-route 0.34 encodes only `ingress` and
//! `fq_codel` options, so the TCA_OPTIONS of tbf and netem are built here, byte
//! for byte as iproute2's `tc` builds them (unit-tested against its requests).
//!
//! tbf needs no rate table: the rate's link layer is set to ethernet, and the
//! kernel (sch_tbf.c) then computes transmission times itself.

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage};

use super::netlink::{NlError, Rtnl};

const TCA_OPTIONS: u16 = 2;
// include/uapi/linux/pkt_sched.h
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_RATE64: u16 = 8;
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// The kernel's scheduler clock: one tick is 64 ns (PSCHED_SHIFT 6), which is
/// what /proc/net/psched says (1000 / 64 ticks per microsecond ... times 1000).
const NS_PER_TICK: f64 = 64.0;
/// tc's cell_log for the default MTU of 2047 (tc_calc_rtable): kept so the
/// bytes equal tc's, though without a rate table the kernel does not use it.
const CELL_LOG: u8 = 3;

/// A token bucket: rate in bytes per second, bucket (burst) and queue limit in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    pub rate_bytes: u64,
    pub burst: u32,
    pub limit: u32,
}

/// netem: delay and jitter in microseconds, loss as a fraction of u32::MAX,
/// queue limit in packets, an optional rate in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Netem {
    pub delay_us: u64,
    pub jitter_us: u64,
    pub loss: u32,
    pub limit: u32,
    pub rate_bytes: Option<u64>,
}

/// Ticks of the scheduler clock for `us` microseconds, as tc computes them
/// (tc_core_time2tick: an unsigned count of microseconds times 15.625).
fn ticks(us: f64) -> u32 {
    let us = us.min(f64::from(u32::MAX)) as u32;
    (f64::from(us) * 1000.0 / NS_PER_TICK).min(f64::from(u32::MAX)) as u32
}

/// A loss in hundredths of a percent as netem's probability (of u32::MAX).
pub fn netem_probability(bp: u32) -> u32 {
    (f64::from(bp.min(10_000)) / 10_000.0 * f64::from(u32::MAX)) as u32
}

fn nla(ty: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut v = Vec::with_capacity((len + 3) & !3);
    v.extend_from_slice(&(len as u16).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(value);
    v.resize((len + 3) & !3, 0);
    v
}

/// struct tc_ratespec for a rate in bytes per second (u32::MAX when larger:
/// the 64-bit attribute carries it then).
fn ratespec(rate_bytes: u64) -> Vec<u8> {
    let mut v = vec![CELL_LOG, TC_LINKLAYER_ETHERNET];
    v.extend_from_slice(&0u16.to_ne_bytes()); // overhead
    v.extend_from_slice(&(-1i16).to_ne_bytes()); // cell_align
    v.extend_from_slice(&0u16.to_ne_bytes()); // mpu
    v.extend_from_slice(&(rate_bytes.min(u64::from(u32::MAX)) as u32).to_ne_bytes());
    v
}

/// The TCA_OPTIONS payload of tbf: TCA_TBF_PARMS (struct tc_tbf_qopt),
/// TCA_TBF_BURST and, for rates of 2^32 bytes/s and more, TCA_TBF_RATE64.
pub fn tbf_options(t: &Tbf) -> Vec<u8> {
    let mut qopt = ratespec(t.rate_bytes);
    qopt.extend_from_slice(&[0u8; 12]); // peakrate
    qopt.extend_from_slice(&t.limit.to_ne_bytes());
    // buffer: the time to send a full bucket at the rate, in ticks.
    let us = 1e6 * f64::from(t.burst) / t.rate_bytes.max(1) as f64;
    qopt.extend_from_slice(&ticks(us).to_ne_bytes());
    qopt.extend_from_slice(&0u32.to_ne_bytes()); // mtu
    let mut out = nla(TCA_TBF_PARMS, &qopt);
    out.extend(nla(TCA_TBF_BURST, &t.burst.to_ne_bytes()));
    if t.rate_bytes >= 1 << 32 {
        out.extend(nla(TCA_TBF_RATE64, &t.rate_bytes.to_ne_bytes()));
    }
    out
}

/// The TCA_OPTIONS payload of netem: struct tc_netem_qopt, then TCA_NETEM_RATE
/// (and TCA_NETEM_RATE64) when a rate is set. Not a nest: the struct comes first.
pub fn netem_options(n: &Netem) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    v.extend_from_slice(&ticks(n.delay_us as f64).to_ne_bytes());
    v.extend_from_slice(&n.limit.to_ne_bytes());
    v.extend_from_slice(&n.loss.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes()); // gap
    v.extend_from_slice(&0u32.to_ne_bytes()); // duplicate
    v.extend_from_slice(&ticks(n.jitter_us as f64).to_ne_bytes());
    if let Some(r) = n.rate_bytes {
        let mut rate = (r.min(u64::from(u32::MAX)) as u32).to_ne_bytes().to_vec();
        rate.extend_from_slice(&[0u8; 12]); // packet_overhead, cell_size, cell_overhead
        v.extend(nla(TCA_NETEM_RATE, &rate));
        if r >= 1 << 32 {
            v.extend(nla(TCA_NETEM_RATE64, &r.to_ne_bytes()));
        }
    }
    v
}

/// tc's choice of bucket for a rate when none is given: what the rate sends in
/// 4 ms (one tick of a 250 Hz kernel), at least 4 full-size frames (a bucket
/// smaller than a frame passes nothing).
pub fn default_burst(rate_bytes: u64) -> u32 {
    (rate_bytes / 250).clamp(4 * 1514, 16 << 20) as u32
}

/// The queue of a tbf: `packets` full-size frames when given, else 50 ms of
/// traffic at the rate plus the bucket (tc's `latency 50ms`).
pub fn default_limit(rate_bytes: u64, burst: u32, packets: Option<u32>) -> u32 {
    match packets {
        Some(p) => p.saturating_mul(1514),
        None => (rate_bytes / 20)
            .saturating_add(u64::from(burst))
            .min(u64::from(u32::MAX)) as u32,
    }
}

fn qdisc_msg(ifindex: u32, attributes: Vec<TcAttribute>) -> TcMessage {
    let mut m = TcMessage::default();
    m.header.index = ifindex as i32;
    m.header.handle = TcHandle::from(0u32);
    m.header.parent = TcHandle::ROOT;
    m.attributes = attributes;
    m
}

/// RTM_NEWQDISC for a root qdisc of `kind` with raw TCA_OPTIONS.
pub fn root_qdisc(ifindex: u32, kind: &str, options: Vec<u8>) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewQueueDiscipline(qdisc_msg(
        ifindex,
        vec![
            TcAttribute::Kind(kind.to_string()),
            TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, options)),
        ],
    ))
}

/// Replace the root qdisc of `ifindex` (like `tc qdisc replace dev X root ...`).
pub fn replace_root(
    nl: &mut Rtnl,
    ifindex: u32,
    kind: &str,
    options: Vec<u8>,
    what: &str,
) -> Result<(), NlError> {
    nl.request(
        root_qdisc(ifindex, kind, options),
        NLM_F_CREATE | NLM_F_REPLACE,
        what,
    )
}

/// Delete the root qdisc of `ifindex`; the device gets its default back. A
/// device with no root qdisc of its own (ENOENT, or EINVAL for noqueue) is fine.
pub fn delete_root(nl: &mut Rtnl, ifindex: u32, what: &str) -> Result<(), NlError> {
    match nl.request(
        RouteNetlinkMessage::DelQueueDiscipline(qdisc_msg(ifindex, vec![])),
        0,
        what,
    ) {
        Err(e) if e.errno == libc::ENOENT || e.errno == libc::EINVAL => Ok(()),
        r => r,
    }
}

/// The kind of the root qdisc of each interface index of the namespace.
pub fn root_kinds(nl: &mut Rtnl) -> Result<Vec<(u32, String)>, NlError> {
    let msgs = nl.dump(
        RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
        "list qdiscs",
    )?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewQueueDiscipline(q) if q.header.parent == TcHandle::ROOT => {
                let kind = q.attributes.iter().find_map(|a| match a {
                    TcAttribute::Kind(k) => Some(k.clone()),
                    _ => None,
                })?;
                Some((q.header.index as u32, kind))
            }
            _ => None,
        })
        .collect())
}

/// Whether the kernel has netem, asked without changing anything: a netem root
/// qdisc on `lo` with no options. Without sch_netem the kernel answers ENOENT
/// ("Specified qdisc kind is unknown"); with it, netem refuses the missing
/// options (EINVAL) and nothing is created.
pub fn has_netem(nl: &mut Rtnl) -> Result<bool, NlError> {
    let m = RouteNetlinkMessage::NewQueueDiscipline(qdisc_msg(
        1,
        vec![TcAttribute::Kind("netem".to_string())],
    ));
    match nl.request(m, NLM_F_CREATE | NLM_F_EXCL, "probe for netem") {
        Err(e) if e.errno == libc::ENOENT => Ok(false),
        Err(e) if e.errno == libc::EINVAL => Ok(true),
        // Created after all (a netem accepting no options): take it away again.
        Ok(()) => delete_root(nl, 1, "remove the netem probe").map(|()| true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage};

    /// Parse strace's hex dump lines (`| 00000  4c 00 ...  text |`) into bytes.
    fn hexdump(s: &str) -> Vec<u8> {
        s.lines()
            .filter_map(|l| l.trim().strip_prefix('|'))
            .flat_map(|l| {
                let body = &l.trim_start()[7..];
                body.split("  ")
                    .take(2)
                    .flat_map(|half| half.split_whitespace())
                    .map(|b| u8::from_str_radix(b, 16).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Our request, with tc's header flags, sequence number and interface index.
    fn request(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
        let mut h = NetlinkHeader::default();
        h.flags = flags;
        h.sequence_number = seq;
        let mut m = NetlinkMessage::new(h, msg.into());
        m.finalize();
        let mut out = vec![0; m.buffer_len()];
        m.serialize(&mut out);
        out
    }

    const ADD: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;

    /// `strace -f -xx -s 4096 -e trace=sendmsg -e write=3 tc qdisc add dev d0
    /// root netem delay 50ms` (iproute2 6.x, d0 had index 3): the kernel here
    /// has no netem and refused it, but tc sent these bytes.
    const TC_NETEM_DELAY: &str = "
 | 00000  4c 00 00 00 24 00 05 06  fe 51 0f 6b 00 00 00 00  L...$....Q.k.... |
 | 00010  00 00 00 00 03 00 00 00  00 00 00 00 ff ff ff ff  ................ |
 | 00020  00 00 00 00 0a 00 01 00  6e 65 74 65 6d 00 00 00  ........netem... |
 | 00030  1c 00 02 00 c2 eb 0b 00  e8 03 00 00 00 00 00 00  ................ |
 | 00040  00 00 00 00 00 00 00 00  00 00 00 00              ............     |
";

    /// `... netem delay 50ms 5ms loss 20% limit 500 rate 10mbit`.
    const TC_NETEM_ALL: &str = "
 | 00000  60 00 00 00 24 00 05 06  0b 52 0f 6b 00 00 00 00  `...$....R.k.... |
 | 00010  00 00 00 00 03 00 00 00  00 00 00 00 ff ff ff ff  ................ |
 | 00020  00 00 00 00 0a 00 01 00  6e 65 74 65 6d 00 00 00  ........netem... |
 | 00030  30 00 02 00 c2 eb 0b 00  f4 01 00 00 33 33 33 33  0...........3333 |
 | 00040  00 00 00 00 00 00 00 00  2d 31 01 00 14 00 06 00  ........-1...... |
 | 00050  d0 12 13 00 00 00 00 00  00 00 00 00 00 00 00 00  ................ |
";

    /// `tc qdisc replace dev d0 root tbf rate 10mbit burst 1250b limit 12500`:
    /// the first 0x60 bytes (the rate table tc sends after them is not needed).
    const TC_TBF: &str = "
 | 00000  64 04 00 00 24 00 05 05  0b 52 0f 6b 00 00 00 00  d...$....R.k.... |
 | 00010  00 00 00 00 03 00 00 00  00 00 00 00 ff ff ff ff  ................ |
 | 00020  00 00 00 00 08 00 01 00  74 62 66 00 38 04 02 00  ........tbf.8... |
 | 00030  28 00 01 00 03 01 00 00  ff ff 00 00 d0 12 13 00  (............... |
 | 00040  00 00 00 00 00 00 00 00  00 00 00 00 d4 30 00 00  .............0.. |
 | 00050  09 3d 00 00 00 00 00 00  08 00 06 00 e2 04 00 00  .=.............. |
";

    #[test]
    fn netem_delay_is_what_tc_sends() {
        let want = hexdump(TC_NETEM_DELAY);
        let opts = netem_options(&Netem {
            delay_us: 50_000,
            limit: 1000,
            ..Default::default()
        });
        let got = request(root_qdisc(3, "netem", opts), ADD, 0x6b0f51fe);
        assert_eq!(got, want);
    }

    #[test]
    fn netem_with_jitter_loss_limit_and_rate_is_what_tc_sends() {
        let want = hexdump(TC_NETEM_ALL);
        let opts = netem_options(&Netem {
            delay_us: 50_000,
            jitter_us: 5_000,
            loss: netem_probability(2000),
            limit: 500,
            rate_bytes: Some(10_000_000 / 8),
        });
        let got = request(root_qdisc(3, "netem", opts), ADD, 0x6b0f520b);
        assert_eq!(got, want);
    }

    #[test]
    fn tbf_is_what_tc_sends_without_the_rate_table() {
        let want = hexdump(TC_TBF);
        let opts = tbf_options(&Tbf {
            rate_bytes: 1_250_000,
            burst: 1250,
            limit: 12500,
        });
        let got = request(
            root_qdisc(3, "tbf", opts),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            0x6b0f520b,
        );
        // Everything but the lengths of the message and of TCA_OPTIONS (tc's
        // also count its 1028-byte rate table) is the same, byte for byte.
        assert_eq!(got.len(), 0x60);
        assert_eq!(&got[4..0x2c], &want[4..0x2c]);
        assert_eq!(&got[0x2e..], &want[0x2e..]);
        assert_eq!(u32::from_ne_bytes(got[0..4].try_into().unwrap()), 0x60);
        assert_eq!(u16::from_ne_bytes([got[0x2c], got[0x2d]]), 0x60 - 0x2c);
    }

    #[test]
    fn big_rates_use_the_64_bit_attributes() {
        let t = tbf_options(&Tbf {
            rate_bytes: 5_000_000_000,
            burst: 1 << 20,
            limit: 1 << 24,
        });
        // PARMS (40) + BURST (8) + RATE64 (12); the 32-bit rate is saturated.
        assert_eq!(t.len(), 60);
        assert_eq!(&t[12..16], &u32::MAX.to_ne_bytes());
        assert_eq!(&t[48..52], &[12, 0, 4, 0]);
        assert_eq!(&t[52..60], &5_000_000_000u64.to_ne_bytes());
        let n = netem_options(&Netem {
            rate_bytes: Some(5_000_000_000),
            ..Default::default()
        });
        assert_eq!(n.len(), 24 + 20 + 12);
        assert_eq!(&n[44..48], &[12, 0, 8, 0]);
    }

    #[test]
    fn defaults_hold_a_frame_and_50ms() {
        assert_eq!(default_burst(1_250_000), 4 * 1514);
        assert_eq!(default_burst(125_000_000), 500_000);
        assert_eq!(default_limit(1_250_000, 6056, None), 62_500 + 6056);
        assert_eq!(default_limit(1_250_000, 6056, Some(10)), 15_140);
        assert_eq!(netem_probability(10_000), u32::MAX);
        assert_eq!(netem_probability(0), 0);
    }
}
