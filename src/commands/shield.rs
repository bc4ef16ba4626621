//! `envseal shield -- CMD…`: how a person starts an agent. Makes sure a
//! broker runs, then runs CMD confined (see `envseal_launcher::shield`)
//! and registers it with the broker, which marks the requests of its
//! process tree as shielded.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use envseal_launcher::shield::{self, Confinement};

use crate::broker::protocol::{Body, Reply};
use crate::broker::{self, Client};
use crate::cli::ShieldArgs;
use crate::commands::pin;
use crate::refusal::{Code, Refusal};
use envseal_core::SHIELD_MARK;

/// Shell and session start-up files, relative to HOME: code the person's
/// next shell or login would run.
const START_UP: [&str; 11] = [
    ".bashrc",
    ".profile",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".config/fish",
    ".config/systemd/user",
    ".config/environment.d",
];

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
    let (protected, lifted) = protected_paths(&loc, &args.allow_write)?;
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
    let registration = (|| -> anyhow::Result<Client> {
        let mut client = Client::connect(&loc)?.ok_or_else(|| {
            Refusal::new(Code::Locked, "the broker stopped before the shield started")
        })?;
        // The broker checks the agent, then asks this process to answer
        // (it reads who answered from the kernel).
        envseal_launcher::fdpass::pass_credentials(client.as_fd())?;
        let reply = client.request(Body::Shield {
            agent_pid: pending.pid(),
        })?;
        let proof = match reply {
            Reply::Challenge { nonce } => client.request(Body::ShieldProof { nonce })?,
            other => other,
        };
        broker::done(proof)?;
        Ok(client)
    })();
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

/// What the shield write-protects, and what `--allow-write` lifted.
fn protected_paths(
    loc: &broker::Location,
    allow_write: &[PathBuf],
) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    // Never lifted: the vault, the broker's directory, envseal itself.
    let mut fixed = vec![canonical(&loc.vault), canonical(&loc.dir)];
    if let Ok(exe) = std::env::current_exe() {
        fixed.push(canonical(&exe));
    }
    let mut liftable = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path).filter(|d| d.is_absolute()) {
            liftable.push(canonical(&dir));
        }
    }
    if let Some(home) = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
    {
        let home = canonical(&home);
        for f in START_UP {
            liftable.push(home.join(f));
        }
    }
    let mut lifted = Vec::new();
    for w in allow_write {
        let w = canonical(&std::path::absolute(w)?);
        if let Some(f) = fixed.iter().find(|f| f.starts_with(&w) || w.starts_with(f)) {
            return Err(Refusal::new(
                Code::Usage,
                format!(
                    "--allow-write {} would make {} writable, which the shield always protects",
                    w.display(),
                    f.display()
                ),
            )
            .into());
        }
        if let Some(p) = liftable.iter().find(|p| w.starts_with(p) && **p != w) {
            return Err(Refusal::new(
                Code::Usage,
                format!(
                    "--allow-write {} is inside the protected {}: name that one itself",
                    w.display(),
                    p.display()
                ),
            )
            .into());
        }
        liftable.retain(|p| {
            let covered = p.starts_with(&w);
            if covered {
                lifted.push(p.clone());
            }
            !covered
        });
    }
    fixed.extend(liftable);
    fixed.sort();
    fixed.dedup();
    Ok((fixed, lifted))
}
