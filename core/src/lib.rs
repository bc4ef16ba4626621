//! envseal's shared vocabulary, used by every other crate (on the model of
//! rage's `age-core`): what a secret is called, how the small binary
//! records are read, how strongly a program is confined, how a secret is
//! delivered and its output masked, and how a shielded process is marked.
//! No I/O, no crypto, no SQLite: the policy crate links only this.

#![forbid(unsafe_code)]

pub mod codec;
mod delivery;
mod name;
mod tier;

pub use delivery::{Delivery, Masking};
pub use name::{MAX_NAME_LEN, NameError, SecretName};
pub use tier::Tier;

/// The environment variable `envseal shield` sets in the agent's process
/// (to the shield's pid): commands inside store values through the broker.
/// A hint only — the broker decides who is shielded from `/proc`.
pub const SHIELD_MARK: &str = "ENVSEAL_SHIELD";
