//! `envseal repin PROGRAM`: re-hash a pinned program after an upgrade —
//! the program, its interpreter and its `--may-exec` programs — keeping
//! every other property of its grant (needs the passphrase).

use envseal_policy::{Grant, Pin, Resolved, hex};
use envseal_vault::Vault;

use crate::cli::RepinArgs;
use crate::commands::pin;
use crate::refusal::{Code, Refusal};
use crate::{audit, input, paths};

/// Hashes the pinned program again and stores the grant when any pin
/// changed, saying which; otherwise says there is nothing to do.
pub fn run(args: RepinArgs) -> anyhow::Result<()> {
    let resolved = pin::resolve(&args.program)?;
    let program = resolved.canonical.clone();
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    let pass = input::passphrase(args.passphrase, &format!("to re-pin {program}"))?;
    let keys = audit::unlock(&mut vault, &pass, "repin")?;
    let Some(body) = vault.endorsed(&keys)?.grant(&program)? else {
        return Err(Refusal::new(
            Code::NotGranted,
            format!("{program} is not pinned: there is nothing to re-pin"),
        )
        .hint(format!(
            "pin it with: envseal allow --secret KEY -- {program}"
        ))
        .into());
    };
    let old = Grant::decode(&body)?;
    let grant = rehashed(&old, &resolved)?;
    let changes = changed_pins(&old, &grant);
    if changes.is_empty() {
        eprintln!("envseal: {program} is unchanged since it was pinned; nothing to do");
        print!("pinned {}", pin::describe(&grant));
        return Ok(());
    }
    vault.put_grant(&keys, &program, &grant.encode(), &[], false)?;
    audit::write(
        &mut vault,
        Some(&keys),
        &audit::grant_record("repin", &grant),
    );
    for change in changes {
        eprintln!("envseal: re-pinned {change}");
    }
    print!("pinned {}", pin::describe(&grant));
    Ok(())
}

/// `old` with the program, its interpreter and its `--may-exec` programs
/// hashed again as they are now; every other property kept.
fn rehashed(old: &Grant, resolved: &Resolved) -> anyhow::Result<Grant> {
    let inspected = envseal_policy::inspect(resolved, std::env::var_os("PATH").as_deref())?;
    let mut grant = old.clone();
    grant.program = inspected.program;
    grant.script = inspected.script;
    grant.may_exec = old
        .may_exec
        .iter()
        .map(|p| {
            Ok(Pin {
                path: p.path.clone(),
                sha256: envseal_policy::sha256_file(std::path::Path::new(&p.path))?,
            })
        })
        .collect::<Result<_, envseal_policy::Error>>()?;
    grant.validate()?;
    Ok(grant)
}

/// Each pin that differs between `old` and `grant`, as it was and is now.
fn changed_pins(old: &Grant, grant: &Grant) -> Vec<String> {
    let mut changes = Vec::new();
    let mut compare = |what: &str, before: Option<&Pin>, after: Option<&Pin>| match (before, after)
    {
        (Some(b), Some(a)) if b == a => {}
        (b, a) => changes.push(format!(
            "{what}\n    was {}\n    now {}",
            b.map_or("(none)".into(), |p| format!(
                "{} sha256 {}",
                p.path,
                hex(&p.sha256)
            )),
            a.map_or("(none)".into(), |p| format!(
                "{} sha256 {}",
                p.path,
                hex(&p.sha256)
            )),
        )),
    };
    compare("program", Some(&old.program), Some(&grant.program));
    compare(
        "interpreter",
        old.script.as_ref().map(|s| &s.interpreter),
        grant.script.as_ref().map(|s| &s.interpreter),
    );
    for (before, after) in old.may_exec.iter().zip(&grant.may_exec) {
        compare("may exec", Some(before), Some(after));
    }
    changes
}
