//! Capture filters: a tiny subset of tcpdump's filter language, and whether
//! a `Summary` matches one.

use super::{Protocol, Summary};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Protocol words of a capture filter, as in tcpdump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Arp,
    Icmp,
    Icmp6,
    Tcp,
    Udp,
    /// Any IPv4 packet.
    Ip,
    /// Any IPv6 packet.
    Ip6,
}

impl FromStr for Proto {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "arp" => Proto::Arp,
            "icmp" => Proto::Icmp,
            "icmp6" | "icmpv6" => Proto::Icmp6,
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "ip" | "ip4" | "ipv4" => Proto::Ip,
            "ip6" | "ipv6" => Proto::Ip6,
            _ => return Err(FilterError::UnknownProto(s.to_owned())),
        })
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Arp => "arp",
            Proto::Icmp => "icmp",
            Proto::Icmp6 => "icmp6",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Ip => "ip",
            Proto::Ip6 => "ip6",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("unknown protocol {0:?} (expected one of: arp, icmp, icmp6, tcp, udp, ip, ip6)")]
    UnknownProto(String),
    #[error("invalid host {0:?}: expected an IPv4 or IPv6 address")]
    BadHost(String),
    #[error("invalid port {0:?}: expected a number from 0 to 65535")]
    BadPort(String),
    #[error("`{0}` needs a value")]
    MissingValue(&'static str),
    #[error("`{0}` given twice")]
    Duplicate(&'static str),
}

/// A tiny subset of tcpdump's filter language: each part that is set must
/// match. `host` matches source or destination (ARP sender/target too),
/// `port` either TCP/UDP port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub proto: Option<Proto>,
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
}

impl Filter {
    /// Builds a filter from separate command-line options.
    pub fn new(
        proto: Option<&str>,
        host: Option<&str>,
        port: Option<&str>,
    ) -> Result<Self, FilterError> {
        Ok(Filter {
            proto: proto.map(str::parse).transpose()?,
            host: host.map(parse_host).transpose()?,
            port: port.map(parse_port).transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.proto.is_none() && self.host.is_none() && self.port.is_none()
    }
}

fn parse_host(s: &str) -> Result<IpAddr, FilterError> {
    s.parse().map_err(|_| FilterError::BadHost(s.to_owned()))
}

fn parse_port(s: &str) -> Result<u16, FilterError> {
    s.parse().map_err(|_| FilterError::BadPort(s.to_owned()))
}

/// Parses words like tcpdump's: `tcp port 80`, `icmp and host 10.0.0.1`,
/// `host fd00::1 udp`. An empty string is the empty (match-all) filter.
impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut filter = Filter::default();
        let mut words = s.split_whitespace();
        while let Some(word) = words.next() {
            match word {
                "and" | "&&" => {}
                "host" => {
                    let v = words.next().ok_or(FilterError::MissingValue("host"))?;
                    if filter.host.replace(parse_host(v)?).is_some() {
                        return Err(FilterError::Duplicate("host"));
                    }
                }
                "port" => {
                    let v = words.next().ok_or(FilterError::MissingValue("port"))?;
                    if filter.port.replace(parse_port(v)?).is_some() {
                        return Err(FilterError::Duplicate("port"));
                    }
                }
                other => {
                    if filter.proto.replace(other.parse()?).is_some() {
                        return Err(FilterError::Duplicate("protocol"));
                    }
                }
            }
        }
        Ok(filter)
    }
}

impl Summary {
    /// Whether this frame passes `filter` (all given parts must match). For
    /// VXLAN it is the outer packet that must match, as in tcpdump (`udp port
    /// 4789` selects the tunnel's traffic; the inner frame is not searched).
    pub fn matches(&self, filter: &Filter) -> bool {
        let is_ip = self.proto != Protocol::Arp && self.src.is_some();
        let proto_ok = match filter.proto {
            None => true,
            Some(Proto::Arp) => self.proto == Protocol::Arp,
            Some(Proto::Icmp) => self.proto == Protocol::Icmp,
            Some(Proto::Icmp6) => self.proto == Protocol::Icmp6,
            Some(Proto::Tcp) => self.proto == Protocol::Tcp,
            Some(Proto::Udp) => self.proto == Protocol::Udp,
            Some(Proto::Ip) => is_ip && matches!(self.src, Some(IpAddr::V4(_))),
            Some(Proto::Ip6) => is_ip && matches!(self.src, Some(IpAddr::V6(_))),
        };
        let host_ok = filter
            .host
            .is_none_or(|h| self.src == Some(h) || self.dst == Some(h));
        let port_ok = filter
            .port
            .is_none_or(|p| self.src_port == Some(p) || self.dst_port == Some(p));
        proto_ok && host_ok && port_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::summarize;
    use crate::capture::decode::tests::{
        MAC_B, arp_frame, echo_request, ip, lldp_frame, neighbor_solicitation, tcp_frame,
        udp_frame, vxlan_frame,
    };

    #[test]
    fn filters_parse() {
        assert_eq!("".parse::<Filter>().unwrap(), Filter::default());
        let f: Filter = "tcp and host 10.0.0.1 port 80".parse().unwrap();
        assert_eq!(
            f,
            Filter {
                proto: Some(Proto::Tcp),
                host: Some(ip("10.0.0.1")),
                port: Some(80)
            }
        );
        assert_eq!("ICMPv6".parse::<Proto>().unwrap(), Proto::Icmp6);
        assert_eq!(
            "sctp".parse::<Filter>().unwrap_err(),
            FilterError::UnknownProto("sctp".into())
        );
        assert_eq!(
            "host 10.0.0.300".parse::<Filter>().unwrap_err(),
            FilterError::BadHost("10.0.0.300".into())
        );
        assert_eq!(
            "port 70000".parse::<Filter>().unwrap_err(),
            FilterError::BadPort("70000".into())
        );
        assert_eq!(
            "port".parse::<Filter>().unwrap_err(),
            FilterError::MissingValue("port")
        );
        assert_eq!(
            "tcp udp".parse::<Filter>().unwrap_err(),
            FilterError::Duplicate("protocol")
        );
        let e = "sctp".parse::<Proto>().unwrap_err().to_string();
        assert!(e.contains("sctp") && e.contains("icmp6"), "{e}");
        let f = Filter::new(Some("udp"), Some("fd00::1"), Some("53")).unwrap();
        assert_eq!(
            (f.proto, f.host, f.port),
            (Some(Proto::Udp), Some(ip("fd00::1")), Some(53))
        );
        assert!(Filter::new(Some("udp"), None, Some("x")).is_err());
    }

    #[test]
    fn filters_match() {
        let f = |s: &str| s.parse::<Filter>().unwrap();
        let echo = summarize(&echo_request());
        let arp = summarize(&arp_frame(1, MAC_B, "192.168.3.1", [0; 6], "192.168.1.1"));
        let udp = summarize(&udp_frame(5353, 53));
        let syn = summarize(&tcp_frame("S", 1, 0, 1, &[], &[]));
        let ns = summarize(&neighbor_solicitation());
        let lldp = summarize(&lldp_frame());

        assert!(echo.matches(&Filter::default()) && lldp.matches(&Filter::default()));
        assert!(echo.matches(&f("icmp")) && !echo.matches(&f("tcp")));
        assert!(echo.matches(&f("ip")) && !echo.matches(&f("ip6")) && !echo.matches(&f("arp")));
        assert!(ns.matches(&f("ip6")) && ns.matches(&f("icmp6")) && !ns.matches(&f("icmp")));
        assert!(arp.matches(&f("arp")) && !arp.matches(&f("ip")));
        // host: either side, ARP sender/target included.
        assert!(echo.matches(&f("host 192.168.3.1")) && echo.matches(&f("host 192.168.1.1")));
        assert!(!echo.matches(&f("host 192.168.2.1")));
        assert!(arp.matches(&f("arp host 192.168.1.1")));
        assert!(ns.matches(&f("host ff02::1:ff00:2")));
        // port: either side; never for portless protocols.
        assert!(udp.matches(&f("port 53")) && udp.matches(&f("udp port 5353")));
        assert!(!udp.matches(&f("tcp port 53")) && !udp.matches(&f("port 54")));
        assert!(syn.matches(&f("tcp port 800 host 192.168.2.1")));
        assert!(!echo.matches(&f("port 0")) && !lldp.matches(&f("port 0")));
        assert!(!lldp.matches(&f("ip")) && !lldp.matches(&f("host 10.0.0.1")));
        // VXLAN: the outer packet is matched, not the frame inside.
        let vx = summarize(&vxlan_frame(0x08, 5, &echo_request()));
        assert!(vx.matches(&f("udp port 4789 host 10.9.0.2")));
        assert!(!vx.matches(&f("icmp")) && !vx.matches(&f("host 192.168.3.1")));
    }
}
