//! envseal's policy: which program may receive which secrets.
//!
//! A [`Grant`] binds a program — its canonical path and the SHA-256 of its
//! bytes, and for a `#!` script the interpreter's canonical path and hash
//! too — to a list of secrets, each delivered as an environment variable
//! or a file, plus a tier and an optional constraint on the arguments.
//!
//! What this crate upholds (see `docs/threat-model.md`):
//!
//! - **G3** (the decision half) — a program is identified by what
//!   [`resolve`] finds exactly as `exec` will, and by its bytes; granting a
//!   general-purpose interpreter or shell without an argument constraint is
//!   refused unless forced, because `python -c 'print(os.environ)'` is
//!   disclosure.
//! - **G4** (the format half) — a grant has exactly one encoding
//!   ([`Grant::encode`]); the vault authenticates those bytes.
//!
//! No I/O beyond reading the file being pinned; no SQLite, no syscalls.
#![forbid(unsafe_code)]

mod decide;
mod error;
mod grant;
mod interpreters;
pub mod pattern;
mod program;
mod resolve;
mod text;

pub use decide::{check_args, describe_args, select};
pub use error::{Error, Result};
pub use grant::{ArgRule, Delivery, Environ, Grant, Pin, Script, Tier};
pub use interpreters::is_interpreter;
pub use program::{Inspected, SHEBANG_MAX, Shebang, inspect, parse_shebang, sha256_file};
pub use resolve::{Resolved, resolve, venv_python};
pub use text::{escape, escape_lines, has_deceptive, is_deceptive};

/// SHA-256 digest of a program's bytes.
pub type Digest = [u8; 32];

/// Lower-case hex of a digest.
pub fn hex(digest: &Digest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
