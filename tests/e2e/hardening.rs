//! The CLI's own process hardening, attacked by a same-user process.
//!
//! envseal makes itself non-dumpable before it reads a passphrase or a
//! value. Here an unprivileged user (created with `useradd`; CI runs as
//! root) runs `envseal set` and, while it holds part of a value in memory,
//! a second process of the *same* user tries to read it through
//! `/proc/PID/environ`, `/proc/PID/mem`, `/proc/PID/fd/0`, ptrace and
//! `process_vm_readv`. As a control, the same attacks against an ordinary
//! process of that user must succeed — otherwise the test proves nothing.
//!
//! The attacker is this test binary re-executed as that user with
//! `ENVSEAL_ATTACK_PID` set (a harness-less self re-exec, as birdcage does).

use crate::util;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::probe;
use util::user::{as_user, attacker_user, give_vault_to, runnable_copy};
use util::{Env, value};

const ATTACK_ENV: &str = "ENVSEAL_ATTACK_PID";

/// Runs every attack against `pid` from this process; returns what worked.
fn attack(pid: i32) -> BTreeMap<&'static str, String> {
    use nix::sys::uio::{RemoteIoVec, process_vm_readv};
    use nix::unistd::Pid;
    let mut out = BTreeMap::new();
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
    };
    out.insert(
        "environ",
        outcome(fs::read(format!("/proc/{pid}/environ")).map(drop)),
    );
    out.insert(
        "mem",
        outcome(fs::File::open(format!("/proc/{pid}/mem")).map(drop)),
    );
    out.insert(
        "fd0",
        outcome(fs::File::open(format!("/proc/{pid}/fd/0")).map(drop)),
    );
    let target = Pid::from_raw(pid);
    let traced = nix::sys::ptrace::attach(target);
    if traced.is_ok() {
        let _ = nix::sys::wait::waitpid(target, None);
        let _ = nix::sys::ptrace::detach(target, None);
    }
    out.insert("ptrace", outcome(traced.map_err(std::io::Error::from)));
    // Permission is checked before the address: EPERM means "denied",
    // EFAULT means "allowed, bad address".
    let mut buf = [0u8; 16];
    let remote = [RemoteIoVec {
        base: 0x1000,
        len: 16,
    }];
    let r = process_vm_readv(target, &mut [std::io::IoSliceMut::new(&mut buf)], &remote);
    out.insert(
        "process_vm_readv",
        match r {
            Ok(_) => "ok".into(),
            Err(nix::errno::Errno::EPERM) => "errno 1".into(),
            Err(e) => format!("allowed ({e})"),
        },
    );
    out
}

/// Re-executes this test binary as the attacker user against `pid`;
/// `test` is the test whose body starts with the attacker branch.
fn attack_as_user(uid: u32, gid: u32, me: &Path, test: &str, pid: u32) -> BTreeMap<String, String> {
    let out = as_user(uid, gid, me)
        .args([
            "--exact",
            &util::qualified(module_path!(), test),
            "--nocapture",
        ])
        .env(ATTACK_ENV, pid.to_string())
        .output()
        .unwrap();
    util::user::attack_result(&out, "ATTACK-RESULT ")
}

fn wait_until_blocked(pid: u32, exe_name: &str) {
    let start = Instant::now();
    loop {
        let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if exe.to_string_lossy().ends_with(exe_name) && status.contains("State:\tS") {
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
        assert!(start.elapsed() < util::PATIENCE, "{exe_name} never blocked");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// In the re-executed attacker: attack and report, then exit.
fn attacker_branch() {
    if let Ok(pid) = std::env::var(ATTACK_ENV) {
        let results = attack(pid.parse().unwrap());
        println!("ATTACK-RESULT {}", serde_json::to_string(&results).unwrap());
        std::process::exit(0);
    }
}

fn assert_all_denied(what: &str, results: &BTreeMap<String, String>) {
    for (attack, result) in results {
        assert!(
            result.starts_with("errno"),
            "{attack} on {what} succeeded: {result}"
        );
    }
}

fn assert_all_allowed(what: &str, results: &BTreeMap<String, String>) {
    for attack in ["environ", "mem", "fd0", "ptrace"] {
        assert_eq!(
            results[attack], "ok",
            "control: {attack} should work on {what}"
        );
    }
    assert!(
        results["process_vm_readv"].starts_with("allowed"),
        "control: {results:?}"
    );
}

/// The attacker user (uid, gid), a vault, a directory that user can read,
/// and copies of envseal and of this test binary in it.
fn stage() -> (u32, u32, Env, tempfile::TempDir, PathBuf, PathBuf) {
    let (uid, gid) = attacker_user();
    let env = Env::initialized();
    let bins = tempfile::tempdir().unwrap();
    fs::set_permissions(bins.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let envseal = runnable_copy(&util::bin(), bins.path());
    let me = runnable_copy(&std::env::current_exe().unwrap(), bins.path());
    (uid, gid, env, bins, envseal, me)
}

/// G7: the program `envseal exec` launches — in every tier — and envseal
/// itself while it waits, resist a same-user attacker; the same program
/// run directly by that user does not (the control). In the namespaced
/// tiers the sandbox's PID 1 is attacked too, and `doctor`, run as that
/// user, must have said G7 holds.
#[test]
fn launched_program_is_unreadable_by_the_same_user() {
    attacker_branch();
    let test = "launched_program_is_unreadable_by_the_same_user";
    let tiers = ["none", "hardened", "lockdown"];
    attack_each_tier(attacker_user(), None, &tiers, test);
}

/// G7 by the other route, for a user with a supplementary group and no
/// subordinate ids: the sealed copy's group is one the sandbox does not
/// map (the program then runs from that copy, not at its real path).
#[test]
fn the_group_route_keeps_the_program_unreadable_by_the_same_user() {
    attacker_branch();
    let test = "the_group_route_keeps_the_program_unreadable_by_the_same_user";
    let (uid, gid, group) = util::user::group_only_user();
    attack_each_tier((uid, gid), Some(group), &["hardened", "lockdown"], test);
}

/// Pins the probe in each of `tiers`, gives the vault to the user
/// `uid`:`gid`, runs each as that user (with `group` as its only
/// supplementary group, or none) and attacks it, envseal and the
/// sandbox's PID 1 as the same user; each attack must fail, while the
/// same attacks on the probe run directly (the control) succeed.
fn attack_each_tier((uid, gid): (u32, u32), group: Option<u32>, tiers: &[&str], test: &str) {
    let (_, _, env, bins, envseal, me) = stage();
    assert!(
        Path::new("/usr/bin/newuidmap").exists(),
        "the namespaced tiers need newuidmap (package uidmap); ./scripts/test installs it"
    );
    let prog = probe::install(&bins.path().join("probe"), probe::bytes());
    let token = value("g7");
    env.set_approved("TOKEN", &token);
    // In each tier a probe of root's (larger than its loader: the sandbox
    // runs it from its own file, with an execute-only copy of its loader)
    // and, in the namespaced tiers, one of the user's (run from a copy).
    let rounds = tiers.iter().flat_map(|&tier| {
        let owners: &[bool] = if tier == "none" {
            &[false]
        } else {
            &[false, true]
        };
        owners.iter().map(move |&users| (tier, users))
    });
    let programs: Vec<(&str, bool, PathBuf)> = rounds
        .enumerate()
        .map(|(i, (tier, users))| {
            let mut bytes = probe::variant(b'a' + i as u8);
            if !users {
                bytes.resize(bytes.len() + 1024 * 1024, 0);
            }
            let copy = probe::install(&bins.path().join(format!("probe-{tier}-{i}")), &bytes);
            if users {
                std::os::unix::fs::chown(&copy, Some(uid), Some(gid)).unwrap();
            }
            let r = env.run_pw(
                &probe::with_env(&[
                    "allow",
                    "--secret",
                    "TOKEN",
                    "--tier",
                    tier,
                    "--",
                    copy.to_str().unwrap(),
                ]),
                b"",
            );
            env.expect_ok(&r);
            (tier, users, copy)
        })
        .collect();
    give_vault_to(&env, uid, gid);

    // What doctor tells this user (in its groups).
    let groups = match group {
        None => "--clear-groups".to_owned(),
        Some(g) => format!("--groups={g}"),
    };
    let doctor = Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            groups.clone(),
        ])
        .arg("--")
        .arg(&envseal)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let doctor: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();

    // Control: the probe, run directly by the same user.
    let control = probe::Sleeping::start(
        as_user(uid, gid, &prog)
            .env("PROBE_MODE", "sleep")
            .stdout(Stdio::piped()),
    );
    let on_control = attack_as_user(uid, gid, &me, test, control.child.id());
    drop(control.signal_and_finish(nix::sys::signal::Signal::SIGKILL));
    assert_all_allowed("the same program run directly", &on_control);

    for (tier, users, copy) in &programs {
        let (tier, users) = (*tier, *users);
        // Victim: the user runs the pinned program through envseal.
        let victim = probe::Sleeping::start(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"exec "$@" 3<"$PASSFILE""#)
                .arg("sh")
                .arg("setpriv")
                .args([
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    groups.clone(),
                    "--".into(),
                ])
                .arg(&envseal)
                .args(["exec", "--verbose", "--passphrase-fd", "3", "--"])
                .arg(copy)
                .current_dir(bins.path())
                .env("ENVSEAL_HOME", &env.home)
                .env("PASSFILE", env.passfile())
                .env("PROBE_MODE", "sleep")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let report = victim.report();
        assert!(
            report.env_is("TOKEN", token.as_bytes()),
            "{tier}: the program did not get TOKEN"
        );
        assert_eq!(
            report.dumpable, 0,
            "{tier}: the launched program is dumpable"
        );
        let envseal_pid = victim.child.id();
        // The program's pid as the attacker sees it: in the namespaced
        // tiers it runs under the sandbox's PID 1, a child of envseal.
        let mut targets = vec![("envseal exec", envseal_pid)];
        if tier == "none" {
            targets.push(("the launched program", report.pid as u32));
        } else {
            let pid1 = child_of(envseal_pid);
            targets.push(("the sandbox's PID 1", pid1));
            targets.push(("the launched program", child_of(pid1)));
        }
        let attacks: Vec<_> = targets
            .iter()
            .map(|(what, pid)| (*what, attack_as_user(uid, gid, &me, test, *pid)))
            .collect();
        let out = victim.signal_and_finish(nix::sys::signal::Signal::SIGTERM);
        let r = env.record(
            format!(
                "exec probe, tier {tier}, group {group:?}, the user's own: {users} \
                 (as the attacker's user)"
            ),
            out,
        );
        env.expect_code(&r, 3);
        // --verbose told the user G7 holds (in tier None: non-dumpable).
        let said_g7: &[&str] = match (tier, group, users) {
            ("none", _, _) => &["non-dumpable program (execute-only copy): yes"],
            (_, None, false) => &[
                "the program runs from a copy owned by a subordinate id",
                "the program runs at its real path, from",
                "runs from an execute-only copy, which keeps the program non-dumpable",
            ],
            (_, None, true) => &[
                "the program runs from a copy owned by a subordinate id",
                "the program runs at its real path: its verified copy is mounted",
            ],
            (_, Some(_), _) => &["the program runs from a copy whose group"],
        };
        env.expect_stderr(&r, said_g7);
        for (what, results) in &attacks {
            assert_all_denied(
                &format!("{what} (tier {tier}, the user's: {users})"),
                results,
            );
        }
        let said = doctor["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tier"] == tier)
            .unwrap();
        assert_eq!(
            said["g7"], true,
            "doctor, as this user, says G7 fails in {tier}: {said}"
        );
        assert_eq!(
            said["real_path"],
            tier != "none" && group.is_none(),
            "doctor, as this user, on real paths in {tier}: {said}"
        );
    }
}

/// The single child of `pid` (from /proc/*/status).
fn child_of(pid: u32) -> u32 {
    let deadline = Instant::now() + util::PATIENCE;
    loop {
        let children: Vec<u32> = fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| {
                fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|s| {
                    s.lines().any(|l| {
                        l.strip_prefix("PPid:")
                            .is_some_and(|v| v.trim() == pid.to_string())
                    })
                })
            })
            .collect();
        if let [only] = children[..] {
            return only;
        }
        assert!(Instant::now() < deadline, "{pid} has children {children:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cli_memory_is_unreadable_by_the_same_user() {
    attacker_branch();
    let (uid, gid, env, _bins, envseal, me) = stage();
    give_vault_to(&env, uid, gid);

    // Victim: `envseal set HELD`, blocked reading stdin with half a value.
    let held = value("held");
    env.remember(held.as_bytes());
    let (first, second) = held.split_at(held.len() / 2);
    env.remember(first.as_bytes());
    let mut victim = as_user(uid, gid, &envseal)
        .args(["set", "HELD"])
        .env("ENVSEAL_HOME", &env.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = victim.stdin.take().unwrap();
    stdin.write_all(first.as_bytes()).unwrap();
    stdin.flush().unwrap();
    wait_until_blocked(victim.id(), "envseal");
    let test = "cli_memory_is_unreadable_by_the_same_user";
    let on_envseal = attack_as_user(uid, gid, &me, test, victim.id());

    // Control: the same attacks on an ordinary process of the same user.
    let mut control = as_user(uid, gid, Path::new("/bin/sleep"))
        .arg("30")
        .spawn()
        .unwrap();
    wait_until_blocked(control.id(), "sleep");
    let on_control = attack_as_user(uid, gid, &me, test, control.id());
    let _ = control.kill();
    let _ = control.wait();

    stdin.write_all(second.as_bytes()).unwrap();
    drop(stdin);
    let out = victim.wait_with_output().unwrap();
    let r = env.record("set HELD (as the attacker's user)".into(), out);
    env.expect_ok(&r);

    assert_all_allowed("a dumpable process", &on_control);
    assert_all_denied("envseal", &on_envseal);
    env.expect_ok(&env.run_pw(&["approve", "HELD"], b""));
    env.assert_value("HELD", held.as_bytes());
}
