//! `nslab check`: who reaches whom (a matrix like Mininet's pingall, per address
//! family), the file's expectations, and for every failure the reason the kernel
//! gives along the path.

use super::sweep::{Outcome, SweepOptions, sweep, sweep_detailed, sweep_window};
use super::why::{Ctx, Reason, WhyOpts};
use crate::error::{Error, Result};
use crate::lab::{self, places, places::Endpoint};
use crate::record::Record;
use crate::topology::{Expect, ExpectKind, Lab, Place};
use crate::util::xml;
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Resolve a destination of the endpoint grammar to an address of a family
/// (4 or 6): `NODE`, `NODE:IF`, `host`, `host:IF`, `internet`, `BRIDGE`, or an IP.
pub fn resolve(model: &Lab, spec: &str, family: u8) -> Result<IpAddr> {
    Ok(resolve_all(model, spec, family)?[0])
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

/// Every address of a destination of the endpoint grammar in a family: all
/// addresses of a node (or of `NODE:IF`), of `host`, of the `internet`, of a
/// bridge, or the IP given.
pub fn resolve_all(model: &Lab, spec: &str, family: u8) -> Result<Vec<IpAddr>> {
    let bridge_addrs = |b: &str| -> Vec<(String, ipnet::IpNet)> {
        let b = model.bridge(b).expect("a parsed bridge is the lab's");
        b.addresses.iter().map(|a| (b.name.clone(), *a)).collect()
    };
    let (addrs, ifname): (Vec<(String, ipnet::IpNet)>, Option<String>) =
        match places::parse(model, spec) {
            Some(Endpoint::Addr(a)) => return Ok(vec![a]),
            Some(Endpoint::Bridge(b)) => (bridge_addrs(&b), None),
            Some(Endpoint::Port(b, p)) => (bridge_addrs(&b), Some(p)),
            // The emulated outside is its service address (as in the tutorial's
            // 8.8.8.8), not the end of the host's uplink.
            Some(Endpoint::Place(Place::Internet)) => (
                vec![("lo".into(), crate::topology::sandbox_inet_service_addr())],
                None,
            ),
            Some(Endpoint::Place(p)) => (model.addresses_of(&p), None),
            Some(Endpoint::Iface(p, i)) => (model.addresses_of(&p), Some(i)),
            None => return Err(places::not_a_destination(model, spec)),
        };
    let mut v: Vec<IpAddr> = addrs
        .iter()
        .filter(|(i, _)| ifname.as_ref().is_none_or(|x| x == i))
        .map(|(_, a)| a.addr())
        .filter(|a| a.is_ipv6() == (family == 6))
        .collect();
    v.dedup();
    if v.is_empty() {
        return Err(places::no_address(spec, family));
    }
    Ok(v)
}

/// The families (4, 6) a destination has addresses of.
pub fn families_of(model: &Lab, spec: &str) -> Vec<u8> {
    [4, 6]
        .into_iter()
        .filter(|f| resolve_all(model, spec, *f).is_ok())
        .collect()
}

/// Addresses of a place in a family, in the file's order (the `internet`: its
/// service address).
fn place_addrs(model: &Lab, p: &Place, family: u8) -> Vec<IpAddr> {
    if *p == Place::Internet {
        return resolve_all(model, "internet", family).unwrap_or_default();
    }
    let mut v: Vec<IpAddr> = model
        .addresses_of(p)
        .into_iter()
        .map(|(_, a)| a.addr())
        .filter(|a| a.is_ipv6() == (family == 6))
        .collect();
    v.dedup();
    v
}

/// Ping every address of `dsts` from a place (on a thread in its namespace).
fn probe_from(file: &std::fs::File, dsts: &[IpAddr]) -> Vec<Outcome> {
    let opts = SweepOptions::default();
    match crate::kernel::netns::run_in(file, || sweep(dsts, &opts)) {
        Ok(v) => v,
        Err(e) => vec![Outcome::Error(format!("enter the namespace: {e}")); dsts.len()],
    }
}

/// [`probe_from`] with `size` payload bytes sent with DF set (None: the
/// default probe), and per address the send error that stood for a reply.
fn probe_sized(
    file: &std::fs::File,
    dsts: &[IpAddr],
    size: Option<usize>,
) -> Vec<(Outcome, Option<String>)> {
    let opts = SweepOptions {
        size,
        ..SweepOptions::default()
    };
    match crate::kernel::netns::run_in(file, || sweep_detailed(dsts, &opts)) {
        Ok(v) => v,
        Err(e) => vec![(Outcome::Error(format!("enter the namespace: {e}")), None); dsts.len()],
    }
}

/// Send up to three echo requests (with growing timeouts) from a place; true
/// if a reply came. A probe that could not run counts as no reply here; the
/// matrix and expectations report those as errors.
pub fn reaches(file: &std::fs::File, dst: IpAddr) -> bool {
    probe_from(file, &[dst]) == [Outcome::Reply]
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub src: String,
    pub dst: String,
    pub family: u8,
    /// The destination's first address of the family.
    pub address: Option<IpAddr>,
    /// None: the destination has no address of this family, or the probe failed
    /// (then `error` says why).
    pub reach: Option<bool>,
    pub why: Option<Reason>,
    /// Every address of the family probed.
    pub addresses: Vec<IpAddr>,
    /// The addresses that did not answer (the pair is ok when none).
    pub unreachable: Vec<IpAddr>,
    /// The probe itself failed (no socket, EPERM, ENOBUFS that persisted): says
    /// nothing about the network.
    pub error: Option<String>,
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
    /// The probe itself failed.
    pub error: Option<String>,
    /// `reach`/`no_reach` with `size`: the ICMP payload bytes sent (DF set).
    pub size: Option<usize>,
    /// `throughput`/`loss`: the goodput measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_per_second: Option<f64>,
    /// `loss` (and UDP `throughput`): the datagrams lost, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_percent: Option<f64>,
    /// An expectation between groups (`reach: all -> all`): how many
    /// (source, destination) pairs it checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairs: Option<usize>,
    /// ... and those that failed (or could not be probed), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_pairs: Vec<PairResult>,
}

/// One failed pair of an expectation between groups.
#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub src: String,
    pub dst: String,
    pub detail: String,
    pub why: Option<Reason>,
    /// The probe itself failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FamilyPlaces {
    pub family: u8,
    /// Rows (sources) of the family's matrix: places with an address of it.
    pub rows: Vec<String>,
    /// Columns (destinations).
    pub columns: Vec<String>,
}

/// What [`Lab::check`](crate::Lab::check) found: the matrix (who reaches
/// whom, when asked), each expectation and why it failed.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let r: nslab::CheckReport = lab.ping_all()?;
/// for c in r.matrix.iter().filter(|c| c.reach == Some(false)) {
///     println!("{} does not reach {}", c.src, c.dst);
/// }
/// assert!(r.ok && r.probe_errors == 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub lab: String,
    pub families: Vec<u8>,
    pub places: Vec<String>,
    pub matrix: Vec<Cell>,
    pub expectations: Vec<ExpectResult>,
    /// Every expectation holds.
    pub ok: bool,
    /// Rows and columns of each family's matrix.
    pub family_places: Vec<FamilyPlaces>,
    /// Probes that could not run (matrix cells and expectations).
    pub probe_errors: usize,
    /// Pairs of the full matrix (before `--pairs`, `--from`, `--to`).
    pub pairs_total: usize,
    /// What the check noticed about itself (the neighbour table, sampling).
    pub notes: Vec<String>,
    /// The counts of the summary line.
    pub summary: Summary,
}

/// `matrix: 30 of 30 pairs reach; expectations: 4 of 5 hold`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// (source, destination) pairs of the matrix probed (0: no matrix).
    pub pairs: usize,
    /// ... those that reach, in every family they were probed in.
    pub pairs_reach: usize,
    pub expectations: usize,
    pub expectations_hold: usize,
}

impl Summary {
    fn of(cells: &[Cell], exps: &[ExpectResult]) -> Summary {
        let mut pairs: std::collections::BTreeMap<(&str, &str), bool> = Default::default();
        for c in cells {
            let e = pairs.entry((&c.src, &c.dst)).or_insert(true);
            *e &= c.reach == Some(true);
        }
        Summary {
            pairs: pairs.len(),
            pairs_reach: pairs.values().filter(|x| **x).count(),
            expectations: exps.len(),
            expectations_hold: exps.iter().filter(|e| e.ok).count(),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let mut v = Vec::new();
        if self.pairs > 0 {
            v.push(format!(
                "matrix: {} of {} pairs reach",
                self.pairs_reach, self.pairs
            ));
        }
        if self.expectations > 0 {
            v.push(format!(
                "expectations: {} of {} hold",
                self.expectations_hold, self.expectations
            ));
        }
        f.write_str(&v.join("; "))
    }
}

/// What [`Lab::check_with`](crate::Lab::check_with) does besides the
/// expectations (`nslab check`'s options): the reachability matrix, its rows
/// and columns, a sample of its pairs, and who is told of progress.
///
/// ```
/// let progress = |done: usize, total: usize| eprintln!("{done}/{total}");
/// let opts = nslab::CheckOptions {
///     matrix: true,
///     from: Some(vec!["@br0".into()]),
///     pairs: Some(100),
///     seed: 7,
///     progress: Some(&progress),
///     ..Default::default()
/// };
/// assert!(opts.to.is_none());
/// ```
#[derive(Default)]
pub struct CheckOptions<'a> {
    /// Probe the reachability matrix.
    pub matrix: bool,
    /// Only these sources (place names); None: all.
    pub from: Option<Vec<String>>,
    /// Only these destinations.
    pub to: Option<Vec<String>>,
    /// Probe only this many (source, destination) pairs, sampled with `seed`.
    pub pairs: Option<usize>,
    /// The seed of the `pairs` sample (the same seed, the same pairs).
    pub seed: u64,
    /// Called with (probes done, probes in all) as the matrix progresses.
    pub progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    /// Leave `host` and the `internet` out of the matrix: nodes only.
    pub nodes_only: bool,
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
    // One fd per place, all held (not batched yet): as many as the hard limit allows.
    crate::kernel::netns::raise_nofile_limit();
    let files = places(model)
        .into_iter()
        .map(|p| lab::place_file(rec, &p).map(|f| (p, f)))
        .collect::<Result<Vec<_>>>()?;
    Ctx::open(model, files).map_err(|e| Error::Failed(format!("read the lab's namespaces: {e}")))
}

/// Places named by a selector: `all` (every place of the matrix: `host`, the
/// `internet` when sandboxed, every node), a place, `[a, b]` or `a,b`, or
/// `@BRIDGE` (the nodes cabled to that bridge); the grammar of
/// [`crate::topology::group`].
pub fn select_places(model: &Lab, sel: &str) -> Result<Vec<String>> {
    crate::topology::group::parse(model, sel, crate::topology::group::Members::Places)
        .map_err(|e| Error::Usage(format!("{e} (lab {})", model.name)))
}

/// A deterministic generator (splitmix64) for sampling pairs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `n` of `len` items, chosen by `seed`, in their original order.
pub fn sample(len: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    let n = n.min(len);
    let mut r = Rng(seed);
    for i in 0..n {
        let j = i + (r.next() % (len - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut v = idx[..n].to_vec();
    v.sort_unstable();
    v
}

/// The neighbour tables' limits and use. The ARP and NDP tables are each one
/// table for every namespace of the machine (`gc_thresh3`, 1024 by default, set
/// from the initial namespace only): an all-pairs probe needs an entry per pair
/// at both ends, more than the table holds at 40 nodes. So the matrix bounds the
/// addresses it probes at once, waits while the table is nearly full, and
/// deletes the entries its probes made in the lab's namespaces when a group is
/// done, so the table never overflows (in any lab on the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighStat {
    pub entries: usize,
    pub table_fulls: u64,
}

fn neigh_stat(v6: bool) -> Option<NeighStat> {
    let text = std::fs::read_to_string(if v6 {
        "/proc/net/stat/ndisc_cache"
    } else {
        "/proc/net/stat/arp_cache"
    })
    .ok()?;
    parse_neigh_stat(&text)
}

/// `/proc/net/stat/arp_cache`: a header, then one row per CPU in hex; the
/// first column (entries) is the whole table's, the last (table_fulls) per CPU.
pub fn parse_neigh_stat(text: &str) -> Option<NeighStat> {
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next()?.split_whitespace().collect();
    let full_col = head.iter().position(|h| *h == "table_fulls")?;
    let mut st = NeighStat {
        entries: 0,
        table_fulls: 0,
    };
    for l in lines {
        let cols: Vec<&str> = l.split_whitespace().collect();
        st.entries = usize::from_str_radix(cols.first()?, 16).ok()?;
        st.table_fulls += u64::from_str_radix(cols.get(full_col)?, 16).ok()?;
    }
    Some(st)
}

fn gc_thresh3(v6: bool) -> usize {
    let p = if v6 {
        "/proc/sys/net/ipv6/neigh/default/gc_thresh3"
    } else {
        "/proc/sys/net/ipv4/neigh/default/gc_thresh3"
    };
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// A netlink socket in a place's namespace and the lab's interfaces there, to
/// delete the neighbour entries probes made.
struct Cleaner {
    nl: crate::kernel::netlink::Rtnl,
    ifs: Vec<u32>,
}

fn cleaner(rec: &Record, model: &Lab, file: &std::fs::File, p: &Place) -> Option<Cleaner> {
    let only: Option<std::collections::BTreeSet<String>> =
        (matches!(p, Place::Host) && !model.sandbox).then(|| rec.host_links.clone());
    crate::kernel::netns::run_in(file, move || {
        let mut nl = crate::kernel::netlink::Rtnl::new().ok()?;
        let ifs = crate::kernel::observe::links(&mut nl)
            .ok()?
            .into_iter()
            .filter(|l| l.name != "lo" && only.as_ref().is_none_or(|o| o.contains(&l.name)))
            .map(|l| l.index)
            .collect();
        Some(Cleaner { nl, ifs })
    })
    .ok()
    .flatten()
}

fn forget(c: &Mutex<Option<Cleaner>>, addrs: &[IpAddr]) {
    let mut g = c.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = g.as_mut() else { return };
    let reqs: Vec<crate::kernel::netlink::Req> = c
        .ifs
        .iter()
        .flat_map(|i| addrs.iter().map(move |a| (*i, *a)))
        .map(|(i, a)| crate::kernel::netlink::Req {
            msg: crate::kernel::msg::del_neigh(i, a),
            flags: 0,
            what: String::new(),
        })
        .collect();
    // Entries that are not there (another interface, gone already) answer ENOENT.
    let _ = c.nl.batch(reqs);
}

/// Run the matrix (optional) and the expectations.
pub fn check(rec: &Record, model: &Lab, matrix: bool) -> Result<Report> {
    check_with(
        rec,
        model,
        &CheckOptions {
            matrix,
            ..Default::default()
        },
    )
}

/// One planned cell: its source, its destination and their addresses.
struct Planned {
    src: usize,
    dst: usize,
    family: u8,
    addrs: Vec<IpAddr>,
}

/// The cells of the matrix: per family, the places that have it; then the
/// `from`/`to` restriction and the `pairs` sample. Returns the cells and the
/// number of pairs of the whole matrix.
fn plan_cells(
    model: &Lab,
    ps: &[Place],
    fams: &[u8],
    o: &CheckOptions,
) -> Result<(Vec<Planned>, usize, Vec<FamilyPlaces>)> {
    let from = o
        .from
        .as_ref()
        .map(|v| {
            v.iter()
                .map(|s| select_places(model, s))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .map(|v| v.concat());
    let to =
        o.to.as_ref()
            .map(|v| {
                v.iter()
                    .map(|s| select_places(model, s))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .map(|v| v.concat());
    let names: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
    let mut cells = Vec::new();
    let mut fps = Vec::new();
    let mut total = 0;
    for &f in fams {
        let has: Vec<Vec<IpAddr>> = ps
            .iter()
            .map(|p| match p {
                Place::Host | Place::Internet if o.nodes_only => Vec::new(),
                p => place_addrs(model, p, f),
            })
            .collect();
        let rows: Vec<usize> = (0..ps.len())
            .filter(|&i| !has[i].is_empty())
            .filter(|&i| from.as_ref().is_none_or(|v| v.contains(&names[i])))
            .collect();
        let cols: Vec<usize> = (0..ps.len())
            .filter(|&i| !has[i].is_empty())
            .filter(|&i| to.as_ref().is_none_or(|v| v.contains(&names[i])))
            .collect();
        let n = (0..ps.len()).filter(|&i| !has[i].is_empty()).count();
        total += n * n.saturating_sub(1);
        fps.push(FamilyPlaces {
            family: f,
            rows: rows.iter().map(|&i| names[i].clone()).collect(),
            columns: cols.iter().map(|&i| names[i].clone()).collect(),
        });
        for &s in &rows {
            for &d in &cols {
                if s != d {
                    cells.push(Planned {
                        src: s,
                        dst: d,
                        family: f,
                        addrs: has[d].clone(),
                    });
                }
            }
        }
    }
    if let Some(n) = o.pairs {
        // Sample (source, destination) pairs; a chosen pair is probed in every family.
        let mut pairs: Vec<(usize, usize)> = cells.iter().map(|c| (c.src, c.dst)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        let keep: std::collections::HashSet<(usize, usize)> = sample(pairs.len(), n, o.seed)
            .into_iter()
            .map(|i| pairs[i])
            .collect();
        cells.retain(|c| keep.contains(&(c.src, c.dst)));
    }
    Ok((cells, total, fps))
}

/// Run the matrix (as `opts` says) and the expectations.
pub fn check_with(rec: &Record, model: &Lab, opts: &CheckOptions) -> Result<Report> {
    let ps = places(model);
    let fams = families(model);
    // One fd per place, all held (not batched yet): as many as the hard limit allows.
    crate::kernel::netns::raise_nofile_limit();
    let files: Vec<std::fs::File> = ps
        .iter()
        .map(|p| lab::place_file(rec, p))
        .collect::<Result<_>>()?;
    let (planned, pairs_total, family_places) = plan_cells(model, &ps, &fams, opts)?;
    let mut notes = Vec::new();
    let mut cells: Vec<Cell> = planned
        .iter()
        .map(|c| Cell {
            src: ps[c.src].to_string(),
            dst: ps[c.dst].to_string(),
            family: c.family,
            address: c.addrs.first().copied(),
            reach: None,
            why: None,
            addresses: c.addrs.clone(),
            unreachable: Vec::new(),
            error: None,
        })
        .collect();
    crate::timing::mark("start");
    if opts.matrix && !planned.is_empty() {
        let before = [neigh_stat(false), neigh_stat(true)];
        let outcomes = run_matrix(rec, model, &ps, &files, &planned, opts.progress);
        for (c, o) in cells.iter_mut().zip(outcomes) {
            fill_cell(c, &o);
        }
        neigh_overflow_notes(before, &mut notes);
    }
    if let Some(n) = opts.pairs {
        notes.push(format!(
            "{} of {pairs_total} pairs probed (--pairs {n} --seed {})",
            cells.len(),
            opts.seed
        ));
    }
    if !opts.matrix {
        cells.clear();
    }
    crate::timing::mark("matrix");
    let mut cx = None;
    let mut results = Vec::new();
    for e in &model.expect {
        results.push(run_expect(rec, model, e, &ps, &files, &mut cx)?);
    }
    crate::timing::mark("expectations");
    explain_failed_cells(rec, model, &ps, &mut cells, &mut cx)?;
    crate::timing::mark("why not");
    let ok = results.iter().all(|r| r.ok);
    let summary = Summary::of(&cells, &results);
    let probe_errors = cells.iter().filter(|c| c.error.is_some()).count()
        + results.iter().filter(|r| r.error.is_some()).count();
    Ok(Report {
        lab: rec.lab.clone(),
        families: fams,
        places: ps
            .iter()
            .filter(|p| !opts.nodes_only || matches!(p, Place::Node(_)))
            .map(|p| p.to_string())
            .collect(),
        matrix: cells,
        expectations: results,
        ok,
        family_places,
        probe_errors,
        pairs_total,
        notes,
        summary,
    })
}

/// A matrix cell from its probes' outcomes: the first error, or which
/// addresses did not reply.
fn fill_cell(c: &mut Cell, o: &[(IpAddr, Outcome)]) {
    let errs: Vec<&String> = o
        .iter()
        .filter_map(|(_, x)| match x {
            Outcome::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    if let Some(e) = errs.first() {
        c.error = Some((*e).clone());
        return;
    }
    c.unreachable = o
        .iter()
        .filter(|(_, x)| *x == Outcome::NoReply)
        .map(|(a, _)| *a)
        .collect();
    c.reach = Some(c.unreachable.is_empty());
}

/// A note for each neighbour table (IPv4, IPv6) that overflowed since `before`.
fn neigh_overflow_notes(before: [Option<NeighStat>; 2], notes: &mut Vec<String>) {
    for (v6, b) in [false, true].into_iter().zip(before) {
        if let (Some(b), Some(a)) = (b, neigh_stat(v6))
            && a.table_fulls > b.table_fulls
        {
            notes.push(format!(
                "the kernel's {} neighbour table overflowed {} times during the check (it is shared by every namespace of the machine; gc_thresh3 = {}): pairs marked NO may be its doing",
                if v6 { "IPv6" } else { "IPv4" },
                a.table_fulls - b.table_fulls,
                gc_thresh3(v6)
            ));
        }
    }
}

/// Why not, for each cell that got no reply (at its first silent address).
fn explain_failed_cells<'a>(
    rec: &Record,
    model: &'a Lab,
    ps: &[Place],
    cells: &mut [Cell],
    cx: &mut Option<Ctx<'a>>,
) -> Result<()> {
    for c in cells.iter_mut().filter(|c| c.reach == Some(false)) {
        if cx.is_none() {
            *cx = Some(ctx(rec, model)?);
        }
        let src = ps
            .iter()
            .find(|p| p.to_string() == c.src)
            .cloned()
            .expect("known place");
        let a = c
            .unreachable
            .first()
            .copied()
            .or(c.address)
            .expect("probed");
        c.why = Some(cx.as_mut().expect("opened").why_not(&src, a));
    }
    Ok(())
}

/// Probe the planned cells: a few sources at once (each on a thread in its
/// namespace), each probing a bounded group of addresses at once, waiting while
/// the neighbour table is nearly full, and deleting the entries its probes made
/// (at both ends) when a group is done. Returns per cell (address, outcome).
fn run_matrix(
    rec: &Record,
    model: &Lab,
    ps: &[Place],
    files: &[std::fs::File],
    planned: &[Planned],
    progress: Option<&(dyn Fn(usize, usize) + Sync)>,
) -> Vec<Vec<(IpAddr, Outcome)>> {
    // Waiting for replies costs no CPU: many sources at once, each with a small
    // window, so unreachable addresses (retried) do not hold the rest up.
    let workers = 64usize.min(ps.len()).max(1);
    let thresh = [gc_thresh3(false), gc_thresh3(true)];
    let budget = Budget {
        in_flight: AtomicUsize::new(0),
        limit: budget_of(thresh[0].min(thresh[1])),
    };
    let group = 64;
    let per_src = addresses_per_source(planned, ps.len());
    let owner = address_owners(model, ps);
    let cleaners: Vec<Mutex<Option<Cleaner>>> = ps
        .iter()
        .zip(files)
        .map(|(p, f)| Mutex::new(cleaner(rec, model, f, p)))
        .collect();
    crate::timing::mark("neighbour cleaners");
    let total: usize = per_src.iter().map(Vec::len).sum();
    let done = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<HashMap<IpAddr, Outcome>>> =
        (0..ps.len()).map(|_| Mutex::new(HashMap::new())).collect();
    let cfg = &crate::config::inherit();
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| {
                let _cfg = cfg.enter();
                loop {
                    let s = next.fetch_add(1, Ordering::Relaxed);
                    if s >= ps.len() {
                        break;
                    }
                    let dsts = &per_src[s];
                    if dsts.is_empty() {
                        continue;
                    }
                    let mine: Vec<IpAddr> = model
                        .addresses_of(&ps[s])
                        .into_iter()
                        .map(|(_, a)| a.addr())
                        .collect();
                    let sopts = SweepOptions::default();
                    let out = crate::kernel::netns::run_in(&files[s], || {
                        sweep_window(
                            dsts,
                            &sopts,
                            group,
                            &mut |n, idle| admit(n, idle, &budget, &thresh),
                            &mut |fin| {
                                // Forget what the probes taught the neighbour
                                // tables, at both ends.
                                let addrs: Vec<IpAddr> = fin.iter().map(|&i| dsts[i]).collect();
                                forget(&cleaners[s], &addrs);
                                let mut ds: Vec<usize> =
                                    addrs.iter().filter_map(|a| owner.get(a).copied()).collect();
                                ds.sort_unstable();
                                ds.dedup();
                                for d in ds {
                                    forget(&cleaners[d], &mine);
                                }
                                budget.in_flight.fetch_sub(fin.len(), Ordering::Relaxed);
                                let n = done.fetch_add(fin.len(), Ordering::Relaxed) + fin.len();
                                if let Some(p) = progress {
                                    p(n, total);
                                }
                            },
                        )
                    })
                    .unwrap_or_else(|e| {
                        vec![Outcome::Error(format!("enter the namespace: {e}")); dsts.len()]
                    });
                    let mut r = results[s].lock().unwrap_or_else(|e| e.into_inner());
                    r.extend(dsts.iter().copied().zip(out));
                }
            });
        }
    });
    let results: Vec<HashMap<IpAddr, Outcome>> = results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    outcomes_per_cell(planned, &results)
}

/// Per source: the addresses to probe, deduplicated.
fn addresses_per_source(planned: &[Planned], sources: usize) -> Vec<Vec<IpAddr>> {
    let mut per_src: Vec<Vec<IpAddr>> = vec![Vec::new(); sources];
    for c in planned {
        for a in &c.addrs {
            if !per_src[c.src].contains(a) {
                per_src[c.src].push(*a);
            }
        }
    }
    per_src
}

/// Which place (by index) has each address; the first one listed, if several.
fn address_owners(model: &Lab, ps: &[Place]) -> HashMap<IpAddr, usize> {
    ps.iter()
        .enumerate()
        .flat_map(|(i, p)| {
            model
                .addresses_of(p)
                .into_iter()
                .map(move |(_, a)| (a.addr(), i))
        })
        .rev()
        .collect()
}

/// Per planned cell, the outcome for each of its addresses (from its source's
/// results).
fn outcomes_per_cell(
    planned: &[Planned],
    results: &[HashMap<IpAddr, Outcome>],
) -> Vec<Vec<(IpAddr, Outcome)>> {
    planned
        .iter()
        .map(|c| {
            c.addrs
                .iter()
                .map(|a| {
                    (
                        *a,
                        results[c.src]
                            .get(a)
                            .cloned()
                            .unwrap_or(Outcome::Error("not probed".into())),
                    )
                })
                .collect()
        })
        .collect()
}

/// Addresses in flight across all sources of a matrix.
struct Budget {
    in_flight: AtomicUsize,
    limit: usize,
}

/// How many addresses the matrix probes at once: each makes up to two
/// neighbour entries (one at each end), kept under half the table.
pub fn budget_of(thresh3: usize) -> usize {
    (thresh3 / 4).max(4)
}

/// Grant up to `n` addresses from the budget; wait (up to a second) while the
/// neighbour tables are too full for them, whoever filled them (other labs
/// probe too). An idle sweep always gets one, so every source makes progress.
fn admit(n: usize, idle: bool, b: &Budget, thresh: &[usize; 2]) -> usize {
    let t0 = std::time::Instant::now();
    loop {
        let cur = b.in_flight.load(Ordering::Relaxed);
        let free = b.limit.saturating_sub(cur);
        let want = n.min(free).max(usize::from(idle));
        let full = [false, true].iter().any(|&v6| {
            neigh_stat(v6).is_some_and(|s| s.entries + 2 * want > thresh[usize::from(v6)] * 3 / 4)
        });
        let waited = t0.elapsed() > Duration::from_secs(1);
        if want > 0 && (!full || waited) {
            if b.in_flight
                .compare_exchange(cur, cur + want, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return want;
            }
            continue;
        }
        if !idle {
            // A sweep with probes in flight goes back to its replies; it asks
            // again when some finish.
            return 0;
        }
        // The table has no event to wait on; its count is read again shortly.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A server started by `up` (`run:`) may need a moment: retry a refused
/// connection for up to 3 seconds. Runs in the source's namespace. A refusal
/// (or reset) from an on-link destination whose MAC in the neighbour table is
/// not `expected`'s comes from another interface answering for its address:
/// no retry helps, and the answering entry is returned beside the result.
fn retry_refused<T>(
    expected: Option<&super::dup::Expected>,
    mut f: impl FnMut() -> std::result::Result<T, super::ProbeError>,
) -> (
    std::result::Result<T, super::ProbeError>,
    Option<super::dup::Answered>,
) {
    let t0 = std::time::Instant::now();
    loop {
        let r = f();
        let refused = matches!(&r, Err(e) if matches!(e.errno(), Some(libc::ECONNREFUSED) | Some(libc::ECONNRESET)));
        if refused
            && let Some(exp) = expected
            && let Some(a) = super::dup::answered_here(exp.address)
            && a.mac != exp.mac
        {
            return (r, Some(a));
        }
        match r {
            Err(e)
                if e.errno() == Some(libc::ECONNREFUSED)
                    && t0.elapsed() < Duration::from_secs(3) =>
            {
                std::thread::sleep(Duration::from_millis(50))
            }
            r => return (r, None),
        }
    }
}

/// The duplicate-address reason for an answering neighbour entry.
fn duplicate_of(
    exp: Option<&super::dup::Expected>,
    a: &super::dup::Answered,
    places: &[(Place, &std::fs::File)],
) -> Reason {
    let imp = super::dup::impostor(places, &a.mac);
    match exp.and_then(|e| super::dup::compare(e, a, imp)) {
        Some(r) => r,
        None => Reason::Unknown {
            detail: "the destination's MAC changed while probing".into(),
            checked: vec![],
        },
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
    let mut res = ExpectResult {
        name: e.name.clone(),
        line: e.line,
        ok: false,
        skipped: false,
        detail: String::new(),
        why: None,
        error: None,
        size: None,
        bits_per_second: None,
        lost_percent: None,
        pairs: None,
        failed_pairs: Vec::new(),
    };
    if names_internet(&e.kind) && !model.sandbox {
        res.ok = true;
        res.skipped = true;
        res.detail = "skipped: the emulated internet exists only in a sandboxed lab".into();
        return Ok(res);
    }
    if let Some(g) = crate::topology::expect::group_pairs(model, &e.kind) {
        let kinds = g.map_err(|m| Error::Usage(format!("expectation on line {}: {m}", e.line)))?;
        let pairs = match &e.kind {
            ExpectKind::Reach { size: None, .. } => reach_pairs(rec, model, &kinds, ps, files, cx)?,
            _ => {
                let mut v = Vec::new();
                for k in kinds {
                    let one = Expect {
                        name: e.name.clone(),
                        kind: k,
                        line: e.line,
                    };
                    let r = run_expect(rec, model, &one, ps, files, cx)?;
                    let (src, dst) = ends_of(&one.kind);
                    v.push((src, dst, r));
                }
                v
            }
        };
        group_result(&mut res, pairs);
        return Ok(res);
    }
    let mut run = ExpectRun {
        rec,
        model,
        places: ps.iter().cloned().zip(files.iter()).collect(),
        cx,
    };
    match &e.kind {
        ExpectKind::Reach {
            src,
            dst,
            family,
            reach,
            size,
        } => {
            let fam = crate::topology::expect::expect_family(model, src, dst, *family)
                .map_err(|m| Error::Usage(format!("expectation on line {}: {m}", e.line)))?;
            run.reach(&mut res, src, dst, fam, *reach, *size)?;
        }
        ExpectKind::Tcp {
            src,
            dst,
            port,
            open,
        } => run.tcp(&mut res, src, dst, *port, *open)?,
        ExpectKind::Http { src, url, status } => run.http(&mut res, src, url, *status)?,
        ExpectKind::Throughput { .. } | ExpectKind::Loss { .. } => run.perf(&mut res, &e.kind)?,
    }
    Ok(res)
}

/// At most this many failed pairs of a group expectation get a why-not walk
/// (each reads the namespaces along the path); the rest say what failed.
const GROUP_WHY_LIMIT: usize = 32;

/// A pair expectation's source and destination (an `http` one: its URL).
fn ends_of(k: &ExpectKind) -> (String, String) {
    match k {
        ExpectKind::Reach { src, dst, .. }
        | ExpectKind::Tcp { src, dst, .. }
        | ExpectKind::Throughput { src, dst, .. }
        | ExpectKind::Loss { src, dst, .. } => (src.clone(), dst.clone()),
        ExpectKind::Http { src, url, .. } => (src.clone(), url.clone()),
    }
}

/// The pairs of a `reach`/`no_reach` group expectation, probed as the matrix
/// is (concurrently, paced against the neighbour table); a why-not for the
/// first failed pairs.
fn reach_pairs<'a>(
    rec: &Record,
    model: &'a Lab,
    kinds: &[ExpectKind],
    ps: &[Place],
    files: &[std::fs::File],
    cx: &mut Option<Ctx<'a>>,
) -> Result<Vec<(String, String, ExpectResult)>> {
    let index = |n: &str| ps.iter().position(|p| p.to_string() == n);
    let mut planned = Vec::new();
    for k in kinds {
        let ExpectKind::Reach {
            src, dst, family, ..
        } = k
        else {
            continue;
        };
        let fam = crate::topology::expect::expect_family(model, src, dst, *family)
            .map_err(|m| Error::Usage(format!("{src} -> {dst}: {m}")))?;
        let s = index(src)
            .ok_or_else(|| Error::Usage(format!("{src} is not a place of lab {}", model.name)))?;
        planned.push(Planned {
            src: s,
            dst: index(dst).unwrap_or(s),
            family: fam,
            addrs: resolve_all(model, dst, fam)?,
        });
    }
    let outcomes = run_matrix(rec, model, ps, files, &planned, None);
    let mut out = Vec::new();
    let mut whys = 0;
    for ((k, c), o) in kinds.iter().zip(&planned).zip(outcomes) {
        let ExpectKind::Reach {
            src, dst, reach, ..
        } = k
        else {
            continue;
        };
        let mut r = reach_pair(src, dst, *reach, &c.addrs, &o);
        if r.error.is_some() {
            out.push((src.clone(), dst.clone(), r));
            continue;
        }
        if !r.ok
            && *reach
            && whys < GROUP_WHY_LIMIT
            && let Some((a, _)) = o.iter().find(|(_, x)| *x == Outcome::NoReply)
        {
            whys += 1;
            if cx.is_none() {
                *cx = Some(ctx(rec, model)?);
            }
            let why = cx.as_mut().expect("opened").why_not(&ps[c.src], *a);
            r.detail.push_str(&format!(": {why}"));
            r.why = Some(why);
        }
        out.push((src.clone(), dst.clone(), r));
    }
    Ok(out)
}

/// One pair of a `reach`/`no_reach` group from its probes' outcomes (no why-not yet).
fn reach_pair(
    src: &str,
    dst: &str,
    reach: bool,
    addrs: &[IpAddr],
    o: &[(IpAddr, Outcome)],
) -> ExpectResult {
    let mut r = ExpectResult {
        name: format!("{src} -> {dst}"),
        line: 0,
        ok: false,
        skipped: false,
        detail: String::new(),
        why: None,
        error: None,
        size: None,
        bits_per_second: None,
        lost_percent: None,
        pairs: None,
        failed_pairs: Vec::new(),
    };
    if let Some(e) = o.iter().find_map(|(_, x)| match x {
        Outcome::Error(e) => Some(e.clone()),
        _ => None,
    }) {
        r.detail = format!("{src} -> {dst}: the probe could not run: {e}");
        r.error = Some(e);
        return r;
    }
    let missing: Vec<IpAddr> = o
        .iter()
        .filter(|(_, x)| *x == Outcome::NoReply)
        .map(|(a, _)| *a)
        .collect();
    r.ok = if reach {
        missing.is_empty()
    } else {
        missing.len() == addrs.len()
    };
    r.detail = reach_detail(src, dst, addrs, &missing, None, &vec![None; addrs.len()]);
    r
}

/// A group expectation's result from its pairs': it holds when every pair
/// does; its detail names the pairs that failed.
fn group_result(res: &mut ExpectResult, pairs: Vec<(String, String, ExpectResult)>) {
    let n = pairs.len();
    res.pairs = Some(n);
    res.failed_pairs = pairs
        .into_iter()
        .filter(|(_, _, r)| !r.ok)
        .map(|(src, dst, r)| PairResult {
            src,
            dst,
            detail: r.detail,
            why: r.why,
            error: r.error,
        })
        .collect();
    let failed = &res.failed_pairs;
    res.ok = failed.is_empty();
    res.error = failed.iter().find_map(|p| p.error.clone());
    res.why = failed.iter().find_map(|p| p.why.clone());
    res.detail = if failed.is_empty() {
        format!("{n} of {n} pairs hold")
    } else {
        const SHOWN: usize = 20;
        let mut names: Vec<String> = failed
            .iter()
            .take(SHOWN)
            .map(|p| format!("{} -> {}", p.src, p.dst))
            .collect();
        if failed.len() > SHOWN {
            names.push(format!("and {} more", failed.len() - SHOWN));
        }
        format!("{} of {n} pairs fail: {}", failed.len(), names.join(", "))
    };
}

/// Does the expectation name the emulated internet (as its source or destination)?
fn names_internet(kind: &ExpectKind) -> bool {
    match kind {
        ExpectKind::Reach { src, dst, .. }
        | ExpectKind::Tcp { src, dst, .. }
        | ExpectKind::Throughput { src, dst, .. }
        | ExpectKind::Loss { src, dst, .. } => {
            src == "internet" || dst.split(':').next() == Some("internet")
        }
        ExpectKind::Http { src, url, .. } => src == "internet" || url.contains("//internet"),
    }
}

/// What checking one expectation needs: the lab, its places with their
/// namespaces open, and the why-not context (opened on first need).
struct ExpectRun<'a, 'b> {
    rec: &'b Record,
    model: &'a Lab,
    places: Vec<(Place, &'b std::fs::File)>,
    cx: &'b mut Option<Ctx<'a>>,
}

impl<'a, 'b> ExpectRun<'a, 'b> {
    fn src_file(&self, s: &str) -> Result<(Place, &'b std::fs::File)> {
        let p = place_of(self.model, s).ok_or_else(|| {
            Error::Usage(format!("{s} is not a place of lab {}", self.model.name))
        })?;
        let f = self
            .places
            .iter()
            .find(|x| x.0 == p)
            .map(|x| x.1)
            .expect("place listed");
        Ok((p, f))
    }

    /// The why-not context, opened the first time it is needed.
    fn why_ctx(&mut self) -> Result<&mut Ctx<'a>> {
        if self.cx.is_none() {
            *self.cx = Some(ctx(self.rec, self.model)?);
        }
        Ok(self.cx.as_mut().expect("opened"))
    }

    /// `reach` / `no_reach`: ping every address of the destination.
    fn reach(
        &mut self,
        res: &mut ExpectResult,
        src: &str,
        dst: &str,
        fam: u8,
        reach: bool,
        size: Option<usize>,
    ) -> Result<()> {
        let (p, f) = self.src_file(src)?;
        let addrs = resolve_all(self.model, dst, fam)?;
        res.size = size;
        let detailed = probe_sized(f, &addrs, size);
        let sends: Vec<Option<String>> = detailed.iter().map(|(_, s)| s.clone()).collect();
        let out: Vec<Outcome> = detailed.into_iter().map(|(o, _)| o).collect();
        if let Some(err) = out.iter().find_map(|o| match o {
            Outcome::Error(e) => Some(e.clone()),
            _ => None,
        }) {
            res.ok = false;
            res.detail = format!("{src} -> {dst}: the probe could not run: {err}");
            res.error = Some(err);
            return Ok(());
        }
        let missing: Vec<IpAddr> = addrs
            .iter()
            .zip(&out)
            .filter(|(_, o)| **o == Outcome::NoReply)
            .map(|(a, _)| *a)
            .collect();
        let answered = addrs.len() - missing.len();
        // reach: every address answers; no_reach: none does.
        res.ok = if reach {
            missing.is_empty()
        } else {
            answered == 0
        };
        res.detail = reach_detail(src, dst, &addrs, &missing, size, &sends);
        // A reply from an on-link destination may come from another
        // interface that answers for its address (and an address that
        // stays silent may have been answered for, at the ARP/NDP level,
        // by one that drops pings): compare the MAC.
        let replied = addrs
            .iter()
            .zip(&out)
            .filter(|(_, o)| **o == Outcome::Reply);
        let silent = addrs
            .iter()
            .zip(&out)
            .zip(&sends)
            .filter(|((_, o), m)| reach && **o == Outcome::NoReply && m.is_none())
            .map(|(x, _)| x);
        let dup = replied
            .chain(silent)
            .find_map(|(a, _)| super::dup::after_probe(self.model, &self.places, &p, *a));
        if let Some(d) = dup {
            if reach {
                res.ok = false;
            }
            res.detail.push_str(&format!(": {d}"));
            res.why = Some(d);
        } else if let Some(addr) = missing.first().copied()
            && (reach || answered == 0)
        {
            let why = self.why_ctx()?.why_not_with(
                &p,
                addr,
                &WhyOpts {
                    size,
                    ..Default::default()
                },
            );
            res.detail.push_str(&format!(": {why}"));
            res.why = Some(why);
        }
        Ok(())
    }

    /// `tcp`: connect to the destination's port.
    fn tcp(
        &mut self,
        res: &mut ExpectResult,
        src: &str,
        dst: &str,
        port: u16,
        open: bool,
    ) -> Result<()> {
        let model = self.model;
        let (p, f) = self.src_file(src)?;
        let to_host = dst == "host" || dst.starts_with("host:");
        // `host` seen from the emulated internet is the host's end of the
        // uplink: the only address of the host the outside can reach.
        let addr = if dst == "host" && p == Place::Internet {
            crate::topology::model::sandbox_uplink_host_addr().addr()
        } else {
            resolve(model, dst, 4).or_else(|_| resolve(model, dst, 6))?
        };
        let sa = SocketAddr::new(addr, port);
        let exp = super::dup::expected(model, &self.places, addr);
        let (r, dup) = crate::kernel::netns::run_in(f, || {
            retry_refused(exp.as_ref(), || {
                super::tcp::tcp_connect(sa, Duration::from_secs(2))
            })
        })
        .map_err(Error::io("enter namespace"))?;
        res.ok = r.is_ok() == open && dup.is_none();
        res.detail = match &r {
            Ok(t) => format!(
                "{src} -> {sa}: connected in {:.1} ms",
                t.as_secs_f64() * 1000.0
            ),
            Err(e) => format!("{src} -> {sa}: {e}"),
        };
        if let Some(a) = dup {
            let d = duplicate_of(exp.as_ref(), &a, &self.places);
            res.detail.push_str(&format!(": {d}"));
            res.why = Some(d);
        } else if let Err(e) = &r
            && open
            && to_host
            && let Some(detail) = crate::runtime::publish::why_not(
                self.rec,
                model,
                port,
                crate::model::publish::Proto::Tcp,
                e.kind() == "refused",
            )
        {
            // Refused or unanswered, a port of the host is the lab's only
            // when published.
            let why = Reason::NoPublish {
                at: "host".into(),
                detail,
            };
            res.detail.push_str(&format!(": {why}"));
            res.why = Some(why);
        } else if let Err(e) = &r
            && open
            && e.kind() != "refused"
        {
            // Nothing answered: the same walk as for ping, and a traced
            // connection to find a firewall that drops only TCP.
            let opts = WhyOpts {
                tcp_port: Some(port),
                ..Default::default()
            };
            let why = self.why_ctx()?.why_not_with(&p, addr, &opts);
            res.detail.push_str(&format!(": {why}"));
            res.why = Some(why);
        }
        Ok(())
    }

    /// `throughput` / `loss`: run the throughput probe and compare with the bounds.
    fn perf(&mut self, res: &mut ExpectResult, kind: &ExpectKind) -> Result<()> {
        let (src, dst, t) = super::perf::expectation(kind).expect("a perf expectation");
        let ends = super::perf::ends(self.model, src, dst)?;
        let file = |p: &Place| {
            self.places
                .iter()
                .find(|x| x.0 == *p)
                .map(|x| x.1)
                .expect("place listed")
        };
        let (sf, df) = (file(&ends.src), file(&ends.dst));
        match super::perf::run(sf, df, ends.address, &t.options, &mut |_| {}) {
            Ok(r) => {
                res.bits_per_second = Some(r.bits_per_second);
                res.lost_percent = r.lost_percent;
                let (ok, detail) = t.judge(&r);
                res.ok = ok;
                res.detail = format!("{src} -> {dst} ({}): {detail}", ends.address);
            }
            // No connection is no throughput: a failure, not a probe error.
            Err(e) => {
                res.ok = false;
                res.detail = format!("{src} -> {dst} ({}): nothing measured: {e}", ends.address);
            }
        }
        Ok(())
    }

    /// `http`: GET the URL and compare the status.
    fn http(&mut self, res: &mut ExpectResult, src: &str, url: &str, status: u16) -> Result<()> {
        let model = self.model;
        let (_, f) = self.src_file(src)?;
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
        let exp = super::dup::expected(model, &self.places, addr);
        let e2 = exp.clone();
        let (r, dup) = crate::kernel::netns::run_in(f, move || {
            retry_refused(e2.as_ref(), || {
                super::http::http_get(sa, &h, &p, Duration::from_secs(5))
            })
        })
        .map_err(Error::io("enter namespace"))?;
        match r {
            Ok(resp) => {
                res.ok = resp.status == status;
                res.detail = format!("GET {url} from {src}: {} {}", resp.status, resp.reason);
            }
            Err(e) => res.detail = format!("GET {url} from {src}: {e}"),
        }
        if let Some(a) = dup {
            let d = duplicate_of(exp.as_ref(), &a, &self.places);
            res.ok = false;
            res.detail.push_str(&format!(": {d}"));
            res.why = Some(d);
        }
        Ok(())
    }
}

/// The text of a reach result: which addresses replied, and what the kernel
/// said when it refused to send.
fn reach_detail(
    src: &str,
    dst: &str,
    addrs: &[IpAddr],
    missing: &[IpAddr],
    size: Option<usize>,
    sends: &[Option<String>],
) -> String {
    let list = |v: &[IpAddr]| {
        v.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let answered = addrs.len() - missing.len();
    let sized = size.map(|n| format!(", {n} bytes, DF")).unwrap_or_default();
    let mut detail = if missing.is_empty() {
        format!("{src} -> {dst} ({}{sized}): replies", list(addrs))
    } else if answered == 0 {
        format!("{src} -> {dst} ({}{sized}): no reply", list(addrs))
    } else {
        format!(
            "{src} -> {dst} ({}{sized}): no reply from {}",
            list(addrs),
            list(missing)
        )
    };
    // What the kernel said when it refused to send (the MTU), as it said it.
    for (a, m) in addrs.iter().zip(sends) {
        if let Some(m) = m {
            detail.push_str(&format!(" ({a}: {m})"));
        }
    }
    detail
}

/// The matrix as text: one table per family (rows and columns: the places
/// with an address of it), `ok` / `NO` / `ERR` (the probe could not run).
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    render_tables(r, &mut out);
    render_probe_errors(r, &mut out);
    render_why_not(r, &mut out);
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    render_expectations(r, &mut out);
    let summary = r.summary.to_string();
    if !summary.is_empty() {
        out.push_str(&summary);
        out.push('\n');
    }
    out
}

/// One table per family.
fn render_tables(r: &Report, out: &mut String) {
    for fp in &r.family_places {
        let f = fp.family;
        let cells: HashMap<(&str, &str), &Cell> = r
            .matrix
            .iter()
            .filter(|c| c.family == f)
            .map(|c| ((c.src.as_str(), c.dst.as_str()), c))
            .collect();
        if cells.is_empty() {
            continue;
        }
        let mut rows = vec![{
            let mut h = vec![format!("IPv{f}: from \\ to")];
            h.extend(fp.columns.iter().cloned());
            h
        }];
        for s in &fp.rows {
            let mut row = vec![s.clone()];
            for d in &fp.columns {
                let c = cells.get(&(s.as_str(), d.as_str()));
                row.push(match c {
                    _ if s == d => "-".into(),
                    Some(c) if c.error.is_some() => "ERR".into(),
                    Some(c) => match c.reach {
                        Some(true) => "ok".into(),
                        Some(false) => "NO".into(),
                        None => ".".into(),
                    },
                    None => "".into(),
                });
            }
            rows.push(row);
        }
        out.push_str(&crate::util::table(&rows));
        out.push('\n');
    }
}

fn render_probe_errors(r: &Report, out: &mut String) {
    let errs: Vec<&Cell> = r.matrix.iter().filter(|c| c.error.is_some()).collect();
    if !errs.is_empty() {
        out.push_str(
            "probe errors (the probe could not run; nothing is known about these pairs):\n",
        );
        for c in errs {
            out.push_str(&format!(
                "  {} -> {} (IPv{}): {}\n",
                c.src,
                c.dst,
                c.family,
                c.error.as_deref().unwrap_or_default()
            ));
        }
        out.push('\n');
    }
}

fn render_why_not(r: &Report, out: &mut String) {
    let fails: Vec<&Cell> = r.matrix.iter().filter(|c| c.reach == Some(false)).collect();
    if !fails.is_empty() {
        out.push_str("why not:\n");
        for c in fails {
            let partial = c.unreachable.len() < c.addresses.len();
            let addrs = c
                .unreachable
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "  {} -> {} ({}{}): {}\n",
                c.src,
                c.dst,
                addrs,
                if partial {
                    "; its other addresses answer"
                } else {
                    ""
                },
                c.why.as_ref().map(|w| w.to_string()).unwrap_or_default()
            ));
        }
        out.push('\n');
    }
}

fn render_expectations(r: &Report, out: &mut String) {
    if !r.expectations.is_empty() {
        out.push_str("expectations:\n");
        for e in &r.expectations {
            out.push_str(&format!(
                "  {} {} (line {}): {}\n",
                if e.skipped {
                    "SKIP"
                } else if e.ok {
                    "PASS"
                } else if e.error.is_some() {
                    "ERR "
                } else {
                    "FAIL"
                },
                e.name,
                e.line,
                e.detail
            ));
            for p in &e.failed_pairs {
                out.push_str(&format!("      {}\n", p.detail));
            }
        }
        let failed = r.expectations.iter().filter(|e| !e.ok).count();
        out.push_str(&format!(
            "{} of {} expectations hold\n",
            r.expectations.len() - failed,
            r.expectations.len()
        ));
    }
}

/// JUnit XML: one test case per expectation.
pub fn junit(r: &Report) -> String {
    let failures = r
        .expectations
        .iter()
        .filter(|e| !e.ok && e.error.is_none())
        .count();
    let errors = r.expectations.iter().filter(|e| e.error.is_some()).count();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"nslab check {}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n",
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
            let tag = if e.error.is_some() {
                "error"
            } else {
                "failure"
            };
            let pairs: String = e
                .failed_pairs
                .iter()
                .map(|p| format!("\n{}", xml(&p.detail)))
                .collect();
            s.push_str(&format!(
                "\n      <{tag} message=\"{}\">line {}: {}{pairs}</{tag}>\n    </testcase>\n",
                xml(&e.detail),
                e.line,
                xml(&e.detail)
            ));
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, ok: bool) -> ExpectResult {
        ExpectResult {
            name: name.into(),
            line: 7,
            ok,
            skipped: false,
            detail: format!("{name}: detail"),
            why: None,
            error: None,
            size: None,
            bits_per_second: None,
            lost_percent: None,
            pairs: None,
            failed_pairs: Vec::new(),
        }
    }

    fn cell(src: &str, dst: &str, family: u8, reach: Option<bool>) -> Cell {
        Cell {
            src: src.into(),
            dst: dst.into(),
            family,
            address: None,
            reach,
            why: None,
            addresses: vec![],
            unreachable: vec![],
            error: None,
        }
    }

    #[test]
    fn the_summary_counts_pairs_in_every_family_and_expectations() {
        let cells = [
            cell("a", "b", 4, Some(true)),
            cell("a", "b", 6, Some(false)),
            cell("b", "a", 4, Some(true)),
            cell("b", "a", 6, Some(true)),
            cell("a", "c", 4, None),
        ];
        let exps = [result("x", true), result("y", false)];
        let s = Summary::of(&cells, &exps);
        assert_eq!((s.pairs, s.pairs_reach), (3, 1));
        assert_eq!(
            s.to_string(),
            "matrix: 1 of 3 pairs reach; expectations: 1 of 2 hold"
        );
        assert_eq!(
            Summary::of(&[], &exps).to_string(),
            "expectations: 1 of 2 hold"
        );
        assert_eq!(Summary::of(&[], &[]).to_string(), "");
    }

    #[test]
    fn a_group_result_lists_its_failed_pairs_everywhere() {
        let pairs = vec![
            ("a".to_string(), "b".to_string(), result("a -> b", true)),
            ("a".to_string(), "c".to_string(), result("a -> c", false)),
            ("c".to_string(), "a".to_string(), result("c -> a", false)),
        ];
        let mut g = result("reach: all -> all", true);
        group_result(&mut g, pairs);
        assert!(!g.ok);
        assert_eq!(g.pairs, Some(3));
        assert_eq!(g.detail, "2 of 3 pairs fail: a -> c, c -> a");
        let ends: Vec<(&str, &str)> = g
            .failed_pairs
            .iter()
            .map(|p| (p.src.as_str(), p.dst.as_str()))
            .collect();
        assert_eq!(ends, [("a", "c"), ("c", "a")]);
        let r = Report {
            lab: "l".into(),
            families: vec![4],
            places: vec![],
            matrix: vec![],
            expectations: vec![g.clone()],
            ok: false,
            family_places: vec![],
            probe_errors: 0,
            pairs_total: 0,
            notes: vec![],
            summary: Summary::of(&[], std::slice::from_ref(&g)),
        };
        let t = render(&r);
        assert!(
            t.contains("FAIL reach: all -> all (line 7): 2 of 3 pairs fail: a -> c, c -> a\n      a -> c: detail\n      c -> a: detail\n"),
            "{t}"
        );
        assert!(t.ends_with("expectations: 0 of 1 hold\n"), "{t}");
        let j = junit(&r);
        assert!(
            j.contains("a -&gt; c: detail") && j.contains("c -&gt; a: detail"),
            "{j}"
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["expectations"][0]["failed_pairs"][1]["src"], "c");
        assert_eq!(v["summary"]["expectations_hold"], 0);
        // All pairs hold.
        let mut h = result("reach: all -> all", false);
        group_result(
            &mut h,
            vec![("a".into(), "b".into(), result("a -> b", true))],
        );
        assert!(h.ok && h.failed_pairs.is_empty());
        assert_eq!(h.detail, "1 of 1 pairs hold");
    }

    #[test]
    fn samples_are_deterministic_sorted_and_bounded() {
        let a = sample(100, 10, 42);
        assert_eq!(a, sample(100, 10, 42));
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|&i| i < 100));
        assert_ne!(a, sample(100, 10, 43));
        assert_eq!(sample(5, 10, 1), vec![0, 1, 2, 3, 4]);
        assert!(sample(0, 3, 1).is_empty());
    }

    #[test]
    fn the_budget_keeps_entries_under_half_the_table() {
        // Two entries per address in flight (one at each end).
        assert_eq!(budget_of(1024), 256);
        assert!(2 * budget_of(1024) <= 1024 / 2);
        assert_eq!(budget_of(8), 4);
    }

    #[test]
    fn neighbour_stats_read_entries_and_overflows() {
        let text = "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n\
00000065 0000639d 00006395 00000002   0014a129 00017318 00000125   00000000         00000000         000000cb         00000000       00000000            00000003\n\
00000065 000047ed 00004790 00000004   000ea8b1 0000ff15 000000f4   00000000         00000000         00000000         00000000       00000000            0000000a\n";
        assert_eq!(
            parse_neigh_stat(text),
            Some(NeighStat {
                entries: 0x65,
                table_fulls: 13
            })
        );
        assert_eq!(parse_neigh_stat("garbage"), None);
    }
}
