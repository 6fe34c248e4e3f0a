//! Port publishing: `publish: - { port: 8080, to: black:800 }` forwards the
//! host's port 8080 to port 800 of node `black` (DNAT), in a table of the lab's
//! own in the host namespace, `table inet nslab-LAB-pub`, apart from the NAT
//! table.
//!
//! Grammar of `to`: `NODE:PORT` takes the node's first address (of `family`,
//! default 4 when the node has an IPv4 address, else 6), `NODE:IF:PORT` the
//! first address of that interface. Ports are 1 to 65535; `proto` is `tcp`
//! (default) or `udp`.
//!
//! The table (see `kernel::nft::dnat`):
//! - `prerouting`: `fib daddr type local tcp dport P dnat ip to A:Q`: only
//!   traffic to the host's own addresses is forwarded;
//! - `output`: the same for connections made by the host itself, except to
//!   loopback (127.0.0.0/8 and ::1): DNAT from 127.0.0.1 would need
//!   route_localnet, so loopback is not published;
//! - `postrouting`: hairpin. A node that connects to the host's address on the
//!   target's own network would get the target's reply straight from the
//!   target (not from the host) and drop it, so traffic that was DNATed and
//!   leaves by the interface that holds the target's network, coming from that
//!   network, is masqueraded: `ct status dnat oifname "bri0" ip saddr
//!   192.168.0.0/16 masquerade`. Traffic from elsewhere (the emulated internet,
//!   outside the machine) keeps its source.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::topology::model::{Lab, Place};

/// The chains of a publish table.
pub const PREROUTING: &str = "prerouting";
pub const OUTPUT: &str = "output";
pub const POSTROUTING: &str = "postrouting";

/// `tcp` or `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One published port, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Publish {
    /// The host's port.
    pub port: u16,
    pub proto: Proto,
    /// The target node (its name in the file) and interface.
    pub node: String,
    pub iface: String,
    /// The target address and port.
    pub addr: IpAddr,
    pub to_port: u16,
}

impl Publish {
    /// `tcp 8080 -> black:bveth 192.168.1.1:800`
    pub fn text(&self) -> String {
        format!(
            "{} {} -> {}:{} {}",
            self.proto,
            self.port,
            self.node,
            self.iface,
            target(self.addr, self.to_port)
        )
    }
}

/// `A:P` or `[A]:P`.
pub fn target(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// A hairpin masquerade: DNATed traffic from `source` leaving by `ifname`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hairpin {
    pub ifname: String,
    pub source: IpNet,
}

/// The name of a lab's publish table.
pub fn table(lab: &str) -> String {
    format!("nslab-{lab}-pub")
}

/// The hairpin masquerades `lab` needs: for each host interface holding a
/// network that contains a target, that network (deduplicated, in order).
pub fn hairpins(lab: &Lab) -> Vec<Hairpin> {
    let mut out: Vec<Hairpin> = Vec::new();
    let host = lab.addresses_of(&Place::Host);
    for p in &lab.publish {
        for (ifname, net) in &host {
            if net.contains(&p.addr) {
                let h = Hairpin {
                    ifname: ifname.clone(),
                    source: net.trunc(),
                };
                if !out.contains(&h) {
                    out.push(h);
                }
            }
        }
    }
    out
}

fn nft_prefix(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() { "ip" } else { "ip6" }
}

/// One DNAT rule as `nft` prints it, for chain `chain`.
pub fn rule_text(p: &Publish, chain: &str) -> String {
    let fam = nft_prefix(p.addr);
    let lo = if chain == OUTPUT {
        if p.addr.is_ipv4() {
            "ip daddr != 127.0.0.0/8 "
        } else {
            "ip6 daddr != ::1 "
        }
    } else {
        ""
    };
    format!(
        "{lo}fib daddr type local {} dport {} dnat {fam} to {}",
        p.proto,
        p.port,
        target(p.addr, p.to_port)
    )
}

/// A hairpin rule as `nft` prints it.
pub fn hairpin_text(h: &Hairpin) -> String {
    let fam = if h.source.addr().is_ipv4() {
        "ip"
    } else {
        "ip6"
    };
    format!(
        "ct status dnat oifname \"{}\" {fam} saddr {} masquerade",
        h.ifname, h.source
    )
}

/// The `nft` commands that make the table (`plan --explain`); `pre` runs them
/// in the host namespace (`ip netns exec H ` in a sandbox).
pub fn explain(lab: &Lab, pre: &str) -> Vec<String> {
    if lab.publish.is_empty() {
        return Vec::new();
    }
    let t = table(&lab.name);
    let mut out = vec![
        format!(
            "{pre}nft 'add table inet {t} {{ comment \"{}\"; }}'",
            lab.mark()
        ),
        format!(
            "{pre}nft 'add chain inet {t} {PREROUTING} {{ type nat hook prerouting priority dstnat; }}'"
        ),
        format!("{pre}nft 'add chain inet {t} {OUTPUT} {{ type nat hook output priority -100; }}'"),
        format!(
            "{pre}nft 'add chain inet {t} {POSTROUTING} {{ type nat hook postrouting priority srcnat; }}'"
        ),
    ];
    for chain in [PREROUTING, OUTPUT] {
        for p in &lab.publish {
            out.push(format!(
                "{pre}nft '{}'",
                format_args!("add rule inet {t} {chain} {}", rule_text(p, chain))
            ));
        }
    }
    for h in hairpins(lab) {
        out.push(format!(
            "{pre}nft '{}'",
            format_args!("add rule inet {t} {POSTROUTING} {}", hairpin_text(&h))
        ));
    }
    out
}

/// `NODE:PORT` or `NODE:IF:PORT`.
fn split_to(s: &str) -> Result<(&str, Option<&str>, u16), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (node, iface, port) = match parts.as_slice() {
        [n, p] => (*n, None, *p),
        [n, i, p] => (*n, Some(*i), *p),
        _ => {
            return Err(format!(
                "{s:?} is not NODE:PORT or NODE:IF:PORT (e.g. black:800, black:bveth:800)"
            ));
        }
    };
    if node.is_empty() || iface.is_some_and(str::is_empty) {
        return Err(format!("{s:?} is not NODE:PORT or NODE:IF:PORT"));
    }
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("port {port:?} in {s:?} is not 1 to 65535")),
    };
    Ok((node, iface, port))
}

type Report<'a> = dyn FnMut(&serde_saphyr::Location, String, String) + 'a;

/// Validate the file's `publish:` list against the lab's nodes.
pub fn parse(
    report: &mut Report,
    raw: &[crate::topology::raw::S<crate::topology::raw::RawPublish>],
    lab: &Lab,
) -> Vec<Publish> {
    let mut out: Vec<Publish> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let field = format!("publish[{i}]");
        let v = &r.value;
        let port = match u16::try_from(v.port.value) {
            Ok(p) if p > 0 => p,
            _ => {
                report(
                    &v.port.referenced,
                    format!("{field}.port"),
                    format!("port {} is not 1 to 65535", v.port.value),
                );
                continue;
            }
        };
        let proto = match v.proto.as_ref().map(|p| p.value.as_str()) {
            None | Some("tcp") => Proto::Tcp,
            Some("udp") => Proto::Udp,
            Some(other) => {
                let l = &v
                    .proto
                    .as_ref()
                    .map(|p| &p.referenced)
                    .unwrap_or(&r.referenced);
                report(
                    l,
                    format!("{field}.proto"),
                    format!("proto {other:?} is not tcp or udp"),
                );
                continue;
            }
        };
        let family = match v.family.as_ref().map(|f| f.value.as_str()) {
            None => None,
            Some("4") | Some("ipv4") => Some(4),
            Some("6") | Some("ipv6") => Some(6),
            Some(f) => {
                let l = v
                    .family
                    .as_ref()
                    .map(|p| &p.referenced)
                    .unwrap_or(&r.referenced);
                report(
                    l,
                    format!("{field}.family"),
                    format!("family {f:?} is not 4 or 6"),
                );
                continue;
            }
        };
        let tl = &v.to.referenced;
        let (node, iface, to_port) = match split_to(&v.to.value) {
            Ok(x) => x,
            Err(m) => {
                report(tl, format!("{field}.to"), m);
                continue;
            }
        };
        let Some(n) = lab.node(node) else {
            report(
                tl,
                format!("{field}.to"),
                format!("{node:?} is not a node of the lab (only nodes can be published to)"),
            );
            continue;
        };
        if let Some(ifn) = iface
            && !n.interfaces.iter().any(|x| x.name == ifn)
        {
            report(
                tl,
                format!("{field}.to"),
                format!("node {node} has no interface {ifn:?}"),
            );
            continue;
        }
        let cands: Vec<(&str, IpAddr)> = n
            .interfaces
            .iter()
            .filter(|x| iface.is_none_or(|i| i == x.name))
            .flat_map(|x| x.addresses.iter().map(move |a| (x.name.as_str(), a.addr())))
            .collect();
        let fam = family.unwrap_or(if cands.iter().any(|(_, a)| a.is_ipv4()) {
            4
        } else {
            6
        });
        let Some((ifname, addr)) = cands
            .iter()
            .find(|(_, a)| a.is_ipv4() == (fam == 4))
            .copied()
        else {
            let whose = match iface {
                Some(i) => format!("interface {node}:{i}"),
                None => format!("node {node}"),
            };
            report(
                tl,
                format!("{field}.to"),
                format!("{whose} has no IPv{fam} address to publish to"),
            );
            continue;
        };
        // The same host port twice (one per family is fine: they are
        // different packets).
        if let Some(o) = out
            .iter()
            .find(|o| o.port == port && o.proto == proto && o.addr.is_ipv4() == addr.is_ipv4())
        {
            report(
                &v.port.referenced,
                format!("{field}.port"),
                format!(
                    "{proto} port {port} is published twice (also to {}:{})",
                    o.node, o.to_port
                ),
            );
            continue;
        }
        out.push(Publish {
            port,
            proto,
            node: node.to_string(),
            iface: ifname.to_string(),
            addr,
            to_port,
        });
    }
    out
}

/// The publish of another lab that takes one of `lab`'s ports: (lab, publish).
/// Host-mode labs share the host; sandboxed labs each have a host of their own
/// and never conflict.
pub fn conflict<'a>(lab: &Lab, others: &'a [Lab]) -> Option<(&'a str, &'a Publish)> {
    if lab.sandbox {
        return None;
    }
    for o in others.iter().filter(|o| !o.sandbox && o.name != lab.name) {
        for p in &o.publish {
            if lab.publish.iter().any(|q| {
                q.port == p.port && q.proto == p.proto && q.addr.is_ipv4() == p.addr.is_ipv4()
            }) {
                return Some((&o.name, p));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_is_node_port_or_node_if_port() {
        assert_eq!(split_to("black:800").unwrap(), ("black", None, 800));
        assert_eq!(
            split_to("black:bveth:800").unwrap(),
            ("black", Some("bveth"), 800)
        );
        for bad in [
            "black", "black:0", "black:x", ":80", "a::80", "a:b:c:80", "a:70000",
        ] {
            assert!(split_to(bad).is_err(), "{bad}");
        }
    }

    const LAB: &str = r#"name: x
bridges:
  bri0: { addresses: [10.0.0.1/16, "fd00::1/64"] }
nodes:
  black:
    interfaces:
      e0: { addresses: [10.0.1.1/24, "fd00::10/64"] }
      e1: { address: "fd01::1/64" }
  white:
    interfaces: { w0: { address: 10.0.2.1/24 }, w1: { address: "fd01::2/64" } }
links:
  - [ black:e0, bri0:p0 ]
  - [ white:w0, bri0:p1 ]
  - [ black:e1, white:w1 ]
"#;

    fn parse(publish: &str, sandbox: bool) -> Result<Lab, crate::topology::TopologyError> {
        let opts = crate::topology::Options {
            sandbox,
            check_programs: false,
            ..Default::default()
        };
        crate::topology::parse_str(&format!("{LAB}publish:\n{publish}"), "t.yaml", &opts)
    }

    /// The one issue of a bad publish: (line, field, message).
    fn issue(publish: &str) -> (u64, String, String) {
        let e = parse(publish, false).expect_err("refused");
        let i = &e.issues[0];
        (i.line, i.field.clone(), i.message.clone())
    }

    #[test]
    fn to_picks_the_first_address_of_the_node_or_interface_and_family() {
        let lab = parse(
            r#"  - { port: 8080, to: black:800 }
  - { port: 8080, to: black:800, family: 6 }
  - { port: 53, to: "black:e1:5353", proto: udp }
  - { port: 81, to: white:80 }
"#,
            true,
        )
        .unwrap();
        let got: Vec<String> = lab.publish.iter().map(Publish::text).collect();
        assert_eq!(
            got,
            [
                "tcp 8080 -> black:e0 10.0.1.1:800",
                "tcp 8080 -> black:e0 [fd00::10]:800",
                "udp 53 -> black:e1 [fd01::1]:5353",
                "tcp 81 -> white:w0 10.0.2.1:80",
            ]
        );
        // Hairpins: the bridge's networks that hold a target, once each.
        let h: Vec<String> = hairpins(&lab).iter().map(hairpin_text).collect();
        assert_eq!(
            h,
            [
                r#"ct status dnat oifname "bri0" ip saddr 10.0.0.0/16 masquerade"#,
                r#"ct status dnat oifname "bri0" ip6 saddr fd00::/64 masquerade"#,
            ]
        );
        let ex = explain(&lab, "ip netns exec h ");
        let want = "ip netns exec h nft 'add rule inet nslab-x-pub output ip6 daddr != ::1 fib daddr type local tcp dport 8080 dnat ip6 to [fd00::10]:800'";
        assert!(ex.iter().any(|l| l == want), "{ex:#?}");
    }

    #[test]
    fn bad_publishes_name_the_line_and_field() {
        let base = 16; // the line of the first entry
        let cases = [
            (
                "  - { port: 0, to: black:800 }\n",
                "publish[0].port",
                "not 1 to 65535",
            ),
            (
                "  - { port: 70000, to: black:800 }\n",
                "publish[0].port",
                "not 1 to 65535",
            ),
            (
                "  - { port: 80, to: black }\n",
                "publish[0].to",
                "NODE:PORT",
            ),
            (
                "  - { port: 80, to: red:80 }\n",
                "publish[0].to",
                "not a node",
            ),
            (
                "  - { port: 80, to: \"black:e9:80\" }\n",
                "publish[0].to",
                "no interface \"e9\"",
            ),
            (
                "  - { port: 80, to: \"white:w0:80\", family: 6 }\n",
                "publish[0].to",
                "interface white:w0 has no IPv6 address",
            ),
            (
                "  - { port: 80, to: black:80, proto: sctp }\n",
                "publish[0].proto",
                "not tcp or udp",
            ),
            (
                "  - { port: 80, to: black:80, family: 5 }\n",
                "publish[0].family",
                "not 4 or 6",
            ),
        ];
        for (text, field, msg) in cases {
            let (line, f, m) = issue(text);
            assert_eq!((line, f.as_str()), (base, field), "{text}: {m}");
            assert!(m.contains(msg), "{text}: {m}");
        }
        let (line, f, m) =
            issue("  - { port: 80, to: black:80 }\n  - { port: 80, to: white:80 }\n");
        assert_eq!((line, f.as_str()), (base + 1, "publish[1].port"));
        assert!(m.contains("published twice (also to black:80)"), "{m}");
        assert!(parse("  - { port: 80, to: black:80, bogus: 1 }\n", false).is_err());
    }

    #[test]
    fn host_mode_labs_conflict_on_a_port_sandboxes_never() {
        let a = parse("  - { port: 8080, to: black:800 }\n", false).unwrap();
        let mut b = a.clone();
        b.name = "other".into();
        assert_eq!(
            conflict(&a, std::slice::from_ref(&b)).map(|c| c.0),
            Some("other")
        );
        // The same lab (its own record) is no conflict.
        assert!(conflict(&a, std::slice::from_ref(&a)).is_none());
        let mut udp = b.clone();
        udp.publish[0].proto = Proto::Udp;
        assert!(conflict(&a, &[udp]).is_none());
        let mut sb = b.clone();
        sb.sandbox = true;
        assert!(conflict(&a, &[sb]).is_none());
        let mut mine = a.clone();
        mine.sandbox = true;
        assert!(conflict(&mine, &[b]).is_none());
    }
}
