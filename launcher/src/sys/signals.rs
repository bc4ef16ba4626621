//! Blocking the signals envseal forwards (they are read from a signalfd
//! while the program runs).

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};

/// Signals that reach envseal and are passed on to the program: every
/// catchable one except job control (`SIGTSTP`, `SIGTTIN`, `SIGTTOU`,
/// `SIGCONT`: the terminal sends those to the whole process group, so
/// envseal stops and continues with the program), the synchronous fault
/// signals, `SIGPIPE` and `SIGCHLD`.
pub(crate) const FORWARDED: [Signal; 13] = [
    Signal::SIGALRM,
    Signal::SIGIO,
    Signal::SIGPROF,
    Signal::SIGPWR,
    Signal::SIGURG,
    Signal::SIGVTALRM,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The forwarded signals plus `SIGCHLD`.
pub(crate) fn waited_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks `set`; returns the mask to restore (in the child, before exec).
/// Also makes sure `SIGCHLD` is not ignored: a caller that ignores it
/// would have the kernel reap the child before its status is read.
pub(crate) fn block(set: &SigSet) -> Result<SigSet, Errno> {
    // SAFETY: installing SIG_DFL runs no handler code.
    unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) }?;
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(set), Some(&mut old))?;
    Ok(old)
}

/// Sets the signal mask back to `mask` (the caller's, as [`block`]
/// returned it: a library caller may launch again).
pub(crate) fn restore(mask: &SigSet) {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
}
