//! Signals do not break netlink requests: a thread that gets SIGUSR1 again and
//! again (a no-op handler installed without SA_RESTART, so every blocking call it
//! is in returns EINTR) makes many route and nftables requests in a namespace of
//! its own, and every one succeeds. Before the shared socket, an interrupted
//! `recv` of a route request came back as a kernel failure (Ctrl-C during `up`
//! then rolled the lab back). Root only.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nslab::kernel::msg::{self, SetLink};
use nslab::kernel::netlink::{Req, Rtnl};
use nslab::kernel::nft::{Masquerade, NftSocket, OutMatch};
use nslab::kernel::nlsock::NlSocket;
use nslab::kernel::{netns, observe};

static SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// A no-op SIGUSR1 handler without SA_RESTART: blocking calls return EINTR.
fn install_handler() {
    // SAFETY: the handler only bumps an atomic counter.
    unsafe {
        sigaction(
            Signal::SIGUSR1,
            &SigAction::new(
                SigHandler::Handler(count_signal),
                SaFlags::empty(),
                SigSet::empty(),
            ),
        )
        .unwrap();
    }
}

#[test]
fn signals_do_not_break_requests() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let ns = common::TestNs::new(&format!("{}eintr", common::prefix("nl")));
    install_handler();
    let file = netns::open(&ns.name).unwrap();
    let (mut nl, mut nft) =
        netns::run_in(&file, || (Rtnl::new().unwrap(), NftSocket::new().unwrap())).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<libc::pthread_t>();
    let worker = {
        let done = done.clone();
        std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let rules = [Masquerade {
                source: "10.0.0.0/24".parse().unwrap(),
                out: OutMatch::NotOut("br0".into()),
            }];
            let mut failures = Vec::new();
            for i in 0..100 {
                // A batch of many requests per send (ACKs matched by number).
                let name = format!("d{i}");
                let mut reqs = vec![Req {
                    msg: msg::new_bridge(&name, [2, 0, 0, 0, 0, (i % 250) as u8 + 1], None),
                    flags: NLM_F_CREATE | NLM_F_EXCL,
                    what: format!("create {name}"),
                }];
                for _ in 0..20 {
                    reqs.push(Req {
                        msg: msg::set_link(
                            &name,
                            &SetLink {
                                up: Some(true),
                                ..SetLink::default()
                            },
                        ),
                        flags: 0,
                        what: format!("up {name}"),
                    });
                }
                reqs.push(Req {
                    msg: msg::del_link(&name),
                    flags: 0,
                    what: format!("delete {name}"),
                });
                failures.extend(
                    nl.batch(reqs)
                        .into_iter()
                        .filter_map(Result::err)
                        .map(|e| e.to_string()),
                );
                // Dumps (several datagrams at a time: lo and the bridge).
                if let Err(e) = observe::ns_state(&mut nl) {
                    failures.push(e.to_string());
                }
                // nftables: a generation-checked batch and a consistent read.
                if i % 10 == 0 {
                    let r = nft
                        .replace_nat_table("teintr", "nslab-test", &rules)
                        .and_then(|_| nft.list_tables().map(|_| ()))
                        .and_then(|_| {
                            nft.delete_table_if_marked("teintr", "nslab-test")
                                .map(|_| ())
                        });
                    if let Err(e) = r {
                        failures.push(e.to_string());
                    }
                }
            }
            done.store(true, Ordering::Relaxed);
            failures
        })
    };
    let target = rx.recv().unwrap();
    let mut sent = 0u64;
    while !done.load(Ordering::Relaxed) {
        // SAFETY: the worker is not joined yet, so its pthread_t is valid.
        if unsafe { libc::pthread_kill(target, libc::SIGUSR1) } == 0 {
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    let failures = worker.join().unwrap();
    assert!(
        failures.is_empty(),
        "requests failed under signals: {failures:?}"
    );
    assert!(
        SIGNALS.load(Ordering::Relaxed) > 100,
        "the worker got {} of {sent} signals",
        SIGNALS.load(Ordering::Relaxed)
    );
}

/// The kernel answers route and nftables requests while they are sent, so the
/// requests above rarely find `recv` blocked. Here `recv` waits for a reply that
/// never comes while signals keep arriving: it must end with the timeout (not
/// EINTR as an error, and not never).
#[test]
fn an_interrupted_wait_ends_at_its_timeout() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    install_handler();
    let ns = common::TestNs::new(&format!("{}wait", common::prefix("nl")));
    let file = netns::open(&ns.name).unwrap();
    let timeout = Duration::from_millis(300);
    let mut sock = netns::run_in(&file, move || {
        NlSocket::open(netlink_sys::protocols::NETLINK_ROUTE, timeout).unwrap()
    })
    .unwrap();
    let before = SIGNALS.load(Ordering::Relaxed);
    let (tx, rx) = std::sync::mpsc::channel::<libc::pthread_t>();
    let done = Arc::new(AtomicBool::new(false));
    let waiter = {
        let done = done.clone();
        std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let t = std::time::Instant::now();
            let r = sock.recv(false).map(|d| d.map(<[u8]>::len));
            done.store(true, Ordering::Relaxed);
            (r, t.elapsed())
        })
    };
    let target = rx.recv().unwrap();
    while !done.load(Ordering::Relaxed) {
        // SAFETY: the waiter is not joined yet, so its pthread_t is valid.
        unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(1));
    }
    let (r, took) = waiter.join().unwrap();
    let e = r.expect_err("no reply was due");
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(took >= timeout, "ended after {took:?}");
    assert!(took < timeout * 4, "ended after {took:?}");
    assert!(
        SIGNALS.load(Ordering::Relaxed) > before + 10,
        "signals did not arrive"
    );
}
