//! `envseal revoke PROGRAM [--secret KEY]…`: remove a grant or some of
//! its secrets (needs the passphrase).

use envseal_policy::Grant;
use envseal_vault::Vault;

use crate::cli::RevokeArgs;
use crate::commands::pin;
use crate::refusal::{Code, Refusal};
use crate::{audit, input, paths};

pub fn run(args: RevokeArgs) -> anyhow::Result<()> {
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    // The program may be gone (that is one reason to revoke): then its
    // pinned path, as `envseal grants` shows it, names the grant.
    let program = match pin::resolve(&args.program) {
        Ok(r) => r.canonical,
        Err(_) => args.program.to_string_lossy().into_owned(),
    };
    let secrets = super::names(&args.secrets)?;
    let shown = envseal_policy::escape(&program).into_owned();
    let pass = input::passphrase(args.passphrase, &format!("to revoke {program}"))?;
    let keys = audit::unlock(&mut vault, &pass, "revoke")?;
    let mut record = audit::record("revoke");
    record.program = Some(program.clone());
    record.names = secrets.iter().map(ToString::to_string).collect();
    if secrets.is_empty() {
        vault.remove_grant(&keys, &program)?;
        audit::write(&mut vault, Some(&keys), &record);
        eprintln!("envseal: revoked the grant for {shown}");
        return Ok(());
    }
    let body = vault
        .endorsed(&keys)?
        .grant(&program)?
        .ok_or_else(|| envseal_vault::Error::NoSuchGrant(program.clone()))?;
    let mut grant = Grant::decode(&body)?;
    for name in &secrets {
        if grant.secrets.remove(name).is_none() {
            return Err(Refusal::new(
                Code::Usage,
                format!("the grant for {program} does not give {name}"),
            )
            .into());
        }
    }
    if grant.secrets.is_empty() {
        vault.remove_grant(&keys, &program)?;
        eprintln!("envseal: revoked the grant for {shown} (no secrets were left in it)");
    } else {
        vault.put_grant(&keys, &program, &grant.encode(), &[], false)?;
        let names: Vec<String> = secrets.iter().map(ToString::to_string).collect();
        eprintln!("envseal: {shown} no longer receives {}", names.join(", "));
    }
    audit::write(&mut vault, Some(&keys), &record);
    Ok(())
}
