//! Raw serde types of the topology file: exactly what the YAML says, with source
//! locations kept (`Spanned`) so validation can point at the line of a mistake.
//! Maps keep their order (nodes are created and listed in file order).

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
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

/// One address or a list of addresses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub name: Option<S<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub nodes: OrderedMap<RawNode>,
    #[serde(default)]
    pub bridges: OrderedMap<RawBridge>,
    #[serde(default)]
    pub links: Vec<S<Vec<S<String>>>>,
    #[serde(default)]
    pub host: Option<RawHost>,
    #[serde(default)]
    pub nat: Vec<S<RawNat>>,
    /// Give every interface an IPv6 link-local address even when the lab has no
    /// IPv6 address (default: only labs that use IPv6 get them).
    #[serde(default)]
    pub ipv6_link_local: Option<bool>,
    /// Expectations checked by `nslab check`.
    #[serde(default)]
    pub expect: Vec<S<RawExpect>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    #[serde(default)]
    pub interfaces: OrderedMap<RawIface>,
    #[serde(default)]
    pub routes: Vec<S<String>>,
    #[serde(default)]
    pub forward: Option<S<bool>>,
    #[serde(default)]
    pub run: Vec<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    #[serde(default)]
    pub interfaces: OrderedMap<RawIface>,
    #[serde(default)]
    pub routes: Vec<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIface {
    #[serde(default)]
    pub address: Option<S<String>>,
    #[serde(default)]
    pub addresses: Vec<S<String>>,
    #[serde(default)]
    pub mtu: Option<S<u32>>,
    #[serde(default)]
    pub mac: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBridge {
    #[serde(default)]
    pub address: Option<S<String>>,
    #[serde(default)]
    pub addresses: Vec<S<String>>,
    #[serde(default)]
    pub mtu: Option<S<u32>>,
    #[serde(default)]
    pub mac: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNat {
    pub source: S<String>,
    #[serde(default)]
    pub not_out: Option<S<String>>,
    #[serde(default)]
    pub out: Option<S<String>>,
}

/// One expectation: exactly one of the probe kinds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// `SRC -> DST` (reach) or `SRC !-> DST` (no reach)
    #[serde(default)]
    pub reach: Option<S<String>>,
    #[serde(default)]
    pub no_reach: Option<S<String>>,
    /// `SRC -> DST:PORT`
    #[serde(default)]
    pub tcp: Option<S<String>>,
    /// `SRC -> http://DST:PORT/PATH`
    #[serde(default)]
    pub http: Option<S<String>>,
    #[serde(default)]
    pub status: Option<S<u16>>,
    #[serde(default)]
    pub family: Option<S<String>>,
    #[serde(default)]
    pub name: Option<String>,
}
