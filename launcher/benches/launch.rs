//! Launch benchmarks (a plain `main`, not a timed test).
//!
//! Run with `cargo bench -p envseal-launcher --bench launch` (or
//! `./scripts/bench exec`). The in-process exec path of tier None —
//! open, copy into a memfd, seal, SHA-256 of the sealed copy, fork,
//! `execveat`, wait — against running the same file directly with
//! `std::process::Command`, interleaved in one run so noise hits both:
//!
//! 1. a small program (`/bin/true`);
//! 2. a 100 MB program (`/bin/true` with 100 MB appended: it still runs);
//! 3. the load step alone (copy + seal + hash) of the 100 MB program, and
//!    SHA-256 throughput (`sha2` picks SHA-NI when the CPU has it).
//!
//! No Argon2id here: that is the unlock, measured in the vault bench.
//! `ENVSEAL_BENCH_RUNS` (default 300) sets the runs per small case.
//! Lines starting with `RESULT ` are `key=value` figures for scripts/bench.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use envseal_launcher::{Exit, Launch, Role, Tier, load, run};
use sha2::{Digest as _, Sha256};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn launch(path: &str, sha: &[u8; 32]) {
    launch_in(path, sha, Tier::None);
}

fn launch_in(path: &str, sha: &[u8; 32], tier: Tier) {
    let executable = load(path, sha, Role::Executable).expect("load");
    let exit = run(Launch {
        executable,
        script: None,
        argv0: "true".into(),
        args: Vec::new(),
        env: Vec::new(),
        secrets: Vec::new(),
        tier,
        may_exec: Vec::new(),
        verbose: false,
        masking: envseal_launcher::Masking::Never,
        writable: Default::default(),
        confine: None,
    })
    .expect("run");
    assert_eq!(exit, Exit::Code(0));
}

fn direct(path: &str) {
    let st = Command::new(path).env_clear().status().expect("spawn");
    assert!(st.success());
}

/// Runs `a` and `b` alternately `runs` times; medians in ms.
fn pair(runs: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..runs.min(10) {
        a();
        b();
    }
    for _ in 0..runs {
        let t = Instant::now();
        a();
        ta.push(t.elapsed());
        let t = Instant::now();
        b();
        tb.push(t.elapsed());
    }
    (median(ta), median(tb))
}

fn sha_of(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}

fn main() {
    let runs: usize = std::env::var("ENVSEAL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let truth = std::fs::canonicalize("/bin/true").unwrap();
    let small = truth.to_str().unwrap();
    let small_sha = sha_of(&truth);

    let dir = tempfile::tempdir().unwrap();
    let big_path = dir.path().join("true-100mb");
    let mut big = std::fs::read(&truth).unwrap();
    big.resize(big.len() + 100 * 1024 * 1024, 0);
    std::fs::write(&big_path, &big).unwrap();
    std::fs::set_permissions(
        &big_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let big_sha: [u8; 32] = Sha256::digest(&big).into();
    let big_s = big_path.to_str().unwrap();

    let t = Instant::now();
    let reps = 5;
    for _ in 0..reps {
        std::hint::black_box(Sha256::digest(&big));
    }
    let sha_gbps = (big.len() * reps) as f64 / t.elapsed().as_secs_f64() / 1e9;
    drop(big);

    let (small_env, small_direct) = pair(runs, || launch(small, &small_sha), || direct(small));
    println!(
        "small (/bin/true, x{runs}): launcher median {small_env:.3} ms, direct {small_direct:.3} ms, \
         added {:.3} ms",
        small_env - small_direct
    );
    let big_runs = (runs / 10).max(10);
    let (big_env, big_direct) = pair(big_runs, || launch(big_s, &big_sha), || direct(big_s));
    println!(
        "100 MB (x{big_runs}): launcher median {big_env:.1} ms, direct {big_direct:.1} ms, \
         added {:.1} ms",
        big_env - big_direct
    );
    let mut loads = Vec::new();
    for _ in 0..big_runs {
        let t = Instant::now();
        drop(load(big_s, &big_sha, Role::Executable).unwrap());
        loads.push(t.elapsed());
    }
    let big_load = median(loads);
    println!("100 MB load alone (copy + seal + hash): median {big_load:.1} ms");
    println!("SHA-256 throughput: {sha_gbps:.2} GB/s");
    let tier_runs = (runs / 3).max(20);
    let mut medians = Vec::new();
    for tier in [Tier::None, Tier::Hardened, Tier::Lockdown] {
        let mut t = Vec::new();
        for i in 0..tier_runs + 5 {
            let start = Instant::now();
            launch_in(small, &small_sha, tier);
            if i >= 5 {
                t.push(start.elapsed());
            }
        }
        medians.push(median(t));
    }
    println!(
        "tiers (/bin/true, x{tier_runs}): none {:.3} ms, hardened {:.3} ms, lockdown {:.3} ms",
        medians[0], medians[1], medians[2]
    );
    println!(
        "RESULT small_launch_ms={small_env:.3} small_direct_ms={small_direct:.3} \
         big_launch_ms={big_env:.1} big_direct_ms={big_direct:.1} big_load_ms={big_load:.1} \
         sha_gbps={sha_gbps:.2} runs={runs} big_runs={big_runs} \
         tier_none_ms={:.3} tier_hardened_ms={:.3} tier_lockdown_ms={:.3} tier_runs={tier_runs}",
        medians[0], medians[1], medians[2]
    );
}
