//! The only layer that makes syscalls: namespaces, netlink, sysctl, processes.

pub mod msg;
pub mod netlink;
pub mod netns;
pub mod observe;
pub mod conn;
pub mod exec;
pub mod procs;
