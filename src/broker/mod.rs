//! The broker: a per-user background process, started by a person with
//! `envseal unlock`, that holds the unlocked vault and launches pinned
//! programs as its own children for `envseal exec` clients.
//!
//! - [`protocol`]: the messages on its socket.
//! - [`server`]: the daemon (one thread, a `poll` loop).
//! - [`session`]: the process forked for each `exec`.

pub use envseal_proto as protocol;
pub use envseal_proto::{frame, read_frame};
mod recorder;
pub mod server;
mod session;

use std::io::Read as _;
use std::os::fd::{AsFd as _, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::exit::{CliError, Code};
use crate::paths;
use protocol::{Body, Reply, Request, VERSION};

/// Where one vault's broker lives: `/run/user/UID/envseal/` (else
/// `<vault>/run/`), with a socket and a log named after the vault
/// directory, so each `ENVSEAL_HOME` has its own broker; its lock is
/// `<vault>/broker.lock`.
#[derive(Debug, Clone)]
pub struct Location {
    pub vault: PathBuf,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
}

/// `sun_path` holds 108 bytes, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// Where the broker of this vault listens. Found from the vault alone
/// (never from the environment, which differs between a person's terminal
/// and an agent's), so that one vault has one broker: the user's runtime
/// directory `/run/user/UID` when it exists and is theirs alone, else the
/// vault directory. The lock that keeps a second broker from starting is
/// in the vault directory.
pub fn location() -> Result<Location, CliError> {
    let vault = paths::vault_dir()?;
    let vault = std::fs::canonicalize(&vault).unwrap_or(vault);
    let dir = match runtime_dir() {
        Some(run) => run.join("envseal"),
        None => vault.join("run"),
    };
    let digest = Sha256::digest(vault.as_os_str().as_encoded_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let socket = dir.join(format!("broker-{name}.sock"));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(CliError::new(
            Code::Usage,
            format!(
                "the broker's socket path is too long for a Unix socket: {}",
                socket.display()
            ),
        )
        .hint("set ENVSEAL_HOME to a shorter directory"));
    }
    Ok(Location {
        lock: vault.join("broker.lock"),
        log: dir.join(format!("broker-{name}.log")),
        socket,
        dir,
        vault,
    })
}

/// `/run/user/UID` if it is a directory this user owns that no one else
/// may write to.
fn runtime_dir() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = nix::unistd::geteuid().as_raw();
    let dir = PathBuf::from(format!("/run/user/{uid}"));
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o022 == 0).then_some(dir)
}

impl Location {
    /// Creates the runtime directory (0700) and refuses one that another
    /// user owns or others can enter.
    pub fn prepare(&self) -> Result<(), CliError> {
        let fail = |msg: String| CliError::new(Code::Failure, msg);
        if !self.dir.exists() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", self.dir.display())))?;
        }
        let meta = std::fs::symlink_metadata(&self.dir)
            .map_err(|e| fail(format!("cannot inspect {}: {e}", self.dir.display())))?;
        if !meta.is_dir()
            || meta.uid() != nix::unistd::geteuid().as_raw()
            || meta.mode() & 0o077 != 0
        {
            return Err(fail(format!(
                "{} must be a directory of yours with mode 0700",
                self.dir.display()
            ))
            .hint("remove it, or fix its owner and mode (chmod 700)"));
        }
        Ok(())
    }
}

/// A connection to the broker.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the broker of this vault; `None` when none is running.
    /// Before anything is sent, the broker is authenticated (see
    /// [`Client::authenticate`]): the client hands a broker its terminal,
    /// environment and, for `unlock`, the word that the vault is unlocked.
    pub fn connect(loc: &Location) -> anyhow::Result<Option<Client>> {
        let client = Self::connect_unchecked(loc)?;
        if let Some(c) = &client {
            c.authenticate(loc, true)?;
        }
        Ok(client)
    }

    /// [`Client::connect`] for `lock`, which sends nothing but the request
    /// to stop: the peer must be this user's, but may be an older envseal
    /// (after an upgrade, `lock` is how its broker is stopped).
    pub fn connect_to_lock(loc: &Location) -> anyhow::Result<Option<Client>> {
        let client = Self::connect_unchecked(loc)?;
        if let Some(c) = &client {
            c.authenticate(loc, false)?;
        }
        Ok(client)
    }

    /// Checks that the runtime directory is this user's alone (0700), that
    /// the process listening is this user's (`SO_PEERCRED`), and, with
    /// `same_code`, that it runs envseal's own code (its code size in
    /// `/proc/PID/statm` equals this process's: its `exe` cannot be read,
    /// a broker being non-dumpable). A counterfeit broker at the socket path
    /// would otherwise receive the caller's terminal and environment.
    fn authenticate(&self, loc: &Location, same_code: bool) -> anyhow::Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let me = nix::unistd::geteuid().as_raw();
        let untrusted = |why: String| {
            anyhow::Error::from(
                CliError::new(
                    Code::Denied,
                    format!(
                        "not talking to the process at {}: {why}",
                        loc.socket.display()
                    ),
                )
                .hint(
                    "it is not your envseal broker; find out who put it there, remove the \
                     socket and run `envseal unlock` yourself",
                ),
            )
        };
        let dir = std::fs::symlink_metadata(&loc.dir)
            .map_err(|e| untrusted(format!("cannot inspect its directory: {e}")))?;
        if !dir.is_dir() || dir.uid() != me || dir.mode() & 0o077 != 0 {
            return Err(untrusted(format!(
                "its directory {} is not yours alone (owner uid {}, mode {:o})",
                loc.dir.display(),
                dir.uid(),
                dir.mode() & 0o7777
            )));
        }
        let peer =
            nix::sys::socket::getsockopt(&self.stream, nix::sys::socket::sockopt::PeerCredentials)
                .map_err(|e| untrusted(format!("no peer credentials ({e})")))?;
        if peer.uid() != me {
            return Err(untrusted(format!("it runs as uid {}", peer.uid())));
        }
        if same_code {
            match (code_size(&peer.pid().to_string()), code_size("self")) {
                (Some(theirs), Some(mine)) if theirs == mine => {}
                (Some(_), Some(_)) => {
                    return Err(untrusted(format!(
                        "pid {} does not run this envseal (if envseal was upgraded while a \
                         broker ran, `envseal lock` stops the old one)",
                        peer.pid()
                    )));
                }
                _ => {
                    return Err(untrusted(format!(
                        "cannot verify pid {}: its /proc entry cannot be read (is /proc \
                         mounted with hidepid?)",
                        peer.pid()
                    )));
                }
            }
        }
        Ok(())
    }

    fn connect_unchecked(loc: &Location) -> anyhow::Result<Option<Client>> {
        match UnixStream::connect(&loc.socket) {
            Ok(stream) => Ok(Some(Client { stream })),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(CliError::new(
                Code::Failure,
                format!("cannot reach the broker at {}: {e}", loc.socket.display()),
            )
            .into()),
        }
    }

    pub fn send(&mut self, body: Body, fds: &[BorrowedFd<'_>]) -> anyhow::Result<()> {
        // Wiped once sent: a `set` carries a value.
        let bytes = zeroize::Zeroizing::new(frame(&Request { v: VERSION, body }));
        envseal_launcher::fdpass::send(self.stream.as_fd(), &bytes, fds)
            .map_err(|e| CliError::new(Code::Failure, format!("the broker hung up: {e}")))?;
        Ok(())
    }

    pub fn recv(&mut self) -> anyhow::Result<Reply> {
        let lost = |why: String| CliError::new(Code::Failure, format!("the broker {why}"));
        let body = read_frame(&mut self.stream)
            .map_err(|e| lost(format!("sent an unreadable reply: {e}")))?
            .ok_or_else(|| lost("closed the connection".into()))?;
        Ok(serde_json::from_slice(&body).map_err(|e| {
            lost(format!(
                "sent a reply this envseal does not understand: {e}"
            ))
        })?)
    }

    /// One request, one reply.
    pub fn request(&mut self, body: Body) -> anyhow::Result<Reply> {
        self.send(body, &[])?;
        self.recv()
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Sends an exec request with `stdio` (stdin, stdout, stderr) and this
    /// process's working directory, and waits for the broker's first
    /// answer: whether to tell the caller (once per terminal session) that
    /// it is not inside a shield, or the refusal.
    pub fn start_exec(
        &mut self,
        request: protocol::ExecRequest,
        stdio: [BorrowedFd<'_>; 3],
    ) -> anyhow::Result<bool> {
        let cwd = nix::fcntl::open(
            ".",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| {
            CliError::new(
                Code::Failure,
                format!("cannot open the working directory: {e}"),
            )
        })?;
        let [stdin, stdout, stderr] = stdio;
        self.send(Body::Exec(request), &[stdin, stdout, stderr, cwd.as_fd()])?;
        drop(cwd);
        match self.recv()? {
            Reply::Started {
                warn_unshielded, ..
            } => Ok(warn_unshielded),
            reply => Err(not_the_answer(reply, "an exec that had not started")),
        }
    }
}

/// This process's environment as an exec request carries it.
pub fn environment() -> Vec<(protocol::Bytes, protocol::Bytes)> {
    std::env::vars_os()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// The broker's last answer to an exec: the program's status, or why not.
pub fn exit_status(reply: Reply) -> anyhow::Result<u8> {
    match reply {
        Reply::Exit { status } => Ok(status),
        reply => Err(not_the_answer(reply, "an exec")),
    }
}

/// The message of a `Done` reply; a refusal as the error this command
/// exits with.
pub fn done(reply: Reply) -> anyhow::Result<String> {
    match reply {
        Reply::Done { message } => Ok(message),
        reply => Err(not_the_answer(reply, "a request")),
    }
}

/// The broker's status.
pub fn status(reply: Reply) -> anyhow::Result<protocol::StatusInfo> {
    match reply {
        Reply::Status(info) => Ok(info),
        reply => Err(not_the_answer(reply, "a status request")),
    }
}

/// A reply that is not the one expected for `what`: a refusal as the error
/// it carries, anything else as a protocol error.
fn not_the_answer(reply: Reply, what: &str) -> anyhow::Error {
    match reply {
        Reply::Refused {
            code,
            message,
            hint,
        } => refused(code, message, hint),
        _ => CliError::new(
            Code::Failure,
            format!("the broker answered {what} with an unexpected reply"),
        )
        .into(),
    }
}

/// An error as the broker's refusal: its exit code, message and hint.
pub fn refusal(err: &anyhow::Error) -> Reply {
    let (code, hint) = crate::exit::classify(err);
    Reply::Refused {
        code,
        message: format!("{err:#}"),
        hint,
    }
}

/// A refusal from the broker, as the error this command exits with.
pub fn refused(code: Code, message: String, hint: Option<String>) -> anyhow::Error {
    let e = CliError::new(code, message);
    match hint {
        Some(h) => e.hint(h).into(),
        None => e.into(),
    }
}

/// The parent pid of `pid`, from `/proc/PID/stat` (the comm field may hold
/// spaces and parentheses: parse after the last `)`).
/// The size of a process's executable code in pages (`/proc/PID/statm`,
/// readable even of a non-dumpable process): envseal's own processes all
/// have the same. `pid` is a number or `self`.
pub fn code_size(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

pub fn parent_of(pid: i32) -> Option<i32> {
    let mut stat = String::new();
    std::fs::File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .read_to_string(&mut stat)
        .ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
