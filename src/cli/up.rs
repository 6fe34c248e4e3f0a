use super::{FilePath, print_json};
use nslab::error::Result;
use nslab::{Lab, Options, TestHooks, Topology};

/// Build a lab from a topology file, or bring it in line with the file.
///
/// `up` validates the whole file first (a mistake changes nothing), then compares
/// the kernel with it: what is missing is created, what differs is fixed, what the
/// lab had and the file dropped is removed. Running it again changes nothing.
///
/// By default bridges and the host ends of cables live in the namespace nslab runs
/// in (the real host, as in the tutorial). `--sandbox` gives the lab a host
/// namespace of its own and an emulated internet, so the real network is never
/// touched.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The topology file (YAML).
    pub file: FilePath,
    /// Put P in front of every namespace name (and the lab's name), so copies of a
    /// lab can run side by side.
    #[arg(long, default_value = "", value_name = "P")]
    pub prefix: String,
    /// Keep the lab's host part in a namespace of its own ("{prefix}{name}-host"),
    /// with an emulated internet behind it ("{prefix}{name}-inet"); with
    /// `--machine M`, the part's own ("{prefix}{name}-M-host", "-M-inet").
    #[arg(long)]
    pub sandbox: bool,
    /// In host mode, allow lab addresses that overlap routes of the host's own
    /// interfaces.
    #[arg(long)]
    pub force: bool,
    /// Drop the lab's runtime state (links set down with `nslab link`,
    /// partitions): bring the lab back exactly as its file says. Without it,
    /// `up` keeps that state.
    #[arg(long)]
    pub reset: bool,
    /// In a lab over several machines (`machines:`), this machine's part: its
    /// nodes and bridges, and VXLAN devices for what crosses to the others
    /// (their UDP sockets in this namespace, on its underlay address, also with
    /// `--sandbox`). Its programs run in a cgroup of its own, `nslab/LAB.NAME`,
    /// which `down` and `clean` stop.
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// Print every step.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Test hooks from the environment (see the README's Tests section).
fn test_hooks() -> TestHooks {
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    TestHooks {
        fail_after: num("NSLAB_TEST_FAIL_AFTER"),
        refuse_after: num("NSLAB_TEST_REFUSE_AFTER"),
        pause_at: std::env::var("NSLAB_TEST_PAUSE_AT").ok(),
    }
}

pub fn run(a: Args) -> Result<i32> {
    let progress = (!a.json && super::stderr_is_tty()).then(|| super::progress_line("up"));
    let (prefix, sandbox) = (a.prefix.clone(), a.sandbox);
    let opts = Options {
        prefix: a.prefix,
        sandbox: a.sandbox,
        force: a.force,
        reset: a.reset,
        hooks: test_hooks(),
        machine: a.machine,
        ..Options::default()
    };
    let r = Topology::from_file(&a.file).and_then(|t| {
        if progress_shown(a.json)
            && let Some(line) = stp_wait_line(&t, &prefix, sandbox)
        {
            eprintln!("{line}");
        }
        Lab::up_with(&t, &opts, progress)
    });
    if progress_shown(a.json) {
        super::clear_progress();
    }
    let (lab, r) = r?;
    // The lab stays up: `nslab down` takes it down.
    lab.detach();
    if a.json {
        print_json(&r);
        return Ok(0);
    }
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    if !r.changed {
        println!("lab {} is up to date: nothing to change", r.lab);
        return Ok(0);
    }
    if a.verbose {
        for op in &r.ops {
            println!("  {op}");
        }
    }
    println!(
        "lab {} is up ({}): {} in {:.2} s",
        r.lab,
        if r.sandbox { "sandbox" } else { "host mode" },
        summarize(&r.ops),
        r.seconds
    );
    Ok(0)
}

/// Bridges with STP make `up` wait while their new ports listen and learn (a
/// forward delay each): say so on a terminal, with the longest it waits.
fn stp_wait_line(t: &Topology, prefix: &str, sandbox: bool) -> Option<String> {
    let opts = nslab::topology::Options {
        prefix: prefix.to_string(),
        sandbox,
        check_programs: false,
    };
    let lab = nslab::topology::parse_str(t.yaml(), "", &opts).ok()?;
    let stp: Vec<&nslab::topology::Bridge> =
        lab.bridges.iter().filter(|b| b.stp.is_some()).collect();
    if stp.is_empty() {
        return None;
    }
    let limit = nslab::kernel::ready::limit_for_stp(
        stp.iter()
            .filter_map(|b| b.stp.map(|s| (s.forward_delay, s.max_age))),
    );
    let names: Vec<&str> = stp.iter().map(|b| b.name.as_str()).collect();
    Some(format!(
        "nslab up: {} run STP; waiting until their ports forward or block (up to {} s)",
        names.join(", "),
        limit.as_secs()
    ))
}

fn progress_shown(json: bool) -> bool {
    !json && super::stderr_is_tty()
}

/// "3 namespaces, 1 bridge, 3 cables, 4 addresses, 3 routes"
pub fn summarize(ops: &[nslab::plan::Op]) -> String {
    use nslab::plan::Op;
    let count = |f: &dyn Fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count();
    let parts = [
        (
            count(&|o| matches!(o, Op::CreateNs { .. })),
            "namespace",
            "created",
        ),
        (
            count(&|o| matches!(o, Op::CreateBridge { .. })),
            "bridge",
            "created",
        ),
        (
            count(&|o| matches!(o, Op::CreateVeth { .. })),
            "cable",
            "created",
        ),
        (
            count(&|o| matches!(o, Op::AddAddr { .. })),
            "address",
            "added",
        ),
        (
            count(&|o| matches!(o, Op::AddRoute { .. })),
            "route",
            "added",
        ),
        (
            count(&|o| matches!(o, Op::SetNat { .. })),
            "NAT table",
            "written",
        ),
        (
            count(&|o| {
                matches!(
                    o,
                    Op::DeleteNs { .. }
                        | Op::DeleteLink { .. }
                        | Op::DelAddr { .. }
                        | Op::DelRoute { .. }
                        | Op::DeleteNat { .. }
                )
            }),
            "object",
            "removed",
        ),
    ];
    let v: Vec<String> = parts
        .iter()
        .filter(|p| p.0 > 0)
        .map(|(n, w, verb)| {
            format!(
                "{n} {w}{} {verb}",
                if *n == 1 {
                    ""
                } else if w.ends_with('s') {
                    "es"
                } else {
                    "s"
                }
            )
        })
        .collect();
    if v.is_empty() {
        if ops.is_empty() {
            "programs or published ports updated, the network as it was".into()
        } else {
            super::plural(ops.len(), "change")
        }
    } else {
        v.join(", ")
    }
}
