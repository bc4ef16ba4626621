//! Namespaces, mounts, Landlock and seccomp at the system-call level, for
//! the child side of a sandboxed launch. Every function here only makes
//! system calls on data prepared before `clone` (async-signal-safe; no
//! allocation), and returns the errno on failure.

use std::ffi::CStr;
use std::os::fd::RawFd;

/// Failure of one system call: its errno.
pub(crate) type Errno = i32;

fn check(r: libc::c_long) -> Result<libc::c_long, Errno> {
    if r < 0 {
        Err(nix::errno::Errno::last_raw())
    } else {
        Ok(r)
    }
}

/// `clone(flags | SIGCHLD)` with no new stack: fork semantics, plus the
/// namespaces in `flags`. Returns 0 in the child, the pid in the parent.
pub(crate) fn clone(flags: libc::c_int) -> Result<libc::pid_t, Errno> {
    // SAFETY: with a NULL stack, clone behaves like fork: the child runs
    // on a copy of the caller's stack. The callers in this crate run only
    // system calls in the child (see the module comment).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    check(r).map(|pid| pid as libc::pid_t)
}

/// `mount(2)`.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), Errno> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is NULL or a valid NUL-terminated string.
    let r = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    check(r.into()).map(drop)
}

/// `open_tree(2)` with `OPEN_TREE_CLONE | AT_RECURSIVE`: a detached copy
/// of the mount tree at `path` (which stays reachable through the
/// descriptor when `path` is covered afterwards). The caller closes it.
pub(crate) fn clone_tree(path: &CStr) -> Result<RawFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_ulong = 1;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_ulong | libc::AT_RECURSIVE as libc::c_ulong;
    // SAFETY: a valid NUL-terminated path; the descriptor is returned.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    check(r).map(|fd| fd as RawFd)
}

/// `move_mount(2)`: attaches the detached tree `tree` at `target`.
pub(crate) fn attach_tree(tree: RawFd, target: &CStr) -> Result<(), Errno> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_ulong = 4;
    // SAFETY: `tree` is a descriptor of the caller's; the empty path and
    // `target` are valid NUL-terminated strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check(r).map(drop)
}

/// `unshare(2)`.
pub(crate) fn unshare(flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: plain integer flags.
    check(unsafe { libc::unshare(flags) }.into()).map(drop)
}

/// Writes `bytes` to the existing file `path` (a `/proc` control file) in
/// one `write`.
pub(crate) fn write_file(path: &CStr, bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: a valid NUL-terminated path; the descriptor is closed below.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) }.into())?
        as RawFd;
    // SAFETY: the pointer and length describe `bytes`.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let written = check(n as libc::c_long);
    close(fd);
    match written {
        Ok(n) if n as usize == bytes.len() => Ok(()),
        Ok(_) => Err(libc::EIO),
        Err(e) => Err(e),
    }
}

/// `mkdir(2)`.
pub(crate) fn mkdir(path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
    // SAFETY: a valid NUL-terminated path.
    check(unsafe { libc::mkdir(path.as_ptr(), mode) }.into()).map(drop)
}

/// Opens directory `path` as an `O_PATH` descriptor (the last component
/// must not be a symlink). The caller closes it with [`close`].
pub(crate) fn open_dir(path: &CStr) -> Result<RawFd, Errno> {
    // SAFETY: a valid NUL-terminated path; the descriptor is returned.
    check(
        unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        }
        .into(),
    )
    .map(|fd| fd as RawFd)
}

/// Creates `name` (which must not exist) with `mode` *beneath* directory
/// `dir` and writes `bytes`: `openat2` with `RESOLVE_BENEATH` and no
/// symlinks, so whatever `name` says (`..`, an absolute path, a link), the
/// file can only be created inside `dir`.
pub(crate) fn create_file_beneath(
    dir: RawFd,
    name: &CStr,
    bytes: &[u8],
    mode: libc::mode_t,
) -> Result<(), Errno> {
    // `struct open_how` of <linux/openat2.h> (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
            as u64,
        mode: u64::from(mode),
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `name` is NUL-terminated and `how` is a valid open_how whose
    // size is passed; the returned descriptor is closed below.
    let opened = check(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            name.as_ptr(),
            &raw const how,
            std::mem::size_of::<OpenHow>(),
        )
    });
    let fd = match opened {
        Ok(fd) => fd as RawFd,
        // A kernel or container filter without openat2: `openat` relative
        // to `dir`, not following a link. (The launcher also checked that
        // `name` is a plain identifier, so it cannot leave `dir`.)
        // SAFETY: as above, with a plain flags word.
        Err(libc::ENOSYS | libc::EPERM) => check(
            unsafe { libc::openat(dir, name.as_ptr(), how.flags as libc::c_int, mode) }.into(),
        )? as RawFd,
        Err(e) => return Err(e),
    };
    let mut done = 0;
    let result = loop {
        if done == bytes.len() {
            break Ok(());
        }
        // SAFETY: the pointer and length are within `bytes`.
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        match check(n as libc::c_long) {
            Ok(n) => done += n as usize,
            Err(libc::EINTR) => {}
            Err(e) => break Err(e),
        }
    };
    close(fd);
    result
}

/// `fchown(2)`.
pub(crate) fn fchown(fd: RawFd, uid: libc::uid_t, gid: libc::gid_t) -> Result<(), Errno> {
    // SAFETY: fchown on a descriptor number; an invalid one gives EBADF.
    check(unsafe { libc::fchown(fd, uid, gid) }.into()).map(drop)
}

/// Overwrites each `(ptr, len)` range with zeros. The launcher passes the
/// ranges of the environment it built for the child, in the sandbox's
/// PID 1, which owns them as a copy and reads them no more.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub(crate) fn wipe_all(ranges: &[(*mut u8, usize)]) {
    for &(ptr, len) in ranges {
        // SAFETY: the ranges are memory of this process (see above).
        unsafe { wipe(ptr, len) };
    }
}

/// The sandbox's PID 1: passes signals sent to it to every process of the
/// namespace (`kill(-1)`: all but itself, the way a terminal's signal
/// reaches a whole foreground group), reaps every child, and exits with
/// the program's status once it has ended (the kernel then kills whatever
/// is left in the namespace). System calls only.
pub(crate) fn reap_and_forward(program: libc::pid_t, waited: &nix::sys::signal::SigSet) -> ! {
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call.
        let sig = unsafe { libc::sigwaitinfo(waited.as_ref(), &mut info) };
        if sig == libc::SIGCHLD {
            loop {
                let mut status = 0;
                // SAFETY: reaps any child without blocking.
                let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
                if pid == program {
                    exit(if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    });
                }
            }
        } else if sig > 0 && info.si_code != libc::SI_KERNEL {
            // SAFETY: kill(2) with plain integers.
            unsafe { libc::kill(-1, sig) };
        }
    }
}

/// `sethostname(2)`.
pub(crate) fn sethostname(name: &[u8]) -> Result<(), Errno> {
    // SAFETY: pointer and length describe `name`.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }.into()).map(drop)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub(crate) fn no_new_privs() -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into()).map(drop)
}

/// `struct landlock_path_beneath_attr` (packed in the kernel UAPI).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// Adds a path-beneath rule for `path` to the Landlock ruleset `ruleset`.
pub(crate) fn landlock_allow(ruleset: RawFd, path: &CStr, access: u64) -> Result<(), Errno> {
    // SAFETY: a valid path; the descriptor is closed below.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) }.into())?
        as RawFd;
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: fd,
    };
    // SAFETY: `attr` is a valid landlock_path_beneath_attr for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    // SAFETY: `fd` was opened above and is not used afterwards.
    unsafe { libc::close(fd) };
    check(r).map(drop)
}

/// Enforces the Landlock ruleset on the calling thread.
pub(crate) fn landlock_restrict(ruleset: RawFd) -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) }).map(drop)
}

/// The kernel's Landlock ABI version, or the errno (EOPNOTSUPP: built but
/// disabled; ENOSYS: not built).
pub(crate) fn landlock_abi() -> Result<i64, Errno> {
    // SAFETY: the documented version query: NULL attribute, size 0.
    check(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    })
}

/// Installs a classic-BPF seccomp filter (built by `seccompiler`) on the
/// calling thread. `NO_NEW_PRIVS` must already be set.
pub(crate) fn seccomp(filter: &[seccompiler::sock_filter]) -> Result<(), Errno> {
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        // `seccompiler::sock_filter` has the kernel's layout, as libc's does.
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter`, which outlives the call; the
    // kernel copies the program.
    check(
        unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            )
        }
        .into(),
    )
    .map(drop)
}

/// `read(2)` of one byte; `Ok(false)` at end of file.
pub(crate) fn read_byte(fd: RawFd) -> Result<bool, Errno> {
    let mut b = 0u8;
    loop {
        // SAFETY: one byte into `b`.
        match check(unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) } as libc::c_long) {
            Ok(n) => return Ok(n == 1),
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes an 8-byte report (stage, errno) to the report pipe.
pub(crate) fn report(fd: RawFd, stage: u32, errno: Errno) {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&stage.to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: eight bytes from `msg`. A failed write cannot be reported.
    unsafe { libc::write(fd, msg.as_ptr().cast(), msg.len()) };
}

/// `_exit(2)`.
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: ends the process without running any user-space code.
    unsafe { libc::_exit(code) }
}

/// `close(2)`, errors ignored.
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the callers own `fd` and do not use it afterwards.
    unsafe { libc::close(fd) };
}

/// Overwrites `len` bytes at `ptr` with zeros (volatile: not optimised
/// away). For the sandbox's PID 1, which holds a copy of the secrets it
/// no longer needs once the program has its own.
///
/// # Safety
/// `ptr..ptr+len` must be writable memory of this process.
pub(crate) unsafe fn wipe(ptr: *mut u8, len: usize) {
    for i in 0..len {
        // SAFETY: within the range the caller vouches for.
        unsafe { std::ptr::write_volatile(ptr.add(i), 0) };
    }
}

/// Whether the kernel accepts x32-ABI system calls (x86_64 numbers with
/// bit 30 set), which a filter matching x86_64 numbers does not see.
pub(crate) fn x32_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: x32 getpid(2) takes no arguments and has no effect.
        unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) >= 0 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Resets the signal state and `execve`s `path`; returns the errno if the
/// exec failed. For the shield's agent process, which keeps its inherited
/// descriptors (envseal's own are close-on-exec).
pub(crate) fn execve(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    mask: &nix::sys::signal::SigSet,
) -> Errno {
    // SAFETY: every pointer was prepared before the fork and stays valid;
    // argv and envp are NULL-terminated (asserted by the caller's build).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_SETMASK, mask.as_ref(), std::ptr::null_mut());
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    nix::errno::Errno::last_raw()
}
