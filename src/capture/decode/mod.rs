//! One tcpdump-style line per Ethernet frame (what `tcpdump -nn` prints after
//! the timestamp), plus the structured fields behind it for capture filters
//! and `--json`.
//!
//! etherparse slices Ethernet, VLAN tags and IPv4/IPv6 with extension headers,
//! leniently, so snaplen-cut frames still decode, and whole ARP packets. ICMP,
//! TCP and UDP are read by hand from what follows: their fixed parts are small,
//! and reading them here lets a cut-off header still yield ports and a
//! "truncated" line (etherparse's TCP slice wants every option byte). So are TCP
//! options (etherparse's iterator stops at an unknown option and hides EOL) and
//! the packet quoted in an ICMP error (its header may be cut anywhere and
//! still names the addresses; a later fragment names protocol 44).
//! Every read is bounds-checked (`get`), so no input can panic.
//!
//! UDP to port 4789 with the I flag set is VXLAN (RFC 7348): its 8-byte
//! header is read and the Ethernet frame it carries is decoded like any other
//! ([`Summary::vxlan`]), as tcpdump does for that port.
//!
//! Parsing is here; the tcpdump text is in `display`, the filter language in
//! `filter`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::err::Layer as EpLayer;
use etherparse::err::packet::SliceError;
use etherparse::{
    ArpPacketSlice, EtherPayloadSlice, LaxIpPayloadSlice, LaxLinkExtSlice, LaxNetSlice,
    LaxSlicedPacket, LinkSlice,
};
use serde::{Serialize, Serializer};

mod display;
mod filter;

pub use filter::{Filter, FilterError, Proto};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_MACSEC: u16 = 0x88e5;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_IGMP: u8 = 2;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

/// IANA's VXLAN port (RFC 7348), the one nslab's cross-machine cables use.
/// Linux's historical default, 8472, is not decoded (neither does tcpdump).
pub const VXLAN_PORT: u16 = 4789;
/// The VXLAN header's I flag: the VNI is valid. Linux drops frames without it.
const VXLAN_FLAG_I: u8 = 0x08;
const VXLAN_HEADER_LEN: usize = 8;
/// VXLAN inside VXLAN is decoded this deep at most: each level is a
/// recursive call, and a crafted frame could nest hundreds.
const VXLAN_MAX_DEPTH: u8 = 4;

/// An Ethernet address, shown and serialized as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The innermost protocol a frame was decoded to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Arp,
    Icmp,
    Icmp6,
    Tcp,
    Udp,
    /// Any other IP payload, by protocol / next-header number.
    OtherIp(u8),
    /// Not IP or ARP (unknown ethertype, LLC, runt frame, broken IP header).
    Other,
}

impl Protocol {
    fn from_ip_number(n: u8) -> Self {
        match n {
            IPPROTO_ICMP => Protocol::Icmp,
            IPPROTO_ICMPV6 => Protocol::Icmp6,
            IPPROTO_TCP => Protocol::Tcp,
            IPPROTO_UDP => Protocol::Udp,
            n => Protocol::OtherIp(n),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Arp => f.write_str("arp"),
            Protocol::Icmp => f.write_str("icmp"),
            Protocol::Icmp6 => f.write_str("icmp6"),
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::OtherIp(n) => write!(f, "ip-proto-{n}"),
            Protocol::Other => f.write_str("other"),
        }
    }
}

/// Serialized as its Display text ("tcp", "ip-proto-47"), so JSON consumers
/// get one flat string rather than an enum object.
impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where decoding stopped, for [`Detail::Truncated`] and [`Detail::Invalid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Ether,
    Vlan,
    Arp,
    Ip,
    Ip6,
    /// IPv4 authentication header or IPv6 extension headers.
    IpExt,
    Icmp,
    Icmp6,
    Tcp,
    Udp,
    /// A VXLAN header (UDP to port 4789).
    Vxlan,
}

impl Layer {
    fn name(self) -> &'static str {
        match self {
            Layer::Ether => "ethernet",
            Layer::Vlan => "vlan",
            Layer::Arp => "ARP",
            Layer::Ip => "IP",
            Layer::Ip6 => "IP6",
            Layer::IpExt => "IP extension header",
            Layer::Icmp => "ICMP",
            Layer::Icmp6 => "ICMP6",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Vxlan => "VXLAN",
        }
    }
}

/// An ARP packet. Addresses are set only for Ethernet/IPv4 ARP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArpInfo {
    /// 1 request, 2 reply, 3/4 RARP, ...
    pub op: u16,
    pub htype: u16,
    pub ptype: u16,
    pub sender_mac: Option<MacAddr>,
    pub sender_ip: Option<Ipv4Addr>,
    pub target_mac: Option<MacAddr>,
    pub target_ip: Option<Ipv4Addr>,
    /// Bytes after the link header (28 for an unpadded Ethernet/IPv4 ARP).
    pub length: usize,
}

/// The packet an ICMP error quotes (its IP header and first 8 payload bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
}

/// An ICMP or ICMPv6 message; fields not carried by its type are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IcmpInfo {
    #[serde(rename = "type")]
    pub icmp_type: u8,
    pub code: u8,
    /// Echo (and timestamp/information/mask) identifier and sequence.
    pub id: Option<u16>,
    pub seq: Option<u16>,
    /// "need to frag" (ICMP) or "packet too big" (ICMPv6).
    pub mtu: Option<u32>,
    /// Parameter problem: offset of the offending byte.
    pub pointer: Option<u32>,
    /// Redirect: the better first hop.
    pub gateway: Option<IpAddr>,
    /// Neighbor solicitation/advertisement target; redirected destination.
    pub target: Option<IpAddr>,
    /// Errors (unreachable, time exceeded, ...): the packet that caused them.
    pub quoted: Option<Quoted>,
    /// MLDv2 report: number of group records.
    pub records: Option<u16>,
    /// ICMP message length (header + data) as the IP header declares it.
    pub length: usize,
}

/// TCP flag bits as in the header (the AE/NS bit is 0x100).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: u16 = 0x01;
    pub const SYN: u16 = 0x02;
    pub const RST: u16 = 0x04;
    pub const PSH: u16 = 0x08;
    pub const ACK: u16 = 0x10;
    pub const URG: u16 = 0x20;
    pub const ECE: u16 = 0x40;
    pub const CWR: u16 = 0x80;
    pub const AE: u16 = 0x100;

    pub fn contains(self, bits: u16) -> bool {
        self.0 & bits == bits
    }
}

/// tcpdump's letters, in tcpdump's order: `S`, `S.`, `P.`, `F.`, `R.`, `none`.
impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LETTERS: [(u16, char); 9] = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
            (TcpFlags::AE, 'e'),
        ];
        if self.0 & 0x1ff == 0 {
            return f.write_str("none");
        }
        for (bit, c) in LETTERS {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

impl Serialize for TcpFlags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TcpInfo {
    pub flags: TcpFlags,
    /// Absolute sequence and acknowledgment numbers (tcpdump -S).
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub urgent: u16,
    /// Options in tcpdump's words: `mss 1460`, `sackOK`, `TS val 1 ecr 0`, ...
    pub options: Vec<String>,
    /// Payload bytes, from the IP length (not what was captured).
    pub length: usize,
}

/// A VXLAN header and the Ethernet frame it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vxlan {
    /// The header's first byte (0x08: the I flag, the VNI is valid).
    pub flags: u8,
    /// The 24-bit VXLAN network identifier.
    pub vni: u32,
    /// The encapsulated frame, decoded like an outer one (its `len`: the
    /// bytes of it that were captured).
    pub inner: Summary,
}

/// What the line says after the addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// 802.3 frame: a length where the ethertype would be (LLC, STP, ...).
    Llc {
        length: usize,
    },
    /// An ethertype this decoder does not know ([`Summary::ethertype`]).
    Ethertype {
        length: usize,
    },
    Arp(ArpInfo),
    Icmp(IcmpInfo),
    Icmp6(IcmpInfo),
    Tcp(TcpInfo),
    /// `length` is the UDP payload length.
    Udp {
        length: usize,
    },
    /// IP payload not decoded further: another protocol, or a fragment after
    /// the first (which carries no transport header).
    Ip {
        proto: u8,
        length: usize,
        fragment: bool,
    },
    /// The frame ends inside the header of `layer`.
    Truncated {
        layer: Layer,
        length: usize,
    },
    /// The header of `layer` holds impossible values (IP version, lengths).
    Invalid {
        layer: Layer,
        length: usize,
    },
}

/// Everything known about one frame. `Display` gives the tcpdump-style line.
///
/// ```
/// // An ARP request, who-has 10.0.0.2 tell 10.0.0.1.
/// let mut f = vec![0xff; 6];
/// f.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
/// f.extend([2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
/// let s: nslab::Summary = nslab::capture::decode::summarize(&f);
/// assert_eq!(s.dst, Some("10.0.0.2".parse().unwrap()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Bytes in the frame as given (the captured part).
    pub len: usize,
    pub src_mac: Option<MacAddr>,
    pub dst_mac: Option<MacAddr>,
    /// Innermost ethertype, after VLAN tags; `None` for 802.3 and runts.
    pub ethertype: Option<u16>,
    /// Outermost VLAN id, if the frame carries a tag.
    pub vlan: Option<u16>,
    /// IP source/destination, or ARP sender/target protocol address.
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub proto: Protocol,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub detail: Detail,
    /// UDP to port 4789 carrying VXLAN: its VNI and the inner frame. The
    /// fields above describe the outer packet (`detail` is its UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<Box<Vxlan>>,
}

/// Decodes one Ethernet frame. Never fails: anything it cannot decode ends
/// up as a `Truncated`, `Invalid`, `Ethertype` or `Llc` detail.
pub fn summarize(frame: &[u8]) -> Summary {
    summarize_at(frame, 0)
}

/// [`summarize`] of a frame found inside `depth` VXLAN headers.
fn summarize_at(frame: &[u8], depth: u8) -> Summary {
    let mut s = Summary {
        len: frame.len(),
        src_mac: None,
        dst_mac: None,
        ethertype: None,
        vlan: None,
        src: None,
        dst: None,
        proto: Protocol::Other,
        src_port: None,
        dst_port: None,
        detail: Detail::Truncated {
            layer: Layer::Ether,
            length: frame.len(),
        },
        vxlan: None,
    };
    let Ok(pkt) = LaxSlicedPacket::from_ethernet(frame) else {
        return s;
    };
    let Some(LinkSlice::Ethernet2(eth)) = &pkt.link else {
        return s;
    };
    s.src_mac = Some(MacAddr(eth.source()));
    s.dst_mac = Some(MacAddr(eth.destination()));
    if eth.ether_type().0 < 0x0600 {
        s.detail = Detail::Llc {
            length: frame.len(),
        };
        return s;
    }

    let mut ether: EtherPayloadSlice<'_> = eth.payload();
    for ext in &pkt.link_exts {
        match ext {
            LaxLinkExtSlice::Vlan(v) => {
                s.vlan.get_or_insert(v.vlan_identifier().value());
                ether = v.payload();
            }
            // Encrypted or integrity-protected: nothing more to show.
            LaxLinkExtSlice::Macsec(_) => {
                s.ethertype = Some(ETHERTYPE_MACSEC);
                s.detail = Detail::Ethertype {
                    length: frame.len(),
                };
                return s;
            }
        }
    }
    let ethertype = ether.ether_type.0;
    s.ethertype = Some(ethertype);
    if let Some((_, EpLayer::VlanHeader)) = &pkt.stop_err {
        s.detail = Detail::Truncated {
            layer: Layer::Vlan,
            length: frame.len(),
        };
        return s;
    }

    match ethertype {
        ETHERTYPE_ARP => decode_arp(&mut s, ether.payload),
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => decode_ip(&mut s, &pkt, ether.payload, ethertype, depth),
        _ => {
            // A fourth stacked VLAN tag (etherparse keeps three) lands here too.
            s.detail = Detail::Ethertype {
                length: frame.len(),
            };
        }
    }
    s
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}

fn ipv6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let bytes: [u8; 16] = b.get(at..at.checked_add(16)?)?.try_into().ok()?;
    Some(Ipv6Addr::from(bytes))
}

fn mac_at(b: &[u8], at: usize) -> Option<MacAddr> {
    let bytes: [u8; 6] = b.get(at..at.checked_add(6)?)?.try_into().ok()?;
    Some(MacAddr(bytes))
}

/// Offset of `inner` within `outer`; both come from the same frame.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

fn decode_arp(s: &mut Summary, b: &[u8]) {
    s.proto = Protocol::Arp;
    let length = b.len();
    let truncated = Detail::Truncated {
        layer: Layer::Arp,
        length,
    };
    let arp = match ArpPacketSlice::from_slice(b) {
        Ok(arp) => arp,
        // The fixed part is there but the addresses it announces are cut: an
        // Ethernet/IPv4 one is truncated, another shows its fixed part.
        Err(e) if e.required_len > 8 => {
            let fixed = (be16(b, 0), be16(b, 2), b.get(4), b.get(5), be16(b, 6));
            s.detail = match fixed {
                (Some(htype), Some(ptype), Some(&hlen), Some(&plen), Some(op))
                    if !is_eth_ipv4(htype, ptype, hlen, plen) =>
                {
                    Detail::Arp(ArpInfo {
                        op,
                        htype,
                        ptype,
                        sender_mac: None,
                        sender_ip: None,
                        target_mac: None,
                        target_ip: None,
                        length,
                    })
                }
                _ => truncated,
            };
            return;
        }
        Err(_) => {
            s.detail = truncated;
            return;
        }
    };
    let mut info = ArpInfo {
        op: arp.operation().0,
        htype: arp.hw_addr_type().0,
        ptype: arp.proto_addr_type().0,
        sender_mac: None,
        sender_ip: None,
        target_mac: None,
        target_ip: None,
        length,
    };
    let (hlen, plen) = (arp.hw_addr_size(), arp.proto_addr_size());
    if is_eth_ipv4(info.htype, info.ptype, hlen, plen) {
        // etherparse checked that the addresses fit, with the sizes just matched.
        let (sha, spa) = (
            mac_at(arp.sender_hw_addr(), 0),
            ipv4_at(arp.sender_protocol_addr(), 0),
        );
        let (tha, tpa) = (
            mac_at(arp.target_hw_addr(), 0),
            ipv4_at(arp.target_protocol_addr(), 0),
        );
        info.sender_mac = sha;
        info.sender_ip = spa;
        info.target_mac = tha;
        info.target_ip = tpa;
        s.src = spa.map(IpAddr::from);
        s.dst = tpa.map(IpAddr::from);
    }
    s.detail = Detail::Arp(info);
}

/// ARP of Ethernet addresses for IPv4, the one kind whose addresses are shown.
fn is_eth_ipv4(htype: u16, ptype: u16, hlen: u8, plen: u8) -> bool {
    htype == 1 && ptype == ETHERTYPE_IPV4 && hlen == 6 && plen == 4
}

/// Transport-layer errors of etherparse are ignored: this module reads the
/// transport itself from the IP payload.
fn is_transport_layer(l: EpLayer) -> bool {
    matches!(
        l,
        EpLayer::UdpHeader
            | EpLayer::UdpPayload
            | EpLayer::TcpHeader
            | EpLayer::Icmpv4
            | EpLayer::Icmpv4Timestamp
            | EpLayer::Icmpv4TimestampReply
            | EpLayer::Icmpv6
            | EpLayer::Igmp
    )
}

fn decode_ip(
    s: &mut Summary,
    pkt: &LaxSlicedPacket<'_>,
    ip_bytes: &[u8],
    ethertype: u16,
    depth: u8,
) {
    let ip_layer = if ethertype == ETHERTYPE_IPV6 {
        Layer::Ip6
    } else {
        Layer::Ip
    };
    let stop = pkt
        .stop_err
        .as_ref()
        .filter(|(_, l)| !is_transport_layer(*l));

    // (payload, declared L4 length, first fragment?, fragmented?)
    let (payload, declared, first, fragmented): (&LaxIpPayloadSlice<'_>, usize, bool, bool) =
        match &pkt.net {
            Some(LaxNetSlice::Ipv4(ip)) => {
                let h = ip.header();
                s.src = Some(h.source_addr().into());
                s.dst = Some(h.destination_addr().into());
                let pl = ip.payload();
                let declared = if pl.incomplete {
                    usize::from(h.total_len()).saturating_sub(offset_in(ip_bytes, pl.payload))
                } else {
                    pl.payload.len()
                };
                let first = h.fragments_offset().value() == 0;
                (pl, declared, first, ip.is_payload_fragmented())
            }
            Some(LaxNetSlice::Ipv6(ip)) => {
                let h = ip.header();
                s.src = Some(h.source_addr().into());
                s.dst = Some(h.destination_addr().into());
                let pl = ip.payload();
                let declared = if pl.incomplete {
                    (40 + usize::from(h.payload_length()))
                        .saturating_sub(offset_in(ip_bytes, pl.payload))
                } else {
                    pl.payload.len()
                };
                // Not etherparse's extension iterator: in 0.21.0 it reads out
                // of bounds after a lax parse stopped with an error (issue 13,
                // docs/upstream/etherparse-ipv6-ext.md).
                let exts = ip.extensions();
                let first = ipv6_first_fragment(exts.first_header().map(|n| n.0), exts.slice());
                (pl, declared, first, ip.is_payload_fragmented())
            }
            // ARP cannot happen here (the ethertype said IP); treat as broken.
            Some(LaxNetSlice::Arp(_)) | None => {
                let invalid = matches!(stop, Some((SliceError::Ip(_), _)));
                let layer = ip_layer;
                let length = ip_bytes.len();
                s.detail = if invalid {
                    Detail::Invalid { layer, length }
                } else {
                    Detail::Truncated { layer, length }
                };
                return;
            }
        };

    let proto = payload.ip_number.0;
    s.proto = Protocol::from_ip_number(proto);
    if let Some((err, _)) = stop {
        let length = declared;
        s.detail = match err {
            SliceError::Len(_) => Detail::Truncated {
                layer: Layer::IpExt,
                length,
            },
            _ => Detail::Invalid {
                layer: Layer::IpExt,
                length,
            },
        };
        return;
    }
    if !first {
        s.detail = Detail::Ip {
            proto,
            length: declared,
            fragment: true,
        };
        return;
    }
    let b = payload.payload;
    s.detail = match proto {
        IPPROTO_TCP => decode_tcp(s, b, declared),
        IPPROTO_UDP => decode_udp(s, b, declared),
        IPPROTO_ICMP => decode_icmp4(b, declared),
        IPPROTO_ICMPV6 => decode_icmp6(b, declared),
        _ => Detail::Ip {
            proto,
            length: declared,
            fragment: fragmented,
        },
    };
    if proto == IPPROTO_UDP && s.dst_port == Some(VXLAN_PORT) && depth < VXLAN_MAX_DEPTH {
        decode_vxlan(s, b, depth);
    }
}

/// The VXLAN header after the UDP header in `udp` (cut where the capture
/// ended), and the frame it carries. A UDP payload too short to hold the
/// header, as its length declares, is not VXLAN; one whose header was cut
/// is a truncated VXLAN header. Without the I flag it stays plain UDP (the
/// kernel drops it too: no valid VNI).
fn decode_vxlan(s: &mut Summary, udp: &[u8], depth: u8) {
    let Detail::Udp { length } = s.detail else {
        return;
    };
    if length < VXLAN_HEADER_LEN {
        return;
    }
    let Some(hdr) = udp.get(8..8 + VXLAN_HEADER_LEN) else {
        s.detail = Detail::Truncated {
            layer: Layer::Vxlan,
            length,
        };
        return;
    };
    let flags = hdr[0];
    if flags & VXLAN_FLAG_I == 0 {
        return;
    }
    let vni = u32::from_be_bytes([0, hdr[4], hdr[5], hdr[6]]);
    // The inner frame ends where the UDP length says, or where the capture did.
    let end = udp.len().min(8 + length);
    let inner = udp.get(8 + VXLAN_HEADER_LEN..end).unwrap_or_default();
    s.vxlan = Some(Box::new(Vxlan {
        flags,
        vni,
        inner: summarize_at(inner, depth + 1),
    }));
}

/// Walks the IPv6 extension headers etherparse parsed (`exts`, starting with
/// header number `first`) with bounds-checked reads, and says whether every
/// fragment header among them has offset 0 (the payload starts with the
/// transport header). Stops at the end of `exts`, at a header it does not
/// know, or at a header that does not fit.
fn ipv6_first_fragment(first: Option<u8>, exts: &[u8]) -> bool {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const AUTH: u8 = 51;
    const DEST_OPTS: u8 = 60;
    let Some(mut next) = first else {
        return true;
    };
    let mut rest = exts;
    while !rest.is_empty() {
        let len = match next {
            HOP_BY_HOP | ROUTING | DEST_OPTS => rest.get(1).map(|&l| (usize::from(l) + 1) * 8),
            FRAGMENT => {
                if let Some(off) = be16(rest, 2)
                    && off >> 3 != 0
                {
                    return false;
                }
                Some(8)
            }
            AUTH => rest.get(1).map(|&l| (usize::from(l) + 2) * 4),
            _ => None,
        };
        let (Some(len), Some(&n)) = (len, rest.first()) else {
            break;
        };
        let Some(tail) = rest.get(len..) else {
            break;
        };
        next = n;
        rest = tail;
    }
    true
}

fn decode_udp(s: &mut Summary, b: &[u8], declared: usize) -> Detail {
    s.src_port = be16(b, 0);
    s.dst_port = be16(b, 2);
    let Some(ulen) = be16(b, 4) else {
        return Detail::Truncated {
            layer: Layer::Udp,
            length: declared,
        };
    };
    // A UDP length below the header size (0 for jumbograms) says nothing;
    // fall back to what the IP header declares.
    let total = if ulen >= 8 {
        usize::from(ulen)
    } else {
        declared
    };
    Detail::Udp {
        length: total.saturating_sub(8),
    }
}

fn decode_tcp(s: &mut Summary, b: &[u8], declared: usize) -> Detail {
    s.src_port = be16(b, 0);
    s.dst_port = be16(b, 2);
    let (Some(seq), Some(ack), Some(&off), Some(&fl), Some(window), Some(urgent)) = (
        be32(b, 4),
        be32(b, 8),
        b.get(12),
        b.get(13),
        be16(b, 14),
        be16(b, 18),
    ) else {
        return Detail::Truncated {
            layer: Layer::Tcp,
            length: declared,
        };
    };
    let hlen = usize::from(off >> 4) * 4;
    if hlen < 20 {
        return Detail::Invalid {
            layer: Layer::Tcp,
            length: declared,
        };
    }
    // Options may be cut by the snaplen: show what is there.
    let opts = b.get(20..hlen.min(b.len())).unwrap_or_default();
    Detail::Tcp(TcpInfo {
        flags: TcpFlags(u16::from(off & 1) << 8 | u16::from(fl)),
        seq,
        ack,
        window,
        urgent,
        options: tcp_options(opts),
        length: declared.saturating_sub(hlen),
    })
}

/// TCP options in tcpdump's words; stops at the first malformed one.
fn tcp_options(mut b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = b.split_first() {
        match kind {
            0 => {
                out.push("eol".to_owned());
                break;
            }
            1 => {
                out.push("nop".to_owned());
                b = rest;
            }
            _ => {
                let len = rest.first().map_or(0, |&l| usize::from(l));
                let Some(data) = b.get(2..len.max(2)).filter(|_| len >= 2) else {
                    out.push(format!("bad opt {kind}"));
                    break;
                };
                out.push(match (kind, data.len()) {
                    (2, 2) => format!("mss {}", be16(data, 0).unwrap_or(0)),
                    (3, 1) => format!("wscale {}", data.first().copied().unwrap_or(0)),
                    (4, 0) => "sackOK".to_owned(),
                    (5, n) if n % 8 == 0 => {
                        let blocks: Vec<String> = data
                            .chunks_exact(8)
                            .map(|c| {
                                format!(
                                    "{{{}:{}}}",
                                    be32(c, 0).unwrap_or(0),
                                    be32(c, 4).unwrap_or(0)
                                )
                            })
                            .collect();
                        format!("sack {} {}", blocks.len(), blocks.join(""))
                    }
                    (8, 8) => format!(
                        "TS val {} ecr {}",
                        be32(data, 0).unwrap_or(0),
                        be32(data, 4).unwrap_or(0)
                    ),
                    (30, _) => "mptcp".to_owned(),
                    (34, _) => "tfo".to_owned(),
                    _ => format!("unknown-{kind}"),
                });
                b = b.get(len..).unwrap_or_default();
            }
        }
    }
    out
}

/// The original packet inside an ICMP error: IPv4 or IPv6 header and (for
/// the first fragment only) the ports of TCP/UDP.
fn quoted_packet(b: &[u8]) -> Option<Quoted> {
    match b.first()? >> 4 {
        4 => {
            let ihl = usize::from(b.first()? & 0x0f) * 4;
            if ihl < 20 {
                return None;
            }
            let proto = *b.get(9)?;
            let src = ipv4_at(b, 12)?;
            let dst = ipv4_at(b, 16)?;
            let first_fragment = be16(b, 6).is_some_and(|f| f & 0x1fff == 0);
            let l4 = b.get(ihl..).filter(|_| first_fragment).unwrap_or_default();
            Some(quoted_ports(src.into(), dst.into(), proto, l4))
        }
        6 => {
            let src = ipv6_at(b, 8)?;
            let dst = ipv6_at(b, 24)?;
            let mut nh = *b.get(6)?;
            let mut at = 40usize;
            // Walk the extension headers that may sit before TCP/UDP.
            for _ in 0..8 {
                let len = match nh {
                    0 | 43 | 60 => (usize::from(*b.get(at + 1)?) + 1) * 8,
                    44 => {
                        if be16(b, at + 2).is_none_or(|f| f & 0xfff8 != 0) {
                            return Some(quoted_ports(src.into(), dst.into(), 44, &[]));
                        }
                        8
                    }
                    51 => (usize::from(*b.get(at + 1)?) + 2) * 4,
                    _ => break,
                };
                nh = *b.get(at)?;
                at = at.checked_add(len)?;
            }
            let l4 = b.get(at..).unwrap_or_default();
            Some(quoted_ports(src.into(), dst.into(), nh, l4))
        }
        _ => None,
    }
}

fn quoted_ports(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> Quoted {
    let has_ports = matches!(proto, IPPROTO_TCP | IPPROTO_UDP | 132);
    Quoted {
        src,
        dst,
        proto,
        src_port: be16(l4, 0).filter(|_| has_ports),
        dst_port: be16(l4, 2).filter(|_| has_ports),
    }
}

/// The 8-byte header both ICMP versions share: type, code, and what follows.
fn icmp_header(b: &[u8], length: usize, layer: Layer) -> Result<(IcmpInfo, &[u8]), Detail> {
    match (b.first(), b.get(1)) {
        (Some(&icmp_type), Some(&code)) if b.len() >= 8 => Ok((
            IcmpInfo {
                icmp_type,
                code,
                length,
                ..IcmpInfo::default()
            },
            b.get(8..).unwrap_or_default(),
        )),
        _ => Err(Detail::Truncated { layer, length }),
    }
}

fn decode_icmp4(b: &[u8], length: usize) -> Detail {
    let (mut i, body) = match icmp_header(b, length, Layer::Icmp) {
        Ok(x) => x,
        Err(d) => return d,
    };
    let (t, code) = (i.icmp_type, i.code);
    match t {
        0 | 8 | 13 | 14 | 15 | 16 | 17 | 18 => {
            i.id = be16(b, 4);
            i.seq = be16(b, 6);
        }
        3 => {
            i.quoted = quoted_packet(body);
            if code == 4 {
                i.mtu = be16(b, 6).map(u32::from);
            }
        }
        5 => {
            i.gateway = ipv4_at(b, 4).map(IpAddr::from);
            i.quoted = quoted_packet(body);
            i.target = i.quoted.as_ref().map(|q| q.dst);
        }
        11 => i.quoted = quoted_packet(body),
        12 => {
            i.pointer = b.get(4).map(|&p| u32::from(p));
            i.quoted = quoted_packet(body);
        }
        _ => {}
    }
    Detail::Icmp(i)
}

fn decode_icmp6(b: &[u8], length: usize) -> Detail {
    let (mut i, body) = match icmp_header(b, length, Layer::Icmp6) {
        Ok(x) => x,
        Err(d) => return d,
    };
    let t = i.icmp_type;
    match t {
        1 | 3 => i.quoted = quoted_packet(body),
        2 => {
            i.mtu = be32(b, 4);
            i.quoted = quoted_packet(body);
        }
        4 => {
            i.pointer = be32(b, 4);
            i.quoted = quoted_packet(body);
        }
        128 | 129 => {
            i.id = be16(b, 4);
            i.seq = be16(b, 6);
        }
        135 | 136 => i.target = ipv6_at(b, 8).map(IpAddr::from),
        143 => i.records = be16(b, 6),
        137 => {
            i.gateway = ipv6_at(b, 8).map(IpAddr::from);
            i.target = ipv6_at(b, 24).map(IpAddr::from);
        }
        _ => {}
    }
    Detail::Icmp6(i)
}
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use etherparse::{PacketBuilder, TcpHeader, TcpOptionElement, VlanId};
    use proptest::prelude::*;

    const MAC_A: [u8; 6] = [0x3a, 0x11, 0x22, 0x33, 0x44, 0x55];
    pub(super) const MAC_B: [u8; 6] = [0x3a, 0x66, 0x77, 0x88, 0x99, 0xaa];
    const BCAST: [u8; 6] = [0xff; 6];

    /// Serializes any PacketBuilder chain with `payload`.
    macro_rules! frame {
        ($builder:expr, $payload:expr) => {{
            let b = $builder;
            let payload: &[u8] = $payload;
            let mut v = Vec::with_capacity(b.size(payload.len()));
            b.write(&mut v, payload).expect("build frame");
            v
        }};
    }

    fn v4(s: &str) -> [u8; 4] {
        s.parse::<Ipv4Addr>().unwrap().octets()
    }

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    pub(super) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Ethernet/IPv4 ARP, built by hand (op, sender, target).
    pub(super) fn arp_frame(op: u16, sha: [u8; 6], spa: &str, tha: [u8; 6], tpa: &str) -> Vec<u8> {
        let dst = if op == 1 { BCAST } else { tha };
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&sha);
        f.extend_from_slice(&v4(spa));
        f.extend_from_slice(&tha);
        f.extend_from_slice(&v4(tpa));
        f
    }

    /// An IPv4 header + 8 bytes of UDP, as an ICMP error quotes it.
    fn quoted_udp(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
        let mut q = frame!(
            PacketBuilder::ipv4(v4(src), v4(dst), 64).udp(sport, dport),
            &[0u8; 12]
        );
        q.truncate(28);
        q
    }

    pub(super) fn echo_request() -> Vec<u8> {
        frame!(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4(v4("192.168.3.1"), v4("192.168.1.1"), 64)
                .icmpv4_echo_request(1234, 1),
            &[0xab; 56]
        )
    }

    pub(super) fn port_unreachable() -> Vec<u8> {
        frame!(
            PacketBuilder::ethernet2(MAC_B, MAC_A)
                .ipv4(v4("192.168.1.1"), v4("192.168.3.1"), 64)
                .icmpv4_raw(3, 3, [0; 4]),
            &quoted_udp("192.168.3.1", "192.168.1.1", 40000, 53)
        )
    }

    pub(super) fn icmp_error(t: u8, code: u8, rest: [u8; 4]) -> Vec<u8> {
        frame!(
            PacketBuilder::ethernet2(MAC_B, MAC_A)
                .ipv4(v4("10.0.0.254"), v4("10.0.0.1"), 64)
                .icmpv4_raw(t, code, rest),
            &quoted_udp("10.0.0.1", "10.9.9.9", 40000, 33434)
        )
    }

    fn icmp6(t: u8, code: u8, rest: [u8; 4], src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
        frame!(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv6(v6(src), v6(dst), 255)
                .icmpv6_raw(t, code, rest),
            payload
        )
    }

    pub(super) fn icmp6_echo() -> Vec<u8> {
        frame!(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv6(v6("fd00:1::1"), v6("fd00:1::2"), 64)
                .icmpv6_echo_request(7, 1),
            &[0x5a; 56]
        )
    }

    /// Target address plus a link-layer address option.
    fn nd_payload(target: &str, opt_type: u8) -> Vec<u8> {
        let mut p = v6(target).to_vec();
        p.extend_from_slice(&[opt_type, 1]);
        p.extend_from_slice(&MAC_A);
        p
    }

    pub(super) fn neighbor_solicitation() -> Vec<u8> {
        icmp6(
            135,
            0,
            [0; 4],
            "fd00:1::1",
            "ff02::1:ff00:2",
            &nd_payload("fd00:1::2", 1),
        )
    }

    pub(super) fn neighbor_advertisement() -> Vec<u8> {
        icmp6(
            136,
            0,
            [0x60, 0, 0, 0],
            "fd00:1::2",
            "fd00:1::1",
            &nd_payload("fd00:1::2", 2),
        )
    }

    pub(super) fn router_solicitation() -> Vec<u8> {
        let mut opt = vec![1, 1];
        opt.extend_from_slice(&MAC_A);
        icmp6(133, 0, [0; 4], "fe80::1", "ff02::2", &opt)
    }

    pub(super) fn router_advertisement() -> Vec<u8> {
        // reachable time, retrans timer, then a 32-byte prefix option.
        let mut p = vec![0u8; 8];
        p.extend_from_slice(&[
            3, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x0e, 0x10, 0, 0, 0, 0,
        ]);
        p.extend_from_slice(&v6("fd00:1::"));
        icmp6(134, 0, [64, 0, 0x07, 0x08], "fe80::1", "ff02::1", &p)
    }

    pub(super) fn mld_report() -> Vec<u8> {
        let mut rec = vec![4, 0, 0, 0];
        rec.extend_from_slice(&v6("ff02::1:ff00:1"));
        icmp6(143, 0, [0, 0, 0, 1], "fe80::1", "ff02::16", &rec)
    }

    pub(super) fn tcp_frame(
        flags: &str,
        seq: u32,
        ack: u32,
        win: u16,
        opts: &[TcpOptionElement],
        payload: &[u8],
    ) -> Vec<u8> {
        let mut h = TcpHeader::new(43210, 800, seq, win);
        h.acknowledgment_number = ack;
        h.syn = flags.contains('S');
        h.ack = flags.contains('.');
        h.psh = flags.contains('P');
        h.fin = flags.contains('F');
        h.rst = flags.contains('R');
        h.set_options(opts).unwrap();
        frame!(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4(v4("192.168.2.1"), v4("192.168.1.1"), 64)
                .tcp_header(h),
            payload
        )
    }

    pub(super) fn udp_frame(sport: u16, dport: u16) -> Vec<u8> {
        frame!(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4(v4("10.0.0.1"), v4("10.0.0.2"), 64)
                .udp(sport, dport),
            &[7u8; 20]
        )
    }

    pub(super) fn lldp_frame() -> Vec<u8> {
        let mut f = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e];
        f.extend_from_slice(&MAC_A);
        f.extend_from_slice(&[0x88, 0xcc]);
        f.resize(60, 0);
        f
    }

    fn line(frame: &[u8]) -> String {
        summarize(frame).to_string()
    }

    #[test]
    fn arp_request_and_reply() {
        let req = arp_frame(1, MAC_B, "192.168.3.1", [0; 6], "192.168.1.1");
        let s = summarize(&req);
        assert_eq!(
            s.to_string(),
            "ARP, Request who-has 192.168.1.1 tell 192.168.3.1, length 28"
        );
        assert_eq!(s.proto, Protocol::Arp);
        assert_eq!(s.ethertype, Some(ETHERTYPE_ARP));
        assert_eq!(s.src_mac, Some(MacAddr(MAC_B)));
        assert_eq!(s.dst_mac, Some(MacAddr(BCAST)));
        assert_eq!(
            (s.src, s.dst),
            (Some(ip("192.168.3.1")), Some(ip("192.168.1.1")))
        );
        assert_eq!((s.src_port, s.dst_port), (None, None));

        let rep = arp_frame(2, MAC_A, "192.168.1.1", MAC_B, "192.168.3.1");
        assert_eq!(
            line(&rep),
            "ARP, Reply 192.168.1.1 is-at 3a:11:22:33:44:55, length 28"
        );
        // Padded to the Ethernet minimum: tcpdump counts the padding too.
        let mut padded = rep.clone();
        padded.resize(60, 0);
        assert_eq!(
            line(&padded),
            "ARP, Reply 192.168.1.1 is-at 3a:11:22:33:44:55, length 46"
        );
        // A request that names a target MAC shows it.
        let req2 = arp_frame(1, MAC_B, "192.168.3.1", MAC_A, "192.168.1.1");
        assert_eq!(
            line(&req2),
            "ARP, Request who-has 192.168.1.1 (3a:11:22:33:44:55) tell 192.168.3.1, length 28"
        );
    }

    #[test]
    fn arp_truncated_and_foreign() {
        let req = arp_frame(1, MAC_B, "192.168.3.1", [0; 6], "192.168.1.1");
        let s = summarize(&req[..14 + 20]);
        assert_eq!(s.to_string(), "ARP truncated, length 20");
        assert_eq!(s.proto, Protocol::Arp);
        assert_eq!(line(&req[..14 + 5]), "ARP truncated, length 5");
        // ARP for another hardware type: no addresses, still one line.
        let mut other = req.clone();
        other[14..16].copy_from_slice(&6u16.to_be_bytes());
        assert_eq!(line(&other), "ARP, hardware 6 proto 0x0800 op 1, length 28");
        assert_eq!(summarize(&other).src, None);
        // Cut inside its addresses, it still shows its fixed part; cut inside
        // that, it is truncated.
        assert_eq!(
            line(&other[..14 + 20]),
            "ARP, hardware 6 proto 0x0800 op 1, length 20"
        );
        assert_eq!(line(&other[..14 + 7]), "ARP truncated, length 7");
    }

    #[test]
    fn icmp_echo() {
        let f = echo_request();
        let s = summarize(&f);
        assert_eq!(
            s.to_string(),
            "IP 192.168.3.1 > 192.168.1.1: ICMP echo request, id 1234, seq 1, length 64"
        );
        assert_eq!(s.proto, Protocol::Icmp);
        assert_eq!(s.ethertype, Some(ETHERTYPE_IPV4));
        assert_eq!(
            (s.src_mac, s.dst_mac),
            (Some(MacAddr(MAC_A)), Some(MacAddr(MAC_B)))
        );
        assert_eq!(
            (s.src, s.dst),
            (Some(ip("192.168.3.1")), Some(ip("192.168.1.1")))
        );
        let reply = frame!(
            PacketBuilder::ethernet2(MAC_B, MAC_A)
                .ipv4(v4("192.168.1.1"), v4("192.168.3.1"), 64)
                .icmpv4_echo_reply(1234, 1),
            &[0xab; 56]
        );
        assert_eq!(
            line(&reply),
            "IP 192.168.1.1 > 192.168.3.1: ICMP echo reply, id 1234, seq 1, length 64"
        );
    }

    #[test]
    fn icmp_errors() {
        let s = summarize(&port_unreachable());
        assert_eq!(
            s.to_string(),
            "IP 192.168.1.1 > 192.168.3.1: ICMP 192.168.1.1 udp port 53 unreachable, length 36"
        );
        let Detail::Icmp(i) = &s.detail else {
            panic!("{s:?}")
        };
        let q = i.quoted.as_ref().unwrap();
        assert_eq!(
            (q.src, q.dst, q.proto),
            (ip("192.168.3.1"), ip("192.168.1.1"), 17)
        );
        assert_eq!((q.src_port, q.dst_port), (Some(40000), Some(53)));
        // ICMP's own "ports" stay empty: filters on ports never match it.
        assert_eq!((s.src_port, s.dst_port), (None, None));

        let cases: &[(u8, u8, [u8; 4], &str)] = &[
            (3, 0, [0; 4], "ICMP net 10.9.9.9 unreachable"),
            (3, 1, [0; 4], "ICMP host 10.9.9.9 unreachable"),
            (3, 2, [0; 4], "ICMP 10.9.9.9 protocol 17 unreachable"),
            (3, 3, [0; 4], "ICMP 10.9.9.9 udp port 33434 unreachable"),
            (
                3,
                4,
                [0, 0, 0x05, 0xdc],
                "ICMP 10.9.9.9 unreachable - need to frag (mtu 1500)",
            ),
            (
                3,
                13,
                [0; 4],
                "ICMP host 10.9.9.9 unreachable - admin prohibited filter",
            ),
            (11, 0, [0; 4], "ICMP time exceeded in-transit"),
            (11, 1, [0; 4], "ICMP ip reassembly time exceeded"),
            (
                5,
                1,
                [10, 0, 0, 253],
                "ICMP redirect 10.9.9.9 to host 10.0.0.253",
            ),
            (12, 0, [9, 0, 0, 0], "ICMP parameter problem - octet 9"),
            (42, 0, [0; 4], "ICMP type-#42"),
        ];
        for (t, code, rest, want) in cases {
            let got = line(&icmp_error(*t, *code, *rest));
            assert_eq!(
                got,
                format!("IP 10.0.0.254 > 10.0.0.1: {want}, length 36"),
                "type {t} code {code}"
            );
        }
    }

    #[test]
    fn icmp6_lines() {
        let s = summarize(&icmp6_echo());
        assert_eq!(
            s.to_string(),
            "IP6 fd00:1::1 > fd00:1::2: ICMP6, echo request, id 7, seq 1, length 64"
        );
        assert_eq!(s.proto, Protocol::Icmp6);
        assert_eq!(s.ethertype, Some(ETHERTYPE_IPV6));
        assert_eq!(s.dst, Some(ip("fd00:1::2")));

        assert_eq!(
            line(&neighbor_solicitation()),
            "IP6 fd00:1::1 > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has fd00:1::2, length 32"
        );
        assert_eq!(
            line(&neighbor_advertisement()),
            "IP6 fd00:1::2 > fd00:1::1: ICMP6, neighbor advertisement, tgt is fd00:1::2, length 32"
        );
        assert_eq!(
            line(&router_solicitation()),
            "IP6 fe80::1 > ff02::2: ICMP6, router solicitation, length 16"
        );
        assert_eq!(
            line(&router_advertisement()),
            "IP6 fe80::1 > ff02::1: ICMP6, router advertisement, length 48"
        );
        // MLDv2 report with one record (sent when an address joins a group).
        let mut rec = vec![4, 0, 0, 0];
        rec.extend_from_slice(&v6("ff02::1:ff00:1"));
        let f = icmp6(143, 0, [0, 0, 0, 1], "fe80::1", "ff02::16", &rec);
        assert_eq!(
            line(&f),
            "IP6 fe80::1 > ff02::16: ICMP6, multicast listener report v2, 1 group record(s), length 28"
        );
        let Detail::Icmp6(i) = summarize(&neighbor_advertisement()).detail else {
            panic!()
        };
        assert_eq!(i.target, Some(ip("fd00:1::2")));

        // Port unreachable quoting a UDP packet.
        let mut quoted = frame!(
            PacketBuilder::ipv6(v6("fd00:1::1"), v6("fd00:1::2"), 64).udp(40000, 53),
            &[0u8; 8]
        );
        quoted.truncate(48);
        let f = icmp6(1, 4, [0; 4], "fd00:1::2", "fd00:1::1", &quoted);
        assert_eq!(
            line(&f),
            "IP6 fd00:1::2 > fd00:1::1: ICMP6, destination unreachable, unreachable port, fd00:1::2 udp port 53, length 56"
        );
        let f = icmp6(2, 0, [0, 0, 0x05, 0x00], "fd00:1::2", "fd00:1::1", &quoted);
        assert_eq!(
            line(&f),
            "IP6 fd00:1::2 > fd00:1::1: ICMP6, packet too big, mtu 1280, length 56"
        );
        let f = icmp6(3, 0, [0; 4], "fd00:1::2", "fd00:1::1", &quoted);
        assert_eq!(
            line(&f),
            "IP6 fd00:1::2 > fd00:1::1: ICMP6, time exceeded in-transit for fd00:1::2, length 56"
        );
    }

    #[test]
    fn tcp_flags_and_numbers() {
        let syn = tcp_frame("S", 123, 0, 64240, &[], &[]);
        let s = summarize(&syn);
        assert_eq!(
            s.to_string(),
            "IP 192.168.2.1.43210 > 192.168.1.1.800: Flags [S], seq 123, win 64240, length 0"
        );
        assert_eq!(s.proto, Protocol::Tcp);
        assert_eq!((s.src_port, s.dst_port), (Some(43210), Some(800)));

        let prefix = "IP 192.168.2.1.43210 > 192.168.1.1.800: ";
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tcp_frame("S.", 456, 124, 65160, &[], &[]),
                "Flags [S.], seq 456, ack 124, win 65160, length 0",
            ),
            (
                tcp_frame(".", 124, 457, 502, &[], &[]),
                "Flags [.], ack 457, win 502, length 0",
            ),
            (
                tcp_frame("P.", 124, 457, 502, &[], b"GET / HTTP"),
                "Flags [P.], seq 124:134, ack 457, win 502, length 10",
            ),
            (
                tcp_frame("F.", 134, 457, 502, &[], &[]),
                "Flags [F.], seq 134, ack 457, win 502, length 0",
            ),
            (
                tcp_frame("R", 0, 0, 0, &[], &[]),
                "Flags [R], seq 0, win 0, length 0",
            ),
            (
                tcp_frame("R.", 0, 124, 0, &[], &[]),
                "Flags [R.], seq 0, ack 124, win 0, length 0",
            ),
            (
                tcp_frame("", 1, 0, 0, &[], &[]),
                "Flags [none], win 0, length 0",
            ),
            // seq wraps around like tcpdump's 32-bit arithmetic.
            (
                tcp_frame("P.", u32::MAX - 1, 1, 8, &[], b"abcd"),
                "Flags [P.], seq 4294967294:2, ack 1, win 8, length 4",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(line(&f), format!("{prefix}{want}"));
        }

        let opts = [
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(1, 0),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ];
        let f = tcp_frame("S", 123, 0, 64240, &opts, &[]);
        assert_eq!(
            line(&f),
            format!(
                "{prefix}Flags [S], seq 123, win 64240, options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0"
            )
        );
        let sack = [
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgement((100, 200), [Some((300, 400)), None, None]),
        ];
        let f = tcp_frame(".", 1, 2, 3, &sack, &[]);
        assert!(
            line(&f).contains("options [nop,nop,sack 2 {100:200}{300:400}]"),
            "{}",
            line(&f)
        );
    }

    #[test]
    fn tcp_length_comes_from_ip_header_when_cut() {
        let f = tcp_frame("P.", 1000, 1, 502, &[], &[0x42; 1000]);
        let cut = &f[..100];
        let s = summarize(cut);
        assert_eq!(s.len, 100);
        assert_eq!(
            s.to_string(),
            "IP 192.168.2.1.43210 > 192.168.1.1.800: Flags [P.], seq 1000:2000, ack 1, win 502, length 1000"
        );
    }

    #[test]
    fn udp_line() {
        let s = summarize(&udp_frame(5353, 53));
        assert_eq!(
            s.to_string(),
            "IP 10.0.0.1.5353 > 10.0.0.2.53: UDP, length 20"
        );
        assert_eq!(s.proto, Protocol::Udp);
        assert_eq!((s.src_port, s.dst_port), (Some(5353), Some(53)));
        let v6 = frame!(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv6(v6("fd00::1"), v6("fd00::2"), 64)
                .udp(1000, 2000),
            &[0u8; 3]
        );
        assert_eq!(line(&v6), "IP6 fd00::1.1000 > fd00::2.2000: UDP, length 3");
    }

    #[test]
    fn vlan_tagged() {
        let f = frame!(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .single_vlan(VlanId::try_new(100).unwrap())
                .ipv4(v4("10.0.0.1"), v4("10.0.0.2"), 64)
                .udp(1, 2),
            &[0u8; 4]
        );
        let s = summarize(&f);
        assert_eq!(
            s.to_string(),
            "vlan 100, IP 10.0.0.1.1 > 10.0.0.2.2: UDP, length 4"
        );
        assert_eq!((s.vlan, s.ethertype), (Some(100), Some(ETHERTYPE_IPV4)));
    }

    #[test]
    fn unknown_llc_and_truncated() {
        let s = summarize(&lldp_frame());
        assert_eq!(s.to_string(), "ethertype 0x88cc, length 60");
        assert_eq!((s.proto, s.ethertype), (Protocol::Other, Some(0x88cc)));

        let mut llc = lldp_frame();
        llc[12..14].copy_from_slice(&38u16.to_be_bytes());
        assert_eq!(line(&llc), "802.3 LLC, length 60");
        assert_eq!(summarize(&llc).ethertype, None);

        assert_eq!(line(&[1, 2, 3, 4, 5]), "ethernet truncated, length 5");
        assert_eq!(line(&[]), "ethernet truncated, length 0");

        let echo = echo_request();
        let s = summarize(&echo[..14 + 10]);
        assert_eq!(s.to_string(), "IP truncated, length 10");
        assert_eq!((s.src, s.proto), (None, Protocol::Other));
        assert_eq!(line(&icmp6_echo()[..14 + 39]), "IP6 truncated, length 39");

        // The transport header is cut: addresses (and ports) still shown.
        let syn = tcp_frame("S", 1, 0, 1, &[], &[]);
        let s = summarize(&syn[..14 + 20 + 10]);
        assert_eq!(
            s.to_string(),
            "IP 192.168.2.1.43210 > 192.168.1.1.800: tcp truncated, length 20"
        );
        assert_eq!((s.proto, s.dst_port), (Protocol::Tcp, Some(800)));
        assert_eq!(
            line(&echo[..14 + 20 + 4]),
            "IP 192.168.3.1 > 192.168.1.1: ICMP truncated, length 64"
        );
        let udp = udp_frame(1, 2);
        assert_eq!(
            line(&udp[..14 + 20 + 2]),
            "IP 10.0.0.1.1 > 10.0.0.2: udp truncated, length 28"
        );

        // Impossible IP header: version 7.
        let mut bad = echo.clone();
        bad[14] = 0x75;
        assert_eq!(line(&bad), "IP invalid header, length 84");
        // TCP data offset below 5.
        let mut bad = syn.clone();
        bad[14 + 20 + 12] = 0x30;
        assert_eq!(
            line(&bad),
            "IP 192.168.2.1.43210 > 192.168.1.1.800: tcp invalid header, length 20"
        );
    }

    #[test]
    fn fragments_and_other_protocols() {
        let mut f = udp_frame(1, 2);
        // Fragment offset 185 (*8 = 1480 bytes): not the first fragment.
        f[14 + 6..14 + 8].copy_from_slice(&185u16.to_be_bytes());
        let s = summarize(&f);
        assert_eq!(
            s.to_string(),
            "IP 10.0.0.1 > 10.0.0.2: ip-proto-17 fragment, length 28"
        );
        assert_eq!((s.proto, s.src_port), (Protocol::Udp, None));
        // First fragment (MF set, offset 0): ports still decoded.
        let mut first = udp_frame(1, 2);
        first[14 + 6] = 0x20;
        assert_eq!(summarize(&first).dst_port, Some(2));

        let mut gre = udp_frame(1, 2);
        gre[14 + 9] = 47;
        let s = summarize(&gre);
        assert_eq!(
            s.to_string(),
            "IP 10.0.0.1 > 10.0.0.2: ip-proto-47, length 28"
        );
        assert_eq!(s.proto, Protocol::OtherIp(47));
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Found by `cargo fuzz run decode`: an IPv6 hop-by-hop header followed by
    /// a second hop-by-hop header (not allowed there). etherparse 0.21.0 stops
    /// its lax parse with an error, but its extension iterator then walks past
    /// the headers it parsed (`get_unchecked` out of bounds: an abort in a
    /// debug build, an out-of-bounds read in release). Issue 13.
    #[test]
    fn ipv6_extension_iterator_regression() {
        let frame = unhex(
            "0b0b0b0b030100000000000008006f6f6f6f6f6f0000000000000000000000006f6f6f6f6f6f6f6f6f6f6f6f6f6f6f0b0b0b0b030100000000000008006f6f9d6f",
        );
        assert_eq!(frame.len(), 65);
        let s = summarize(&frame);
        let _ = s.to_string();
        let _ = serde_json::to_string(&s).unwrap();
    }

    #[test]
    fn ipv6_extension_walk() {
        // Hop-by-hop (8 bytes), then a fragment header with offset 185.
        let mut exts = vec![44, 0, 1, 4, 0, 0, 0, 0];
        exts.extend_from_slice(&[17, 0, 0x05, 0xc8, 0, 0, 0, 1]);
        assert!(!ipv6_first_fragment(Some(0), &exts));
        // Offset 0 with "more fragments": the first fragment.
        exts[10..12].copy_from_slice(&1u16.to_be_bytes());
        assert!(ipv6_first_fragment(Some(0), &exts));
        // Cut anywhere, or claiming more than is there: no read past the end.
        for n in 0..exts.len() {
            let _ = ipv6_first_fragment(Some(0), &exts[..n]);
        }
        assert!(ipv6_first_fragment(Some(0), &[44, 255, 0, 0]));
        assert!(ipv6_first_fragment(None, &[]));
        assert!(ipv6_first_fragment(Some(51), &[44, 255]));

        // A whole frame: IPv6, fragment header (offset 185), then UDP bytes.
        let mut f = udp6_frame();
        let ip = 14;
        f[ip + 6] = 44;
        f[ip + 4..ip + 6].copy_from_slice(&(8u16 + 8).to_be_bytes());
        f.splice(ip + 40..ip + 40, [17, 0, 0x05, 0xc8, 0, 0, 0, 1]);
        let s = summarize(&f);
        assert_eq!(
            s.to_string(),
            "IP6 fd00::1 > fd00::2: ip-proto-17 fragment, length 8"
        );
    }

    fn udp6_frame() -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(v6("fd00::1"), v6("fd00::2"), 64)
            .udp(1, 2)
            .write(&mut f, &[])
            .unwrap();
        f
    }

    #[test]
    fn serializes_flat_json_fields() {
        let s = summarize(&tcp_frame("S.", 5, 6, 7, &[], &[]));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["proto"], "tcp");
        assert_eq!(v["src"], "192.168.2.1");
        assert_eq!(v["src_mac"], "3a:11:22:33:44:55");
        assert_eq!(v["dst_port"], 800);
        assert_eq!(v["detail"]["kind"], "tcp");
        assert_eq!(v["detail"]["flags"], "S.");
        let a = serde_json::to_value(summarize(&arp_frame(2, MAC_A, "1.2.3.4", MAC_B, "5.6.7.8")))
            .unwrap();
        assert_eq!(a["detail"]["kind"], "arp");
        assert_eq!(a["detail"]["sender_mac"], "3a:11:22:33:44:55");
        let o = serde_json::to_value(summarize(&udp_frame(1, 2)[..14 + 20])).unwrap();
        assert_eq!(
            o["detail"],
            serde_json::json!({"kind": "truncated", "layer": "udp", "length": 28})
        );
    }

    /// A VXLAN header (flags, VNI) and `inner`, sent 10.9.0.1:4242 ->
    /// 10.9.0.2:4789 between two machines' underlay addresses.
    pub(super) fn vxlan_frame(flags: u8, vni: u32, inner: &[u8]) -> Vec<u8> {
        let mut payload = vec![flags, 0, 0, 0];
        payload.extend_from_slice(&vni.to_be_bytes()[1..]);
        payload.push(0);
        payload.extend_from_slice(inner);
        frame!(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4(v4("10.9.0.1"), v4("10.9.0.2"), 64)
                .udp(4242, VXLAN_PORT),
            &payload
        )
    }

    #[test]
    fn vxlan_shows_outer_vni_and_inner_frame() {
        let inner = echo_request();
        let f = vxlan_frame(0x08, 4097, &inner);
        let s = summarize(&f);
        // The outer fields are the outer packet's: filters match those.
        assert_eq!(
            (s.proto, s.src, s.dst_port),
            (Protocol::Udp, Some(ip("10.9.0.1")), Some(4789))
        );
        assert_eq!(
            s.detail,
            Detail::Udp {
                length: 8 + inner.len()
            }
        );
        let v = s.vxlan.as_ref().expect("decoded as VXLAN");
        assert_eq!((v.flags, v.vni), (0x08, 4097));
        assert_eq!(v.inner, summarize(&inner));
        assert_eq!(
            s.to_string(),
            format!(
                "IP 10.9.0.1.4242 > 10.9.0.2.4789: VXLAN, flags [I] (0x08), vni 4097: {}",
                summarize(&inner)
            )
        );
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["detail"]["kind"], "udp");
        assert_eq!(j["vxlan"]["vni"], 4097);
        assert_eq!(j["vxlan"]["flags"], 8);
        assert_eq!(j["vxlan"]["inner"]["src"], "192.168.3.1");
        assert_eq!(j["vxlan"]["inner"]["detail"]["kind"], "icmp");
        assert_eq!(j["vxlan"]["inner"]["src_mac"], "3a:11:22:33:44:55");
        // Frames that are not VXLAN serialize as before: no `vxlan` key.
        let plain = serde_json::to_value(summarize(&udp_frame(1, 2))).unwrap();
        assert!(plain.get("vxlan").is_none(), "{plain}");

        // The largest VNI, and an inner ARP.
        let arp = arp_frame(1, MAC_A, "10.0.0.1", [0; 6], "10.0.0.2");
        let s = summarize(&vxlan_frame(0x08, 0xff_ffff, &arp));
        assert_eq!(s.vxlan.as_ref().unwrap().vni, 16_777_215);
        assert!(
            s.to_string()
                .ends_with("vni 16777215: ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"),
            "{s}"
        );
    }

    #[test]
    fn vxlan_cut_or_without_the_i_flag() {
        let inner = echo_request();
        let f = vxlan_frame(0x08, 7, &inner);
        // Cut inside the VXLAN header: a truncated VXLAN header, no panic.
        let cut = summarize(&f[..14 + 20 + 8 + 5]);
        assert!(cut.vxlan.is_none());
        assert_eq!(
            cut.detail,
            Detail::Truncated {
                layer: Layer::Vxlan,
                length: 8 + inner.len()
            }
        );
        assert_eq!(
            cut.to_string(),
            format!(
                "IP 10.9.0.1.4242 > 10.9.0.2.4789: VXLAN truncated, length {}",
                8 + inner.len()
            )
        );
        // Cut inside the inner frame: the inner one is truncated.
        let s = summarize(&f[..14 + 20 + 8 + 8 + 20]);
        let v = s.vxlan.as_ref().unwrap();
        assert_eq!(v.vni, 7);
        // 14 bytes of Ethernet, then 6 of the inner IP header.
        assert_eq!(
            v.inner.detail,
            Detail::Truncated {
                layer: Layer::Ip,
                length: 6
            }
        );
        // A UDP payload shorter than a VXLAN header (by its own length) is UDP.
        let short = summarize(&udp_frame(4242, 4789)[..14 + 20 + 8]);
        assert!(short.vxlan.is_none());
        // No I flag: no valid VNI (the kernel drops it); plain UDP.
        let s = summarize(&vxlan_frame(0x00, 7, &inner));
        assert!(s.vxlan.is_none());
        assert_eq!(
            s.to_string(),
            format!(
                "IP 10.9.0.1.4242 > 10.9.0.2.4789: UDP, length {}",
                8 + inner.len()
            )
        );
        // Other reserved bits are ignored, as RFC 7348 says a receiver must.
        let s = summarize(&vxlan_frame(0x0c, 7, &inner));
        assert!(
            s.to_string()
                .contains("VXLAN, flags [I] (0x0c), vni 7: IP 192.168.3.1")
        );
        // Another port is not VXLAN (Linux's old default 8472 included).
        let mut other = vxlan_frame(0x08, 7, &inner);
        other[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&8472u16.to_be_bytes());
        assert!(summarize(&other).vxlan.is_none());
    }

    #[test]
    fn vxlan_nesting_stops() {
        let mut f = echo_request();
        for vni in 1..=6 {
            f = vxlan_frame(0x08, vni, &f);
        }
        let mut s = &summarize(&f);
        let mut vnis = Vec::new();
        while let Some(v) = &s.vxlan {
            vnis.push(v.vni);
            s = &v.inner;
        }
        // Six levels built, four decoded; the fifth shows as UDP.
        assert_eq!(vnis, [6, 5, 4, 3]);
        assert_eq!(s.proto, Protocol::Udp);
        assert!(s.to_string().contains("4789: UDP, length"), "{s}");
    }

    /// Frames with valid headers up to some layer, then anything.
    fn frame_prefixes() -> Vec<Vec<u8>> {
        vec![
            echo_request()[..14].to_vec(),
            echo_request()[..34].to_vec(),
            tcp_frame("S", 1, 0, 1, &[], &[])[..54].to_vec(),
            udp_frame(1, 2)[..42].to_vec(),
            icmp6_echo()[..54].to_vec(),
            icmp6_echo()[..62].to_vec(),
            port_unreachable()[..42].to_vec(),
            arp_frame(1, MAC_A, "1.1.1.1", [0; 6], "2.2.2.2")[..14].to_vec(),
            vxlan_frame(0x08, 1, &echo_request())[..50].to_vec(),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = summarize(&bytes);
            let _ = s.to_string();
            let _ = serde_json::to_string(&s).unwrap();
        }

        #[test]
        fn never_panics_after_valid_headers(
            which in 0usize..9,
            tail in proptest::collection::vec(any::<u8>(), 0..120),
            cut in 0usize..200,
        ) {
            let mut f = frame_prefixes().swap_remove(which);
            f.extend_from_slice(&tail);
            f.truncate(cut.max(1));
            let s = summarize(&f);
            prop_assert!(!s.to_string().is_empty());
            let _ = serde_json::to_string(&s).unwrap();
        }

        #[test]
        fn never_panics_with_mutated_valid_frames(
            which in 0usize..9,
            flips in proptest::collection::vec((0usize..120, any::<u8>()), 1..6),
        ) {
            let mut f = match which {
                0 => echo_request(),
                1 => port_unreachable(),
                2 => tcp_frame("S", 1, 0, 1, &[TcpOptionElement::MaximumSegmentSize(1460)], b"xyz"),
                3 => udp_frame(1, 2),
                4 => icmp6_echo(),
                5 => neighbor_solicitation(),
                6 => router_advertisement(),
                7 => vxlan_frame(0x08, 9, &tcp_frame("S", 1, 0, 1, &[], &[])),
                _ => arp_frame(2, MAC_A, "1.1.1.1", MAC_B, "2.2.2.2"),
            };
            for (at, v) in flips {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            let _ = summarize(&f).to_string();
        }

        /// The fields a filter uses agree with what the frame was built from.
        #[test]
        fn udp_fields_round_trip(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            sport in any::<u16>(), dport in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let f = frame!(PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64).udp(sport, dport), &payload);
            let s = summarize(&f);
            prop_assert_eq!(s.src, Some(IpAddr::from(src)));
            prop_assert_eq!(s.dst, Some(IpAddr::from(dst)));
            prop_assert_eq!((s.src_port, s.dst_port), (Some(sport), Some(dport)));
            prop_assert_eq!(&s.detail, &Detail::Udp { length: payload.len() });
            let filter = Filter { proto: Some(Proto::Udp), host: Some(IpAddr::from(dst)), port: Some(sport) };
            prop_assert!(s.matches(&filter));
        }
    }
}
