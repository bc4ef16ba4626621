//! Drives envseal on a pseudo-terminal, as a person at a keyboard would:
//! `setsid -w -c` makes the pty envseal's controlling terminal, so its
//! no-echo prompts (which open `/dev/tty`) really run.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Env, Run};

/// A running envseal attached to a fresh pty.
pub struct Terminal<'a> {
    env: &'a Env,
    label: String,
    child: Child,
    screen: Arc<Mutex<Vec<u8>>>,
    keyboard: std::fs::File,
    /// The terminal's own path (`/dev/pts/N`), to read its settings.
    pts: std::path::PathBuf,
}

impl<'a> Terminal<'a> {
    /// Starts `envseal ARGS` on a new terminal.
    pub fn spawn(env: &'a Env, args: &[&str]) -> Terminal<'a> {
        Terminal::spawn_with(env, args, &[])
    }

    /// Like [`Terminal::spawn`], with the environment variables `vars` set.
    pub fn spawn_with(env: &'a Env, args: &[&str], vars: &[(&str, &str)]) -> Terminal<'a> {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let master: OwnedFd = pty.master;
        let slave: OwnedFd = pty.slave;
        // openpty leaves them inheritable: a command another test thread
        // starts meanwhile must not get them (it would see an extra open
        // descriptor).
        for fd in [&master, &slave] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .expect("FD_CLOEXEC");
        }
        let pts = nix::unistd::ttyname(&slave).expect("ttyname");
        let mut cmd = Command::new("setsid");
        cmd.args(["-w", "-c"])
            .arg(super::bin())
            .args(args)
            .env("ENVSEAL_HOME", &env.home)
            .env_remove("XDG_DATA_HOME")
            .envs(vars.iter().copied())
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        let child = cmd
            .spawn()
            .expect("setsid (util-linux) is needed for the terminal tests");
        // Our copies of the slave must close, or the reader never sees EOF.
        drop(cmd);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = std::fs::File::from(master.try_clone().unwrap());
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            env,
            label: format!("{} (on a terminal)", args.join(" ")),
            child,
            screen,
            keyboard: std::fs::File::from(master),
            pts,
        }
    }

    /// Waits until `needle` has appeared `count` times on the screen.
    pub fn expect(&self, needle: &str, count: usize) {
        let start = Instant::now();
        loop {
            let text = String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned();
            if text.matches(needle).count() >= count {
                return;
            }
            assert!(
                start.elapsed() < super::PATIENCE,
                "{needle:?} never appeared on the terminal; screen: {}",
                self.env.redact(&text)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `text` and Enter.
    pub fn type_line(&mut self, text: &str) {
        self.keyboard
            .write_all(format!("{text}\n").as_bytes())
            .unwrap();
    }

    /// Types `bytes` as they are (a control character, say).
    pub fn type_raw(&mut self, bytes: &[u8]) {
        self.keyboard.write_all(bytes).unwrap();
    }

    /// Waits for exit, then says whether the terminal echoes what is
    /// typed (as a person would find it at the next prompt).
    pub fn finish_and_check_echo(mut self) -> (Run, bool) {
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = self.child.wait();
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(&self.pts)
            .expect("reopen the terminal");
        let settings = nix::sys::termios::tcgetattr(&tty).expect("tcgetattr");
        let echo = settings
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ECHO);
        (self.finish(), echo)
    }

    /// Waits for exit; the whole screen is recorded for the G1 scan.
    pub fn finish(mut self) -> Run {
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let screen = self.screen.lock().unwrap().clone();
        self.env.record(
            self.label,
            Output {
                status,
                stdout: screen,
                stderr: Vec::new(),
            },
        )
    }
}
