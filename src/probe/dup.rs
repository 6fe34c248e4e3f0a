//! Duplicate addresses: after a probe to an on-link destination, who answered?
//!
//! A probe to a destination on the source's own link (the source's route to it
//! has no gateway) goes to the MAC the source's neighbour table holds for it.
//! When that MAC is not the one of the interface the lab gives the address to,
//! something else answers for the address: a duplicate. The replies then come
//! from the impostor, so the probe itself looks fine (ping) or is refused by a
//! host without the service (TCP); neither says why.

use super::why::Reason;
use crate::kernel::msg;
use crate::kernel::neigh::{self, ObsNeigh};
use crate::kernel::netlink::{NlError, Rtnl};
use crate::kernel::observe;
use crate::topology::{Lab, Place};
use netlink_packet_route::RouteNetlinkMessage as M;
use netlink_packet_route::route::{RouteAttribute, RouteType};
use std::fs::File;
use std::net::IpAddr;

/// A MAC address as `ip link` prints it.
pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Where the lab puts an address: the place and interface the file gives it
/// to (a bridge's address: `host` and the bridge), the first one in file order.
pub fn holder_in_lab(model: &Lab, addr: IpAddr) -> Option<(Place, String)> {
    let mut places = vec![Place::Host];
    if model.sandbox {
        places.push(Place::Internet);
    }
    places.extend(model.nodes.iter().map(|n| Place::Node(n.name.clone())));
    places.into_iter().find_map(|p| {
        let i = model
            .addresses_of(&p)
            .into_iter()
            .find(|(_, a)| a.addr() == addr)?
            .0;
        Some((p, i))
    })
}

/// The interface that should answer for an address, as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub address: IpAddr,
    /// The place holding it (`at` of the reason).
    pub at: String,
    pub interface: String,
    pub mac: [u8; 6],
}

/// What the neighbour table of the source says about an on-link destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The interface the source reaches the destination by.
    pub index: u32,
    pub mac: [u8; 6],
    /// `REACHABLE`, `STALE`, ...
    pub state: &'static str,
}

/// The entry of `dst` on interface `oif` that holds a MAC, if any.
pub fn entry_for(table: &[ObsNeigh], oif: u32, dst: IpAddr) -> Option<Answered> {
    table
        .iter()
        .filter(|n| n.index == oif && n.dst == dst && n.valid())
        .find_map(|n| {
            Some(Answered {
                index: n.index,
                mac: n.lladdr?,
                state: n.state_name(),
            })
        })
}

/// The duplicate, if the MAC that answered is not the expected one.
/// `impostor` names the lab interface that has the answering MAC.
pub fn compare(exp: &Expected, answered: &Answered, impostor: Option<String>) -> Option<Reason> {
    (answered.mac != exp.mac).then(|| Reason::DuplicateAddress {
        at: exp.at.clone(),
        address: exp.address,
        answered_mac: format_mac(&answered.mac),
        expected_mac: format_mac(&exp.mac),
        impostor,
    })
}

/// The outgoing interface of `dst` in the namespace of `nl` when the route has
/// no gateway (`ip route get` shows no `via`): the destination is on-link and
/// the neighbour table holds its own MAC. None for a gateway, a local address,
/// or no route.
pub fn on_link_oif(nl: &mut Rtnl, dst: IpAddr) -> Option<u32> {
    let M::NewRoute(r) = nl.query(msg::route_get(dst), "route get").ok()? else {
        return None;
    };
    if r.header.kind != RouteType::Unicast {
        return None;
    }
    let mut oif = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Gateway(_) | RouteAttribute::Via(_) => return None,
            RouteAttribute::Oif(o) => oif = Some(*o),
            _ => {}
        }
    }
    oif
}

/// In the namespace of `nl` (the probe's source): who answers for `dst`, if
/// it is on-link and its entry holds a MAC.
pub fn answered_in(nl: &mut Rtnl, dst: IpAddr) -> Result<Option<Answered>, NlError> {
    let Some(oif) = on_link_oif(nl, dst) else {
        return Ok(None);
    };
    Ok(entry_for(&neigh::neighbours(nl)?, oif, dst))
}

/// [`answered_in`] from the namespace of the calling thread.
pub fn answered_here(dst: IpAddr) -> Option<Answered> {
    let mut nl = Rtnl::new().ok()?;
    answered_in(&mut nl, dst).ok().flatten()
}

/// The links of a place's namespace, read on a short-lived thread inside it.
fn links_of(file: &File) -> Option<Vec<observe::ObsLink>> {
    crate::kernel::netns::run_in(file, || {
        let mut nl = Rtnl::new().ok()?;
        observe::links(&mut nl).ok()
    })
    .ok()
    .flatten()
}

/// The interface the lab gives `dst` to, with its MAC read from the kernel.
/// None when the address is not the lab's, or the interface has no MAC
/// (`lo`, a missing interface).
pub fn expected(model: &Lab, places: &[(Place, &File)], dst: IpAddr) -> Option<Expected> {
    let (place, ifname) = holder_in_lab(model, dst)?;
    let file = places.iter().find(|(p, _)| *p == place)?.1;
    let mac = links_of(file)?
        .into_iter()
        .find(|l| l.name == ifname)?
        .mac?;
    Some(Expected {
        address: dst,
        at: place.to_string(),
        interface: ifname,
        mac,
    })
}

/// The lab interface (`PLACE:IFNAME`) whose MAC is `mac`, if any (the
/// places' links are read a few namespaces at once).
pub fn impostor(places: &[(Place, &File)], mac: &[u8; 6]) -> Option<String> {
    let files: Vec<&File> = places.iter().map(|(_, f)| *f).collect();
    let links = crate::kernel::conn::links_in(&files);
    places.iter().zip(links).find_map(|((p, _), ls)| {
        let l = ls?
            .into_iter()
            .find(|l| l.mac.as_ref() == Some(mac) && l.name != "lo")?;
        Some(format!("{p}:{}", l.name))
    })
}

/// After a probe from `src` to `dst`: a duplicate address, if `dst` is on the
/// source's link and the MAC that answered for it is not the one of the
/// interface the lab gives it to. `places` are the lab's places and their
/// namespaces.
pub fn after_probe(
    model: &Lab,
    places: &[(Place, &File)],
    src: &Place,
    dst: IpAddr,
) -> Option<Reason> {
    let src_file = places.iter().find(|(p, _)| p == src)?.1;
    let answered = crate::kernel::netns::run_in(src_file, || answered_here(dst))
        .ok()
        .flatten()?;
    let exp = expected(model, places, dst)?;
    if answered.mac == exp.mac {
        return None;
    }
    compare(&exp, &answered, impostor(places, &answered.mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::neigh::{NUD_FAILED, NUD_REACHABLE, NUD_STALE};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn macs_print_like_ip_link() {
        assert_eq!(
            format_mac(&[0x02, 0x4e, 0x53, 0x0a, 0xff, 0x01]),
            "02:4e:53:0a:ff:01"
        );
    }

    #[test]
    fn the_entry_is_the_valid_one_of_the_route_s_interface() {
        let t = vec![
            ObsNeigh {
                index: 3,
                dst: ip("10.0.0.2"),
                lladdr: Some([2, 0, 0, 0, 0, 3]),
                state: NUD_REACHABLE,
            },
            ObsNeigh {
                index: 7,
                dst: ip("10.0.0.2"),
                lladdr: Some([2, 0, 0, 0, 0, 9]),
                state: NUD_FAILED,
            },
            ObsNeigh {
                index: 7,
                dst: ip("10.0.0.3"),
                lladdr: Some([2, 0, 0, 0, 0, 4]),
                state: NUD_STALE,
            },
        ];
        // Another interface's entry, or a failed one, says nothing.
        assert_eq!(entry_for(&t, 7, ip("10.0.0.2")), None);
        assert_eq!(
            entry_for(&t, 3, ip("10.0.0.2")),
            Some(Answered {
                index: 3,
                mac: [2, 0, 0, 0, 0, 3],
                state: "REACHABLE"
            })
        );
        assert_eq!(entry_for(&t, 7, ip("10.0.0.3")).unwrap().state, "STALE");
    }

    #[test]
    fn a_different_mac_is_a_duplicate_naming_both_and_the_impostor() {
        let exp = Expected {
            address: ip("192.168.1.1"),
            at: "black".into(),
            interface: "bveth".into(),
            mac: [2, 0, 0, 0, 0, 1],
        };
        let same = Answered {
            index: 2,
            mac: [2, 0, 0, 0, 0, 1],
            state: "REACHABLE",
        };
        assert_eq!(compare(&exp, &same, None), None);
        let other = Answered {
            mac: [2, 0, 0, 0, 0, 2],
            ..same
        };
        let r = compare(&exp, &other, Some("white:wveth".into())).unwrap();
        assert_eq!(r.class(), "duplicate_address");
        assert_eq!(
            r,
            Reason::DuplicateAddress {
                at: "black".into(),
                address: ip("192.168.1.1"),
                answered_mac: "02:00:00:00:00:02".into(),
                expected_mac: "02:00:00:00:00:01".into(),
                impostor: Some("white:wveth".into()),
            }
        );
        let text = r.to_string();
        assert!(text.starts_with("duplicate address: "), "{text}");
        assert!(text.contains("white:wveth"), "{text}");
    }

    #[test]
    fn the_holder_is_the_interface_the_file_gives_the_address_to() {
        let t = "name: x\nbridges:\n  br0: { address: 10.0.0.254/24 }\nnodes:\n  a: { interfaces: { e: { address: 10.0.0.1/24 } } }\n  b: { interfaces: { f: { addresses: [10.0.0.2/24, fd00::2/64] } } }\nlinks: [[a:e, br0:pa], [b:f, br0:pb]]\n";
        let lab = crate::topology::parse_str(t, "t.yaml", &Default::default()).unwrap();
        assert_eq!(
            holder_in_lab(&lab, ip("10.0.0.2")),
            Some((Place::Node("b".into()), "f".into()))
        );
        assert_eq!(
            holder_in_lab(&lab, ip("fd00::2")),
            Some((Place::Node("b".into()), "f".into()))
        );
        assert_eq!(
            holder_in_lab(&lab, ip("10.0.0.254")),
            Some((Place::Host, "br0".into()))
        );
        assert_eq!(holder_in_lab(&lab, ip("10.0.0.9")), None);
    }
}
