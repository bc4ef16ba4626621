//! envseal: a write-only secret vault. This file only parses, dispatches
//! and turns errors into messages and exit codes.
#![forbid(unsafe_code)]

mod audit;
mod broker;
mod cli;
mod commands;
mod dotenv;
mod exit;
mod harden;
mod input;
mod paths;
mod reference;

use std::process::ExitCode;

use clap::Parser as _;

use crate::exit::Code;

fn main() -> ExitCode {
    // Before anything secret is read: no core dumps, no same-user ptrace.
    harden::process();
    if let Some(verb) = std::env::args()
        .nth(1)
        .filter(|a| cli::NO_READ_BACK.contains(&a.as_str()))
    {
        eprintln!(
            "envseal: error: there is no `{verb}`: envseal is write-only, and no command \
             prints, exports or copies a value"
        );
        eprintln!("  hint: `envseal list` shows names; a pinned program receives the value itself");
        return ExitCode::from(Code::Usage as u8);
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(Code::Usage as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Before anything is opened: take the descriptor --passphrase-fd names.
    if let Some(Err(err)) = cli.command.passphrase_fd().map(input::claim_passphrase_fd) {
        eprintln!("envseal: error: {err}");
        if let Some(hint) = &err.hint {
            eprintln!("  hint: {hint}");
        }
        return ExitCode::from(err.code as u8);
    }
    match commands::run(cli.command) {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            let (code, hint) = exit::classify(&err);
            eprintln!("envseal: error: {err:#}");
            if let Some(hint) = hint {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(code as u8)
        }
    }
}
