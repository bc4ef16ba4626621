//! Mounts and the files a sandbox makes: `mount`, detached trees
//! (`open_tree`/`move_mount`), directories, files created beneath a
//! directory, `/proc` control files, ownership.
//!
//! For the child side of a sandboxed launch: every function here only
//! makes system calls on data prepared before `clone` (async-signal-safe;
//! no allocation), and returns the errno on failure.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::io::close;
use super::{Errno, check};

/// `mount(2)`.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), Errno> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is NULL or a valid NUL-terminated string.
    let r = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    check(r.into()).map(drop)
}

/// `open_tree(2)` with `OPEN_TREE_CLONE | AT_RECURSIVE`: a detached copy
/// of the mount tree at `path` (which stays reachable through the
/// descriptor when `path` is covered afterwards). The caller closes it.
pub(crate) fn clone_tree(path: &CStr) -> Result<RawFd, Errno> {
    open_tree(libc::AT_FDCWD, path, true)
}

/// `open_tree(2)` with `OPEN_TREE_CLONE`: a detached copy of the mount at
/// `name` in directory `dir` (with the mounts beneath it if `recursive`).
/// The caller closes it.
fn open_tree(dir: RawFd, name: &CStr, recursive: bool) -> Result<RawFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_ulong = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_ulong;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_ulong;
    }
    // SAFETY: `dir` is a descriptor of the caller's (or AT_FDCWD) and
    // `name` a valid NUL-terminated string; the descriptor is returned.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, dir, name.as_ptr(), flags) };
    check(r).map(|fd| fd as RawFd)
}

/// Covers directory `path` with a copy of its own mount tree on which
/// nothing can be executed or mapped executable: `open_tree` (recursive),
/// `mount_setattr(MOUNT_ATTR_NOEXEC)` over the whole copy (a flag added;
/// the flags locked by a more privileged namespace are left alone), then
/// `move_mount` onto `path`.
pub(crate) fn bind_noexec(path: &CStr) -> Result<(), Errno> {
    /// `struct mount_attr` (linux/mount.h).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_NOEXEC: u64 = 0x8;
    let tree = clone_tree(path)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_NOEXEC,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `tree` is the descriptor just made, the path an empty
    // NUL-terminated string, and `attr` a `struct mount_attr` of the size
    // passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    let attached = check(r).and_then(|_| attach_tree(tree, path));
    close(tree);
    attached
}

/// `move_mount(2)`: attaches the detached tree `tree` at `target`.
pub(crate) fn attach_tree(tree: RawFd, target: &CStr) -> Result<(), Errno> {
    move_mount(tree, libc::AT_FDCWD, target)
}

/// `move_mount(2)`: attaches the detached tree `tree` at `name` in
/// directory `dir`.
fn move_mount(tree: RawFd, dir: RawFd, name: &CStr) -> Result<(), Errno> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_ulong = 4;
    // SAFETY: `tree` and `dir` are descriptors of the caller's (or
    // AT_FDCWD); the empty path and `name` are valid NUL-terminated
    // strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            dir,
            name.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check(r).map(drop)
}

/// Writes `bytes` to the existing file `path` (a `/proc` control file) in
/// one `write`.
pub(crate) fn write_file(path: &CStr, bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: a valid NUL-terminated path; the descriptor is closed below.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) }.into())?
        as RawFd;
    // SAFETY: the pointer and length describe `bytes`.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let written = check(n as libc::c_long);
    close(fd);
    match written {
        Ok(n) if n as usize == bytes.len() => Ok(()),
        Ok(_) => Err(libc::EIO),
        Err(e) => Err(e),
    }
}

/// `chdir(2)`.
pub(crate) fn chdir(path: &CStr) -> Result<(), Errno> {
    // SAFETY: a valid NUL-terminated path.
    check(unsafe { libc::chdir(path.as_ptr()) }.into()).map(drop)
}

/// `mkdir(2)`.
pub(crate) fn mkdir(path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
    // SAFETY: a valid NUL-terminated path.
    check(unsafe { libc::mkdir(path.as_ptr(), mode) }.into()).map(drop)
}

/// Opens directory `path` as an `O_PATH` descriptor (the last component
/// must not be a symlink). The caller closes it with [`close`].
pub(crate) fn open_dir(path: &CStr) -> Result<RawFd, Errno> {
    // SAFETY: a valid NUL-terminated path; the descriptor is returned.
    check(
        unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        }
        .into(),
    )
    .map(|fd| fd as RawFd)
}

/// Creates `name` (which must not exist) with `mode` *beneath* directory
/// `dir` and writes `bytes`: `openat2` with `RESOLVE_BENEATH` and no
/// symlinks, so whatever `name` says (`..`, an absolute path, a link), the
/// file can only be created inside `dir`.
pub(crate) fn create_file_beneath(
    dir: RawFd,
    name: &CStr,
    bytes: &[u8],
    mode: libc::mode_t,
) -> Result<(), Errno> {
    // `struct open_how` of <linux/openat2.h> (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
            as u64,
        mode: u64::from(mode),
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `name` is NUL-terminated and `how` is a valid open_how whose
    // size is passed; the returned descriptor is closed below.
    let opened = check(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            name.as_ptr(),
            &raw const how,
            std::mem::size_of::<OpenHow>(),
        )
    });
    let fd = match opened {
        Ok(fd) => fd as RawFd,
        // A kernel or container filter without openat2: `openat` relative
        // to `dir`, not following a link. (The launcher also checked that
        // `name` is a plain identifier, so it cannot leave `dir`.)
        // SAFETY: as above, with a plain flags word.
        Err(libc::ENOSYS | libc::EPERM) => check(
            unsafe { libc::openat(dir, name.as_ptr(), how.flags as libc::c_int, mode) }.into(),
        )? as RawFd,
        Err(e) => return Err(e),
    };
    let mut done = 0;
    let result = loop {
        if done == bytes.len() {
            break Ok(());
        }
        // SAFETY: the pointer and length are within `bytes`.
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        match check(n as libc::c_long) {
            Ok(n) => done += n as usize,
            Err(libc::EINTR) => {}
            Err(e) => break Err(e),
        }
    };
    close(fd);
    result
}

/// `fchown(2)`.
pub(crate) fn fchown(fd: RawFd, uid: libc::uid_t, gid: libc::gid_t) -> Result<(), Errno> {
    // SAFETY: fchown on a descriptor number; an invalid one gives EBADF.
    check(unsafe { libc::fchown(fd, uid, gid) }.into()).map(drop)
}

/// A new, detached tmpfs (`fsopen`, `fsmount`; `nosuid`, `nodev`):
/// `(context, mount)` descriptors, both close-on-exec. The context makes
/// it read-only later ([`read_only`]); files are made in the mount.
pub(crate) fn new_tmpfs() -> Result<(RawFd, RawFd), Errno> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
    // SAFETY: a valid NUL-terminated file system name; a descriptor back.
    let fs = check(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?
        as RawFd;
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: `fs` is the context just opened; the command takes no key
    // or value (NULL pointers, as fsconfig(2) requires).
    let created =
        check(unsafe { libc::syscall(libc::SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, null, null, 0) });
    let mounted = created.and_then(|_| {
        // SAFETY: `fs` holds a created superblock; a descriptor back.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fs,
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )
        })
    });
    match mounted {
        Ok(mnt) => Ok((fs, mnt as RawFd)),
        Err(e) => {
            close(fs);
            Err(e)
        }
    }
}

/// Makes the superblock of tmpfs context `fs` read-only: no file on it
/// can be opened for writing again, by anyone.
pub(crate) fn read_only(fs: RawFd) -> Result<(), Errno> {
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_CMD_RECONFIGURE: libc::c_uint = 7;
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: `fs` is a tmpfs context; "ro" is a NUL-terminated flag name.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_SET_FLAG,
            c"ro".as_ptr(),
            null,
            0,
        )
    })?;
    // SAFETY: as above; the command takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_RECONFIGURE,
            null,
            null,
            0,
        )
    })
    .map(drop)
}

/// Creates `name` in directory `dir` (it must not exist, and is not
/// followed if a link), copies all of `src` into it with `sendfile` (from
/// offset 0, leaving `src`'s own offset alone), then gives it `uid`:`gid`
/// and `mode`, in that order (the owner change would clear set-id bits).
pub(crate) fn copy_into(
    dir: RawFd,
    name: &CStr,
    src: RawFd,
    uid: libc::uid_t,
    gid: libc::gid_t,
    mode: libc::mode_t,
) -> Result<(), Errno> {
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: a valid NUL-terminated name; the descriptor is closed below.
    let fd = check(unsafe { libc::openat(dir, name.as_ptr(), flags, 0o600) }.into())? as RawFd;
    let mut offset: libc::off_t = 0;
    let copied = loop {
        // SAFETY: both are descriptors of ours; `offset` is a valid
        // off_t the kernel advances (the source's own offset is unused).
        let n = unsafe { libc::sendfile(fd, src, &raw mut offset, 1 << 30) };
        match check(n as libc::c_long) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(libc::EINTR) => {}
            Err(e) => break Err(e),
        }
    };
    let done = copied.and_then(|()| fchown(fd, uid, gid)).and_then(|()| {
        // SAFETY: fchmod on the descriptor opened above.
        check(unsafe { libc::fchmod(fd, mode) }.into()).map(drop)
    });
    close(fd);
    done
}

/// `open_tree(2)` with `OPEN_TREE_CLONE`: a detached mount of the single
/// file `name` in the mount `dir`, to attach elsewhere ([`attach_tree`]).
pub(crate) fn clone_file(dir: RawFd, name: &CStr) -> Result<RawFd, Errno> {
    open_tree(dir, name, false)
}

/// Makes an empty file at `file` to mount on, first creating each of
/// `dirs` (the directories leading to it, outermost first) that is
/// missing: for a program whose directory a private `/tmp` covers.
pub(crate) fn make_mountpoint(dirs: &[std::ffi::CString], file: &CStr) -> Result<(), Errno> {
    for dir in dirs {
        match mkdir(dir, 0o755) {
            Ok(()) | Err(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: a valid NUL-terminated path; the descriptor is closed below.
    let fd = check(unsafe { libc::open(file.as_ptr(), flags, 0o000) }.into())? as RawFd;
    close(fd);
    Ok(())
}

/// Gives the directory `path` a private, writable tmpfs of its own with
/// every entry the directory had, each bind-mounted back (a directory with
/// the mounts beneath it) or, for a link, made again: what was there stays
/// there, and new entries can be made beside them (`/run/envseal`).
pub(crate) fn cover_keeping_entries(path: &CStr) -> Result<(), Errno> {
    let old = clone_tree(path)?;
    let covered = mount(
        Some(c"tmpfs"),
        path,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(c"mode=0755"),
    )
    .and_then(|()| open_dir_rw(path))
    .and_then(|new| {
        let copied = copy_entries(old, new);
        close(new);
        copied
    });
    close(old);
    covered
}

/// `open(path, O_RDONLY | O_DIRECTORY)`, not following a final link.
fn open_dir_rw(path: &CStr) -> Result<RawFd, Errno> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a valid NUL-terminated path; the descriptor is returned.
    check(unsafe { libc::open(path.as_ptr(), flags) }.into()).map(|fd| fd as RawFd)
}

/// Makes each entry of the detached tree `from` again in directory `to`
/// (see [`cover_keeping_entries`]), reading it with `getdents64` into a
/// buffer on the stack.
fn copy_entries(from: RawFd, to: RawFd) -> Result<(), Errno> {
    // SAFETY: "." is NUL-terminated; the descriptor is closed below.
    let dir = check(
        unsafe {
            libc::openat(
                from,
                c".".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        }
        .into(),
    )? as RawFd;
    let mut buf = [0u8; 4096];
    let result = loop {
        // SAFETY: `buf` is writable for its length; the kernel fills it
        // with whole `linux_dirent64` records and returns their length.
        let n = match check(unsafe {
            libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len())
        }) {
            Ok(0) => break Ok(()),
            Ok(n) => n as usize,
            Err(e) => break Err(e),
        };
        let mut at = 0;
        let mut failed = None;
        while at + 19 < n {
            // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            let kind = buf[at + 18];
            // SAFETY: the name starts at offset 19 of a record the kernel
            // wrote and is NUL-terminated within it.
            let name = unsafe { CStr::from_ptr(buf.as_ptr().add(at + 19).cast()) };
            at += reclen.max(1);
            if name == c"." || name == c".." {
                continue;
            }
            if let Err(e) = copy_entry(from, to, name, kind) {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
    };
    close(dir);
    result
}

/// One entry of [`copy_entries`]: a link made again, anything else
/// bind-mounted (directories with their submounts) onto a new directory or
/// empty file of the same name.
fn copy_entry(from: RawFd, to: RawFd, name: &CStr, kind: u8) -> Result<(), Errno> {
    let kind = if kind == libc::DT_UNKNOWN {
        // SAFETY: an all-zero stat is valid; fstatat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `name` is NUL-terminated and `st` writable.
        let r =
            unsafe { libc::fstatat(from, name.as_ptr(), &raw mut st, libc::AT_SYMLINK_NOFOLLOW) };
        check(r.into())?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => libc::DT_LNK,
            libc::S_IFDIR => libc::DT_DIR,
            _ => libc::DT_REG,
        }
    } else {
        kind
    };
    if kind == libc::DT_LNK {
        let mut target = [0u8; 4096];
        // SAFETY: `target` is writable for all but its last byte, which
        // stays 0 and ends the string.
        let read = unsafe {
            libc::readlinkat(
                from,
                name.as_ptr(),
                target.as_mut_ptr().cast(),
                target.len() - 1,
            )
        };
        check(read as libc::c_long)?;
        // SAFETY: both strings are NUL-terminated.
        return check(unsafe { libc::symlinkat(target.as_ptr().cast(), to, name.as_ptr()) }.into())
            .map(drop);
    }
    if kind == libc::DT_DIR {
        // SAFETY: a NUL-terminated name.
        check(unsafe { libc::mkdirat(to, name.as_ptr(), 0o755) }.into())?;
    } else {
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC;
        // SAFETY: a NUL-terminated name; the descriptor is closed at once.
        let fd = check(unsafe { libc::openat(to, name.as_ptr(), flags, 0o000) }.into())? as RawFd;
        close(fd);
    }
    let tree = open_tree(from, name, true)?;
    let r = move_mount(tree, to, name);
    close(tree);
    r
}
