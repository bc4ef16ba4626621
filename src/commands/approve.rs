//! `envseal approve KEY…`: endorse pending values.

use std::collections::HashMap;
use std::time::SystemTime;

use envseal_vault::{ApproveOutcome, SecretName, Vault};

use crate::cli::ApproveArgs;
use crate::{input, paths};

pub fn run(args: ApproveArgs) -> anyhow::Result<()> {
    let names = args
        .keys
        .iter()
        .map(|k| SecretName::new(k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let pass = input::passphrase(args.passphrase, "to approve")?;
    let keys = vault.unlock(&pass)?;
    // When each value was written, so a person can notice one they did not
    // write (a pending value can be replaced without the passphrase).
    let written: HashMap<String, SystemTime> = vault
        .list()?
        .into_iter()
        .map(|s| (s.name, s.updated_at))
        .collect();
    let outcomes = vault.approve(&keys, &names)?;
    for (name, outcome) in names.iter().zip(outcomes) {
        match outcome {
            ApproveOutcome::Approved => match written.get(name.as_str()) {
                Some(t) => eprintln!(
                    "envseal: approved {name} (value written {})",
                    humantime::format_rfc3339_seconds(*t)
                ),
                None => eprintln!("envseal: approved {name}"),
            },
            ApproveOutcome::AlreadyApproved => eprintln!("envseal: {name} was already approved"),
        }
    }
    Ok(())
}
