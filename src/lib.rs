//! nslab: virtual networks out of Linux network namespaces.
//!
//! The data flow: a topology file is parsed and validated into a [`topology::Lab`];
//! the planner diffs it against what the kernel has and yields a list of
//! [`plan::Op`]; the kernel layer applies the ops over netlink and records what the
//! lab owns, so `down` removes exactly that.

pub(crate) mod apply;
#[doc(hidden)]
pub mod capture;
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
pub mod serve;
pub mod status;
pub(crate) mod timing;
#[doc(hidden)]
pub mod topology;
#[doc(hidden)]
pub mod util;

#[cfg(test)]
mod testkit;

// The library's surface. The modules above marked `#[doc(hidden)]` stay `pub`
// only because the CLI binary, the fuzz targets and the integration tests use
// them; they are not an interface. What the library's functions return is
// re-exported here so the documentation shows it.
pub use apply::ApplyError;
pub use capture::decode::Summary;
pub use capture::engine::Seen as Packet;
pub use error::{Error, Result};
pub use lab::{DownReport, PlanReport, UpReport};
pub use probe::check::Report as CheckReport;
pub use probe::icmp::PingReport;
pub use status::Status;
pub use topology::TopologyError;
