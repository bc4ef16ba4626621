//! Where the vault lives: one directory (0700) holding `vault.db` (0600).

use std::fs::{self, DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The database file inside the vault directory.
pub const DB_FILE: &str = "vault.db";

/// Path of the database inside `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

/// The database at `db` and the files SQLite keeps beside it (its
/// write-ahead log, shared-memory index and rollback journal).
pub fn db_files(db: &Path) -> [PathBuf; 4] {
    ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    })
}

/// Refuses `path` unless this user owns it and neither group nor others
/// may write it (a directory another user made at a shared `ENVSEAL_HOME`
/// would receive the values set there, and could hand back its own).
pub(crate) fn check_owned(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(path).map_err(|source| Error::Io {
        action: "cannot read",
        path: path.to_owned(),
        source,
    })?;
    // Root (outside the threat model, and able to read any file anyway)
    // may open another user's vault; never one that others may write.
    let me = nix::unistd::geteuid();
    if (meta.uid() != me.as_raw() && !me.is_root()) || meta.mode() & 0o022 != 0 {
        return Err(Error::NotYours {
            path: path.to_owned(),
            owner: meta.uid(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// Creates `dir` (and parents) and makes sure it is 0700.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            action: "cannot create",
            path: dir.to_owned(),
            source,
        })?;
    fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(|source| Error::Io {
        action: "cannot restrict permissions of",
        path: dir.to_owned(),
        source,
    })
}
