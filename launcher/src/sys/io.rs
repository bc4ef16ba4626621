//! The child's plumbing: one-byte reads, the report pipe, `close`, `dup3`, `_exit`.
//!
//! For the child side of a sandboxed launch: every function here only
//! makes system calls on data prepared before `clone` (async-signal-safe;
//! no allocation), and returns the errno on failure.

use std::os::fd::RawFd;

use super::{Errno, check};

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

/// `dup3(2)` with `O_CLOEXEC`: `fd` also at number `to`.
pub(crate) fn dup_to(fd: RawFd, to: RawFd) -> Result<(), Errno> {
    // SAFETY: dup3 on descriptor numbers; invalid ones give EBADF.
    check(unsafe { libc::dup3(fd, to, libc::O_CLOEXEC) }.into()).map(drop)
}
