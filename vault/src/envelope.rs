//! The envelope: what is age-encrypted for each secret.
//!
//! ```text
//! "ESE2" | name_len u8 | name | value_len u32 | value | zero padding
//! "ESE1" | name_len u8 | name | value                      (read only)
//! ```
//!
//! Naming the secret inside the ciphertext means a ciphertext moved to
//! another row (renamed or swapped) opens to the wrong name and is refused.
//!
//! Version 2 pads the whole envelope with zeros to a size bucket (the next
//! power of two, at least [`MIN_BUCKET`] bytes), so a copy of the vault
//! reveals the bucket of each value's length, not the length. New values are
//! written as version 2; version 1 (written before padding) is still read.

use std::io::Read as _;

use secrecy::{ExposeSecret, SecretSlice};
use zeroize::Zeroizing;

use crate::codec::Reader;
use crate::error::{Error, Result};
use envseal_core::SecretName;

/// Largest value accepted, in bytes (1 MiB).
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// Smallest padded envelope, in bytes: every value up to about 120 bytes
/// (less the name) looks the same.
pub const MIN_BUCKET: usize = 256;

const MAGIC_V1: &[u8; 4] = b"ESE1";
const MAGIC_V2: &[u8; 4] = b"ESE2";

/// The padded size of an envelope whose unpadded size is `len`.
pub fn bucket(len: usize) -> usize {
    len.max(MIN_BUCKET).next_power_of_two()
}

/// Builds the plaintext envelope for `name` = `value` (version 2, padded).
pub fn encode(name: &SecretName, value: &SecretSlice<u8>) -> Zeroizing<Vec<u8>> {
    let value = value.expose_secret();
    let name = name.as_str().as_bytes();
    let size = bucket(4 + 1 + name.len() + 4 + value.len());
    // Allocated once at its final size: no reallocation leaves copies behind.
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    out.extend_from_slice(MAGIC_V2);
    // Names are at most 128 bytes (checked by `SecretName`).
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    // Values are at most 1 MiB (checked before sealing), far below u32::MAX.
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(size, 0);
    out
}

/// The version 1 envelope (unpadded), as vaults made before padding hold.
#[cfg(test)]
fn encode_v1(name: &SecretName, value: &SecretSlice<u8>) -> Zeroizing<Vec<u8>> {
    let value = value.expose_secret();
    let mut out = Zeroizing::new(Vec::new());
    out.extend_from_slice(MAGIC_V1);
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

/// Parses an envelope (version 1 or 2) and checks that it names `expected`.
/// A version 2 envelope must be exactly its bucket's size, its length field
/// must fit, and its padding must be zeros.
pub fn decode(bytes: &[u8], expected: &SecretName) -> Result<SecretSlice<u8>, EnvelopeError> {
    let mut r = Reader::new(bytes);
    let padded = match r.take(4) {
        Some(m) if m == MAGIC_V2 => true,
        Some(m) if m == MAGIC_V1 => false,
        _ => return Err(EnvelopeError::Malformed),
    };
    let len = r.u8().ok_or(EnvelopeError::Malformed)? as usize;
    let name = r.take(len).ok_or(EnvelopeError::Malformed)?;
    let name = std::str::from_utf8(name)
        .ok()
        .and_then(|n| SecretName::new(n).ok())
        .ok_or(EnvelopeError::Malformed)?;
    let value = if padded {
        let value_len = r.u32().ok_or(EnvelopeError::Malformed)? as usize;
        if value_len > MAX_VALUE_LEN {
            return Err(EnvelopeError::Malformed);
        }
        let value = r.take(value_len).ok_or(EnvelopeError::Malformed)?;
        let unpadded = bytes.len() - r.remaining().len();
        if bytes.len() != bucket(unpadded) || r.remaining().iter().any(|&b| b != 0) {
            return Err(EnvelopeError::Malformed);
        }
        value
    } else {
        r.remaining()
    };
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

/// Why a stored ciphertext did not open as its secret.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenFailure {
    /// Not an age file.
    Malformed,
    /// Encrypted to another key (for one, set while the vault's public
    /// key was replaced).
    OtherKey,
    /// The age payload fails authentication (altered).
    Unauthentic,
    /// Decrypted, but not an envelope of this secret.
    Envelope(EnvelopeError),
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenFailure::Malformed => f.write_str("its ciphertext is malformed"),
            OpenFailure::OtherKey => {
                f.write_str("its ciphertext does not open with this vault's key")
            }
            OpenFailure::Unauthentic => f.write_str("its ciphertext fails authentication"),
            OpenFailure::Envelope(EnvelopeError::Malformed) => {
                f.write_str("its envelope is malformed")
            }
            OpenFailure::Envelope(EnvelopeError::WrongName(other)) => write!(
                f,
                "its ciphertext belongs to secret {other} (rows swapped or renamed)"
            ),
        }
    }
}

/// Decrypts a ciphertext stored under `name` and checks its envelope.
pub(crate) fn open(
    identity: &age::x25519::Identity,
    name: &SecretName,
    ciphertext: &[u8],
) -> Result<SecretSlice<u8>> {
    open_checked(identity, name, ciphertext)
        .map_err(|why| Error::Tampered(format!("secret {name}: {why}")))
}

/// Like [`open`], saying why a ciphertext does not open.
pub(crate) fn open_checked(
    identity: &age::x25519::Identity,
    name: &SecretName,
    ciphertext: &[u8],
) -> Result<SecretSlice<u8>, OpenFailure> {
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|_| OpenFailure::Malformed)?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|_| OpenFailure::OtherKey)?;
    // Reserve up front so the plaintext is never reallocated (and copied).
    let mut plain = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    reader
        .read_to_end(&mut plain)
        .map_err(|_| OpenFailure::Unauthentic)?;
    decode(&plain, name).map_err(OpenFailure::Envelope)
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
        fn version_1_still_opens(name in name_strategy(), value in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let enc = encode_v1(&name, &SecretSlice::from(value.clone()));
            let back = decode(&enc, &name).unwrap();
            prop_assert_eq!(back.expose_secret(), value.as_slice());
        }

        #[test]
        fn envelopes_are_bucket_sized(name in name_strategy(), len in 0usize..70_000) {
            let enc = encode(&name, &SecretSlice::from(vec![7u8; len]));
            prop_assert!(enc.len() >= MIN_BUCKET);
            prop_assert!(enc.len().is_power_of_two());
            prop_assert!(enc.len() >= 4 + 1 + name.as_str().len() + 4 + len);
            prop_assert!(enc.len() < 2 * (4 + 1 + name.as_str().len() + 4 + len).max(MIN_BUCKET));
        }

        #[test]
        fn any_single_padding_byte_set_is_refused(len in 0usize..600, at in any::<usize>(), bit in 0u8..8) {
            let name = SecretName::new("PAD").unwrap();
            let mut enc = encode(&name, &SecretSlice::from(vec![1u8; len]));
            let start = 4 + 1 + 3 + 4 + len;
            prop_assume!(start < enc.len());
            let at = start + at % (enc.len() - start);
            enc[at] |= 1 << bit;
            prop_assert_eq!(decode(&enc, &name).err(), Some(EnvelopeError::Malformed));
        }

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
    fn bucket_sizes() {
        assert_eq!(bucket(0), 256);
        assert_eq!(bucket(256), 256);
        assert_eq!(bucket(257), 512);
        assert_eq!(bucket(1000), 1024);
        // The largest envelope: a 128-byte name and a 1 MiB value.
        assert_eq!(bucket(4 + 1 + 128 + 4 + MAX_VALUE_LEN), 2 * MAX_VALUE_LEN);
        let name = SecretName::new("A").unwrap();
        let short = encode(&name, &SecretSlice::from(vec![1u8; 1]));
        let longer = encode(&name, &SecretSlice::from(vec![1u8; 200]));
        let next = encode(&name, &SecretSlice::from(vec![1u8; 300]));
        assert_eq!(&short[..4], b"ESE2");
        assert_eq!((short.len(), longer.len(), next.len()), (256, 256, 512));
    }

    #[test]
    fn inconsistent_lengths_are_refused() {
        let name = SecretName::new("LEN").unwrap();
        let good = encode(&name, &SecretSlice::from(vec![5u8; 10]));
        let len_at = 4 + 1 + 3;
        let with_len = |n: u32| {
            let mut e = good.clone();
            e[len_at..len_at + 4].copy_from_slice(&n.to_be_bytes());
            e
        };
        // A length pointing into the padding still decodes (zeros are a
        // value), but not one past the end, nor one over the maximum.
        assert!(decode(&with_len(20), &name).is_ok());
        assert_eq!(
            decode(&with_len(300), &name).err(),
            Some(EnvelopeError::Malformed)
        );
        assert_eq!(
            decode(&with_len(MAX_VALUE_LEN as u32 + 1), &name).err(),
            Some(EnvelopeError::Malformed)
        );
        // Cut short, grown, or missing its length field.
        assert_eq!(
            decode(&good[..good.len() - 1], &name).err(),
            Some(EnvelopeError::Malformed)
        );
        let mut grown = good.clone();
        grown.push(0);
        assert_eq!(decode(&grown, &name).err(), Some(EnvelopeError::Malformed));
        assert_eq!(
            decode(&good[..len_at + 2], &name).err(),
            Some(EnvelopeError::Malformed)
        );
        // An unknown version.
        let mut v3 = good.clone();
        v3[3] = b'3';
        assert_eq!(decode(&v3, &name).err(), Some(EnvelopeError::Malformed));
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
