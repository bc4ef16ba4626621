//! Real programs run unmodified (issue 15). In Hardened and Lockdown a
//! pinned program runs at its real path: `/proc/self/exe`, `$ORIGIN`, a
//! script's own path and directory are the real ones, so a node script
//! can start its own interpreter again, a Python script imports a module
//! beside it, a C program finds a file beside its executable and its
//! libraries through `RPATH $ORIGIN/../lib`. Each case runs in-process (as
//! root) and through the broker (as an unprivileged user with subordinate
//! ids), and checks that the program did its job with the right secret.
//!
//! Tier None has no mount namespace and runs programs from their sealed
//! copies (see docs/threat-model.md, "Real paths"), so these cases are
//! run in the namespaced tiers; the real programs that need no real path
//! (Perl, a virtualenv's Python, openssl and ssh-keygen given file
//! secrets) are tested in every tier in exec.rs and broker.rs.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::broker::{Scene, scene};
use crate::util::{Env, probe, value};

const TIERS: [&str; 2] = ["hardened", "lockdown"];

/// A program to pin: where it is, and what it must print.
struct Case {
    program: PathBuf,
    says: String,
}

/// A world-readable directory for programs outside /tmp (Lockdown gives
/// the program a private /tmp, which would hide a program's siblings).
fn app_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("envseal-compat-")
        .tempdir_in("/var/tmp")
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write(path: &Path, body: &str, mode: u32) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    fs::canonicalize(path).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Compiles C `source` with `cc` and `flags` into `out`.
pub(crate) fn cc(source: &str, out: &Path, flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("src.c");
    fs::write(&c, source).unwrap();
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let st = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(out)
        .arg(&c)
        .args(flags)
        .status()
        .expect("this test needs a C compiler (./scripts/test installs gcc)");
    assert!(st.success(), "cc {flags:?} failed");
    fs::set_permissions(out, fs::Permissions::from_mode(0o755)).unwrap();
}

/// C: prints 64-bit FNV-1a of `TOKEN` in the probe's form (what a
/// program printing its secret's fingerprint looks like).
const FNV: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void fnv_token(void) {
    const char *t = getenv("TOKEN");
    unsigned long long h = 1469598103934665603ULL;
    for (; t && *t; t++) { h ^= (unsigned char)*t; h *= 1099511628211ULL; }
    printf(" %016llx\n", h);
}
"#;

/// Pins each case at `tier` in turn and runs it twice in-process, then
/// as an unprivileged user through the broker; each run must print what
/// the case says. `make(dir, tier, the user's uid)` builds the cases in
/// `dir` (`None`: for root's in-process runs).
fn runs_at_real_paths(tag: &str, make: impl Fn(&Path, &str, Option<(u32, u32)>) -> Vec<Case>) {
    let token = value(tag);
    // In-process, as root.
    let env = Env::initialized();
    env.set_approved("TOKEN", &token);
    let apps = app_dir();
    for tier in TIERS {
        for case in make(&apps.path().join(tier), tier, None) {
            let p = s(&case.program);
            env.expect_ok(&env.allow(&["--secret", "TOKEN", "--tier", tier, "--", p]));
            for run in 1..=2 {
                let r = env.exec(&["--", p]);
                env.expect_ok(&r);
                assert_eq!(
                    r.stdout(),
                    case.says.replace("{TOKEN}", &probe::fnv(token.as_bytes())),
                    "{tag}, tier {tier}, run {run}: {}",
                    r.shown_stderr()
                );
            }
        }
    }
    // Through the broker, as the user.
    let mut scene = scene();
    let user = (scene.uid, scene.gid);
    let token = scene.token.clone();
    let apps = app_dir();
    let mut cases = Vec::new();
    for tier in TIERS {
        for case in make(&apps.path().join(format!("user-{tier}")), tier, Some(user)) {
            allow_token(&scene, tier, &[], s(&case.program));
            cases.push((tier, case));
        }
    }
    scene.unlock(&[]);
    for (tier, case) in &cases {
        for run in 1..=2 {
            let r = scene.run(&["exec", "--", s(&case.program)]);
            scene.env.expect_ok(&r);
            assert_eq!(
                r.stdout(),
                case.says.replace("{TOKEN}", &probe::fnv(token.as_bytes())),
                "{tag} through the broker, tier {tier}, run {run}: {}",
                r.shown_stderr()
            );
        }
    }
}

/// `allow --secret TOKEN --tier TIER -- PROGRAM` as the scene's user; it
/// must succeed.
fn allow_token(scene: &Scene, tier: &str, extra: &[&str], program: &str) {
    let mut args = vec!["allow", "--secret", "TOKEN", "--tier", tier];
    args.extend_from_slice(extra);
    args.extend(["--", program]);
    let r = scene.run_pw(&args);
    scene.env.expect_ok(&r);
}

/// Appends 1 MiB of zeros to the program at `path` (it still runs): larger
/// than its loader, a program of root's runs from its own file, with only
/// its loader copied.
fn pad(path: &Path) {
    use std::io::Write as _;
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&vec![0; 1024 * 1024]).unwrap();
}

/// Gives `path` to the user (a program of the user's own, which the
/// sandbox runs from a copy mounted over its path).
fn give(path: &Path, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// `#!/usr/bin/env node`: node resolves its main script's real path, and
/// the script starts `process.execPath` (its own interpreter) again.
#[test]
fn a_node_script_starts_its_own_interpreter() {
    let node = fs::canonicalize("/usr/bin/node")
        .expect("this test needs node (./scripts/test installs nodejs)");
    runs_at_real_paths("node", |dir, _tier, user| {
        let script = write(
            &dir.join("api.js"),
            "#!/usr/bin/env node\n\
             const { execFileSync } = require('child_process');\n\
             const two = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(1 + 1))']);\n\
             let h = 1469598103934665603n;\n\
             for (const b of Buffer.from(process.env.TOKEN || '')) {\n\
               h ^= BigInt(b); h = (h * 1099511628211n) & 0xffffffffffffffffn;\n\
             }\n\
             console.log(`${__filename} ${process.execPath} ${two} ${h.toString(16).padStart(16, '0')}`);\n",
            0o755,
        );
        give(&script, user);
        vec![Case {
            says: format!("{} {} 2 {{TOKEN}}\n", s(&script), s(&node)),
            program: script,
        }]
    });
}

/// A Python script imports a module that lives beside it (its directory
/// is the first entry of `sys.path`).
#[test]
fn a_python_script_imports_a_module_beside_it() {
    runs_at_real_paths("python", |dir, tier, user| {
        write(
            &dir.join("helper.py"),
            &format!("WHERE = 'the helper beside the script ({tier})'\n"),
            0o644,
        );
        let script = write(
            &dir.join("main.py"),
            "#!/usr/bin/python3\nimport os, sys, helper\n\
             h = 1469598103934665603\n\
             for b in os.environ.get('TOKEN', '').encode():\n\
             \x20   h = ((h ^ b) * 1099511628211) % 2**64\n\
             print(sys.path[0], helper.WHERE, '%016x' % h)\n",
            0o755,
        );
        give(&script, user);
        vec![Case {
            says: format!(
                "{} the helper beside the script ({tier}) {{TOKEN}}\n",
                s(dir.canonicalize().as_deref().unwrap())
            ),
            program: script,
        }]
    });
}

/// A C program reads a file beside its own executable, found through
/// `/proc/self/exe`; one of root's (made larger than its loader: run from
/// its own file) and one of the user's (run from a copy mounted at its
/// path).
#[test]
fn a_c_program_reads_a_file_beside_its_executable() {
    let source = format!(
        "{FNV}\n#include <libgen.h>\n#include <limits.h>\n#include <unistd.h>\n\
         int main(void) {{\n\
           char exe[PATH_MAX] = {{0}}, data[PATH_MAX + 16], line[128] = {{0}};\n\
           if (readlink(\"/proc/self/exe\", exe, sizeof exe - 1) < 0) return 2;\n\
           printf(\"%s\", exe);\n\
           snprintf(data, sizeof data, \"%s/data.txt\", dirname(exe));\n\
           FILE *f = fopen(data, \"r\");\n\
           if (!f || !fgets(line, sizeof line, f)) return 3;\n\
           line[strcspn(line, \"\\n\")] = 0;\n\
           printf(\" %s\", line);\n\
           fnv_token();\n\
           return 0;\n\
         }}\n"
    );
    let build = tempfile::tempdir().unwrap();
    let binary = build.path().join("reader");
    cc(&source, &binary, &[]);
    runs_at_real_paths("beside", |dir, tier, user| {
        ["root", "own"]
            .iter()
            .map(|whose| {
                let bin = dir.join(whose);
                write(
                    &bin.join("data.txt"),
                    &format!("data for {tier}/{whose}\n"),
                    0o644,
                );
                let exe = bin.join("reader");
                fs::copy(&binary, &exe).unwrap();
                if *whose == "root" {
                    pad(&exe);
                }
                let exe = fs::canonicalize(&exe).unwrap();
                if *whose == "own" {
                    give(&exe, user.or(Some((65534, 65534))));
                }
                Case {
                    says: format!("{} data for {tier}/{whose} {{TOKEN}}\n", s(&exe)),
                    program: exe,
                }
            })
            .collect()
    });
}

/// A C program linked with `-Wl,-rpath,'$ORIGIN/../lib'` against a
/// library in `../lib` (as Java's `java` finds its own): the loader finds
/// it beside the real executable; root's and the user's.
#[test]
fn a_c_program_finds_its_library_through_origin() {
    let build = tempfile::tempdir().unwrap();
    let lib_src = build.path().join("libgreet.so");
    cc(
        "#include <stdio.h>\nconst char *where(void) {\n\
         static char buf[4200];\n\
         FILE *f = fopen(\"/proc/self/maps\", \"r\"); char line[4200];\n\
         while (f && fgets(line, sizeof line, f)) {\n\
           char *p = strstr(line, \"/libgreet.so\");\n\
           if (p) { char *s = strchr(line, '/'); *p = 0; snprintf(buf, sizeof buf, \"%s\", s); break; }\n\
         }\n\
         return buf;\n}\n#include <string.h>\n",
        &lib_src,
        &["-shared", "-fPIC", "-include", "string.h"],
    );
    let source = format!(
        "{FNV}\nconst char *where(void);\n\
         int main(void) {{ printf(\"library from %s\", where()); fnv_token(); return 0; }}\n"
    );
    runs_at_real_paths("origin", |dir, _tier, user| {
        ["root", "own"]
            .iter()
            .map(|whose| {
                let base = dir.join(whose);
                fs::create_dir_all(base.join("lib")).unwrap();
                fs::copy(&lib_src, base.join("lib/libgreet.so")).unwrap();
                let exe = base.join("bin/greet");
                cc(
                    &source,
                    &exe,
                    &[
                        &format!("-L{}", base.join("lib").display()),
                        "-lgreet",
                        "-Wl,-rpath,$ORIGIN/../lib",
                    ],
                );
                let exe = fs::canonicalize(&exe).unwrap();
                if *whose == "own" {
                    give(&exe, user.or(Some((65534, 65534))));
                } else {
                    pad(&exe);
                }
                Case {
                    says: format!(
                        "library from {}/lib {{TOKEN}}\n",
                        s(&fs::canonicalize(&base).unwrap())
                    ),
                    program: exe,
                }
            })
            .collect()
    });
    // The control: run directly from elsewhere, the same binary finds no
    // library (the path really comes from $ORIGIN).
    let apps = app_dir();
    let exe = apps.path().join("greet");
    cc(
        &source,
        &exe,
        &[
            &format!("-L{}", build.path().display()),
            "-lgreet",
            "-Wl,-rpath,$ORIGIN/../lib",
        ],
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(
        !out.status.success(),
        "the control found its library anyway"
    );
}

/// Debian's `/usr/bin/git`, pinned in Lockdown with no `--may-exec`:
/// `git commit` (which runs `git maintenance` from
/// `/usr/lib/git-core/git`, a byte-identical copy that `allow` found and
/// pinned) and `git gc` (which runs `git repack` and `git pack-objects`
/// the same way) work in a repository in the working directory, in-process
/// and through the broker; the commit is there afterwards.
#[test]
fn debian_git_commits_in_lockdown_with_no_may_exec() {
    let git = Path::new("/usr/bin/git");
    assert!(
        git.exists() && Path::new("/usr/lib/git-core/git").exists(),
        "this test needs Debian's git package (./scripts/test installs it)"
    );
    let ident = ["-c", "user.name=envseal", "-c", "user.email=test@envseal"];
    let commit = [
        &ident[..],
        &["commit", "--allow-empty", "-q", "-m", "from lockdown"],
    ]
    .concat();
    let gc = [&ident[..], &["gc", "-q"]].concat();
    // In-process, as root.
    let env = Env::initialized();
    let token = value("git");
    env.set_approved("TOKEN", &token);
    let r = env.allow(&[
        "--secret",
        "TOKEN",
        "--tier",
        "lockdown",
        "--write-cwd",
        "--",
        "/usr/bin/git",
    ]);
    env.expect_ok(&r);
    env.expect_stderr(&r, &["/usr/lib/git-core/git is the same program"]);
    // Outside /tmp (Lockdown's private /tmp would hide it); the working
    // directory, which the grant lets the program write.
    let apps = app_dir();
    let repo = apps.path().join("repo");
    let init = Command::new(git)
        .arg("init")
        .arg("-q")
        .arg(&repo)
        .status()
        .unwrap();
    assert!(init.success());
    for args in [&commit, &gc] {
        let mut c = env.command_pw(&[&["exec", "--", "/usr/bin/git"][..], args].concat());
        c.current_dir(&repo);
        let r = env.run_command(format!("git {args:?} (lockdown)"), c, b"");
        env.expect_ok(&r);
    }
    let log = Command::new(git)
        .args(["log", "--format=%s"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&log.stdout), "from lockdown\n");
    // Through the broker, as the user, in the user's own repository.
    let mut scene = scene();
    allow_token(&scene, "lockdown", &["--write-cwd"], "/usr/bin/git");
    scene.unlock(&[]);
    let apps = app_dir();
    let repo = apps.path().join("repo");
    fs::create_dir(&repo).unwrap();
    std::os::unix::fs::chown(&repo, Some(scene.uid), Some(scene.gid)).unwrap();
    let git_in =
        |args: &[&str]| scene.run_in(&repo, &[&["exec", "--", "/usr/bin/git"][..], args].concat());
    scene.env.expect_ok(&git_in(&["init", "-q"]));
    for args in [&commit, &gc] {
        scene.env.expect_ok(&git_in(args));
    }
    let r = git_in(&["log", "--format=%s"]);
    scene.env.expect_ok(&r);
    assert_eq!(r.stdout(), "from lockdown\n");
}

/// Debian's `psql`, a link to the Perl wrapper `pg_wrapper`, which runs
/// the real client named after its own `$0`: given the link's path (only
/// root can change where it leads), it prints the version the client
/// prints when run directly; in-process and through the broker.
#[test]
fn debian_psql_wrapper_prints_its_version() {
    assert!(
        Path::new("/usr/bin/psql").exists(),
        "this test needs Debian's postgresql-client (./scripts/test installs it)"
    );
    let direct = Command::new("/usr/bin/psql")
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&direct.stdout).into_owned();
    assert!(version.starts_with("psql (PostgreSQL)"), "{version}");
    let client = fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .flatten()
        .map(|d| d.path().join("bin/psql"))
        .find(|p| p.exists())
        .unwrap();
    let grant = |tier: &'static str| {
        vec![
            "--secret".to_owned(),
            "TOKEN".into(),
            "--tier".into(),
            tier.into(),
            "--may-exec".into(),
            s(&client).into(),
            "--args-exact".into(),
            "--version".into(),
            "--".into(),
            "psql".into(),
        ]
    };
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("psql"));
    for tier in TIERS {
        let g = grant(tier);
        env.expect_ok(&env.allow(&g.iter().map(String::as_str).collect::<Vec<_>>()));
        let r = env.exec(&["--", "psql", "--version"]);
        env.expect_ok(&r);
        assert_eq!(r.stdout(), version, "tier {tier}: {}", r.shown_stderr());
    }
    let mut scene = scene();
    let g = grant("lockdown");
    let mut args = vec!["allow"];
    args.extend(g.iter().map(String::as_str));
    scene.env.expect_ok(&scene.run_pw(&args));
    scene.unlock(&[]);
    let r = scene.run(&["exec", "--", "/usr/bin/psql", "--version"]);
    scene.env.expect_ok(&r);
    assert_eq!(
        r.stdout(),
        version,
        "through the broker: {}",
        r.shown_stderr()
    );
}

/// `ssh -i PATH`: ssh closes every inherited descriptor at start-up, so a
/// key passed as `/dev/fd/N` (tier None: the control) is "not accessible";
/// in the sandbox the file secret is a file at `/run/envseal/secrets/VAR`,
/// and ssh loads it as its identity (`-v` says so, with its type) before
/// the connection — here through a proxy command that closes at once —
/// fails.
#[test]
fn ssh_loads_its_identity_from_a_file_secret_in_the_sandbox() {
    let env = Env::initialized();
    let keys = tempfile::tempdir().unwrap();
    env.set_approved("SSH_KEY", &crate::util::ssh_key(keys.path()).0);
    let ssh = fs::canonicalize("/usr/bin/ssh").unwrap();
    let shell = fs::canonicalize("/bin/sh").unwrap();
    // Tier None first: the control, where the key is `/dev/fd/3`.
    for tier in ["none", "hardened", "lockdown"] {
        let path = crate::util::secret_path(tier, 3, "SSH_KEY_FILE");
        env.expect_ok(&env.allow(&[
            "--file",
            "SSH_KEY",
            "--tier",
            tier,
            "--may-exec",
            s(&shell),
            "--",
            s(&ssh),
        ]));
        let r = env.exec(&[
            "--",
            s(&ssh),
            "-v",
            "-F",
            "/dev/null",
            "-i",
            &path,
            "-o",
            "BatchMode=yes",
            "-o",
            "ProxyCommand=exec true",
            "envseal-test-host",
            "true",
        ]);
        env.expect_code(&r, 255);
        let loaded = r.stderr().contains(&format!("identity file {path} type 3"))
            && !r.stderr().contains("not accessible");
        assert_eq!(
            loaded,
            tier != "none",
            "tier {tier}: ssh loaded its identity from {path}: {}",
            r.shown_stderr()
        );
    }
}

/// Pinning a virtualenv's `bin/python` (a link to the system interpreter)
/// pins that virtualenv: called by that path it runs as the venv's python
/// (it imports a package only the venv has), whatever name the caller
/// typed. The agent's attempts are refused and its sink stays empty: its
/// own virtualenv (whose package of the same name would hand it the
/// secret — the control shows it does, run directly with a decoy) and the
/// system interpreter's own path, with the same arguments. Pinning the
/// system interpreter, in turn, does not let a virtualenv's python run.
#[test]
fn a_virtualenv_python_pinned_is_that_virtualenv() {
    let env = Env::initialized();
    let token = value("venv-pin");
    env.set_approved("TOKEN", &token);
    let venv = crate::util::Venv::new();
    // The agent's venv; run as it (the control), its package gets TOKEN.
    let sink = env.tmp.path().join("sink");
    let agents = crate::util::Venv::agents(&sink);
    let code = "import envseal_venv_only, hashlib, os; print(envseal_venv_only.MARK, \
                hashlib.sha256(os.environ['TOKEN'].encode()).hexdigest())";

    let python = s(&venv.python);
    let r = env.allow(&[
        "--secret",
        "TOKEN",
        "--args-exact",
        "-c",
        code,
        "--",
        python,
    ]);
    env.expect_ok(&r);
    env.expect_stdout(&r, &["virtualenv", python]);
    let says = format!(
        "from the venv {}\n",
        crate::util::sha256_hex(token.as_bytes())
    );
    let r = env.exec(&["--", python, "-c", code]);
    env.expect_ok(&r);
    assert_eq!(r.stdout(), says, "{}", r.shown_stderr());
    // Typed another way (relative to the venv), it still runs as the venv.
    let mut c = env.command_pw(&["exec", "--", "./python", "-c", code]);
    c.current_dir(venv.python.parent().unwrap());
    let r = env.run_command("exec ./python (the venv's bin)".into(), c, b"");
    env.expect_ok(&r);
    assert_eq!(r.stdout(), says);
    for other in [s(&agents.python), "/usr/bin/python3"] {
        let r = env.exec(&["--", other, "-c", code]);
        env.expect_code(&r, crate::util::code::DENIED);
        env.expect_stderr(&r, &["virtualenv"]);
        assert!(r.stdout.is_empty(), "{other} ran");
        assert!(
            !sink.exists(),
            "{other}: the agent's package got the secret"
        );
    }
    // The interpreter itself pinned: a virtualenv's python does not run.
    let system = fs::canonicalize("/usr/bin/python3").unwrap();
    let r = env.allow(&[
        "--secret",
        "TOKEN",
        "--args-exact",
        "-c",
        code,
        "--",
        s(&system),
    ]);
    env.expect_ok(&r);
    env.expect_stderr(&r, &["it pins the interpreter itself (was the virtualenv"]);
    let r = env.exec(&["--", s(&agents.python), "-c", code]);
    env.expect_code(&r, crate::util::code::DENIED);
    env.expect_stderr(&r, &["is a virtualenv's python", "envseal allow"]);
    assert!(!sink.exists(), "the agent's package got the secret");
}

/// Lockdown lets a program of root's run itself again under another
/// hard-linked name (git's `libexec/git-core/git` in a source build is a
/// hard link of `bin/git`): a small program (run from a copy at its path)
/// re-executes itself through its hard link, in-process and through the
/// broker. A byte-identical copy that `allow` did not find (another inode,
/// elsewhere) still does not run.
#[test]
fn lockdown_runs_the_program_under_its_hard_links() {
    let source = "#include <errno.h>\n#include <stdio.h>\n#include <stdlib.h>\n\
                  #include <string.h>\n#include <sys/wait.h>\n#include <unistd.h>\n\
                  int main(int argc, char **argv) {\n\
                    if (argc > 1 && strcmp(argv[1], \"again\") == 0) { printf(\"again\\n\"); return 0; }\n\
                    fflush(stdout);\n\
                    pid_t c = fork();\n\
                    if (c == 0) { char *a[] = { \"self\", \"again\", NULL }; execv(getenv(\"ALIAS\"), a); _exit(100 + errno); }\n\
                    int st = 0; waitpid(c, &st, 0);\n\
                    if (WEXITSTATUS(st) >= 100) printf(\"errno %d\\n\", WEXITSTATUS(st) - 100);\n\
                    return 0;\n\
                  }\n";
    let build = tempfile::tempdir().unwrap();
    let binary = build.path().join("selfexec");
    cc(source, &binary, &[]);
    let apps = app_dir();
    let bin = apps.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let prog = bin.join("tool");
    fs::copy(&binary, &prog).unwrap();
    let link = bin.join("tool-again");
    fs::hard_link(&prog, &link).unwrap();
    let stray = apps.path().join("stray-copy");
    fs::copy(&binary, &stray).unwrap();
    let runs = |alias: &Path, run: &dyn Fn(&str) -> crate::util::Run| {
        let r = run(s(alias));
        assert_eq!(r.code, Some(0), "{}", r.shown_stderr());
        r.stdout()
    };
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("hardlink"));
    env.expect_ok(&env.allow(&[
        "--secret",
        "TOKEN",
        "--tier",
        "lockdown",
        "--env",
        "ALIAS",
        "--",
        s(&prog),
    ]));
    let in_process = |alias: &str| {
        let mut c = env.command_pw(&["exec", "--", s(&prog)]);
        c.env("ALIAS", alias);
        env.run_command(format!("exec tool (ALIAS={alias})"), c, b"")
    };
    assert_eq!(runs(&link, &in_process), "again\n");
    assert_eq!(runs(&stray, &in_process), "errno 13\n");
    let mut scene = scene();
    allow_token(&scene, "lockdown", &["--env", "ALIAS"], s(&prog));
    scene.unlock(&[]);
    let brokered = |alias: &str| {
        let mut c = scene.envseal(&["exec", "--", s(&prog)]);
        c.env("ALIAS", alias);
        scene.env.record(
            format!("(as user) exec tool (ALIAS={alias})"),
            c.output().unwrap(),
        )
    };
    assert_eq!(runs(&link, &brokered), "again\n");
    assert_eq!(runs(&stray, &brokered), "errno 13\n");
}

/// A script runs by the path the caller found it at only when that link
/// is one only root can change (Debian's `/usr/bin/psql`, tested above):
/// through a link of the agent's own — which it could point elsewhere
/// between envseal's check and the interpreter's open — the interpreter is
/// told the pinned path, and the agent's path never reaches it.
#[test]
fn a_script_called_through_the_agents_link_runs_by_its_pinned_path() {
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("link"));
    let apps = app_dir();
    let script = write(
        &apps.path().join("app/tool.sh"),
        "#!/bin/sh\necho \"$0\"\n",
        0o755,
    );
    let agents = apps.path().join("agent");
    fs::create_dir(&agents).unwrap();
    let link = agents.join("tool");
    std::os::unix::fs::symlink(&script, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(&agents, Some(65534), Some(65534)).unwrap();
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--tier", "hardened", "--", s(&script)]));
    let r = env.exec(&["--", s(&link)]);
    env.expect_ok(&r);
    assert_eq!(
        r.stdout(),
        format!("{}\n", s(&script)),
        "{}",
        r.shown_stderr()
    );
}
