//! `nslab link`, `nslab partition`, `nslab heal`: thin over `nslab::runtime`.

use super::{LabSel, print_json};
use nslab::error::Result;
use nslab::runtime::link;

/// Set one end of a cable, or a bridge port, down or up.
///
/// Like pulling a cable out and plugging it back in: `nslab link a:eth0 down`
/// sets interface eth0 of node a down (its peer loses carrier), `nslab link
/// bri0:aport down` takes a port out of bridge bri0. The change is kept in the
/// lab's record: `status` shows it (as runtime state, not drift), `up` keeps it,
/// `up --reset` drops it, `down` clears it, and a failed probe's "why not"
/// names it.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nslab link black:bveth down
  nslab link bri0:wbrveth down
  nslab link black:bveth up")]
pub struct LinkArgs {
    /// A cable end (`NODE:IF`, `host:IF`) or a bridge port (`BRIDGE:PORT`), as in the file's `links:`.
    pub endpoint: String,
    /// `down` or `up`.
    pub state: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sel: LabSel,
}

pub fn link(a: LinkArgs) -> Result<i32> {
    let up = link::parse_state(&a.state)?;
    let lab = a.sel.open(None)?;
    let r = if up {
        lab.link_up(&a.endpoint)?
    } else {
        lab.link_down(&a.endpoint)?
    };
    if a.json {
        print_json(&r);
    } else if r.changed {
        println!("link {} is {} (lab {})", r.endpoint, r.state, r.lab);
    } else if up {
        println!(
            "link {} is up (lab {}; nslab had not set it down)",
            r.endpoint, r.lab
        );
    } else {
        println!(
            "link {} is down (lab {}; it was already)",
            r.endpoint, r.lab
        );
    }
    Ok(0)
}

/// Cut every path between two groups of nodes.
///
/// `nslab partition A -- B` makes the nodes of group A and those of group B
/// unable to reach each other by any way: directly, through routers, through the
/// host and its NAT. Inside each group nothing changes. It prints the
/// partition's id; several partitions may exist at once, and `nslab heal ID`
/// (or `nslab heal` for all) removes them. Groups: `all`, a node, `a,b`,
/// `[a, b]`, `@BRIDGE` (the nodes cabled to that bridge). Each partitioned node
/// gets an nftables table `inet nslab-part-ID` dropping the other group's
/// addresses on output and input.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nslab partition n1,n2,n3 -- n4,n5,n6
  nslab partition '[a, b]' -- @br1
  nslab heal 1")]
pub struct PartitionArgs {
    /// The first group of nodes.
    #[arg(required = true, num_args = 1..)]
    pub left: Vec<String>,
    /// The second group of nodes, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub right: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also print the `nft` commands that make the same tables by hand.
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub sel: LabSel,
}

pub fn partition(a: PartitionArgs) -> Result<i32> {
    let lab = a.sel.open(None)?;
    let left: Vec<&str> = a.left.iter().map(String::as_str).collect();
    let right: Vec<&str> = a.right.iter().map(String::as_str).collect();
    let r = lab.partition(&left, &right)?;
    if a.json {
        print_json(&r);
    } else {
        println!(
            "partition {}: [{}] -- [{}] (lab {}; `nslab heal {}` removes it)",
            r.partition.id,
            r.partition.left.join(", "),
            r.partition.right.join(", "),
            r.lab,
            r.partition.id
        );
        if a.explain {
            for c in &r.commands {
                println!("  {c}");
            }
        }
    }
    Ok(0)
}

/// Remove a partition (by the id `partition` printed), or all of them.
#[derive(clap::Args, Debug)]
pub struct HealArgs {
    /// The partition to remove; without it, every partition of the lab.
    pub id: Option<u32>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sel: LabSel,
}

pub fn heal(a: HealArgs) -> Result<i32> {
    let lab = a.sel.open(None)?;
    let r = lab.heal(a.id)?;
    if a.json {
        print_json(&r);
    } else if r.healed.is_empty() {
        println!("lab {} has no partition: nothing to heal", r.lab);
    } else {
        for p in &r.healed {
            println!("healed partition {} (lab {})", p.id, r.lab);
        }
    }
    Ok(0)
}
