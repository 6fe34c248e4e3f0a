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
//! ```

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
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given != 1 {
        report(
            l,
            field.to_string(),
            "give exactly one of `reach`, `no_reach`, `tcp` or `http`".into(),
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
    let (text, kind): (&S<String>, &'static str) = if let Some(x) = &r.reach {
        (x, "reach")
    } else if let Some(x) = &r.no_reach {
        (x, "no_reach")
    } else if let Some(x) = &r.tcp {
        (x, "tcp")
    } else {
        (r.http.as_ref().expect("one is given"), "http")
    };
    let f = format!("{field}.{kind}");
    let Some((src, dst)) = split_arrow(&text.value) else {
        report(
            &text.referenced,
            f,
            format!("{:?} needs the form `SOURCE -> DESTINATION`", text.value),
        );
        return None;
    };
    if let Some(p) = source_problem(lab, &src) {
        report(&text.referenced, f, p);
        return None;
    }
    let c = ExpectText {
        field,
        f,
        text,
        kind,
        src,
        dst,
    };
    let k = match kind {
        "reach" | "no_reach" => reach_kind(report, &c, r, family, lab)?,
        "tcp" | "http" if r.size.is_some() => {
            let at = r.size.as_ref().map(|s| &s.referenced).unwrap_or(l);
            report(
                at,
                format!("{field}.size"),
                format!(
                    "{kind}: {}: `size` applies to `reach` and `no_reach` (ping) only",
                    text.value.trim()
                ),
            );
            return None;
        }
        "tcp" => tcp_kind(report, &c, lab)?,
        _ => http_kind(report, &c, r)?,
    };
    let name = r.name.clone().unwrap_or_else(|| match &k {
        ExpectKind::Reach { size: Some(n), .. } => {
            format!("{kind}: {} (size {n})", text.value.trim())
        }
        _ => format!("{kind}: {}", text.value.trim()),
    });
    Some(Expect {
        name,
        kind: k,
        line: l.line(),
    })
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
