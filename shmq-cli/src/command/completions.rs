//! `shmq completions` and `shmq man`: generated from the clap tree, so they
//! never drift from the commands.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::exit::{Code, Failure};
use crate::output::Out;

#[derive(clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// The page of this command (`recv`, or `dlq list`): shmq-recv(1);
    /// without it, shmq(1).
    pub command: Vec<String>,
    /// Write every page (shmq.1, shmq-recv.1, ...) into this directory
    /// instead.
    #[arg(long, conflicts_with = "command", value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let mut cmd = crate::Cli::command();
    let mut out = Out::new();
    clap_complete::generate(a.shell, &mut cmd, "shmq", &mut out);
    out.finish()
}

pub fn man(a: ManArgs) -> Result<(), Failure> {
    let mut cmd = crate::Cli::command().disable_help_subcommand(true);
    if let Some(dir) = a.dir {
        return clap_mangen::generate_to(cmd, &dir).map_err(|e| {
            Failure::from(shmq::Error::Io {
                op: "write man pages to",
                path: dir,
                source: e,
            })
        });
    }
    // Built, subcommands are named for their pages: `shmq-dlq-list`.
    cmd.build();
    let mut page = cmd;
    for name in &a.command {
        page = page.find_subcommand(name).cloned().ok_or_else(|| {
            Failure::new(
                Code::Usage,
                format!(
                    "no command `{}`; `shmq --help` lists them",
                    a.command.join(" ")
                ),
            )
        })?;
    }
    // The title line shows the name: the page's, not the bare verb's (clap
    // wants a &'static str; this process prints one page and ends).
    let title: &'static str = Box::leak(
        page.get_display_name()
            .unwrap_or(page.get_name())
            .to_owned()
            .into_boxed_str(),
    );
    let mut out = Out::new();
    clap_mangen::Man::new(page.name(title)).render(&mut out)?;
    out.finish()
}
