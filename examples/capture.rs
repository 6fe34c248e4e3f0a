//! Capture on an interface while pinging, print the packets, and keep a pcap.
//!
//! Run as root: `cargo run --example capture`. The lab is sandboxed (prefix
//! `exb-`) and taken down at the end.

use nslab::{CaptureOptions, Lab, Options, Topology};

fn main() -> nslab::Result<()> {
    let topo = Topology::builder("cap")
        .node("a", |n| n.interface("eth0", &["10.81.0.1/24"]))
        .node("b", |n| n.interface("eth0", &["10.81.0.2/24"]))
        .link("a:eth0", "b:eth0")
        .build();
    let opts = Options {
        prefix: "exb-".into(),
        sandbox: true,
        state_dir: std::env::var_os("NSLAB_STATE_DIR").map(Into::into),
        ..Options::default()
    };
    let lab = Lab::up(&topo, &opts)?;

    let pcap = std::env::temp_dir().join(format!("nslab-example-{}.pcap", std::process::id()));
    let cap = lab.capture(
        &["b:eth0"],
        &CaptureOptions {
            pcap: Some(pcap.clone()),
            ..CaptureOptions::default()
        },
    )?;
    let report = lab.ping_with(
        "a",
        "b",
        &nslab::PingOptions {
            count: 2,
            interval: std::time::Duration::from_millis(200),
            ..Default::default()
        },
    )?;
    println!("ping: {}/{} replies", report.received, report.transmitted);
    let packets = cap.stop()?;
    for p in &packets {
        println!("{} {:?} {}", p.label, p.direction, p.text);
    }
    let echo = packets
        .iter()
        .filter(|p| p.text.contains("ICMP echo"))
        .count();
    println!(
        "{} packets ({echo} ICMP echo), written to {} ({} bytes)",
        packets.len(),
        pcap.display(),
        std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0)
    );
    let _ = std::fs::remove_file(&pcap);
    assert!(echo >= 4, "expected 2 requests and 2 replies");
    lab.down()?;
    Ok(())
}
