//! `envseal allow --secret KEY… -- PROGRAM`: pin a program and grant it
//! secrets (needs the passphrase).

use envseal_policy::{Grant, Tier, hex};
use envseal_vault::{ApproveOutcome, Error as VaultError, SecretName, Vault};

use crate::cli::{AllowArgs, TierArg};
use crate::commands::pin;
use crate::exit::{CliError, Code};
use crate::{audit, input, paths};

pub fn run(args: AllowArgs) -> anyhow::Result<()> {
    let resolved = pin::resolve(&args.program)?;
    let wanted = pin::Wanted {
        secrets: &args.secrets,
        files: &args.files,
        args: pin::arg_rule(args.args_exact, args.args_prefix),
        force_interpreter: args.force_interpreter,
        tier: match args.tier {
            TierArg::None => Tier::None,
            TierArg::Hardened => Tier::Hardened,
            TierArg::Lockdown => Tier::Lockdown,
        },
        may_exec: &args.may_exec,
        require_shield: args.require_shield,
    };
    let mut grant = pin::build(&resolved, &wanted)?;
    // Only the secrets named now are checked (exist, approved); those of
    // an earlier grant for the same program were checked then.
    let named: Vec<SecretName> = grant.secrets.keys().cloned().collect();

    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let pass = input::passphrase(args.passphrase, &format!("to pin {}", grant.program.path))?;
    let keys = vault.unlock(&pass)?;
    let previous = vault
        .endorsed(&keys)?
        .grant(&grant.program.path)?
        .map(|body| Grant::decode(&body))
        .transpose()?;
    if let Some(previous) = &previous {
        for (name, delivery) in &previous.secrets {
            grant
                .secrets
                .entry(name.clone())
                .or_insert_with(|| delivery.clone());
        }
        if previous.require_shield && !grant.require_shield {
            grant.require_shield = true;
            eprintln!(
                "envseal: kept --require-shield from the earlier grant (`envseal revoke` drops it)"
            );
        }
        grant.validate()?;
    }
    let approved = vault
        .put_grant(
            &keys,
            &grant.program.path,
            &grant.encode(),
            &named,
            args.approve,
        )
        .map_err(|e| match e {
            VaultError::NotApproved(name) => anyhow::Error::from(
                CliError::new(
                    Code::Denied,
                    format!("secret {name} is still pending approval"),
                )
                .hint(format!(
                    "approve it with `envseal approve {name}`, or add --approve to approve it now"
                )),
            ),
            e => e.into(),
        })?;
    audit::write(
        &mut vault,
        Some(&keys),
        &audit::grant_record("allow", &grant),
    );
    for (name, outcome) in approved {
        if let ApproveOutcome::Approved { written_at } = outcome {
            eprintln!(
                "envseal: approved {name} (value written {})",
                humantime::format_rfc3339_seconds(written_at)
            );
        }
    }
    match &previous {
        Some(p) if p.program.sha256 != grant.program.sha256 => eprintln!(
            "envseal: re-pinned {} (its bytes changed; was sha256 {})",
            grant.program.path,
            hex(&p.program.sha256)
        ),
        Some(_) => eprintln!("envseal: updated the grant for {}", grant.program.path),
        None => {}
    }
    print!("pinned {}", pin::describe(&grant));
    Ok(())
}
