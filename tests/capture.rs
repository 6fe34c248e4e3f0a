//! `nslab capture`: the tutorial's `tcpdump -i bbrveth`, built in. Cross-checked
//! with tcpdump and the pcap-file crate.

mod common;
use common::*;

#[test]
fn a_ping_across_the_bridge_seen_on_bbrveth() {
    let (p, lab, _g) = up_example("cap", "objective2-bridge.yaml");
    let green = format!("{p}green");
    sh(&format!("ip -n {green} neigh flush all"));
    // ARP request and reply + 3 echo requests and replies = 8 packets.
    let cap = CaptureRun::start(&[
        "--lab",
        &lab,
        "host:bbrveth",
        "--proto",
        "arp",
        "--duration",
        "3",
        "--json",
    ]);
    let cap2 = CaptureRun::start(&["--lab", &lab, "host:bbrveth", "--proto", "icmp", "-c", "6"]);
    sh(&format!(
        "ip netns exec {green} ping -c 3 -i 0.2 192.168.1.1"
    ));
    let (icmp, _) = cap2.finish();
    let lines: Vec<&str> = icmp.lines().collect();
    assert_eq!(lines.len(), 6, "{icmp}");
    let req = lines
        .iter()
        .filter(|l| l.contains("host:bbrveth Out IP 192.168.3.1 > 192.168.1.1: ICMP echo request"))
        .count();
    let rep = lines
        .iter()
        .filter(|l| l.contains("host:bbrveth In  IP 192.168.1.1 > 192.168.3.1: ICMP echo reply"))
        .count();
    assert_eq!((req, rep), (3, 3), "{icmp}");
    // The neighbour cache was cold: green asked who has 192.168.1.1 (JSON lines).
    let (arp, _) = cap.finish();
    let all: Vec<serde_json::Value> = arp
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        all.last().unwrap()["stats"].is_array(),
        "statistics come last"
    );
    let pkts: Vec<&serde_json::Value> = all.iter().filter(|v| v.get("where").is_some()).collect();
    assert!(
        pkts.iter().any(|v| v["text"]
            .as_str()
            .unwrap()
            .contains("Request who-has 192.168.1.1 tell 192.168.3.1")),
        "{arp}"
    );
    assert!(
        pkts.iter().any(|v| v["text"]
            .as_str()
            .unwrap()
            .contains("Reply 192.168.1.1 is-at")),
        "{arp}"
    );
}

#[test]
fn pcap_files_read_back_with_tcpdump_and_pcap_file() {
    let (p, lab, _g) = up_example("pcap", "objective2-bridge.yaml");
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.pcap");
    let many = dir.path().join("many.pcapng");
    let c1 = CaptureRun::start(&[
        "--lab",
        &lab,
        "host:bbrveth",
        "--proto",
        "icmp",
        "-c",
        "4",
        "-w",
        s(&one),
        "-q",
    ]);
    let c2 = CaptureRun::start(&[
        "--lab",
        &lab,
        "green:gveth",
        "black",
        "--proto",
        "icmp",
        "-c",
        "8",
        "-w",
        s(&many),
        "-q",
    ]);
    sh(&format!(
        "ip netns exec {p}green ping -c 2 -i 0.2 192.168.1.1"
    ));
    c1.finish();
    c2.finish();

    // Classic pcap: tcpdump and pcap-file agree on count and addresses.
    let td = sh(&format!("tcpdump -nn -r {} 2>/dev/null", one.display()));
    assert_eq!(td.lines().count(), 4, "{td}");
    assert_eq!(
        td.matches("192.168.3.1 > 192.168.1.1: ICMP echo request")
            .count(),
        2,
        "{td}"
    );
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(&one).unwrap()).unwrap();
    let mut n = 0;
    while let Some(pkt) = r.next_packet() {
        let pkt = pkt.unwrap();
        let sm = nslab::capture::decode::summarize(&pkt.data);
        assert!(sm.to_string().contains("192.168."), "{sm}");
        n += 1;
    }
    assert_eq!(n, 4);

    // pcapng with one interface block per interface, each packet tagged.
    let td = sh(&format!("tcpdump -nn -r {} 2>/dev/null", many.display()));
    assert_eq!(td.lines().count(), 8, "{td}");
    let (names, pkts) = read_pcapng(&many);
    let mut per_if = std::collections::BTreeMap::<String, usize>::new();
    for (name, ..) in pkts {
        *per_if.entry(name).or_default() += 1;
    }
    assert_eq!(names, ["green:gveth", "black:bveth"]);
    assert_eq!(per_if.get("green:gveth"), Some(&4), "{per_if:?}");
    assert_eq!(per_if.get("black:bveth"), Some(&4), "{per_if:?}");
}

#[test]
fn follow_one_ping_through_nat_hop_by_hop() {
    let (p, lab, _g) = up_example("hop", "objective3-nat.yaml");
    // One echo request: seen leaving green, on the bridge, on the uplink and in the internet.
    let cap = CaptureRun::start(&["--lab", &lab, "all", "--proto", "icmp", "--duration", "2"]);
    sh(&format!("ip netns exec {p}green ping -c 1 198.51.100.8"));
    let (out, _) = cap.finish();
    let req: Vec<&str> = out.lines().filter(|l| l.contains("echo request")).collect();
    let at = |w: &str| {
        req.iter()
            .find(|l| l.contains(w))
            .unwrap_or_else(|| panic!("not seen at {w}:\n{out}"))
            .to_string()
    };
    assert!(at("green:gveth Out").contains("192.168.3.1 > 198.51.100.8"));
    assert!(at("host:gbrveth In").contains("192.168.3.1 > 198.51.100.8"));
    assert!(
        at("host:uplink Out").contains("203.0.113.2 > 198.51.100.8"),
        "masqueraded on the way out"
    );
    assert!(at("internet:isp In").contains("203.0.113.2 > 198.51.100.8"));
    // Merged by time: the hops come in order.
    let pos = |w: &str| out.find(w).unwrap();
    assert!(pos("green:gveth Out IP 192.168.3.1") < pos("host:uplink Out IP 203.0.113.2"));
    assert!(pos("host:uplink Out IP 203.0.113.2") < pos("internet:isp In  IP 203.0.113.2"));
}

#[test]
fn bad_targets_are_refused() {
    let (_p, lab, _g) = up_example("capx", "objective1-veth.yaml");
    let o = nslab(&["capture", "--lab", &lab, "pink:eth0", "-c", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("pink"));
    let o = nslab(&["capture", "--lab", &lab, "red:nope", "-c", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("red:nope"), "{}", text(&o));
    let o = nslab(&["capture", "--lab", &lab, "red", "--proto", "smtp"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn the_file_extension_decides_pcap_or_pcapng() {
    let (p, lab, _g) = up_example("pext", "objective1-veth.yaml");
    let dir = tempfile::tempdir().unwrap();
    // One interface into a .pcapng: pcapng (its Section Header Block magic).
    let ng = dir.path().join("one.pcapng");
    let c = CaptureRun::start(&[
        "--lab",
        &lab,
        "red:veth-red",
        "--proto",
        "icmp",
        "-c",
        "2",
        "-w",
        s(&ng),
        "-q",
    ]);
    sh(&format!("ip netns exec {p}green ping -c 1 192.168.1.1"));
    c.finish();
    let b = std::fs::read(&ng).unwrap();
    assert_eq!(&b[..4], &[0x0a, 0x0d, 0x0d, 0x0a], "not pcapng");
    let td = sh(&format!("tcpdump -nn -r {} 2>/dev/null", ng.display()));
    assert_eq!(td.lines().count(), 2, "{td}");
    // Two interfaces into a .pcap: refused before anything is written.
    let bad = dir.path().join("two.pcap");
    let o = nslab(&[
        "capture",
        "--lab",
        &lab,
        "red:veth-red",
        "green:veth-green",
        "-w",
        s(&bad),
        "-c",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains(".pcapng"), "{}", text(&o));
    assert!(!bad.exists());
}

#[test]
fn fast_pings_written_from_the_ring_count_what_tcpdump_counts() {
    let (p, lab, _g) = up_example("capfl", "objective1-veth.yaml");
    let red = format!("{p}red");
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.pcap");
    let both = dir.path().join("both.pcapng");
    let td = Tcpdump::start(&red, "veth-red", "icmp");
    // -w -q: straight from the ring; one interface, and two merged by time.
    let c1 = CaptureRun::start(&[
        "--lab",
        &lab,
        "red:veth-red",
        "--proto",
        "icmp",
        "-c",
        "600",
        "--duration",
        "30",
        "-w",
        s(&one),
        "-q",
    ]);
    let c2 = CaptureRun::start(&[
        "--lab",
        &lab,
        "red:veth-red",
        "green:veth-green",
        "--proto",
        "icmp",
        "-c",
        "1200",
        "--duration",
        "30",
        "-w",
        s(&both),
        "-q",
    ]);
    sh(&format!(
        "ip netns exec {p}green ping -q -i 0.002 -c 300 192.168.1.1"
    ));
    let (_, err1) = c1.finish();
    c2.finish();
    let seen_by_tcpdump = td
        .stop()
        .lines()
        .filter(|l| l.contains("ICMP echo"))
        .count();
    assert_eq!(seen_by_tcpdump, 600, "300 requests and 300 replies");
    let count = |f: &std::path::Path| {
        sh(&format!("tcpdump -nn -r {} 2>/dev/null", f.display()))
            .lines()
            .filter(|l| l.contains("ICMP echo"))
            .count()
    };
    assert_eq!(count(&one), seen_by_tcpdump, "{err1}");
    assert!(err1.contains("600 captured"), "{err1}");
    // Both ends of the cable: every packet twice, in time order.
    assert_eq!(count(&both), 2 * seen_by_tcpdump);
    let times = sh(&format!(
        "tcpdump -tt -nn -r {} 2>/dev/null",
        both.display()
    ));
    let t: Vec<f64> = times
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "not merged by time");
}

/// Four cables between red and green, each pinged at its own pace at once.
const FOUR: &str = "name: four
nodes:
  red:
    interfaces:
      cr1: { address: 10.72.1.1/24 }
      cr2: { address: 10.72.2.1/24 }
      cr3: { address: 10.72.3.1/24 }
      cr4: { address: 10.72.4.1/24 }
  green:
    interfaces:
      cg1: { address: 10.72.1.2/24 }
      cg2: { address: 10.72.2.2/24 }
      cg3: { address: 10.72.3.2/24 }
      cg4: { address: 10.72.4.2/24 }
links:
  - [ red:cr1, green:cg1 ]
  - [ red:cr2, green:cg2 ]
  - [ red:cr3, green:cg3 ]
  - [ red:cr4, green:cg4 ]
";

#[test]
fn four_interfaces_in_one_file_hold_what_four_tcpdumps_saw_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let topo = write_file(&dir, "four.yaml", FOUR);
    let p = prefix("cp2");
    let lab = format!("{p}four");
    let _g = LabGuard::new(&lab, None);
    ok(nslab(&["up", s(&topo), "--sandbox", "--prefix", &p]));
    let (red, green) = (format!("{p}red"), format!("{p}green"));
    // Different counts per cable: frames put on the wrong interface show.
    let pings = [(1, 40), (2, 80), (3, 120), (4, 160)];
    let total: usize = pings.iter().map(|&(_, n)| 2 * n).sum();
    let tcpdumps: Vec<Tcpdump> = pings
        .iter()
        .map(|&(k, _)| Tcpdump::start(&red, &format!("cr{k}"), "icmp"))
        .collect();
    let file = dir.path().join("four.pcapng");
    let targets: Vec<String> = pings.iter().map(|&(k, _)| format!("red:cr{k}")).collect();
    let total_s = total.to_string();
    let mut args = vec!["--lab", &lab];
    args.extend(targets.iter().map(String::as_str));
    args.extend(["--proto", "icmp", "-c", &total_s, "--duration", "30", "-w"]);
    args.extend([s(&file), "-q"]);
    let cap = CaptureRun::start(&args);
    // All four at once, so the file interleaves the interfaces.
    let cmds: Vec<String> = pings
        .iter()
        .map(|&(k, n)| format!("ping -q -i 0.002 -c {n} 10.72.{k}.1"))
        .collect();
    sh(&format!(
        "ip netns exec {green} sh -c '{} & wait'",
        cmds.join(" & ")
    ));
    let (_, err) = cap.finish();
    assert!(err.contains(&format!("{total} packets captured")), "{err}");

    // Per interface: the echo requests and replies in the file, next to tcpdump's.
    let (names, pkts) = read_pcapng(&file);
    let mut per_if = std::collections::BTreeMap::<String, usize>::new();
    let mut times = Vec::new();
    for (name, ts, data) in pkts {
        times.push(ts);
        if nslab::capture::decode::summarize(&data)
            .to_string()
            .contains("ICMP echo")
        {
            *per_if.entry(name).or_default() += 1;
        }
    }
    assert_eq!(names, targets);
    assert_eq!(times.len(), total, "only ICMP, every one");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not merged by time");
    for (td, &(k, n)) in tcpdumps.into_iter().zip(&pings) {
        let theirs = td
            .stop()
            .lines()
            .filter(|l| l.contains("ICMP echo"))
            .count();
        assert_eq!(theirs, 2 * n, "tcpdump on cr{k}");
        assert_eq!(
            per_if.get(&format!("red:cr{k}")),
            Some(&theirs),
            "{per_if:?}"
        );
    }
}

/// A packet of a pcapng file: its interface's name, time and bytes.
type NgPacket = (String, std::time::Duration, Vec<u8>);

/// A pcapng file's interface names, and its packets.
fn read_pcapng(path: &std::path::Path) -> (Vec<String>, Vec<NgPacket>) {
    use pcap_file::pcapng::Block;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    let mut r = pcap_file::pcapng::PcapNgReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let (mut names, mut pkts) = (Vec::new(), Vec::new());
    while let Some(b) = r.next_block() {
        match b.unwrap() {
            Block::InterfaceDescription(idb) => {
                let name = idb.options.iter().find_map(|o| match o {
                    InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                    _ => None,
                });
                names.push(name.expect("if_name"));
            }
            Block::EnhancedPacket(epb) => {
                let name: String = names[epb.interface_id as usize].clone();
                pkts.push((name, epb.timestamp, epb.data.to_vec()));
            }
            _ => {}
        }
    }
    (names, pkts)
}
