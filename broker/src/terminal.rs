//! Asking the person at the terminal: whether one is there, and a yes/no
//! question on `/dev/tty` (never on stdin, which may be a pipe an agent
//! writes).

use std::fs::File;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::refusal::{Code, Refusal};

/// Set when `--passphrase-fd` was given: the passphrase then comes from a
/// program, not from a person typing.
static FD_GIVEN: AtomicBool = AtomicBool::new(false);

/// Records that this process reads its passphrase from a descriptor.
pub fn passphrase_fd_given() {
    FD_GIVEN.store(true, Ordering::Relaxed);
}

/// Whether a person is at a terminal (stdin is one, and /dev/tty opens).
pub fn at_terminal() -> bool {
    std::io::stdin().is_terminal() && File::open("/dev/tty").is_ok()
}

/// Whether a person typed (or will type) the passphrase at a terminal:
/// no `--passphrase-fd` was given, and stdin is a terminal.
pub fn person_at_terminal() -> bool {
    !FD_GIVEN.load(Ordering::Relaxed) && at_terminal()
}

/// Asks a yes/no question on the terminal; anything but y/yes is no.
pub fn confirm(question: &str) -> Result<bool, Refusal> {
    use std::io::{BufRead as _, Write as _};
    let no_tty = |_| Refusal::new(Code::Denied, "no terminal to ask for confirmation");
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(no_tty)?;
    let mut out = &tty;
    out.write_all(envseal_policy::escape_lines(question).as_bytes())
        .map_err(no_tty)?;
    let mut answer = String::new();
    std::io::BufReader::new(&tty)
        .read_line(&mut answer)
        .map_err(no_tty)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
