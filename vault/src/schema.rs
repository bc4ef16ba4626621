//! SQLite schema and migrations.
//!
//! The schema version lives in `PRAGMA user_version`. `MIGRATIONS[i]` takes
//! a vault from version `i + 1` to `i + 2`; version 1 is what `init`
//! creates. A vault with a version newer than `CURRENT` is refused rather
//! than guessed at.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// The schema `init` writes.
pub(crate) const V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'approved')),
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE TABLE manifest (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    body BLOB NOT NULL,
    mac  BLOB NOT NULL
) STRICT;
";

/// Upgrades from each version to the next.
const MIGRATIONS: &[&str] = &[
    // 1 → 2: grants. `program` is the pinned canonical path; `body` the
    // encoded grant, whose digest the manifest authenticates.
    "CREATE TABLE grants (
        program    TEXT PRIMARY KEY,
        body       BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;",
    // 2 → 3: the audit log (see `audit.rs`). `mac` is set on checkpoints.
    "CREATE TABLE audit (
        seq  INTEGER PRIMARY KEY,
        at   INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        body BLOB NOT NULL,
        hash BLOB NOT NULL,
        mac  BLOB
    ) STRICT;",
    // 3 → 4: who wrote each value: 'direct' (outside any shield),
    // 'shield:PID' (a shielded caller, through the broker) or 'unknown'
    // (written before this version, or by a broker older than it, which
    // does not fill the column). Shown by `approve`, which asks before
    // endorsing a value not written directly.
    "ALTER TABLE secrets ADD COLUMN writer TEXT NOT NULL DEFAULT 'unknown';
     UPDATE secrets SET writer = 'direct' WHERE state = 'approved';",
    // 4 → 5: the sequence number of the `set` record in the audit log
    // that wrote the current value (its provenance: the record names the
    // secret, the ciphertext's digest and the same time as `updated_at`).
    // NULL for values written before this version.
    "ALTER TABLE secrets ADD COLUMN record INTEGER;",
];

/// The version this build reads and writes.
pub(crate) const CURRENT: i64 = 1 + MIGRATIONS.len() as i64;

/// Creates the current schema in an empty database: version 1, then every
/// migration, so new and upgraded vaults are built by the same steps.
pub(crate) fn create(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.execute_batch(V1)?;
    for sql in MIGRATIONS {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", CURRENT)?;
    Ok(())
}

/// Reads the schema version and applies pending migrations.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT {
        return Err(Error::UnsupportedSchema {
            found: version,
            supported: CURRENT,
        });
    }
    if version < 1 {
        return Err(Error::Corrupt(
            "the database is not an envseal vault (no schema version)".into(),
        ));
    }
    if version == CURRENT {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if !(1..=CURRENT).contains(&version) {
        return Err(Error::Corrupt(format!(
            "the schema version changed to {version} while migrating"
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize - 1) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", from as i64 + 2)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_vault_is_migrated_to_the_current_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, CURRENT);
        let grants: i64 = conn
            .query_row("SELECT count(*) FROM grants", [], |r| r.get(0))
            .unwrap();
        assert_eq!(grants, 0);
        // Migrating again is a no-op.
        migrate(&mut conn).unwrap();
    }

    /// Values written before writers were recorded: a pending one is
    /// `unknown` (so `approve` asks), an approved one `direct`.
    #[test]
    fn version_4_records_writers_cautiously() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(
            "INSERT INTO secrets VALUES ('P', 'pending', x'00', 0, 0);
             INSERT INTO secrets VALUES ('A', 'approved', x'00', 0, 0);",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut conn).unwrap();
        let writer = |name: &str| -> String {
            conn.query_row("SELECT writer FROM secrets WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(writer("P"), "unknown");
        assert_eq!(writer("A"), "direct");
        // A row inserted without the column (an older broker): unknown.
        conn.execute(
            "INSERT INTO secrets (name, state, ciphertext, created_at, updated_at)
             VALUES ('OLD', 'pending', x'00', 0, 0)",
            [],
        )
        .unwrap();
        assert_eq!(writer("OLD"), "unknown");
    }

    #[test]
    fn newer_versions_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.pragma_update(None, "user_version", CURRENT + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(Error::UnsupportedSchema { .. })
        ));
    }
}
