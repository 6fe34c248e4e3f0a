//! The library API: bring a lab up from a Rust program or test, run things in
//! its nodes, probe it, and have it taken down when the handle is dropped.
//!
//! The model is Mininet's Python API (`net.start()`, `h1.cmd()`,
//! `net.pingAll()`, `net.stop()`):
//!
//! ```no_run
//! use nslab::{Lab, Options, Topology};
//!
//! # fn main() -> nslab::Result<()> {
//! let topo = Topology::builder("demo")
//!     .node("a", |n| n.interface("eth0", &["10.0.0.1/24"]))
//!     .node("b", |n| n.interface("eth0", &["10.0.0.2/24"]))
//!     .link("a:eth0", "b:eth0")
//!     .build();
//! let opts = Options { prefix: "t1-".into(), sandbox: true, ..Options::default() };
//! let lab = Lab::up(&topo, &opts)?;
//! assert!(lab.ping("a", "b")?.all_received());
//! let out = lab.node("b")?.run(["ip", "-br", "addr"])?;
//! assert!(String::from_utf8_lossy(&out.stdout).contains("10.0.0.2"));
//! lab.down()?; // or let it drop: the lab is taken down then too
//! # Ok(())
//! # }
//! ```
//!
//! Everything here needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), as the CLI
//! does. Nothing here prints, exits or installs signal handlers; errors are
//! [`Error`]s whose source chain keeps the kernel's errno.

use crate::config::Config;
pub use crate::error::{Error, Result};
use crate::kernel::{exec::Entry, netns};
use crate::lab as core;
use crate::plan::Ns;
use crate::record::Record;
use crate::topology::{self, Place};
use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use crate::capture::engine::Seen as Packet;
pub use crate::capture::engine::Stats as CaptureStats;
pub use crate::lab::{DownReport, PlanReport, TestHooks};
pub use crate::probe::check::CheckOptions;
pub use crate::probe::check::Report as CheckReport;
pub use crate::probe::http::HttpResponse;
pub use crate::probe::icmp::{PingOptions, PingReport};
pub use crate::status::Status;
pub use control::{
    HealReport, LinkReport, Partition, PartitionReport, PerfInterval, PerfOptions, PerfReport,
    Shape, ShapeReport, ShapeView,
};
pub use ping::{PingEvent, PingOutcome, WhyNot};

mod control;
mod ping;

/// A topology: the text of a topology file (YAML, as `nslab up FILE` reads),
/// not validated yet. It is validated by [`Lab::up`] (or
/// [`Topology::validate`]) with the [`Options`], since the prefix and sandbox
/// mode change what is valid; the errors are the CLI's, with line and column.
///
/// ```
/// use nslab::Topology;
///
/// let t = Topology::from_yaml("
/// name: pair
/// nodes:
///   a: { interfaces: { eth0: { address: 10.0.0.1/24 } } }
///   b: { interfaces: { eth0: { address: 10.0.0.2/24 } } }
/// links:
///   - [ a:eth0, b:eth0 ]
/// ");
/// assert!(t.validate(&nslab::Options::default()).is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct Topology {
    text: String,
    /// How errors name it: the file, or `<yaml>`.
    origin: String,
    file: Option<PathBuf>,
}

impl Topology {
    /// Read a topology file (validated at [`Lab::up`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Topology> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = topology::read_text(path)
            .map_err(|m| topology::TopologyError::one(&origin, "", 0, 0, String::new(), m))?;
        Ok(Topology {
            text,
            origin,
            file: Some(path.to_path_buf()),
        })
    }

    /// A topology from YAML text, as in a topology file.
    pub fn from_yaml(text: impl Into<String>) -> Topology {
        Topology {
            text: text.into(),
            origin: "<yaml>".into(),
            file: None,
        }
    }

    /// Start a typed builder for a lab named `name` (see [`Builder`]).
    pub fn builder(name: &str) -> Builder {
        Builder {
            name: name.into(),
            ..Builder::default()
        }
    }

    /// The YAML text.
    pub fn yaml(&self) -> &str {
        &self.text
    }

    /// The lab's name with these options: the prefix and the file's `name:`.
    pub fn lab_name(&self, opts: &Options) -> Result<String> {
        Ok(self.model(opts, false)?.name)
    }

    /// Validate with these options, as `up` would (its `run:` programs must exist).
    pub fn validate(&self, opts: &Options) -> Result<()> {
        self.model(opts, true).map(|_| ())
    }

    /// Bring the lab up: [`Lab::up`].
    pub fn up(&self, opts: &Options) -> Result<Lab> {
        Lab::up(self, opts)
    }

    fn model(&self, opts: &Options, check_programs: bool) -> Result<topology::Lab> {
        let lab = topology::parse_str(
            &self.text,
            &self.origin,
            &topology::Options {
                prefix: opts.prefix.clone(),
                sandbox: opts.sandbox,
                check_programs,
            },
        )?;
        // A lab over several machines: this machine's part of it.
        match &opts.machine {
            Some(m) => topology::machines::part(&lab, m)
                .map_err(|e| Error::Usage(format!("{}: {e}", self.origin))),
            None => Ok(lab),
        }
    }
}

/// A typed way to write a topology. It writes the YAML a person would, so it
/// is validated (and its errors worded) exactly as a file.
///
/// ```
/// use nslab::Topology;
///
/// let t = Topology::builder("routed")
///     .node("a", |n| n.interface("eth0", &["10.0.1.2/24"]).route("default via 10.0.1.1"))
///     .node("r", |n| {
///         n.interface("left", &["10.0.1.1/24"])
///             .interface("right", &["10.0.2.1/24"])
///             .forward(true)
///     })
///     .node("b", |n| n.interface("eth0", &["10.0.2.2/24"]).route("default via 10.0.2.1"))
///     .link("a:eth0", "r:left")
///     .link("r:right", "b:eth0")
///     .expect_reach("a", "b")
///     .build();
/// assert!(t.yaml().contains("forward: true"));
/// assert!(t.validate(&nslab::Options::default()).is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: String,
    nodes: Vec<NodeSpec>,
    bridges: Vec<(String, Vec<String>)>,
    /// Bridges that run STP (kernel minimum timers).
    stp: Vec<String>,
    links: Vec<(String, String)>,
    nat: Vec<(String, Option<String>)>,
    expect: Vec<(&'static str, String)>,
}

/// One node of a [`Builder`]: its interfaces, routes, forwarding and the
/// programs `up` starts in it.
///
/// ```
/// let t = nslab::Topology::builder("n")
///     .node("web", |n: nslab::NodeSpec| {
///         n.interface("eth0", &["10.0.0.2/24", "2001:db8::2/64"])
///             .route("default via 10.0.0.1")
///             .run("python3 -m http.server 8000")
///     })
///     .build();
/// assert!(t.yaml().contains("python3 -m http.server 8000"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    name: String,
    interfaces: Vec<(String, Vec<String>)>,
    routes: Vec<String>,
    forward: Option<bool>,
    run: Vec<String>,
}

impl NodeSpec {
    /// An interface with its addresses (`10.0.0.1/24`, `2001:db8::1/64`).
    pub fn interface(mut self, name: &str, addresses: &[&str]) -> NodeSpec {
        self.interfaces.push((
            name.into(),
            addresses.iter().map(|a| a.to_string()).collect(),
        ));
        self
    }
    /// A route as `ip route` writes it: `default via 10.0.0.1`, `10.9.0.0/16 dev eth0`.
    pub fn route(mut self, route: &str) -> NodeSpec {
        self.routes.push(route.into());
        self
    }
    /// Forward packets (a router).
    pub fn forward(mut self, on: bool) -> NodeSpec {
        self.forward = Some(on);
        self
    }
    /// A program `up` starts in the node (the file's `run:`).
    pub fn run(mut self, command: &str) -> NodeSpec {
        self.run.push(command.into());
        self
    }
}

impl Builder {
    /// A node, described by `f`.
    pub fn node(mut self, name: &str, f: impl FnOnce(NodeSpec) -> NodeSpec) -> Builder {
        self.nodes.push(f(NodeSpec {
            name: name.into(),
            ..NodeSpec::default()
        }));
        self
    }
    /// A bridge (in the lab's host namespace) with its addresses (may be none).
    pub fn bridge(mut self, name: &str, addresses: &[&str]) -> Builder {
        self.bridges.push((
            name.into(),
            addresses.iter().map(|a| a.to_string()).collect(),
        ));
        self
    }
    /// Turn on STP on a bridge added with [`Builder::bridge`] (the file's
    /// `stp: true`): needed on every bridge of a loop of bridge-to-bridge cables.
    pub fn stp(mut self, bridge: &str) -> Builder {
        self.stp.push(bridge.into());
        self
    }
    /// A cable between two ends: `node:if`, `bridge:port`, `host:if`; two
    /// bridge ports join two bridges.
    pub fn link(mut self, a: &str, b: &str) -> Builder {
        self.links.push((a.into(), b.into()));
        self
    }
    /// Masquerade traffic from `source` (a prefix) except out of `not_out`.
    pub fn nat(mut self, source: &str, not_out: Option<&str>) -> Builder {
        self.nat.push((source.into(), not_out.map(Into::into)));
        self
    }
    /// An expectation for [`Lab::check`]: `from` reaches `to`.
    pub fn expect_reach(mut self, from: &str, to: &str) -> Builder {
        self.expect.push(("reach", format!("{from} -> {to}")));
        self
    }
    /// An expectation for [`Lab::check`]: `from` does not reach `to`.
    pub fn expect_no_reach(mut self, from: &str, to: &str) -> Builder {
        self.expect.push(("no_reach", format!("{from} -> {to}")));
        self
    }
    /// An expectation for [`Lab::check`]: a TCP connection from `from` to `to:port` is accepted.
    pub fn expect_tcp(mut self, from: &str, to: &str, port: u16) -> Builder {
        self.expect.push(("tcp", format!("{from} -> {to}:{port}")));
        self
    }

    /// The topology (validated at [`Lab::up`]).
    pub fn build(self) -> Topology {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut y = format!("name: {}\n", q(&self.name));
        if !self.nodes.is_empty() {
            y.push_str("nodes:\n");
        }
        for n in &self.nodes {
            y.push_str(&format!("  {}:\n", q(&n.name)));
            if !n.interfaces.is_empty() {
                y.push_str("    interfaces:\n");
            }
            for (i, addrs) in &n.interfaces {
                let a: Vec<String> = addrs.iter().map(|a| q(a)).collect();
                y.push_str(&format!(
                    "      {}: {{ addresses: [{}] }}\n",
                    q(i),
                    a.join(", ")
                ));
            }
            if !n.routes.is_empty() {
                y.push_str("    routes:\n");
            }
            for r in &n.routes {
                y.push_str(&format!("      - {}\n", q(r)));
            }
            if let Some(f) = n.forward {
                y.push_str(&format!("    forward: {f}\n"));
            }
            if !n.run.is_empty() {
                y.push_str("    run:\n");
            }
            for r in &n.run {
                y.push_str(&format!("      - {}\n", q(r)));
            }
        }
        if !self.bridges.is_empty() {
            y.push_str("bridges:\n");
        }
        for (b, addrs) in &self.bridges {
            let a: Vec<String> = addrs.iter().map(|a| q(a)).collect();
            let stp = if self.stp.contains(b) {
                ", stp: true"
            } else {
                ""
            };
            y.push_str(&format!(
                "  {}: {{ addresses: [{}]{stp} }}\n",
                q(b),
                a.join(", ")
            ));
        }
        if !self.links.is_empty() {
            y.push_str("links:\n");
        }
        for (a, b) in &self.links {
            y.push_str(&format!("  - [{}, {}]\n", q(a), q(b)));
        }
        if !self.nat.is_empty() {
            y.push_str("nat:\n");
        }
        for (s, not_out) in &self.nat {
            match not_out {
                Some(o) => y.push_str(&format!("  - {{ source: {}, not_out: {} }}\n", q(s), q(o))),
                None => y.push_str(&format!("  - {{ source: {} }}\n", q(s))),
            }
        }
        if !self.expect.is_empty() {
            y.push_str("expect:\n");
        }
        for (k, v) in &self.expect {
            y.push_str(&format!("  - {k}: {}\n", q(v)));
        }
        Topology {
            text: y,
            origin: format!("<builder {}>", self.name),
            file: None,
        }
    }
}

/// How a lab is brought up (the CLI's flags and `NSLAB_*` variables). The
/// library reads no environment: everything is here.
///
/// `state_dir`, `netns_dir` and `ns_workers` belong to the lab: the [`Lab`]
/// (and its [`Node`]s, [`Process`]es and [`Capture`]s) keeps them and uses
/// them for everything it does, on every thread, so labs with different
/// settings live side by side in one process (parallel tests). `None` takes
/// the default (`/run/nslab`, `/run/netns`, one namespace worker per CPU, 1
/// to 4; for the CLI, what its `NSLAB_*` variables say).
///
/// ```
/// let opts = nslab::Options { prefix: "mytest-".into(), sandbox: true, ..Default::default() };
/// assert!(!opts.force);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Put before the lab's name and every namespace it makes (`--prefix`).
    pub prefix: String,
    /// The lab gets a host namespace of its own (`--sandbox`); recommended for tests.
    pub sandbox: bool,
    /// Host mode: allow addresses that overlap the host's routes (`--force`).
    pub force: bool,
    /// `up` drops the lab's runtime state (links set down, partitions, shaping)
    /// instead of keeping it (`--reset`).
    pub reset: bool,
    /// Records, locks, logs, hosts files of the lab.
    pub state_dir: Option<PathBuf>,
    /// Where the lab's named namespaces are mounted.
    pub netns_dir: Option<PathBuf>,
    /// Threads that create namespaces.
    pub ns_workers: Option<usize>,
    /// Crash, refusal and pause points, for tests of nslab itself.
    pub hooks: TestHooks,
    /// In a lab over several machines (`machines:`), the machine whose part
    /// this is (`--machine`).
    pub machine: Option<String>,
}

impl Options {
    /// The settings of a lab opened with these options: what is in force on
    /// this thread, with what the options say over it.
    fn config(&self) -> Arc<Config> {
        let mut c = (*crate::config::get()).clone();
        if let Some(d) = &self.state_dir {
            c.state_dir = d.clone();
        }
        if let Some(d) = &self.netns_dir {
            c.netns_dir = d.clone();
        }
        if self.ns_workers.is_some() {
            c.ns_workers = self.ns_workers;
        }
        Arc::new(c.absolute())
    }
}

/// A lab that is up. Dropping it takes the lab down (errors ignored), also
/// while a panic unwinds; [`Lab::down`] does it explicitly and returns the
/// report, [`Lab::detach`] keeps the lab up.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// let topo = nslab::Topology::from_file("examples/objective1-veth.yaml")?;
/// let opts = nslab::Options { prefix: "doc-".into(), sandbox: true, ..Default::default() };
/// let lab = nslab::Lab::up(&topo, &opts)?;
/// println!("{} is up with nodes {:?}", lab.name(), lab.nodes());
/// let report = lab.check()?;
/// assert!(report.ok);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Lab {
    name: String,
    /// What it was built from (None: its record has none, it never finished
    /// coming up; only `status` against a file and `down` work then).
    model: Option<topology::Lab>,
    /// The prefix it was opened with (for a topology compared with it).
    prefix: String,
    armed: bool,
    config: Arc<Config>,
}

impl Lab {
    /// Bring the lab up (as `nslab up`): validate `topo` with `opts`, create
    /// what is missing, start its `run:` programs, and wait until it passes
    /// traffic. A lab that is up already is brought in line with `topo`. On
    /// failure, what this call made is rolled back.
    pub fn up(topo: &Topology, opts: &Options) -> Result<Lab> {
        Self::up_with(topo, opts, None).map(|(lab, _)| lab)
    }

    /// [`Lab::up`], also returning what it did (the [`UpReport`](crate::UpReport): the steps,
    /// notes on what the lab found and left alone) and telling `progress`
    /// (steps done, steps in all) as it goes.
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// let topo = nslab::Topology::from_file("examples/objective1-veth.yaml")?;
    /// let opts = nslab::Options { prefix: "doc-".into(), sandbox: true, ..Default::default() };
    /// let (lab, report) = nslab::Lab::up_with(&topo, &opts, None)?;
    /// println!("{} steps in {:.2} s", report.ops.len(), report.seconds);
    /// # drop(lab);
    /// # Ok(())
    /// # }
    /// ```
    pub fn up_with(
        topo: &Topology,
        opts: &Options,
        progress: Option<Box<dyn FnMut(usize, usize)>>,
    ) -> Result<(Lab, crate::lab::UpReport)> {
        let config = opts.config();
        crate::config::scoped(config.clone(), || {
            let model = topo.model(opts, true)?;
            if !model.machines.is_empty() && model.machine.is_none() {
                return Err(Error::Usage(format!(
                    "{}: the lab spans machines {}; bring up one machine's part with --machine NAME on each machine",
                    topo.origin,
                    topology::machines::machine_names(&model)
                )));
            }
            let up_opts = core::UpOptions {
                prefix: opts.prefix.clone(),
                sandbox: opts.sandbox,
                force: opts.force,
                reset: opts.reset,
                hooks: opts.hooks.clone(),
            };
            let (rep, model) =
                core::up_lab_returning(model, topo.file.as_deref(), &up_opts, progress)?;
            let lab = Lab {
                name: rep.lab.clone(),
                model: Some(model),
                prefix: opts.prefix.clone(),
                armed: true,
                config,
            };
            Ok((lab, rep))
        })
    }

    /// A handle on a lab that is up already (brought up by `nslab up`, or
    /// [`Lab::detach`]ed). Dropping it takes the lab down, as for [`Lab::up`].
    pub fn attach(name: &str, opts: &Options) -> Result<Lab> {
        let mut lab = Self::open(name, opts)?;
        lab.model()?;
        lab.armed = true;
        Ok(lab)
    }

    /// A handle on a lab that has a record, that leaves the lab as it is when
    /// dropped (as the CLI's commands do: `status`, `check`, ...). Unlike
    /// [`Lab::attach`] it also opens a lab that never finished coming up, for
    /// [`Lab::status_against`] and [`Lab::down`].
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// let lab = nslab::Lab::open("mylab", &nslab::Options::default())?;
    /// println!("{}", if lab.status()?.ok { "as its file says" } else { "drifted" });
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(name: &str, opts: &Options) -> Result<Lab> {
        if let Some(p) = topology::validate::name_problem(name) {
            return Err(Error::Usage(format!("lab name {name:?} {p}")));
        }
        let config = opts.config();
        let rec = crate::config::scoped(config.clone(), || core::record_of(name))?;
        Ok(Lab {
            name: name.into(),
            model: rec.model,
            prefix: opts.prefix.clone(),
            armed: false,
            config,
        })
    }

    /// The names of the labs that have a record (up, or half up after a
    /// crash) in the state directory of `opts`, sorted.
    pub fn list(opts: &Options) -> Result<Vec<String>> {
        crate::config::scoped(opts.config(), || {
            crate::record::list().map_err(Error::io("list labs"))
        })
    }

    /// Run `f` with the lab's settings in force (on this thread and the
    /// library's threads it starts).
    fn scoped<T>(&self, f: impl FnOnce() -> T) -> T {
        crate::config::scoped(self.config.clone(), f)
    }

    fn model(&self) -> Result<&topology::Lab> {
        self.model.as_ref().ok_or_else(|| {
            Error::Failed(format!(
                "lab {} is not completely up; run `nslab up` again",
                self.name
            ))
        })
    }

    /// The lab's name (prefix included).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// In a lab over several machines: the machine whose part this is.
    pub fn machine(&self) -> Option<&str> {
        self.model.as_ref().and_then(|m| m.machine.as_deref())
    }

    /// A node (or `host`, `internet`), to run things in.
    pub fn node(&self, name: &str) -> Result<Node> {
        let model = self.model()?;
        let place = core::places::place_of_lab(model, &self.name, name)?;
        let ns = crate::plan::ns_of(model, &place);
        Ok(Node {
            lab: self.name.clone(),
            place,
            ns,
            config: self.config.clone(),
        })
    }

    /// The names of the lab's nodes, in file order.
    pub fn nodes(&self) -> Vec<String> {
        self.model
            .iter()
            .flat_map(|m| m.nodes.iter().map(|n| n.name.clone()))
            .collect()
    }

    /// The lab compared with the kernel, as `nslab status` (`ok` when nothing drifted).
    pub fn status(&self) -> Result<Status> {
        self.scoped(|| crate::status::for_lab(&self.name, None, ""))
    }

    /// The lab compared with `topo` (validated with the lab's prefix and
    /// sandbox mode) instead of what it was built from, as `nslab status FILE`.
    pub fn status_against(&self, topo: &Topology) -> Result<Status> {
        self.scoped(|| {
            let rec = self.record()?;
            let mut opts = self.options_of(&rec, topo);
            // A machine's part is compared with the same machine's part of the file.
            opts.machine = self.model.as_ref().and_then(|m| m.machine.clone());
            let model = topo.model(&opts, false)?;
            crate::status::status(&rec, &model, topo.origin.clone())
        })
    }

    /// The options the lab was brought up with, for a file compared with it.
    /// The prefix comes from the record (a lab opened by name has none of
    /// its own); a record that never finished `up` has no model, so its
    /// prefix is then the lab's name before the file's `name:`.
    fn options_of(&self, rec: &Record, topo: &Topology) -> Options {
        let mut opts = Options {
            prefix: self.prefix.clone(),
            sandbox: rec.sandbox,
            ..Options::default()
        };
        if let Some(m) = &rec.model {
            opts.prefix = m.prefix.clone();
        } else if let Ok(base) = topo.lab_name(&Options::default())
            && let Some(p) = rec.lab.strip_suffix(base.as_str())
        {
            opts.prefix = p.to_string();
        }
        opts
    }

    /// What `up` would change now (nothing, when the lab is as its file says).
    pub fn plan(&self) -> Result<PlanReport> {
        self.scoped(|| core::plan(self.model()?))
    }

    /// What [`Lab::up`] would do with `topo` and `opts`, without doing it (as
    /// `nslab plan`): for a lab that is up, only the difference.
    pub fn plan_for(topo: &Topology, opts: &Options) -> Result<PlanReport> {
        crate::config::scoped(opts.config(), || core::plan(&topo.model(opts, true)?))
    }

    /// Check the file's `expect:` list, as `nslab check --no-matrix` does.
    /// The report says which held (`ok`: all of them) and why the others did
    /// not.
    pub fn check(&self) -> Result<CheckReport> {
        self.check_with(&CheckOptions::default())
    }

    /// Probe every place of the lab from every other (the reachability matrix
    /// of `nslab check`, like Mininet's `pingAll`), and the file's
    /// expectations. Each cell of `matrix` says whether the pair reached.
    pub fn ping_all(&self) -> Result<CheckReport> {
        self.check_with(&CheckOptions {
            matrix: true,
            ..CheckOptions::default()
        })
    }

    /// [`Lab::check`] with the matrix, its rows and columns, a sample of its
    /// pairs and a progress callback as `opts` says (`nslab check`'s options).
    pub fn check_with(&self, opts: &CheckOptions) -> Result<CheckReport> {
        self.scoped(|| {
            let rec = self.record()?;
            crate::probe::check::check_with(&rec, self.model()?, opts)
        })
    }

    /// [`Lab::check_with`], the expectations taken from `topo` (validated with
    /// the lab's prefix and sandbox mode), as `nslab check FILE`.
    pub fn check_against(&self, topo: &Topology, opts: &CheckOptions) -> Result<CheckReport> {
        self.scoped(|| {
            let rec = self.record()?;
            let mut topts = self.options_of(&rec, topo);
            // A machine's part is checked against the same machine's part of the file.
            topts.machine = self.machine().map(String::from);
            let model = topo.model(&topts, false)?;
            crate::probe::check::check_with(&rec, &model, opts)
        })
    }

    /// One echo request from `from` to `to` (as `nslab ping FROM TO -c 1`):
    /// `to` is a node (its first IPv4 address, else IPv6), `node:if`, `host`,
    /// `internet`, a bridge or an IP address. A lost reply is not an error:
    /// see [`PingReport::all_received`].
    pub fn ping(&self, from: &str, to: &str) -> Result<PingReport> {
        self.ping_with(
            from,
            to,
            &PingOptions {
                count: 1,
                ..PingOptions::default()
            },
        )
    }

    /// [`Lab::ping`] with the count, interval, timeout, size... of `opts`.
    pub fn ping_with(&self, from: &str, to: &str, opts: &PingOptions) -> Result<PingReport> {
        self.scoped(|| {
            let file = self.file_of(from)?;
            let dst = self.resolve(to)?;
            core::run_in(&file, || crate::probe::icmp::ping(dst, opts, &mut |_| {}))?
                .map_err(Error::io(format!("ping {to} ({dst}) from {from}")))
        })
    }

    /// Open a TCP connection from `from` to `to` (as for [`Lab::ping`]) on
    /// `port`, then close it; returns how long the handshake took. Refused,
    /// unreachable and timed out (2 s) are errors whose source says which.
    pub fn tcp_connect(&self, from: &str, to: &str, port: u16) -> Result<Duration> {
        self.scoped(|| {
            let file = self.file_of(from)?;
            let sa = SocketAddr::new(self.resolve(to)?, port);
            core::run_in(&file, || {
                crate::probe::tcp::tcp_connect(sa, Duration::from_secs(2))
            })?
            .map_err(|e| probe_error(format!("tcp connect from {from} to {to}:{port}"), e))
        })
    }

    /// `GET` a URL from `from`: `http://DST[:PORT][/PATH]`, DST as for
    /// [`Lab::ping`] (the `Host:` header says DST). Any HTTP status is a response.
    pub fn http_get(&self, from: &str, url: &str) -> Result<HttpResponse> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| Error::Usage(format!("{url}: only http:// URLs")))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_matches(|c| c == '[' || c == ']'),
                p.parse::<u16>()
                    .map_err(|_| Error::Usage(format!("bad port in {url}")))?,
            ),
            _ => (hostport.trim_matches(|c| c == '[' || c == ']'), 80),
        };
        self.scoped(|| {
            let file = self.file_of(from)?;
            let sa = SocketAddr::new(self.resolve(host)?, port);
            core::run_in(&file, || {
                crate::probe::http::http_get(sa, host, path, Duration::from_secs(5))
            })?
            .map_err(|e| probe_error(format!("GET {url} from {from}"), e))
        })
    }

    /// Capture packets, as `nslab capture`: `targets` are `node:if`,
    /// `host:if`, `bridge:port`, a bridge (its ports), a node (its
    /// interfaces) or `all`. The sockets are open when this returns; packets
    /// come in time order from the [`Capture`] (an iterator) until it is
    /// stopped, or `opts.count` / `opts.duration` ends it (then the iterator
    /// ends by itself).
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// # let lab: nslab::Lab = todo!();
    /// let cap = lab.capture(&["b:eth0"], &nslab::CaptureOptions::default())?;
    /// lab.ping("a", "b")?;
    /// for p in cap.stop()? {
    ///     println!("{} {}", p.label, p.text);
    /// }
    /// // Bounded: the loop ends after 4 packets or 2 seconds.
    /// let opts = nslab::CaptureOptions {
    ///     count: Some(4),
    ///     duration: Some(std::time::Duration::from_secs(2)),
    ///     ..Default::default()
    /// };
    /// for p in lab.capture(&["b:eth0"], &opts)? {
    ///     println!("{}", p.text);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn capture(&self, targets: &[&str], opts: &CaptureOptions) -> Result<Capture> {
        self.scoped(|| self.capture_in_scope(targets, opts, false))
    }

    /// As [`Lab::capture`], but the packets only go to `opts.pcap` (needed):
    /// nothing is decoded, so recording a busy link costs about what
    /// `tcpdump -w` costs. The returned [`Capture`] yields no packets; stop it
    /// (or let `count`/`duration` end it) and read its statistics.
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// # let lab: nslab::Lab = todo!();
    /// let opts = nslab::CaptureOptions {
    ///     duration: Some(std::time::Duration::from_secs(5)),
    ///     pcap: Some("flood.pcap".into()),
    ///     ..Default::default()
    /// };
    /// let cap = lab.capture_to_file(&["red:veth-red"], &opts)?;
    /// let (_, stats) = cap.stop_with_stats()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn capture_to_file(&self, targets: &[&str], opts: &CaptureOptions) -> Result<Capture> {
        if opts.pcap.is_none() {
            return Err(Error::Usage(
                "capture_to_file needs a file (CaptureOptions::pcap)".into(),
            ));
        }
        self.scoped(|| self.capture_in_scope(targets, opts, true))
    }

    fn capture_in_scope(
        &self,
        targets: &[&str],
        opts: &CaptureOptions,
        file_only: bool,
    ) -> Result<Capture> {
        let rec = self.record()?;
        let specs: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
        let targets = core::capture_targets(&rec, &specs)?;
        let socks = crate::capture::engine::open(&targets)
            .map_err(Error::io(format!("capture on {}", specs.join(" "))))?;
        let mut sink = match &opts.pcap {
            Some(path) => {
                let format = crate::capture::engine::file_format(path, targets.len())
                    .map_err(Error::Usage)?;
                Some(
                    crate::capture::engine::Sink::create(path, &targets, format)
                        .map_err(Error::io(format!("create {}", path.display())))?,
                )
            }
            None => None,
        };
        let engine_opts = crate::capture::engine::Options {
            count: opts.count,
            duration: opts.duration,
            filter: opts.filter()?,
        };
        let labels = targets.iter().map(|t| t.label.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let stop2 = stop.clone();
        let cfg = crate::config::inherit();
        let thread = std::thread::Builder::new()
            .name("nslab-capture".into())
            .spawn(move || {
                let _cfg = cfg.enter();
                match sink.as_mut() {
                    Some(sink) if file_only => {
                        crate::capture::engine::record(&targets, socks, &engine_opts, &stop2, sink)
                    }
                    sink => crate::capture::engine::run(
                        &targets,
                        socks,
                        &engine_opts,
                        &stop2,
                        sink,
                        &mut |s| {
                            let _ = tx.send(s.clone());
                        },
                    ),
                }
            })
            .map_err(Error::io("start the capture thread"))?;
        Ok(Capture {
            rx,
            stop,
            thread: Some(thread),
            labels,
        })
    }

    /// Take the lab down now (as `nslab down --kill`: programs it started and
    /// processes left in its namespaces are stopped) and say what was removed.
    pub fn down(mut self) -> Result<DownReport> {
        self.armed = false;
        self.scoped(|| core::down(&self.name, true))
    }

    /// Take the lab `name` down, whatever state it is in (also half up after
    /// a crash), as `nslab down --lab NAME`: what its record owns is removed,
    /// programs it started are stopped. Other processes still in its
    /// namespaces are killed with `kill`, else they make it fail (listed). A
    /// lab that is not up is no error (`was_up` is false).
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// let r = nslab::Lab::down_named("t-lab", &nslab::Options::default(), true)?;
    /// assert!(!r.was_up || !r.namespaces.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn down_named(name: &str, opts: &Options, kill: bool) -> Result<DownReport> {
        crate::config::scoped(opts.config(), || core::down(name, kill))
    }

    /// Keep the lab up when the handle goes; returns its name (for
    /// [`Lab::attach`], or `nslab down --lab NAME`).
    pub fn detach(mut self) -> String {
        self.armed = false;
        std::mem::take(&mut self.name)
    }

    fn record(&self) -> Result<Record> {
        core::record_of(&self.name)
    }

    fn file_of(&self, place: &str) -> Result<std::fs::File> {
        let p = core::places::place_of_lab(self.model()?, &self.name, place)?;
        core::place_file(&self.record()?, &p)
    }

    fn resolve(&self, to: &str) -> Result<IpAddr> {
        use crate::probe::check::resolve;
        let model = self.model()?;
        match resolve(model, to, 4) {
            Err(e) => resolve(model, to, 6).map_err(|_| e),
            r => r,
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.scoped(|| core::down(&self.name, true));
        }
    }
}

fn probe_error(what: String, e: crate::probe::tcp::ProbeError) -> Error {
    let kind = match e.errno() {
        Some(n) => std::io::Error::from_raw_os_error(n).kind(),
        None => std::io::ErrorKind::Other,
    };
    Error::Io {
        what,
        source: std::io::Error::new(kind, e),
    }
}

/// What [`Lab::capture`] captures, and where it also writes it.
///
/// ```
/// let o = nslab::CaptureOptions {
///     proto: Some("tcp".into()),
///     port: Some(8000),
///     count: Some(10),
///     pcap: Some("web.pcap".into()),
///     ..Default::default()
/// };
/// assert!(o.duration.is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Only this protocol: `arp`, `icmp`, `icmp6`, `tcp`, `udp`, `ip`, `ip6`.
    pub proto: Option<String>,
    /// Only packets from or to this address.
    pub host: Option<IpAddr>,
    /// Only TCP or UDP packets from or to this port.
    pub port: Option<u16>,
    /// Also write the packets to this file: pcap for one interface (or a
    /// `.pcap` name), pcapng (one interface block each) for several.
    pub pcap: Option<PathBuf>,
}

impl CaptureOptions {
    fn filter(&self) -> Result<Option<crate::capture::decode::Filter>> {
        let f =
            crate::capture::decode::Filter {
                proto: self.proto.as_deref().map(str::parse).transpose().map_err(
                    |e: crate::capture::decode::FilterError| Error::Usage(e.to_string()),
                )?,
                host: self.host,
                port: self.port,
            };
        Ok((!f.is_empty()).then_some(f))
    }
}

/// A capture running on its own thread: an iterator over the packets seen
/// ([`Packet`]: where, when, direction, the frame and its decode). `next()`
/// waits for the next packet and ends when the capture has ended; dropping
/// the capture stops it.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let mut cap = lab.capture(&["all"], &nslab::CaptureOptions::default())?;
/// lab.ping("a", "b")?;
/// while let Some(p) = cap.next_timeout(std::time::Duration::from_millis(500)) {
///     println!("{} {}", p.label, p.text);
/// }
/// cap.stop()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Capture {
    rx: std::sync::mpsc::Receiver<Packet>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::io::Result<Vec<CaptureStats>>>>,
    labels: Vec<String>,
}

impl Capture {
    /// The next packet, waiting at most `wait` (None: none came, or the capture ended).
    pub fn next_timeout(&mut self, wait: Duration) -> Option<Packet> {
        self.rx.recv_timeout(wait).ok()
    }

    /// Stop capturing (packets on their way are still delivered) and return
    /// the packets not taken yet; the pcap file, if any, is complete.
    pub fn stop(mut self) -> Result<Vec<Packet>> {
        self.finish()?;
        Ok(self.rx.try_iter().collect())
    }

    /// Where it captures: one label per interface (`b:eth0`, `br0:p1`, ...).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The next packet, waiting until one comes, the capture ends (None), or
    /// `stop` is set (None; checked every 100 ms), e.g. by a signal handler.
    pub fn next_until(&mut self, stop: &AtomicBool) -> Option<Packet> {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(p) => return Some(p),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) if stop.load(Ordering::SeqCst) => return None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Stop capturing (as [`Capture::stop`]) and return, with the packets
    /// not taken yet, what each interface saw: captured, received and
    /// dropped by the kernel.
    pub fn stop_with_stats(mut self) -> Result<(Vec<Packet>, Vec<CaptureStats>)> {
        let stats = self.finish()?;
        Ok((self.rx.try_iter().collect(), stats))
    }

    fn finish(&mut self) -> Result<Vec<CaptureStats>> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| Error::Failed("the capture thread panicked".into()))?
                .map_err(|e| Error::Failed(format!("capture: {e}"))),
            None => Ok(Vec::new()),
        }
    }
}

impl Iterator for Capture {
    type Item = Packet;
    fn next(&mut self) -> Option<Packet> {
        self.rx.recv().ok()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A node of a lab that is up (or its `host` or `internet`): run programs in
/// it, or Rust code.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let b = lab.node("b")?;
/// let out = b.run(["ip", "route"])?;
/// let server = b.spawn(["python3", "-m", "http.server", "8000"])?;
/// // Rust code inside node a: its network, its /etc/hosts (node names resolve).
/// let connected = lab.node("a")?.with(|| std::net::TcpStream::connect("b:8000").is_ok())?;
/// server.kill()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Node {
    lab: String,
    place: Place,
    ns: Ns,
    config: Arc<Config>,
}

impl Node {
    /// The node's name (`host`, `internet` for those).
    pub fn name(&self) -> String {
        self.place.to_string()
    }

    /// Its network namespace (None: host mode's host, the namespace the lab
    /// was brought up from).
    pub fn namespace(&self) -> Option<&str> {
        self.ns.name()
    }

    fn scoped<T>(&self, f: impl FnOnce() -> T) -> T {
        crate::config::scoped(self.config.clone(), f)
    }

    fn entry(&self) -> Result<Option<Entry>> {
        match self.ns.name() {
            None => Ok(None),
            Some(ns) => {
                let f = netns::open(ns).map_err(Error::io(format!("open namespace {ns}")))?;
                Ok(Some(
                    Entry::new(ns, f).map_err(Error::io(format!("prepare namespace {ns}")))?,
                ))
            }
        }
    }

    /// Run a program in the node, as `nslab exec NODE -- ARGV`, and wait for it.
    /// Its stdout and stderr are collected; a non-zero exit is not an error
    /// (see `Output::status`).
    pub fn run<I, S>(&self, argv: I) -> Result<std::process::Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(argv)?;
        cmd.stdin(std::process::Stdio::null());
        cmd.output().map_err(Error::io(format!(
            "run `{}` in {}",
            cmd.get_program().to_string_lossy(),
            self.place
        )))
    }

    /// A [`std::process::Command`] for `argv` that runs in the node as
    /// `nslab exec` does (its network namespace, its `/etc/netns` files over
    /// `/etc`, `/sys` showing its interfaces), entered in the child between
    /// fork and exec; the caller sets stdio and spawns it. (`exec()` on it
    /// replaces the calling process, which must be single-threaded, as the
    /// CLI's `exec` does.)
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// # let lab: nslab::Lab = todo!();
    /// let mut child = lab.node("b")?.command(["ping", "-c", "1", "a"])?.spawn().unwrap();
    /// assert!(child.wait().unwrap().success());
    /// # Ok(())
    /// # }
    /// ```
    pub fn command<I, S>(&self, argv: I) -> Result<std::process::Command>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        use std::os::unix::process::CommandExt;
        let argv: Vec<std::ffi::OsString> =
            argv.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| Error::Usage("empty command".into()))?;
        let mut cmd = std::process::Command::new(prog);
        cmd.args(args);
        if let Some(e) = self.scoped(|| self.entry())? {
            // SAFETY: the child only makes syscalls (setns, unshare, mount)
            // with what was prepared before the fork.
            unsafe {
                cmd.pre_exec(move || e.enter());
            }
        }
        Ok(cmd)
    }

    /// Start a program in the node that the lab owns, like the file's `run:`
    /// programs: in a cgroup of the lab's, recorded, its output to a log under
    /// the state directory; the lab's `down` (or drop) stops it and whatever it
    /// started.
    pub fn spawn<I, S>(&self, argv: I) -> Result<Process>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv: Vec<String> = argv.into_iter().map(|s| s.as_ref().to_string()).collect();
        if argv.is_empty() {
            return Err(Error::Usage("empty command".into()));
        }
        self.scoped(|| self.spawn_in_scope(argv))
    }

    fn spawn_in_scope(&self, argv: Vec<String>) -> Result<Process> {
        let node = self.place.to_string();
        let n = core::record_of(&self.lab)?.processes.len();
        let log = crate::programs::log_dir(&self.lab).join(format!("api-{node}-{n}.log"));
        let cg = crate::programs::new_cgroup(&self.lab, "api")?;
        let (pid, start_time) = match crate::programs::spawn(&self.ns, &argv, &log, cg.as_deref()) {
            Ok(x) => x,
            Err(e) => {
                if let Some(c) = &cg {
                    let _ = crate::programs::remove_cgroup(c);
                }
                return Err(e);
            }
        };
        let proc_ = crate::record::Proc {
            pid,
            start_time,
            node,
            command: argv.join(" "),
            log: Some(log.display().to_string()),
            origin: "api".into(),
            cgroup: cg.map(|c| c.display().to_string()),
        };
        if let Err(e) = core::add_process(&self.lab, proc_.clone()) {
            let _ = crate::programs::stop(&proc_, Duration::from_secs(1));
            return Err(e);
        }
        Ok(Process {
            proc_,
            lab: self.lab.clone(),
            config: self.config.clone(),
        })
    }

    /// Run `f` in the node on a new (scoped) thread: in the node's network
    /// namespace and a private mount namespace with the node's
    /// `/etc/netns/NS` files over `/etc`, so names of the lab resolve
    /// (`TcpStream::connect("b:8080")`). The calling thread never changes
    /// namespace. A panic in `f` comes back as an error.
    pub fn with<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let entry = self.scoped(|| self.entry())?;
        let place = &self.place;
        let cfg = &self.config;
        std::thread::scope(|s| {
            let h = s.spawn(move || -> Result<T> {
                let _cfg = crate::config::inherit_from(cfg).enter();
                if let Some(e) = &entry {
                    e.enter()
                        .map_err(Error::io(format!("enter node {place}")))?;
                }
                Ok(f())
            });
            match h.join() {
                Ok(r) => r,
                Err(p) => Err(Error::Failed(format!(
                    "the closure run in {place} panicked: {}",
                    panic_text(&p)
                ))),
            }
        })
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

/// A program started by [`Node::spawn`]. It belongs to the lab, not to this
/// value: dropping it does not stop it, the lab's `down` does.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let p: nslab::Process = lab.node("b")?.spawn(["sleep", "100"])?;
/// println!("pid {}, output in {:?}", p.pid(), p.log());
/// assert!(p.alive());
/// p.kill()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Process {
    proc_: crate::record::Proc,
    lab: String,
    config: Arc<Config>,
}

impl Process {
    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.proc_.pid
    }

    /// Where its stdout and stderr go.
    pub fn log(&self) -> Option<&Path> {
        self.proc_.log.as_deref().map(Path::new)
    }

    /// Is it (or anything it started) still running?
    pub fn alive(&self) -> bool {
        crate::programs::alive(&self.proc_)
    }

    /// Stop it and everything it started (SIGTERM, then SIGKILL after 1 s),
    /// and take it off the lab's record (`status` no longer lists it).
    pub fn kill(&self) -> Result<()> {
        crate::config::scoped(self.config.clone(), || {
            crate::programs::stop(&self.proc_, Duration::from_secs(1))?;
            if let Some(cg) = &self.proc_.cgroup {
                crate::programs::remove_cgroup(Path::new(cg))
                    .map_err(Error::io(format!("remove cgroup {cg}")))?;
            }
            core::remove_process(&self.lab, &self.proc_)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_writes_a_file_that_validates() {
        let t = Topology::builder("b1")
            .bridge("br0", &["10.9.0.1/24"])
            .node("a", |n| {
                n.interface("eth0", &["10.9.0.2/24", "2001:db8::2/64"])
                    .route("default via 10.9.0.1")
                    .run("sleep 1")
            })
            .node("r", |n| n.interface("eth0", &["10.9.0.3/24"]).forward(true))
            .link("a:eth0", "br0:pa")
            .link("r:eth0", "br0:pr")
            .nat("10.9.0.0/24", Some("br0"))
            .expect_reach("a", "r")
            .expect_no_reach("a", "192.0.2.1")
            .expect_tcp("a", "r", 80)
            .build();
        let opts = Options {
            prefix: "p-".into(),
            sandbox: true,
            ..Options::default()
        };
        let m = t
            .model(&opts, false)
            .unwrap_or_else(|e| panic!("{e}\n{}", t.yaml()));
        assert_eq!(m.name, "p-b1");
        assert_eq!(m.nodes.len(), 2);
        assert_eq!(m.expect.len(), 3);
        assert_eq!(t.lab_name(&opts).unwrap(), "p-b1");
    }

    #[test]
    fn builder_joins_bridges_and_turns_stp_on() {
        let ring = |stp: bool| {
            let mut b = Topology::builder("ring");
            for s in ["s1", "s2", "s3"] {
                b = b.bridge(s, &[]);
                if stp {
                    b = b.stp(s);
                }
            }
            // Ports live in one namespace: their names differ.
            b.link("s1:s1-p1", "s2:s2-p1")
                .link("s2:s2-p2", "s3:s3-p1")
                .link("s3:s3-p2", "s1:s1-p2")
                .build()
        };
        let m = ring(true)
            .model(&Options::default(), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(m.bridges.iter().all(|b| b.stp.is_some()));
        let e = ring(false).validate(&Options::default()).unwrap_err();
        assert!(
            e.to_string().contains("s1 -- s2 -- s3 -- s1 is a loop"),
            "{e}"
        );
    }

    #[test]
    fn names_with_yaml_characters_are_quoted() {
        let t = Topology::builder("x: y").build();
        let e = t.validate(&Options::default()).unwrap_err().to_string();
        assert!(e.contains("<builder x: y>"), "{e}");
    }

    #[test]
    fn a_bad_prefix_is_named() {
        let t = Topology::builder("ok").build();
        let o = Options {
            prefix: "a/b".into(),
            ..Options::default()
        };
        let e = t.validate(&o).unwrap_err();
        assert!(matches!(e, Error::Topology(_)), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("--prefix: prefix \"a/b\" must not contain"),
            "{e}"
        );
    }

    #[test]
    fn errors_say_where() {
        let t = Topology::from_yaml(
            "name: e\nnodes:\n  a:\n    interfaces: { eth0: { address: nope } }\n",
        );
        let e = t.validate(&Options::default()).unwrap_err();
        assert!(matches!(e, Error::Topology(_)));
        assert!(e.to_string().starts_with("<yaml>:4:"), "{e}");
    }
}
