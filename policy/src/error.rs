//! The policy error type: names and paths only.

use std::path::PathBuf;

/// What can go wrong deciding or pinning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bare name not found in `PATH`, or a path that does not exist.
    #[error("program not found: {0}")]
    NotFound(String),

    /// The path exists but is not an executable regular file.
    #[error("{0} is not an executable file")]
    NotExecutable(PathBuf),

    /// A path with characters that could make a screen show something
    /// else (escape sequences, bidi overrides): never pinned or run. The
    /// path is given escaped (`escape`), line breaks included.
    #[error(
        "{0} contains control or invisible characters that could make a screen show another \
         path; envseal does not pin or run such a path"
    )]
    Deceptive(String),

    /// envseal stores paths as UTF-8 text.
    #[error("{0} is not valid UTF-8; envseal pins only UTF-8 paths")]
    NonUtf8Path(PathBuf),

    /// A `#!` line envseal cannot pin faithfully.
    #[error("{path}: unsupported #! line: {reason}")]
    Shebang { path: PathBuf, reason: String },

    /// A general-purpose interpreter granted without an argv constraint.
    #[error(
        "{0} is an interpreter or shell: granting it without --args-exact or --args-prefix \
         would let anyone run arbitrary code with the secrets (e.g. print its environment)"
    )]
    Interpreter(String),

    /// A grant or delivery that makes no sense.
    #[error("invalid grant: {0}")]
    Invalid(String),

    /// The arguments break the grant's constraint.
    #[error("the arguments do not match the grant for {program}: {expected}")]
    ArgsRejected { program: String, expected: String },

    /// `--secret` named a secret the grant does not give.
    #[error("the grant for {program} does not give {secret}")]
    NotInGrant { program: String, secret: String },

    /// A stored grant that does not decode.
    #[error("a stored grant is malformed")]
    Malformed,

    /// Reading the program failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
