//! The only layer that makes syscalls: namespaces, netlink, sysctl, processes.

pub(crate) mod cgroup;
pub mod conn;
pub(crate) mod exec;
#[cfg(test)]
pub mod fake;
pub mod msg;
pub(crate) mod neigh;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod nlsock;
pub mod observe;
pub(crate) mod poll;
pub mod procs;
pub mod ready;
pub(crate) mod seam;
pub mod tc;
pub mod watch;
