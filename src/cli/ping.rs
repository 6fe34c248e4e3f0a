use super::{LabSel, print_json};
use nslab::error::{Error, Result};
use nslab::probe::icmp::{self, PingOptions};
use nslab::probe::why::{Reason, WhyOpts};
use nslab::topology::Place;
use std::time::Duration;

/// Ping from inside a node, and say why when no reply comes.
///
/// Ping from inside a node (or `host`, `internet`) over a raw ICMP socket, like
/// `ip netns exec SRC ping DST`, and say why when no reply comes.
///
/// DST is a node (its first address of the family; IPv6 when it has no IPv4
/// address), an endpoint NODE:IF, `host`, `internet`, a bridge, or an IP address.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nslab ping green black
  nslab ping green 198.51.100.8 -c 1
  nslab ping red green -6")]
pub struct Args {
    /// Where the echo requests come from: a node, `host` or `internet`.
    pub src: String,
    /// Where they go.
    pub dst: String,
    /// Use IPv6 addresses of named destinations.
    #[arg(short = '6')]
    pub v6: bool,
    /// Number of echo requests.
    #[arg(short = 'c', long, default_value_t = 3)]
    pub count: u32,
    /// Seconds between requests.
    #[arg(short = 'i', long, default_value_t = 1.0)]
    pub interval: f64,
    /// Seconds to wait for each reply.
    #[arg(short = 'W', long, default_value_t = 2.0)]
    pub timeout: f64,
    /// Payload bytes (default 56), sent with DF set: a request larger than the
    /// path's MTU is not fragmented, and the kernel's refusal is printed.
    #[arg(short = 's', long)]
    pub size: Option<usize>,
    /// Print each reply and the statistics as JSON.
    #[arg(long)]
    pub json: bool,
    /// The topology file the lab came from (or use --lab).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub sel: LabSel,
}

fn secs(v: f64, what: &str) -> Result<Duration> {
    if (0.0..3600.0).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(Error::Usage(format!(
            "{what} must be a number of seconds between 0 and 3600"
        )))
    }
}

/// A namespace name where a node name was expected (`nl-a` for node `a` of lab
/// `nl`): the error says which node of which lab it is.
fn with_namespace_hint(e: Error, names: &[&str]) -> Error {
    let hints: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let (lab, node) = nslab::lab::node_of_namespace(n)?;
            Some(format!(
                "hint: {n} is the namespace of node {node} of lab {lab}; nslab takes the node's name: --lab {lab} {node}"
            ))
        })
        .collect();
    if hints.is_empty() {
        return e;
    }
    let code = super::exit_code(&e);
    let msg = format!("{e}\n{}", hints.join("\n"));
    if code == 2 {
        Error::Usage(msg)
    } else {
        Error::Failed(msg)
    }
}

pub fn run(a: Args) -> Result<i32> {
    if a.count == 0 {
        return Err(Error::Usage("--count must be at least 1".into()));
    }
    let (rec, model, src, dst) = (|| {
        let (rec, model) = super::lab_up(&a.sel, a.file.as_deref())?;
        let src = super::place(&model, &a.src)?;
        // A destination without IPv4 addresses is pinged over IPv6.
        let dst = match nslab::probe::check::resolve(&model, &a.dst, if a.v6 { 6 } else { 4 }) {
            Err(e) if !a.v6 => nslab::probe::check::resolve(&model, &a.dst, 6).map_err(|_| e)?,
            r => r?,
        };
        Ok((rec, model, src, dst))
    })()
    .map_err(|e: Error| with_namespace_hint(e, &[&a.src, &a.dst]))?;
    if let Some(n) = a.size {
        check_size(n, dst)?;
    }
    let file = nslab::lab::place_file(&rec, &src)?;
    let opts = PingOptions {
        count: a.count,
        interval: secs(a.interval, "--interval")?,
        timeout: secs(a.timeout, "--timeout")?,
        size: a.size.unwrap_or(56),
        // `-s` tests the path's MTU, as `ping -M do -s N`; without it, ping
        // behaves as it always did (the kernel may fragment).
        dont_fragment: a.size.is_some(),
        ..Default::default()
    };
    let why_opts = WhyOpts {
        size: a.size,
        ..Default::default()
    };
    let json = a.json;
    if !json {
        println!("{}", icmp::format_header(dst, &opts));
    }
    let mut events = Vec::new();
    let mut local_errors = 0u32;
    let report = nslab::lab::run_in(&file, || {
        icmp::ping(dst, &opts, &mut |e| {
            if let icmp::PingEvent::SendError { errno, .. } = e
                && (*errno == libc::EMSGSIZE || *errno == libc::ENOBUFS)
            {
                local_errors += 1;
            }
            if json {
                events.push(e.clone());
            } else {
                println!("{}", icmp::format_event(dst, e));
            }
        })
    })?;
    let places = place_files(&rec, &model);
    let pinged = Pinged {
        model: &model,
        places,
        src: &src,
        dst,
        why_opts: &why_opts,
    };
    let (report, why, duplicate) = pinged.explain(report, local_errors, json);
    let ok = report.as_ref().is_some_and(|r| r.received > 0) && !duplicate;
    if json {
        print_json(
            &serde_json::json!({ "src": a.src, "dst": a.dst, "address": dst, "size": opts.size, "dont_fragment": opts.dont_fragment, "events": events, "report": report, "why_not": why }),
        );
    } else {
        if let Some(r) = &report {
            println!("{}", icmp::format_report(dst, r));
        }
        if let Some(w) = &why {
            println!("why not: {w}");
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// `--size` must fit an echo request of the destination's family.
fn check_size(n: usize, dst: std::net::IpAddr) -> Result<()> {
    let (max, fam) = if dst.is_ipv6() {
        (nslab::topology::expect::MAX_SIZE_V6, 6)
    } else {
        (nslab::topology::expect::MAX_SIZE_V4, 4)
    };
    if n > max {
        return Err(Error::Usage(format!(
            "--size {n} is too large: an IPv{fam} echo request carries at most {max} bytes"
        )));
    }
    Ok(())
}

/// A ping that ran, and what it takes to say why no reply came.
struct Pinged<'a> {
    model: &'a nslab::topology::Lab,
    places: Vec<(Place, std::fs::File)>,
    src: &'a Place,
    dst: std::net::IpAddr,
    why_opts: &'a WhyOpts,
}

impl Pinged<'_> {
    /// The report, why no reply came (or who else answered), and whether the
    /// replies came from an impostor.
    fn explain(
        self,
        report: std::io::Result<icmp::PingReport>,
        local_errors: u32,
        json: bool,
    ) -> (Option<icmp::PingReport>, Option<Reason>, bool) {
        let Pinged {
            model,
            places,
            src,
            dst,
            why_opts,
        } = self;
        let mut duplicate = false;
        let (report, why) = match report {
            Ok(r) if r.received == 0 && local_errors > 0 => {
                // The kernel refused to send (printed above, as it said it): only
                // the MTU explains that; any other reason of the walk would be
                // about a packet that never left.
                let why = why_not(model, places, src, dst, why_opts).filter(|w| w.class() == "mtu");
                (Some(r), why)
            }
            Ok(r) if r.received == 0 => {
                // Something else may have answered for the address (ARP/NDP)
                // and dropped the pings; else walk the path.
                let refs: Vec<(Place, &std::fs::File)> =
                    places.iter().map(|(p, f)| (p.clone(), f)).collect();
                let why = match nslab::probe::dup::after_probe(model, &refs, src, dst) {
                    Some(d) => Some(d),
                    None => why_not(model, places, src, dst, why_opts),
                };
                (Some(r), why)
            }
            Ok(r) => {
                // Replies came; from the destination, or from another interface
                // that answers for its address?
                let refs: Vec<(Place, &std::fs::File)> =
                    places.iter().map(|(p, f)| (p.clone(), f)).collect();
                let why = nslab::probe::dup::after_probe(model, &refs, src, dst);
                duplicate = why.is_some();
                (Some(r), why)
            }
            Err(e) => {
                if !json {
                    println!(
                        "ping: connect: {}",
                        e.to_string().replace(
                            &format!(" (os error {})", e.raw_os_error().unwrap_or(0)),
                            ""
                        )
                    );
                }
                (None, why_not(model, places, src, dst, why_opts))
            }
        };
        (report, why, duplicate)
    }
}

/// The lab's places and their namespaces (those that can be opened).
fn place_files(
    rec: &nslab::record::Record,
    model: &nslab::topology::Lab,
) -> Vec<(Place, std::fs::File)> {
    nslab::probe::check::places(model)
        .into_iter()
        .filter_map(|p| nslab::lab::place_file(rec, &p).ok().map(|f| (p, f)))
        .collect()
}

fn why_not(
    model: &nslab::topology::Lab,
    files: Vec<(Place, std::fs::File)>,
    src: &Place,
    dst: std::net::IpAddr,
    opts: &WhyOpts,
) -> Option<Reason> {
    let mut cx = nslab::probe::why::Ctx::open(model, files).ok()?;
    Some(cx.why_not_with(src, dst, opts))
}
