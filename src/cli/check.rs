use super::{FilePath, LabSel, print_json};
use nslab::error::{Error, Result};
use std::io::{IsTerminal, Write};

/// Who reaches whom, the file's expectations, and why not.
///
/// Prints a reachability matrix of all nodes (plus `host` and, sandboxed, the
/// `internet`), one per address family in use, like Mininet's pingall: rows and
/// columns are the places with an address of the family, and every address of a
/// destination is probed (a pair is `ok` when all answer). For every pair that
/// does not reach, the reason read from the kernel along the path (no route, no
/// route back, an interface down, a router that does not forward, no NAT, a
/// firewall...). Then the `expect` section of the lab's file: reach and no
/// reach, TCP ports, HTTP statuses; between groups too (`reach: all -> all`,
/// every pair, a node not with itself, listing the pairs that fail). A last line
/// counts: `matrix: 30 of 30 pairs reach; expectations: 4 of 5 hold`.
///
/// Probes run concurrently, a few sources at once, each retried up to 3 times
/// before a pair is `NO`. They are paced so the kernel's neighbour (ARP/NDP)
/// table, one table shared by every namespace of the machine (gc_thresh3 = 1024
/// by default), never overflows: a bounded number of addresses in flight, a
/// pause while the table is nearly full, and the entries the probes made in the
/// lab's namespaces deleted when done. The limits are never changed.
///
/// A probe that cannot run (no raw socket, EPERM, ENOBUFS that persists) is an
/// error, shown `ERR`, never unreachability. Exits 0 only if every expectation
/// holds and no probe failed to run.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Take the expectations from this file (default: the lab's record).
    pub file: Option<FilePath>,
    #[command(flatten)]
    pub sel: LabSel,
    /// In a lab over several machines (`machines:`), this machine's part: the
    /// expectations whose source is one of its nodes.
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// Only the expectations, no matrix.
    #[arg(long)]
    pub no_matrix: bool,
    /// Leave `host` and `internet` out of the matrix: nodes only.
    #[arg(long)]
    pub nodes_only: bool,
    /// Probe only N (source, destination) pairs of the matrix, sampled
    /// deterministically (see --seed).
    #[arg(long, value_name = "N")]
    pub pairs: Option<usize>,
    /// The seed of --pairs' sample.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Matrix rows: nodes or groups (`all`: every place of the matrix, `host` and
    /// `internet` included; `[a, b]`, `a,b`, `@BRIDGE`, `host`, `internet`); repeatable.
    #[arg(long, value_name = "PLACES")]
    pub from: Vec<String>,
    /// Matrix columns, as --from.
    #[arg(long, value_name = "PLACES")]
    pub to: Vec<String>,
    /// Write the expectations' results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<FilePath>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<i32> {
    let lab = a.sel.open(a.file.as_deref())?;
    super::check_machine(lab.machine(), a.machine.as_deref(), lab.name())?;
    let topo = a
        .file
        .as_deref()
        .map(nslab::Topology::from_file)
        .transpose()?;
    let tty = std::io::stderr().is_terminal();
    let progress = |done: usize, total: usize| {
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r\x1b[Kprobing: {done} of {total} addresses");
        let _ = e.flush();
    };
    let opts = nslab::CheckOptions {
        matrix: !a.no_matrix,
        from: (!a.from.is_empty()).then(|| a.from.clone()),
        to: (!a.to.is_empty()).then(|| a.to.clone()),
        pairs: a.pairs,
        seed: a.seed,
        progress: if tty { Some(&progress) } else { None },
        nodes_only: a.nodes_only,
    };
    let r = match &topo {
        Some(t) => lab.check_against(t, &opts),
        None => lab.check_with(&opts),
    };
    if tty && !a.no_matrix {
        eprint!("\r\x1b[K");
    }
    let r = r?;
    if let Some(j) = &a.junit {
        std::fs::write(j, nslab::probe::check::junit(&r))
            .map_err(Error::io(format!("write {}", j.display())))?;
    }
    if a.json {
        print_json(&r);
    } else {
        print!("{}", nslab::probe::check::render(&r));
    }
    Ok(if r.ok && r.probe_errors == 0 { 0 } else { 1 })
}
