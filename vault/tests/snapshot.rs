//! Verification reads the manifest and the rows from one snapshot, so a
//! concurrent, legitimate re-signing never looks like tampering.

use envseal_vault::{KdfParams, SecretName, Vault};
use secrecy::{SecretSlice, SecretString};

#[test]
fn verify_during_concurrent_endorsed_writes_sees_no_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let pass = SecretString::from("snapshot test passphrase");
    let name = SecretName::new("ROTATED").unwrap();
    {
        let mut v = Vault::create(dir.path(), &pass, KdfParams::new(8, 1).unwrap()).unwrap();
        let keys = v.unlock(&pass).unwrap();
        v.set(
            &name,
            &SecretSlice::from(b"initial value".to_vec()),
            false,
            &Default::default(),
        )
        .unwrap();
        v.approve(&keys, std::slice::from_ref(&name)).unwrap();
    }
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut v = Vault::open(dir.path()).unwrap();
            let keys = v.unlock(&pass).unwrap();
            for i in 0..150 {
                let value = SecretSlice::from(format!("rotated value {i}").into_bytes());
                v.set_endorsed(&keys, &name, &value, true, &Default::default())
                    .unwrap();
            }
        });
        let v = Vault::open(dir.path()).unwrap();
        let keys = v.unlock(&pass).unwrap();
        while !writer.is_finished() {
            if let Err(e) = v.verify(&keys) {
                panic!("verify reported {e} during legitimate writes");
            }
            if let Err(e) = v.open_value(&keys, &name) {
                panic!("open_value reported {e} during legitimate writes");
            }
        }
    });
}
