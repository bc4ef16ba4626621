//! A connection to the broker: authenticated before anything is sent,
//! one request and its reply at a time.

use std::os::fd::{AsFd as _, BorrowedFd};
use std::os::unix::net::UnixStream;

use envseal_proto::{self as protocol, Body, Reply, Request, VERSION, frame, read_frame};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::location::Location;
use crate::procfs::code_size;
use crate::refusal::{Code, Refusal};

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
                Refusal::new(
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
            Err(e) => Err(Refusal::new(
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
            .map_err(|e| Refusal::new(Code::Failure, format!("the broker hung up: {e}")))?;
        Ok(())
    }

    pub fn recv(&mut self) -> anyhow::Result<Reply> {
        let lost = |why: String| Refusal::new(Code::Failure, format!("the broker {why}"));
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

    /// `envseal exec` through the broker: sends the request with this
    /// process's stdin, stdout, stderr and working directory, relays its
    /// signals, and returns the program's status.
    pub fn exec(mut self, request: protocol::ExecRequest) -> anyhow::Result<u8> {
        let program = request.program.clone();
        // Relayed signals are blocked, and read from a signalfd below.
        let mut relayed = nix::sys::signal::SigSet::empty();
        for s in RELAYED {
            relayed.add(s);
        }
        relayed.thread_block()?;
        let warn_unshielded = self.start_exec(
            request,
            [
                std::io::stdin().as_fd(),
                std::io::stdout().as_fd(),
                std::io::stderr().as_fd(),
            ],
        )?;
        if warn_unshielded && std::env::var_os("ENVSEAL_QUIET").is_none_or(|q| q != "1") {
            eprintln!(
                "envseal: warning: not inside an envseal shield. {} runs with its secrets, \
                 and any program of yours that is not shielded (an AI agent, say) could look into \
                 it while it runs. Start agents with `envseal shield -- AGENT`. (Said once per \
                 terminal session; ENVSEAL_QUIET=1 silences it.)",
                envseal_policy::escape(&program)
            );
        }
        // One thread: the relayed signals through a signalfd, and the
        // broker's answer, in one poll.
        let signals =
            SignalFd::with_flags(&relayed, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        loop {
            let (got_signal, got_reply) = {
                let mut fds = [
                    PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), ready(&fds[1]))
            };
            if got_signal {
                while let Ok(Some(info)) = signals.read_signal() {
                    self.send(
                        Body::Signal {
                            signal: info.ssi_signo as i32,
                        },
                        &[],
                    )?;
                }
            }
            if got_reply {
                return exit_status(self.recv()?);
            }
        }
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
            Refusal::new(
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
        _ => Refusal::new(
            Code::Failure,
            format!("the broker answered {what} with an unexpected reply"),
        )
        .into(),
    }
}

/// A refusal from the broker, as the error this command exits with.
pub fn refused(code: Code, message: String, hint: Option<String>) -> anyhow::Error {
    let e = Refusal::new(code, message);
    match hint {
        Some(h) => e.hint(h).into(),
        None => e.into(),
    }
}

/// The signals `exec` relays to a program the broker runs (and the only
/// ones a session forwards).
pub(crate) const RELAYED: [nix::sys::signal::Signal; 7] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGQUIT,
    nix::sys::signal::Signal::SIGWINCH,
    nix::sys::signal::Signal::SIGUSR1,
    nix::sys::signal::Signal::SIGUSR2,
];
