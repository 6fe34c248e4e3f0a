//! Published ports (`publish:` in the file) in the kernel: the lab's
//! `table inet nslab-LAB-pub` in its host namespace, made by `up` from the
//! recorded model, removed by `down` (a sandbox's host namespace takes it
//! with it), observed by `status`. What the table holds:
//! `crate::model::publish`.

use crate::error::{Error, Result};
use crate::kernel::nft::{Family, NftSocket};
use crate::model::publish::{self, OUTPUT, POSTROUTING, PREROUTING};
use crate::record::Record;
use crate::topology::{Lab, Place};

/// Refuse a host-mode lab publishing a port another host-mode lab of this
/// machine publishes already (sandboxes have hosts of their own).
pub fn refuse_conflicts(lab: &Lab) -> Result<()> {
    if lab.sandbox || lab.publish.is_empty() {
        return Ok(());
    }
    let others: Vec<Lab> = crate::record::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| *n != lab.name)
        .filter_map(|n| Record::load(&n).ok().flatten())
        .filter_map(|r| r.model)
        .collect();
    match publish::conflict(lab, &others) {
        Some((other, p)) => Err(Error::Refused(format!(
            "lab {other} publishes {} port {} of the host already (to {}:{}); nothing was changed",
            p.proto, p.port, p.node, p.to_port
        ))),
        None => Ok(()),
    }
}

fn host_socket(rec: &Record) -> Result<NftSocket> {
    let f = crate::lab::place_file(rec, &Place::Host)?;
    crate::lab::run_in(&f, NftSocket::new)?.map_err(|e| Error::Failed(e.to_string()))
}

/// What the record's model publishes (with its hairpins), to compare before
/// and after `up`.
pub fn wanted(rec: &Record) -> Option<(Vec<publish::Publish>, Vec<publish::Hairpin>)> {
    rec.model
        .as_ref()
        .map(|m| (m.publish.clone(), publish::hairpins(m)))
}

/// `up`: rewrite the table when the file's publishes changed or the kernel's
/// table drifted; leave it (and the connections it tracks) alone otherwise.
/// Returns a note when it changed something.
pub fn reconcile(
    rec: &Record,
    before: Option<(Vec<publish::Publish>, Vec<publish::Hairpin>)>,
) -> Result<Vec<String>> {
    let now = wanted(rec);
    let Some((rules, _)) = &now else {
        return Ok(Vec::new());
    };
    let state = observe(rec);
    let t = publish::table(&rec.lab);
    let why = match (&state, rules.is_empty()) {
        (TableState::Missing, true) => return Ok(Vec::new()),
        (TableState::Ok, false) if before == now => return Ok(Vec::new()),
        (TableState::Ok, false) => {
            format!("table inet {t} rewritten: the file's publishes changed")
        }
        (_, true) => format!("table inet {t} deleted: the file publishes nothing"),
        (TableState::Missing, false) => format!("table inet {t} made"),
        (TableState::Changed(w), false) => format!("table inet {t} rewritten ({w})"),
        (TableState::Unknown(_), false) => format!("table inet {t} written"),
    };
    sync(rec)?;
    Ok(vec![format!("published ports: {why}")])
}

/// Make the kernel hold the recorded model's publish table (or none).
pub fn sync(rec: &Record) -> Result<()> {
    let Some(model) = rec.model.as_ref() else {
        return Ok(());
    };
    let mut s = host_socket(rec)?;
    s.set_publish_table(
        &publish::table(&rec.lab),
        &model.mark(),
        &model.publish,
        &publish::hairpins(model),
    )
    .map_err(|e| Error::Failed(format!("publish ports: {e}")))
}

/// `down` in host mode: delete the table in the namespace that played the host.
pub fn remove(host: &std::fs::File, rec: &Record) -> Vec<String> {
    let t = publish::table(&rec.lab);
    let mark = crate::topology::model::mark_for(&rec.lab);
    match crate::kernel::nft::socket_in(host).and_then(|mut s| s.delete_drop_table(&t, &mark)) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("delete nftables table inet {t}: {e}")],
    }
}

/// The state of the publish table in the kernel, for `status` and why-not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableState {
    /// There, marked, with its three chains.
    Ok,
    Missing,
    /// There but not as `up` makes it (a chain missing, or not ours).
    Changed(String),
    Unknown(String),
}

/// Observe the table.
pub fn observe(rec: &Record) -> TableState {
    let t = publish::table(&rec.lab);
    let mark = crate::topology::model::mark_for(&rec.lab);
    let mut s = match host_socket(rec) {
        Ok(s) => s,
        Err(e) => return TableState::Unknown(e.to_string()),
    };
    let tables = match s.list_tables() {
        Ok(t) => t,
        Err(e) => return TableState::Unknown(e.to_string()),
    };
    let Some(info) = tables
        .iter()
        .find(|x| x.family == Family::Inet && x.name == t)
    else {
        return TableState::Missing;
    };
    if info.comment.as_deref() != Some(mark.as_str()) {
        return TableState::Changed(format!("its comment is not {mark}"));
    }
    let chains = match s.list_base_chains() {
        Ok(c) => c,
        Err(e) => return TableState::Unknown(e.to_string()),
    };
    for c in [PREROUTING, OUTPUT, POSTROUTING] {
        if !chains
            .iter()
            .any(|x| x.family == Family::Inet && x.table == t && x.name == c)
        {
            return TableState::Changed(format!("chain {c} is missing"));
        }
    }
    TableState::Ok
}

/// What `up` would do to the publish table of a lab that is up, for `lab`
/// (the file): the drift it repairs, or the rewrite for changed publishes.
pub fn plan_changes(rec: &Record, lab: &Lab) -> Vec<String> {
    let t = publish::table(&rec.lab);
    let before = wanted(rec);
    let now = Some((lab.publish.clone(), publish::hairpins(lab)));
    match (observe(rec), lab.publish.is_empty()) {
        (TableState::Missing, true) => Vec::new(),
        (TableState::Ok, false) if before == now => Vec::new(),
        (_, true) => vec![format!(
            "`up` deletes table inet {t}: the file publishes nothing"
        )],
        (TableState::Ok, false) => vec![format!(
            "`up` rewrites table inet {t}: the file's publishes changed"
        )],
        (TableState::Missing, false) => {
            vec![format!("`up` makes table inet {t} (missing in the kernel)")]
        }
        (TableState::Changed(w), false) => {
            vec![format!("`up` rewrites table inet {t} ({w})")]
        }
        (TableState::Unknown(e), false) => vec![format!("table inet {t} not readable: {e}")],
    }
}

/// `status` lines: the publishes and the table's state.
pub fn status_lines(rec: &Record, model: &Lab) -> Vec<String> {
    if model.publish.is_empty() {
        return Vec::new();
    }
    let t = publish::table(&rec.lab);
    let state = match observe(rec) {
        TableState::Ok => format!("table inet {t}: ok"),
        TableState::Missing => {
            format!("table inet {t}: missing in the kernel (drift): `nslab up` puts it back")
        }
        TableState::Changed(why) => {
            format!("table inet {t}: changed ({why}) (drift): `nslab up` puts it back")
        }
        TableState::Unknown(e) => format!("table inet {t}: not readable: {e}"),
    };
    let mut out = vec![format!("published ({state}):")];
    out.extend(model.publish.iter().map(|p| format!("  {}", p.text())));
    out
}

/// The drift of the publish table, one line if any.
pub fn drift(rec: &Record, model: &Lab) -> Vec<String> {
    if model.publish.is_empty() {
        return Vec::new();
    }
    let t = publish::table(&rec.lab);
    match observe(rec) {
        TableState::Missing => vec![format!("nftables table inet {t}: missing")],
        TableState::Changed(w) => vec![format!("nftables table inet {t}: {w}")],
        TableState::Ok | TableState::Unknown(_) => Vec::new(),
    }
}

/// Why a TCP/UDP connection to the host's `port` may fail, as far as
/// publishing goes: no `publish` for it, or the table not as `up` made it.
/// None when the port is published and the table is in place. An unpublished
/// port is named only when nothing answered it (`refused`) or in a sandbox:
/// a real host may serve the port itself, and then the walk knows better.
pub fn why_not(
    rec: &Record,
    model: &Lab,
    port: u16,
    proto: publish::Proto,
    refused: bool,
) -> Option<String> {
    if !model
        .publish
        .iter()
        .any(|p| p.port == port && p.proto == proto)
    {
        if !refused && !model.sandbox {
            return None;
        }
        return Some(format!(
            "no publish for {proto} port {port} on host (add `publish: [ {{ port: {port}, to: NODE:PORT }} ]`)"
        ));
    }
    let t = publish::table(&rec.lab);
    match observe(rec) {
        TableState::Missing => Some(format!(
            "{proto} port {port} is published but table inet {t} is missing in the kernel (drift): `nslab up` puts it back"
        )),
        TableState::Changed(w) => Some(format!(
            "{proto} port {port} is published but table inet {t} differs in the kernel ({w}, drift): `nslab up` puts it back"
        )),
        TableState::Ok | TableState::Unknown(_) => None,
    }
}
