//! One module per verb.

mod approve;
mod init;
mod list;
mod rm;
mod set;

use crate::cli::Command;

/// Runs one command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init::run(args),
        Command::Set(args) => set::run(args),
        Command::Approve(args) => approve::run(args),
        Command::List(args) => list::run(args),
        Command::Rm(args) => rm::run(args),
    }
}
