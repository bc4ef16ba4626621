//! A value's envelope as stored in the database (name-bound ciphertext).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = envseal_vault::SecretName::new("FUZZ").unwrap();
    let _ = envseal_vault::envelope::decode(data, &name);
});
