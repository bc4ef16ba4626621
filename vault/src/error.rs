//! The vault's error type: names and paths only, never a value.

use std::path::PathBuf;

/// Everything that can go wrong in the vault.
///
/// Messages name secrets and files, never their contents; `Debug` is derived
/// only over such fields.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No vault exists at the expected place.
    #[error("no vault at {0}")]
    NotInitialized(PathBuf),

    /// The vault directory or database is another user's, or others may
    /// write it: someone else could read what is set there, or plant it.
    #[error(
        "{path} is not yours alone (owner uid {owner}, mode {mode:o}); envseal uses only a vault you own"
    )]
    NotYours {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },

    /// The vault's files cannot be opened from here (inside `envseal
    /// shield`, which closes them to the agent).
    #[error("the vault's files cannot be opened here ({0}: permission denied)")]
    Closed(PathBuf),

    /// The vault cannot be written (a read-only filesystem or file): no
    /// use of it could be recorded.
    #[error("the vault cannot be written ({path}: {source}); nothing was run or changed")]
    ReadOnly {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `init` found a vault already there.
    #[error("a vault already exists at {0}")]
    AlreadyExists(PathBuf),

    /// The passphrase did not unwrap the identity.
    #[error("wrong passphrase (or the wrapped key was altered)")]
    WrongPassphrase,

    /// A secret name outside `[A-Za-z_][A-Za-z0-9_]*`, 1..=128 bytes.
    #[error("invalid secret name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// A value that is empty or larger than the limit.
    #[error("invalid value for {name}: {reason}")]
    InvalidValue { name: String, reason: String },

    /// Key-derivation parameters outside the allowed range.
    #[error("invalid key-derivation parameters: {0}")]
    InvalidKdf(String),

    /// The secret does not exist.
    #[error("no secret named {0}")]
    NoSuchSecret(String),

    /// No grant for this program.
    #[error("no grant for {0}")]
    NoSuchGrant(String),

    /// The secret exists but is still pending approval.
    #[error("secret {0} is pending approval (run `envseal approve {0}`)")]
    NotApproved(String),

    /// The secret exists and the caller did not ask to replace it.
    #[error("secret {0} already exists")]
    SecretExists(String),

    /// A pending value was replaced after the person was shown it.
    #[error("secret {0} was written again after it was shown to you; nothing was approved")]
    ChangedSinceShown(String),

    /// A pending value whose audit record does not verify: not approved.
    #[error("the provenance of {name} does not verify: {why}; nothing was approved")]
    Provenance { name: String, why: String },

    /// Replacing an approved secret needs the passphrase.
    #[error("secret {0} is approved; replacing it needs the passphrase")]
    PassphraseRequired(String),

    /// The endorsed state does not match the database: someone edited it.
    #[error("vault tampered: {0}")]
    Tampered(String),

    /// The public key stored in clear (which `set` encrypts to) is not the
    /// identity's: someone replaced it. `envseal repair` restores it.
    #[error(
        "vault tampered: the vault's public key was replaced; values set since then were \
         encrypted to another key"
    )]
    RecipientReplaced,

    /// The database is unreadable, truncated or not a vault.
    #[error("vault corrupt: {0}")]
    Corrupt(String),

    /// The database was written by a newer envseal.
    #[error("vault schema version {found} is newer than this envseal supports ({supported})")]
    UnsupportedSchema { found: i64, supported: i64 },

    /// SQLite failed for a reason other than corruption.
    #[error("database error: {0}")]
    Database(#[source] rusqlite::Error),

    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Encryption failed (should not happen with a valid recipient).
    #[error("encryption failed: {0}")]
    Crypto(String),
}

impl From<envseal_core::NameError> for Error {
    fn from(e: envseal_core::NameError) -> Self {
        Error::InvalidName {
            name: e.name,
            reason: e.reason,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                Error::Corrupt(e.to_string())
            }
            _ => Error::Database(e),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
