//! `fork` for the broker: detaching it from the person's terminal, and one
//! process per request. The broker is single-threaded (checked here), so
//! a child is a complete copy of it and may run any code, allocations
//! included — unlike the launcher's own children, which only make system
//! calls before `exec`.

use nix::unistd::{ForkResult, Pid};

/// Which side of a fork this is.
#[derive(Debug)]
pub enum Forked {
    Child,
    Parent(Pid),
}

/// Forks this process, which must be single-threaded.
pub fn fork() -> std::io::Result<Forked> {
    if !single_threaded() {
        return Err(std::io::Error::other(
            "fork refused: this process has more than one thread",
        ));
    }
    // SAFETY: the process has exactly one thread (checked above), so no
    // lock can be held by a thread that is missing in the child; the child
    // is an ordinary single-threaded process and may run any code.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => Ok(Forked::Child),
        ForkResult::Parent { child } => Ok(Forked::Parent(child)),
    }
}

/// Detaches from the caller: fork, `setsid` in the child, fork again (so
/// the daemon is not a session leader and can never acquire a controlling
/// terminal), and the middle process exits. Returns `true` in the daemon
/// and `false` in the caller, once the middle process has been reaped.
pub fn detach() -> std::io::Result<bool> {
    match fork()? {
        Forked::Parent(middle) => {
            let _ = nix::sys::wait::waitpid(middle, None);
            Ok(false)
        }
        Forked::Child => {
            if nix::unistd::setsid().is_err() {
                crate::sys::io::exit(1);
            }
            match fork() {
                Ok(Forked::Child) => Ok(true),
                _ => crate::sys::io::exit(0),
            }
        }
    }
}

/// Ends this process at once: no destructors, no buffered output flushed
/// twice (for forked children that must not unwind into the parent's code).
pub fn exit_now(code: i32) -> ! {
    crate::sys::io::exit(code)
}

/// Lowers this process's CPU priority to the minimum (nice 19): for work
/// left after answering, such as a session's audit record, so that it
/// never competes with the next request.
pub fn background() {
    // SAFETY: plain integer arguments; only this process is affected.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// Whether this process has exactly one thread (from /proc/self/status):
/// forking is safe only then (see the crate documentation).
pub(crate) fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.strip_prefix("Threads:").is_some_and(|n| n.trim() == "1"))
    })
}
