use super::FilePath;
use nslab::error::{Error, Result};
use nslab::graph::{Format, Overlay, render_with};

/// Draw a lab as DOT, Mermaid or SVG.
///
/// Draw a lab: nodes with their interfaces and addresses, bridges, cables
/// labelled with both interface names and their shaping (dashed when down; a
/// lab that is up adds its runtime state), the host (with NAT), and with --sandbox
/// the emulated internet. DOT (for graphviz), Mermaid (renders on GitHub) or SVG
/// (drawn by nslab itself, no graphviz needed).
///
/// Example: nslab graph examples/objective3-nat.yaml --sandbox --format svg -o lab.svg
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The topology file to draw.
    pub file: FilePath,
    /// Output: Graphviz `dot`, `mermaid`, or `svg` (drawn by nslab itself).
    #[arg(long, short = 'F', default_value = "dot", value_parser = ["dot", "mermaid", "svg"])]
    pub format: String,
    /// Show the lab as `up --sandbox` builds it (its own host and the internet).
    #[arg(long)]
    pub sandbox: bool,
    /// Put P in front of the lab's name and its namespaces (as `up --prefix`).
    #[arg(long, default_value = "", value_name = "P")]
    pub prefix: String,
    /// Write to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<FilePath>,
}

pub fn run(a: Args) -> Result<i32> {
    let lab = nslab::lab::load(&a.file, &a.prefix, a.sandbox)?;
    let fmt: Format = a
        .format
        .parse()
        .map_err(|e: nslab::graph::GraphError| Error::Usage(e.to_string()))?;
    // A lab that is up shows its runtime state too (links down, `nslab shape`).
    let overlay = match nslab::record::Record::load(&lab.name) {
        Ok(Some(rec)) => Overlay::of_running(&lab, &rec.runtime),
        _ => Overlay::of_file(&lab),
    };
    let out = render_with(&lab, fmt, &overlay).map_err(|e| Error::Failed(e.to_string()))?;
    if matches!(fmt, Format::Mermaid) && (out.len() > 50_000 || out.matches("---").count() > 500) {
        eprintln!(
            "note: GitHub renders Mermaid diagrams up to 50 000 characters / 500 edges; try --format svg"
        );
    }
    match &a.output {
        Some(p) => std::fs::write(p, out).map_err(Error::io(format!("write {}", p.display())))?,
        None => print!("{out}"),
    }
    Ok(0)
}
