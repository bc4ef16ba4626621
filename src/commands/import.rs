//! `envseal import FILE [--delete]`: move a dotenv file's values into the
//! vault, pending, and leave a `.envseal` reference file beside it. Values
//! are never printed; errors name lines.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use envseal_vault::{SecretName, Vault};
use zeroize::Zeroizing;

use crate::cli::ImportArgs;
use crate::refusal::{Code, Refusal};
use crate::{audit, dotenv, paths, reference};

/// Checks every entry before anything is written, then stores the values
/// (pending), writes the reference file and, with `--delete`, wipes the
/// dotenv file.
pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let file = &args.file;
    let entries = read(file)?;
    // Everything is checked before anything is written.
    let (names, kept) = to_import(&entries, file)?;
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    refuse_existing(&vault, &names)?;
    store(&mut vault, &kept, &names, file)?;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let reference = reference::add(dir, &names)?;
    if args.delete {
        wipe_and_remove(file)?;
    }
    report(&args, &names, &reference)
}

/// Reads and parses the dotenv file; refuses one with no entries.
fn read(file: &Path) -> anyhow::Result<Vec<dotenv::Entry>> {
    let text =
        Zeroizing::new(std::fs::read(file).map_err(|e| {
            Refusal::new(Code::Usage, format!("cannot read {}: {e}", file.display()))
        })?);
    let shown = file.display();
    let entries =
        dotenv::parse(&text).map_err(|e| Refusal::new(Code::Usage, format!("{shown}: {e}")))?;
    if entries.is_empty() {
        return Err(Refusal::new(Code::Usage, format!("{shown}: no KEY=value lines")).into());
    }
    Ok(entries)
}

/// The entries to import and their names: every name valid and given
/// once; an empty value is skipped with a warning (nothing to keep
/// secret, the variable stays in the file), and a file of only empty
/// values refused.
fn to_import<'e>(
    entries: &'e [dotenv::Entry],
    file: &Path,
) -> anyhow::Result<(Vec<SecretName>, Vec<&'e dotenv::Entry>)> {
    let shown = file.display();
    let mut names: Vec<SecretName> = Vec::new();
    let mut kept = Vec::new();
    for e in entries {
        let name = SecretName::new(&e.key).map_err(|_| {
            Refusal::new(
                Code::Usage,
                format!("{shown}: line {}: not a valid secret name", e.line),
            )
        })?;
        if let Some(first) = entries.iter().find(|o| o.key == e.key && o.line < e.line) {
            return Err(Refusal::new(
                Code::Usage,
                format!(
                    "{shown}: line {}: {} is already set on line {}",
                    e.line, e.key, first.line
                ),
            )
            .into());
        }
        if e.value.is_empty() {
            eprintln!(
                "envseal: warning: {shown}: line {}: {} has an empty value; skipped",
                e.line, e.key
            );
            continue;
        }
        names.push(name);
        kept.push(e);
    }
    if names.is_empty() {
        return Err(Refusal::new(
            Code::Usage,
            format!("{shown}: every value is empty; nothing to import"),
        )
        .into());
    }
    Ok((names, kept))
}

/// Refuses the whole import when any of `names` is already in the vault.
fn refuse_existing(vault: &Vault, names: &[SecretName]) -> anyhow::Result<()> {
    let existing: Vec<String> = vault
        .list()?
        .into_iter()
        .map(|s| s.name.to_string())
        .filter(|n| names.iter().any(|k| k.as_str() == n))
        .collect();
    if !existing.is_empty() {
        return Err(Refusal::new(
            Code::Failure,
            format!(
                "already in the vault: {}; nothing was imported",
                existing.join(", ")
            ),
        )
        .hint("remove those lines, or `envseal rm` the secrets first")
        .into());
    }
    Ok(())
}

/// Stores each kept value, pending, with a record of its own, then the
/// record of the import.
fn store(
    vault: &mut Vault,
    kept: &[&dotenv::Entry],
    names: &[SecretName],
    file: &Path,
) -> anyhow::Result<()> {
    let shown = file.display();
    for (e, name) in kept.iter().zip(names) {
        let value: secrecy::SecretSlice<u8> = e.value.to_vec().into();
        let mut record = audit::record("set");
        record.detail = Some(format!("imported from {shown}, pending"));
        vault.set(name, &value, false, &record)?;
    }
    let mut record = audit::record("import");
    record.names = names.iter().map(ToString::to_string).collect();
    record.detail = Some(format!("from {shown}, pending"));
    audit::write(vault, None, &record);
    Ok(())
}

/// Says what was imported (as JSON with `--json`), where the reference
/// file is, what became of the dotenv file, and what to do next.
fn report(args: &ImportArgs, names: &[SecretName], reference: &Path) -> anyhow::Result<()> {
    let shown = args.file.display();
    let list: Vec<String> = names.iter().map(ToString::to_string).collect();
    if args.json {
        let value = serde_json::json!({
            "imported": list,
            "reference": reference,
            "deleted": args.delete,
        });
        return super::print_json(&mut std::io::stdout().lock(), &value);
    }
    eprintln!(
        "envseal: imported {} secret(s), pending: {}",
        list.len(),
        list.join(", ")
    );
    eprintln!("envseal: wrote {} (safe to commit)", reference.display());
    if args.delete {
        eprintln!("envseal: overwrote and removed {shown}");
    } else {
        eprintln!("envseal: {shown} still holds the values in clear; remove it (or use --delete)");
    }
    eprintln!("  next: `envseal approve {}`", list.join(" "));
    Ok(())
}

/// Overwrites the file's bytes with zeros, syncs, and removes it.
fn wipe_and_remove(file: &Path) -> anyhow::Result<()> {
    let len = std::fs::metadata(file)?.len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(file)?;
    let zeros = vec![0u8; 65536];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(file)?;
    Ok(())
}
