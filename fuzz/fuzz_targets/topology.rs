#![no_main]
// The topology parser must never panic or hang, whatever the bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for sandbox in [false, true] {
            let opts = nslab::topology::Options {
                prefix: "f-".into(),
                sandbox,
                // No PATH lookups: the fuzzer tests the parser, not the machine.
                ..Default::default()
            };
            if let Err(e) = nslab::topology::parse_str(text, "fuzz.yaml", &opts) {
                let _ = e.to_string();
            }
        }
    }
});
