//! The command line (clap derive). Values never come from argv.

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
envseal is write-only: there is no get, show, export, cat, read, print or dump
command, and there never will be. A value can be written and used by a pinned
program; it is never printed, copied or exported.

Exit codes: 0 ok; 1 error; 64 usage; 65 vault corrupt; 66 no vault;
67 vault tampered; 77 denied (wrong or missing passphrase).";

/// Verbs that read a value back. None exists; they get a clear refusal.
pub const NO_READ_BACK: &[&str] = &[
    "get", "show", "export", "cat", "read", "print", "dump", "reveal",
];

/// A write-only secret vault for developers and their AI agents.
#[derive(Debug, Parser)]
#[command(name = "envseal", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the vault (asks for a new passphrase)
    #[command(
        after_help = "Example:\n  envseal init\n  envseal init --passphrase-fd 3 3<passphrase.txt"
    )]
    Init(InitArgs),

    /// Store a secret value, read from stdin or a no-echo prompt (never from argv)
    #[command(after_help = "\
A new value is stored *pending*: no passphrase is needed, and no program gets
it until someone approves it with `envseal approve`. Replacing an approved
value needs the passphrase.

Input: from a terminal the value is typed twice without echo, and the trailing
newline is dropped. From a pipe or file the bytes are kept exactly, trailing
newline included (use `printf %s` rather than `echo`).

Examples:
  printf %s \"$TOKEN\" | envseal set API_TOKEN
  envseal set DB_PASSWORD                # prompts, no echo
  envseal set SESSION_KEY --generate     # random, seen by no one")]
    Set(SetArgs),

    /// Endorse pending values so granted programs may receive them (passphrase)
    #[command(after_help = "Example:\n  envseal approve API_TOKEN DB_PASSWORD")]
    Approve(ApproveArgs),

    /// List secret names and states (never values)
    #[command(after_help = "Examples:\n  envseal list\n  envseal list --json")]
    List(ListArgs),

    /// Delete a secret (passphrase)
    #[command(after_help = "Example:\n  envseal rm OLD_TOKEN")]
    Rm(RmArgs),
}

/// Where the passphrase comes from when one is needed.
#[derive(Debug, Args, Clone, Copy)]
pub struct PassphraseArgs {
    /// Read the passphrase from this file descriptor (first line) instead of the terminal
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<i32>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub passphrase: PassphraseArgs,

    /// Argon2id memory cost in MiB (at least 8)
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub kdf_memory: u32,

    /// Argon2id time cost, in passes (at least 1)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub kdf_time: u32,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Secret name: letters, digits and '_', not starting with a digit
    pub key: String,

    /// Overwrite an existing value (an approved one needs the passphrase)
    #[arg(long)]
    pub replace: bool,

    /// Store a random value that no one ever sees
    #[arg(long)]
    pub generate: bool,

    /// Length of the generated value (letters and digits)
    #[arg(long, value_name = "N", requires = "generate", default_value_t = 32)]
    pub length: usize,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Names of pending secrets
    #[arg(required = true, value_name = "KEY")]
    pub keys: Vec<String>,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON: {"secrets":[{"name","state","created_at","updated_at"}]}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Name of the secret to delete
    pub key: String,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}
