//! `envseal exec [--allow PROGRAM]… -- CMD ARGS…`: run a pinned program
//! with the secrets its grant gives it.
//!
//! This verb resolves CMD, builds the request, and hands it to the broker
//! when one runs, else unlocks the vault itself (asking the passphrase)
//! and runs it in-process (`envseal_broker::local`). Either way the
//! request is prepared by `envseal_broker::prepare`: the grant verified
//! with the vault's key, the program's bytes copied, sealed and checked
//! against the pin, and only then the secrets decrypted.

use std::ffi::OsString;

use envseal_broker::prepare::{Request, not_granted};
use envseal_broker::protocol::ExecRequest;
use envseal_core::SHIELD_MARK;
use envseal_policy::{ArgRule, Resolved, Tier};
use envseal_vault::{Keys, SecretName, Vault};

use crate::cli::{ExecArgs, PassphraseArgs};
use crate::commands::pin;
use crate::refusal::{Code, Refusal};
use crate::{audit, broker, input, paths, reference};

pub fn run(args: ExecArgs) -> anyhow::Result<u8> {
    let mut command = args.command.into_iter();
    let cmd = command.next().unwrap_or_default();
    let resolved = pin::resolve(&cmd)?;
    let program = resolved.canonical.clone();
    check_allow(&args.allow, &cmd, &program)?;
    let mut requested = super::names(&args.secrets)?;
    let rename = match args.env_file.as_deref() {
        Some(path) => reference::renames(path)?,
        None => Vec::new(),
    };
    for (key, _) in &rename {
        if !requested.contains(key) {
            requested.push(key.clone());
        }
    }
    let request = ExecRequest {
        program,
        argv0: cmd.into(),
        args: command.map(Into::into).collect(),
        env: broker::environment(),
        secrets: requested.iter().map(ToString::to_string).collect(),
        rename: rename
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        tier: args.tier.map(|t| Tier::from(t).as_str().to_owned()),
        invoked: resolved.looked_up.to_str().map(str::to_owned),
        clearenv: args.clearenv,
        verbose: args.verbose,
        mask: mask_flag(args.mask, args.no_mask),
    };

    // A running broker launches the program; this process only asks.
    // Inside a shield the broker is the only way (the vault is read-only
    // there, and the in-process path is for people).
    let shielded = std::env::var_os(SHIELD_MARK).is_some();
    if (args.passphrase.passphrase_fd.is_none() || shielded)
        && let Some(client) = broker::Client::connect(&broker::location()?)?
    {
        return client.exec(request);
    }
    if shielded {
        return Err(locked("no broker is running for this vault").into());
    }
    let request = Request::try_from(request)?;
    let (vault, keys) = unlock(&args.allow, args.passphrase, &resolved, &request)?;
    broker::local::exec(vault, keys, &request)
}

/// The in-process path: the vault unlocked with the passphrase — after a
/// first look without the key, so that a program without a grant fails
/// before anything is asked (or, with `--allow` at a terminal, is offered
/// to be pinned).
fn unlock(
    allow: &[OsString],
    passphrase: PassphraseArgs,
    resolved: &Resolved,
    request: &Request,
) -> anyhow::Result<(Vault, Keys)> {
    let program = &request.program;
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let stored = vault.granted_programs()?;
    let granted = stored.contains(program);
    let refuse = |vault: &mut Vault, e: anyhow::Error| {
        let mut record = audit::record("exec");
        record.program = Some(program.clone());
        audit::write(vault, None, &audit::refused(record, &e));
        Err(e)
    };
    if !granted {
        let looked_up = resolved.looked_up.to_string_lossy().into_owned();
        if looked_up != *program && stored.contains(&looked_up) {
            let e = Refusal::new(
                Code::Swapped,
                format!("{looked_up} was pinned, but it now leads to {program}"),
            )
            .hint("nothing was run; a symlink was put in the pinned path — find out who did it");
            return refuse(&mut vault, e.into());
        }
        if allow.is_empty() || !input::at_terminal() {
            return refuse(&mut vault, not_granted(program));
        }
    }
    if !input::passphrase_available(passphrase) {
        let e = locked("no broker is running and there is no terminal to ask a passphrase");
        return refuse(&mut vault, e.into());
    }
    let pass = input::passphrase(passphrase, &format!("to run {program}"))?;
    let keys = audit::unlock(&mut vault, &pass, "exec")?;
    if !granted {
        offer_pin(&mut vault, &keys, resolved, &request.requested)?;
    }
    Ok((vault, keys))
}

/// `--mask` / `--no-mask` as one value.
fn mask_flag(mask: bool, no_mask: bool) -> Option<bool> {
    match (mask, no_mask) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

fn locked(why: &str) -> Refusal {
    Refusal::new(Code::Locked, format!("the vault is locked: {why}"))
        .hint("a person runs `envseal unlock` in their terminal (then `envseal exec` goes through the broker)")
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
    Err(Refusal::new(
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
        return Err(Refusal::new(
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
            environ: super::environ::record(
                &super::environ::Asked {
                    env: &[],
                    path: None,
                },
                None,
            )?,
            write_cwd: false,
            write: Vec::new(),
        },
    )?;
    eprint!(
        "envseal: {} has no grant yet. It would be pinned as:\n{}",
        envseal_policy::escape(&resolved.canonical),
        pin::describe(&grant)
    );
    pin::say_where_it_leads(resolved);
    if !input::confirm("Pin it and run it? [y/N] ")? {
        return Err(Refusal::new(Code::NotGranted, "not pinned; nothing was run").into());
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
