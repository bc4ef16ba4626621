//! Loading a pinned file: open once, copy into a memfd, seal, hash the
//! sealed copy, compare with the pin.

use std::fs::File;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};

use nix::errno::Errno;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::sys::files;

/// What a loaded file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Executed with `execveat`: mode 0111 (so the process is
    /// non-dumpable), closed at exec.
    Executable,
    /// A `#!` script the interpreter reads as `/dev/fd/N`: mode 0400,
    /// placed at a slot of the program's (`sys::spawn::FIRST_FD`).
    Script,
}

/// A sealed, verified copy of a pinned file.
#[derive(Debug)]
pub struct Verified {
    fd: OwnedFd,
    path: String,
    sha256: [u8; 32],
    role: Role,
    loader: Option<String>,
    /// The pinned file itself, open, when no one but root can change it
    /// and it did not change while it was copied (see
    /// [`Verified::system_file`]).
    own: Option<OwnedFd>,
}

impl Verified {
    /// The pinned path the bytes came from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// SHA-256 of the sealed copy (equal to the pin).
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// What the copy is for.
    pub fn role(&self) -> Role {
        self.role
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The dynamic loader an ELF program names (`PT_INTERP`), if any.
    pub fn loader(&self) -> Option<&str> {
        self.loader.as_deref()
    }

    /// The first bytes of the copy (at most `len`): what a `#!` line is
    /// read from. The copy is sealed, so these are the verified bytes.
    pub fn head(&self, len: usize) -> std::io::Result<Vec<u8>> {
        files::with_sealed_contents(&self.fd, |bytes| bytes[..len.min(bytes.len())].to_vec())
            .map_err(Into::into)
    }

    /// The pinned file itself (a new descriptor of the one opened to
    /// verify it), when no one but root can change it: owned by root,
    /// writable by no group or other, not on a FUSE file system (whose
    /// daemon, perhaps the user's, says what the bytes are), and with the
    /// same inode, size and times before and after it was copied (the
    /// broker's cache reuses a copy only while the path still leads to that
    /// very version). Executing this descriptor runs the verified bytes
    /// under the file's own name, with no copy. `None` otherwise.
    pub(crate) fn system_file(&self) -> Option<OwnedFd> {
        self.own.as_ref()?.try_clone().ok()
    }

    /// Whether the copy carries every seal (write, shrink, grow, seal).
    pub fn is_sealed(&self) -> bool {
        files::seals(&self.fd).is_ok_and(|s| {
            use nix::fcntl::SealFlag as S;
            s.contains(S::F_SEAL_WRITE | S::F_SEAL_SHRINK | S::F_SEAL_GROW | S::F_SEAL_SEAL)
        })
    }
}

/// Opens `path` once (no symlinks anywhere in it), copies its bytes into a
/// sealed memfd, and checks that the *copy* hashes to `expected`. What
/// runs later is this copy, so a file changed after the check — or while
/// it was being copied — can never run: the hash is of the sealed bytes.
pub fn load(path: &str, expected: &[u8; 32], role: Role) -> Result<Verified> {
    let (src, meta) = open_pinned(path)?;
    copy_and_verify(src, &meta, path, expected, role)
}

/// Whether only root can change the file `file` (with metadata `meta`):
/// see [`Verified::system_file`].
fn is_stable(file: &File, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    meta.uid() == 0
        && meta.mode() & 0o022 == 0
        && nix::sys::statfs::fstatfs(file)
            .is_ok_and(|fs| fs.filesystem_type().0 != FUSE_SUPER_MAGIC)
}

fn copy_and_verify(
    mut src: File,
    meta: &std::fs::Metadata,
    path: &str,
    expected: &[u8; 32],
    role: Role,
) -> Result<Verified> {
    let fd = sealed_copy(path, role, |copy| std::io::copy(&mut src, copy).map(drop))?;
    // Unchanged while it was copied, and changeable by root alone: the
    // file itself may later run in place of the copy.
    let own = (is_stable(&src, meta)
        && src
            .metadata()
            .is_ok_and(|after| FileKey::of(&after) == FileKey::of(meta)))
    .then(|| OwnedFd::from(src));
    let (sha256, loader) = files::with_sealed_contents(&fd, |bytes| {
        (Sha256::digest(bytes).into(), elf_interpreter(bytes))
    })
    .map_err(Error::sys("map the sealed memfd"))?;
    if &sha256 != expected {
        return Err(Error::Changed {
            path: path.into(),
            expected: hex(expected),
            found: hex(&sha256),
        });
    }
    Ok(Verified {
        fd,
        path: path.into(),
        sha256,
        role,
        loader,
        own,
    })
}

/// A new memfd for the program at `path`, filled by `fill`, sealed, with
/// its offset back at the start: an interpreter that reads the inherited
/// descriptor rather than reopening `/dev/fd/N` (Perl does) must see the
/// whole script, not end-of-file.
fn sealed_copy(
    path: &str,
    role: Role,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<OwnedFd> {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| format!("envseal:{}", n.to_string_lossy()))
        .unwrap_or_else(|| "envseal".into());
    let fd = files::memfd(&name).map_err(Error::sys("create a memfd for the program"))?;
    let mut copy = File::from(fd);
    fill(&mut copy).map_err(|source| Error::Sys {
        action: "copy the program into a memfd",
        source,
    })?;
    let fd = OwnedFd::from(copy);
    let mode = match role {
        Role::Executable => 0o111,
        Role::Script => 0o400,
    };
    files::seal(&fd, mode).map_err(Error::sys("seal the program's memfd"))?;
    files::rewind(&fd).map_err(Error::sys("rewind the program's memfd"))?;
    Ok(fd)
}

impl Verified {
    /// Another handle on the same verified bytes. An executable shares the
    /// sealed copy (it is exec'd, never read). A script gets its own copy,
    /// so its own file offset: a duplicated descriptor would share one
    /// offset between every program reading it, and an interpreter reading
    /// the inherited descriptor would find another one's end-of-file.
    pub fn try_clone(&self) -> Result<Verified> {
        let fd = match self.role {
            Role::Executable => self.fd.try_clone().map_err(|source| Error::Sys {
                action: "duplicate a sealed copy",
                source,
            })?,
            Role::Script => {
                use std::io::Write as _;
                let bytes = files::with_sealed_contents(&self.fd, <[u8]>::to_vec)
                    .map_err(Error::sys("map the sealed memfd"))?;
                sealed_copy(&self.path, self.role, |copy| copy.write_all(&bytes))?
            }
        };
        Ok(Verified {
            fd,
            path: self.path.clone(),
            sha256: self.sha256,
            role: self.role,
            loader: self.loader.clone(),
            own: self
                .own
                .as_ref()
                .map(OwnedFd::try_clone)
                .transpose()
                .map_err(|source| Error::Sys {
                    action: "duplicate a pinned file's descriptor",
                    source,
                })?,
        })
    }
}

/// What identifies one version of a file without reading it: any write,
/// truncation, `chmod`, rename over it or replacement changes the inode
/// or the change time (which no unprivileged call can set back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileKey {
    fn of(m: &std::fs::Metadata) -> FileKey {
        use std::os::unix::fs::MetadataExt as _;
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size() as i64,
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The broker's cache of sealed, verified copies: one per pinned file,
/// reused while the file at the pinned path is the same inode with the
/// same size, modification and change times. The path is still opened
/// (without symlinks) on every use; only the copy and the hash are saved
/// (and, for a file only root can change, a descriptor of it).
#[derive(Debug, Default)]
pub struct Cache {
    entries: std::collections::HashMap<(String, [u8; 32], Role), (FileKey, Verified)>,
}

impl Cache {
    /// At most this many copies are kept; a cache that is full is emptied.
    const MAX: usize = 64;

    pub fn new() -> Cache {
        Cache::default()
    }

    /// Like [`load`], from the cache when the file has not changed.
    pub fn load(&mut self, path: &str, expected: &[u8; 32], role: Role) -> Result<Verified> {
        // The stat that checks for a regular file is the cache key too.
        let (src, meta) = open_pinned(path)?;
        let key = FileKey::of(&meta);
        let id = (path.to_owned(), *expected, role);
        if let Some((k, v)) = self.entries.get(&id)
            && *k == key
        {
            return v.try_clone();
        }
        self.entries.remove(&id);
        let verified = copy_and_verify(src, &meta, path, expected, role)?;
        if self.entries.len() >= Self::MAX {
            self.entries.clear();
        }
        self.entries.insert(id, (key, verified.try_clone()?));
        Ok(verified)
    }

    /// How many copies are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Opens a pinned path once: no symlink anywhere in it, a regular file.
/// Returns the file and its metadata (the cache keys on it).
fn open_pinned(path: &str) -> Result<(File, std::fs::Metadata)> {
    let fd = files::open_no_symlinks(path).map_err(|e| match e {
        Errno::ELOOP => Error::Swapped { path: path.into() },
        Errno::ENOENT | Errno::ENOTDIR => Error::NotFound { path: path.into() },
        e => Error::Sys {
            action: "open the pinned program",
            source: e.into(),
        },
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|source| Error::Sys {
        action: "stat the pinned program",
        source,
    })?;
    if !meta.is_file() {
        return Err(Error::NotRegular { path: path.into() });
    }
    Ok((file, meta))
}

/// Opens a pinned file that will be executed by path (`--may-exec`),
/// which must be one only root can change: the descriptor is hashed and
/// compared with the pin, and returned, so that Lockdown's rule names the
/// very inode that was checked (a file renamed over it afterwards is
/// another inode).
pub(crate) fn open_pinned_file(path: &str, expected: &[u8; 32]) -> Result<OwnedFd> {
    let (file, meta) = open_pinned(path)?;
    // Checked before the launch, run later by path: only a file no one
    // but root can change stays what was checked.
    if !is_stable(&file, &meta) {
        return Err(Error::Sandbox {
            step: "pin a program the pinned program may execute",
            source: std::io::Error::other(format!(
                "{path} can be changed by someone other than root, so checking it before the \
                 launch would not hold until it runs"
            )),
            fix: "install it owned by root and not writable by group or others, or leave it out",
        });
    }
    let key = FileKey::of(&meta);
    let id = (path.to_owned(), *expected);
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked.get(&id) == Some(&key) {
        return Ok(OwnedFd::from(file));
    }
    let mut hasher = Sha256::new();
    std::io::copy(&mut &file, &mut hasher).map_err(|source| Error::Sys {
        action: "read a pinned program",
        source,
    })?;
    let found: [u8; 32] = hasher.finalize().into();
    if &found != expected {
        return Err(Error::Changed {
            path: path.into(),
            expected: hex(expected),
            found: hex(&found),
        });
    }
    if file
        .metadata()
        .is_ok_and(|after| FileKey::of(&after) == key)
    {
        if checked.len() >= Cache::MAX {
            checked.clear();
        }
        checked.insert(id, key);
    }
    Ok(OwnedFd::from(file))
}

/// Files [`open_pinned_file`] found to hash to their pin, by path and pin,
/// with the version (inode, size, times) that did: only root can change
/// them, and any change makes another version, so a launch finding the
/// same version again need not read it again (a broker runs Lockdown's git
/// many times, with its 3.7 MB copy in `--may-exec`).
static CHECKED: std::sync::Mutex<std::collections::BTreeMap<(String, [u8; 32]), FileKey>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The `PT_INTERP` path of a 64-bit little-endian ELF file (the dynamic
/// loader the kernel opens to run it); `None` for anything else. Every
/// offset is bounds-checked: the bytes are the program's, not trusted.
fn elf_interpreter(b: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    if b.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    (0..phnum).find_map(|i| {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(ph)? != PT_INTERP {
            return None;
        }
        let off = usize::try_from(u64_at(ph + 8)?).ok()?;
        let len = usize::try_from(u64_at(ph + 32)?).ok()?;
        let raw = b.get(off..off.checked_add(len)?)?;
        let raw = raw.split(|&c| c == 0).next()?;
        String::from_utf8(raw.to_vec()).ok()
    })
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileExt as _, PermissionsExt as _};

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[test]
    fn loads_verifies_and_seals() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("prog");
        std::fs::write(&p, b"#!/bin/sh\necho hi\n").unwrap();
        let path = std::fs::canonicalize(&p).unwrap();
        let path = path.to_str().unwrap();
        let v = load(path, &sha(b"#!/bin/sh\necho hi\n"), Role::Executable).unwrap();
        assert!(v.is_sealed());
        let mode = File::from(v.fd.try_clone().unwrap())
            .metadata()
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o111);
        // The copy cannot be written, even through a descriptor we hold.
        let w = File::from(v.fd.try_clone().unwrap()).write_at(b"X", 0);
        assert!(w.is_err(), "a sealed memfd accepted a write");
    }

    #[test]
    fn finds_the_loader_of_a_dynamic_elf() {
        let sh = std::fs::read("/bin/sh").unwrap();
        let loader = elf_interpreter(&sh).expect("/bin/sh is a dynamic ELF");
        assert!(
            loader.starts_with('/') && loader.contains("ld-"),
            "{loader}"
        );
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
        assert_eq!(elf_interpreter(&sh[..64]), None);
    }

    #[test]
    fn the_cache_reuses_a_copy_until_the_file_changes() {
        let t = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(t.path()).unwrap();
        let p = dir.join("prog");
        std::fs::write(&p, b"one").unwrap();
        let path = p.to_str().unwrap();
        let mut cache = Cache::new();
        let a = cache.load(path, &sha(b"one"), Role::Executable).unwrap();
        let b = cache.load(path, &sha(b"one"), Role::Executable).unwrap();
        let ino = |v: &Verified| {
            use std::os::unix::fs::MetadataExt as _;
            File::from(v.fd.try_clone().unwrap())
                .metadata()
                .unwrap()
                .ino()
        };
        assert_eq!(ino(&a), ino(&b), "the second load made a new copy");
        // Same size, rewritten in place: the change time moves, the copy
        // is not reused, and the new bytes fail the pin.
        std::fs::write(&p, b"two").unwrap();
        assert!(matches!(
            cache.load(path, &sha(b"one"), Role::Executable),
            Err(Error::Changed { .. })
        ));
        std::fs::write(&p, b"one").unwrap();
        let c = cache.load(path, &sha(b"one"), Role::Executable).unwrap();
        assert_ne!(ino(&a), ino(&c));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn changed_swapped_and_missing_are_distinct() {
        let t = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(t.path()).unwrap();
        let p = dir.join("prog");
        std::fs::write(&p, b"one").unwrap();
        let p_str = p.to_str().unwrap();
        assert!(matches!(
            load(p_str, &sha(b"two"), Role::Executable),
            Err(Error::Changed { .. })
        ));
        let other = dir.join("other");
        std::fs::write(&other, b"two").unwrap();
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&other, &p).unwrap();
        assert!(matches!(
            load(p_str, &sha(b"two"), Role::Executable),
            Err(Error::Swapped { .. })
        ));
        assert!(matches!(
            load(
                dir.join("gone").to_str().unwrap(),
                &sha(b""),
                Role::Executable
            ),
            Err(Error::NotFound { .. })
        ));
    }

    /// A `--may-exec` file is hashed once per version: found again
    /// unchanged it is not read again, but rewritten in place (the same
    /// inode, new bytes) it is hashed again and refused; and one someone
    /// other than root can change is refused outright.
    #[test]
    fn a_checked_file_is_hashed_again_once_it_changes() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root, to own a file only root can change (CI runs as root)"
        );
        let t = tempfile::tempdir().unwrap();
        let p = std::fs::canonicalize(t.path()).unwrap().join("helper");
        std::fs::write(&p, b"one").unwrap();
        let path = p.to_str().unwrap();
        assert!(open_pinned_file(path, &sha(b"one")).is_ok());
        assert!(open_pinned_file(path, &sha(b"one")).is_ok());
        std::fs::write(&p, b"rewritten").unwrap();
        assert!(matches!(
            open_pinned_file(path, &sha(b"one")),
            Err(Error::Changed { .. })
        ));
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        assert!(matches!(
            open_pinned_file(path, &sha(b"rewritten")),
            Err(Error::Sandbox { .. })
        ));
    }
}
