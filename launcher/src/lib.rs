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
//! - **Tiers** — Hardened and Lockdown add namespaces, a PID 1, seccomp
//!   and (Lockdown) Landlock and private mounts (`sandbox`); a grant's tier
//!   is a minimum: what the kernel refuses fails the launch
//!   ([`Error::Sandbox`]), it never runs weaker. In the namespaced tiers G7
//!   rests on an unmapped group or owner for the sealed copy (`idmap`).
//!
//! The caller must be single-threaded when it calls [`run`] (checked):
//! children are created with `fork`/`clone`, and run only system calls
//! before `exec`.

#![deny(unsafe_code)]

pub mod doctor;
mod environment;
mod error;
mod idmap;
mod launch;
pub mod mask;
mod program;
mod sandbox;
pub mod shield;
// The only module allowed `unsafe`: one file per family of system calls,
// each a small wrapper with its reason.
#[allow(unsafe_code)]
mod sys;
pub use sys::{fdpass, files::inherited, fork, secretmem, terminal};

pub use environment::{build as build_env, is_dangerous, is_steering, isolation, names_a_path};
pub use error::{Error, Result};
pub use idmap::{G7, Ids, USERNS_FIX};
pub use launch::{
    Control, Delivery, Exit, Launch, Masking, Relay, Script, SecretItem, Tier, Writable, run,
    run_relaying,
};
pub use program::{Cache, Role, Verified, load};
pub use sandbox::{LANDLOCK_ABI, PRIVATE_HOME, SECRET_DIR};
