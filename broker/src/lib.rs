//! envseal's exec path: how a request becomes a running program with its
//! secrets, in-process (`envseal exec` with the passphrase) or through the
//! broker — a per-user background process, started by a person with
//! `envseal unlock`, that holds the unlocked vault and launches pinned
//! programs as its own children for `envseal exec` clients.
//!
//! The stages, in the order one exec passes them:
//!
//! - [`client`]: the caller's connection — the broker authenticated, the
//!   request and the caller's stdio and working directory sent.
//! - [`server`]: the daemon (one thread, a `poll` loop) that receives it.
//! - [`prepare`]: the request checked against its grant, the program's
//!   bytes verified, the values decrypted into a launch (both paths).
//! - the recorder (a process of the daemon's): the exec's audit record
//!   committed to the disk before anything runs.
//! - the session: the process forked for each exec, which waits for the
//!   record, launches the program (`envseal_launcher`) and relays its
//!   exit status.
//!
//! Beside them: [`start`] (lock, bind, detach, serve), [`location`] (where
//! a vault's broker listens), [`refusal`] (errors as codes and messages),
//! [`audit`] (the records written), [`kdf`] (the key-derivation cost check
//! before every unlock), [`terminal`] (asking the person).

#![forbid(unsafe_code)]

pub use envseal_proto as protocol;
pub use envseal_proto::{frame, read_frame};

pub mod audit;
pub mod client;
pub mod kdf;
pub mod local;
pub mod location;
pub mod paths;
pub mod prepare;
mod procfs;
pub mod protect;
mod recorder;
pub mod refusal;
pub mod server;
mod session;
pub mod start;
pub mod terminal;

pub use client::{Client, done, environment, exit_status, refused, status};
pub use location::{Location, location};
pub use procfs::code_size;
pub use refusal::{Code, Refusal};
