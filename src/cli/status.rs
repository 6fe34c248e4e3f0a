use super::{FilePath, LabSel, print_json};
use nslab::error::Result;

/// Compare a lab with what the kernel has (ok / missing / different).
///
/// Show a lab as the kernel has it: per node its interfaces (state, addresses) and
/// routes, per bridge its ports, and for each object whether it matches the lab's
/// record (ok / missing / different). With FILE, compare against that file instead.
/// Exits 1 if anything is missing or different.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Compare against this topology file instead of the lab's record.
    pub file: Option<FilePath>,
    #[command(flatten)]
    pub sel: LabSel,
    /// In a lab over several machines (`machines:`), this machine's part.
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<i32> {
    let lab = a.sel.open(a.file.as_deref())?;
    super::check_machine(lab.machine(), a.machine.as_deref(), lab.name())?;
    let s = match &a.file {
        Some(f) => lab.status_against(&nslab::Topology::from_file(f)?)?,
        None => lab.status()?,
    };
    if a.json {
        print_json(&s);
    } else {
        println!("{}", nslab::status::render(&s));
    }
    Ok(if s.ok { 0 } else { 1 })
}
