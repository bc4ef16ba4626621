//! Output masking (issue 6): what a pinned program prints is filtered by
//! envseal — each secret, and its base64, base64url, hex and URL-encoded
//! forms, become `****`, also when split across writes — in the
//! in-process path and through the broker, in bounded memory. The forms
//! the test looks for are computed by Python's standard library, not by
//! envseal's code.

use crate::util;

use std::fs;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use util::{Env, value};

/// A pinned Python script (its interpreter pinned too) that prints its
/// secret in every form, the last split across two writes 0.3 s apart,
/// on stdout and stderr, and exits 3.
fn leaky(env: &Env) -> PathBuf {
    env.script(
        "leaky",
        r#"#!/usr/bin/python3
import base64, binascii, os, sys, time, urllib.parse
v = os.environ["TOKEN"].encode()
for line in [v, base64.b64encode(v), base64.urlsafe_b64encode(v),
             base64.b64encode(v + b"\n"), binascii.hexlify(v), binascii.hexlify(v).upper(),
             urllib.parse.quote(v, safe="").encode(), urllib.parse.quote(v, safe="").lower().encode()]:
    sys.stdout.write("form: " + line.decode() + "\n")
    sys.stdout.flush()
sys.stdout.write("split: " + v[:9].decode()); sys.stdout.flush()
time.sleep(0.3)
sys.stdout.write(v[9:].decode() + " end\n"); sys.stdout.flush()
sys.stderr.write("err: " + v.decode() + "\n")
sys.exit(3)
"#,
    )
}

/// Every form of `token` the test must not find, from Python.
fn forms(token: &str) -> Vec<String> {
    let out = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            r#"import base64, binascii, sys, urllib.parse
v = sys.argv[1].encode()
for f in [v, base64.b64encode(v).rstrip(b"="), base64.urlsafe_b64encode(v).rstrip(b"="),
          binascii.hexlify(v), binascii.hexlify(v).upper(),
          urllib.parse.quote(v, safe="").encode()]:
    print(f.decode())"#,
            token,
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A token whose encodings all differ from it (`/`, `+`, space, `?`).
fn token() -> String {
    format!("{}/+ ?x", value("mask"))
}

fn check_masked(out: &str, token: &str) {
    for form in forms(token) {
        assert!(
            !out.contains(&form),
            "a form of the secret came through the mask (form {} chars long)",
            form.len()
        );
        // Not even its first 12 characters.
        assert!(
            !out.contains(&form[..12]),
            "a prefix of a form came through"
        );
    }
    assert_eq!(
        out.matches("form: ****").count(),
        8,
        "every form line is masked"
    );
    assert!(out.contains("split: **** end"), "the split write");
    assert!(out.contains("err: ****"), "stderr");
}

/// A vault whose TOKEN is granted to [`leaky`].
fn staged() -> (Env, String, PathBuf) {
    let env = Env::initialized();
    let token = token();
    env.set_approved("TOKEN", &token);
    let prog = leaky(&env);
    let r = env.allow(&["--secret", "TOKEN", "--", prog.to_str().unwrap()]);
    env.expect_ok(&r);
    (env, token, prog)
}

#[test]
fn every_form_is_masked_in_process() {
    let (env, token, prog) = staged();
    let r = env.exec(&["--", prog.to_str().unwrap()]);
    assert_eq!(r.code, Some(3), "the exit status passes through the mask");
    check_masked(&format!("{}{}", r.stdout(), r.stderr()), &token);
    // --no-mask: the value reaches the output — the control that shows
    // the checks above can fail. This output is the program's, not
    // envseal's, and is kept out of the G1 record.
    let out = env
        .command_pw(&["exec", "--no-mask", "--", prog.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&token),
        "--no-mask still masked"
    );
}

#[test]
fn every_form_is_masked_through_the_broker() {
    let (env, token, prog) = staged();
    let r = env.run_pw(&["unlock"], b"");
    env.expect_ok(&r);
    let r = env.run(&["exec", "--", prog.to_str().unwrap()], b"");
    let _ = env.run(&["lock"], b"");
    assert_eq!(r.code, Some(3), "{}", env.redact(&r.stderr()));
    check_masked(&format!("{}{}", r.stdout(), r.stderr()), &token);
}

/// 100 MB through the mask: envseal's memory stays small (it streams),
/// and every embedded value is replaced.
#[test]
fn a_hundred_megabytes_pass_in_bounded_memory() {
    let env = Env::initialized();
    let token = token();
    env.set_approved("TOKEN", &token);
    let p = env.script(
        "flood",
        "#!/usr/bin/python3\nimport os, sys\nv = os.environ['TOKEN'].encode()\n\
         chunk = b'x' * 65000 + v + b'\\n'\nout = sys.stdout.buffer\n\
         for _ in range(1600):\n    out.write(chunk)\nout.flush()\n",
    );
    let r = env.allow(&["--secret", "TOKEN", "--", p.to_str().unwrap()]);
    env.expect_ok(&r);
    let mut child = env
        .command_pw(&["exec", "--", p.to_str().unwrap()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The shell wrapper execs envseal: the child's pid is envseal's.
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let prefix = token.as_bytes()[..12].to_vec();
    let counter = std::thread::spawn(move || {
        let mut total = 0usize;
        let mut stars = 0usize;
        let mut leaked = false;
        let mut buf = vec![0u8; 1 << 16];
        // Matches across read boundaries: the window starts with the last
        // bytes of the previous read, too few to hold a whole match.
        let mut star_tail = Vec::new();
        let mut leak_tail = Vec::new();
        loop {
            let n = stdout.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
            let window = [star_tail.as_slice(), &buf[..n]].concat();
            stars += window.windows(5).filter(|w| w == b"****\n").count();
            star_tail = window[window.len().saturating_sub(4)..].to_vec();
            let window = [leak_tail.as_slice(), &buf[..n]].concat();
            leaked |= window.windows(12).any(|w| w == prefix.as_slice());
            leak_tail = window[window.len().saturating_sub(11)..].to_vec();
        }
        (total, stars, leaked)
    });
    let mut peak_kb = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (total, stars, leaked) = counter.join().unwrap();
    assert!(!leaked, "the value came through the mask");
    assert_eq!(stars, 1600, "every embedded value masked");
    assert_eq!(total, 1600 * (65000 + 5), "output lost or added");
    assert!(peak_kb > 0, "never saw envseal's memory");
    assert!(
        peak_kb < 48 * 1024,
        "envseal used {peak_kb} kB while passing 100 MB on: it is buffering"
    );
}

/// On a terminal the program gets the terminal itself (interactive
/// programs need one) and nothing is masked; `--mask` gives it pipes.
#[test]
fn a_terminal_is_handed_to_the_program_unless_mask_is_asked() {
    let env = Env::initialized();
    env.set_approved("TOKEN", &token());
    let p = env.script(
        "tty-check",
        "#!/bin/sh\nif [ -t 1 ] && [ -t 2 ]; then echo TTY-YES; else echo TTY-NO; fi\n",
    );
    let prog = p.to_str().unwrap().to_owned();
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", &prog]));
    for (args, expected) in [
        (vec!["exec", "--", &prog], "TTY-YES"),
        (vec!["exec", "--mask", "--", &prog], "TTY-NO"),
    ] {
        let mut t = util::terminal::Terminal::spawn(&env, &args);
        t.expect("Passphrase (to run", 1);
        t.type_line(util::PASSPHRASE);
        t.expect(expected, 1);
        let r = t.finish();
        assert_eq!(r.code, Some(0), "{}", env.redact(&r.stdout()));
    }
}
