//! How a secret reaches the program, and whether its output is masked.

use crate::SecretName;

/// How one secret reaches the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// As this environment variable.
    Env(SecretName),
    /// As a sealed, read-only file whose path is in this environment
    /// variable.
    File(SecretName),
}

impl Delivery {
    /// The environment variable the program reads.
    pub fn variable(&self) -> &SecretName {
        match self {
            Delivery::Env(v) | Delivery::File(v) => v,
        }
    }
}

/// Whether the program's stdout and stderr go through the mask, which
/// replaces any delivered value in them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Masking {
    /// Each stream that is not a terminal (a terminal is handed to the
    /// program as it is: an interactive program needs it).
    Auto,
    /// Both streams, terminals included (`--mask`).
    Always,
    /// Neither (`--no-mask`).
    Never,
    /// Both streams, always (a caller inside a shield): a terminal is
    /// replaced by a pseudo-terminal whose output is masked on its way to
    /// the caller's, so an interactive program still has one.
    Interposed,
}

impl Masking {
    /// From `--mask` (`Some(true)`), `--no-mask` (`Some(false)`) or
    /// neither, as a request carries it.
    pub fn from_flag(flag: Option<bool>) -> Masking {
        match flag {
            Some(true) => Masking::Always,
            Some(false) => Masking::Never,
            None => Masking::Auto,
        }
    }
}
