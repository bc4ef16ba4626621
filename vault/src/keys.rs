//! The vault's keys: the age identity, wrapped under Argon2id(passphrase),
//! and the manifest MAC key derived from it.
//!
//! Wrapped-identity record (all integers big-endian):
//!
//! ```text
//! "ESW1" | memory_kib u32 | time u32 | parallelism u32 | salt [16] | nonce [24] | len u32 | ciphertext
//! ```
//!
//! The AEAD (XChaCha20-Poly1305) binds the vault id and the KDF parameters
//! as associated data, so lowering the parameters in the database does not
//! make the wrapped key cheaper to attack: it only stops it from opening.

use std::str::FromStr;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of the random vault id (HKDF salt, AEAD associated data).
pub const VAULT_ID_LEN: usize = 16;

const WRAP_MAGIC: &[u8; 4] = b"ESW1";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
const MAC_INFO: &[u8] = b"envseal v1 manifest mac key";

/// Argon2id cost parameters, stored beside the wrapped identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    time: u32,
    parallelism: u32,
}

impl KdfParams {
    /// Lowest memory cost `init` accepts, in MiB.
    pub const MIN_MEMORY_MIB: u32 = 8;
    /// Highest memory cost accepted, in MiB (guards against a database
    /// edited to make `unlock` allocate without bound).
    pub const MAX_MEMORY_MIB: u32 = 4096;
    /// Highest time cost accepted.
    pub const MAX_TIME: u32 = 64;

    /// The default: m = 64 MiB, t = 3, p = 1.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        time: 3,
        parallelism: 1,
    };

    /// Parameters from `--kdf-memory MIB --kdf-time N`, checked against the
    /// floor (m ≥ 8 MiB, t ≥ 1) and a sane ceiling.
    pub fn new(memory_mib: u32, time: u32) -> Result<Self> {
        if !(Self::MIN_MEMORY_MIB..=Self::MAX_MEMORY_MIB).contains(&memory_mib) {
            return Err(Error::InvalidKdf(format!(
                "memory must be between {} and {} MiB, not {memory_mib}",
                Self::MIN_MEMORY_MIB,
                Self::MAX_MEMORY_MIB
            )));
        }
        if !(1..=Self::MAX_TIME).contains(&time) {
            return Err(Error::InvalidKdf(format!(
                "time must be between 1 and {}, not {time}",
                Self::MAX_TIME
            )));
        }
        Ok(KdfParams {
            memory_kib: memory_mib * 1024,
            time,
            parallelism: 1,
        })
    }

    /// The record of these parameters kept beside the vault (the cost
    /// chosen at `init`): memory_kib u32 | time u32 | parallelism u32.
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&self.memory_kib.to_be_bytes());
        out[4..8].copy_from_slice(&self.time.to_be_bytes());
        out[8..].copy_from_slice(&self.parallelism.to_be_bytes());
        out
    }

    /// Parses [`KdfParams::to_bytes`]; any other length is `None`.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut r = crate::codec::Reader::new(bytes);
        let params = KdfParams {
            memory_kib: r.u32()?,
            time: r.u32()?,
            parallelism: r.u32()?,
        };
        r.is_empty().then_some(params)
    }

    /// Whether deriving with these parameters costs more than with `other`
    /// in memory, passes or lanes.
    pub fn exceeds(&self, other: &KdfParams) -> bool {
        self.memory_kib > other.memory_kib
            || self.time > other.time
            || self.parallelism > other.parallelism
    }

    /// Memory cost in MiB.
    pub fn memory_mib(&self) -> u32 {
        self.memory_kib / 1024
    }

    /// Time cost (passes).
    pub fn time(&self) -> u32 {
        self.time
    }

    fn check_stored(&self) -> Result<()> {
        let ok = (KdfParams::MIN_MEMORY_MIB * 1024..=KdfParams::MAX_MEMORY_MIB * 1024)
            .contains(&self.memory_kib)
            && (1..=KdfParams::MAX_TIME).contains(&self.time)
            && (1..=16).contains(&self.parallelism);
        if ok {
            Ok(())
        } else {
            Err(Error::Corrupt(
                "the stored key-derivation parameters are out of range".into(),
            ))
        }
    }

    fn derive(&self, passphrase: &SecretString, salt: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let params = Params::new(self.memory_kib, self.time, self.parallelism, Some(KEY_LEN))
            .map_err(|e| Error::InvalidKdf(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(passphrase.expose_secret().as_bytes(), salt, key.as_mut())
            .map_err(|e| Error::InvalidKdf(e.to_string()))?;
        Ok(key)
    }
}

/// The highest key-derivation cost `unlock` pays without asking: stored
/// parameters are not authenticated before deriving, so an edited database
/// could otherwise make every unlock take gigabytes and minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfCeiling {
    /// Memory, in MiB.
    pub memory_mib: u32,
    /// Passes.
    pub time: u32,
}

impl KdfCeiling {
    /// 1024 MiB and 16 passes.
    pub const DEFAULT: KdfCeiling = KdfCeiling {
        memory_mib: 1024,
        time: 16,
    };

    /// Whether `params` cost more than this ceiling.
    pub fn exceeded_by(&self, params: &KdfParams) -> bool {
        params.memory_kib > self.memory_mib.saturating_mul(1024) || params.time > self.time
    }
}

/// The age identity sealed under a passphrase-derived key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedIdentity {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl WrappedIdentity {
    /// Seals `identity` under Argon2id(`passphrase`).
    pub fn wrap(
        identity: &age::x25519::Identity,
        passphrase: &SecretString,
        params: KdfParams,
        vault_id: &[u8; VAULT_ID_LEN],
    ) -> Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let kek = params.derive(passphrase, &salt)?;
        let aad = associated_data(&params, vault_id);
        let secret = identity.to_string();
        let ciphertext = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(kek.as_slice()))
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Crypto("wrapping the identity failed".into()))?;
        Ok(WrappedIdentity {
            params,
            salt,
            nonce,
            ciphertext,
        })
    }

    /// Opens the identity; a wrong passphrase (or any edit) fails the AEAD.
    pub fn unwrap(
        &self,
        passphrase: &SecretString,
        vault_id: &[u8; VAULT_ID_LEN],
    ) -> Result<age::x25519::Identity> {
        self.params.check_stored()?;
        let kek = self.params.derive(passphrase, &self.salt)?;
        let aad = associated_data(&self.params, vault_id);
        let plain = Zeroizing::new(
            XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(kek.as_slice()))
                .decrypt(
                    XNonce::from_slice(&self.nonce),
                    Payload {
                        msg: &self.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| Error::WrongPassphrase)?,
        );
        let text = std::str::from_utf8(&plain)
            .map_err(|_| Error::Corrupt("the unwrapped identity is not text".into()))?;
        age::x25519::Identity::from_str(text)
            .map_err(|_| Error::Corrupt("the unwrapped identity is not an age key".into()))
    }

    /// The KDF parameters this identity is wrapped with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Serialises the record (see the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 12 + SALT_LEN + NONCE_LEN + 4 + self.ciphertext.len());
        out.extend_from_slice(WRAP_MAGIC);
        out.extend_from_slice(&self.params.memory_kib.to_be_bytes());
        out.extend_from_slice(&self.params.time.to_be_bytes());
        out.extend_from_slice(&self.params.parallelism.to_be_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&(self.ciphertext.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses a record; any deviation from the layout is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = || Error::Corrupt("the wrapped identity record is malformed".into());
        let mut r = crate::codec::Reader::new(bytes);
        if r.take(4).ok_or_else(bad)? != WRAP_MAGIC {
            return Err(bad());
        }
        let params = KdfParams {
            memory_kib: r.u32().ok_or_else(bad)?,
            time: r.u32().ok_or_else(bad)?,
            parallelism: r.u32().ok_or_else(bad)?,
        };
        let salt = r.array::<SALT_LEN>().ok_or_else(bad)?;
        let nonce = r.array::<NONCE_LEN>().ok_or_else(bad)?;
        let len = r.u32().ok_or_else(bad)? as usize;
        let ciphertext = r.take(len).ok_or_else(bad)?.to_vec();
        if !r.is_empty() {
            return Err(bad());
        }
        Ok(WrappedIdentity {
            params,
            salt,
            nonce,
            ciphertext,
        })
    }
}

fn associated_data(params: &KdfParams, vault_id: &[u8; VAULT_ID_LEN]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    aad.extend_from_slice(b"envseal v1 wrapped identity");
    aad.extend_from_slice(vault_id);
    aad.extend_from_slice(&params.memory_kib.to_be_bytes());
    aad.extend_from_slice(&params.time.to_be_bytes());
    aad.extend_from_slice(&params.parallelism.to_be_bytes());
    aad
}

/// The unlocked vault keys. Neither `Debug` nor `Clone`: they never leave
/// the process that typed the passphrase, and are wiped on drop.
pub struct Keys {
    pub(crate) identity: age::x25519::Identity,
    pub(crate) mac_key: Zeroizing<[u8; KEY_LEN]>,
}

impl Keys {
    /// Derives the MAC key from the identity with HKDF-SHA256.
    pub(crate) fn new(identity: age::x25519::Identity, vault_id: &[u8; VAULT_ID_LEN]) -> Self {
        let secret = identity.to_string();
        let hk = Hkdf::<Sha256>::new(Some(vault_id), secret.expose_secret().as_bytes());
        let mut mac_key = Zeroizing::new([0u8; KEY_LEN]);
        hk.expand(MAC_INFO, mac_key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Keys { identity, mac_key }
    }

    /// The public half, to compare with the recipient stored in clear.
    pub(crate) fn recipient(&self) -> age::x25519::Recipient {
        self.identity.to_public()
    }

    /// The public key (`age1…`) that values must be encrypted to. Public:
    /// it is stored in clear for `set`.
    pub fn public_key(&self) -> String {
        self.recipient().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn low() -> KdfParams {
        KdfParams::new(8, 1).unwrap()
    }

    #[test]
    fn wrap_round_trips_and_rejects_wrong_passphrase() {
        let id = age::x25519::Identity::generate();
        let vid = [7u8; VAULT_ID_LEN];
        let pass = SecretString::from("correct horse");
        let w = WrappedIdentity::wrap(&id, &pass, low(), &vid).unwrap();
        let back = WrappedIdentity::decode(&w.encode()).unwrap();
        let opened = back.unwrap(&pass, &vid).unwrap();
        assert_eq!(opened.to_public().to_string(), id.to_public().to_string());
        assert!(matches!(
            back.unwrap(&SecretString::from("wrong"), &vid),
            Err(Error::WrongPassphrase)
        ));
        assert!(matches!(
            back.unwrap(&pass, &[8u8; VAULT_ID_LEN]),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn lowered_parameters_do_not_open() {
        let id = age::x25519::Identity::generate();
        let vid = [1u8; VAULT_ID_LEN];
        let pass = SecretString::from("pw");
        let mut w = WrappedIdentity::wrap(&id, &pass, KdfParams::new(9, 1).unwrap(), &vid).unwrap();
        w.params = low();
        assert!(matches!(w.unwrap(&pass, &vid), Err(Error::WrongPassphrase)));
    }

    #[test]
    fn kdf_floor_is_enforced() {
        assert!(KdfParams::new(7, 1).is_err());
        assert!(KdfParams::new(8, 0).is_err());
        assert!(KdfParams::new(8, 1).is_ok());
        assert_eq!(KdfParams::DEFAULT.memory_mib(), 64);
    }

    #[test]
    fn params_record_round_trips_and_costs_compare() {
        let p = KdfParams::new(64, 3).unwrap();
        assert_eq!(KdfParams::from_bytes(&p.to_bytes()), Some(p));
        assert_eq!(KdfParams::from_bytes(&p.to_bytes()[..11]), None);
        assert_eq!(KdfParams::from_bytes(&[0u8; 13]), None);
        let more_memory = KdfParams::new(65, 3).unwrap();
        let more_time = KdfParams::new(64, 4).unwrap();
        assert!(more_memory.exceeds(&p) && more_time.exceeds(&p));
        assert!(!p.exceeds(&p) && !low().exceeds(&p));
        let ceiling = KdfCeiling::DEFAULT;
        assert!(!ceiling.exceeded_by(&KdfParams::new(1024, 16).unwrap()));
        assert!(ceiling.exceeded_by(&KdfParams::new(1025, 1).unwrap()));
        assert!(ceiling.exceeded_by(&KdfParams::new(8, 17).unwrap()));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = WrappedIdentity::decode(&bytes);
        }

        #[test]
        fn decode_rejects_any_truncation(cut in 0usize..100) {
            let id = age::x25519::Identity::generate();
            let w = WrappedIdentity::wrap(&id, &SecretString::from("p"), low(), &[0; VAULT_ID_LEN]).unwrap();
            let enc = w.encode();
            let cut = cut % enc.len();
            proptest::prop_assert!(WrappedIdentity::decode(&enc[..cut]).is_err());
        }
    }
}
