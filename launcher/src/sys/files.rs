//! Opening a pinned path without following symlinks, and sealed memfds.
//! All through `nix`'s safe wrappers: no `unsafe` here.

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
