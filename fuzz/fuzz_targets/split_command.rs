#![no_main]
// The `run:` command splitter must never panic, and quoting its words back
// (each in single quotes, a `'` as `'\''`) must split to the same words.
use libfuzzer_sys::fuzz_target;

fn quote(w: &str) -> String {
    format!("'{}'", w.replace('\'', r"'\''"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(words) = nslab::util::split_command(s) {
        let joined: Vec<String> = words.iter().map(|w| quote(w)).collect();
        let again = nslab::util::split_command(&joined.join(" "))
            .unwrap_or_else(|e| panic!("{joined:?} does not split again: {e}"));
        assert_eq!(again, words, "{s:?} -> {joined:?}");
    }
});
