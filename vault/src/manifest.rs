//! The endorsed-state manifest: which approved secrets exist, with which
//! ciphertext digests, and which grants exist, with which encoded-grant
//! digests — authenticated with an HMAC key derived from the identity
//! (G4). Only a holder of the passphrase can produce a valid one.
//!
//! ```text
//! "ESM2" | vault_id [16] | generation u64
//!        | count u32 | (name_len u8 | name | sha256 [32])*        secrets
//!        | count u32 | (key_len u16 | key | sha256 [32])*         grants
//! ```
//!
//! Entries are strictly sorted by name (key), so every manifest has
//! exactly one encoding and the decoder rejects anything else. Vaults
//! made before grants existed hold "ESM1" manifests: the same without the
//! grants section; they are read as having no grants and rewritten as
//! "ESM2" at the next endorsed change.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use crate::codec::Reader;
use crate::keys::VAULT_ID_LEN;
use envseal_core::SecretName;

const MAGIC: &[u8; 4] = b"ESM2";
const MAGIC_V1: &[u8; 4] = b"ESM1";

/// SHA-256 of a stored ciphertext.
pub type CiphertextDigest = [u8; 32];

/// Digest of a ciphertext as recorded in the manifest.
pub fn digest(ciphertext: &[u8]) -> CiphertextDigest {
    Sha256::digest(ciphertext).into()
}

/// The endorsed state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Incremented on every endorsed change.
    pub generation: u64,
    /// Approved secrets and the digest of their ciphertext.
    pub secrets: BTreeMap<SecretName, CiphertextDigest>,
    /// Grants, by program key, and the digest of their encoding.
    pub grants: BTreeMap<String, [u8; 32]>,
}

/// A manifest that is not well formed.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

impl Manifest {
    /// The canonical encoding.
    pub fn encode(&self, vault_id: &[u8; VAULT_ID_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.secrets.len() * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(vault_id);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&(self.secrets.len() as u32).to_be_bytes());
        for (name, digest) in &self.secrets {
            out.push(name.as_str().len() as u8);
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(digest);
        }
        out.extend_from_slice(&(self.grants.len() as u32).to_be_bytes());
        for (key, digest) in &self.grants {
            out.extend_from_slice(&(key.len() as u16).to_be_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(digest);
        }
        out
    }

    /// Parses the canonical encoding, for this vault only.
    pub fn decode(bytes: &[u8], vault_id: &[u8; VAULT_ID_LEN]) -> Result<Self, Malformed> {
        let mut r = Reader::new(bytes);
        let with_grants = match r.take(4) {
            Some(m) if m == MAGIC => true,
            Some(m) if m == MAGIC_V1 => false,
            _ => return Err(Malformed),
        };
        if r.take(VAULT_ID_LEN) != Some(vault_id.as_slice()) {
            return Err(Malformed);
        }
        let generation = r.u64().ok_or(Malformed)?;
        let count = r.u32().ok_or(Malformed)?;
        let mut secrets = BTreeMap::new();
        let mut last: Option<SecretName> = None;
        for _ in 0..count {
            let len = r.u8().ok_or(Malformed)? as usize;
            let name = r.take(len).ok_or(Malformed)?;
            let name = std::str::from_utf8(name)
                .ok()
                .and_then(|n| SecretName::new(n).ok())
                .ok_or(Malformed)?;
            if last.as_ref().is_some_and(|l| l >= &name) {
                return Err(Malformed);
            }
            let digest = r.array::<32>().ok_or(Malformed)?;
            last = Some(name.clone());
            secrets.insert(name, digest);
        }
        let mut grants = BTreeMap::new();
        if with_grants {
            let count = r.u32().ok_or(Malformed)?;
            let mut last: Option<String> = None;
            for _ in 0..count {
                let len = r.u16().ok_or(Malformed)? as usize;
                let key = r.take(len).ok_or(Malformed)?;
                let key = String::from_utf8(key.to_vec()).map_err(|_| Malformed)?;
                if key.is_empty() || last.as_ref().is_some_and(|l| l >= &key) {
                    return Err(Malformed);
                }
                let digest = r.array::<32>().ok_or(Malformed)?;
                last = Some(key.clone());
                grants.insert(key, digest);
            }
        }
        if !r.is_empty() {
            return Err(Malformed);
        }
        Ok(Manifest {
            generation,
            secrets,
            grants,
        })
    }
}

/// HMAC-SHA256 of an encoded manifest.
pub fn mac(key: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// Checks a MAC in constant time.
pub fn verify_mac(key: &[u8; 32], body: &[u8], tag: &[u8]) -> bool {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(body);
    m.verify_slice(tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VID: [u8; VAULT_ID_LEN] = [3; VAULT_ID_LEN];

    fn manifest_strategy() -> impl Strategy<Value = Manifest> {
        (
            any::<u64>(),
            proptest::collection::btree_map(
                "[A-Za-z_][A-Za-z0-9_]{0,40}".prop_map(|s| SecretName::new(&s).unwrap()),
                any::<[u8; 32]>(),
                0..20,
            ),
            proptest::collection::btree_map("/[a-z/._-]{1,40}", any::<[u8; 32]>(), 0..5),
        )
            .prop_map(|(generation, secrets, grants)| Manifest {
                generation,
                secrets,
                grants,
            })
    }

    proptest! {
        #[test]
        fn round_trips(m in manifest_strategy()) {
            prop_assert_eq!(Manifest::decode(&m.encode(&VID), &VID), Ok(m));
        }

        #[test]
        fn malformed_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Manifest::decode(&bytes, &VID);
        }

        #[test]
        fn any_single_bit_flip_breaks_the_mac(m in manifest_strategy(), bit in any::<usize>()) {
            let key = [9u8; 32];
            let mut body = m.encode(&VID);
            let tag = mac(&key, &body);
            let bit = bit % (body.len() * 8);
            body[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!verify_mac(&key, &body, &tag));
        }

        #[test]
        fn truncation_is_rejected(m in manifest_strategy(), cut in any::<usize>()) {
            let body = m.encode(&VID);
            let cut = cut % body.len();
            prop_assert!(Manifest::decode(&body[..cut], &VID).is_err());
        }
    }

    #[test]
    fn a_v1_manifest_reads_as_having_no_grants() {
        let mut m = Manifest::default();
        m.secrets.insert(SecretName::new("A").unwrap(), [7; 32]);
        m.generation = 5;
        let mut v1 = m.encode(&VID);
        v1[..4].copy_from_slice(MAGIC_V1);
        v1.truncate(v1.len() - 4); // no grants section in ESM1
        assert_eq!(Manifest::decode(&v1, &VID), Ok(m.clone()));
        // ...and an ESM1 body with a grants section is not canonical.
        let mut bad = m.encode(&VID);
        bad[..4].copy_from_slice(MAGIC_V1);
        assert_eq!(Manifest::decode(&bad, &VID), Err(Malformed));
    }

    #[test]
    fn unsorted_or_foreign_is_rejected() {
        let mut m = Manifest::default();
        m.secrets.insert(SecretName::new("A").unwrap(), [0; 32]);
        m.secrets.insert(SecretName::new("B").unwrap(), [1; 32]);
        let body = m.encode(&VID);
        assert!(Manifest::decode(&body, &[4; VAULT_ID_LEN]).is_err());
        // Swap the two entries' names in place: A..B becomes B..A.
        let mut swapped = body.clone();
        let first = 4 + VAULT_ID_LEN + 8 + 4 + 1;
        let second = first + 1 + 32 + 1;
        swapped.swap(first, second);
        assert_eq!(Manifest::decode(&swapped, &VID), Err(Malformed));
    }
}
