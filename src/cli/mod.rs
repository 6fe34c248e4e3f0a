//! The `nslab` command line: one file per subcommand, output as text or `--json`.

mod capture;
mod check;
mod clean;
mod completions;
mod demo;
mod down;
mod exec;
mod graph;
mod identify;
mod link;
mod ls;
mod new;
mod perf;
mod ping;
mod plan;
mod serve;
mod shape;
mod signals;
mod status;
mod up;
mod web;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Virtual networks out of Linux network namespaces.
///
/// A lab is a topology file: nodes (network namespaces), cables (veth pairs),
/// bridges (switches), addresses, routes and NAT. `nslab up FILE` builds it over
/// netlink (no `ip` or `iptables` binaries), `nslab down` removes exactly what it
/// built. Start with `nslab demo`, which walks through the tutorial in a sandbox.
#[derive(Parser, Debug)]
#[command(name = "nslab", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// How a command finds a lab that is up: `--lab NAME`, or the FILE it came from
/// (with the same `--prefix`); with neither, the only lab that is up.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LabSel {
    /// The lab's name (its file's `name:` with the prefix in front).
    #[arg(long, value_name = "NAME")]
    pub lab: Option<String>,
    /// The prefix the lab was brought up with.
    #[arg(long, default_value = "", value_name = "P")]
    pub prefix: String,
}

/// A lab that is up: its record and the model it was built from.
pub fn lab_up(
    sel: &LabSel,
    file: Option<&std::path::Path>,
) -> nslab::error::Result<(nslab::record::Record, nslab::topology::Lab)> {
    let lab = sel.resolve(file)?;
    let rec = nslab::lab::record_of(&lab)?;
    let model = rec.model.clone().ok_or_else(|| {
        nslab::error::Error::Failed(format!(
            "lab {lab} is not completely up; run `nslab up` again"
        ))
    })?;
    Ok((rec, model))
}

/// A place of a lab that can send or serve: a node, `host` or `internet`.
pub fn place(
    model: &nslab::topology::Lab,
    name: &str,
) -> nslab::error::Result<nslab::topology::Place> {
    nslab::lab::places::place(model, name)
}

impl LabSel {
    pub fn resolve(&self, file: Option<&std::path::Path>) -> nslab::error::Result<String> {
        nslab::lab::select(self.lab.as_deref(), file, &self.prefix)
    }

    /// A handle on the lab meant, that leaves it up.
    pub fn open(&self, file: Option<&std::path::Path>) -> nslab::error::Result<nslab::Lab> {
        let name = self.resolve(file)?;
        nslab::Lab::open(&name, &self.options())
    }

    /// The library's options for a lab found this way (the settings are the
    /// ones `config_from_env` put in force).
    pub fn options(&self) -> nslab::Options {
        nslab::Options {
            prefix: self.prefix.clone(),
            ..nslab::Options::default()
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    New(new::Args),
    Up(up::Args),
    Plan(plan::Args),
    Graph(graph::Args),
    Down(down::Args),
    Status(status::Args),
    Exec(exec::Args),
    Capture(capture::Args),
    Ping(ping::Args),
    Perf(perf::Args),
    Check(check::Args),
    Serve(serve::Args),
    Shape(shape::Args),
    Identify(identify::Args),
    Link(link::LinkArgs),
    Partition(link::PartitionArgs),
    Heal(link::HealArgs),
    Demo(demo::Args),
    Ls(ls::Args),
    Clean(clean::Args),
    Completions(completions::Args),
    Man(completions::ManArgs),
    Schema(completions::SchemaArgs),
    Web(web::Args),
}

/// The library reads no environment: the CLI maps its variables onto the
/// library's settings once, first thing.
fn config_from_env() {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let d = nslab::config::Config::default();
    nslab::config::set(nslab::config::Config {
        state_dir: var("NSLAB_STATE_DIR")
            .map(Into::into)
            .unwrap_or(d.state_dir),
        netns_dir: var("NSLAB_NETNS_DIR")
            .map(Into::into)
            .unwrap_or(d.netns_dir),
        ns_workers: var("NSLAB_NS_WORKERS").and_then(|v| v.to_str()?.parse().ok()),
        timing: var("NSLAB_TIMING").is_some(),
    });
}

/// Allocations of 128 KiB and more get pages of their own, given back when
/// freed. glibc raises that threshold each time such a block is freed (up to
/// 32 MiB): after parsing a big file, the plan's large lists went into the
/// heap among small allocations and their pages stayed after they were freed
/// (10 x 1,000 nodes: `nslab plan` peak 66.0 -> 60.4 MiB).
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before the
    // command starts any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

pub fn main() -> i32 {
    config_from_env();
    nslab::lab::on_lock_wait(|lab| {
        eprintln!("nslab: waiting for another nslab working on lab {lab}...")
    });
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let is_exec = argv.get(1).is_some_and(|a| a == "exec");
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // `exec` keeps 0..124 for the program it runs.
            return if !e.use_stderr() {
                0
            } else if is_exec {
                125
            } else {
                2
            };
        }
    };
    if let Err(e) = privileges(&cli.cmd) {
        eprintln!("nslab: {e}");
        return if is_exec { 125 } else { exit_code(&e) };
    }
    // Only where a whole lab's model and plan are built: a capture's batch
    // buffers would cost a mapping (and fresh zeroed pages) each time.
    if matches!(cli.cmd, Cmd::Up(_) | Cmd::Plan(_) | Cmd::Down(_)) {
        fixed_mmap_threshold();
    }
    let r = match cli.cmd {
        Cmd::New(a) => new::run(a),
        Cmd::Up(a) => up::run(a),
        Cmd::Plan(a) => plan::run(a),
        Cmd::Graph(a) => graph::run(a),
        Cmd::Down(a) => down::run(a),
        Cmd::Status(a) => status::run(a),
        Cmd::Capture(a) => capture::run(a),
        Cmd::Ping(a) => ping::run(a),
        Cmd::Perf(a) => perf::run(a),
        Cmd::Check(a) => check::run(a),
        Cmd::Serve(a) => serve::run(a),
        Cmd::Shape(a) => shape::run(a),
        Cmd::Identify(a) => identify::run(a),
        Cmd::Link(a) => link::link(a),
        Cmd::Partition(a) => link::partition(a),
        Cmd::Heal(a) => link::heal(a),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Ls(a) => ls::run(a),
        Cmd::Clean(a) => clean::run(a),
        Cmd::Completions(a) => completions::run(a),
        Cmd::Man(a) => completions::man(a),
        Cmd::Schema(a) => completions::schema(a),
        Cmd::Exec(a) => return exec::run(a),
        Cmd::Web(a) => web::run(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nslab: {e}");
            exit_code(&e)
        }
    }
}

/// The exit code of a failed command: 2 = bad usage or input, or refused
/// (nothing was changed); 1 = what was asked failed.
pub fn exit_code(e: &nslab::error::Error) -> i32 {
    use nslab::error::Error;
    match e {
        Error::Topology(_) | Error::Usage(_) | Error::Refused(_) => 2,
        _ => 1,
    }
}

/// Every command that needs privileges checks them first (exit 2 naming the
/// capability) instead of failing halfway with a raw EPERM, or, for `status`,
/// reporting objects missing that it could not see.
fn privileges(cmd: &Cmd) -> nslab::error::Result<()> {
    use nslab::error::{NET_ADMIN, NET_RAW, SYS_ADMIN, require, require_caps};
    const LOOK: &str = "to look inside the lab's network namespaces";
    const PROBE: &str = "to enter the lab's network namespaces and send raw packets there";
    match cmd {
        Cmd::Up(_) => require_caps("up"),
        Cmd::Down(_) => require_caps("down"),
        Cmd::Link(_) => require_caps("link"),
        Cmd::Partition(_) => require_caps("partition"),
        Cmd::Heal(_) => require_caps("heal"),
        Cmd::Clean(_) => require_caps("clean"),
        Cmd::Demo(_) => require_caps("demo"),
        Cmd::Shape(_) => require_caps("shape"),
        Cmd::Status(_) => require("status", &[SYS_ADMIN, NET_ADMIN], LOOK, false),
        Cmd::Plan(_) => require("plan", &[SYS_ADMIN, NET_ADMIN], LOOK, false),
        Cmd::Ping(_) => require("ping", &[SYS_ADMIN, NET_RAW], PROBE, false),
        Cmd::Check(_) => require("check", &[SYS_ADMIN, NET_RAW], PROBE, false),
        Cmd::Perf(_) => require(
            "perf",
            &[SYS_ADMIN],
            "to run a receiver and senders inside the lab's namespaces",
            false,
        ),
        Cmd::Capture(_) => require("capture", &[SYS_ADMIN, NET_RAW], PROBE, false),
        // A replay reads a file: no lab, no privileges.
        Cmd::Web(a) if a.replay.is_some() => Ok(()),
        Cmd::Web(_) => require("web", &[SYS_ADMIN, NET_RAW], PROBE, false),
        Cmd::Exec(_) => require(
            "exec",
            &[SYS_ADMIN],
            "to run a program inside a lab's namespace",
            false,
        ),
        Cmd::Serve(_) => require(
            "serve",
            &[SYS_ADMIN],
            "to run a server inside a lab's namespace",
            false,
        ),
        Cmd::New(_)
        | Cmd::Graph(_)
        | Cmd::Identify(_)
        | Cmd::Ls(_)
        | Cmd::Completions(_)
        | Cmd::Man(_)
        | Cmd::Schema(_) => Ok(()),
    }
}

/// Print a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("nslab: cannot render JSON: {e}"),
    }
}

pub type FilePath = PathBuf;

/// "1 step", "2 steps": a count with its noun, singular or plural (regular
/// plurals only).
pub fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Progress goes to a terminal only: piped output stays free of escape codes.
pub fn stderr_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// A progress callback drawing one line on stderr, at most ten times a second.
pub fn progress_line(what: &'static str) -> Box<dyn FnMut(usize, usize)> {
    let mut last = std::time::Instant::now() - std::time::Duration::from_secs(1);
    Box::new(move |done, total| {
        if total >= 50 && last.elapsed() >= std::time::Duration::from_millis(100) {
            last = std::time::Instant::now();
            eprint!("\r\x1b[2Knslab {what}: {done}/{total} steps");
        }
    })
}

pub fn clear_progress() {
    eprint!("\r\x1b[2K");
}

/// `--machine` against the machine whose part of a lab is up here: they must agree.
pub fn check_machine(
    here: Option<&str>,
    asked: Option<&str>,
    lab: &str,
) -> nslab::error::Result<()> {
    match (here, asked) {
        (Some(h), Some(a)) if h != a => Err(nslab::error::Error::Usage(format!(
            "lab {lab} here is machine {h}'s part, not {a}'s (--machine {h}). Nothing was changed."
        ))),
        (None, Some(a)) => Err(nslab::error::Error::Usage(format!(
            "lab {lab} here is not part of a lab over several machines: drop --machine {a}. Nothing was changed."
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every subcommand says what it is in `--help`.
    #[test]
    fn every_argument_has_a_description() {
        let mut missing = Vec::new();
        let top = Cli::command();
        for sub in top.get_subcommands() {
            for a in sub.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{} {id}", sub.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    /// The examples of `ping` and `capture` keep one per line.
    #[test]
    fn examples_stay_on_their_lines() {
        for (sub, line) in [
            ("capture", "\n  nslab capture green all -c 20 "),
            ("ping", "\n  nslab ping green 198.51.100.8 -c 1\n"),
        ] {
            let mut c = Cli::command();
            let help = c
                .find_subcommand_mut(sub)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(help.contains(line), "{sub}: {help}");
        }
    }
}
