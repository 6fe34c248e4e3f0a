use super::{FilePath, LabSel, print_json};
use nslab::error::{Error, Result};

/// Who reaches whom, the file's expectations, and why not.
///
/// Prints a reachability matrix of all nodes (plus `host` and, sandboxed, the
/// `internet`), one per address family in use, like Mininet's pingall; for every
/// pair that does not reach, the reason read from the kernel along the path (no
/// route, no route back, an interface down, a router that does not forward,
/// no NAT, a firewall...). Then the `expect` section of the lab's file: reach and
/// no reach, TCP ports, HTTP statuses. Exits 0 only if every expectation holds.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Take the expectations from this file (default: the lab's record).
    pub file: Option<FilePath>,
    #[command(flatten)]
    pub sel: LabSel,
    /// Only the expectations, no matrix.
    #[arg(long)]
    pub no_matrix: bool,
    /// Write the expectations' results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<FilePath>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<i32> {
    let lab = a.sel.resolve(a.file.as_deref())?;
    let rec = nslab::lab::record_of(&lab)?;
    let model = match &a.file {
        Some(f) => nslab::lab::load(f, &a.sel.prefix, rec.sandbox)?,
        None => rec
            .model
            .clone()
            .ok_or_else(|| Error::Failed(format!("lab {lab} is not completely up")))?,
    };
    let r = nslab::probe::check::check(&rec, &model, !a.no_matrix)?;
    if let Some(j) = &a.junit {
        std::fs::write(j, nslab::probe::check::junit(&r))
            .map_err(Error::io(format!("write {}", j.display())))?;
    }
    if a.json {
        print_json(&r);
    } else {
        print!("{}", nslab::probe::check::render(&r));
    }
    Ok(if r.ok { 0 } else { 1 })
}
