//! Writing audit records from the commands, the broker's daemon and its
//! sessions (the log itself:
//! `envseal_vault::audit`). A record that cannot be written is a warning,
//! never a failure of the command it describes: the action has happened.

use envseal_vault::audit::Record;
use envseal_vault::{Keys, Vault};

/// A record of `action` by this process.
pub fn record(action: &str) -> Record {
    Record {
        action: action.into(),
        pid: std::process::id(),
        uid: nix::unistd::geteuid().as_raw(),
        ..Record::default()
    }
}

/// A record of `action` requested of the broker by peer `pid` (uid `uid`).
pub fn peer_record(action: &str, pid: i32, uid: u32, shielded: bool) -> Record {
    Record {
        action: action.into(),
        pid: pid as u32,
        uid,
        shielded: Some(shielded),
        ..Record::default()
    }
}

/// A record of `action` on `grant`: its program, hash, tier and secrets.
pub fn grant_record(action: &str, grant: &envseal_policy::Grant) -> Record {
    let mut r = record(action);
    r.program = Some(grant.program.path.clone());
    r.sha256 = Some(grant.program.sha256);
    r.tier = Some(grant.tier.as_str().into());
    r.names = grant.secrets.keys().map(ToString::to_string).collect();
    r
}

/// Unlocks `vault` for `action`, after checking what deriving the key
/// would cost ([`crate::kdf::check`]). A wrong passphrase, or a refused
/// cost, is recorded (as `ACTION-refused`) before the error is returned,
/// so that guessing shows in the log.
pub fn unlock(
    vault: &mut Vault,
    passphrase: &secrecy::SecretString,
    action: &str,
) -> anyhow::Result<Keys> {
    unlock_with(vault, action, |v| v.unlock(passphrase))
}

/// [`unlock`] through `derive` (`Vault::unlock` or a variant of it).
pub fn unlock_with<T>(
    vault: &mut Vault,
    action: &str,
    derive: impl FnOnce(&Vault) -> Result<T, envseal_vault::Error>,
) -> anyhow::Result<T> {
    if let Err(e) = crate::kdf::check(vault) {
        write(vault, None, &refused(record(action), &e));
        return Err(e);
    }
    match derive(vault) {
        Err(envseal_vault::Error::WrongPassphrase) => {
            let mut r = record(&format!("{action}-refused"));
            r.detail = Some("wrong passphrase".into());
            write(vault, None, &r);
            Err(envseal_vault::Error::WrongPassphrase.into())
        }
        other => other.map_err(Into::into),
    }
}

/// Appends `record`; with `keys`, also an authenticated checkpoint.
pub fn write(vault: &mut Vault, keys: Option<&Keys>, record: &Record) {
    if let Err(e) = vault.append_audit(Some(record), keys) {
        eprintln!(
            "envseal: warning: the audit record of `{}` was not written: {e}",
            record.action
        );
    }
}

/// `record` of a refused request: the action gets "-refused" and the
/// error (names and paths only, never a value) becomes its detail.
pub fn refused(mut record: Record, err: &anyhow::Error) -> Record {
    record.action = format!("{}-refused", record.action);
    record.detail = Some(format!("{err:#}"));
    record
}

/// The refusal of an exec whose record could not be written.
pub fn not_recorded(dir: &std::path::Path, e: &dyn std::fmt::Display) -> anyhow::Error {
    crate::refusal::Refusal::new(
        crate::refusal::Code::Unrecorded,
        format!("nothing was run: the audit record of this exec could not be written ({e})"),
    )
    .hint(format!(
        "envseal runs nothing it cannot record; check that the disk has room and the vault \
         ({}) is writable and not held by another process",
        dir.display()
    ))
    .into()
}

/// The record of how the exec recorded as `started` ended: its status, or
/// why the program did not start after all.
pub fn ended(started: &Record, outcome: Result<i32, &anyhow::Error>) -> Record {
    let mut r = started.clone();
    r.action = "exit".into();
    match outcome {
        Ok(status) => r.status = Some(status),
        Err(e) => r.detail = Some(format!("did not start: {e:#}")),
    }
    r
}

/// Appends `record` to the vault in `dir`, opened for this (after a
/// program ran, when the vault was closed meanwhile), without waiting for
/// the disk.
pub fn write_to(dir: &std::path::Path, record: &Record) {
    if let Err(e) = Vault::append_audit_to(dir, record, false) {
        eprintln!(
            "envseal: warning: the audit record of `{}` was not written: {e}",
            record.action
        );
    }
}
