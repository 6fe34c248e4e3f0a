use super::print_json;
use nslab::error::{Error, Result};

/// Name the namespace a process is in, like `ip netns identify`.
///
/// Name the network namespace a process is in, as `ip netns identify` prints it
/// (default: this process), plus the lab and node when nslab made it. Prints
/// nothing for a process in a namespace without a name (e.g. the root one).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The process (default: nslab itself, i.e. the caller's namespace).
    pub pid: Option<i32>,
    /// Print the namespaces as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<i32> {
    let pid = a.pid.unwrap_or(std::process::id() as i32);
    let found =
        nslab::lab::identify(pid).map_err(|e| Error::Failed(format!("process {pid}: {e}")))?;
    if a.json {
        print_json(&found);
    } else {
        for f in &found {
            match (&f.lab, &f.place) {
                (Some(l), Some(p)) => println!("{}\t(lab {l}, {p})", f.namespace),
                _ => println!("{}", f.namespace),
            }
        }
    }
    Ok(0)
}
