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
