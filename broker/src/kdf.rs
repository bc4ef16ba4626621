//! The key-derivation cost check before every unlock: the stored Argon2id
//! parameters are authenticated only by a successful unlock, so an edited
//! database could make deriving take gigabytes and minutes. Above the cost
//! chosen at `init`, or above a ceiling, envseal asks a person at the
//! terminal before deriving, and refuses everyone else.

use std::sync::Mutex;

use envseal_vault::{KdfCeiling, KdfCost, KdfParams, Vault};

use crate::refusal::{Code, Refusal};
use crate::terminal;

/// Overrides the ceiling's memory, in MiB (passes stay at most 16).
pub const CEILING_VAR: &str = "ENVSEAL_KDF_CEILING_MIB";

/// The cost a person agreed to pay in this process: the broker's daemon,
/// forked after the question, does not ask again for the same cost.
static ACCEPTED: Mutex<Option<KdfParams>> = Mutex::new(None);

/// The ceiling: the default, or `ENVSEAL_KDF_CEILING_MIB`.
pub fn ceiling() -> Result<KdfCeiling, Refusal> {
    let Some(raw) = std::env::var_os(CEILING_VAR) else {
        return Ok(KdfCeiling::DEFAULT);
    };
    let memory_mib = raw
        .to_str()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|m| *m >= KdfParams::MIN_MEMORY_MIB)
        .ok_or_else(|| {
            Refusal::new(
                Code::Usage,
                format!(
                    "{CEILING_VAR} must be a number of MiB, at least {}",
                    KdfParams::MIN_MEMORY_MIB
                ),
            )
        })?;
    Ok(KdfCeiling {
        memory_mib,
        ..KdfCeiling::DEFAULT
    })
}

/// How a cost reads: "m=64 MiB, t=3".
pub fn describe(params: &KdfParams) -> String {
    format!("m={} MiB, t={}", params.memory_mib(), params.time())
}

/// Checks what unlocking `vault` would cost, before anything is derived.
/// Within bounds: nothing to do. Raised above the cost recorded at `init`
/// (exit 67: only an edit of the database does that) or above the ceiling
/// (exit 77): a person at the terminal is asked, naming both costs; without
/// one (`--passphrase-fd`, or stdin not a terminal) it is refused.
pub fn check(vault: &Vault) -> anyhow::Result<()> {
    let ceiling = ceiling()?;
    let (code, what, compared, hint) = match vault.kdf_cost(ceiling)? {
        KdfCost::Within => return Ok(()),
        KdfCost::RaisedSinceInit { stored, at_init } => (
            Code::Tampered,
            format!(
                "the vault's key-derivation cost was raised since init: {} now, {} at init",
                describe(&stored),
                describe(&at_init)
            ),
            stored,
            "nothing was derived. Nothing in envseal changes the cost after init, so the \
             vault database was edited outside envseal (the raised cost would also make \
             the passphrase fail); restore the vault from a backup"
                .to_owned(),
        ),
        KdfCost::AboveCeiling { stored, at_init } => (
            Code::Denied,
            format!(
                "the vault's key-derivation cost ({}) is above the ceiling (m={} MiB, t={}){}",
                describe(&stored),
                ceiling.memory_mib,
                ceiling.time,
                if at_init.is_some() {
                    "; it is the cost chosen at init"
                } else {
                    "; this vault does not record the cost chosen at init"
                }
            ),
            stored,
            format!(
                "nothing was derived. If you chose this cost, raise the ceiling \
                 ({CEILING_VAR}={}) or answer at a terminal; otherwise the vault database \
                 was edited outside envseal",
                stored.memory_mib().max(ceiling.memory_mib)
            ),
        ),
    };
    if *ACCEPTED.lock().unwrap_or_else(|e| e.into_inner()) == Some(compared) {
        return Ok(());
    }
    if !terminal::person_at_terminal() {
        return Err(Refusal::new(code, what).hint(hint).into());
    }
    let question = format!(
        "envseal: {what}.\nUnlocking would use {} MiB of memory and {} passes. Derive anyway? [y/N] ",
        compared.memory_mib(),
        compared.time()
    );
    if terminal::confirm(&question)? {
        *ACCEPTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(compared);
        Ok(())
    } else {
        Err(
            Refusal::new(code, format!("{what}; you declined to derive"))
                .hint(hint)
                .into(),
        )
    }
}
