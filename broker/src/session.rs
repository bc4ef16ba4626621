//! The process the broker forks for one `exec`: it takes the client's
//! stdin, stdout, stderr and working directory, launches the program with
//! the tier's launcher (so the program is the broker's descendant, never
//! the caller's), forwards the signals the client relays (the client gone:
//! `SIGHUP`), and sends back its exit status.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use std::os::fd::AsFd as _;

use envseal_launcher::fork::exit_now;
use envseal_launcher::{Control, Launch, Relay};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};

use crate::client::RELAYED;
use crate::prepare::Report;
use crate::protocol::{Body, Reply, Request, frame, read_frame};
use crate::refusal::to_reply;

/// Runs one exec. `record` (the audit record the broker prepared) was
/// handed to the recorder, whose answer comes on `recorded`: the program
/// starts only once it is on the disk. A record of how it ended is
/// appended to the vault in `vault` after (through a connection of this
/// process's own: the broker's must not be used after a fork).
pub fn run(
    stream: UnixStream,
    fds: Vec<OwnedFd>,
    launch: Launch,
    report: Option<Report>,
    (record, recorded): (envseal_vault::audit::Record, OwnedFd),
    vault: &std::path::Path,
) -> ! {
    // The broker blocks its own signals for its signalfd; the program
    // must not inherit that.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let placed = take_callers(fds);
    let _ = stream.set_nonblocking(false);
    // A signal message arrives whole; a client that stalls half-way
    // counts as gone rather than holding the session.
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    if let Err(e) = placed {
        send(
            &stream,
            &to_reply(&anyhow::anyhow!(
                "the broker cannot use the caller's descriptors: {e}"
            )),
        );
        exit_now(1);
    }
    // No secret is handed over before the record of this exec is on the
    // disk (the recorder says so); waited for here, in the session, so
    // that a write that stalls holds up this exec only, never the broker.
    if let Err(why) = crate::recorder::wait(&recorded) {
        send(&stream, &to_reply(&crate::audit::not_recorded(vault, &why)));
        exit_now(1);
    }
    drop(recorded);
    if let Some(report) = report {
        report.print();
    }
    // The client's signals arrive as messages on the connection, read
    // while the launcher waits for the program.
    let mut read = || control(&stream);
    let result = envseal_launcher::run_relaying(
        launch,
        Some(Relay {
            fd: stream.as_fd(),
            read: &mut read,
        }),
    );
    let (message, ended) = match result {
        Ok(exit) => (
            Reply::Exit {
                status: exit.status(),
            },
            crate::audit::ended(&record, Ok(i32::from(exit.status()))),
        ),
        Err(e) => {
            let e = anyhow::Error::from(e);
            (to_reply(&e), crate::audit::ended(&record, Err(&e)))
        }
    };
    send(&stream, &message);
    // The client has its answer; how it ended is written at the lowest
    // priority, so that it does not slow the next exec.
    envseal_launcher::fork::background();
    crate::audit::write_to(vault, &ended);
    exit_now(0)
}

/// Makes the caller's stdin, stdout, stderr and working directory (the
/// four descriptors of its request) this process's own.
fn take_callers(fds: Vec<OwnedFd>) -> nix::Result<()> {
    let Ok([stdin, stdout, stderr, cwd]) = <[OwnedFd; 4]>::try_from(fds) else {
        return Err(nix::errno::Errno::EBADF);
    };
    nix::unistd::dup2_stdin(&stdin)
        .and_then(|()| nix::unistd::dup2_stdout(&stdout))
        .and_then(|()| nix::unistd::dup2_stderr(&stderr))
        .and_then(|()| nix::unistd::fchdir(&cwd))
}

/// The next message of the client while its program runs: a signal to
/// forward (only those in [`RELAYED`]), nothing, or the client gone.
fn control(stream: &UnixStream) -> Control {
    let mut reader = stream;
    match read_frame(&mut reader) {
        Ok(Some(frame)) => match serde_json::from_slice::<Request>(&frame) {
            Ok(Request {
                body: Body::Signal { signal },
                ..
            }) => RELAYED
                .iter()
                .find(|s| **s as i32 == signal)
                .map_or(Control::Nothing, |s| Control::Forward(*s)),
            _ => Control::Nothing,
        },
        _ => Control::Hangup,
    }
}

fn send(stream: &UnixStream, message: &Reply) {
    use std::io::Write as _;
    let mut s = stream;
    let _ = s.write_all(&frame(message));
}
