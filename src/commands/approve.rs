//! `envseal approve KEY…`: endorse pending values.

use envseal_vault::{ApproveOutcome, Vault};

use crate::cli::ApproveArgs;
use crate::{audit, input, paths};

pub fn run(args: ApproveArgs) -> anyhow::Result<()> {
    let names = super::names(&args.keys)?;
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let pass = input::passphrase(args.passphrase, "to approve")?;
    let keys = vault.unlock(&pass)?;
    let outcomes = vault.approve(&keys, &names)?;
    let mut record = audit::record("approve");
    record.names = names.iter().map(ToString::to_string).collect();
    audit::write(&mut vault, Some(&keys), &record);
    for (name, outcome) in names.iter().zip(outcomes) {
        match outcome {
            // When the value was written, so a person can notice one they did
            // not write (a pending value can be replaced without the passphrase).
            ApproveOutcome::Approved { written_at } => eprintln!(
                "envseal: approved {name} (value written {})",
                humantime::format_rfc3339_seconds(written_at)
            ),
            ApproveOutcome::AlreadyApproved => eprintln!("envseal: {name} was already approved"),
        }
    }
    Ok(())
}
