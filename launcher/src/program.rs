//! Loading a pinned file: open once, copy into a memfd, seal, hash the
//! sealed copy, compare with the pin.

use std::fs::File;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};

use nix::errno::Errno;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::sys::files;

/// What a loaded file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Executed with `execveat`: mode 0111 (so the process is
    /// non-dumpable), closed at exec.
    Executable,
    /// A `#!` script the interpreter reads as `/dev/fd/N`: mode 0400,
    /// kept open across exec.
    Script,
}

/// A sealed, verified copy of a pinned file.
#[derive(Debug)]
pub struct Verified {
    fd: OwnedFd,
    path: String,
    sha256: [u8; 32],
    role: Role,
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
    let src = files::open_no_symlinks(path).map_err(|e| match e {
        Errno::ELOOP => Error::Swapped { path: path.into() },
        Errno::ENOENT | Errno::ENOTDIR => Error::NotFound { path: path.into() },
        e => Error::Sys {
            action: "open the pinned program",
            source: e.into(),
        },
    })?;
    let mut src = File::from(src);
    let meta = src.metadata().map_err(|source| Error::Sys {
        action: "stat the pinned program",
        source,
    })?;
    if !meta.is_file() {
        return Err(Error::NotRegular { path: path.into() });
    }
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| format!("envseal:{}", n.to_string_lossy()))
        .unwrap_or_else(|| "envseal".into());
    let fd = files::memfd(&name, role == Role::Executable)
        .map_err(Error::sys("create a memfd for the program"))?;
    let mut copy = File::from(fd);
    std::io::copy(&mut src, &mut copy).map_err(|source| Error::Sys {
        action: "copy the program into a memfd",
        source,
    })?;
    let fd = OwnedFd::from(copy);
    let mode = match role {
        Role::Executable => 0o111,
        Role::Script => 0o400,
    };
    files::seal(&fd, mode).map_err(Error::sys("seal the program's memfd"))?;
    let sha256 = hash(&fd)?;
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
    })
}

/// SHA-256 of a sealed memfd's contents, hashed from a read-only mapping
/// (`sha2` uses SHA-NI when the CPU has it).
fn hash(fd: &OwnedFd) -> Result<[u8; 32]> {
    files::with_sealed_contents(fd, |bytes| Sha256::digest(bytes).into())
        .map_err(Error::sys("map the sealed memfd"))
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
}
