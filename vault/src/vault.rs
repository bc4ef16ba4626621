//! The vault: one SQLite database holding the wrapped identity, the secrets
//! (age ciphertexts of envelopes) and the authenticated manifest.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore as _;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Transaction, TransactionBehavior};
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};

use crate::envelope::{self, MAX_VALUE_LEN};
use crate::error::{Error, Result};
use crate::keys::{KdfCeiling, KdfParams, Keys, VAULT_ID_LEN, WrappedIdentity};
use crate::manifest::{self, Manifest};
use crate::paths::{db_path, ensure_private_dir};
use crate::schema;
use envseal_core::SecretName;

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a secret may reach programs yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// Written without the passphrase; reaches no program until approved.
    Pending,
    /// Endorsed by someone holding the passphrase.
    Approved,
}

impl SecretState {
    /// `"pending"` or `"approved"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretState::Pending => "pending",
            SecretState::Approved => "approved",
        }
    }
}

/// What `list` shows about a secret: never its value, length or digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    /// The name as stored (a row with an invalid name is still listed).
    pub name: String,
    /// Pending or approved.
    pub state: SecretState,
    /// When the secret was first written.
    pub created_at: SystemTime,
    /// When its value was last written.
    pub updated_at: SystemTime,
    /// Who wrote it last.
    pub writer: Writer,
}

/// Result of [`Vault::set`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// A new pending secret.
    Created,
    /// A pending secret's value was replaced; it stays pending.
    ReplacedPending,
    /// An approved secret's value was replaced with the passphrase; it stays approved.
    ReplacedApproved,
}

/// Result of [`Vault::approve`] for one name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApproveOutcome {
    /// Was pending, now approved. `written_at` and `writer` say when and by
    /// whom the approved value was written, so a person can notice a value
    /// they did not write.
    Approved {
        written_at: SystemTime,
        writer: Writer,
    },
    /// Nothing to do.
    AlreadyApproved,
}

/// What unlocking would cost, before anything is derived (see
/// [`Vault::kdf_cost`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KdfCost {
    /// Within the ceiling, and not above the cost chosen at `init`.
    Within,
    /// Above the cost recorded at `init`: nothing changes the cost after
    /// `init`, so the database was edited.
    RaisedSinceInit {
        stored: KdfParams,
        at_init: KdfParams,
    },
    /// Above the ceiling. `at_init` is the cost recorded at `init` (the
    /// same as `stored`), or `None` for a vault made before it was recorded.
    AboveCeiling {
        stored: KdfParams,
        at_init: Option<KdfParams>,
    },
}

/// The public key stored in clear and the identity's own (see
/// [`Vault::unlock_for_repair`]). Public keys, not secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientCheck {
    /// What the database holds (what `set` encrypts to).
    pub stored: String,
    /// The public half of the identity the passphrase unwrapped.
    pub actual: String,
}

impl RecipientCheck {
    /// Whether the stored public key is the identity's.
    pub fn intact(&self) -> bool {
        self.stored == self.actual
    }
}

/// Whether one stored value opens as its own secret (see
/// [`Vault::check_values`]). Holds no value.
#[derive(Debug, PartialEq, Eq)]
pub struct ValueCheck {
    /// The name as stored (escape it before showing it: it may be invalid).
    pub name: String,
    /// Pending or approved.
    pub state: SecretState,
    /// Why it does not open, if it does not.
    pub problem: Option<String>,
    /// Whether it is encrypted to another key (set while the vault's public
    /// key was replaced).
    pub other_key: bool,
}

/// An open vault.
pub struct Vault {
    dir: PathBuf,
    conn: Connection,
    vault_id: [u8; VAULT_ID_LEN],
    /// The public key stored in clear; `None` if it is not one.
    recipient: Option<age::x25519::Recipient>,
    wrapped: WrappedIdentity,
}

impl Vault {
    /// Creates a new vault in `dir`; refuses if one exists. The database is
    /// built under a temporary name and linked into place, so a crash
    /// leaves either no vault or a complete one.
    pub fn create(dir: &Path, passphrase: &SecretString, params: KdfParams) -> Result<Vault> {
        ensure_private_dir(dir)?;
        let path = db_path(dir);
        if fs::symlink_metadata(&path).is_ok() {
            return Err(Error::AlreadyExists(dir.to_owned()));
        }
        let tmp = dir.join(format!(".vault.db.init-{}", std::process::id()));
        remove_db_files(&tmp);
        let built = build_new(&tmp, passphrase, params);
        let linked = built.and_then(|()| {
            fs::hard_link(&tmp, &path).map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::AlreadyExists(dir.to_owned())
                } else {
                    io_err("cannot create", &path, source)
                }
            })
        });
        remove_db_files(&tmp);
        linked?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("cannot sync", dir, e))?;
        Vault::open(dir)
    }

    /// Appends to the audit log (see [`crate::audit`]) in one
    /// transaction: `record` if given (no key needed), then, with `keys`,
    /// an authenticated checkpoint over everything before it.
    pub fn append_audit(
        &mut self,
        record: Option<&crate::audit::Record>,
        checkpoint: Option<&Keys>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(record) = record {
            crate::audit::append(&tx, record)?;
        }
        if let Some(keys) = checkpoint {
            crate::audit::checkpoint(&tx, keys)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Appends `record` to the vault in `dir` through a connection of its
    /// own that does no more than that (see [`AuditWriter`]). `durable`:
    /// committed to the disk before this returns; else without waiting
    /// for the disk.
    pub fn append_audit_to(dir: &Path, record: &crate::audit::Record, durable: bool) -> Result<()> {
        AuditWriter::open(dir, durable)?.append(record)
    }

    /// The audit log, decoded but not verified.
    pub fn audit_log(&self) -> Result<Vec<crate::audit::Element>> {
        crate::audit::read(&self.conn)
    }

    /// Verifies the audit log's chain and checkpoints with the key.
    pub fn audit_verify(&self, keys: &Keys) -> Result<crate::audit::Verification> {
        crate::audit::verify(&self.conn, keys)
    }

    /// Opens the vault in `dir`, applying schema migrations.
    pub fn open(dir: &Path) -> Result<Vault> {
        let path = db_path(dir);
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialized(dir.to_owned()));
            }
            _ => crate::paths::check_owned(dir)?,
        }
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialized(dir.to_owned()));
            }
            // The directory may not be searched: inside `envseal shield
            // --nested-sandbox` it is covered.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(Error::Closed(path));
            }
            Err(e) => return Err(io_err("cannot read", &path, e)),
            Ok(m) if !m.file_type().is_file() => {
                return Err(Error::Corrupt(format!(
                    "{} is not a regular file",
                    path.display()
                )));
            }
            Ok(_) => crate::paths::check_owned(&path)?,
        }
        // SQLite reports a file it may not open as "unable to open": say
        // why, here. Every use is recorded in the vault, so it must be
        // writable; one that cannot even be read is closed (inside
        // `envseal shield`). One open when all is well.
        if let Err(e) = fs::OpenOptions::new().read(true).write(true).open(&path) {
            let unreadable = fs::File::open(&path)
                .is_err_and(|r| r.kind() == std::io::ErrorKind::PermissionDenied);
            return Err(if unreadable {
                Error::Closed(path)
            } else {
                Error::ReadOnly { path, source: e }
            });
        }
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        schema::migrate(&mut conn)?;
        let meta = |key: &str| -> Result<Vec<u8>> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?
                .ok_or_else(|| Error::Corrupt(format!("the vault has no {key} record")))
        };
        let vault_id: [u8; VAULT_ID_LEN] = meta("vault_id")?
            .try_into()
            .map_err(|_| Error::Corrupt("the vault id is malformed".into()))?;
        // A malformed public key is kept as such, not refused here: it is
        // reported when a value is set, and `repair` replaces it.
        let recipient = std::str::from_utf8(&meta("recipient")?)
            .ok()
            .and_then(|s| age::x25519::Recipient::from_str(s).ok());
        let wrapped = WrappedIdentity::decode(&meta("wrapped_identity")?)?;
        Ok(Vault {
            dir: dir.to_owned(),
            conn,
            vault_id,
            recipient,
            wrapped,
        })
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Argon2id parameters the identity is wrapped with.
    pub fn kdf_params(&self) -> KdfParams {
        self.wrapped.params()
    }

    /// The key-derivation cost recorded at `init`, if this vault has the
    /// record (vaults made before it was kept do not).
    pub fn kdf_at_init(&self) -> Result<Option<KdfParams>> {
        let raw: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'kdf_at_init'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        raw.map(|raw| {
            KdfParams::from_bytes(&raw).ok_or_else(|| {
                Error::Corrupt("the key-derivation cost recorded at init is malformed".into())
            })
        })
        .transpose()
    }

    /// What deriving the key would cost, compared with the cost recorded at
    /// `init` and with `ceiling`. Call it before [`Vault::unlock`]: the
    /// stored parameters are authenticated only by a successful unlock.
    pub fn kdf_cost(&self, ceiling: KdfCeiling) -> Result<KdfCost> {
        let stored = self.kdf_params();
        let at_init = self.kdf_at_init()?;
        Ok(match at_init {
            Some(at_init) if stored.exceeds(&at_init) => {
                KdfCost::RaisedSinceInit { stored, at_init }
            }
            _ if ceiling.exceeded_by(&stored) => KdfCost::AboveCeiling { stored, at_init },
            _ => KdfCost::Within,
        })
    }

    /// Derives the key from `passphrase` and opens the identity. Also checks
    /// that the public key stored in clear (used by `set`) is still ours.
    pub fn unlock(&self, passphrase: &SecretString) -> Result<Keys> {
        let (keys, recipient) = self.unlock_for_repair(passphrase)?;
        if !recipient.intact() {
            return Err(Error::RecipientReplaced);
        }
        Ok(keys)
    }

    /// Like [`Vault::unlock`] (a wrong passphrase is still
    /// [`Error::WrongPassphrase`]: the wrapped identity's AEAD checks it),
    /// but a replaced public key is reported, not refused, so that
    /// [`Vault::restore_recipient`] can put the right one back.
    pub fn unlock_for_repair(&self, passphrase: &SecretString) -> Result<(Keys, RecipientCheck)> {
        let identity = self.wrapped.unwrap(passphrase, &self.vault_id)?;
        let keys = Keys::new(identity, &self.vault_id);
        let check = RecipientCheck {
            stored: self
                .recipient
                .as_ref()
                .map_or_else(|| "(not a public key)".to_owned(), ToString::to_string),
            actual: keys.public_key(),
        };
        Ok((keys, check))
    }

    /// Stores the identity's own public key in clear again, so that values
    /// set from now on are encrypted to it. Returns whether it had been
    /// replaced (re-read under the write lock).
    pub fn restore_recipient(&mut self, keys: &Keys) -> Result<bool> {
        let actual = keys.public_key();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored: Option<Vec<u8>> = tx
            .query_row("SELECT value FROM meta WHERE key = 'recipient'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if stored.as_deref() == Some(actual.as_bytes()) {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('recipient', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [actual.as_bytes()],
        )?;
        tx.commit()?;
        self.recipient = Some(keys.recipient());
        Ok(true)
    }

    /// Decrypts every stored value, pending and approved, as its own
    /// secret, and drops (wipes) it at once: says which do not open, and
    /// why. Does not verify the endorsed state ([`Vault::verify`] does).
    pub fn check_values(&self, keys: &Keys) -> Result<Vec<ValueCheck>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, state, ciphertext FROM secrets ORDER BY name")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let raw: String = row.get(0)?;
            let state = parse_state(&row.get::<_, String>(1)?)?;
            let ciphertext = row.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?;
            let (problem, other_key) = match SecretName::new(&raw) {
                Err(_) => (Some("its name is invalid".to_owned()), false),
                Ok(name) => match envelope::open_checked(&keys.identity, &name, ciphertext) {
                    Ok(value) => {
                        drop(value);
                        (None, false)
                    }
                    Err(why) => (
                        Some(why.to_string()),
                        why == envelope::OpenFailure::OtherKey,
                    ),
                },
            };
            out.push(ValueCheck {
                name: raw,
                state,
                problem,
                other_key,
            });
        }
        Ok(out)
    }

    /// Lists every secret by name. Never reads a value.
    pub fn list(&self) -> Result<Vec<SecretInfo>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, state, created_at, updated_at, writer FROM secrets ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, state, created, updated, writer) = row?;
            out.push(SecretInfo {
                state: parse_state(&state)?,
                name,
                created_at: from_unix(created),
                updated_at: from_unix(updated),
                writer: Writer::parse(&writer),
            });
        }
        Ok(out)
    }

    /// Writes a value without the passphrase. A new secret is stored
    /// pending; an existing one is replaced only with `replace`, and only
    /// while it is pending (an approved one returns
    /// [`Error::PassphraseRequired`]; use [`Vault::set_endorsed`]).
    ///
    /// `record` (who wrote it) is appended to the audit log in the same
    /// transaction, as a `set` with the secret's name and the ciphertext's
    /// digest,
    /// and the row keeps its sequence number and time: the value's
    /// provenance, which `approve` checks (see [`Vault::provenance`]).
    pub fn set(
        &mut self,
        name: &SecretName,
        value: &SecretSlice<u8>,
        replace: bool,
        record: &crate::audit::Record,
    ) -> Result<SetOutcome> {
        self.write_value(None, None, name, value, replace, &Writer::Direct, record)
    }

    /// Writes a new pending value recording who wrote it (the broker does
    /// this for callers inside a shield): never replaces an existing value,
    /// pending or approved ([`Error::SecretExists`]). With `seal`, an
    /// authenticated checkpoint follows the record at once, so that its
    /// provenance cannot be rewritten without the key.
    pub fn set_new(
        &mut self,
        name: &SecretName,
        value: &SecretSlice<u8>,
        writer: &Writer,
        record: &crate::audit::Record,
        seal: Option<&Keys>,
    ) -> Result<SetOutcome> {
        self.write_value(None, seal, name, value, false, writer, record)
    }

    /// Writes a value with the passphrase: like [`Vault::set`], but an
    /// approved secret is replaced and stays approved (the manifest is
    /// re-signed after the whole endorsed state has been verified).
    pub fn set_endorsed(
        &mut self,
        keys: &Keys,
        name: &SecretName,
        value: &SecretSlice<u8>,
        replace: bool,
        record: &crate::audit::Record,
    ) -> Result<SetOutcome> {
        self.write_value(
            Some(keys),
            Some(keys),
            name,
            value,
            replace,
            &Writer::Direct,
            record,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn write_value(
        &mut self,
        keys: Option<&Keys>,
        seal: Option<&Keys>,
        name: &SecretName,
        value: &SecretSlice<u8>,
        replace: bool,
        writer: &Writer,
        record: &crate::audit::Record,
    ) -> Result<SetOutcome> {
        check_value(name, value)?;
        // Encrypt before taking the write lock, to hold it briefly.
        let recipient = self
            .recipient
            .as_ref()
            .ok_or_else(|| Error::Corrupt("the vault's public key is malformed".into()))?;
        let ciphertext = envelope::seal(recipient, name, value)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let manifest = match keys {
            Some(keys) => Some((
                keys,
                verified_manifest(&tx, keys, &self.vault_id, &[], None)?,
            )),
            None => None,
        };
        let mut record = record.clone();
        record.action = "set".into();
        record.names = vec![name.to_string()];
        record.sha256 = Some(manifest::digest(&ciphertext));
        let outcome = match (stored(&tx, name)?.map(|row| row.state), manifest) {
            (None, _) => {
                let written = crate::audit::append(&tx, &record)?;
                insert_pending(&tx, name, &ciphertext, writer, written)?;
                SetOutcome::Created
            }
            (Some(_), _) if !replace => return Err(Error::SecretExists(name.to_string())),
            (Some(SecretState::Pending), _) => {
                let written = crate::audit::append(&tx, &record)?;
                update_ciphertext(&tx, name, &ciphertext, writer, written)?;
                SetOutcome::ReplacedPending
            }
            (Some(SecretState::Approved), None) => {
                return Err(Error::PassphraseRequired(name.to_string()));
            }
            (Some(SecretState::Approved), Some((keys, mut manifest))) => {
                let written = crate::audit::append(&tx, &record)?;
                update_ciphertext(&tx, name, &ciphertext, writer, written)?;
                manifest
                    .secrets
                    .insert(name.clone(), manifest::digest(&ciphertext));
                write_manifest(&tx, keys, &self.vault_id, &mut manifest)?;
                SetOutcome::ReplacedApproved
            }
        };
        if let Some(keys) = seal {
            crate::audit::checkpoint(&tx, keys)?;
        }
        tx.commit()?;
        Ok(outcome)
    }

    /// The provenance of pending value `name`: the `set` record that wrote
    /// it, checked against the row (same name, same ciphertext digest,
    /// same time) and the audit log's chain and checkpoints. A value whose
    /// record is missing, edited, or does not match (swapped or
    /// back-dated) is refused with [`Error::Provenance`].
    pub fn provenance(&self, keys: &Keys, name: &SecretName) -> Result<Provenance> {
        let row = existing(&self.conn, name)?;
        let p = crate::audit::Provenances::read(&self.conn, keys)?;
        check_provenance(&self.conn, &p, name, &row)
    }

    /// Endorses pending values. Each is decrypted to check that its
    /// envelope names it; all or none are approved.
    pub fn approve(&mut self, keys: &Keys, names: &[SecretName]) -> Result<Vec<ApproveOutcome>> {
        self.approve_as_shown(keys, names, None)
    }

    /// Like [`Vault::approve`], but each pending value must still be the
    /// one the person was shown: written at the time and by the writer in
    /// `shown` (from [`Vault::list`]). A value replaced since then fails
    /// the whole approval with [`Error::ChangedSinceShown`].
    pub fn approve_as_shown(
        &mut self,
        keys: &Keys,
        names: &[SecretName],
        shown: Option<&[SecretInfo]>,
    ) -> Result<Vec<ApproveOutcome>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut manifest = verified_manifest(&tx, keys, &self.vault_id, &[], None)?;
        let mut outcomes = Vec::with_capacity(names.len());
        // The log is verified once, for the first pending value.
        let mut log: Option<crate::audit::Provenances> = None;
        for name in names {
            let row = existing(&tx, name)?;
            if row.state == SecretState::Approved {
                outcomes.push(ApproveOutcome::AlreadyApproved);
                continue;
            }
            if let Some(shown) = shown {
                let same = shown.iter().any(|info| {
                    info.name == name.as_str()
                        && info.updated_at == from_unix(row.updated_at)
                        && info.writer == row.writer
                });
                if !same {
                    return Err(Error::ChangedSinceShown(name.to_string()));
                }
            }
            let log = match &log {
                Some(log) => log,
                None => log.insert(crate::audit::Provenances::read(&tx, keys)?),
            };
            outcomes.push(approve_row(&tx, keys, &mut manifest, log, name, &row)?);
        }
        if outcomes
            .iter()
            .any(|o| matches!(o, ApproveOutcome::Approved { .. }))
        {
            write_manifest(&tx, keys, &self.vault_id, &mut manifest)?;
        }
        tx.commit()?;
        Ok(outcomes)
    }

    /// Deletes a secret. Tampering that concerns only this secret does not
    /// block its removal (that is how a user repairs it); any other does.
    /// `name` may also be the exact name of a row whose name is invalid
    /// (only an edit of the database can create one), so that it too can be
    /// removed.
    pub fn remove(&mut self, keys: &Keys, name: &str) -> Result<()> {
        let valid = SecretName::new(name);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut manifest = verified_manifest(&tx, keys, &self.vault_id, &[name], None)?;
        let deleted = tx.execute("DELETE FROM secrets WHERE name = ?1", [name])?;
        let endorsed = match &valid {
            Ok(n) => manifest.secrets.remove(n).is_some(),
            Err(_) => false,
        };
        if deleted == 0 && !endorsed {
            return Err(match valid {
                Ok(_) => Error::NoSuchSecret(name.to_owned()),
                Err(invalid) => invalid.into(),
            });
        }
        if endorsed {
            write_manifest(&tx, keys, &self.vault_id, &mut manifest)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Checks the whole endorsed state against the database.
    pub fn verify(&self, keys: &Keys) -> Result<()> {
        self.endorsed(keys).map(drop)
    }

    /// Decrypts an approved value for delivery to a pinned program. The
    /// endorsed state is verified first; pending values are refused.
    pub fn open_value(&self, keys: &Keys, name: &SecretName) -> Result<SecretSlice<u8>> {
        self.endorsed(keys)?.open_value(name)
    }

    /// A verified, read-only snapshot of the endorsed state: the manifest
    /// and every row are checked once, and the grant and values read
    /// through it come from that same snapshot.
    pub fn endorsed<'v>(&'v self, keys: &'v Keys) -> Result<Endorsed<'v>> {
        let tx = self.conn.unchecked_transaction()?;
        let manifest = verified_manifest(&tx, keys, &self.vault_id, &[], None)?;
        Ok(Endorsed { tx, manifest, keys })
    }

    /// Every grant as stored, *not* authenticated (no passphrase is
    /// needed to list them; every use verifies them).
    pub fn grants(&self) -> Result<Vec<GrantRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT program, body, updated_at FROM grants ORDER BY program")?;
        let rows = stmt.query_map([], |r| {
            Ok(GrantRecord {
                program: r.get(0)?,
                body: r.get(1)?,
                updated_at: from_unix(r.get(2)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The programs that have a grant row, *not* authenticated (a cheap
    /// first look; every use verifies).
    pub fn granted_programs(&self) -> Result<BTreeSet<String>> {
        let mut stmt = self.conn.prepare("SELECT program FROM grants")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Stores the grant for `program` (replacing any), after checking that
    /// every secret in `uses` exists and is approved — approving pending
    /// ones first if `approve` — all in one transaction that verifies the
    /// whole endorsed state and re-signs it.
    pub fn put_grant(
        &mut self,
        keys: &Keys,
        program: &str,
        body: &[u8],
        uses: &[SecretName],
        approve: bool,
    ) -> Result<Vec<(SecretName, ApproveOutcome)>> {
        if program.is_empty() || program.len() > u16::MAX as usize {
            return Err(Error::Corrupt(
                "a grant's program key has an invalid length".into(),
            ));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut manifest = verified_manifest(&tx, keys, &self.vault_id, &[], None)?;
        let mut outcomes = Vec::new();
        let mut log: Option<crate::audit::Provenances> = None;
        for name in uses {
            let row = existing(&tx, name)?;
            if row.state == SecretState::Pending {
                if !approve {
                    return Err(Error::NotApproved(name.to_string()));
                }
                let log = match &log {
                    Some(log) => log,
                    None => log.insert(crate::audit::Provenances::read(&tx, keys)?),
                };
                outcomes.push((
                    name.clone(),
                    approve_row(&tx, keys, &mut manifest, log, name, &row)?,
                ));
            }
        }
        let t = now();
        tx.execute(
            "INSERT INTO grants (program, body, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (program) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            rusqlite::params![program, body, t],
        )?;
        manifest
            .grants
            .insert(program.to_owned(), manifest::digest(body));
        write_manifest(&tx, keys, &self.vault_id, &mut manifest)?;
        tx.commit()?;
        Ok(outcomes)
    }

    /// Removes the grant for `program`. Tampering that concerns only this
    /// grant does not block its removal.
    pub fn remove_grant(&mut self, keys: &Keys, program: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut manifest = verified_manifest(&tx, keys, &self.vault_id, &[], Some(program))?;
        let deleted = tx.execute("DELETE FROM grants WHERE program = ?1", [program])?;
        let endorsed = manifest.grants.remove(program).is_some();
        if deleted == 0 && !endorsed {
            return Err(Error::NoSuchGrant(program.to_owned()));
        }
        write_manifest(&tx, keys, &self.vault_id, &mut manifest)?;
        tx.commit()?;
        Ok(())
    }
}

/// A grant row as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    /// The pinned program's canonical path.
    pub program: String,
    /// The encoded grant (see `envseal-policy`).
    pub body: Vec<u8>,
    /// When it was last written.
    pub updated_at: SystemTime,
}

/// A verified snapshot of the endorsed state (see [`Vault::endorsed`]).
pub struct Endorsed<'v> {
    tx: Transaction<'v>,
    manifest: Manifest,
    keys: &'v Keys,
}

impl Endorsed<'_> {
    /// The authenticated grant body for `program`, if there is one.
    pub fn grant(&self, program: &str) -> Result<Option<Vec<u8>>> {
        let Some(digest) = self.manifest.grants.get(program) else {
            return Ok(None);
        };
        let body: Vec<u8> = self
            .tx
            .query_row(
                "SELECT body FROM grants WHERE program = ?1",
                [program],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::Tampered(format!("the grant for {program} is missing")))?;
        if &manifest::digest(&body) != digest {
            return Err(Error::Tampered(format!(
                "the grant for {program} was changed outside envseal"
            )));
        }
        Ok(Some(body))
    }

    /// Decrypts an approved value; pending values are refused.
    pub fn open_value(&self, name: &SecretName) -> Result<SecretSlice<u8>> {
        let row = existing(&self.tx, name)?;
        if row.state != SecretState::Approved || !self.manifest.secrets.contains_key(name) {
            return Err(Error::NotApproved(name.to_string()));
        }
        envelope::open(&self.keys.identity, name, &row.ciphertext)
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL with synchronous=FULL: every committed `set` is on disk before
    // envseal reports success, even across power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

fn build_new(tmp: &Path, passphrase: &SecretString, params: KdfParams) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| io_err("cannot create", tmp, e))?;
    let mut conn = Connection::open(tmp)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Corrupt(format!("SQLite refused WAL mode ({mode})")));
    }
    configure(&conn)?;

    let identity = age::x25519::Identity::generate();
    let mut vault_id = [0u8; VAULT_ID_LEN];
    rand::rngs::OsRng.fill_bytes(&mut vault_id);
    let wrapped = WrappedIdentity::wrap(&identity, passphrase, params, &vault_id)?;
    let recipient = identity.to_public().to_string();
    let keys = Keys::new(identity, &vault_id);

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    schema::create(&tx)?;
    let mut put = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
    put.execute(rusqlite::params!["vault_id", vault_id.as_slice()])?;
    put.execute(rusqlite::params!["recipient", recipient.as_bytes()])?;
    put.execute(rusqlite::params!["wrapped_identity", wrapped.encode()])?;
    // The cost chosen now, kept apart from the wrapped identity's copy:
    // `unlock` asks before paying more than this (see `Vault::kdf_cost`).
    put.execute(rusqlite::params![
        "kdf_at_init",
        params.to_bytes().as_slice()
    ])?;
    put.execute(rusqlite::params![
        "created_at",
        now().to_be_bytes().as_slice()
    ])?;
    drop(put);
    write_manifest(&tx, &keys, &vault_id, &mut Manifest::default())?;
    tx.commit()?;
    conn.close().map_err(|(_, e)| Error::from(e))?;
    Ok(())
}

/// Loads the manifest, checks its MAC, and compares it with every secret
/// and grant row. Problems concerning a (raw) secret name in `except`, or
/// the grant `except_grant`, are ignored (that is how they are removed).
fn verified_manifest(
    conn: &Connection,
    keys: &Keys,
    vault_id: &[u8; VAULT_ID_LEN],
    except: &[&str],
    except_grant: Option<&str>,
) -> Result<Manifest> {
    let tampered = |what: &str| Error::Tampered(what.to_owned());
    let (body, tag): (Vec<u8>, Vec<u8>) = conn
        .query_row("SELECT body, mac FROM manifest WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or_else(|| tampered("the endorsed-state manifest is missing"))?;
    if !manifest::verify_mac(&keys.mac_key, &body, &tag) {
        return Err(tampered("the endorsed-state manifest fails authentication"));
    }
    let manifest = Manifest::decode(&body, vault_id)
        .map_err(|_| tampered("the endorsed-state manifest is malformed"))?;

    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stmt = conn.prepare("SELECT name, state, ciphertext FROM secrets")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let raw: String = row.get(0)?;
        if except.contains(&raw.as_str()) {
            if let Ok(name) = SecretName::new(&raw) {
                seen.insert(name);
            }
            continue;
        }
        let Ok(name) = SecretName::new(&raw) else {
            problems.push(format!(
                "a row has an invalid name {} (remove it with `envseal rm` and that exact name)",
                shown(&raw)
            ));
            continue;
        };
        let state = parse_state(&row.get::<_, String>(1)?)?;
        let endorsed = manifest.secrets.get(&name);
        match (state, endorsed) {
            (SecretState::Approved, None) => {
                problems.push(format!(
                    "secret {name} is marked approved but was never approved"
                ));
            }
            (SecretState::Approved, Some(digest)) => {
                let ciphertext = row.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?;
                if &manifest::digest(ciphertext) != digest {
                    problems.push(format!(
                        "secret {name} holds a ciphertext that was never approved for it \
                         (swapped, replayed or altered)"
                    ));
                }
            }
            (SecretState::Pending, Some(_)) => {
                problems.push(format!(
                    "secret {name} was approved but its row was reset to pending"
                ));
            }
            (SecretState::Pending, None) => {}
        }
        seen.insert(name);
    }
    for name in manifest.secrets.keys() {
        if !seen.contains(name) && !except.contains(&name.as_str()) {
            problems.push(format!("secret {name} was approved but its row is missing"));
        }
    }
    drop(rows);
    drop(stmt);
    check_grants(conn, &manifest, except_grant, &mut problems)?;
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(Error::Tampered(problems.join("; ")))
    }
}

/// Compares every grant row with the manifest: a grant added, widened,
/// re-pinned or removed by editing the database is a problem.
fn check_grants(
    conn: &Connection,
    manifest: &Manifest,
    except: Option<&str>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let mut seen = BTreeSet::new();
    let mut stmt = conn.prepare("SELECT program, body FROM grants")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let program: String = row.get(0)?;
        if except == Some(program.as_str()) {
            continue;
        }
        let body = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        match manifest.grants.get(&program) {
            None => problems.push(format!(
                "a grant for {} was added outside envseal",
                shown(&program)
            )),
            Some(digest) if &manifest::digest(body) != digest => problems.push(format!(
                "the grant for {} was changed outside envseal (widened or re-pinned)",
                shown(&program)
            )),
            Some(_) => {}
        }
        seen.insert(program);
    }
    for program in manifest.grants.keys() {
        if !seen.contains(program) && except != Some(program.as_str()) {
            problems.push(format!(
                "the grant for {} was removed outside envseal",
                shown(program)
            ));
        }
    }
    Ok(())
}

fn write_manifest(
    tx: &Transaction<'_>,
    keys: &Keys,
    vault_id: &[u8; VAULT_ID_LEN],
    manifest: &mut Manifest,
) -> Result<()> {
    manifest.generation += 1;
    let body = manifest.encode(vault_id);
    let tag = manifest::mac(&keys.mac_key, &body);
    tx.execute(
        "INSERT INTO manifest (id, body, mac) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, mac = excluded.mac",
        rusqlite::params![body, tag.as_slice()],
    )?;
    Ok(())
}

/// Approves one pending row: its provenance must verify against `log`
/// (see [`Vault::provenance`]), and decrypting proves the ciphertext is
/// ours and is this secret's (the value is dropped, and wiped, at once).
fn approve_row(
    tx: &Transaction<'_>,
    keys: &Keys,
    manifest: &mut Manifest,
    log: &crate::audit::Provenances,
    name: &SecretName,
    row: &Row,
) -> Result<ApproveOutcome> {
    drop(envelope::open(&keys.identity, name, &row.ciphertext)?);
    check_provenance(tx, log, name, row)?;
    tx.execute(
        "UPDATE secrets SET state = 'approved' WHERE name = ?1",
        [name.as_str()],
    )?;
    manifest
        .secrets
        .insert(name.clone(), manifest::digest(&row.ciphertext));
    Ok(ApproveOutcome::Approved {
        written_at: from_unix(row.updated_at),
        writer: row.writer,
    })
}

/// A connection to the vault in a directory that only appends audit
/// records: for the broker's recorder, which keeps one open (no set-up
/// and no directory sync per record), and for one-off records.
pub struct AuditWriter {
    conn: Connection,
}

impl AuditWriter {
    /// Opens the vault's database for appending. `durable`: each record
    /// is on the disk when [`AuditWriter::append`] returns
    /// (`synchronous=FULL`); else it survives a crash of any process, not
    /// a power failure (WAL with `synchronous=NORMAL`).
    pub fn open(dir: &Path, durable: bool) -> Result<AuditWriter> {
        let conn = Connection::open_with_flags(
            db_path(dir),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != schema::CURRENT {
            return Err(Error::UnsupportedSchema {
                found: version,
                supported: schema::CURRENT,
            });
        }
        Ok(AuditWriter { conn })
    }

    /// Appends `record` in a transaction of its own.
    pub fn append(&mut self, record: &crate::audit::Record) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::audit::append(&tx, record)?;
        tx.commit()?;
        Ok(())
    }
}

/// Where a pending value came from, as its audit record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The sequence number of its `set` record.
    pub seq: i64,
    /// That record.
    pub record: crate::audit::Record,
    /// Whether an authenticated checkpoint covers the record: if not (it
    /// was written while the vault was locked), any process of the user's
    /// could have written or rewritten it.
    pub authenticated: bool,
}

/// Checks `row`'s provenance against the log `log` (verified).
fn check_provenance(
    conn: &Connection,
    log: &crate::audit::Provenances,
    name: &SecretName,
    row: &Row,
) -> Result<Provenance> {
    let bad = |why: String| Error::Provenance {
        name: name.to_string(),
        why,
    };
    let seq = row.record.ok_or_else(|| {
        bad(
            "no audit record says who wrote it (written by an older envseal, or the link was \
             removed)"
                .into(),
        )
    })?;
    if let Some((first, _)) = &log.log.first_bad
        && *first <= seq
    {
        return Err(bad(format!(
            "the audit log was edited at or before its record {seq} (first bad: {first})"
        )));
    }
    let authenticated = seq <= log.log.authenticated_through;
    if !authenticated && !log.log.tail_chains {
        return Err(bad(format!(
            "its record {seq} is in a part of the audit log that does not chain"
        )));
    }
    let (at, record) = crate::audit::record_at(conn, seq)?
        .ok_or_else(|| bad(format!("its record {seq} is gone from the audit log")))?;
    // A value written, replaced or removed after this record: the row is
    // an old one put back (a rollback of one value).
    if let Some(&last) = log.last_write.get(name.as_str())
        && last != seq
    {
        return Err(bad(format!(
            "record {seq} wrote an earlier value: record {last} wrote or removed it since (an old \
             value was put back)"
        )));
    }
    // The writer shown must be the one recorded.
    let writer_matches = match row.writer {
        Writer::Direct => record.shielded != Some(true),
        Writer::Shield { pid } => record.shielded == Some(true) && record.pid == pid as u32,
        Writer::Unknown => true,
    };
    if !writer_matches {
        return Err(bad(format!(
            "its writer was changed: record {seq} says {}",
            if record.shielded == Some(true) {
                "a caller inside a shield wrote it"
            } else {
                "it was written outside any shield"
            }
        )));
    }
    if record.action == "set"
        && record.names == [name.as_str()]
        && record.sha256 == Some(manifest::digest(&row.ciphertext))
        && at == row.updated_at
    {
        Ok(Provenance {
            seq,
            record,
            authenticated,
        })
    } else {
        Err(bad(format!(
            "record {seq} of the audit log did not write this value (the value was swapped, or \
             its time changed)"
        )))
    }
}

/// One row of `secrets`, as the operations need it.
struct Row {
    state: SecretState,
    ciphertext: Vec<u8>,
    updated_at: i64,
    writer: Writer,
    /// The sequence number of the `set` record that wrote the value.
    record: Option<i64>,
}

/// The row of `name`, if there is one.
fn stored(conn: &Connection, name: &SecretName) -> Result<Option<Row>> {
    type Fields = (String, Vec<u8>, i64, String, Option<i64>);
    let row: Option<Fields> = conn
        .query_row(
            "SELECT state, ciphertext, updated_at, writer, record FROM secrets WHERE name = ?1",
            [name.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    row.map(|(state, ciphertext, updated_at, writer, record)| {
        Ok(Row {
            state: parse_state(&state)?,
            ciphertext,
            updated_at,
            writer: Writer::parse(&writer),
            record,
        })
    })
    .transpose()
}

/// The row of `name`, or [`Error::NoSuchSecret`].
fn existing(conn: &Connection, name: &SecretName) -> Result<Row> {
    stored(conn, name)?.ok_or_else(|| Error::NoSuchSecret(name.to_string()))
}

/// Inserts a pending row written by the audit record `(seq, at)`.
fn insert_pending(
    tx: &Transaction<'_>,
    name: &SecretName,
    ciphertext: &[u8],
    writer: &Writer,
    (seq, at): (i64, i64),
) -> Result<()> {
    tx.execute(
        "INSERT INTO secrets (name, state, ciphertext, created_at, updated_at, writer, record)
         VALUES (?1, 'pending', ?2, ?3, ?3, ?4, ?5)",
        rusqlite::params![name.as_str(), ciphertext, at, writer.encode(), seq],
    )?;
    Ok(())
}

/// Replaces a value, written by the audit record `(seq, at)`.
fn update_ciphertext(
    tx: &Transaction<'_>,
    name: &SecretName,
    ciphertext: &[u8],
    writer: &Writer,
    (seq, at): (i64, i64),
) -> Result<()> {
    tx.execute(
        "UPDATE secrets SET ciphertext = ?2, updated_at = ?3, writer = ?4, record = ?5
         WHERE name = ?1",
        rusqlite::params![name.as_str(), ciphertext, at, writer.encode(), seq],
    )?;
    Ok(())
}

/// Who wrote a value. Not authenticated (a pending value is written
/// without the passphrase), so it informs the person; it proves nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// Outside any shield: at a terminal, from a pipe, by `import`.
    Direct,
    /// A caller inside an `envseal shield`, through the broker.
    Shield { pid: i32 },
    /// Not recorded: written before the vault recorded writers, or by an
    /// older broker, or an entry this version does not know.
    Unknown,
}

impl Writer {
    fn encode(&self) -> String {
        match self {
            Writer::Direct => "direct".into(),
            Writer::Shield { pid } => format!("shield:{pid}"),
            Writer::Unknown => "unknown".into(),
        }
    }

    /// Anything else than the two known forms reads as unknown: an edited
    /// entry gets the cautious reading.
    fn parse(s: &str) -> Writer {
        match s {
            "direct" => Writer::Direct,
            _ => match s.strip_prefix("shield:").and_then(|p| p.parse().ok()) {
                Some(pid) => Writer::Shield { pid },
                None => Writer::Unknown,
            },
        }
    }
}

fn check_value(name: &SecretName, value: &SecretSlice<u8>) -> Result<()> {
    let len = value.expose_secret().len();
    let reason = if len == 0 {
        "the value is empty"
    } else if len > MAX_VALUE_LEN {
        "the value is larger than 1 MiB"
    } else {
        return Ok(());
    };
    Err(Error::InvalidValue {
        name: name.to_string(),
        reason: reason.into(),
    })
}

fn parse_state(s: &str) -> Result<SecretState> {
    match s {
        "pending" => Ok(SecretState::Pending),
        "approved" => Ok(SecretState::Approved),
        _ => Err(Error::Corrupt("a secret has an unknown state".into())),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn from_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

/// An attacker-chosen name, made safe to print on a terminal.
fn shown(raw: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = raw
        .chars()
        .take(MAX)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if raw.chars().count() > MAX {
        out.push_str("… (truncated)");
    }
    format!("\"{out}\"")
}

fn io_err(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn remove_db_files(db: &Path) {
    for p in crate::paths::db_files(db) {
        let _ = fs::remove_file(p);
    }
}
