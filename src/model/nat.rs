//! A lab's NAT as nslab writes it to nftables: the plain data the planner
//! explains and the kernel layer (`crate::kernel::nft`) builds and reads back.

use std::fmt;

use ipnet::IpNet;

/// Name of the one chain of a NAT table.
pub const NAT_CHAIN: &str = "postrouting";

/// Which output interface a masquerade rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutMatch {
    /// Any output interface.
    Any,
    /// `oifname == IF`
    Out(String),
    /// `oifname != IF` (the tutorial's `! -o bri0`)
    NotOut(String),
}

/// `ip saddr SOURCE [oifname [!=] IF] masquerade` (`ip6 saddr` for an IPv6 source),
/// in an `inet` table. A /0 source matches every packet of its family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Masquerade {
    pub source: IpNet,
    pub out: OutMatch,
}

impl Masquerade {
    /// The words of the source match as `nft list` prints them: an inet table needs
    /// the family even without a prefix (`meta nfproto ipv4`).
    pub fn source_words(&self) -> String {
        match (self.source, self.source.prefix_len()) {
            (IpNet::V4(_), 0) => "meta nfproto ipv4".into(),
            (IpNet::V6(_), 0) => "meta nfproto ipv6".into(),
            (IpNet::V4(s), _) => format!("ip saddr {s}"),
            (IpNet::V6(s), _) => format!("ip6 saddr {s}"),
        }
    }
}

impl fmt::Display for Masquerade {
    /// The rule as `nft list` prints it (without shell quoting).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.source_words())?;
        match &self.out {
            OutMatch::Any => {}
            OutMatch::Out(ifname) => write!(f, "oifname \"{ifname}\" ")?,
            OutMatch::NotOut(ifname) => write!(f, "oifname != \"{ifname}\" ")?,
        }
        f.write_str("masquerade")
    }
}

impl From<&crate::topology::Nat> for Masquerade {
    fn from(n: &crate::topology::Nat) -> Masquerade {
        let out = match &n.out {
            crate::topology::NatOut::NotOut(i) => OutMatch::NotOut(i.clone()),
            crate::topology::NatOut::Out(i) => OutMatch::Out(i.clone()),
        };
        Masquerade {
            source: n.source,
            out,
        }
    }
}

impl Masquerade {
    /// Back to the model's form; `Any` (not written by nslab) has none.
    pub fn to_nat(&self) -> Option<crate::topology::Nat> {
        let out = match &self.out {
            OutMatch::NotOut(i) => crate::topology::NatOut::NotOut(i.clone()),
            OutMatch::Out(i) => crate::topology::NatOut::Out(i.clone()),
            OutMatch::Any => return None,
        };
        Some(crate::topology::Nat {
            source: self.source,
            out,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn masq(source: &str, out: OutMatch) -> Masquerade {
        Masquerade {
            source: source.parse().expect("test prefix"),
            out,
        }
    }

    pub(crate) fn tutorial_rule() -> Masquerade {
        masq("192.168.0.0/16", OutMatch::NotOut("bri0".into()))
    }

    #[test]
    fn display_is_nft_list_syntax() {
        assert_eq!(
            tutorial_rule().to_string(),
            "ip saddr 192.168.0.0/16 oifname != \"bri0\" masquerade"
        );
        assert_eq!(
            masq("0.0.0.0/0", OutMatch::Any).to_string(),
            "meta nfproto ipv4 masquerade"
        );
        assert_eq!(
            masq("fd00:1::/48", OutMatch::NotOut("br0".into())).to_string(),
            "ip6 saddr fd00:1::/48 oifname != \"br0\" masquerade"
        );
    }
}
