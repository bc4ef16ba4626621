//! Namespaces: `clone` with namespace flags (fork semantics), `unshare`,
//! the UTS host name.
//!
//! For the child side of a sandboxed launch: every function here only
//! makes system calls on data prepared before `clone` (async-signal-safe;
//! no allocation), and returns the errno on failure.

use super::{Errno, check};

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

/// `unshare(2)`.
pub(crate) fn unshare(flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: plain integer flags.
    check(unsafe { libc::unshare(flags) }.into()).map(drop)
}

/// `sethostname(2)`.
pub(crate) fn sethostname(name: &[u8]) -> Result<(), Errno> {
    // SAFETY: pointer and length describe `name`.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }.into()).map(drop)
}
