//! The namespaced tiers, Hardened and Lockdown, attacked from inside: the
//! pinned probe (tests/probe/probe.c, `PROBE_MODE=sandbox`) tries what a
//! compromised or steered program would, and reports each result. Every
//! run is its own `envseal exec` process, so each sandbox is built from
//! scratch in its own process.

use crate::util;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use util::probe::{self, Report};
use util::{Env, Run, code, value};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A temporary directory that is not under /tmp (Lockdown hides the
/// host's /tmp; the tree this test runs from may well be under it).
fn outside_tmp() -> tempfile::TempDir {
    let dir = Path::new("/var/tmp");
    assert!(
        dir.is_dir(),
        "these Lockdown tests need /var/tmp (a directory outside /tmp) to exist"
    );
    tempfile::tempdir_in(dir).unwrap()
}

/// The probe's `check NAME RESULT` lines.
fn checks(r: &Report) -> BTreeMap<String, String> {
    r.lines
        .iter()
        .filter_map(|l| l.strip_prefix("check "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The seccomp filter's refusals, as the probe saw them: EPERM for the
/// denied calls, a `MFD_NOEXEC_SEAL` memfd allowed, ENOSYS for `clone3`.
fn assert_seccomp(c: &BTreeMap<String, String>) {
    for call in [
        "ptrace",
        "unshare",
        "mount",
        "keyctl",
        "memfd_plain",
        "clone_newuser",
        "tiocsti",
    ] {
        assert_eq!(
            c.get(call).map(String::as_str),
            Some("errno 1"),
            "{call}: {c:?}"
        );
    }
    assert_eq!(c["memfd_noexec"], "ok", "{c:?}");
    assert_eq!(c["clone3"], "errno 38", "{c:?}");
}

/// A vault with TOKEN (env) and CERT (file) approved, and the probe
/// pinned with them at `tier`.
fn pinned(tier: &str) -> (Env, PathBuf, String, String) {
    let env = Env::initialized();
    let (token, cert) = (value("token"), value("cert"));
    env.set_approved("TOKEN", &token);
    env.set_approved("CERT", &cert);
    let prog = probe::install(&env.bin_dir().join("probe"), probe::bytes());
    // Lockdown writes its working directory only when the grant says so.
    let write = if tier == "lockdown" {
        "--write-cwd"
    } else {
        "--args-any"
    };
    let r = env.allow(&probe::with_env(&[
        "--secret",
        "TOKEN",
        "--file",
        "CERT",
        "--tier",
        tier,
        write,
        "--",
        s(&prog),
    ]));
    env.expect_ok(&r);
    env.expect_stdout(&r, &[&format!("tier        {tier}")]);
    (env, prog, token, cert)
}

fn run_in(env: &Env, prog: &Path, cwd: &Path, vars: &[(&str, String)], label: &str) -> Run {
    let mut c = env.command_pw(&["exec", "--", s(prog)]);
    c.current_dir(cwd).stdin(Stdio::null());
    for (k, v) in vars {
        c.env(k, v);
    }
    env.run_command(label.into(), c, b"")
}

#[test]
fn lockdown_confines_the_program() {
    let (env, prog, token, cert) = pinned("lockdown");
    // Not under /tmp, which the sandbox replaces with its own.
    let base = outside_tmp();
    let work = base.path().join("work");
    let outside = base.path().join("outside");
    fs::create_dir_all(&work).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let port = server.local_addr().unwrap().port();
    // The probe writes files of this name only when given one: its own to
    // this test, so tests running at once never share a host path.
    let mark = util::unique_name("written-by-probe");
    let marker = Path::new("/tmp").join(&mark);
    // Where the sandbox puts the secret file, in its own /run; the host's
    // path of that name must not gain it.
    let secret_in_sandbox = format!("{}/CERT_FILE", envseal_launcher::SECRET_DIR);
    let host_had_it = Path::new(&secret_in_sandbox).exists();

    let r = run_in(
        &env,
        &prog,
        &work,
        &[
            ("PROBE_MODE", "sandbox".into()),
            ("PROBE_TCP", port.to_string()),
            ("PROBE_OUTSIDE", s(&outside).into()),
            ("PROBE_HOST_PID", std::process::id().to_string()),
            ("PROBE_MARK", mark.clone()),
        ],
        "exec probe (lockdown, sandbox checks)",
    );
    env.expect_ok(&r);
    let rep = Report::parse(&r.stdout);
    let c = checks(&rep);
    let is = |k: &str, v: &str| {
        assert_eq!(
            c.get(k).map(String::as_str),
            Some(v),
            "check {k}: all checks {c:?}"
        );
    };
    // The secrets arrived: TOKEN in the environment, CERT as a file.
    assert!(rep.env_is("TOKEN", token.as_bytes()));
    assert!(rep.env_is("CERT_FILE", secret_in_sandbox.as_bytes()));
    assert_eq!(
        rep.files.get("CERT_FILE"),
        Some(&probe::fnv(cert.as_bytes()))
    );
    // No network: nothing reached the server on the host's loopback.
    assert!(c["connect"].starts_with("errno"), "connect: {c:?}");
    assert!(server.accept().is_err(), "a connection reached the host");
    // Writes only in the working directory and the private /tmp.
    is("write_outside", "errno 13");
    assert!(!outside.join(&mark).exists());
    is("write_cwd", "ok");
    assert!(work.join(&mark).exists(), "the cwd write did not land");
    is("write_tmp", "ok");
    assert!(
        !marker.exists(),
        "the private /tmp leaked onto the host's /tmp"
    );
    // Host processes are invisible; /tmp and HOME are private and empty,
    // but for the probe itself at its real path when that is in /tmp (a
    // program smaller than its loader runs from a copy mounted there).
    is("proc_host_pid", "errno 2");
    let mut tmp: Vec<&str> = c["tmp"].trim_matches(['[', ']']).split(' ').collect();
    tmp.sort_unstable();
    let mut expected = vec!["home", mark.as_str()];
    expected.extend(
        prog.strip_prefix("/tmp")
            .ok()
            .and_then(|p| p.iter().next())
            .and_then(|c| c.to_str()),
    );
    expected.sort_unstable();
    assert_eq!(tmp, expected);
    is("home", "[]");
    assert!(rep.env_is("HOME", envseal_launcher::PRIVATE_HOME.as_bytes()));
    // The secret file: 0400, on a read-only tmpfs, not on the host.
    is("secret_mode", "400");
    is("secret_fs", "tmpfs ro");
    is("secret_noexec", "yes");
    assert!(c["secret_write"].starts_with("errno"), "{c:?}");
    assert_eq!(
        Path::new(&secret_in_sandbox).exists(),
        host_had_it,
        "the secret file appeared on the host"
    );
    // No other program runs; the dangerous system calls are refused.
    is("exec_sh", "errno 13");
    assert_seccomp(&c);
    is("hostname", "envseal");
    assert_eq!(rep.pid, 2, "the program is PID 2 of its own PID namespace");
    // Nothing of envseal's (the passphrase's fd 3 included) reaches it.
    assert_eq!(rep.fds, [0, 1, 2].into(), "descriptors: {:?}", rep.fds);

    // From / the working directory would make everything writable: refused.
    let r = run_in(
        &env,
        &prog,
        Path::new("/"),
        &[],
        "exec probe (lockdown, from /)",
    );
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["the grant makes / writable, and it holds"]);
    assert!(r.stdout.is_empty());
}

#[test]
fn lockdown_may_exec_only_what_the_grant_pins() {
    let (env, _, _, _) = pinned("lockdown");
    // Not under /tmp: Lockdown replaces /tmp, so the host's is not visible.
    let base = outside_tmp();
    let dir = base.path();
    let sh = fs::read(fs::canonicalize("/bin/sh").unwrap()).unwrap();
    let helper = probe::install(&dir.join("helper-sh"), &sh);
    let prog = probe::install(&dir.join("launcher-probe"), &probe::variant(b'M'));
    let r = env.allow(&probe::with_env(&[
        "--secret",
        "TOKEN",
        "--tier",
        "lockdown",
        "--write-cwd",
        "--may-exec",
        s(&helper),
        "--",
        s(&prog),
    ]));
    env.expect_ok(&r);
    env.expect_stdout(&r, &["may exec", s(&helper)]);
    // Its working directory is writable: one that holds no vault.
    let here = base.path().join("work");
    fs::create_dir_all(&here).unwrap();
    let vars = |exe: &Path| {
        vec![
            ("PROBE_MODE", "sandbox".to_owned()),
            ("PROBE_EXEC", s(exe).to_owned()),
        ]
    };
    // The pinned helper runs; /bin/sh (not pinned) still does not.
    let r = run_in(
        &env,
        &prog,
        &here,
        &vars(&helper),
        "exec probe (may-exec helper)",
    );
    env.expect_ok(&r);
    assert_eq!(checks(&Report::parse(&r.stdout))["exec_sh"], "ok");
    let r = run_in(
        &env,
        &prog,
        &here,
        &vars(Path::new("/bin/sh")),
        "exec probe (may-exec /bin/sh)",
    );
    env.expect_ok(&r);
    assert_eq!(checks(&Report::parse(&r.stdout))["exec_sh"], "errno 13");
    // Swapped by rename *after* the launch checked it: the rule is on the
    // inode that was hashed, so the file now at that path does not run.
    let gate = base.path().join("gate");
    fs::create_dir_all(&gate).unwrap();
    let mut c = env.command_pw(&["exec", "--", s(&prog)]);
    c.current_dir(&gate)
        .stdin(Stdio::null())
        .env("PROBE_MODE", "sandbox")
        .env("PROBE_EXEC", s(&helper))
        .env("PROBE_GATE", "1");
    let child = c.spawn().unwrap();
    let started = gate.join("probe-started");
    assert!(
        util::wait_for(|| started.exists()),
        "the probe never started"
    );
    let mut swapped = sh.clone();
    swapped.extend_from_slice(b"swapped");
    let tmp = dir.join("helper-sh.new");
    probe::install(&tmp, &swapped);
    fs::rename(&tmp, &helper).unwrap();
    fs::write(gate.join("probe-go"), b"").unwrap();
    let r = env.record(
        "exec probe (helper swapped after the launch)".into(),
        child.wait_with_output().unwrap(),
    );
    env.expect_ok(&r);
    assert_eq!(checks(&Report::parse(&r.stdout))["exec_sh"], "errno 13");
    probe::install(&helper, &sh);

    // The helper changed since it was pinned: nothing runs.
    let mut changed = sh.clone();
    changed.push(0);
    probe::install(&helper, &changed);
    let r = run_in(
        &env,
        &prog,
        &here,
        &vars(&helper),
        "exec probe (helper changed)",
    );
    env.expect_code(&r, code::CHANGED);
    assert!(r.stdout.is_empty());
    // Below Lockdown a --may-exec program is still checked against its
    // pin at every launch: changed, nothing runs; put back, it runs (and
    // so may /bin/sh: nothing restricts exec there).
    probe::install(&helper, &sh);
    for tier in ["none", "hardened"] {
        let r = env.allow(&probe::with_env(&[
            "--secret",
            "TOKEN",
            "--tier",
            tier,
            "--may-exec",
            s(&helper),
            "--",
            s(&prog),
        ]));
        env.expect_ok(&r);
        probe::install(&helper, &changed);
        let r = run_in(
            &env,
            &prog,
            &here,
            &vars(&helper),
            "exec probe (helper changed, below lockdown)",
        );
        env.expect_code(&r, code::CHANGED);
        assert!(r.stdout.is_empty(), "tier {tier}: the program ran");
        probe::install(&helper, &sh);
        let r = run_in(
            &env,
            &prog,
            &here,
            &vars(Path::new("/bin/sh")),
            "exec probe (below lockdown)",
        );
        env.expect_ok(&r);
        assert_eq!(
            checks(&Report::parse(&r.stdout))["exec_sh"],
            "ok",
            "tier {tier}"
        );
    }
    // A --may-exec program someone other than root can change is refused
    // at launch: the check before the launch would not hold until it ran.
    std::os::unix::fs::chown(&helper, Some(65534), Some(65534)).unwrap();
    let r = run_in(
        &env,
        &prog,
        &here,
        &vars(&helper),
        "exec probe (helper not root's)",
    );
    assert_ne!(r.code, Some(0));
    env.expect_stderr(
        &r,
        &["can be changed by someone other than root", s(&helper)],
    );
    assert!(r.stdout.is_empty());
}

#[test]
fn hardened_applies_seccomp_and_a_pid_1_that_reaps() {
    let (env, prog, token, cert) = pinned("hardened");
    let here = env.tmp.path().to_owned();
    let r = run_in(
        &env,
        &prog,
        &here,
        &[("PROBE_MODE", "sandbox".into())],
        "exec probe (hardened)",
    );
    env.expect_ok(&r);
    let rep = Report::parse(&r.stdout);
    let c = checks(&rep);
    assert!(rep.env_is("TOKEN", token.as_bytes()));
    // Hardened delivers files on its own tmpfs, as Lockdown does.
    assert_eq!(
        rep.files.get("CERT_FILE"),
        Some(&probe::fnv(cert.as_bytes()))
    );
    let in_sandbox = format!("{}/CERT_FILE", envseal_launcher::SECRET_DIR);
    assert!(rep.env_is("CERT_FILE", in_sandbox.as_bytes()));
    assert_seccomp(&c);
    assert_eq!(c["hostname"], "envseal");
    assert_eq!(rep.pid, 2);
    // 0, 1 and 2: nothing else of envseal's reaches it.
    assert_eq!(rep.fds.len(), 3, "descriptors: {:?}", rep.fds);

    // --verbose says what applied, and (as root) that G7 does not hold.
    let mut c = env.command_pw(&["exec", "--verbose", "--", s(&prog)]);
    c.stdin(Stdio::null());
    let r = env.run_command("exec --verbose probe (hardened)".into(), c, b"");
    env.expect_ok(&r);
    env.expect_stderr(
        &r,
        &["tier hardened", "namespaces: user, PID", "seccomp refuses"],
    );
    if nix::unistd::geteuid().is_root() {
        env.expect_stderr(
            &r,
            &["NOT out of reach of your other processes: envseal runs as root"],
        );
    }

    let r = run_in(
        &env,
        &prog,
        &here,
        &[("PROBE_MODE", "orphan".into())],
        "exec probe (orphan)",
    );
    env.expect_ok(&r);
    assert_eq!(checks(&Report::parse(&r.stdout))["orphan_reaped"], "yes");

    let r = run_in(
        &env,
        &prog,
        &here,
        &[("PROBE_EXIT", "42".into())],
        "exec probe (exit 42)",
    );
    env.expect_code(&r, 42);
    let r = run_in(
        &env,
        &prog,
        &here,
        &[("PROBE_MODE", "raise".into())],
        "exec probe (raise)",
    );
    env.expect_code(&r, 128 + 15);
    probe::assert_sigterm_reaches_the_program(&env, &prog);
}

/// User namespaces refused (as a kernel with them disabled would): the
/// namespaced tiers fail with the documented code and nothing runs; tier
/// None still works.
#[test]
fn namespaced_tiers_fail_clearly_without_user_namespaces() {
    let (env, prog, _, _) = pinned("hardened");
    let plain = probe::install(&env.bin_dir().join("plain"), &probe::variant(b'N'));
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", s(&plain)]));
    // The filter applies to this thread and what it starts.
    let (hardened, none) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                deny_new_user_namespaces();
                (env.exec(&["--", s(&prog)]), env.exec(&["--", s(&plain)]))
            })
            .join()
            .unwrap()
    });
    env.expect_code(&hardened, code::UNSUPPORTED);
    env.expect_stderr(
        &hardened,
        &["cannot build the sandbox", "namespace", "envseal doctor"],
    );
    assert!(hardened.stdout.is_empty(), "the program ran");
    env.expect_ok(&none);
    assert_eq!(Report::parse(&none.stdout).variant, "N");
}

/// A seccomp filter on the calling thread: `clone` and `unshare` with
/// `CLONE_NEWUSER` fail with EPERM.
fn deny_new_user_namespaces() {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    let newuser = libc::CLONE_NEWUSER as u64;
    let rule = |arg| {
        vec![
            SeccompRule::new(vec![
                SeccompCondition::new(
                    arg,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(newuser),
                    newuser,
                )
                .unwrap(),
            ])
            .unwrap(),
        ]
    };
    let filter = SeccompFilter::new(
        [(libc::SYS_clone, rule(0)), (libc::SYS_unshare, rule(0))]
            .into_iter()
            .collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    let program: seccompiler::BpfProgram = filter.try_into().unwrap();
    seccompiler::apply_filter(&program).unwrap();
}

#[test]
fn doctor_reports_what_this_machine_supports() {
    let env = Env::new();
    let r = env.run(&["doctor", "--json"], b"");
    env.expect_ok(&r);
    let json: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let checks: BTreeMap<String, bool> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    for name in [
        "kernel",
        "user namespaces",
        "lockdown namespaces",
        "id maps",
        "subordinate ids",
        "supplementary group",
        "landlock",
        "seccomp",
        "memfd_secret",
        "tmpfs noswap",
        "yama",
        "install",
    ] {
        assert!(checks.contains_key(name), "doctor lacks {name}");
    }
    let tiers = json["tiers"].as_array().unwrap();
    let tier = |n: &str| tiers.iter().find(|t| t["tier"] == n).unwrap().clone();
    // Accurate: where doctor says Lockdown works, a Lockdown run works
    // (the other tests run one); where it says not, exec must refuse.
    let lockdown_ok = tier("lockdown")["ok"].as_bool().unwrap();
    assert_eq!(
        lockdown_ok,
        checks["user namespaces"]
            && checks["lockdown namespaces"]
            && checks["landlock"]
            && checks["seccomp"]
            && checks["id maps"],
    );
    assert!(
        lockdown_ok,
        "this test machine should support Lockdown: {json}"
    );
    if nix::unistd::geteuid().is_root() {
        assert_eq!(tier("hardened")["g7"], false, "as root G7 cannot hold");
    }
    let human = env.run(&["doctor"], b"");
    env.expect_ok(&human);
    env.expect_stdout(&human, &["tier lockdown", "landlock"]);
}
