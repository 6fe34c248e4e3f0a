use super::{LabSel, print_json};
use nslab::Shape;
use nslab::error::{Error, Result};
use nslab::units;
use std::time::Duration;

/// Slow down, delay or drop what leaves one end of a cable (egress only).
///
/// Impair the egress of ENDPOINT: one end of a cable (`NODE:IF`, `host:IF`,
/// `internet:IF`) or a bridge port (`BRIDGE:PORT`). Only what leaves that
/// interface is affected; the other direction is not. Units as in tc: rates in
/// `bit`, `kbit`, `mbit`, `gbit` (`mbps` and the like are refused: tc reads them
/// as bytes per second); times in `s`, `ms`, `us`; loss as a percentage.
///
/// Each call replaces the endpoint's shaping; `--clear` removes it. The shaping
/// is recorded in the lab's record: `status` shows it, `up` keeps it, `down`
/// removes it. A rate is a tbf root qdisc; delay and jitter need the kernel's
/// netem (sch_netem), and are refused (exit 2, nothing changed) where it is
/// missing; loss is netem's where the kernel has it, otherwise a random-drop
/// rule in an nftables table of the lab in that namespace.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nslab shape red:veth-red --rate 10mbit
  nslab shape red:veth-red --loss 20%
  nslab shape bri0:bbrveth --rate 50mbit --limit 100
  nslab shape red:veth-red --clear")]
pub struct Args {
    /// The end of a cable whose egress is shaped: NODE:IF or BRIDGE:PORT.
    pub endpoint: String,
    /// Rate limit, e.g. 10mbit, 800kbit, 1gbit.
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Added delay, e.g. 20ms (needs the kernel's netem).
    #[arg(long, value_name = "TIME")]
    pub delay: Option<String>,
    /// Random variation of the delay, e.g. 2ms (needs --delay and netem).
    #[arg(long, value_name = "TIME")]
    pub jitter: Option<String>,
    /// Share of packets dropped at random, e.g. 1% or 0.5%.
    #[arg(long, value_name = "P%")]
    pub loss: Option<String>,
    /// Queue length in packets (with --rate or --delay).
    #[arg(long, value_name = "PACKETS")]
    pub limit: Option<String>,
    /// Remove the endpoint's shaping.
    #[arg(long, conflicts_with_all = ["rate", "delay", "jitter", "loss", "limit"])]
    pub clear: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
    /// The topology file the lab came from (or use --lab).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub sel: LabSel,
}

/// The flags as the library's typed [`Shape`] (tc's units parsed here).
fn shape_of(a: &Args) -> std::result::Result<Shape, String> {
    let time = |what: &str, v: &Option<String>| {
        v.as_deref()
            .map(|d| units::parse_time(what, d).map(Duration::from_micros))
            .transpose()
    };
    Ok(Shape {
        rate: a.rate.as_deref().map(units::parse_rate).transpose()?,
        delay: time("delay", &a.delay)?,
        jitter: time("jitter", &a.jitter)?,
        loss: a
            .loss
            .as_deref()
            .map(|l| units::parse_loss(l).map(|h| f64::from(h) / 100.0))
            .transpose()?,
        limit: a.limit.as_deref().map(units::parse_limit).transpose()?,
    })
}

pub fn run(a: Args) -> Result<i32> {
    let lab = a.sel.open(a.file.as_deref())?;
    let r = if a.clear {
        lab.clear_shape(&a.endpoint)?
    } else {
        let s = shape_of(&a).map_err(|e| Error::Usage(format!("shape {}: {e}", a.endpoint)))?;
        lab.shape(&a.endpoint, &s)?
    };
    if a.json {
        print_json(&r);
    } else {
        match &r.shaping {
            Some(v) if v.source == "file" => println!(
                "{}: {} ({}; the file's link map)",
                r.endpoint,
                v.text(),
                v.mechanism
            ),
            Some(v) => println!("{}: {} ({})", r.endpoint, v.text(), v.mechanism),
            None => println!("{}: not shaped", r.endpoint),
        }
        for c in &r.commands {
            println!("  # {c}");
        }
    }
    Ok(0)
}
