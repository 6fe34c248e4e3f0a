use super::{FilePath, LabSel, print_json};
use nslab::error::Result;

/// Take a lab down: remove exactly what its record owns.
///
/// `down` trusts the lab's record, not the file, so it works even if the file was
/// edited or deleted since `up`. It returns when the kernel has finished removing
/// the lab's interfaces. Programs nslab started in the lab are stopped; other
/// processes still in its namespaces make `down` fail (listed), unless `--kill`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The topology file the lab was brought up from (or use --lab).
    pub file: Option<FilePath>,
    #[command(flatten)]
    pub sel: LabSel,
    /// Kill processes in the lab's namespaces that nslab did not start.
    #[arg(long)]
    pub kill: bool,
    /// Take down every lab that has a record (with --prefix: those whose name
    /// starts with it).
    #[arg(long, conflicts_with_all = ["file", "lab"])]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<i32> {
    if a.all {
        let labs = nslab::maint::labs_with_prefix(&a.sel.prefix)?;
        let mut reports = Vec::new();
        let mut failed = 0;
        for l in &labs {
            match nslab::lab::down(l, a.kill) {
                Ok(r) => reports.push(r),
                Err(e) => {
                    eprintln!("nslab: lab {l}: {e}");
                    failed += 1;
                }
            }
        }
        if a.json {
            print_json(&reports);
        } else if labs.is_empty() {
            println!("no lab is up");
        } else {
            for r in &reports {
                println!("lab {} is down", r.lab);
            }
        }
        return Ok(if failed > 0 { 1 } else { 0 });
    }
    let lab = a.sel.resolve(a.file.as_deref())?;
    let r = nslab::lab::down(&lab, a.kill)?;
    if a.json {
        print_json(&r);
        return Ok(0);
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if !r.was_up {
        println!("lab {lab} is not up: nothing to do");
        return Ok(0);
    }
    for p in &r.stopped {
        println!("stopped pid {} ({})", p.pid, p.command);
    }
    for p in &r.killed {
        println!("killed pid {} ({})", p.pid, p.command);
    }
    println!(
        "lab {lab} is down: {} namespaces removed in {:.2} s",
        r.namespaces.len(),
        r.seconds
    );
    Ok(0)
}
