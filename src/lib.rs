//! nslab: virtual networks out of Linux network namespaces.
//!
//! nslab is a command-line tool (`nslab up lab.yaml`, `nslab exec`, `nslab
//! ping`, `nslab check`, `nslab down`) and this library. The library's API is
//! the handful of types at the crate root; they let a Rust test bring a lab up,
//! run a server in one node and a client in another, assert, and have
//! everything gone when the test ends, even when it panics. Everything needs
//! root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
//!
//! # Up
//!
//! A [`Topology`] is a topology file ([`Topology::from_file`]), YAML text
//! ([`Topology::from_yaml`]) or built in Rust ([`Topology::builder`]). It is
//! validated when it comes up, with the [`Options`] (the prefix and the sandbox
//! mode change what is valid); a mistake is an [`Error`] with the line and
//! column, worded as the CLI words it.
//!
//! ```no_run
//! use nslab::{Lab, Options, Topology};
//!
//! # fn main() -> nslab::Result<()> {
//! let topo = Topology::builder("web")
//!     .node("client", |n| n.interface("eth0", &["10.1.1.2/24"]).route("default via 10.1.1.1"))
//!     .node("router", |n| {
//!         n.interface("left", &["10.1.1.1/24"])
//!             .interface("right", &["10.1.2.1/24"])
//!             .forward(true)
//!     })
//!     .node("server", |n| n.interface("eth0", &["10.1.2.2/24"]).route("default via 10.1.2.1"))
//!     .link("client:eth0", "router:left")
//!     .link("router:right", "server:eth0")
//!     .expect_reach("client", "server")
//!     .build();
//! // Sandboxed: the lab gets a host namespace of its own and touches nothing
//! // of the machine's. The prefix keeps tests running side by side apart.
//! let opts = Options { prefix: "mytest-".into(), sandbox: true, ..Options::default() };
//! let lab = Lab::up(&topo, &opts)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Run
//!
//! [`Lab::node`] gives a [`Node`]. [`Node::run`] runs a program inside it as
//! `nslab exec` does and waits for it; [`Node::spawn`] starts one the lab owns
//! (its `down` stops it).
//!
//! ```no_run
//! # fn main() -> nslab::Result<()> {
//! # let lab: nslab::Lab = todo!();
//! let out = lab.node("server")?.run(["ip", "-br", "addr"])?;
//! assert!(out.status.success());
//! let server = lab.node("server")?.spawn(["python3", "-m", "http.server", "8000"])?;
//! println!("server pid {}", server.pid());
//! # Ok(())
//! # }
//! ```
//!
//! # With
//!
//! [`Node::with`] runs a Rust closure on a new thread inside the node: its
//! network namespace, and its `/etc/hosts` (node names resolve). The caller's
//! thread stays where it is; a socket made inside keeps the node's namespace
//! wherever it is used afterwards; a panic comes back as an error.
//!
//! ```no_run
//! # fn main() -> nslab::Result<()> {
//! # let lab: nslab::Lab = todo!();
//! let listener = lab.node("server")?.with(|| std::net::TcpListener::bind("0.0.0.0:9000"))?;
//! let connected = lab.node("client")?.with(|| std::net::TcpStream::connect("server:9000").is_ok())?;
//! assert!(connected);
//! # drop(listener);
//! # Ok(())
//! # }
//! ```
//!
//! # Ping and probes
//!
//! [`Lab::ping`], [`Lab::tcp_connect`] and [`Lab::http_get`] probe from a node
//! to a node, `node:if`, `host`, `internet` or an address, as the CLI's `ping`
//! does; [`Lab::capture`] watches packets on interfaces.
//!
//! ```no_run
//! # fn main() -> nslab::Result<()> {
//! # let lab: nslab::Lab = todo!();
//! assert!(lab.ping("client", "server")?.all_received());
//! assert!(lab.tcp_connect("client", "server", 22).is_err()); // nothing listens
//! # Ok(())
//! # }
//! ```
//!
//! # Check
//!
//! [`Lab::check`] runs the topology's expectations (`expect:`) and says which
//! held and why the others did not; [`Lab::status`] compares the lab with the
//! kernel.
//!
//! ```no_run
//! # fn main() -> nslab::Result<()> {
//! # let lab: nslab::Lab = todo!();
//! let report = lab.check()?;
//! for e in report.expectations.iter().filter(|e| !e.ok) {
//!     eprintln!("{}: {}", e.name, e.detail);
//! }
//! assert!(report.ok);
//! assert!(lab.status()?.ok);
//! # Ok(())
//! # }
//! ```
//!
//! # Break and bend links
//!
//! [`Lab::link_down`] and [`Lab::link_up`] pull a cable out and plug it back
//! in; [`Lab::partition`] cuts every path between two groups of nodes until
//! [`Lab::heal`]; [`Lab::shape`] slows, delays or drops what leaves one end
//! of a cable (a [`Shape`]), and [`Lab::perf`] measures the throughput that
//! is left. [`Lab::ping_explained`] says why a ping got no reply (a
//! [`WhyNot`]: the link that is down, the partition, the route...).
//!
//! ```no_run
//! # fn main() -> nslab::Result<()> {
//! # let lab: nslab::Lab = todo!();
//! lab.link_down("client:eth0")?;
//! let p = lab.ping_explained("client", "server", &Default::default(), &mut |_| {})?;
//! assert!(!p.ok());
//! lab.link_up("client:eth0")?;
//! let ten = nslab::Shape { rate: Some(10_000_000), ..Default::default() };
//! lab.shape("server:eth0", &ten)?; // server's egress: 10 Mbit/s
//! let r = lab.perf("server", "client", &nslab::PerfOptions::default())?;
//! assert!(r.bits_per_second < 10.5e6);
//! # Ok(())
//! # }
//! ```
//!
//! # Drop
//!
//! Dropping the [`Lab`] takes the lab down (also while a panic unwinds;
//! errors are ignored there). [`Lab::down`] does it explicitly and returns
//! the [`DownReport`] or the error; [`Lab::detach`] keeps the lab up and
//! returns its name, for `nslab down --lab NAME` or [`Lab::attach`].
//!
//! ```no_run
//! # fn main() -> nslab::Result<()> {
//! # let lab: nslab::Lab = todo!();
//! let report = lab.down()?;
//! println!("removed {:?}", report.namespaces);
//! # Ok(())
//! # }
//! ```
//!
//! The library reads no environment: [`Options`] holds what the CLI takes
//! from `NSLAB_*` variables. They belong to the lab: each [`Lab`] (and the
//! [`Node`]s, [`Process`]es and [`Capture`]s it gives) keeps its own state
//! and namespace directories, so tests running side by side in one process
//! may each have their own. [`Lab::open`] gives a handle on a lab that is up
//! and leaves it up when dropped (the CLI's commands use it).
//!
//! Errors are [`Error`]s: worded as the CLI words them, with the kernel's
//! errno and extended-ack text kept in their source chain
//! ([`Error::errno`], [`Error::kernel_message`]).
//!
//! The examples (`cargo run --example client_server`, `capture`, `check`, as
//! root) show it all at work.
//!
//! # Inside
//!
//! The data flow: a topology file is parsed and validated into a `topology::Lab`;
//! the planner diffs it against what the kernel has and yields a list of
//! `plan::Op`; the kernel layer applies the ops over netlink and records what the
//! lab owns, so `down` removes exactly that.

pub mod api;
pub(crate) mod apply;
#[doc(hidden)]
pub mod capture;
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod demo;
pub mod error;
#[doc(hidden)]
pub mod graph;
pub(crate) mod hostfwd;
#[doc(hidden)]
pub mod kernel;
#[doc(hidden)]
pub mod lab;
#[doc(hidden)]
pub mod maint;
pub(crate) mod model;
#[doc(hidden)]
pub mod plan;
#[doc(hidden)]
pub mod probe;
#[doc(hidden)]
pub mod programs;
#[doc(hidden)]
pub mod record;
#[doc(hidden)]
pub mod runtime;
#[doc(hidden)]
pub mod serve;
pub mod status;
pub(crate) mod timing;
#[doc(hidden)]
pub mod topology;
#[doc(hidden)]
pub mod units;
#[doc(hidden)]
pub mod util;
pub mod web;

pub use api::{
    Builder, Capture, CaptureOptions, CaptureStats, CheckOptions, CheckReport, DownReport, Error,
    HealReport, HttpResponse, Lab, LinkReport, Node, NodeSpec, Options, Packet, Partition,
    PartitionReport, PerfInterval, PerfOptions, PerfReport, PingEvent, PingOptions, PingOutcome,
    PingReport, PlanReport, Process, Result, Shape, ShapeReport, ShapeView, Status, TestHooks,
    Topology, WhyNot,
};

#[cfg(test)]
mod testkit;

// The library's surface. The modules above marked `#[doc(hidden)]` stay `pub`
// only because the CLI binary, the fuzz targets and the integration tests use
// them; they are not an interface. What the library's functions return is
// re-exported here so the documentation shows it (the API's own types, its
// reports among them, are re-exported from `api` above).
pub use apply::ApplyError;
pub use capture::decode::Summary;
pub use lab::UpReport;
pub use topology::TopologyError;
