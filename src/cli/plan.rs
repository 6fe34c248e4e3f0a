use super::{FilePath, print_json};
use nslab::error::Result;

/// Show what `nslab up` would do, without doing it.
///
/// Show what `nslab up` would do, without doing it; for a lab that is up, only the
/// difference. `--explain` prints every step as the iproute2 / nft command a
/// person would type for it, in order, so a plan reads like the tutorial.
///
/// Example: nslab plan examples/objective2-bridge.yaml --explain
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The topology file to plan for.
    pub file: FilePath,
    /// Put P in front of the lab's name and its namespaces (as `up --prefix`).
    #[arg(long, default_value = "", value_name = "P")]
    pub prefix: String,
    /// Plan the lab as `up --sandbox` builds it (its own host namespace).
    #[arg(long)]
    pub sandbox: bool,
    /// Print the steps as shell commands (ip, nft, sysctl).
    #[arg(long)]
    pub explain: bool,
    /// In a lab over several machines (`machines:`), this machine's part.
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// Print the plan (steps and commands) as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<i32> {
    let opts = nslab::Options {
        prefix: a.prefix,
        sandbox: a.sandbox,
        machine: a.machine,
        ..nslab::Options::default()
    };
    let r = nslab::Lab::plan_for(&nslab::Topology::from_file(&a.file)?, &opts)?;
    if a.json {
        print_json(&r);
        return Ok(0);
    }
    for o in &r.overlaps {
        eprintln!("note: `up` would refuse this without --force: {o}");
    }
    if r.ops.is_empty() {
        println!("# lab {} is up to date: nothing to do", r.lab);
        print_shaping(&r, a.explain);
        return Ok(0);
    }
    if a.explain {
        println!(
            "# lab {}: {}{}",
            r.lab,
            super::plural(r.ops.len(), "step"),
            if r.up {
                " to bring it in line with the file"
            } else {
                ""
            }
        );
        for c in &r.commands {
            println!("{c}");
        }
        if !r.up {
            for p in &r.programs {
                println!("{p}");
            }
        }
    } else {
        for op in &r.ops {
            println!("{op}");
        }
    }
    print_shaping(&r, a.explain);
    Ok(0)
}

/// The recorded shapings (`nslab shape`), which `up` keeps.
fn print_shaping(r: &nslab::lab::PlanReport, explain: bool) {
    for c in &r.publish_changes {
        println!("# published ports: {c}");
    }
    for c in &r.firewall_changes {
        println!("# firewalls: {c}");
    }
    if explain && !r.shaping.is_empty() {
        println!("# shaping: the file's link maps, and `nslab shape` over them (applied by `up`):");
        for c in &r.shaping {
            println!("{c}");
        }
    }
    if explain && !r.firewall.is_empty() {
        println!("# firewalls (`firewall:`; made by `up`, one nftables batch per namespace):");
        for c in &r.firewall {
            println!("{c}");
        }
    }
    if explain && !r.publish.is_empty() {
        println!("# published ports (`publish:`; made by `up` in one nftables batch):");
        for c in &r.publish {
            println!("{c}");
        }
    }
}
