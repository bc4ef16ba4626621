//! The namespaced tiers, Hardened and Lockdown.
//!
//! Parent side (before `clone`): the seccomp filters are compiled with
//! `seccompiler`, the Landlock ruleset is created with the `landlock`
//! crate at a hard compatibility requirement (an older kernel fails
//! instead of enforcing less), and everything the children need is laid
//! out in a [`Plan`]. Child side ([`pid1`]): system calls only.
//!
//! - **Hardened**: new user, PID, IPC and UTS namespaces. The first child
//!   is the namespace's PID 1: it forks the program, forwards signals to
//!   it, reaps every orphan, and exits with the program's status. The
//!   program gets `PR_SET_NO_NEW_PRIVS` and the seccomp filters.
//! - **Lockdown**: Hardened plus mount and network namespaces (no network
//!   at all): the mount tree made private, a private tmpfs on `/tmp` with
//!   `HOME` in it, a fresh `/proc`, file secrets as 0400 files on a
//!   size-capped tmpfs (`noswap` where the kernel has it) remounted
//!   read-only, and Landlock: read-only everywhere, read-write in the
//!   working directory and `/tmp`, execute only the loader the pinned
//!   program needs and the program's own copy.
//!
//! In both, unless G7 takes the supplementary-group route, the program
//! runs at its real path: a helper copies the verified bytes onto a tmpfs
//! of its own (owned by a subordinate id, read-only) and sends each file
//! as a detached mount; PID 1 attaches them over the real paths in its
//! private mount namespace ([`Attach`]), and the program is executed
//! through that mount, so `/proc/self/exe` and `$ORIGIN` are its own.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr,
};
use nix::sys::signal::SigSet;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::error::{Error, Result};
use crate::sys::spawn::{self, Prepared};
use crate::sys::{clone, fdpass, io, mount, pid1, seccomp};

/// Where the namespaced tiers put file secrets (on a tmpfs of their own,
/// in the sandbox's own `/run`).
pub const SECRET_DIR: &str = "/run/envseal/secrets";
/// The program's private, empty `HOME` in Lockdown.
pub const PRIVATE_HOME: &str = "/tmp/home";

/// The Landlock ABI Lockdown requires (file access rights up to
/// `Truncate`); a kernel without it fails the launch.
pub const LANDLOCK_ABI: ABI = ABI::V3;

/// Report stages: where a sandbox child failed (the errno comes with it).
pub(crate) mod stage {
    pub const WAIT: u32 = 1;
    pub const MOUNT_PRIVATE: u32 = 2;
    pub const MOUNT_TMP: u32 = 3;
    pub const HOME: u32 = 4;
    pub const MOUNT_PROC: u32 = 5;
    pub const MOUNT_SECRETS: u32 = 6;
    pub const WRITE_SECRET: u32 = 7;
    pub const REMOUNT_SECRETS: u32 = 8;
    pub const FORK: u32 = 9;
    pub const NO_NEW_PRIVS: u32 = 10;
    pub const LANDLOCK: u32 = 11;
    pub const SECCOMP: u32 = 12;
    pub const HOSTNAME: u32 = 13;
    pub const RECEIVE_COPIES: u32 = 14;
    pub const ATTACH_COPY: u32 = 15;
    pub const MOUNT_RUN: u32 = 16;
    pub const MOUNT_WRITABLE: u32 = 17;
    /// Not a failure: the kernel refused `noswap` for the secrets tmpfs.
    pub const NOTE_NO_NOSWAP: u32 = 100;

    pub fn describe(stage: u32) -> &'static str {
        match stage {
            WAIT => "wait for the id maps",
            MOUNT_PRIVATE => "make the mount tree private",
            MOUNT_TMP => "mount a private /tmp",
            HOME => "create the private HOME",
            MOUNT_PROC => "mount /proc",
            MOUNT_SECRETS => "mount the secrets tmpfs",
            WRITE_SECRET => "write a secret file",
            REMOUNT_SECRETS => "make the secrets tmpfs read-only",
            FORK => "start the program in the sandbox",
            NO_NEW_PRIVS => "set no_new_privs",
            LANDLOCK => "enforce Landlock",
            SECCOMP => "install the seccomp filter",
            HOSTNAME => "set the sandbox's hostname",
            RECEIVE_COPIES => "receive the program's copies from the helper",
            ATTACH_COPY => "mount the program's copy at its real path",
            MOUNT_RUN => "give /run a tmpfs of the sandbox's own (for the secret files)",
            MOUNT_WRITABLE => "mount a writable directory noexec",
            _ => "exec the program",
        }
    }
}

/// Syscalls the program may not make (EPERM).
fn denied_syscalls() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        libc::SYS_kcmp,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_quotactl_fd,
    ];
    v.sort_unstable();
    v
}

/// `CLONE_NEW*` flags: `clone` with any of them is refused.
const CLONE_NEW_FLAGS: [libc::c_int; 8] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    0x80, // CLONE_NEWTIME
];

const MFD_NOEXEC_SEAL: u64 = 0x0008;

/// The two seccomp filters: EPERM for the denied calls and arguments,
/// and ENOSYS for `clone3` (so libc falls back to `clone`, whose flags a
/// filter can see).
pub(crate) fn seccomp_filters(lockdown: bool) -> Result<[BpfProgram; 2]> {
    let arch = filter_arch("install the seccomp filter")?;
    let cond = |arg, len, op, value| {
        SeccompCondition::new(arg, len, op, value).map_err(|e| seccomp_error(e.to_string()))
    };
    let rule =
        |c: Vec<SeccompCondition>| SeccompRule::new(c).map_err(|e| seccomp_error(e.to_string()));
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied_syscalls()
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
    let mut clone_rules = Vec::new();
    for flag in CLONE_NEW_FLAGS {
        let flag = flag as u64;
        clone_rules.push(rule(vec![cond(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )?])?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    rules.insert(
        libc::SYS_ioctl,
        vec![rule(vec![cond(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            libc::TIOCSTI,
        )?])?],
    );
    rules.insert(
        libc::SYS_memfd_create,
        vec![rule(vec![cond(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(MFD_NOEXEC_SEAL),
            0,
        )?])?],
    );
    if lockdown {
        // Lockdown has no network, and no Unix socket either: a pathname
        // socket on the host (a database's, one the agent binds where the
        // program works) would be a way out that neither the network
        // namespace nor Landlock (below ABI 9) closes. `socketpair` stays:
        // it reaches nothing outside the program.
        rules.insert(
            libc::SYS_socket,
            vec![rule(vec![cond(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                libc::AF_UNIX as u64,
            )?])?],
        );
    }
    let compile = |rules, action| -> Result<BpfProgram> {
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, arch)
            .map_err(|e| seccomp_error(e.to_string()))?;
        BpfProgram::try_from(filter).map_err(|e| seccomp_error(e.to_string()))
    };
    Ok([
        compile(rules, SeccompAction::Errno(libc::EPERM as u32))?,
        compile(
            [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
            SeccompAction::Errno(libc::ENOSYS as u32),
        )?,
    ])
}

/// The shield's filter (EPERM): what Landlock leaves open between two
/// processes of one user, and the terminal and memfd tricks. User
/// namespaces stay allowed; whatever the agent creates stays inside its
/// Landlock domain and under this filter.
pub(crate) fn shield_filter() -> Result<BpfProgram> {
    let arch = filter_arch("install the shield's seccomp filter")?;
    let cond = |arg, op, value| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
            .map_err(|e| seccomp_error(e.to_string()))
    };
    let rule =
        |c: Vec<SeccompCondition>| SeccompRule::new(c).map_err(|e| seccomp_error(e.to_string()));
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = [
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_process_madvise,
        libc::SYS_pidfd_getfd,
        libc::SYS_kcmp,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_setns,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
    ]
    .into_iter()
    .map(|nr| (nr, Vec::new()))
    .collect();
    rules.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond(1, SeccompCmpOp::Eq, libc::TIOCSTI)?])?,
            rule(vec![cond(1, SeccompCmpOp::Eq, libc::TIOCLINUX)?])?,
        ],
    );
    rules.insert(
        libc::SYS_memfd_create,
        vec![rule(vec![cond(
            1,
            SeccompCmpOp::MaskedEq(MFD_NOEXEC_SEAL),
            0,
        )?])?],
    );
    // Another process's limits, priority or CPUs: only pid 0 (the caller).
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![cond(0, SeccompCmpOp::Ne, 0)?])?],
    );
    rules.insert(
        libc::SYS_sched_setaffinity,
        vec![rule(vec![cond(0, SeccompCmpOp::Ne, 0)?])?],
    );
    rules.insert(
        libc::SYS_setpriority,
        vec![
            // PRIO_PGRP and PRIO_USER reach other processes.
            rule(vec![cond(0, SeccompCmpOp::Ne, libc::PRIO_PROCESS as u64)?])?,
            rule(vec![cond(1, SeccompCmpOp::Ne, 0)?])?,
        ],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| seccomp_error(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| seccomp_error(e.to_string()))
}

/// The architecture a filter is built for; refuses a kernel that also
/// accepts x32 system calls, which a filter for x86_64 numbers misses.
fn filter_arch(step: &'static str) -> Result<seccompiler::TargetArch> {
    if seccomp::x32_enabled() {
        return Err(Error::Sandbox {
            step,
            source: std::io::Error::other(
                "the kernel accepts x32 system calls, which the filter cannot match",
            ),
            fix: "boot with syscall.x32=n (the default on most distributions)",
        });
    }
    std::env::consts::ARCH.try_into().map_err(|_| {
        seccomp_error(format!(
            "unsupported architecture {}",
            std::env::consts::ARCH
        ))
    })
}

fn seccomp_error(msg: String) -> Error {
    Error::Sandbox {
        step: "build the seccomp filter",
        source: std::io::Error::other(msg),
        fix: "",
    }
}

/// Lockdown's Landlock ruleset (hard requirement: ABI 3), without the
/// rule for the private `/tmp`, which the child adds once it is mounted.
/// `executables` are already open (the rule is on those inodes). Returns
/// the ruleset and the access rights for `/tmp`.
pub(crate) fn landlock_ruleset(
    writable: &[(std::path::PathBuf, OwnedFd)],
    executables: &[(String, OwnedFd)],
) -> Result<(OwnedFd, u64)> {
    let abi = LANDLOCK_ABI;
    let all = AccessFs::from_all(abi);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let write = all ^ AccessFs::Execute;
    let err = |source: std::io::Error| Error::Sandbox {
        step: "create the Landlock ruleset",
        source,
        fix: "Lockdown needs Landlock ABI 3 (Linux 6.2 or later, with landlock in the lsm= list)",
    };
    let other = |e: landlock::RulesetError| err(std::io::Error::other(e.to_string()));
    let path_fd = |p: &Path| PathFd::new(p).map_err(|e| err(std::io::Error::other(e.to_string())));
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)
        .map_err(other)?
        .create()
        .map_err(other)?
        .add_rule(PathBeneath::new(path_fd(Path::new("/"))?, read))
        .map_err(other)?;
    for (_, dir) in writable {
        ruleset = ruleset
            .add_rule(PathBeneath::new(dir, write))
            .map_err(other)?;
    }
    for dev in ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"] {
        if Path::new(dev).exists() {
            ruleset = ruleset
                .add_rule(PathBeneath::new(
                    path_fd(Path::new(dev))?,
                    AccessFs::ReadFile | AccessFs::WriteFile,
                ))
                .map_err(other)?;
        }
    }
    for (_, fd) in executables {
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, AccessFs::Execute | AccessFs::ReadFile))
            .map_err(other)?;
    }
    let fd: Option<OwnedFd> = ruleset.into();
    let fd = fd.ok_or_else(|| err(std::io::Error::other("Landlock is not enforced")))?;
    Ok((fd, write.bits()))
}

/// A file secret for Lockdown: its path and value (owned by the caller).
pub(crate) struct SecretFile<'a> {
    /// Its name in the secrets directory: an identifier, checked by
    /// [`crate::launch`] and created beneath that directory only.
    pub(crate) name: CString,
    pub(crate) value: &'a [u8],
}

/// Where one copy is attached: its real path, and the directories leading
/// to it (outermost first), made if a private `/tmp` covers them.
pub(crate) struct Target {
    path: CString,
    dirs: Vec<CString>,
    /// The program runs from this copy.
    exec: bool,
}

impl Target {
    pub(crate) fn new(path: &str, exec: bool) -> Result<Target> {
        let c = |s: &str| {
            CString::new(s).map_err(|_| Error::Sys {
                action: "name the program's path",
                source: std::io::Error::other("the path contains a NUL byte"),
            })
        };
        let dirs = Path::new(path)
            .ancestors()
            .skip(1)
            .filter(|d| d.parent().is_some())
            .filter_map(|d| d.to_str())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(c)
            .collect::<Result<_>>()?;
        Ok(Target {
            path: c(path)?,
            dirs,
            exec,
        })
    }
}

/// The copies PID 1 attaches: they arrive on `sock`, one per target (the
/// one marked `exec` replaces the descriptor the program runs).
pub(crate) struct Attach<'a> {
    pub(crate) sock: RawFd,
    pub(crate) targets: &'a [Target],
}

/// Executing and reading a file, as Landlock rights.
pub(crate) const EXEC_ACCESS: u64 = 1 | (1 << 2);

/// Everything the sandbox's children need, prepared before `clone`.
pub(crate) struct Plan<'a> {
    pub(crate) lockdown: bool,
    /// PID 1 reads one byte here once its id maps are written.
    pub(crate) go: RawFd,
    /// Failures and notes, as `(stage, errno)`.
    pub(crate) report: RawFd,
    pub(crate) secret_files: &'a [SecretFile<'a>],
    /// tmpfs options for the secrets, with and without `noswap`.
    pub(crate) secret_opts: [&'a CStr; 2],
    /// The Landlock ruleset and the access rights for `/tmp` (Lockdown).
    pub(crate) landlock: Option<(RawFd, u64)>,
    /// Lockdown's writable directories, mounted `noexec`.
    pub(crate) writable: &'a [CString],
    /// The working directory, when it lies in a writable directory: PID 1
    /// enters it again through the `noexec` mount (relative paths would
    /// otherwise still resolve through the mount it had).
    pub(crate) cwd: Option<&'a CStr>,
    pub(crate) seccomp: &'a [BpfProgram; 2],
    pub(crate) exec: &'a Prepared<'a>,
    /// The signals PID 1 waits for (blocked by the parent before clone).
    pub(crate) waited: &'a SigSet,
    /// Memory holding secret copies that PID 1 wipes once the program
    /// has been started.
    pub(crate) wipe: &'a [(*mut u8, usize)],
    /// The copies to attach at their real paths, if any.
    pub(crate) attach: Option<Attach<'a>>,
}

/// Reports a child's failure at `stage` and ends it.
fn fail(plan: &Plan<'_>, stage: u32, errno: crate::sys::Errno) -> ! {
    io::report(plan.report, stage, errno);
    io::exit(126)
}

/// The sandbox's PID 1. Never returns.
pub(crate) fn pid1(plan: &Plan<'_>) -> ! {
    match io::read_byte(plan.go) {
        Ok(true) => {}
        Ok(false) => fail(plan, stage::WAIT, libc::ECANCELED),
        Err(e) => fail(plan, stage::WAIT, e),
    }
    io::close(plan.go);
    if let Err(e) = clone::sethostname(b"envseal") {
        fail(plan, stage::HOSTNAME, e);
    }
    if let Err((s, e)) = mounts(plan) {
        fail(plan, s, e);
    }
    if let Some(attach) = &plan.attach
        && let Err((s, e)) = attach_copies(plan, attach)
    {
        fail(plan, s, e);
    }
    let program = match clone::clone(0) {
        Ok(0) => confine_and_exec(plan),
        Ok(pid) => pid,
        Err(e) => fail(plan, stage::FORK, e),
    };
    io::close(plan.report);
    // The program has its own file secrets and copies; PID 1 keeps none
    // open (a same-user process could otherwise open them through
    // /proc/PID/fd while the program runs).
    for &fd in plan.exec.place {
        io::close(fd);
    }
    io::close(plan.exec.exec_fd);
    // The parent prepared these ranges in memory this process inherited
    // (and owns as a copy); nothing reads them any more.
    pid1::wipe_all(plan.wipe);
    pid1::reap_and_forward(program, plan.waited)
}

/// The sandbox's mounts: the tree made private; Lockdown's private `/tmp`
/// (with `HOME`) and `/proc`; the file secrets on their tmpfs; Lockdown's
/// Landlock rule for `/tmp`.
fn mounts(plan: &Plan<'_>) -> std::result::Result<(), (u32, crate::sys::Errno)> {
    let at = |stage| move |e| (stage, e);
    mount::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(at(stage::MOUNT_PRIVATE))?;
    if plan.lockdown {
        // Nothing written in the sandbox can be executed or mapped
        // executable (Landlock's execute right does not cover `mmap`).
        for dir in plan.writable {
            mount::bind_noexec(dir).map_err(at(stage::MOUNT_WRITABLE))?;
        }
        // Before /tmp is covered: the working directory may lie under it.
        if let Some(cwd) = plan.cwd {
            mount::chdir(cwd).map_err(at(stage::MOUNT_WRITABLE))?;
        }
        mount::mount(
            Some(c"tmpfs"),
            c"/tmp",
            Some(c"tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some(c"mode=1777"),
        )
        .map_err(at(stage::MOUNT_TMP))?;
        mount::mkdir(c"/tmp/home", 0o700).map_err(at(stage::HOME))?;
        mount::mount(
            Some(c"proc"),
            c"/proc",
            Some(c"proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        )
        .map_err(at(stage::MOUNT_PROC))?;
    }
    if !plan.secret_files.is_empty() {
        secret_files(plan)?;
    }
    if let Some((ruleset, access)) = plan.landlock {
        crate::sys::landlock::allow(ruleset, c"/tmp", access).map_err(at(stage::LANDLOCK))?;
    }
    Ok(())
}

/// The file secrets, 0400 on a size-capped tmpfs (`noswap` where the
/// kernel allows it) remounted read-only, in [`SECRET_DIR`]: `/run` gets a
/// tmpfs of its own, read-only in the end, that keeps every entry `/run`
/// had (bind-mounted back) and adds `envseal/secrets`.
fn secret_files(plan: &Plan<'_>) -> std::result::Result<(), (u32, crate::sys::Errno)> {
    let at = |stage| move |e| (stage, e);
    mount::cover_keeping_entries(c"/run").map_err(at(stage::MOUNT_RUN))?;
    mount::mkdir(c"/run/envseal", 0o755).map_err(at(stage::MOUNT_SECRETS))?;
    mount::mkdir(c"/run/envseal/secrets", 0o700).map_err(at(stage::MOUNT_SECRETS))?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let dir = c"/run/envseal/secrets";
    if mount::mount(
        Some(c"tmpfs"),
        dir,
        Some(c"tmpfs"),
        flags,
        Some(plan.secret_opts[0]),
    )
    .is_err()
    {
        io::report(plan.report, stage::NOTE_NO_NOSWAP, 0);
        mount::mount(
            Some(c"tmpfs"),
            dir,
            Some(c"tmpfs"),
            flags,
            Some(plan.secret_opts[1]),
        )
        .map_err(at(stage::MOUNT_SECRETS))?;
    }
    let beneath = mount::open_dir(dir).map_err(at(stage::WRITE_SECRET))?;
    for file in plan.secret_files {
        mount::create_file_beneath(beneath, &file.name, file.value, 0o400)
            .map_err(at(stage::WRITE_SECRET))?;
    }
    io::close(beneath);
    // A remount sets every per-mount flag anew: each keeps its own.
    for (dir, flags) in [(dir, flags), (c"/run", libc::MS_NOSUID | libc::MS_NODEV)] {
        mount::mount(
            None,
            dir,
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | flags,
            None,
        )
        .map_err(at(stage::REMOUNT_SECRETS))?;
    }
    Ok(())
}

/// Attaches the helper's copies at their real paths (after Lockdown's
/// mounts, so that a path under its private `/tmp` is made there); the
/// executable's copy takes the place of the descriptor the program runs.
fn attach_copies(
    plan: &Plan<'_>,
    attach: &Attach<'_>,
) -> std::result::Result<(), (u32, crate::sys::Errno)> {
    let at = |stage| move |e| (stage, e);
    let mut trees = [-1; fdpass::CHILD_FDS];
    let n = fdpass::child_recv(attach.sock, &mut trees).map_err(at(stage::RECEIVE_COPIES))?;
    io::close(attach.sock);
    if n != attach.targets.len() {
        return Err((stage::RECEIVE_COPIES, libc::EPROTO));
    }
    for (&tree, target) in trees.iter().zip(attach.targets) {
        match mount::attach_tree(tree, &target.path) {
            Ok(()) => {}
            Err(libc::ENOENT) => {
                mount::make_mountpoint(&target.dirs, &target.path)
                    .and_then(|()| mount::attach_tree(tree, &target.path))
                    .map_err(at(stage::ATTACH_COPY))?;
            }
            Err(e) => return Err((stage::ATTACH_COPY, e)),
        }
        if target.exec {
            io::dup_to(tree, plan.exec.exec_fd).map_err(at(stage::ATTACH_COPY))?;
        }
        // Landlock looks past a mount point: the copy needs its own rule
        // (the loader's too, which the kernel opens to run the program).
        if let Some((ruleset, _)) = plan.landlock {
            crate::sys::landlock::allow_fd(ruleset, tree, EXEC_ACCESS)
                .map_err(at(stage::LANDLOCK))?;
        }
        io::close(tree);
    }
    Ok(())
}

/// The program's process: no_new_privs, Landlock, seccomp, exec.
fn confine_and_exec(plan: &Plan<'_>) -> ! {
    if let Err(e) = seccomp::no_new_privs() {
        fail(plan, stage::NO_NEW_PRIVS, e);
    }
    if let Some((ruleset, _)) = plan.landlock
        && let Err(e) = crate::sys::landlock::restrict(ruleset)
    {
        fail(plan, stage::LANDLOCK, e);
    }
    for filter in plan.seccomp {
        if let Err(e) = seccomp::install(filter) {
            fail(plan, stage::SECCOMP, e);
        }
    }
    spawn::exec_child(plan.exec, plan.report)
}

/// A raw fd of an optional ruleset.
pub(crate) fn raw(fd: &Option<(OwnedFd, u64)>) -> Option<(RawFd, u64)> {
    fd.as_ref().map(|(f, a)| (f.as_raw_fd(), *a))
}
