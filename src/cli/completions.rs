use super::Cli;
use clap::CommandFactory;
use nslab::error::Result;

/// Print shell completions.
///
/// `nslab completions bash > /etc/bash_completion.d/nslab`
/// (also zsh, fish, elvish, powershell).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell to write completions for.
    pub shell: clap_complete::Shell,
}

pub fn run(a: Args) -> Result<i32> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "nslab", &mut std::io::stdout());
    Ok(0)
}

/// Print the manual page.
///
/// The page is roff, generated from the command-line definition:
/// `nslab man > /usr/local/share/man/man1/nslab.1`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {}

pub fn man(_: ManArgs) -> Result<i32> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .map_err(nslab::error::Error::io("render the man page"))?;
    // One section per subcommand, after the main page.
    for sub in cmd.get_subcommands() {
        let sub = sub.clone().bin_name(format!("nslab {}", sub.get_name()));
        clap_mangen::Man::new(sub)
            .render(&mut out)
            .map_err(nslab::error::Error::io("render the man page"))?;
    }
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .map_err(nslab::error::Error::io("write"))?;
    Ok(0)
}

/// Print the JSON Schema of the topology file.
///
/// Editors with a YAML language server (VS Code's YAML extension, Neovim's
/// yamlls, JetBrains IDEs) complete keys and flag unknown keys and wrong types
/// as you type: put `# yaml-language-server: $schema=PATH/nslab.schema.json`
/// as the first line of a lab file, after `nslab schema > nslab.schema.json`.
/// The schema catches structural mistakes; `nslab plan FILE` checks the rest
/// (addresses, names, cables, routes).
#[derive(clap::Args, Debug)]
pub struct SchemaArgs {}

pub fn schema(_: SchemaArgs) -> Result<i32> {
    print!("{}", nslab::topology::raw::schema());
    Ok(0)
}
