use super::LabSel;
use nslab::capture::decode::Filter;
use nslab::capture::engine;
use nslab::error::{Error, Result};
use std::io::Write;
use std::time::Duration;

/// Watch packets cross the lab (a built-in `tcpdump -i IF`).
///
/// Watch packets cross the lab, like `tcpdump -i bbrveth` in the tutorial, with no
/// tcpdump or libpcap: one line per packet with the time, where it was seen
/// (several interfaces at once, merged by time), its direction and a decode of
/// Ethernet, ARP, IPv4/IPv6, ICMP/ICMPv6, TCP and UDP.
///
/// TARGET is an endpoint (NODE:IF, host:IF, internet:IF, BRIDGE:PORT), a bridge
/// (all its ports), a node (all its interfaces) or `all`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nslab capture host:bbrveth              # the tutorial's tcpdump -i bbrveth
  nslab capture green all -c 20           # follow a packet hop by hop
  nslab capture bri0 -w ports.pcapng --proto icmp")]
pub struct Args {
    /// What to watch: NODE:IF, host:IF, internet:IF, BRIDGE:PORT, a bridge (all
    /// its ports), a node (all its interfaces) or `all`; several at once.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Write packets to FILE: `.pcapng` gives pcapng, `.pcap` pcap (one interface
    /// only); any other name pcap for one interface, pcapng for several.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<std::path::PathBuf>,
    /// Stop after N packets.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after SECONDS.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Only this protocol: arp, icmp, icmp6, tcp, udp, ip, ip6.
    #[arg(long, value_name = "PROTO")]
    pub proto: Option<String>,
    /// Only packets from or to this address.
    #[arg(long, value_name = "ADDR")]
    pub host: Option<String>,
    /// Only packets from or to this TCP/UDP port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Do not print packets (with -w).
    #[arg(short, long)]
    pub quiet: bool,
    /// One JSON object per packet (JSON lines), then the statistics.
    #[arg(long)]
    pub json: bool,
    /// The topology file the lab came from (or use --lab).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub sel: LabSel,
}

pub fn run(a: Args) -> Result<i32> {
    // Checked before the lab is looked at, with the CLI's words.
    let filter = Filter::new(a.proto.as_deref(), a.host.as_deref(), a.port.as_deref())
        .map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(d) = a.duration
        && !(d > 0.0 && d.is_finite())
    {
        return Err(Error::Usage(
            "--duration must be a positive number of seconds".into(),
        ));
    }
    let lab = a.sel.open(a.file.as_deref())?;
    let opts = nslab::CaptureOptions {
        count: a.count,
        duration: a.duration.map(Duration::from_secs_f64),
        proto: a.proto.clone(),
        host: filter.host,
        port: filter.port,
        pcap: a.write.clone(),
    };
    let targets: Vec<&str> = a.targets.iter().map(String::as_str).collect();
    // Nothing printed: the file alone, without decoding (much cheaper).
    let mut cap = if a.quiet && !a.json && a.write.is_some() {
        lab.capture_to_file(&targets, &opts)?
    } else {
        lab.capture(&targets, &opts)?
    };
    let stop = super::signals::stop_flag();
    eprintln!(
        "nslab: listening on {} (Ctrl-C to stop)",
        cap.labels().join(", ")
    );
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut print = |s: &nslab::Packet| {
        if a.json {
            let _ = writeln!(out, "{}", serde_json::to_string(s).unwrap_or_default());
        } else if !a.quiet {
            let _ = writeln!(out, "{}", engine::line(s));
        }
        let _ = out.flush();
    };
    while let Some(p) = cap.next_until(stop) {
        print(&p);
    }
    let (rest, stats) = cap.stop_with_stats()?;
    rest.iter().for_each(&mut print);
    drop(out);
    report(&a, &stats);
    Ok(0)
}

/// The statistics: the last JSON line, or lines on stderr.
fn report(a: &Args, stats: &[nslab::CaptureStats]) {
    if a.json {
        // JSON lines: the statistics are the last line.
        println!("{}", serde_json::json!({ "stats": stats }));
        return;
    }
    let total: u64 = stats.iter().map(|s| s.captured).sum();
    eprintln!(
        "{total} packet{} captured",
        if total == 1 { "" } else { "s" }
    );
    for s in stats {
        eprintln!(
            "  {}: {} captured, {} received by the kernel, {} dropped by the kernel",
            s.label, s.captured, s.received_by_kernel, s.dropped_by_kernel
        );
    }
    if let Some(p) = &a.write {
        eprintln!("written to {}", p.display());
    }
}
