//! Landlock at the system-call level: rules, enforcement, the ABI version.
//!
//! For the child side of a sandboxed launch: every function here only
//! makes system calls on data prepared before `clone` (async-signal-safe;
//! no allocation), and returns the errno on failure.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::{Errno, check};

/// `struct landlock_path_beneath_attr` (packed in the kernel UAPI).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// Adds a path-beneath rule for `path` to the Landlock ruleset `ruleset`.
pub(crate) fn allow(ruleset: RawFd, path: &CStr, access: u64) -> Result<(), Errno> {
    // SAFETY: a valid path; the descriptor is closed below.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) }.into())?
        as RawFd;
    let r = allow_fd(ruleset, fd, access);
    // SAFETY: `fd` was opened above and is not used afterwards.
    unsafe { libc::close(fd) };
    r
}

/// Adds a path-beneath rule for the file or directory `fd` (any
/// descriptor of it, `O_PATH` included) to the ruleset `ruleset`.
pub(crate) fn allow_fd(ruleset: RawFd, fd: RawFd, access: u64) -> Result<(), Errno> {
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: fd,
    };
    // SAFETY: `attr` is a valid landlock_path_beneath_attr for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    check(r).map(drop)
}

/// Enforces the Landlock ruleset on the calling thread.
pub(crate) fn restrict(ruleset: RawFd) -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) }).map(drop)
}

/// The kernel's Landlock ABI version, or the errno (EOPNOTSUPP: built but
/// disabled; ENOSYS: not built).
pub(crate) fn abi() -> Result<i64, Errno> {
    // SAFETY: the documented version query: NULL attribute, size 0.
    check(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    })
}
