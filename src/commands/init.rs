//! `envseal init`: create the vault.

use anyhow::Context as _;
use envseal_vault::{Error as VaultError, KdfParams, Vault, db_path};

use crate::cli::InitArgs;
use crate::{audit, input, paths};

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let dir = paths::vault_dir()?;
    // Check before asking for a passphrase twice; `create` checks again.
    if db_path(&dir).exists() {
        return Err(VaultError::AlreadyExists(dir).into());
    }
    let params = KdfParams::new(args.kdf_memory, args.kdf_time)?;
    let passphrase = input::new_passphrase(args.passphrase)?;
    let mut vault = Vault::create(&dir, &passphrase, params).context("cannot create the vault")?;
    audit::write(&mut vault, None, &audit::record("init"));
    eprintln!(
        "envseal: vault created in {} (Argon2id m={} MiB, t={})",
        dir.display(),
        params.memory_mib(),
        params.time()
    );
    if crate::kdf::ceiling().is_ok_and(|c| c.exceeded_by(&params)) {
        eprintln!(
            "envseal: warning: this cost is above the ceiling every unlock checks (m=1024 MiB, \
             t=16 unless {} says otherwise): each unlock will ask you to confirm it, and \
             --passphrase-fd will be refused, unless you raise {}",
            crate::kdf::CEILING_VAR,
            crate::kdf::CEILING_VAR
        );
    }
    eprintln!("envseal: next: `envseal set NAME` to store a secret");
    Ok(())
}
