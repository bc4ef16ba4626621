//! `envseal rm KEY`: delete a secret (needs the passphrase).

use envseal_vault::Vault;

use crate::cli::RmArgs;
use crate::{input, paths};

pub fn run(args: RmArgs) -> anyhow::Result<()> {
    // Not validated here: a row with an invalid name (made by editing the
    // database) must be removable by its exact name; the vault checks.
    let name = &args.key;
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let pass = input::passphrase(args.passphrase, &format!("to remove {name}"))?;
    let keys = vault.unlock(&pass)?;
    vault.remove(&keys, name)?;
    eprintln!("envseal: removed {name}");
    Ok(())
}
