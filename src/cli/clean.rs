use super::print_json;
use nslab::error::Result;

/// Remove everything of nslab's, including orphans of lost records.
///
/// Remove everything of nslab's: take down every lab that has a record, then find
/// nslab's marked objects whose record was lost (orphans: namespaces whose `lo`
/// carries the mark, interfaces and nftables tables in this namespace with the
/// mark, hosts files nslab wrote, programs and cgroups under nslab's cgroup tree:
/// `nslab/LAB`, and `nslab/LAB.MACHINE` for a part of a lab over several machines,
/// `up --machine`) and remove them. Nothing unmarked and unrecorded is ever
/// touched, whatever its name.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only labs (and orphans of labs) whose name starts with P.
    #[arg(long, default_value = "", value_name = "P", value_parser = name_fragment)]
    pub prefix: String,
    /// Kill processes in the labs' namespaces that nslab did not start.
    #[arg(long)]
    pub kill: bool,
    /// Only show what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print what was (or would be) removed as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A prefix is the start of lab and namespace names (file names under /run):
/// refuse what no name can contain, rather than match nothing.
fn name_fragment(s: &str) -> std::result::Result<String, String> {
    match s
        .chars()
        .find(|c| matches!(c, '/' | '\0' | '%' | ':') || c.is_whitespace())
    {
        Some(c) => Err(format!(
            "{c:?} cannot be part of a lab or namespace name; give the start of a lab's name, like `t1-`"
        )),
        None => Ok(s.to_string()),
    }
}

pub fn run(a: Args) -> Result<i32> {
    let r = nslab::maint::clean(&a.prefix, a.kill, a.dry_run)?;
    if a.json {
        print_json(&r);
    } else {
        let verb = if a.dry_run { "would remove" } else { "removed" };
        let show = |what: &str, v: &[String]| {
            if !v.is_empty() {
                println!("{verb} {what}: {}", v.join(", "));
            }
        };
        show("labs", &r.labs_down);
        show(
            "orphan programs (pids, by their cgroup)",
            &r.orphan_processes,
        );
        show("orphan cgroups", &r.orphan_cgroups);
        show("orphan namespaces", &r.orphan_namespaces);
        show("orphan interfaces", &r.orphan_interfaces);
        show("orphan nftables tables", &r.orphan_nft_tables);
        show("stale namespace files", &r.stale_files);
        show("hosts files", &r.etc_netns);
        show("host forwarding turned on by", &r.forwarding_released);
        if r.labs_down.is_empty()
            && r.orphan_namespaces.is_empty()
            && r.orphan_interfaces.is_empty()
            && r.orphan_nft_tables.is_empty()
            && r.stale_files.is_empty()
            && r.etc_netns.is_empty()
            && r.forwarding_released.is_empty()
            && r.busy.is_empty()
            && r.orphan_processes.is_empty()
            && r.orphan_cgroups.is_empty()
        {
            println!("nothing of nslab's found");
        }
        if !r.busy.is_empty() {
            println!(
                "left alone (another nslab is working on them): {}",
                r.busy.join(", ")
            );
        }
        for e in &r.errors {
            eprintln!("nslab: {e}");
        }
    }
    Ok(if r.errors.is_empty() { 0 } else { 1 })
}
