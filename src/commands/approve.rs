//! `envseal approve KEY…`: endorse pending values, after showing when and
//! by whom each was written (and asking, for a value an agent wrote).

use envseal_vault::{ApproveOutcome, SecretInfo, SecretName, SecretState, Vault, Writer};

use crate::cli::ApproveArgs;
use crate::refusal::{Code, Refusal};
use crate::{audit, input, paths};

pub fn run(args: ApproveArgs) -> anyhow::Result<()> {
    let names = super::names(&args.keys)?;
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let shown = show_pending(
        &vault,
        &names,
        args.yes,
        "approve it at a terminal, or add --yes if you know the value",
    )?;
    let pass = input::passphrase(args.passphrase, "to approve")?;
    let keys = audit::unlock(&mut vault, &pass, "approve")?;
    show_provenance(&vault, &keys, &shown)?;
    let outcomes = vault.approve_as_shown(&keys, &names, Some(&shown))?;
    let mut record = audit::record("approve");
    record.names = names.iter().map(ToString::to_string).collect();
    audit::write(&mut vault, Some(&keys), &record);
    for (name, outcome) in names.iter().zip(outcomes) {
        match outcome {
            ApproveOutcome::Approved { .. } => eprintln!("envseal: approved {name}"),
            ApproveOutcome::AlreadyApproved => eprintln!("envseal: {name} was already approved"),
        }
    }
    Ok(())
}

/// Shows the audit record that wrote each value in `shown` (the approval
/// then refuses a value whose record does not verify: swapped,
/// back-dated, its record deleted or edited).
pub fn show_provenance(
    vault: &Vault,
    keys: &envseal_vault::Keys,
    shown: &[SecretInfo],
) -> anyhow::Result<()> {
    for info in shown {
        // One that does not verify is refused by the approval itself,
        // which checks the envelope first (the more telling error).
        let Ok(p) = SecretName::new(&info.name)
            .map_err(envseal_vault::Error::from)
            .and_then(|n| vault.provenance(keys, &n))
        else {
            continue;
        };
        eprintln!(
            "envseal: {} was written by audit record {} (pid {}, uid {}, {}); the record is {}",
            envseal_policy::escape(&info.name),
            p.seq,
            p.record.pid,
            p.record.uid,
            if p.record.shielded == Some(true) {
                "inside a shield"
            } else {
                "outside any shield"
            },
            if p.authenticated {
                "authenticated by a checkpoint (it says what was written, when and by which \
                 process; not that you wrote it)"
            } else {
                "not yet authenticated by a checkpoint (written while the vault was locked: any \
                 program of yours could have written that record too)"
            }
        );
    }
    Ok(())
}

/// How a person reads who wrote a value.
pub fn describe_writer(writer: Writer) -> String {
    match writer {
        Writer::Direct => "directly (outside any shield)".into(),
        Writer::Shield { pid } => {
            format!("by a caller inside an envseal shield (pid {pid}, through the broker)")
        }
        Writer::Unknown => "by an unknown writer (not recorded)".into(),
    }
}

/// Prints when and by whom each pending value among `names` was written,
/// and asks for confirmation when one came from inside a shield (unless
/// `yes`). Returns what was shown, so that approval can insist on it.
pub fn show_pending(
    vault: &Vault,
    names: &[SecretName],
    yes: bool,
    hint: &str,
) -> anyhow::Result<Vec<SecretInfo>> {
    let shown: Vec<SecretInfo> = vault
        .list()?
        .into_iter()
        .filter(|i| i.state == SecretState::Pending && names.iter().any(|n| n.as_str() == i.name))
        .collect();
    for info in &shown {
        eprintln!(
            "envseal: {} was written {} {}",
            envseal_policy::escape(&info.name),
            humantime::format_rfc3339_seconds(info.updated_at),
            describe_writer(info.writer)
        );
    }
    // A value an agent wrote, or one whose writer was not recorded.
    let from_shield: Vec<&str> = shown
        .iter()
        .filter(|i| i.writer != Writer::Direct)
        .map(|i| i.name.as_str())
        .collect();
    if from_shield.is_empty() || yes {
        return Ok(shown);
    }
    let question = format!(
        "{} not written directly by you (see above). Approve only a value you \
         know: a granted program will receive it. Approve? [y/N] ",
        if from_shield.len() == 1 {
            format!("{} was", from_shield[0])
        } else {
            format!("{} were", from_shield.join(", "))
        }
    );
    let agreed = input::confirm(&question).map_err(|_| {
        Refusal::new(
            Code::Denied,
            format!(
                "{} not written directly, and there is no terminal to confirm; nothing was approved",
                from_shield.join(", ")
            ),
        )
        .hint(hint)
    })?;
    if !agreed {
        return Err(Refusal::new(Code::Denied, "nothing was approved").into());
    }
    Ok(shown)
}
