//! `shmq completions` and `shmq man`: generated from the clap tree, so they
//! never drift from the commands.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::exit::Failure;
use crate::output::Out;

#[derive(clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {}

pub fn run(a: Args) -> Result<(), Failure> {
    let mut cmd = crate::Cli::command();
    let mut out = Out::new();
    clap_complete::generate(a.shell, &mut cmd, "shmq", &mut out);
    out.finish()
}

pub fn man(_: ManArgs) -> Result<(), Failure> {
    let cmd = crate::Cli::command();
    let mut out = Out::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    out.flush()?;
    out.finish()
}
