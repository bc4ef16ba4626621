//! Thin wrappers over the system calls the launcher needs. Everything
//! `unsafe` in envseal lives in this module, each block with its reason.

pub mod fdpass;
pub mod files;
pub mod fork;
pub(crate) mod ns;
pub mod secretmem;
pub(crate) mod signals;
pub(crate) mod spawn;
pub mod terminal;
