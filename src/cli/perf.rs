use super::{LabSel, print_json};
use nslab::error::{Error, Result};
use nslab::probe::perf::{self, PerfOptions};
use std::time::Duration;

/// Measure throughput from one node to another, like iperf3.
///
/// A receiver runs in DST's namespace and sender(s) in SRC's, over real sockets,
/// for --time seconds. TCP reports goodput (bytes the receiver read, per second),
/// per stream and in sum, every second and at the end. UDP sends datagrams paced
/// at --rate (default 1mbit, as iperf3) and reports loss and jitter (RFC 3550).
/// Nothing to install: no iperf3 needed in the lab.
///
/// SRC is a node, `host` or `internet`. DST is a node (its first IPv4 address, or
/// IPv6 when it has none), NODE:IF, `host`, `internet`, a bridge, or an address of
/// one of them. Rates are in tc's units: bit, kbit, mbit, gbit (`mbps` is refused:
/// tc reads it as megabytes per second). Exit 0 when the test ran, 1 when it
/// could not (no connection), 2 for bad arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nslab perf black white
  nslab perf black white -t 3 -P 4
  nslab perf black white --udp --rate 5mbit
  nslab perf black white --json | jq .bits_per_second")]
pub struct Args {
    /// Where the data comes from: a node, `host` or `internet`.
    pub src: String,
    /// Where it goes: a node, NODE:IF, `host`, `internet`, a bridge, or an address.
    pub dst: String,
    /// Send UDP datagrams at --rate and report loss and jitter.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// UDP: the rate to send at (default 1mbit). TCP: a cap per stream.
    #[arg(short = 'b', long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Seconds to send for.
    #[arg(
        short = 't',
        long = "time",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub seconds: f64,
    /// Parallel TCP streams.
    #[arg(
        short = 'P',
        long = "parallel",
        value_name = "STREAMS",
        default_value_t = 1
    )]
    pub streams: u32,
    /// The receiver's port (0: any free port).
    #[arg(short = 'p', long, default_value_t = perf::DEFAULT_PORT)]
    pub port: u16,
    /// Print the result (with every interval) as JSON.
    #[arg(long)]
    pub json: bool,
    /// The topology file the lab came from (or use --lab).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub sel: LabSel,
}

/// The options, or the bad argument named.
fn options(a: &Args) -> Result<PerfOptions> {
    let rate = a
        .rate
        .as_deref()
        .map(perf::parse_rate)
        .transpose()
        .map_err(|e| Error::Usage(format!("--rate: {e}")))?;
    if !a.seconds.is_finite() || !(0.1..=86400.0).contains(&a.seconds) {
        return Err(Error::Usage(format!(
            "--time {} is out of range: give from 0.1 to 86400 seconds",
            a.seconds
        )));
    }
    let o = PerfOptions {
        udp: a.udp,
        rate,
        duration: Duration::from_secs_f64(a.seconds),
        streams: a.streams,
        port: a.port,
        ..Default::default()
    };
    match o.problem() {
        Some(p) => Err(Error::Usage(p)),
        None => Ok(o),
    }
}

pub fn run(a: Args) -> Result<i32> {
    let o = options(&a)?;
    let lab = a.sel.open(a.file.as_deref())?;
    let (address, receiver) = lab.perf_address(&a.src, &a.dst)?;
    if !a.json {
        println!(
            "Connecting to host {}, port {} (from {} to {})",
            address,
            if o.port == 0 {
                "any".to_string()
            } else {
                o.port.to_string()
            },
            a.src,
            receiver
        );
        println!("{}", perf::format_columns(o.udp));
    }
    let json = a.json;
    let mut print = |iv: &perf::Interval| {
        if !json {
            for l in perf::format_interval(iv) {
                println!("{l}");
            }
        }
    };
    let r = lab.perf_with(&a.src, &a.dst, &o, &mut print)?;
    if json {
        let mut v = serde_json::to_value(&r).unwrap_or_default();
        v["src"] = a.src.clone().into();
        v["dst"] = a.dst.clone().into();
        print_json(&v);
    } else {
        for l in perf::format_summary(&r) {
            println!("{l}");
        }
    }
    Ok(0)
}
