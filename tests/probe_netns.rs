//! Probes against real network namespaces (needs root; skipped otherwise).
//!
//! Every test makes its own namespaces (`probe-t-<pid>-<tag>-*`) joined by veth
//! pairs with documentation addresses, and a guard deletes them even when the
//! test fails. No packet leaves these namespaces.

use std::fs::{self, File};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nslab::probe::http;
use nslab::probe::icmp::{self, IcmpErrorKind, PingEvent, PingOptions};
use nslab::probe::tcp;
use nslab::serve::{Content, Server};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root to create network namespaces");
            return;
        }
    };
}

fn run_ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run the ip command");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace of this test, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("probe-t-{}-{tag}", std::process::id());
        run_ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        // Link-local addresses otherwise stay tentative for ~2 s, and a router
        // cannot solicit neighbours for forwarded packets until they are not.
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ip(&all);
    }

    /// Run `f` on a fresh thread that entered this namespace, as nslab's
    /// callers do; a panic inside comes back out unchanged.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(format!("/run/netns/{}", self.name)).expect("open netns");
                setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Write a sysctl of this namespace (/proc/sys/net follows the opener's namespace).
    fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(|| fs::write(&path, value)).expect("write sysctl");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth cable between `a:ia` and `b:ib`, both ends up.
fn cable(a: &Netns, ia: &str, b: &Netns, ib: &str) {
    run_ip(&[
        "link", "add", "name", ia, "netns", &a.name, "type", "veth", "peer", "name", ib, "netns",
        &b.name,
    ]);
    a.ip(&["link", "set", ia, "up"]);
    b.ip(&["link", "set", ib, "up"]);
}

fn addr(ns: &Netns, dev: &str, cidr: &str) {
    if cidr.contains(':') {
        // Without nodad the address stays tentative and unusable for a while.
        ns.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
    } else {
        ns.ip(&["addr", "add", cidr, "dev", dev]);
    }
}

/// Two namespaces on one cable: a (va) 203.0.113.1, 2001:db8::1 and
/// b (vb) 203.0.113.2, 2001:db8::2.
fn pair(tag: &str) -> (Netns, Netns) {
    let a = Netns::new(&format!("{tag}-a"));
    let b = Netns::new(&format!("{tag}-b"));
    cable(&a, "va", &b, "vb");
    addr(&a, "va", "203.0.113.1/24");
    addr(&b, "vb", "203.0.113.2/24");
    addr(&a, "va", "2001:db8::1/64");
    addr(&b, "vb", "2001:db8::2/64");
    (a, b)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn quick(count: u32) -> PingOptions {
    PingOptions {
        count,
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(3),
        ..PingOptions::default()
    }
}

fn ping_in(ns: &Netns, dst: IpAddr, opts: &PingOptions) -> (icmp::PingReport, Vec<PingEvent>) {
    ns.run(|| {
        let mut events = Vec::new();
        eprintln!("{}", icmp::format_header(dst, opts));
        let report = icmp::ping(dst, opts, &mut |e| {
            eprintln!("{}", icmp::format_event(dst, e));
            events.push(e.clone());
        })
        .unwrap_or_else(|e| panic!("ping {dst}: {e}"));
        eprintln!("{}", icmp::format_report(dst, &report));
        (report, events)
    })
}

#[test]
fn ping_v4_and_v6_across_a_veth() {
    require_root!();
    let (a, _b) = pair("ping");
    for dst in [ip("203.0.113.2"), ip("2001:db8::2")] {
        let (report, events) = ping_in(&a, dst, &quick(3));
        assert_eq!(
            (report.transmitted, report.received, report.errors),
            (3, 3, 0),
            "{dst}: {events:?}"
        );
        let seqs: Vec<u16> = events
            .iter()
            .map(|e| match e {
                PingEvent::Reply {
                    seq,
                    from,
                    ttl,
                    bytes,
                    ..
                } => {
                    assert_eq!((*from, *ttl, *bytes), (dst, Some(64), 64), "{e:?}");
                    *seq
                }
                other => panic!("{dst}: unexpected {other:?}"),
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        let line = icmp::format_event(dst, &events[0]);
        assert!(
            line.starts_with(&format!("64 bytes from {dst}: icmp_seq=1 ttl=64 time=")),
            "{line}"
        );
        let summary = icmp::format_report(dst, &report);
        assert!(
            summary.contains("3 packets transmitted, 3 received, 0% packet loss, time "),
            "{summary}"
        );
        assert!(summary.contains("\nrtt min/avg/max/mdev = "), "{summary}");
    }

    // Source address, TTL and a large payload are honoured.
    let opts = PingOptions {
        source: Some(ip("203.0.113.1")),
        ttl: Some(7),
        size: 1400,
        ..quick(1)
    };
    let (report, events) = ping_in(&a, ip("203.0.113.2"), &opts);
    assert_eq!(report.received, 1, "{events:?}");
    assert!(
        matches!(events[0], PingEvent::Reply { bytes: 1408, .. }),
        "{events:?}"
    );
}

#[test]
fn concurrent_pings_in_one_namespace_keep_their_own_replies() {
    require_root!();
    // A raw socket sees every ICMP packet of its namespace. A ping to a silent
    // address runs beside one that gets replies with the same sequence
    // numbers: it must count none of them.
    let (a, _b) = pair("conc");
    let silent = PingOptions {
        timeout: Duration::from_millis(500),
        ..quick(5)
    };
    let ((busy, busy_events), (quiet, quiet_events)) = a.run(|| {
        thread::scope(|s| {
            let run = |dst: IpAddr, opts: PingOptions| {
                s.spawn(move || {
                    let mut events = Vec::new();
                    let report = icmp::ping(dst, &opts, &mut |e| events.push(e.clone())).unwrap();
                    (report, events)
                })
            };
            let busy = run(ip("203.0.113.2"), quick(5));
            let quiet = run(ip("203.0.113.77"), silent.clone());
            (busy.join().unwrap(), quiet.join().unwrap())
        })
    });
    assert_ne!(busy.ident, quiet.ident);
    assert_eq!(busy.received, 5, "{busy_events:?}");
    assert_eq!(quiet.received, 0, "{quiet_events:?}");
    assert!(
        quiet_events
            .iter()
            .all(|e| matches!(e, PingEvent::Timeout { .. })),
        "{quiet_events:?}"
    );
}

#[test]
fn no_route_is_enetunreach_for_ping_and_tcp() {
    require_root!();
    let (a, _b) = pair("noroute");
    for dst in [ip("198.51.100.1"), ip("2001:db8:ffff::1")] {
        let err = a
            .run(|| icmp::ping(dst, &quick(1), &mut |_| {}))
            .expect_err("no route");
        assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{dst}: {err}");
    }
    let err = a
        .run(|| tcp::tcp_connect(sa("198.51.100.1:80"), Duration::from_secs(2)))
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.errno()),
        ("unreachable", Some(libc::ENETUNREACH)),
        "{err}"
    );

    // The route disappears after the first reply: later sends fail at once
    // and are reported as send errors, the run goes on.
    let dst = ip("203.0.113.2");
    let (report, events) = a.run(|| {
        let mut events = Vec::new();
        let report = icmp::ping(dst, &quick(3), &mut |e| {
            if matches!(e, PingEvent::Reply { seq: 1, .. }) {
                a.ip(&["route", "del", "203.0.113.0/24", "dev", "va"]);
            }
            events.push(e.clone());
        })
        .unwrap();
        (report, events)
    });
    assert_eq!(
        (report.transmitted, report.received, report.errors),
        (3, 1, 2),
        "{events:?}"
    );
    for (e, want_seq) in events[1..].iter().zip(2..) {
        match e {
            PingEvent::SendError { seq, errno, .. } => {
                assert_eq!((*seq, *errno), (want_seq, libc::ENETUNREACH));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        icmp::format_event(dst, &events[1]),
        "ping: sendmsg: Network is unreachable"
    );
    let err = a
        .run(|| tcp::tcp_connect(sa("203.0.113.2:80"), Duration::from_secs(2)))
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.errno()),
        ("unreachable", Some(libc::ENETUNREACH)),
        "{err}"
    );
}

#[test]
fn absent_on_link_host_gives_host_unreachable_or_timeout() {
    require_root!();
    let (a, _b) = pair("absent");
    let opts = PingOptions {
        count: 1,
        timeout: Duration::from_secs(6),
        ..PingOptions::default()
    };
    // Neighbour resolution gives up after ~3 s; both families at once.
    let results = a.run(|| {
        thread::scope(|s| {
            let probes = [
                (ip("203.0.113.99"), ip("203.0.113.1")),
                (ip("2001:db8::99"), ip("2001:db8::1")),
            ]
            .map(|(dst, me)| {
                let opts = &opts;
                s.spawn(move || {
                    let mut events = Vec::new();
                    let report = icmp::ping(dst, opts, &mut |e| events.push(e.clone())).unwrap();
                    (dst, me, report, events)
                })
            });
            // TCP meets the same neighbour failure: EHOSTUNREACH.
            let tcp = s.spawn(|| tcp::tcp_connect(sa("203.0.113.99:80"), Duration::from_secs(6)));
            let err = tcp.join().unwrap().unwrap_err();
            assert!(
                matches!(
                    (err.kind(), err.errno()),
                    ("unreachable", Some(libc::EHOSTUNREACH)) | ("timeout", _)
                ),
                "{err}"
            );
            eprintln!("tcp: {err}");
            probes.map(|h| h.join().unwrap())
        })
    });
    for (dst, me, report, events) in results {
        for e in &events {
            eprintln!("{}", icmp::format_event(dst, e));
        }
        assert_eq!(report.received, 0);
        assert_eq!(events.len(), 1, "{dst}: {events:?}");
        match &events[0] {
            PingEvent::Error {
                seq: 1,
                from,
                kind: IcmpErrorKind::HostUnreachable,
            } => {
                // The local stack reports it, from our own address, as ping shows.
                assert_eq!(*from, me);
                let line = icmp::format_event(dst, &events[0]);
                let want = if dst.is_ipv6() {
                    format!("From {me} icmp_seq=1 Destination unreachable: Address unreachable")
                } else {
                    format!("From {me} icmp_seq=1 Destination Host Unreachable")
                };
                assert_eq!(line, want);
                assert_eq!(report.errors, 1);
            }
            PingEvent::Timeout { seq: 1 } => {}
            other => panic!("{dst}: unexpected {other:?}"),
        }
    }
}

/// a (va) -- (ra) r (rb) -- (vb) b, r forwarding, a and b routed through r.
fn routed(tag: &str) -> (Netns, Netns, Netns) {
    let a = Netns::new(&format!("{tag}-a"));
    let r = Netns::new(&format!("{tag}-r"));
    let b = Netns::new(&format!("{tag}-b"));
    cable(&a, "va", &r, "ra");
    cable(&r, "rb", &b, "vb");
    addr(&a, "va", "203.0.113.1/24");
    addr(&a, "va", "2001:db8:1::1/64");
    addr(&r, "ra", "203.0.113.254/24");
    addr(&r, "ra", "2001:db8:1::fe/64");
    addr(&r, "rb", "198.51.100.254/24");
    addr(&r, "rb", "2001:db8:2::fe/64");
    addr(&b, "vb", "198.51.100.1/24");
    addr(&b, "vb", "2001:db8:2::1/64");
    a.ip(&["route", "add", "default", "via", "203.0.113.254"]);
    a.ip(&["-6", "route", "add", "default", "via", "2001:db8:1::fe"]);
    b.ip(&["route", "add", "default", "via", "198.51.100.254"]);
    b.ip(&["-6", "route", "add", "default", "via", "2001:db8:2::fe"]);
    r.sysctl("net.ipv4.ip_forward", "1");
    r.sysctl("net.ipv6.conf.all.forwarding", "1");
    (a, r, b)
}

#[test]
fn routers_answer_with_time_exceeded_and_net_unreachable() {
    require_root!();
    let (a, _r, _b) = routed("rtr");
    for (dst, router) in [
        (ip("198.51.100.1"), ip("203.0.113.254")),
        (ip("2001:db8:2::1"), ip("2001:db8:1::fe")),
    ] {
        // One hop away: the reply's TTL shows the router.
        let (report, events) = ping_in(&a, dst, &quick(2));
        assert_eq!(report.received, 2, "{dst}: {events:?}");
        assert!(
            matches!(events[0], PingEvent::Reply { ttl: Some(63), .. }),
            "{events:?}"
        );

        let opts = PingOptions {
            ttl: Some(1),
            ..quick(2)
        };
        let (report, events) = ping_in(&a, dst, &opts);
        assert_eq!(
            (report.received, report.errors),
            (0, 2),
            "{dst}: {events:?}"
        );
        for e in &events {
            assert!(
                matches!(e, PingEvent::Error { from, kind: IcmpErrorKind::TimeExceeded, .. } if *from == router),
                "{dst}: {e:?}"
            );
        }
        let want = if dst.is_ipv6() {
            format!("From {router} icmp_seq=1 Time exceeded: Hop limit")
        } else {
            format!("From {router} icmp_seq=1 Time to live exceeded")
        };
        assert_eq!(icmp::format_event(dst, &events[0]), want);
        let summary = icmp::format_report(dst, &report);
        assert!(
            summary.contains("2 packets transmitted, 0 received, +2 errors, 100% packet loss"),
            "{summary}"
        );
    }
    // The router has no route to these: it says so.
    for (dst, router) in [
        (ip("192.0.2.1"), ip("203.0.113.254")),
        (ip("2001:db8:99::1"), ip("2001:db8:1::fe")),
    ] {
        let (_, events) = ping_in(&a, dst, &quick(1));
        assert!(
            matches!(&events[..], [PingEvent::Error { from, kind: IcmpErrorKind::NetUnreachable, .. }] if *from == router),
            "{dst}: {events:?}"
        );
    }
}

#[test]
fn tcp_connect_open_refused_v4_and_v6() {
    require_root!();
    let (a, b) = pair("tcp");
    let listener = b.run(|| TcpListener::bind("[2001:db8::2]:0")).unwrap();
    let open = listener.local_addr().unwrap();
    let took = a
        .run(|| tcp::tcp_connect(open, Duration::from_secs(2)))
        .unwrap();
    assert!(took < Duration::from_secs(2));
    for closed in [sa("203.0.113.2:9"), sa("[2001:db8::2]:9")] {
        let err = a
            .run(|| tcp::tcp_connect(closed, Duration::from_secs(2)))
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.errno()),
            ("refused", Some(libc::ECONNREFUSED)),
            "{closed}: {err}"
        );
    }
}

/// Sets the flag when dropped, so a failing test still stops its server.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn our_server_answers_our_client_and_curl() {
    require_root!();
    let (a, b) = pair("srv");
    let timeout = Duration::from_secs(5);
    let v4 = b
        .run(|| {
            Server::bind(
                sa("203.0.113.2:0"),
                Content::Page {
                    node: "black".into(),
                },
            )
        })
        .unwrap();
    let v6 = b
        .run(|| {
            Server::bind(
                sa("[2001:db8::2]:0"),
                Content::Page {
                    node: "black".into(),
                },
            )
        })
        .unwrap();
    let (addr4, addr6) = (v4.local_addr().unwrap(), v6.local_addr().unwrap());
    let stop = AtomicBool::new(false);
    let logs = Mutex::new(Vec::<String>::new());
    thread::scope(|s| {
        // Served from threads of this (the test's) namespace: the listeners
        // stay in b's.
        let servers = [&v4, &v6].map(|server| {
            let (stop, logs) = (&stop, &logs);
            s.spawn(move || server.serve(stop, &mut |l| logs.lock().unwrap().push(l.into())))
        });
        let _stop = StopOnDrop(&stop);

        // A silent client holds one connection; others are still answered.
        let idle = a.run(|| TcpStream::connect(addr4)).unwrap();

        let page = a.run(|| http::http_get(addr4, "", "/", timeout)).unwrap();
        assert_eq!((page.status, page.reason.as_str()), (200, "OK"));
        let text = page.text();
        assert!(text.contains("<h1>Hello from black</h1>"), "{text}");
        assert!(text.contains(&format!("Server address: {addr4}")), "{text}");
        assert!(text.contains("Client address: 203.0.113.1:"), "{text}");
        assert_eq!(page.header("X-Nslab-Node"), Some("black"));

        let page6 = a.run(|| http::http_get(addr6, "", "/", timeout)).unwrap();
        assert!(
            page6.text().contains("Client address: [2001:db8::1]:"),
            "{}",
            page6.text()
        );

        let missing = a
            .run(|| http::http_get(addr4, "", "/missing", timeout))
            .unwrap();
        assert_eq!(
            (missing.status, missing.reason.as_str()),
            (404, "File not found")
        );

        let raw = a
            .run(|| http::send_raw_line(addr4, "hello", timeout))
            .unwrap();
        assert!(raw.contains("<p>Error code: 400</p>"), "{raw}");
        assert!(
            raw.contains("<p>Message: Bad request syntax ('hello').</p>"),
            "{raw}"
        );

        if curl_available() {
            let out = Command::new("ip")
                .args(["netns", "exec", &a.name, "curl", "-sS", "--max-time", "5"])
                .arg(format!("http://{addr4}/"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(body.contains("<h1>Hello from black</h1>"), "{body}");
        } else {
            eprintln!("curl not installed: curl check skipped");
        }

        drop(idle);
        stop.store(true, Ordering::SeqCst);
        let started = Instant::now();
        for h in servers {
            h.join().unwrap().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "serve stops promptly"
        );
    });

    let logs = logs.into_inner().unwrap();
    let has = |needle: &str| logs.iter().any(|l| l.ends_with(needle));
    assert!(has("] \"GET / HTTP/1.1\" 200 -"), "{logs:#?}");
    assert!(
        has("] code 400, message Bad request syntax ('hello')"),
        "{logs:#?}"
    );
    assert!(has("] \"hello\" 400 -"), "{logs:#?}");
    assert!(
        logs.iter().any(|l| l.starts_with("203.0.113.1 - - [")),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l.starts_with("2001:db8::1 - - [")),
        "{logs:#?}"
    );
}

/// Kills (by pid) and reaps a child this test started.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Poll until `addr` accepts connections from `ns`, instead of sleeping.
fn wait_listening(ns: &Netns, addr: SocketAddr, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match ns.run(|| tcp::tcp_connect(addr, Duration::from_millis(500))) {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline && e.kind() == "refused" => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{addr} not listening after {within:?}: {e}"),
        }
    }
}

/// Status line and body of a raw answer (headers differ: Server, Date).
fn status_and_body(answer: &str) -> (&str, &str) {
    let status = answer.lines().next().unwrap_or_default();
    let body = answer.split_once("\r\n\r\n").map_or(answer, |(_, b)| b);
    (status, body)
}

#[test]
fn python_http_server_and_ours_answer_alike() {
    require_root!();
    let python = std::env::var("NSLAB_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    if Command::new(&python).arg("--version").output().is_err() {
        eprintln!("skipped: {python} not found");
        return;
    }
    let (a, b) = pair("py");
    let www = tempfile::tempdir().unwrap();
    fs::write(www.path().join("hello.txt"), "hello from the namespace\n").unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("http.server.log");
    let py_addr = sa("203.0.113.2:8000");
    let log_file = File::create(&log_path).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &b.name, &python, "-u", "-m", "http.server"])
        .args(["--bind", "203.0.113.2", "--directory"])
        .arg(www.path())
        .arg("8000")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let _python = ChildGuard(child);
    wait_listening(&a, py_addr, Duration::from_secs(20));

    let ours = b
        .run(|| Server::bind(sa("203.0.113.2:0"), Content::Directory(www.path().into())))
        .unwrap();
    let our_addr = ours.local_addr().unwrap();
    let stop = AtomicBool::new(false);
    let timeout = Duration::from_secs(5);
    thread::scope(|s| {
        let server = s.spawn(|| ours.serve(&stop, &mut |_| {}));
        let _stop = StopOnDrop(&stop);

        for addr in [py_addr, our_addr] {
            let file = a
                .run(|| http::http_get(addr, "", "/hello.txt", timeout))
                .unwrap();
            assert_eq!(file.status, 200, "{addr}");
            assert_eq!(file.text(), "hello from the namespace\n", "{addr}");
            let listing = a.run(|| http::http_get(addr, "", "/", timeout)).unwrap();
            assert!(
                listing
                    .text()
                    .contains("<a href=\"hello.txt\">hello.txt</a>"),
                "{addr}: {}",
                listing.text()
            );
        }

        // The tutorial's experiment: plain text at a web server.
        let theirs = a
            .run(|| http::send_raw_line(py_addr, "hello", timeout))
            .unwrap();
        assert!(theirs.contains("Error code: 400"), "{theirs}");
        assert!(theirs.contains("Bad request syntax ('hello')"), "{theirs}");
        let mine = a
            .run(|| http::send_raw_line(our_addr, "hello", timeout))
            .unwrap();
        assert_eq!(
            mine, theirs,
            "our answer to 'hello' is Python's, byte for byte"
        );

        // Same status line and page for the other errors.
        for line in [
            "GET /missing HTTP/1.0",
            "FOO / HTTP/1.0",
            "a b c HTTP/1.0",
            "GET / HTTP/1.1 x",
        ] {
            let theirs = a
                .run(|| http::send_raw_line(py_addr, line, timeout))
                .unwrap();
            let mine = a
                .run(|| http::send_raw_line(our_addr, line, timeout))
                .unwrap();
            assert_eq!(status_and_body(&mine), status_and_body(&theirs), "{line}");
        }
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap().unwrap();
    });

    let log = fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("code 400, message Bad request syntax ('hello')"),
        "{log}"
    );
}
