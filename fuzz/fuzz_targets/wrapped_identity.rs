//! The wrapped identity stored in `meta` (KDF parameters, salt, nonce,
//! ciphertext).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = envseal_vault::WrappedIdentity::decode(data);
});
