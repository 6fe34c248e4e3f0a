//! `nslab demo`: the tutorial's three objectives, end to end, in sandboxes, from
//! files built into the binary, narrated the way the tutorial tells them.

use crate::capture::engine::{self, Options as CapOpts};
use crate::error::{Error, Result};
use crate::lab;
use crate::probe::http;
use crate::probe::icmp::{self, PingOptions};
use crate::serve::{Content, Server};
use crate::topology::{self, Place};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub const OBJECTIVE1: &str = include_str!("../examples/objective1-veth.yaml");
pub const OBJECTIVE2: &str = include_str!("../examples/objective2-bridge.yaml");
pub const OBJECTIVE3: &str = include_str!("../examples/objective3-nat.yaml");

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub objective: u8,
    pub title: String,
    pub ok: bool,
    /// What happened, as the tutorial would show it.
    pub output: Vec<String>,
}

/// What to watch during a step.
struct Watch<'t> {
    targets: &'t [&'t str],
    proto: &'t str,
    count: u64,
    title: &'t str,
    want: &'t [&'t str],
}

/// Where the demo says things: as it goes (text) or at the end (JSON).
pub struct Demo<'a> {
    pub prefix: String,
    pub steps: Vec<Step>,
    pub say: &'a mut dyn FnMut(&Step),
    pub narrate: &'a mut dyn FnMut(&str),
    labs: Vec<String>,
    stop: &'a AtomicBool,
}

fn strip_for_demo(text: &str) -> String {
    // The demo serves HTTP itself (no python needed), and checks expectations
    // only where it says so.
    let t = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("run:"))
        .collect::<Vec<_>>()
        .join("\n");
    match t.find("\nexpect:") {
        Some(i) => t[..i + 1].to_string(),
        None => t,
    }
}

impl<'a> Demo<'a> {
    /// `stop` is polled between steps: set it (from a Ctrl-C handler the caller
    /// installs, say) and the demo stops, taking down what it made.
    pub fn new(
        prefix: &str,
        say: &'a mut dyn FnMut(&Step),
        narrate: &'a mut dyn FnMut(&str),
        stop: &'a AtomicBool,
    ) -> Demo<'a> {
        Demo {
            prefix: prefix.into(),
            steps: Vec::new(),
            say,
            narrate,
            labs: Vec::new(),
            stop,
        }
    }

    fn interrupted(&self) -> Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(Error::Failed("interrupted".into()));
        }
        Ok(())
    }

    fn step(&mut self, objective: u8, title: &str, ok: bool, output: Vec<String>) {
        let s = Step {
            objective,
            title: title.into(),
            ok,
            output,
        };
        (self.say)(&s);
        self.steps.push(s);
    }

    fn up(&mut self, objective: u8, title: &str, text: &str) -> Result<topology::Lab> {
        self.interrupted()?;
        let lab = topology::parse_str(
            text,
            &format!("built-in objective {objective}"),
            &topology::Options {
                prefix: self.prefix.clone(),
                sandbox: true,
                check_programs: false,
            },
        )?;
        if !self.labs.contains(&lab.name) {
            self.labs.push(lab.name.clone());
        }
        let r = lab::up_lab(lab.clone(), None, false)?;
        let mut out = vec![format!(
            "nslab up --sandbox: {} changes in {:.2} s",
            r.ops.len(),
            r.seconds
        )];
        out.extend(
            crate::plan::explain::script(&r.ops)
                .into_iter()
                .filter(|c| {
                    !c.starts_with("printf") && !c.starts_with("mkdir") && !c.contains("sysctl")
                })
                .take(40)
                .map(|c| format!("  {c}")),
        );
        self.step(objective, title, true, out);
        Ok(lab)
    }

    fn ping(
        &mut self,
        objective: u8,
        lab: &topology::Lab,
        src: &str,
        dst: &str,
        expect: bool,
        title: &str,
    ) -> Result<bool> {
        self.interrupted()?;
        let rec = lab::record_of(&lab.name)?;
        let place = lab::parse_place(lab, src).ok_or_else(|| Error::Usage(src.into()))?;
        let addr = crate::probe::check::resolve(lab, dst, 4)?;
        let file = lab::place_file(&rec, &place)?;
        let opts = PingOptions {
            count: 2,
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(800),
            ..Default::default()
        };
        let mut out = vec![format!("{src}$ ping {addr}")];
        let mut lines = Vec::new();
        let r = crate::kernel::netns::run_in(&file, || {
            icmp::ping(addr, &opts, &mut |e| {
                lines.push(icmp::format_event(addr, e))
            })
        })
        .map_err(Error::io("enter namespace"))?;
        out.extend(lines);
        let got = match &r {
            Ok(rep) => {
                out.push(
                    icmp::format_report(addr, rep)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                );
                rep.received > 0
            }
            Err(e) => {
                out.push(format!("ping: connect: {e}"));
                false
            }
        };
        if !got {
            let files = crate::probe::check::places(lab)
                .into_iter()
                .filter_map(|p| lab::place_file(&rec, &p).ok().map(|f| (p, f)))
                .collect();
            if let Ok(mut cx) = crate::probe::why::Ctx::open(lab, files) {
                out.push(format!("why not: {}", cx.why_not(&place, addr)));
            }
        }
        self.step(objective, title, got == expect, out);
        Ok(got)
    }

    fn down(&mut self, objective: u8, lab: &topology::Lab) -> Result<()> {
        let r = lab::down(&lab.name, true)?;
        self.labs.retain(|l| l != &lab.name);
        self.step(
            objective,
            &format!("take lab {} down", lab.name),
            true,
            vec![format!(
                "nslab down: {} namespaces removed in {:.2} s; nothing left behind",
                r.namespaces.len(),
                r.seconds
            )],
        );
        Ok(())
    }

    /// Run the built-in server in `node` on `port` while `f` runs.
    fn with_server<T>(
        &mut self,
        lab: &topology::Lab,
        node: &str,
        bind: SocketAddr,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let rec = lab::record_of(&lab.name)?;
        let file = lab::place_file(&rec, &Place::Node(node.into()))?;
        let content = Content::Page { node: node.into() };
        let server = crate::kernel::netns::run_in(&file, move || Server::bind(bind, content))
            .map_err(Error::io("enter namespace"))?
            .map_err(|e| Error::Failed(format!("serve in {node}: {e}")))?;
        let stop = AtomicBool::new(false);
        let log = std::sync::Mutex::new(Vec::new());
        let cfg = crate::config::inherit();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _cfg = cfg.enter();
                server.serve(&stop, &mut |l| log.lock().expect("log").push(l.to_string()))
            });
            let r = f(self);
            stop.store(true, Ordering::SeqCst);
            r
        })
    }

    fn http(
        &mut self,
        objective: u8,
        lab: &topology::Lab,
        from: &str,
        to: SocketAddr,
        plain_text: bool,
    ) -> Result<()> {
        self.interrupted()?;
        let rec = lab::record_of(&lab.name)?;
        let file = lab::place_file(&rec, &Place::Node(from.into()))?;
        if plain_text {
            let r = crate::kernel::netns::run_in(&file, || {
                http::send_raw_line(to, "hello", Duration::from_secs(5))
            })
            .map_err(Error::io("enter namespace"))?;
            let (ok, out) = match r {
                Ok(ans) => {
                    let ok = ans.contains("400") && ans.contains("Bad request syntax");
                    let mut v = vec![format!("{from}$ echo hello | nc {} {}", to.ip(), to.port())];
                    v.extend(
                        ans.lines()
                            .filter(|l| l.contains("Error code") || l.contains("Message"))
                            .map(|l| l.trim().replace("<p>", "").replace("</p>", "")),
                    );
                    (ok, v)
                }
                Err(e) => (false, vec![e.to_string()]),
            };
            self.step(objective, "plain text instead of HTTP: the server answers code 400, Bad request syntax (TCP works, the text is not HTTP)", ok, out);
        } else {
            let r = crate::kernel::netns::run_in(&file, || {
                http::http_get(to, &to.ip().to_string(), "/", Duration::from_secs(5))
            })
            .map_err(Error::io("enter namespace"))?;
            let (ok, out) = match r {
                Ok(resp) => (
                    resp.status == 200,
                    vec![
                        format!("{from}$ curl http://{to}/"),
                        format!("HTTP/1.0 {} {}", resp.status, resp.reason),
                        format!(
                            "(a page from {})",
                            resp.header("x-nslab-node").unwrap_or("the server")
                        ),
                    ],
                ),
                Err(e) => (false, vec![e.to_string()]),
            };
            self.step(
                objective,
                &format!("HTTP from {from} to the web server at {to}"),
                ok,
                out,
            );
        }
        Ok(())
    }

    /// Capture on `w.targets` while `act` runs; the step is ok if every `w.want` was seen.
    fn capture_during(
        &mut self,
        objective: u8,
        lab: &topology::Lab,
        w: Watch,
        act: impl FnOnce(&mut Self) -> Result<bool>,
    ) -> Result<()> {
        self.interrupted()?;
        let rec = lab::record_of(&lab.name)?;
        let specs: Vec<String> = w.targets.iter().map(|s| s.to_string()).collect();
        let t = lab::capture_targets(&rec, &specs)?;
        let socks = engine::open(&t).map_err(|e| Error::Failed(e.to_string()))?;
        let filter = crate::capture::decode::Filter::new(Some(w.proto), None, None)
            .map_err(|e| Error::Failed(e.to_string()))?;
        let opts = CapOpts {
            count: Some(w.count),
            duration: Some(Duration::from_secs(4)),
            filter: Some(filter),
        };
        let stop = AtomicBool::new(false);
        let cfg = crate::config::inherit();
        let lines = std::thread::scope(|s| -> Result<Vec<String>> {
            let h = s.spawn(|| {
                let _cfg = cfg.enter();
                let mut lines = Vec::new();
                let r = engine::run(&t, socks, &opts, &stop, None, &mut |p| {
                    lines.push(engine::line(p))
                });
                r.map(|_| lines)
            });
            let r = act(self);
            if r.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            let lines = h
                .join()
                .map_err(|_| Error::Failed("capture thread".into()))?
                .map_err(|e| Error::Failed(e.to_string()))?;
            r?;
            Ok(lines)
        })?;
        let ok = w.want.iter().all(|x| lines.iter().any(|l| l.contains(x)));
        let mut out = vec![format!("host$ nslab capture {}", w.targets.join(" "))];
        out.extend(lines);
        self.step(objective, w.title, ok, out);
        Ok(())
    }

    fn identify(&mut self, objective: u8, lab: &topology::Lab, node: &str) -> Result<()> {
        let ns = crate::plan::ns_of(lab, &Place::Node(node.into()));
        let log = crate::programs::log_dir(&lab.name).join("demo-sleep.log");
        let (pid, start) =
            crate::programs::spawn(&ns, &["sleep".to_string(), "30".to_string()], &log, None)?;
        let ids = lab::identify(pid).unwrap_or_default();
        crate::kernel::procs::stop(pid, start, Duration::from_secs(1));
        let ok = ids.iter().any(|i| ns == i.namespace);
        let out: Vec<String> = std::iter::once(format!(
            "{node}$ sleep 30 &  # pid {pid}; host$ nslab identify {pid}"
        ))
        .chain(ids.iter().map(|i| {
            format!(
                "{}\t(lab {}, {})",
                i.namespace,
                i.lab.clone().unwrap_or_default(),
                i.place.clone().unwrap_or_default()
            )
        }))
        .collect();
        self.step(
            objective,
            "which namespace is a process in? (ip netns identify)",
            ok,
            out,
        );
        Ok(())
    }

    /// The whole tutorial.
    pub fn run(&mut self) -> Result<()> {
        let r = self.script();
        // Whatever happened (an error, Ctrl-C), leave nothing behind.
        for l in std::mem::take(&mut self.labs) {
            if let Err(e) = lab::down(&l, true) {
                (self.narrate)(&format!("cleanup of {l}: {e}"));
            }
        }
        r
    }

    fn script(&mut self) -> Result<()> {
        self.objective1()?;
        self.objective2()?;
        self.objective3()
    }

    /// Two namespaces and a cable: first without routes, then with them.
    fn objective1(&mut self) -> Result<()> {
        (self.narrate)(
            "Objective 1: two namespaces, one virtual cable, a web server in one and a client in the other.",
        );
        // The tutorial's first try: addresses without routes between them.
        let first = strip_for_demo(OBJECTIVE1).replace("/24", "/32");
        let l1 = self.up(1, "create namespaces red and green, a veth cable between them, addresses (/32: no route yet)", &first)?;
        self.ping(
            1,
            &l1,
            "red",
            "192.168.1.1",
            true,
            "each namespace can ping itself",
        )?;
        self.ping(
            1,
            &l1,
            "red",
            "green",
            false,
            "but not the other: there is no route",
        )?;
        let l1 = self.up(
            1,
            "add the routes (the tutorial's fix): /24 addresses bring a route to 192.168.1.0/24",
            &strip_for_demo(OBJECTIVE1),
        )?;
        self.ping(1, &l1, "red", "green", true, "now red reaches green")?;
        self.ping(1, &l1, "green", "red", true, "and green reaches red")?;
        let srv: SocketAddr =
            SocketAddr::new("192.168.1.1".parse::<IpAddr>().expect("constant"), 9000);
        self.with_server(&l1, "red", srv, |d| {
            d.http(1, &l1, "green", srv, false)?;
            d.http(1, &l1, "green", srv, true)
        })?;
        self.identify(1, &l1, "green")?;
        self.down(1, &l1)
    }

    /// Three namespaces on a bridge.
    fn objective2(&mut self) -> Result<()> {
        let p = self.prefix.clone();
        (self.narrate)(
            "Objective 2: three namespaces on a bridge (a switch) with an address, 192.168.0.1/16.",
        );
        let l2 = self.up(
            2,
            "create bridge bri0, namespaces black, white and green, three cables plugged into bri0",
            &strip_for_demo(OBJECTIVE2),
        )?;
        let st = crate::status::for_lab(&l2.name, None, &p)?;
        let bri: Vec<String> = st
            .bridges
            .iter()
            .map(|b| {
                format!(
                    "{} {} ports: {}",
                    b.name,
                    b.addresses.join(" "),
                    b.ports
                        .iter()
                        .map(|x| x.0.clone())
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })
            .collect();
        self.step(2, "status: the bridge and its ports", st.ok, bri);
        self.ping(
            2,
            &l2,
            "green",
            "black",
            true,
            "green pings black across the bridge",
        )?;
        self.ping(
            2,
            &l2,
            "host",
            "white",
            true,
            "the host reaches white through bri0",
        )?;
        let srv: SocketAddr =
            SocketAddr::new("192.168.1.1".parse::<IpAddr>().expect("constant"), 800);
        self.with_server(&l2, "black", srv, |d| d.http(2, &l2, "white", srv, false))?;
        let l2c = l2.clone();
        self.capture_during(
            2,
            &l2,
            Watch {
                targets: &["host:bbrveth"],
                proto: "icmp",
                count: 4,
                title: "tcpdump -i bbrveth: green's ping to black crosses the bridge port",
                want: &[
                    "192.168.3.1 > 192.168.1.1: ICMP echo request",
                    "192.168.1.1 > 192.168.3.1: ICMP echo reply",
                ],
            },
            move |d| {
                d.ping(
                    2,
                    &l2c,
                    "green",
                    "black",
                    true,
                    "green pings black while we watch",
                )
            },
        )?;
        self.down(2, &l2)
    }

    /// The emulated internet: without NAT, with it, and the file's expectations.
    fn objective3(&mut self) -> Result<()> {
        (self.narrate)(
            "Objective 3: the namespaces reach the outside (an emulated internet: 198.51.100.8 stands in for 8.8.8.8).",
        );
        let base3 = strip_for_demo(OBJECTIVE3);
        let no_nat = base3.replace("nat:\n  - { source: 192.168.0.0/16, not_out: bri0 }\n", "");
        let l3 = self.up(
            3,
            "objective 2 plus a default route via 192.168.0.1 in each namespace, no NAT yet",
            &no_nat,
        )?;
        let l3c = l3.clone();
        self.capture_during(
            3,
            &l3,
            Watch { targets: &["host:uplink"], proto: "icmp", count: 2, title: "the ping leaves by the host's uplink with its private source... and no answer comes", want: &["192.168.3.1 > 198.51.100.8: ICMP echo request"] },
            move |d| {
                d.ping(
                    3,
                    &l3c,
                    "green",
                    "internet",
                    false,
                    "green cannot reach the internet",
                )
            },
        )?;
        let l3 = self.up(3, "add the masquerade: iptables -t nat -A POSTROUTING -s 192.168.0.0/16 ! -o bri0 -j MASQUERADE", &base3)?;
        self.objective3_with_nat(&l3)
    }

    /// Objective 3 with the masquerade: the internet answers, and `nslab check`
    /// passes.
    fn objective3_with_nat(&mut self, l3: &topology::Lab) -> Result<()> {
        let p = self.prefix.clone();
        let l3c = l3.clone();
        self.capture_during(
            3,
            l3,
            Watch {
                targets: &["internet:isp"],
                proto: "icmp",
                count: 2,
                title: "now the internet sees the host's address, and answers",
                want: &["203.0.113.2 > 198.51.100.8: ICMP echo request"],
            },
            move |d| {
                d.ping(
                    3,
                    &l3c,
                    "green",
                    "internet",
                    true,
                    "green reaches the internet",
                )
            },
        )?;
        let rec = lab::record_of(&l3.name)?;
        let mut l3e = l3.clone();
        l3e.expect = topology::parse_str(
            OBJECTIVE3,
            "objective 3",
            &topology::Options {
                prefix: p.clone(),
                sandbox: true,
                check_programs: false,
            },
        )?
        .expect;
        let r = crate::probe::check::check(&rec, &l3e, false)?;
        let out: Vec<String> = r
            .expectations
            .iter()
            .map(|e| format!("{} {}", if e.ok { "PASS" } else { "FAIL" }, e.name))
            .collect();
        self.step(
            3,
            "nslab check: the connectivity the tutorial shows",
            r.ok,
            out,
        );
        self.down(3, l3)
    }
}
