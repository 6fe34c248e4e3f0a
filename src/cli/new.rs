use super::FilePath;
use nslab::error::{Error, Result};
use nslab::topology::generate::{Kind, Spec, generate};

/// Write a lab file for a standard topology (Mininet's, and more).
///
/// Writes a topology file to start from: Mininet's `--topo` kinds with
/// Mininet's names, ports and addresses, and a few more. Arguments are
/// positional or `key=value`, as in Mininet. Every file ends with
/// `expect: - reach: all -> all`, which `nslab check` tests.
///
/// Kinds:
///   single,K             one switch s1, hosts h1..hK (Mininet; K=2 if left out)
///   linear,K[,N]         switches s1..sK in a line, N hosts on each (Mininet)
///   tree,depth=D,fanout=F   a tree of switches, F^D hosts (Mininet; also tree,D,F)
///   star,N               router r1 in the middle, hosts h1..hN each on its own /24
///   ring,N               N switches in a loop running STP, one host each (N >= 3)
///   chain,N              routers r1..rN on /30 cables with static routes, h1 and h2 at the ends
///   fattree,K            a k-ary fat tree of switches running STP (K even, 2 to 8)
///
/// Switches are Linux bridges; Mininet's kinds put hosts at 10.0.0.1, .2, ...
/// of 10.0.0.0/8.
///
/// Examples:
///   nslab new --topo linear,3 -o lab.yaml
///   nslab up --sandbox lab.yaml && nslab check lab.yaml && nslab down lab.yaml
///   nslab new --topo tree,depth=2,fanout=3 --name campus -o campus.yaml
///   nslab new --topo chain,4 -o chain.yaml && nslab graph chain.yaml --format svg -o chain.svg
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The topology: KIND,ARGS, e.g. `linear,3`, `tree,depth=2,fanout=3`, `chain,4`.
    #[arg(long, value_name = "KIND,ARGS")]
    pub topo: String,
    /// Write to FILE instead of standard output (an existing FILE is kept unless --force).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<FilePath>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// The lab's name (`name:`); default from the kind and its numbers, e.g. `linear3`.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

pub fn run(a: Args) -> Result<i32> {
    let spec: Spec = a
        .topo
        .parse()
        .map_err(|e| Error::Usage(format!("--topo {}: {e}", a.topo)))?;
    let name = match a.name {
        Some(n) => {
            if let Some(p) = nslab::topology::validate::name_problem(&n) {
                return Err(Error::Usage(format!("--name {n:?} {p}")));
            }
            n
        }
        None => spec.default_name(),
    };
    let text = generate(&spec, &name);
    let Some(path) = &a.output else {
        // Not print!: it panics when a reader (`| head`) has gone away.
        use std::io::Write;
        return match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(Error::io("write to standard output")(e))
            }
            _ => Ok(0),
        };
    };
    write(path, &text, a.force)?;
    let (hosts, switches) = spec.kind.size();
    let what = match spec.kind {
        Kind::Star { .. } | Kind::Chain { .. } if switches == 1 => "router",
        Kind::Star { .. } | Kind::Chain { .. } => "routers",
        _ if switches == 1 => "switch",
        _ => "switches",
    };
    eprintln!(
        "nslab: wrote {} (lab {name}: {hosts} hosts, {switches} {what}); next: nslab up --sandbox {0}",
        path.display()
    );
    Ok(0)
}

/// Write `text` to `path`; an existing file is replaced only with `force`
/// (create_new, so a file appearing meanwhile is not clobbered either).
fn write(path: &std::path::Path, text: &str, force: bool) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let mut f = o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Refused(format!(
                "{} exists; nothing written (--force replaces it)",
                path.display()
            ))
        } else {
            Error::io(format!("write {}", path.display()))(e)
        }
    })?;
    f.write_all(text.as_bytes())
        .map_err(Error::io(format!("write {}", path.display())))
}
