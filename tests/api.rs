//! The library API as another crate uses it: only what the crate root exports.
//! Root: each test brings up sandboxed labs under a prefix of its own and
//! checks that nothing of that prefix is left in the kernel.

use nslab::{Lab, Options, Topology};
use std::process::Command;

/// The suite's state directory (scripts/test.sh sets NSLAB_STATE_DIR): the
/// library reads no environment, so the test passes it on.
fn opts(prefix: &str) -> Options {
    Options {
        prefix: prefix.into(),
        sandbox: true,
        state_dir: std::env::var_os("NSLAB_STATE_DIR").map(Into::into),
        ..Options::default()
    }
}

fn prefix(tag: &str) -> String {
    format!("ta{tag}{}-", std::process::id() % 10000)
}

/// Namespaces and interfaces whose name starts with `prefix`.
fn leftovers(prefix: &str) -> Vec<String> {
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let links = Command::new("ip").args(["-j", "link"]).output().unwrap();
    let mut out: Vec<String> = String::from_utf8_lossy(&ns.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("netns {n}"))
        .collect();
    let v: serde_json::Value = serde_json::from_slice(&links.stdout).unwrap();
    for l in v.as_array().unwrap() {
        let name = l["ifname"].as_str().unwrap_or_default();
        if name.starts_with(prefix) {
            out.push(format!("link {name}"));
        }
    }
    out
}

/// a - r - b, r forwards; b's name resolves in a through the lab's hosts file.
fn routed(name: &str) -> Topology {
    Topology::builder(name)
        .node("a", |n| {
            n.interface("eth0", &["10.70.1.2/24"])
                .route("default via 10.70.1.1")
        })
        .node("r", |n| {
            n.interface("left", &["10.70.1.1/24"])
                .interface("right", &["10.70.2.1/24"])
                .forward(true)
        })
        .node("b", |n| {
            n.interface("eth0", &["10.70.2.2/24"])
                .route("default via 10.70.2.1")
        })
        .link("a:eth0", "r:left")
        .link("r:right", "b:eth0")
        .expect_reach("a", "b")
        .build()
}

#[test]
fn up_run_with_ping_status_down() {
    let p = prefix("u");
    let lab = Lab::up(&routed("lab"), &opts(&p)).expect("up");
    assert_eq!(lab.name(), format!("{p}lab"));
    assert_eq!(lab.nodes(), ["a", "r", "b"]);
    let b = lab.node("b").unwrap();
    assert_eq!(b.namespace(), Some(format!("{p}b").as_str()));
    let out = b.run(["ip", "-br", "addr", "show", "eth0"]).unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.70.2.2"));
    assert!(lab.ping("a", "b").unwrap().all_received());
    assert!(lab.ping("a", "10.70.2.2").unwrap().all_received());
    assert!(lab.node("x").is_err());

    // A server thread in b, a client thread in a that connects by name.
    let server = b
        .with(|| std::net::TcpListener::bind("0.0.0.0:7070").unwrap())
        .unwrap();
    let accept = std::thread::spawn(move || {
        use std::io::Write;
        let (mut s, _) = server.accept().unwrap();
        s.write_all(b"hi").unwrap();
    });
    let got = lab
        .node("a")
        .unwrap()
        .with(|| {
            use std::io::Read;
            let mut s = std::net::TcpStream::connect("b:7070").unwrap();
            let mut buf = String::new();
            s.read_to_string(&mut buf).unwrap();
            buf
        })
        .unwrap();
    assert_eq!(got, "hi");
    accept.join().unwrap();
    assert!(lab.tcp_connect("a", "b", 7071).is_err());

    // A panic in the closure is an error, not a hang.
    let e = b.with(|| panic!("on purpose")).unwrap_err();
    assert!(e.to_string().contains("on purpose"), "{e}");

    // A lab-owned program: down stops it.
    let proc_ = b.spawn(["sleep", "300"]).unwrap();
    assert!(proc_.alive());

    let all = lab.ping_all().unwrap();
    assert!(
        all.matrix
            .iter()
            .any(|c| c.src == "a" && c.dst == "b" && c.reach == Some(true))
    );
    assert!(lab.status().unwrap().ok);
    assert!(lab.check().unwrap().ok);
    assert!(lab.plan().unwrap().ops.is_empty());
    let rep = lab.down().unwrap();
    assert!(rep.was_up);
    assert!(!proc_.alive());
    assert_eq!(leftovers(&p), Vec::<String>::new());
}

#[test]
fn panic_with_a_lab_up_leaves_nothing() {
    let p = prefix("p");
    let o = opts(&p);
    let r = std::panic::catch_unwind(|| {
        let lab = Lab::up(&routed("lab"), &o).expect("up");
        assert!(!leftovers(&p).is_empty());
        lab.node("b").unwrap().spawn(["sleep", "300"]).unwrap();
        panic!("the test failed");
    });
    assert!(r.is_err());
    assert_eq!(leftovers(&p), Vec::<String>::new());
}

#[test]
fn detach_keeps_the_lab_attach_downs_it() {
    let p = prefix("d");
    let o = opts(&p);
    let name = Lab::up(&routed("lab"), &o).expect("up").detach();
    // Cleans up even if an assertion below fails.
    struct Guard(String, Options);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Ok(l) = Lab::attach(&self.0, &self.1) {
                let _ = l.down();
            }
        }
    }
    let _g = Guard(name.clone(), o.clone());
    assert!(!leftovers(&p).is_empty());
    let lab = Lab::attach(&name, &o).unwrap();
    assert!(lab.ping("b", "a").unwrap().all_received());
    let rep = lab.down().unwrap();
    assert!(rep.was_up);
    assert_eq!(leftovers(&p), Vec::<String>::new());
    assert!(Lab::attach(&name, &o).is_err());
}

#[test]
fn errors_name_the_problem() {
    let bad = Topology::from_yaml(
        "name: x\nnodes:\n  a: { interfaces: { eth0: { address: 10.0.0.300/24 } } }\n",
    );
    let e = bad.validate(&opts("te-")).unwrap_err().to_string();
    assert!(e.contains("<yaml>:3"), "{e}");
    assert!(Topology::from_file("/nonexistent/lab.yaml").is_err());
}

#[test]
fn http_get_and_capture() {
    let p = prefix("h");
    let lab = Lab::up(&routed("lab"), &opts(&p)).expect("up");
    let cap = lab
        .capture(
            &["b:eth0"],
            &nslab::CaptureOptions {
                proto: Some("tcp".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let listener = lab
        .node("b")
        .unwrap()
        .with(|| std::net::TcpListener::bind("0.0.0.0:8080").unwrap())
        .unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .unwrap();
    });
    let r = lab.http_get("a", "http://b:8080/x").unwrap();
    server.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    assert!(lab.http_get("a", "ftp://b/").is_err());
    let packets = cap.stop().unwrap();
    assert!(
        !packets.is_empty() && packets.iter().all(|p| p.text.contains("8080")),
        "{:?}",
        packets.iter().map(|p| &p.text).collect::<Vec<_>>()
    );
    drop(lab);
    assert_eq!(leftovers(&p), Vec::<String>::new());
}

/// The labs' records, by file name, in a state directory.
fn records_in(state: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(state.join("labs")) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Two labs in one process, each with a state directory of its own, brought
/// up, used and taken down at the same time from two threads: the settings are
/// the lab's, not the process's.
#[test]
fn two_labs_two_state_dirs_at_once() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let prefixes = ["t19a-", "t19b-"];
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|i| {
                let (dir, p, barrier) = (dirs[i].path(), prefixes[i], &barrier);
                s.spawn(move || -> Result<(), String> {
                    let o = Options {
                        prefix: p.into(),
                        sandbox: true,
                        state_dir: Some(dir.to_path_buf()),
                        ..Options::default()
                    };
                    barrier.wait();
                    let lab = Lab::up(&routed("two"), &o).map_err(|e| format!("up {p}: {e}"))?;
                    barrier.wait();
                    // Each record is in its own directory, and only there.
                    let mine = records_in(dir);
                    if !mine.iter().any(|n| n.starts_with(&format!("{p}two"))) {
                        return Err(format!("{p}: no record in {}: {mine:?}", dir.display()));
                    }
                    if mine.iter().any(|n| !n.starts_with(p)) {
                        return Err(format!("{p}: a foreign record in its dir: {mine:?}"));
                    }
                    if !lab
                        .ping("a", "b")
                        .map_err(|e| e.to_string())?
                        .all_received()
                    {
                        return Err(format!("{p}: ping a -> b failed"));
                    }
                    let proc_ = lab.node("b").and_then(|b| b.spawn(["sleep", "300"]));
                    let proc_ = proc_.map_err(|e| format!("{p}: spawn: {e}"))?;
                    if !proc_.log().is_some_and(|l| l.starts_with(dir)) {
                        return Err(format!("{p}: log outside its state dir: {:?}", proc_.log()));
                    }
                    let st = lab.status().map_err(|e| e.to_string())?;
                    if !st.ok {
                        return Err(format!("{p}: status not ok"));
                    }
                    barrier.wait();
                    let rep = lab.down().map_err(|e| format!("down {p}: {e}"))?;
                    if !rep.was_up || proc_.alive() {
                        return Err(format!("{p}: down did not take it all: {rep:?}"));
                    }
                    if !records_in(dir).is_empty() {
                        return Err(format!("{p}: records left: {:?}", records_in(dir)));
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    for p in prefixes {
        // Whatever failed above, nothing is left.
        for d in &dirs {
            let o = Options {
                state_dir: Some(d.path().to_path_buf()),
                ..Options::default()
            };
            let _ = Lab::down_named(&format!("{p}two"), &o, true);
        }
    }
    assert_eq!(results, [Ok(()), Ok(())]);
    for p in prefixes {
        assert_eq!(leftovers(p), Vec::<String>::new());
    }
    // Nothing went to the process-wide state directory.
    let default = Options::default();
    let listed = Lab::list(&default).unwrap_or_default();
    assert!(!listed.iter().any(|l| l.starts_with("t19")), "{listed:?}");
}

/// A killed process leaves the lab's record; a bounded capture ends by itself.
#[test]
fn kill_forgets_and_bounded_capture_ends() {
    let p = "t19k-";
    let state = tempfile::tempdir().unwrap();
    let o = Options {
        state_dir: Some(state.path().to_path_buf()),
        ..opts(p)
    };
    let lab = Lab::up(&routed("kc"), &o).expect("up");
    let record = state.path().join("labs").join(format!("{p}kc.json"));
    let b = lab.node("b").unwrap();
    let keep = b.spawn(["sleep", "300"]).unwrap();
    let gone = b.spawn(["sleep", "301"]).unwrap();
    assert!(gone.alive());
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.contains("sleep 301"), "{text}");
    gone.kill().unwrap();
    assert!(!gone.alive());
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        !text.contains("sleep 301"),
        "the record still lists it: {text}"
    );
    assert!(
        text.contains("sleep 300"),
        "the record lost the other one: {text}"
    );
    assert!(keep.alive());
    assert!(lab.status().unwrap().ok);

    // count: 2 ICMP packets on b:eth0 (the request in, the reply out).
    let cap = lab
        .capture(
            &["b:eth0"],
            &nslab::CaptureOptions {
                count: Some(2),
                proto: Some("icmp".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(lab.ping("a", "b").unwrap().all_received());
    let t = std::time::Instant::now();
    let got: Vec<_> = cap.collect();
    assert_eq!(
        got.len(),
        2,
        "{:?}",
        got.iter().map(|p| &p.text).collect::<Vec<_>>()
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    // duration: no traffic, the iterator ends after about that long.
    let t = std::time::Instant::now();
    let cap = lab
        .capture(
            &["b:eth0"],
            &nslab::CaptureOptions {
                duration: Some(std::time::Duration::from_millis(300)),
                proto: Some("tcp".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(cap.count(), 0);
    let took = t.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(250) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    drop(lab);
    assert!(!keep.alive());
    assert_eq!(leftovers(p), Vec::<String>::new());
}

/// Two nodes on one cable, for the link controls.
fn pair(name: &str) -> Topology {
    Topology::builder(name)
        .node("a", |n| n.interface("eth0", &["10.71.0.1/24"]))
        .node("b", |n| n.interface("eth0", &["10.71.0.2/24"]))
        .link("a:eth0", "b:eth0")
        .build()
}

/// Some of a few pings from `from` to `to` came back, and why not when none did.
fn reaches(lab: &Lab, from: &str, to: &str) -> (bool, String) {
    let opts = nslab::PingOptions {
        count: 4,
        interval: std::time::Duration::from_millis(250),
        timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let mut events = 0;
    let out = lab
        .ping_explained(from, to, &opts, &mut |_| events += 1)
        .expect("ping");
    // Each request ends in a reply, a timeout or an error, told as it comes.
    assert!(events >= 4 || out.send_error.is_some(), "{events}: {out:?}");
    let why = out.why_not.as_ref().map(|w| w.to_string());
    (out.ok(), why.unwrap_or_default())
}

#[test]
fn link_controls_partition_shape_and_perf() {
    let p = "t20a-c-";
    let lab = Lab::up(&pair("lc"), &opts(p)).expect("up");
    assert!(reaches(&lab, "a", "b").0);

    // A link down: no ping, and why-not names the link; up: pings again.
    let r = lab.link_down("a:eth0").expect("link down");
    assert!(r.changed && r.state == "down", "{r:?}");
    let (ok, why) = reaches(&lab, "a", "b");
    assert!(!ok);
    assert!(why.contains("a:eth0") && why.contains("down"), "{why}");
    assert!(!lab.ping("a", "b").is_ok_and(|r| r.all_received()));
    assert!(!lab.link_down("a:eth0").expect("again").changed);
    lab.link_up("a:eth0").expect("link up");
    assert!(reaches(&lab, "a", "b").0);
    let e = lab.link_down("a:nope").unwrap_err().to_string();
    assert!(e.contains("\"a:nope\"") && e.contains("a:eth0"), "{e}");

    // A partition: no ping either way, why-not names it; heal: pings again.
    let part = lab.partition(&["a"], &["b"]).expect("partition");
    let id = part.partition.id;
    let (ok, why) = reaches(&lab, "b", "a");
    assert!(!ok);
    assert!(why.contains(&format!("nslab partition {id}")), "{why}");
    assert!(lab.heal(Some(id + 1)).is_err());
    assert!(!reaches(&lab, "a", "b").0, "a wrong id heals nothing");
    assert_eq!(lab.heal(Some(id)).expect("heal").healed.len(), 1);
    assert!(reaches(&lab, "a", "b").0);

    // Shaping: a bad value is refused naming it and changes nothing; a rate
    // of 10 Mbit/s on a's egress is what perf measures from a to b.
    let bad = nslab::Shape {
        loss: Some(150.0),
        ..Default::default()
    };
    let e = lab.shape("a:eth0", &bad).unwrap_err().to_string();
    assert!(e.contains("a:eth0") && e.contains("loss"), "{e}");
    assert!(lab.status().expect("status").shaping.is_empty());
    let ten = nslab::Shape {
        rate: Some(10_000_000),
        ..Default::default()
    };
    let r = lab.shape("a:eth0", &ten).expect("shape");
    assert_eq!(
        r.shaping.as_ref().and_then(|s| s.rate_bits_per_second),
        Some(10_000_000)
    );
    let popts = nslab::PerfOptions {
        duration: std::time::Duration::from_secs(3),
        ..Default::default()
    };
    let mut intervals = 0;
    let m = lab
        .perf_with("a", "b", &popts, &mut |_| intervals += 1)
        .expect("perf");
    assert!((8.5e6..=10.5e6).contains(&m.bits_per_second), "{m:?}");
    assert!(intervals >= 2, "{intervals} intervals");
    assert!(lab.clear_shape("a:eth0").expect("clear").shaping.is_none());
    assert!(lab.status().expect("status").shaping.is_empty());

    // The lab dropped: nothing of it is left.
    drop(lab);
    assert_eq!(leftovers(p), Vec::<String>::new());
}

/// A lab brought up under a prefix and opened by its name alone (as
/// `nslab status FILE --lab L` and `nslab check FILE --lab L` do): the file is
/// compared under the prefix the record kept, so its namespaces and its
/// firewall table are the lab's own.
#[test]
fn opened_by_name_compares_under_the_recorded_prefix() {
    let p = prefix("n");
    let file = "name: fwlab
nodes:
  a:
    interfaces: { eth0: { address: 10.71.0.1/24 } }
  b:
    interfaces: { eth0: { address: 10.71.0.2/24 } }
    firewall:
      input:
        rules:
          - { proto: icmp, from: 10.71.0.1, action: drop }
links:
  - [ a:eth0, b:eth0 ]
expect:
  - reach: a -> b
";
    let topo = Topology::from_yaml(file);
    let name = Lab::up(&topo, &opts(&p)).expect("up").detach();
    struct Guard(String, Options);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Ok(l) = Lab::attach(&self.0, &self.1) {
                let _ = l.down();
            }
        }
    }
    // Opened with no prefix of its own, as the CLI does for `--lab`.
    let by_name = opts("");
    let _g = Guard(name.clone(), by_name.clone());
    assert_eq!(name, format!("{p}fwlab"));

    let lab = Lab::open(&name, &by_name).unwrap();
    let st = lab.status_against(&topo).unwrap();
    assert!(st.ok, "drift: {:?}", st.drift);
    assert!(st.drift.is_empty(), "{:?}", st.drift);

    // The expectation fails at b's firewall, and the blame names its rule:
    // the table traced is `nslab-{p}fwlab-fw`, matched by its exact name.
    let rep = lab
        .check_against(&topo, &nslab::CheckOptions::default())
        .unwrap();
    assert!(!rep.ok);
    let e = &rep.expectations[0];
    assert!(!e.ok && e.why.is_some(), "{e:?}");
    let why = serde_json::to_string(&e.why).unwrap();
    let rule_line = file
        .lines()
        .position(|l| l.contains("proto: icmp"))
        .unwrap()
        + 1;
    assert!(
        why.contains(&format!("nslab-{p}fwlab-fw")),
        "the lab's own table: {why}"
    );
    assert!(
        why.contains(&format!("line {rule_line} of b's firewall")),
        "{why}"
    );

    Lab::attach(&name, &by_name).unwrap().down().unwrap();
    assert_eq!(leftovers(&p), Vec::<String>::new());
}
