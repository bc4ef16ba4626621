//! User and group id maps for the sandbox's user namespace, and the
//! subordinate-id `chown` that keeps the program unreadable (G7).
//!
//! The user owns the user namespace the sandbox creates, so the user's
//! other processes hold every capability in it, and could ptrace even a
//! non-dumpable program there — unless the executed file's owner or group
//! is not mapped in that namespace: then the kernel refuses the read
//! override and raises the program's `mm->user_ns` to the initial
//! namespace, where the user has no capability. The program's namespace
//! maps only the user's own uid and primary gid, and before the launch:
//!
//! - if the user has a supplementary group, the sealed memfd's group is
//!   set to it (an owner may do that unprivileged) — it is unmapped;
//! - else a short-lived helper, in a namespace where 0 maps to the user
//!   and 1 to the user's first subordinate id, `fchown`s the memfd to 1:1.
//!
//! Maps of a non-dumpable process can be written only by a privileged
//! writer: the setuid `newuidmap`/`newgidmap` (package `uidmap`), or
//! envseal itself when it runs as root. The processes are never made
//! dumpable for it.

use std::ffi::CStr;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::sys::{clone, fdpass, io, mount};

/// The caller's ids and what the machine offers for mapping them.
#[derive(Clone, Debug)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// The first subordinate uid and gid from /etc/subuid and /etc/subgid.
    pub subordinate: Option<(u32, u32)>,
    /// A supplementary group of this process other than the primary one.
    pub supplementary: Option<u32>,
    /// `newuidmap` and `newgidmap`, when envseal is not root.
    pub tools: Option<(PathBuf, PathBuf)>,
    pub user: String,
}

impl Ids {
    /// Reads the real ids, the user name, subordinate ranges and tools.
    pub fn current() -> Ids {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let user = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let sub = |file: &str| first_subordinate(&std::fs::read_to_string(file).ok()?, &user, uid);
        let subordinate = sub("/etc/subuid").zip(sub("/etc/subgid"));
        let tools = tool("newuidmap").zip(tool("newgidmap"));
        let supplementary = nix::unistd::getgroups()
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.as_raw())
            .find(|&g| g != gid);
        Ids {
            uid,
            gid,
            subordinate,
            supplementary,
            tools,
            user,
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether maps can be written at all (root, or the uidmap tools).
    pub fn can_map(&self) -> bool {
        self.is_root() || self.tools.is_some()
    }

    /// How the launched program is kept out of the user's reach in a
    /// namespaced tier (G7), or why it cannot be.
    pub fn g7(&self) -> std::result::Result<G7, String> {
        if self.is_root() {
            return Err("envseal runs as root, and root can read any program".into());
        }
        if self.tools.is_none() {
            return Err("newuidmap/newgidmap are missing (install the uidmap package)".into());
        }
        // Subordinate ids first: that route also gives the program its
        // real path (see `copy_helper`).
        if self.subordinate.is_some() {
            return Ok(G7::Subordinate);
        }
        if let Some(group) = self.supplementary {
            return Ok(G7::Group(group));
        }
        Err(format!(
            "user {} has no supplementary group and no subordinate ids in /etc/subuid and \
             /etc/subgid (add some: usermod --add-subuids 100000-165535 --add-subgids \
             100000-165535 {})",
            self.user, self.user
        ))
    }

    /// The maps for a namespace holding only the user's own ids.
    pub(crate) fn self_maps(&self, pid: libc::pid_t) -> Maps {
        Maps {
            pid,
            uid: format!("{} {} 1", self.uid, self.uid),
            gid: format!("{} {} 1", self.gid, self.gid),
        }
    }

    /// Writes every map in `maps` — as root directly, else with all the
    /// `newuidmap`/`newgidmap` runs started at once and then awaited (each
    /// is a setuid process start; doing them one after the other was most
    /// of a namespaced launch's time).
    pub(crate) fn write_all(&self, maps: &[Maps]) -> Result<()> {
        if self.is_root() {
            for m in maps {
                for (file, map) in [("uid_map", &m.uid), ("gid_map", &m.gid)] {
                    std::fs::write(format!("/proc/{}/{file}", m.pid), map).map_err(|source| {
                        Error::Sandbox {
                            step: "write the namespace's id maps",
                            source,
                            fix: "",
                        }
                    })?;
                }
            }
            return Ok(());
        }
        let Some((newuidmap, newgidmap)) = &self.tools else {
            return Err(Error::Sandbox {
                step: "map ids in the sandbox's user namespace",
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
                fix: "install the uidmap package (newuidmap, newgidmap)",
            });
        };
        let mut running = Vec::new();
        for m in maps {
            for (tool, map) in [(newuidmap, &m.uid), (newgidmap, &m.gid)] {
                let child = Command::new(tool)
                    .arg(m.pid.to_string())
                    .args(map.split(' '))
                    .env_clear()
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|source| Error::Sandbox {
                        step: "run newuidmap/newgidmap",
                        source,
                        fix: "install the uidmap package",
                    })?;
                running.push((tool, child));
            }
        }
        let mut failure = None;
        for (tool, child) in running {
            let out = child.wait_with_output();
            let failed = match out {
                Ok(o) if o.status.success() => continue,
                Ok(o) => format!(
                    "{} failed: {}",
                    tool.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => format!("{}: {e}", tool.display()),
            };
            failure.get_or_insert(failed);
        }
        match failure {
            None => Ok(()),
            Some(msg) => Err(Error::Sandbox {
                step: "map ids in the sandbox's user namespace",
                source: std::io::Error::other(msg),
                fix: "check /etc/subuid and /etc/subgid, and that newuidmap is setuid root",
            }),
        }
    }

    /// Starts the helper that copies the program (and a script) onto a
    /// tmpfs of its own once its maps are written, the files owned by the
    /// first subordinate uid and gid (see the module comment), and sends
    /// each file as a detached mount over `sock` for the sandbox's PID 1
    /// to attach at its real path. Returns it with the maps it needs.
    /// With [`G7::Subordinate`] the copies are owned by a subordinate id;
    /// otherwise (root, or no G7) by the user.
    pub(crate) fn copy_helper(&self, copies: &[Copy], sock: RawFd) -> Result<(Helper, Maps)> {
        // 0 is the user; with subordinate ids (G7), 1 is the first of them
        // and owns the copies; without, the user owns them.
        let (extra_uid, extra_gid, owner) = match (self.is_root(), self.subordinate) {
            (false, Some((subuid, subgid))) => {
                (format!(" 1 {subuid} 1"), format!(" 1 {subgid} 1"), 1)
            }
            _ => (String::new(), String::new(), 0),
        };
        let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let helper =
            clone::clone(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).map_err(|e| Error::Sandbox {
                step: "create a user namespace",
                source: std::io::Error::from_raw_os_error(e),
                fix: USERNS_FIX,
            })?;
        if helper == 0 {
            // Child: wait for the maps (0 → the user, 1 → the subordinate
            // ids), then copy. System calls only.
            let go = io::read_byte(go_r.as_raw_fd());
            if go != Ok(true) {
                io::exit(255);
            }
            io::exit(match copy_out(copies, sock, owner) {
                Ok(()) => 0,
                Err(e) => e.min(254),
            });
        }
        let maps = Maps {
            pid: helper,
            uid: format!("0 {} 1{extra_uid}", self.uid),
            gid: format!("0 {} 1{extra_gid}", self.gid),
        };
        Ok((
            Helper {
                pid: helper,
                go: go_w,
            },
            maps,
        ))
    }
}

/// One file the copy helper makes: from the sealed copy `src`, named
/// `name` on its tmpfs, with `mode`.
pub(crate) struct Copy {
    pub(crate) src: RawFd,
    pub(crate) name: &'static CStr,
    pub(crate) mode: libc::mode_t,
}

/// The copy helper's work (a child: system calls only): a new tmpfs, each
/// copy on it owned by `owner` (1: the subordinate ids), the superblock
/// made read-only, then each file sent over `sock` as a detached mount.
fn copy_out(
    copies: &[Copy],
    sock: RawFd,
    owner: libc::uid_t,
) -> std::result::Result<(), crate::sys::Errno> {
    let (fs, mnt) = mount::new_tmpfs()?;
    for c in copies {
        mount::copy_into(mnt, c.name, c.src, owner, owner, c.mode)?;
    }
    mount::read_only(fs)?;
    let mut trees = [-1; fdpass::CHILD_FDS];
    for (tree, c) in trees.iter_mut().zip(copies) {
        *tree = mount::clone_file(mnt, c.name)?;
    }
    fdpass::child_send(sock, &trees[..copies.len()])
}

/// How G7 is achieved for a launch (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G7 {
    /// The sealed copy's group becomes this supplementary group.
    Group(u32),
    /// A helper gives the sealed copy to the first subordinate ids.
    Subordinate,
}

/// Sets the sealed copy's group to `group` (one the user belongs to).
pub(crate) fn chgrp(memfd: &OwnedFd, group: u32) -> Result<()> {
    nix::unistd::fchown(memfd, None, Some(group.into())).map_err(|e| Error::Sandbox {
        step: "give the program's copy to a supplementary group",
        source: e.into(),
        fix: "",
    })
}

/// One namespace's uid and gid maps.
pub(crate) struct Maps {
    pid: libc::pid_t,
    uid: String,
    gid: String,
}

/// The running copy helper (see [`Ids::copy_helper`]).
pub(crate) struct Helper {
    pid: libc::pid_t,
    go: OwnedFd,
}

/// The copy helper, let go (see [`Helper::start`]).
pub(crate) struct Running {
    pid: libc::pid_t,
}

impl Running {
    /// Waits for the helper; an error if it did not copy.
    pub(crate) fn wait(self) -> Result<()> {
        Helper::wait(self.pid)
    }
}

impl Helper {
    /// Lets the helper copy (its maps must be written).
    pub(crate) fn start(self) -> Running {
        let _ = nix::unistd::write(&self.go, b"g");
        let Helper { pid, go } = self;
        drop(go);
        Running { pid }
    }

    /// Ends the helper without letting it act.
    pub(crate) fn abandon(self) {
        let Helper { pid, go } = self;
        drop(go);
        let _ = Self::wait(pid);
    }

    fn wait(pid: libc::pid_t) -> Result<()> {
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
            .map_err(Error::sys("wait for the id helper"))?;
        match status {
            nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
            nix::sys::wait::WaitStatus::Exited(_, errno) if errno < 255 => Err(Error::Sandbox {
                step: "copy the program onto the sandbox's tmpfs, owned by a subordinate id",
                source: std::io::Error::from_raw_os_error(errno),
                fix: "",
            }),
            other => Err(Error::Sandbox {
                step: "copy the program onto the sandbox's tmpfs, owned by a subordinate id",
                source: std::io::Error::other(format!("the helper ended with {other:?}")),
                fix: "",
            }),
        }
    }
}

/// What to do when the kernel refuses a user namespace.
pub const USERNS_FIX: &str = "enable unprivileged user namespaces (sysctl \
     kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0; on Ubuntu also \
     kernel.apparmor_restrict_unprivileged_userns=0), or use --tier none";

/// The first subordinate id of `user` (or `uid`) in a subuid/subgid file.
fn first_subordinate(text: &str, user: &str, uid: u32) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let start: u32 = start.parse().ok()?;
        let count: u32 = count.parse().ok()?;
        ((who == user || who == uid.to_string()) && count > 0 && !who.is_empty()).then_some(start)
    })
}

/// A system tool by absolute path only (never from the caller's PATH).
fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:65536\nbob:300000:0\n";
        assert_eq!(first_subordinate(text, "alice", 1000), Some(100000));
        assert_eq!(first_subordinate(text, "carol", 1001), Some(200000));
        assert_eq!(first_subordinate(text, "bob", 1002), None);
        assert_eq!(first_subordinate("", "alice", 1000), None);
    }
}
