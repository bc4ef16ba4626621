//! The probe: a small C program (tests/probe/probe.c) that the tests pin
//! and run through envseal. It reports what it received as hashes, never
//! values; [`Report`] parses that and [`fnv`] computes the same hash.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output};
use std::sync::OnceLock;

const SOURCE: &str = include_str!("../probe/probe.c");
const MARKER: &[u8] = b"ENVSEAL-PROBE-VARIANT:";

/// The compiled probe's bytes, variant A (compiled once per test binary).
pub fn bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("probe.c");
        fs::write(&src, SOURCE).unwrap();
        let out = dir.path().join("probe");
        let st = Command::new("cc")
            .args(["-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect(
                "a C compiler (cc) is needed to build the test probe; ./scripts/test installs gcc",
            );
        assert!(st.success(), "compiling tests/probe/probe.c failed");
        fs::read(&out).unwrap()
    })
}

/// The probe's bytes with its variant marker set to `variant`: a program
/// that differs from variant A but behaves the same, except that it
/// reports `variant`.
pub fn variant(variant: u8) -> Vec<u8> {
    let mut b = bytes().to_vec();
    let at = b
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .expect("the probe has a variant marker");
    b[at + MARKER.len()] = variant;
    b
}

/// Writes an executable (mode 0755) at `path`.
pub fn install(path: &Path, bytes: &[u8]) -> PathBuf {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    fs::canonicalize(path).unwrap()
}

/// 64-bit FNV-1a, as the probe computes it, in its 16-digit hex form.
pub fn fnv(bytes: &[u8]) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(1099511628211);
    }
    format!("{h:016x}")
}

/// What the probe reported.
#[derive(Debug, Default)]
pub struct Report {
    pub variant: String,
    pub pid: i32,
    pub dumpable: i32,
    pub args: Vec<String>,
    /// Variable name → hash of its value.
    pub env: BTreeMap<String, String>,
    /// `*_FILE` variable → hash of the file's contents (or "unreadable").
    pub files: BTreeMap<String, String>,
    pub fds: BTreeSet<i32>,
    pub lines: Vec<String>,
}

impl Report {
    pub fn parse(stdout: &[u8]) -> Report {
        let text = String::from_utf8_lossy(stdout);
        let mut r = Report::default();
        for line in text.lines() {
            r.lines.push(line.to_owned());
            let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
            match tag {
                "variant" => r.variant = rest.to_owned(),
                "pid" => r.pid = rest.parse().unwrap(),
                "dumpable" => r.dumpable = rest.parse().unwrap(),
                "arg" => r.args.push(rest.to_owned()),
                "env" | "file" => {
                    let (k, v) = rest.split_once(' ').unwrap();
                    let map = if tag == "env" {
                        &mut r.env
                    } else {
                        &mut r.files
                    };
                    map.insert(k.to_owned(), v.to_owned());
                }
                "fd" => {
                    r.fds.insert(rest.parse().unwrap());
                }
                _ => {}
            }
        }
        assert!(
            !r.variant.is_empty(),
            "the probe did not report (did it run?)"
        );
        r
    }

    /// Whether variable `name` holds exactly `value`.
    pub fn env_is(&self, name: &str, value: &[u8]) -> bool {
        self.env.get(name) == Some(&fnv(value))
    }

    /// Whether any variable holds `value`.
    pub fn any_env_is(&self, value: &[u8]) -> bool {
        let h = fnv(value);
        self.env.values().any(|v| *v == h)
    }
}

/// A probe started in `PROBE_MODE=sleep` (directly or through envseal),
/// read up to its "ready" line.
pub struct Sleeping {
    pub child: Child,
    stdout: BufReader<ChildStdout>,
    /// Everything it printed so far.
    pub seen: String,
}

impl Sleeping {
    /// Spawns `command` (stdout piped) and waits for "ready".
    pub fn start(command: &mut Command) -> Sleeping {
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        while !seen.ends_with("ready\n") {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "the probe never got ready"
            );
            seen.push_str(&line);
        }
        Sleeping {
            child,
            stdout,
            seen,
        }
    }

    /// What the probe reported before it got ready.
    pub fn report(&self) -> Report {
        Report::parse(self.seen.as_bytes())
    }

    /// Sends `signal` to the spawned process (envseal, when the probe was
    /// started through it) and collects everything until it exits.
    pub fn signal_and_finish(mut self, signal: nix::sys::signal::Signal) -> Output {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
        self.stdout.read_to_string(&mut self.seen).unwrap();
        let mut stderr = Vec::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_end(&mut stderr).unwrap();
        }
        let status = self.child.wait().unwrap();
        Output {
            status,
            stdout: self.seen.into_bytes(),
            stderr,
        }
    }
}

/// `envseal exec` of the pinned probe, sleeping; SIGTERM sent to envseal
/// must reach the probe, whose handler prints it and exits 3, and envseal
/// must exit with that status.
pub fn assert_sigterm_reaches_the_program(env: &super::Env, prog: &Path) {
    let mut c = env.command_pw(&["exec", "--", prog.to_str().unwrap()]);
    c.env("PROBE_MODE", "sleep")
        .stdin(std::process::Stdio::null());
    let out = Sleeping::start(&mut c).signal_and_finish(nix::sys::signal::Signal::SIGTERM);
    let r = env.record(format!("exec {} (SIGTERM to envseal)", prog.display()), out);
    env.expect_code(&r, 3);
    env.expect_stdout(&r, &["got-signal 15"]);
}

/// The variables the probe reads, which a grant must pass it (the
/// environment is an allowlist: G9).
const PASSED: [&str; 8] = [
    "PROBE_EXEC",
    "PROBE_EXIT",
    "PROBE_GATE",
    "PROBE_HOST_PID",
    "PROBE_MARK",
    "PROBE_MODE",
    "PROBE_OUTSIDE",
    "PROBE_TCP",
];

/// `allow` arguments for the probe: `args` with an `--env NAME` for each
/// variable it reads, before the `--` that ends the options.
pub fn with_env<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let end = args.iter().rposition(|a| *a == "--").unwrap_or(args.len());
    let mut out = args[..end].to_vec();
    for name in PASSED {
        out.extend(["--env", name]);
    }
    out.extend_from_slice(&args[end..]);
    out
}
