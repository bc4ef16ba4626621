//! `envseal exec [--allow PROGRAM]… -- CMD ARGS…`: run a pinned program
//! with the secrets its grant gives it.
//!
//! Order matters: the grant is verified with the vault's key, then the
//! program's bytes are copied, sealed and checked against the pin, and
//! only then are the secrets decrypted — straight into wiped buffers that
//! the launcher copies into the child and drops.

use std::ffi::OsString;

use envseal_launcher as launcher;
use envseal_policy::{ArgRule, Resolved, Tier};
use envseal_vault::{Keys, SecretName, Vault};

use crate::broker::{
    self,
    protocol::{Body, ExecRequest},
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cli::ExecArgs;
use crate::commands::pin;
use crate::exit::{CliError, Code};
use crate::prepare::{Request, masking, not_granted, prepare};
use crate::{audit, input, paths};
use envseal_core::SHIELD_MARK;

pub fn run(args: ExecArgs) -> anyhow::Result<u8> {
    let mut command = args.command.into_iter();
    let cmd = command.next().unwrap_or_default();
    let cmd_args: Vec<OsString> = command.collect();
    let resolved = pin::resolve(&cmd)?;
    let program = resolved.canonical.clone();
    check_allow(&args.allow, &cmd, &program)?;
    let mut requested = super::names(&args.secrets)?;
    let rename = env_file(args.env_file.as_deref())?;
    for (key, _) in &rename {
        if !requested.contains(key) {
            requested.push(key.clone());
        }
    }

    // A running broker launches the program; this process only asks.
    // Inside a shield the broker is the only way (the vault is read-only
    // there, and the in-process path is for people).
    let loc = broker::location()?;
    let shielded = std::env::var_os(SHIELD_MARK).is_some();
    if (args.passphrase.passphrase_fd.is_none() || shielded)
        && let Some(client) = broker::Client::connect(&loc)?
    {
        return through_broker(
            client,
            ExecRequest {
                program,
                argv0: cmd.into(),
                args: cmd_args.into_iter().map(Into::into).collect(),
                env: broker::environment(),
                secrets: requested.iter().map(ToString::to_string).collect(),
                rename: rename
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                tier: args.tier.map(|t| Tier::from(t).as_str().to_owned()),
                clearenv: args.clearenv,
                verbose: args.verbose,
                mask: mask_flag(args.mask, args.no_mask),
            },
        );
    }
    if shielded {
        return Err(locked("no broker is running for this vault").into());
    }

    let mut vault = Vault::open(&paths::vault_dir()?)?;
    // A first look without the key, to fail before asking a passphrase;
    // the grant is verified with the key below.
    let stored = vault.granted_programs()?;
    let granted = stored.contains(&program);
    if !granted {
        let looked_up = resolved.looked_up.to_string_lossy().into_owned();
        let refusal = if looked_up != program && stored.contains(&looked_up) {
            Some(
                CliError::new(
                    Code::Swapped,
                    format!("{looked_up} was pinned, but it now leads to {program}"),
                )
                .hint("nothing was run; a symlink was put in the pinned path — find out who did it")
                .into(),
            )
        } else if args.allow.is_empty() || !input::at_terminal() {
            Some(not_granted(&program))
        } else {
            None
        };
        if let Some(e) = refusal {
            let mut record = audit::record("exec");
            record.program = Some(program.clone());
            audit::write(&mut vault, None, &audit::refused(record, &e));
            return Err(e);
        }
    }
    if !input::passphrase_available(args.passphrase) {
        let e = anyhow::Error::from(locked(
            "no broker is running and there is no terminal to ask a passphrase",
        ));
        let mut record = audit::record("exec");
        record.program = Some(program.clone());
        audit::write(&mut vault, None, &audit::refused(record, &e));
        return Err(e);
    }
    let pass = input::passphrase(args.passphrase, &format!("to run {program}"))?;
    let keys = audit::unlock(&mut vault, &pass, "exec")?;
    if !granted {
        offer_pin(&mut vault, &keys, &resolved, &requested)?;
    }

    let mut record = audit::record("exec");
    record.program = Some(program.clone());
    let prepared = vault
        .endorsed(&keys)
        .map_err(anyhow::Error::from)
        .and_then(|endorsed| {
            prepare(
                &endorsed,
                &Request {
                    program: &program,
                    argv0: cmd,
                    args: cmd_args,
                    requested: &requested,
                    rename: &rename,
                    tier: args.tier.map(Tier::from),
                    env: std::env::vars_os().collect(),
                    clearenv: args.clearenv,
                    verbose: args.verbose,
                    masking: masking(mask_flag(args.mask, args.no_mask)),
                    shielded: None,
                },
                None,
                &mut record,
            )
        });
    let (launch, report) = match prepared {
        Ok(p) => p,
        Err(e) => {
            audit::write(&mut vault, Some(&keys), &audit::refused(record, &e));
            return Err(e);
        }
    };
    // The record, and a checkpoint over it, are on the disk before any
    // secret is handed over: an exec that cannot be recorded does not run.
    if let Err(e) = vault.append_audit(Some(&record), Some(&keys)) {
        return Err(audit::not_recorded(vault.dir(), &e));
    }
    // Nothing of the vault stays open while the program runs.
    drop(keys);
    drop(vault);
    if let Some(report) = report {
        report.print();
    }
    let exit = launcher::run(launch);
    let dir = paths::vault_dir()?;
    match exit {
        Ok(exit) => {
            audit::write_to(&dir, &audit::ended(&record, Ok(i32::from(exit.status()))));
            Ok(exit.status())
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            audit::write_to(&dir, &audit::ended(&record, Err(&e)));
            Err(e)
        }
    }
}

/// `--env-file PATH`: the (secret, variable) pairs of a reference file;
/// for a directory, of the nearest `.envseal` at or above it.
fn env_file(arg: Option<&std::path::Path>) -> anyhow::Result<Vec<(SecretName, SecretName)>> {
    let Some(arg) = arg else {
        return Ok(Vec::new());
    };
    let path = if arg.is_dir() {
        let start = std::path::absolute(arg)?;
        crate::reference::discover(&start).ok_or_else(|| {
            CliError::new(
                Code::Usage,
                format!(
                    "--env-file: no {} at or above {}",
                    crate::reference::FILE_NAME,
                    start.display()
                ),
            )
        })?
    } else {
        arg.to_path_buf()
    };
    Ok(crate::reference::read(&path)?
        .into_iter()
        .map(|m| (m.key, m.var))
        .collect())
}

/// `--mask` / `--no-mask` as one value.
fn mask_flag(mask: bool, no_mask: bool) -> Option<bool> {
    match (mask, no_mask) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

fn locked(why: &str) -> CliError {
    CliError::new(Code::Locked, format!("the vault is locked: {why}"))
        .hint("a person runs `envseal unlock` in their terminal (then `envseal exec` goes through the broker)")
}

/// The thin client: sends the request with stdin, stdout, stderr and the
/// working directory, relays this process's signals, and exits with the
/// program's status.
fn through_broker(mut client: broker::Client, request: ExecRequest) -> anyhow::Result<u8> {
    use std::os::fd::AsFd as _;
    let program = request.program.clone();
    // Relayed signals are blocked, and read from a signalfd below.
    let mut relayed = nix::sys::signal::SigSet::empty();
    for s in RELAYED {
        relayed.add(s);
    }
    relayed.thread_block()?;
    let warn_unshielded = client.start_exec(
        request,
        [
            std::io::stdin().as_fd(),
            std::io::stdout().as_fd(),
            std::io::stderr().as_fd(),
        ],
    )?;
    if warn_unshielded && std::env::var_os("ENVSEAL_QUIET").is_none_or(|q| q != "1") {
        eprintln!(
            "envseal: warning: not inside an envseal shield. {program} runs with its secrets, \
             and any program of yours that is not shielded (an AI agent, say) could look into \
             it while it runs. Start agents with `envseal shield -- AGENT`. (Said once per \
             terminal session; ENVSEAL_QUIET=1 silences it.)"
        );
    }
    // One thread: the relayed signals through a signalfd, and the
    // broker's answer, in one poll.
    let signals = SignalFd::with_flags(&relayed, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    loop {
        let (got_signal, got_reply) = {
            let mut fds = [
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(client.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if got_signal {
            while let Ok(Some(info)) = signals.read_signal() {
                client.send(
                    Body::Signal {
                        signal: info.ssi_signo as i32,
                    },
                    &[],
                )?;
            }
        }
        if got_reply {
            return broker::exit_status(client.recv()?);
        }
    }
}

/// The signals `exec` relays to a program the broker runs.
const RELAYED: [nix::sys::signal::Signal; 7] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGQUIT,
    nix::sys::signal::Signal::SIGWINCH,
    nix::sys::signal::Signal::SIGUSR1,
    nix::sys::signal::Signal::SIGUSR2,
];

/// With `--allow`, CMD must resolve to one of the named programs.
fn check_allow(allow: &[OsString], cmd: &OsString, program: &str) -> anyhow::Result<()> {
    if allow.is_empty() {
        return Ok(());
    }
    let mut expected = Vec::new();
    for a in allow {
        let r = pin::resolve(a)?;
        if r.canonical == program {
            return Ok(());
        }
        expected.push(r.canonical);
    }
    Err(CliError::new(
        Code::Denied,
        format!(
            "{} resolves to {program}, not to the program --allow names ({})",
            cmd.to_string_lossy(),
            expected.join(", ")
        ),
    )
    .hint("nothing was run; check PATH, or name the program by its full path")
    .into())
}

/// No grant yet, `--allow` given, a person at the terminal: offer to pin.
fn offer_pin(
    vault: &mut Vault,
    keys: &Keys,
    resolved: &Resolved,
    requested: &[SecretName],
) -> anyhow::Result<()> {
    if requested.is_empty() {
        return Err(CliError::new(
            Code::NotGranted,
            format!("{} has no grant", resolved.canonical),
        )
        .hint("name the secrets to grant it with --secret KEY, or use `envseal allow`")
        .into());
    }
    let names: Vec<String> = requested.iter().map(ToString::to_string).collect();
    let grant = pin::build(
        resolved,
        &pin::Wanted {
            secrets: &names,
            files: &[],
            args: ArgRule::Any,
            force_interpreter: false,
            tier: Tier::None,
            may_exec: &[],
            require_shield: false,
        },
    )?;
    eprint!(
        "envseal: {} has no grant yet. It would be pinned as:\n{}",
        envseal_policy::escape(&resolved.canonical),
        pin::describe(&grant)
    );
    pin::say_where_it_leads(resolved);
    if !input::confirm("Pin it and run it? [y/N] ")? {
        return Err(CliError::new(Code::NotGranted, "not pinned; nothing was run").into());
    }
    vault.put_grant(keys, &grant.program.path, &grant.encode(), requested, false)?;
    let mut record = audit::grant_record("allow", &grant);
    record.detail = Some("pinned at the terminal by `exec --allow`".into());
    audit::write(vault, Some(keys), &record);
    eprintln!(
        "envseal: pinned {}",
        envseal_policy::escape(&grant.program.path)
    );
    Ok(())
}
