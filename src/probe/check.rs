//! `nslab check`: who reaches whom (a matrix like Mininet's pingall, per address
//! family), the file's expectations, and for every failure the reason the kernel
//! gives along the path.

use super::icmp::{PingOptions, ping};
use super::why::{Ctx, Reason};
use crate::error::{Error, Result};
use crate::lab;
use crate::record::Record;
use crate::topology::{Expect, ExpectKind, Lab, Place};
use crate::util::xml;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Resolve a destination of the endpoint grammar to an address of a family
/// (4 or 6): `NODE`, `NODE:IF`, `host`, `host:IF`, `internet`, `BRIDGE`, or an IP.
pub fn resolve(model: &Lab, spec: &str, family: u8) -> Result<IpAddr> {
    if let Ok(a) = spec.parse::<IpAddr>() {
        return Ok(a);
    }
    let want6 = family == 6;
    let (left, ifname) = match spec.split_once(':') {
        Some((l, i)) => (l, Some(i)),
        None => (spec, None),
    };
    let addrs: Vec<(String, ipnet::IpNet)> = if let Some(b) = model.bridge(left) {
        b.addresses.iter().map(|a| (b.name.clone(), *a)).collect()
    } else if left == "internet" && ifname.is_none() && model.sandbox {
        vec![("lo".into(), crate::topology::sandbox_inet_service_addr())]
    } else {
        match lab::parse_place(model, left) {
            Some(p) => model.addresses_of(&p),
            None => {
                return Err(Error::Usage(format!(
                    "{spec:?} is not a node, bridge, endpoint, `host`, `internet` or IP address of lab {}",
                    model.name
                )));
            }
        }
    };
    addrs
        .iter()
        .filter(|(i, _)| ifname.is_none_or(|x| x == i))
        .map(|(_, a)| a.addr())
        .find(|a| a.is_ipv6() == want6)
        .ok_or_else(|| Error::Usage(format!("{spec} has no IPv{family} address")))
}

/// The places a probe can be sent from, in display order.
pub fn places(model: &Lab) -> Vec<Place> {
    let mut v = vec![Place::Host];
    if model.sandbox {
        v.push(Place::Internet);
    }
    v.extend(model.nodes.iter().map(|n| Place::Node(n.name.clone())));
    v
}

/// Send up to two echo requests from a place; true if a reply came.
pub fn reaches(file: &std::fs::File, dst: IpAddr) -> bool {
    let opts = PingOptions {
        count: 2,
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(700),
        ..Default::default()
    };
    crate::kernel::netns::run_in(file, || {
        ping(dst, &opts, &mut |_| {})
            .map(|r| r.received > 0)
            .unwrap_or(false)
    })
    .unwrap_or(false)
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub src: String,
    pub dst: String,
    pub family: u8,
    pub address: Option<IpAddr>,
    /// None: the destination has no address of this family.
    pub reach: Option<bool>,
    pub why: Option<Reason>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExpectResult {
    pub name: String,
    pub line: u64,
    pub ok: bool,
    /// Not checked (it names the sandbox's internet, and the lab is in host mode).
    pub skipped: bool,
    pub detail: String,
    pub why: Option<Reason>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub lab: String,
    pub families: Vec<u8>,
    pub places: Vec<String>,
    pub matrix: Vec<Cell>,
    pub expectations: Vec<ExpectResult>,
    /// Every expectation holds.
    pub ok: bool,
}

fn families(model: &Lab) -> Vec<u8> {
    let mut v = Vec::new();
    let all: Vec<IpAddr> = places(model)
        .iter()
        .flat_map(|p| model.addresses_of(p))
        .map(|(_, a)| a.addr())
        .collect();
    if all.iter().any(|a| a.is_ipv4()) {
        v.push(4);
    }
    if all.iter().any(|a| a.is_ipv6()) {
        v.push(6);
    }
    v
}

fn ctx<'a>(rec: &Record, model: &'a Lab) -> Result<Ctx<'a>> {
    let files = places(model)
        .into_iter()
        .map(|p| lab::place_file(rec, &p).map(|f| (p, f)))
        .collect::<Result<Vec<_>>>()?;
    Ctx::open(model, files).map_err(|e| Error::Failed(format!("read the lab's namespaces: {e}")))
}

/// Run the matrix (optional) and the expectations.
pub fn check(rec: &Record, model: &Lab, matrix: bool) -> Result<Report> {
    let ps = places(model);
    let fams = families(model);
    let files: Vec<std::fs::File> = ps
        .iter()
        .map(|p| lab::place_file(rec, p))
        .collect::<Result<_>>()?;
    let mut cells = Vec::new();
    if matrix {
        for f in &fams {
            for (i, s) in ps.iter().enumerate() {
                for d in &ps {
                    if s == d {
                        continue;
                    }
                    let addr = resolve(model, &d.to_string(), *f).ok();
                    cells.push((
                        i,
                        Cell {
                            src: s.to_string(),
                            dst: d.to_string(),
                            family: *f,
                            address: addr,
                            reach: None,
                            why: None,
                        },
                    ));
                }
            }
        }
        // Pings in parallel: each on its own thread in its source's namespace;
        // raw sockets filter replies by identifier, so they do not mix.
        std::thread::scope(|sc| {
            for chunk in cells.chunks_mut(16) {
                let hs: Vec<_> = chunk
                    .iter_mut()
                    .map(|(i, c)| {
                        let f = &files[*i];
                        sc.spawn(move || {
                            if let Some(a) = c.address {
                                c.reach = Some(reaches(f, a));
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    let _ = h.join();
                }
            }
        });
    }
    let mut cx = None;
    let mut results = Vec::new();
    for e in &model.expect {
        results.push(run_expect(rec, model, e, &ps, &files, &mut cx)?);
    }
    let mut cells: Vec<Cell> = cells.into_iter().map(|x| x.1).collect();
    for c in cells.iter_mut().filter(|c| c.reach == Some(false)) {
        if cx.is_none() {
            cx = Some(ctx(rec, model)?);
        }
        let src = ps
            .iter()
            .find(|p| p.to_string() == c.src)
            .cloned()
            .expect("known place");
        c.why = Some(
            cx.as_mut()
                .expect("opened")
                .why_not(&src, c.address.expect("probed")),
        );
    }
    let ok = results.iter().all(|r| r.ok);
    Ok(Report {
        lab: rec.lab.clone(),
        families: fams,
        places: ps.iter().map(|p| p.to_string()).collect(),
        matrix: cells,
        expectations: results,
        ok,
    })
}

/// A server started by `up` (`run:`) may need a moment: retry a refused
/// connection for up to 3 seconds.
fn retry_refused<T>(
    mut f: impl FnMut() -> std::result::Result<T, super::ProbeError>,
) -> std::result::Result<T, super::ProbeError> {
    let t0 = std::time::Instant::now();
    loop {
        match f() {
            Err(e)
                if e.errno() == Some(libc::ECONNREFUSED)
                    && t0.elapsed() < Duration::from_secs(3) =>
            {
                std::thread::sleep(Duration::from_millis(50))
            }
            r => return r,
        }
    }
}

fn place_of(model: &Lab, s: &str) -> Option<Place> {
    lab::parse_place(model, s)
}

fn run_expect<'a>(
    rec: &Record,
    model: &'a Lab,
    e: &Expect,
    ps: &[Place],
    files: &[std::fs::File],
    cx: &mut Option<Ctx<'a>>,
) -> Result<ExpectResult> {
    let src_file = |s: &str| -> Result<(Place, &std::fs::File)> {
        let p = place_of(model, s)
            .ok_or_else(|| Error::Usage(format!("{s} is not a place of lab {}", model.name)))?;
        let i = ps.iter().position(|x| *x == p).expect("place listed");
        Ok((p, &files[i]))
    };
    let mut res = ExpectResult {
        name: e.name.clone(),
        line: e.line,
        ok: false,
        skipped: false,
        detail: String::new(),
        why: None,
    };
    let names_internet = match &e.kind {
        ExpectKind::Reach { src, dst, .. } | ExpectKind::Tcp { src, dst, .. } => {
            src == "internet" || dst.split(':').next() == Some("internet")
        }
        ExpectKind::Http { src, url, .. } => src == "internet" || url.contains("//internet"),
    };
    if names_internet && !model.sandbox {
        res.ok = true;
        res.skipped = true;
        res.detail = "skipped: the emulated internet exists only in a sandboxed lab".into();
        return Ok(res);
    }
    match &e.kind {
        ExpectKind::Reach {
            src,
            dst,
            family,
            reach,
        } => {
            let fam = family.unwrap_or(if dst.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6()) {
                6
            } else {
                4
            });
            let (p, f) = src_file(src)?;
            let addr = resolve(model, dst, fam)?;
            let got = reaches(f, addr);
            res.ok = got == *reach;
            res.detail = format!(
                "{src} -> {dst} ({addr}): {}",
                if got { "replies" } else { "no reply" }
            );
            if !got {
                if cx.is_none() {
                    *cx = Some(ctx(rec, model)?);
                }
                let why = cx.as_mut().expect("opened").why_not(&p, addr);
                res.detail.push_str(&format!(": {why}"));
                res.why = Some(why);
            }
        }
        ExpectKind::Tcp {
            src,
            dst,
            port,
            open,
        } => {
            let (_, f) = src_file(src)?;
            let addr = resolve(model, dst, 4).or_else(|_| resolve(model, dst, 6))?;
            let sa = SocketAddr::new(addr, *port);
            let r = crate::kernel::netns::run_in(f, || {
                retry_refused(|| super::tcp::tcp_connect(sa, Duration::from_secs(2)))
            })
            .map_err(Error::io("enter namespace"))?;
            res.ok = r.is_ok() == *open;
            res.detail = match r {
                Ok(t) => format!(
                    "{src} -> {sa}: connected in {:.1} ms",
                    t.as_secs_f64() * 1000.0
                ),
                Err(e) => format!("{src} -> {sa}: {e}"),
            };
        }
        ExpectKind::Http { src, url, status } => {
            let (_, f) = src_file(src)?;
            let rest = url.strip_prefix("http://").unwrap_or(url);
            let (hostport, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                    h.trim_matches(|c| c == '[' || c == ']'),
                    p.parse::<u16>()
                        .map_err(|_| Error::Usage(format!("bad port in {url}")))?,
                ),
                _ => (hostport, 80),
            };
            let addr = resolve(model, host, 4).or_else(|_| resolve(model, host, 6))?;
            let sa = SocketAddr::new(addr, port);
            let (h, p) = (host.to_string(), path.to_string());
            let r = crate::kernel::netns::run_in(f, move || {
                retry_refused(|| super::http::http_get(sa, &h, &p, Duration::from_secs(5)))
            })
            .map_err(Error::io("enter namespace"))?;
            match r {
                Ok(resp) => {
                    res.ok = resp.status == *status;
                    res.detail = format!("GET {url} from {src}: {} {}", resp.status, resp.reason);
                }
                Err(e) => res.detail = format!("GET {url} from {src}: {e}"),
            }
        }
    }
    Ok(res)
}

/// The matrix as text: one table per family, `ok` / `--` / ` .` (no address).
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for f in &r.families {
        let mut rows = vec![{
            let mut h = vec![format!("IPv{f}: from \\ to")];
            h.extend(r.places.iter().cloned());
            h
        }];
        for s in &r.places {
            let mut row = vec![s.clone()];
            for d in &r.places {
                let c = r
                    .matrix
                    .iter()
                    .find(|c| &c.src == s && &c.dst == d && c.family == *f);
                row.push(match c.and_then(|c| c.reach) {
                    _ if s == d => "-".into(),
                    Some(true) => "ok".into(),
                    Some(false) => "NO".into(),
                    None if c.is_some() => ".".into(),
                    None => "".into(),
                });
            }
            rows.push(row);
        }
        if !r.matrix.is_empty() {
            out.push_str(&crate::util::table(&rows));
            out.push('\n');
        }
    }
    let fails: Vec<&Cell> = r.matrix.iter().filter(|c| c.reach == Some(false)).collect();
    if !fails.is_empty() {
        out.push_str("why not:\n");
        for c in fails {
            out.push_str(&format!(
                "  {} -> {} ({}): {}\n",
                c.src,
                c.dst,
                c.address.map(|a| a.to_string()).unwrap_or_default(),
                c.why.as_ref().map(|w| w.to_string()).unwrap_or_default()
            ));
        }
        out.push('\n');
    }
    if !r.expectations.is_empty() {
        out.push_str("expectations:\n");
        for e in &r.expectations {
            out.push_str(&format!(
                "  {} {} (line {}): {}\n",
                if e.skipped {
                    "SKIP"
                } else if e.ok {
                    "PASS"
                } else {
                    "FAIL"
                },
                e.name,
                e.line,
                e.detail
            ));
        }
        let failed = r.expectations.iter().filter(|e| !e.ok).count();
        out.push_str(&format!(
            "{} of {} expectations hold\n",
            r.expectations.len() - failed,
            r.expectations.len()
        ));
    }
    out
}

/// JUnit XML: one test case per expectation.
pub fn junit(r: &Report) -> String {
    let failures = r.expectations.iter().filter(|e| !e.ok).count();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"nslab check {}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">\n",
        xml(&r.lab),
        r.expectations.len()
    );
    for e in &r.expectations {
        s.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\">",
            xml(&r.lab),
            xml(&e.name)
        ));
        if e.skipped {
            s.push_str(&format!(
                "<skipped message=\"{}\"/></testcase>\n",
                xml(&e.detail)
            ));
        } else if e.ok {
            s.push_str("</testcase>\n");
        } else {
            s.push_str(&format!(
                "\n      <failure message=\"{}\">line {}: {}</failure>\n    </testcase>\n",
                xml(&e.detail),
                e.line,
                xml(&e.detail)
            ));
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}
