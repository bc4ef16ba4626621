//! `envseal shield`: the confinement a person puts an agent in.
//!
//! A Landlock domain (signal and abstract-unix-socket scoping where the
//! kernel has Landlock ABI 6; by default also filesystem rules that take
//! write access away from a list of protected paths, all access to the
//! files of hidden ones (the vault), and leave everything else readable
//! and writable), `PR_SET_NO_NEW_PRIVS`, and a seccomp filter closing the
//! gaps Landlock leaves between processes of one user (see
//! [`crate::sandbox::shield_filter`]). The domain is the boundary: a
//! process inside it cannot read `/proc` of, trace or signal any process
//! outside it — the broker, the programs it launches, their children —
//! even dumpable ones, and whatever the agent starts stays inside.
//!
//! Landlock only grants, so "everything but the protected paths" is built
//! by punching holes: for each directory on the way from `/` to a
//! protected path, every entry that is neither protected nor on such a way
//! gets full write access beneath it. The directories on the way get no
//! write access themselves: no entry can be created, removed or renamed
//! in them (so a missing start-up file cannot be created either). When
//! reads are handled too (something is hidden), protected paths get read
//! access beneath them and `/` gets listing access, so the directories on
//! the way stay listable while no file beneath a hidden path can be
//! opened.

use std::collections::BTreeSet;
use std::ffi::{CStr, CString, OsString};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, Scope,
};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::launch::Exit;
use crate::sys::spawn::null_terminated;
use crate::sys::{clone, io, mount, seccomp, signals, spawn};

/// What the shield protects and how.
#[derive(Debug, Clone)]
pub struct Confinement {
    /// Paths whose contents (and, for a missing one, whose creation) are
    /// kept from writes. Absolute; missing ones are fine.
    pub protected: Vec<PathBuf>,
    /// Paths kept from reads as well: no file beneath may be opened at all
    /// (the vault's files: a read-only open is enough to hold SQLite's
    /// locks). Their entries may still be listed.
    pub hidden: Vec<PathBuf>,
    /// Under `--nested-sandbox`, the names shown inside each hidden path
    /// (as files that cannot be opened), so that a program finds them
    /// closed rather than missing.
    pub hidden_files: Vec<String>,
    /// `--nested-sandbox`: a scope-only domain with no filesystem rules,
    /// so mount-based sandboxes (bubblewrap) work inside. The agent runs in
    /// a user and mount namespace of its own instead, where the protected
    /// paths that exist are bind-mounted read-only and the hidden ones are
    /// covered by an empty, unreadable tmpfs (missing protected paths can
    /// be created there).
    pub nested_sandbox: bool,
}

/// A prepared Landlock ruleset and what it does.
#[derive(Debug)]
pub struct Domain {
    fd: OwnedFd,
    /// `--nested-sandbox`: the mounts the agent's process makes in its own
    /// namespaces before it is confined.
    mounts: Option<Vec<NsMount>>,

    /// One line per fact, for `--verbose` and the docs.
    pub description: Vec<String>,
}

/// The Landlock ABI the shield asks for. ABI 9 would handle connecting
/// to pathname unix sockets too, which would cut the agent off the
/// broker's socket in the protected runtime directory; ABI 6 has every
/// right the shield needs, the scopes included.
const SHIELD_ABI: ABI = ABI::V6;

/// What the shield needs of the kernel, for an error creating its domain.
const LANDLOCK_FIX: &str = "the shield needs Landlock (Linux 5.13 or later with landlock in the \
                            lsm= boot parameter; ABI 6, Linux 6.12, for signal and socket \
                            scoping)";

/// An error creating the shield's domain, saying what it needs.
fn domain_error(msg: String) -> Error {
    Error::Sandbox {
        step: "create the shield's Landlock domain",
        source: std::io::Error::other(msg),
        fix: LANDLOCK_FIX,
    }
}

/// Builds the shield's Landlock domain (not yet enforced).
pub fn domain(c: &Confinement) -> Result<Domain> {
    let kernel = crate::sys::landlock::abi()
        .map_err(|e| domain_error(format!("Landlock is unavailable: {e}")))?;
    let mut description = Vec::new();
    let ruleset = scoped_ruleset(kernel, c.nested_sandbox, &mut description)?;
    description.push(
        "Landlock domain: no /proc access to, and no tracing of, processes outside the shield"
            .to_owned(),
    );
    let (created, mounts) = if c.nested_sandbox {
        let planned = ns_mounts(c)?;
        describe_mounts(&planned, &mut description);
        let created = ruleset.create().map_err(|e| domain_error(e.to_string()))?;
        (created, Some(planned))
    } else {
        let created = filesystem_rules(ruleset, requested_abi(kernel), c, &mut description)?;
        (created, None)
    };
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or_else(|| domain_error("Landlock is not enforced".into()))?;
    Ok(Domain {
        fd,
        mounts,
        description,
    })
}

impl Domain {
    /// The ruleset, to enforce on a program the broker runs for a
    /// shielded caller (see `Launch::confine`).
    pub fn into_ruleset(self) -> OwnedFd {
        self.fd
    }
}

/// The ABI the rules are built for: the kernel's, up to [`SHIELD_ABI`].
fn requested_abi(kernel: i64) -> ABI {
    match kernel {
        1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        _ => SHIELD_ABI,
    }
}

/// A ruleset at a hard compatibility requirement, scoped (no signals to
/// and no abstract unix sockets of processes outside the shield) where
/// the `kernel`'s Landlock ABI has scopes (6). `--nested-sandbox`, whose
/// domain has nothing else, refuses a kernel without them.
fn scoped_ruleset(
    kernel: i64,
    nested_sandbox: bool,
    description: &mut Vec<String>,
) -> Result<Ruleset> {
    let ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if kernel >= 6 {
        let ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(|e| domain_error(e.to_string()))?;
        description.push(
            "Landlock scopes: no signals to, and no abstract unix sockets of, processes outside \
             the shield"
                .to_owned(),
        );
        return Ok(ruleset);
    }
    if nested_sandbox {
        return Err(domain_error(format!(
            "--nested-sandbox needs Landlock ABI 6 (this kernel has ABI {kernel})"
        )));
    }
    Ok(ruleset)
}

/// Describes the `--nested-sandbox` mounts: which paths are read-only,
/// which are covered.
fn describe_mounts(planned: &[NsMount], description: &mut Vec<String>) {
    description.push(
        "--nested-sandbox: no filesystem rules (mount-based sandboxes work); a user and mount \
         namespace instead"
            .to_owned(),
    );
    for m in planned {
        match m {
            NsMount::ReadOnly { target, .. } => description.push(format!(
                "read-only bind mount: {}",
                target.to_string_lossy()
            )),
            NsMount::Cover { path } => description.push(format!(
                "covered by an empty read-only tmpfs: {}",
                path.to_string_lossy()
            )),
            _ => {}
        }
    }
    description.push(
        "missing start-up files are NOT protected from creation under --nested-sandbox".to_owned(),
    );
}

/// The default domain's filesystem part (see the module comment): writes
/// handled (and reads, when something is hidden), each of [`rules`]
/// added, and what is protected described.
fn filesystem_rules(
    ruleset: Ruleset,
    abi: ABI,
    c: &Confinement,
    description: &mut Vec<String>,
) -> Result<RulesetCreated> {
    let write = AccessFs::from_write(abi);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    // Reads are handled only when something is hidden, so that without
    // hidden paths the domain is exactly the write-only one.
    let handled = if c.hidden.is_empty() {
        write
    } else {
        write | read
    };
    let mut created = ruleset
        .handle_access(handled)
        .map_err(|e| domain_error(e.to_string()))?
        .create()
        .map_err(|e| domain_error(e.to_string()))?;
    let file = AccessFs::from_file(abi);
    for (path, fd, is_dir, rights) in rules(&c.protected, &c.hidden) {
        let mut access: BitFlags<AccessFs> = match rights {
            Rights::Full => handled,
            Rights::Read => handled & read,
            Rights::List => handled & AccessFs::ReadDir,
        };
        if !is_dir {
            access &= file;
        }
        if access.is_empty() {
            continue;
        }
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| domain_error(format!("{}: {e}", path.display())))?;
    }
    let names = |paths: &[PathBuf]| {
        let mut names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        names.sort();
        names.join(", ")
    };
    description.push(format!("write-protected: {}", names(&c.protected)));
    if !c.hidden.is_empty() {
        description.push(format!(
            "no file may be opened (listing only): {}",
            names(&c.hidden)
        ));
    }
    Ok(created)
}

/// One step of the mounts the agent's process makes in its own mount
/// namespace under `--nested-sandbox`, prepared before the fork.
#[derive(Debug)]
enum NsMount {
    /// Bind `source` onto `target`, then remount it read-only keeping the
    /// flags of the mount it copies that are locked in a user namespace.
    ReadOnly {
        source: CString,
        target: CString,
        keep: libc::c_ulong,
    },
    /// Bind `path` onto itself, writable: a mount point cannot be renamed
    /// or removed, so the directories on the way to a protected or hidden
    /// path stay where they are (else renaming one would free the path
    /// for a planted file).
    Pin { path: CString },
    /// Cover `path` with an empty tmpfs (still writable, to build in).
    Cover { path: CString },
    /// Create `name` in the cover at `dir`, empty and of mode 000: found,
    /// but it cannot be opened (nor its mode changed, once read-only).
    Decoy { dir: CString, name: CString },
    /// A directory in a cover, where a protected path beneath it goes.
    Mkdir { path: CString },
    /// Before covering: keep a detached copy of the tree at `path` (in
    /// this mount namespace) in slot `slot`.
    Hold { path: CString, slot: usize },
    /// Attach the tree held in `slot` at `target`, read-only (keeping the
    /// locked flags `keep`).
    Attach {
        slot: usize,
        target: CString,
        keep: libc::c_ulong,
    },
    /// Make the cover at `path` read-only.
    Seal { path: CString },
    /// Last, for an agent that is root (who keeps every capability in the
    /// namespace it starts in, and could undo the mounts): enter a second
    /// user and mount namespace, where the mounts above are locked.
    Lock,
}

/// How many protected directories beneath hidden paths can be kept.
const HELD: usize = 8;

/// The mounts for `--nested-sandbox`: every existing protected path
/// read-only; every existing hidden one covered by an empty read-only
/// tmpfs holding a decoy of each of `c.hidden_files`, with the protected
/// directories beneath it (the broker's may live in the vault's) attached
/// again, read-only.
fn ns_mounts(c: &Confinement) -> Result<Vec<NsMount>> {
    let Targets { protected, hidden } = Targets::new(&c.protected, &c.hidden).existing();
    // Outermost first, so that an inner mount is not covered by an outer.
    let mut items: Vec<(&PathBuf, bool)> = protected
        .iter()
        .filter(|p| !hidden.iter().any(|h| p.starts_with(h)))
        .map(|p| (p, false))
        .chain(hidden.iter().map(|h| (h, true)))
        .collect();
    items.sort_by_key(|(p, _)| p.components().count());
    items.dedup_by(|a, b| a.0 == b.0);
    let mut plan = MountPlan::default();
    for dir in pinned(&items) {
        plan.steps.push(NsMount::Pin {
            path: mount_path(&dir)?,
        });
    }
    for (path, is_hidden) in items {
        if is_hidden {
            plan.cover(path, &protected, &c.hidden_files)?;
        } else {
            plan.read_only(path)?;
        }
    }
    if nix::unistd::geteuid().is_root() {
        plan.steps.push(NsMount::Lock);
    }
    Ok(plan.steps)
}

/// The directories on the way to the paths of `items` that get a
/// [`NsMount::Pin`]: all but `/` and the items themselves, outermost
/// first.
fn pinned(items: &[(&PathBuf, bool)]) -> Vec<PathBuf> {
    let mut on_way: Vec<PathBuf> = on_the_way(items.iter().map(|(p, _)| *p))
        .into_iter()
        .filter(|a| a.parent().is_some() && !items.iter().any(|(p, _)| p == &a))
        .collect();
    on_way.sort_by_key(|p| p.components().count());
    on_way
}

/// The `--nested-sandbox` mounts being planned.
#[derive(Default)]
struct MountPlan {
    steps: Vec<NsMount>,
    /// The next free slot for a held tree (see [`HELD`]).
    slot: usize,
}

impl MountPlan {
    /// Protected `path`, bound onto itself read-only.
    fn read_only(&mut self, path: &Path) -> Result<()> {
        let target = mount_path(path)?;
        self.steps.push(NsMount::ReadOnly {
            source: target.clone(),
            target,
            keep: locked_flags(path),
        });
        Ok(())
    }

    /// Hidden `path`: the protected directories beneath it held, the
    /// path covered by a tmpfs with a decoy of each of `decoys`, the held
    /// directories attached again where they were, the cover sealed.
    fn cover(&mut self, path: &Path, protected: &[PathBuf], decoys: &[String]) -> Result<()> {
        let target = mount_path(path)?;
        let mut inner: Vec<&PathBuf> = protected
            .iter()
            .filter(|p| p.starts_with(path) && p.is_dir())
            .collect();
        inner.sort_by_key(|p| p.components().count());
        let first = self.slot;
        for p in &inner {
            if self.slot == HELD {
                return Err(plan_error("too many protected paths inside hidden ones"));
            }
            self.steps.push(NsMount::Hold {
                path: mount_path(p)?,
                slot: self.slot,
            });
            self.slot += 1;
        }
        self.steps.push(NsMount::Cover {
            path: target.clone(),
        });
        for name in decoys {
            self.steps.push(NsMount::Decoy {
                dir: target.clone(),
                name: mount_cstr(name.as_bytes())?,
            });
        }
        for (i, p) in inner.iter().enumerate() {
            self.attach(path, p, first + i)?;
        }
        self.steps.push(NsMount::Seal { path: target });
        Ok(())
    }

    /// Makes the directories from hidden `path` down to `inner` in its
    /// cover and attaches the tree held in `slot` at `inner`, read-only.
    fn attach(&mut self, path: &Path, inner: &Path, slot: usize) -> Result<()> {
        let mut dir = path.to_path_buf();
        for part in inner
            .strip_prefix(path)
            .unwrap_or(Path::new(""))
            .components()
        {
            dir.push(part);
            self.steps.push(NsMount::Mkdir {
                path: mount_path(&dir)?,
            });
        }
        self.steps.push(NsMount::Attach {
            slot,
            target: mount_path(inner)?,
            keep: locked_flags(inner),
        });
        Ok(())
    }
}

/// An error planning the `--nested-sandbox` mounts.
fn plan_error(msg: &str) -> Error {
    Error::Sys {
        action: "plan the shield's mounts",
        source: std::io::Error::other(msg),
    }
}

/// `bytes` as a C string for a mount step.
fn mount_cstr(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| plan_error("a path contains a NUL byte"))
}

/// `path` as a C string for a mount step.
fn mount_path(path: &Path) -> Result<CString> {
    mount_cstr(path.as_os_str().as_bytes())
}

/// The flags of the mount holding `path` that a read-only remount in a
/// user namespace must keep (the kernel locks them).
fn locked_flags(path: &Path) -> libc::c_ulong {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let flags = statvfs(path).map(|s| s.flags()).unwrap_or(FsFlags::empty());
    [
        (FsFlags::ST_NOSUID, libc::MS_NOSUID),
        (FsFlags::ST_NODEV, libc::MS_NODEV),
        (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
        (FsFlags::ST_NOATIME, libc::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, libc::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st, _)| flags.contains(*st))
    .fold(0, |acc, (_, ms)| acc | ms)
}

/// What a rule grants beneath its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rights {
    /// Everything handled: outside every protected and hidden path.
    Full,
    /// Reading: inside a protected path.
    Read,
    /// Listing directories only: `/`, so that the directories on the way
    /// to a protected or hidden path can be listed.
    List,
}

/// A rule of the domain: a path, opened `O_PATH`, whether it is a
/// directory, and what it gets.
type Rule = (PathBuf, OwnedFd, bool, Rights);

/// The paths the shield acts on, normalized, in the order given: the
/// hidden ones, and the protected ones that are not also hidden (hidden
/// is the stronger: a path named in both stays hidden).
struct Targets {
    protected: Vec<PathBuf>,
    hidden: Vec<PathBuf>,
}

impl Targets {
    fn new(protected: &[PathBuf], hidden: &[PathBuf]) -> Targets {
        let hidden: Vec<PathBuf> = hidden.iter().map(|p| normalize(p)).collect();
        let protected = protected
            .iter()
            .map(|p| normalize(p))
            .filter(|p| !hidden.contains(p))
            .collect();
        Targets { protected, hidden }
    }

    /// Only the paths that exist (and are not symlinks).
    fn existing(self) -> Targets {
        let exists =
            |p: &PathBuf| std::fs::symlink_metadata(p).is_ok_and(|m| !m.file_type().is_symlink());
        Targets {
            protected: self.protected.into_iter().filter(exists).collect(),
            hidden: self.hidden.into_iter().filter(exists).collect(),
        }
    }
}

/// The directories on the way from `/` to each of `paths`: every
/// ancestor, `/` included (and a path on the way to another too).
fn on_the_way<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> BTreeSet<PathBuf> {
    paths
        .into_iter()
        .flat_map(|p| p.ancestors().skip(1))
        .map(Path::to_path_buf)
        .collect()
}

/// The rules of the domain: every entry beside the way to a protected or
/// hidden path (see [`beside_the_way`]); the protected paths themselves
/// (read); `/` (listing). Hidden paths get nothing. Symlinks get no rule
/// (what they point to has its own).
fn rules(protected: &[PathBuf], hidden: &[PathBuf]) -> Vec<Rule> {
    let Targets { protected, hidden } = Targets::new(protected, hidden);
    let hidden: BTreeSet<PathBuf> = hidden.into_iter().collect();
    let protected: BTreeSet<PathBuf> = protected.into_iter().collect();
    let targets: BTreeSet<&PathBuf> = protected.iter().chain(&hidden).collect();
    let on_way = on_the_way(targets.iter().copied());
    let mut out = beside_the_way(&on_way, &targets, &hidden, &protected);
    for p in &protected {
        // One on the way to a hidden path got its entries above.
        if on_way.contains(p) {
            continue;
        }
        if let Ok(m) = std::fs::symlink_metadata(p)
            && !m.file_type().is_symlink()
            && let Some(fd) = open_path(p)
        {
            out.push((p.clone(), fd, m.is_dir(), Rights::Read));
        }
    }
    if !hidden.is_empty()
        && let Some(fd) = open_path(Path::new("/"))
    {
        out.push(("/".into(), fd, true, Rights::List));
    }
    out
}

/// The entries of each directory on the way (but one inside a hidden path) that are
/// neither on the way nor targets (nor symlinks): read-only inside a
/// protected path, everything handled elsewhere.
fn beside_the_way(
    on_way: &BTreeSet<PathBuf>,
    targets: &BTreeSet<&PathBuf>,
    hidden: &BTreeSet<PathBuf>,
    protected: &BTreeSet<PathBuf>,
) -> Vec<Rule> {
    // Inside a protected path (that is not itself on the way): read only.
    let inside_protected = |p: &Path| protected.iter().any(|d| p.starts_with(d));
    let mut out = Vec::new();
    for dir in on_way {
        // Nothing beside the way inside a hidden path: a protected path
        // deep inside one gets its own rule, its neighbours none.
        if hidden.iter().any(|h| dir.starts_with(h)) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if on_way.contains(&path) || targets.contains(&path) {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                continue;
            }
            let Some(fd) = open_path(&path) else {
                continue;
            };
            let rights = if inside_protected(&path) {
                Rights::Read
            } else {
                Rights::Full
            };
            out.push((path, fd, kind.is_dir(), rights));
        }
    }
    out
}

/// `path` opened `O_PATH`, not following a symlink at its end.
fn open_path(path: &Path) -> Option<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// An absolute path without `.` and `..` (symlinks in it are resolved
/// where they exist, so the rule names what the kernel will walk).
fn normalize(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    // Missing: resolve the longest existing ancestor, keep the rest.
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => normalize(parent).join(name),
        _ => p.to_path_buf(),
    }
}

/// The agent's process, confined but not yet running its command: it
/// waits until [`Pending::start`] (so the caller can register its pid
/// first).
#[derive(Debug)]
pub struct Pending {
    pid: nix::unistd::Pid,
    go: OwnedFd,
    report: OwnedFd,
    waited: nix::sys::signal::SigSet,
    mask: nix::sys::signal::SigSet,
}

/// Forks the agent's process. It sets `PR_SET_NO_NEW_PRIVS`, enters the
/// domain and installs the filter, then waits for [`Pending::start`] and
/// executes `program` with `argv` and `env`. The caller becomes a child
/// subreaper, so the agent's orphans stay its descendants (the broker
/// recognises shielded callers by their ancestry).
pub fn spawn(
    domain: &Domain,
    program: &Path,
    argv: &[OsString],
    env: &[(OsString, OsString)],
) -> Result<Pending> {
    let (path, argv, envp) = command_line(program, argv, env)?;
    let argv_ptrs = null_terminated(argv.iter().map(|a| a.as_ptr()));
    let envp_ptrs = null_terminated(envp.iter().map(|e| e.as_ptr()));
    let filter = crate::sandbox::shield_filter()?;
    nix::sys::prctl::set_child_subreaper(true).map_err(Error::sys("become a subreaper"))?;
    let (go_r, go_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (report_r, report_w) = crate::sys::spawn::report_pipe(0).map_err(|source| Error::Sys {
        action: "create a pipe",
        source,
    })?;
    let (mapped_r, mapped_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // Blocked last: nothing after this may fail without restoring it.
    let waited = signals::waited_set();
    let mask = signals::block(&waited).map_err(Error::sys("block signals"))?;
    let child = ShieldChild {
        mapped: mapped_r.as_raw_fd(),
        mounts: domain.mounts.as_deref(),
        go: go_r.as_raw_fd(),
        report: report_w.as_raw_fd(),
        ruleset: domain.fd.as_raw_fd(),
        filter: &filter,
        path: &path,
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        mask: &mask,
    };
    let namespaces = if domain.mounts.is_some() {
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS
    } else {
        0
    };
    let pid = match clone::clone(namespaces) {
        Ok(0) => child.run(),
        Ok(pid) => nix::unistd::Pid::from_raw(pid),
        Err(e) => {
            signals::restore(&mask);
            return Err(Error::sys("start the agent's process")(
                nix::errno::Errno::from_raw(e),
            ));
        }
    };
    drop(go_r);
    drop(report_w);
    drop(mapped_r);
    if let Err(e) = await_confined(pid, domain.mounts.is_some(), mapped_w, &report_r) {
        signals::restore(&mask);
        return Err(e);
    }
    Ok(Pending {
        pid,
        go: go_w,
        report: report_r,
        waited,
        mask,
    })
}

/// The agent's command as C strings: the program's path, `argv`, and
/// `env` as `NAME=value` entries.
fn command_line(
    program: &Path,
    argv: &[OsString],
    env: &[(OsString, OsString)],
) -> Result<(CString, Vec<CString>, Vec<CString>)> {
    let cstr = |b: &[u8]| {
        CString::new(b).map_err(|_| Error::Sys {
            action: "build the agent's command line",
            source: std::io::Error::other("an argument contains a NUL byte"),
        })
    };
    let path = cstr(program.as_os_str().as_bytes())?;
    let argv: Vec<CString> = argv
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<_>>()?;
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<_>>()?;
    Ok((path, argv, envp))
}

/// The parent's side of the agent's start: with `map_ids`
/// (`--nested-sandbox`), writes the agent's id maps; lets it go on
/// (`mapped`); returns once it reports itself confined (the broker checks
/// its state, no_new_privs and seccomp, when the shield registers it).
/// On failure the agent's process is reaped (killed first if the maps
/// failed).
fn await_confined(
    pid: nix::unistd::Pid,
    map_ids: bool,
    mapped: OwnedFd,
    report: &OwnedFd,
) -> Result<()> {
    if map_ids {
        // The user's own ids only: the agent keeps its uid and gid.
        let ids = crate::idmap::Ids::current();
        if let Err(e) = ids.write_all(&[ids.self_maps(pid.as_raw())]) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            return Err(e);
        }
    }
    let _ = nix::unistd::write(&mapped, b"m");
    drop(mapped);
    match crate::sys::spawn::read_report(report) {
        Ok(Some((STAGE_CONFINED, _))) => Ok(()),
        got => {
            let _ = nix::sys::wait::waitpid(pid, None);
            Err(match got {
                Ok(Some((stage, errno))) => stage_error(stage, errno),
                Ok(None) => stage_error(0, libc::ECHILD),
                Err(source) => Error::Sys {
                    action: "read the shield's report",
                    source,
                },
            })
        }
    }
}

/// Report stages of the agent's process.
const STAGE_WAIT: u32 = 1;
const STAGE_NO_NEW_PRIVS: u32 = 2;
const STAGE_LANDLOCK: u32 = 3;
const STAGE_SECCOMP: u32 = 4;
const STAGE_EXEC: u32 = 5;
/// Not a failure: the agent's process is confined (no_new_privs, the
/// domain, the filter) and now waits for [`Pending::start`].
const STAGE_CONFINED: u32 = 6;
const STAGE_MOUNT: u32 = 7;

struct ShieldChild<'a> {
    /// Written once the parent has mapped the ids (`--nested-sandbox`).
    mapped: RawFd,
    mounts: Option<&'a [NsMount]>,
    go: RawFd,
    report: RawFd,
    ruleset: RawFd,
    filter: &'a seccompiler::BpfProgram,
    path: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    mask: &'a nix::sys::signal::SigSet,
}

impl ShieldChild<'_> {
    /// System calls only, on memory prepared before the fork.
    fn run(&self) -> ! {
        let fail = |stage, errno| -> ! {
            io::report(self.report, stage, errno);
            io::exit(126)
        };
        match io::read_byte(self.mapped) {
            Ok(true) => {}
            Ok(false) => fail(STAGE_WAIT, libc::ECANCELED),
            Err(e) => fail(STAGE_WAIT, e),
        }
        io::close(self.mapped);
        if let Some(mounts) = self.mounts
            && let Err(e) = make_mounts(mounts)
        {
            fail(STAGE_MOUNT, e);
        }
        if let Err(e) = seccomp::no_new_privs() {
            fail(STAGE_NO_NEW_PRIVS, e);
        }
        if let Err(e) = crate::sys::landlock::restrict(self.ruleset) {
            fail(STAGE_LANDLOCK, e);
        }
        io::close(self.ruleset);
        if let Err(e) = seccomp::install(self.filter) {
            fail(STAGE_SECCOMP, e);
        }
        io::report(self.report, STAGE_CONFINED, 0);
        match io::read_byte(self.go) {
            Ok(true) => {}
            Ok(false) => fail(STAGE_WAIT, libc::ECANCELED),
            Err(e) => fail(STAGE_WAIT, e),
        }
        io::close(self.go);
        let errno = spawn::execve(self.path, self.argv, self.envp, self.mask);
        fail(STAGE_EXEC, errno)
    }
}

/// In the agent's own mount namespace: the planned mounts. System calls
/// only.
fn make_mounts(mounts: &[NsMount]) -> std::result::Result<(), crate::sys::Errno> {
    const COVER: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let read_only = |target: &CStr, keep: libc::c_ulong| {
        mount::mount(
            None,
            target,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep,
            None,
        )
    };
    let mut held: [RawFd; HELD] = [-1; HELD];
    mount::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    for m in mounts {
        match m {
            NsMount::Hold { path, slot } => held[*slot] = mount::clone_tree(path)?,
            NsMount::Attach { slot, target, keep } => {
                mount::attach_tree(held[*slot], target)?;
                io::close(held[*slot]);
                read_only(target, *keep)?;
            }
            NsMount::ReadOnly {
                source,
                target,
                keep,
            } => {
                mount::mount(
                    Some(source),
                    target,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )?;
                read_only(target, *keep)?;
            }
            NsMount::Cover { path } => mount::mount(
                Some(c"tmpfs"),
                path,
                Some(c"tmpfs"),
                COVER,
                Some(c"mode=0755,size=16k"),
            )?,
            NsMount::Decoy { dir, name } => {
                let beneath = mount::open_dir(dir)?;
                let made = mount::create_file_beneath(beneath, name, b"", 0);
                io::close(beneath);
                made?;
            }
            NsMount::Mkdir { path } => mount::mkdir(path, 0o700)?,
            NsMount::Pin { path } => {
                mount::mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None)?;
            }
            NsMount::Lock => {
                clone::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)?;
                mount::write_file(c"/proc/self/setgroups", b"deny")?;
                mount::write_file(c"/proc/self/uid_map", b"0 0 1")?;
                mount::write_file(c"/proc/self/gid_map", b"0 0 1")?;
            }
            NsMount::Seal { path } => mount::mount(
                None,
                path,
                None,
                libc::MS_REMOUNT | libc::MS_RDONLY | COVER,
                None,
            )?,
        }
    }
    Ok(())
}

/// The error for a failure the agent's process reported.
fn stage_error(stage: u32, errno: i32) -> Error {
    let source = std::io::Error::from_raw_os_error(errno);
    match stage {
        STAGE_EXEC => Error::Exec {
            path: "the agent's command".into(),
            source,
        },
        _ => Error::Sandbox {
            step: match stage {
                STAGE_NO_NEW_PRIVS => "set no_new_privs",
                STAGE_LANDLOCK => "enter the shield's Landlock domain",
                STAGE_SECCOMP => "install the shield's seccomp filter",
                STAGE_MOUNT => "make the --nested-sandbox mounts (read-only and hidden paths)",
                _ => "start the agent",
            },
            source,
            fix: "",
        },
    }
}

impl Pending {
    /// The agent's pid (already inside the domain).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Lets the agent run its command and waits for it, forwarding the
    /// signals sent to envseal (a terminal's reach it directly). Returns
    /// its exit.
    pub fn start(self) -> Result<Exit> {
        let Pending {
            pid,
            go,
            report,
            waited,
            mask,
        } = self;
        let restore = || signals::restore(&mask);
        let _ = nix::unistd::write(&go, b"g");
        drop(go);
        let reports = crate::sys::spawn::read_reports(report).map_err(|source| Error::Sys {
            action: "read the shield's report",
            source,
        })?;
        if let Some(&(stage, errno)) = reports.first() {
            let _ = nix::sys::wait::waitpid(pid, None);
            restore();
            return Err(stage_error(stage, errno));
        }
        let exit = crate::launch::wait(pid, pid, &waited, None, None);
        restore();
        exit
    }

    /// Kills the waiting agent process (its command never ran).
    pub fn abandon(self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
        signals::restore(&self.mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rights each path of `rules` gets, by its path.
    fn granted(rules: &[Rule]) -> Vec<(PathBuf, Rights)> {
        rules.iter().map(|(p, _, _, r)| (p.clone(), *r)).collect()
    }

    #[test]
    fn a_protected_path_deep_inside_a_hidden_one_opens_nothing_beside_it() {
        let root = tempfile::tempdir().unwrap();
        let hidden = root.path().join("h");
        for dir in ["h/a/p", "h/a/other", "h/x", "open"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        std::fs::write(root.path().join("h/a/secret"), b"").unwrap();
        let protected = root.path().join("h/a/p");
        let rules = granted(&rules(
            std::slice::from_ref(&protected),
            std::slice::from_ref(&hidden),
        ));
        for inside in ["h/a/other", "h/a/secret", "h/x", "h/a", "h"] {
            let path = root.path().join(inside);
            assert!(
                !rules.iter().any(|(p, _)| *p == path),
                "{inside} is inside the hidden path but has a rule: {rules:?}"
            );
        }
        assert!(rules.contains(&(protected, Rights::Read)), "{rules:?}");
        assert!(
            rules.contains(&(root.path().join("open"), Rights::Full)),
            "{rules:?}"
        );
    }
}
