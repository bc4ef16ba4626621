//! Reading passphrases and values: from a file descriptor, a pipe, or a
//! no-echo terminal prompt. Never from argv, never echoed.

use std::fs::File;
use std::io::{IsTerminal as _, Read};

use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use zeroize::Zeroizing;

use crate::cli::PassphraseArgs;
use crate::refusal::{Code, Refusal};
pub use envseal_broker::terminal::{self, at_terminal, confirm};

/// Longest passphrase accepted from a file descriptor.
const MAX_PASSPHRASE: usize = 4096;

/// Reads the passphrase of an existing vault.
pub fn passphrase(args: PassphraseArgs, why: &str) -> Result<SecretString, Refusal> {
    match args.passphrase_fd {
        Some(fd) => from_fd(fd),
        None => {
            let p = prompt(&format!("Passphrase ({}): ", envseal_policy::escape(why)))?;
            non_empty(p)
        }
    }
}

/// Reads a new passphrase: once from a descriptor, twice on the terminal.
pub fn new_passphrase(args: PassphraseArgs) -> Result<SecretString, Refusal> {
    let pass = match args.passphrase_fd {
        Some(fd) => from_fd(fd)?,
        None => {
            let first = non_empty(prompt("New vault passphrase: ")?)?;
            let again = prompt("Repeat the passphrase: ")?;
            if first.expose_secret() != again.expose_secret() {
                return Err(Refusal::new(Code::Usage, "the passphrases do not match"));
            }
            first
        }
    };
    if pass.expose_secret().chars().count() < 8 {
        eprintln!(
            "envseal: warning: a passphrase under 8 characters is weak; Argon2id slows \
             guessing but cannot make it strong"
        );
    }
    Ok(pass)
}

/// Whether a passphrase could be obtained without failing outright.
pub fn passphrase_available(args: PassphraseArgs) -> bool {
    args.passphrase_fd.is_some() || File::open("/dev/tty").is_ok()
}

/// Reads a secret value: the exact bytes of stdin when it is not a
/// terminal, else a no-echo prompt typed twice (trailing newline dropped).
pub fn value(key: &str) -> Result<SecretSlice<u8>, Refusal> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = prompt(&format!("Value for {key} (not echoed): "))?;
        let again = prompt(&format!("Repeat the value for {key}: "))?;
        if first.expose_secret() != again.expose_secret() {
            return Err(Refusal::new(
                Code::Usage,
                "the two values do not match; nothing stored",
            ));
        }
        return Ok(SecretSlice::from(first.expose_secret().as_bytes().to_vec()));
    }
    let limit = envseal_vault::MAX_VALUE_LEN + 1;
    // Allocated once at its final size: no reallocation leaves copies behind.
    let mut buf = Zeroizing::new(vec![0u8; limit]);
    let mut filled = 0;
    let mut lock = stdin.lock();
    while filled < limit {
        match lock.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Refusal::new(
                    Code::Failure,
                    format!("cannot read stdin: {e}"),
                ));
            }
        }
    }
    if filled == limit {
        return Err(Refusal::new(
            Code::Usage,
            format!("the value for {key} is larger than 1 MiB"),
        ));
    }
    Ok(SecretSlice::from(buf[..filled].to_vec()))
}

/// A random value of `length` letters and digits, from the OS generator.
pub fn generated(length: usize) -> Result<SecretSlice<u8>, Refusal> {
    use rand::Rng as _;
    if !(8..=4096).contains(&length) {
        return Err(Refusal::new(
            Code::Usage,
            "--length must be between 8 and 4096",
        ));
    }
    let mut rng = rand::rngs::OsRng;
    let bytes: Vec<u8> = (0..length)
        .map(|_| rng.sample(rand::distributions::Alphanumeric))
        .collect();
    Ok(SecretSlice::from(bytes))
}

fn prompt(text: &str) -> Result<SecretString, Refusal> {
    // Ctrl-C at the prompt must not leave the terminal without echo.
    let _guard = envseal_launcher::terminal::guard_terminal();
    rpassword::prompt_password(text)
        .map(SecretString::from)
        .map_err(|_| {
            Refusal::new(
                Code::Denied,
                "a passphrase is needed but there is no terminal to ask on",
            )
            .hint("pass it on a file descriptor with --passphrase-fd N (e.g. 3<passfile)")
        })
}

fn non_empty(p: SecretString) -> Result<SecretString, Refusal> {
    if p.expose_secret().is_empty() {
        Err(Refusal::new(Code::Usage, "the passphrase is empty"))
    } else {
        Ok(p)
    }
}

/// The descriptor named by `--passphrase-fd`, taken when the process
/// starts (see [`claim_passphrase_fd`]).
static PASSPHRASE_FD: std::sync::Mutex<Option<(i32, std::os::fd::OwnedFd)>> =
    std::sync::Mutex::new(None);

/// Takes descriptor `fd`, which `--passphrase-fd` names, before the
/// process opens anything (parsing the command line opens nothing): if it
/// were closed, the next file envseal opens would get its number and be
/// read as the passphrase. A closed or invalid descriptor is an error here,
/// before anything else happens.
pub fn claim_passphrase_fd(fd: i32) -> Result<(), Refusal> {
    terminal::passphrase_fd_given();
    let fd_err = |why: &str| {
        Refusal::new(
            Code::Usage,
            format!("cannot read the passphrase from fd {fd}: {why}"),
        )
        .hint("open it for envseal, e.g. `envseal unlock --passphrase-fd 3 3<passfile`")
    };
    let owned = envseal_launcher::inherited(fd).map_err(|e| match e {
        nix::errno::Errno::EBADF => fd_err("the descriptor is not open"),
        e => fd_err(e.desc()),
    })?;
    *PASSPHRASE_FD.lock().unwrap_or_else(|e| e.into_inner()) = Some((fd, owned));
    Ok(())
}

/// Reads the first line of descriptor `fd` (without its newline): the
/// descriptor itself, taken at start-up, never a reopening of
/// `/proc/self/fd/N`, which fails for another user's pipe and for sockets.
fn from_fd(fd: i32) -> Result<SecretString, Refusal> {
    let bad = |why: String| {
        Refusal::new(
            Code::Usage,
            format!("cannot read the passphrase from fd {fd}: {why}"),
        )
    };
    let claimed = PASSPHRASE_FD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .filter(|(n, _)| *n == fd);
    let Some((_, owned)) = claimed else {
        return Err(bad("not open when envseal started, or already read".into()));
    };
    let mut file = File::from(owned);
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_PASSPHRASE + 1));
    let mut byte = [0u8; 1];
    loop {
        match file.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => {
                if buf.len() == MAX_PASSPHRASE {
                    return Err(bad("longer than 4096 bytes".into()));
                }
                buf.push(byte[0]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let text = std::str::from_utf8(&buf).map_err(|_| bad("not UTF-8".into()))?;
    non_empty(SecretString::from(text.to_owned()))
}
