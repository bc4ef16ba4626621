//! envseal: a write-only secret vault. This file only parses, dispatches
//! and turns errors into messages and exit codes.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod dotenv;
mod harden;
mod input;
mod reference;

// The exec path and what the verbs share with it (refusals, audit records,
// the vault's directory, the key-derivation check) live in the broker crate.
use envseal_broker::refusal;
use envseal_broker::{self as broker, audit, kdf, paths};

use std::process::ExitCode;

use clap::Parser as _;

use crate::refusal::Code;

fn main() -> ExitCode {
    // Before anything secret is read: no core dumps, no same-user ptrace.
    harden::process();
    quiet_on_closed_stdout();
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
        Err(err) if closed_stdout(&err) => ExitCode::SUCCESS,
        Err(err) => ExitCode::from(refusal::report(&err) as u8),
    }
}

/// A reader that stops early (`envseal audit | head`) closes the pipe:
/// output then ends silently, with status 0, as for other Unix tools.
/// `print!` reports a closed stdout by panicking; this hook turns that one
/// panic into a quiet exit and leaves every other panic as it was.
fn quiet_on_closed_stdout() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        previous(info);
    }));
}

/// Whether `err` is a write to a stdout whose reader has gone.
fn closed_stdout(err: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == broken
    })
}
