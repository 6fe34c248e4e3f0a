//! Why-not names the lab's runtime state: a partition between the two places,
//! or a link on the way that `nslab link` set down, rather than the symptom
//! the kernel shows for it (no carrier, no route, no neighbour).

use super::Reason;
use super::walk::Ctx;
use crate::kernel::seam::NsHandle;
use crate::runtime::link::LinkDown;
use crate::topology::Place;
use std::net::IpAddr;

fn place_named(at: &str) -> Place {
    match at {
        "host" => Place::Host,
        "internet" => Place::Internet,
        n => Place::Node(n.to_string()),
    }
}

impl<H: NsHandle> Ctx<'_, H> {
    /// `src` and the node that has `dst` are on opposite sides of a partition.
    pub(super) fn partitioned(&self, src: &Place, dst: IpAddr) -> Option<Reason> {
        let Place::Node(a) = src else { return None };
        let b = self.lab.nodes.iter().find(|n| {
            n.interfaces
                .iter()
                .any(|i| i.addresses.iter().any(|x| x.addr() == dst))
        })?;
        let p = self
            .runtime
            .partitions
            .iter()
            .find(|p| p.separates(a, &b.name))?;
        Some(Reason::Partitioned {
            at: a.clone(),
            peer: b.name.clone(),
            id: p.id,
        })
    }

    /// The reason the walk found, named as the link set down on purpose when
    /// one explains it.
    pub(super) fn held_down(&self, r: Reason, _dst: IpAddr) -> Reason {
        if self.runtime.links_down.is_empty() {
            return r;
        }
        let hit = match &r {
            Reason::InterfaceDown { at, interface } => self.held(at, interface),
            Reason::PeerDown {
                at,
                interface,
                far_at,
                far_interface,
            } => self
                .held(far_at, far_interface)
                .or_else(|| self.held(at, interface)),
            Reason::BridgePortDown { at, port, .. } => self.held(at, port),
            Reason::NoRoute { at, dst } => self.covering(at, *dst),
            Reason::NoRouteBack { at, to } => self.covering(at, *to),
            Reason::NoNeighbour { at, interface, .. } => self.on_segment(at, interface),
            _ => None,
        };
        match hit {
            Some(d) => Reason::LinkDown {
                at: d.place.to_string(),
                interface: d.interface.clone(),
                endpoint: d.endpoint.clone(),
            },
            None => r,
        }
    }

    fn held(&self, at: &str, iface: &str) -> Option<&LinkDown> {
        let p = place_named(at);
        self.runtime
            .links_down
            .iter()
            .find(|d| d.place == p && d.interface == iface)
    }

    /// A held-down interface of `at` whose addresses or routes (in the file)
    /// would carry packets to `dst`: the kernel drops those routes with the link.
    fn covering(&self, at: &str, dst: IpAddr) -> Option<&LinkDown> {
        let p = place_named(at);
        let node = match &p {
            Place::Node(n) => self.lab.node(n),
            _ => None,
        };
        self.runtime.links_down.iter().find(|d| {
            if d.place != p {
                return false;
            }
            let nets: Vec<ipnet::IpNet> = self
                .lab
                .addresses_of(&p)
                .into_iter()
                .filter(|(i, _)| *i == d.interface)
                .map(|(_, a)| a.trunc())
                .collect();
            nets.iter().any(|n| n.contains(&dst))
                || node.is_some_and(|n| {
                    n.routes.iter().any(|r| {
                        r.dst.contains(&dst)
                            && (r.dev.as_deref() == Some(d.interface.as_str())
                                || r.via.is_some_and(|v| nets.iter().any(|n| n.contains(&v))))
                    })
                })
        })
    }

    /// A held-down endpoint on the layer-2 segment of `iface` in `at`.
    fn on_segment(&self, at: &str, iface: &str) -> Option<&LinkDown> {
        let seg = self.segs.get(&(place_named(at), iface.to_string()))?;
        self.runtime.links_down.iter().find(|d| {
            let key = match d.endpoint.split_once(':') {
                Some((b, _)) if self.lab.bridge(b).is_some() => (Place::Host, b.to_string()),
                _ => (d.place.clone(), d.interface.clone()),
            };
            self.segs.get(&key) == Some(seg)
        })
    }
}
