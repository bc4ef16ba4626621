//! A small harness for end-to-end tests of the `envseal` binary.
//!
//! Every [`Env`] keeps the secret values a test used and everything envseal
//! printed. When it is dropped it scans all outputs and every file in the
//! vault directory for those values (and the passphrase) and fails the test
//! if one appears — the G1 scan. Failure messages never contain a value:
//! outputs are redacted before they are shown.
#![allow(dead_code)]

pub mod probe;
pub mod terminal;
pub mod user;

/// The name libtest gives test `name` of the module at `module_path`
/// (`module_path!()` there), for re-running this binary on that one test.
pub fn qualified(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{name}"),
        None => name.to_owned(),
    }
}

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use secrecy::{ExposeSecret as _, SecretString};

/// The passphrase every test vault uses.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// Exit codes, as documented in the README.
pub mod code {
    pub const USAGE: i32 = 64;
    pub const CORRUPT: i32 = 65;
    pub const NO_VAULT: i32 = 66;
    pub const TAMPERED: i32 = 67;
    pub const NOT_GRANTED: i32 = 68;
    pub const CHANGED: i32 = 69;
    pub const SWAPPED: i32 = 70;
    pub const SECRET_MISSING: i32 = 71;
    pub const UNSUPPORTED: i32 = 72;
    pub const LOCKED: i32 = 75;
    pub const DENIED: i32 = 77;
    pub const CANNOT_EXECUTE: i32 = 126;
    pub const NOT_FOUND: i32 = 127;
}

/// What one envseal invocation printed.
pub struct Run {
    pub label: String,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The values the test had used when this ran: what a failure message
    /// must not show ([`Run::shown_stdout`], [`Run::shown_stderr`]).
    secrets: Vec<Vec<u8>>,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// stdout for a failure message: every value the test used replaced.
    pub fn shown_stdout(&self) -> String {
        redacted(&self.stdout(), &self.secrets)
    }

    /// stderr for a failure message: every value the test used replaced.
    pub fn shown_stderr(&self) -> String {
        redacted(&self.stderr(), &self.secrets)
    }
}

/// `text` with each of `secrets` replaced by `<secret #i>`.
fn redacted(text: &str, secrets: &[Vec<u8>]) -> String {
    let mut text = text.to_owned();
    for (i, s) in secrets.iter().enumerate() {
        if let Ok(s) = std::str::from_utf8(s) {
            text = text.replace(s, &format!("<secret #{i}>"));
        }
    }
    text
}

/// A throwaway `ENVSEAL_HOME` plus the secrets a test used.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    passfile: PathBuf,
    secrets: Mutex<Vec<Vec<u8>>>,
    runs: Mutex<Vec<(String, Vec<u8>)>>,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_envseal"))
}

impl Env {
    /// A fresh directory with no vault yet.
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("vault");
        let passfile = tmp.path().join("passphrase");
        fs::write(&passfile, format!("{PASSPHRASE}\n")).unwrap();
        let env = Env {
            tmp,
            home,
            passfile,
            secrets: Mutex::new(Vec::new()),
            runs: Mutex::new(Vec::new()),
        };
        env.remember(PASSPHRASE.as_bytes());
        env
    }

    /// The file holding the test passphrase (one line).
    pub fn passfile(&self) -> &Path {
        &self.passfile
    }

    /// A fresh vault with cheap KDF parameters (m = 8 MiB, t = 1).
    pub fn initialized() -> Env {
        let env = Env::new();
        let r = env.run_pw(&["init", "--kdf-memory", "8", "--kdf-time", "1"], b"");
        env.expect_ok(&r);
        env
    }

    /// Registers a value that must never appear in any output or file.
    pub fn remember(&self, value: &[u8]) {
        assert!(
            value.len() >= 8,
            "test secrets must be at least 8 bytes to scan reliably"
        );
        self.secrets.lock().unwrap().push(value.to_vec());
    }

    /// A `Command` for envseal in this environment (stdin must be set).
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("ENVSEAL_HOME", &self.home)
            .env_remove("XDG_DATA_HOME")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs envseal with `stdin`, without a passphrase.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut c = self.command();
        c.args(args);
        self.finish(args.join(" "), c, stdin)
    }

    /// A directory for programs, inside the test's temporary directory.
    pub fn bin_dir(&self) -> PathBuf {
        let dir = self.tmp.path().join("bin");
        fs::create_dir_all(&dir).unwrap();
        fs::canonicalize(dir).unwrap()
    }

    /// An executable script `name` in [`Env::bin_dir`] with `body`.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let p = self.bin_dir().join(name);
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// `envseal allow ARGS` with the passphrase.
    pub fn allow(&self, args: &[&str]) -> Run {
        self.run_pw(&[&["allow"], args].concat(), b"")
    }

    /// `envseal exec ARGS` with the passphrase.
    pub fn exec(&self, args: &[&str]) -> Run {
        self.run_pw(&[&["exec"], args].concat(), b"")
    }

    /// Runs envseal with the test passphrase on fd 3.
    pub fn run_pw(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_with_passfile(args, stdin, &self.passfile.clone())
    }

    /// Runs envseal with `passphrase` on fd 3.
    pub fn run_with_passphrase(&self, args: &[&str], stdin: &[u8], passphrase: &str) -> Run {
        let file = self.tmp.path().join("other-passphrase");
        fs::write(&file, format!("{passphrase}\n")).unwrap();
        self.run_with_passfile(args, stdin, &file)
    }

    fn run_with_passfile(&self, args: &[&str], stdin: &[u8], passfile: &Path) -> Run {
        let c = self.command_with_passfile(args, passfile);
        self.finish(label_pw(args), c, stdin)
    }

    /// A `Command` for `envseal ARGS` with the test passphrase on fd 3.
    /// `--passphrase-fd 3` goes right after the subcommand, before any
    /// argument lists and `--`.
    pub fn command_pw(&self, args: &[&str]) -> Command {
        self.command_with_passfile(args, &self.passfile.clone())
    }

    fn command_with_passfile(&self, args: &[&str], passfile: &Path) -> Command {
        let at = args.len().min(1);
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(r#"exec "$0" "$@" 3<"$ENVSEAL_TEST_PASSFILE""#)
            .arg(bin())
            .args(&args[..at])
            .args(["--passphrase-fd", "3"])
            .args(&args[at..])
            .env("ENVSEAL_HOME", &self.home)
            .env("ENVSEAL_TEST_PASSFILE", passfile)
            .env_remove("XDG_DATA_HOME")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs a prepared command (from [`Env::command`] or
    /// [`Env::command_pw`]) with `stdin`, recording its output.
    pub fn run_command(&self, label: String, c: Command, stdin: &[u8]) -> Run {
        self.finish(label, c, stdin)
    }

    fn finish(&self, label: String, mut c: Command, stdin: &[u8]) -> Run {
        c.stdin(Stdio::piped());
        let mut child = c.spawn().expect("spawn envseal");
        let mut pipe = child.stdin.take().unwrap();
        let input = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait envseal");
        writer.join().unwrap();
        self.record(label, out)
    }

    /// Records a finished process's output for the final scan.
    pub fn record(&self, label: String, out: Output) -> Run {
        let mut runs = self.runs.lock().unwrap();
        runs.push((format!("stdout of `envseal {label}`"), out.stdout.clone()));
        runs.push((format!("stderr of `envseal {label}`"), out.stderr.clone()));
        drop(runs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked"),
            "`envseal {label}` panicked: {}",
            self.redact(&stderr)
        );
        Run {
            label,
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
            secrets: self.secrets.lock().unwrap().clone(),
        }
    }

    /// `envseal set NAME` with `value` on stdin; remembers the value.
    pub fn set(&self, name: &str, value: &str) -> Run {
        self.remember(value.as_bytes());
        self.run(&["set", name], value.as_bytes())
    }

    /// Sets and approves a value, asserting both succeed.
    pub fn set_approved(&self, name: &str, value: &str) {
        let r = self.set(name, value);
        self.expect_ok(&r);
        let r = self.run_pw(&["approve", name], b"");
        self.expect_ok(&r);
    }

    pub fn expect_ok(&self, r: &Run) {
        self.expect_code(r, 0);
    }

    pub fn expect_code(&self, r: &Run, code: i32) {
        assert_eq!(
            r.code,
            Some(code),
            "`envseal {}` exited {:?}, expected {code}\nstdout: {}\nstderr: {}",
            r.label,
            r.code,
            self.redact(&r.stdout()),
            self.redact(&r.stderr())
        );
    }

    /// Asserts that stderr mentions every one of `needles`; on failure the
    /// output is shown redacted.
    pub fn expect_stderr(&self, r: &Run, needles: &[&str]) {
        self.expect_mentions(r, "stderr", &r.stderr(), needles);
    }

    /// Like [`Env::expect_stderr`], for stdout (a terminal's screen too).
    pub fn expect_stdout(&self, r: &Run, needles: &[&str]) {
        self.expect_mentions(r, "stdout", &r.stdout(), needles);
    }

    fn expect_mentions(&self, r: &Run, stream: &str, text: &str, needles: &[&str]) {
        for needle in needles {
            assert!(
                text.contains(needle),
                "{stream} of `envseal {}` does not mention {needle:?}: {}",
                r.label,
                self.redact(text)
            );
        }
    }

    /// Replaces every remembered value in `text` (for failure messages).
    pub fn redact(&self, text: &str) -> String {
        redacted(text, &self.secrets.lock().unwrap())
    }

    /// The secret names, as `envseal list --json` reports them.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        let r = self.run(&["list", "--json"], b"");
        self.expect_ok(&r);
        let json: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        json["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The vault database path.
    pub fn db(&self) -> PathBuf {
        self.home.join("vault.db")
    }

    /// A direct SQLite connection: how the attacker edits the vault.
    pub fn sqlite(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.db()).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c
    }

    /// The stored ciphertext of `name`, as the attacker sees it.
    pub fn ciphertext(&self, name: &str) -> Vec<u8> {
        self.sqlite()
            .query_row(
                "SELECT ciphertext FROM secrets WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Reads a value back through the library (tests only: the CLI has no
    /// such command). The value is remembered for the scan.
    pub fn read_back(&self, name: &str) -> Vec<u8> {
        let vault = envseal_vault::Vault::open(&self.home).unwrap();
        let keys = vault.unlock(&SecretString::from(PASSPHRASE)).unwrap();
        let name = envseal_vault::SecretName::new(name).unwrap();
        let value = match vault.open_value(&keys, &name) {
            Ok(v) => v,
            Err(e) => panic!("{name} does not open: {e}"),
        };
        value.expose_secret().to_vec()
    }

    /// Checks a stored value without ever printing it.
    pub fn assert_value(&self, name: &str, expected: &[u8]) {
        let got = self.read_back(name);
        assert!(
            got == expected,
            "the value stored as {name} differs from the one written ({} vs {} bytes)",
            got.len(),
            expected.len()
        );
    }

    /// Fails if any remembered value occurs in `haystack`.
    fn scan(&self, what: &str, haystack: &[u8]) {
        for (i, s) in self.secrets.lock().unwrap().iter().enumerate() {
            assert!(
                !contains(haystack, s),
                "G1 violated: secret #{i} appeared in {what}"
            );
        }
    }

    /// Scans everything printed so far and every file of the vault.
    pub fn scan_all(&self) {
        for (what, bytes) in self.runs.lock().unwrap().iter() {
            self.scan(what, bytes);
        }
        if let Ok(entries) = fs::read_dir(&self.home) {
            for entry in entries.flatten() {
                if let Ok(bytes) = fs::read(entry.path()) {
                    self.scan(&format!("vault file {}", entry.path().display()), &bytes);
                }
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.scan_all();
        }
    }
}

/// SHA-256 of `bytes` in hex, computed by coreutils' `sha256sum` (an
/// implementation independent of envseal's).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum printed nothing")
        .to_owned()
}

/// How a passphrase run is labelled in messages.
pub fn label_pw(args: &[&str]) -> String {
    format!("{} (passphrase on fd 3)", args.join(" "))
}

/// Byte-substring search.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A distinctive, random value for test `tag` (different on every call).
pub fn value(tag: &str) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(tag.as_bytes());
    format!("sk-test-{tag}-{:016x}", h.finish())
}

/// How long a test waits for an event before it fails: generous, because
/// the machines are small (2 cores) and often loaded. Waits poll for the
/// event and return as soon as it happens, so a long limit costs nothing
/// when things go well.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `event` every 20 ms until it holds (true) or [`PATIENCE`] runs out
/// (false).
pub fn wait_for(mut event: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if event() {
            return true;
        }
        if start.elapsed() > PATIENCE {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A file name no other test (or run) uses: `tag`, this process and a
/// random suffix.
pub fn unique_name(tag: &str) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(tag.as_bytes());
    format!("{tag}-{}-{:08x}", std::process::id(), h.finish() as u32)
}

/// A Perl script that reads its file secret `TOKEN_FILE` (through the
/// descriptor when it is `/dev/fd/N`), prints its length and byte sum (never
/// the value) and exits 3. Perl reads an inherited script descriptor itself,
/// so it also shows that the script was handed over from its start.
pub const PERL_FILE_READER: &str = r#"#!/usr/bin/perl
my $path = $ENV{TOKEN_FILE};
my $data = '';
{
    local $/;
    my $f;
    if ($path =~ m{^/dev/fd/(\d+)$}) { open($f, '<&=', $1) or die "fd $1: $!"; }
    else { open($f, '<', $path) or die "open: $!"; }
    $data = <$f>;
}
printf "perl ran: %d bytes, sum %d\n", length($data), unpack('%32C*', $data);
exit 3;
"#;

/// What [`PERL_FILE_READER`] prints for `value`.
pub fn perl_says(value: &str) -> String {
    let sum = value.bytes().map(u32::from).fold(0u32, u32::wrapping_add);
    format!("perl ran: {} bytes, sum {sum}\n", value.len())
}

/// The venv Python (./scripts/test makes it, with the MCP SDK and pyte),
/// checked to import `module`: a test that needs it fails saying so.
pub fn venv_python(module: &str) -> PathBuf {
    let p = std::env::var_os("ENVSEAL_TEST_MCP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python")
        });
    let ok = Command::new(&p)
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs the Python module {module} in {}; ./scripts/test installs it \
         (python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install mcp pyte)",
        p.display()
    );
    p
}

/// A virtualenv of the system Python, built here without network (no pip),
/// holding a package found nowhere else (`envseal_venv_only`), and a
/// script whose `#!` line names the venv's own `bin/python`: it prints
/// what [`venv_script_says`] expects only if the interpreter found its
/// venv (from the name the `#!` line gives it) and `TOKEN` was delivered.
/// In `/var/tmp` (Lockdown's `/tmp` is private), readable by every user.
pub struct Venv {
    pub dir: tempfile::TempDir,
    pub python: PathBuf,
    /// Its package `envseal_venv_only`'s `__init__.py`.
    package: PathBuf,
}

impl Venv {
    /// The agent's own virtualenv: its `envseal_venv_only` (whose `MARK`
    /// is "the agent") writes what `TOKEN` holds to `sink` when imported.
    /// The control is run here: imported by this venv's python with a
    /// decoy `TOKEN`, the decoy reaches the sink (then removed).
    pub fn agents(sink: &Path) -> Venv {
        let venv = Venv::new();
        fs::write(
            &venv.package,
            format!(
                "import os\nopen({:?}, 'w').write(os.environ.get('TOKEN', ''))\n\
                 MARK = 'the agent'\n",
                sink.display().to_string()
            ),
        )
        .unwrap();
        let ran = Command::new(&venv.python)
            .args(["-c", "import envseal_venv_only"])
            .env("TOKEN", "decoy")
            .output()
            .unwrap();
        assert!(ran.status.success(), "the agent's venv did not run");
        assert_eq!(fs::read_to_string(sink).unwrap(), "decoy");
        fs::remove_file(sink).unwrap();
        venv
    }

    pub fn new() -> Venv {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new()
            .prefix("envseal-venv-")
            .tempdir_in("/var/tmp")
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = fs::canonicalize(dir.path()).unwrap().join("venv");
        let made = Command::new("/usr/bin/python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&root)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            made,
            "this test needs python3's venv module (package python3-venv; ./scripts/test installs it)"
        );
        let site = fs::read_dir(root.join("lib"))
            .unwrap()
            .flatten()
            .map(|e| e.path().join("site-packages"))
            .find(|p| p.is_dir())
            .expect("the venv has a site-packages directory");
        let package = site.join("envseal_venv_only");
        fs::create_dir(&package).unwrap();
        let package = package.join("__init__.py");
        fs::write(&package, "MARK = 'from the venv'\n").unwrap();
        Venv {
            dir,
            python: root.join("bin/python"),
            package,
        }
    }

    /// The script's text: `#!` this venv's python.
    pub fn script(&self) -> String {
        format!(
            "#!{}\nimport hashlib, os, sys, envseal_venv_only\n\
             print(envseal_venv_only.MARK, sys.prefix == {:?}, \
             hashlib.sha256(os.environ.get('TOKEN', '').encode()).hexdigest())\n",
            self.python.display(),
            self.python.parent().unwrap().parent().unwrap().display()
        )
    }
}

/// Where a file secret in variable `var` is, in `tier`: the descriptor
/// `slot` (by its name's order) in None, a file in the sandbox's
/// `/run/envseal/secrets` elsewhere.
pub fn secret_path(tier: &str, slot: u32, var: &str) -> String {
    match tier {
        "none" => format!("/dev/fd/{slot}"),
        _ => format!("{}/{var}", envseal_launcher::SECRET_DIR),
    }
}

/// A new ed25519 key pair, made with `ssh-keygen` in `dir`: the private
/// and the public key as their files hold them.
pub fn ssh_key(dir: &Path) -> (String, String) {
    let key = dir.join("id");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&key)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        made,
        "this test needs ssh-keygen (package openssh-client; ./scripts/test installs it)"
    );
    (
        fs::read_to_string(&key).unwrap(),
        fs::read_to_string(key.with_extension("pub")).unwrap(),
    )
}

/// What [`Venv::script`] prints when `TOKEN` holds `value`.
pub fn venv_script_says(value: &str) -> String {
    format!("from the venv True {}\n", sha256_hex(value.as_bytes()))
}

/// A Python script printing where its two file secrets `A` and `B` are
/// (`$A_FILE`, `$B_FILE`) and its own path (`argv[0]`), then the SHA-256
/// of what each holds (never the value). Python hashes by itself: in
/// Lockdown a script may execute nothing but its interpreter.
pub const FD_READER: &str = r#"#!/usr/bin/python3
import hashlib, os, sys
print(os.environ["A_FILE"], os.environ["B_FILE"], sys.argv[0])
for var in ("A_FILE", "B_FILE"):
    with open(os.environ[var], "rb") as f:
        print(hashlib.sha256(f.read()).hexdigest())
"#;

/// What [`FD_READER`], pinned `at` that path, prints in `tier` for values
/// `a` and `b`: in None the files are `/dev/fd/3` and `/dev/fd/4` (in the
/// order of their names), wherever the program was launched from, and the
/// script's copy `/dev/fd/5`; in the sandbox the files are in
/// `/run/envseal/secrets` and the script runs at its real path.
pub fn fd_reader_says(tier: &str, at: &str, a: &str, b: &str) -> String {
    let paths = match tier {
        "none" => "/dev/fd/3 /dev/fd/4 /dev/fd/5".to_owned(),
        _ => {
            let dir = envseal_launcher::SECRET_DIR;
            format!("{dir}/A_FILE {dir}/B_FILE {at}")
        }
    };
    format!(
        "{paths}\n{}\n{}\n",
        sha256_hex(a.as_bytes()),
        sha256_hex(b.as_bytes())
    )
}
