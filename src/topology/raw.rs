//! Raw serde types of the topology file: exactly what the YAML says, with source
//! locations kept (`Spanned`) so validation can point at the line of a mistake.
//! Maps keep their order (nodes are created and listed in file order).

//!
//! The JSON Schema of the file (`nslab schema`, schema/nslab.schema.json) is
//! derived from these types, so a key added here is in the schema too. Field
//! docs become the descriptions editors show.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

pub type S<T> = Spanned<T>;

/// A YAML mapping whose keys keep their locations and whose order is kept.
#[derive(Debug)]
pub struct OrderedMap<V>(pub Vec<(S<String>, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<S<String>, V>()? {
                    out.push((k, v));
                }
                // Pushing doubles the capacity: at 10,000 nodes half of it idle
                // until validation is done.
                out.shrink_to_fit();
                Ok(OrderedMap(out))
            }
            // `nodes:` with nothing after it is an empty map, not an error.
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

// A mapping of names to V (`nodes: { black: ... }`); empty (null) allowed.
impl<V: JsonSchema> JsonSchema for OrderedMap<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("MapOf{}", V::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["object", "null"],
            "additionalProperties": g.subschema_for::<V>(),
        })
    }
}

/// A lab: nodes (network namespaces), bridges (switches), links (veth
/// cables), NAT and expectations. See the README for every key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "nslab topology file")]
pub struct RawFile {
    /// The lab's name (letters, digits, `-`, `_`); namespaces are named after
    /// their nodes, with `--prefix` in front.
    #[schemars(with = "Option<String>")]
    pub name: Option<S<String>>,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Nodes by name: each one a network namespace.
    #[serde(default)]
    pub nodes: OrderedMap<RawNode>,
    /// Bridges (switches) by name, in the host (or the sandbox's host).
    #[serde(default)]
    pub bridges: OrderedMap<RawBridge>,
    /// Cables: each a veth pair with two ends, `node:iface` or `bridge:port`;
    /// or a map with `ends` and egress shaping (`rate`, `loss`, ...) and `up`.
    #[serde(default)]
    #[schemars(with = "Vec<CableSchema>")]
    pub links: Vec<S<RawLink>>,
    /// The host's own interfaces and routes (host mode).
    #[serde(default)]
    pub host: Option<RawHost>,
    /// Masquerade of a source prefix leaving the host (the tutorial's
    /// `iptables -t nat -A POSTROUTING -s SRC ! -o bri0 -j MASQUERADE`).
    #[serde(default)]
    #[schemars(with = "Vec<RawNat>")]
    pub nat: Vec<S<RawNat>>,
    /// Ports of the host forwarded (DNAT) to a node: `{ port: 8080, to: black:800 }`.
    #[serde(default)]
    #[schemars(with = "Vec<RawPublish>")]
    pub publish: Vec<S<RawPublish>>,
    /// Give every interface an IPv6 link-local address even when the lab has no
    /// IPv6 address (default: only labs that use IPv6 get them).
    #[serde(default, deserialize_with = "strict_opt")]
    pub ipv6_link_local: Option<bool>,
    /// Expectations checked by `nslab check`.
    #[serde(default)]
    #[schemars(with = "Vec<RawExpect>")]
    pub expect: Vec<S<RawExpect>>,
    /// Machines the lab spans, by name: `m1: { underlay: 10.9.0.1 }`. Nodes and
    /// bridges say where they live with `on:`; cables between machines are
    /// carried by VXLAN over the underlay (`nslab up FILE --machine m1`).
    #[serde(default)]
    pub machines: OrderedMap<RawMachine>,
}

/// A machine of a lab that spans several (`machines:`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Machine")]
pub struct RawMachine {
    /// Its own address on the network between the machines (the underlay):
    /// VXLAN packets leave from it and go to the others'.
    #[schemars(with = "String")]
    pub underlay: S<String>,
    /// The underlay's MTU (default 1500); cables and bridges that cross
    /// machines get 50 bytes less (the VXLAN headers).
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    #[schemars(with = "Option<u32>")]
    pub underlay_mtu: Option<S<u32>>,
}

/// `4` or `6`, with or without quotes.
#[allow(dead_code)] // only its schema is used
struct FamilySchema;

impl JsonSchema for FamilySchema {
    fn schema_name() -> Cow<'static, str> {
        "Family".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "enum": [4, 6, "4", "6"] })
    }
}

/// A value validation words itself: a rate, a percentage, a duration.
#[allow(dead_code)] // only its schema is used
struct TextOrNumber;

impl JsonSchema for TextOrNumber {
    fn schema_name() -> Cow<'static, str> {
        "TextOrNumber".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number"] })
    }
}

/// A cable's two ends, `node:iface` or `bridge:port`.
#[derive(JsonSchema)]
#[schemars(transparent)]
#[allow(dead_code)] // only its schema is used
struct Cable(#[schemars(length(min = 2, max = 2))] Vec<String>);

/// A cable: two ends as a list, or a map with its ends, shaping and state.
#[derive(JsonSchema)]
#[schemars(untagged, rename = "Link")]
#[allow(dead_code)] // only its schema is used
enum CableSchema {
    Ends(Cable),
    Map(LinkMapSchema),
}

/// A cable as a map: its ends, each end's egress shaping, and whether it is up.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "LinkMap")]
#[allow(dead_code)] // only its schema is used
struct LinkMapSchema {
    /// The two ends, `node:iface` or `bridge:port`.
    ends: Cable,
    /// Rate: `10mbit`, `512kbit`, `1gbit` (tbf; `*bps` is refused as ambiguous).
    rate: Option<String>,
    /// Delay: `20ms` (needs the kernel's netem).
    delay: Option<String>,
    /// Jitter of the delay: `2ms` (needs netem and `delay`).
    jitter: Option<String>,
    /// Random loss: `1%`.
    loss: Option<String>,
    /// Queue limit in packets (with `rate` or `delay`).
    limit: Option<u32>,
    /// `false`: `up` leaves both ends down (default true).
    up: Option<bool>,
    /// Shaping of one end's egress, by the end as written in `ends`.
    egress: Option<std::collections::BTreeMap<String, EgressSchema>>,
    /// The VXLAN network identifier of a cable between two machines (1 to
    /// 16777215; default: derived from the lab's name and the cable's place in the file).
    vni: Option<u32>,
}

/// Egress shaping of one end, units as in tc; these values apply to the
/// link's map too (each end's egress).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "Egress")]
#[allow(dead_code)] // only its schema is used
struct EgressSchema {
    /// Rate: `10mbit`, `512kbit`, `1gbit` (tbf; `*bps` is refused as ambiguous).
    rate: Option<String>,
    /// Delay: `20ms` (needs the kernel's netem).
    delay: Option<String>,
    /// Jitter of the delay: `2ms` (needs netem and `delay`).
    jitter: Option<String>,
    /// Random loss: `1%`.
    loss: Option<String>,
    /// Queue limit in packets (with `rate` or `delay`).
    limit: Option<u32>,
}

/// The shaping keys a link map and an `egress` entry take.
pub const SHAPE_KEYS: &[&str] = &["rate", "delay", "jitter", "loss", "limit"];

/// Egress shaping values as typed; validation parses them (src/units.rs).
#[derive(Debug, Default)]
pub struct RawShape {
    /// `(key, value)` in file order, keys among [`SHAPE_KEYS`].
    pub values: Vec<(S<String>, S<Scalar>)>,
}

/// One entry of `links:`: a two-element list, or a map.
#[derive(Debug)]
pub enum RawLink {
    Ends(Vec<S<String>>),
    Map(RawLinkMap),
}

/// `{ ends: [A, B], rate: ..., up: false, egress: { "A": { loss: 1% } } }`.
/// Unknown keys are kept (with their places) for validation to name.
#[derive(Debug, Default)]
pub struct RawLinkMap {
    pub ends: Option<S<Vec<S<String>>>>,
    pub shape: RawShape,
    pub up: Option<S<bool>>,
    pub egress: Vec<(S<String>, RawEgress)>,
    /// `vni:` of a cable between machines.
    pub vni: Option<Box<S<u32>>>,
    pub unknown: Vec<S<String>>,
}

/// One `egress` entry: shaping values, and unknown keys for validation.
#[derive(Debug, Default)]
pub struct RawEgress {
    pub shape: RawShape,
    pub unknown: Vec<S<String>>,
}

impl<'de> Deserialize<'de> for RawEgress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEgress;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of shaping values: rate, delay, jitter, loss, limit")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEgress, A::Error> {
                let mut out = RawEgress::default();
                while let Some(k) = map.next_key::<S<String>>()? {
                    if SHAPE_KEYS.contains(&k.value.as_str()) {
                        let v = map.next_value::<S<Scalar>>()?;
                        out.shape.values.push((k, v));
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        out.unknown.push(k);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for RawLink {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawLink;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a cable: [END, END], or a map { ends: [END, END], rate: ..., ... }")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawLink, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = seq.next_element::<S<String>>()? {
                    v.push(e);
                }
                Ok(RawLink::Ends(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawLink, A::Error> {
                let mut out = RawLinkMap::default();
                while let Some(k) = map.next_key::<S<String>>()? {
                    match k.value.as_str() {
                        "ends" => out.ends = Some(map.next_value()?),
                        "up" => {
                            let v = map.next_value::<S<Strict<bool>>>()?;
                            out.up = Some(Spanned::new(v.value.0, v.referenced, v.defined));
                        }
                        "egress" => {
                            let m = map.next_value::<OrderedMap<RawEgress>>()?;
                            out.egress = m.0;
                        }
                        "vni" => out.vni = Some(Box::new(map.next_value()?)),
                        key if SHAPE_KEYS.contains(&key) => {
                            let v = map.next_value::<S<Scalar>>()?;
                            out.shape.values.push((k, v));
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            out.unknown.push(k);
                        }
                    }
                }
                Ok(RawLink::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A node: one network namespace.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Node")]
pub struct RawNode {
    /// Its interfaces by name (the node's end of a cable).
    #[serde(default)]
    pub interfaces: OrderedMap<RawIface>,
    /// Routes in iproute2's words: `default dev bveth`, `10.0.2.0/24 via 10.0.1.1`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub routes: Vec<S<String>>,
    /// Forward packets between its interfaces (a router): net.ipv4.ip_forward
    /// and IPv6 forwarding in the node.
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    #[schemars(with = "Option<bool>")]
    pub forward: Option<S<bool>>,
    /// Programs started in the node by `up` and stopped by `down`, each a
    /// command line (`python3 -m http.server 800`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub run: Vec<S<String>>,
    /// Sysctls of the node's namespace, set at `up`: `net.ipv4.conf.all.rp_filter: 1`.
    /// Only `net.*` keys (the per-namespace ones).
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, SysctlValueSchema>")]
    pub sysctl: OrderedMap<SysctlValue>,
    /// Masquerade in the node (a router hiding the network behind it), like the
    /// lab's `nat:`; IPv4 or IPv6 sources.
    #[serde(default)]
    #[schemars(with = "Vec<RawNat>")]
    pub nat: Vec<S<RawNat>>,
    /// Its firewall: chains `input`, `output`, `forward` with a policy and rules.
    // Boxed: inline it is ~600 bytes in every node, most of which have none.
    #[serde(default)]
    pub firewall: Option<Box<crate::model::firewall::RawFirewall>>,
    /// The machine it lives on (a lab with `machines:`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on: Option<S<String>>,
}

/// A sysctl's value as the file gives it: an integer or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlValue(pub String);

#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)] // only its schema is used
pub enum SysctlValueSchema {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for SysctlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SysctlValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The host's part of the lab (host mode): its ends of cables and routes.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Host")]
pub struct RawHost {
    /// Interfaces of the host by name (the host's end of a cable).
    #[serde(default)]
    pub interfaces: OrderedMap<RawIface>,
    /// Routes in the host, in iproute2's words.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub routes: Vec<S<String>>,
    /// Sysctls of the host, set at `up`: any `net.*` key in `--sandbox`; in host
    /// mode only an allow-list, each put back at `down`.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, SysctlValueSchema>")]
    pub sysctl: OrderedMap<SysctlValue>,
    /// The host's firewall; in host mode it applies only to the lab's interfaces.
    #[serde(default)]
    pub firewall: Option<crate::model::firewall::RawFirewall>,
}

/// An interface: addresses, MTU, MAC.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Interface")]
pub struct RawIface {
    /// One address with its prefix length: `192.168.1.1/24`, `fd00::1/64`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub address: Option<S<String>>,
    /// Several addresses (with `address`, or instead of it).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub addresses: Vec<S<String>>,
    /// The MTU in bytes (68 to 65535).
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    #[schemars(with = "Option<u32>")]
    pub mtu: Option<S<u32>>,
    /// The MAC address, `02:00:00:00:00:01` (unicast).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mac: Option<S<String>>,
    /// Run the kernel's spanning tree protocol (default false); needed on every
    /// bridge of a loop of bridge-to-bridge links.
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    #[schemars(with = "Option<bool>")]
    pub stp: Option<S<bool>>,
    /// STP forward delay, `2s` to `30s` (default `2s`, the kernel's least); needs `stp: true`.
    #[serde(default)]
    #[schemars(with = "Option<TextOrNumber>")]
    pub forward_delay: Option<S<Scalar>>,
    /// STP max age, `6s` to `40s` (default `6s`, the kernel's least); needs `stp: true`.
    #[serde(default)]
    #[schemars(with = "Option<TextOrNumber>")]
    pub max_age: Option<S<Scalar>>,
}

/// A bridge (switch); with an address it is also the nodes' gateway.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Bridge")]
pub struct RawBridge {
    /// One address with its prefix length: `192.168.1.1/24`, `fd00::1/64`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub address: Option<S<String>>,
    /// Several addresses (with `address`, or instead of it).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub addresses: Vec<S<String>>,
    /// The MTU in bytes (68 to 65535).
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    #[schemars(with = "Option<u32>")]
    pub mtu: Option<S<u32>>,
    /// The MAC address, `02:00:00:00:00:01` (unicast).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mac: Option<S<String>>,
    /// Run the kernel's spanning tree protocol (default false); needed on every
    /// bridge of a loop of bridge-to-bridge links.
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    #[schemars(with = "Option<bool>")]
    pub stp: Option<S<bool>>,
    /// STP forward delay, `2s` to `30s` (default `2s`, the kernel's least); needs `stp: true`.
    #[serde(default)]
    #[schemars(with = "Option<TextOrNumber>")]
    pub forward_delay: Option<S<Scalar>>,
    /// STP max age, `6s` to `40s` (default `6s`, the kernel's least); needs `stp: true`.
    #[serde(default)]
    #[schemars(with = "Option<TextOrNumber>")]
    pub max_age: Option<S<Scalar>>,
    /// In a lab with `machines:`, the machine its addresses live on; its ports
    /// live with their nodes, and machines holding members are joined by VXLAN.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub on: Option<S<String>>,
}

/// Masquerade traffic from `source` leaving the host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Nat")]
pub struct RawNat {
    /// The source prefix, `192.168.0.0/16`.
    #[schemars(with = "String")]
    pub source: S<String>,
    /// Not when leaving by this interface (`! -o bri0`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub not_out: Option<S<String>>,
    /// Only when leaving by this interface (`-o eth0`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub out: Option<S<String>>,
}

/// A port of the host published to a node (DNAT).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Publish")]
pub struct RawPublish {
    /// The host's port, 1 to 65535.
    #[schemars(with = "u16")]
    pub port: S<u32>,
    /// `NODE:PORT` (the node's first address) or `NODE:IF:PORT` (that
    /// interface's first address).
    #[schemars(with = "String")]
    pub to: S<String>,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub proto: Option<S<String>>,
    /// `4` (default when the target has an IPv4 address) or `6`.
    #[serde(default)]
    #[schemars(with = "Option<FamilySchema>")]
    pub family: Option<S<String>>,
}

/// One expectation: exactly one of the probe kinds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Expect")]
pub struct RawExpect {
    /// `SRC -> DST` (reach) or `SRC !-> DST` (no reach): ping.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub reach: Option<S<String>>,
    /// `SRC -> DST`: ping must fail.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub no_reach: Option<S<String>>,
    /// `SRC -> DST:PORT`: a TCP port accepts connections.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tcp: Option<S<String>>,
    /// `SRC -> http://DST:PORT/PATH`: an HTTP GET answers `status`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub http: Option<S<String>>,
    /// The HTTP status `http` expects (default 200).
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    #[schemars(with = "Option<u16>")]
    pub status: Option<S<u16>>,
    /// `4` or `6`: the address family `reach`/`no_reach` probe (default 4).
    #[serde(default)]
    #[schemars(with = "Option<FamilySchema>")]
    pub family: Option<S<String>>,
    /// A name for reports (default: the expectation's text).
    #[serde(default)]
    pub name: Option<String>,
    /// `reach`/`no_reach`: ICMP payload bytes (as `ping -s`), sent with DF set.
    /// Any scalar is taken here and judged by validation, so the error names
    /// the expectation.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub size: Option<S<Scalar>>,
    /// `SRC -> DST`: goodput measured (TCP unless `udp: true`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub throughput: Option<S<String>>,
    /// `SRC -> DST`: UDP datagrams lost at `rate`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub loss: Option<S<String>>,
    /// `throughput`: a rate (`50mbit`); `loss`: a percentage (`5%`).
    #[serde(default)]
    #[schemars(with = "Option<TextOrNumber>")]
    pub at_least: Option<S<Scalar>>,
    /// `throughput`: a rate (`12mbit`); `loss`: a percentage (`5%`).
    #[serde(default)]
    #[schemars(with = "Option<TextOrNumber>")]
    pub at_most: Option<S<Scalar>>,
    /// `throughput`: measure UDP (at `rate`) instead of TCP.
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    #[schemars(with = "Option<bool>")]
    pub udp: Option<S<bool>>,
    /// `throughput`/`loss`: how long to send (default 2 seconds).
    #[serde(default)]
    #[schemars(with = "Option<TextOrNumber>")]
    pub seconds: Option<S<Scalar>>,
    /// `loss` and UDP `throughput`: the rate to send at (default 1mbit).
    #[serde(default)]
    #[schemars(with = "Option<TextOrNumber>")]
    pub rate: Option<S<Scalar>>,
}

/// The JSON Schema of the topology file, as `nslab schema` prints it.
pub fn schema() -> String {
    let s = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<RawFile>();
    let mut out = serde_json::to_string_pretty(&s).expect("a schema is JSON");
    out.push('\n');
    out
}

/// A YAML scalar as it was typed, for fields whose mistakes validation words
/// itself (a number out of range, a quoted number, text).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Unsigned(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Signed(v))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number or boolean exactly as YAML types it: `mtu: "1500"` or
/// `forward: "true"` (quoted, so strings) are errors naming the expected type,
/// not silently converted. serde-saphyr parses a typed target's text whatever
/// its quoting; asking for any value keeps the distinction.
pub struct Strict<T>(pub T);

impl<'de> Deserialize<'de> for Strict<bool> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean: true or false, without quotes")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
        }
        d.deserialize_any(V).map(Strict)
    }
}

macro_rules! strict_unsigned {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for Strict<$t> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        write!(f, "a whole number from 0 to {}, without quotes", <$t>::MAX)
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$t, E> {
                        <$t>::try_from(v).map_err(|_| {
                            E::invalid_value(serde::de::Unexpected::Unsigned(v), &self)
                        })
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$t, E> {
                        <$t>::try_from(v).map_err(|_| {
                            E::invalid_value(serde::de::Unexpected::Signed(v), &self)
                        })
                    }
                }
                d.deserialize_any(V).map(Strict)
            }
        }
    )*};
}
strict_unsigned!(u16, u32);

fn strict_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    Strict<T>: Deserialize<'de>,
{
    Ok(Option::<Strict<T>>::deserialize(d)?.map(|s| s.0))
}

fn strict_opt_spanned<'de, D, T>(d: D) -> Result<Option<S<T>>, D::Error>
where
    D: Deserializer<'de>,
    Strict<T>: Deserialize<'de>,
{
    Ok(Option::<S<Strict<T>>>::deserialize(d)?
        .map(|s| Spanned::new(s.value.0, s.referenced, s.defined)))
}
