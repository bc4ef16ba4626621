//! Opening a pinned path without following symlinks, and sealed memfds.
//! Through `nix`'s safe wrappers, except the read-only mapping of a sealed
//! memfd.

use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;

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

/// A new memfd that allows sealing; `cloexec` decides whether it survives
/// `execve` (a script or a secret file must, so the program can open
/// `/dev/fd/N`).
pub(crate) fn memfd(name: &str, cloexec: bool) -> Result<OwnedFd, Errno> {
    let mut flags = MFdFlags::MFD_ALLOW_SEALING;
    if cloexec {
        flags |= MFdFlags::MFD_CLOEXEC;
    }
    memfd_create(name, flags)
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
