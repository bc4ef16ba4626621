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

use crate::cli::ExecArgs;
use crate::commands::pin;
use crate::exit::{CliError, Code};
use crate::{input, paths};

pub fn run(args: ExecArgs) -> anyhow::Result<u8> {
    let mut command = args.command.into_iter();
    let cmd = command.next().unwrap_or_default();
    let cmd_args: Vec<OsString> = command.collect();
    let resolved = pin::resolve(&cmd)?;
    let program = resolved.canonical.clone();
    check_allow(&args.allow, &cmd, &program)?;
    let requested = super::names(&args.secrets)?;

    let mut vault = Vault::open(&paths::vault_dir()?)?;
    // A first look without the key, to fail before asking a passphrase;
    // the grant is verified with the key below.
    let stored = vault.granted_programs()?;
    let granted = stored.contains(&program);
    if !granted {
        let looked_up = resolved.looked_up.to_string_lossy().into_owned();
        if looked_up != program && stored.contains(&looked_up) {
            return Err(CliError::new(
                Code::Swapped,
                format!("{looked_up} was pinned, but it now leads to {program}"),
            )
            .hint("nothing was run; a symlink was put in the pinned path — find out who did it")
            .into());
        }
        if args.allow.is_empty() || !input::at_terminal() {
            return Err(not_granted(&program));
        }
    }
    let pass = input::passphrase(args.passphrase, &format!("to run {program}"))?;
    let keys = vault.unlock(&pass)?;
    if !granted {
        offer_pin(&mut vault, &keys, &resolved, &requested)?;
    }

    let launch = {
        let endorsed = vault.endorsed(&keys)?;
        let body = endorsed
            .grant(&program)?
            .ok_or_else(|| not_granted(&program))?;
        let grant = Grant::decode(&body)?;
        check_args(&grant, &cmd_args)?;
        let selected = select(&grant, &requested)?;
        // The bytes are verified before any secret is decrypted.
        let (executable, script) = load(&grant)?;
        let mut secrets = Vec::with_capacity(selected.len());
        for (name, delivery) in selected {
            let value = endorsed
                .open_value(&name)
                .map_err(|e| missing_secret(e, &name, &program))?;
            let (variable, delivery) = match delivery {
                Delivery::Env(v) => (v, launcher::Delivery::Env),
                Delivery::File(v) => (v, launcher::Delivery::File),
            };
            secrets.push(SecretItem {
                variable: variable.to_string(),
                delivery,
                value,
            });
        }
        let env = launcher::rebuild(std::env::vars_os(), args.clearenv);
        if args.verbose {
            report(
                &grant,
                std::env::vars_os().count() - env.len(),
                secrets.len(),
            );
        }
        Launch {
            executable,
            script: script.map(|s| (s, grant.script.and_then(|s| s.arg))),
            argv0: cmd,
            args: cmd_args,
            env,
            secrets,
            tier: match grant.tier {
                Tier::None => launcher::Tier::None,
                Tier::Hardened => launcher::Tier::Hardened,
                Tier::Lockdown => launcher::Tier::Lockdown,
            },
            // Checked by the launcher against the very descriptor it uses.
            may_exec: grant
                .may_exec
                .iter()
                .map(|pin| (pin.path.clone(), pin.sha256))
                .collect(),
            verbose: args.verbose,
        }
    };
    // Nothing of the vault stays open while the program runs.
    drop(keys);
    drop(vault);
    let exit = launcher::run(launch)?;
    Ok(exit.status())
}

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
fn load(grant: &Grant) -> anyhow::Result<(launcher::Verified, Option<launcher::Verified>)> {
    let program = &grant.program;
    Ok(match &grant.script {
        None => (
            launcher::load(&program.path, &program.sha256, Role::Executable)?,
            None,
        ),
        Some(script) => {
            let i = &script.interpreter;
            let interpreter = launcher::load(&i.path, &i.sha256, Role::Executable)?;
            let copy = launcher::load(&program.path, &program.sha256, Role::Script)?;
            (interpreter, Some(copy))
        }
    })
}

/// `--verbose`: what was verified and which protections apply.
fn report(grant: &Grant, removed: usize, secrets: usize) {
    eprintln!(
        "envseal: verified {} (sha256 {}) in a sealed copy",
        grant.program.path,
        hex(&grant.program.sha256)
    );
    if let Some(s) = &grant.script {
        eprintln!(
            "envseal: verified interpreter {} (sha256 {})",
            s.interpreter.path,
            hex(&s.interpreter.sha256)
        );
    }
    eprintln!("envseal: tier {}", grant.tier.as_str());
    eprintln!(
        "envseal: {removed} environment variable(s) removed; {secrets} secret(s) delivered; \
         descriptors above 2 closed"
    );
    if grant.args != ArgRule::Any {
        eprintln!(
            "envseal: arguments checked: {}",
            envseal_policy::describe_args(&grant.args)
        );
    }
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
        },
    )?;
    eprint!(
        "envseal: {} has no grant yet. It would be pinned as:\n{}",
        resolved.canonical,
        pin::describe(&grant)
    );
    if !input::confirm("Pin it and run it? [y/N] ")? {
        return Err(CliError::new(Code::NotGranted, "not pinned; nothing was run").into());
    }
    vault.put_grant(keys, &grant.program.path, &grant.encode(), requested, false)?;
    eprintln!("envseal: pinned {}", grant.program.path);
    Ok(())
}
