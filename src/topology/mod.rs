//! Topology files: parse (YAML) -> raw types -> validate -> model.

pub mod expect;
pub mod generate;
pub mod group;
pub mod machines;
pub mod model;
pub mod raw;
pub mod validate;

pub use model::*;
pub use validate::{Issue, Options, parse_route};

#[cfg(test)]
mod generate_tests;
#[cfg(test)]
mod linkmap_tests;
#[cfg(test)]
mod machines_tests;
#[cfg(test)]
mod schema_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

/// Files larger than this are refused before parsing (a topology of 10 000 nodes is ~1 MiB).
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// A topology file that cannot become a lab: every mistake with its place.
///
/// ```
/// let t = nslab::Topology::from_yaml("name: x\nnodes:\n  a: { interfaces: { e: { address: nope } } }\n");
/// match t.validate(&nslab::Options::default()) {
///     Err(nslab::Error::Topology(e)) => assert!(e.to_string().starts_with("<yaml>:3:")),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TopologyError {
    pub file: String,
    pub issues: Vec<Issue>,
    /// The file's text, for showing the offending lines.
    pub text: String,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let n = self.issues.len();
        for (k, i) in self.issues.iter().enumerate() {
            if i.field.is_empty() {
                write!(f, "{}:{}:{}: {}", self.file, i.line, i.column, i.message)?;
            } else {
                write!(
                    f,
                    "{}:{}:{}: {}: {}",
                    self.file, i.line, i.column, i.field, i.message
                )?;
            }
            if let Some(line) = (i.line >= 1)
                .then(|| self.text.lines().nth(i.line as usize - 1))
                .flatten()
            {
                let col = (i.column.max(1) - 1) as usize;
                let (shown, caret) = excerpt(line, col, SHOWN_LINE_CHARS);
                write!(
                    f,
                    "\n  {:>4} | {}\n       | {}^",
                    i.line,
                    shown,
                    " ".repeat(caret)
                )?;
            }
            if k + 1 < n {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for TopologyError {}

/// At most this many characters of the offending line are echoed.
const SHOWN_LINE_CHARS: usize = 120;

/// `line` cut to at most `width` characters around character column `col`
/// (0-based), with `…` where it was cut, and the caret's column in the result.
fn excerpt(line: &str, col: usize, width: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let col = col.min(chars.len());
    if chars.len() <= width {
        return (line.to_string(), col);
    }
    let start = col.saturating_sub(width / 2).min(chars.len() - width);
    let end = start + width;
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    (out, col - start + usize::from(start > 0))
}

impl TopologyError {
    pub(crate) fn one(
        file: &str,
        text: &str,
        line: u64,
        column: u64,
        field: String,
        message: String,
    ) -> Self {
        TopologyError {
            file: file.into(),
            issues: vec![Issue {
                line,
                column,
                field,
                message,
            }],
            text: text.into(),
        }
    }
}

/// Read and validate a topology file.
pub fn load(path: &Path, opts: &Options) -> Result<Lab, TopologyError> {
    let file = path.display().to_string();
    let text =
        read_text(path).map_err(|m| TopologyError::one(&file, "", 0, 0, String::new(), m))?;
    parse_str(&text, &file, opts)
}

/// The text of a topology file, or what is wrong with it. Only a regular file
/// is read, and at most [`MAX_FILE_BYTES`] of it: the file is opened without
/// blocking (a FIFO would wait for a writer at open) and checked with fstat
/// before a byte is read, and the read stops one byte past the limit (a
/// device such as /dev/zero never ends).
pub fn read_text(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO (named pipe)"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "is {what}; a topology file must be a regular file (save it to a file first)"
        ));
    }
    let too_big =
        || format!("file is larger than {MAX_FILE_BYTES} bytes, the limit for topology files");
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))
}

/// Parse and validate topology text; `file` names it in errors.
pub fn parse_str(text: &str, file: &str, opts: &Options) -> Result<model::Lab, TopologyError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(TopologyError::one(
            file,
            "",
            0,
            0,
            String::new(),
            "file is too large".into(),
        ));
    }
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(TopologyError::one(file, text, 1, 1, String::new(), "the file is empty; a lab needs at least `name:` and `nodes:` (see examples/objective1-veth.yaml)".into()));
    }
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.with_snippet = false;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.budget = Some(budget_for(text.len()));
    let raw: raw::RawFile = match serde_saphyr::from_str_with_options(text, options) {
        Ok(r) => r,
        Err(e) => {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let msg = saphyr_message(&e);
            return Err(TopologyError::one(
                file,
                text,
                line,
                col,
                field_path_at(text, line),
                msg,
            ));
        }
    };
    let lab = validate::validate(raw, opts).map_err(|issues| TopologyError {
        file: file.into(),
        issues,
        text: text.into(),
    });
    give_back_freed_memory();
    lab
}

/// Hand freed heap pages back to the kernel. glibc keeps the pages of what
/// was freed (e.g. the parse tree, between the model's allocations, below the
/// top of the heap), and later large lists get new pages instead: at 10,000
/// nodes ~30 MiB of peak RSS that held nothing. Called after parsing and
/// before `up`'s wait.
pub(crate) fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// serde-saphyr's limits, grown with the file: its defaults (250,000 values,
/// 1,000,000 events) refuse a lab of ~22,700 nodes. Written out, a YAML value
/// takes at least one byte and makes at most two events, so a file of N bytes
/// holds at most N values without aliases: allowing that keeps an alias bomb
/// (a few lines that expand to millions of values) refused, at a cost linear in
/// the file's size.
fn budget_for(bytes: usize) -> serde_saphyr::budget::Budget {
    let mut b = serde_saphyr::budget::Budget::default();
    b.max_nodes = b.max_nodes.max(bytes);
    b.max_events = b.max_events.max(bytes.saturating_mul(2));
    b
}

/// What serde-saphyr's error means for the person editing the file: no Rust
/// debug structs (budget breaches), no hints about the library's API (several
/// documents).
fn saphyr_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    match e.without_snippet() {
        E::AliasError { error, .. } => saphyr_message(error),
        E::Budget { breach, .. } => format!(
            "the file is too large or too complex to read: {}; a topology needs far less, so look for anchors and aliases (`&name`, `*name`) that repeat big parts, or deep nesting",
            budget_words(breach)
        ),
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayCounterOverflow { .. }
        | E::AliasReplayStackDepthExceeded { .. } => "the file is too complex to read: its aliases (`*name`) repeat their anchors' contents too many times; a topology needs far less, so write those parts out or use fewer aliases".into(),
        E::MultipleDocuments { .. } => "a topology file holds one YAML document and a second one starts here; remove it and the `---` line before it (or put each lab in its own file)".into(),
        other => clean_saphyr_message(&other.to_string()),
    }
}

/// One YAML limit in words.
fn budget_words(b: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match b {
        B::Events { events } => format!("more than {events} YAML events"),
        B::Aliases { aliases } => format!("{aliases} aliases"),
        B::Anchors { anchors } => format!("{anchors} anchors"),
        B::Depth { depth } => format!("nesting {depth} levels deep"),
        B::Documents { documents } => format!("{documents} documents"),
        B::Nodes { nodes } => format!("{nodes} values"),
        B::ScalarBytes { total_scalar_bytes } => format!("{total_scalar_bytes} bytes of text"),
        B::MergeKeys { merge_keys } => format!("{merge_keys} merge keys (`<<`)"),
        B::AliasAnchorRatio { aliases, anchors } => {
            format!("{aliases} aliases for {anchors} anchors")
        }
        _ => "over a YAML size limit".into(),
    }
}

/// serde-saphyr prefixes "error: line X column Y:"; we print our own place.
fn clean_saphyr_message(m: &str) -> String {
    let first = m.lines().next().unwrap_or(m);
    let s = first.strip_prefix("error: ").unwrap_or(first);
    let s = match s.find(": ") {
        Some(i) if s.starts_with("line ") => &s[i + 2..],
        _ => s,
    };
    let s = s.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    // Hints about the library's API mean nothing to the file's author.
    if s.starts_with("cannot deserialize null into string") {
        return "a value is missing here: write it after the colon (quote it if it is empty text: \"\")".into();
    }
    let mut s = s;
    for hint in [
        "; use from_str",
        "; use String or Cow",
        "; use Option<",
        " If you just use !!binary",
    ] {
        if let Some(i) = s.find(hint) {
            s.truncate(i);
        }
    }
    // It may also end with its own " at line N, column M".
    match s.rfind(" at line ") {
        Some(i) if s[i..].contains("column") => s[..i].to_string(),
        _ => s,
    }
}

/// The dotted key path of the YAML line `line` (1-based), found by walking up the
/// block structure by indentation. Good enough to name the field of a parse error.
pub fn field_path_at(text: &str, line: u64) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if line == 0 || line as usize > lines.len() {
        return String::new();
    }
    let mut path: Vec<String> = Vec::new();
    let mut indent = usize::MAX;
    for l in lines[..line as usize].iter().rev() {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = l.len() - t.len();
        if ind >= indent {
            continue;
        }
        let t2 = t.trim_start_matches("- ");
        if let Some((k, _)) = t2.split_once(':') {
            let k = k.trim().trim_matches('"').trim_matches('\'');
            if !k.is_empty() && !k.contains(' ') && !k.contains('[') && !k.contains('{') {
                path.push(k.to_string());
            }
        }
        indent = ind;
        if ind == 0 {
            break;
        }
    }
    path.reverse();
    path.join(".")
}
