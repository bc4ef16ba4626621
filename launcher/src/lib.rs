//! envseal's launcher: the only crate with `unsafe` code.
//!
//! It receives a pinned program's expected hash and the secrets as opaque
//! [`secrecy`] buffers; it never opens the vault. What it upholds (see
//! `docs/threat-model.md`):
//!
//! - **G3** — the program is opened once, without following symlinks
//!   ([`load`]), copied into a memfd that is sealed against every change,
//!   and *that copy* is hashed and compared with the pin; the copy is what
//!   runs (`execveat(memfd, "", …, AT_EMPTY_PATH)`), so no later change to
//!   the file can alter what runs. Loader-hijack variables are removed from
//!   the environment ([`environment`]).
//! - **G7** — the memfd is mode 0111 (execute-only), so the kernel makes
//!   the program non-dumpable from its first instruction: a same-user
//!   process cannot read its `environ` or memory or ptrace it. Secret
//!   buffers are wiped in this process as soon as the child has them.
//!
//! Tier None only; namespaces, Landlock and seccomp come with the tiers.

pub mod doctor;
mod environment;
mod error;
mod idmap;
mod launch;
mod program;
mod sandbox;
mod sys;

pub use environment::{is_dangerous, rebuild};
pub use error::{Error, Result};
pub use idmap::{Ids, USERNS_FIX};
pub use launch::{Delivery, Exit, Launch, SecretItem, Tier, run};
pub use program::{Role, Verified, load};
pub use sandbox::{LANDLOCK_ABI, PRIVATE_HOME, SECRET_DIR};
