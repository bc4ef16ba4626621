//! G2: a copy of the vault reveals the size bucket of each value, not its
//! length. Values are padded inside the encryption (envelope version 2).

use crate::util;

use util::Env;

/// A value of exactly `len` bytes, distinctive enough for the G1 scan.
fn value_of_len(tag: &str, len: usize) -> String {
    let mut v = util::value(tag);
    assert!(
        len >= v.len(),
        "asked for {len} bytes, the prefix alone is longer"
    );
    v.extend(std::iter::repeat_n('x', len - v.len()));
    v
}

/// The size of a ciphertext's payload: what follows the age header (whose
/// own size varies at random: age adds a "grease" stanza of random length
/// to every header). The payload's size is a function of the plaintext's.
fn payload_len(ciphertext: &[u8]) -> usize {
    let mac_line = ciphertext
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("an age header ends with its MAC line");
    let end = mac_line
        + 1
        + ciphertext[mac_line + 1..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("the MAC line ends");
    ciphertext.len() - (end + 1)
}

#[test]
fn values_in_one_bucket_have_ciphertext_payloads_of_equal_size() {
    let env = Env::initialized();
    // Names of equal length: the name is inside the envelope too.
    let short = value_of_len("short", 40);
    let longer = value_of_len("longer", 180);
    let other_bucket = value_of_len("other", 400);
    env.expect_ok(&env.set("AAAA", &short));
    env.expect_ok(&env.set("BBBB", &longer));
    env.expect_ok(&env.set("CCCC", &other_bucket));
    let (a, b, c) = (
        payload_len(&env.ciphertext("AAAA")),
        payload_len(&env.ciphertext("BBBB")),
        payload_len(&env.ciphertext("CCCC")),
    );
    assert_eq!(
        a, b,
        "a 40-byte and a 180-byte value (one bucket) have ciphertexts of different sizes"
    );
    // age's payload: a 16-byte nonce, then the plaintext plus a 16-byte tag.
    assert_eq!(
        a,
        16 + 256 + 16,
        "the 256-byte bucket is not what is encrypted"
    );
    assert!(
        c > b,
        "a 400-byte value (the next bucket) has a ciphertext no larger ({c} vs {b} bytes)"
    );
    // Padding is invisible to the program that receives the value.
    env.expect_ok(&env.run_pw(&["approve", "AAAA", "CCCC"], b""));
    env.assert_value("AAAA", short.as_bytes());
    env.assert_value("CCCC", other_bucket.as_bytes());
    env.scan_all();
}
