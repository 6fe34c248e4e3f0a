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
    use std::os::unix::process::CommandExt;
    let cmd = a
        .sel
        .open(a.file.as_deref())
        .and_then(|lab| lab.node(&a.node))
        .and_then(|node| node.command(&a.cmd));
    let mut cmd = match cmd {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    // nslab is single-threaded here, so the whole process can become CMD.
    let err = cmd.exec();
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
