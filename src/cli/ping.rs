use super::{LabSel, print_json};
use nslab::PingOptions;
use nslab::error::{Error, Result};
use nslab::probe::icmp;
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
    let (lab, dst) = (|| {
        let lab = a.sel.open(a.file.as_deref())?;
        lab.node(&a.src)?;
        // A destination without IPv4 addresses is pinged over IPv6.
        let dst = lab.address_of(&a.dst, a.v6)?;
        Ok((lab, dst))
    })()
    .map_err(|e: Error| with_namespace_hint(e, &[&a.src, &a.dst]))?;
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
    let json = a.json;
    // The header comes before the first reply, once the ping is under way
    // (a refused request prints nothing).
    let header = std::sync::Once::new();
    let print_header = || header.call_once(|| println!("{}", icmp::format_header(dst, &opts)));
    let mut events = Vec::new();
    let out = lab.ping_explained(&a.src, &dst.to_string(), &opts, &mut |e| {
        if json {
            events.push(e.clone());
        } else {
            print_header();
            println!("{}", icmp::format_event(dst, e));
        }
    })?;
    if json {
        print_json(
            &serde_json::json!({ "src": a.src, "dst": a.dst, "address": dst, "size": opts.size, "dont_fragment": opts.dont_fragment, "events": events, "report": out.report, "why_not": out.why_not }),
        );
    } else {
        print_header();
        if let Some(e) = &out.send_error {
            println!("ping: connect: {e}");
        }
        if let Some(r) = &out.report {
            println!("{}", icmp::format_report(dst, r));
        }
        if let Some(w) = &out.why_not {
            println!("why not: {w}");
        }
    }
    Ok(if out.ok() { 0 } else { 1 })
}
