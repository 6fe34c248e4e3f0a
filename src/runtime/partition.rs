//! `nslab partition GROUP -- GROUP` and `nslab heal [ID]`: cut every path
//! between two groups of nodes, and put it back.
//!
//! Each node of a partition gets a marked table `inet nslab-part-ID` in its own
//! namespace whose `output` chain drops packets to the other group's addresses
//! and whose `input` chain drops packets from them. Cut at both ends, no path
//! survives: not a direct one, not one routed through other nodes or the host,
//! not one through the host's NAT (the sender drops it before it is rewritten).

use super::link::{Partition, model_of, save};
use crate::error::{Error, Result};
use crate::record::Record;
use crate::topology::{Lab, Place};
use serde::Serialize;
use std::net::IpAddr;

/// The nftables table of partition `id` in each of its nodes.
pub fn table_name(id: u32) -> String {
    format!("nslab-part-{id}")
}

/// What `nslab partition` did ([`Lab::partition`](crate::Lab::partition)).
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let r: nslab::PartitionReport = lab.partition(&["@br0"], &["c"])?;
/// println!("partition {}: tables {} in {:?}", r.partition.id, r.table, r.partition.left);
/// for c in &r.commands {
///     println!("{c}"); // the nft commands that make the same tables
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    pub lab: String,
    pub partition: Partition,
    /// The nftables table in each node's namespace.
    pub table: String,
    /// The same tables as the `nft` commands a person would type.
    pub commands: Vec<String>,
}

/// What `nslab heal` did ([`Lab::heal`](crate::Lab::heal)).
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let r: nslab::HealReport = lab.heal(None)?; // every partition
/// println!("healed {:?}", r.healed.iter().map(|p| p.id).collect::<Vec<_>>());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealReport {
    pub lab: String,
    /// The partitions removed.
    pub healed: Vec<Partition>,
}

/// The nodes one group names: `all`, `[a, b]`, `a,b` or `@BRIDGE` (the grammar
/// of [`crate::topology::group`]), one or more words (a shell splits `[a, b]` in two).
/// `host` and `internet` are not nodes: a partition is between nodes.
pub fn group(model: &Lab, words: &[String], which: &str) -> Result<Vec<String>> {
    if let Some(w) = words.iter().find(|w| w.starts_with('-')) {
        return Err(Error::Usage(format!(
            "{which} group: {w:?} is not a node (options go before `--`: `nslab partition --json A -- B`)"
        )));
    }
    let joined = words
        .iter()
        .map(|w| {
            w.trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim_matches(',')
        })
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    let out = crate::topology::group::parse(model, &joined, crate::topology::group::Members::Nodes)
        .map_err(|e| Error::Usage(format!("{which} group: {e}")))?;
    Ok(out)
}

/// Both groups, checked: each names at least one node, and no node is in both.
pub fn groups(
    model: &Lab,
    left: &[String],
    right: &[String],
) -> Result<(Vec<String>, Vec<String>)> {
    let l = group(model, left, "first")?;
    let r = group(model, right, "second")?;
    let both: Vec<&String> = l.iter().filter(|n| r.contains(n)).collect();
    if !both.is_empty() {
        return Err(Error::Usage(format!(
            "{} in both groups: a node cannot be cut off from itself",
            both.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
                + if both.len() == 1 { " is" } else { " are" }
        )));
    }
    Ok((l, r))
}

/// Every address the nodes have in the lab's file.
pub fn addresses(model: &Lab, nodes: &[String]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = nodes
        .iter()
        .flat_map(|n| model.addresses_of(&Place::Node(n.clone())))
        .map(|(_, a)| a.addr())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The next free id (1 for the first).
pub fn next_id(parts: &[Partition]) -> u32 {
    parts.iter().map(|p| p.id).max().unwrap_or(0) + 1
}

/// Each node of `p` with the addresses its table drops.
fn tables_of(model: &Lab, p: &Partition) -> Vec<(String, Vec<IpAddr>)> {
    let l = addresses(model, &p.right);
    let r = addresses(model, &p.left);
    p.left
        .iter()
        .map(|n| (n.clone(), l.clone()))
        .chain(p.right.iter().map(|n| (n.clone(), r.clone())))
        .collect()
}

fn nft_in(rec: &Record, node: &str) -> Result<crate::kernel::nft::NftSocket> {
    let f = crate::lab::place_file(rec, &Place::Node(node.to_string()))?;
    crate::kernel::nft::socket_in(&f).map_err(|e| Error::Failed(format!("{node}: {e}")))
}

fn install(rec: &Record, model: &Lab, p: &Partition) -> Result<()> {
    let name = table_name(p.id);
    for (node, addrs) in tables_of(model, p) {
        nft_in(rec, &node)?
            .replace_drop_table(&name, &model.mark(), &addrs)
            .map_err(|e| Error::Failed(format!("partition {} in {node}: {e}", p.id)))?;
    }
    Ok(())
}

/// Remove the tables of `p`; nodes whose namespace is gone have none.
fn remove(rec: &Record, model: &Lab, p: &Partition) -> Result<()> {
    let name = table_name(p.id);
    for node in p.left.iter().chain(&p.right) {
        if model.node(node).is_none() {
            continue;
        }
        let Ok(mut s) = nft_in(rec, node) else {
            continue;
        };
        s.delete_drop_table(&name, &model.mark())
            .map_err(|e| Error::Failed(format!("heal partition {} in {node}: {e}", p.id)))?;
    }
    Ok(())
}

/// Partition `left` from `right` in lab `lab`: recorded first, then one table
/// in each node; if one fails, the others are removed and so is the record entry.
pub fn partition(lab: &str, left: &[String], right: &[String]) -> Result<PartitionReport> {
    crate::error::require_caps("partition")?;
    let _lock = crate::lab::lock_lab(lab)?;
    let mut rec = crate::lab::record_of(lab)?;
    let model = model_of(&rec)?;
    let (l, r) = groups(&model, left, right)?;
    let p = Partition {
        id: next_id(&rec.runtime.partitions),
        left: l,
        right: r,
    };
    rec.runtime.partitions.push(p.clone());
    save(&rec)?;
    if let Err(e) = install(&rec, &model, &p) {
        let _ = remove(&rec, &model, &p);
        rec.runtime.partitions.retain(|x| x.id != p.id);
        let _ = rec.save();
        return Err(e);
    }
    let commands = tables_of(&model, &p)
        .into_iter()
        .flat_map(|(node, addrs)| {
            let ns = crate::plan::ns_of(&model, &Place::Node(node));
            crate::kernel::nft::filter::drop_table_commands(
                &table_name(p.id),
                &model.mark(),
                &addrs,
            )
            .into_iter()
            .map(move |c| format!("ip netns exec {ns} {c}"))
        })
        .collect();
    Ok(PartitionReport {
        lab: lab.to_string(),
        table: table_name(p.id),
        partition: p,
        commands,
    })
}

/// Remove partition `id`, or all of them.
pub fn heal(lab: &str, id: Option<u32>) -> Result<HealReport> {
    crate::error::require_caps("heal")?;
    let _lock = crate::lab::lock_lab(lab)?;
    let mut rec = crate::lab::record_of(lab)?;
    let model = model_of(&rec)?;
    if let Some(id) = id
        && !rec.runtime.partitions.iter().any(|p| p.id == id)
    {
        let ids: Vec<String> = rec
            .runtime
            .partitions
            .iter()
            .map(|p| p.id.to_string())
            .collect();
        return Err(Error::Usage(format!(
            "lab {lab} has no partition {id}{}",
            if ids.is_empty() {
                " (it has none)".to_string()
            } else {
                format!(" (it has {})", ids.join(", "))
            }
        )));
    }
    let mut healed = Vec::new();
    for p in rec.runtime.partitions.clone() {
        if id.is_none_or(|i| i == p.id) {
            remove(&rec, &model, &p)?;
            rec.runtime.partitions.retain(|x| x.id != p.id);
            save(&rec)?;
            healed.push(p);
        }
    }
    Ok(HealReport {
        lab: lab.to_string(),
        healed,
    })
}

/// Put the partitions of the record back in place after `up` (a namespace made
/// again has lost its table). A partition naming a node the file dropped is
/// healed and said so.
pub(crate) fn reapply(rec: &mut Record, model: &Lab) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for p in rec.runtime.partitions.clone() {
        let gone: Vec<&String> = p
            .left
            .iter()
            .chain(&p.right)
            .filter(|n| model.node(n).is_none())
            .collect();
        if gone.is_empty() {
            install(rec, model, &p)?;
        } else {
            notes.push(format!(
                "partition {} is healed: {} no longer in the file",
                p.id,
                gone.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            remove(rec, model, &p)?;
            rec.runtime.partitions.retain(|x| x.id != p.id);
        }
    }
    Ok(notes)
}

/// Remove every partition (`up --reset`).
pub(crate) fn reset(rec: &mut Record, model: &Lab) -> Result<()> {
    for p in std::mem::take(&mut rec.runtime.partitions) {
        remove(rec, model, &p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn star() -> Lab {
        let mut y = String::from("name: s\nbridges:\n  br0: { address: 10.9.0.254/24 }\nnodes:\n");
        for i in 1..=6 {
            y.push_str(&format!(
                "  n{i}: {{ interfaces: {{ e: {{ address: 10.9.0.{i}/24 }} }} }}\n"
            ));
        }
        y.push_str("  lone: { interfaces: { x: { address: 10.8.0.1/24 } } }\n  mate: { interfaces: { x: { address: 10.8.0.2/24 } } }\nlinks:\n");
        for i in 1..=6 {
            y.push_str(&format!("  - [ n{i}:e, br0:p{i} ]\n"));
        }
        y.push_str("  - [ lone:x, mate:x ]\n");
        crate::topology::parse_str(&y, "s.yaml", &crate::topology::Options::default())
            .expect("valid")
    }

    fn w(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn groups_use_the_check_grammar() {
        let m = star();
        let (l, r) = groups(&m, &w("n1,n2"), &w("[n3, n4]")).unwrap();
        assert_eq!(l, vec!["n1", "n2"]);
        assert_eq!(r, vec!["n3", "n4"]);
        let (l, r) = groups(&m, &w("@br0"), &w("lone")).unwrap();
        assert_eq!(l.len(), 6);
        assert_eq!(r, vec!["lone"]);
        // `all` means every node (not host or internet).
        let all = group(&m, &w("all"), "first").unwrap();
        assert_eq!(all.len(), 8);
        assert!(!all.iter().any(|n| n == "host"));
    }

    #[test]
    fn bad_groups_are_usage_errors_naming_the_culprit() {
        let m = star();
        for (l, r, want) in [
            ("n1,n2", "n2,n3", "n2 is in both groups"),
            ("all", "n1", "n1 is in both groups"),
            ("n1", "nope", "\"nope\""),
            ("@br9", "n1", "br9"),
            ("host", "n1", "\"host\" is not a node"),
            ("n1", "internet", "\"internet\" is not a node"),
            ("[]", "n1", "names no node"),
        ] {
            let e = groups(&m, &w(l), &w(r)).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{l} -- {r}: {e}");
            assert!(e.to_string().contains(want), "{l} -- {r}: {e}");
        }
    }

    #[test]
    fn each_side_drops_the_other_sides_addresses() {
        let m = star();
        let p = Partition {
            id: 3,
            left: vec!["n1".into(), "n2".into()],
            right: vec!["n3".into()],
        };
        let t = tables_of(&m, &p);
        assert_eq!(t.len(), 3);
        let a = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(t[0], ("n1".to_string(), vec![a("10.9.0.3")]));
        assert_eq!(t[2], ("n3".to_string(), vec![a("10.9.0.1"), a("10.9.0.2")]));
        assert_eq!(table_name(3), "nslab-part-3");
    }

    #[test]
    fn ids_count_up_from_one() {
        assert_eq!(next_id(&[]), 1);
        let p = |id| Partition {
            id,
            left: vec![],
            right: vec![],
        };
        assert_eq!(next_id(&[p(1), p(4)]), 5);
    }
}
