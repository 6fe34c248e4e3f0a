#![no_main]
// The packet decoder must never panic on any frame.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = nslab::capture::decode::summarize(data);
    let _ = s.to_string();
});
