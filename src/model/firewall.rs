//! Per-node firewalls: `firewall:` on a node (or on `host`) becomes one
//! nftables table in that namespace, `table inet nslab-LAB-fw`, marked like
//! the NAT table, with base chains `input`, `output`, `forward` (type filter,
//! priority filter) holding the file's rules in file order:
//!
//! ```yaml
//! firewall:
//!   input:   { policy: drop, rules: [ { proto: tcp, dport: 800, action: accept },
//!                                     { state: established, action: accept } ] }
//!   forward: { rules: [ { proto: icmp, from: 192.168.3.0/24, action: drop } ] }
//! ```
//!
//! Each rule carries its file line in its user data (libnftnl's comment TLV,
//! `comment "line 12"` in `nft list`), so why-not can name the rule that
//! dropped a probe from the kernel's trace (which names only the handle).
//!
//! On `host` in host mode the namespace is the real host's: a base chain's
//! `policy drop` there would be final for all of the host's traffic, so rules
//! and the policy apply only to the lab's interfaces (its bridges and the
//! host's veth ends): every rule without `in`/`out` is written once per lab
//! interface with an `iifname` (input, forward) or `oifname` (output,
//! forward) guard, and `policy: drop` becomes final rules `iifname "bri0"
//! drop` after them while the chain's own policy stays accept.

use std::fmt;

use ipnet::IpNet;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::topology::model::{Lab, Place, UPLINK_IF};
use crate::topology::raw::S;

// ---------------------------------------------------------------------------
// The file

/// `firewall:` of a node or of `host`: its chains.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Firewall")]
pub struct RawFirewall {
    /// Packets to this namespace's own addresses.
    #[serde(default)]
    #[schemars(with = "Option<RawChain>")]
    pub input: Option<S<RawChain>>,
    /// Packets this namespace sends.
    #[serde(default)]
    #[schemars(with = "Option<RawChain>")]
    pub output: Option<S<RawChain>>,
    /// Packets this namespace routes (a router, or bridged traffic in the
    /// host with br_netfilter).
    #[serde(default)]
    #[schemars(with = "Option<RawChain>")]
    pub forward: Option<S<RawChain>>,
}

/// One chain: its policy and its rules, in order.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FirewallChain")]
pub struct RawChain {
    /// `accept` (default) or `drop`: the verdict when no rule decides.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub policy: Option<S<String>>,
    /// Rules, first match decides.
    #[serde(default)]
    #[schemars(with = "Vec<RawRule>")]
    pub rules: Vec<S<RawRule>>,
}

/// One rule: matches (all must hold) and an action.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FirewallRule")]
pub struct RawRule {
    /// `accept`, `drop` or `reject` (ICMP port unreachable, as nft's `reject`).
    #[schemars(with = "String")]
    pub action: S<String>,
    /// `tcp`, `udp`, `icmp` or `icmpv6`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub proto: Option<S<String>>,
    /// Source prefix or address (`192.168.3.0/24`, `fd00::1`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub from: Option<S<String>>,
    /// Destination prefix or address.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub to: Option<S<String>>,
    /// Source port or range (`1000-2000`); needs `proto: tcp` or `udp`.
    #[serde(default)]
    #[schemars(with = "Option<PortSchema>")]
    pub sport: Option<S<PortSpec>>,
    /// Destination port or range; needs `proto: tcp` or `udp`.
    #[serde(default)]
    #[schemars(with = "Option<PortSchema>")]
    pub dport: Option<S<PortSpec>>,
    /// Interface the packet came in by (one of this node's).
    #[serde(default, rename = "in")]
    #[schemars(with = "Option<String>")]
    pub in_: Option<S<String>>,
    /// Interface the packet leaves by (one of this node's).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub out: Option<S<String>>,
    /// Connection state(s): `new`, `established`, `related`, `invalid`, one or a list.
    #[serde(default)]
    #[schemars(with = "Option<StateSchema>")]
    pub state: Option<S<StrList>>,
}

/// A port as written: a number or `LOW-HIGH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec(pub String);

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port (800) or a range (\"1000-2000\")")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortSpec, E> {
                Ok(PortSpec(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortSpec, E> {
                Ok(PortSpec(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortSpec, E> {
                Ok(PortSpec(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrList(pub Vec<String>);

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a state or a list of states")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StrList, E> {
                Ok(StrList(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<StrList, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<String>()? {
                    out.push(v);
                }
                Ok(StrList(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[allow(dead_code)] // only its schema is used
struct PortSchema;

impl JsonSchema for PortSchema {
    fn schema_name() -> Cow<'static, str> {
        "FirewallPort".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "anyOf": [
            { "type": "integer", "minimum": 1, "maximum": 65535 },
            { "type": "string", "pattern": "^[0-9]+(-[0-9]+)?$" }
        ] })
    }
}

#[allow(dead_code)] // only its schema is used
struct StateSchema;

impl JsonSchema for StateSchema {
    fn schema_name() -> Cow<'static, str> {
        "FirewallState".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let one = json_schema!({ "enum": ["new", "established", "related", "invalid"] });
        json_schema!({ "anyOf": [ one, { "type": "array", "items": one } ] })
    }
}

// ---------------------------------------------------------------------------
// The model

/// A base chain of the firewall table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Input,
    Output,
    Forward,
}

impl Hook {
    pub const ALL: [Hook; 3] = [Hook::Input, Hook::Output, Hook::Forward];
    pub fn name(self) -> &'static str {
        match self {
            Hook::Input => "input",
            Hook::Output => "output",
            Hook::Forward => "forward",
        }
    }
}

/// What a rule (or a policy) does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Accept,
    Drop,
    /// nft's `reject` in an inet table: ICMP(v6) port unreachable ("icmpx").
    Reject,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Reject => "reject",
        }
    }
}

/// The transport protocol of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4 {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

impl L4 {
    pub fn number(self) -> u8 {
        match self {
            L4::Tcp => 6,
            L4::Udp => 17,
            L4::Icmp => 1,
            L4::Icmpv6 => 58,
        }
    }
    /// As nft prints `meta l4proto`.
    pub fn nft(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Icmp => "icmp",
            L4::Icmpv6 => "ipv6-icmp",
        }
    }
}

/// Conntrack states (`ct state`), their bits in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtState {
    Invalid,
    Established,
    Related,
    New,
}

impl CtState {
    /// NF_CT_STATE_BIT(ctinfo), as nft's `ct state` encodes it.
    pub fn bit(self) -> u32 {
        match self {
            CtState::Invalid => 1,
            CtState::Established => 2,
            CtState::Related => 4,
            CtState::New => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            CtState::Invalid => "invalid",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::New => "new",
        }
    }
}

/// One rule, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// Its line in the file.
    pub line: usize,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<L4>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<(u16, u16)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<(u16, u16)>,
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    #[serde(default, rename = "out", skip_serializing_if = "Option::is_none")]
    pub oif: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<CtState>,
    /// Set on the rules of a host-mode policy (`policy: drop` as final rules).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub policy: bool,
}

/// One chain, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Chain {
    pub hook: Hook,
    /// Line of the chain's `policy:` in the file (else of the chain).
    pub line: usize,
    /// Accept or drop.
    pub policy: Action,
    pub rules: Vec<Rule>,
}

/// The firewall of one place (a node, or the host).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Firewall {
    pub place: Place,
    pub chains: Vec<Chain>,
}

/// The name of a lab's firewall tables (one per namespace).
pub fn table(lab: &str) -> String {
    format!("nslab-{lab}-fw")
}

/// The user data comment of a rule: its file line.
pub fn comment(r: &Rule) -> String {
    if r.policy {
        format!("line {} policy", r.line)
    } else {
        format!("line {}", r.line)
    }
}

/// The file line in a rule's comment (`line 12`, `line 12 policy`).
pub fn line_of_comment(c: &str) -> Option<usize> {
    c.strip_prefix("line ")?
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
}

fn ports(p: (u16, u16)) -> String {
    if p.0 == p.1 {
        p.0.to_string()
    } else {
        format!("{}-{}", p.0, p.1)
    }
}

fn fam(n: &IpNet) -> &'static str {
    match n {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// The rule as `nft` would take it (the order of its matches is the order
/// of its expressions).
pub fn rule_text(r: &Rule) -> String {
    let mut w: Vec<String> = Vec::new();
    if let Some(i) = &r.iif {
        w.push(format!("iifname \"{i}\""));
    }
    if let Some(o) = &r.oif {
        w.push(format!("oifname \"{o}\""));
    }
    if let Some(n) = &r.from {
        w.push(format!("{} saddr {n}", fam(n)));
    }
    if let Some(n) = &r.to {
        w.push(format!("{} daddr {n}", fam(n)));
    }
    if let Some(p) = r.proto {
        w.push(format!("meta l4proto {}", p.nft()));
        if let Some(s) = r.sport {
            w.push(format!("{} sport {}", p.nft(), ports(s)));
        }
        if let Some(d) = r.dport {
            w.push(format!("{} dport {}", p.nft(), ports(d)));
        }
    }
    if !r.state.is_empty() {
        let s: Vec<&str> = r.state.iter().map(|s| s.name()).collect();
        w.push(format!("ct state {}", s.join(",")));
    }
    w.push(r.action.name().to_string());
    w.push(format!("comment \"{}\"", comment(r)));
    w.join(" ")
}

/// The host's lab interfaces in host mode (the guards of its rules): its
/// bridges and its veth ends. None for a node or a sandbox's host, whose
/// namespace is the lab's alone.
pub fn guards(lab: &Lab, place: &Place) -> Option<Vec<String>> {
    if *place != Place::Host || lab.sandbox {
        return None;
    }
    // Bridge ports are left out: at the IP hooks a bridged packet's
    // iifname/oifname is the bridge (br_netfilter too), never a port.
    let mut g: Vec<String> = lab.bridges.iter().map(|b| b.name.clone()).collect();
    g.extend(
        lab.host
            .interfaces
            .iter()
            .filter(|i| !lab.bridges.iter().any(|b| b.ports.contains(&i.name)))
            .map(|i| i.name.clone()),
    );
    Some(g)
}

/// The rules the kernel holds for one chain, in order: the file's, or in
/// host mode each guarded by every lab interface, then the policy rules.
pub fn kernel_rules(c: &Chain, guards: Option<&[String]>) -> Vec<Rule> {
    let Some(g) = guards else {
        return c.rules.clone();
    };
    let mut out = Vec::new();
    let set = |r: &Rule, i: &str, input: bool| {
        let mut r = r.clone();
        if input {
            r.iif = Some(i.to_string());
        } else {
            r.oif = Some(i.to_string());
        }
        r
    };
    // Which side(s) of the packet a guard goes on.
    let sides: &[bool] = match c.hook {
        Hook::Input => &[true],
        Hook::Output => &[false],
        Hook::Forward => &[true, false],
    };
    for r in &c.rules {
        if r.iif.is_some() || r.oif.is_some() {
            out.push(r.clone());
            continue;
        }
        for &side in sides {
            for i in g {
                out.push(set(r, i, side));
            }
        }
    }
    if c.policy == Action::Drop {
        let p = Rule {
            line: c.line,
            action: Action::Drop,
            proto: None,
            from: None,
            to: None,
            sport: None,
            dport: None,
            iif: None,
            oif: None,
            state: Vec::new(),
            policy: true,
        };
        for &side in sides {
            for i in g {
                out.push(set(&p, i, side));
            }
        }
    }
    out
}

/// The policy the kernel's base chain has (accept in host mode, see the
/// module's comment).
pub fn kernel_policy(c: &Chain, guards: Option<&[String]>) -> Action {
    if guards.is_some() {
        Action::Accept
    } else {
        c.policy
    }
}

/// The `nft` commands that make the table of `fw` (`plan --explain`); `pre`
/// runs them in the right namespace (`ip netns exec NS `).
pub fn explain(lab: &Lab, fw: &Firewall, pre: &str) -> Vec<String> {
    let t = table(&lab.name);
    let g = guards(lab, &fw.place);
    let mut out = vec![format!(
        "{pre}nft 'add table inet {t} {{ comment \"{}\"; }}'",
        lab.mark()
    )];
    for c in &fw.chains {
        out.push(format!(
            "{pre}nft 'add chain inet {t} {} {{ type filter hook {} priority filter; policy {}; }}'",
            c.hook.name(),
            c.hook.name(),
            kernel_policy(c, g.as_deref()).name()
        ));
    }
    for c in &fw.chains {
        for r in kernel_rules(c, g.as_deref()) {
            out.push(format!(
                "{pre}nft 'add rule inet {t} {} {}'",
                c.hook.name(),
                rule_text(&r)
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Validation

type Report<'a> = dyn FnMut(&serde_saphyr::Location, String, String) + 'a;

fn parse_ports(s: &str) -> Option<(u16, u16)> {
    let one = |x: &str| x.trim().parse::<u16>().ok().filter(|p| *p > 0);
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            (a <= b).then_some((a, b))
        }
        None => one(s).map(|p| (p, p)),
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        // The network, as nft prints it (192.168.3.7/24 is 192.168.3.0/24).
        return Some(n.trunc());
    }
    s.parse::<std::net::IpAddr>().ok().map(IpNet::from)
}

/// Validate the `firewall:` of `place`; `ifaces` are the names `in`/`out` may
/// take there.
pub fn parse(
    report: &mut Report,
    raw: &RawFirewall,
    place: &Place,
    ifaces: &[String],
    field: &str,
) -> Option<Firewall> {
    let mut chains = Vec::new();
    let mut ok = true;
    for (hook, rc) in [
        (Hook::Input, &raw.input),
        (Hook::Output, &raw.output),
        (Hook::Forward, &raw.forward),
    ] {
        let Some(rc) = rc else { continue };
        let cf = format!("{field}.{}", hook.name());
        let policy = match rc.value.policy.as_ref().map(|p| (p, p.value.as_str())) {
            None | Some((_, "accept")) => Action::Accept,
            Some((_, "drop")) => Action::Drop,
            Some((p, other)) => {
                report(
                    &p.referenced,
                    format!("{cf}.policy"),
                    format!("policy {other:?} is not accept or drop"),
                );
                ok = false;
                Action::Accept
            }
        };
        let mut rules = Vec::new();
        for (i, rr) in rc.value.rules.iter().enumerate() {
            let rf = format!("{cf}.rules[{i}]");
            match parse_rule(report, rr, ifaces, &rf) {
                // A packet has no way out yet at input, nor a way in at output.
                Some(r) if hook == Hook::Input && r.oif.is_some() => {
                    report(
                        &rr.referenced,
                        format!("{rf}.out"),
                        "input rules cannot match `out` (the packet is for this namespace)".into(),
                    );
                    ok = false;
                }
                Some(r) if hook == Hook::Output && r.iif.is_some() => {
                    report(
                        &rr.referenced,
                        format!("{rf}.in"),
                        "output rules cannot match `in` (the packet is made here)".into(),
                    );
                    ok = false;
                }
                Some(r) => rules.push(r),
                None => ok = false,
            }
        }
        chains.push(Chain {
            hook,
            // Where the policy is written, else where the chain is.
            line: rc
                .value
                .policy
                .as_ref()
                .map_or(rc.referenced.line(), |p| p.referenced.line()) as usize,
            policy,
            rules,
        });
    }
    ok.then(|| Firewall {
        place: place.clone(),
        chains,
    })
}

fn parse_rule(report: &mut Report, rr: &S<RawRule>, ifaces: &[String], rf: &str) -> Option<Rule> {
    let v = &rr.value;
    let mut ok = true;
    let mut bad = |loc: &serde_saphyr::Location, f: &str, m: String| {
        report(loc, format!("{rf}.{f}"), m);
        ok = false;
    };
    let action = match v.action.value.as_str() {
        "accept" => Action::Accept,
        "drop" => Action::Drop,
        "reject" => Action::Reject,
        other => {
            bad(
                &v.action.referenced,
                "action",
                format!("action {other:?} is not accept, drop or reject"),
            );
            Action::Drop
        }
    };
    let proto = match v.proto.as_ref() {
        None => None,
        Some(p) => match p.value.as_str() {
            "tcp" => Some(L4::Tcp),
            "udp" => Some(L4::Udp),
            "icmp" => Some(L4::Icmp),
            "icmpv6" => Some(L4::Icmpv6),
            other => {
                bad(
                    &p.referenced,
                    "proto",
                    format!("proto {other:?} is not tcp, udp, icmp or icmpv6"),
                );
                None
            }
        },
    };
    let mut net = |x: &Option<S<String>>, f: &str| -> Option<IpNet> {
        let x = x.as_ref()?;
        let n = parse_net(&x.value);
        if n.is_none() {
            bad(
                &x.referenced,
                f,
                format!(
                    "{:?} is not an address or prefix (192.168.3.0/24, fd00::1)",
                    x.value
                ),
            );
        }
        n
    };
    let from = net(&v.from, "from");
    let to = net(&v.to, "to");
    if let (Some(a), Some(b)) = (from, to)
        && a.addr().is_ipv4() != b.addr().is_ipv4()
    {
        bad(
            &rr.referenced,
            "to",
            "from and to are of different address families".to_string(),
        );
    }
    let fam4 = from.or(to).map(|n| n.addr().is_ipv4());
    match (proto, fam4) {
        (Some(L4::Icmp), Some(false)) => bad(
            &rr.referenced,
            "proto",
            "icmp is IPv4's; an IPv6 prefix needs proto: icmpv6".to_string(),
        ),
        (Some(L4::Icmpv6), Some(true)) => bad(
            &rr.referenced,
            "proto",
            "icmpv6 is IPv6's; an IPv4 prefix needs proto: icmp".to_string(),
        ),
        _ => {}
    }
    let mut port = |x: &Option<S<PortSpec>>, f: &str| -> Option<(u16, u16)> {
        let x = x.as_ref()?;
        if !matches!(proto, Some(L4::Tcp | L4::Udp)) {
            bad(
                &x.referenced,
                f,
                format!("{f} needs proto: tcp or proto: udp"),
            );
            return None;
        }
        let p = parse_ports(&x.value.0);
        if p.is_none() {
            bad(
                &x.referenced,
                f,
                format!(
                    "{:?} is not a port (1 to 65535) or a range LOW-HIGH",
                    x.value.0
                ),
            );
        }
        p
    };
    let sport = port(&v.sport, "sport");
    let dport = port(&v.dport, "dport");
    let mut iface = |x: &Option<S<String>>, f: &str| -> Option<String> {
        let x = x.as_ref()?;
        if !ifaces.contains(&x.value) {
            bad(
                &x.referenced,
                f,
                format!(
                    "{:?} is not an interface here (it has: {})",
                    x.value,
                    ifaces.join(", ")
                ),
            );
        }
        Some(x.value.clone())
    };
    let iif = iface(&v.in_, "in");
    let oif = iface(&v.out, "out");
    let mut state = Vec::new();
    if let Some(s) = &v.state {
        if s.value.0.is_empty() {
            bad(&s.referenced, "state", "state is an empty list".to_string());
        }
        for x in &s.value.0 {
            let c = match x.as_str() {
                "new" => CtState::New,
                "established" => CtState::Established,
                "related" => CtState::Related,
                "invalid" => CtState::Invalid,
                other => {
                    bad(
                        &s.referenced,
                        "state",
                        format!("state {other:?} is not new, established, related or invalid"),
                    );
                    continue;
                }
            };
            if !state.contains(&c) {
                state.push(c);
            }
        }
    }
    ok.then(|| Rule {
        line: rr.referenced.line() as usize,
        action,
        proto,
        from,
        to,
        sport,
        dport,
        iif,
        oif,
        state,
        policy: false,
    })
}

/// Validate every `firewall:` of the file (nodes in file order, then the
/// host).
pub fn parse_all(
    report: &mut Report,
    nodes: &[(&str, &RawFirewall)],
    host: Option<&RawFirewall>,
    lab: &Lab,
) -> Vec<Firewall> {
    let mut out = Vec::new();
    for (name, raw) in nodes {
        let Some(n) = lab.node(name) else { continue };
        let ifaces: Vec<String> = n.interfaces.iter().map(|i| i.name.clone()).collect();
        let place = Place::Node(name.to_string());
        if let Some(f) = parse(
            report,
            raw,
            &place,
            &ifaces,
            &format!("nodes.{name}.firewall"),
        ) {
            out.push(f);
        }
    }
    if let Some(raw) = host {
        let mut ifaces: Vec<String> = lab.bridges.iter().map(|b| b.name.clone()).collect();
        ifaces.extend(lab.host.interfaces.iter().map(|i| i.name.clone()));
        if lab.sandbox {
            ifaces.push(UPLINK_IF.to_string());
        }
        if let Some(f) = parse(report, raw, &Place::Host, &ifaces, "host.firewall") {
            out.push(f);
        }
    }
    out.retain(|f| !f.chains.is_empty());
    out
}

impl fmt::Display for Firewall {
    /// `black: input (policy drop, 2 rules), forward (1 rule)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.place)?;
        for (i, c) in self.chains.iter().enumerate() {
            write!(
                f,
                "{} {} (policy {}, {} rule{})",
                if i == 0 { "" } else { "," },
                c.hook.name(),
                c.policy.name(),
                c.rules.len(),
                if c.rules.len() == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = r#"name: x
bridges:
  bri0: { address: 10.0.0.1/16 }
nodes:
  black:
    interfaces:
      e0: { address: 10.0.1.1/24 }
      e1: { address: "fd01::1/64" }
  white:
    interfaces: { w0: { address: 10.0.2.1/24 }, w1: { address: "fd01::2/64" } }
  gray:
    interfaces: { g0: { address: 10.9.0.2/24 } }
links:
  - [ black:e0, bri0:p0 ]
  - [ white:w0, bri0:p1 ]
  - [ black:e1, white:w1 ]
  - [ gray:g0, host:h0 ]
host:
  interfaces: { h0: { address: 10.9.0.1/24 } }
"#;

    fn parse(extra: &str, sandbox: bool) -> Result<Lab, crate::topology::TopologyError> {
        let opts = crate::topology::Options {
            sandbox,
            check_programs: false,
            ..Default::default()
        };
        let text = LAB.replacen(
            "      e1: { address: \"fd01::1/64\" }\n",
            &format!("      e1: {{ address: \"fd01::1/64\" }}\n    firewall:\n{extra}"),
            1,
        );
        crate::topology::parse_str(&text, "t.yaml", &opts)
    }

    /// The first issue of a bad firewall: (line, field, message).
    fn issue(extra: &str) -> (u64, String, String) {
        let e = parse(extra, true).expect_err("refused");
        let i = &e.issues[0];
        (i.line, i.field.clone(), i.message.clone())
    }

    #[test]
    fn rules_keep_their_lines_and_read_as_nft_text() {
        let lab = parse(
            r#"      input:
        policy: drop
        rules:
          - { proto: tcp, dport: 800, action: accept }
          - { state: [established, related], action: accept }
          - { proto: udp, sport: "1000-2000", from: 10.0.2.7/24, in: e0, action: reject }
      forward:
        rules: [ { proto: icmpv6, to: "fd01::/64", out: e1, action: drop } ]
"#,
            true,
        )
        .unwrap();
        let fw = &lab.firewalls[0];
        assert_eq!(fw.place, Place::Node("black".into()));
        let input = &fw.chains[0];
        assert_eq!(
            (input.hook, input.policy, input.line),
            (Hook::Input, Action::Drop, 11)
        );
        let lines: Vec<usize> = input.rules.iter().map(|r| r.line).collect();
        assert_eq!(lines, [13, 14, 15]);
        let text: Vec<String> = fw
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .map(rule_text)
            .collect();
        assert_eq!(
            text,
            [
                r#"meta l4proto tcp tcp dport 800 accept comment "line 13""#,
                r#"ct state established,related accept comment "line 14""#,
                r#"iifname "e0" ip saddr 10.0.2.0/24 meta l4proto udp udp sport 1000-2000 reject comment "line 15""#,
                r#"oifname "e1" ip6 daddr fd01::/64 meta l4proto ipv6-icmp drop comment "line 17""#,
            ]
        );
        assert_eq!(line_of_comment("line 15"), Some(15));
        assert_eq!(line_of_comment("line 11 policy"), Some(11));
        assert_eq!(line_of_comment("other"), None);
        let ex = explain(&lab, fw, "ip netns exec black ");
        assert_eq!(
            ex[..3],
            [
                r#"ip netns exec black nft 'add table inet nslab-x-fw { comment "nslab:x"; }'"#,
                "ip netns exec black nft 'add chain inet nslab-x-fw input { type filter hook input priority filter; policy drop; }'",
                "ip netns exec black nft 'add chain inet nslab-x-fw forward { type filter hook forward priority filter; policy accept; }'",
            ]
        );
        assert_eq!(ex.len(), 3 + 4);
        // A node's rules are not guarded.
        assert_eq!(guards(&lab, &fw.place), None);
    }

    #[test]
    fn host_mode_guards_every_rule_and_turns_a_drop_policy_into_rules() {
        let text = format!(
            "{LAB}  firewall:\n    input:\n      policy: drop\n      rules: [ {{ proto: tcp, dport: 22, action: accept }} ]\n    forward:\n      rules: [ {{ in: bri0, action: accept }} ]\n"
        );
        let opts = crate::topology::Options {
            check_programs: false,
            ..Default::default()
        };
        let lab = crate::topology::parse_str(&text, "t.yaml", &opts).unwrap();
        let fw = lab
            .firewalls
            .iter()
            .find(|f| f.place == Place::Host)
            .unwrap();
        let g = guards(&lab, &Place::Host).unwrap();
        // The bridge and the host's own veth end; never a bridge port.
        assert_eq!(g, ["bri0", "h0"]);
        let input = &fw.chains[0];
        assert_eq!(kernel_policy(input, Some(&g)), Action::Accept);
        let rules: Vec<String> = kernel_rules(input, Some(&g))
            .iter()
            .map(rule_text)
            .collect();
        assert_eq!(
            rules,
            [
                r#"iifname "bri0" meta l4proto tcp tcp dport 22 accept comment "line 23""#,
                r#"iifname "h0" meta l4proto tcp tcp dport 22 accept comment "line 23""#,
                r#"iifname "bri0" drop comment "line 22 policy""#,
                r#"iifname "h0" drop comment "line 22 policy""#,
            ]
        );
        // A rule naming an interface keeps it and is not repeated.
        assert_eq!(kernel_rules(&fw.chains[1], Some(&g)).len(), 1);
        // In a sandbox the host's namespace is the lab's: nothing guarded.
        let sb = crate::topology::parse_str(
            &text,
            "t.yaml",
            &crate::topology::Options {
                sandbox: true,
                check_programs: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(guards(&sb, &Place::Host), None);
    }

    #[test]
    fn bad_rules_name_line_and_field() {
        let one = |rule: &str| {
            issue(&format!(
                "      input:\n        rules:\n          - {rule}\n"
            ))
        };
        let (line, field, msg) = one("{ dport: 80, action: accept }");
        assert_eq!(line, 12);
        assert_eq!(field, "nodes.black.firewall.input.rules[0].dport");
        assert!(msg.contains("needs proto"), "{msg}");
        let (_, field, msg) = one("{ proto: tcp, dport: \"90-80\", action: accept }");
        assert!(field.ends_with(".dport") && msg.contains("range"), "{msg}");
        let (_, _, msg) = one("{ in: w0, action: accept }");
        assert!(
            msg.contains("\"w0\" is not an interface here (it has: e0, e1)"),
            "{msg}"
        );
        let (_, field, _) = one("{ action: allow }");
        assert!(field.ends_with(".action"));
        let (_, _, msg) = one("{ state: [new, old], action: accept }");
        assert!(msg.contains("\"old\""), "{msg}");
        let (_, _, msg) = one("{ proto: icmp, from: \"fd01::/64\", action: drop }");
        assert!(msg.contains("icmpv6"), "{msg}");
        let (_, _, msg) = one("{ from: 10.0.0.0/8, to: \"fd01::1\", action: drop }");
        assert!(msg.contains("different address families"), "{msg}");
        let (_, field, _) = one("{ out: e0, action: drop }");
        assert!(field.ends_with(".out"), "{field}");
        let (_, _, msg) = one("{ from: nowhere, action: drop }");
        assert!(msg.contains("not an address or prefix"), "{msg}");
        let (line, field, msg) = issue("      input: { policy: reject }\n");
        assert_eq!(
            (line, field.as_str()),
            (10, "nodes.black.firewall.input.policy")
        );
        assert!(msg.contains("accept or drop"), "{msg}");
        // Unknown keys are the parser's errors, with the line too.
        let e = parse("      inptu: { policy: drop }\n", true).expect_err("refused");
        let t = e.to_string();
        assert!(t.contains("inptu") && t.contains("10"), "{t}");
    }
}
