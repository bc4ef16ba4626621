//! The process the broker forks for one `exec`: it takes the client's
//! stdin, stdout, stderr and working directory, starts a relay for the
//! client's signals, launches the program with the tier's launcher (so
//! the program is the broker's descendant, never the caller's), and
//! sends back its exit status.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use envseal_launcher::Launch;
use envseal_launcher::fork::{Forked, exit_now, fork};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::Pid;

use super::protocol::{Body, Reply, Request};
use super::{frame, read_frame};
use crate::commands::exec::Report;
use crate::exit;

/// Signals a client may relay.
const RELAYED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

pub fn run(stream: UnixStream, fds: Vec<OwnedFd>, launch: Launch, report: Option<Report>) -> ! {
    // The broker blocks its own signals for its signalfd; the program
    // must not inherit that.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let mut fds = fds.into_iter();
    let (stdin, stdout, stderr, cwd) = match (fds.next(), fds.next(), fds.next(), fds.next()) {
        (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
        _ => exit_now(1),
    };
    let placed = nix::unistd::dup2_stdin(&stdin)
        .and_then(|()| nix::unistd::dup2_stdout(&stdout))
        .and_then(|()| nix::unistd::dup2_stderr(&stderr))
        .and_then(|()| nix::unistd::fchdir(&cwd));
    drop((stdin, stdout, stderr, cwd));
    let _ = stream.set_nonblocking(false);
    if let Err(e) = placed {
        send(
            &stream,
            &refusal(anyhow::anyhow!(
                "the broker cannot use the caller's descriptors: {e}"
            )),
        );
        exit_now(1);
    }
    if let Some(report) = report {
        report.print();
    }
    let me = Pid::this();
    let relay = match fork() {
        Ok(Forked::Child) => {
            // The relay holds no secret: wipe its copy of the launch.
            drop(launch);
            relay(stream, me)
        }
        Ok(Forked::Parent(pid)) => Some(pid),
        Err(_) => None,
    };
    let result = envseal_launcher::run(launch);
    let message = match result {
        Ok(exit) => Reply::Exit {
            status: exit.status(),
        },
        Err(e) => refusal(e.into()),
    };
    send(&stream, &message);
    if let Some(pid) = relay {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
    exit_now(0)
}

/// Reads the client's `Signal` messages and sends each to the session,
/// which forwards it to the program. The client gone: `SIGHUP`, as a
/// terminal hang-up would.
fn relay(mut stream: UnixStream, session: Pid) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != session {
        exit_now(0);
    }
    while let Ok(Some(frame)) = read_frame(&mut stream) {
        if let Ok(Request {
            body: Body::Signal { signal },
            ..
        }) = serde_json::from_slice::<Request>(&frame)
            && let Some(sig) = RELAYED.iter().find(|s| **s as i32 == signal)
        {
            let _ = kill(session, *sig);
        }
    }
    let _ = kill(session, Signal::SIGHUP);
    exit_now(0)
}

fn refusal(err: anyhow::Error) -> Reply {
    let (code, hint) = exit::classify(&err);
    Reply::Refused {
        code: code as u8,
        message: format!("{err:#}"),
        hint,
    }
}

fn send(stream: &UnixStream, message: &Reply) {
    use std::io::Write as _;
    let mut s = stream;
    let _ = s.write_all(&frame(message));
}
