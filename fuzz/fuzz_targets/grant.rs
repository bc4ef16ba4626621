//! A grant's stored encoding; a decoded grant must re-encode to the same
//! bytes, except for the older ESG1/ESG2 versions it still reads.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = envseal_policy::Grant::decode(data)
        && data.starts_with(b"ESG3")
    {
        assert_eq!(g.encode(), data);
    }
});
