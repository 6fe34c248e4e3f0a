//! Network probes that run in the network namespace of the calling thread.
//!
//! Every socket is created by the function that uses it, so it belongs to the
//! namespace of the thread that calls it; the caller enters a namespace on a
//! short-lived thread and calls these functions there.

pub mod http;
pub mod icmp;
pub mod tcp;

pub use tcp::ProbeError;
pub mod check;
pub mod dup;
pub mod perf;
pub(crate) mod sweep;
pub mod why;
