//! `envseal exec [--allow PROGRAM]… -- CMD ARGS…`: run a pinned program
//! with the secrets its grant gives it.
//!
//! Order matters: the grant is verified with the vault's key, then the
//! program's bytes are copied, sealed and checked against the pin, and
//! only then are the secrets decrypted — straight into wiped buffers that
//! the launcher copies into the child and drops.

use std::ffi::OsString;

use envseal_launcher::{self as launcher, Launch, Role, SecretItem};
use envseal_policy::{ArgRule, Delivery, Grant, Resolved, Tier, check_args, hex, select};
use envseal_vault::{Error as VaultError, Keys, SecretName, Vault};

use crate::broker::{
    self,
    protocol::{Body, ExecRequest},
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cli::ExecArgs;
use crate::commands::pin;
use crate::exit::{CliError, Code};
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

/// Which streams are masked for `--mask` (true), `--no-mask` (false) or
/// neither.
pub fn masking(flag: Option<bool>) -> launcher::Masking {
    match flag {
        Some(true) => launcher::Masking::Always,
        Some(false) => launcher::Masking::Never,
        None => launcher::Masking::Auto,
    }
}

fn locked(why: &str) -> CliError {
    CliError::new(Code::Locked, format!("the vault is locked: {why}"))
        .hint("a person runs `envseal unlock` in their terminal (then `envseal exec` goes through the broker)")
}

/// What one exec asks for, from the command line or a broker client.
pub struct Request<'a> {
    pub program: &'a str,
    pub argv0: OsString,
    pub args: Vec<OsString>,
    pub requested: &'a [SecretName],
    /// `--env-file`: deliver these secrets in these variables instead.
    /// `--env-file`: (secret, variable); both validated names, wherever
    /// the request came from.
    pub rename: &'a [(SecretName, SecretName)],
    /// `--tier`: at least this tier.
    pub tier: Option<Tier>,
    /// The caller's environment, before the dangerous part is removed.
    pub env: Vec<(OsString, OsString)>,
    pub clearenv: bool,
    pub verbose: bool,
    pub masking: launcher::Masking,
    /// Through the broker: whether the caller is inside a shield.
    pub shielded: Option<bool>,
}

/// `--verbose`'s account of what was verified, printed where the caller
/// sees it.
pub struct Report {
    lines: Vec<String>,
}

impl Report {
    pub fn print(&self) {
        for line in &self.lines {
            eprintln!("envseal: {line}");
        }
    }
}

/// Checks the grant (arguments, secrets, shield requirement), loads and
/// verifies what will run (from `cache` when given), then decrypts the
/// secrets straight into the launch.
pub fn prepare(
    endorsed: &envseal_vault::Endorsed<'_>,
    request: &Request<'_>,
    cache: Option<&mut launcher::Cache>,
    record: &mut envseal_vault::audit::Record,
) -> anyhow::Result<(Launch, Option<Report>)> {
    let program = request.program;
    record.program = Some(program.to_owned());
    record.shielded = request.shielded;
    let body = endorsed
        .grant(program)?
        .ok_or_else(|| not_granted(program))?;
    let grant = Grant::decode(&body)?;
    record.sha256 = Some(grant.program.sha256);
    // The grant's tier is a minimum: `--tier` can only raise it.
    let mut grant = grant;
    grant.tier = grant.tier.max(request.tier.unwrap_or(Tier::None));
    record.tier = Some(grant.tier.as_str().into());
    record.names = grant.secrets.keys().map(ToString::to_string).collect();
    if grant.require_shield && request.shielded != Some(true) {
        return Err(CliError::new(
            Code::Denied,
            format!("{program} may run only for callers inside an envseal shield"),
        )
        .hint("its grant was made with --require-shield; run the caller under `envseal shield`")
        .into());
    }
    check_args(&grant, &request.args)?;
    let selected = select(&grant, request.requested)?;
    record.names = selected.iter().map(|(n, _)| n.to_string()).collect();
    // The bytes are verified before any secret is decrypted.
    let (executable, script) = load(&grant, cache)?;
    let mut secrets = Vec::with_capacity(selected.len());
    for (name, delivery) in selected {
        let value = endorsed
            .open_value(&name)
            .map_err(|e| missing_secret(e, &name, program))?;
        let (variable, delivery) = match delivery {
            Delivery::Env(v) => (v.to_string(), launcher::Delivery::Env),
            Delivery::File(v) => (v.to_string(), launcher::Delivery::File),
        };
        let variable = match request.rename.iter().find(|(k, _)| *k == name) {
            None => variable,
            Some((_, var))
                if launcher::is_dangerous(std::ffi::OsStr::new(var.as_str()))
                    || crate::reference::steers(var.as_str()) =>
            {
                return Err(CliError::new(
                    Code::Denied,
                    format!("--env-file maps {name} to {var}, a variable envseal never sets"),
                )
                .into());
            }
            Some((_, var)) => var.to_string(),
        };
        secrets.push(SecretItem {
            variable: variable.to_string(),
            delivery,
            value,
        });
    }
    let given = request.env.len();
    let env = launcher::rebuild(request.env.iter().cloned(), request.clearenv);
    let report = request
        .verbose
        .then(|| report(&grant, given - env.len(), secrets.len(), request.shielded));
    let launch = Launch {
        executable,
        script: script.map(|s| (s, grant.script.and_then(|s| s.arg))),
        argv0: request.argv0.clone(),
        args: request.args.clone(),
        env,
        secrets,
        tier: grant.tier,
        // Checked by the launcher against the very descriptor it uses.
        may_exec: grant
            .may_exec
            .iter()
            .map(|pin| (pin.path.clone(), pin.sha256))
            .collect(),
        verbose: request.verbose,
        masking: request.masking,
    };
    Ok((launch, report))
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

fn not_granted(program: &str) -> anyhow::Error {
    CliError::new(Code::NotGranted, format!("{program} has no grant"))
        .hint(format!(
            "a person can pin it with: envseal allow --secret KEY -- {program}"
        ))
        .into()
}

fn missing_secret(e: VaultError, name: &SecretName, program: &str) -> anyhow::Error {
    match e {
        VaultError::NoSuchSecret(_) => CliError::new(
            Code::SecretMissing,
            format!("secret {name}, which the grant for {program} gives, was removed from the vault"),
        )
        .hint(format!(
            "set it again (`envseal set {name}`, then approve it), or `envseal revoke {program} --secret {name}`"
        ))
        .into(),
        e => e.into(),
    }
}

/// Loads and verifies what will run: the program, or for a script its
/// interpreter (executed) and the script (read by it).
fn load(
    grant: &Grant,
    mut cache: Option<&mut launcher::Cache>,
) -> anyhow::Result<(launcher::Verified, Option<launcher::Verified>)> {
    let mut get = |pin: &envseal_policy::Pin, role| match cache.as_deref_mut() {
        Some(cache) => cache.load(&pin.path, &pin.sha256, role),
        None => launcher::load(&pin.path, &pin.sha256, role),
    };
    Ok(match &grant.script {
        None => (get(&grant.program, Role::Executable)?, None),
        Some(script) => {
            let interpreter = get(&script.interpreter, Role::Executable)?;
            let copy = get(&grant.program, Role::Script)?;
            (interpreter, Some(copy))
        }
    })
}

/// `--verbose`: what was verified and which protections apply.
fn report(grant: &Grant, removed: usize, secrets: usize, shielded: Option<bool>) -> Report {
    let mut lines = vec![format!(
        "verified {} (sha256 {}) in a sealed copy",
        grant.program.path,
        hex(&grant.program.sha256)
    )];
    if let Some(s) = &grant.script {
        lines.push(format!(
            "verified interpreter {} (sha256 {})",
            s.interpreter.path,
            hex(&s.interpreter.sha256)
        ));
    }
    lines.push(match shielded {
        None => "launched by this process (no broker)".to_owned(),
        Some(true) => "launched by the broker for a caller inside a shield".to_owned(),
        Some(false) => "launched by the broker for a caller outside any shield".to_owned(),
    });
    lines.push(format!("tier {}", grant.tier.as_str()));
    lines.push(format!(
        "{removed} environment variable(s) removed; {secrets} secret(s) delivered; \
         descriptors above 2 closed"
    ));
    if grant.args != ArgRule::Any {
        lines.push(format!(
            "arguments checked: {}",
            envseal_policy::describe_args(&grant.args)
        ));
    }
    Report { lines }
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
