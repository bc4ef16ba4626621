//! Bytes on the broker's socket: frames, then requests.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while let Ok(Some(frame)) = envseal_proto::read_frame(&mut input) {
        let _ = envseal_proto::parse_request(&frame);
    }
    let _ = envseal_proto::parse_request(data);
});
