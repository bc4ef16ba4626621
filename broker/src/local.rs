//! The in-process exec: `envseal exec` with the passphrase when no broker
//! runs. The stages are the broker's — the request prepared, its record
//! committed, the program launched, its end recorded — in this process.

use envseal_launcher as launcher;
use envseal_vault::{Keys, Vault};

use crate::audit;
use crate::prepare::{Request, prepare};

/// Runs `request` with the secrets its grant gives, `vault` unlocked with
/// `keys`; returns the program's exit status.
pub fn exec(mut vault: Vault, keys: Keys, request: &Request) -> anyhow::Result<u8> {
    let mut record = audit::record("exec");
    record.program = Some(request.program.clone());
    let prepared = vault
        .endorsed(&keys)
        .map_err(anyhow::Error::from)
        .and_then(|endorsed| prepare(&endorsed, request, None, &mut record));
    let (launch, report) = match prepared {
        Ok(p) => p,
        Err(e) => {
            audit::write(&mut vault, Some(&keys), &audit::refused(record, &e));
            return Err(e);
        }
    };
    // The record, and a checkpoint over it, are on the disk before any
    // secret is handed over: an exec that cannot be recorded does not run.
    if let Err(e) = vault.append_audit(Some(&record), Some(&keys)) {
        return Err(audit::not_recorded(vault.dir(), &e));
    }
    // Nothing of the vault stays open while the program runs.
    let dir = vault.dir().to_path_buf();
    drop(keys);
    drop(vault);
    if let Some(report) = report {
        report.print();
    }
    match launcher::run(launch) {
        Ok(exit) => {
            audit::write_to(&dir, &audit::ended(&record, Ok(i32::from(exit.status()))));
            Ok(exit.status())
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            audit::write_to(&dir, &audit::ended(&record, Err(&e)));
            Err(e)
        }
    }
}
