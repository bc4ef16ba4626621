//! The command line (clap derive). Values never come from argv.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
envseal is write-only: there is no get, show, export, cat, read, print or dump
command, and there never will be. A value can be written and used by a pinned
program; it is never printed, copied or exported.

Exit codes: 0 ok; 1 error; 64 usage; 65 vault corrupt; 66 no vault;
67 vault tampered; 68 not granted; 69 program changed since pinned;
70 pinned path swapped; 71 a granted secret was removed; 72 the kernel
refused the sandbox the grant's tier requires; 75 locked (no broker, and no
passphrase can be asked); 77 denied;
126 cannot execute; 127 program not found. `exec` otherwise exits with the
program's own status (128+N if signal N killed it).";

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
    #[command(after_help = "\
Shows, for each pending value, when it was written and by whom: directly
(outside any shield) or by a caller inside an `envseal shield` (an agent),
and asks before endorsing a value an agent wrote. A value written again
after it was shown is not approved.

Example:
  envseal approve API_TOKEN DB_PASSWORD")]
    Approve(ApproveArgs),

    /// List secret names and states (never values)
    #[command(after_help = "Examples:\n  envseal list\n  envseal list --json")]
    List(ListArgs),

    /// Delete a secret (passphrase)
    #[command(after_help = "Example:\n  envseal rm OLD_TOKEN")]
    Rm(RmArgs),

    /// Put back the vault's own public key after it was replaced (passphrase)
    #[command(after_help = "\
When the public key stored in clear (the one `set` encrypts to) was replaced,
every passphrase command exits 67. `repair` unwraps the identity with the
passphrase, shows the stored and the real public key, asks, and stores the
real one again. It then tries every value, pending and approved, and names
each one that does not open: a value set while the key was replaced was
encrypted to the other key, and only `envseal rm NAME` and `set` again can
replace it. When the key is intact, nothing is changed.

Exits 0 when every value opens and the endorsed state verifies, 67 when
some do not (named), 77 for a wrong passphrase or a declined question.

Examples:
  envseal repair
  envseal repair --yes --passphrase-fd 3 3<passfile")]
    Repair(RepairArgs),

    /// Pin a program (path + SHA-256) and grant it secrets (passphrase)
    #[command(after_help = "\
PROGRAM is found like a shell would (PATH for a bare name), then resolved to
its canonical path; its bytes are hashed and pinned. A `#!` script pins its
interpreter too (`#!/usr/bin/env NAME` is resolved now and pinned).

Running `allow` again for a pinned program re-pins it and adds what is
named; everything else of its grant is kept: tier, --may-exec pins, the
argument rule, --require-shield and how each secret is delivered. A grant
becomes weaker only when you say so (--tier with a lower tier, --args-any,
--no-may-exec, --no-require-shield), and envseal prints what became weaker.
After upgrading a program, `envseal repin PROGRAM` re-hashes it and keeps
the grant as it is.

Examples:
  envseal allow --secret API_TOKEN -- deploy
  envseal allow --secret DB_PASSWORD=PGPASSWORD -- psql
  envseal allow --file TLS_KEY -- ./server        # path in $TLS_KEY_FILE
  envseal allow --secret TOKEN --args-exact /opt/job.py -- python3
  envseal allow --secret API_TOKEN --tier lockdown -- deploy")]
    Allow(AllowArgs),

    /// Re-hash a pinned program after an upgrade, keeping its grant as it is (passphrase)
    #[command(after_help = "\
Re-hashes the program, its interpreter (for a `#!` script) and its --may-exec
programs, and keeps everything else of the grant: secrets, tier, argument
rule, --require-shield. Prints the old and new hashes. Check that the new
bytes are the ones you installed before you repin.

Example:
  envseal repin deploy")]
    Repin(RepinArgs),

    /// List grants: pinned programs and the secrets they receive (no passphrase)
    #[command(
        after_help = "Examples:\n  envseal grants\n  envseal grants --long\n  envseal grants --json"
    )]
    Grants(GrantsArgs),

    /// Remove a grant, or some secrets from it (passphrase)
    #[command(
        after_help = "Examples:\n  envseal revoke deploy\n  envseal revoke deploy --secret OLD_TOKEN"
    )]
    Revoke(RevokeArgs),

    /// Run a pinned program with the secrets its grant gives it
    #[command(after_help = "\
CMD is resolved exactly like `allow` does. The bytes that run are a sealed
copy of the file, checked against the pinned SHA-256 after copying; the
environment is the caller's minus loader and interpreter hijack variables
(LD_*, PYTHONPATH, NODE_OPTIONS, BASH_ENV, ...), plus the secrets. Until the
broker exists, `exec` asks for the passphrase (terminal or --passphrase-fd).

Examples:
  envseal exec --allow deploy -- deploy --prod
  envseal exec --secret API_TOKEN -- deploy     # only API_TOKEN of its grant")]
    Exec(ExecArgs),

    /// Start the broker: the background process that holds the unlocked vault for `exec` (passphrase)
    #[command(after_help = "\
Run it yourself, in your terminal: the broker must be started by a person,
never by an agent. It detaches, becomes non-dumpable before reading the
passphrase, keeps the key in memfd_secret memory (else mlock'ed), and locks
itself after the idle TTL. Running `unlock` again while it runs refreshes
its TTL. Programs are then launched by the broker, as its own children:
`envseal exec` only sends the request.

Examples:
  envseal unlock               # locks after 15 minutes without an exec
  envseal unlock --ttl 2h
  envseal unlock --ttl 0       # until `envseal lock`")]
    Unlock(UnlockArgs),

    /// Stop the broker and wipe its key
    #[command(after_help = "Example:\n  envseal lock")]
    Lock,

    /// Whether the broker is running (exit 0) or the vault is locked (exit 75)
    #[command(after_help = "Examples:\n  envseal status\n  envseal status --json")]
    Status(StatusArgs),

    /// Run an agent (or any command) confined, so it can use secrets but never reach them
    #[command(after_help = "\
CMD runs in a Landlock domain with a seccomp filter: it cannot read /proc of,
trace, or signal any process outside the shield (the broker, the programs it
launches and their children), cannot write to the vault, envseal's binary,
the directories on PATH or shell start-up files (~/.bashrc, ~/.profile,
~/.bash_profile, ~/.bash_login, ~/.zshrc, ~/.zshenv, ~/.zprofile,
~/.config/fish, ~/.config/systemd/user, ~/.config/environment.d), and cannot
create new entries in the directories that lead to them (your home
directory itself, for one). The network and the rest of the filesystem work
as before. Inside, `envseal exec` runs pinned programs through the broker;
a broker is started first if none is running (asks the passphrase).

--nested-sandbox drops the filesystem rules so that mount-based sandboxes
(bubblewrap) work inside the shield: processes stay unreachable, but the
start-up files, PATH directories and envseal's binary are then NOT
write-protected (the vault stays tamper-evident).

Examples:
  envseal shield -- claude
  envseal shield --allow-write ~/.cargo/bin -- codex
  envseal shield --nested-sandbox -- my-agent --sandbox bwrap")]
    Shield(ShieldArgs),

    /// Show the audit log (names, never values), or verify it (--verify, passphrase)
    #[command(after_help = "\
Every init, set, approve, rm, allow, revoke, unlock, lock and exec (and each
refusal) appends a record, chained by SHA-256 to the one before; whenever
the vault is unlocked an authenticated checkpoint is appended. `--verify`
checks the chain and every checkpoint: a record edited, deleted or reordered
before the last checkpoint fails it (exit 67) and is named; records after it
are reported as an unauthenticated tail.

Examples:
  envseal audit
  envseal audit --since 1h --secret API_TOKEN
  envseal audit --json
  envseal audit --verify")]
    Audit(AuditArgs),

    /// Move a dotenv file's values into the vault (pending) and write a .envseal reference file
    #[command(after_help = "\
Reads KEY=value lines (`export ` prefixes, # comments, single and double
quotes, multi-line quoted values, \\n escapes), stores each value as a
pending secret named KEY, and writes KEY=envseal:KEY lines to .envseal beside
the file (safe to commit; `envseal exec --env-file` reads it). Values are
never printed; a malformed line is named by its number. Nothing is written
if any line is malformed or any KEY already exists. --delete overwrites the
file with zeros and removes it.

Examples:
  envseal import .env --delete
  envseal approve DATABASE_URL API_TOKEN")]
    Import(ImportArgs),

    /// Serve the Model Context Protocol on stdio, for agents (list names, run granted programs)
    #[command(after_help = "\
Tools: list_secrets (names, states, which programs use them; never values),
list_grants, and run (a pinned program through the broker, like `envseal
exec`, output always masked; returns stdout, stderr and the exit code).
A person starts the broker first (`envseal unlock`); the agent, under
`envseal shield`, starts `envseal mcp`.

Example (by hand):
  printf '%s\\n' '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}' | envseal mcp

Register it with an MCP client (e.g. in its mcpServers configuration):
  { \"mcpServers\": { \"envseal\": { \"command\": \"envseal\", \"args\": [\"mcp\"] } } }")]
    Mcp,

    /// Print shell completions (bash, zsh or fish)
    #[command(
        after_help = "Examples:\n  envseal completions bash > ~/.local/share/bash-completion/completions/envseal\n  envseal completions zsh > ~/.zfunc/_envseal\n  envseal completions fish > ~/.config/fish/completions/envseal.fish"
    )]
    Completions(CompletionsArgs),

    /// Print the man page (roff), generated from this help at build time
    #[command(after_help = "Example:\n  envseal man > /usr/local/share/man/man1/envseal.1")]
    Man,

    /// Report what this machine supports for each tier
    #[command(after_help = "Examples:\n  envseal doctor\n  envseal doctor --json")]
    Doctor(DoctorArgs),
}

impl Command {
    /// The descriptor `--passphrase-fd N` names, if the command has one.
    pub fn passphrase_fd(&self) -> Option<i32> {
        let p = match self {
            Command::Init(a) => &a.passphrase,
            Command::Set(a) => &a.passphrase,
            Command::Approve(a) => &a.passphrase,
            Command::Rm(a) => &a.passphrase,
            Command::Repair(a) => &a.passphrase,
            Command::Allow(a) => &a.passphrase,
            Command::Repin(a) => &a.passphrase,
            Command::Revoke(a) => &a.passphrase,
            Command::Audit(a) => &a.passphrase,
            Command::Unlock(a) => &a.passphrase,
            Command::Shield(a) => &a.passphrase,
            Command::Exec(a) => &a.passphrase,
            _ => return None,
        };
        p.passphrase_fd
    }
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON: {"checks":[{"name","ok","detail"}],"tiers":[{"tier","ok","g7","why"}]}
    #[arg(long)]
    pub json: bool,
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

    /// Approve the value at once (asks for the passphrase): for a person
    /// storing a value of their own, instead of `set` then `approve`
    #[arg(long)]
    pub approve: bool,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Names of pending secrets
    #[arg(required = true, value_name = "KEY")]
    pub keys: Vec<String>,

    /// Approve values written from inside a shield without asking (for
    /// scripts; you are endorsing values an agent wrote)
    #[arg(long)]
    pub yes: bool,

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
pub struct RepairArgs {
    /// Store the real public key without asking (for scripts)
    #[arg(long)]
    pub yes: bool,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Name of the secret to delete
    pub key: String,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// Confinement tiers.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierArg {
    /// Non-dumpable, execute-only sealed copy, clean environment, no inherited descriptors
    None,
    /// None plus user, PID, IPC and UTS namespaces, a PID 1, no_new_privs and a seccomp filter
    Hardened,
    /// Hardened plus no network, private /tmp and HOME, file secrets on a read-only tmpfs,
    /// and Landlock: read-only filesystem, execute only the pinned program
    Lockdown,
}

#[derive(Debug, Args)]
pub struct AllowArgs {
    /// Grant secret KEY, in the environment variable ENV (default: KEY)
    #[arg(long = "secret", value_name = "KEY[=ENV]")]
    pub secrets: Vec<String>,

    /// Grant secret KEY as a file; its path is in VAR (default: KEY_FILE): /dev/fd/3, /dev/fd/4, … in
    /// the order of the names (Lockdown: a file on its secrets tmpfs)
    #[arg(long = "file", value_name = "KEY[=VAR]")]
    pub files: Vec<String>,

    /// Confinement tier [default: none for a new grant; an existing grant keeps its own]
    #[arg(long, value_enum)]
    pub tier: Option<TierArg>,

    /// Drop the existing grant's argument rule: any arguments (weaker)
    #[arg(long, conflicts_with_all = ["args_exact", "args_prefix", "args_pattern"])]
    pub args_any: bool,

    /// Drop the existing grant's --may-exec pins (weaker)
    #[arg(long, conflicts_with = "may_exec")]
    pub no_may_exec: bool,

    /// Drop the existing grant's --require-shield (weaker)
    #[arg(long, conflicts_with = "require_shield")]
    pub no_require_shield: bool,

    /// Allow only exactly these arguments after the program (none if
    /// empty); the list ends at `--`
    #[arg(long, num_args = 0.., allow_hyphen_values = true, value_terminator = "--",
          value_name = "ARG", conflicts_with_all = ["args_prefix", "args_pattern"])]
    pub args_exact: Option<Vec<OsString>>,

    /// Allow only arguments that start with these; the list ends at `--`
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_terminator = "--",
          value_name = "ARG", conflicts_with = "args_pattern")]
    pub args_prefix: Option<Vec<OsString>>,

    /// Allow only arguments of this shape: words, each literal or a
    /// placeholder {name:[class]+} (one or more of the class's characters,
    /// never starting with -), e.g. 'push origin {ref:[A-Za-z0-9._/-]+}'
    #[arg(long, value_name = "PATTERN")]
    pub args_pattern: Option<String>,

    /// Pass the caller's NAME to the program, or with NAME=VALUE fix its
    /// value; nothing else of the caller's environment reaches it but
    /// LANG, LC_*, TERM and TZ (repeatable)
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,

    /// The program's PATH (directories only root can change) [default:
    /// yours, keeping only such directories]
    #[arg(long, value_name = "DIRS")]
    pub path: Option<String>,

    /// Lockdown: the program may write its working directory (mounted
    /// noexec); refused at exec when that is HOME, the vault, a PATH
    /// directory or one holding them
    #[arg(long)]
    pub write_cwd: bool,

    /// Lockdown: a directory the program may write (noexec), as for
    /// --write-cwd (repeatable)
    #[arg(long = "write", value_name = "DIR")]
    pub write: Vec<std::path::PathBuf>,

    /// Grant an interpreter or shell without an argument constraint anyway
    #[arg(long)]
    pub force_interpreter: bool,

    /// Lockdown: another program it may execute (pinned by path and SHA-256 too)
    #[arg(long = "may-exec", value_name = "PROGRAM")]
    pub may_exec: Vec<OsString>,

    /// Approve the named secrets that are still pending
    #[arg(long)]
    pub approve: bool,

    /// Run it only for callers inside an `envseal shield` (through the broker)
    #[arg(long)]
    pub require_shield: bool,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,

    /// The program to pin (after `--`)
    #[arg(required = true, value_name = "PROGRAM")]
    pub program: OsString,
}

#[derive(Debug, Args)]
pub struct RepinArgs {
    /// The program (as for `allow`)
    pub program: OsString,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct GrantsArgs {
    /// Print JSON: {"grants":[{"program","sha256","interpreter","secrets","tier","args",...}]}
    #[arg(long, conflicts_with = "long")]
    pub json: bool,

    /// Every detail of each grant (hashes, interpreter, deliveries, rules)
    /// instead of the table
    #[arg(long, short = 'l')]
    pub long: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The program (as for `allow`, or its pinned path)
    pub program: OsString,

    /// Remove only these secrets from the grant
    #[arg(long = "secret", value_name = "KEY")]
    pub secrets: Vec<String>,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: ShellArg,
}

/// Shells with completions.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The dotenv file
    pub file: std::path::PathBuf,

    /// Overwrite the file with zeros and remove it once imported
    #[arg(long)]
    pub delete: bool,

    /// Print JSON: {"imported":[names],"reference":PATH,"deleted":BOOL}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Print JSON: {"elements":[{"seq","time","kind","action","names","program",...}]}
    #[arg(long, conflicts_with = "verify")]
    pub json: bool,

    /// Only records since this time (RFC 3339) or this long ago (1h, 2d)
    #[arg(long, value_name = "T", conflicts_with = "verify")]
    pub since: Option<String>,

    /// Only records that name this secret
    #[arg(long = "secret", value_name = "KEY", conflicts_with = "verify")]
    pub secret: Option<String>,

    /// Only the last N entries (after the other filters)
    #[arg(
        short = 'n',
        long = "last",
        value_name = "N",
        conflicts_with = "verify"
    )]
    pub last: Option<usize>,

    /// Check the chain and every checkpoint (needs the passphrase)
    #[arg(long)]
    pub verify: bool,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Lock after this long without a request (e.g. 30m, 2h; 0 = until `envseal lock`)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON: {"state","pid","idle_ttl_seconds","locks_in_seconds","shielded_clients",...}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShieldArgs {
    /// Keep PATH writable even though it is protected (a PATH directory or
    /// a start-up file; never the vault, the broker's directory or envseal)
    #[arg(long = "allow-write", value_name = "PATH")]
    pub allow_write: Vec<std::path::PathBuf>,

    /// No filesystem rules, so bubblewrap-style sandboxes work inside (start-up
    /// files and PATH directories are then not write-protected)
    #[arg(long)]
    pub nested_sandbox: bool,

    /// Say what the shield applies
    #[arg(long, short)]
    pub verbose: bool,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,

    /// Lock after this long without a request, if the shield starts the broker
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,

    /// The command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The pinned program CMD must resolve to (refused otherwise). With no
    /// grant yet and a person at the terminal, offers to pin CMD
    #[arg(long = "allow", value_name = "PROGRAM")]
    pub allow: Vec<OsString>,

    /// Deliver only these secrets of the grant
    #[arg(long = "secret", value_name = "KEY")]
    pub secrets: Vec<String>,

    /// Drop the caller variables the grant passes (--env NAME): only the
    /// base set it fixed (PATH, HOME, USER, LOGNAME, locale, terminal)
    #[arg(long)]
    pub clearenv: bool,

    /// Run at least this confined (the grant's tier is a minimum; this can
    /// only raise it)
    #[arg(long, value_enum)]
    pub tier: Option<TierArg>,

    /// Deliver the secrets a reference file maps (ENVVAR=envseal:KEY), under
    /// those names; a directory (e.g. `.`) means the nearest .envseal at or
    /// above it. Each secret must still be in the program's grant
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<std::path::PathBuf>,

    /// Say what was verified and which protections apply
    #[arg(long, short)]
    pub verbose: bool,

    /// Mask the program's output even on a terminal (the program then gets
    /// pipes, not the terminal)
    #[arg(long, conflicts_with = "no_mask")]
    pub mask: bool,

    /// Do not mask the program's output (by default each of stdout and
    /// stderr that is not a terminal is masked)
    #[arg(long)]
    pub no_mask: bool,

    #[command(flatten)]
    pub passphrase: PassphraseArgs,

    /// The command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}
