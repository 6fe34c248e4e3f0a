use super::{FilePath, print_json};
use nslab::error::{Error, Result};

/// Take a lab down: remove exactly what its record owns.
///
/// `down` trusts the lab's record, not the file, so it works even if the file was
/// edited or deleted since `up`. It returns when the kernel has finished removing
/// the lab's interfaces. Programs nslab started in the lab are stopped (everything
/// in the lab's cgroup); other processes still in its namespaces make `down` fail
/// (listed), unless `--kill`. A lab that is not up is fine: a note, exit 0.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The topology file the lab was brought up from: the lab whose record names
    /// this file (or use --lab).
    pub file: Option<FilePath>,
    /// The lab's name (its file's `name:` with the prefix in front).
    #[arg(long, value_name = "NAME")]
    pub lab: Option<String>,
    /// The prefix the lab was brought up with: chooses among several labs brought
    /// up from FILE (with --all: the labs whose name starts with it).
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// The lab was brought up with --sandbox (checked against its record).
    #[arg(long)]
    pub sandbox: bool,
    /// Kill processes in the lab's namespaces that nslab did not start.
    #[arg(long)]
    pub kill: bool,
    /// In a lab over several machines (`machines:`), this machine's part.
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// Take down every lab that has a record (with --prefix: those whose name
    /// starts with it).
    #[arg(long, conflicts_with_all = ["file", "lab"])]
    pub all: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which lab `down` means; None: it is not up (with the note to print).
fn target(a: &Args) -> Result<std::result::Result<String, String>> {
    if let Some(l) = &a.lab {
        return Ok(Ok(l.clone()));
    }
    let Some(f) = a.file.as_deref() else {
        let labs = nslab::Lab::list(&nslab::Options::default())?;
        return match labs.len() {
            0 => Ok(Err("no lab is up: nothing to do".into())),
            1 => Ok(Ok(labs[0].clone())),
            _ => Err(Error::Usage(format!(
                "several labs are up ({}); name one with --lab NAME or give its FILE",
                labs.join(", ")
            ))),
        };
    };
    // By the file its record names (its `name:` may have changed since).
    let mut found = nslab::lab::labs_from_file(f)?;
    if let Some(p) = &a.prefix {
        found.retain(|x| match &x.prefix {
            Some(xp) => xp == p,
            None => x.lab.starts_with(p.as_str()),
        });
    }
    match found.len() {
        1 => return Ok(Ok(found.remove(0).lab)),
        0 => {}
        _ => {
            let list: Vec<String> = found
                .iter()
                .map(|x| match &x.prefix {
                    Some(p) => format!("  {} (--prefix {p:?})", x.lab),
                    None => format!("  {}", x.lab),
                })
                .collect();
            return Err(Error::Usage(format!(
                "several labs were brought up from {}:\n{}\nchoose one with --prefix P or --lab NAME",
                f.display(),
                list.join("\n")
            )));
        }
    }
    // No record names the file: by its `name:` (a record from before records
    // kept the file, or the lab was brought up from a copy).
    if !f.exists() {
        return Err(Error::Usage(format!(
            "{}: no such file, and no lab's record names it; use --lab NAME",
            f.display()
        )));
    }
    let lab = format!(
        "{}{}",
        a.prefix.as_deref().unwrap_or(""),
        nslab::lab::name_in_file(f)?
    );
    Ok(Ok(lab))
}

pub fn run(a: Args) -> Result<i32> {
    let opts = nslab::Options::default();
    if a.all {
        let prefix = a.prefix.as_deref().unwrap_or("");
        let mut labs = nslab::Lab::list(&opts)?;
        labs.retain(|l| l.starts_with(prefix));
        let mut reports = Vec::new();
        let mut failed = 0;
        for l in &labs {
            match nslab::Lab::down_named(l, &opts, a.kill) {
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
    let lab = match target(&a)? {
        Ok(l) => l,
        Err(note) => {
            if a.json {
                print_json(&serde_json::json!({ "was_up": false, "note": note }));
            } else {
                println!("{note}");
            }
            return Ok(0);
        }
    };
    if a.sandbox
        && let Ok(Some(rec)) = nslab::record::Record::load(&lab)
        && !rec.sandbox
    {
        return Err(Error::Usage(format!(
            "lab {lab} is up in host mode, not sandboxed: drop --sandbox. Nothing was changed."
        )));
    }
    if let Ok(Some(rec)) = nslab::record::Record::load(&lab) {
        let here = rec.model.as_ref().and_then(|m| m.machine.as_deref());
        super::check_machine(here, a.machine.as_deref(), &lab)?;
    }
    let r = nslab::Lab::down_named(&lab, &opts, a.kill)?;
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
        "lab {lab} is down: {} namespace{} removed in {:.2} s",
        r.namespaces.len(),
        if r.namespaces.len() == 1 { "" } else { "s" },
        r.seconds
    );
    Ok(0)
}
