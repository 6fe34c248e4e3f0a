//! "Why not": walk the path a probe takes through the lab and the reply's way
//! back, asking each namespace's kernel (route lookups like `ip route get`, with
//! the arrival interface after the first hop so forwarding and rp_filter are the
//! kernel's verdicts; links and their far ends, bridges and ports, MTUs), then,
//! when all that says the probe should pass, trace a probe through nftables.
//! The first obstacle is named with its place; advice only for what the file
//! controls (nodes), never for `internet`, which stands for the outside world.

mod runtime;
mod trace;
mod walk;

pub use trace::TRACE_TABLE;
pub use walk::{Ctx, PlaceView, WhyOpts};

use crate::topology::Place;
use serde::Serialize;
use std::net::IpAddr;

/// A rule (or policy) of the lab's own `firewall:`, named by its file line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlamedRule {
    pub line: usize,
    /// `the rule at line 13 of web's firewall (input: ... drop)`
    pub text: String,
}

/// The first obstacle found on the path. In JSON the variant is the `reason`
/// field (`"no_route"`, `"firewall_drop"`, ...) and `at` names the place (a node,
/// `host` or `internet`) where the obstacle is. Shown (`Display`), it is the
/// sentence `nslab ping` prints after `why not:`.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// lab.link_down("b:eth0")?;
/// let out = lab.ping_explained("a", "b", &Default::default(), &mut |_| {})?;
/// if let Some(why) = &out.why_not {
///     println!("why not: {why} ({})", why.class());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The route lookup in `at` finds nothing for `dst`.
    NoRoute { at: String, dst: IpAddr },
    /// The interface the packet must leave (or enter) by is administratively down.
    InterfaceDown { at: String, interface: String },
    /// `interface` in `at` has no carrier because the far end of its cable,
    /// `far_interface` in `far_at`, is down.
    PeerDown {
        at: String,
        interface: String,
        far_at: String,
        far_interface: String,
    },
    /// The bridge the path crosses is down (`at` is the place holding it).
    BridgeDown { at: String, bridge: String },
    /// A port of the bridge is down, or not in the forwarding state.
    BridgePortDown {
        at: String,
        bridge: String,
        port: String,
        state: String,
    },
    /// The interface has no address of the probe's family, so the packet leaves
    /// with another interface's address (or none).
    NoAddress {
        at: String,
        interface: String,
        family: u8,
    },
    /// Nothing on the link answers for the next hop.
    NoNeighbour {
        at: String,
        next_hop: IpAddr,
        interface: String,
        /// When a place on the link has the address but its ARP/ND answer
        /// never came: that place and interface, and the neighbour entry's state.
        holder: Option<String>,
        state: Option<String>,
    },
    /// Nothing answers for the next hop behind `interface`, which leads to
    /// another machine (a lab over several): `detail` names the VXLAN, the
    /// machines, and whether the underlay routes there.
    AcrossMachines {
        at: String,
        next_hop: IpAddr,
        interface: String,
        detail: String,
    },
    /// A hop that must forward does not.
    NotForwarding { at: String, kind: PlaceKind },
    /// An nftables rule (or a chain's policy) drops the probe; seen in a trace.
    FirewallDrop {
        at: String,
        family: String,
        table: String,
        chain: String,
        /// The rule's handle; None when the chain's policy dropped it.
        handle: Option<u64>,
        /// The probe was bridged, not routed, in `at`: br_netfilter
        /// (net.bridge.bridge-nf-call-iptables) hands bridged IP packets to
        /// the IP chains there, as Docker's FORWARD policy shows.
        bridged: bool,
        /// The lab's own firewall rule (or policy) that dropped it, with its
        /// file line, when the table is the lab's `firewall:`.
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<Box<BlamedRule>>,
    },
    /// The probe leaves `host` untranslated and nothing outside routes back.
    NoNat {
        host: String,
        src: IpAddr,
        out: String,
        /// The nat entry that exists but does not apply to `out`.
        excluded_by: Option<String>,
    },
    /// On the way back, `at` has no route to the probe's source.
    NoRouteBack { at: String, to: IpAddr },
    /// A blackhole, unreachable, prohibit or throw route in `at` covers `dst`.
    BlockingRoute {
        at: String,
        dst: IpAddr,
        kind: String,
        route: String,
    },
    /// Reverse-path filtering in `at` drops the packet from `src` arriving on
    /// `interface`.
    RpFilter {
        at: String,
        interface: String,
        src: IpAddr,
        mode: String,
    },
    /// The packet (`size` bytes on the wire) does not fit the MTU of `interface`.
    Mtu {
        at: String,
        interface: String,
        mtu: u32,
        size: usize,
    },
    /// The packet goes round in circles; `path` is the loop.
    RoutingLoop { at: String, path: Vec<String> },
    /// Another interface answers for the destination's address.
    DuplicateAddress {
        at: String,
        address: IpAddr,
        answered_mac: String,
        expected_mac: String,
        /// The place and interface that has the answering MAC, when in the lab.
        impostor: Option<String>,
    },
    /// A cable end or bridge port on the way was set down on purpose with
    /// `nslab link ENDPOINT down` (`at` holds the interface).
    LinkDown {
        at: String,
        interface: String,
        endpoint: String,
        /// Down because the file says `up: false` (not `nslab link`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        by_file: bool,
    },
    /// `at` and `peer` are on opposite sides of partition `id` (`nslab partition`).
    Partitioned { at: String, peer: String, id: u32 },
    /// Nothing stops the probe, but a cable end on the path is shaped (its
    /// egress slowed or lossy, by the file's link map or `nslab shape`):
    /// `shaped` says how, one entry per end; `checked` as for `unknown`.
    Shaped {
        at: String,
        shaped: Vec<String>,
        checked: Vec<String>,
    },
    /// A connection to a port of `at` (the host) that no `publish` of the
    /// lab covers, or whose publish table differs in the kernel (`detail`).
    NoPublish { at: String, detail: String },
    /// Nothing on the path explains it; `checked` lists what was looked at.
    Unknown {
        detail: String,
        checked: Vec<String>,
    },
}

/// What a place is, for advice: only nodes are the user's to reconfigure freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    Node,
    Host,
    Internet,
}

impl PlaceKind {
    pub fn of(p: &Place) -> PlaceKind {
        match p {
            Place::Node(_) => PlaceKind::Node,
            Place::Host => PlaceKind::Host,
            Place::Internet => PlaceKind::Internet,
        }
    }
}

impl Reason {
    /// The JSON name of the reason (`no_route`, ...).
    pub fn class(&self) -> &'static str {
        match self {
            Reason::NoRoute { .. } => "no_route",
            Reason::InterfaceDown { .. } => "interface_down",
            Reason::PeerDown { .. } => "peer_down",
            Reason::BridgeDown { .. } => "bridge_down",
            Reason::BridgePortDown { .. } => "bridge_port_down",
            Reason::NoAddress { .. } => "no_address",
            Reason::NoNeighbour { .. } => "no_neighbour",
            Reason::AcrossMachines { .. } => "across_machines",
            Reason::NotForwarding { .. } => "not_forwarding",
            Reason::FirewallDrop { .. } => "firewall_drop",
            Reason::NoNat { .. } => "no_nat",
            Reason::NoRouteBack { .. } => "no_route_back",
            Reason::BlockingRoute { .. } => "blocking_route",
            Reason::RpFilter { .. } => "rp_filter",
            Reason::Mtu { .. } => "mtu",
            Reason::RoutingLoop { .. } => "routing_loop",
            Reason::DuplicateAddress { .. } => "duplicate_address",
            Reason::LinkDown { .. } => "link_down",
            Reason::Partitioned { .. } => "partitioned",
            Reason::Shaped { .. } => "shaped",
            Reason::NoPublish { .. } => "no_publish",
            Reason::Unknown { .. } => "unknown",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Reason::NoRoute { .. }
            | Reason::NoRouteBack { .. }
            | Reason::BlockingRoute { .. }
            | Reason::RpFilter { .. }
            | Reason::RoutingLoop { .. } => self.route_text(f),
            Reason::InterfaceDown { .. }
            | Reason::PeerDown { .. }
            | Reason::BridgeDown { .. }
            | Reason::BridgePortDown { .. }
            | Reason::Mtu { .. } => self.link_text(f),
            Reason::NoAddress { .. }
            | Reason::NoNeighbour { .. }
            | Reason::AcrossMachines { .. }
            | Reason::DuplicateAddress { .. } => self.address_text(f),
            Reason::NotForwarding { .. }
            | Reason::FirewallDrop { .. }
            | Reason::NoNat { .. }
            | Reason::LinkDown { .. }
            | Reason::Partitioned { .. }
            | Reason::Shaped { .. }
            | Reason::NoPublish { .. }
            | Reason::Unknown { .. } => self.other_text(f),
        }
    }
}

impl Reason {
    /// What a routing reason says: no route (there or back), a blocking route,
    /// reverse-path filtering, a loop.
    fn route_text(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Reason::NoRoute { at, dst } => match at.as_str() {
                "internet" => write!(
                    f,
                    "no route in internet to {dst}: internet stands for the outside world, which has no route to the lab's private addresses"
                ),
                "host" => write!(
                    f,
                    "no route in host to {dst} (`ip route get {dst}` fails there): add one under `host: routes:` in the file"
                ),
                _ => write!(
                    f,
                    "no route in {at} to {dst} (`ip route get {dst}` fails there): add a route or a default route"
                ),
            },
            Reason::NoRouteBack { at, to } => match at.as_str() {
                "internet" => write!(
                    f,
                    "no route back: internet has no route to {to} (it stands for the outside world: a private source needs NAT on the way out)"
                ),
                _ => write!(f, "no route back: {at} has no route to {to}"),
            },
            Reason::BlockingRoute {
                at,
                dst,
                kind,
                route,
            } => {
                let what = match kind.as_str() {
                    "blackhole" => "drops the packet silently",
                    "unreachable" => "answers host unreachable",
                    "prohibit" => "answers administratively prohibited",
                    "throw" => "ends the lookup in this table",
                    _ => "does not forward it",
                };
                write!(
                    f,
                    "the route for {dst} in {at} is `{route}`: the kernel {what}"
                )
            }
            Reason::RpFilter {
                at,
                interface,
                src,
                mode,
            } => write!(
                f,
                "reverse-path filtering ({mode}) in {at} drops packets from {src} arriving on {interface}: the way back to {src} leaves by another interface"
            ),
            Reason::RoutingLoop { at, path } => write!(
                f,
                "routing loop through {at}: {} (the packet goes round until its TTL runs out or a hop drops it)",
                path.join(" -> ")
            ),
            // `fmt` routes only its own reasons here.
            _ => Err(std::fmt::Error),
        }
    }

    /// What a link or bridge reason says: down, no carrier, too small an MTU.
    fn link_text(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Reason::InterfaceDown { at, interface } => {
                write!(f, "interface {interface} in {at} is down")
            }
            Reason::PeerDown {
                at,
                interface,
                far_at,
                far_interface,
            } => write!(
                f,
                "interface {interface} in {at} has no carrier: the far end of its cable, {far_interface} in {far_at}, is down"
            ),
            Reason::BridgeDown { at, bridge } => {
                write!(f, "bridge {bridge} in {at} is down")
            }
            Reason::BridgePortDown {
                at,
                bridge,
                port,
                state,
            } => write!(f, "port {port} of bridge {bridge} in {at} is {state}"),
            Reason::Mtu {
                at,
                interface,
                mtu,
                size,
            } => write!(
                f,
                "a {size}-byte packet does not fit {interface} in {at} (MTU {mtu}) and may not be fragmented"
            ),
            // `fmt` routes only its own reasons here.
            _ => Err(std::fmt::Error),
        }
    }

    /// What an address or neighbour reason says.
    fn address_text(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Reason::NoAddress {
                at,
                interface,
                family,
            } => write!(
                f,
                "interface {interface} in {at} has no IPv{family} address: packets leave it with another interface's address, or none"
            ),
            Reason::AcrossMachines {
                at,
                next_hop,
                interface,
                detail,
            } => write!(
                f,
                "no neighbour answers for {next_hop} on {interface} in {at}: {detail}"
            ),
            Reason::NoNeighbour {
                at,
                next_hop,
                interface,
                holder,
                state,
            } => match holder {
                Some(h) => write!(
                    f,
                    "no neighbour answers for {next_hop} on {interface} in {at}: {h} has the address but does not answer ARP/ND (the neighbour entry is {})",
                    state.as_deref().unwrap_or("unresolved")
                ),
                None => write!(
                    f,
                    "no neighbour answers for {next_hop} on {interface} in {at}: nothing on that link has this address (a wrong gateway?)"
                ),
            },
            Reason::DuplicateAddress {
                at,
                address,
                answered_mac,
                expected_mac,
                impostor,
            } => {
                write!(
                    f,
                    "duplicate address: {address} answers from {answered_mac}, but {at} has it on {expected_mac}"
                )?;
                if let Some(i) = impostor {
                    write!(f, " ({answered_mac} is {i})")?;
                }
                Ok(())
            }
            // `fmt` routes only its own reasons here.
            _ => Err(std::fmt::Error),
        }
    }

    /// What the rest say: forwarding, firewall, NAT, and what nothing explains.
    fn other_text(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Reason::NotForwarding { at, kind } => match kind {
                PlaceKind::Node => write!(
                    f,
                    "{at} does not forward packets (net.ipv4.ip_forward=0): give it `forward: true`"
                ),
                PlaceKind::Host => write!(
                    f,
                    "host does not forward packets (net.ipv4.ip_forward=0): nslab turns it on when a lab needs it (NAT, or nodes routing through the host), so something turned it off since `up`"
                ),
                PlaceKind::Internet => write!(
                    f,
                    "internet stands for the outside world and does not forward packets: the lab cannot be reached through it"
                ),
            },
            Reason::FirewallDrop {
                at,
                family,
                table,
                chain,
                handle,
                bridged,
                rule,
                ..
            } => {
                match (rule, handle) {
                    (Some(r), Some(h)) => write!(
                        f,
                        "{} drops the probe (table {family} {table}, chain {chain}, rule handle {h})",
                        r.text
                    )?,
                    (Some(r), None) => write!(
                        f,
                        "{} drops the probe (table {family} {table}, chain {chain})",
                        r.text
                    )?,
                    (None, handle) => match handle {
                        Some(h) => write!(
                            f,
                            "a firewall rule in {at} drops the probe: table {family} {table}, chain {chain}, rule handle {h} (`nft -a list table {family} {table}`)"
                        )?,
                        None => write!(
                            f,
                            "a firewall in {at} drops the probe: the policy of chain {chain} in table {family} {table}"
                        )?,
                    },
                }
                if *bridged {
                    write!(
                        f,
                        "; the probe is bridged there, and br_netfilter (net.bridge.bridge-nf-call-iptables=1) passes bridged traffic through the IP chains"
                    )?;
                }
                Ok(())
            }
            Reason::NoNat {
                host,
                src,
                out,
                excluded_by,
            } => match excluded_by {
                Some(n) => write!(
                    f,
                    "{src} leaves {host} by {out} without NAT: the nat entry `{n}` does not apply to {out}, and nothing on the other side has a route back to {src}"
                ),
                None => write!(
                    f,
                    "{src} leaves {host} by {out} without NAT, and nothing on the other side has a route back to {src}: add a `nat` entry (masquerade)"
                ),
            },
            Reason::LinkDown {
                endpoint, by_file, ..
            } => {
                let why = if *by_file {
                    "the file's `up: false`"
                } else {
                    "nslab link"
                };
                write!(f, "link {endpoint} is down ({why})")
            }
            Reason::Partitioned { at, peer, id } => {
                write!(f, "{at} and {peer} are partitioned (nslab partition {id})")
            }
            Reason::Shaped {
                shaped, checked, ..
            } => {
                write!(
                    f,
                    "the path is shaped: {}; nothing else on the way stops the probe",
                    shaped.join("; ")
                )?;
                if !checked.is_empty() {
                    write!(f, "; checked: {}", checked.join("; "))?;
                }
                Ok(())
            }
            Reason::NoPublish { detail, .. } => write!(f, "{detail}"),
            Reason::Unknown { detail, checked } => {
                write!(f, "{detail}")?;
                if !checked.is_empty() {
                    write!(f, "; checked: {}", checked.join("; "))?;
                }
                Ok(())
            }
            // `fmt` routes only its own reasons here.
            _ => Err(std::fmt::Error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Advice is for what the file controls: never "give internet `forward:
    /// true`" or "add a route" in internet, which stands for the outside world.
    #[test]
    fn advice_never_asks_to_change_internet_or_host_as_a_node() {
        let dst: IpAddr = "192.168.3.1".parse().unwrap();
        for (at, kind) in [("internet", PlaceKind::Internet), ("host", PlaceKind::Host)] {
            let reasons = [
                Reason::NotForwarding {
                    at: at.into(),
                    kind,
                },
                Reason::NoRoute { at: at.into(), dst },
                Reason::NoRouteBack {
                    at: at.into(),
                    to: dst,
                },
            ];
            for r in reasons {
                let t = r.to_string();
                assert!(!t.contains("forward: true"), "{t}");
                assert!(!t.contains("add a route or a default route"), "{t}");
                assert!(t.contains(at), "{t}");
            }
        }
        let node = Reason::NotForwarding {
            at: "r".into(),
            kind: PlaceKind::Node,
        };
        assert!(node.to_string().contains("give it `forward: true`"));
    }

    #[test]
    fn json_has_the_class_and_the_place() {
        let r = Reason::PeerDown {
            at: "a".into(),
            interface: "e".into(),
            far_at: "r".into(),
            far_interface: "left".into(),
        };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["reason"], r.class());
        assert_eq!(j["at"], "a");
        assert_eq!(j["far_interface"], "left");
        assert!(r.to_string().contains("left in r"));
        let nat = Reason::NoNat {
            host: "host".into(),
            src: "192.168.3.1".parse().unwrap(),
            out: "uplink".into(),
            excluded_by: Some("{ source: 192.168.0.0/16, not_out: uplink }".into()),
        };
        let t = nat.to_string();
        assert!(
            t.contains("not_out: uplink") && !t.contains("add a `nat` entry"),
            "{t}"
        );
    }
}

#[cfg(test)]
mod fake_tests;
