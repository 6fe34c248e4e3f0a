#![no_main]
// nslab's decoding of kernel replies must never panic, whatever the kernel (or
// anything able to write to the socket) sends: rtnetlink (ACKs, extended ACKs,
// links, routes) and nftables (tables, chains, rules, errors).
//
// nslab's nftables reader runs the crate's parser under catch_unwind (the crate
// indexes nested attributes unchecked and panics on some malformed replies; nslab
// turns that into an error). libfuzzer-sys's panic hook aborts on every panic,
// caught or not, so this target replaces it with a quiet one: a panic that
// escapes nslab still aborts the run (libfuzzer-sys catches it at the top),
// with its message printed here.
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|info| {
            LAST_PANIC.with(|p| *p.borrow_mut() = info.to_string());
        }));
    },
    |data: &[u8]| {
        let r = std::panic::catch_unwind(|| {
            nslab::kernel::netlink::fuzz_reply(data);
            nslab::kernel::nft::fuzz_reply(data);
        });
        if r.is_err() {
            LAST_PANIC.with(|p| eprintln!("panic escaped nslab's reply decoding: {}", p.borrow()));
            std::process::abort();
        }
    }
);
