//! Where one vault's broker lives, found from the vault alone.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::paths;
use crate::refusal::{Code, Refusal};

/// Where one vault's broker lives: `/run/user/UID/envseal/` (else
/// `<vault>/run/`), with a socket and a log named after the vault
/// directory, so each `ENVSEAL_HOME` has its own broker; its lock is
/// `<vault>/broker.lock`.
#[derive(Debug, Clone)]
pub struct Location {
    pub vault: PathBuf,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
}

/// `sun_path` holds 108 bytes, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// Where the broker of this vault listens. Found from the vault alone
/// (never from the environment, which differs between a person's terminal
/// and an agent's), so that one vault has one broker: the user's runtime
/// directory `/run/user/UID` when it exists and is theirs alone, else the
/// vault directory. The lock that keeps a second broker from starting is
/// in the vault directory.
pub fn location() -> Result<Location, Refusal> {
    let vault = paths::vault_dir()?;
    let vault = std::fs::canonicalize(&vault).unwrap_or(vault);
    let dir = match runtime_dir() {
        Some(run) => run.join("envseal"),
        None => vault.join("run"),
    };
    let digest = Sha256::digest(vault.as_os_str().as_encoded_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let socket = dir.join(format!("broker-{name}.sock"));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(Refusal::new(
            Code::Usage,
            format!(
                "the broker's socket path is too long for a Unix socket: {}",
                socket.display()
            ),
        )
        .hint("set ENVSEAL_HOME to a shorter directory"));
    }
    Ok(Location {
        lock: vault.join("broker.lock"),
        log: dir.join(format!("broker-{name}.log")),
        socket,
        dir,
        vault,
    })
}

/// `/run/user/UID` if it is a directory this user owns that no one else
/// may write to.
fn runtime_dir() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = nix::unistd::geteuid().as_raw();
    let dir = PathBuf::from(format!("/run/user/{uid}"));
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o022 == 0).then_some(dir)
}

impl Location {
    /// Creates the runtime directory (0700) and refuses one that another
    /// user owns or others can enter.
    pub fn prepare(&self) -> Result<(), Refusal> {
        let fail = |msg: String| Refusal::new(Code::Failure, msg);
        if !self.dir.exists() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", self.dir.display())))?;
        }
        let meta = std::fs::symlink_metadata(&self.dir)
            .map_err(|e| fail(format!("cannot inspect {}: {e}", self.dir.display())))?;
        if !meta.is_dir()
            || meta.uid() != nix::unistd::geteuid().as_raw()
            || meta.mode() & 0o077 != 0
        {
            return Err(fail(format!(
                "{} must be a directory of yours with mode 0700",
                self.dir.display()
            ))
            .hint("remove it, or fix its owner and mode (chmod 700)"));
        }
        Ok(())
    }
}
