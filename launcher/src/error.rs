//! The launcher's error type: paths and digests, never a value.

/// What can go wrong launching a pinned program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pinned path no longer exists.
    #[error("{path} no longer exists")]
    NotFound { path: String },

    /// A component of the pinned path is now a symlink.
    #[error("{path} was swapped: a symlink now stands in its path")]
    Swapped { path: String },

    /// The pinned path is now something other than a regular file.
    #[error("{path} is no longer a regular file")]
    NotRegular { path: String },

    /// The bytes differ from the pinned hash.
    #[error("{path} changed since it was pinned: expected sha256 {expected}, found {found}")]
    Changed {
        path: String,
        expected: String,
        found: String,
    },

    /// `execveat` failed in the child.
    #[error("cannot execute {path}: {source}")]
    Exec {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The kernel or the machine refused part of the sandbox the tier
    /// requires; nothing ran.
    /// Lockdown would make writable what must stay read-only (`HOME`, the
    /// vault, a `PATH` directory, a path the caller's shield protects).
    #[error("{why}")]
    Unwritable { why: String, fix: &'static str },

    #[error("cannot build the sandbox: {step}: {source}")]
    Sandbox {
        step: &'static str,
        #[source]
        source: std::io::Error,
        /// What the user can do about it ("" if nothing obvious).
        fix: &'static str,
    },

    /// A system call failed.
    #[error("{action}: {source}")]
    Sys {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn sys(action: &'static str) -> impl FnOnce(nix::errno::Errno) -> Error {
        move |e| Error::Sys {
            action,
            source: e.into(),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<nix::errno::Errno> for Error {
    fn from(e: nix::errno::Errno) -> Self {
        Error::Sys {
            action: "a system call",
            source: e.into(),
        }
    }
}
