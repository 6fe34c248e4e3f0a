//! Firewalls (`firewall:` on nodes and the host) in the kernel: one
//! `table inet nslab-LAB-fw` per namespace, made by `up` from the recorded
//! model (the record is written before, so a table made is always known),
//! compared whole with the kernel by `status`, `plan` and `up`, removed by
//! `down` (a node's or a sandbox host's namespace takes it with it; in host
//! mode it is deleted). What the table holds: `crate::model::firewall`.

use crate::error::{Error, Result};
use crate::kernel::nft::{FwChain, NftSocket, firewall_diff};
use crate::model::firewall::{self, Firewall, kernel_policy, kernel_rules};
use crate::record::Record;
use crate::topology::{Lab, Place};

/// The chains `up` writes for `fw` in `lab`.
pub fn chains(lab: &Lab, fw: &Firewall) -> Vec<FwChain> {
    let g = firewall::guards(lab, &fw.place);
    fw.chains
        .iter()
        .map(|c| FwChain {
            hook: c.hook,
            policy: kernel_policy(c, g.as_deref()),
            rules: kernel_rules(c, g.as_deref()),
        })
        .collect()
}

fn socket(rec: &Record, place: &Place) -> Result<NftSocket> {
    let f = crate::lab::place_file(rec, place)?;
    crate::lab::run_in(&f, NftSocket::new)?.map_err(|e| Error::Failed(e.to_string()))
}

/// The state of one firewall table in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableState {
    Ok,
    Missing,
    /// There but not as `up` makes it (what differs first).
    Changed(String),
    Unknown(String),
}

/// Observe the table of `place` against `want`.
pub fn observe(rec: &Record, place: &Place, want: &[FwChain]) -> TableState {
    let t = firewall::table(&rec.lab);
    let mark = crate::topology::model::mark_for(&rec.lab);
    let mut s = match socket(rec, place) {
        Ok(s) => s,
        Err(e) => return TableState::Unknown(e.to_string()),
    };
    match s.read_firewall_table(&t) {
        Ok(None) => TableState::Missing,
        Ok(Some(tb)) => match firewall_diff(&tb, &mark, want) {
            None => TableState::Ok,
            Some(w) => TableState::Changed(w),
        },
        Err(e) => TableState::Unknown(e.to_string()),
    }
}

/// What the record's model wants, per place.
pub fn wanted(rec: &Record) -> Vec<(Place, Vec<FwChain>)> {
    rec.model
        .as_ref()
        .map(|m| {
            m.firewalls
                .iter()
                .map(|f| (f.place.clone(), chains(m, f)))
                .collect()
        })
        .unwrap_or_default()
}

/// `up`: write each table that is missing, drifted or changed in the file;
/// delete the tables of places whose firewall the file dropped. Notes for
/// what it changed.
pub fn reconcile(rec: &Record, before: Vec<(Place, Vec<FwChain>)>) -> Result<Vec<String>> {
    let t = firewall::table(&rec.lab);
    let mark = crate::topology::model::mark_for(&rec.lab);
    let now = wanted(rec);
    let mut notes = Vec::new();
    for (place, want) in &now {
        let why = match observe(rec, place, want) {
            TableState::Ok => continue,
            TableState::Missing => "made".to_string(),
            TableState::Changed(w) => {
                if before.iter().any(|(p, c)| p == place && c == want) {
                    format!("rewritten ({w})")
                } else {
                    "rewritten: the file's firewall changed".to_string()
                }
            }
            TableState::Unknown(_) => "written".to_string(),
        };
        let mut s = socket(rec, place)?;
        s.set_firewall_table(&t, &mark, want)
            .map_err(|e| Error::Failed(format!("firewall of {place}: {e}")))?;
        notes.push(format!("firewall of {place}: table inet {t} {why}"));
    }
    for (place, _) in before {
        if now.iter().any(|(p, _)| *p == place) {
            continue;
        }
        // The place may be gone with its namespace (a node the file dropped).
        let Ok(mut s) = socket(rec, &place) else {
            continue;
        };
        if s.set_firewall_table(&t, &mark, &[]).is_ok() {
            notes.push(format!(
                "firewall of {place}: table inet {t} deleted (the file has none)"
            ));
        }
    }
    Ok(notes)
}

/// `down` in host mode: delete the host's table (nodes' tables go with their
/// namespaces).
pub fn remove(host: &std::fs::File, rec: &Record) -> Vec<String> {
    let t = firewall::table(&rec.lab);
    let mark = crate::topology::model::mark_for(&rec.lab);
    match crate::kernel::nft::socket_in(host).and_then(|mut s| s.delete_drop_table(&t, &mark)) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("delete nftables table inet {t}: {e}")],
    }
}

/// `status` lines: each firewall and its table's state.
pub fn status_lines(rec: &Record, model: &Lab) -> Vec<String> {
    let t = firewall::table(&rec.lab);
    let mut out = Vec::new();
    for f in &model.firewalls {
        let state = match observe(rec, &f.place, &chains(model, f)) {
            TableState::Ok => "ok".to_string(),
            TableState::Missing => {
                "missing in the kernel (drift): `nslab up` puts it back".to_string()
            }
            TableState::Changed(w) => format!("changed: {w} (drift): `nslab up` puts it back"),
            TableState::Unknown(e) => format!("not readable: {e}"),
        };
        out.push(format!("firewall {f} -- table inet {t}: {state}"));
    }
    out
}

/// The drift of the firewall tables, one line each.
pub fn drift(rec: &Record, model: &Lab) -> Vec<String> {
    let t = firewall::table(&rec.lab);
    let mut out = Vec::new();
    for f in &model.firewalls {
        match observe(rec, &f.place, &chains(model, f)) {
            TableState::Missing => {
                out.push(format!("nftables table inet {t} in {}: missing", f.place))
            }
            TableState::Changed(w) => {
                out.push(format!("nftables table inet {t} in {}: {w}", f.place))
            }
            TableState::Ok | TableState::Unknown(_) => {}
        }
    }
    out
}

/// What `up` would do to the firewall tables of a lab that is up, for `lab`
/// (the file).
pub fn plan_changes(rec: &Record, lab: &Lab) -> Vec<String> {
    let t = firewall::table(&rec.lab);
    let before = wanted(rec);
    let mut out = Vec::new();
    for f in &lab.firewalls {
        let want = chains(lab, f);
        let p = &f.place;
        match observe(rec, p, &want) {
            TableState::Ok => {}
            TableState::Missing => out.push(format!(
                "`up` makes table inet {t} in {p} (missing in the kernel)"
            )),
            TableState::Changed(w) if before.iter().any(|(q, c)| q == p && *c == want) => {
                out.push(format!("`up` rewrites table inet {t} in {p} ({w})"))
            }
            TableState::Changed(_) => out.push(format!(
                "`up` rewrites table inet {t} in {p}: the file's firewall changed"
            )),
            TableState::Unknown(e) => out.push(format!("table inet {t} in {p} not readable: {e}")),
        }
    }
    for (p, _) in before {
        if !lab.firewalls.iter().any(|f| f.place == p) {
            out.push(format!(
                "`up` deletes table inet {t} in {p}: the file has no firewall there"
            ));
        }
    }
    out
}

/// The `nft` commands of every firewall (`plan --explain`).
pub fn explain(lab: &Lab) -> Vec<String> {
    let mut out = Vec::new();
    for f in &lab.firewalls {
        let pre = match crate::plan::ns_of(lab, &f.place).name() {
            Some(ns) => format!("ip netns exec {ns} "),
            None => String::new(),
        };
        out.extend(firewall::explain(lab, f, &pre));
    }
    out
}

/// The file's words for a drop the kernel traced in `table`/`chain` of the
/// namespace of `place` (rule `handle`, or the chain's policy when None):
/// `the rule at line 12 of black's firewall (input: ... drop)`. `read` reads
/// the table back there (to map the handle to the rule's line). None when the
/// table is not this lab's firewall.
pub fn blame(
    model: &Lab,
    place: &Place,
    table: &str,
    chain: &str,
    handle: Option<u64>,
    read: impl FnOnce(&str) -> Option<crate::kernel::nft::FwTable>,
) -> Option<(usize, String)> {
    if table != firewall::table(&model.name) {
        return None;
    }
    let fw = model.firewalls.iter().find(|f| f.place == *place)?;
    let c = fw.chains.iter().find(|c| c.hook.name() == chain)?;
    let policy = |line: usize| {
        (
            line,
            format!("the policy drop of chain {chain} of {place}'s firewall at line {line}"),
        )
    };
    let Some(h) = handle else {
        return Some(policy(c.line));
    };
    let tb = read(table)?;
    let comment = tb.rules.iter().find(|r| r.handle == h)?.comment.clone()?;
    let line = firewall::line_of_comment(&comment)?;
    if comment.ends_with("policy") {
        return Some(policy(line));
    }
    let r = c.rules.iter().find(|r| r.line == line)?;
    let mut text = firewall::rule_text(r);
    if let Some(i) = text.rfind(" comment ") {
        text.truncate(i);
    }
    Some((
        line,
        format!("the rule at line {line} of {place}'s firewall ({chain}: {text})"),
    ))
}
