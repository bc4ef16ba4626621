//! `envseal rm KEY`: delete a secret (needs the passphrase), and say which
//! grants still name it.

use envseal_policy::Grant;
use envseal_vault::{SecretName, Vault};

use crate::cli::RmArgs;
use crate::{audit, input, paths};

pub fn run(args: RmArgs) -> anyhow::Result<()> {
    // Not validated here: a row with an invalid name (made by editing the
    // database) must be removable by its exact name; the vault checks.
    let name = &args.key;
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let pass = input::passphrase(args.passphrase, &format!("to remove {name}"))?;
    let keys = audit::unlock(&mut vault, &pass, "rm")?;
    vault.remove(&keys, name)?;
    let mut record = audit::record("rm");
    record.names = vec![name.clone()];
    audit::write(&mut vault, Some(&keys), &record);
    eprintln!("envseal: removed {name}");
    if let Ok(secret) = SecretName::new(name) {
        let losing: Vec<String> = vault
            .grants()?
            .into_iter()
            .filter(|r| Grant::decode(&r.body).is_ok_and(|g| g.secrets.contains_key(&secret)))
            .map(|r| r.program)
            .collect();
        if !losing.is_empty() {
            eprintln!(
                "envseal: these grants give {name}, so `exec` of them fails until it is set \
                 again (or revoked with `envseal revoke PROGRAM --secret {name}`): {}",
                envseal_policy::escape(&losing.join(", "))
            );
        }
    }
    Ok(())
}
