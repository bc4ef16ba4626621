//! Giving the terminal back as it was when a prompt is interrupted: a
//! no-echo prompt turns echo off, and a Ctrl-C that kills the process there
//! would leave the person's terminal silent.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The terminal whose settings the handler restores (-1: none).
static TTY: AtomicI32 = AtomicI32::new(-1);
/// Its settings when the guard was made; written before `TTY` is set and
/// only read by the handler after it has seen `TTY`.
static mut SAVED: MaybeUninit<libc::termios> = MaybeUninit::uninit();

/// The signals that end a process waiting at a prompt.
const ENDING: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// While it lives, a signal that would end the process first restores the
/// controlling terminal's settings (echo included) as they were when it was
/// made; the process then ends of that signal as it would have.
#[derive(Debug)]
pub struct TerminalGuard {
    /// Kept open while the handler may use its number.
    _tty: OwnedFd,
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

/// Guards the controlling terminal; `None` without one.
pub fn guard_terminal() -> Option<TerminalGuard> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()
        .map(OwnedFd::from)?;
    let mut settings = MaybeUninit::<libc::termios>::uninit();
    // SAFETY: `tty` is an open descriptor and `settings` is a valid place
    // for a termios; it is read only if the call succeeded.
    if unsafe { libc::tcgetattr(tty.as_raw_fd(), settings.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: no handler is installed yet (TTY is -1), so nothing reads
    // SAVED while it is written; this process prompts from one thread.
    unsafe { (&raw mut SAVED).write(settings) };
    TTY.store(tty.as_raw_fd(), Ordering::SeqCst);
    let mut previous = Vec::with_capacity(ENDING.len());
    for sig in ENDING {
        // SAFETY: a zeroed sigaction is a valid value; the handler only
        // makes async-signal-safe calls (see `restore_and_die`).
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            // A signal the process ignores (under `nohup`, say) would not
            // end it: it stays ignored.
            if libc::sigaction(sig, std::ptr::null(), &raw mut current) != 0
                || current.sa_sigaction == libc::SIG_IGN
            {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = restore_and_die as *const () as libc::sighandler_t;
            libc::sigemptyset(&raw mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, &raw const action, &raw mut old) == 0 {
                previous.push((sig, old));
            }
        }
    }
    Some(TerminalGuard {
        _tty: tty,
        previous,
    })
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: puts back the action `guard_terminal` replaced.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
        TTY.store(-1, Ordering::SeqCst);
    }
}

/// The handler: restores the saved settings, ends the line the prompt was
/// on, then lets the signal end the process with its default action.
extern "C" fn restore_and_die(sig: libc::c_int) {
    let fd = TTY.load(Ordering::SeqCst);
    // SAFETY: tcsetattr, write, signal and raise are async-signal-safe;
    // SAVED was written before TTY was set (checked by `fd >= 0`).
    unsafe {
        if fd >= 0 {
            libc::tcsetattr(fd, libc::TCSANOW, (&raw const SAVED).cast());
            libc::write(fd, c"\n".as_ptr().cast(), 1);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// A pseudo-terminal standing in for the terminal `like`, for a program
/// whose terminal output is masked: the same window size, and output
/// passed through unchanged (no `\n` to `\r\n`: the person's terminal
/// does that once, when the masked bytes reach it). `(master, slave)`,
/// both close-on-exec.
pub(crate) fn pty_like(like: std::os::fd::BorrowedFd<'_>) -> std::io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd as _;
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize`, which `size` is.
    let sized = unsafe { libc::ioctl(like.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: `master` and `slave` receive the new descriptors; no name is
    // asked for, no settings given, and the size is valid or NULL.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            if sized { &size } else { std::ptr::null() },
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `openpty` succeeded: two new descriptors nothing else owns.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
    }
    let mut settings = MaybeUninit::<libc::termios>::uninit();
    // SAFETY: `tcgetattr` fills `settings` on success, checked before it
    // is read; `tcsetattr` reads the settings just filled.
    unsafe {
        if libc::tcgetattr(slave.as_raw_fd(), settings.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut settings = settings.assume_init();
        settings.c_oflag &= !libc::OPOST;
        if libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &settings) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((master, slave))
}
