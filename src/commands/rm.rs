//! `envseal rm KEY`: delete a secret (needs the passphrase).

use envseal_vault::{SecretName, Vault};

use crate::cli::RmArgs;
use crate::{input, paths};

pub fn run(args: RmArgs) -> anyhow::Result<()> {
    let name = SecretName::new(&args.key)?;
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let pass = input::passphrase(args.passphrase, &format!("to remove {name}"))?;
    let keys = vault.unlock(&pass)?;
    vault.remove(&keys, &name)?;
    eprintln!("envseal: removed {name}");
    Ok(())
}
