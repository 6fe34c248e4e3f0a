//! `nslab perf` (throughput probe) and the `throughput`/`loss` expectations of
//! `check`, on sandboxed two-node labs; cross-checked with `tc`, `nft` and
//! `iperf3` run by the test itself (independent tools).

mod common;
use common::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Two nodes on one veth cable, and optional expectations.
fn lab_file(dir: &tempfile::TempDir, expect: &str) -> std::path::PathBuf {
    let text = format!(
        "name: perf\nnodes:\n  a: {{ interfaces: {{ ea: {{ address: 10.20.0.1/24 }} }} }}\n  b: {{ interfaces: {{ eb: {{ address: 10.20.0.2/24 }} }} }}\nlinks: [[a:ea, b:eb]]\n{expect}"
    );
    write_file(dir, "perf.yaml", &text)
}

/// A sandboxed lab `t20p-TAG-perf` (namespaces `t20p-TAG-a`, `t20p-TAG-b`).
struct Lab {
    p: String,
    name: String,
    _g: LabGuard,
    dir: tempfile::TempDir,
}

fn up(tag: &str, expect: &str) -> Lab {
    let p = format!("t20p-{tag}-");
    let name = format!("{p}perf");
    let g = LabGuard::new(&name, None);
    let dir = tempfile::tempdir().unwrap();
    let f = lab_file(&dir, expect);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
    Lab {
        p,
        name,
        _g: g,
        dir,
    }
}

impl Lab {
    fn perf(&self, args: &[&str]) -> std::process::Output {
        let mut a = vec!["perf", "--lab", &self.name];
        a.extend_from_slice(args);
        nslab(&a)
    }
    fn perf_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let o = ok(self.perf(&a));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
    }
    fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.p)
    }
    /// Egress of a:ea limited to 10 Mbit/s by `tc` (not by nslab).
    fn shape_10mbit(&self) {
        sh(&format!(
            "ip netns exec {} tc qdisc add dev ea root tbf rate 10mbit burst 32k latency 100ms",
            self.ns("a")
        ));
    }
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("no number {k} in {v:#}"))
}

#[test]
fn tcp_on_an_unshaped_veth_is_fast_and_reported_per_stream() {
    let lab = up("tcp", "");
    let j = lab.perf_json(&["a", "b", "-t", "2", "-P", "2"]);
    let bps = num(&j, "bits_per_second");
    assert!(bps > 100e6, "implausibly slow for a veth: {j:#}");
    let secs = num(&j, "seconds");
    assert!((1.9..=2.1).contains(&secs), "{j:#}");
    let bytes = j["bytes"].as_u64().unwrap();
    assert!((bytes as f64 * 8.0 / secs - bps).abs() < 1.0, "{j:#}");
    let streams = j["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{j:#}");
    let sum: u64 = streams.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
    assert_eq!(sum, bytes);
    assert!(streams.iter().all(|s| s["bytes"].as_u64().unwrap() > 0));
    assert_eq!(j["protocol"], "tcp");
    assert_eq!(j["address"], "10.20.0.2");
    assert!(j.get("lost_packets").is_none(), "TCP has no datagrams");
    // Per-second intervals that add up to the total.
    let iv = j["intervals"].as_array().unwrap();
    assert_eq!(iv.len(), 2, "{j:#}");
    let isum: u64 = iv.iter().map(|i| i["bytes"].as_u64().unwrap()).sum();
    assert_eq!(isum, bytes);
    assert!(j["sent_bytes"].as_u64().unwrap() >= bytes);

    // The text looks like iperf3's.
    let o = ok(lab.perf(&["a", "10.20.0.2", "-t", "1"]));
    let t = stdout(&o);
    assert!(t.contains("Connecting to host 10.20.0.2, port 5201"), "{t}");
    assert!(
        t.contains("[ ID] Interval           Transfer     Bitrate"),
        "{t}"
    );
    assert!(t.contains("[  1]   0.00-1.00   sec"), "{t}");
    assert!(t.lines().last().unwrap().ends_with("receiver"), "{t}");
    assert!(t.contains("bits/sec"), "{t}");
}

#[test]
fn bad_arguments_exit_2_naming_them() {
    let lab = up("arg", "");
    for (args, words) in [
        (vec!["a", "b", "--udp", "--rate", "5mbps"], "--rate"),
        (vec!["a", "b", "--rate", "fast"], "--rate"),
        (vec!["a", "b", "--udp", "-P", "2"], "--parallel"),
        (vec!["a", "b", "-P", "0"], "--parallel 0"),
        (vec!["a", "b", "-t", "0"], "--time"),
        (vec!["a", "c"], "a, b, host, internet"),
        (vec!["c", "b"], "a, b, host, internet"),
        (vec!["a", "10.99.0.1"], "no place of lab"),
    ] {
        let o = lab.perf(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(words), "{args:?}: {}", text(&o));
    }
    // Nothing to connect to: exit 1, saying why.
    sh(&format!("ip -n {} link set eb down", lab.ns("b")));
    let o = lab.perf(&["a", "b", "-t", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("perf a -> b"), "{}", text(&o));
}

/// `iperf3 -s -1` in a namespace; killed (by its pid) if still there at the end.
struct Iperf(Child);
impl Drop for Iperf {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// iperf3's receiver-side goodput from `src_ns` to `addr` (server in `dst_ns`).
fn iperf3(src_ns: &str, dst_ns: &str, addr: &str, secs: u32) -> f64 {
    let _server = Iperf(
        Command::new("ip")
            .args(["netns", "exec", dst_ns, "iperf3", "-s", "-1", "-p", "5301"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 -s"),
    );
    let t0 = Instant::now();
    loop {
        let o = Command::new("ip")
            .args([
                "netns", "exec", src_ns, "iperf3", "-c", addr, "-p", "5301", "-J",
            ])
            .args(["-t", &secs.to_string()])
            .output()
            .unwrap();
        let j: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        if let Some(b) = j["end"]["sum_received"]["bits_per_second"].as_f64() {
            return b;
        }
        // The server may not listen yet.
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "iperf3: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_10mbit_link_reads_10mbit_and_iperf3_agrees() {
    let lab = up("tbf", "");
    lab.shape_10mbit();
    let j = lab.perf_json(&["a", "b", "-t", "4"]);
    let ours = num(&j, "bits_per_second");
    assert!((8.5e6..=10.5e6).contains(&ours), "nslab perf: {j:#}");
    let theirs = iperf3(&lab.ns("a"), &lab.ns("b"), "10.20.0.2", 4);
    assert!((8.5e6..=10.5e6).contains(&theirs), "iperf3: {theirs}");
    let diff = (ours - theirs).abs() / theirs;
    assert!(diff <= 0.15, "nslab {ours} vs iperf3 {theirs}");
    // The other direction is not shaped.
    let back = num(&lab.perf_json(&["b", "a", "-t", "1"]), "bits_per_second");
    assert!(back > 100e6, "{back}");
}

/// The packets of the first `counter` in `nft -j` output.
fn counter_packets(v: &Value) -> Option<u64> {
    match v {
        Value::Object(m) => m
            .get("counter")
            .and_then(|c| c["packets"].as_u64())
            .or_else(|| m.values().find_map(counter_packets)),
        Value::Array(a) => a.iter().find_map(counter_packets),
        _ => None,
    }
}

#[test]
fn udp_reports_the_loss_of_a_20_percent_random_drop() {
    let lab = up("udp", "");
    let b = lab.ns("b");
    sh(&format!(
        "ip netns exec {b} nft add table ip t20p && ip netns exec {b} nft add chain ip t20p in '{{ type filter hook input priority 0; }}' && ip netns exec {b} nft add rule ip t20p in udp dport 5201 numgen random mod 100 '<' 20 counter drop"
    ));
    let j = lab.perf_json(&["a", "b", "--udp", "--rate", "5mbit", "-t", "3"]);
    let lost = num(&j, "lost_percent");
    assert!((14.0..=26.0).contains(&lost), "loss {lost}: {j:#}");
    let (l, n) = (
        j["lost_packets"].as_u64().unwrap(),
        j["packets"].as_u64().unwrap(),
    );
    // 5 Mbit/s of 1460-byte datagrams for 3 s: ~1284.
    assert!((1150..=1400).contains(&n), "{j:#}");
    assert!((lost - l as f64 * 100.0 / n as f64).abs() < 1e-9);
    // What arrived is 80% of the rate sent.
    let bps = num(&j, "bits_per_second");
    assert!((3.4e6..=4.6e6).contains(&bps), "{j:#}");
    assert!(num(&j, "jitter_ms") >= 0.0);
    assert_eq!(j["protocol"], "udp");
    // nft counted exactly the datagrams nslab found lost (a veth loses nothing else).
    let listing: Value =
        serde_json::from_str(&sh(&format!("ip netns exec {b} nft -j list table ip t20p"))).unwrap();
    assert_eq!(counter_packets(&listing), Some(l), "{listing:#}");
    let iv = j["intervals"].as_array().unwrap();
    let ilost: u64 = iv.iter().map(|i| i["lost_packets"].as_u64().unwrap()).sum();
    assert_eq!(ilost, l, "the intervals' losses add up: {j:#}");

    // Without the drop: no loss at all.
    sh(&format!("ip netns exec {b} nft delete table ip t20p"));
    let j = lab.perf_json(&["a", "b", "--udp", "--rate", "5mbit", "-t", "1"]);
    assert_eq!(j["lost_packets"], 0, "{j:#}");
}

#[test]
fn throughput_and_loss_expectations_pass_and_fail_in_check() {
    let holds = "expect:\n  - throughput: a -> b\n    at_most: 12mbit\n    at_least: 5mbit\n  - loss: a -> b\n    at_most: 5%\n    rate: 2mbit\n    seconds: 1\n";
    let lab = up("exp", holds);
    lab.shape_10mbit();
    let o = nslab(&["check", "--lab", &lab.name, "--no-matrix", "--json"]);
    let j: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(o.status.code(), Some(0), "{j:#}");
    let ex = j["expectations"].as_array().unwrap();
    assert_eq!(ex.len(), 2, "{j:#}");
    let b = num(&ex[0], "bits_per_second");
    assert!((8.5e6..=10.5e6).contains(&b), "{j:#}");
    assert_eq!(ex[1]["lost_percent"], 0.0, "{j:#}");

    // Wanting 50 Mbit/s of a 10 Mbit/s link fails: exit 1, in text and JUnit.
    let fails = "expect:\n  - throughput: a -> b\n    at_least: 50mbit\n";
    let f = lab_file(&lab.dir, fails);
    ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &lab.p]));
    let o = nslab(&["check", "--lab", &lab.name, "--no-matrix"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = stdout(&o);
    assert!(
        t.contains("FAIL throughput: a -> b (at least 50mbit) (line 7)"),
        "{t}"
    );
    assert!(t.contains("wanted at least 50.0 Mbits/sec"), "{t}");
    let junit = lab.dir.path().join("junit.xml");
    let o = nslab(&[
        "check",
        "--lab",
        &lab.name,
        "--no-matrix",
        "--junit",
        s(&junit),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.contains("failures=\"1\"") && x.contains("wanted at least 50.0 Mbits/sec"),
        "{x}"
    );
}
