//! `fork` + `execveat(fd, "", …, AT_EMPTY_PATH)`.
//!
//! Everything the child needs (argument and environment pointer arrays,
//! the descriptors to place, the signal mask to restore) is prepared
//! before `fork`, every descriptor it holds numbered above the slots the
//! program's take; between `fork` and `execveat` the child makes only
//! async-signal-safe system calls, and allocates nothing. Also the
//! shield's `execve`.

use std::ffi::c_char;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::SigSet;
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use super::io;

/// The report stage of a failed `execveat`.
pub(crate) const STAGE_EXEC: u32 = 0;

/// The first descriptor a program's file secrets (then a script's copy)
/// are placed at: `/dev/fd/3`, `/dev/fd/4`, … in the order of
/// `Launch::secrets` (the broker gives them in the order of their names)
/// — stable, so a command line or an argument rule can name them.
pub const FIRST_FD: RawFd = 3;

/// What the child does between `fork` and `execveat`, all prepared.
pub(crate) struct Prepared<'a> {
    /// The sealed memfd to execute (numbered above the slots).
    pub(crate) exec_fd: RawFd,
    /// NULL-terminated.
    pub(crate) argv: &'a [*const c_char],
    /// NULL-terminated.
    pub(crate) envp: &'a [*const c_char],
    /// The descriptors the program gets at [`FIRST_FD`], `FIRST_FD + 1`, …
    /// (file secrets, then a script's copy), each numbered above those
    /// slots (so that placing one never overwrites another).
    pub(crate) place: &'a [RawFd],
    /// The signal mask the program starts with.
    pub(crate) mask: &'a SigSet,
    /// Highest descriptor to mark close-on-exec if `close_range` is
    /// unavailable.
    pub(crate) max_fd: RawFd,
    /// Descriptors to put on stdout and stderr (the masking pipes), or -1.
    pub(crate) stdio: [RawFd; 2],
    /// Make the program the leader of a process group of its own, so that
    /// a signal relayed to the group reaches its children too (the way a
    /// terminal's do). Only where no terminal's job control needs it in
    /// the terminal's foreground group: under the broker.
    pub(crate) new_group: bool,
    /// A Landlock ruleset enforced (with `no_new_privs`) just before the
    /// exec — the shield of the caller, for a program run for a shielded
    /// one — or -1. Numbered above the slots.
    pub(crate) confine: RawFd,
}

/// `pointers` followed by the NULL that ends an `argv` or `envp` array.
pub(crate) fn null_terminated(pointers: impl Iterator<Item = *const c_char>) -> Vec<*const c_char> {
    let mut array: Vec<*const c_char> = pointers.collect();
    array.push(std::ptr::null());
    array
}

impl Prepared<'_> {
    /// The first descriptor above the program's slots.
    pub(crate) fn slots_end(&self) -> RawFd {
        FIRST_FD + self.place.len() as RawFd
    }

    /// Checks, before `fork`, what placing relies on: every descriptor
    /// the child holds (the executable, `report`, each to place) is
    /// numbered above the slots, so no `dup2` into a slot overwrites one.
    pub(crate) fn assert_above_slots(&self, report: RawFd) {
        let end = self.slots_end();
        assert!(
            self.exec_fd >= end
                && report >= end
                && (self.confine < 0 || self.confine >= end)
                && self.place.iter().all(|&f| f >= end),
            "a descriptor the child needs is numbered inside the program's slots"
        );
    }
}

/// A close-on-exec pipe on which a child reports `(stage, errno)`, its
/// write end numbered `floor` or above (the child places the program's
/// descriptors below it).
pub(crate) fn report_pipe(floor: RawFd) -> Result<(OwnedFd, OwnedFd), std::io::Error> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    if write.as_raw_fd() >= floor {
        return Ok((read, write));
    }
    Ok((read, super::files::dup_at_least(write.as_fd(), floor)?))
}

/// Reads one `(stage, errno)` report; `None` when every write end closed
/// first.
pub(crate) fn read_report(read_end: &OwnedFd) -> Result<Option<(u32, i32)>, std::io::Error> {
    let mut m = [0u8; 8];
    match (&File::from(read_end.try_clone()?)).read_exact(&mut m) {
        Ok(()) => Ok(Some((
            u32::from_ne_bytes(m[..4].try_into().unwrap()),
            i32::from_ne_bytes(m[4..].try_into().unwrap()),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads every `(stage, errno)` report until all write ends are closed.
pub(crate) fn read_reports(read_end: OwnedFd) -> Result<Vec<(u32, i32)>, std::io::Error> {
    let mut buf = Vec::new();
    File::from(read_end).read_to_end(&mut buf)?;
    Ok(buf
        .chunks_exact(8)
        .map(|m| {
            (
                u32::from_ne_bytes(m[..4].try_into().unwrap()),
                i32::from_ne_bytes(m[4..].try_into().unwrap()),
            )
        })
        .collect())
}

/// Starts the child (tier None). Returns once `execveat` has succeeded
/// (or reports why it failed, read back through a close-on-exec pipe).
pub(crate) fn spawn(p: &Prepared<'_>) -> Result<Pid, std::io::Error> {
    assert_eq!(p.argv.last(), Some(&std::ptr::null()));
    assert_eq!(p.envp.last(), Some(&std::ptr::null()));
    let (report_r, report_w) = report_pipe(p.slots_end())?;
    p.assert_above_slots(report_w.as_raw_fd());
    // SAFETY: the child only calls async-signal-safe functions (see
    // `exec_child`) and never returns into Rust code of the parent's.
    match unsafe { fork() }? {
        ForkResult::Child => exec_child(p, report_w.as_raw_fd()),
        ForkResult::Parent { child } => {
            drop(report_w);
            let reports = read_reports(report_r)?;
            if let Some(&(_, errno)) = reports.first() {
                // The child exits at once after reporting; reap it.
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(std::io::Error::from_raw_os_error(errno));
            }
            Ok(child)
        }
    }
}

/// The last steps of every child: reset the signal state, put the masking
/// pipes on stdout and stderr, `dup2` the program's descriptors into their
/// slots, enforce the caller's shield if any, mark every descriptor above
/// the slots close-on-exec, `execveat`. Only async-signal-safe calls:
/// `signal`, `sigprocmask`, `setpgid`, `dup2`, `prctl`,
/// `landlock_restrict_self`, `close_range`, `fcntl`, `execveat`, `write`,
/// `_exit`.
pub(crate) fn exec_child(p: &Prepared<'_>, report: RawFd) -> ! {
    if p.confine >= 0 {
        let confined =
            super::seccomp::no_new_privs().and_then(|()| super::landlock::restrict(p.confine));
        if let Err(errno) = confined {
            io::report(report, STAGE_EXEC, errno);
            io::exit(127);
        }
    }
    // SAFETY: each call below is async-signal-safe and gets pointers to
    // memory prepared before fork, which stays valid in the child.
    unsafe {
        // Rust ignores SIGPIPE; an ignored disposition would survive exec.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_SETMASK, p.mask.as_ref(), std::ptr::null_mut());
        if p.new_group && libc::setpgid(0, 0) < 0 {
            io::report(report, STAGE_EXEC, Errno::last_raw());
            io::exit(127);
        }
        // The masking pipes become stdout and stderr (dup2 leaves the new
        // descriptor open across exec).
        for (target, &fd) in [1, 2].iter().zip(p.stdio.iter()) {
            if fd >= 0 && libc::dup2(fd, *target) < 0 {
                io::report(report, STAGE_EXEC, Errno::last_raw());
                io::exit(127);
            }
        }
        // The program's descriptors take their slots (every descriptor
        // this child holds is numbered above them: `assert_above_slots`);
        // dup2 leaves them open across exec.
        let slots = p.slots_end();
        for (slot, &fd) in (FIRST_FD..).zip(p.place) {
            if libc::dup2(fd, slot) < 0 {
                io::report(report, STAGE_EXEC, Errno::last_raw());
                io::exit(127);
            }
        }
        // Every descriptor above the slots closes at exec (the memfd to
        // execute and the report pipe included).
        let marked = libc::syscall(
            libc::SYS_close_range,
            slots as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if marked != 0 {
            let mut fd = slots;
            while fd <= p.max_fd {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                fd += 1;
            }
        }
        libc::syscall(
            libc::SYS_execveat,
            p.exec_fd,
            c"".as_ptr(),
            p.argv.as_ptr(),
            p.envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::report(report, STAGE_EXEC, Errno::last_raw());
    io::exit(127)
}

/// Resets the signal state and `execve`s `path`; returns the errno if the
/// exec failed. For the shield's agent process, which keeps its inherited
/// descriptors (envseal's own are close-on-exec).
pub(crate) fn execve(
    path: &std::ffi::CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    mask: &nix::sys::signal::SigSet,
) -> super::Errno {
    // SAFETY: every pointer was prepared before the fork and stays valid;
    // argv and envp are NULL-terminated (asserted by the caller's build).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_SETMASK, mask.as_ref(), std::ptr::null_mut());
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    nix::errno::Errno::last_raw()
}
