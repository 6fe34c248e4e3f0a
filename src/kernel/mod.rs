//! The only layer that makes syscalls: namespaces, netlink, sysctl, processes.

pub mod cgroup;
pub mod conn;
pub mod exec;
#[cfg(test)]
pub mod fake;
pub mod msg;
pub mod neigh;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod nlsock;
pub mod observe;
pub mod poll;
pub mod procs;
pub mod ready;
pub mod seam;
pub mod watch;
