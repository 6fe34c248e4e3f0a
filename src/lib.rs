//! nslab: virtual networks out of Linux network namespaces.
//!
//! The data flow: a topology file is parsed and validated into a [`topology::Lab`];
//! the planner diffs it against what the kernel has and yields a list of
//! [`plan::Op`]; the kernel layer applies the ops over netlink and records what the
//! lab owns, so `down` removes exactly that.

pub mod api;
pub mod apply;
pub mod capture;
pub mod config;
pub mod demo;
pub mod error;
pub mod graph;
pub mod hostfwd;
pub mod kernel;
pub mod lab;
pub mod maint;
pub mod model;
pub mod plan;
pub mod probe;
pub mod programs;
pub mod record;
pub mod serve;
pub mod signals;
pub mod status;
pub mod timing;
pub mod topology;
pub mod util;

pub use api::{
    Builder, Capture, CaptureOptions, CheckReport, DownReport, Error, HttpResponse, Lab, Node,
    NodeSpec, Options, Packet, PingOptions, PingReport, PlanReport, Process, Result, Status,
    TestHooks, Topology,
};

#[cfg(test)]
mod testkit;
