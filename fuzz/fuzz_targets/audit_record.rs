//! An audit record's and a checkpoint's body; a decoded record must
//! re-encode to the same bytes (one canonical encoding).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = envseal_vault::audit::Record::decode(data) {
        assert_eq!(r.encode(), data);
    }
    let _ = envseal_vault::audit::decode_checkpoint(data);
});
