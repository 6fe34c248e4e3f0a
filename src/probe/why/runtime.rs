//! Why-not names the lab's runtime state: a partition between the two places,
//! or a link on the way that `nslab link` set down, rather than the symptom
//! the kernel shows for it (no carrier, no route, no neighbour); and, when
//! nothing stops the probe, a shaped cable end on its path (it may lose or
//! slow probes).

use super::Reason;
use super::walk::Ctx;
use crate::kernel::seam::NsHandle;
use crate::runtime::link::LinkDown;
use crate::runtime::shape::Shaping;
use crate::topology::{End, Place};
use std::collections::BTreeSet;
use std::net::IpAddr;

fn place_named(at: &str) -> Place {
    match at {
        "host" => Place::Host,
        "internet" => Place::Internet,
        n => Place::Node(n.to_string()),
    }
}

/// The end of `downs` that is interface `iface` of `at`.
fn held<'d>(downs: &'d [(LinkDown, bool)], at: &str, iface: &str) -> Option<&'d (LinkDown, bool)> {
    let p = place_named(at);
    downs
        .iter()
        .find(|(d, _)| d.place == p && d.interface == iface)
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
        let downs = self.downs();
        if downs.is_empty() {
            return r;
        }
        let hit = match &r {
            Reason::InterfaceDown { at, interface } => held(&downs, at, interface),
            Reason::PeerDown {
                at,
                interface,
                far_at,
                far_interface,
            } => held(&downs, far_at, far_interface).or_else(|| held(&downs, at, interface)),
            Reason::BridgePortDown { at, port, .. } => held(&downs, at, port),
            Reason::NoRoute { at, dst } => self.covering(&downs, at, *dst),
            Reason::NoRouteBack { at, to } => self.covering(&downs, at, *to),
            Reason::NoNeighbour { at, interface, .. }
            | Reason::AcrossMachines { at, interface, .. } => {
                self.on_segment(&downs, at, interface)
            }
            _ => None,
        };
        match hit {
            Some((d, by_file)) => Reason::LinkDown {
                at: d.place.to_string(),
                interface: d.interface.clone(),
                endpoint: d.endpoint.clone(),
                by_file: *by_file,
            },
            None => r,
        }
    }

    /// The ends down on purpose: `nslab link`'s, then the file's `up: false`
    /// ones (true) that were not set up at run time.
    fn downs(&self) -> Vec<(LinkDown, bool)> {
        let mut v: Vec<(LinkDown, bool)> = self
            .runtime
            .links_down
            .iter()
            .map(|d| (d.clone(), false))
            .collect();
        v.extend(
            crate::runtime::file_down(&self.runtime, self.lab)
                .into_iter()
                .map(|e| {
                    (
                        LinkDown {
                            endpoint: e.to_string(),
                            place: e.place.clone(),
                            interface: e.ifname.clone(),
                        },
                        true,
                    )
                }),
        );
        v
    }

    /// A held-down interface of `at` whose addresses or routes (in the file)
    /// would carry packets to `dst`: the kernel drops those routes with the link.
    fn covering<'d>(
        &self,
        downs: &'d [(LinkDown, bool)],
        at: &str,
        dst: IpAddr,
    ) -> Option<&'d (LinkDown, bool)> {
        let p = place_named(at);
        let node = match &p {
            Place::Node(n) => self.lab.node(n),
            _ => None,
        };
        downs.iter().find(|(d, _)| {
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
    fn on_segment<'d>(
        &self,
        downs: &'d [(LinkDown, bool)],
        at: &str,
        iface: &str,
    ) -> Option<&'d (LinkDown, bool)> {
        let seg = self.segs.get(&(place_named(at), iface.to_string()))?;
        downs.iter().find(|(d, _)| {
            let key = match d.endpoint.split_once(':') {
                Some((b, _)) if self.lab.bridge(b).is_some() => (Place::Host, b.to_string()),
                _ => (d.place.clone(), d.interface.clone()),
            };
            self.segs.get(&key) == Some(seg)
        })
    }
}

/// `a:eth0 sends at most 10 Mbit/s, drops 20% (nslab shape)`.
pub(super) fn shaped_text(s: &Shaping, runtime: bool) -> String {
    use crate::units::{loss_text, rate_text, time_text};
    let mut v = Vec::new();
    if let Some(r) = s.rate {
        let t = rate_text(r);
        let cut = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
        v.push(format!("sends at most {} {}/s", &t[..cut], &t[cut..]));
    }
    if let Some(l) = s.loss {
        v.push(format!("drops {}", loss_text(l)));
    }
    if let Some(d) = s.delay_us {
        v.push(format!("delays by {}", time_text(d)));
    }
    if let Some(j) = s.jitter_us {
        v.push(format!("varies the delay by {}", time_text(j)));
    }
    let from = if runtime {
        "nslab shape"
    } else {
        "the file's link map"
    };
    format!("{} {} ({from})", s.endpoint, v.join(", "))
}

impl<H: NsHandle> Ctx<'_, H> {
    /// A walk that found nothing in the way, named as a shaped path when a
    /// shaped cable end lies on it (the probe may be lost or slowed there).
    pub(super) fn name_shaping(&self, r: Reason) -> Reason {
        // The trace may find the lab's own random-drop rule (loss without netem).
        let (checked, loss_at) = match &r {
            Reason::Unknown { checked, .. } => (checked.clone(), None),
            Reason::FirewallDrop { at, table, .. }
                if *table == crate::runtime::shape::loss_table(&self.lab.name) =>
            {
                (
                    vec![format!(
                        "nftables trace: the lab's random-drop rule in {at} (table inet {table}) dropped this probe"
                    )],
                    Some(at.clone()),
                )
            }
            _ => return r,
        };
        if self.last_legs.is_empty() {
            return r;
        }
        let shapes = crate::runtime::shape::effective_for(self.lab, &self.runtime.shapes);
        if shapes.is_empty() {
            return r;
        }
        // The segments crossed: shared by consecutive places of a leg.
        let segs_of = |i: usize| -> BTreeSet<usize> {
            let p = &self.places[i].place;
            self.segs
                .iter()
                .filter(|((q, _), _)| q == p)
                .map(|(_, s)| *s)
                .collect()
        };
        let mut crossed = BTreeSet::new();
        for leg in &self.last_legs {
            for w in leg.windows(2) {
                crossed.extend(segs_of(w[0]).intersection(&segs_of(w[1])).copied());
            }
        }
        let ends: Vec<End> = self
            .lab
            .links
            .iter()
            .flat_map(|l| [l.a.clone(), l.b.clone()])
            .collect();
        let on: Vec<&Shaping> = shapes
            .iter()
            .filter(|s| {
                ends.iter()
                    .find(|e| e.place.to_string() == s.place && e.ifname == s.ifname)
                    .and_then(|e| {
                        let key = (
                            e.place.clone(),
                            e.bridge.clone().unwrap_or(e.ifname.clone()),
                        );
                        self.segs.get(&key)
                    })
                    .is_some_and(|seg| crossed.contains(seg))
                    || (loss_at.as_deref() == Some(s.place.as_str()) && s.loss.is_some())
            })
            .collect();
        let Some(first) = on.first() else {
            return r;
        };
        Reason::Shaped {
            at: first.place.clone(),
            shaped: on
                .iter()
                .map(|s| shaped_text(s, self.runtime.shapes.contains(s)))
                .collect(),
            checked,
        }
    }
}
