//! envseal's vault: storage and cryptography for write-only secrets.
//!
//! What this crate upholds (see `docs/threat-model.md`):
//!
//! - **G1** — there is no API that returns a value except
//!   [`Vault::open_value`], which needs the unlocked [`Keys`] and is used only
//!   to hand a value to a pinned program. Errors name secrets, never values;
//!   secret-holding types implement neither `Debug` nor `Display`.
//! - **G2** — every value is age-encrypted (X25519) to the vault's
//!   recipient; the identity is wrapped with XChaCha20-Poly1305 under
//!   Argon2id(passphrase). A copy of the files must be brute-forced.
//! - **G4** — the endorsed state (approved secrets and their ciphertext
//!   digests) is authenticated with an HMAC key derived (HKDF) from the
//!   identity. Rows edited, swapped, replayed, renamed or injected are
//!   detected and refused. Values written without the passphrase are
//!   *pending* and are never handed out until approved.
#![forbid(unsafe_code)]

pub mod audit;
/// The binary record reader (in `envseal-core`, shared with policy).
pub use envseal_core::codec;
pub mod envelope;
mod error;
mod keys;
pub mod manifest;
mod paths;
mod schema;
mod vault;

pub use envelope::MAX_VALUE_LEN;
pub use envseal_core::{MAX_NAME_LEN, NameError, SecretName};
pub use error::{Error, Result};
/// For the fuzz targets (`fuzz/`): the wrapped identity's parser.
#[doc(hidden)]
pub use keys::WrappedIdentity;
pub use keys::{KdfCeiling, KdfParams, Keys, VAULT_ID_LEN};
pub use paths::{DB_FILE, db_files, db_path};
pub use vault::{
    ApproveOutcome, AuditWriter, Endorsed, GrantRecord, KdfCost, Provenance, RecipientCheck,
    SecretInfo, SecretState, SetOutcome, ValueCheck, Vault, Writer,
};
