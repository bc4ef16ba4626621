//! G9, the sealed deputy (issue 16): an agent inside `envseal shield`, as
//! an unprivileged user, runs realistic pinned programs through the broker
//! and tries to steer each into giving its secret away — through the
//! environment, a redirected `HOME`, a free argument tail, the working
//! directory, and the output streams. Each attempt has a sink the agent
//! controls, which must stay free of the secret, and a control run showing
//! the program still does its real job with the real secret.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::broker::{Scene, TIERS, scene};
use crate::util::{self, code, contains, sha256_hex};

/// A loopback TCP listener whose thread reads each connection's first
/// bytes, gives them to `keep`, and answers `reply`.
fn listen<T: Send + 'static>(
    reply: &'static [u8],
    keep: impl Fn(&[u8], &mut Vec<T>) + Send + 'static,
) -> (u16, Arc<Mutex<Vec<T>>>) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let theirs = kept.clone();
    std::thread::spawn(move || {
        for mut c in server.incoming().flatten() {
            let mut buf = vec![0u8; 8192];
            let n = c.read(&mut buf).unwrap_or(0);
            keep(&buf[..n], &mut theirs.lock().unwrap());
            let _ = c.write_all(reply);
        }
    });
    (port, kept)
}

/// A local HTTP service that answers every request with `ok` and keeps
/// the SHA-256 of each request's bearer token (never the token itself).
fn service() -> (u16, Arc<Mutex<Vec<String>>>) {
    listen(
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        |bytes, seen| {
            let text = String::from_utf8_lossy(bytes);
            let prefix = "Authorization: Bearer ";
            if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
                let token = line.trim_start_matches(prefix).trim();
                seen.push(sha256_hex(token.as_bytes()));
            }
        },
    )
}

/// A listener the agent runs (a proxy, a fake server): every byte any
/// connection sends, kept.
fn agents_listener() -> (u16, Arc<Mutex<Vec<u8>>>) {
    listen(b"HTTP/1.0 502 Bad Gateway\r\n\r\n", |bytes, got| {
        got.extend_from_slice(bytes)
    })
}

/// Pins `program` for the scene's `TOKEN` as the person does (the user,
/// with the passphrase), with `extra` flags.
pub(crate) fn allow(s: &Scene, extra: &[&str], program: &Path) -> util::Run {
    let mut args = vec!["allow", "--secret", "TOKEN"];
    args.extend_from_slice(extra);
    args.extend(["--", program.to_str().unwrap()]);
    let r = s.run_pw(&args);
    s.env.expect_ok(&r);
    r
}

/// Runs `script` with `sh -c` as the agent inside a shield, in `cwd`.
pub(crate) fn agent(s: &Scene, cwd: &Path, script: &str) -> util::Run {
    s.run_in(cwd, &["shield", "--", "sh", "-c", script])
}

/// Whether file `sink` holds `secret` (a missing sink holds nothing).
fn sink_holds(sink: &Path, secret: &str) -> bool {
    fs::read(sink).is_ok_and(|b| contains(&b, secret.as_bytes()))
}

/// The agent's own directory, outside the project: where it writes its
/// helper programs, configuration and sinks.
fn agents_dir(s: &Scene) -> std::path::PathBuf {
    let dir = s.home.join("agent");
    fs::create_dir_all(&dir).unwrap();
    give_to_user(s, &dir);
    dir
}

/// A directory outside /tmp (Lockdown's private /tmp would cover one
/// inside) holding `names`, all the scene's user's.
pub(crate) fn users_dirs_outside_tmp(
    s: &Scene,
    names: &[&str],
) -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    let base = tempfile::tempdir_in("/var/tmp").expect("these tests need /var/tmp");
    let dirs: Vec<_> = names.iter().map(|n| base.path().join(n)).collect();
    for d in &dirs {
        fs::create_dir_all(d).unwrap();
    }
    give_to_user(s, base.path());
    (base, dirs)
}

/// Gives `path`, and all beneath it, to the scene's user.
pub(crate) fn give_to_user(s: &Scene, path: &Path) {
    let chown = Command::new("chown")
        .args(["-R", &format!("{}:{}", s.uid, s.gid)])
        .arg(path)
        .status()
        .unwrap();
    assert!(chown.success(), "chown {}", path.display());
}

/// PATH steering: a pinned deploy script calls `sha256sum` by name; the
/// agent puts its own `sha256sum` first on PATH. The grant's PATH (the
/// person's, with the user-writable directories left out) decides: the
/// agent's helper never runs, in any tier, and the real helper does its
/// job. And a pinned program the agent runs cannot write what the shield
/// protects (`~/.bashrc`), though it could outside the shield's reach.
#[test]
fn a_path_hijacked_helper_never_runs() {
    let mut s = scene();
    let dir = agents_dir(&s);
    let sink = dir.join("sink");
    let bashrc = s.home.join(".bashrc");
    let before = fs::read(&bashrc).unwrap();
    for tier in TIERS {
        let deploy = s.script(
            &format!("deploy-{tier}"),
            "#!/bin/sh\nprintf %s \"$TOKEN\" | sha256sum | cut -c1-64\n",
        );
        let mut extra = vec!["--tier", tier];
        if tier == "lockdown" {
            extra.extend([
                "--may-exec",
                "/usr/bin/sha256sum",
                "--may-exec",
                "/usr/bin/cut",
            ]);
        }
        let r = allow(&s, &extra, &deploy);
        s.env.expect_stderr(&r, &["leaves out"]);
    }
    // A writer the person pinned (tier none): it appends to the file named.
    let writer = s.script("writer", "#!/bin/sh\nprintf 'written\\n' >> \"$1\"\n");
    allow(&s, &[], &writer);
    // The person started the broker from a shell whose PATH lacks the
    // agent's ~/bin; the shield, started with it, protects it, and what the
    // broker runs for the agent is kept from writing it too.
    s.unlock_with(&[], &[("PATH", "/usr/bin:/bin")]);
    let fake = format!(
        "#!/bin/sh\ncat > {sink}\necho 'echo agent' >> {bashrc}\necho 0000\n",
        sink = sink.display(),
        bashrc = bashrc.display()
    );
    fs::write(s.home.join("bin/sha256sum"), fake).unwrap();
    Command::new("chmod")
        .args(["0755", s.home.join("bin/sha256sum").to_str().unwrap()])
        .status()
        .unwrap();
    let want = sha256_hex(s.token.as_bytes());
    for tier in TIERS {
        let deploy = s.bins.join(format!("deploy-{tier}"));
        let r = agent(
            &s,
            &s.project,
            &format!(
                "PATH=$HOME/bin:$PATH {envseal} exec -- {deploy}",
                envseal = s.envseal.display(),
                deploy = deploy.display()
            ),
        );
        s.env.expect_ok(&r);
        assert!(
            !sink_holds(&sink, &s.token),
            "{tier}: the agent's helper received the secret"
        );
        assert!(!sink.exists(), "{tier}: the agent's helper ran");
        // The control: the real helper ran, on the real secret.
        assert_eq!(r.stdout().trim(), want, "{tier}: {}", r.shown_stderr());
    }
    assert_eq!(
        fs::read(&bashrc).unwrap(),
        before,
        "the person's .bashrc changed"
    );
    // Deliver 3: what the broker runs for the agent is confined like it.
    let r = agent(
        &s,
        &s.project,
        &format!(
            "{envseal} exec -- {writer} {bashrc}; echo status $?; \
             {envseal} exec -- {writer} {planted}; \
             {envseal} exec -- {writer} notes.txt && echo project ok",
            envseal = s.envseal.display(),
            writer = writer.display(),
            bashrc = bashrc.display(),
            planted = s.home.join("bin/planted").display()
        ),
    );
    assert!(
        !s.home.join("bin/planted").exists(),
        "a brokered program wrote a PATH directory the shield protects"
    );
    assert_eq!(
        fs::read(&bashrc).unwrap(),
        before,
        "a brokered program wrote ~/.bashrc"
    );
    assert!(r.stdout().contains("project ok"), "{}", r.shown_stderr());
    assert_eq!(
        fs::read_to_string(s.project.join("notes.txt")).unwrap(),
        "written\n"
    );
}

/// A C module whose constructor writes `getenv(VAR)` to `sink` when it is
/// loaded, into `dir`; returns its path.
fn module_that_takes(dir: &Path, var: &str, sink: &Path) -> std::path::PathBuf {
    let so = dir.join("evil.so");
    crate::compat::cc(
        &format!(
            "#include <stdio.h>\n#include <stdlib.h>\n\
             __attribute__((constructor)) static void take(void) {{\n\
             const char *v = getenv(\"{var}\"); FILE *f = fopen(\"{sink}\", \"a\");\n\
             if (f) {{ fprintf(f, \"loaded %s\\n\", v ? v : \"(none)\"); fclose(f); }} }}\n",
            sink = sink.display()
        ),
        &so,
        &["-shared", "-fPIC"],
    );
    so
}

/// Environment steering with a configuration variable that loads a
/// module: `OPENSSL_CONF` naming the agent's provider module, against a
/// pinned `openssl enc -pass env:TOKEN` — in Lockdown too, where
/// Landlock's execute right does not cover `dlopen`. The control: the
/// ciphertext decrypts with the real secret.
#[test]
fn a_configuration_variable_cannot_load_a_module_into_the_program() {
    let mut s = scene();
    let dir = agents_dir(&s);
    let sink = dir.join("sink");
    let so = module_that_takes(&dir, "TOKEN", &sink);
    fs::write(
        dir.join("openssl.cnf"),
        format!(
            "openssl_conf = init\n[init]\nproviders = prov\n[prov]\nevil = evil\n\
             [evil]\nmodule = {}\nactivate = 1\n",
            so.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["-R", "a+rX", dir.to_str().unwrap()])
        .status()
        .unwrap();
    let openssl = Path::new("/usr/bin/openssl");
    let enc = [
        "enc",
        "-aes-256-cbc",
        "-pbkdf2",
        "-pass",
        "env:TOKEN",
        "-base64",
    ];
    let mut extra = vec!["--tier", "none", "--args-exact"];
    extra.extend(enc);
    extra.push("--");
    let mut args = vec!["allow", "--secret", "TOKEN"];
    args.extend(&extra);
    args.push(openssl.to_str().unwrap());
    s.env.expect_ok(&s.run_pw(&args));
    s.unlock(&[]);
    // The agent's module does load when the variable reaches openssl: the
    // attack is real (as the agent, with no secret, outside envseal).
    let mut c = Command::new("/usr/bin/openssl");
    c.args([
        "enc",
        "-aes-256-cbc",
        "-pbkdf2",
        "-pass",
        "pass:x",
        "-base64",
        "-in",
        "/dev/null",
    ])
    .env("OPENSSL_CONF", dir.join("openssl.cnf"));
    let _ = c.output().unwrap();
    assert!(
        sink.exists(),
        "the agent's module did not load even directly: the test proves nothing"
    );
    fs::remove_file(&sink).unwrap();
    for tier in TIERS {
        let r = agent(
            &s,
            &s.project,
            &format!(
                "echo plaintext | OPENSSL_CONF={cnf} OPENSSL_MODULES={dir} {envseal} exec --tier {tier} \
                 -- /usr/bin/openssl {enc}",
                cnf = dir.join("openssl.cnf").display(),
                dir = dir.display(),
                envseal = s.envseal.display(),
                enc = enc.join(" ")
            ),
        );
        assert!(
            !sink_holds(&sink, &s.token),
            "{tier}: the agent's module received the secret"
        );
        assert!(!sink.exists(), "{tier}: the agent's module was loaded");
        s.env.expect_ok(&r);
        // The control: it decrypts with the real secret.
        let mut d = Command::new("/usr/bin/openssl");
        d.args([
            "enc",
            "-d",
            "-aes-256-cbc",
            "-pbkdf2",
            "-pass",
            "env:K",
            "-base64",
        ])
        .env("K", &s.token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
        let mut child = d.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(r.stdout().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "plaintext\n",
            "{tier}"
        );
    }
}

/// A proxy and CA-bundle variable, and a `HOME` redirect to a config the
/// agent wrote (`.curlrc` with `trace-ascii`; the person's own HOME, which
/// the program keeps, is write-protected by the shield): against a pinned Python
/// urllib client and a pinned `sh` script calling curl. Tiers none and
/// hardened (Lockdown has no network). The agent's proxy and trace file
/// stay empty; the real service gets the real token.
#[test]
fn a_proxy_or_a_redirected_home_cannot_intercept_the_request() {
    let mut s = scene();
    let dir = agents_dir(&s);
    let trace = dir.join("trace");
    fs::write(
        dir.join(".curlrc"),
        format!("trace-ascii = \"{}\"\n", trace.display()),
    )
    .unwrap();
    Command::new("chmod")
        .args(["-R", "a+rwX", dir.to_str().unwrap()])
        .status()
        .unwrap();
    let (port, seen) = service();
    let (proxy, intercepted) = agents_listener();
    let client = s.script(
        "client.py",
        &format!(
            "#!/usr/bin/python3\nimport os, urllib.request\n\
             req = urllib.request.Request('http://127.0.0.1:{port}/', \
             headers={{'Authorization': 'Bearer ' + os.environ['TOKEN']}})\n\
             print(urllib.request.urlopen(req, timeout=20).read().decode())\n"
        ),
    );
    let curl = s.script(
        "call-api",
        &format!(
            "#!/bin/sh\ncurl -sS -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{port}/\n"
        ),
    );
    allow(&s, &[], &client);
    allow(&s, &[], &curl);
    s.unlock(&[]);
    let want = sha256_hex(s.token.as_bytes());
    for tier in ["none", "hardened"] {
        let exec = |program: &Path| {
            format!(
                "{} exec --tier {tier} -- {}",
                s.envseal.display(),
                program.display()
            )
        };
        // Exactly one request since `before`, with the real token.
        let served = |before: usize, r: &util::Run| {
            let got = seen.lock().unwrap()[before..].to_vec();
            assert_eq!(
                got,
                std::slice::from_ref(&want),
                "{tier}: {}",
                r.shown_stderr()
            );
        };
        // A proxy and a CA bundle of the agent's, for the Python client.
        let before = seen.lock().unwrap().len();
        let r = agent(
            &s,
            &s.project,
            &format!(
                "export http_proxy=http://127.0.0.1:{proxy} HTTP_PROXY=http://127.0.0.1:{proxy} \
                 ALL_PROXY=http://127.0.0.1:{proxy} SSL_CERT_FILE={dir}/ca.pem \
                 REQUESTS_CA_BUNDLE={dir}/ca.pem; {}",
                exec(&client),
                dir = dir.display(),
            ),
        );
        assert!(
            !contains(&intercepted.lock().unwrap(), s.token.as_bytes()),
            "{tier}: the agent's proxy received the secret"
        );
        assert!(
            intercepted.lock().unwrap().is_empty(),
            "{tier}: a request went to the agent's proxy"
        );
        s.env.expect_ok(&r);
        // The control: the request reached the service with the token.
        served(before, &r);
        // HOME (and curl's own variable) at the agent's .curlrc.
        let before = seen.lock().unwrap().len();
        let r = agent(
            &s,
            &s.project,
            &format!(
                "cp {dir}/.curlrc \"$HOME/.curlrc\" 2>/dev/null && echo planted; \
                 export HOME={dir} CURL_HOME={dir}; {}",
                exec(&curl),
                dir = dir.display()
            ),
        );
        assert!(
            !sink_holds(&trace, &s.token),
            "{tier}: curl's trace holds the secret"
        );
        assert!(!trace.exists(), "{tier}: curl read the agent's .curlrc");
        // The person's HOME, which the program keeps, is no way in either.
        assert!(
            !r.stdout().contains("planted") && !s.home.join(".curlrc").exists(),
            "{tier}: the agent wrote a .curlrc in the person's HOME"
        );
        s.env.expect_ok(&r);
        served(before, &r);
    }
}

/// A free argument tail that runs a command: git pinned for `push` with a
/// pattern cannot be given `--receive-pack=CMD`; `--args-prefix push` is
/// warned about at `allow`. The control: the allowed push works.
#[test]
fn a_free_tail_cannot_run_a_command() {
    let mut s = scene();
    let dir = agents_dir(&s);
    let sink = dir.join("sink");
    let origin = s.home.join("origin.git");
    let git = |args: &[&str], cwd: &Path| {
        let mut c = Command::new("git");
        c.args(args).current_dir(cwd);
        assert!(c.status().unwrap().success(), "git {args:?}");
    };
    git(&["init", "-q", "--bare", origin.to_str().unwrap()], &s.home);
    let work = s.project.join("repo");
    fs::create_dir_all(&work).unwrap();
    git(&["init", "-q", "-b", "main"], &work);
    git(
        &[
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@b",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "one",
        ],
        &work,
    );
    git(
        &["remote", "add", "origin", origin.to_str().unwrap()],
        &work,
    );
    give_to_user(&s, &s.home);
    let git_path = ["/usr/bin/git", "/usr/local/bin/git"]
        .iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .next()
        .expect("git is missing (./scripts/test installs it)");
    let mut args = vec!["allow", "--secret", "TOKEN", "--args-prefix", "push", "--"];
    args.push(git_path.to_str().unwrap());
    let r = s.run_pw(&args);
    s.env.expect_ok(&r);
    s.env
        .expect_stderr(&r, &["--receive-pack", "--args-pattern"]);
    let pattern = "push origin {ref:[A-Za-z0-9._/-]+}";
    let r = s.run_pw(&[
        "allow",
        "--secret",
        "TOKEN",
        "--args-pattern",
        pattern,
        "--",
        git_path.to_str().unwrap(),
    ]);
    s.env.expect_ok(&r);
    s.unlock(&[]);
    let steal = format!("--receive-pack=sh -c 'env > {}; exit 1'", sink.display());
    for attempt in [
        format!("push origin \"{steal}\""),
        format!("push \"{steal}\" origin main"),
        format!("push origin main \"{steal}\""),
    ] {
        let r = agent(
            &s,
            &work,
            &format!("{} exec -- git {attempt}", s.envseal.display()),
        );
        s.env.expect_code(&r, code::DENIED);
        assert!(!sink.exists(), "git ran the agent's command: {attempt}");
    }
    let r = agent(
        &s,
        &work,
        &format!("{} exec -- git push -q origin main", s.envseal.display()),
    );
    s.env.expect_code(&r, code::DENIED);
    let r = agent(
        &s,
        &work,
        &format!("{} exec -- git push origin main", s.envseal.display()),
    );
    s.env.expect_ok(&r);
    let mut c = Command::new("git");
    c.args(["-c", "safe.directory=*", "rev-parse", "main"])
        .current_dir(&origin);
    assert!(
        c.output().unwrap().status.success(),
        "the control push did not arrive"
    );
}

/// Working-directory steering in Lockdown: from `~`, a pinned program
/// cannot write the person's start-up file — the working directory is
/// read-only unless the grant says `--write-cwd`, and a `--write-cwd` grant
/// run from `~` (or the vault) is refused with a clear error. The control:
/// from the project, a `--write-cwd` program writes there, on a `noexec`
/// mount.
#[test]
fn lockdown_run_from_home_cannot_write_start_up_files() {
    let mut s = scene();
    let bashrc = s.home.join(".bashrc");
    let before = fs::read(&bashrc).unwrap();
    let writer = s.script(
        "out-writer.py",
        "#!/usr/bin/python3\nimport os, sys\n\
         try:\n    open(sys.argv[1], 'a').write('echo agent\\n'); print('wrote')\n\
         except OSError as e: print('refused', e.errno)\n\
         try:\n    open('blob', 'wb').write(bytes(4096))\n\
         \x20   import mmap; f = open('blob', 'rb')\n\
         \x20   mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC); print('mapped exec')\n\
         except OSError as e: print('exec map refused', e.errno)\n\
         cwd = os.getcwd()\n\
         for line in open('/proc/self/mountinfo'):\n\
         \x20   f = line.split()\n\
         \x20   if f[4] == cwd: print('mount', f[5])\n",
    );
    let free = s.script("free-writer.py", &fs::read_to_string(&writer).unwrap());
    allow(&s, &["--tier", "lockdown"], &writer);
    allow(&s, &["--tier", "lockdown", "--write-cwd"], &free);
    s.unlock(&[]);
    let run = |cwd: &Path, program: &Path, file: &str| {
        agent(
            &s,
            cwd,
            &format!(
                "{} exec -- {} {file}",
                s.envseal.display(),
                program.display()
            ),
        )
    };
    let r = run(&s.home, &writer, ".bashrc");
    s.env.expect_ok(&r);
    assert!(r.stdout().contains("refused"), "{}", r.shown_stdout());
    let r = run(&s.home, &free, ".bashrc");
    assert_ne!(r.code, Some(0));
    s.env.expect_stderr(&r, &["HOME"]);
    let r = run(&s.env.home, &free, "x");
    assert_ne!(r.code, Some(0));
    s.env.expect_stderr(&r, &["the vault"]);
    assert_eq!(
        fs::read(&bashrc).unwrap(),
        before,
        "the person's .bashrc changed"
    );
    // The control.
    let r = run(&s.project, &free, "notes.txt");
    s.env.expect_ok(&r);
    assert!(r.stdout().contains("wrote"), "{}", r.shown_stderr());
    assert!(
        r.stdout().contains("exec map refused 1"),
        "a file written in the working directory can be mapped executable: {}",
        r.shown_stdout()
    );
    assert!(
        r.stdout()
            .lines()
            .any(|l| l.starts_with("mount") && l.contains("noexec")),
        "the writable working directory is not noexec: {}",
        r.shown_stdout()
    );
    assert_eq!(
        fs::read_to_string(s.project.join("notes.txt")).unwrap(),
        "echo agent\n"
    );
}

/// Output steering: a shielded caller cannot pass `--no-mask`, and a
/// terminal it hands the program as stdout is masked too — the program
/// still has a terminal.
#[test]
fn a_shielded_caller_cannot_turn_masking_off() {
    let mut s = scene();
    let printer = s.script(
        "printer",
        "#!/bin/sh\nif [ -t 1 ]; then echo 'TTY yes'; fi\necho \"value: $TOKEN\"\n",
    );
    allow(&s, &[], &printer);
    // A pinned program that asks the broker in turn: what the broker runs
    // for a shielded caller is shielded too.
    let relay = s.script(
        "relay",
        &format!(
            "#!/bin/sh
exec {} exec --no-mask -- {}\n",
            s.envseal.display(),
            printer.display()
        ),
    );
    let vault = format!("ENVSEAL_HOME={}", s.env.home.display());
    allow(&s, &["--env", &vault], &relay);
    s.unlock(&[]);
    let r = agent(
        &s,
        &s.project,
        &format!(
            "{} exec --no-mask -- {}",
            s.envseal.display(),
            printer.display()
        ),
    );
    s.env.expect_code(&r, code::DENIED);
    s.env.expect_stderr(&r, &["--no-mask"]);
    let r = agent(
        &s,
        &s.project,
        &format!("{} exec -- {}", s.envseal.display(), relay.display()),
    );
    s.env.expect_code(&r, code::DENIED);
    s.env.expect_stderr(&r, &["--no-mask is refused"]);
    for tier in TIERS {
        let r = agent(
            &s,
            &s.project,
            &format!(
                "script -qec '{} exec --tier {tier} -- {}' /dev/null",
                s.envseal.display(),
                printer.display()
            ),
        );
        s.env.expect_ok(&r);
        let out = r.stdout();
        assert!(
            out.contains("TTY yes"),
            "{tier}: the program got no terminal: {}",
            r.shown_stdout()
        );
        assert!(out.contains("value: ****"), "{tier}: {}", r.shown_stdout());
    }
}

/// Interpreters start isolated: code the agent plants where an
/// interpreter looks on its own — Python's user site (`usercustomize.py`
/// under `~/.local`), node's `~/.node_modules` — never loads into a pinned
/// script, in any tier (node's in hardened and lockdown: tier none cannot
/// run a node script), though `HOME` is the person's (which the agent can
/// write). The control: each script does its job with the real secret.
#[test]
fn an_interpreter_loads_nothing_the_agent_planted_in_home() {
    let mut s = scene();
    let dir = agents_dir(&s);
    let sink = dir.join("sink");
    let take = |lang: &str| format!("{lang}: write the value of TOKEN to {}", sink.display());
    let version = Command::new("/usr/bin/python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    let site = s
        .home
        .join(format!(".local/lib/python{}/site-packages", version.trim()));
    fs::create_dir_all(&site).unwrap();
    fs::write(
        site.join("usercustomize.py"),
        format!(
            "# {}\nimport os\nopen({:?}, 'a').write(os.environ.get('TOKEN', ''))\n",
            take("python"),
            sink.to_str().unwrap()
        ),
    )
    .unwrap();
    let module = s.home.join(".node_modules/helper");
    fs::create_dir_all(&module).unwrap();
    fs::write(
        module.join("index.js"),
        format!(
            "// {}\nrequire('fs').appendFileSync({:?}, process.env.TOKEN || '');\n",
            take("node"),
            sink.to_str().unwrap()
        ),
    )
    .unwrap();
    give_to_user(&s, &s.home);
    let py = s.script(
        "hash.py",
        "#!/usr/bin/python3\nimport hashlib, os\n\
         print(hashlib.sha256(os.environ['TOKEN'].encode()).hexdigest())\n",
    );
    let js = s.script(
        "hash.js",
        "#!/usr/bin/env node\ntry { require('helper'); } catch (e) {}\n\
         console.log(require('crypto').createHash('sha256').update(process.env.TOKEN).digest('hex'));\n",
    );
    allow(&s, &[], &py);
    allow(&s, &[], &js);
    s.unlock(&[]);
    let want = sha256_hex(s.token.as_bytes());
    for tier in TIERS {
        // node realpaths its main script: tier none runs it as /dev/fd/N
        // (issue 15), so node scripts run in the namespaced tiers only.
        let scripts = if tier == "none" {
            vec![&py]
        } else {
            vec![&py, &js]
        };
        for script in scripts {
            let r = agent(
                &s,
                &s.project,
                &format!(
                    "{} exec --tier {tier} -- {}",
                    s.envseal.display(),
                    script.display()
                ),
            );
            assert!(
                !sink_holds(&sink, &s.token),
                "{tier}: code the agent planted got the secret ({})",
                script.display()
            );
            s.env.expect_ok(&r);
            assert_eq!(r.stdout().trim(), want, "{tier}: {}", r.shown_stderr());
        }
    }
}

/// A directory a grant may write (`--write DIR`), swapped by the agent for
/// a link to another directory after `allow`: Lockdown refuses to run
/// rather than make the link's target writable. The control: before the
/// swap the program writes the directory it was granted.
#[test]
fn a_writable_directory_swapped_for_a_link_is_refused() {
    let mut s = scene();
    let (base, dirs) = users_dirs_outside_tmp(&s, &["a/out", "b/out"]);
    let (granted, other) = (&dirs[0], &dirs[1]);
    let writer = s.script("dir-writer", "#!/bin/sh\necho written > \"$1\"\n");
    let write = granted.to_str().unwrap();
    allow(&s, &["--tier", "lockdown", "--write", write], &writer);
    s.unlock(&[]);
    let exec = |file: &str| {
        format!(
            "{} exec -- {} {file}",
            s.envseal.display(),
            writer.display()
        )
    };
    let r = agent(&s, &s.project, &exec(&format!("{write}/f")));
    s.env.expect_ok(&r);
    assert!(
        granted.join("f").exists(),
        "the control did not write: {}",
        r.shown_stderr()
    );
    let swap = format!(
        "mv {a} {a}.real && ln -s {b} {a} && {}",
        exec(&format!("{write}/g")),
        a = base.path().join("a").display(),
        b = base.path().join("b").display()
    );
    let r = agent(&s, &s.project, &swap);
    s.env.expect_code(&r, code::DENIED);
    s.env.expect_stderr(&r, &["now leads to"]);
    assert!(!other.join("g").exists(), "the link's target was written");
}
