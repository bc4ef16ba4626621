//! Running a verified program with its secrets, as a child that envseal
//! waits for, forwarding signals and passing its exit status through.

use std::ffi::{CString, OsString, c_char};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use secrecy::{ExposeSecret as _, SecretSlice};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::program::{Role, Verified};
use crate::sys::{files, signals, spawn};

/// How a secret reaches the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In the environment variable.
    Env,
    /// In a sealed, read-only memfd kept open across exec; the variable
    /// holds its path, `/dev/fd/N`.
    File,
}

/// One secret to deliver. The value is wiped when this is dropped.
pub struct SecretItem {
    /// The environment variable (for a file: the one holding its path).
    pub variable: String,
    pub delivery: Delivery,
    pub value: SecretSlice<u8>,
}

/// Everything needed to run a pinned program.
pub struct Launch {
    /// What `execveat` runs: the program, or a script's interpreter.
    pub executable: Verified,
    /// A `#!` script's verified copy and its `#!` argument.
    pub script: Option<(Verified, Option<String>)>,
    /// `argv[0]` (for a script, the interpreter's path is used instead).
    pub argv0: OsString,
    /// The arguments after the program.
    pub args: Vec<OsString>,
    /// The environment, already rebuilt (see [`crate::rebuild`]).
    pub env: Vec<(OsString, OsString)>,
    /// The secrets; variables of the same names in `env` are replaced.
    pub secrets: Vec<SecretItem>,
}

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Exit {
    /// The status a shell would report: the code, or 128 + signal.
    pub fn status(self) -> u8 {
        match self {
            Exit::Code(c) => (c & 0xff) as u8,
            Exit::Signal(s) => (128 + s).clamp(0, 255) as u8,
        }
    }
}

/// Runs the program and waits for it. The secrets are copied into the
/// child's environment (or sealed memfds) and wiped here as soon as the
/// child has exec'd; signals reaching envseal are forwarded meanwhile.
pub fn run(launch: Launch) -> Result<Exit> {
    let Launch {
        executable,
        script,
        argv0,
        args,
        env,
        secrets,
    } = launch;
    if executable.role() != Role::Executable {
        return Err(Error::Sys {
            action: "launch",
            source: std::io::Error::other("the executable was loaded as a script"),
        });
    }

    // Secret files first: their descriptors go into the environment.
    let mut files_kept: Vec<OwnedFd> = Vec::new();
    let mut envp: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for item in &secrets {
        let value = item.value.expose_secret();
        match item.delivery {
            Delivery::Env => envp.push(entry(item.variable.as_bytes(), value)),
            Delivery::File => {
                let fd = secret_file(&item.variable, value)?;
                let path = format!("/dev/fd/{}", fd.as_raw_fd());
                envp.push(entry(item.variable.as_bytes(), path.as_bytes()));
                files_kept.push(fd);
            }
        }
    }
    for (k, v) in &env {
        if !secrets
            .iter()
            .any(|s| s.variable.as_bytes() == k.as_bytes())
        {
            envp.push(entry(k.as_bytes(), v.as_bytes()));
        }
    }

    let mut argv: Vec<CString> = Vec::new();
    let mut keep: Vec<RawFd> = files_kept.iter().map(|f| f.as_raw_fd()).collect();
    match &script {
        None => argv.push(cstring(argv0.into_vec())?),
        Some((copy, arg)) => {
            argv.push(cstring(executable.path().as_bytes().to_vec())?);
            if let Some(arg) = arg {
                argv.push(cstring(arg.clone().into_bytes())?);
            }
            argv.push(cstring(format!("/dev/fd/{}", copy.raw_fd()).into_bytes())?);
            keep.push(copy.raw_fd());
        }
    }
    for a in args {
        argv.push(cstring(a.into_vec())?);
    }

    let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const c_char> = envp.iter().map(|e| e.as_ptr().cast()).collect();
    envp_ptrs.push(std::ptr::null());

    let waited = signals::waited_set();
    let mask = signals::block(&waited).map_err(Error::sys("block signals"))?;
    let max_fd = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft.min(65536) as RawFd)
        .unwrap_or(1024);
    let spawned = spawn::spawn(&spawn::Prepared {
        exec_fd: executable.raw_fd(),
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        keep: &keep,
        mask: &mask,
        max_fd,
    });
    // The child has its own copy (or failed): wipe ours now.
    drop(envp_ptrs);
    drop(envp);
    drop(secrets);
    drop(files_kept);
    drop(script);
    let child = spawned.map_err(|source| Error::Exec {
        path: executable.path().into(),
        source,
    })?;
    drop(executable);

    let exit = wait(child, &waited);
    // Restore the caller's mask (a library caller may launch again).
    let _ =
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&mask), None);
    exit
}

/// Waits for the child, forwarding the signals sent to envseal.
fn wait(child: nix::unistd::Pid, waited: &nix::sys::signal::SigSet) -> Result<Exit> {
    loop {
        let got = signals::wait(waited).map_err(Error::sys("wait for signals"))?;
        if got.signal == libc::SIGCHLD {
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Exit::Signal(sig as i32)),
                Ok(_) => continue,
                Err(e) => return Err(Error::sys("wait for the program")(e)),
            }
        }
        // A terminal's signals already reached the program (same process
        // group); forward only what was sent to envseal itself.
        if !got.from_kernel
            && let Ok(sig) = Signal::try_from(got.signal)
        {
            let _ = kill(child, sig);
        }
    }
}

/// `NAME=value\0`, in a buffer wiped on drop and allocated once at its
/// final size (so no unwiped copy is left behind by a reallocation).
fn entry(name: &[u8], value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut e = Zeroizing::new(Vec::with_capacity(name.len() + value.len() + 2));
    e.extend_from_slice(name);
    e.push(b'=');
    e.extend_from_slice(value);
    e.push(0);
    e
}

fn cstring(bytes: Vec<u8>) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::Sys {
        action: "build the argument list",
        source: std::io::Error::other("an argument contains a NUL byte"),
    })
}

/// A sealed, read-only memfd holding `value`, kept open across exec.
fn secret_file(variable: &str, value: &[u8]) -> Result<OwnedFd> {
    let fd = files::memfd(&format!("envseal:{variable}"), false)
        .map_err(Error::sys("create a memfd for a secret file"))?;
    let mut file = File::from(fd);
    file.write_all(value).map_err(|source| Error::Sys {
        action: "write a secret file",
        source,
    })?;
    let fd = OwnedFd::from(file);
    files::seal(&fd, 0o400).map_err(Error::sys("seal a secret file"))?;
    Ok(fd)
}
