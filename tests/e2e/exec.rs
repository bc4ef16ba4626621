//! `allow`, `grants`, `revoke` and `exec`, end to end (G1, G3).
//!
//! The pinned program is the probe (tests/probe/probe.c), which reports
//! what it received as hashes: which bytes ran (its variant marker),
//! which variables it got (and a hash of each value), its arguments, its
//! descriptors. Every run's output is scanned for the values (G1).

use crate::util;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use util::probe::{self, Report, fnv};
use util::terminal::Terminal;
use util::{Env, PASSPHRASE, code, value};

/// A vault with TOKEN (a fresh value tagged `tag`) approved, and the probe
/// installed as `bin/NAME`; granted TOKEN when `grant`.
struct Setup {
    env: Env,
    token: String,
    dir: PathBuf,
    prog: PathBuf,
}

fn setup(tag: &str, name: &str, grant: bool) -> Setup {
    let env = Env::initialized();
    let token = value(tag);
    env.set_approved("TOKEN", &token);
    let dir = env.bin_dir();
    let prog = probe::install(&dir.join(name), probe::bytes());
    if grant {
        env.expect_ok(&env.allow(&probe::with_env(&["--secret", "TOKEN", "--", s(&prog)])));
    }
    Setup {
        env,
        token,
        dir,
        prog,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Rewrites a file in place: same inode, new bytes (same length here).
fn rewrite_in_place(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// Replaces a file by renaming another over it (a new inode).
fn replace_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    probe::install(&tmp, bytes);
    fs::rename(&tmp, path).unwrap();
}

#[test]
fn the_pinned_program_receives_exactly_its_secrets() {
    let env = Env::initialized();
    let prog = probe::install(&env.bin_dir().join("deploy"), probe::bytes());
    let (api, cert, other) = (value("api"), value("cert"), value("other"));
    env.set_approved("API_TOKEN", &api);
    env.set_approved("TLS_CERT", &cert);
    env.set_approved("OTHER", &other);
    let r = env.allow(&[
        "--secret",
        "API_TOKEN=DEPLOY_TOKEN",
        "--file",
        "TLS_CERT",
        "--env",
        "KEEP_ME",
        "--",
        s(&prog),
    ]);
    env.expect_ok(&r);
    // `allow` prints the pinned path and hash, and the environment.
    env.expect_stdout(&r, &["environment PATH=", "KEEP_ME from the caller"]);
    let sha = sha256_hex(&prog);
    env.expect_stdout(&r, &[s(&prog), &sha, "DEPLOY_TOKEN", "TLS_CERT_FILE"]);

    // The caller's own DEPLOY_TOKEN is replaced; the variable the grant
    // names passes, no other.
    let mut c = env.command_pw(&["exec", "--", s(&prog), "one", "two words"]);
    c.env("DEPLOY_TOKEN", "decoy-not-the-secret")
        .env("KEEP_ME", "visible")
        .env("NOT_NAMED", "dropped");
    let r = env.run_command("exec deploy one 'two words'".into(), c, b"");
    env.expect_ok(&r);
    let rep = Report::parse(&r.stdout);
    assert_eq!(rep.variant, "A");
    assert!(
        rep.env_is("DEPLOY_TOKEN", api.as_bytes()),
        "DEPLOY_TOKEN is not the granted value"
    );
    assert!(
        !rep.env.contains_key("API_TOKEN"),
        "the secret came under its own name too"
    );
    assert_eq!(
        rep.files.get("TLS_CERT_FILE"),
        Some(&fnv(cert.as_bytes())),
        "the file secret's contents differ"
    );
    assert!(
        !rep.any_env_is(cert.as_bytes()),
        "a file secret also reached the environment"
    );
    assert!(
        !rep.any_env_is(other.as_bytes()),
        "a secret outside the grant reached the program"
    );
    assert!(!rep.env.contains_key("OTHER"));
    assert!(rep.env_is("KEEP_ME", b"visible"));
    assert!(
        !rep.env.contains_key("NOT_NAMED"),
        "a variable the grant does not name passed"
    );
    assert_eq!(rep.args, ["one", "two words"]);
    // 0, 1, 2 and the secret file: the passphrase's fd 3 did not leak.
    assert_eq!(rep.fds.len(), 4, "descriptors: {:?}", rep.fds);
    assert!(rep.fds.is_superset(&[0, 1, 2].into()));

    // `--secret` narrows the delivered set to a subset of the grant...
    let r = env.exec(&["--secret", "API_TOKEN", "--", s(&prog)]);
    env.expect_ok(&r);
    let rep = Report::parse(&r.stdout);
    assert!(rep.env_is("DEPLOY_TOKEN", api.as_bytes()));
    assert!(!rep.env.contains_key("TLS_CERT_FILE"));
    // ...and cannot widen it.
    let r = env.exec(&["--secret", "OTHER", "--", s(&prog)]);
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["does not give OTHER"]);
    assert!(r.stdout.is_empty(), "the program ran");

    // `grants` lists it, without the passphrase; `--json` too.
    let r = env.run(&["grants", "--json"], b"");
    env.expect_ok(&r);
    let json: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let g = &json["grants"][0];
    assert_eq!(g["program"], s(&prog));
    assert_eq!(g["sha256"], sha.as_str());
    assert_eq!(g["tier"], "none");
    assert_eq!(g["secrets"][0]["name"], "API_TOKEN");
    assert_eq!(g["secrets"][0]["variable"], "DEPLOY_TOKEN");
    assert_eq!(g["secrets"][1]["delivery"], "file");

    // revoke one secret, then the whole grant.
    let r = env.run_pw(&["revoke", s(&prog), "--secret", "TLS_CERT"], b"");
    env.expect_ok(&r);
    let rep = Report::parse(&env.exec(&["--", s(&prog)]).stdout);
    assert!(!rep.env.contains_key("TLS_CERT_FILE"));
    env.expect_ok(&env.run_pw(&["revoke", s(&prog)], b""));
    env.expect_code(&env.exec(&["--", s(&prog)]), code::NOT_GRANTED);
}

fn sha256_hex(path: &Path) -> String {
    util::sha256_hex(&fs::read(path).unwrap())
}

#[test]
fn a_binary_changed_after_allow_is_refused() {
    let Setup { env, dir, prog, .. } = setup("token", "tool", true);
    let pinned = sha256_hex(&prog);
    let b = probe::variant(b'B');

    // Rewritten in place: the same inode, other bytes.
    let inode = fs::metadata(&prog).unwrap().ino();
    rewrite_in_place(&prog, &b);
    assert_eq!(fs::metadata(&prog).unwrap().ino(), inode);
    let r = env.exec(&["--", s(&prog)]);
    env.expect_code(&r, code::CHANGED);
    env.expect_stderr(
        &r,
        &[
            "changed since it was pinned",
            &format!("expected sha256 {pinned}"),
            &sha256_hex(&prog),
        ],
    );
    assert!(r.stdout.is_empty(), "the changed program ran");

    // Put back, it runs again: the pin is the content.
    rewrite_in_place(&prog, probe::bytes());
    env.expect_ok(&env.exec(&["--", s(&prog)]));

    // Replaced by rename: a new inode with other bytes.
    replace_by_rename(&prog, &b);
    let r = env.exec(&["--", s(&prog)]);
    env.expect_code(&r, code::CHANGED);
    assert!(r.stdout.is_empty());

    // A symlink put in the pinned path is refused, even to identical bytes.
    let elsewhere = probe::install(&dir.join("elsewhere"), probe::bytes());
    fs::remove_file(&prog).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &prog).unwrap();
    let r = env.exec(&["--", s(&prog)]);
    env.expect_code(&r, code::SWAPPED);
    env.expect_stderr(&r, &["was pinned, but it now leads to", s(&elsewhere)]);
    assert!(r.stdout.is_empty());
}

#[test]
fn racing_rewrites_during_200_execs_never_run_other_bytes() {
    let Setup {
        env, token, prog, ..
    } = setup("race", "racer", true);

    // The attacker flips the file between A and B as fast as it can, in
    // place (torn reads are possible) and, every few rounds, by rename.
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, prog) = (stop.clone(), prog.clone());
        let (a, b) = (probe::bytes().to_vec(), probe::variant(b'B'));
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let bytes = if round.is_multiple_of(2) { &a } else { &b };
                if round.is_multiple_of(16) {
                    replace_by_rename(&prog, bytes);
                } else {
                    rewrite_in_place(&prog, bytes);
                }
            }
            rewrite_in_place(&prog, &a);
            round
        })
    };
    let (mut ran, mut refused) = (0, 0);
    for i in 0..200 {
        let r = env.exec(&["--", s(&prog), &i.to_string()]);
        match r.code {
            Some(0) => {
                let rep = Report::parse(&r.stdout);
                assert_eq!(
                    rep.variant, "A",
                    "run {i}: bytes other than the pinned ones ran"
                );
                assert!(rep.env_is("TOKEN", token.as_bytes()));
                ran += 1;
            }
            Some(code::CHANGED) => {
                assert!(r.stdout.is_empty(), "run {i}: refused, yet output appeared");
                refused += 1;
            }
            _ => env.expect_code(&r, 0),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = flipper.join().unwrap();
    eprintln!("200 execs during {rounds} rewrites: {ran} ran the pinned bytes, {refused} refused");
    assert!(
        ran > 0,
        "no run ever saw the pinned bytes; the test proves nothing"
    );
    assert!(
        refused > 0,
        "no run ever saw other bytes; the race did not happen"
    );
}

#[test]
fn loader_and_interpreter_hijack_variables_never_reach_the_program() {
    let Setup {
        env, token, prog, ..
    } = setup("ld", "app", true);
    let hijacks = [
        ("LD_PRELOAD", "/nonexistent/evil.so"),
        ("LD_AUDIT", "/nonexistent/audit.so"),
        ("LD_LIBRARY_PATH", "/nonexistent/lib"),
        ("LD_BIND_NOW", "1"),
        ("GCONV_PATH", "/nonexistent/gconv"),
        ("PYTHONPATH", "/nonexistent/py"),
        ("PYTHONSTARTUP", "/nonexistent/start.py"),
        ("NODE_OPTIONS", "--require /nonexistent/evil.js"),
        ("PERL5OPT", "-Mevil"),
        ("RUBYOPT", "-revil"),
        ("BASH_ENV", "/nonexistent/evil.sh"),
        ("ENV", "/nonexistent/evil.sh"),
        ("IFS", "x"),
        ("PS4", "$(evil)"),
        ("BASH_FUNC_ls%%", "() { evil; }"),
        ("GIT_CONFIG_COUNT", "1"),
        ("GIT_CONFIG_KEY_0", "core.pager"),
        ("GIT_SSH_COMMAND", "evil"),
    ];
    // No grant may name a hijack variable, even to pass it.
    let r = env.allow(&["--secret", "TOKEN", "--env", "LD_PRELOAD", "--", s(&prog)]);
    env.expect_code(&r, code::USAGE);
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--env", "ORDINARY", "--", s(&prog)]));
    let mut c = env.command_pw(&["exec", "--", s(&prog)]);
    for (k, v) in hijacks {
        c.env(k, v);
    }
    c.env("ORDINARY", "kept").env("PYTHONNOUSERSITE", "");
    let r = env.run_command("exec app (hijack variables set)".into(), c, b"");
    env.expect_ok(&r);
    let rep = Report::parse(&r.stdout);
    for (k, _) in hijacks {
        assert!(!rep.env.contains_key(k), "{k} reached the program");
    }
    assert!(rep.env_is("ORDINARY", b"kept"));
    assert!(rep.env_is("TOKEN", token.as_bytes()));

    // The caller's PYTHONNOUSERSITE is replaced by envseal's own.
    assert!(rep.env_is("PYTHONNOUSERSITE", b"1"));

    // --clearenv: PATH, HOME, LANG, TERM and the secrets, nothing else
    // but what envseal sets for every program (PYTHONNOUSERSITE).
    let mut c = env.command_pw(&["exec", "--clearenv", "--", s(&prog)]);
    c.env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .env("HOME", "/nonexistent")
        .env("ORDINARY", "x");
    let r = env.run_command("exec --clearenv app".into(), c, b"");
    env.expect_ok(&r);
    let rep = Report::parse(&r.stdout);
    let names: Vec<&str> = rep.env.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "HOME",
            "LANG",
            "LOGNAME",
            "PATH",
            "PYTHONNOUSERSITE",
            "TERM",
            "TOKEN",
            "USER"
        ]
    );
    assert!(
        !rep.env_is("HOME", b"/nonexistent"),
        "the caller's HOME reached the program"
    );
}

#[test]
fn a_scripts_interpreter_is_pinned_and_checked() {
    let Setup {
        env,
        token,
        dir,
        prog,
    } = setup("script", "probe", false);
    // The interpreter is a private copy of sh, found through PATH by
    // `#!/usr/bin/env`, so the test can swap it.
    let sh = fs::read(fs::canonicalize("/bin/sh").unwrap()).unwrap();
    let interp = probe::install(&dir.join("mysh"), &sh);
    let script = dir.join("job.sh");
    fs::write(
        &script,
        format!("#!/usr/bin/env mysh\nexec {} \"$@\"\n", s(&prog)),
    )
    .unwrap();
    let script = probe::install(&script, &fs::read(&script).unwrap());
    let path = format!("{}:{}", s(&dir), std::env::var("PATH").unwrap_or_default());

    let mut c = env.command_pw(&["allow", "--secret", "TOKEN", "--", s(&script)]);
    c.env("PATH", &path);
    let r = env.run_command("allow job.sh".into(), c, b"");
    env.expect_ok(&r);
    env.expect_stdout(&r, &["interpreter", s(&interp), &sha256_hex(&interp)]);

    // Runs with the interpreter pinned at grant time, whatever PATH is now.
    let r = env.exec(&["--", s(&script), "x y"]);
    env.expect_ok(&r);
    let rep = Report::parse(&r.stdout);
    assert!(rep.env_is("TOKEN", token.as_bytes()));
    assert_eq!(rep.args, ["x y"]);

    // The interpreter swapped (one byte appended) → refused, nothing runs.
    let mut changed = sh.clone();
    changed.push(0);
    rewrite_in_place(&interp, &changed);
    let r = env.exec(&["--", s(&script)]);
    env.expect_code(&r, code::CHANGED);
    env.expect_stderr(&r, &[s(&interp), "changed since it was pinned"]);
    assert!(r.stdout.is_empty());
    probe::install(&interp, &sh);
    env.expect_ok(&env.exec(&["--", s(&script)]));

    // The script itself changed → refused.
    let mut edited = fs::read(&script).unwrap();
    edited.extend_from_slice(b"# edited\n");
    fs::write(&script, edited).unwrap();
    env.expect_code(&env.exec(&["--", s(&script)]), code::CHANGED);
}

#[test]
fn interpreters_need_an_argument_constraint() {
    let env = Env::initialized();
    let k = value("interp");
    env.set_approved("K", &k);
    let r = env.allow(&["--secret", "K", "--", "sh"]);
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["interpreter or shell", "--args-exact"]);
    env.expect_code(
        &env.exec(&["--", "sh", "-c", "echo \"$K\""]),
        code::NOT_GRANTED,
    );
    // No arguments at all is no constraint: sh would read code from stdin.
    let r = env.allow(&["--secret", "K", "--args-exact", "--", "sh"]);
    env.expect_code(&r, code::DENIED);

    let script = r#"test "$(printf %s "$K" | wc -c)" -gt 8 && exit 7"#;
    env.expect_ok(&env.allow(&["--secret", "K", "--args-exact", "-c", script, "--", "sh"]));
    let r = env.exec(&["--", "sh", "-c", script]);
    env.expect_code(&r, 7);
    // Any other argv is refused before anything runs.
    for other in [
        vec!["sh", "-c", "echo \"$K\""],
        vec!["sh"],
        vec!["sh", "-c", script, "extra"],
    ] {
        let mut args = vec!["--"];
        args.extend(other);
        let r = env.exec(&args);
        env.expect_code(&r, code::DENIED);
        env.expect_stderr(&r, &["do not match", "exactly"]);
        assert!(r.stdout.is_empty());
    }

    // --force-interpreter accepts the risk, and says so.
    let r = env.allow(&["--secret", "K", "--force-interpreter", "--", "env"]);
    env.expect_ok(&r);
    env.expect_stdout(&r, &["--force-interpreter"]);
    let r = env.run(&["grants", "--json"], b"");
    let json: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(
        json["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["forced_interpreter"] == true)
    );
}

#[test]
fn exit_status_and_signals_pass_through() {
    let Setup { env, prog, .. } = setup("status", "svc", true);

    let mut c = env.command_pw(&["exec", "--", s(&prog)]);
    c.env("PROBE_EXIT", "42");
    env.expect_code(&env.run_command("exec svc (exit 42)".into(), c, b""), 42);

    let mut c = env.command_pw(&["exec", "--", s(&prog)]);
    c.env("PROBE_MODE", "raise");
    env.expect_code(
        &env.run_command("exec svc (SIGTERM)".into(), c, b""),
        128 + 15,
    );

    probe::assert_sigterm_reaches_the_program(&env, &prog);
}

#[test]
fn failures_have_distinct_codes_and_name_no_secret() {
    let Setup { env, dir, prog, .. } = setup("fail", "tool", false);

    let r = env.exec(&["--", s(&dir.join("missing"))]);
    env.expect_code(&r, code::NOT_FOUND);
    let r = env.exec(&["--", "envseal-no-such-program"]);
    env.expect_code(&r, code::NOT_FOUND);

    let r = env.exec(&["--", s(&prog)]);
    env.expect_code(&r, code::NOT_GRANTED);
    env.expect_stderr(
        &r,
        &[&format!("envseal allow --secret KEY -- {}", s(&prog))],
    );

    // Pending secrets are not granted without --approve.
    env.expect_ok(&env.set("LATER", &value("later")));
    let r = env.allow(&["--secret", "LATER", "--", s(&prog)]);
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["pending", "--approve"]);
    let r = env.allow(&[
        "--secret",
        "TOKEN",
        "--secret",
        "LATER",
        "--approve",
        "--",
        s(&prog),
    ]);
    env.expect_ok(&r);
    env.expect_stderr(&r, &["approved LATER"]);

    // --allow must name the program CMD resolves to.
    let other = probe::install(&dir.join("other"), &probe::variant(b'C'));
    let r = env.exec(&["--allow", s(&other), "--", s(&prog)]);
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["resolves to", s(&prog)]);
    assert!(r.stdout.is_empty());
    env.expect_ok(&env.exec(&["--allow", s(&prog), "--", s(&prog)]));
    // Through PATH: a same-named program earlier in PATH is refused.
    let shadow_dir = dir.join("shadow");
    fs::create_dir_all(&shadow_dir).unwrap();
    probe::install(&shadow_dir.join("tool"), &probe::variant(b'D'));
    let mut c = env.command_pw(&["exec", "--allow", s(&prog), "--", "tool"]);
    c.env("PATH", format!("{}:{}", s(&shadow_dir), s(&dir)));
    let r = env.run_command("exec --allow tool -- tool (shadowed PATH)".into(), c, b"");
    env.expect_code(&r, code::DENIED);
    assert!(r.stdout.is_empty());

    // A secret of the grant removed from the vault; `rm` says who loses it.
    let r = env.run_pw(&["rm", "LATER"], b"");
    env.expect_ok(&r);
    env.expect_stderr(&r, &["grants give LATER", s(&prog)]);
    let r = env.exec(&["--", s(&prog)]);
    env.expect_code(&r, code::SECRET_MISSING);
    env.expect_stderr(&r, &["LATER", "removed from the vault", s(&prog)]);
    assert!(r.stdout.is_empty());
    // Narrowed to what is left, it runs.
    env.expect_ok(&env.exec(&["--secret", "TOKEN", "--", s(&prog)]));

    // The pinned file deleted.
    fs::remove_file(&prog).unwrap();
    env.expect_code(&env.exec(&["--", s(&prog)]), code::NOT_FOUND);
    // A wrong passphrase runs nothing (`other` is granted, so the refusal
    // is the passphrase's).
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", s(&other)]));
    let r = env.run_with_passphrase(&["exec", "--", s(&other)], b"", "not the passphrase");
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["wrong passphrase"]);
    assert!(r.stdout.is_empty(), "the program ran");
}

/// `envseal ARGS` on a terminal: the passphrase, then `answer` to the
/// offer to pin.
fn answer_the_offer(env: &Env, args: &[&str], answer: &str) -> util::Run {
    let mut term = Terminal::spawn(env, args);
    term.expect("Passphrase", 1);
    term.type_line(PASSPHRASE);
    term.expect("Pin it and run it? [y/N]", 1);
    term.type_line(answer);
    term.finish()
}

#[test]
fn exec_on_a_terminal_offers_to_pin() {
    let Setup {
        env,
        token,
        dir,
        prog,
    } = setup("offer", "fresh", false);
    let args = [
        "exec",
        "--allow",
        s(&prog),
        "--secret",
        "TOKEN",
        "--",
        s(&prog),
    ];

    // Declined: nothing pinned, nothing run.
    let r = answer_the_offer(&env, &args, "n");
    env.expect_code(&r, code::NOT_GRANTED);
    assert!(!r.stdout().contains("variant A"));
    assert!(
        env.run(&["grants", "--json"], b"")
            .stdout()
            .contains("\"grants\":[]")
    );

    // Accepted: the confirmation showed path, hash and secret; it ran.
    let r = answer_the_offer(&env, &args, "y");
    env.expect_ok(&r);
    env.expect_stdout(&r, &[s(&prog), &sha256_hex(&prog), "TOKEN", "variant A"]);
    let rep = Report::parse(&r.stdout);
    assert!(rep.env_is("TOKEN", token.as_bytes()));
    // Without a terminal there is no offer: not granted.
    let other = probe::install(&dir.join("other"), &probe::variant(b'B'));
    let r = env.exec(&["--allow", s(&other), "--secret", "TOKEN", "--", s(&other)]);
    env.expect_code(&r, code::NOT_GRANTED);
}

/// Pins script `body` once per tier (`grant`: its secrets) and runs it
/// twice in-process in each: it must exit `code` and print `says(tier)`.
fn script_runs_in_every_tier(
    env: &Env,
    tag: &str,
    body: &str,
    grant: &[&str],
    code: i32,
    says: impl Fn(&str, &str) -> String,
) {
    for tier in ["none", "hardened", "lockdown"] {
        let prog = env.script(&format!("{tag}-{tier}"), body);
        let p = s(&prog);
        env.expect_ok(&env.allow(&[grant, &["--tier", tier, "--", p]].concat()));
        for run in 1..=2 {
            let r = env.exec(&["--", p]);
            env.expect_code(&r, code);
            assert_eq!(
                r.stdout(),
                says(tier, p),
                "tier {tier}, run {run}: {}",
                env.redact(&r.stderr())
            );
        }
    }
}

/// A Perl script: Perl reads the inherited script descriptor rather than
/// reopening `/dev/fd/N`, so a copy handed over at end-of-file ran as an
/// empty program (exit 0, no output); Debian's `psql` is such a script.
/// The same holds for a file secret read through its descriptor. Every
/// tier, twice (the second run must not find the first one's offset).
#[test]
fn perl_scripts_run_in_every_tier() {
    let env = Env::initialized();
    let token = value("perl");
    env.set_approved("TOKEN", &token);
    script_runs_in_every_tier(
        &env,
        "perl",
        util::PERL_FILE_READER,
        &["--file", "TOKEN"],
        3,
        |_, _| util::perl_says(&token),
    );
}

/// A script whose `#!` line names a virtualenv's `bin/python` (a symlink
/// to the system interpreter, which is what is pinned and run) runs with
/// that name as its `argv[0]`, so Python finds the venv and imports a
/// package that exists only there; in every tier, with its secret.
#[test]
fn a_virtualenv_script_finds_its_packages_in_every_tier() {
    let env = Env::initialized();
    let token = value("venv");
    env.set_approved("TOKEN", &token);
    let venv = util::Venv::new();
    script_runs_in_every_tier(
        &env,
        "venv",
        &venv.script(),
        &["--secret", "TOKEN"],
        0,
        |_, _| util::venv_script_says(&token),
    );
}

/// An agent that can write the user's files plants `usercustomize.py` in
/// the user's Python site directory, which Python runs at start-up: run
/// directly with a (decoy) secret in its environment, the script hands it
/// to the agent's sink (the control that the attack is real); run by
/// envseal, in tiers none and hardened, the pinned script does its job and
/// the planted file never runs — no sink, no sign of it on stderr, not
/// even an error (`PYTHONNOUSERSITE` is set for every program). Lockdown,
/// whose HOME is private anyway, shows only that the script works there.
#[test]
fn a_planted_usercustomize_does_not_run_in_a_pinned_python_program() {
    use std::process::Command;
    let env = Env::initialized();
    let token = value("usersite");
    env.set_approved("TOKEN", &token);
    let home = env.tmp.path().join("agent-home");
    let sink = env.tmp.path().join("sink");
    let site = Command::new("/usr/bin/python3")
        .args(["-c", "import site; print(site.getusersitepackages())"])
        .env("HOME", &home)
        .output()
        .unwrap();
    let site = PathBuf::from(String::from_utf8(site.stdout).unwrap().trim());
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("usercustomize.py"),
        format!(
            "import os, sys\nsys.stderr.write('PLANTED CODE RAN\\n')\n\
             open({:?}, 'w').write(os.environ.get('TOKEN', 'no token'))\n",
            sink.display()
        ),
    )
    .unwrap();
    let body = "#!/usr/bin/python3\nimport hashlib, os\n\
                print(hashlib.sha256(os.environ.get('TOKEN', '').encode()).hexdigest())\n";
    // The control: Python runs it, for any program of the user's.
    let direct = env.script("direct", body);
    let decoy = "decoy secret of the control run";
    let ran = Command::new(&direct)
        .env("HOME", &home)
        .env("TOKEN", decoy)
        .status()
        .unwrap();
    assert!(ran.success());
    assert_eq!(std::fs::read_to_string(&sink).unwrap(), decoy);
    std::fs::remove_file(&sink).unwrap();
    for tier in ["none", "hardened", "lockdown"] {
        let prog = env.script(&format!("usersite-{tier}"), body);
        env.expect_ok(&env.allow(&["--secret", "TOKEN", "--tier", tier, "--", s(&prog)]));
        let mut c = env.command_pw(&["exec", "--", s(&prog)]);
        c.env("HOME", &home);
        let r = env.run_command(format!("exec ({tier}, planted usercustomize)"), c, b"");
        env.expect_ok(&r);
        assert_eq!(
            r.stdout().trim(),
            util::sha256_hex(token.as_bytes()),
            "tier {tier}: the script did not get its secret: {}",
            env.redact(&r.stderr())
        );
        assert!(
            !sink.exists()
                && !r.stderr().contains("PLANTED CODE RAN")
                && !r.stderr().contains("usercustomize"),
            "tier {tier}: the planted usercustomize.py ran inside the pinned program: {}",
            r.shown_stderr()
        );
    }
}

/// File secrets are at paths a command line can name: `/dev/fd/3`,
/// `/dev/fd/4`, … in the order of their names (then, in None, a script's
/// copy) in None and Hardened, and on Lockdown's secrets tmpfs, the same
/// on every run; in the sandbox the script is at its real path (the
/// broker's variant is in broker.rs).
#[test]
fn file_secrets_have_stable_paths_in_every_tier() {
    let env = Env::initialized();
    let (a, b) = (value("fd-a"), value("fd-b"));
    env.set_approved("A", &a);
    env.set_approved("B", &b);
    let grant = ["--file", "B", "--file", "A"];
    script_runs_in_every_tier(&env, "fds", util::FD_READER, &grant, 0, |tier, at| {
        util::fd_reader_says(tier, at, &a, &b)
    });
}

/// A real program given a file secret by a path on its command line, as a
/// person would write it: `openssl enc -pass file:/dev/fd/3` (in the
/// sandbox `/run/envseal/secrets/ENC_KEY_FILE`), its whole
/// command line fixed by the grant. What it encrypted decrypts with the
/// secret's value (it read the right secret, all of it). The agent's
/// steering — options appended so that openssl encrypts the secret file
/// itself under a password the agent knows (later options win) — is
/// refused, and its output file never appears.
#[test]
fn openssl_reads_a_file_secret_named_on_its_command_line() {
    use std::process::Command;
    let env = Env::initialized();
    let key = value("openssl-key");
    env.set_approved("ENC_KEY", &key);
    let openssl = fs::canonicalize("/usr/bin/openssl")
        .expect("this test needs openssl (./scripts/test installs it)");
    let openssl = s(&openssl).to_owned();
    let plain = env.tmp.path().join("plain");
    fs::write(&plain, "the job's payload\n").unwrap();
    let leak = env.tmp.path().join("leak");
    for tier in ["none", "hardened"] {
        let sealed = env.tmp.path().join(format!("sealed-{tier}"));
        let pass = format!("file:{}", util::secret_path(tier, 3, "ENC_KEY_FILE"));
        let job = [
            "enc",
            "-aes-256-cbc",
            "-pbkdf2",
            "-pass",
            &pass,
            "-in",
            s(&plain),
            "-out",
            s(&sealed),
        ];
        let allow = [
            &["--file", "ENC_KEY", "--tier", tier, "--args-exact"],
            &job[..],
            &["--", &openssl],
        ];
        env.expect_ok(&env.allow(&allow.concat()));
        let steered = [&["--", openssl.as_str()], &job[..]].concat();
        let steered = [
            &steered[..],
            &["-in", "/dev/fd/3", "-out", s(&leak), "-pass", "pass:agent"],
        ]
        .concat();
        env.expect_code(&env.exec(&steered), code::DENIED);
        assert!(!leak.exists(), "tier {tier}: the steered openssl ran");
        let r = env.exec(&[&["--", openssl.as_str()], &job[..]].concat());
        env.expect_ok(&r);
        let mut open = Command::new(&openssl)
            .args([
                "enc",
                "-d",
                "-aes-256-cbc",
                "-pbkdf2",
                "-pass",
                "stdin",
                "-in",
            ])
            .arg(&sealed)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        open.stdin
            .take()
            .unwrap()
            .write_all(format!("{key}\n").as_bytes())
            .unwrap();
        let out = open.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "the job's payload\n",
            "tier {tier}: what openssl sealed does not open with the secret"
        );
    }
}

/// `ssh-keygen -y -f PATH`: a private key given as a file secret, at the
/// path the grant's argument rule names (`/dev/fd/3` in None,
/// `/run/envseal/secrets/SSH_KEY_FILE` in the sandbox), yields the key's
/// own public half (ssh-keygen read the right secret, whole, and accepted
/// the file's mode).
#[test]
fn ssh_keygen_reads_a_private_key_given_as_a_file_secret() {
    let env = Env::initialized();
    let (private, public) = util::ssh_key(env.tmp.path());
    env.set_approved("SSH_KEY", &private);
    let keygen = fs::canonicalize("/usr/bin/ssh-keygen").unwrap();
    for tier in ["none", "hardened", "lockdown"] {
        let path = util::secret_path(tier, 3, "SSH_KEY_FILE");
        env.expect_ok(&env.allow(&[
            "--file",
            "SSH_KEY",
            "--tier",
            tier,
            "--args-exact",
            "-y",
            "-f",
            &path,
            "--",
            s(&keygen),
        ]));
        let r = env.exec(&["--", "ssh-keygen", "-y", "-f", &path]);
        env.expect_ok(&r);
        assert_eq!(
            r.stdout().trim(),
            public.trim(),
            "tier {tier}: {}",
            env.redact(&r.stderr())
        );
    }
}

/// Re-running `allow` keeps every property of the grant and only adds what
/// is named; a grant becomes weaker only through an explicit flag, and
/// says so. `repin` re-hashes an upgraded program and keeps the grant; the
/// exit-69 hint names it.
#[test]
fn re_pinning_never_silently_weakens_a_grant() {
    let env = Env::initialized();
    env.set_approved("A", &value("repin-a"));
    env.set_approved("B", &value("repin-b"));
    let prog = env.script("deploy", "#!/bin/sh\necho deployed \"$1\"\nexit 5\n");
    let p = s(&prog);
    let grant = |env: &Env| -> serde_json::Value {
        let r = env.run(&["grants", "--json"], b"");
        env.expect_ok(&r);
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        v["grants"][0].clone()
    };
    env.expect_ok(&env.allow(&[
        "--secret",
        "A",
        "--file",
        "B=B_PATH",
        "--tier",
        "lockdown",
        "--may-exec",
        "/bin/sleep",
        "--args-prefix",
        "push",
        "--",
        p,
    ]));
    let first = grant(&env);

    // Adding a secret (the exit-69 hint's old advice) keeps everything.
    env.set_approved("C", &value("repin-c"));
    let r = env.allow(&["--secret", "C", "--", p]);
    env.expect_ok(&r);
    assert!(!r.stderr().contains("weaker"), "{}", r.shown_stderr());
    let g = grant(&env);
    for key in ["tier", "args", "may_exec", "require_shield", "sha256"] {
        assert_eq!(g[key], first[key], "{key} changed: {g}");
    }
    let names: Vec<&str> = g["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(
        g["secrets"][1]["variable"], "B_PATH",
        "the rename was lost: {g}"
    );

    // An upgrade: exec refuses (69) and points at repin.
    fs::write(&prog, "#!/bin/sh\necho deployed v2 \"$1\"\nexit 5\n").unwrap();
    let r = env.exec(&["--", p, "push"]);
    env.expect_code(&r, code::CHANGED);
    env.expect_stderr(&r, &["envseal repin"]);
    let r = env.run_pw(&["repin", p], b"");
    env.expect_ok(&r);
    let old = first["sha256"].as_str().unwrap();
    let new = util::sha256_hex(&fs::read(&prog).unwrap());
    env.expect_stderr(
        &r,
        &["re-pinned program", &format!("was {p} sha256 {old}"), &new],
    );
    let g = grant(&env);
    assert_eq!(g["sha256"], new.as_str());
    for key in ["tier", "args", "may_exec", "require_shield", "secrets"] {
        let before = if key == "secrets" {
            &g[key]
        } else {
            &first[key]
        };
        assert_eq!(&g[key], before, "repin changed {key}: {g}");
    }
    // repin of a program that is not pinned: not granted.
    let other = env.script("other", "#!/bin/sh\nexit 0\n");
    let r = env.run_pw(&["repin", s(&other)], b"");
    env.expect_code(&r, code::NOT_GRANTED);
    // --require-shield, once given, stays.
    env.expect_ok(&env.allow(&["--require-shield", "--secret", "A", "--", p]));
    env.expect_ok(&env.allow(&["--secret", "A", "--", p]));
    assert_eq!(grant(&env)["require_shield"], true);

    // Weakening is explicit and printed.
    let r = env.allow(&[
        "--secret",
        "A",
        "--tier",
        "none",
        "--args-any",
        "--no-require-shield",
        "--no-may-exec",
        "--",
        p,
    ]);
    env.expect_ok(&r);
    env.expect_stderr(
        &r,
        &[
            "weaker: tier lockdown -> none",
            "weaker: arguments starting with",
            "weaker: callers outside an envseal shield",
            "dropped --may-exec /usr/bin/sleep",
        ],
    );
    let g = grant(&env);
    assert_eq!(g["tier"], "none");
    assert_eq!(g["args"], serde_json::Value::Null);
    assert_eq!(g["require_shield"], false);

    // A delivery changed is said.
    let r = env.allow(&["--secret", "B=B_ENV", "--", p]);
    env.expect_ok(&r);
    env.expect_stderr(
        &r,
        &["changed: B is delivered as $B_ENV (was a file (path in $B_PATH))"],
    );
    let r = env.allow(&["--file", "B=B_PATH", "--", p]);
    env.expect_ok(&r);

    // `grants`: a table, one line per grant; `--long` has every detail.
    let r = env.run(&["grants"], b"");
    env.expect_ok(&r);
    let lines: Vec<&str> = r
        .stdout
        .split(|&b| b == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(words(lines[0]), ["PROGRAM", "TIER", "SECRETS", "SHA256"]);
    assert_eq!(words(lines[1]), [p, "none", "A,B,C", &new[..12]]);
    let r = env.run(&["grants", "--long"], b"");
    env.expect_ok(&r);
    env.expect_stdout(
        &r,
        &[
            &format!("sha256      {new}"),
            "secret      B as a file, path in $B_PATH",
        ],
    );
}

/// The pids whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

/// Through the broker, Ctrl-C on the person's terminal reaches the whole
/// program — a `#!/bin/sh` script and the `sleep` it waits on — in every
/// tier, as it does when the program runs in-process: `exec` returns at
/// once with 130 and no `sleep` is left behind. A client that goes away
/// (killed) takes the whole program with it (SIGHUP).
#[test]
fn signals_through_the_broker_reach_the_programs_children() {
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("ctrl-c"));
    env.expect_ok(&env.run_pw(&["unlock"], b""));
    for tier in ["none", "hardened", "lockdown"] {
        let mark = format!("{}{}", tier.len(), std::process::id());
        let prog = env.script(
            &format!("waits-{tier}"),
            &format!("#!/bin/sh\necho started\nsleep 299.{mark}\necho after the sleep\n"),
        );
        let mut extra = vec!["--secret", "TOKEN", "--tier", tier];
        if tier == "lockdown" {
            extra.extend(["--may-exec", "/usr/bin/sleep"]);
        }
        extra.extend(["--", s(&prog)]);
        env.expect_ok(&env.allow(&extra));
        let needle = format!("299.{mark}");
        let left = || processes_with(&needle);

        // Ctrl-C on a terminal.
        let mut t = Terminal::spawn(&env, &["exec", "--", s(&prog)]);
        t.expect("started", 1);
        assert!(
            util::wait_for(|| !left().is_empty()),
            "{tier}: sleep never started"
        );
        t.type_raw(b"\x03");
        let stopped = util::wait_for(|| left().is_empty());
        for pid in left() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let r = t.finish();
        assert!(stopped, "{tier}: Ctrl-C left the script's sleep running");
        assert_eq!(r.code, Some(130), "{tier}: {}", env.redact(&r.stderr()));
        assert!(!r.stdout().contains("after the sleep"), "{tier}");

        // The client killed: the whole program gets SIGHUP.
        let mut c = env.command();
        c.args(["exec", "--", s(&prog)])
            .stdin(std::process::Stdio::null());
        let mut client = c.spawn().unwrap();
        assert!(
            util::wait_for(|| !left().is_empty()),
            "{tier}: sleep never started"
        );
        client.kill().unwrap();
        let _ = client.wait();
        let stopped = util::wait_for(|| left().is_empty());
        for pid in left() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(stopped, "{tier}: the program outlived its client");
    }
    let _ = env.run(&["lock"], b"");
}
