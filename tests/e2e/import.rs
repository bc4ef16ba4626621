//! `envseal import` (dotenv → pending secrets + a `.envseal` reference
//! file) and `exec --env-file` (the reference file's mapping, still within
//! the grant). Values are never printed: every one is in the G1 scan.

use crate::util;

use std::fs;

use util::{Env, code, value};

#[test]
fn import_reads_every_dotenv_syntax_and_prints_no_value() {
    let env = Env::initialized();
    let dir = env.tmp.path().join("project");
    fs::create_dir_all(&dir).unwrap();
    let (a, b, c, d, e) = (
        value("imp-plain"),
        value("imp-export"),
        value("imp-double"),
        value("imp-single"),
        value("imp-multi"),
    );
    for v in [&a, &b, &c, &d, &e] {
        env.remember(v.as_bytes());
    }
    let text = format!(
        "# settings\n\nPLAIN={a}\nexport EXPORTED={b}   # trailing comment\n\
         DOUBLE=\"{c}\\twith\\nescapes\"\nSINGLE='{d} $NOT_EXPANDED \\n'\n\
         MULTI=\"{e}\nsecond line\"\n"
    );
    let file = dir.join(".env");
    fs::write(&file, &text).unwrap();
    let r = env.run(
        &["import", file.to_str().unwrap(), "--delete", "--json"],
        b"",
    );
    env.expect_ok(&r);
    let out: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    assert_eq!(
        out["imported"],
        serde_json::json!(["PLAIN", "EXPORTED", "DOUBLE", "SINGLE", "MULTI"])
    );
    assert!(!file.exists(), "--delete left the dotenv file");
    let reference = fs::read_to_string(dir.join(".envseal")).unwrap();
    for k in ["PLAIN", "EXPORTED", "DOUBLE", "SINGLE", "MULTI"] {
        assert!(
            reference.contains(&format!("{k}=envseal:{k}\n")),
            "{reference}"
        );
    }
    // Every value is pending and exactly as written.
    let r = env.run(&["list", "--json"], b"");
    assert_eq!(r.stdout().matches("\"pending\"").count(), 5);
    let r = env.run_pw(
        &["approve", "PLAIN", "EXPORTED", "DOUBLE", "SINGLE", "MULTI"],
        b"",
    );
    env.expect_ok(&r);
    env.assert_value("PLAIN", a.as_bytes());
    env.assert_value("EXPORTED", b.as_bytes());
    env.assert_value("DOUBLE", format!("{c}\twith\nescapes").as_bytes());
    env.assert_value("SINGLE", format!("{d} $NOT_EXPANDED \\n").as_bytes());
    env.assert_value("MULTI", format!("{e}\nsecond line").as_bytes());
}

#[test]
fn a_malformed_file_is_refused_by_line_and_nothing_is_imported() {
    let env = Env::initialized();
    let secret = value("imp-bad");
    env.remember(secret.as_bytes());
    let file = env.tmp.path().join("bad.env");
    fs::write(
        &file,
        format!("OK={secret}\nBROKEN=\"{secret} never closed\n"),
    )
    .unwrap();
    let r = env.run(&["import", file.to_str().unwrap()], b"");
    env.expect_code(&r, code::USAGE);
    env.expect_stderr(&r, &["line 2", "never closed"]);
    fs::write(&file, "OK=1\nnot a line\n").unwrap();
    let r = env.run(&["import", file.to_str().unwrap()], b"");
    env.expect_stderr(&r, &["line 2"]);
    let r = env.run(&["list", "--json"], b"");
    assert!(
        !r.stdout().contains("\"OK\""),
        "a partial import: {}",
        r.stdout()
    );
    assert!(file.exists());
}

#[test]
fn env_file_maps_names_within_the_grant() {
    let env = Env::initialized();
    let url = value("envfile");
    env.set_approved("DB_URL", &url);
    env.set_approved("OTHER", &value("envfile-other"));
    let prog = env.script(
        "show",
        "#!/bin/sh\necho \"DATABASE=${#DATABASE} DB_URL=${#DB_URL} OTHER=${#OTHER}\"\n",
    );
    let prog = prog.to_str().unwrap().to_owned();
    env.expect_ok(&env.allow(&["--secret", "DB_URL", "--", &prog]));
    let project = env.tmp.path().join("project");
    fs::create_dir_all(project.join("sub")).unwrap();
    fs::write(project.join(".envseal"), "DATABASE=envseal:DB_URL\n").unwrap();
    // Explicit file, and discovery from a subdirectory.
    for arg in [
        project.join(".envseal").to_str().unwrap().to_owned(),
        project.join("sub").to_str().unwrap().to_owned(),
    ] {
        let r = env.exec(&["--env-file", &arg, "--", &prog]);
        env.expect_ok(&r);
        assert_eq!(
            r.stdout().trim(),
            format!("DATABASE={} DB_URL=0 OTHER=0", url.len())
        );
    }
    // A secret the grant does not give is refused, not delivered.
    fs::write(project.join("other.envseal"), "X=envseal:OTHER\n").unwrap();
    let other = project.join("other.envseal");
    let r = env.exec(&["--env-file", other.to_str().unwrap(), "--", &prog]);
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["does not give OTHER"]);
    // So is a loader variable, and a value instead of a reference.
    fs::write(&other, "LD_PRELOAD=envseal:DB_URL\n").unwrap();
    let r = env.exec(&["--env-file", other.to_str().unwrap(), "--", &prog]);
    env.expect_code(&r, code::DENIED);
    // And a variable a program reads as a path: curl would create a key
    // log named after the value.
    fs::write(&other, "SSLKEYLOGFILE=envseal:DB_URL\n").unwrap();
    let r = env.exec(&["--env-file", other.to_str().unwrap(), "--", &prog]);
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["SSLKEYLOGFILE, a variable envseal never sets"]);
    fs::write(&other, "DATABASE=postgres://inline\n").unwrap();
    let r = env.exec(&["--env-file", other.to_str().unwrap(), "--", &prog]);
    env.expect_code(&r, code::USAGE);
    env.expect_stderr(&r, &["line 1"]);
}

/// An empty value (`DEBUG=`) has nothing to keep secret: it is skipped
/// with a warning naming its line, and the rest of the file is imported.
/// A file with nothing but empty values imports nothing.
#[test]
fn empty_values_are_skipped_with_a_warning() {
    let env = Env::initialized();
    let dir = env.tmp.path().join("project");
    fs::create_dir_all(&dir).unwrap();
    let token = value("imp-kept");
    env.remember(token.as_bytes());
    let file = dir.join(".env");
    fs::write(&file, format!("DEBUG=\nTOKEN={token}\nEMPTY_QUOTED=\"\"\n")).unwrap();
    let r = env.run(&["import", file.to_str().unwrap(), "--json"], b"");
    env.expect_ok(&r);
    env.expect_stderr(
        &r,
        &[
            "line 1: DEBUG has an empty value; skipped",
            "line 3: EMPTY_QUOTED",
        ],
    );
    let out: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    assert_eq!(out["imported"], serde_json::json!(["TOKEN"]));
    let names = env.names();
    assert!(
        names.contains("TOKEN") && !names.contains("DEBUG"),
        "{names:?}"
    );

    let only_empty = dir.join("empty.env");
    fs::write(&only_empty, "A=\nB=''\n").unwrap();
    let r = env.run(&["import", only_empty.to_str().unwrap()], b"");
    env.expect_code(&r, code::USAGE);
    env.expect_stderr(&r, &["nothing to import"]);
}

/// Only the user's own reference files are trusted: a `.envseal` another
/// user owns is refused, discovery does not climb into directories that
/// are not the user's, and no reference file may map a secret into a
/// variable that steers where programs look (HOME, PATH, proxies, XDG_*).
#[test]
fn only_the_users_own_reference_files_are_trusted() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::initialized();
    // A mapping into HOME: refused, by line.
    let dir = env.tmp.path().join("homes");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join(".envseal");
    for var in ["HOME", "PATH", "https_proxy", "XDG_CONFIG_HOME"] {
        fs::write(&file, format!("{var}=envseal:TOKEN\n")).unwrap();
        let r = env.run(
            &[
                "exec",
                "--env-file",
                file.to_str().unwrap(),
                "--",
                "/bin/true",
            ],
            b"",
        );
        env.expect_code(&r, code::USAGE);
        env.expect_stderr(&r, &["line 1", "never delivered in it"]);
    }

    // As an unprivileged user: a project of theirs holding a `.envseal`
    // that root owns, and a root-owned directory above their own.
    let (uid, gid) = util::user::attacker_user();
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(base.path().join(".envseal"), "TOKEN=envseal:TOKEN\n").unwrap();
    let project = base.path().join("project");
    fs::create_dir_all(project.join("sub")).unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(&project)
        .status()
        .unwrap();
    assert!(chown.success());
    let as_user = |cwd: &std::path::Path, label: &str| {
        let mut c = util::user::as_user(uid, gid, &util::bin());
        c.args(["exec", "--env-file", ".", "--", "/bin/true"])
            .env("ENVSEAL_HOME", project.join("vault"))
            .env("HOME", &project)
            .current_dir(cwd)
            .stdin(std::process::Stdio::null());
        env.record(label.into(), c.output().unwrap())
    };
    // The walk stops at the root-owned directory: the planted file above
    // is never read.
    let r = as_user(
        &project.join("sub"),
        "exec --env-file . (a root-owned .envseal above)",
    );
    env.expect_code(&r, code::USAGE);
    env.expect_stderr(&r, &["no .envseal at or above"]);
    // Inside the user's own project, a file root owns: refused.
    fs::write(project.join("sub/.envseal"), "TOKEN=envseal:TOKEN\n").unwrap();
    let r = as_user(
        &project.join("sub"),
        "exec --env-file . (a root-owned .envseal)",
    );
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["is not yours alone"]);
}

/// `import` of a name that steers where programs look (HTTP_PROXY) stores
/// the value but leaves it out of `.envseal`, which it writes 0644; a
/// reference file group-writable only for the user's own group (umask
/// 002) is still trusted.
#[test]
fn import_writes_a_reference_file_that_is_read_back() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::initialized();
    let dir = env.tmp.path().join("project");
    fs::create_dir_all(&dir).unwrap();
    let (a, b) = (value("imp-token"), value("imp-proxy"));
    env.remember(a.as_bytes());
    env.remember(b.as_bytes());
    let file = dir.join(".env");
    fs::write(&file, format!("TOKEN={a}\nHTTP_PROXY={b}\n")).unwrap();
    let r = env.run(&["import", file.to_str().unwrap()], b"");
    env.expect_ok(&r);
    env.expect_stderr(&r, &["HTTP_PROXY is not written"]);
    let reference = dir.join(".envseal");
    let text = fs::read_to_string(&reference).unwrap();
    assert!(
        text.contains("TOKEN=envseal:TOKEN") && !text.contains("HTTP_PROXY"),
        "{text}"
    );
    assert_eq!(
        fs::metadata(&reference).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert!(env.names().contains("HTTP_PROXY"));
    // Group-writable for the user's own group: read (the program has no
    // grant, so the answer is "not granted", not a refusal of the file).
    fs::set_permissions(&reference, fs::Permissions::from_mode(0o664)).unwrap();
    let r = env.run(
        &[
            "exec",
            "--env-file",
            reference.to_str().unwrap(),
            "--",
            "/bin/true",
        ],
        b"",
    );
    assert!(
        !r.stderr().contains("not yours alone"),
        "{}",
        r.shown_stderr()
    );
    assert!(!r.stderr().contains("line"), "{}", r.shown_stderr());
}
