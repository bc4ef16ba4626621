//! Refusals: envseal's own failures, each with a [`Code`] (its exit code,
//! from the BSD `sysexits` range so that it rarely collides with a
//! launched program's status, which passes through), a message and a hint.
//! The one place where errors become codes and messages — for the command
//! line and for the broker's replies alike.

use envseal_launcher::Error as LaunchError;
use envseal_policy::Error as PolicyError;
use envseal_vault::Error as VaultError;

/// envseal's exit codes, which the broker's refusals carry too (one
/// enum, in the wire format's crate).
pub use envseal_proto::Code;
use envseal_proto::Reply;

/// A refusal raised by envseal itself, with a code and an optional hint.
#[derive(Debug)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// Picks the exit code and a hint for an error chain.
pub fn classify(err: &anyhow::Error) -> (Code, Option<String>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Refusal>() {
            return (e.code, e.hint.clone());
        }
        if let Some(e) = cause.downcast_ref::<VaultError>() {
            return classify_vault(e);
        }
        if cause.downcast_ref::<envseal_core::NameError>().is_some() {
            return (Code::Usage, None);
        }
        if let Some(e) = cause.downcast_ref::<PolicyError>() {
            return classify_policy(e);
        }
        if let Some(e) = cause.downcast_ref::<LaunchError>() {
            return classify_launch(e);
        }
    }
    (Code::Failure, None)
}

fn classify_policy(e: &PolicyError) -> (Code, Option<String>) {
    match e {
        PolicyError::NotFound(_) => (Code::NotFound, None),
        PolicyError::NotExecutable(_) => (Code::CannotExecute, None),
        PolicyError::Interpreter(_) => (
            Code::Denied,
            Some(
                "constrain what it may run with --args-exact ARG... (or --args-prefix), \
                 or pin the script itself; --force-interpreter accepts the risk"
                    .into(),
            ),
        ),
        PolicyError::ArgsRejected { .. } | PolicyError::NotInGrant { .. } => (Code::Denied, None),
        PolicyError::Malformed => (Code::Tampered, None),
        PolicyError::Deceptive(_) => (
            Code::Denied,
            Some(
                "rename the file (or the directory it is in), check who put it there, then pin it"
                    .into(),
            ),
        ),
        PolicyError::NonUtf8Path(_) | PolicyError::Shebang { .. } | PolicyError::Invalid(_) => {
            (Code::Usage, None)
        }
        _ => (Code::Failure, None),
    }
}

fn classify_launch(e: &LaunchError) -> (Code, Option<String>) {
    match e {
        LaunchError::NotFound { path } => (
            Code::NotFound,
            Some(format!(
                "revoke it with `envseal revoke {path}` or restore the file"
            )),
        ),
        LaunchError::Swapped { .. } | LaunchError::NotRegular { .. } => (
            Code::Swapped,
            Some(
                "nothing was run; find out who replaced the file before pinning anything again"
                    .into(),
            ),
        ),
        LaunchError::Changed { path, .. } => (
            Code::Changed,
            Some(format!(
                "nothing was run. If you updated it on purpose, re-hash it (its grant \
                 stays as it is): envseal repin {path}"
            )),
        ),
        LaunchError::Exec { .. } => (Code::CannotExecute, None),
        LaunchError::Unwritable { fix, .. } => {
            (Code::Denied, Some(format!("nothing was run; {fix}")))
        }
        LaunchError::Sandbox { fix, .. } => (
            Code::Unsupported,
            Some(if fix.is_empty() {
                "nothing was run; `envseal doctor` shows what this machine supports".to_owned()
            } else {
                format!(
                    "nothing was run; {fix} (`envseal doctor` shows what this machine supports)"
                )
            }),
        ),
        _ => (Code::Failure, None),
    }
}

fn classify_vault(e: &VaultError) -> (Code, Option<String>) {
    let hint = |s: &str| Some(s.to_owned());
    match e {
        VaultError::NotYours { .. } => (
            Code::Denied,
            hint("check who created it; use a vault directory of your own (ENVSEAL_HOME)"),
        ),
        VaultError::Closed(_) => (
            Code::Locked,
            hint(
                "inside `envseal shield` the vault's files are closed: `list`, `grants`, `audit` \
                 and `set` go through the broker, and `exec` runs pinned programs through it; \
                 the person starts it with `envseal unlock` outside the shield",
            ),
        ),
        VaultError::Provenance { name, .. } => (
            Code::Tampered,
            Some(format!(
                "set it again yourself (`envseal set --replace {name}`), then approve it; find \
                 out who changed the vault"
            )),
        ),
        VaultError::ReadOnly { .. } => (
            Code::Unrecorded,
            hint(
                "envseal records every use of the vault in it, so it must be writable: \
                 remount it read-write or fix the file's mode",
            ),
        ),
        VaultError::NotInitialized(_) => (
            Code::NoVault,
            hint("create one with `envseal init` (or point ENVSEAL_HOME at an existing vault)"),
        ),
        VaultError::AlreadyExists(_) => (
            Code::Failure,
            hint(
                "envseal never overwrites a vault; use another ENVSEAL_HOME or remove it yourself",
            ),
        ),
        VaultError::WrongPassphrase => (Code::Denied, None),
        VaultError::PassphraseRequired(_) => (
            Code::Denied,
            hint("run it in a terminal, or pass the passphrase with --passphrase-fd N"),
        ),
        VaultError::NotApproved(_) => (Code::Denied, None),
        VaultError::InvalidName { .. }
        | VaultError::InvalidValue { .. }
        | VaultError::InvalidKdf(_) => (Code::Usage, None),
        VaultError::SecretExists(_) => {
            (Code::Failure, hint("add --replace to overwrite its value"))
        }
        VaultError::NoSuchSecret(_) => (Code::Failure, hint("`envseal list` shows the names")),
        VaultError::NoSuchGrant(_) => (Code::NotGranted, hint("`envseal grants` lists them")),
        VaultError::Tampered(_) => (
            Code::Tampered,
            hint(
                "the vault database was edited outside envseal; nothing was changed. \
                 Remove each affected secret with `envseal rm NAME` and set it again",
            ),
        ),
        VaultError::RecipientReplaced => (
            Code::Tampered,
            hint(
                "the vault database was edited outside envseal; nothing was changed. \
                 `envseal repair` (passphrase) puts the vault's own public key back and \
                 names each value that was encrypted to the other key",
            ),
        ),
        VaultError::Corrupt(_) | VaultError::UnsupportedSchema { .. } => (
            Code::Corrupt,
            hint("nothing was changed; restore the vault directory from a backup if you have one"),
        ),
        _ => (Code::Failure, None),
    }
}

/// Prints `err` as envseal reports every error (escaped: errors quote
/// paths and names that came from files, clients or the vault, and must
/// not drive the terminal) and returns the exit code.
pub fn report(err: &anyhow::Error) -> Code {
    let (code, hint) = classify(err);
    let shown = envseal_policy::escape_lines(&format!("{err:#}"));
    eprintln!("envseal: error: {shown}");
    if let Some(hint) = hint {
        eprintln!("  hint: {}", envseal_policy::escape_lines(&hint));
    }
    code
}

/// An error as the broker's refusal: its exit code, message and hint.
pub fn to_reply(err: &anyhow::Error) -> Reply {
    let (code, hint) = classify(err);
    Reply::Refused {
        code,
        message: format!("{err:#}"),
        hint,
    }
}
