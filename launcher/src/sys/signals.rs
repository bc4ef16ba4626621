//! Blocking the signals envseal forwards, and waiting for them.

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

/// One signal taken from the blocked set.
pub(crate) struct Received {
    pub(crate) signal: i32,
    /// Sent by the kernel (e.g. the terminal's Ctrl-C to the whole
    /// foreground process group, which the program receives too).
    pub(crate) from_kernel: bool,
}

/// Waits for one signal of `set` (which must be blocked).
pub(crate) fn wait(set: &SigSet) -> Result<Received, Errno> {
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the duration of the call.
        let n = unsafe { libc::sigwaitinfo(set.as_ref(), &mut info) };
        if n == -1 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        return Ok(Received {
            signal: n,
            from_kernel: info.si_code == libc::SI_KERNEL,
        });
    }
}
