//! End-to-end tests of the vault commands, run as a user would. Every
//! `Env` scans all output and the vault files for the values used (G1).

use crate::util;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use util::terminal::Terminal;
use util::{Env, code, value};

#[test]
fn lifecycle_init_set_list_approve_replace_rm() {
    let env = Env::initialized();
    let api = value("api");
    let db = value("db");
    env.expect_ok(&env.set("API_TOKEN", &api));
    env.expect_ok(&env.set("DB_PASSWORD", &db));

    // list --json: names and states only, with exactly the documented fields.
    let r = env.run(&["list", "--json"], b"");
    env.expect_ok(&r);
    let json: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let secrets = json["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2);
    for s in secrets {
        let mut keys: Vec<_> = s.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["created_at", "name", "state", "updated_at"]);
        assert_eq!(s["state"], "pending");
        assert!(humantime::parse_rfc3339(s["created_at"].as_str().unwrap()).is_ok());
    }
    assert_eq!(secrets[0]["name"], "API_TOKEN");
    assert_eq!(secrets[1]["name"], "DB_PASSWORD");

    // approve needs the passphrase; without a terminal or fd it is denied.
    env.expect_code(&env.run(&["approve", "API_TOKEN"], b""), code::DENIED);
    let r = env.run_pw(&["approve", "API_TOKEN"], b"");
    env.expect_ok(&r);
    env.expect_stderr(&r, &["approved API_TOKEN"]);
    let r = env.run(&["list"], b"");
    env.expect_ok(&r);
    let text = r.stdout();
    assert!(
        text.lines()
            .any(|l| l.starts_with("API_TOKEN") && l.contains("approved")),
        "{}",
        env.redact(&text)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("DB_PASSWORD") && l.contains("pending")),
        "{}",
        env.redact(&text)
    );

    // set on an existing name needs --replace.
    let api2 = value("api2");
    env.remember(api2.as_bytes());
    let r = env.run(&["set", "DB_PASSWORD"], api2.as_bytes());
    env.expect_code(&r, 1);
    assert!(r.stderr().contains("--replace"));
    // Replacing a pending value needs no passphrase; it stays pending.
    let db2 = value("db2");
    env.remember(db2.as_bytes());
    let r = env.run(&["set", "DB_PASSWORD", "--replace"], db2.as_bytes());
    env.expect_ok(&r);
    assert!(r.stderr().contains("still pending"));
    // Replacing an approved value needs the passphrase.
    let before = env.ciphertext("API_TOKEN");
    let r = env.run(&["set", "API_TOKEN", "--replace"], api2.as_bytes());
    env.expect_code(&r, code::DENIED);
    assert_eq!(
        env.ciphertext("API_TOKEN"),
        before,
        "a denied replace changed the value"
    );
    let r = env.run_pw(&["set", "API_TOKEN", "--replace"], api2.as_bytes());
    env.expect_ok(&r);
    env.assert_value("API_TOKEN", api2.as_bytes());
    let r = env.run_pw(&["approve", "DB_PASSWORD"], b"");
    env.expect_ok(&r);
    env.assert_value("DB_PASSWORD", db2.as_bytes());

    // rm needs the passphrase.
    env.expect_code(&env.run(&["rm", "API_TOKEN"], b""), code::DENIED);
    env.expect_ok(&env.run_pw(&["rm", "API_TOKEN"], b""));
    assert_eq!(env.names(), ["DB_PASSWORD".to_owned()].into());
    env.expect_code(&env.run_pw(&["rm", "API_TOKEN"], b""), 1);
    env.expect_code(&env.run_pw(&["approve", "NOPE"], b""), 1);
}

#[test]
fn stdin_bytes_are_kept_exactly() {
    let env = Env::initialized();
    let with_newline = format!("{}\n", value("nl"));
    let binary: Vec<u8> = (0u8..=255).chain(0u8..=255).collect();
    let r = env.set("WITH_NEWLINE", &with_newline);
    env.expect_ok(&r);
    // Kept, and said: a newline from `echo` is rarely meant.
    env.expect_stderr(&r, &["ends with a newline", "printf %s"]);
    env.remember(&binary);
    let r = env.run(&["set", "BINARY"], &binary);
    env.expect_ok(&r);
    assert!(!r.stderr().contains("newline"), "{}", r.shown_stderr());
    env.expect_ok(&env.run_pw(&["approve", "WITH_NEWLINE", "BINARY"], b""));
    env.assert_value("WITH_NEWLINE", with_newline.as_bytes());
    env.assert_value("BINARY", &binary);
}

#[test]
fn generate_stores_a_random_value_nobody_sees() {
    let env = Env::initialized();
    env.expect_ok(&env.run(&["set", "GEN_A", "--generate"], b""));
    env.expect_ok(&env.run(&["set", "GEN_B", "--generate", "--length", "64"], b""));
    env.expect_ok(&env.run_pw(&["approve", "GEN_A", "GEN_B"], b""));
    let a = env.read_back("GEN_A");
    let b = env.read_back("GEN_B");
    env.remember(&a);
    env.remember(&b);
    assert_eq!(a.len(), 32);
    assert_eq!(b.len(), 64);
    assert!(a.iter().chain(&b).all(u8::is_ascii_alphanumeric));
    assert!(a[..] != b[..32], "two generated values share a prefix");
    env.expect_code(
        &env.run(&["set", "GEN_C", "--generate", "--length", "4"], b""),
        code::USAGE,
    );
    env.expect_code(
        &env.run(&["set", "GEN_D", "--length", "40"], b"xxxxxxxxxx"),
        code::USAGE,
    );
    // The Drop scan checks that neither generated value was printed.
}

#[test]
fn no_read_back_verbs_exist() {
    let env = Env::initialized();
    let v = value("verbs");
    env.set_approved("TOKEN", &v);
    for verb in [
        "get", "show", "export", "cat", "read", "print", "dump", "reveal",
    ] {
        let r = env.run_pw(&[verb, "TOKEN"], b"");
        env.expect_code(&r, code::USAGE);
        env.expect_stderr(&r, &["write-only"]);
    }
    let r = env.run(&["--help"], b"");
    env.expect_ok(&r);
    let help = r.stdout();
    assert!(
        help.contains("no get, show, export, cat, read, print or dump"),
        "{}",
        env.redact(&help)
    );
    for sub in ["init", "set", "approve", "list", "rm"] {
        let r = env.run(&[sub, "--help"], b"");
        env.expect_ok(&r);
        assert!(
            r.stdout().contains("Example"),
            "{sub} --help has no example"
        );
    }
}

#[test]
fn wrong_passphrase_is_denied_and_changes_nothing() {
    let env = Env::initialized();
    env.set_approved("KEEP", &value("keep"));
    env.expect_ok(&env.set("PENDING", &value("pending")));
    let snapshot = rows(&env);
    env.remember(b"not the passphrase");
    for args in [
        &["approve", "PENDING"][..],
        &["rm", "KEEP"],
        &["set", "KEEP", "--replace"],
    ] {
        let r = env.run_with_passphrase(args, b"a replacement value", "not the passphrase");
        env.expect_code(&r, code::DENIED);
        env.expect_stderr(&r, &["wrong passphrase"]);
        assert_eq!(
            rows(&env),
            snapshot,
            "`{}` changed the vault",
            args.join(" ")
        );
    }
}

#[test]
fn missing_vault_says_run_init() {
    let env = Env::new();
    for args in [
        &["list"][..],
        &["set", "A"],
        &["approve", "A"],
        &["rm", "A"],
    ] {
        let r = env.run(args, b"some value 123");
        env.expect_code(&r, code::NO_VAULT);
        env.expect_stderr(&r, &["envseal init"]);
    }
    assert!(
        !env.home.exists(),
        "a read command created the vault directory"
    );
}

#[test]
fn init_refuses_to_overwrite() {
    let env = Env::initialized();
    env.set_approved("KEEP", &value("keep"));
    let before = fs::read(env.db()).unwrap();
    let r = env.run_with_passphrase(
        &["init", "--kdf-memory", "8", "--kdf-time", "1"],
        b"",
        "another passphrase",
    );
    env.expect_code(&r, 1);
    assert!(r.stderr().contains("already exists"));
    assert_eq!(fs::read(env.db()).unwrap(), before);
    assert!(!env.read_back("KEEP").is_empty());
    // KDF floor: m >= 8 MiB, t >= 1.
    let other = Env::new();
    other.expect_code(
        &other.run_pw(&["init", "--kdf-memory", "7"], b""),
        code::USAGE,
    );
    other.expect_code(
        &other.run_pw(&["init", "--kdf-memory", "8", "--kdf-time", "0"], b""),
        code::USAGE,
    );
    assert!(!other.db().exists());
}

#[test]
fn files_are_private() {
    let env = Env::initialized();
    env.set_approved("A", &value("perm"));
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.home), 0o700);
    for entry in fs::read_dir(&env.home).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{} is not 0600", p.display());
    }
    // Open a reader so the -wal and -shm files exist, then check them too.
    let c = env.sqlite();
    let _: i64 = c
        .query_row("SELECT count(*) FROM secrets", [], |r| r.get(0))
        .unwrap();
    let mut seen = 0;
    for entry in fs::read_dir(&env.home).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{} is not 0600", p.display());
        seen += 1;
    }
    assert!(seen >= 2, "expected the WAL files beside the database");
}

#[test]
fn invalid_names_and_values_are_refused() {
    let env = Env::initialized();
    let long = "N".repeat(129);
    for bad in ["1ABC", "A-B", "A B", "", "ÄPI", long.as_str()] {
        let r = env.run(&["set", bad], b"a valid value");
        env.expect_code(&r, code::USAGE);
        env.expect_stderr(&r, &["invalid secret name"]);
    }
    env.expect_ok(&env.run(&["set", &"N".repeat(128)], b"a valid value"));
    let r = env.run(&["set", "FD0", "--passphrase-fd", "0"], b"a valid value");
    env.expect_code(&r, code::USAGE);
    let r = env.run(&["set", "EMPTY"], b"");
    env.expect_code(&r, code::USAGE);
    assert!(r.stderr().contains("empty"));
    let big = vec![b'x'; 1024 * 1024 + 1];
    let r = env.run(&["set", "BIG"], &big);
    env.expect_code(&r, code::USAGE);
    assert!(r.stderr().contains("larger than 1 MiB"));
    let max = vec![b'y'; 1024 * 1024];
    env.expect_ok(&env.run(&["set", "MAX"], &max));
    assert_eq!(env.names().len(), 2);
}

#[test]
fn corrupt_database_is_reported_not_panicked() {
    // Truncated to half.
    let env = Env::initialized();
    env.set_approved("A", &value("trunc"));
    checkpoint(&env);
    let bytes = fs::read(env.db()).unwrap();
    fs::write(env.db(), &bytes[..bytes.len() / 2]).unwrap();
    for args in [&["list"][..], &["approve", "A"], &["rm", "A"]] {
        let r = if args[0] == "list" {
            env.run(args, b"")
        } else {
            env.run_pw(args, b"")
        };
        assert!(
            r.code == Some(code::CORRUPT),
            "`{}` on a truncated vault exited {:?}: {}",
            args.join(" "),
            r.code,
            env.redact(&r.stderr())
        );
        env.expect_stderr(&r, &["corrupt"]);
    }

    // Not a database at all.
    let env = Env::initialized();
    fs::write(
        env.db(),
        b"this is not an SQLite database, just some bytes........",
    )
    .unwrap();
    let r = env.run(&["list"], b"");
    env.expect_code(&r, code::CORRUPT);

    // A bit flipped in the header's page size.
    let env = Env::initialized();
    checkpoint(&env);
    let mut bytes = fs::read(env.db()).unwrap();
    bytes[16] ^= 0x40;
    fs::write(env.db(), &bytes).unwrap();
    env.expect_code(&env.run(&["list"], b""), code::CORRUPT);

    // Written by a newer envseal.
    let env = Env::initialized();
    env.sqlite()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let r = env.run(&["set", "X"], b"some value 123");
    env.expect_code(&r, code::CORRUPT);
    env.expect_stderr(&r, &["newer"]);

    // The wrapped identity record damaged.
    let env = Env::initialized();
    env.sqlite()
        .execute(
            "UPDATE meta SET value = x'00' WHERE key = 'wrapped_identity'",
            [],
        )
        .unwrap();
    let r = env.run(&["list"], b"");
    env.expect_code(&r, code::CORRUPT);
}

#[test]
fn database_holds_no_plaintext() {
    let env = Env::initialized();
    for i in 0..20 {
        env.set_approved(&format!("S{i}"), &value(&format!("plain{i}")));
    }
    env.expect_ok(&env.run_pw(&["rm", "S3"], b""));
    checkpoint(&env);
    // The Drop scan covers vault.db, -wal and -shm; do it now explicitly.
    env.scan_all();
    let db = fs::read(env.db()).unwrap();
    assert!(
        util::contains(&db, b"age-encryption.org/v1"),
        "values are not age ciphertexts"
    );
}

#[test]
fn prompt_does_not_echo_and_strips_newline() {
    let env = Env::initialized();
    let typed = value("typed");
    env.remember(typed.as_bytes());
    let mut term = Terminal::spawn(&env, &["set", "TYPED"]);
    term.expect("(not echoed)", 1);
    term.type_line(&typed);
    term.expect("Repeat the value", 1);
    term.type_line(&typed);
    let r = term.finish();
    env.expect_ok(&r);
    assert!(
        !util::contains(&r.stdout, typed.as_bytes()),
        "the typed value was echoed"
    );
    env.expect_ok(&env.run_pw(&["approve", "TYPED"], b""));
    env.assert_value("TYPED", typed.as_bytes());

    // Two different values: nothing is stored.
    let mut term = Terminal::spawn(&env, &["set", "MISTYPED"]);
    term.expect("(not echoed)", 1);
    term.type_line(&typed);
    term.expect("Repeat the value", 1);
    term.type_line("something else entirely");
    let r = term.finish();
    env.expect_code(&r, code::USAGE);
    env.expect_stdout(&r, &["do not match"]);
    assert!(!env.names().contains("MISTYPED"));
}

#[test]
fn passphrase_prompts_on_a_terminal() {
    // init asks twice; a mismatch creates nothing.
    let env = Env::new();
    let mut term = Terminal::spawn(&env, &["init", "--kdf-memory", "8", "--kdf-time", "1"]);
    term.expect("New vault passphrase", 1);
    term.type_line(util::PASSPHRASE);
    term.expect("Repeat the passphrase", 1);
    term.type_line("a different passphrase");
    let r = term.finish();
    env.expect_code(&r, code::USAGE);
    assert!(!env.db().exists(), "a mismatched init created a vault");

    let mut term = Terminal::spawn(&env, &["init", "--kdf-memory", "8", "--kdf-time", "1"]);
    term.expect("New vault passphrase", 1);
    term.type_line(util::PASSPHRASE);
    term.expect("Repeat the passphrase", 1);
    term.type_line(util::PASSPHRASE);
    env.expect_ok(&term.finish());

    // approve and rm ask once, without echo (the G1 scan covers the screen).
    env.expect_ok(&env.set("TERM_SECRET", &value("term")));
    let mut term = Terminal::spawn(&env, &["approve", "TERM_SECRET"]);
    term.expect("Passphrase (to approve)", 1);
    term.type_line(util::PASSPHRASE);
    let r = term.finish();
    env.expect_ok(&r);
    env.expect_stdout(&r, &["approved TERM_SECRET"]);

    let mut term = Terminal::spawn(&env, &["rm", "TERM_SECRET"]);
    term.expect("Passphrase (to remove TERM_SECRET)", 1);
    term.type_line("wrong passphrase here");
    env.expect_code(&term.finish(), code::DENIED);

    // Ctrl-C at the (no-echo) prompt: the terminal echoes again after.
    env.expect_ok(&env.set("LATER_SECRET", &value("later")));
    let mut term = Terminal::spawn(&env, &["approve", "LATER_SECRET"]);
    term.expect("Passphrase (to approve)", 1);
    term.type_raw(b"\x03");
    let (r, echo) = term.finish_and_check_echo();
    assert_ne!(r.code, Some(0), "{}", r.shown_stderr());
    assert!(
        echo,
        "Ctrl-C at the passphrase prompt left the terminal without echo"
    );
}

/// Every row of the secrets table and the manifest, as raw bytes.
fn rows(env: &Env) -> Vec<(String, String, Vec<u8>)> {
    let c = env.sqlite();
    let mut stmt = c
        .prepare("SELECT name, state, ciphertext FROM secrets ORDER BY name")
        .unwrap();
    let mut out: Vec<_> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let (body, mac): (Vec<u8>, Vec<u8>) = c
        .query_row("SELECT body, mac FROM manifest", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    out.push(("<manifest>".into(), String::new(), [body, mac].concat()));
    out
}

/// Moves the WAL into the main file so byte-level edits hit real pages.
fn checkpoint(env: &Env) {
    let c = env.sqlite();
    let _: (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
}

#[test]
fn completions_and_the_man_page_are_generated() {
    let env = Env::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef envseal"),
        ("fish", "complete -c envseal"),
    ] {
        let r = env.run(&["completions", shell], b"");
        env.expect_ok(&r);
        assert!(r.stdout().contains(marker), "{shell}: {}", r.shown_stdout());
        for verb in ["exec", "shield", "unlock", "audit", "import", "mcp"] {
            assert!(r.stdout().contains(verb), "{shell} completions lack {verb}");
        }
    }
    let r = env.run(&["man"], b"");
    env.expect_ok(&r);
    assert!(r.stdout().starts_with(".ie") || r.stdout().contains(".TH envseal 1"));
    assert!(
        r.stdout().contains("write\\-only"),
        "{}",
        &r.stdout()[..200]
    );
}

/// `exec --tier` can raise the grant's tier, never lower it.
#[test]
fn exec_tier_only_raises_the_grants_tier() {
    let env = Env::initialized();
    env.set_approved("TOKEN", &util::value("tier"));
    let dir = env.bin_dir();
    let mut progs = Vec::new();
    for (name, tier) in [("p-none", "none"), ("p-lockdown", "lockdown")] {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n# {name}\nexit 0\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let p = p.to_str().unwrap().to_owned();
        env.expect_ok(&env.allow(&["--secret", "TOKEN", "--tier", tier, "--", &p]));
        progs.push(p);
    }
    let r = env.exec(&["-v", "--tier", "hardened", "--", &progs[0]]);
    env.expect_ok(&r);
    env.expect_stderr(&r, &["envseal: tier hardened"]);
    let r = env.exec(&["-v", "--tier", "none", "--", &progs[1]]);
    env.expect_ok(&r);
    env.expect_stderr(&r, &["envseal: tier lockdown"]);
}

/// `--passphrase-fd N` reads descriptor N itself. Reopening
/// `/proc/self/fd/N` (what envseal once did) fails for a pipe or file
/// another user made (a root shell that drops privileges, systemd
/// credentials: EACCES) and for a socket (ENXIO); a closed N must not
/// read one of envseal's own files.
#[test]
fn passphrase_fd_reads_the_descriptor_itself() {
    use std::io::Write as _;
    use std::process::Stdio;
    let (uid, gid) = util::user::attacker_user();
    let env = Env::initialized();
    let bins = tempfile::tempdir().unwrap();
    fs::set_permissions(bins.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let envseal = util::user::runnable_copy(&util::bin(), bins.path());
    util::user::give_vault_to(&env, uid, gid);
    // envseal runs as the (unprivileged) vault owner; its descriptor 3 is
    // whatever this root process hands it as stdin.
    let run = |label: &str, fd3: Stdio| {
        let mut c = util::user::as_user(uid, gid, Path::new("/bin/sh"));
        c.args(["-c", r#"exec "$0" "$@" 3<&0 0</dev/null"#])
            .arg(&envseal)
            .args(["audit", "--verify", "--passphrase-fd", "3"])
            .env("ENVSEAL_HOME", &env.home)
            .stdin(fd3)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        env.record(label.into(), c.output().unwrap())
    };
    let line = format!("{}\n", util::PASSPHRASE);

    // A pipe made by root.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut w = writer;
    w.write_all(line.as_bytes()).unwrap();
    drop(w);
    let r = run("audit --verify (root's pipe on fd 3)", Stdio::from(reader));
    env.expect_ok(&r);

    // A file only root may open, opened by root.
    let secret_file = env.tmp.path().join("root-only-passphrase");
    fs::write(&secret_file, &line).unwrap();
    fs::set_permissions(&secret_file, fs::Permissions::from_mode(0o600)).unwrap();
    let r = run(
        "audit --verify (root's 0600 file on fd 3)",
        Stdio::from(fs::File::open(&secret_file).unwrap()),
    );
    env.expect_ok(&r);

    // A socket (what Node's spawnSync input and socketpairs give).
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    b.write_all(line.as_bytes()).unwrap();
    drop(b);
    let r = run(
        "audit --verify (a socket on fd 3)",
        Stdio::from(std::os::fd::OwnedFd::from(a)),
    );
    env.expect_ok(&r);

    // On stdin (descriptor 0), the rest of stdin stays the program's:
    // envseal reads the first line and leaves the descriptor open.
    {
        let env = Env::initialized();
        env.set_approved("TOKEN", &value("fd0"));
        let prog = env.script("reads-stdin", "#!/bin/sh\nread line\necho \"got: $line\"\n");
        env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", prog.to_str().unwrap()]));
        let mut c = env.command();
        c.args(["exec", "--passphrase-fd", "0", "--", prog.to_str().unwrap()]);
        let r = env.run_command(
            "exec --passphrase-fd 0 (the program reads stdin after)".into(),
            c,
            format!("{}\nhello from stdin\n", util::PASSPHRASE).as_bytes(),
        );
        env.expect_ok(&r);
        assert_eq!(r.stdout(), "got: hello from stdin\n");
    }

    // Descriptor 9 is not open (closed explicitly: another test thread's
    // descriptors may leak into children): a clear refusal, before
    // anything is read.
    let mut c = env.command();
    c.args(["audit", "--verify", "--passphrase-fd", "9"]);
    let c = {
        let mut sh = std::process::Command::new("/bin/sh");
        sh.arg("-c")
            .arg(r#"exec "$0" "$@" 9<&-"#)
            .arg(c.get_program())
            .args(c.get_args())
            .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .env_remove("XDG_DATA_HOME")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        sh
    };
    let r = env.run_command("audit --verify --passphrase-fd 9 (closed)".into(), c, b"");
    env.expect_code(&r, code::USAGE);
    env.expect_stderr(&r, &["fd 9", "not open"]);
}

/// A reader that stops early (`envseal audit --json | head`) ends output
/// silently with status 0, for every command that prints data; `-n N`
/// shows the last N audit entries.
#[test]
fn a_closed_stdout_ends_output_quietly() {
    use std::process::Stdio;
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("pipe"));
    let prog = env.script("p", "#!/bin/sh\nexit 0\n");
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", prog.to_str().unwrap()]));
    for args in [
        &["audit"][..],
        &["audit", "--json"],
        &["list"],
        &["list", "--json"],
        &["grants"],
        &["grants", "--json"],
        &["doctor"],
        &["man"],
        &["completions", "bash"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut c = env.command();
        c.args(args)
            .stdout(Stdio::from(writer))
            .stdin(Stdio::null());
        let r = env.record(
            format!("{} (stdout closed)", args.join(" ")),
            c.output().unwrap(),
        );
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.shown_stderr());
        assert_eq!(r.stderr(), "", "{args:?}");
    }
    let r = env.run(&["audit", "-n", "2"], b"");
    env.expect_ok(&r);
    let lines: Vec<String> = r.stdout().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "a header and two entries: {lines:?}");
    assert!(
        lines[1].contains("allow") && lines[2].contains("checkpoint"),
        "{lines:?}"
    );
}

/// Only the user's own vault is used: a vault directory another user made
/// (here root, at a shared ENVSEAL_HOME) and one that others may write are
/// refused before anything is read or written.
#[test]
fn a_vault_that_is_not_yours_alone_is_refused() {
    use std::process::Stdio;
    let (uid, gid) = util::user::attacker_user();
    let env = Env::initialized();
    fs::set_permissions(env.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&env.home, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(env.db(), fs::Permissions::from_mode(0o666)).unwrap();
    let secret = value("not-yours");
    env.remember(secret.as_bytes());
    // The victim (an unprivileged user) sets a value into root's vault.
    let mut c = util::user::as_user(uid, gid, &util::bin());
    c.args(["set", "MINE"])
        .env("ENVSEAL_HOME", &env.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let r = env.run_command("(as another user) set MINE".into(), c, secret.as_bytes());
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["is not yours alone"]);
    // The owner's own vault, once others may write it: refused as well.
    fs::set_permissions(&env.home, fs::Permissions::from_mode(0o777)).unwrap();
    let r = env.run(&["list"], b"");
    env.expect_code(&r, code::DENIED);
    fs::set_permissions(&env.home, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(env.db(), fs::Permissions::from_mode(0o600)).unwrap();
    env.expect_ok(&env.run(&["list"], b""));
    assert!(
        !env.names().contains("MINE"),
        "the value went into another user's vault"
    );
}
