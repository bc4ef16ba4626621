//! `envseal repair`: put the vault's own public key back after it was
//! replaced, then say which values do not open (and why).

use envseal_policy::escape;
use envseal_vault::{ValueCheck, Vault};

use crate::cli::RepairArgs;
use crate::refusal::{Code, Refusal};
use crate::{audit, input, paths};

pub fn run(args: RepairArgs) -> anyhow::Result<()> {
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let pass = input::passphrase(args.passphrase, "to repair the vault")?;
    let (keys, recipient) =
        audit::unlock_with(&mut vault, "repair", |v| v.unlock_for_repair(&pass))?;
    drop(pass);
    if recipient.intact() {
        eprintln!(
            "envseal: the vault's public key is intact ({}); nothing was changed",
            escape(&recipient.actual)
        );
        return report(&vault, &keys, &vault.check_values(&keys)?);
    }
    eprintln!(
        "envseal: the vault's public key was replaced:\n  stored:          {}\n  the vault's own: {}\n\
         Values set since then were encrypted to the stored key, which this vault's \
         passphrase does not open.",
        escape(&recipient.stored),
        escape(&recipient.actual)
    );
    if !args.yes {
        let no_terminal = || {
            Refusal::new(
                Code::Denied,
                "there is no terminal to confirm; nothing was changed",
            )
            .hint("run it at a terminal, or add --yes")
        };
        if !input::at_terminal() {
            return Err(no_terminal().into());
        }
        let agreed = input::confirm("Store the vault's own public key again? [y/N] ")
            .map_err(|_| no_terminal())?;
        if !agreed {
            return Err(Refusal::new(Code::Denied, "nothing was changed").into());
        }
    }
    vault.restore_recipient(&keys)?;
    eprintln!(
        "envseal: the vault's own public key is stored again; new values are encrypted to it"
    );
    let checks = vault.check_values(&keys)?;
    let mut record = audit::record("repair");
    record.detail = Some(format!(
        "public key restored (the replaced one was {})",
        recipient.stored
    ));
    record.names = unopened(&checks)
        .into_iter()
        .map(|c| c.name.clone())
        .collect();
    audit::write(&mut vault, Some(&keys), &record);
    report(&vault, &keys, &checks)
}

fn unopened(checks: &[ValueCheck]) -> Vec<&ValueCheck> {
    checks.iter().filter(|c| c.problem.is_some()).collect()
}

/// Names each value that does not open, then verifies the endorsed state.
fn report(vault: &Vault, keys: &envseal_vault::Keys, checks: &[ValueCheck]) -> anyhow::Result<()> {
    let bad = unopened(checks);
    for check in &bad {
        let name = escape(&check.name);
        let why = escape(check.problem.as_deref().unwrap_or_default());
        if check.other_key {
            eprintln!(
                "envseal: {name} ({}) does not open: {why}. It was set while the public key \
                 was replaced and is encrypted to that key; no passphrase of this vault opens \
                 it. Remove it with `envseal rm {name}` and set it again",
                check.state.as_str()
            );
        } else {
            eprintln!(
                "envseal: {name} ({}) does not open: {why}. Remove it with `envseal rm {name}` \
                 and set it again",
                check.state.as_str()
            );
        }
    }
    eprintln!(
        "envseal: {} of {} value(s) open with the vault's key",
        checks.len() - bad.len(),
        checks.len()
    );
    vault.verify(keys)?;
    if bad.is_empty() {
        eprintln!("envseal: the endorsed state verifies; the vault is whole");
        return Ok(());
    }
    let names: Vec<String> = bad.iter().map(|c| escape(&c.name).into_owned()).collect();
    Err(Refusal::new(
        Code::Tampered,
        format!("{} value(s) do not open: {}", bad.len(), names.join(", ")),
    )
    .hint("remove each with `envseal rm NAME` and set it again")
    .into())
}
