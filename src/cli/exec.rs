use super::LabSel;

/// Run a program inside a node, like `ip netns exec`.
///
/// Run a program inside a node, the way `ip netns exec` does: in the node's network
/// namespace, with /sys showing its interfaces and /etc/netns/NAME/* over /etc.
/// No shell is involved; stdin, stdout and the exit code pass through (125: nslab's
/// own error, 126: not executable, 127: not found).
///
/// Example: nslab exec black -- python3 -m http.server 800
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The node (its name in the file), `host` or `internet`.
    pub node: String,
    /// The topology file the lab came from (or use --lab).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub sel: LabSel,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<std::ffi::OsString>,
}

pub fn run(a: Args) -> i32 {
    let fail = |m: String| {
        eprintln!("nslab: {m}");
        125
    };
    let lab = match a.sel.resolve(a.file.as_deref()) {
        Ok(l) => l,
        Err(e) => return fail(e.to_string()),
    };
    let rec = match nslab::lab::record_of(&lab) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    // nslab is single-threaded here, so the whole process can move.
    let err = match nslab::lab::exec_in(&rec, &a.node, &a.cmd) {
        nslab::lab::ExecError::Setup(m) => return fail(m),
        nslab::lab::ExecError::Exec(e) => e,
    };
    let prog = a.cmd[0].to_string_lossy();
    match err.kind() {
        std::io::ErrorKind::NotFound => {
            eprintln!("nslab: {prog}: command not found");
            127
        }
        std::io::ErrorKind::PermissionDenied => {
            eprintln!("nslab: {prog}: permission denied");
            126
        }
        _ => fail(format!("{prog}: {err}")),
    }
}
