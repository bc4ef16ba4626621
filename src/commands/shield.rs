//! `envseal shield -- CMD…`: how a person starts an agent. Makes sure a
//! broker runs, then runs CMD confined (see `envseal_launcher::shield`)
//! and registers it with the broker, which marks the requests of its
//! process tree as shielded.

use std::ffi::OsString;
use std::path::Path;

use envseal_launcher::shield::{self, Confinement};

use crate::broker::protocol::{Body, Reply};
use crate::broker::{self, Client};
use crate::cli::ShieldArgs;
use crate::commands::pin;
use crate::refusal::{Code, Refusal};
use envseal_core::SHIELD_MARK;

pub fn run(args: ShieldArgs) -> anyhow::Result<u8> {
    let loc = broker::location()?;
    if Client::connect(&loc)?.is_none() {
        broker::start::start(&loc, "shield", args.ttl, super::show_for_broker, || {
            Ok(crate::input::passphrase(
                args.passphrase,
                "to unlock the vault",
            )?)
        })?;
    }
    single_named(&loc.vault)?;
    let (protected, lifted) = envseal_broker::protect::protected_paths(&loc, &args.allow_write)?;
    let shield_protects: Vec<String> = protected
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let domain = shield::domain(&Confinement {
        protected,
        // The vault's files cannot even be opened for reading: a read-only
        // open is enough to hold SQLite's locks and stall every write.
        // `list`, `grants` and `audit` answer through the broker.
        hidden: vec![std::fs::canonicalize(&loc.vault).unwrap_or_else(|_| loc.vault.clone())],
        hidden_files: vec![envseal_vault::DB_FILE.to_owned()],
        nested_sandbox: args.nested_sandbox,
    })?;

    let mut command = args.command.into_iter();
    let cmd = command.next().unwrap_or_default();
    let resolved = pin::resolve(&cmd)?;
    let mut argv = vec![cmd];
    argv.extend(command);
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k != SHIELD_MARK)
        .collect();
    env.push((SHIELD_MARK.into(), std::process::id().to_string().into()));

    let pending = shield::spawn(&domain, Path::new(&resolved.canonical), &argv, &env)?;
    // The broker learns the agent's pid before the agent runs anything;
    // this connection stays open for the agent's life.
    let registration = register(&loc, pending.pid(), shield_protects);
    let registration = match registration {
        Ok(c) => c,
        Err(e) => {
            pending.abandon();
            return Err(e);
        }
    };
    if args.verbose {
        for line in &domain.description {
            eprintln!("envseal: shield: {line}");
        }
        for path in &lifted {
            eprintln!(
                "envseal: shield: left writable by --allow-write: {}",
                path.display()
            );
        }
        eprintln!(
            "envseal: shield: seccomp refuses ptrace, process_vm_*, pidfd_getfd, \
             open_by_handle_at, name_to_handle_at, setns, keyctl, TIOCSTI, executable memfds, \
             and prlimit/setpriority/sched_setaffinity on other processes"
        );
    }
    let exit = pending.start();
    drop(registration);
    Ok(exit?.status())
}

/// Registers the agent `agent_pid` with the broker, saying what this
/// shield protects (what the broker runs for the agent is kept from
/// writing it too), and answers the broker's challenge from this process.
fn register(
    loc: &broker::Location,
    agent_pid: i32,
    protected: Vec<String>,
) -> anyhow::Result<Client> {
    let mut client = Client::connect(loc)?.ok_or_else(|| {
        Refusal::new(Code::Locked, "the broker stopped before the shield started")
    })?;
    // The broker checks the agent, then asks this process to answer (it
    // reads who answered from the kernel).
    envseal_launcher::fdpass::pass_credentials(client.as_fd())?;
    let reply = client.request(Body::Shield {
        agent_pid,
        protected,
    })?;
    let proof = match reply {
        Reply::Challenge { nonce } => client.request(Body::ShieldProof { nonce })?,
        other => other,
    };
    broker::done(proof)?;
    Ok(client)
}

/// Refuses to start when one of the vault's files has another name (a
/// hard link, which a program with write access to any directory could
/// have made earlier): the shield closes the vault's directory, not the
/// file under every name it has.
fn single_named(vault: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    for path in envseal_vault::db_files(&envseal_vault::db_path(vault)) {
        if let Ok(m) = std::fs::symlink_metadata(&path)
            && m.nlink() > 1
        {
            return Err(Refusal::new(
                Code::Tampered,
                format!(
                    "{} has {} names (hard links): a program could reach the vault through \
                     another one, which the shield does not close; nothing was started",
                    path.display(),
                    m.nlink()
                ),
            )
            .hint(format!(
                "find and remove the other names: find / -xdev -samefile {}",
                path.display()
            ))
            .into());
        }
    }
    Ok(())
}
