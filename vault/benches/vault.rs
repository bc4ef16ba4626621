//! Library benchmarks for the vault (a plain `main`, not a timed test).
//!
//! Run with `cargo bench -p envseal-vault --bench vault` (or `./scripts/bench`,
//! which also measures the CLI). It reports:
//!
//! 1. `Vault::set` of 10,000 distinct secrets (~40-byte values) in one
//!    process, KDF m=8 MiB t=1 (the KDF plays no part in `set`). Target < 5 s.
//!    For context it also times the age encryption alone (same recipient
//!    type, same envelope size), so the remainder is SQLite + fsync.
//! 2. `Vault::unlock` (Argon2id) at the default parameters (m=64 MiB, t=3,
//!    p=1), several runs: mean and min.
//!
//! Environment:
//! - `ENVSEAL_BENCH_SETS` — number of secrets for step 1 (default 10000).
//! - `ENVSEAL_BENCH_UNLOCKS` — number of unlock runs (default 10).
//!
//! Lines starting with `RESULT ` are `key=value` figures for `scripts/bench`.

use std::io::Write as _;
use std::time::{Duration, Instant};

use envseal_vault::{KdfParams, SecretName, SetOutcome, Vault};
use secrecy::{SecretSlice, SecretString};

fn env_usize(key: &str, default: usize) -> usize {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{key} must be a number, not {v:?}")),
        Err(_) => default,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A ~40-byte printable value, distinct per index.
fn value(i: usize) -> Vec<u8> {
    format!("sk-bench-{i:08}-abcdefghijklmnopqrstuvw").into_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn bench_set(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let vdir = dir.path().join("vault");
    let pass = SecretString::from("bench passphrase".to_owned());
    let params = KdfParams::new(8, 1).expect("kdf params");
    let mut vault = Vault::create(&vdir, &pass, params).expect("create vault");

    // Prepare inputs outside the timed loop.
    let names: Vec<SecretName> = (0..n)
        .map(|i| SecretName::new(&format!("BENCH_SECRET_{i:05}")).expect("name"))
        .collect();
    let values: Vec<SecretSlice<u8>> = (0..n).map(|i| SecretSlice::from(value(i))).collect();
    println!(
        "set: {n} secrets, value length {} bytes, vault in {}",
        value(0).len(),
        vdir.display()
    );

    let mut each = Vec::with_capacity(n);
    let start = Instant::now();
    for (name, val) in names.iter().zip(&values) {
        let t = Instant::now();
        let outcome = vault
            .set(name, val, false, &envseal_vault::audit::Record::default())
            .expect("set");
        each.push(t.elapsed());
        assert_eq!(outcome, SetOutcome::Created);
    }
    let total = start.elapsed();
    each.sort_unstable();
    let mean = total / n as u32;
    println!(
        "set: total {:.3} s, {:.0} sets/s, mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (target: total < 5 s)",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        ms(mean),
        ms(percentile(&each, 0.50)),
        ms(percentile(&each, 0.99)),
        ms(*each.last().expect("n > 0")),
    );
    println!(
        "RESULT lib_set_n={n} lib_set_total_s={:.3} lib_set_mean_ms={:.3} lib_set_p50_ms={:.3} lib_set_p99_ms={:.3}",
        total.as_secs_f64(),
        ms(mean),
        ms(percentile(&each, 0.50)),
        ms(percentile(&each, 0.99)),
    );

    // Sanity: everything is there, and listing is cheap in-process.
    let t = Instant::now();
    let listed = vault.list().expect("list");
    let list_time = t.elapsed();
    assert_eq!(listed.len(), n);
    println!(
        "list (library, in-process): {} entries in {:.3} ms",
        listed.len(),
        ms(list_time)
    );
    println!("RESULT lib_list_ms={:.3}", ms(list_time));

    // Breakdown: the age encryption alone (what `set` does before SQLite).
    // Same recipient type (X25519) and roughly the same plaintext size as an
    // envelope (name + value + framing).
    let recipient = age::x25519::Identity::generate().to_public();
    let plaintext = vec![0x41u8; value(0).len() + "BENCH_SECRET_00000".len() + 16];
    let t = Instant::now();
    for _ in 0..n {
        let ct = age::encrypt(&recipient, &plaintext).expect("age encrypt");
        std::hint::black_box(ct);
    }
    let enc = t.elapsed();
    println!(
        "breakdown: age X25519 encrypt alone x{n}: {:.3} s ({:.3} ms each); \
         remainder (SQLite transaction + WAL fsync + checks): {:.3} s ({:.3} ms each)",
        enc.as_secs_f64(),
        ms(enc) / n as f64,
        (total.saturating_sub(enc)).as_secs_f64(),
        ms(total.saturating_sub(enc)) / n as f64,
    );
    println!(
        "RESULT lib_age_encrypt_total_s={:.3} lib_set_rest_total_s={:.3}",
        enc.as_secs_f64(),
        total.saturating_sub(enc).as_secs_f64()
    );
    drop(vault);
}

fn bench_unlock(runs: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let vdir = dir.path().join("vault");
    let pass = SecretString::from("bench passphrase".to_owned());
    let t = Instant::now();
    let vault = Vault::create(&vdir, &pass, KdfParams::DEFAULT).expect("create vault");
    println!(
        "unlock: vault created with default KDF (m={} MiB, t={}) in {:.1} ms",
        vault.kdf_params().memory_mib(),
        vault.kdf_params().time(),
        ms(t.elapsed())
    );
    // One untimed warm-up (first touch of the 64 MiB allocation).
    drop(vault.unlock(&pass).expect("unlock"));
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let keys = vault.unlock(&pass).expect("unlock");
        times.push(t.elapsed());
        drop(keys);
    }
    let sum: Duration = times.iter().sum();
    let mean = sum / runs as u32;
    let min = *times.iter().min().expect("runs > 0");
    let max = *times.iter().max().expect("runs > 0");
    let mean_s = mean.as_secs_f64();
    let var = times
        .iter()
        .map(|d| (d.as_secs_f64() - mean_s).powi(2))
        .sum::<f64>()
        / (runs.max(2) - 1) as f64;
    println!(
        "unlock (Argon2id m=64 MiB t=3 p=1) x{runs}: mean {:.1} ms ± {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(mean),
        var.sqrt() * 1e3,
        ms(min),
        ms(max)
    );
    println!(
        "RESULT unlock_runs={runs} unlock_mean_ms={:.1} unlock_sd_ms={:.1} unlock_min_ms={:.1} unlock_max_ms={:.1}",
        ms(mean),
        var.sqrt() * 1e3,
        ms(min),
        ms(max)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let sets = env_usize("ENVSEAL_BENCH_SETS", 10_000).max(1);
    let unlocks = env_usize("ENVSEAL_BENCH_UNLOCKS", 10).max(1);
    if cfg!(debug_assertions) {
        println!("warning: built without optimisations; figures are not representative");
    }
    bench_set(sets);
    std::io::stdout().flush().ok();
    bench_unlock(unlocks);
}
