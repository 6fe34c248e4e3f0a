//! Root tests of the AF_PACKET capture socket, in network namespaces this
//! test creates (and removes, even on failure). Traffic stays between them:
//! documentation addresses on veth pairs, nothing routed anywhere else.
//! Needs root, `ip`, `ping` and `tcpdump`; skipped (with a message) when not root.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nslab::capture::decode::{Detail, Protocol, summarize};
use nslab::capture::pcap::{Direction, PcapWriter};
use nslab::capture::socket::{MAX_FRAME_LEN, PacketSocket};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes the namespaces (and so their veths) on drop, even after a panic.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let ns = Namespaces(vec![
            format!("capt-{tag}-a-{pid}"),
            format!("capt-{tag}-b-{pid}"),
        ]);
        for n in &ns.0 {
            run(&["ip", "netns", "add", n]);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Runs `f` on a fresh thread that entered namespace `name`; the thread
/// ends with it, so no other thread ever changes namespace.
fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
    thread::spawn(move || {
        let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: a valid namespace fd; only this short-lived thread moves.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

fn ifindex(name: &str) -> u32 {
    let c = CString::new(name).unwrap();
    // SAFETY: a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(idx, 0, "no interface {name}");
    idx
}

/// A veth from `ia` in `a` to `ib` in `b`, both up, IPv6 off in both
/// namespaces: the link stays silent unless the test sends.
fn quiet_veth(a: &str, b: &str, ia: &str, ib: &str) {
    for n in [a, b] {
        for conf in ["all", "default"] {
            let key = format!("net.ipv6.conf.{conf}.disable_ipv6=1");
            run(&["ip", "netns", "exec", n, "sysctl", "-qw", &key]);
        }
    }
    run(&[
        "ip", "-n", a, "link", "add", ia, "type", "veth", "peer", "name", ib, "netns", b,
    ]);
    run(&["ip", "-n", a, "link", "set", ia, "up"]);
    run(&["ip", "-n", b, "link", "set", ib, "up"]);
}

/// Sends one raw frame out of `sender`'s interface.
fn send_raw(sender: &PacketSocket, frame: &[u8]) {
    // SAFETY: a valid buffer and length; the socket is bound to an interface.
    let sent = unsafe { libc::send(sender.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    assert_eq!(
        sent,
        frame.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

fn mac_of(ns: &str, dev: &str) -> String {
    let out = run(&["ip", "-n", ns, "-br", "link", "show", dev]);
    out.split_whitespace().nth(2).unwrap().to_owned()
}

fn now() -> (i64, u32) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (d.as_secs() as i64, d.subsec_nanos())
}

struct Captured {
    ts: (i64, u32),
    direction: Direction,
    orig_len: u32,
    data: Vec<u8>,
}

/// Reads until the socket stays quiet for `quiet` (or `limit` passes).
fn drain(sock: &mut PacketSocket, quiet: Duration, limit: Duration) -> Vec<Captured> {
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut got = Vec::new();
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match sock.recv(&mut buf, quiet).unwrap() {
            Some(p) => got.push(Captured {
                ts: p.ts,
                direction: p.direction,
                orig_len: p.orig_len,
                data: p.data.to_vec(),
            }),
            None => break,
        }
    }
    got
}

#[test]
fn captures_ping_with_directions_and_stats() {
    if !is_root() {
        eprintln!("skipping captures_ping_with_directions_and_stats: needs root");
        return;
    }
    let ns = Namespaces::new("ping");
    let (a, b) = (ns.0[0].clone(), ns.0[1].clone());
    // Two cables between a and b; the socket listens on the first only.
    run(&[
        "ip", "-n", &a, "link", "add", "capa", "type", "veth", "peer", "name", "capb", "netns", &b,
    ]);
    run(&[
        "ip", "-n", &a, "link", "add", "capa2", "type", "veth", "peer", "name", "capb2", "netns",
        &b,
    ]);
    run(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        "203.0.113.1/24",
        "dev",
        "capa",
    ]);
    run(&[
        "ip",
        "-n",
        &b,
        "addr",
        "add",
        "203.0.113.2/24",
        "dev",
        "capb",
    ]);
    run(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        "2001:db8::1/64",
        "dev",
        "capa",
        "nodad",
    ]);
    run(&[
        "ip",
        "-n",
        &b,
        "addr",
        "add",
        "2001:db8::2/64",
        "dev",
        "capb",
        "nodad",
    ]);
    run(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        "198.51.100.1/24",
        "dev",
        "capa2",
    ]);
    run(&[
        "ip",
        "-n",
        &b,
        "addr",
        "add",
        "198.51.100.2/24",
        "dev",
        "capb2",
    ]);
    for (n, dev) in [(&a, "capa"), (&a, "capa2"), (&b, "capb"), (&b, "capb2")] {
        // No link-local addresses: less multicast noise (MLD, RS).
        run(&["ip", "-n", n, "link", "set", dev, "addrgenmode", "none"]);
        run(&["ip", "-n", n, "link", "set", dev, "up"]);
    }
    let (mac_a, mac_b) = (mac_of(&a, "capa"), mac_of(&b, "capb"));

    let start = now();
    let mut sock = in_netns(&a, || PacketSocket::open(ifindex("capa"))).expect("open socket in a");
    run(&[
        "ip",
        "netns",
        "exec",
        &b,
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        "203.0.113.1",
    ]);
    run(&[
        "ip",
        "netns",
        "exec",
        &b,
        "ping",
        "-6",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "2",
        "2001:db8::1",
    ]);
    // Traffic on the other cable must not reach a socket bound to capa.
    run(&[
        "ip",
        "netns",
        "exec",
        &b,
        "ping",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "2",
        "198.51.100.1",
    ]);

    let pkts = drain(
        &mut sock,
        Duration::from_millis(500),
        Duration::from_secs(10),
    );
    let end = now();
    let lines: Vec<String> = pkts
        .iter()
        .map(|p| format!("{:?} {}", p.direction, summarize(&p.data)))
        .collect();
    let all = lines.join("\n");
    eprintln!("captured on capa:\n{all}");

    let count = |proto: Protocol, icmp_type: u8, src: &str, dst: &str, dir: Direction| {
        pkts.iter()
            .filter(|p| p.direction == dir)
            .map(|p| summarize(&p.data))
            .filter(|s| {
                s.proto == proto
                    && s.src == Some(src.parse().unwrap())
                    && s.dst == Some(dst.parse().unwrap())
                    && matches!(&s.detail, Detail::Icmp(i) | Detail::Icmp6(i) if i.icmp_type == icmp_type)
            })
            .count()
    };
    let (v4a, v4b) = ("203.0.113.1", "203.0.113.2");
    assert_eq!(
        count(Protocol::Icmp, 8, v4b, v4a, Direction::In),
        3,
        "{all}"
    );
    assert_eq!(
        count(Protocol::Icmp, 0, v4a, v4b, Direction::Out),
        3,
        "{all}"
    );
    assert_eq!(
        count(
            Protocol::Icmp6,
            128,
            "2001:db8::2",
            "2001:db8::1",
            Direction::In
        ),
        2,
        "{all}"
    );
    assert_eq!(
        count(
            Protocol::Icmp6,
            129,
            "2001:db8::1",
            "2001:db8::2",
            Direction::Out
        ),
        2,
        "{all}"
    );
    // A fresh namespace knows no neighbours: b had to ask for a's MAC.
    assert!(
        lines
            .iter()
            .any(|l| l == "In ARP, Request who-has 203.0.113.1 tell 203.0.113.2, length 28"),
        "{all}"
    );
    assert!(
        !all.contains("198.51.100."),
        "frames of capa2 reached the capa socket:\n{all}"
    );

    for p in &pkts {
        let s = summarize(&p.data);
        assert_eq!(p.orig_len as usize, p.data.len());
        assert!(
            p.ts >= start && p.ts <= end,
            "timestamp {:?} outside {start:?}..{end:?}",
            p.ts
        );
        // Each frame's MACs are those of the cable's two ends.
        let (src, dst) = (
            s.src_mac.unwrap().to_string(),
            s.dst_mac.unwrap().to_string(),
        );
        match p.direction {
            Direction::In => assert_eq!(src, mac_b, "{s}"),
            Direction::Out => assert_eq!(src, mac_a, "{s}"),
        }
        assert!(
            dst == mac_a || dst == mac_b || dst.starts_with("ff:ff") || dst.starts_with("33:33"),
            "{s}"
        );
    }

    // Stats count what reached the socket, since open; reading them twice
    // must not lose the first reading (the kernel resets on read).
    let (received, dropped) = sock.stats().unwrap();
    assert!(received >= pkts.len() as u64, "{received} < {}", pkts.len());
    assert_eq!(dropped, 0);
    let (received2, dropped2) = sock.stats().unwrap();
    assert!(received2 >= received && dropped2 == dropped);

    // The real traffic, written with our pcap writer, reads the same in tcpdump.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ping.pcap");
    let mut w = PcapWriter::new(File::create(&path).unwrap()).unwrap();
    for p in &pkts {
        w.write(p.ts, p.orig_len, &p.data).unwrap();
    }
    drop(w);
    let out = run(&["tcpdump", "-nn", "-t", "-r", path.to_str().unwrap()]);
    let theirs: Vec<&str> = out.lines().collect();
    assert_eq!(theirs.len(), pkts.len(), "{out}");
    for (p, t) in pkts.iter().zip(theirs) {
        let ours = summarize(&p.data).to_string();
        let head = |l: &str| l.split_once(": ").map(|(h, _)| h.to_owned());
        if ours.starts_with("IP") {
            assert_eq!(head(&ours), head(t), "\nours:    {ours}\ntcpdump: {t}");
        }
        if ours.contains("echo") || ours.starts_with("ARP") {
            assert_eq!(ours, t);
        }
    }
}

#[test]
fn captures_only_after_open_times_out_and_reports_cut_frames() {
    if !is_root() {
        eprintln!("skipping captures_only_after_open_and_reports_cut_frames: needs root");
        return;
    }
    let ns = Namespaces::new("cut");
    let (a, b) = (ns.0[0].clone(), ns.0[1].clone());
    quiet_veth(&a, &b, "cuta", "cutb");
    run(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        "203.0.113.1/24",
        "dev",
        "cuta",
    ]);
    run(&[
        "ip",
        "-n",
        &b,
        "addr",
        "add",
        "203.0.113.2/24",
        "dev",
        "cutb",
    ]);
    // Traffic before the socket exists is not delivered to it.
    run(&[
        "ip",
        "netns",
        "exec",
        &b,
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "203.0.113.1",
    ]);

    let mut sock = in_netns(&a, || PacketSocket::open(ifindex("cuta"))).unwrap();
    // Nothing queued from before; recv gives up after its timeout.
    let mut buf = [0u8; 4096];
    let t = Instant::now();
    let idle = sock.recv(&mut buf, Duration::from_millis(300)).unwrap();
    let waited = t.elapsed();
    assert!(
        idle.is_none(),
        "unexpected frame {:?}",
        idle.map(|p| summarize(p.data).to_string())
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // A 1000-byte ping into a 64-byte buffer: cut, with the wire length kept.
    run(&[
        "ip",
        "netns",
        "exec",
        &b,
        "ping",
        "-c",
        "1",
        "-s",
        "958",
        "-W",
        "2",
        "203.0.113.1",
    ]);
    let mut small = [0u8; 64];
    let mut seen = false;
    while let Some(p) = sock.recv(&mut small, Duration::from_millis(500)).unwrap() {
        let s = summarize(p.data);
        if p.direction == Direction::In && s.proto == Protocol::Icmp {
            assert_eq!(p.data.len(), 64);
            assert_eq!(p.orig_len, 14 + 20 + 8 + 958);
            // The IP header still tells the full length.
            let line = s.to_string();
            assert!(
                line.contains("ICMP echo request") && line.ends_with(", length 966"),
                "{line}"
            );
            seen = true;
        }
    }
    assert!(seen, "the echo request was not captured");

    // The receive path moves an 802.1Q tag into packet metadata before
    // taps see the frame; PACKET_AUXDATA must put it back, byte for byte.
    // (Sent raw from b: VLAN devices need a module this kernel may lack.)
    let mac = |ns: &str, dev: &str| -> [u8; 6] {
        let text = mac_of(ns, dev);
        let v: Vec<u8> = text
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        v.try_into().unwrap()
    };
    let builder = etherparse::PacketBuilder::ethernet2(mac(&b, "cutb"), mac(&a, "cuta"))
        .single_vlan(etherparse::VlanId::try_new(100).unwrap())
        .ipv4([192, 0, 2, 2], [192, 0, 2, 1], 64)
        .udp(40000, 9);
    let mut tagged = Vec::new();
    builder.write(&mut tagged, b"ping").unwrap();
    let sender = in_netns(&b, || PacketSocket::open(ifindex("cutb"))).unwrap();
    send_raw(&sender, &tagged);
    let got = drain(
        &mut sock,
        Duration::from_millis(500),
        Duration::from_secs(5),
    );
    let p = got
        .iter()
        .find(|p| p.direction == Direction::In && p.data.len() == tagged.len())
        .unwrap_or_else(|| panic!("tagged frame not captured: {} frames", got.len()));
    assert_eq!(p.data, tagged);
    assert_eq!(p.orig_len as usize, tagged.len());
    assert_eq!(
        summarize(&p.data).to_string(),
        "vlan 100, IP 192.0.2.2.40000 > 192.0.2.1.9: UDP, length 4"
    );
}

#[test]
fn open_fails_for_missing_interface() {
    if !is_root() {
        eprintln!("skipping open_fails_for_missing_interface: needs root");
        return;
    }
    let ns = Namespaces::new("noif");
    let a = ns.0[0].clone();
    let err = in_netns(&a, || PacketSocket::open(4242)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
}

#[test]
fn a_compiled_filter_drops_frames_in_the_kernel() {
    if !is_root() {
        eprintln!("skipping a_compiled_filter_drops_frames_in_the_kernel: needs root");
        return;
    }
    let ns = Namespaces::new("bpf");
    let (a, b) = (ns.0[0].clone(), ns.0[1].clone());
    quiet_veth(&a, &b, "bpfa", "bpfb");
    let filter: nslab::capture::decode::Filter = "udp port 9".parse().unwrap();
    let prog = nslab::capture::bpf::compile(&filter).unwrap();
    let sock = in_netns(&a, || PacketSocket::open(ifindex("bpfa"))).unwrap();
    sock.set_filter(&prog)
        .expect("the kernel takes the program");
    let mut sock = sock;
    // Raw frames from b, none of them answered (a has no address).
    let (ma, mb) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
    let frame = |dport: u16, tcp: bool| {
        let ip =
            etherparse::PacketBuilder::ethernet2(mb, ma).ipv4([192, 0, 2, 2], [192, 0, 2, 1], 64);
        let mut v = Vec::new();
        if tcp {
            ip.tcp(40000, dport, 1, 1000).write(&mut v, b"x").unwrap();
        } else {
            ip.udp(40000, dport).write(&mut v, b"x").unwrap();
        }
        v
    };
    let sender = in_netns(&b, || PacketSocket::open(ifindex("bpfb"))).unwrap();
    let frames = [
        frame(10, false),
        frame(9, true),
        frame(9, false),
        frame(53, false),
    ];
    for f in &frames {
        send_raw(&sender, f);
    }
    let got = drain(
        &mut sock,
        Duration::from_millis(500),
        Duration::from_secs(5),
    );
    let lines: Vec<String> = got.iter().map(|p| summarize(&p.data).to_string()).collect();
    assert_eq!(
        lines,
        ["IP 192.0.2.2.40000 > 192.0.2.1.9: UDP, length 1"],
        "only UDP to port 9 passes the kernel"
    );
    // The kernel counts only what passed.
    assert_eq!(sock.stats().unwrap(), (1, 0));
}
