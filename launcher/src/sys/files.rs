//! Opening a pinned path without following symlinks, and sealed memfds.
//! Through `nix`'s safe wrappers, except the read-only mapping of a sealed
//! memfd.

use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, FromRawFd as _, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, OpenHow, ResolveFlag, SealFlag, fcntl, openat2};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::stat::{Mode, fchmod};

/// Opens `path` for reading; fails with `ELOOP` if any component of it is
/// a symlink (the path was canonical when pinned, so a symlink now means
/// it was swapped) and never opens a device, FIFO or terminal as a side
/// effect.
pub(crate) fn open_no_symlinks(path: &str) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(nix::fcntl::AT_FDCWD, path, how)
}

/// A new close-on-exec memfd that allows sealing (a program's child
/// places the ones the program gets at its slots with `dup2`, which
/// leaves them open across exec).
pub(crate) fn memfd(name: &str) -> Result<OwnedFd, Errno> {
    memfd_create(name, MFdFlags::MFD_ALLOW_SEALING | MFdFlags::MFD_CLOEXEC)
}

/// A duplicate of `fd` numbered `floor` or above, close-on-exec. A child
/// places its program's descriptors at fixed numbers below `floor`;
/// numbered above them, no placement overwrites another.
pub(crate) fn dup_at_least(fd: BorrowedFd<'_>, floor: RawFd) -> Result<OwnedFd, Errno> {
    let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(floor))?;
    // SAFETY: `raw` is the descriptor fcntl has just created; nothing
    // else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Seals a memfd against every change to its contents or size, and
/// against removing the seals; then sets its mode.
pub(crate) fn seal(fd: &OwnedFd, mode: u32) -> Result<(), Errno> {
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SEAL;
    fcntl(fd, FcntlArg::F_ADD_SEALS(seals))?;
    fchmod(fd, Mode::from_bits_truncate(mode))
}

/// Moves a descriptor's file offset back to the start.
pub(crate) fn rewind(fd: &OwnedFd) -> Result<(), Errno> {
    nix::unistd::lseek(fd, 0, nix::unistd::Whence::SeekSet).map(drop)
}

/// The seals on a memfd (for tests and checks).
pub(crate) fn seals(fd: &OwnedFd) -> Result<SealFlag, Errno> {
    fcntl(fd, FcntlArg::F_GET_SEALS).map(SealFlag::from_bits_truncate)
}

/// Calls `f` with the contents of a memfd carrying all of [`seal`]'s
/// seals, mapped read-only (hashing it needs no copy).
pub(crate) fn with_sealed_contents<R>(
    fd: &OwnedFd,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, Errno> {
    use nix::fcntl::SealFlag as S;
    let needed = S::F_SEAL_WRITE | S::F_SEAL_SHRINK | S::F_SEAL_GROW;
    if !seals(fd)?.contains(needed) {
        return Err(Errno::EPERM);
    }
    let len = nix::sys::stat::fstat(fd)?.st_size as usize;
    let Some(length) = NonZeroUsize::new(len) else {
        return Ok(f(&[]));
    };
    use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
    // SAFETY: a new read-only mapping at an address the kernel chooses,
    // aliasing no Rust object.
    let ptr = unsafe {
        mmap(
            None,
            length,
            ProtFlags::PROT_READ,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )
    }?;
    // SAFETY: the mapping is `len` readable bytes; the memfd is sealed
    // against writes, shrinking and growing (checked above), so the bytes
    // cannot change and the pages cannot vanish (no SIGBUS) while the
    // slice lives; the slice does not outlive this function.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<u8>(), len) };
    let result = f(bytes);
    // SAFETY: `ptr`/`len` are exactly the mapping made above, and `bytes`
    // is no longer used.
    unsafe { munmap(ptr, len) }?;
    Ok(result)
}

/// Takes ownership of descriptor `fd`, which this process inherited and was
/// told about on its command line (`--passphrase-fd N`): the descriptor
/// itself, never a reopening of `/proc/self/fd/N` (that is a new `open`
/// with a permission check, which fails for another user's pipe or file
/// and for sockets). Fails with `EBADF` if `fd` is not open, and marks it
/// close-on-exec so no program started later inherits it. For 0, 1 or 2 it
/// returns a duplicate and leaves the standard descriptor open.
///
/// Call it before this process opens anything, or a closed `fd` could
/// already name one of its own files; and at most once per descriptor.
pub fn inherited(fd: std::os::fd::RawFd) -> Result<OwnedFd, Errno> {
    use std::os::fd::FromRawFd as _;
    if fd < 0 {
        return Err(Errno::EBADF);
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; an invalid `fd`
    // gives EBADF and touches nothing.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(Errno::last());
    }
    if fd <= 2 {
        // A standard descriptor stays where it is (closing it would hand
        // its number to the next file opened): read from a duplicate.
        // SAFETY: F_DUPFD_CLOEXEC on an open descriptor returns a new
        // descriptor that nothing else owns.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if dup < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `dup` was just created for this OwnedFd alone.
        return Ok(unsafe { OwnedFd::from_raw_fd(dup) });
    }
    // SAFETY: `fd` is open (checked just above) and was handed to this
    // process by its parent for this purpose; nothing else in the process
    // owns it (the caller takes it once), so the OwnedFd is its only owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(&owned, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
    Ok(owned)
}

/// Standard output (1) or error (2) as a borrowed descriptor.
pub(crate) fn stdio(fd: std::os::fd::RawFd) -> std::os::fd::BorrowedFd<'static> {
    assert!(fd == 1 || fd == 2, "only stdout and stderr");
    // SAFETY: descriptors 1 and 2 stay open for the life of the process
    // (envseal never closes them).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
