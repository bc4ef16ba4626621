//! What a person reads cannot be forged by what it displays: a path with
//! terminal escape sequences is refused where it would be pinned, run or
//! accepted by the broker, and every human-readable output shows untrusted
//! text escaped. Outputs are rendered with a terminal emulator (pyte) and
//! the screen is compared with the truth.

use crate::util;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use util::{Env, code, value};

/// What a 160×60 terminal shows after `bytes` were written to it: its
/// lines, trailing blanks removed.
fn screen(bytes: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("output");
    fs::write(&input, bytes).unwrap();
    let out = Command::new(util::venv_python("pyte"))
        .args([
            "-c",
            "import sys, pyte\n\
             s = pyte.Screen(160, 60); st = pyte.ByteStream(s)\n\
             st.feed(open(sys.argv[1], 'rb').read().replace(b'\\n', b'\\r\\n'))\n\
             print('\\n'.join(l.rstrip() for l in s.display))",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

fn no_control_bytes(what: &str, bytes: &[u8]) {
    assert!(
        !bytes
            .iter()
            .any(|&b| b == 0x1b || b == 0x07 || b == b'\r' || b == 0x9b),
        "{what} printed a raw control character: {:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// A program whose path holds escape sequences (cursor to column 1, erase
/// line, then a harmless-looking path), reached through an innocent
/// symlink: `allow` and `exec` refuse it, and the screen shows the path
/// as it really is.
#[test]
fn a_path_that_could_forge_the_screen_is_refused() {
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("display"));
    let dir = env.bin_dir();
    let evil_name = "agent\u{1b}[1G\u{1b}[2Kdeploy";
    let evil = env.script(evil_name, "#!/bin/sh\necho ran\n");
    let tools = env.tmp.path().join("tools");
    fs::create_dir_all(&tools).unwrap();
    std::os::unix::fs::symlink(&evil, tools.join("deploy")).unwrap();
    let shown_path = format!("{}/agent\\u{{1b}}[1G\\u{{1b}}[2Kdeploy", dir.display());
    for verb in ["allow", "exec"] {
        let mut c = env.command_pw(&[verb, "--secret", "TOKEN", "--", "tools/deploy"]);
        c.current_dir(env.tmp.path());
        let r = env.run_command(format!("{verb} tools/deploy (a deceptive target)"), c, b"");
        env.expect_code(&r, code::DENIED);
        no_control_bytes(verb, &r.stderr);
        let lines = screen(&r.stderr);
        assert!(
            lines.iter().any(|l| l.contains(&shown_path)),
            "{verb}: the screen does not show the real path {shown_path}: {lines:#?}"
        );
        assert!(
            lines
                .iter()
                .all(|l| !l.contains("deploy contains") || l.contains("agent")),
            "{lines:#?}"
        );
    }
    // Named directly, too.
    let r = env.allow(&["--secret", "TOKEN", "--", evil.to_str().unwrap()]);
    env.expect_code(&r, code::DENIED);
    let r = env.run(&["grants", "--json"], b"");
    assert!(r.stdout().contains("\"grants\":[]"), "{}", r.shown_stdout());
}

/// The audit screen cannot be made to lie: a refused exec whose "path" is
/// clear-screen plus a forged listing, sent to the broker by hand, is
/// refused (the broker accepts only canonical paths), and `envseal audit`
/// shows it escaped below every real record. A stored grant whose path
/// holds escape sequences (an edited vault) is listed escaped by `grants`.
#[test]
fn the_audit_screen_and_grants_cannot_be_forged() {
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("audit-screen"));
    env.expect_ok(&env.run_pw(&["unlock"], b""));
    let home = fs::canonicalize(&env.home).unwrap();
    let run = match fs::metadata("/run/user/0") {
        Ok(m) if m.is_dir() => PathBuf::from("/run/user/0/envseal"),
        _ => home.join("run"),
    };
    let hash = util::sha256_hex(home.as_os_str().as_encoded_bytes());
    let socket = run.join(format!("broker-{}.sock", &hash[..16]));
    let forged = "\u{1b}[2J\u{1b}[H  SEQ  TIME  ACTION  DETAILS\n    1  nothing happened here";
    let python = format!(
        r#"
import json, os, socket, struct
def frame(body):
    b = json.dumps({{"v": 1, "body": body}}).encode()
    return struct.pack(">I", len(b)) + b
s = socket.socket(socket.AF_UNIX)
s.connect({sock:?})
cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
req = {{"op": "exec", "args": {{"program": {forged}, "argv0": {{"s": "x"}}, "args": [],
    "env": [], "secrets": [], "clearenv": False, "verbose": False, "mask": None}}}}
socket.send_fds(s, [frame(req)], [0, 1, 2, cwd])
h = s.recv(4)
print(json.loads(s.recv(struct.unpack(">I", h)[0]))["reply"])
"#,
        sock = socket.display().to_string(),
        forged = serde_json::to_string(forged).unwrap(),
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &python])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The refusal is recorded apart from the broker's loop.
    assert!(
        util::wait_for(|| env
            .run(&["audit", "--json"], b"")
            .stdout()
            .contains("exec-refused")),
        "the refused exec was not recorded"
    );
    let _ = env.run(&["lock"], b"");

    let r = env.run(&["audit"], b"");
    env.expect_ok(&r);
    no_control_bytes("audit", &r.stdout);
    let lines = screen(&r.stdout);
    assert!(
        lines.iter().any(|l| l.contains(" init ")),
        "the real records are gone from the screen: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("exec-refused") && l.contains("\\u{1b}[2J")),
        "the forged record is not shown escaped: {lines:#?}"
    );
    let log = fs::read(socket.with_extension("log")).unwrap_or_default();
    no_control_bytes("the broker's log", &log);

    // An edited vault: a grant row whose path drives the terminal.
    env.sqlite()
        .execute(
            "INSERT INTO grants VALUES (?1, x'00', 0, 0)",
            ["/opt/\u{1b}[2Jinnocent"],
        )
        .unwrap();
    for args in [&["grants"][..], &["grants", "--long"]] {
        let r = env.run(args, b"");
        env.expect_ok(&r);
        no_control_bytes("grants", &r.stdout);
        assert!(
            screen(&r.stdout)
                .iter()
                .any(|l| l.contains("/opt/\\u{1b}[2Jinnocent")),
            "{}",
            r.stdout()
        );
    }
}
