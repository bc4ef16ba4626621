//! `envseal set KEY`: write a value (write-only; pending until approved).

use envseal_vault::{Error as VaultError, Keys, SecretName, SetOutcome, Vault};

use secrecy::{ExposeSecret as _, SecretSlice};

use crate::broker::{
    self,
    protocol::{Body, HexValue},
};
use crate::cli::SetArgs;
use crate::refusal::{Code, Refusal};
use crate::{audit, input, paths};
use envseal_core::SHIELD_MARK;

pub fn run(args: SetArgs) -> anyhow::Result<()> {
    let name = SecretName::new(&args.key)?;
    let vault = Vault::open(&paths::vault_dir()?);
    if args.passphrase.passphrase_fd == Some(0) && !args.generate {
        return Err(Refusal::new(
            Code::Usage,
            "--passphrase-fd 0 would read the passphrase from stdin, where the value comes from",
        )
        .hint("pass the passphrase on another descriptor, e.g. --passphrase-fd 3 3<passfile")
        .into());
    }
    let value = if args.generate {
        input::generated(args.length)?
    } else {
        input::value(name.as_str())?
    };
    // Kept exactly (a value may end in a newline), but rarely meant.
    let newline = !args.generate
        && !std::io::IsTerminal::is_terminal(&std::io::stdin())
        && value.expose_secret().ends_with(b"\n");
    // Inside a shield the vault's files are closed: the broker stores the
    // value.
    let inside =
        std::env::var_os(SHIELD_MARK).is_some() || matches!(vault, Err(VaultError::Closed(_)));
    if inside && args.approve {
        return Err(Refusal::new(
            Code::Denied,
            "--approve needs the passphrase, which is never typed inside a shield; nothing was stored",
        )
        .hint("store it pending (without --approve); the person approves it outside the shield")
        .into());
    }
    if inside && let Some(mut client) = broker::Client::connect(&broker::location()?)? {
        let reply = client.request(Body::Set {
            name: name.to_string(),
            value: HexValue::encode(value.expose_secret()),
            replace: args.replace,
        })?;
        eprintln!(
            "envseal: {}",
            envseal_policy::escape_lines(&broker::done(reply)?)
        );
        if newline {
            newline_note(&name);
        }
        return Ok(());
    }
    let mut vault = vault?;
    let (outcome, keys) = store(&mut vault, &args, &name, &value)?;
    match outcome {
        SetOutcome::Created => eprintln!(
            "envseal: stored {name} (pending: `envseal approve {name}` lets granted programs use it)"
        ),
        SetOutcome::ReplacedPending => eprintln!("envseal: replaced {name} (still pending)"),
        SetOutcome::ReplacedApproved => eprintln!("envseal: replaced {name} (approved)"),
    }
    if let (Some(keys), SetOutcome::Created | SetOutcome::ReplacedPending) = (&keys, outcome) {
        approve_now(&mut vault, keys, &name)?;
    }
    if newline {
        newline_note(&name);
    }
    Ok(())
}

/// Stores `value` under `name` in the vault's own files: pending, or with
/// `--approve` (or when it replaces an approved value) with the
/// passphrase. Returns what happened and the key, if it was unlocked.
fn store(
    vault: &mut Vault,
    args: &SetArgs,
    name: &SecretName,
    value: &SecretSlice<u8>,
) -> anyhow::Result<(SetOutcome, Option<Keys>)> {
    // The record of the write goes into the vault with the value (its
    // provenance, which `approve` checks).
    let mut record = audit::record("set");
    record.detail = Some("pending".into());
    // With --approve, the passphrase first: a wrong one stores nothing.
    let keys = if args.approve {
        let pass = input::passphrase(args.passphrase, &format!("to store and approve {name}"))?;
        Some(audit::unlock(vault, &pass, "set")?)
    } else {
        None
    };
    let outcome = match vault.set(name, value, args.replace, &record) {
        Err(VaultError::PassphraseRequired(n)) => {
            if !input::passphrase_available(args.passphrase) {
                return Err(VaultError::PassphraseRequired(n).into());
            }
            let unlocked;
            let keys = match &keys {
                Some(k) => k,
                None => {
                    let pass =
                        input::passphrase(args.passphrase, &format!("to replace approved {name}"))?;
                    unlocked = audit::unlock(vault, &pass, "set")?;
                    &unlocked
                }
            };
            record.detail = Some("replaced an approved value".into());
            vault.set_endorsed(keys, name, value, args.replace, &record)?
        }
        other => other?,
    };
    Ok((outcome, keys))
}

/// `--approve`: shows where the value came from and approves it.
fn approve_now(vault: &mut Vault, keys: &Keys, name: &SecretName) -> anyhow::Result<()> {
    let shown: Vec<_> = vault
        .list()?
        .into_iter()
        .filter(|i| i.name == name.as_str())
        .collect();
    super::approve::show_provenance(vault, keys, &shown)?;
    vault.approve(keys, std::slice::from_ref(name))?;
    let mut record = audit::record("approve");
    record.names = vec![name.to_string()];
    record.detail = Some("with `set --approve`".into());
    audit::write(vault, Some(keys), &record);
    eprintln!("envseal: approved {name}");
    Ok(())
}

fn newline_note(name: &SecretName) {
    eprintln!(
        "envseal: note: the value for {name} ends with a newline, which was stored as part of \
         it; to store it without, write it with `printf %s \"$VALUE\" | envseal set --replace \
         {name}` (echo adds the newline)"
    );
}
