//! Topology files: parse (YAML) -> raw types -> validate -> model.

pub mod expect;
pub mod model;
pub mod raw;
pub mod validate;

pub use model::*;
pub use validate::{Issue, Options, parse_route};

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

/// Files larger than this are refused before parsing (a topology of 10 000 nodes is ~1 MiB).
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// A topology file that cannot become a lab: every mistake with its place.
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
                write!(
                    f,
                    "\n  {:>4} | {}\n       | {}^",
                    i.line,
                    line,
                    " ".repeat(col.min(line.len()))
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

impl TopologyError {
    fn one(file: &str, text: &str, line: u64, column: u64, field: String, message: String) -> Self {
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
    let raw: raw::RawFile = match serde_saphyr::from_str_with_options(text, options) {
        Ok(r) => r,
        Err(e) => {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let msg = clean_saphyr_message(&e.to_string());
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
    validate::validate(raw, opts).map_err(|issues| TopologyError {
        file: file.into(),
        issues,
        text: text.into(),
    })
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
