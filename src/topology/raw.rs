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
    #[serde(default, deserialize_with = "strict_opt")]
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
    #[serde(default, deserialize_with = "strict_opt_spanned")]
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
    #[serde(default, deserialize_with = "strict_opt_spanned")]
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
    #[serde(default, deserialize_with = "strict_opt_spanned")]
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
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    pub status: Option<S<u16>>,
    #[serde(default)]
    pub family: Option<S<String>>,
    #[serde(default)]
    pub name: Option<String>,
    /// `reach`/`no_reach`: ICMP payload bytes (as `ping -s`), sent with DF set.
    /// Any scalar is taken here and judged by validation, so the error names
    /// the expectation.
    #[serde(default)]
    pub size: Option<S<Scalar>>,
    /// `SRC -> DST`: goodput measured (TCP unless `udp: true`).
    #[serde(default)]
    pub throughput: Option<S<String>>,
    /// `SRC -> DST`: UDP datagrams lost at `rate`.
    #[serde(default)]
    pub loss: Option<S<String>>,
    /// `throughput`: a rate (`50mbit`); `loss`: a percentage (`5%`).
    #[serde(default)]
    pub at_least: Option<S<Scalar>>,
    #[serde(default)]
    pub at_most: Option<S<Scalar>>,
    /// `throughput`: measure UDP (at `rate`) instead of TCP.
    #[serde(default, deserialize_with = "strict_opt_spanned")]
    pub udp: Option<S<bool>>,
    /// `throughput`/`loss`: how long to send (default 2 seconds).
    #[serde(default)]
    pub seconds: Option<S<Scalar>>,
    /// `loss` and UDP `throughput`: the rate to send at (default 1mbit).
    #[serde(default)]
    pub rate: Option<S<Scalar>>,
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
