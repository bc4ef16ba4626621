//! envseal's end-to-end tests: one binary (the ripgrep layout), a module
//! per area, helpers in `util/`. Each test runs the `envseal` binary as a
//! user would and, through `util::Env`, scans everything it printed for the
//! secret values it used (G1).

mod util;

mod audit;
mod broker;
mod cli;
mod compat;
mod concurrency;
mod deputy;
mod display;
mod egress;
mod exec;
mod hardening;
mod import;
mod mask;
mod mcp;
mod padding;
mod recorded;
mod recovery;
mod sandbox;
mod tamper;
