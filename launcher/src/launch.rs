//! Running a verified program with its secrets, as a child that envseal
//! waits for, forwarding signals and passing its exit status through.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use secrecy::{ExposeSecret as _, SecretSlice};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::idmap::{self, G7, Ids, USERNS_FIX};
use crate::program::{self, Role, Verified};
use crate::sandbox::{self, PRIVATE_HOME, SECRET_DIR, SecretFile};
use crate::sys::spawn::FIRST_FD;
use crate::sys::{clone, files, signals, spawn};

/// How strongly the program is confined (see the crate documentation).
pub use envseal_core::Tier;

/// Whether the program's stdout and stderr go through the mask
/// ([`crate::mask`]); one vocabulary: `envseal-core`.
pub use envseal_core::Masking;

/// How a secret reaches the program, in which variable (one vocabulary:
/// `envseal-core`). A file is a sealed, read-only memfd kept open across
/// exec, its path `/dev/fd/N` (Lockdown: a file on the sandbox's tmpfs).
pub use envseal_core::Delivery;

/// One secret to deliver. The value is wiped when this is dropped.
pub struct SecretItem {
    /// How, and in which variable (for a file: the one holding its path).
    pub delivery: Delivery,
    pub value: SecretSlice<u8>,
}

/// A `#!` script as it runs: the interpreter (the launch's executable)
/// reads the verified copy.
pub struct Script {
    /// The script's verified, sealed copy.
    pub copy: Verified,
    /// The optional single argument of the `#!` line.
    pub arg: Option<String>,
    /// The interpreter's `argv[0]`, as the kernel would give it: the
    /// interpreter as the `#!` line writes it (a virtualenv's
    /// `bin/python`, not the system file it leads to: interpreters find
    /// their prefix from it), or NAME for `#!/usr/bin/env NAME`. The bytes
    /// executed are still the pinned, canonical file's.
    pub argv0: OsString,
    /// Where the script is, as the interpreter is told where it runs at
    /// its real path: the pinned path, or a link to it only root can
    /// change (see the broker's `prepare`).
    pub path: String,
    /// Options put before the script that keep the caller's environment
    /// and the user's own directories from loading code into the
    /// interpreter ([`crate::environment::isolation`]).
    pub isolate: &'static [&'static str],
}

/// Everything needed to run a pinned program.
pub struct Launch {
    /// What `execveat` runs: the program, or a script's interpreter.
    pub executable: Verified,
    /// A `#!` script: its verified copy, its `#!` argument, and the
    /// interpreter's `argv[0]`.
    pub script: Option<Script>,
    /// `argv[0]` (for a script, [`Script::argv0`] is used instead).
    pub argv0: OsString,
    /// The arguments after the program.
    pub args: Vec<OsString>,
    /// The environment, already rebuilt (see [`crate::rebuild`]).
    pub env: Vec<(OsString, OsString)>,
    /// The secrets; variables of the same names in `env` are replaced.
    pub secrets: Vec<SecretItem>,
    /// The confinement tier.
    pub tier: Tier,
    /// Lockdown: further programs the program may execute, with the
    /// SHA-256 each is pinned to (checked at launch).
    pub may_exec: Vec<(String, [u8; 32])>,
    /// Print what was applied to stderr ("envseal: …" lines).
    pub verbose: bool,
    /// Which output streams are masked.
    pub masking: Masking,
    /// Lockdown: what the program may write besides its private `/tmp`.
    pub writable: Writable,
    /// The Landlock ruleset of the caller's shield, for a program run for
    /// a shielded caller: enforced on the program too, in every tier, so
    /// that it is confined at least as tightly as its caller.
    pub confine: Option<OwnedFd>,
}

/// What Lockdown lets the program write besides its private `/tmp`: each
/// such directory is also mounted `noexec` in its namespace.
#[derive(Clone, Debug, Default)]
pub struct Writable {
    /// The working directory (`allow --write-cwd`).
    pub cwd: bool,
    /// Further directories (`allow --write DIR`), absolute.
    pub dirs: Vec<PathBuf>,
    /// Paths that no writable directory may be or hold, each with what it
    /// is (`HOME`, the vault, the runtime directory, a `PATH` directory):
    /// a program writing there could change what the person or envseal
    /// runs next.
    pub guarded: Vec<(PathBuf, &'static str)>,
    /// For a shielded caller: the shield's protected paths, which a
    /// writable directory may neither be, hold, nor lie in.
    pub protected: Vec<PathBuf>,
}

impl Writable {
    /// The directories Lockdown makes writable, each checked against
    /// [`Writable::guarded`].
    /// Each is opened once, and what is checked and given to Landlock is
    /// the directory that descriptor names: a link swapped into the path
    /// after `allow` cannot move the rule onto another directory.
    fn resolve(&self) -> Result<Vec<(PathBuf, OwnedFd)>> {
        let mut asked = self.dirs.clone();
        if self.cwd {
            asked.push(std::env::current_dir().map_err(|source| Error::Sys {
                action: "find the working directory",
                source,
            })?);
        }
        let mut dirs = Vec::with_capacity(asked.len());
        for dir in asked {
            let fd = nix::fcntl::open(
                &dir,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(Error::sys("open a directory the program may write"))?;
            let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(
                |source| Error::Sys {
                    action: "find a writable directory's path",
                    source,
                },
            )?;
            if real != dir {
                return Err(Error::Unwritable {
                    why: format!(
                        "the grant makes {} writable, and that path now leads to {} (a link)",
                        dir.display(),
                        real.display()
                    ),
                    fix: "pin it again naming the directory itself",
                });
            }
            dirs.push((real, fd));
        }
        for (dir, _) in &dirs {
            if let Some((held, what)) = self.guarded.iter().find(|(g, _)| g.starts_with(dir)) {
                return Err(Error::Unwritable {
                    why: if held == dir {
                        format!(
                            "the grant makes {} writable, and it is {what}",
                            dir.display()
                        )
                    } else {
                        format!(
                            "the grant makes {} writable, and it holds {}, {what}",
                            dir.display(),
                            held.display()
                        )
                    },
                    fix: "run it from the directory it should work in, or pin it with --write \
                          naming a directory that holds none of these",
                });
            }
            if let Some(p) = self
                .protected
                .iter()
                .find(|p| p.starts_with(dir) || dir.starts_with(p))
            {
                return Err(Error::Unwritable {
                    why: format!(
                        "the grant makes {} writable, and the caller's shield protects {}",
                        dir.display(),
                        p.display()
                    ),
                    fix: "run it from a directory the shield lets the agent write",
                });
            }
        }
        Ok(dirs)
    }
}

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Exit {
    /// The status a shell would report: the code, or 128 + signal.
    pub fn status(self) -> u8 {
        match self {
            Exit::Code(c) => (c & 0xff) as u8,
            Exit::Signal(s) => (128 + s).clamp(0, 255) as u8,
        }
    }
}

/// What a [`Relay`] read from its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Send this signal to the program.
    Forward(Signal),
    /// The other end is gone: the program gets `SIGHUP`, as at a
    /// terminal hang-up, and the descriptor is no longer watched.
    Hangup,
    /// Nothing to do.
    Nothing,
}

/// A descriptor watched while the program runs (a broker's client
/// connection), and what to do when it is readable.
pub struct Relay<'a> {
    pub fd: std::os::fd::BorrowedFd<'a>,
    pub read: &'a mut dyn FnMut() -> Control,
}

/// Runs the program and waits for it. The secrets are copied into the
/// child's environment (or sealed memfds) and wiped here as soon as the
/// child has exec'd; signals reaching envseal are forwarded meanwhile.
pub fn run(launch: Launch) -> Result<Exit> {
    run_relaying(launch, None)
}

/// [`run`], also forwarding the signals `relay` reads while the program
/// runs (the broker relays its client's this way).
pub fn run_relaying(launch: Launch, relay: Option<Relay<'_>>) -> Result<Exit> {
    let Launch {
        executable,
        script,
        argv0,
        args,
        mut env,
        secrets,
        tier,
        may_exec,
        verbose,
        masking,
        writable,
        confine: shield,
    } = launch;
    check_caller(&executable)?;
    let mut notes = Vec::new();

    // Everything that can fail is checked before any process is started.
    let namespaced = confine(
        tier,
        &executable,
        &may_exec,
        &writable,
        &mut env,
        &mut notes,
    )?;
    let outputs = Outputs::new(masking, &secrets, &mut notes)?;
    // In the sandbox the program (and a script) can be copied to their
    // real paths; elsewhere a script's copy is passed as a descriptor.
    let real = namespaced
        .as_ref()
        .and_then(|n| n.real_paths(&executable, script.as_ref(), &mut notes))
        .transpose()?;
    let layout = lay_out(tier, &secrets, &env, script.as_ref(), real, argv0, args)?;
    let (envp, real) = (&layout.delivered.envp, layout.real.as_ref());
    let argv_ptrs = spawn::null_terminated(layout.argv.iter().map(|a| a.as_ptr()));
    let envp_ptrs = spawn::null_terminated(envp.iter().map(|e| e.as_ptr().cast()));

    let blocked = Blocked::new()?;
    // Tier None under the broker: the program leads a group, which
    // relayed signals reach whole. (In the namespaced tiers PID 1 passes
    // them to every process of its namespace.)
    let group = relay.is_some() && namespaced.is_none();
    let (exec_above, exec_fd) = exec_descriptor(&executable, real, layout.floor)?;
    let shield = number_shield(shield, layout.floor, &mut notes)?;
    let prepared = spawn::Prepared {
        exec_fd,
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        place: &layout.place,
        mask: &blocked.mask,
        max_fd: max_fd(),
        stdio: outputs.write_ends(),
        new_group: group,
        confine: shield.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
    };
    let spawned = match &namespaced {
        Some(namespaced) => {
            let floor = prepared.slots_end();
            let files = &layout.delivered.files;
            let inputs = SandboxInputs::new(envp, &secrets, files, floor)?;
            namespaced.start(inputs, &prepared, &blocked.waited, real, &mut notes)
        }
        None => start_plain(&prepared, &executable),
    };
    // The child has its own copy (or failed): wipe ours now, in order.
    drop((envp_ptrs, layout));
    drop((secrets, script, namespaced));
    let child = spawned?;
    // The program (and the sandbox's PID 1) hold the write ends now.
    let outputs = outputs.started();
    drop(exec_above);
    drop(executable);
    if verbose {
        print_notes(&notes);
    }
    let target = signal_target(child, group);
    wait(child, target, &blocked.waited, relay, outputs)
}

/// The caller's shield ruleset (see [`Launch::confine`]), numbered at
/// `floor` or above like envseal's other descriptors in the child.
fn number_shield(
    shield: Option<OwnedFd>,
    floor: RawFd,
    notes: &mut Vec<String>,
) -> Result<Option<OwnedFd>> {
    let Some(fd) = shield else {
        return Ok(None);
    };
    notes.push(
        "the caller is inside a shield: the shield's Landlock domain (its write protections, \
         signal and socket scopes) confines the program too"
            .into(),
    );
    files::dup_at_least(fd.as_fd(), floor)
        .map(Some)
        .map_err(Error::sys("number the caller's shield ruleset"))
}

/// The program's descriptors and exec data, laid out before any process
/// starts (see [`lay_out`]).
struct Layout<'s> {
    /// The lowest number for envseal's own descriptors.
    floor: RawFd,
    real: Option<RealPaths>,
    delivered: Delivered<'s>,
    argv: Vec<CString>,
    /// A script's copy, when it is passed in a slot: held open (its
    /// number is in `place`) until the child has it.
    _script_fd: Option<OwnedFd>,
    /// What the child places at `FIRST_FD`, `FIRST_FD + 1`, …
    place: Vec<RawFd>,
}

/// Lays out the program's descriptors at fixed numbers — file secrets
/// (tier None), then a script's copy when it is not run at its real path —
/// with envseal's own numbered above them; delivers the secrets and builds
/// argv.
fn lay_out<'s>(
    tier: Tier,
    secrets: &'s [SecretItem],
    env: &[(OsString, OsString)],
    script: Option<&Script>,
    real: Option<RealPaths>,
    argv0: OsString,
    args: Vec<OsString>,
) -> Result<Layout<'s>> {
    let script_slot = script.is_some() && real.is_none();
    let files = if tier != Tier::None {
        0
    } else {
        secrets
            .iter()
            .filter(|s| matches!(s.delivery, Delivery::File(_)))
            .count()
    };
    let floor = FIRST_FD + (files + usize::from(script_slot)) as RawFd;
    let real = real.map(|r| r.numbered_from(floor)).transpose()?;
    let delivered = deliver(secrets, env, tier != Tier::None, floor)?;
    let script_at = ScriptAt {
        slot: script_slot,
        files: delivered.memfds.len(),
        floor,
    };
    let (argv, script_fd) = arguments(argv0, args, script, script_at)?;
    let place: Vec<RawFd> = delivered
        .memfds
        .iter()
        .chain(&script_fd)
        .map(|f| f.as_raw_fd())
        .collect();
    Ok(Layout {
        floor,
        real,
        delivered,
        argv,
        _script_fd: script_fd,
        place,
    })
}

/// The descriptor the program's child executes: the program's own file
/// when it runs from that, else its sealed copy, numbered above the
/// program's slots (a duplicate, returned to be kept open, when it was
/// below).
fn exec_descriptor(
    executable: &Verified,
    real: Option<&RealPaths>,
    floor: RawFd,
) -> Result<(Option<OwnedFd>, RawFd)> {
    if let Some(file) = real.and_then(|r| r.program.as_ref()) {
        return Ok((None, file.as_raw_fd()));
    }
    let above = (executable.raw_fd() < floor)
        .then(|| files::dup_at_least(executable.fd().as_fd(), floor))
        .transpose()
        .map_err(Error::sys("number the executable's copy"))?;
    let fd = above
        .as_ref()
        .map_or(executable.raw_fd(), |f| f.as_raw_fd());
    Ok((above, fd))
}

/// Refuses an executable loaded as a script, and a caller with more than
/// one thread (the launcher forks: see the crate documentation).
fn check_caller(executable: &Verified) -> Result<()> {
    if executable.role() != Role::Executable {
        return Err(Error::Sys {
            action: "launch",
            source: std::io::Error::other("the executable was loaded as a script"),
        });
    }
    if !crate::sys::fork::single_threaded() {
        return Err(Error::Sys {
            action: "launch",
            source: std::io::Error::other(
                "the launcher forks and must be called from a single-threaded process",
            ),
        });
    }
    Ok(())
}

/// The namespaced tiers' confinement, checked and built before any
/// process starts.
struct Namespaced {
    ids: Ids,
    /// G7 takes the group route (see [`prepare_g7`]): the program runs
    /// from its memfd; every other route copies it to its real path.
    group: bool,
    seccomp: [seccompiler::BpfProgram; 2],
    lockdown: bool,
    /// Lockdown's Landlock ruleset and the access rights for `/tmp`.
    landlock: Option<(OwnedFd, u64)>,
    /// Lockdown's writable directories, which PID 1 mounts `noexec`.
    writable: Vec<CString>,
    /// The working directory when it lies in one of them.
    cwd: Option<CString>,
}

/// Checks and builds what `tier` needs (nothing for tier None), noting
/// what will be applied. Lockdown also gets its private `HOME` in `env`.
fn confine(
    tier: Tier,
    executable: &Verified,
    may_exec: &[(String, [u8; 32])],
    writable: &Writable,
    env: &mut Vec<(OsString, OsString)>,
    notes: &mut Vec<String>,
) -> Result<Option<Namespaced>> {
    if tier != Tier::Lockdown {
        // Nothing restricts what the program executes here; each
        // `--may-exec` program is still checked against its pin.
        for (path, pin) in may_exec {
            program::open_pinned_file(path, pin)?;
        }
        if !may_exec.is_empty() {
            let names: Vec<&str> = may_exec.iter().map(|(p, _)| p.as_str()).collect();
            notes.push(format!(
                "checked against their pins: {} (only Lockdown keeps the program from running \
                 anything else)",
                names.join(", ")
            ));
        }
    }
    if tier == Tier::None {
        notes.push(tier_none_g7());
        notes.push(
            "the program runs from its sealed copy: /proc/self/exe names the copy and a script \
             runs as /dev/fd/N (tier none has no mount namespace); a program that needs its real \
             path ($ORIGIN, files beside itself, node's execPath, imports beside a script) runs \
             at it in tier hardened or lockdown"
                .into(),
        );
        return Ok(None);
    }
    let lockdown = tier == Tier::Lockdown;
    let ids = Ids::current();
    let group = prepare_g7(&ids, executable, notes)?;
    notes.push(format!(
        "namespaces: user, PID (with envseal's PID 1), IPC, UTS{}; no_new_privs; \
         seccomp refuses ptrace, process_vm_*, keyctl, bpf, io_uring, mount, unshare, \
         setns, clone into new namespaces, TIOCSTI and executable memfds",
        if lockdown {
            ", mount, network (no network; no Unix sockets)"
        } else {
            ""
        }
    ));
    let seccomp = sandbox::seccomp_filters(lockdown)?;
    let (landlock, writable, cwd) = if lockdown {
        private_home(env);
        let dirs = writable.resolve()?;
        let ruleset = lockdown_ruleset(executable, may_exec, &dirs, notes)?;
        let names = dirs
            .iter()
            .map(|(d, _)| cstring(d.as_os_str().as_bytes().to_vec()))
            .collect::<Result<_>>()?;
        let cwd = std::env::current_dir()
            .ok()
            .filter(|cwd| dirs.iter().any(|(d, _)| cwd.starts_with(d)))
            .map(|cwd| cstring(cwd.into_os_string().into_vec()))
            .transpose()?;
        (Some(ruleset), names, cwd)
    } else {
        (None, Vec::new(), None)
    };
    Ok(Some(Namespaced {
        ids,
        group,
        seccomp,
        lockdown,
        landlock,
        writable,
        cwd,
    }))
}

/// The signals envseal waits for while the program runs, blocked (they
/// are read from a signalfd), and the caller's mask from before.
struct Blocked {
    waited: nix::sys::signal::SigSet,
    mask: nix::sys::signal::SigSet,
}

impl Blocked {
    fn new() -> Result<Blocked> {
        let waited = signals::waited_set();
        let mask = signals::block(&waited).map_err(Error::sys("block signals"))?;
        Ok(Blocked { waited, mask })
    }
}

/// The caller's mask again when the launch ends, however it ends (a
/// library caller may launch again). Never dropped in a child: those exec
/// or `_exit`.
impl Drop for Blocked {
    fn drop(&mut self) {
        signals::restore(&self.mask);
    }
}

/// The highest descriptor a child closes one by one where `close_range`
/// is unavailable.
fn max_fd() -> RawFd {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft.min(65536) as RawFd)
        .unwrap_or(1024)
}

/// What the sandbox's PID 1 needs besides the program's own exec data,
/// prepared before `clone`.
struct SandboxInputs<'a> {
    /// Lockdown's file secrets, which PID 1 writes on its tmpfs.
    files: &'a [SecretFile<'a>],
    /// The memory holding secret copies, which PID 1 wipes once the
    /// program has started: the environment entries and the values.
    wipe: Vec<(*mut u8, usize)>,
    /// tmpfs options for the secrets, with and without `noswap`, sized
    /// for the files.
    opts: [CString; 2],
    pipes: Pipes,
}

impl<'a> SandboxInputs<'a> {
    fn new(
        envp: &[Zeroizing<Vec<u8>>],
        secrets: &[SecretItem],
        files: &'a [SecretFile<'a>],
        floor: RawFd,
    ) -> Result<SandboxInputs<'a>> {
        let mut wipe: Vec<(*mut u8, usize)> = envp
            .iter()
            .map(|e| (e.as_ptr() as *mut u8, e.len()))
            .collect();
        wipe.extend(secrets.iter().map(|s| {
            let v = s.value.expose_secret();
            (v.as_ptr() as *mut u8, v.len())
        }));
        let size: usize = files.iter().map(|f| f.value.len() + 4096).sum::<usize>() + 65536;
        let opts = [
            cstring(format!("size={size},mode=0700,noswap").into_bytes())?,
            cstring(format!("size={size},mode=0700").into_bytes())?,
        ];
        let pipes = Pipes::new(floor)?;
        Ok(SandboxInputs {
            files,
            wipe,
            opts,
            pipes,
        })
    }
}

impl Namespaced {
    /// Lays out the [`sandbox::Plan`] and starts the sandbox (see
    /// [`start_sandbox`]); returns its PID 1 once the program has exec'd.
    fn start(
        &self,
        inputs: SandboxInputs<'_>,
        exec: &spawn::Prepared<'_>,
        waited: &nix::sys::signal::SigSet,
        real: Option<&RealPaths>,
        notes: &mut Vec<String>,
    ) -> Result<nix::unistd::Pid> {
        let SandboxInputs {
            files,
            wipe,
            opts,
            pipes,
        } = inputs;
        let plan = sandbox::Plan {
            lockdown: self.lockdown,
            go: pipes.go_r.as_raw_fd(),
            report: pipes.report_w.as_raw_fd(),
            secret_files: files,
            secret_opts: [&opts[0], &opts[1]],
            landlock: sandbox::raw(&self.landlock),
            writable: &self.writable,
            cwd: self.cwd.as_deref(),
            seccomp: &self.seccomp,
            exec,
            waited,
            wipe: &wipe,
            attach: real.map(|r| sandbox::Attach {
                sock: r.pid1_end.as_raw_fd(),
                targets: &r.targets,
            }),
        };
        start_sandbox(&plan, pipes, &self.ids, real, notes)
    }

    /// Whether the program runs at its real path (every G7 route but the
    /// group's), and what that takes: the copies the helper makes and the
    /// paths PID 1 attaches them at.
    fn real_paths(
        &self,
        executable: &Verified,
        script: Option<&Script>,
        notes: &mut Vec<String>,
    ) -> Option<Result<RealPaths>> {
        if self.group {
            notes.push(
                "the program runs from its sealed copy as /proc/self/exe (the supplementary-group \
                 route; with subordinate ids it would run at its real path)"
                    .into(),
            );
            return None;
        }
        Some(self.plan_real_paths(executable, script, notes))
    }

    /// [`Namespaced::real_paths`]: a dynamic program that only root can
    /// change, and larger than its loader, runs from the file itself, and
    /// its loader from an execute-only copy (the kernel makes a program
    /// whose loader its user cannot read non-dumpable: G7 without copying
    /// the program); any other program runs from a copy mounted over its
    /// path.
    fn plan_real_paths(
        &self,
        executable: &Verified,
        script: Option<&Script>,
        notes: &mut Vec<String>,
    ) -> Result<RealPaths> {
        let mut real = RealPaths::new()?;
        // (Copying whichever is smaller, the program or its loader.)
        let size =
            |fd: std::os::fd::BorrowedFd<'_>| nix::sys::stat::fstat(fd).ok().map(|m| m.st_size);
        let system =
            executable
                .system_file()
                .zip(executable.loader())
                .and_then(|(file, loader)| {
                    let loader = std::fs::canonicalize(loader).ok()?;
                    let fd = OwnedFd::from(File::open(&loader).ok()?);
                    (size(executable.fd().as_fd())? > size(fd.as_fd())?)
                        .then_some((file, loader, fd))
                });
        if let Some((file, loader, fd)) = system {
            real.add(
                fd.as_raw_fd(),
                c"loader",
                0o111,
                &loader.to_string_lossy(),
                false,
            )?;
            real.loader = Some(fd);
            real.program = Some(file);
            notes.push(format!(
                "the program runs at its real path, from {} itself (only root can change it, \
                 and it is unchanged since it was verified); its loader {} runs from an \
                 execute-only copy, which keeps the program non-dumpable",
                executable.path(),
                loader.display()
            ));
        } else {
            real.add(
                executable.raw_fd(),
                c"program",
                0o111,
                executable.path(),
                true,
            )?;
            notes.push(format!(
                "the program runs at its real path: its verified copy is mounted read-only over \
                 {} in the sandbox's mount namespace",
                executable.path()
            ));
        }
        if let Some(s) = script {
            real.add(s.copy.raw_fd(), c"script", 0o444, s.copy.path(), false)?;
            notes.push(format!(
                "the script runs at its real path: its verified copy is mounted read-only over {}",
                s.copy.path()
            ));
        }
        Ok(real)
    }
}

/// What running at the real paths takes: the files the helper copies (it
/// sends each as a detached mount over a socket pair to PID 1), where PID
/// 1 attaches them, and the program's own file when it runs from that.
struct RealPaths {
    /// The loader, when it is what is copied (the program's and a script's
    /// copies are the launch's own, open until the program has started).
    loader: Option<OwnedFd>,
    copies: Vec<idmap::Copy>,
    helper_end: OwnedFd,
    pid1_end: OwnedFd,
    targets: Vec<sandbox::Target>,
    /// The pinned file itself, executed in place of the copy.
    program: Option<OwnedFd>,
}

impl RealPaths {
    /// The socket's ends, numbered `floor` or above (the program's
    /// descriptors are placed below).
    fn numbered_from(self, floor: RawFd) -> Result<RealPaths> {
        let number = |fd: OwnedFd| {
            files::dup_at_least(fd.as_fd(), floor).map_err(Error::sys("number a socket"))
        };
        Ok(RealPaths {
            helper_end: number(self.helper_end)?,
            pid1_end: number(self.pid1_end)?,
            program: self.program.map(number).transpose()?,
            ..self
        })
    }

    fn new() -> Result<RealPaths> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (helper_end, pid1_end) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::sys("create a socket pair"))?;
        Ok(RealPaths {
            loader: None,
            copies: Vec::new(),
            helper_end,
            pid1_end,
            targets: Vec::new(),
            program: None,
        })
    }

    /// One file the helper copies from `src` (as `name`, with `mode`; the
    /// caller keeps it open) and PID 1 attaches at `path`; `exec`: the
    /// program runs from it.
    fn add(
        &mut self,
        src: RawFd,
        name: &'static std::ffi::CStr,
        mode: libc::mode_t,
        path: &str,
        exec: bool,
    ) -> Result<()> {
        self.copies.push(idmap::Copy { src, name, mode });
        self.targets.push(sandbox::Target::new(path, exec)?);
        Ok(())
    }
}

/// Tier None: the program, forked from envseal (see [`spawn::spawn`]).
fn start_plain(exec: &spawn::Prepared<'_>, executable: &Verified) -> Result<nix::unistd::Pid> {
    spawn::spawn(exec).map_err(|source| Error::Exec {
        path: executable.path().into(),
        source,
    })
}

/// Where signals for the program go: its whole group when it leads one.
/// The parent sets the group too, so that a signal relayed before the
/// child ran its own `setpgid` is not lost (whichever runs first wins;
/// the other's call fails harmlessly).
fn signal_target(child: nix::unistd::Pid, group: bool) -> nix::unistd::Pid {
    if !group {
        return child;
    }
    let _ = nix::unistd::setpgid(child, child);
    nix::unistd::Pid::from_raw(-child.as_raw())
}

/// Says what was applied (`--verbose`), one "envseal: …" line each.
fn print_notes(notes: &[String]) {
    for note in notes {
        eprintln!("envseal: {note}");
    }
}

/// The G7 note for tier None (no namespace: the execute-only copy is all).
fn tier_none_g7() -> String {
    let state = if nix::unistd::geteuid().is_root() {
        "no — root can read any file, so the kernel leaves the program dumpable"
    } else {
        "yes"
    };
    format!("non-dumpable program (execute-only copy): {state}")
}

/// Checks the namespaced tiers can map ids, and prepares G7: the group
/// route (returns `true`) acts now (an unprivileged `chgrp`); the
/// subordinate-id route runs its helper with the sandbox's own maps.
fn prepare_g7(ids: &Ids, executable: &Verified, notes: &mut Vec<String>) -> Result<bool> {
    if !ids.can_map() {
        return Err(Error::Sandbox {
            step: "map ids in the sandbox's user namespace",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
            fix: "install the uidmap package (newuidmap, newgidmap), or use --tier none",
        });
    }
    let (how, group) = match ids.g7() {
        Ok(G7::Group(group)) => {
            idmap::chgrp(executable.fd(), group)?;
            (
                format!("whose group ({group}) the sandbox does not map"),
                true,
            )
        }
        Ok(G7::Subordinate) => ("owned by a subordinate id".to_owned(), false),
        Err(why) => {
            notes.push(format!(
                "in this tier the running program is NOT out of reach of your other processes: {why}"
            ));
            return Ok(false);
        }
    };
    notes.push(format!(
        "the program runs from a copy {how}: your other processes can neither read nor \
         trace it"
    ));
    Ok(group)
}

/// Lockdown's environment: a private, empty HOME and XDG directories in
/// the sandbox's own /tmp.
fn private_home(env: &mut Vec<(OsString, OsString)>) {
    const SET: [(&str, &str); 6] = [
        ("HOME", ""),
        ("TMPDIR", "/tmp"),
        ("XDG_CONFIG_HOME", "/.config"),
        ("XDG_CACHE_HOME", "/.cache"),
        ("XDG_DATA_HOME", "/.local/share"),
        ("XDG_STATE_HOME", "/.local/state"),
    ];
    env.retain(|(k, _)| k != "XDG_RUNTIME_DIR" && !SET.iter().any(|(name, _)| k == *name));
    for (k, v) in SET {
        let v = match k {
            "TMPDIR" => v.to_owned(),
            _ => format!("{PRIVATE_HOME}{v}"),
        };
        env.push((k.into(), v.into()));
    }
}

/// Lockdown's Landlock ruleset: the `writable` directories and `/tmp` may
/// be written, the program's loader and each `--may-exec` program may be
/// executed. A `--may-exec` program is opened once, that
/// descriptor is hashed and compared with its pin, and the same descriptor
/// (so the same inode) becomes the rule.
fn lockdown_ruleset(
    executable: &Verified,
    may_exec: &[(String, [u8; 32])],
    writable: &[(PathBuf, OwnedFd)],
    notes: &mut Vec<String>,
) -> Result<(OwnedFd, u64)> {
    let mut exes: Vec<(String, OwnedFd)> = Vec::new();
    if let Some(loader) = executable.loader() {
        // The loader is usually named through a symlink (/lib64 → /usr/lib64).
        let fd = nix::fcntl::open(
            loader,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(Error::sys("open the program's loader"))?;
        exes.push((loader.to_owned(), fd));
    }
    for (path, pin) in may_exec {
        exes.push((path.clone(), program::open_pinned_file(path, pin)?));
    }
    let names: Vec<&str> = exes.iter().map(|(p, _)| p.as_str()).collect();
    let names = names.join(", ");
    // A program only root can change may also run under its other names
    // (hard links: git's libexec/git-core/git in a source build).
    if let Some(own) = executable.system_file() {
        exes.push((executable.path().to_owned(), own));
    }
    let ruleset = sandbox::landlock_ruleset(writable, &exes)?;
    let mut written: Vec<String> = writable
        .iter()
        .map(|(d, _)| d.display().to_string())
        .collect();
    written.push("/tmp".into());
    notes.push(format!(
        "Landlock ABI {} enforced: read-only everywhere, read-write (and noexec) in {}, execute \
         only the pinned program{}",
        sandbox::LANDLOCK_ABI as i32,
        written.join(", "),
        if names.is_empty() {
            String::new()
        } else {
            format!(" and {names}")
        }
    ));
    Ok(ruleset)
}

/// The secrets, delivered.
struct Delivered<'s> {
    /// `NAME=value` entries (wiped on drop, allocated at their final
    /// size): the secrets, then the rest of the environment.
    envp: Vec<Zeroizing<Vec<u8>>>,
    /// Sealed memfds of file secrets (None, Hardened), kept across exec.
    memfds: Vec<OwnedFd>,
    /// The files Lockdown's PID 1 writes on its secrets tmpfs.
    files: Vec<SecretFile<'s>>,
}

fn deliver<'s>(
    secrets: &'s [SecretItem],
    env: &[(OsString, OsString)],
    namespaced: bool,
    floor: RawFd,
) -> Result<Delivered<'s>> {
    let mut envp = Vec::new();
    let mut memfds = Vec::new();
    let mut files = Vec::new();
    for item in secrets {
        let value = item.value.expose_secret();
        match (&item.delivery, namespaced) {
            (Delivery::Env(var), _) => envp.push(entry(var.as_str().as_bytes(), value)),
            (Delivery::File(var), false) => {
                let fd = files::dup_at_least(secret_file(var.as_str(), value)?.as_fd(), floor)
                    .map_err(Error::sys("number a secret file"))?;
                let path = format!("/dev/fd/{}", FIRST_FD + memfds.len() as RawFd);
                envp.push(entry(var.as_str().as_bytes(), path.as_bytes()));
                memfds.push(fd);
            }
            (Delivery::File(var), true) => {
                // The file is named after its variable, a plain identifier
                // (a `SecretName`): never a path, whoever built the request.
                let path = format!("{SECRET_DIR}/{var}");
                envp.push(entry(var.as_str().as_bytes(), path.as_bytes()));
                files.push(SecretFile {
                    name: cstring(var.as_str().as_bytes().to_vec())?,
                    value,
                });
            }
        }
    }
    for (k, v) in env {
        if !secrets
            .iter()
            .any(|s| s.delivery.variable().as_str().as_bytes() == k.as_bytes())
            && !crate::environment::FIXED
                .iter()
                .any(|(f, _)| f.as_bytes() == k.as_bytes())
        {
            envp.push(entry(k.as_bytes(), v.as_bytes()));
        }
    }
    for (k, v) in crate::environment::FIXED {
        envp.push(entry(k.as_bytes(), v.as_bytes()));
    }
    Ok(Delivered {
        envp,
        memfds,
        files,
    })
}

/// Where a script reaches its interpreter: at its real path (mounted
/// there in the sandbox), or as `/dev/fd/N` in the slot after the `files`
/// secret files.
struct ScriptAt {
    slot: bool,
    files: usize,
    /// The lowest number for envseal's own descriptors.
    floor: RawFd,
}

/// argv (for a script: interpreter, its `#!` argument, the script's path,
/// then the arguments) and, for a script passed in a slot, its copy's
/// descriptor (numbered at `floor` or above; the child places it).
fn arguments(
    argv0: OsString,
    args: Vec<OsString>,
    script: Option<&Script>,
    at: ScriptAt,
) -> Result<(Vec<CString>, Option<OwnedFd>)> {
    let mut argv = Vec::with_capacity(args.len() + 3);
    let mut copy_fd = None;
    match script {
        None => argv.push(cstring(argv0.into_vec())?),
        Some(Script {
            copy,
            arg,
            argv0,
            path,
            isolate,
        }) => {
            argv.push(cstring(argv0.clone().into_vec())?);
            for option in *isolate {
                argv.push(cstring(option.as_bytes().to_vec())?);
            }
            if let Some(arg) = arg {
                argv.push(cstring(arg.clone().into_bytes())?);
            }
            if !at.slot {
                argv.push(cstring(path.as_bytes().to_vec())?);
            } else {
                let slot = FIRST_FD + at.files as RawFd;
                argv.push(cstring(format!("/dev/fd/{slot}").into_bytes())?);
                copy_fd = Some(
                    files::dup_at_least(copy.fd().as_fd(), at.floor)
                        .map_err(Error::sys("number the script's copy"))?,
                );
            }
        }
    }
    for a in args {
        argv.push(cstring(a.into_vec())?);
    }
    Ok((argv, copy_fd))
}

/// The sandbox's two pipes: PID 1 waits on `go` for its maps; children
/// report failures on `report`.
struct Pipes {
    go_r: OwnedFd,
    go_w: OwnedFd,
    report_r: OwnedFd,
    report_w: OwnedFd,
}

impl Pipes {
    /// The pipes, the report pipe's write end numbered `floor` or above
    /// (the program's descriptors are placed below it).
    fn new(floor: RawFd) -> Result<Pipes> {
        let (go_r, go_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (report_r, report_w) = spawn::report_pipe(floor).map_err(|source| Error::Sys {
            action: "create a pipe",
            source,
        })?;
        Ok(Pipes {
            go_r,
            go_w,
            report_r,
            report_w,
        })
    }
}

/// Starts the sandbox's PID 1 in new namespaces (and, for the real
/// paths, the copy helper), writes every id
/// map in one round, lets PID 1 go, and returns once the program has
/// exec'd (or why not).
fn start_sandbox(
    plan: &sandbox::Plan<'_>,
    pipes: Pipes,
    ids: &Ids,
    real: Option<&RealPaths>,
    notes: &mut Vec<String>,
) -> Result<nix::unistd::Pid> {
    let helper = real
        .map(|r| ids.copy_helper(&r.copies, r.helper_end.as_raw_fd()))
        .transpose()?;
    plan.exec.assert_above_slots(plan.report);
    let pid1 = match clone::clone(namespaces(plan.lockdown)) {
        Ok(pid) => pid,
        Err(e) => {
            if let Some((helper, _)) = helper {
                helper.abandon();
            }
            return Err(Error::Sandbox {
                step: "create the sandbox's namespaces",
                source: std::io::Error::from_raw_os_error(e),
                fix: USERNS_FIX,
            });
        }
    };
    if pid1 == 0 {
        sandbox::pid1(plan);
    }
    let Pipes {
        go_r,
        go_w,
        report_r,
        report_w,
    } = pipes;
    drop(go_r);
    drop(report_w);
    let pid = nix::unistd::Pid::from_raw(pid1);
    let abandon = |e: Error| -> Error {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        e
    };
    let helper = map_ids(ids, pid1, helper).map_err(abandon)?;
    nix::unistd::write(&go_w, b"g").map_err(|e| abandon(e.into()))?;
    drop(go_w);
    // PID 1 makes its mounts while the helper copies; it waits for the
    // copies only to attach them. A helper that failed ends the launch.
    if let Some(helper) = helper {
        helper.wait().map_err(abandon)?;
    }
    let reports = spawn::read_reports(report_r).map_err(|source| {
        abandon(Error::Sys {
            action: "read the sandbox's report",
            source,
        })
    })?;
    check_reports(pid, reports, notes)?;
    Ok(pid)
}

/// The namespaces the sandbox's PID 1 is created in (Lockdown's with no
/// network).
fn namespaces(lockdown: bool) -> libc::c_int {
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNS;
    if lockdown {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}

/// Writes every map in one round, PID 1's and the copy helper's (if
/// any), then lets the helper copy (returning it, to be waited for), or
/// ends it if the maps failed.
fn map_ids(
    ids: &Ids,
    pid1: libc::pid_t,
    helper: Option<(idmap::Helper, idmap::Maps)>,
) -> Result<Option<idmap::Running>> {
    let mut maps = vec![ids.self_maps(pid1)];
    let helper = helper.map(|(helper, helper_maps)| {
        maps.push(helper_maps);
        helper
    });
    match (ids.write_all(&maps), helper) {
        (Ok(()), helper) => Ok(helper.map(idmap::Helper::start)),
        (Err(e), Some(h)) => {
            h.abandon();
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

/// Goes through what the sandbox's children reported: a note is noted;
/// the first failure reaps PID 1 (which exits after it) and is returned.
fn check_reports(
    pid: nix::unistd::Pid,
    reports: Vec<(u32, i32)>,
    notes: &mut Vec<String>,
) -> Result<()> {
    for (stage, errno) in reports {
        if stage == sandbox::stage::NOTE_NO_NOSWAP {
            notes.push(
                "the secrets tmpfs is not noswap: the kernel allows noswap only for root in the \
                 initial user namespace (or predates 6.4), so its pages may be swapped"
                    .into(),
            );
            continue;
        }
        let source = std::io::Error::from_raw_os_error(errno);
        let _ = waitpid(pid, None);
        return Err(if stage == spawn::STAGE_EXEC {
            Error::Exec {
                path: "the pinned program".into(),
                source,
            }
        } else {
            Error::Sandbox {
                step: sandbox::stage::describe(stage),
                source,
                fix: "",
            }
        });
    }
    Ok(())
}

/// Waits for the child: a signalfd, the relay (if any) and the masking
/// pipes (if any) in one `poll`. Signals sent to envseal itself are
/// forwarded (a terminal's already reached the program, in the same
/// process group); relayed ones too. Once the program has ended, its
/// output is drained until the pipes close or stay quiet for
/// [`DRAIN_GRACE`] (a descendant may keep them open).
pub(crate) fn wait(
    child: nix::unistd::Pid,
    target: nix::unistd::Pid,
    waited: &nix::sys::signal::SigSet,
    relay: Option<Relay<'_>>,
    outputs: Option<Started>,
) -> Result<Exit> {
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let signals = SignalFd::with_flags(waited, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(Error::sys("create a signalfd"))?;
    let mut watch = Watch {
        child,
        target,
        signals,
        watching: relay.is_some(),
        relay,
        outputs,
        exit: None,
    };
    loop {
        let open = watch.outputs.as_ref().map_or(0, Started::open);
        if watch.exit.is_some() && open == 0 {
            break;
        }
        let Some(ready) = watch.poll()? else {
            continue;
        };
        if ready.quiet {
            // The program has ended and nothing more came: let go.
            break;
        }
        watch.pass_on(ready.readable);
        if ready.relay {
            watch.relay();
        }
        if ready.signal {
            watch.read_signals()?;
        }
    }
    if let Some(o) = &mut watch.outputs {
        o.finish();
    }
    Ok(watch.exit.expect("the loop ends only once the program has"))
}

/// How long output may stay quiet after the program ended before envseal
/// stops passing it on (milliseconds).
const DRAIN_GRACE: u16 = 200;

/// What [`wait`] watches, and what it has learnt.
struct Watch<'a> {
    child: nix::unistd::Pid,
    /// Where forwarded signals go (the program, or its group).
    target: nix::unistd::Pid,
    signals: nix::sys::signalfd::SignalFd,
    relay: Option<Relay<'a>>,
    /// The relay is still watched (its other end has not hung up).
    watching: bool,
    outputs: Option<Started>,
    /// Set once the program has ended.
    exit: Option<Exit>,
}

/// What one `poll` found.
struct Ready {
    /// The signalfd is readable.
    signal: bool,
    /// The relay is readable.
    relay: bool,
    /// The output streams with something to read (or at their end).
    readable: Vec<usize>,
    /// Nothing came within [`DRAIN_GRACE`] after the program ended.
    quiet: bool,
}

impl Watch<'_> {
    /// Polls the signalfd, the relay while it is watched and the program
    /// runs, and the open output streams; blocks until one is ready (once
    /// the program has ended, for [`DRAIN_GRACE`] at most). `None` when
    /// a signal interrupted the wait.
    fn poll(&self) -> Result<Option<Ready>> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd as _;
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        let relay_at = match &self.relay {
            Some(relay) if self.watching && self.exit.is_none() => {
                fds.push(PollFd::new(relay.fd, PollFlags::POLLIN));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        let first_output = fds.len();
        if let Some(o) = &self.outputs {
            for fd in o.read_fds() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
        }
        let timeout = if self.exit.is_some() {
            PollTimeout::from(DRAIN_GRACE)
        } else {
            PollTimeout::NONE
        };
        let n = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => return Ok(None),
            Err(e) => return Err(Error::sys("wait for the program")(e)),
        };
        let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        Ok(Some(Ready {
            signal: ready(&fds[0]),
            relay: relay_at.is_some_and(|i| ready(&fds[i])),
            readable: (first_output..fds.len())
                .filter(|&i| ready(&fds[i]))
                .map(|i| i - first_output)
                .collect(),
            quiet: n == 0,
        }))
    }

    /// Passes on what the `readable` streams have, in order (stdout
    /// before stderr), then stops watching the ones that ended.
    fn pass_on(&mut self, readable: Vec<usize>) {
        if let Some(o) = &mut self.outputs {
            let ended: Vec<usize> = readable.into_iter().filter(|&i| o.pass_on(i)).collect();
            for i in ended.into_iter().rev() {
                o.streams.remove(i);
            }
        }
    }

    /// Does what the relay read asks: a signal for the program, or (its
    /// other end gone) `SIGHUP` and no more watching.
    fn relay(&mut self) {
        let Some(relay) = self.relay.as_mut() else {
            return;
        };
        match (relay.read)() {
            Control::Forward(sig) => {
                let _ = kill(self.target, sig);
            }
            Control::Hangup => {
                let _ = kill(self.target, Signal::SIGHUP);
                self.watching = false;
            }
            Control::Nothing => {}
        }
    }

    /// Reads every pending signal: `SIGCHLD` collects the program's exit
    /// status (once); any other, sent while the program runs and not by
    /// the kernel, is forwarded to it.
    fn read_signals(&mut self) -> Result<()> {
        while let Ok(Some(info)) = self.signals.read_signal() {
            if info.ssi_signo as i32 == libc::SIGCHLD {
                if self.exit.is_none() {
                    match waitpid(self.child, Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(_, code)) => self.exit = Some(Exit::Code(code)),
                        Ok(WaitStatus::Signaled(_, sig, _)) => {
                            self.exit = Some(Exit::Signal(sig as i32));
                        }
                        Ok(_) => {}
                        Err(e) => return Err(Error::sys("wait for the program")(e)),
                    }
                }
                continue;
            }
            if self.exit.is_none()
                && info.ssi_code != libc::SI_KERNEL
                && let Ok(sig) = Signal::try_from(info.ssi_signo as i32)
            {
                let _ = kill(self.target, sig);
            }
        }
        Ok(())
    }
}

/// The masking pipes, before the program starts.
struct Outputs {
    masker: Option<crate::mask::Masker>,
    /// (target descriptor 1 or 2, read end, write end): a pipe, or a
    /// pseudo-terminal's master and slave.
    pipes: Vec<(RawFd, OwnedFd, OwnedFd)>,
    /// The other stream's write end on the same pseudo-terminal.
    shared: Option<(RawFd, OwnedFd)>,
}

/// The write ends of the masked streams: a pipe's, or an interposed
/// terminal's pseudo-terminal (master read, slave written).
type Streams = Vec<(RawFd, OwnedFd, OwnedFd)>;

/// A pipe for each masked stream, or for an interposed terminal a
/// pseudo-terminal — one, which both streams share when both were the
/// terminal, as they shared it (read once, written to stdout; the second
/// stream's write end is returned apart).
fn open_streams(wanted: &[(RawFd, bool)]) -> Result<(Streams, Option<(RawFd, OwnedFd)>)> {
    let mut pipes: Streams = Vec::new();
    let mut shared = None;
    // Where the pseudo-terminal is in `pipes`, once opened.
    let mut pty: Option<usize> = None;
    for &(target, interposed) in wanted {
        if !interposed {
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
            pipes.push((target, r, w));
            continue;
        }
        match pty.map(|i| &pipes[i]) {
            Some((_, _, slave)) => {
                let slave = slave.try_clone().map_err(|source| Error::Sys {
                    action: "share the pseudo-terminal",
                    source,
                })?;
                shared = Some((target, slave));
            }
            None => {
                let (master, slave) = crate::sys::terminal::pty_like(files::stdio(target))
                    .map_err(|source| Error::Sys {
                        action: "open a pseudo-terminal to mask the terminal's output",
                        source,
                    })?;
                pty = Some(pipes.len());
                pipes.push((target, master, slave));
            }
        }
    }
    Ok((pipes, shared))
}

impl Outputs {
    /// Pipes for the streams `masking` selects, if any secret is long
    /// enough to mask.
    fn new(masking: Masking, secrets: &[SecretItem], notes: &mut Vec<String>) -> Result<Outputs> {
        use std::io::IsTerminal as _;
        // Output to /dev/null reaches no one: it is not masked.
        let wanted: Vec<(RawFd, bool)> = [
            (1, std::io::stdout().is_terminal(), is_null(1)),
            (2, std::io::stderr().is_terminal(), is_null(2)),
        ]
        .into_iter()
        .filter(|&(_, tty, null)| match masking {
            _ if null => false,
            Masking::Always | Masking::Interposed => true,
            Masking::Never => false,
            Masking::Auto => !tty,
        })
        .map(|(fd, tty, _)| (fd, tty && masking == Masking::Interposed))
        .collect();
        let masker = if wanted.is_empty() {
            None
        } else {
            crate::mask::Masker::new(secrets.iter().map(|s| s.value.expose_secret()))
        };
        let Some(masker) = masker else {
            notes.push(match masking {
                Masking::Never => "output not masked (--no-mask)".to_owned(),
                _ if wanted.is_empty() => {
                    "output not masked: stdout and stderr are terminals, handed to the program"
                        .to_owned()
                }
                _ => format!(
                    "output not masked: no secret is {} bytes or longer",
                    crate::mask::MIN_LEN
                ),
            });
            return Ok(Outputs {
                masker: None,
                pipes: Vec::new(),
                shared: None,
            });
        };
        let (pipes, shared) = open_streams(&wanted)?;
        notes.push(format!(
            "output masked ({}): each secret and its base64, hex and URL-encoded forms become \
             ****{}",
            pipes
                .iter()
                .map(|(t, _, _)| if *t == 1 { "stdout" } else { "stderr" })
                .collect::<Vec<_>>()
                .join(", "),
            if wanted.iter().any(|&(_, interposed)| interposed) {
                "; the program's terminal is a pseudo-terminal envseal masks (the caller is \
                 inside a shield)"
            } else {
                ""
            }
        ));
        Ok(Outputs {
            masker: Some(masker),
            pipes,
            shared,
        })
    }

    fn write_ends(&self) -> [RawFd; 2] {
        let mut ends = [-1; 2];
        for (target, _, w) in &self.pipes {
            ends[(*target - 1) as usize] = w.as_raw_fd();
        }
        if let Some((target, w)) = &self.shared {
            ends[(*target - 1) as usize] = w.as_raw_fd();
        }
        ends
    }

    /// Closes the write ends (the program has its own).
    fn started(self) -> Option<Started> {
        let masker = self.masker?;
        Some(Started {
            masker,
            streams: self
                .pipes
                .into_iter()
                .map(|(target, r, _w)| (target, r, crate::mask::Stream::default()))
                .collect(),
        })
    }
}

/// The masking pipes while the program runs.
pub(crate) struct Started {
    masker: crate::mask::Masker,
    streams: Vec<(RawFd, OwnedFd, crate::mask::Stream)>,
}

impl Started {
    fn open(&self) -> usize {
        self.streams.len()
    }

    fn read_fds(&self) -> impl Iterator<Item = std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd as _;
        self.streams.iter().map(|(_, r, _)| r.as_fd())
    }

    /// Reads what stream `i` has, masks it and writes it on. Returns
    /// whether the stream is done: at its end (finished), or when the
    /// reader of envseal's output is gone.
    fn pass_on(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 65536];
        let (target, read_end, stream) = &mut self.streams[i];
        let n = match nix::unistd::read(&*read_end, &mut buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => return false,
            Err(_) => 0,
        };
        let mut out = Vec::with_capacity(n + 16);
        let ended = n == 0;
        if ended {
            self.masker.finish(stream, &mut out);
        } else {
            self.masker.feed(stream, &buf[..n], &mut out);
        }
        let written = write_all(*target, &out);
        ended || written.is_err()
    }

    /// The program is done: whatever is still held back goes out.
    fn finish(&mut self) {
        for (target, _, stream) in &mut self.streams {
            let mut out = Vec::new();
            self.masker.finish(stream, &mut out);
            let _ = write_all(*target, &out);
        }
        self.streams.clear();
    }
}

/// Whether descriptor `fd` is `/dev/null` (character device 1:3).
fn is_null(fd: RawFd) -> bool {
    let fd = files::stdio(fd);
    nix::sys::stat::fstat(fd).is_ok_and(|st| {
        (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
            && libc::major(st.st_rdev) == 1
            && libc::minor(st.st_rdev) == 3
    })
}

/// Writes all of `bytes` to descriptor `fd` (envseal's stdout or stderr).
fn write_all(fd: RawFd, mut bytes: &[u8]) -> std::result::Result<(), nix::errno::Errno> {
    let fd = files::stdio(fd);
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `NAME=value\0`, in a buffer wiped on drop and allocated once at its
/// final size (so no unwiped copy is left behind by a reallocation).
fn entry(name: &[u8], value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut e = Zeroizing::new(Vec::with_capacity(name.len() + value.len() + 2));
    e.extend_from_slice(name);
    e.push(b'=');
    e.extend_from_slice(value);
    e.push(0);
    e
}

fn cstring(bytes: Vec<u8>) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::Sys {
        action: "build the argument list",
        source: std::io::Error::other("an argument contains a NUL byte"),
    })
}

/// A sealed, read-only memfd holding `value`, kept open across exec.
fn secret_file(variable: &str, value: &[u8]) -> Result<OwnedFd> {
    let fd = files::memfd(&format!("envseal:{variable}"))
        .map_err(Error::sys("create a memfd for a secret file"))?;
    let mut file = File::from(fd);
    file.write_all(value).map_err(|source| Error::Sys {
        action: "write a secret file",
        source,
    })?;
    let fd = OwnedFd::from(file);
    files::seal(&fd, 0o400).map_err(Error::sys("seal a secret file"))?;
    // A program reading the descriptor itself (not reopening /dev/fd/N)
    // must find the value, not end-of-file.
    files::rewind(&fd).map_err(Error::sys("rewind a secret file"))?;
    Ok(fd)
}
