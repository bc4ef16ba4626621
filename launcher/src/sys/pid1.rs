//! The sandbox's PID 1: passing signals on, reaping, and wiping the
//! copies of secrets it holds once the program has its own.
//!
//! For the child side of a sandboxed launch: every function here only
//! makes system calls on data prepared before `clone` (async-signal-safe;
//! no allocation), and returns the errno on failure.

use super::io::exit;

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
