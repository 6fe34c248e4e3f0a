//! Small helpers shared by several modules.

/// Where the program `name` would be found by exec (PATH, as the program will
/// be started with nslab's environment), or what is wrong.
pub fn find_program(name: &str) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = std::path::PathBuf::from(name);
        return if runnable(&p) {
            Ok(p)
        } else if p.exists() {
            Err(format!("program {name} is not an executable file"))
        } else {
            Err(format!("program {name} does not exist"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| runnable(p))
        .ok_or_else(|| {
            format!(
                "program {name:?} is not found in PATH ({})",
                path.to_string_lossy()
            )
        })
}

/// Split a command line into words as a POSIX shell would (the maintained
/// `shell-words` crate): whitespace separates, single quotes keep everything,
/// double quotes keep everything but `\\`, `\"`, `\$`, `` \` `` (so
/// `printf "a\nb"` keeps its `\n`), a backslash outside quotes escapes the next
/// character, `#` at the start of a word begins a comment. No expansion of any
/// kind: nslab never runs a shell.
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    shell_words::split(s).map_err(|e| format!("{e} in `{s}`"))
}

/// Quote a word for display in a shell command, only when needed.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A count with thousands separators: 10000 -> "10,000".
pub fn count(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::with_capacity(d.len() + d.len() / 3);
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many names [`names`] shows before it says how many more there are.
pub const SHOWN: usize = 3;

/// How many threads share `items` pieces of per-namespace kernel work: one per
/// CPU, at most 4 (more only wait for each other on RTNL), at most one per item.
pub fn workers_for(items: usize) -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
        .min(items.max(1))
}

/// A list of names for a message, short however long the list: all of them up
/// to [`SHOWN`] + 1, else the first [`SHOWN`] and how many more ("a, b, c … and
/// 9,997 more"). An error naming 10,000 namespaces stays one readable line.
pub fn names<S: AsRef<str>>(items: &[S]) -> String {
    let shown: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    if shown.len() <= SHOWN + 1 {
        return shown.join(", ");
    }
    format!(
        "{} … and {} more",
        shown[..SHOWN].join(", "),
        count(shown.len() - SHOWN)
    )
}

/// `n` things: "1 namespace", "10,000 namespaces" (plural by adding `s`).
pub fn counted(n: usize, noun: &str) -> String {
    format!("{} {noun}{}", count(n), if n == 1 { "" } else { "s" })
}

/// Text for XML character data or attribute values (SVG, JUnit).
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Left-aligned text columns, two spaces apart; the last column is not padded.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_summarized() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(9997), "9,997");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(names::<&str>(&[]), "");
        assert_eq!(names(&["a"]), "a");
        assert_eq!(names(&["a", "b", "c", "d"]), "a, b, c, d");
        let many: Vec<String> = (1..=10_000).map(|i| format!("tb-n{i}")).collect();
        assert_eq!(names(&many), "tb-n1, tb-n2, tb-n3 … and 9,997 more");
        assert_eq!(names(&many[..5]), "tb-n1, tb-n2, tb-n3 … and 2 more");
        assert_eq!(counted(1, "namespace"), "1 namespace");
        assert_eq!(counted(10_000, "namespace"), "10,000 namespaces");
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_command("python3 -m http.server 800").unwrap(),
            ["python3", "-m", "http.server", "800"]
        );
        assert_eq!(
            split_command(r#"sh -c 'echo "hi there"' x\ y"#).unwrap(),
            ["sh", "-c", "echo \"hi there\"", "x y"]
        );
        assert_eq!(split_command("a ''").unwrap(), ["a", ""]);
        assert!(split_command("echo 'oops").is_err());
        // A backslash in double quotes stays unless it escapes \\ " $ `.
        assert_eq!(
            split_command(r#"printf "a\nb""#).unwrap(),
            ["printf", r"a\nb"]
        );
        assert_eq!(
            split_command(r#"echo "a\"b\\c""#).unwrap(),
            ["echo", r#"a"b\c"#]
        );
    }

    proptest::proptest! {
        /// Quoting a list of words (ours, and shell_words::join) and splitting it
        /// gives the same words back.
        #[test]
        fn quoting_and_splitting_round_trip(words in proptest::collection::vec("[^\\x00]*", 0..6)) {
            let ours: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
            proptest::prop_assert_eq!(&split_command(&ours.join(" ")).unwrap(), &words);
            proptest::prop_assert_eq!(&split_command(&shell_words::join(&words)).unwrap(), &words);
        }
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("bri0"), "bri0");
        assert_eq!(shell_quote("{ comment \"x\"; }"), "'{ comment \"x\"; }'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
