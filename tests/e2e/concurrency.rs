//! Many writers at once, and writers killed with SIGKILL mid-`set`: the
//! vault stays consistent and nothing that was reported stored is lost.

use crate::util;

use std::process::Stdio;
use std::sync::Mutex;

use util::{Env, value};

fn integrity_ok(env: &Env) {
    let check: String = env
        .sqlite()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn concurrent_sets_all_land() {
    const WORKERS: usize = 8;
    const EACH: usize = 200;
    let env = Env::initialized();
    let outputs = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let env = &env;
            let outputs = &outputs;
            s.spawn(move || {
                for i in 0..EACH {
                    let name = format!("W{w}_S{i}");
                    let v = value(&name);
                    let mut c = env.command();
                    c.args(["set", &name]).stdin(Stdio::piped());
                    let mut child = c.spawn().unwrap();
                    use std::io::Write as _;
                    child.stdin.take().unwrap().write_all(v.as_bytes()).unwrap();
                    let out = child.wait_with_output().unwrap();
                    outputs.lock().unwrap().push((name, v, out));
                }
            });
        }
    });
    let outputs = outputs.into_inner().unwrap();
    for (_, v, _) in &outputs {
        env.remember(v.as_bytes());
    }
    for (name, _, out) in outputs {
        let r = env.record(format!("set {name}"), out);
        env.expect_ok(&r);
    }
    let names = env.names();
    assert_eq!(
        names.len(),
        WORKERS * EACH,
        "some concurrent sets were lost"
    );
    integrity_ok(&env);
}

#[test]
fn sigkill_during_sets_leaves_vault_consistent() {
    let env = Env::initialized();
    let before = value("before");
    env.set_approved("BEFORE", &before);
    // How long one `set` takes on this machine right now (other tests may
    // be loading it): kills are spread over twice that, so that some land
    // in every phase of a `set` and some sets complete, whatever the load.
    let lifetime = (0..3)
        .map(|i| {
            let start = std::time::Instant::now();
            env.expect_ok(&env.set(&format!("WARMUP{i}"), &value("warmup")));
            start.elapsed()
        })
        .max()
        .unwrap();
    let mut completed = Vec::new();
    let mut killed = 0;
    for i in 0..300u32 {
        let name = format!("K{i}");
        let v = value(&name);
        env.remember(v.as_bytes());
        let mut c = env.command();
        c.args(["set", &name]).stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write as _;
            let _ = child.stdin.take().unwrap().write_all(v.as_bytes());
        }
        // Spread the kill over the whole life of a `set` (start-up, open,
        // encrypt, commit) and a little beyond.
        std::thread::sleep(lifetime * 2 * ((i * 7919) % 1000) / 1000);
        let _ = child.kill(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        let ok = out.status.success();
        if !ok {
            killed += 1;
        }
        let r = env.record(format!("set {name} (killed at random)"), out);
        if ok {
            completed.push(name);
        } else {
            assert_eq!(
                r.code,
                None,
                "a `set` failed on its own: {}",
                env.redact(&r.stderr())
            );
        }
    }
    assert!(
        killed > 0 && !completed.is_empty(),
        "kills: {killed}, completed: {}",
        completed.len()
    );

    integrity_ok(&env);
    let names = env.names();
    for name in &completed {
        assert!(
            names.contains(name),
            "{name} was reported stored but is missing"
        );
    }
    // The endorsed state is intact: approving everything present works,
    // and no temporary files were left behind.
    let mut args = vec!["approve"];
    args.extend(names.iter().map(String::as_str));
    let r = env.run_pw(&args, b"");
    env.expect_ok(&r);
    env.assert_value("BEFORE", before.as_bytes());
    for entry in std::fs::read_dir(&env.home).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name.starts_with("vault.db"),
            "stray file {name} in the vault directory"
        );
    }
}
