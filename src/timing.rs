//! Timing (`NSLAB_TIMING=1` in the CLI): print how long each phase of a command took, to stderr.
//! For benchmarks and profiling; silent otherwise.

use std::sync::Mutex;
use std::time::Instant;

static LAST: Mutex<Option<Instant>> = Mutex::new(None);

pub fn enabled() -> bool {
    crate::config::get().timing
}

/// Print the time since the previous mark, naming the phase that just ended.
pub fn mark(phase: &str) {
    if !enabled() {
        return;
    }
    let mut l = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if let Some(t) = *l {
        eprintln!(
            "[timing] {:>8.1} ms  {phase}{}",
            (now - t).as_secs_f64() * 1000.0,
            memory()
        );
    }
    *l = Some(now);
}

/// Resident memory now and at its peak (VmRSS, VmHWM), to see which phase
/// makes the peak of a big lab.
fn memory() -> String {
    let Ok(st) = std::fs::read_to_string("/proc/self/status") else {
        return String::new();
    };
    let kib = |key: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    format!(
        "  (rss {:.1} MiB, peak {:.1} MiB{})",
        kib("VmRSS:") as f64 / 1024.0,
        kib("VmHWM:") as f64 / 1024.0,
        heap()
    )
}

/// The heap in use (glibc's count): what is live, against the rss that also
/// holds freed pages glibc kept.
fn heap() -> String {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let mi = unsafe { libc::mallinfo2() };
        format!(
            ", heap {:.1} MiB",
            (mi.uordblks + mi.hblkhd) as f64 / 1048576.0
        )
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    String::new()
}
