//! Where envseal keeps its files.
//!
//! The vault directory is `$ENVSEAL_HOME` if set, else
//! `$XDG_DATA_HOME/envseal`, else `~/.local/share/envseal`. The vault crate
//! creates it 0700 with its database 0600.

use std::env;
use std::path::PathBuf;

use crate::refusal::{Code, Refusal};

/// The vault directory for this invocation.
pub fn vault_dir() -> Result<PathBuf, Refusal> {
    if let Some(home) = env::var_os("ENVSEAL_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    if let Some(data) = env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(data.join("envseal"));
    }
    match env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        Some(home) => Ok(home.join(".local/share/envseal")),
        None => Err(Refusal::new(
            Code::Usage,
            "cannot find the vault directory: HOME is not set",
        )
        .hint("set ENVSEAL_HOME to the directory that should hold the vault")),
    }
}
