//! `fork` + `execveat(fd, "", …, AT_EMPTY_PATH)`.
//!
//! Everything the child needs (argument and environment pointer arrays,
//! the descriptors to keep, the signal mask to restore) is prepared
//! before `fork`; between `fork` and `execveat` the child makes only
//! async-signal-safe system calls, and allocates nothing.

use std::ffi::c_char;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsRawFd as _, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::SigSet;
use nix::unistd::{ForkResult, Pid, fork, pipe2};

/// What the child does between `fork` and `execveat`, all prepared.
pub(crate) struct Prepared<'a> {
    /// The sealed memfd to execute.
    pub(crate) exec_fd: RawFd,
    /// NULL-terminated.
    pub(crate) argv: &'a [*const c_char],
    /// NULL-terminated.
    pub(crate) envp: &'a [*const c_char],
    /// Descriptors above 2 that the program must keep (script, secret files).
    pub(crate) keep: &'a [RawFd],
    /// The signal mask the program starts with.
    pub(crate) mask: &'a SigSet,
    /// Highest descriptor to close if `close_range` is unavailable.
    pub(crate) max_fd: RawFd,
}

/// Starts the child. Returns once `execveat` has succeeded (or reports
/// why it failed, read back through a close-on-exec pipe).
pub(crate) fn spawn(p: &Prepared<'_>) -> Result<Pid, std::io::Error> {
    assert_eq!(p.argv.last(), Some(&std::ptr::null()));
    assert_eq!(p.envp.last(), Some(&std::ptr::null()));
    let (report_r, report_w) = pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: the child only calls async-signal-safe functions (see
    // `child`) and never returns into Rust code of the parent's.
    match unsafe { fork() }? {
        ForkResult::Child => child(p, report_w.as_raw_fd()),
        ForkResult::Parent { child } => {
            drop(report_w);
            let mut errno = [0u8; 4];
            let mut report = File::from(report_r);
            let n = loop {
                match report.read(&mut errno) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other?,
                }
            };
            if n == 0 {
                return Ok(child);
            }
            // The child exits at once after reporting; reap it.
            let _ = nix::sys::wait::waitpid(child, None);
            Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
        }
    }
}

/// The child side. Only async-signal-safe calls: `signal`,
/// `sigprocmask`, `close_range`, `fcntl`, `execveat`, `write`, `_exit`.
fn child(p: &Prepared<'_>, report: RawFd) -> ! {
    // SAFETY: each call below is async-signal-safe and gets pointers to
    // memory prepared before fork, which stays valid in the child.
    unsafe {
        // Rust ignores SIGPIPE; an ignored disposition would survive exec.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_SETMASK, p.mask.as_ref(), std::ptr::null_mut());
        // Every descriptor above 2 closes at exec (the memfd to execute
        // and the report pipe included), except those the program keeps.
        let marked = libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if marked != 0 {
            let mut fd = 3;
            while fd <= p.max_fd {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                fd += 1;
            }
        }
        for &fd in p.keep {
            libc::fcntl(fd, libc::F_SETFD, 0);
        }
        libc::syscall(
            libc::SYS_execveat,
            p.exec_fd,
            c"".as_ptr(),
            p.argv.as_ptr(),
            p.envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        let errno = Errno::last_raw().to_ne_bytes();
        libc::write(report, errno.as_ptr().cast(), errno.len());
        libc::_exit(127);
    }
}
