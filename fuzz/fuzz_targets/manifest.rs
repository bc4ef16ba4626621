//! The authenticated manifest of endorsed state.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = envseal_vault::manifest::Manifest::decode(data, &[7; envseal_vault::VAULT_ID_LEN]);
});
