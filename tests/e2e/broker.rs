//! G5 and G6: the broker (`envseal unlock`) and the shield, attacked.
//!
//! Everything runs as an unprivileged user created with `useradd` (CI runs
//! as root). The broker is that user's; an "agent" — this test binary
//! re-executed as that user inside `envseal shield` — runs pinned programs
//! through the broker and attacks the broker, each program and each
//! program's child in every tier. Controls show the attacks work where
//! nothing protects the target, so the tests can fail.

use crate::util;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead as _, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::user::{as_user, attacker_user, give_vault_to, runnable_copy};
use util::{Env, code, value};

/// Set in the re-executed agent: the JSON of an [`AgentPlan`].
const AGENT_ENV: &str = "ENVSEAL_TEST_AGENT";
pub(crate) const TIERS: [&str; 3] = ["none", "hardened", "lockdown"];

/// One staged scene: the user, a vault they own, copies of envseal and of
/// this test binary they can run, pinned programs, a project directory.
pub(crate) struct Scene {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) env: Env,
    _bins: tempfile::TempDir,
    pub(crate) bins: PathBuf,
    pub(crate) envseal: PathBuf,
    me: PathBuf,
    pub(crate) home: PathBuf,
    pub(crate) project: PathBuf,
    pub(crate) token: String,
    broker: Option<i32>,
}

pub(crate) fn scene() -> Scene {
    let (uid, gid) = attacker_user();
    assert!(
        Path::new("/usr/bin/newuidmap").exists(),
        "the namespaced tiers need newuidmap (package uidmap); ./scripts/test installs it"
    );
    let env = Env::initialized();
    let bins_dir = tempfile::tempdir().unwrap();
    fs::set_permissions(bins_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let bins = fs::canonicalize(bins_dir.path()).unwrap();
    let envseal = runnable_copy(&util::bin(), &bins);
    let me = runnable_copy(&std::env::current_exe().unwrap(), &bins);
    let token = value("broker");
    env.set_approved("TOKEN", &token);
    let script = |name: &str, body: &str| {
        let p = bins.join(name);
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    // Prints its parent and grandparent, proves it got the token, exits 7.
    let quick = script(
        "quick",
        "#!/bin/sh\nset -e\ngp=$(cut -d' ' -f4 /proc/$PPID/stat)\n\
         echo \"PARENT $PPID $gp LEN ${#TOKEN}\"\nexit 7\n",
    );
    // Exits with its first argument.
    let status = script("status", "#!/bin/sh\nexit \"$1\"\n");
    let allow = |extra: &[&str], prog: &Path| {
        let mut args = vec!["allow", "--secret", "TOKEN"];
        args.extend_from_slice(extra);
        args.push("--");
        args.push(prog.to_str().unwrap());
        let r = env.run_pw(&args, b"");
        env.expect_ok(&r);
    };
    allow(&[], &quick);
    allow(&[], &status);
    for tier in TIERS {
        // Starts a child (marked by its argument), says READY, waits.
        let p = script(
            &format!("long-{tier}"),
            "#!/bin/sh\nsleep \"299.$2\" &\ntrap 'kill $!; exit 143' TERM\ntrap 'kill $!; exit 129' HUP\necho \"READY $1\"\nwait\n",
        );
        let mut extra = vec!["--tier", tier];
        if tier == "lockdown" {
            extra.extend(["--may-exec", "/usr/bin/sleep"]);
        }
        allow(&extra, &p);
    }
    let shielded_only = script("shielded-only", "#!/bin/sh\necho shielded-only ran\n");
    allow(&["--require-shield"], &shielded_only);
    let home = env.tmp.path().join("home");
    let project = home.join("project");
    fs::create_dir_all(&project).unwrap();
    fs::write(home.join(".bashrc"), "# the person's shell start-up\n").unwrap();
    fs::create_dir_all(home.join("bin")).unwrap();
    give_vault_to(&env, uid, gid);
    let chown = Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(&home)
        .status()
        .unwrap();
    assert!(chown.success());
    Scene {
        uid,
        gid,
        env,
        _bins: bins_dir,
        bins,
        envseal,
        me,
        home,
        project,
        token,
        broker: None,
    }
}

impl Scene {
    /// A command run as the user with the scene's environment.
    fn user(&self, program: &Path) -> Command {
        let mut c = as_user(self.uid, self.gid, program);
        c.env_clear()
            .env("ENVSEAL_HOME", &self.env.home)
            .env("HOME", &self.home)
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.home.join("bin").display()),
            )
            .current_dir(&self.project)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub(crate) fn envseal(&self, args: &[&str]) -> Command {
        let mut c = self.user(&self.envseal);
        c.args(args);
        c
    }

    /// Runs `envseal VERB --passphrase-fd 0 REST…` as the user, the
    /// passphrase on stdin; output recorded for the G1 scan.
    pub(crate) fn run_pw(&self, args: &[&str]) -> util::Run {
        let mut full = vec![args[0], "--passphrase-fd", "0"];
        full.extend_from_slice(&args[1..]);
        let mut c = self.envseal(&full);
        c.stdin(fs::File::open(self.env.passfile()).unwrap());
        self.env
            .record(format!("(as user) {}", full.join(" ")), c.output().unwrap())
    }

    /// An executable script `name` with `body`, where the user can run it.
    pub(crate) fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.bins.join(name);
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Runs envseal as the user; output recorded for the G1 scan.
    /// [`Scene::run`] in the directory `cwd`.
    pub(crate) fn run_in(&self, cwd: &Path, args: &[&str]) -> util::Run {
        let mut c = self.envseal(args);
        c.current_dir(cwd);
        self.env.record(
            format!("(as user, in {}) {}", cwd.display(), args.join(" ")),
            c.output().unwrap(),
        )
    }

    pub(crate) fn run(&self, args: &[&str]) -> util::Run {
        let out = self.envseal(args).output().unwrap();
        self.env
            .record(format!("(as user) {}", args.join(" ")), out)
    }

    /// `envseal unlock` as the user, passphrase on stdin.
    pub(crate) fn unlock(&mut self, extra: &[&str]) -> i32 {
        self.unlock_with(extra, &[])
    }

    /// [`Scene::unlock`] with variables of the broker's environment
    /// changed (`vars`).
    pub(crate) fn unlock_with(&mut self, extra: &[&str], vars: &[(&str, &str)]) -> i32 {
        let mut args = vec!["unlock", "--passphrase-fd", "0"];
        args.extend_from_slice(extra);
        let mut c = self.envseal(&args);
        c.envs(vars.iter().copied());
        c.stdin(fs::File::open(self.env.passfile()).unwrap());
        let out = c.output().unwrap();
        let r = self
            .env
            .record(format!("(as user) {}", args.join(" ")), out);
        self.env.expect_ok(&r);
        let pid = self
            .broker_pid()
            .expect("the broker is not running after unlock");
        self.broker = Some(pid);
        pid
    }

    fn broker_pid(&self) -> Option<i32> {
        let r = self.run(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_str(r.stdout().trim()).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    /// Where the broker of this vault listens: found from the vault alone
    /// (`/run/user/UID/envseal` when that is the user's, else the vault's
    /// `run/`), named after the vault's canonical path.
    fn socket(&self) -> PathBuf {
        use std::os::unix::fs::MetadataExt as _;
        let run = PathBuf::from(format!("/run/user/{}", self.uid));
        let dir = match fs::symlink_metadata(&run) {
            Ok(m) if m.is_dir() && m.uid() == self.uid && m.mode() & 0o022 == 0 => {
                run.join("envseal")
            }
            _ => self.env.home.join("run"),
        };
        let vault = fs::canonicalize(&self.env.home).unwrap();
        let hash = util::sha256_hex(vault.as_os_str().as_encoded_bytes());
        dir.join(format!("broker-{}.sock", &hash[..16]))
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        if let Some(pid) = self.broker.take() {
            let _ = self.envseal(&["lock"]).output();
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // The broker's log joins the G1 scan (run when the Env drops).
        let socket = self.socket();
        let stem = socket.file_stem().unwrap().to_owned();
        if let Ok(entries) = fs::read_dir(socket.parent().unwrap()) {
            for e in entries
                .flatten()
                .filter(|e| e.path().file_stem() == Some(&stem))
            {
                if let Ok(bytes) = fs::read(e.path()) {
                    use std::os::unix::process::ExitStatusExt as _;
                    self.env.record(
                        format!("(broker file) {}", e.path().display()),
                        std::process::Output {
                            status: std::process::ExitStatus::from_raw(0),
                            stdout: bytes,
                            stderr: Vec::new(),
                        },
                    );
                }
            }
        }
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:\tZ")))
}

fn wait_gone(pid: i32) -> bool {
    util::wait_for(|| !alive(pid))
}

// ---------------------------------------------------------------------------
// The agent: this binary, re-executed as the user inside the shield.

#[derive(serde::Serialize, serde::Deserialize)]
struct AgentPlan {
    envseal: PathBuf,
    bins: PathBuf,
    /// An abstract unix socket the test listens on, outside the shield.
    outside_socket: String,
}

/// Every attack on `pid`; "errno N" when refused.
fn attack(pid: i32) -> BTreeMap<String, String> {
    use nix::sys::uio::{RemoteIoVec, process_vm_readv};
    let mut out = BTreeMap::new();
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
    };
    for file in ["environ", "maps"] {
        out.insert(
            file.into(),
            outcome(fs::read(format!("/proc/{pid}/{file}")).map(drop)),
        );
    }
    out.insert(
        "mem".into(),
        outcome(fs::File::open(format!("/proc/{pid}/mem")).map(drop)),
    );
    out.insert(
        "root".into(),
        outcome(fs::read_dir(format!("/proc/{pid}/root/")).map(drop)),
    );
    // Every descriptor the listing shows (the listing itself is allowed
    // by the directory's mode; opening one is what matters).
    let fds: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let opened = fds
        .iter()
        .map(|fd| fs::File::open(format!("/proc/{pid}/fd/{fd}")).map(drop))
        .find(|r| r.is_ok())
        .unwrap_or_else(|| Err(std::io::Error::from_raw_os_error(libc::EACCES)));
    out.insert("fd".into(), outcome(opened));
    let target = nix::unistd::Pid::from_raw(pid);
    let traced = nix::sys::ptrace::attach(target);
    if traced.is_ok() {
        let _ = nix::sys::wait::waitpid(target, None);
        let _ = nix::sys::ptrace::detach(target, None);
    }
    out.insert("ptrace".into(), outcome(traced.map_err(Into::into)));
    let mut buf = [0u8; 16];
    let remote = [RemoteIoVec {
        base: 0x1000,
        len: 16,
    }];
    out.insert(
        "process_vm_readv".into(),
        match process_vm_readv(target, &mut [std::io::IoSliceMut::new(&mut buf)], &remote) {
            Ok(_) => "ok".into(),
            Err(nix::errno::Errno::EPERM) => "errno 1".into(),
            Err(e) => format!("allowed ({e})"),
        },
    );
    // pidfd_getfd: a pidfd is open to anyone; taking a descriptor is not.
    // SAFETY: plain integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let got = if pidfd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        // SAFETY: `pidfd` is ours; descriptor 0 of the target.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, 0, 0) };
        let r = if fd < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            // SAFETY: closing the descriptor just obtained.
            unsafe { libc::close(fd as i32) };
            Ok(())
        };
        // SAFETY: closing our pidfd.
        unsafe { libc::close(pidfd as i32) };
        r
    };
    out.insert("pidfd_getfd".into(), outcome(got));
    // Signal 0: the permission check of sending any signal, harmless.
    out.insert(
        "signal".into(),
        outcome(
            nix::sys::signal::kill(target, None::<nix::sys::signal::Signal>).map_err(Into::into),
        ),
    );
    out
}

/// Landlock's abstract-socket scope: a socket bound outside the shield
/// cannot be reached from inside; one bound inside can (the control).
fn socket_attacks(outside: &str) -> BTreeMap<String, String> {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::net::{SocketAddr, UnixListener};
    let connect = |name: &str| {
        SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| UnixStream::connect_addr(&a))
            .map(drop)
    };
    let mut out = BTreeMap::new();
    out.insert(
        "abstract_socket".into(),
        match connect(outside) {
            Ok(()) => "ok".into(),
            Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
        },
    );
    let inside = format!("{outside}-inside");
    let _listener = SocketAddr::from_abstract_name(inside.as_bytes())
        .and_then(|a| UnixListener::bind_addr(&a))
        .unwrap();
    out.insert(
        "own_abstract_socket".into(),
        connect(&inside).is_ok().to_string(),
    );
    out
}

/// Namespace handles: `name_to_handle_at` on a namespace file, then
/// `open_by_handle_at` and `setns` (the way into a namespace the user
/// owns, such as a sandbox's).
fn namespace_attacks() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let last = || {
        format!(
            "errno {}",
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        )
    };
    #[repr(C)]
    struct Handle {
        bytes: u32,
        kind: i32,
        f: [u8; 128],
    }
    let mut h = Handle {
        bytes: 128,
        kind: 0,
        f: [0; 128],
    };
    let mut mount_id = 0i32;
    let path = c"/proc/self/ns/net";
    // SAFETY: valid pointers for the call's duration.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            path.as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut i32,
            0,
        )
    };
    out.insert(
        "name_to_handle_at".into(),
        if r == 0 { "ok".into() } else { last() },
    );
    let dir = fs::File::open("/proc/self/ns").unwrap();
    use std::os::fd::AsRawFd as _;
    // SAFETY: valid pointers; a made-up handle (the call is what is refused).
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            dir.as_raw_fd(),
            &mut h as *mut Handle,
            libc::O_RDONLY,
        )
    };
    out.insert(
        "open_by_handle_at".into(),
        if r >= 0 { "ok".into() } else { last() },
    );
    let ns = fs::File::open("/proc/self/ns/user").unwrap();
    // SAFETY: a namespace descriptor we own.
    let r = unsafe { libc::setns(ns.as_raw_fd(), 0) };
    out.insert("setns".into(), if r == 0 { "ok".into() } else { last() });
    out
}

/// The rest of the shield's filter: the kernel keyring, typing into the
/// terminal, executable memfds, and other processes' limits, priority and
/// CPUs (`target` is a process outside the shield).
fn filter_attacks(target: i32) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let res = |r: libc::c_long| {
        if r >= 0 {
            "ok".to_owned()
        } else {
            format!(
                "errno {}",
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            )
        }
    };
    // SAFETY: KEYCTL_GET_KEYRING_ID of the session keyring, no pointers.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i32, 0) };
    out.insert("keyctl".into(), res(r));
    let c = b'x';
    // SAFETY: TIOCSTI with a pointer to one byte (refused before use).
    let r = unsafe { libc::ioctl(0, libc::TIOCSTI, &c as *const u8) };
    out.insert("tiocsti".into(), res(r.into()));
    // SAFETY: a name and flags.
    let fd = unsafe { libc::memfd_create(c"x".as_ptr(), libc::MFD_CLOEXEC) };
    out.insert("memfd_exec".into(), res(fd.into()));
    let limit = libc::rlimit64 {
        rlim_cur: 1,
        rlim_max: 1,
    };
    // SAFETY: a valid rlimit; refused by the filter before use.
    let r = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            target,
            libc::RLIMIT_NOFILE,
            &limit,
            0usize,
        )
    };
    out.insert("prlimit_other".into(), res(r));
    // SAFETY: plain integers.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, target as u32, 19) };
    out.insert("setpriority_other".into(), res(r.into()));
    // SAFETY: plain integers (PRIO_USER 0: every process of the user).
    let r = unsafe { libc::setpriority(libc::PRIO_USER, 0, 19) };
    out.insert("setpriority_user".into(), res(r.into()));
    // SAFETY: cpu_set_t is plain data; zeroed is valid.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 0 in a valid cpu_set_t.
    unsafe { libc::CPU_SET(0, &mut set) };
    // SAFETY: a valid cpu_set_t of its own size.
    let r =
        unsafe { libc::sched_setaffinity(target, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    out.insert("sched_setaffinity_other".into(), res(r.into()));
    out
}

/// The controls of [`filter_attacks`]: allowed forms of the same calls.
fn filter_controls() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut limit = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads this process's own limit into `limit`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            libc::RLIMIT_NOFILE,
            std::ptr::null::<u8>(),
            &mut limit,
        )
    };
    out.insert("prlimit_self".into(), (r == 0).to_string());
    const MFD_NOEXEC_SEAL: libc::c_uint = 0x0008;
    // SAFETY: a name and flags.
    let fd = unsafe { libc::memfd_create(c"x".as_ptr(), libc::MFD_CLOEXEC | MFD_NOEXEC_SEAL) };
    out.insert("memfd_noexec".into(), (fd >= 0).to_string());
    // SAFETY: plain integers: this process's own priority.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 1) };
    out.insert("setpriority_self".into(), (r == 0).to_string());
    out
}

/// Pids of the processes whose command line contains `needle`.
fn find(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) && pid != std::process::id() as i32 {
            pids.push(pid);
        }
    }
    pids
}

/// The agent's work; prints one `AGENT-RESULT {json}` line.
fn agent_branch() {
    let Ok(plan) = std::env::var(AGENT_ENV) else {
        return;
    };
    let plan: AgentPlan = serde_json::from_str(&plan).unwrap();
    let mut results: BTreeMap<String, String> = BTreeMap::new();
    let envseal = |args: &[&str]| {
        Command::new(&plan.envseal)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let status = envseal(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let broker = v["pid"].as_i64().unwrap() as i32;
    results.insert("shielded_clients".into(), v["shielded_clients"].to_string());
    let quick = envseal(&["exec", "--", plan.bins.join("quick").to_str().unwrap()]);
    results.insert("quick.status".into(), format!("{:?}", quick.status.code()));
    results.insert(
        "quick.stdout".into(),
        String::from_utf8_lossy(&quick.stdout).trim().into(),
    );
    results.insert(
        "quick.stderr".into(),
        String::from_utf8_lossy(&quick.stderr).trim().into(),
    );
    let refresh = envseal(&["unlock", "--ttl", "0"]);
    results.insert(
        "refresh.status".into(),
        format!("{:?}", refresh.status.code()),
    );
    let only = envseal(&[
        "exec",
        "--",
        plan.bins.join("shielded-only").to_str().unwrap(),
    ]);
    results.insert(
        "shielded-only.status".into(),
        format!("{:?}", only.status.code()),
    );
    for (k, v) in attack(broker) {
        results.insert(format!("broker.{k}"), v);
    }
    for (k, v) in namespace_attacks() {
        results.insert(format!("ns.{k}"), v);
    }
    for (k, v) in filter_attacks(broker) {
        results.insert(format!("filter.{k}"), v);
    }
    for (k, v) in filter_controls() {
        results.insert(format!("allowed.{k}"), v);
    }
    for (k, v) in socket_attacks(&plan.outside_socket) {
        let prefix = if k.starts_with("own") {
            "allowed"
        } else {
            "filter"
        };
        results.insert(format!("{prefix}.{k}"), v);
    }
    // Control: a process inside the shield, not protected by anything.
    let mut control = Command::new("sleep").arg("300").spawn().unwrap();
    for (k, v) in attack(control.id() as i32) {
        results.insert(format!("control.{k}"), v);
    }
    let _ = control.kill();
    let _ = control.wait();
    for (i, tier) in TIERS.iter().enumerate() {
        let mark = format!("mark-{tier}-{}", std::process::id());
        let digits = format!("{}{}", i + 1, std::process::id());
        let prog = plan.bins.join(format!("long-{tier}"));
        let mut client = Command::new(&plan.envseal)
            .args(["exec", "--", prog.to_str().unwrap(), &mark, &digits])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(client.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        results.insert(format!("{tier}.ready"), line.trim().to_owned());
        // The script itself; its child is the `sleep 299.DIGITS`.
        // READY may come before the child has exec'd `sleep`: look again.
        let (mut program, mut child) = (0, 0);
        util::wait_for(|| {
            program = find(&mark)
                .into_iter()
                .find(|&p| p != client.id() as i32)
                .unwrap_or(0);
            child = find(&format!("299.{digits}")).first().copied().unwrap_or(0);
            program > 0 && child > 0
        });
        results.insert(
            format!("{tier}.found"),
            format!("{}", program > 0 && child > 0),
        );
        for (what, pid) in [("program", program), ("child", child)] {
            for (k, v) in attack(pid) {
                results.insert(format!("{tier}.{what}.{k}"), v);
            }
        }
        // SIGTERM to the client is relayed to the program.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(client.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let st = client.wait().unwrap();
        let mut err = String::new();
        let _ = client.stderr.take().unwrap().read_to_string(&mut err);
        results.insert(format!("{tier}.status"), format!("{:?}", st.code()));
        results.insert(format!("{tier}.stderr"), err.trim().to_owned());
    }
    println!("AGENT-RESULT {}", serde_json::to_string(&results).unwrap());
    std::process::exit(0);
}

/// Runs the agent in a shield (with `extra` shield flags) and checks
/// every result.
fn run_agent(s: &Scene, extra: &[&str], test: &str) {
    let broker = s.broker.expect("unlocked");
    // An abstract socket outside the shield, listening while the agent runs.
    let outside_socket = format!("envseal-test-{}-{}", std::process::id(), extra.len());
    let _listener = {
        use std::os::linux::net::SocketAddrExt as _;
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(outside_socket.as_bytes()).unwrap();
        std::os::unix::net::UnixListener::bind_addr(&addr).unwrap()
    };
    let plan = serde_json::to_string(&AgentPlan {
        envseal: s.envseal.clone(),
        bins: s.bins.clone(),
        outside_socket,
    })
    .unwrap();
    let mut args = vec!["shield"];
    args.extend_from_slice(extra);
    let exact = util::qualified(module_path!(), test);
    args.extend([
        "--",
        s.me.to_str().unwrap(),
        "--exact",
        &exact,
        "--nocapture",
    ]);
    let mut c = s.envseal(&args);
    c.env(AGENT_ENV, plan);
    let out = c.output().unwrap();
    let r = s
        .env
        .record(format!("(as user) envseal {}", args.join(" ")), out);
    let line = r
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("AGENT-RESULT ").map(str::to_owned))
        .unwrap_or_else(|| panic!("the agent printed no result: {}", s.env.redact(&r.stderr())));
    let res: BTreeMap<String, String> = serde_json::from_str(&line).unwrap();
    let get = |k: &str| res.get(k).cloned().unwrap_or_default();
    let shown = s.env.redact(&format!("{res:?}"));
    // The broker runs the program: its parent is the session process,
    // whose parent is the broker — not the agent.
    assert_eq!(get("quick.status"), "Some(7)", "{shown}");
    let parts: Vec<&str> = get("quick.stdout").split_whitespace().map(|_| "").collect();
    assert_eq!(parts.len(), 5, "{shown}");
    let quick = get("quick.stdout");
    let fields: Vec<&str> = quick.split_whitespace().collect();
    assert_eq!(fields[0], "PARENT", "{shown}");
    assert_eq!(
        fields[2],
        broker.to_string(),
        "the program's grandparent is not the broker: {shown}"
    );
    assert_eq!(fields[4], s.token.len().to_string(), "{shown}");
    assert!(
        !get("quick.stderr").contains("not inside an envseal shield"),
        "a shielded caller was warned as unshielded: {shown}"
    );
    assert_eq!(
        get("shielded-only.status"),
        "Some(0)",
        "--require-shield refused a shielded caller: {shown}"
    );
    assert_eq!(get("shielded_clients"), "1", "{shown}");
    assert_eq!(
        get("refresh.status"),
        "Some(77)",
        "an agent changed the broker's TTL: {shown}"
    );
    // The control shows the /proc attacks work where nothing protects.
    for k in ["environ", "mem", "maps", "root", "fd", "signal"] {
        assert_eq!(get(&format!("control.{k}")), "ok", "control {k}: {shown}");
    }
    let mut denied = vec![];
    for (k, v) in &res {
        let target = k.split('.').collect::<Vec<_>>();
        let attacked = matches!(target.first(), Some(&"broker" | &"ns" | &"filter"))
            || (target.len() == 3 && matches!(target[1], "program" | "child"));
        if attacked {
            assert!(
                v.starts_with("errno"),
                "attack {k} succeeded: {v} ({shown})"
            );
            denied.push(k.clone());
        }
    }
    for tier in TIERS {
        assert_eq!(
            get(&format!("{tier}.found")),
            "true",
            "{tier}: program not found: {shown}"
        );
        assert!(
            get(&format!("{tier}.ready")).starts_with("READY"),
            "{shown}"
        );
        assert_eq!(
            get(&format!("{tier}.status")),
            "Some(143)",
            "{tier}: SIGTERM was not relayed: {shown}"
        );
    }
    assert!(
        denied.len() >= 3 * 2 * 9 + 9 + 3 + 8,
        "too few attacks ran: {shown}"
    );
    for k in [
        "prlimit_self",
        "memfd_noexec",
        "setpriority_self",
        "own_abstract_socket",
    ] {
        assert_eq!(
            get(&format!("allowed.{k}")),
            "true",
            "control {k} failed: {shown}"
        );
    }
}

/// G5 + G6: inside the shield, pinned programs run through the broker
/// (the program a descendant of the broker, not of the caller), and the
/// broker, each program and each program's child are out of reach in
/// every tier — also with `--nested-sandbox`.
#[test]
fn a_shielded_agent_uses_secrets_but_cannot_reach_them() {
    agent_branch();
    let test = "a_shielded_agent_uses_secrets_but_cannot_reach_them";
    let mut s = scene();
    s.unlock(&[]);
    run_agent(&s, &[], test);
    run_agent(&s, &["--nested-sandbox"], test);
    // Outside any shield: the shield-only grant is refused, and the
    // unshielded caller is warned.
    let r = s.run(&["exec", "--", s.bins.join("shielded-only").to_str().unwrap()]);
    s.env.expect_code(&r, code::DENIED);
    let r = s.run(&["exec", "--", s.bins.join("quick").to_str().unwrap()]);
    assert_eq!(r.code, Some(7));
    s.env.expect_stderr(&r, &["not inside an envseal shield"]);
}

/// G6: inside the shield the vault, envseal, PATH directories and the
/// start-up files cannot be written; normal work succeeds.
#[test]
fn the_shield_protects_files_and_lets_work_happen() {
    let mut s = scene();
    s.unlock(&[]);
    // A value an agent stores from inside (through the broker, pending).
    let agent_value = value("agent");
    s.env.remember(agent_value.as_bytes());
    let path_dir = s.home.join("bin");
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in server.incoming().flatten() {
            let _ = c.write_all(b"pong\n");
        }
    });
    let script = format!(
        r#"
fails() {{ if "$@" 2>/dev/null; then echo "WROTE: $*"; else echo "denied: $*"; fi; }}
fails sh -c 'echo x >> "{vault}/vault.db"'
fails sh -c 'echo x > "{vault}/new"'
fails sh -c 'echo x >> "$HOME/.bashrc"'
fails sh -c 'echo x > "$HOME/.zshrc"'
fails sh -c 'mkdir -p "$HOME/.config/fish"'
fails sh -c 'echo x > "{path_dir}/evil"'
fails sh -c 'cp /bin/true "{envseal}"'
fails sh -c 'mv "{envseal}" "{envseal}.old"'
set -e
# /tmp leads to protected files of this test (the vault and envseal's copy
# live under it), so no new entry can be made in /tmp itself.
mkdir -p tmp && export TMPDIR=$PWD/tmp
echo hello > notes.txt && echo "ok: project write"
git init -q . && git -c user.name=a -c user.email=a@b add notes.txt && git -c user.name=a -c user.email=a@b commit -qm one && echo "ok: git commit"
printf 'int main(void){{return 0;}}\n' > t.c && cc t.c -o t && ./t && echo "ok: compiler"
python3 -c 'import socket; s=socket.create_connection(("127.0.0.1",{port})); assert s.recv(5)==b"pong\n"' && echo "ok: tcp"
"{envseal}" shield -- sh -c 'echo nested > nested.txt' && echo "ok: nested landlock"
printf %s "{agent_value}" | "{envseal}" set AGENT_KEY && echo "ok: set pending"
printf %s "{agent_value}" | "{envseal}" set TOKEN --replace || echo "refused: replacing an approved value"
"#,
        vault = s.env.home.display(),
        path_dir = path_dir.display(),
        envseal = s.envseal.display(),
        agent_value = agent_value,
    );
    let r = s.run(&["shield", "--", "sh", "-c", &script]);
    let out = r.shown_stdout();
    assert!(
        !out.contains("WROTE"),
        "the shield let a protected write through:\n{out}"
    );
    assert_eq!(
        out.matches("denied:").count(),
        8,
        "{out}\n{}",
        r.shown_stderr()
    );
    assert!(
        out.contains("refused: replacing an approved value"),
        "{out}"
    );
    let list = s.run(&["list", "--json"]);
    assert!(
        list.stdout()
            .contains("\"name\":\"AGENT_KEY\",\"state\":\"pending\""),
        "{}",
        list.stdout()
    );
    for ok in [
        "set pending",
        "project write",
        "git commit",
        "compiler",
        "tcp",
        "nested landlock",
    ] {
        assert!(
            out.contains(&format!("ok: {ok}")),
            "{ok} failed inside the shield:\n{out}\n{}",
            s.env.redact(&r.stderr())
        );
    }
    // --allow-write lifts the protection of a PATH directory, and only that.
    let r = s.run(&[
        "shield",
        "--allow-write",
        path_dir.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo tool > \"$HOME/bin/tool\" && echo ok: path write; \
         echo x >> \"$HOME/.bashrc\" || echo denied: bashrc",
    ]);
    assert!(
        r.stdout().contains("ok: path write"),
        "{}{}",
        r.stdout(),
        r.stderr()
    );
    assert!(
        r.stdout().contains("denied: bashrc"),
        "{}",
        r.shown_stdout()
    );
    // ...and never the vault's.
    let vault = s.env.home.to_str().unwrap().to_owned();
    let r = s.run(&["shield", "--allow-write", &vault, "--", "true"]);
    s.env.expect_code(&r, code::USAGE);
    // --nested-sandbox: bubblewrap works inside.
    let r = s.run(&[
        "shield",
        "--nested-sandbox",
        "--",
        "bwrap",
        "--unshare-all",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--",
        "sh",
        "-c",
        "echo inside-bwrap",
    ]);
    assert!(
        r.stdout().contains("inside-bwrap"),
        "bwrap failed under --nested-sandbox: {}",
        s.env.redact(&r.stderr())
    );
}

/// Issue 13: inside the shield the vault's files cannot be opened at all
/// (a read-only open is enough to hold SQLite's locks and stall every
/// write, which once let brokered execs run unrecorded); `list`, `grants`
/// and `audit` answer through the broker, `audit --verify` is refused.
/// The control: the same opens work for the same user outside the shield.
#[test]
fn the_vaults_files_are_closed_inside_the_shield() {
    let mut s = scene();
    s.unlock(&[]);
    let probe = format!(
        r#"
import fcntl, os, sys
vault = {vault:?}
for name in ("vault.db", "vault.db-shm", "vault.db-wal"):
    path = os.path.join(vault, name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except PermissionError:
        print("closed:", name)
        continue
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 120)
        print("LOCKED:", name)
    except OSError as e:
        print("OPENED:", name, e)
print("listed:", sorted(n for n in os.listdir(vault) if n.startswith("vault.db")))
"#,
        vault = s.env.home.display().to_string(),
    );
    let outside = s
        .user(Path::new("/usr/bin/python3"))
        .args(["-c", &probe])
        .output()
        .unwrap();
    let outside = String::from_utf8_lossy(&outside.stdout).into_owned();
    assert!(
        outside.contains("LOCKED: vault.db-shm"),
        "the control: outside the shield the user can lock the vault's files: {outside}"
    );
    let r = s.run(&["shield", "--", "/usr/bin/python3", "-c", &probe]);
    let inside = r.stdout();
    for name in ["vault.db", "vault.db-shm", "vault.db-wal"] {
        assert!(
            inside.contains(&format!("closed: {name}")),
            "{name} could be opened inside the shield:\n{inside}\n{}",
            r.stderr()
        );
    }
    assert!(
        !inside.contains("LOCKED") && !inside.contains("OPENED"),
        "{inside}"
    );
    assert!(inside.contains("listed: ['vault.db'"), "{inside}");

    // The person's commands that read the vault answer through the broker.
    let envseal = s.envseal.display().to_string();
    let quick = s.bins.join("quick").display().to_string();
    let script = format!(
        r#"
"{envseal}" list && echo "ok: list"
"{envseal}" list --json && echo "ok: list json"
"{envseal}" grants && echo "ok: grants"
"{envseal}" audit -n 2 && echo "ok: audit"
"{envseal}" audit --verify --passphrase-fd 0 </dev/null; echo "verify: $?"
"{envseal}" status >/dev/null && echo "ok: status"
"{envseal}" exec -- "{quick}"; echo "exec: $?"
"#
    );
    let r = s.run(&["shield", "--", "sh", "-c", &script]);
    let out = r.shown_stdout();
    for ok in ["list", "list json", "grants", "audit", "status"] {
        assert!(
            out.contains(&format!("ok: {ok}\n")),
            "{ok} failed inside the shield:\n{out}\n{}",
            s.env.redact(&r.stderr())
        );
    }
    assert!(out.contains("TOKEN"), "{out}");
    assert!(
        out.contains(r#""name":"TOKEN","state":"approved""#),
        "{out}"
    );
    assert!(out.contains(&quick), "grants through the broker: {out}");
    assert!(out.contains("exec: 7") && out.contains("LEN"), "{out}");
    assert!(
        !out.contains("verify: 0"),
        "audit --verify ran inside: {out}"
    );

    // A second name for the vault's file, made while nothing confined the
    // agent, would be a path the shield leaves open: it refuses to start.
    let link = s.home.join("innocent.db");
    let made = s
        .user(Path::new("/bin/ln"))
        .arg(s.env.home.join("vault.db"))
        .arg(&link)
        .status()
        .unwrap();
    assert!(
        made.success(),
        "the control: the user can link the vault's file"
    );
    let r = s.run(&["shield", "--", "true"]);
    s.env.expect_code(&r, code::TAMPERED);
    s.env
        .expect_stderr(&r, &["hard links", "nothing was started"]);
    fs::remove_file(&link).unwrap();
    let r = s.run(&["shield", "--", "true"]);
    s.env.expect_ok(&r);
}

/// Issue 13: under `--nested-sandbox` (no Landlock filesystem rules, so
/// that bubblewrap works inside) the agent runs in a user and mount
/// namespace of its own where the broker's directory and the protected
/// files are read-only and the vault is covered: it cannot put a fake
/// broker at the socket path, cannot open the vault's files, and still
/// uses the broker (list, exec) and bubblewrap. The control: outside, the
/// same user can write the broker's directory.
#[test]
fn nested_sandbox_keeps_the_socket_and_the_vault_out_of_reach() {
    let mut s = scene();
    let broker = s.unlock(&[]);
    let socket = s.socket();
    let dir = socket.parent().unwrap().to_path_buf();
    let outside = s
        .user(Path::new("/bin/sh"))
        .args([
            "-c",
            &format!("touch {dir:?}/probe && rm {dir:?}/probe && echo writable"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&outside.stdout).trim(),
        "writable",
        "the control: the user can write the broker's directory outside the shield"
    );
    // A start-up file two levels down: renaming its parent would free the
    // path for a planted one.
    let fish = s.home.join(".config/fish");
    fs::create_dir_all(&fish).unwrap();
    fs::write(fish.join("config.fish"), "# the person's fish start-up\n").unwrap();
    let chown = Command::new("chown")
        .args(["-R", &format!("{}:{}", s.uid, s.gid)])
        .arg(s.home.join(".config"))
        .status()
        .unwrap();
    assert!(chown.success());
    let envseal = s.envseal.display().to_string();
    let quick = s.bins.join("quick").display().to_string();
    let script = format!(
        r#"
fails() {{ if "$@" 2>/dev/null; then echo "DID: $*"; else echo "denied: $*"; fi; }}
fails rm -f {socket:?}
fails mv {dir:?} {dir:?}.moved
fails mv "$HOME/.config" "$HOME/.config.moved"
fails python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind({fake:?})'
fails sh -c 'echo x >> "$HOME/.bashrc"'
fails cat {vault:?}/vault.db
fails python3 -c 'open({shm:?}, "rb")'
"{envseal}" list >/dev/null && echo "ok: list"
"{envseal}" exec -- "{quick}" >/dev/null; echo "exec: $?"
bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc -- sh -c 'echo ok: bwrap'
"#,
        socket = socket.display().to_string(),
        dir = dir.display().to_string(),
        fake = dir.join("fake.sock").display().to_string(),
        vault = s.env.home.display().to_string(),
        shm = s.env.home.join("vault.db-shm").display().to_string(),
    );
    let r = s.run(&["shield", "--nested-sandbox", "--", "sh", "-c", &script]);
    let out = r.shown_stdout();
    assert!(
        !out.contains("DID:"),
        "{out}\n{}",
        s.env.redact(&r.stderr())
    );
    assert_eq!(
        out.matches("denied:").count(),
        7,
        "{out}\n{}",
        s.env.redact(&r.stderr())
    );
    for ok in ["ok: list", "exec: 7", "ok: bwrap"] {
        assert!(
            out.contains(ok),
            "{ok} failed under --nested-sandbox:\n{out}\n{}",
            s.env.redact(&r.stderr())
        );
    }
    assert!(socket.exists(), "the socket is gone");
    assert_eq!(
        s.broker_pid(),
        Some(broker),
        "another process answers at the socket"
    );
}

/// Issue 13: no exec without its record, and no record that stalls the
/// broker. The person's own process holds SQLite's write lock (as the
/// agent once did from inside the shield): an exec waits for it, with its
/// program not started and no secret handed over, while `status` answers
/// at once; when the lock is released the exec runs, recorded before it
/// started.
#[test]
fn a_stalled_audit_write_holds_up_only_its_own_exec() {
    let mut s = scene();
    s.unlock(&[]);
    let mark = s.project.join("ran");
    let sink = s.bins.join("sink");
    fs::write(
        &sink,
        format!("#!/bin/sh\necho \"ran $#\" > {mark:?}\nexit 7\n"),
    )
    .unwrap();
    fs::set_permissions(&sink, fs::Permissions::from_mode(0o755)).unwrap();
    s.env.expect_ok(
        &s.env
            .allow(&["--secret", "TOKEN", "--", sink.to_str().unwrap()]),
    );
    let holder = format!(
        r#"
import sqlite3, sys
db = sqlite3.connect({db:?}, isolation_level=None, timeout=1)
db.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"#,
        db = s.env.home.join("vault.db").display().to_string(),
    );
    let mut holder = s
        .user(Path::new("/usr/bin/python3"))
        .args(["-c", &holder])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "held", "the lock holder did not start");
    let mut exec = KillOnDrop(
        s.envseal(&["exec", "--", sink.to_str().unwrap()])
            .spawn()
            .unwrap(),
    );
    // The exec is under way (its session waits for the lock)...
    std::thread::sleep(Duration::from_secs(2));
    if let Some(status) = exec.0.try_wait().unwrap() {
        let mut err = String::new();
        let _ = exec.0.stderr.take().unwrap().read_to_string(&mut err);
        panic!("the exec ended ({status}) while its record could not be written: {err}");
    }
    assert!(
        !mark.exists(),
        "the program ran while its record could not be written"
    );
    // ...and the broker answers everyone else meanwhile.
    // Within 1 s (the issue's bound; the stalled write would take 60 s):
    // the best of three, so that one scheduling hiccup on a loaded
    // machine does not decide it.
    let took = (0..3)
        .map(|_| {
            let started = Instant::now();
            let r = s.run(&["status", "--json"]);
            let took = started.elapsed();
            s.env.expect_ok(&r);
            took
        })
        .min()
        .unwrap();
    assert!(
        took < Duration::from_secs(1),
        "status took {took:?} while an audit write was stalled"
    );
    eprintln!("status answered in {took:?} while an audit write was stalled");
    assert!(
        !mark.exists(),
        "the program ran while its record could not be written"
    );
    // Released: the exec runs, its record written before it started.
    holder.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let _ = holder.wait();
    let out = exec.0.wait().unwrap();
    assert_eq!(out.code(), Some(7));
    assert!(
        mark.exists(),
        "the program did not run once the lock was released"
    );
    let r = s.run(&["audit", "--json"]);
    let log: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let sink_path = sink.to_str().unwrap();
    assert!(
        log["elements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "exec" && e["program"] == sink_path),
        "{log}"
    );
}

/// A scene with its broker running and no idle TTL, and the broker's pid.
fn serving_scene() -> (Scene, i32) {
    let mut s = scene();
    let broker = s.unlock(&["--ttl", "0"]);
    (s, broker)
}

/// The broker's open descriptors, counted once it has served one exec,
/// so that a count taken later shows any it leaked.
struct Descriptors {
    broker: i32,
    before: usize,
}

impl Descriptors {
    /// Runs one exec first (the broker keeps the verified copies it
    /// caches), then counts.
    fn after_one_exec(s: &Scene, broker: i32) -> Self {
        let status = s.bins.join("status");
        let r = s.run(&["exec", "--", status.to_str().unwrap(), "3"]);
        assert_eq!(r.code, Some(3), "{}", r.shown_stderr());
        let before = Self::count(broker);
        Descriptors { broker, before }
    }

    fn count(broker: i32) -> usize {
        fs::read_dir(format!("/proc/{broker}/fd")).unwrap().count()
    }

    /// The broker holds as many descriptors as it did before (soon: it
    /// closes a connection when it next looks at it).
    fn assert_none_leaked(&self) {
        util::wait_for(|| Self::count(self.broker) == self.before);
        assert_eq!(
            Self::count(self.broker),
            self.before,
            "the broker leaked descriptors"
        );
    }
}

/// Set in the re-executed attacker: the broker's pid.
const ATTACK_BROKER_ENV: &str = "ENVSEAL_TEST_ATTACK_BROKER";

/// G5 from outside any shield: a process of the same user can neither
/// read the broker's environment, memory or maps, nor ptrace it,
/// `process_vm_readv` it or take a descriptor from it with `pidfd_getfd`.
#[test]
fn the_same_user_outside_a_shield_cannot_reach_into_the_broker() {
    // Re-executed as the user outside any shield: attack the broker.
    if let Ok(pid) = std::env::var(ATTACK_BROKER_ENV) {
        let res = attack(pid.parse().unwrap());
        println!("BROKER-ATTACK {}", serde_json::to_string(&res).unwrap());
        return;
    }
    let (s, broker) = serving_scene();
    let out = s
        .user(&s.me)
        .args([
            "--exact",
            &util::qualified(
                module_path!(),
                "the_same_user_outside_a_shield_cannot_reach_into_the_broker",
            ),
            "--nocapture",
        ])
        .env(ATTACK_BROKER_ENV, broker.to_string())
        .output()
        .unwrap();
    let res = util::user::attack_result(&out, "BROKER-ATTACK ");
    for k in [
        "environ",
        "mem",
        "maps",
        "ptrace",
        "process_vm_readv",
        "pidfd_getfd",
    ] {
        assert!(res[k].starts_with("errno"), "{k} on the broker: {}", res[k]);
    }
}

/// G5: a peer of another uid (root, here) is refused without being told
/// the status, the refusal is logged, and the broker keeps no descriptor
/// of the connection.
#[test]
fn a_client_of_another_uid_is_refused_and_the_refusal_logged() {
    let (s, broker) = serving_scene();
    let fds = Descriptors::after_one_exec(&s, broker);
    let mut c = UnixStream::connect(s.socket()).unwrap();
    let request = br#"{"v":1,"body":{"op":"status"}}"#;
    let _ = c.write_all(&(request.len() as u32).to_be_bytes());
    let _ = c.write_all(request);
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.contains("another user"), "{answer}");
    assert!(
        !answer.contains("\"pid\""),
        "a foreign peer got the status: {answer}"
    );
    let log = fs::read_to_string(s.socket().with_extension("log")).unwrap();
    assert!(log.contains("refused a connection from uid 0"), "{log}");
    fds.assert_none_leaked();
}

/// G5: garbage, a truncated message, a 4-byte frame that is not JSON and
/// a 100 MB message, sent by the user, leave the broker alive and
/// serving, with no descriptor of theirs kept.
#[test]
fn malformed_and_oversized_messages_leave_the_broker_serving() {
    let (s, broker) = serving_scene();
    let fds = Descriptors::after_one_exec(&s, broker);
    let python = format!(
        r#"
import socket, struct
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect("{sock}"); return s
s = conn(); s.sendall(b"garbage that is no frame at all"); s.close()
s = conn(); s.sendall(struct.pack(">I", 200) + b'{{"v":1'); s.close()
s = conn(); s.sendall(struct.pack(">I", 4) + b"\xff\xfe\x00\x01"); print(s.recv(4096)[:4] != b""); s.close()
s = conn()
try:
    s.sendall(struct.pack(">I", 100 * 1024 * 1024) + b"x" * (100 * 1024 * 1024))
except OSError:
    pass
s.close()
"#,
        sock = s.socket().display()
    );
    let out = s
        .user(Path::new("/usr/bin/env"))
        .args(["python3", "-c", &python])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "True\n",
        "the broker did not answer the non-JSON frame with a refusal"
    );
    assert!(alive(broker), "the broker died of bad messages");
    assert_eq!(s.broker_pid(), Some(broker));
    fds.assert_none_leaked();
}

/// G5: while two slow clients hold connections open (one silent, one
/// stopped half-way through a message), 64 concurrent execs each exit
/// with their own code; afterwards the broker holds as many descriptors
/// as before.
#[test]
fn sixty_four_concurrent_execs_complete_past_slow_clients_and_leak_nothing() {
    let (s, broker) = serving_scene();
    let fds = Descriptors::after_one_exec(&s, broker);
    let slow = format!(
        "import socket, struct, time\n\
         a = socket.socket(socket.AF_UNIX); a.connect('{sock}')\n\
         b = socket.socket(socket.AF_UNIX); b.connect('{sock}')\n\
         b.sendall(struct.pack('>I', 64) + b'{{\"v\"')\n\
         print('held', flush=True); time.sleep(30)\n",
        sock = s.socket().display()
    );
    let silent = s
        .user(Path::new("/usr/bin/env"))
        .args(["python3", "-c", &slow])
        .spawn()
        .unwrap();
    let mut silent = KillOnDrop(silent);
    let mut held = String::new();
    std::io::BufReader::new(silent.0.stdout.as_mut().unwrap())
        .read_line(&mut held)
        .unwrap();
    assert_eq!(held.trim(), "held");
    let status = s.bins.join("status");
    let children: Vec<_> = (0..64)
        .map(|i| {
            s.envseal(&["exec", "--", status.to_str().unwrap(), &(i + 1).to_string()])
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let r = s
            .env
            .record(format!("(as user) exec status {}", i + 1), out);
        assert_eq!(
            r.code,
            Some(i as i32 + 1),
            "exec {} exited wrongly: {}",
            i + 1,
            r.stderr()
        );
    }
    drop(silent);
    fds.assert_none_leaked();
}

/// G5: when a client dies mid-run, its program gets SIGHUP and ends, and
/// the broker serves on.
#[test]
fn a_client_that_dies_mid_run_ends_its_program_and_not_the_broker() {
    let (s, broker) = serving_scene();
    let mark = format!("dead-client-{}", std::process::id());
    let long = s.bins.join("long-none");
    let mut client = s
        .envseal(&["exec", "--", long.to_str().unwrap(), &mark, "777"])
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(client.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("READY"), "{line}");
    let program = find(&mark)
        .into_iter()
        .find(|&p| p != client.id() as i32)
        .expect("the program is not running");
    client.kill().unwrap();
    let _ = client.wait();
    assert!(wait_gone(program), "the program outlived its dead client");
    assert_eq!(s.broker_pid(), Some(broker));
}

/// `lock` and the idle TTL: the broker exits (its key gone with it), and
/// the next exec fails with the "locked" code.
#[test]
fn lock_and_idle_expiry_end_the_broker() {
    let mut s = scene();
    let quick = s.bins.join("quick");
    let quick = quick.to_str().unwrap().to_owned();
    // Long enough for one exec on a loaded machine; its end is waited for.
    let broker = s.unlock(&["--ttl", "5s"]);
    let r = s.run(&["exec", "--", &quick]);
    assert_eq!(r.code, Some(7), "{}", r.shown_stderr());
    assert!(wait_gone(broker), "the broker outlived its idle TTL");
    let r = s.run(&["exec", "--", &quick]);
    s.env.expect_code(&r, code::LOCKED);
    let r = s.run(&["status"]);
    s.env.expect_code(&r, code::LOCKED);

    // SIGTERM: the broker wipes its key, removes its socket and exits.
    let broker = s.unlock(&[]);
    let socket = s.socket();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(broker),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(wait_gone(broker), "the broker ignored SIGTERM");
    assert!(!socket.exists(), "the broker left its socket behind");
    let r = s.run(&["exec", "--", &quick]);
    s.env.expect_code(&r, code::LOCKED);

    // Its socket removed (the runtime directory goes at the user's last
    // logout): no client can reach it, so it stops, key and all.
    let broker = s.unlock(&["--ttl", "0"]);
    fs::remove_file(s.socket()).unwrap();
    assert!(
        wait_gone(broker),
        "a broker without its socket kept running"
    );
    // ...and its lock is released: a new broker starts.
    let broker = s.unlock(&[]);
    // A second unlock refreshes the TTL of the running broker.
    let r = s.run(&["unlock", "--ttl", "1h"]);
    s.env.expect_ok(&r);
    s.env.expect_stderr(&r, &["already running"]);
    let r = s.run(&["lock"]);
    s.env.expect_ok(&r);
    assert!(wait_gone(broker), "the broker is still running after lock");
    s.broker = None;
    let r = s.run(&["exec", "--", &quick]);
    s.env.expect_code(&r, code::LOCKED);
}

/// The caller's terminal works through the broker: the program gets the
/// terminal as stdin and stdout and reads what is typed, and Ctrl-C at
/// the terminal (which signals the client) is relayed to it.
#[test]
fn a_program_run_by_the_broker_uses_the_callers_terminal() {
    let env = Env::initialized();
    let token = value("tty");
    env.set_approved("TOKEN", &token);
    let prog = env.script(
        "ask",
        "#!/bin/sh\n[ -t 0 ] && [ -t 1 ] && echo TTY-YES\nprintf 'name? '\nread line\n\
         echo \"GOT:$line\"\nread again\nexit 3\n",
    );
    let r = env.allow(&["--secret", "TOKEN", "--", prog.to_str().unwrap()]);
    env.expect_ok(&r);
    let r = env.run_pw(&["unlock"], b"");
    env.expect_ok(&r);
    struct Lock<'a>(&'a Env);
    impl Drop for Lock<'_> {
        fn drop(&mut self) {
            let _ = self.0.run(&["lock"], b"");
        }
    }
    let _lock = Lock(&env);
    let mut t = util::terminal::Terminal::spawn(&env, &["exec", "--", prog.to_str().unwrap()]);
    t.expect("TTY-YES", 1);
    t.expect("name? ", 1);
    t.type_line("hello");
    t.expect("GOT:hello", 1);
    // Ctrl-C: the terminal signals the client's process group; the client
    // relays SIGINT to the program, which dies of it.
    t.type_raw(b"\x03");
    let r = t.finish();
    assert_eq!(r.code, Some(130), "{}", env.redact(&r.stdout()));
}

/// Through the broker (which caches one verified copy per script and
/// hands each exec its own), a Perl script runs in every tier, twice, and
/// reads its file secret through the descriptor. Perl reads the inherited
/// script descriptor itself: one left at end-of-file ran nothing.
#[test]
fn perl_scripts_run_through_the_broker() {
    let mut s = scene();
    let says = util::perl_says(&s.token);
    script_runs_through_the_broker(
        &mut s,
        "perl",
        util::PERL_FILE_READER,
        &["--file", "TOKEN"],
        3,
        |_, _| says.clone(),
    );
}

/// Through the broker too, a script whose `#!` line names a virtualenv's
/// python runs under that name and imports the venv's own package.
#[test]
fn a_virtualenv_script_finds_its_packages_through_the_broker() {
    let mut s = scene();
    let venv = util::Venv::new();
    let says = util::venv_script_says(&s.token);
    script_runs_through_the_broker(
        &mut s,
        "venv",
        &venv.script(),
        &["--secret", "TOKEN"],
        0,
        |_, _| says.clone(),
    );
}

/// Through the broker, file secrets are at the same paths as in-process
/// (`/dev/fd/3`, `/dev/fd/4`, then the script's copy; Lockdown's tmpfs),
/// whatever descriptors the broker's session holds.
#[test]
fn file_secrets_have_the_same_paths_through_the_broker() {
    let mut s = scene();
    let (a, b) = (value("broker-fd-a"), value("broker-fd-b"));
    s.env.set_approved("A", &a);
    s.env.set_approved("B", &b);
    let grant = ["--file", "B", "--file", "A"];
    script_runs_through_the_broker(&mut s, "fds", util::FD_READER, &grant, 0, |tier, at| {
        util::fd_reader_says(tier, at, &a, &b)
    });
}

/// Pins script `body` once per tier as the user (`grant`: its secrets),
/// starts the broker, and runs each twice through it: it must exit `code`
/// and print `says(tier)`.
fn script_runs_through_the_broker(
    s: &mut Scene,
    tag: &str,
    body: &str,
    grant: &[&str],
    code: i32,
    says: impl Fn(&str, &str) -> String,
) {
    for tier in TIERS {
        let p = s.script(&format!("{tag}-{tier}"), body);
        let args = [
            &["allow"],
            grant,
            &["--tier", tier, "--", p.to_str().unwrap()],
        ]
        .concat();
        let r = s.run_pw(&args);
        s.env.expect_ok(&r);
    }
    s.unlock(&[]);
    for tier in TIERS {
        let p = s.bins.join(format!("{tag}-{tier}"));
        for run in 1..=2 {
            let r = s.run(&["exec", "--", p.to_str().unwrap()]);
            assert_eq!(
                r.code,
                Some(code),
                "tier {tier}, run {run}: {}",
                s.env.redact(&r.stderr())
            );
            assert_eq!(
                r.stdout(),
                says(tier, p.to_str().unwrap()),
                "tier {tier}, run {run}"
            );
        }
    }
}

/// The broker's wire format in Python, for tests that play a client other
/// than envseal: `frame(body)` encodes a request, `read_frame(s)` reads one
/// reply (`{}` at end of stream), and `confine_like_a_shield()` gives the
/// calling process what `/proc` shows of a shield's agent (no_new_privs and
/// an allow-all seccomp filter of its own).
const PY_WIRE: &str = r#"
import ctypes, json, os, socket, struct, subprocess, sys, time
def frame(body):
    b = json.dumps({"v": 1, "body": body}).encode()
    return struct.pack(">I", len(b)) + b
def read_frame(s):
    def exactly(n):
        d = b""
        while len(d) < n:
            c = s.recv(n - len(d))
            if not c:
                return None
            d += c
        return d
    h = exactly(4)
    return {} if h is None else json.loads(exactly(struct.unpack(">I", h)[0]))
def confine_like_a_shield():
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    allow = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7FFF0000))
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    prog = Prog(1, ctypes.cast(allow, ctypes.c_void_p))
    assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0  # PR_SET_SECCOMP, filter
def exec_replies(sock, program, argv0, args, rename=[]):
    """An exec request as a client of one's own writes it (stdio and the
    working directory passed along); the kinds of reply until it ends."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
    req = {"op": "exec", "args": {"program": program, "argv0": {"s": argv0},
        "args": [{"s": a} for a in args], "env": [[{"s": "PATH"}, {"s": "/usr/bin:/bin"}]],
        "secrets": [], "clearenv": False, "verbose": False, "mask": None, "rename": rename,
        "tier": None}}
    socket.send_fds(s, [frame(req)], [0, 1, 2, cwd])
    replies = []
    while True:
        r = read_frame(s)
        if not r:
            break
        replies.append(r.get("reply"))
        if r.get("reply") in ("exit", "refused"):
            break
    return replies
"#;

/// A hand-built exec request (no envseal client) whose `rename` makes a
/// Lockdown file secret's name a path: the broker validates every name it
/// receives exactly as the CLI does, and the sandbox creates secret files
/// beneath its secrets directory only. The sink, a file in the user's
/// home, stays absent; the same request with a valid name is the control.
#[test]
fn a_forged_request_cannot_place_a_secret_file() {
    let mut s = scene();
    let prog = s.script(
        "file-reader",
        "#!/bin/sh\ntest -s \"$OTHER_FILE\" && echo \"FILE-OK $OTHER_FILE\"\n",
    );
    let r = s.run_pw(&[
        "allow",
        "--file",
        "TOKEN",
        "--tier",
        "lockdown",
        "--",
        prog.to_str().unwrap(),
    ]);
    s.env.expect_ok(&r);
    s.unlock(&[]);
    let sink = s.home.join("leaked");
    let python = format!(
        r#"
{PY_WIRE}
def run(rename):
    return exec_replies({sock:?}, {prog:?}, {prog:?}, [], rename)
print("FORGED", json.dumps(run([["TOKEN", "../.." + {sink:?}]])), flush=True)
print("CONTROL", json.dumps(run([["TOKEN", "OTHER_FILE"]])), flush=True)
"#,
        sock = s.socket().display().to_string(),
        prog = prog.display().to_string(),
        sink = sink.display().to_string(),
    );
    let out = s
        .user(Path::new("/usr/bin/python3"))
        .args(["-c", &python])
        .output()
        .unwrap();
    let r = s.env.record("(as user) forged exec requests".into(), out);
    let text = r.stdout();
    assert!(
        text.contains(r#"FORGED ["refused"]"#),
        "the forged request was not refused: {text} {}",
        r.stderr()
    );
    assert!(
        !sink.exists(),
        "the secret file was created at {}",
        sink.display()
    );
    assert!(
        text.contains("FILE-OK /run/envseal/secrets/OTHER_FILE"),
        "the control did not run: {text} {}",
        r.stderr()
    );
    assert!(text.contains(r#"CONTROL ["started", "exit"]"#), "{text}");
}

/// `--require-shield` cannot be satisfied from outside a shield: a
/// same-user process (not envseal) sends the shield registration for a
/// child it started — once plain, once after giving the child
/// no_new_privs and a seccomp filter of its own (what `/proc` shows of
/// the real shield's agent). The broker refuses both, and the child's exec
/// of the shield-only program is refused (77). The control: the same
/// program run under `envseal shield` works.
#[test]
fn a_forged_shield_registration_is_refused() {
    let mut s = scene();
    s.unlock(&[]);
    let only = s.bins.join("shielded-only");
    for mode in ["plain", "filtered"] {
        let python = format!(
            r#"
{PY_WIRE}
r, w = os.pipe()
ready_r, ready_w = os.pipe()
child = os.fork()
if child == 0:
    if {mode:?} == "filtered":
        confine_like_a_shield()
    os.write(ready_w, b"c")
    os.read(r, 1)  # registered (or not): now try the shield-only program
    p = subprocess.run([{envseal:?}, "exec", "--", {only:?}], capture_output=True)
    print("CHILD-EXEC", p.returncode, p.stdout.decode().strip(), flush=True)
    os._exit(0)
os.read(ready_r, 1)
s = socket.socket(socket.AF_UNIX)
s.connect({sock:?})
s.sendall(frame({{"op": "shield", "args": {{"agent_pid": child}}}}))
h = s.recv(4)
reply = json.loads(s.recv(struct.unpack(">I", h)[0])) if len(h) == 4 else {{}}
print("REGISTRATION", reply.get("reply"), flush=True)
os.write(w, b"g")
os.waitpid(child, 0)
"#,
            envseal = s.envseal.display().to_string(),
            only = only.display().to_string(),
            sock = s.socket().display().to_string(),
        );
        let out = s
            .user(Path::new("/usr/bin/python3"))
            .args(["-c", &python])
            .output()
            .unwrap();
        let r = s.env.record(
            format!("(as user) a forged shield registration ({mode})"),
            out,
        );
        let text = r.stdout();
        assert!(
            text.contains("REGISTRATION refused"),
            "the forged registration ({mode}) was accepted: {text} {}",
            r.stderr()
        );
        assert!(
            text.contains("CHILD-EXEC 77"),
            "the forged child ({mode}) ran the shield-only program: {text} {}",
            r.stderr()
        );
        assert!(!text.contains("shielded-only ran"), "{text}");
    }
    let log = fs::read_to_string(s.socket().with_extension("log")).unwrap();
    assert!(log.contains("refused the registration"), "{log}");
    // Written apart from the broker's loop: soon rather than at once.
    assert!(
        util::wait_for(|| {
            let r = s.run(&["audit", "--json"]);
            r.stdout().contains(r#""action":"request-refused""#)
                && r.stdout().contains("refused to register pid")
        }),
        "the refused registration is not in the audit log"
    );

    // The control: the real shield registers, and the program runs.
    let r = s.run(&[
        "shield",
        "--",
        s.envseal.to_str().unwrap(),
        "exec",
        "--",
        only.to_str().unwrap(),
    ]);
    s.env.expect_ok(&r);
    assert!(
        r.stdout().contains("shielded-only ran"),
        "{}",
        r.shown_stderr()
    );
}

/// From inside a shield, an existing value (pending included) cannot be
/// replaced, so the person's `approve` endorses the value they wrote, not
/// one the agent swapped in. `approve` shows when and by whom each value
/// was written, and asks before endorsing one an agent wrote: with no
/// terminal to ask on, nothing is approved unless `--yes`.
#[test]
fn an_agent_cannot_replace_a_value_awaiting_approval() {
    let mut s = scene();
    s.unlock(&[]);
    let mine = value("person");
    let agents = value("agent-swap");
    s.env.remember(mine.as_bytes());
    s.env.remember(agents.as_bytes());
    let mut c = s.envseal(&["set", "DEPLOY_KEY"]);
    c.stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(mine.as_bytes())
        .unwrap();
    let r = s.env.record(
        "(as user) set DEPLOY_KEY".into(),
        child.wait_with_output().unwrap(),
    );
    s.env.expect_ok(&r);
    let agent_set = |args: &str| {
        let mut c = s.envseal(&[
            "shield",
            "--",
            "/bin/sh",
            "-c",
            &format!(
                "printf %s \"$AGENT_VALUE\" | {} set {args}",
                s.envseal.display()
            ),
        ]);
        c.env("AGENT_VALUE", &agents);
        s.env.record(
            format!("(as user, shielded) set {args}"),
            c.output().unwrap(),
        )
    };
    // The swap is refused; a new value of the agent's own is stored.
    let r = agent_set("--replace DEPLOY_KEY");
    s.env.expect_code(&r, code::DENIED);
    s.env.expect_stderr(&r, &["cannot be replaced"]);
    let r = agent_set("DEPLOY_KEY");
    s.env.expect_code(&r, code::DENIED);
    let r = agent_set("AGENT_KEY");
    s.env.expect_ok(&r);

    // approve, with no terminal: shown, not approved.
    let approve = |extra: &[&str]| {
        let mut args = vec!["approve", "DEPLOY_KEY", "AGENT_KEY"];
        args.extend_from_slice(extra);
        s.run_pw(&args)
    };
    let r = approve(&[]);
    s.env.expect_code(&r, code::DENIED);
    s.env.expect_stderr(
        &r,
        &[
            "DEPLOY_KEY was written",
            "directly (outside any shield)",
            "AGENT_KEY was written",
            "by a caller inside an envseal shield",
            "nothing was approved",
        ],
    );
    let listed = s.run(&["list", "--json"]);
    assert_eq!(
        listed.stdout().matches("\"pending\"").count(),
        2,
        "{}",
        listed.stdout()
    );
    // The refused swap is in the audit log (written apart from the
    // broker's loop, so soon rather than at once), marked as from a shield.
    let refused_swap = || {
        let r = s.run(&["audit", "--json"]);
        let log: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        log["elements"].as_array().unwrap().iter().any(|e| {
            e["action"] == "set-refused" && e["shielded"] == true && e["names"][0] == "DEPLOY_KEY"
        })
    };
    assert!(util::wait_for(refused_swap), "no set-refused record");
    // The agent (outside the shield now) makes its value look like the
    // person's: the writer column says "direct". Its sealed record says
    // otherwise, and approve refuses.
    let edit_writer = |writer: &str| {
        let db = rusqlite::Connection::open(s.env.home.join("vault.db")).unwrap();
        db.execute(
            "UPDATE secrets SET writer = ?1 WHERE name = 'AGENT_KEY'",
            [writer],
        )
        .unwrap();
    };
    let original: String = rusqlite::Connection::open(s.env.home.join("vault.db"))
        .unwrap()
        .query_row(
            "SELECT writer FROM secrets WHERE name = 'AGENT_KEY'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    edit_writer("direct");
    let r = s.run_pw(&["approve", "AGENT_KEY", "--yes"]);
    s.env.expect_code(&r, code::TAMPERED);
    s.env
        .expect_stderr(&r, &["writer was changed", "inside a shield"]);
    edit_writer(&original);
    let r = approve(&["--yes"]);
    s.env.expect_ok(&r);
    s.env
        .expect_stderr(&r, &["approved DEPLOY_KEY", "approved AGENT_KEY"]);
    s.env.assert_value("DEPLOY_KEY", mine.as_bytes());
}

/// One vault has one broker, whatever the caller's environment says: with
/// a broker started where `XDG_RUNTIME_DIR` pointed somewhere, a caller
/// without it (or with another) reaches the same broker, and `unlock`
/// there refreshes it instead of starting a second.
#[test]
fn the_broker_is_found_from_the_vault_alone() {
    let mut s = scene();
    let elsewhere = s.home.join("xdg-runtime");
    fs::create_dir_all(&elsewhere).unwrap();
    let chown = Command::new("chown")
        .arg(format!("{}:{}", s.uid, s.gid))
        .arg(&elsewhere)
        .status()
        .unwrap();
    assert!(chown.success());
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = s.envseal(&["unlock", "--passphrase-fd", "0"]);
    c.env("XDG_RUNTIME_DIR", &elsewhere)
        .stdin(fs::File::open(s.env.passfile()).unwrap());
    let r = s.env.record(
        "(as user) unlock (XDG_RUNTIME_DIR set)".into(),
        c.output().unwrap(),
    );
    s.env.expect_ok(&r);
    let broker = s
        .broker_pid()
        .expect("no broker reached without XDG_RUNTIME_DIR");
    s.broker = Some(broker);
    let mut c = s.envseal(&["unlock", "--passphrase-fd", "0"]);
    c.env("XDG_RUNTIME_DIR", "/tmp")
        .stdin(fs::File::open(s.env.passfile()).unwrap());
    let r = s.env.record(
        "(as user) unlock (another XDG_RUNTIME_DIR)".into(),
        c.output().unwrap(),
    );
    s.env.expect_ok(&r);
    s.env.expect_stderr(&r, &["already running"]);
    assert_eq!(s.broker_pid(), Some(broker));
    let quick = s.bins.join("quick");
    let mut c = s.envseal(&["exec", "--", quick.to_str().unwrap()]);
    c.env("XDG_RUNTIME_DIR", "/tmp");
    let r = s.env.record(
        "(as user) exec (another XDG_RUNTIME_DIR)".into(),
        c.output().unwrap(),
    );
    assert_eq!(r.code, Some(7), "{}", r.shown_stderr());
    assert!(
        s.env.home.join("broker.lock").exists(),
        "the lock is not in the vault directory"
    );
}

/// The "not inside an envseal shield" warning is said once per terminal
/// session (per broker), in plain words, and ENVSEAL_QUIET=1 silences it.
#[test]
fn the_unshielded_warning_is_said_once_per_session() {
    let mut s = scene();
    s.unlock(&[]);
    let quick = s.bins.join("quick");
    let quick = quick.to_str().unwrap();
    let warned = |r: &util::Run| r.stderr().contains("not inside an envseal shield");
    let r = s.run(&["exec", "--", quick]);
    assert_eq!(r.code, Some(7), "{}", r.shown_stderr());
    assert!(warned(&r), "{}", r.shown_stderr());
    assert!(
        r.stderr().contains("envseal shield -- AGENT"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains("G7"), "{}", r.shown_stderr());
    let r = s.run(&["exec", "--", quick]);
    assert!(
        !warned(&r),
        "said twice in one session: {}",
        r.shown_stderr()
    );
    // A new session (another terminal) is told again, unless quiet.
    let in_new_session = |quiet: bool| {
        let mut c = s.user(Path::new("/usr/bin/setsid"));
        c.args(["-w", s.envseal.to_str().unwrap(), "exec", "--", quick]);
        if quiet {
            c.env("ENVSEAL_QUIET", "1");
        }
        s.env.record(
            format!("(as user, new session, quiet {quiet}) exec"),
            c.output().unwrap(),
        )
    };
    let r = in_new_session(true);
    assert_eq!(r.code, Some(7), "{}", r.shown_stderr());
    assert!(
        !warned(&r),
        "ENVSEAL_QUIET=1 did not silence it: {}",
        r.stderr()
    );
    let r = in_new_session(false);
    assert!(
        warned(&r),
        "a new session was not told: {}",
        r.shown_stderr()
    );
}

/// The harder forgery: a same-user process outside any shield arranges
/// that every process the broker inspects runs envseal's own code. It
/// connects, forks a child that takes no_new_privs and a filter of its own
/// and then executes `envseal mcp`, sends all but the last byte of the
/// registration, and executes `envseal mcp` itself; a helper holding the
/// connection sends the last byte once it has, and answers the broker's
/// challenge. The answer does not come from the registering process, so
/// the registration is refused, and the child — an MCP server asked to run
/// the shield-only program — is refused too.
#[test]
fn a_registration_is_answered_only_by_the_shield_itself() {
    let mut s = scene();
    s.unlock(&[]);
    let only = s.bins.join("shielded-only");
    let python = format!(
        r#"
{PY_WIRE}
ENVSEAL, ONLY = {envseal:?}, {only:?}
def runs_envseal(pid):
    try:
        return open(f"/proc/{{pid}}/comm").read().strip() == "envseal"
    except OSError:
        return False
s = socket.socket(socket.AF_UNIX)
s.connect({sock:?})
x = os.getpid()
to_c_r, to_c_w = os.pipe()
from_c_r, from_c_w = os.pipe()
keep_x_r, keep_x_w = os.pipe()
c = os.fork()
if c == 0:
    confine_like_a_shield()
    os.dup2(to_c_r, 0)
    os.dup2(from_c_w, 1)
    os.execv(ENVSEAL, [ENVSEAL, "mcp"])
message = frame({{"op": "shield", "args": {{"agent_pid": c}}}})
h = os.fork()
if h == 0:
    for _ in range(3000):
        if runs_envseal(x) and runs_envseal(c):
            break
        time.sleep(0.01)
    s.sendall(message[-1:])
    reply = read_frame(s)
    print("FIRST", reply.get("reply"), json.dumps(reply), flush=True)
    if reply.get("reply") == "challenge":
        s.sendall(frame({{"op": "shield_proof", "args": {{"nonce": reply["nonce"]}}}}))
        reply = read_frame(s)
    print("REGISTRATION", reply.get("reply"), flush=True)
    out = os.fdopen(from_c_r)
    def call(obj):
        os.write(to_c_w, (json.dumps(obj) + "\n").encode())
    call({{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {{"protocolVersion": "2025-06-18", "capabilities": {{}}, "clientInfo": {{"name": "t", "version": "1"}}}}}})
    out.readline()
    call({{"jsonrpc": "2.0", "method": "notifications/initialized"}})
    call({{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {{"name": "run", "arguments": {{"program": ONLY, "args": []}}}}}})
    answer = json.loads(out.readline())
    print("RUN", json.dumps(answer), flush=True)
    os.kill(c, 9)
    os.kill(x, 9)
    os._exit(0)
s.sendall(message[:-1])
os.dup2(keep_x_r, 0)  # its stdin stays open (the helper holds the other end)
os.execv(ENVSEAL, [ENVSEAL, "mcp"])
"#,
        envseal = s.envseal.display().to_string(),
        only = only.display().to_string(),
        sock = s.socket().display().to_string(),
    );
    let mut c = s.user(Path::new("/usr/bin/python3"));
    c.args(["-c", &python]).stdin(Stdio::piped());
    let child = c.spawn().unwrap();
    let out = child.wait_with_output().unwrap();
    let r = s
        .env
        .record("(as user) a registration answered by a helper".into(), out);
    let text = r.stdout();
    assert!(
        text.contains("FIRST challenge"),
        "the broker did not reach the challenge (every /proc check should have passed): {text} {}",
        r.stderr()
    );
    assert!(
        text.contains("REGISTRATION refused"),
        "a helper's answer registered the child: {text} {}",
        r.stderr()
    );
    let run = text
        .lines()
        .find_map(|l| l.strip_prefix("RUN "))
        .unwrap_or_else(|| panic!("no run result: {text} {}", r.shown_stderr()));
    let run: serde_json::Value = serde_json::from_str(run).unwrap();
    assert_eq!(run["result"]["isError"], true, "{run}");
    assert!(!run.to_string().contains("shielded-only ran"), "{run}");
    let log = fs::read_to_string(s.socket().with_extension("log")).unwrap();
    assert!(
        log.contains("did not come from the registering process"),
        "{log}"
    );
}

/// A counterfeit broker: a process of the same user (not envseal) listens
/// at the broker's socket path and answers every request. `status`,
/// `exec` and `unlock` refuse to talk to it and say why; `unlock` does not
/// report a broker "already running", and nothing reaches the fake but
/// the connection itself.
#[test]
fn a_counterfeit_broker_is_not_talked_to() {
    let s = scene();
    let socket = s.socket();
    let got = s.home.join("fake-broker-got");
    let python = format!(
        r#"
import json, os, socket, struct, sys
os.makedirs(os.path.dirname({sock:?}), mode=0o700, exist_ok=True)
l = socket.socket(socket.AF_UNIX)
l.bind({sock:?})
l.listen(16)
print("LISTENING", flush=True)
got = open({got:?}, "ab")
while True:
    c, _ = l.accept()
    c.settimeout(2)
    try:
        data = c.recv(65536)
    except OSError:
        data = b""
    got.write(data); got.flush()
    reply = json.dumps({{"reply": "done", "message": "already running"}}).encode()
    try:
        c.sendall(struct.pack(">I", len(reply)) + reply)
    except OSError:
        pass
    c.close()
"#,
        sock = socket.display().to_string(),
        got = got.display().to_string(),
    );
    let mut fake = s.user(Path::new("/usr/bin/python3"));
    fake.args(["-c", &python]);
    let mut fake = KillOnDrop(fake.spawn().unwrap());
    let mut line = String::new();
    std::io::BufReader::new(fake.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "LISTENING");

    let quick = s.bins.join("quick");
    for args in [
        vec!["status"],
        vec!["exec", "--", quick.to_str().unwrap()],
        vec!["unlock", "--passphrase-fd", "0"],
    ] {
        let mut c = s.envseal(&args);
        c.stdin(fs::File::open(s.env.passfile()).unwrap());
        let r = s.env.record(
            format!("(as user) {} (a counterfeit broker)", args.join(" ")),
            c.output().unwrap(),
        );
        assert_ne!(r.code, Some(0), "{args:?}: {}", r.shown_stderr());
        assert!(
            r.stderr().contains("not talking to the process")
                && r.stderr().contains("does not run this envseal"),
            "{args:?}: {}",
            r.stderr()
        );
        assert!(
            !r.stderr().contains("already running"),
            "{}",
            r.shown_stderr()
        );
    }
    drop(fake);
    let got = fs::read(&got).unwrap_or_default();
    assert!(
        got.is_empty(),
        "the counterfeit broker received {} bytes",
        got.len()
    );
}

/// A pinned interpreter cannot be moved into the agent's own virtualenv
/// by a forged request: Python finds its prefix from `argv[0]`, and the
/// agent, speaking the broker's protocol itself, names its venv's
/// `bin/python` there, for the system interpreter's grant. The broker runs
/// an interpreter as its pinned path (or its pinned venv), so the agent's
/// package — which, run directly, hands over what `TOKEN` holds (the
/// control, with a decoy) — never runs and the sink stays empty; the
/// honest request runs the program.
#[test]
fn a_forged_argv0_cannot_move_a_pinned_interpreter_into_another_virtualenv() {
    let mut s = scene();
    let python = fs::canonicalize("/usr/bin/python3").unwrap();
    let python = python.to_str().unwrap().to_owned();
    let code = "import sys, hashlib, os; import envseal_venv_only; \
                print('VENV-RAN', hashlib.sha256(os.environ['TOKEN'].encode()).hexdigest())";
    let fallback = "import sys, os; print('RAN', sys.prefix)";
    // The agent's venv; run as it (the control), its package gets TOKEN.
    let sink = s.home.join("from-the-agents-venv");
    let agents = util::Venv::agents(&sink);

    let r = s.run_pw(&[
        "allow",
        "--secret",
        "TOKEN",
        "--args-prefix",
        "-c",
        "--",
        &python,
    ]);
    s.env.expect_ok(&r);
    s.unlock(&[]);
    let client = format!(
        r#"
{PY_WIRE}
def run(argv0, code):
    return exec_replies({sock:?}, {python:?}, argv0, ["-c", code])
print("FORGED", json.dumps(run({agent:?}, {code:?})), flush=True)
print("HONEST", json.dumps(run({python:?}, {fallback:?})), flush=True)
"#,
        sock = s.socket().display().to_string(),
        agent = agents.python.display().to_string(),
    );
    let out = s
        .user(Path::new("/usr/bin/python3"))
        .args(["-c", &client])
        .output()
        .unwrap();
    let r = s.env.record("(as user) a forged argv0".into(), out);
    let text = r.stdout();
    assert!(text.contains("FORGED"), "{text} {}", r.stderr());
    assert!(
        !sink.exists(),
        "the agent's virtualenv ran inside the pinned interpreter and got the secret"
    );
    assert!(
        text.contains(r#"FORGED ["started", "exit"]"#) && !text.contains("VENV-RAN"),
        "the forged run imported the agent's package: {text}"
    );
    assert!(
        text.contains("RAN /usr") && text.contains(r#"HONEST ["started", "exit"]"#),
        "the honest request did not run the program: {text} {}",
        r.stderr()
    );
}
