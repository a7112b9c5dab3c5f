//! `strata completions` and `strata man`: shell completion scripts and man pages, generated from
//! the same clap definitions as `--help`, so they cannot drift from the flags.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "strata", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes strata(1) to stdout, or every command's page into `out_dir`.
pub fn man(out_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    match out_dir {
        None => {
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            eprintln!("man pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
