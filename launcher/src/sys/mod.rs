//! Thin wrappers over the system calls the launcher needs, one file per
//! family. Everything `unsafe` in envseal lives in this module (the
//! compiler holds the fence: `deny(unsafe_code)` everywhere else), each
//! block with its reason; nothing here calls back up into the launcher.
//!
//! - [`clone`]: namespaces (`clone` with flags, `unshare`, host name).
//! - [`mount`]: mounts, detached trees, files made beneath a directory.
//! - [`landlock`], [`seccomp`]: the sandbox's filters at the system-call level.
//! - [`pid1`]: the sandbox's PID 1 (signals on, reaping, wiping).
//! - [`io`]: the child's plumbing (report pipe, `close`, `_exit`).
//! - [`spawn`]: the program's child between `fork` and `execveat`.
//! - [`fork`], [`signals`], [`files`], [`fdpass`], [`terminal`], [`secretmem`].

pub(crate) mod clone;
pub mod fdpass;
pub mod files;
pub mod fork;
pub(crate) mod io;
pub(crate) mod landlock;
pub(crate) mod mount;
pub(crate) mod pid1;
pub(crate) mod seccomp;
pub mod secretmem;
pub(crate) mod signals;
pub(crate) mod spawn;
pub mod terminal;

/// Failure of one system call: its errno.
pub(crate) type Errno = i32;

/// A raw system call's result: the errno when it is negative.
pub(crate) fn check(r: libc::c_long) -> Result<libc::c_long, Errno> {
    if r < 0 {
        Err(nix::errno::Errno::last_raw())
    } else {
        Ok(r)
    }
}
