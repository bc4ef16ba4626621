//! The broker daemon: one thread, a `poll` loop over the listening
//! socket, a signalfd and the open connections. Nothing a client does can
//! block it: sockets are non-blocking, a request must arrive whole within
//! [`REQUEST_DEADLINE`], oversized or malformed messages close the
//! connection, and each `exec` runs in a forked [`session`] process.
//!
//! Key material lives in a [`SecretBox`] (memfd_secret, else mlock'ed;
//! never inherited by a fork). A session gets only what its program needs:
//! the verified copy and the decrypted values of its grant.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant, SystemTime};

use envseal_launcher::secretmem::SecretBox;
use envseal_launcher::{Cache, fdpass};
use envseal_vault::{Keys, SecretName, Vault};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use crate::location::Location;
use crate::prepare;
use crate::procfs::parent_of;
use crate::protocol::{Body, ExecRequest, MAX_FRAME, Reply, Request, StatusInfo, VERSION, frame};
use crate::refusal::{Code, to_reply};
use crate::session;

/// A connection must deliver its request within this time.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Connections beyond this are closed at once.
const MAX_CONNECTIONS: usize = 512;
/// Programs running at once; further execs are refused until one ends.
const MAX_SESSIONS: usize = 256;
/// Records being written apart from the loop at once (see `Broker::record`).
const MAX_WRITERS: usize = 32;
/// How often the broker checks that its socket is still there.
const SOCKET_CHECK: Duration = Duration::from_secs(5);

/// Shields registered at once (each holds a connection open).
const MAX_SHIELDS: usize = 64;
/// The most protected paths one shield may send.
const MAX_PROTECTED: usize = 4096;
/// A log larger than this at start-up is moved to `….log.1`.
const MAX_LOG: u64 = 8 << 20;

/// What the broker runs for a caller inside a shield who asks to see the
/// vault (`list`, `grants`, `audit`), given the caller's arguments: the
/// command, to run in a process of its own with the caller's stdout and
/// stderr (returning its exit status), or why it is refused. The command
/// line provides it: this crate parses no command lines.
pub type Show = fn(&[String]) -> Result<Box<dyn FnOnce() -> u8>, String>;

/// What the daemon starts with (prepared before it detached).
pub struct Start {
    pub loc: Location,
    /// How the command line shows what a shielded caller asks for.
    pub show: Show,
    pub listener: UnixListener,
    pub lock: nix::fcntl::Flock<File>,
    pub idle_ttl: Duration,
}

struct Conn {
    stream: UnixStream,
    pid: i32,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
    opened: Instant,
    /// `envseal shield`: (its own pid, the agent's pid).
    shield: Option<(i32, i32)>,
    /// The senders (from `SCM_CREDENTIALS`) of the bytes in `buf`.
    senders: Vec<Option<i32>>,
    /// The sender of the frame being handled, if it had exactly one.
    frame_sender: Option<i32>,
    /// A registration checked and challenged: (shield, agent, nonce).
    challenge: Option<(i32, i32, String)>,
    /// What a registering shield said it protects.
    protected: Vec<std::path::PathBuf>,
}

struct Broker {
    loc: Location,
    show: Show,
    listener: Option<UnixListener>,
    socket_ino: u64,
    lock: Option<nix::fcntl::Flock<File>>,
    signals: Option<SignalFd>,
    vault: Option<Vault>,
    keys: Option<SecretBox<Keys>>,
    /// Commits each exec's record before its session starts the program.
    recorder: Option<crate::recorder::Recorder>,
    /// Processes writing a record apart from the loop (see `record`).
    writers: std::collections::HashSet<i32>,
    cache: Cache,
    conns: Vec<Conn>,
    sessions: HashMap<i32, Instant>,
    /// What confines the programs run for shielded callers (see
    /// [`Broker::brokered_confinement`]).
    brokered: Option<Brokered>,
    /// The sessions running a program for a shielded caller: what that
    /// program (or anything it starts) asks is shielded too.
    shielded_sessions: std::collections::HashSet<i32>,
    /// Terminal sessions already told that they are not shielded.
    warned: std::collections::HashSet<i32>,
    idle_ttl: Duration,
    /// When the broker was last used, on the clock that counts suspended
    /// time too (`boot_clock`): a laptop asleep for a night is idle.
    last_use: Duration,
    log: Option<File>,
    uid: u32,
}

/// Unlocks in the detached daemon and serves until locked, idle or
/// stopped. `ready` gets one frame: `Done` with the pid, or `Refused`.
pub fn serve(start: Start, passphrase: secrecy::SecretString, ready: OwnedFd) -> ! {
    let mut ready = File::from(ready);
    // The socket was bound by the `unlock` process, which has exited; a
    // second `listen` records this process as the one clients reach
    // (`SO_PEERCRED`), so that they can check it is envseal's broker.
    if let Err(e) = nix::sys::socket::listen(&start.listener, nix::sys::socket::Backlog::MAXCONN) {
        let _ = ready.write_all(&frame(&to_reply(&anyhow::anyhow!(
            "cannot listen on the broker's socket: {e}"
        ))));
        envseal_launcher::fork::exit_now(1);
    }
    let log = open_log(&start.loc.log);
    quiet_stdio();
    // A broker that fails to start stops listening before it says so:
    // a client that connects while it exits would meet a process that no
    // longer runs envseal's code, and take it for a counterfeit.
    let (listening, socket) = (start.listener.as_raw_fd(), start.loc.socket.clone());
    let fail = |ready: &mut File, err: anyhow::Error| -> ! {
        let _ = std::fs::remove_file(&socket);
        let _ = nix::unistd::close(listening);
        let _ = ready.write_all(&frame(&to_reply(&err)));
        envseal_launcher::fork::exit_now(1)
    };
    // Forked before the vault is opened (SQLite's state must not cross a
    // fork into a process that opens the same file) and before the key
    // exists; in the recorder the passphrase is wiped, and it closes every
    // descriptor it inherits.
    let mut passphrase = Some(passphrase);
    let recorder = match crate::recorder::Recorder::start(&start.loc.vault, || {
        drop(passphrase.take());
    }) {
        Ok(r) => r,
        Err(e) => fail(
            &mut ready,
            anyhow::anyhow!("cannot start the broker's recorder: {e}"),
        ),
    };
    let passphrase = passphrase.expect("kept by the broker");
    // A broker that fails to unlock ends its recorder first: nothing may
    // hold the socket (which the recorder has for a moment) once it exits.
    let recorder_pid = recorder.pid();
    let fail = |ready: &mut File, err: anyhow::Error| -> ! {
        crate::recorder::stop(recorder_pid);
        fail(ready, err)
    };
    let unlocked = unlock(&start.loc.vault, &passphrase);
    drop(passphrase);
    let (mut vault, keys) = match unlocked {
        Ok(v) => v,
        Err(e) => fail(&mut ready, e),
    };
    let mut record = crate::audit::record("unlock");
    record.detail = Some(format!("broker, idle TTL {}", describe_ttl(start.idle_ttl)));
    crate::audit::write(&mut vault, Some(&keys), &record);
    let signals = match signal_fd() {
        Ok(s) => s,
        Err(e) => fail(&mut ready, anyhow::anyhow!("cannot receive signals: {e}")),
    };
    let pid = std::process::id() as i32;
    let mut broker = Broker {
        signals: Some(signals),
        vault: Some(vault),
        keys: Some(keys),
        recorder: Some(recorder),
        log,
        ..Broker::new(start)
    };
    broker.log(&format!(
        "unlocked; pid {pid}; key in {}; idle TTL {}",
        broker.keys.as_ref().map_or("", |k| k.backing().describe()),
        describe_ttl(broker.idle_ttl)
    ));
    let _ = ready.write_all(&frame(&Reply::Done {
        message: pid.to_string(),
    }));
    drop(ready);
    broker.run()
}

/// The broker's log, append-only, 0600; one larger than [`MAX_LOG`] is
/// moved to `….log.1` first.
fn open_log(path: &std::path::Path) -> Option<File> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .ok()
}

/// Opens the vault in `dir` and derives its key into memory no other
/// process can read ([`SecretBox`]).
fn unlock(
    dir: &std::path::Path,
    passphrase: &secrecy::SecretString,
) -> anyhow::Result<(Vault, SecretBox<Keys>)> {
    let mut vault = Vault::open(dir)?;
    let keys = crate::audit::unlock(&mut vault, passphrase, "unlock")?;
    let keys = SecretBox::new(keys)
        .map_err(|e| anyhow::anyhow!("cannot allocate memory for the key: {e}"))?;
    Ok((vault, keys))
}

/// The signals that end the broker (and `SIGCHLD`), blocked and read from
/// a descriptor in the loop.
fn signal_fd() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        mask.add(s);
    }
    mask.thread_block()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// The daemon's stdin, stdout and stderr become /dev/null: it has no
/// terminal, and nothing it prints may reach one.
fn quiet_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

fn describe_ttl(ttl: Duration) -> String {
    if ttl.is_zero() {
        "none (until `envseal lock`)".into()
    } else {
        humantime::format_duration(ttl).to_string()
    }
}

impl Broker {
    /// A broker serving `start`, before the vault, key, recorder, signals
    /// and log are in place.
    fn new(start: Start) -> Broker {
        let socket_ino = std::fs::metadata(&start.loc.socket)
            .map(|m| m.ino())
            .unwrap_or(0);
        Broker {
            loc: start.loc,
            listener: Some(start.listener),
            socket_ino,
            lock: Some(start.lock),
            signals: None,
            vault: None,
            keys: None,
            recorder: None,
            writers: std::collections::HashSet::new(),
            cache: Cache::new(),
            conns: Vec::new(),
            sessions: HashMap::new(),
            shielded_sessions: std::collections::HashSet::new(),
            brokered: None,
            warned: std::collections::HashSet::new(),
            idle_ttl: start.idle_ttl,
            show: start.show,
            last_use: boot_clock(),
            log: None,
            uid: nix::unistd::geteuid().as_raw(),
        }
    }

    fn log(&mut self, line: &str) {
        if let Some(log) = &mut self.log {
            let now = humantime::format_rfc3339_seconds(SystemTime::now());
            // One write per line, so lines never interleave.
            // Lines quote what clients sent: escaped, one line each.
            let line = envseal_policy::escape(line);
            let _ = log.write_all(format!("{now} {line}\n").as_bytes());
        }
    }

    fn run(&mut self) -> ! {
        loop {
            let timeout = self.timeout();
            let (listener_ready, signal_ready, ready_conns) = {
                let mut fds = Vec::with_capacity(self.conns.len() + 2);
                let listener = self.listener.as_ref().expect("serving");
                let signals = self.signals.as_ref().expect("serving");
                fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
                fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
                for c in &self.conns {
                    fds.push(PollFd::new(c.stream.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        self.log(&format!("poll failed: {e}"));
                        self.shutdown("poll failed");
                    }
                }
                let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
                let conns: Vec<usize> = fds[2..]
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| ready(f))
                    .map(|(i, _)| i)
                    .collect();
                (ready(&fds[0]), ready(&fds[1]), conns)
            };
            if signal_ready {
                self.on_signals();
            }
            // Highest index first, so removals keep the others' indices.
            for i in ready_conns.into_iter().rev() {
                self.on_readable(i);
            }
            if listener_ready {
                self.accept();
            }
            self.expire();
        }
    }

    /// Until the next request deadline or the idle TTL.
    fn timeout(&self) -> PollTimeout {
        let now = Instant::now();
        let mut next: Option<Duration> = self
            .conns
            .iter()
            .filter(|c| c.shield.is_none())
            .map(|c| (c.opened + REQUEST_DEADLINE).saturating_duration_since(now))
            .min();
        if !self.idle_ttl.is_zero() {
            let left = (self.last_use + self.idle_ttl).saturating_sub(boot_clock());
            next = Some(next.map_or(left, |n| n.min(left)));
        }
        // At least every few seconds: `expire` checks that the socket is
        // still there.
        let d = next.map_or(SOCKET_CHECK, |n| n.min(SOCKET_CHECK));
        PollTimeout::try_from(d.as_millis() as i32 + 1).unwrap_or(PollTimeout::NONE)
    }

    fn expire(&mut self) {
        let now = Instant::now();
        if !self.idle_ttl.is_zero() && boot_clock() >= self.last_use + self.idle_ttl {
            self.shutdown("idle TTL expired");
        }
        // A broker no client can reach (its socket removed or replaced —
        // the runtime directory goes at the user's last logout) would hold
        // the key, and the vault's lock, for nothing.
        if !std::fs::symlink_metadata(&self.loc.socket).is_ok_and(|m| m.ino() == self.socket_ino) {
            self.shutdown("its socket was removed: no client could reach it");
        }
        let before = self.conns.len();
        self.conns
            .retain(|c| c.shield.is_some() || now < c.opened + REQUEST_DEADLINE);
        if self.conns.len() < before {
            let n = before - self.conns.len();
            self.log(&format!(
                "closed {n} connection(s) that sent no request in time"
            ));
        }
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.as_mut().expect("serving").read_signal() {
            let got = info.ssi_signo as i32;
            if got == Signal::SIGCHLD as i32 {
                self.reap();
            } else {
                let name = Signal::try_from(got).map_or("a signal", |s| s.as_str());
                self.shutdown(&format!("stopped by {name}"));
            }
        }
    }

    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.sessions.remove(&pid.as_raw());
                        self.shielded_sessions.remove(&pid.as_raw());
                        self.writers.remove(&pid.as_raw());
                        if self
                            .recorder
                            .as_ref()
                            .is_some_and(|r| r.pid() == pid.as_raw())
                        {
                            self.log("the recorder ended; the next exec starts another");
                            self.recorder = None;
                        }
                    }
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.as_ref().expect("serving").accept() {
                Ok((s, _)) => s,
                Err(_) => break,
            };
            let cred = match getsockopt(&stream, PeerCredentials) {
                Ok(c) => c,
                Err(e) => {
                    self.log(&format!("refused a connection: no peer credentials ({e})"));
                    continue;
                }
            };
            if cred.uid() != self.uid {
                self.log(&format!(
                    "refused a connection from uid {} (pid {}): only uid {} may use this broker",
                    cred.uid(),
                    cred.pid(),
                    self.uid
                ));
                refuse(&stream, Code::Denied, "this broker serves another user");
                continue;
            }
            if self.conns.len() >= MAX_CONNECTIONS || stream.set_nonblocking(true).is_err() {
                self.log("refused a connection: too many open");
                continue;
            }
            // The kernel then tells who sent each message (a shield's
            // registration must be answered by the shield itself).
            if let Err(e) = fdpass::pass_credentials(stream.as_fd()) {
                self.log(&format!(
                    "SO_PASSCRED failed ({e}): shields cannot register"
                ));
            }
            self.conns.push(Conn {
                stream,
                pid: cred.pid(),
                buf: Vec::new(),
                fds: Vec::new(),
                opened: Instant::now(),
                shield: None,
                senders: Vec::new(),
                frame_sender: None,
                challenge: None,
                protected: Vec::new(),
            });
        }
    }

    fn on_readable(&mut self, i: usize) {
        // One read per wake-up (poll is level-triggered): a client that
        // streams a huge message is refused after its first 4 bytes.
        let mut chunk = [0u8; 16384];
        let conn = &mut self.conns[i];
        match fdpass::recv(conn.stream.as_fd(), &mut chunk) {
            Ok(r) if r.len == 0 => {
                let conn = self.conns.swap_remove(i);
                if let Some((_, agent)) = conn.shield {
                    self.log(&format!("shield of agent {agent} ended"));
                }
                return;
            }
            Ok(r) => {
                conn.buf.extend_from_slice(&chunk[..r.len]);
                conn.fds.extend(r.fds);
                if !conn.senders.contains(&r.sender) {
                    conn.senders.push(r.sender);
                }
                if conn.fds.len() > fdpass::MAX_FDS {
                    self.drop_conn(i, "sent too many descriptors");
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                self.drop_conn(i, &format!("failed: {e}"));
                return;
            }
        }
        // Whole frames only.
        loop {
            let conn = &mut self.conns[i];
            if conn.buf.len() < 4 {
                return;
            }
            let len = u32::from_be_bytes(conn.buf[..4].try_into().expect("4 bytes")) as usize;
            if len > MAX_FRAME {
                self.refuse_and_drop(i, "the message is larger than the broker accepts");
                return;
            }
            if conn.buf.len() < 4 + len {
                return;
            }
            // Wiped after parsing (a `set` carries a value), and so is
            // the buffer's spare capacity once it is empty.
            let body =
                zeroize::Zeroizing::new(conn.buf.drain(..4 + len).skip(4).collect::<Vec<u8>>());
            conn.frame_sender = match conn.senders[..] {
                [one] => one,
                _ => None,
            };
            if conn.buf.is_empty() {
                zeroize::Zeroize::zeroize(&mut conn.buf);
                conn.senders.clear();
            }
            let request = match serde_json::from_slice::<Request>(&body) {
                Ok(r) if r.v == VERSION => r,
                Ok(r) => {
                    let msg = format!(
                        "protocol version {} is not {VERSION}: the client and the broker are \
                         different envseal versions",
                        r.v
                    );
                    self.refuse_and_drop(i, &msg);
                    return;
                }
                Err(_) => {
                    self.refuse_and_drop(i, "malformed message");
                    return;
                }
            };
            if !self.handle(i, request.body) {
                return;
            }
        }
    }

    fn drop_conn(&mut self, i: usize, why: &str) {
        let conn = self.conns.swap_remove(i);
        self.log(&format!("connection from pid {} {why}", conn.pid));
    }

    fn refuse_and_drop(&mut self, i: usize, why: &str) {
        let pid = self.conns[i].pid;
        self.record_refusal(pid, "request", why);
        let conn = &self.conns[i];
        refuse(
            &conn.stream,
            Code::Usage,
            format!("the broker refused the request: {why}"),
        );
        self.drop_conn(i, &format!("refused: {why}"));
    }

    /// An audit record of a refused request by `pid` (shielded or not).
    fn record_refusal(&mut self, pid: i32, action: &str, why: &str) {
        let shielded = self.shielded(pid);
        let mut record =
            crate::audit::peer_record(&format!("{action}-refused"), pid, self.uid, shielded);
        record.detail = Some(why.to_owned());
        self.record(&record);
    }

    /// Appends `record` from a process of its own, at the lowest priority:
    /// a write that stalls (the database held, a slow disk) never holds up
    /// the broker's other clients. (The record of an exec is committed by
    /// its session before the program starts, see [`session::run`].)
    fn record(&mut self, record: &envseal_vault::audit::Record) {
        // Bounded: a client that makes refusals by the thousand while the
        // vault's lock is held must not fill the process table.
        if self.writers.len() >= MAX_WRITERS {
            self.log(&format!(
                "the record of `{}` was not written: {MAX_WRITERS} writes are pending",
                envseal_policy::escape(&record.action)
            ));
            return;
        }
        match envseal_launcher::fork::fork() {
            Ok(envseal_launcher::fork::Forked::Child) => {
                self.forget_in_child();
                envseal_launcher::fork::background();
                crate::audit::write_to(&self.loc.vault, record);
                envseal_launcher::fork::exit_now(0)
            }
            Ok(envseal_launcher::fork::Forked::Parent(child)) => {
                self.writers.insert(child.as_raw());
            }
            Err(e) => self.log(&format!(
                "the record of `{}` was not written: cannot fork: {e}",
                record.action
            )),
        }
    }

    /// Handles one request; returns whether the connection stays open.
    fn handle(&mut self, i: usize, body: Body) -> bool {
        match body {
            Body::Status => {
                let status = self.status();
                reply(&self.conns[i].stream, &Reply::Status(status));
                self.conns.swap_remove(i);
                false
            }
            Body::Refresh { idle_ttl_seconds } => self.refresh(i, idle_ttl_seconds),
            Body::Lock => {
                reply(
                    &self.conns[i].stream,
                    &Reply::Done {
                        message: format!("locked (broker pid {} stopped)", std::process::id()),
                    },
                );
                self.conns.swap_remove(i);
                self.shutdown("locked by `envseal lock`")
            }
            Body::Shield {
                agent_pid,
                protected,
            } => self.register(i, agent_pid, protected),
            Body::ShieldProof { nonce } => self.prove(i, &nonce),
            Body::Signal { .. } => {
                self.refuse_and_drop(i, "no program is running on this connection");
                false
            }
            Body::Set {
                name,
                value,
                replace,
            } => {
                let conn = self.conns.swap_remove(i);
                self.set_request(&conn, &name, value, replace);
                false
            }
            Body::Show { args } => {
                let conn = self.conns.swap_remove(i);
                self.show(conn, &args);
                false
            }
            Body::Exec(request) => {
                self.last_use = boot_clock();
                let conn = self.conns.swap_remove(i);
                self.exec(conn, request);
                false
            }
        }
    }

    /// `envseal unlock` while this broker runs: a new idle TTL — never
    /// from inside a shield (an agent could keep the key unlocked forever).
    fn refresh(&mut self, i: usize, idle_ttl_seconds: u64) -> bool {
        let conn = self.conns.swap_remove(i);
        if self.shielded(conn.pid) {
            self.log(&format!(
                "refused a TTL change from pid {} inside a shield",
                conn.pid
            ));
            self.record_refusal(conn.pid, "unlock", "a TTL change from inside a shield");
            reply(
                &conn.stream,
                &Reply::Refused {
                    code: Code::Denied,
                    message: "the broker's TTL cannot be changed from inside a shield".into(),
                    hint: Some("the person who ran `envseal unlock` can run it again".into()),
                },
            );
            return false;
        }
        self.idle_ttl = Duration::from_secs(idle_ttl_seconds);
        self.last_use = boot_clock();
        let msg = format!(
            "broker already running (pid {}); idle TTL now {}",
            std::process::id(),
            describe_ttl(self.idle_ttl)
        );
        self.log(&msg);
        reply(&conn.stream, &Reply::Done { message: msg });
        false
    }

    /// `Shield{agent_pid}`: checks the shield and its agent, then
    /// challenges the shield (see [`Broker::prove`]).
    fn register(&mut self, i: usize, agent_pid: i32, protected: Vec<String>) -> bool {
        let pid = self.conns[i].pid;
        if protected.len() > MAX_PROTECTED || protected.iter().any(|p| !p.starts_with('/')) {
            self.refuse_and_drop(i, "a shield's protected paths must be absolute, and few");
            return false;
        }
        self.conns[i].protected = protected.into_iter().map(Into::into).collect();
        let shields = self.conns.iter().filter(|c| c.shield.is_some()).count();
        if shields >= MAX_SHIELDS {
            self.refuse_and_drop(i, "too many shields are registered");
            return false;
        }
        if self.conns[i].shield.is_some() || parent_of(agent_pid) != Some(pid) {
            self.refuse_and_drop(i, "a shield may register only its own child, once");
            return false;
        }
        // A shielded peer adds nothing (its children are shielded
        // already); anyone else must show a confined agent.
        if !self.shielded(pid)
            && let Err(why) = shield_confined(pid, agent_pid)
        {
            self.refuse_registration(i, pid, agent_pid, &why);
            return false;
        }
        // The checks read /proc now; the answer to this challenge must come
        // from the shield's process itself, later. A process that runs
        // envseal's code now cannot run anything else afterwards (envseal
        // never executes another program in its own process), and envseal
        // answers only for the agent it started, on its own connection.
        let nonce: String = {
            use rand::Rng as _;
            let bytes: [u8; 32] = rand::rngs::OsRng.r#gen();
            envseal_policy::hex(&bytes)
        };
        self.conns[i].challenge = Some((pid, agent_pid, nonce.clone()));
        reply(&self.conns[i].stream, &Reply::Challenge { nonce });
        true
    }

    /// `ShieldProof{nonce}`: the challenge answered by the registering
    /// process itself (its pid from `SCM_CREDENTIALS`), both processes
    /// checked again; then the agent is registered.
    fn prove(&mut self, i: usize, nonce: &str) -> bool {
        let Some((pid, agent_pid, expected)) = self.conns[i].challenge.take() else {
            self.refuse_and_drop(i, "no shield registration to answer");
            return false;
        };
        let why = if nonce != expected {
            Some("the answer does not match the challenge".to_owned())
        } else if self.conns[i].frame_sender != Some(pid) {
            Some(format!(
                "the answer did not come from the registering process (pid {pid})"
            ))
        } else if parent_of(agent_pid) != Some(pid) {
            Some("the agent is no longer the shield's child".to_owned())
        } else if self.shielded(pid) {
            None
        } else {
            shield_confined(pid, agent_pid).err()
        };
        if let Some(why) = why {
            self.refuse_registration(i, pid, agent_pid, &why);
            return false;
        }
        self.conns[i].shield = Some((pid, agent_pid));
        let shields: Vec<std::path::PathBuf> = self
            .conns
            .iter()
            .filter(|c| c.shield.is_some())
            .flat_map(|c| c.protected.iter().cloned())
            .collect();
        match Brokered::new(&self.loc, &shields) {
            Ok(b) => self.brokered = Some(b),
            Err(e) => self.log(&format!(
                "cannot build the brokered programs' confinement: {e:#}"
            )),
        }
        reply(
            &self.conns[i].stream,
            &Reply::Done {
                message: "shield registered".into(),
            },
        );
        self.log(&format!("shield {pid} registered agent {agent_pid}"));
        true
    }

    fn refuse_registration(&mut self, i: usize, pid: i32, agent_pid: i32, why: &str) {
        self.log(&format!(
            "refused the registration of pid {agent_pid} by pid {pid}: {why}"
        ));
        self.refuse_and_drop(
            i,
            &format!("refused to register pid {agent_pid} as shielded: {why}"),
        );
    }

    /// `Set`: a new value stored pending, with who wrote it; the record
    /// goes into the vault with the value, sealed by a checkpoint (see
    /// `Vault::set_new`), a refusal apart.
    fn set_request(
        &mut self,
        conn: &Conn,
        name: &str,
        value: crate::protocol::HexValue,
        replace: bool,
    ) {
        let shielded = self.shielded(conn.pid);
        let writer = if shielded {
            envseal_vault::Writer::Shield { pid: conn.pid }
        } else {
            envseal_vault::Writer::Direct
        };
        let mut record = crate::audit::peer_record("set", conn.pid, self.uid, shielded);
        // Only a valid name is recorded: a refused one may be anything the
        // client sent (a value, even), and the log keeps it for good.
        record.names = SecretName::new(name)
            .map(|n| vec![n.to_string()])
            .unwrap_or_default();
        record.detail = Some("pending, through the broker".into());
        let answer = self.set(name, &value, replace, &writer, &record);
        if let Err(e) = &answer {
            self.record(&crate::audit::refused(record, e));
        }
        drop(value);
        let reply_to = match answer {
            Ok(message) => {
                self.log(&format!("stored {name} (pending) for pid {}", conn.pid));
                Reply::Done { message }
            }
            Err(err) => to_reply(&err),
        };
        reply(&conn.stream, &reply_to);
    }

    /// A new value from inside a shield: stored pending, like `set`
    /// without a passphrase, with who wrote it. An existing value, pending
    /// or approved, is never replaced here: the person's `approve` must
    /// endorse what they were shown, not a value swapped in afterwards.
    fn set(
        &mut self,
        name: &str,
        value: &crate::protocol::HexValue,
        replace: bool,
        writer: &envseal_vault::Writer,
        record: &envseal_vault::audit::Record,
    ) -> anyhow::Result<String> {
        let name = SecretName::new(name)?;
        let bytes = value
            .decode()
            .ok_or_else(|| anyhow::anyhow!("the value was not sent as hex"))?;
        let value: secrecy::SecretSlice<u8> = bytes.to_vec().into();
        let vault = self.vault.as_mut().expect("unlocked");
        let exists = || {
            anyhow::Error::from(
                crate::refusal::Refusal::new(
                    Code::Denied,
                    format!("{name} exists: from inside a shield a value cannot be replaced"),
                )
                .hint("a person replaces it outside the shield (`envseal set --replace`)"),
            )
        };
        if replace {
            return Err(exists());
        }
        vault
            .set_new(&name, &value, writer, record, self.keys.as_deref())
            .map_err(|e| match e {
                envseal_vault::Error::SecretExists(_) => exists(),
                e => e.into(),
            })?;
        Ok(format!(
            "stored {name} (pending: a person runs `envseal approve {name}` outside the shield)"
        ))
    }

    fn status(&self) -> StatusInfo {
        StatusInfo {
            pid: std::process::id() as i32,
            vault: self.loc.vault.display().to_string(),
            idle_ttl_seconds: self.idle_ttl.as_secs(),
            locks_in_seconds: (!self.idle_ttl.is_zero()).then(|| {
                (self.last_use + self.idle_ttl)
                    .saturating_sub(boot_clock())
                    .as_secs()
            }),
            shielded_clients: self.conns.iter().filter(|c| c.shield.is_some()).count(),
            running_programs: self.sessions.len(),
            cached_programs: self.cache.len(),
            key_memory: self
                .keys
                .as_ref()
                .map_or("", |k| k.backing().describe())
                .into(),
        }
    }

    /// Whether `pid` descends from an agent a live shield registered (or,
    /// after reparenting, from the shield itself, a subreaper), or from a
    /// session running a program for a shielded caller.
    fn shielded(&self, pid: i32) -> bool {
        let shields: Vec<(i32, i32)> = self.conns.iter().filter_map(|c| c.shield).collect();
        if shields.is_empty() && self.shielded_sessions.is_empty() {
            return false;
        }
        let mut p = pid;
        for _ in 0..4096 {
            if shields
                .iter()
                .any(|&(shield, agent)| p == agent || (p == shield && p != pid))
                || self.shielded_sessions.contains(&p)
            {
                return true;
            }
            match parent_of(p) {
                Some(parent) if parent > 1 => p = parent,
                _ => return false,
            }
        }
        false
    }

    fn exec(&mut self, conn: Conn, request: ExecRequest) {
        let shielded = self.shielded(conn.pid);
        let program = request.program.clone();
        let Conn {
            stream, pid, fds, ..
        } = conn;
        if let Some(busy) = self.busy() {
            self.log(&format!(
                "refused exec of {program} for pid {pid}: too many running"
            ));
            return refuse(&stream, Code::Failure, busy);
        }
        if fds.len() != 4 {
            return refuse(
                &stream,
                Code::Usage,
                "an exec request must come with stdin, stdout, stderr and the working directory",
            );
        }
        self.ensure_recorder();
        let mut record = crate::audit::peer_record("exec", pid, self.uid, shielded);
        // Only a canonical path, as the client's own resolution gives, and
        // one that could not make a screen show another: what is recorded
        // and shown is then what runs.
        let prepared = match canonical_program(&request.program) {
            Ok(()) => self.prepare(request, shielded, &mut record),
            Err(e) => Err(e),
        };
        let (launch, report) = match prepared {
            Ok(p) => p,
            Err(err) => {
                self.log(&format!(
                    "refused exec of {program} for pid {pid} (shielded: {shielded}): {err:#}"
                ));
                self.record(&crate::audit::refused(record, &err));
                reply(&stream, &to_reply(&err));
                return;
            }
        };
        // The record goes to the recorder now; the session waits for it
        // to be on the disk before the program starts.
        let recorded = match self.submit(&record) {
            Ok(fd) => fd,
            Err(e) => {
                let err = crate::audit::not_recorded(&self.loc.vault, &e);
                self.log(&format!("refused exec of {program} for pid {pid}: {err:#}"));
                reply(&stream, &to_reply(&err));
                return;
            }
        };
        self.log(&format!(
            "exec {program} for pid {pid} (shielded: {shielded})"
        ));
        // Unshielded callers are told once per terminal session (the
        // session id of the calling process), not on every exec.
        let warn_unshielded = !shielded && self.warned.insert(session_of(pid));
        reply(
            &stream,
            &Reply::Started {
                shielded,
                warn_unshielded,
            },
        );
        self.start_session(stream, fds, (launch, report), (record, recorded), shielded);
    }

    /// Forks the exec's session, which waits for its record and runs
    /// `launch` on the caller's descriptors; the broker keeps nothing of
    /// it (the decrypted values are wiped as `launch` drops here).
    fn start_session(
        &mut self,
        stream: UnixStream,
        fds: Vec<OwnedFd>,
        (launch, report): (envseal_launcher::Launch, Option<prepare::Report>),
        recorded: (envseal_vault::audit::Record, OwnedFd),
        shielded: bool,
    ) {
        match envseal_launcher::fork::fork() {
            Ok(envseal_launcher::fork::Forked::Child) => {
                self.forget_in_child();
                session::run(stream, fds, launch, report, recorded, &self.loc.vault)
            }
            Ok(envseal_launcher::fork::Forked::Parent(child)) => {
                self.sessions.insert(child.as_raw(), Instant::now());
                if shielded {
                    self.shielded_sessions.insert(child.as_raw());
                }
            }
            Err(e) => {
                self.log(&format!("cannot fork a session: {e}"));
                refuse(
                    &stream,
                    Code::Failure,
                    format!("the broker cannot start a process: {e}"),
                );
            }
        }
    }

    /// Why no further program can start now, if the broker runs as many
    /// as it may.
    fn busy(&self) -> Option<String> {
        (self.sessions.len() >= MAX_SESSIONS).then(|| {
            format!(
                "the broker is already running {MAX_SESSIONS} programs; try again when one has \
                 ended"
            )
        })
    }

    /// `list`, `grants` or `audit` for a caller that cannot open the
    /// vault's files (inside a shield): run by a process of the broker's
    /// own, on the caller's stdout and stderr. Which commands, and how,
    /// the command line decides ([`Show`]).
    fn show(&mut self, conn: Conn, args: &[String]) {
        let Conn {
            stream, pid, fds, ..
        } = conn;
        let refuse = |message: String| refuse(&stream, Code::Usage, message);
        if let Some(busy) = self.busy() {
            return refuse(busy);
        }
        let Ok([stdout, stderr]) = <[OwnedFd; 2]>::try_from(fds) else {
            return refuse("a show request must come with stdout and stderr".into());
        };
        let command = match (self.show)(args) {
            Ok(command) => command,
            Err(message) => return refuse(message),
        };
        self.log(&format!(
            "show `{}` for pid {pid}",
            envseal_policy::escape(&args.join(" "))
        ));
        match envseal_launcher::fork::fork() {
            Ok(envseal_launcher::fork::Forked::Child) => {
                self.forget_in_child();
                let placed = nix::unistd::dup2_stdout(&stdout)
                    .and_then(|()| nix::unistd::dup2_stderr(&stderr));
                drop((stdout, stderr));
                let _ = stream.set_nonblocking(false);
                let status = if placed.is_err() {
                    Code::Failure as u8
                } else {
                    command()
                };
                let _ = std::io::Write::flush(&mut std::io::stdout());
                reply(&stream, &Reply::Exit { status });
                envseal_launcher::fork::exit_now(0)
            }
            Ok(envseal_launcher::fork::Forked::Parent(child)) => {
                self.sessions.insert(child.as_raw(), Instant::now());
            }
            Err(e) => refuse(format!("the broker cannot start a process: {e}")),
        }
    }

    /// Hands `record` to the recorder; returns the descriptor its answer
    /// will come on.
    fn submit(&mut self, record: &envseal_vault::audit::Record) -> std::io::Result<OwnedFd> {
        match &self.recorder {
            Some(r) => r.submit(record),
            None => Err(std::io::Error::other(
                "the broker's recorder is not running",
            )),
        }
    }

    /// Starts a recorder if the last one ended. Called before anything of
    /// an exec is decrypted, so that the fork holds no value; the key's
    /// pages are not mapped in a fork (`MADV_DONTFORK`), and the recorder
    /// closes every descriptor it inherits.
    fn ensure_recorder(&mut self) {
        if self.recorder.is_some() {
            return;
        }
        // The broker's connection is closed across the fork: SQLite's state
        // must not reach a process that opens the same file.
        drop(self.vault.take());
        match crate::recorder::Recorder::start(&self.loc.vault, || {}) {
            Ok(r) => self.recorder = Some(r),
            Err(e) => self.log(&format!("cannot start a recorder: {e}")),
        }
        match Vault::open(&self.loc.vault) {
            Ok(v) => self.vault = Some(v),
            Err(e) => self.shutdown(&format!("cannot open the vault again: {e}")),
        }
    }

    /// Checks the grant and builds the launch: the verified copy (from the
    /// cache when the file is unchanged) and the decrypted values.
    fn prepare(
        &mut self,
        request: ExecRequest,
        shielded: bool,
        record: &mut envseal_vault::audit::Record,
    ) -> anyhow::Result<(envseal_launcher::Launch, Option<prepare::Report>)> {
        let mut request = prepare::Request::try_from(request)?;
        request.shielded = Some(shielded);
        if shielded {
            request.masking = shielded_masking(request.masking)?;
        }
        let (mut launch, report) = {
            let vault = self.vault.as_ref().expect("unlocked");
            let keys = self.keys.as_ref().expect("unlocked");
            let endorsed = vault.endorsed(keys)?;
            prepare::prepare(&endorsed, &request, Some(&mut self.cache), record)?
        };
        if shielded {
            let brokered = self.brokered_confinement()?;
            if launch.tier == envseal_launcher::Tier::Lockdown {
                // Lockdown writes only its private /tmp (which a stacked
                // domain would deny: Landlock ignores a rule on a covered
                // mount point) and the grant's directories, which may
                // then be neither in nor around a protected path; its own
                // namespaces scope signals and abstract sockets.
                launch.writable.protected = brokered.protected.clone();
            } else {
                launch.confine = Some(brokered.ruleset.try_clone()?);
            }
        }
        Ok((launch, report))
    }

    /// The confinement of what the broker runs for shielded callers: built
    /// when a shield registers (so it is as recent as the newest agent's
    /// own domain, and an exec does not pay for it), or at the first
    /// shielded exec.
    fn brokered_confinement(&mut self) -> anyhow::Result<&Brokered> {
        if self.brokered.is_none() {
            self.brokered = Some(Brokered::new(&self.loc, &[])?);
        }
        Ok(self.brokered.as_ref().expect("just built"))
    }

    /// In a forked session: let go of everything the broker holds without
    /// touching it. The key's pages are not mapped in a fork
    /// (`MADV_DONTFORK`), the vault's SQLite connection must not be used
    /// across a fork, and the lock must not be released.
    fn forget_in_child(&mut self) {
        std::mem::forget(self.keys.take());
        std::mem::forget(self.vault.take());
        if let Some(lock) = self.lock.take() {
            let fd = lock.as_raw_fd();
            std::mem::forget(lock);
            let _ = nix::unistd::close(fd);
        }
        self.listener = None;
        self.recorder = None;
        self.signals = None;
        self.conns.clear();
        self.log = None;
        self.cache = Cache::new();
    }

    /// Wipes the key, removes the socket (if it is still this broker's)
    /// and exits. Running programs keep running.
    fn shutdown(&mut self, why: &str) -> ! {
        // The last checkpoint covers everything the broker did.
        if let (Some(vault), Some(keys)) = (self.vault.as_mut(), self.keys.as_ref()) {
            let mut record = crate::audit::record("lock");
            record.detail = Some(why.to_owned());
            crate::audit::write(vault, Some(keys), &record);
        }
        drop(self.keys.take());
        self.log(&format!("locked: {why}; key wiped"));
        if std::fs::symlink_metadata(&self.loc.socket).is_ok_and(|m| m.ino() == self.socket_ino) {
            let _ = std::fs::remove_file(&self.loc.socket);
        }
        drop(self.lock.take());
        std::process::exit(0)
    }
}

/// Best-effort reply on a non-blocking socket: a client that does not
/// read loses it, the broker never waits.
fn reply(stream: &UnixStream, message: &Reply) {
    let mut s = stream;
    let _ = s.write_all(&frame(message));
}

/// Refuses a request with `code` and `message` (no hint).
fn refuse(stream: &UnixStream, code: Code, message: impl Into<String>) {
    reply(
        stream,
        &Reply::Refused {
            code,
            message: message.into(),
            hint: None,
        },
    );
}

/// Makes the socket usable by its owner only (the directory is 0700 too).
pub fn restrict_socket(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The fields of `/proc/PID/status` that show how a process is confined.
#[derive(Debug, PartialEq, Eq)]
struct Confinement {
    no_new_privs: bool,
    /// 0 none, 1 strict, 2 filter.
    seccomp: u8,
    filters: u32,
    tracer: i32,
    /// The size of its executable's code, in pages (`/proc/PID/statm`,
    /// which, unlike `exe`, can be read of a non-dumpable process).
    text: u64,
}

fn confinement(pid: &str) -> Option<Confinement> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    Some(Confinement {
        no_new_privs: field("NoNewPrivs")? == "1",
        seccomp: field("Seccomp")?.parse().ok()?,
        filters: field("Seccomp_filters")?.parse().ok()?,
        tracer: field("TracerPid")?.parse().ok()?,
        text: crate::procfs::code_size(pid)?,
    })
}

/// Whether `agent`, which `shield` (its parent) registers, is confined the
/// way `envseal shield` confines it:
/// - both run envseal's own code: the agent is registered after it is
///   confined and before it executes its command, so it is still a copy of
///   the shield's process; the broker compares their code size with its own
///   (`exe` cannot be read of a non-dumpable process, `statm` can);
/// - the shield's process is confined no more than the broker (a filter
///   the broker lacks could fake the results of the calls that confine),
///   and neither process is traced;
/// - the agent has no_new_privs and exactly one more seccomp filter than its
///   parent (the shield's).
///
/// A process that sends the message for a child of its own fails here,
/// with or without a filter of its own in that child. What `/proc` cannot
/// show (the Landlock domain), and a same-user process that loads code into
/// envseal's own process (`LD_PRELOAD`) or builds a program of exactly
/// envseal's code size, are stated limits (docs/threat-model.md, G6).
fn shield_confined(shield: i32, agent: i32) -> Result<(), String> {
    let unreadable = |who: &str| format!("the state of {who} cannot be read");
    let me = confinement("self").ok_or_else(|| unreadable("the broker"))?;
    let peer = confinement(&shield.to_string()).ok_or_else(|| unreadable("the shield"))?;
    let child = confinement(&agent.to_string()).ok_or_else(|| unreadable("the agent"))?;
    if peer.text != me.text || child.text != me.text {
        return Err(
            "the registering process is not this envseal's shield (if envseal was upgraded \
             while the broker ran: `envseal lock`, then unlock again)"
                .into(),
        );
    }
    if peer.tracer != 0 || child.tracer != 0 {
        return Err("a process is being traced".into());
    }
    if peer.filters != me.filters {
        return Err(format!(
            "the registering process runs under {} seccomp filter(s), the broker under {}",
            peer.filters, me.filters
        ));
    }
    if !child.no_new_privs || child.seccomp != 2 || child.filters != peer.filters + 1 {
        return Err("it is not confined by envseal's shield (no_new_privs and its filter)".into());
    }
    Ok(())
}

/// The session id of `pid` (`/proc/PID/stat`, field 6), or `pid` itself
/// when it cannot be read.
fn session_of(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(pid)
}

/// Refuses a program path that is not canonical (the client resolves it
/// before sending) or that holds characters that could forge a screen.
fn canonical_program(program: &str) -> anyhow::Result<()> {
    if envseal_policy::has_deceptive(program) {
        return Err(
            envseal_policy::Error::Deceptive(envseal_policy::escape(program).into_owned()).into(),
        );
    }
    let canonical = std::fs::canonicalize(program)
        .ok()
        .and_then(|p| p.into_os_string().into_string().ok());
    if canonical.as_deref() != Some(program) {
        return Err(crate::refusal::Refusal::new(
            Code::Usage,
            format!(
                "the broker accepts only a program's canonical path, not {}",
                envseal_policy::escape(program)
            ),
        )
        .into());
    }
    Ok(())
}

/// Time since boot, suspended time included (`CLOCK_BOOTTIME`); the
/// monotonic clock stops while the machine sleeps, and an idle TTL measured
/// on it would leave a suspended laptop unlocked for the night.
fn boot_clock() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        // Never on Linux; the monotonic clock then, rather than no TTL.
        .unwrap_or_else(|_| start.elapsed())
}

/// How a shielded caller's program is masked: always, its terminal
/// through a pseudo-terminal envseal masks; `--no-mask` is refused (the
/// agent would read the secret in the program's output).
fn shielded_masking(asked: envseal_launcher::Masking) -> anyhow::Result<envseal_launcher::Masking> {
    if asked == envseal_launcher::Masking::Never {
        return Err(crate::refusal::Refusal::new(
            crate::refusal::Code::Denied,
            "--no-mask is refused for a caller inside an envseal shield: what the program prints \
             reaches the agent",
        )
        .into());
    }
    Ok(envseal_launcher::Masking::Interposed)
}

/// The shield's write protections for brokered programs: the Landlock
/// ruleset stacked on them in tiers none and hardened, and the protected
/// paths Lockdown's writable directories must keep clear of.
struct Brokered {
    ruleset: OwnedFd,
    protected: Vec<std::path::PathBuf>,
}

impl Brokered {
    /// The broker's own protections and those the live `shields` sent.
    fn new(
        loc: &crate::location::Location,
        shields: &[std::path::PathBuf],
    ) -> anyhow::Result<Brokered> {
        let confinement = crate::protect::for_brokered(loc, shields)?;
        let domain = envseal_launcher::shield::domain(&confinement)?;
        Ok(Brokered {
            ruleset: domain.into_ruleset(),
            protected: confinement.protected,
        })
    }
}
