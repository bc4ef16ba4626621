//! One module per verb.

mod allow;
mod approve;
mod audit;
mod doctor;
mod environ;
pub mod exec;
pub mod grants;
mod import;
mod init;
mod list;
mod lock;
mod mcp;
mod pin;
mod repair;
mod repin;
mod revoke;
mod rm;
mod set;
mod shield;
mod status;
mod unlock;

use envseal_vault::SecretName;

use crate::cli::Command;

/// Prints `value` as one line of JSON on `out` (the `--json` outputs).
fn print_json(out: &mut impl std::io::Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `envseal completions SHELL`.
fn completions(args: crate::cli::CompletionsArgs) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    use clap_complete::Shell;
    let shell = match args.shell {
        crate::cli::ShellArg::Bash => Shell::Bash,
        crate::cli::ShellArg::Zsh => Shell::Zsh,
        crate::cli::ShellArg::Fish => Shell::Fish,
    };
    // Into memory first: clap_complete panics on a failed write, and a
    // closed stdout must end the output quietly.
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut crate::cli::Cli::command(),
        "envseal",
        &mut script,
    );
    std::io::Write::write_all(&mut std::io::stdout(), &script)?;
    Ok(())
}

/// The tier a `--tier` names (the CLI's enum is also read by `build.rs`,
/// which links none of envseal's crates).
impl From<crate::cli::TierArg> for envseal_core::Tier {
    fn from(t: crate::cli::TierArg) -> envseal_core::Tier {
        match t {
            crate::cli::TierArg::None => envseal_core::Tier::None,
            crate::cli::TierArg::Hardened => envseal_core::Tier::Hardened,
            crate::cli::TierArg::Lockdown => envseal_core::Tier::Lockdown,
        }
    }
}

/// Validates secret names given on the command line.
fn names(given: &[String]) -> Result<Vec<SecretName>, envseal_vault::Error> {
    given
        .iter()
        .map(|n| SecretName::new(n).map_err(Into::into))
        .collect()
}

/// What the broker shows a caller that cannot open the vault's files
/// (inside a shield), given its arguments: `list`, `grants` or `audit`
/// (without `--verify`, which needs the passphrase), run as this command
/// line runs them; anything else is refused.
pub fn show_for_broker(args: &[String]) -> Result<Box<dyn FnOnce() -> u8>, String> {
    use clap::Parser as _;
    let parsed = crate::cli::Cli::try_parse_from(
        std::iter::once("envseal".to_owned()).chain(args.iter().cloned()),
    );
    let command = match parsed.map(|c| c.command) {
        Ok(c @ (Command::List(_) | Command::Grants(_))) => c,
        Ok(Command::Audit(a)) if !a.verify => Command::Audit(a),
        Ok(_) => {
            return Err(
                "the broker shows only `list`, `grants` and `audit` (without --verify)".into(),
            );
        }
        Err(e) => return Err(format!("{}", e.kind())),
    };
    Ok(Box::new(move || {
        let shown = match command {
            Command::List(args) => list::run(args),
            Command::Grants(args) => grants::run(args),
            Command::Audit(args) => audit::run(args),
            _ => unreachable!("only the commands above are shown"),
        };
        match shown {
            Ok(()) => 0,
            Err(e) => crate::refusal::report(&e) as u8,
        }
    }))
}

/// The result of `list`, `grants` or `audit`; when the vault's files could
/// not be opened (inside a shield) and a broker runs, the broker's answer
/// to the same command line instead.
fn or_through_broker(result: anyhow::Result<()>) -> anyhow::Result<u8> {
    let closed = |e: &anyhow::Error| {
        // Closed (inside a shield), or read-only (root inside a shield
        // under --nested-sandbox, where the vault is covered).
        matches!(
            e.downcast_ref::<envseal_vault::Error>(),
            Some(envseal_vault::Error::Closed(_) | envseal_vault::Error::ReadOnly { .. })
        )
    };
    match result {
        Ok(()) => Ok(0),
        Err(e) if closed(&e) => {
            let Some(mut client) = crate::broker::Client::connect(&crate::broker::location()?)?
            else {
                return Err(e);
            };
            let args = std::env::args_os()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            use std::os::fd::AsFd as _;
            let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
            client.send(
                crate::broker::protocol::Body::Show { args },
                &[stdout.as_fd(), stderr.as_fd()],
            )?;
            crate::broker::exit_status(client.recv()?)
        }
        Err(e) => Err(e),
    }
}

/// Runs one command; returns the exit status (a launched program's own
/// for `exec`, else 0).
pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Init(args) => init::run(args),
        Command::Set(args) => set::run(args),
        Command::Approve(args) => approve::run(args),
        Command::List(args) => return or_through_broker(list::run(args)),
        Command::Rm(args) => rm::run(args),
        Command::Repair(args) => repair::run(args),
        Command::Allow(args) => allow::run(args),
        Command::Repin(args) => repin::run(args),
        Command::Grants(args) => return or_through_broker(grants::run(args)),
        Command::Revoke(args) => revoke::run(args),
        Command::Exec(args) => return exec::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Audit(args) => return or_through_broker(audit::run(args)),
        Command::Mcp => mcp::run(),
        Command::Import(args) => import::run(args),
        Command::Completions(args) => completions(args),
        Command::Man => {
            use std::io::Write as _;
            std::io::stdout().write_all(include_bytes!(concat!(env!("OUT_DIR"), "/envseal.1")))?;
            Ok(())
        }
        Command::Unlock(args) => unlock::run(args),
        Command::Lock => lock::run(),
        Command::Status(args) => return status::run(args),
        Command::Shield(args) => return shield::run(args),
    }
    .map(|()| 0)
}
