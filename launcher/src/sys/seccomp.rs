//! seccomp: `no_new_privs`, installing a classic-BPF filter, and whether
//! the kernel accepts x32 system calls (which such a filter must see).
//!
//! For the child side of a sandboxed launch: every function here only
//! makes system calls on data prepared before `clone` (async-signal-safe;
//! no allocation), and returns the errno on failure.

use super::{Errno, check};

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub(crate) fn no_new_privs() -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into()).map(drop)
}

/// Installs a classic-BPF seccomp filter (built by `seccompiler`) on the
/// calling thread. `NO_NEW_PRIVS` must already be set.
pub(crate) fn install(filter: &[seccompiler::sock_filter]) -> Result<(), Errno> {
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
