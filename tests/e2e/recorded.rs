//! Issue 13: no exec without its record. The record of an exec is on the
//! disk before the program gets its secrets; where it cannot be written —
//! a full filesystem, a read-only vault — the exec is refused (exit 74)
//! and the program never starts. Every run that did happen is in the log.
//!
//! The vault lives on a small tmpfs of its own (mounting needs root: CI
//! runs as root).

use crate::util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use util::{Env, value};

/// The exit code of an exec refused because it could not be recorded.
const UNRECORDED: i32 = 74;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a small tmpfs for the vault and needs root (CI runs as root)"
        );
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("envseal-test")
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount a tmpfs at {}", at.display());
        Mount(at.to_owned())
    }

    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot remount {} {options}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` until it has no room left.
fn fill(dir: &Path) {
    use std::io::Write as _;
    let mut f = fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

/// The exec records of `program` in the log.
fn execs_of(env: &Env, program: &str) -> usize {
    let r = env.run(&["audit", "--json"], b"");
    env.expect_ok(&r);
    let log: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    log["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "exec" && e["program"] == program)
        .count()
}

/// A vault on its own tmpfs, a secret, and a pinned program that leaves
/// a mark (outside the tmpfs) named by its argument.
fn scene() -> (Env, Mount, PathBuf, PathBuf) {
    let env = Env::new();
    let mount = Mount::tmpfs(&env.home, "2m");
    env.expect_ok(&env.run_pw(&["init", "--kdf-memory", "8", "--kdf-time", "1"], b""));
    env.set_approved("TOKEN", &value("recorded"));
    let marks = env.tmp.path().join("marks");
    fs::create_dir(&marks).unwrap();
    let prog = env.script(
        "mark",
        &format!(
            "#!/bin/sh\n[ -n \"$TOKEN\" ] && touch {}/\"$1\"\n",
            marks.display()
        ),
    );
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", prog.to_str().unwrap()]));
    (env, mount, prog, marks)
}

/// Runs the program until an exec is refused as unrecorded (the disk
/// being full), checking that every run that happened was recorded and
/// that the refused one did not run. `via` is "broker" or "in-process".
fn until_refused(env: &Env, prog: &Path, marks: &Path, via: &str) {
    let program = prog.to_str().unwrap();
    let before = execs_of(env, program);
    let mut ran = 0;
    for i in 0..200 {
        let tag = format!("{via}-{i}");
        let r = if via == "broker" {
            env.run(&["exec", "--", program, &tag], b"")
        } else {
            env.exec(&["--", program, &tag])
        };
        if r.code == Some(UNRECORDED) {
            env.expect_stderr(
                &r,
                &["nothing was run", "audit record", "could not be written"],
            );
            assert!(
                !marks.join(&tag).exists(),
                "{via}: the refused exec ran its program"
            );
            assert_eq!(
                execs_of(env, program),
                before + ran,
                "{via}: a run is missing from the log"
            );
            eprintln!("{via}: refused after {ran} recorded run(s) on the full disk");
            return;
        }
        env.expect_ok(&r);
        assert!(marks.join(&tag).exists(), "{via}: exit 0 but no run");
        ran += 1;
        assert_eq!(
            execs_of(env, program),
            before + ran,
            "{via}: a run that happened is not in the log"
        );
    }
    panic!("{via}: 200 execs on a full disk, none refused: the test did not fill it");
}

#[test]
fn a_full_disk_refuses_exec_rather_than_running_it_unrecorded() {
    let (env, _mount, prog, marks) = scene();
    env.expect_ok(&env.run_pw(&["unlock"], b""));
    fill(&env.home);
    until_refused(&env, &prog, &marks, "broker");
    env.expect_ok(&env.run(&["lock"], b""));
    until_refused(&env, &prog, &marks, "in-process");
    env.scan_all();
}

#[test]
fn a_read_only_vault_refuses_exec() {
    let (env, mount, prog, marks) = scene();
    let program = prog.to_str().unwrap();
    // The control: it runs while the vault is writable.
    env.expect_ok(&env.exec(&["--", program, "writable"]));
    assert!(marks.join("writable").exists());
    mount.remount("ro");
    let r = env.exec(&["--", program, "read-only"]);
    assert!(
        !marks.join("read-only").exists(),
        "the program ran with a read-only vault: {}",
        env.redact(&r.stderr())
    );
    env.expect_code(&r, UNRECORDED);
    env.expect_stderr(&r, &["cannot be written", "nothing was run"]);
    // Reading what is there still works for nothing that would need a
    // record: the person is told why rather than shown a SQLite error.
    let r = env.run(&["list"], b"");
    env.expect_code(&r, UNRECORDED);
    mount.remount("rw");
    env.scan_all();
}
