//! Ctrl-C (SIGINT) and SIGTERM as a flag long operations poll, so they stop cleanly
//! and clean up after themselves instead of dying midway. The CLI installs the
//! handler; the library only takes the flag (it installs no signal handlers).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Install the handler (idempotent) and return the flag.
pub fn stop_flag() -> &'static AtomicBool {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let sa = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let _ = sigaction(s, &sa);
        }
    }
    &STOP
}

pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}
