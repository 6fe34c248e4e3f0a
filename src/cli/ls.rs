use super::print_json;
use nslab::error::Result;

/// List the labs that are up.
///
/// List the labs that are up: name, mode (host or sandbox), node count, state
/// (up, partial: an `up` did not finish, degraded: some namespaces are gone,
/// stale: all are gone, e.g. after a reboot; corrupt: its record cannot be read,
/// with the file and the remedy) and the file it came from.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the labs as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<i32> {
    let labs = nslab::maint::ls()?;
    if a.json {
        print_json(&labs);
        return Ok(0);
    }
    if labs.is_empty() {
        println!("no lab is up");
        return Ok(0);
    }
    let mut rows = vec![vec![
        "LAB".to_string(),
        "MODE".into(),
        "NODES".into(),
        "STATE".into(),
        "FILE".into(),
    ]];
    for l in &labs {
        rows.push(vec![
            l.lab.clone(),
            l.mode.into(),
            l.nodes.to_string(),
            l.state.into(),
            l.file.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    print!("{}", nslab::util::table(&rows));
    for l in labs.iter().filter(|l| l.state == "corrupt") {
        println!(
            "corrupt record of lab {}: {}",
            l.lab,
            l.problem.as_deref().unwrap_or("")
        );
    }
    if labs.iter().any(|l| l.state == "stale") {
        println!("stale labs: their namespaces are gone (a reboot?); `nslab clean` clears them");
    }
    Ok(0)
}
