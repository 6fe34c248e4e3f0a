//! `nslab capture` of VXLAN made by the kernel: two nodes of a sandboxed lab
//! joined by a veth (the "underlay"), a VXLAN device in each (VNI 4097, port
//! 4789, unicast remote: what a cross-machine cable is), a ping over it. The
//! capture on the underlay shows the VNI and the inner frame; tcpdump reads the
//! same packets from the pcap and says the same. Root.

mod common;
use common::*;

const LAB: &str = "name: vxl
nodes:
  a:
    interfaces: { eth0: { address: 10.72.0.1/24 } }
  b:
    interfaces: { eth0: { address: 10.72.0.2/24 } }
links:
  - [ a:eth0, b:eth0 ]
";

/// A VXLAN device `vx0` in `ns` (the lab's namespace: it goes with it at
/// `down`), to `remote` over eth0, with `addr` on it; no IPv6 link-local
/// address, whose multicast would cross the tunnel too.
fn vxlan(ns: &str, local: &str, remote: &str, addr: &str) {
    sh(&format!(
        "ip -n {ns} link add vx0 type vxlan id 4097 dstport 4789 local {local} remote {remote} dev eth0 \
         && ip -n {ns} link set vx0 addrgenmode none \
         && ip -n {ns} addr add {addr} dev vx0 && ip -n {ns} link set vx0 up"
    ));
}

#[test]
fn vxlan_on_the_underlay_shows_vni_and_inner_frame_as_tcpdump_does() {
    let p = prefix("vx");
    let lab = format!("{p}vxl");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "vxl.yaml", LAB);
    ok(nslab(&["up", s(&file), "--sandbox", "--prefix", &p]));
    let (a, b) = (format!("{p}a"), format!("{p}b"));
    vxlan(&a, "10.72.0.1", "10.72.0.2", "10.73.0.1/24");
    vxlan(&b, "10.72.0.2", "10.72.0.1", "10.73.0.2/24");
    // The kernel's own account of the device: the VNI the capture must show.
    let link = ip_json(Some(&a), "-d link show vx0");
    assert_eq!(link[0]["linkinfo"]["info_data"]["id"], 4097, "{link}");

    let pcap = dir.path().join("vx.pcap");
    // ARP request and reply, echo request and reply: at least 4 packets.
    let json = CaptureRun::start(&[
        "--lab", &lab, "a:eth0", "--port", "4789", "-c", "4", "--json",
    ]);
    let raw = CaptureRun::start(&[
        "--lab",
        &lab,
        "a:eth0",
        "--port",
        "4789",
        "-c",
        "4",
        "-w",
        s(&pcap),
        "-q",
    ]);
    // The device's queue may start up to ~1 s after it is up: -w waits that long.
    let (pinged, out) = sh_status(&format!(
        "ip netns exec {a} ping -c 2 -i 0.3 -w 10 10.73.0.2"
    ));
    assert!(pinged, "no ping over the VXLAN device: {out}");
    let (lines, _) = json.finish();
    raw.finish();

    let pkts: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("where").is_some())
        .collect();
    assert_eq!(pkts.len(), 4, "{lines}");
    for v in &pkts {
        assert_eq!(v["proto"], "udp", "{v}");
        assert_eq!(v["dst_port"], 4789, "{v}");
        assert_eq!(v["vxlan"]["vni"], 4097, "{v}");
        assert_eq!(v["vxlan"]["flags"], 8, "{v}");
    }
    let echo = pkts
        .iter()
        .find(|v| {
            v["vxlan"]["inner"]["proto"] == "icmp" && v["vxlan"]["inner"]["detail"]["type"] == 8
        })
        .unwrap_or_else(|| panic!("no echo request inside VXLAN: {lines}"));
    assert_eq!(echo["src"], "10.72.0.1");
    assert_eq!(echo["vxlan"]["inner"]["src"], "10.73.0.1");
    assert_eq!(echo["vxlan"]["inner"]["dst"], "10.73.0.2");
    let text = echo["text"].as_str().unwrap();
    assert!(
        text.starts_with("IP 10.72.0.1.")
            && text.contains(" > 10.72.0.2.4789: VXLAN, flags [I] (0x08), vni 4097: IP 10.73.0.1 > 10.73.0.2: ICMP echo request"),
        "{text}"
    );

    // tcpdump on the same packets: two lines each (outer + VXLAN, inner), which
    // our one line joins with ": ".
    let td = sh(&format!("tcpdump -nn -t -r {} 2>/dev/null", pcap.display()));
    let td: Vec<&str> = td.lines().collect();
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(&pcap).unwrap()).unwrap();
    let mut ours = Vec::new();
    while let Some(pkt) = r.next_packet() {
        ours.push(nslab::capture::decode::summarize(&pkt.unwrap().data));
    }
    assert_eq!(ours.len(), 4);
    assert_eq!(td.len(), 2 * ours.len(), "tcpdump:\n{}", td.join("\n"));
    for (sm, two) in ours.iter().zip(td.chunks(2)) {
        assert!(two[0].ends_with("vni 4097"), "{}", two[0]);
        assert_eq!(sm.to_string(), format!("{}: {}", two[0], two[1]));
    }
}
