//! The envelope: what is age-encrypted for each secret.
//!
//! ```text
//! "ESE1" | name_len u8 | name | value
//! ```
//!
//! Naming the secret inside the ciphertext means a ciphertext moved to
//! another row (renamed or swapped) opens to the wrong name and is refused.

use std::io::Read as _;

use secrecy::{ExposeSecret, SecretSlice};
use zeroize::Zeroizing;

use crate::codec::Reader;
use crate::error::{Error, Result};
use crate::name::SecretName;

/// Largest value accepted, in bytes (1 MiB).
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

const MAGIC: &[u8; 4] = b"ESE1";

/// Builds the plaintext envelope for `name` = `value`.
pub fn encode(name: &SecretName, value: &SecretSlice<u8>) -> Zeroizing<Vec<u8>> {
    let value = value.expose_secret();
    let mut out = Zeroizing::new(Vec::with_capacity(5 + name.as_str().len() + value.len()));
    out.extend_from_slice(MAGIC);
    // Names are at most 128 bytes (checked by `SecretName`).
    out.push(name.as_str().len() as u8);
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(value);
    out
}

/// Why an envelope did not open as the expected secret.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not an envelope at all.
    Malformed,
    /// A well-formed envelope for a different secret.
    WrongName(SecretName),
}

/// Parses an envelope and checks that it names `expected`.
pub fn decode(bytes: &[u8], expected: &SecretName) -> Result<SecretSlice<u8>, EnvelopeError> {
    let mut r = Reader::new(bytes);
    if r.take(4) != Some(MAGIC.as_slice()) {
        return Err(EnvelopeError::Malformed);
    }
    let len = r.u8().ok_or(EnvelopeError::Malformed)? as usize;
    let name = r.take(len).ok_or(EnvelopeError::Malformed)?;
    let name = std::str::from_utf8(name)
        .ok()
        .and_then(|n| SecretName::new(n).ok())
        .ok_or(EnvelopeError::Malformed)?;
    let value = r.remaining();
    if value.len() > MAX_VALUE_LEN {
        return Err(EnvelopeError::Malformed);
    }
    if &name != expected {
        return Err(EnvelopeError::WrongName(name));
    }
    Ok(SecretSlice::from(value.to_vec()))
}

/// Encrypts the envelope for `name` to the vault's recipient.
pub(crate) fn seal(
    recipient: &age::x25519::Recipient,
    name: &SecretName,
    value: &SecretSlice<u8>,
) -> Result<Vec<u8>> {
    let plain = encode(name, value);
    age::encrypt(recipient, &plain).map_err(|e| Error::Crypto(e.to_string()))
}

/// Decrypts a ciphertext stored under `name` and checks its envelope.
pub(crate) fn open(
    identity: &age::x25519::Identity,
    name: &SecretName,
    ciphertext: &[u8],
) -> Result<SecretSlice<u8>> {
    let tampered = |what: &str| Error::Tampered(format!("secret {name}: {what}"));
    let decryptor = age::Decryptor::new_buffered(ciphertext)
        .map_err(|_| tampered("its ciphertext is malformed"))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|_| tampered("its ciphertext does not open with this vault's key"))?;
    // Reserve up front so the plaintext is never reallocated (and copied).
    let mut plain = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    reader
        .read_to_end(&mut plain)
        .map_err(|_| tampered("its ciphertext fails authentication"))?;
    decode(&plain, name).map_err(|e| match e {
        EnvelopeError::Malformed => tampered("its envelope is malformed"),
        EnvelopeError::WrongName(other) => tampered(&format!(
            "its ciphertext belongs to secret {other} (rows swapped or renamed)"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name_strategy() -> impl Strategy<Value = SecretName> {
        "[A-Za-z_][A-Za-z0-9_]{0,127}".prop_map(|s| SecretName::new(&s).unwrap())
    }

    proptest! {
        #[test]
        fn round_trips(name in name_strategy(), value in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let enc = encode(&name, &SecretSlice::from(value.clone()));
            let back = decode(&enc, &name).unwrap();
            prop_assert_eq!(back.expose_secret(), value.as_slice());
        }

        #[test]
        fn other_name_is_refused(a in name_strategy(), b in name_strategy(), value in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assume!(a != b);
            let enc = encode(&a, &SecretSlice::from(value));
            prop_assert_eq!(decode(&enc, &b).err(), Some(EnvelopeError::WrongName(a)));
        }

        #[test]
        fn malformed_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), name in name_strategy()) {
            let _ = decode(&bytes, &name);
        }
    }

    #[test]
    fn seal_then_open() {
        let id = age::x25519::Identity::generate();
        let a = SecretName::new("A").unwrap();
        let b = SecretName::new("B").unwrap();
        let ct = seal(&id.to_public(), &a, &SecretSlice::from(b"v".to_vec())).unwrap();
        assert_eq!(open(&id, &a, &ct).unwrap().expose_secret(), b"v");
        let err = open(&id, &b, &ct).err().unwrap().to_string();
        assert!(err.contains("belongs to secret A"), "{err}");
        let mut flipped = ct.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(open(&id, &a, &flipped), Err(Error::Tampered(_))));
        let other = age::x25519::Identity::generate();
        assert!(matches!(open(&other, &a, &ct), Err(Error::Tampered(_))));
    }
}
