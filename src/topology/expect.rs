//! The `expect` section: what `nslab check` must find true.
//!
//! ```yaml
//! expect:
//!   - reach: green -> black          # ping (IPv4 unless `family: 6`)
//!   - reach: green -> black
//!     size: 1472                     # ICMP payload bytes (ping -s), DF set
//!   - no_reach: green -> internet
//!   - tcp: white -> black:800        # a TCP port accepts connections
//!   - http: white -> http://black:800/
//!     status: 200                    # default 200
//!   - throughput: a -> b             # TCP goodput for 2 s (`seconds: N`)
//!     at_least: 50mbit               # and/or at_most:, tc's units
//!   - loss: a -> b                   # UDP at `rate:` (default 1mbit)
//!     at_most: 5%
//! ```

use super::group::{self, Members, is_group};
use super::model::{Expect, ExpectKind, Lab, Place};
use super::raw::{RawExpect, S, Scalar};
use serde_saphyr::Location;

type Report<'a> = dyn FnMut(&Location, String, String) + 'a;

/// Is `s` a place or endpoint of the lab (`node`, `node:if`, `host`, `internet`, `bridge:port`) or an IP address?
pub fn target_problem(lab: &Lab, s: &str) -> Option<String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let (place, ifname) = match s.split_once(':') {
        Some((p, i)) => (p, Some(i)),
        None => (s, None),
    };
    let known_place = match place {
        "host" => Some(Place::Host),
        // Checked only in sandboxed labs; in host mode the expectation is skipped.
        "internet" if lab.sandbox => Some(Place::Internet),
        "internet" => return None,
        n if lab.node(n).is_some() => Some(Place::Node(n.into())),
        b if lab.bridge(b).is_some() => {
            return match ifname {
                None => None,
                Some(p)
                    if lab
                        .bridge(b)
                        .is_some_and(|br| br.ports.iter().any(|x| x == p)) =>
                {
                    None
                }
                Some(p) => Some(format!("{p:?} is not a port of bridge {b}")),
            };
        }
        _ => None,
    };
    let Some(pl) = known_place else {
        return Some(format!(
            "{place:?} is not a node, bridge, `host`, `internet` or IP address of this lab"
        ));
    };
    if let Some(i) = ifname
        && !lab.addresses_of(&pl).iter().any(|(n, _)| n == i)
        && !interface_exists(lab, &pl, i)
    {
        return Some(format!("{pl} has no interface {i:?}"));
    }
    None
}

fn interface_exists(lab: &Lab, pl: &Place, i: &str) -> bool {
    match pl {
        Place::Node(n) => lab
            .node(n)
            .is_some_and(|n| n.interfaces.iter().any(|x| x.name == i)),
        Place::Host => {
            lab.host.interfaces.iter().any(|x| x.name == i)
                || lab
                    .bridges
                    .iter()
                    .any(|b| b.name == i || b.ports.iter().any(|p| p == i))
        }
        Place::Internet => false,
    }
}

/// A place that can send (probe source): node, host or internet.
pub fn source_problem(lab: &Lab, s: &str) -> Option<String> {
    match s {
        "host" => None,
        "internet" => None,
        n if lab.node(n).is_some() => None,
        _ => Some(format!(
            "{s:?} is not a node, `host` or `internet`; probes are sent from one of those"
        )),
    }
}

/// The families (4, 6) a place or target has addresses of, as the lab's file
/// says; `None` when not known from the file (`host` without addresses in the
/// file uses the machine's; the `internet` in host mode).
pub fn families_of(lab: &Lab, s: &str) -> Option<Vec<u8>> {
    if let Ok(a) = s.parse::<std::net::IpAddr>() {
        return Some(vec![if a.is_ipv6() { 6 } else { 4 }]);
    }
    let (place, ifname) = match s.split_once(':') {
        Some((p, i)) => (p, Some(i)),
        None => (s, None),
    };
    let addrs: Vec<(String, ipnet::IpNet)> = if let Some(b) = lab.bridge(place) {
        b.addresses.iter().map(|a| (b.name.clone(), *a)).collect()
    } else {
        let pl = match place {
            "host" => Place::Host,
            "internet" if lab.sandbox => Place::Internet,
            "internet" => return None,
            n if lab.node(n).is_some() => Place::Node(n.into()),
            _ => return None,
        };
        lab.addresses_of(&pl)
    };
    let v: Vec<u8> = [4u8, 6]
        .into_iter()
        .filter(|f| {
            addrs
                .iter()
                .filter(|(i, _)| ifname.is_none_or(|x| x == i))
                .any(|(_, a)| a.addr().is_ipv6() == (*f == 6))
        })
        .collect();
    if v.is_empty() && place == "host" {
        return None;
    }
    Some(v)
}

/// The family a `reach`/`no_reach` expectation probes: the one given, else the
/// one both ends have (IPv4 when both have both). An error when the ends have
/// no family in common (or the given one is missing at an end).
pub fn expect_family(lab: &Lab, src: &str, dst: &str, family: Option<u8>) -> Result<u8, String> {
    let s = families_of(lab, src);
    let d = families_of(lab, dst);
    let has = |v: &Option<Vec<u8>>, f: u8| v.as_ref().is_none_or(|v| v.contains(&f));
    let names = |v: &Option<Vec<u8>>| match v.as_deref() {
        Some([]) => "no address".to_string(),
        Some([f]) => format!("IPv{f} only"),
        _ => "IPv4 and IPv6".to_string(),
    };
    if let Some(f) = family {
        for (end, v) in [(src, &s), (dst, &d)] {
            if !has(v, f) {
                return Err(format!("{end} has no IPv{f} address ({})", names(v)));
            }
        }
        return Ok(f);
    }
    for f in [4, 6] {
        if has(&s, f) && has(&d, f) {
            return Ok(f);
        }
    }
    Err(format!(
        "{src} ({}) and {dst} ({}) have no address family in common",
        names(&s),
        names(&d)
    ))
}

/// Largest ICMP payload of one IPv4 datagram (65535 - 20 - 8), as `ping -s`.
pub const MAX_SIZE_V4: usize = 65507;
/// Largest ICMPv6 payload of one IPv6 packet without jumbograms (65535 - 8).
pub const MAX_SIZE_V6: usize = 65527;

/// The `size:` of a reach expectation of family `family`, or what is wrong with it.
pub fn parse_size(v: &Scalar, family: u8) -> Result<usize, String> {
    let max = if family == 6 {
        MAX_SIZE_V6
    } else {
        MAX_SIZE_V4
    };
    let range = format!(
        "ICMP payload bytes (as `ping -s`) from 0 to {max} for IPv{family}, without quotes"
    );
    match v {
        Scalar::Unsigned(n) if *n <= max as u64 => Ok(*n as usize),
        Scalar::Unsigned(n) => Err(format!("size {n} is out of range: give {range}")),
        Scalar::Signed(n) => Err(format!("size {n} is out of range: give {range}")),
        Scalar::Float(x) => Err(format!("size {x} is not a whole number: give {range}")),
        Scalar::Bool(b) => Err(format!("size {b} is not a number: give {range}")),
        Scalar::Text(t) => Err(format!("size {t:?} is not a number: give {range}")),
    }
}

fn split_arrow(s: &str) -> Option<(String, String)> {
    let (a, b) = s.split_once("->")?;
    let a = a.trim().trim_end_matches('!').trim();
    Some((a.to_string(), b.trim().to_string()))
}

pub fn parse_expects(report: &mut Report, raw: &[S<RawExpect>], lab: &Lab) -> Vec<Expect> {
    let mut out = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        if let Some(x) = parse_expect(report, &format!("expect[{i}]"), e, lab) {
            out.push(x);
        }
    }
    out
}

/// One expectation's text, split at its arrow.
struct ExpectText<'a> {
    /// `expect[i]`
    field: &'a str,
    /// `expect[i].KIND`
    f: String,
    text: &'a S<String>,
    /// `reach`, `no_reach`, `tcp` or `http`.
    kind: &'static str,
    src: String,
    dst: String,
}

fn parse_expect(report: &mut Report, field: &str, e: &S<RawExpect>, lab: &Lab) -> Option<Expect> {
    let l = &e.referenced;
    let r = &e.value;
    let given = [
        r.reach.is_some(),
        r.no_reach.is_some(),
        r.tcp.is_some(),
        r.http.is_some(),
        r.throughput.is_some(),
        r.loss.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given != 1 {
        report(
            l,
            field.to_string(),
            "give exactly one of `reach`, `no_reach`, `tcp`, `http`, `throughput` or `loss`".into(),
        );
        return None;
    }
    let family = match r.family.as_ref().map(|f| f.value.as_str()) {
        None => None,
        Some("4") | Some("ipv4") => Some(4),
        Some("6") | Some("ipv6") => Some(6),
        Some(f) => {
            report(
                l,
                format!("{field}.family"),
                format!("family {f:?} is not 4 or 6"),
            );
            return None;
        }
    };
    let (text, kind) = kind_of(r);
    let f = format!("{field}.{kind}");
    let Some((src, dst)) = split_arrow(&text.value) else {
        report(
            &text.referenced,
            f,
            format!("{:?} needs the form `SOURCE -> DESTINATION`", text.value),
        );
        return None;
    };
    let c = ExpectText {
        field,
        f,
        text,
        kind,
        src,
        dst,
    };
    if let Some((name, at)) = perf_field_misplaced(r, kind) {
        report(
            at,
            format!("{field}.{name}"),
            format!(
                "{kind}: {}: `{name}` applies to `throughput` and `loss` only",
                text.value.trim()
            ),
        );
        return None;
    }
    if matches!(kind, "tcp" | "http" | "throughput" | "loss")
        && let Some(s) = &r.size
    {
        report(
            &s.referenced,
            format!("{field}.size"),
            format!(
                "{kind}: {}: `size` applies to `reach` and `no_reach` (ping) only",
                text.value.trim()
            ),
        );
        return None;
    }
    let k = if is_group(&c.src) || is_group(group_target(kind, &c.dst)) {
        group_kind(report, &c, r, family, lab)?
    } else {
        one_kind(report, &c, r, family, lab)?
    };
    let name = r.name.clone().unwrap_or_else(|| match &k {
        ExpectKind::Reach { size: Some(n), .. } => {
            format!("{kind}: {} (size {n})", text.value.trim())
        }
        ExpectKind::Throughput { .. } | ExpectKind::Loss { .. } => {
            format!("{kind}: {}{}", text.value.trim(), bounds_text(r))
        }
        _ => format!("{kind}: {}", text.value.trim()),
    });
    Some(Expect {
        name,
        kind: k,
        line: l.line(),
    })
}

/// The part of an expectation's destination a group may stand for: the
/// target before `:PORT` of `tcp`; none of an `http` URL.
pub fn group_target<'a>(kind: &str, dst: &'a str) -> &'a str {
    match kind {
        "tcp" => dst.rsplit_once(':').map_or(dst, |(h, _)| h),
        "http" => "",
        _ => dst,
    }
}

/// One expectation between two places.
fn one_kind(
    report: &mut Report,
    c: &ExpectText,
    r: &RawExpect,
    family: Option<u8>,
    lab: &Lab,
) -> Option<ExpectKind> {
    if let Some(p) = source_problem(lab, &c.src) {
        report(&c.text.referenced, c.f.clone(), p);
        return None;
    }
    match c.kind {
        "reach" | "no_reach" => reach_kind(report, c, r, family, lab),
        "tcp" => tcp_kind(report, c, lab),
        "http" => http_kind(report, c, r),
        _ => perf_kind(report, c, r, lab),
    }
}

/// An expectation between groups (`all -> all`, `[a, b] -> @br0`): every
/// pair of a member of the source group with one of the destination group
/// (not with itself) must be a valid expectation; the kind keeps the groups'
/// text and is checked pair by pair (see [`group_pairs`]).
fn group_kind(
    report: &mut Report,
    c: &ExpectText,
    r: &RawExpect,
    family: Option<u8>,
    lab: &Lab,
) -> Option<ExpectKind> {
    let (srcs, dsts) = match group_ends(lab, c.kind, &c.src, &c.dst) {
        Ok(p) => p,
        Err(m) => {
            report(
                &c.text.referenced,
                c.f.clone(),
                format!("{}: {m}", c.text.value.trim()),
            );
            return None;
        }
    };
    // Each member is checked as a source and as a destination once, and each
    // combination of the ends' address families once: the other pairs would
    // be checked alike (a group of 1000 nodes has a million pairs).
    let code = |x: &str| match families_of(lab, x) {
        None => 4,
        Some(v) => usize::from(v.contains(&4)) + 2 * usize::from(v.contains(&6)),
    };
    let fam_s: Vec<usize> = srcs.iter().map(|x| code(x)).collect();
    let fam_d: Vec<usize> = dsts.iter().map(|x| code(group_target(c.kind, x))).collect();
    let mut done = [[false; 5]; 5];
    let (mut src_done, mut dst_done) = (vec![false; srcs.len()], vec![false; dsts.len()]);
    let mut first = None;
    for (i, s) in srcs.iter().enumerate() {
        for (j, d) in dsts.iter().enumerate() {
            if !paired(c.kind, s, d) {
                continue;
            }
            let seen = std::mem::replace(&mut done[fam_s[i]][fam_d[j]], true);
            let new = !seen || !src_done[i] || !dst_done[j];
            (src_done[i], dst_done[j]) = (true, true);
            if !new {
                continue;
            }
            let pc = ExpectText {
                field: c.field,
                f: c.f.clone(),
                text: c.text,
                kind: c.kind,
                src: s.clone(),
                dst: d.clone(),
            };
            let k = one_kind(report, &pc, r, family, lab)?;
            first.get_or_insert(k);
        }
    }
    let Some(mut k) = first else {
        report(
            &c.text.referenced,
            c.f.clone(),
            format!(
                "{}: no pair to check (a node is not paired with itself)",
                c.text.value.trim()
            ),
        );
        return None;
    };
    set_ends(&mut k, &c.src, group_target(c.kind, &c.dst));
    Some(k)
}

/// The members of a group expectation's ends: sources, and destinations as
/// the kind writes them (e.g. `web:80` for `tcp`).
fn group_ends(
    lab: &Lab,
    kind: &str,
    src: &str,
    dst: &str,
) -> Result<(Vec<String>, Vec<String>), String> {
    let one = |s: &str| -> Result<Vec<String>, String> {
        if is_group(s) {
            group::parse(lab, s, Members::NodesOrNamed)
        } else {
            Ok(vec![s.to_string()])
        }
    };
    let srcs = one(src)?;
    let target = group_target(kind, dst);
    let rest = &dst[target.len()..];
    let dsts: Vec<String> = if target.is_empty() {
        vec![dst.to_string()]
    } else {
        one(target)?
            .into_iter()
            .map(|d| format!("{d}{rest}"))
            .collect()
    };
    Ok((srcs, dsts))
}

/// Is (s, d) a pair to check: not a node with itself (for `http`, the URL's host)?
fn paired(kind: &str, s: &str, d: &str) -> bool {
    if kind == "http" {
        let rest = d.strip_prefix("http://").unwrap_or(d);
        let host = rest.split(['/', ':']).next().unwrap_or(rest);
        return s != host;
    }
    s != group_target(kind, d)
}

/// The pairs of a group expectation's text.
fn group_pairs_of(
    lab: &Lab,
    kind: &str,
    src: &str,
    dst: &str,
) -> Result<Vec<(String, String)>, String> {
    let (srcs, dsts) = group_ends(lab, kind, src, dst)?;
    let v: Vec<(String, String)> = srcs
        .iter()
        .flat_map(|s| dsts.iter().map(move |d| (s, d)))
        .filter(|(s, d)| paired(kind, s, d))
        .map(|(s, d)| (s.clone(), d.clone()))
        .collect();
    if v.is_empty() {
        return Err("no pair to check (a node is not paired with itself)".into());
    }
    Ok(v)
}

/// The pairs a group expectation stands for, as expectations between two
/// places (the lab's `internet` left out in host mode); None when the
/// expectation is between two places already.
pub fn group_pairs(lab: &Lab, k: &ExpectKind) -> Option<Result<Vec<ExpectKind>, String>> {
    let (kind, src, dst) = match k {
        ExpectKind::Reach { src, dst, .. } => ("reach", src, dst.clone()),
        ExpectKind::Tcp { src, dst, port, .. } => ("tcp", src, format!("{dst}:{port}")),
        ExpectKind::Http { src, url, .. } => ("http", src, url.clone()),
        ExpectKind::Throughput { src, dst, .. } | ExpectKind::Loss { src, dst, .. } => {
            ("throughput", src, dst.clone())
        }
    };
    if !is_group(src) && !is_group(group_target(kind, &dst)) {
        return None;
    }
    let pairs = match group_pairs_of(lab, kind, src, &dst) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let v = pairs
        .into_iter()
        .filter(|(s, d)| lab.sandbox || (s != "internet" && !d.starts_with("internet")))
        .map(|(s, d)| {
            let mut k = k.clone();
            set_ends(&mut k, &s, group_target(kind, &d));
            k
        })
        .collect();
    Some(Ok(v))
}

/// Set an expectation's source and destination (an `http` URL is kept).
fn set_ends(k: &mut ExpectKind, s: &str, d: &str) {
    match k {
        ExpectKind::Reach { src, dst, .. }
        | ExpectKind::Tcp { src, dst, .. }
        | ExpectKind::Throughput { src, dst, .. }
        | ExpectKind::Loss { src, dst, .. } => {
            *src = s.to_string();
            *dst = d.to_string();
        }
        ExpectKind::Http { src, .. } => *src = s.to_string(),
    }
}

/// The one kind given (checked before) and its `SOURCE -> DESTINATION` text.
fn kind_of(r: &RawExpect) -> (&S<String>, &'static str) {
    [
        (&r.reach, "reach"),
        (&r.no_reach, "no_reach"),
        (&r.tcp, "tcp"),
        (&r.http, "http"),
        (&r.throughput, "throughput"),
        (&r.loss, "loss"),
    ]
    .into_iter()
    .find_map(|(x, k)| x.as_ref().map(|x| (x, k)))
    .expect("one kind is given")
}

/// `reach` / `no_reach`: a target, a family both ends have, and a size that fits it.
fn reach_kind(
    report: &mut Report,
    c: &ExpectText,
    r: &RawExpect,
    family: Option<u8>,
    lab: &Lab,
) -> Option<ExpectKind> {
    let (text, f) = (c.text, &c.f);
    if let Some(p) = target_problem(lab, &c.dst) {
        report(&text.referenced, f.clone(), p);
        return None;
    }
    let fam = match expect_family(lab, &c.src, &c.dst, family) {
        Ok(f) => f,
        Err(p) => {
            report(&text.referenced, f.clone(), p);
            return None;
        }
    };
    let size = match &r.size {
        None => None,
        Some(s) => match parse_size(&s.value, fam) {
            Ok(n) => Some(n),
            Err(m) => {
                report(
                    &s.referenced,
                    format!("{}.size", c.field),
                    format!("{}: {}: {m}", c.kind, text.value.trim()),
                );
                return None;
            }
        },
    };
    Some(ExpectKind::Reach {
        src: c.src.clone(),
        dst: c.dst.clone(),
        family,
        reach: c.kind == "reach",
        size,
    })
}

/// `tcp`: TARGET:PORT.
fn tcp_kind(report: &mut Report, c: &ExpectText, lab: &Lab) -> Option<ExpectKind> {
    let (text, f, dst) = (c.text, &c.f, &c.dst);
    let Some((host, port)) = dst
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
    else {
        report(
            &text.referenced,
            f.clone(),
            format!("{dst:?} needs the form TARGET:PORT"),
        );
        return None;
    };
    if let Some(p) = target_problem(lab, &host) {
        report(&text.referenced, f.clone(), p);
        return None;
    }
    Some(ExpectKind::Tcp {
        src: c.src.clone(),
        dst: host,
        port,
        open: true,
    })
}

/// `http`: a URL, and the status wanted (200 unless given).
fn http_kind(report: &mut Report, c: &ExpectText, r: &RawExpect) -> Option<ExpectKind> {
    let dst = &c.dst;
    if !dst.starts_with("http://") {
        report(
            &c.text.referenced,
            c.f.clone(),
            format!("{dst:?} must start with http://"),
        );
        return None;
    }
    let status = r.status.as_ref().map(|s| s.value).unwrap_or(200);
    Some(ExpectKind::Http {
        src: c.src.clone(),
        url: dst.clone(),
        status,
    })
}

/// A field only `throughput` and `loss` take, given to another kind: its name
/// and where it is.
fn perf_field_misplaced<'a>(r: &'a RawExpect, kind: &str) -> Option<(&'static str, &'a Location)> {
    if matches!(kind, "throughput" | "loss") {
        return None;
    }
    [
        ("at_least", r.at_least.as_ref().map(|x| &x.referenced)),
        ("at_most", r.at_most.as_ref().map(|x| &x.referenced)),
        ("seconds", r.seconds.as_ref().map(|x| &x.referenced)),
        ("rate", r.rate.as_ref().map(|x| &x.referenced)),
        ("udp", r.udp.as_ref().map(|x| &x.referenced)),
    ]
    .into_iter()
    .find_map(|(n, at)| at.map(|a| (n, a)))
}

/// A scalar as the text it was typed as (numbers without quotes included).
fn scalar_text(v: &Scalar) -> String {
    match v {
        Scalar::Unsigned(n) => n.to_string(),
        Scalar::Signed(n) => n.to_string(),
        Scalar::Float(x) => x.to_string(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Text(t) => t.clone(),
    }
}

/// ` (at least 50mbit, at most 80mbit)`, as written.
fn bounds_text(r: &RawExpect) -> String {
    let mut v = Vec::new();
    if let Some(x) = &r.at_least {
        v.push(format!("at least {}", scalar_text(&x.value)));
    }
    if let Some(x) = &r.at_most {
        v.push(format!("at most {}", scalar_text(&x.value)));
    }
    if let Some(x) = &r.rate {
        v.push(format!("at rate {}", scalar_text(&x.value)));
    }
    if v.is_empty() {
        String::new()
    } else {
        format!(" ({})", v.join(", "))
    }
}

/// Default seconds of a throughput or loss expectation.
pub const PERF_SECONDS: f64 = 2.0;

/// `throughput` / `loss`: a source, a destination, bounds (rates, or
/// percentages for loss), and how long and how fast to send.
fn perf_kind(report: &mut Report, c: &ExpectText, r: &RawExpect, lab: &Lab) -> Option<ExpectKind> {
    use crate::units::{parse_percent, parse_rate};
    if let Some(p) = target_problem(lab, &c.dst) {
        report(&c.text.referenced, c.f.clone(), p);
        return None;
    }
    let what = format!("{}: {}", c.kind, c.text.value.trim());
    let mut bad = false;
    let mut field =
        |name: &str, v: &Option<S<Scalar>>, parse: &dyn Fn(&str) -> Result<f64, String>| {
            let x = v.as_ref()?;
            match parse(&scalar_text(&x.value)) {
                Ok(n) => Some(n),
                Err(m) => {
                    report(
                        &x.referenced,
                        format!("{}.{name}", c.field),
                        format!("{what}: {m}"),
                    );
                    bad = true;
                    None
                }
            }
        };
    let rate_f = |s: &str| parse_rate(s).map(|n| n as f64);
    let secs_f = |s: &str| match s.parse::<f64>() {
        Ok(x) if (0.1..=3600.0).contains(&x) => Ok(x),
        _ => Err(format!("seconds {s:?} is not a number from 0.1 to 3600")),
    };
    let loss = c.kind == "loss";
    let bound: &dyn Fn(&str) -> Result<f64, String> = if loss { &parse_percent } else { &rate_f };
    let at_least = field("at_least", &r.at_least, bound);
    let at_most = field("at_most", &r.at_most, bound);
    let rate = field("rate", &r.rate, &rate_f).map(|x| x as u64);
    let secs = field("seconds", &r.seconds, &secs_f).unwrap_or(PERF_SECONDS);
    if bad {
        return None;
    }
    if at_least.is_none() && at_most.is_none() {
        let eg = if loss {
            "at_most: 5%"
        } else {
            "at_least: 50mbit"
        };
        report(
            &c.text.referenced,
            c.f.clone(),
            format!("{what}: give `at_least` or `at_most` (e.g. `{eg}`)"),
        );
        return None;
    }
    let millis = (secs * 1000.0).round() as u64;
    let udp = r.udp.as_ref().is_some_and(|u| u.value);
    if loss && let Some(u) = &r.udp {
        report(
            &u.referenced,
            format!("{}.udp", c.field),
            format!("{what}: `loss` is always measured over UDP; `udp` applies to `throughput`"),
        );
        return None;
    }
    if !loss
        && !udp
        && let Some(x) = &r.rate
    {
        report(
            &x.referenced,
            format!("{}.rate", c.field),
            format!("{what}: `rate` paces UDP: add `udp: true` (TCP sends as fast as it can)"),
        );
        return None;
    }
    let (src, dst) = (c.src.clone(), c.dst.clone());
    Some(if loss {
        let ppm = |p: f64| (p * 10_000.0).round() as u32;
        ExpectKind::Loss {
            src,
            dst,
            rate,
            millis,
            at_least_ppm: at_least.map(ppm),
            at_most_ppm: at_most.map(ppm),
        }
    } else {
        ExpectKind::Throughput {
            src,
            dst,
            udp,
            rate,
            millis,
            at_least: at_least.map(|x| x as u64),
            at_most: at_most.map(|x| x as u64),
        }
    })
}
