//! The broker's recorder: a process of its own, forked before the vault is
//! opened (restarted later, it inherits no key: the key's memory is not
//! inherited by a fork), that keeps one connection to the
//! vault and commits the record of each exec to the disk before the exec's
//! session may hand over any secret.
//!
//! The broker's loop only hands a record over (a message on a socket,
//! with a descriptor for the answer); the session waits for the answer. So
//! a write that stalls (the database held, a slow disk) holds up the execs
//! waiting for it, never the broker's other clients. One connection kept
//! open means no connection set-up and no directory sync per exec: the
//! wait is one `fsync` of the log.

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::Path;

use envseal_launcher::fdpass;
use envseal_vault::audit::Record;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

/// The broker's end of the recorder.
#[derive(Debug)]
pub struct Recorder {
    ctl: OwnedFd,
    pid: i32,
}

/// Largest encoded record accepted (records hold names and a path).
const MAX_RECORD: usize = 64 * 1024;

fn pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)
}

impl Recorder {
    /// Forks the recorder for the vault in `vault`. In the child, `forget`
    /// runs first (it wipes what the broker holds in memory that the
    /// recorder must not keep, such as the passphrase), then every
    /// descriptor but the recorder's own is closed (the broker's socket,
    /// lock, clients, vault connection: a recorder must not keep a client's
    /// pipe open).
    pub fn start(vault: &Path, forget: impl FnOnce()) -> std::io::Result<Recorder> {
        let (ours, theirs) = pair()?;
        match envseal_launcher::fork::fork()? {
            envseal_launcher::fork::Forked::Child => {
                drop(ours);
                forget();
                close_all_but(&theirs);
                run(&theirs, vault)
            }
            envseal_launcher::fork::Forked::Parent(pid) => {
                // Never wait on the recorder: a stalled one makes `submit`
                // fail, and the exec is refused.
                let flags = nix::fcntl::fcntl(&ours, nix::fcntl::FcntlArg::F_GETFL)?;
                nix::fcntl::fcntl(
                    &ours,
                    nix::fcntl::FcntlArg::F_SETFL(
                        nix::fcntl::OFlag::from_bits_truncate(flags)
                            | nix::fcntl::OFlag::O_NONBLOCK,
                    ),
                )?;
                Ok(Recorder {
                    ctl: ours,
                    pid: pid.as_raw(),
                })
            }
        }
    }

    /// The recorder's pid (the broker reaps it).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Hands `record` to the recorder; its answer will arrive on the
    /// returned descriptor (see [`wait`]).
    pub fn submit(&self, record: &Record) -> std::io::Result<OwnedFd> {
        let (session, recorder) = pair()?;
        fdpass::send(self.ctl.as_fd(), &record.encode(), &[recorder.as_fd()])?;
        Ok(session)
    }
}

/// Ends the recorder `pid` and waits for it.
pub fn stop(pid: i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}

/// Waits for the recorder's answer on `answer`: `Ok` once the record is on
/// the disk, else why not.
pub fn wait(answer: &OwnedFd) -> Result<(), String> {
    let mut buf = [0u8; 1024];
    match nix::unistd::read(answer, &mut buf) {
        Ok(0) => Err("the broker's recorder stopped".into()),
        Ok(n) if buf[0] == b'+' && n == 1 => Ok(()),
        Ok(n) => Err(String::from_utf8_lossy(&buf[1..n]).into_owned()),
        Err(e) => Err(format!("no answer from the broker's recorder: {e}")),
    }
}

/// Closes every descriptor above stderr but `keep` (listed from
/// `/proc/self/fd`, then closed).
fn close_all_but(keep: &OwnedFd) {
    use std::os::fd::AsRawFd as _;
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        if fd > 2 && fd != keep.as_raw_fd() {
            let _ = nix::unistd::close(fd);
        }
    }
}

/// The recorder's loop: one record per message, answered on the
/// descriptor that came with it; ends when the broker's end closes.
fn run(ctl: &OwnedFd, vault: &Path) -> ! {
    let mut writer = envseal_vault::AuditWriter::open(vault, true);
    let mut buf = vec![0u8; MAX_RECORD];
    loop {
        let received = match fdpass::recv(ctl.as_fd(), &mut buf) {
            Ok(r) if r.len > 0 => r,
            Ok(_) => envseal_launcher::fork::exit_now(0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => envseal_launcher::fork::exit_now(1),
        };
        let Some(answer) = received.fds.into_iter().next() else {
            continue;
        };
        let outcome = match (Record::decode(&buf[..received.len]), &mut writer) {
            (None, _) => Err("the record did not decode".to_owned()),
            (Some(record), Ok(w)) => w.append(&record).map_err(|e| e.to_string()),
            (Some(_), Err(e)) => Err(e.to_string()),
        };
        let reply = match outcome {
            Ok(()) => b"+".to_vec(),
            Err(why) => {
                // A failure may be passing (the disk full, the lock held):
                // the next record gets a new connection.
                writer = envseal_vault::AuditWriter::open(vault, true);
                [b"-".as_slice(), why.as_bytes()].concat()
            }
        };
        let _ = nix::unistd::write(&answer, &reply);
    }
}
