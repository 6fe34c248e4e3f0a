//! The namespace floor of the star benchmark (issue 23, item 4): what the kernel costs
//! for N bare named namespaces, done the way `ip netns add` does it, in one process.
//!
//! `ns_floor add PREFIX N`: for k in 1..=N, in order:
//!   1. create `/run/netns/PREFIXnK` (O_CREAT|O_EXCL, mode 0, like iproute2),
//!   2. `unshare(CLONE_NEWNET)` (this thread moves into a new namespace),
//!   3. bind-mount `/proc/thread-self/ns/net` onto that file (keeps the namespace),
//!   4. readiness: bring `lo` up with one RTM_NEWLINK (ifindex 1, IFF_UP) on a
//!      NETLINK_ROUTE socket opened in the new namespace, and wait for the kernel's ack.
//!
//! Before the loop, once: `/run/netns` must already be a mount point (the benchmark's
//! host namespace, made with `ip netns add`, makes it one); it is made MS_SHARED as
//! `ip netns add` does.
//! `ns_floor del PREFIX N`: for each, `umount2(MNT_DETACH)` + `unlink` (like `ip netns del`).
//!
//! No addresses, no links, no `/etc/netns` files: this is the floor nslab's `up` is
//! compared with, not a lab. Run as root. Exit 1 with a message on the first error.
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

fn die(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("ns_floor: {what}: {e}");
    std::process::exit(1)
}

/// One RTM_NEWLINK (ifindex 1 = lo, IFF_UP) in the current namespace; waits for the ack.
fn lo_up(seq: u32) -> Result<(), std::io::Error> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut msg = [0u8; 32];
    msg[0..4].copy_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    msg[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    msg[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    // ifinfomsg at 16: family (AF_UNSPEC), pad, type, index, flags, change
    msg[20..24].copy_from_slice(&1i32.to_ne_bytes());
    msg[24..28].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    msg[28..32].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    // SAFETY: msg is a valid buffer of its length; unconnected netlink send goes to the kernel.
    let n = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = [0u8; 256];
    // SAFETY: buf is a valid writable buffer of its length.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if (n as usize) < 20 || u16::from_ne_bytes([buf[4], buf[5]]) != libc::NLMSG_ERROR as u16 {
        return Err(std::io::Error::other("unexpected netlink reply"));
    }
    let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if err != 0 {
        return Err(std::io::Error::from_raw_os_error(-err));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 || !matches!(args[1].as_str(), "add" | "del") {
        eprintln!("usage: ns_floor add|del PREFIX N");
        std::process::exit(2);
    }
    let prefix = &args[2];
    let n: u32 = args[3].parse().unwrap_or_else(|e| die("N", e));
    if args[1] == "del" {
        for k in 1..=n {
            let p = format!("/run/netns/{prefix}n{k}");
            umount2(p.as_str(), MntFlags::MNT_DETACH)
                .unwrap_or_else(|e| die(&format!("umount {p}"), e));
            std::fs::remove_file(&p).unwrap_or_else(|e| die(&format!("unlink {p}"), e));
        }
        return;
    }
    // As `ip netns add`: /run/netns shared, so the bind mounts propagate.
    mount(
        None::<&str>,
        "/run/netns",
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap_or_else(|e| {
        die(
            "make /run/netns shared (is it a mount point? `ip netns add` makes it one)",
            e,
        )
    });
    for k in 1..=n {
        let p = format!("/run/netns/{prefix}n{k}");
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&p)
            .map(drop)
            .unwrap_or_else(|e| die(&format!("create {p}"), e));
        unshare(CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| die("unshare(CLONE_NEWNET)", e));
        mount(
            Some("/proc/thread-self/ns/net"),
            p.as_str(),
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap_or_else(|e| die(&format!("bind mount onto {p}"), e));
        lo_up(k).unwrap_or_else(|e| die(&format!("lo up in {p}"), e));
    }
}
