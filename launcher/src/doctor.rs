//! `envseal doctor`: what this machine supports, probed for real (each
//! probe is a short-lived child that tries the operation), and what that
//! means for each tier.

use crate::idmap::Ids;
use crate::launch::Tier;
use crate::sandbox::LANDLOCK_ABI;
use crate::sys::{clone, io, mount, seccomp};

/// One probe.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// What a tier can do here.
#[derive(Clone, Debug)]
pub struct TierReport {
    pub tier: Tier,
    /// The tier can run here.
    pub ok: bool,
    /// The launched program is out of reach of the user's other processes.
    pub g7: bool,
    /// The program sees its real path (`/proc/self/exe`, `$ORIGIN`, a
    /// script's own path), or why not.
    pub real_path: Result<(), String>,
    /// Why not (empty when both hold).
    pub why: Vec<String>,
}

/// Everything `doctor` reports.
#[derive(Clone, Debug)]
pub struct Report {
    pub checks: Vec<Check>,
    pub tiers: Vec<TierReport>,
}

/// Runs `f` in a child created with `clone(flags)`; the child's exit code
/// is 0 on success or an errno.
fn probe(flags: libc::c_int, f: fn() -> i32) -> Result<(), String> {
    match clone::clone(flags) {
        Ok(0) => io::exit(f()),
        Ok(pid) => {
            let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            match st {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(nix::sys::wait::WaitStatus::Exited(_, e)) => {
                    Err(std::io::Error::from_raw_os_error(e).to_string())
                }
                other => Err(format!("probe ended with {other:?}")),
            }
        }
        Err(e) => Err(std::io::Error::from_raw_os_error(e).to_string()),
    }
}

fn noswap_mount() -> i32 {
    let private = mount::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None);
    let mounted = private.and_then(|()| {
        mount::mount(
            Some(c"tmpfs"),
            c"/tmp",
            Some(c"tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(c"size=1m,noswap"),
        )
    });
    mounted.err().unwrap_or(0)
}

fn check(name: &'static str, r: Result<String, String>) -> Check {
    match r {
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
        },
    }
}

/// What one probe found: a detail either way.
type Found = Result<String, String>;

/// Probes the machine.
pub fn diagnose() -> Report {
    let ids = Ids::current();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let userns = probe(libc::CLONE_NEWUSER, || 0).map(|()| "can be created".to_owned());
    let lockdown_ns =
        probe(LOCKDOWN_NS, || 0).map(|()| "user, PID, IPC, UTS, mount, network".to_owned());
    let maps = id_maps(&ids);
    let subordinate = subordinate_ids(&ids);
    let supplementary = supplementary_group(&ids);
    let landlock = landlock_support();
    let seccomp = seccomp_support();
    let memfd_secret = memfd_secret_support();
    let noswap = tmpfs_noswap();
    let yama = match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        Ok(v) => Ok(format!("ptrace_scope {}", v.trim())),
        Err(_) => Err("absent: any same-user process may ptrace a dumpable one".to_owned()),
    };
    let install = install_mode(&ids);

    let checks = vec![
        check("kernel", Ok(kernel)),
        check("user namespaces", userns.clone()),
        check("lockdown namespaces", lockdown_ns.clone()),
        check("id maps", maps.clone()),
        check("subordinate ids", subordinate),
        check("supplementary group", supplementary),
        check("landlock", landlock.clone()),
        check("seccomp", seccomp.clone()),
        check("memfd_secret", memfd_secret),
        check("tmpfs noswap", noswap),
        check("yama", yama),
        check("install", install),
    ];
    let tiers = tiers(&ids, [&userns, &maps, &seccomp], [&lockdown_ns, &landlock]);
    Report { checks, tiers }
}

/// The namespaces Lockdown creates.
const LOCKDOWN_NS: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET;

/// Who writes the sandbox's id maps: envseal itself as root, else
/// newuidmap and newgidmap.
fn id_maps(ids: &Ids) -> Found {
    if ids.is_root() {
        Ok("envseal runs as root and writes maps itself".to_owned())
    } else {
        match &ids.tools {
            Some((u, g)) => Ok(format!("{} and {}", u.display(), g.display())),
            None => Err("newuidmap/newgidmap not found: install the uidmap package".to_owned()),
        }
    }
}

/// The user's subordinate uid and gid ranges.
fn subordinate_ids(ids: &Ids) -> Found {
    match ids.subordinate {
        Some((u, g)) => Ok(format!(
            "user {} has subordinate uid {u}, gid {g}",
            ids.user
        )),
        None => Err(format!(
            "no range for user {} in /etc/subuid and /etc/subgid",
            ids.user
        )),
    }
}

/// A supplementary group of the user's, G7's faster route.
fn supplementary_group(ids: &Ids) -> Found {
    match ids.supplementary {
        Some(g) => Ok(format!(
            "group {g}: keeps the running program out of reach in the namespaced tiers without subordinate ids (faster)"
        )),
        None => Err(
            "none (keeping the running program out of reach then needs subordinate ids)".to_owned(),
        ),
    }
}

/// The kernel's Landlock ABI, against the one Lockdown needs.
fn landlock_support() -> Found {
    match crate::sys::landlock::abi() {
        Ok(v) if v >= LANDLOCK_ABI as i64 => Ok(format!("ABI {v}")),
        Ok(v) => Err(format!(
            "ABI {v}; Lockdown needs ABI {} or later",
            LANDLOCK_ABI as i32
        )),
        Err(libc::EOPNOTSUPP) => {
            Err("built but disabled (add landlock to the lsm= boot parameter)".into())
        }
        Err(e) => Err(format!(
            "not available ({})",
            std::io::Error::from_raw_os_error(e)
        )),
    }
}

/// Seccomp filters, on a kernel that refuses x32 system calls.
fn seccomp_support() -> Found {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .filter(|s| s.contains("Seccomp:"))
        .map(|_| "filters supported".to_owned())
        .ok_or_else(|| "the kernel has no seccomp".to_owned())
        .and_then(|ok| {
            if seccomp::x32_enabled() {
                Err(
                    "the kernel accepts x32 system calls, which envseal's filters cannot \
                     match: boot with syscall.x32=n"
                        .to_owned(),
                )
            } else {
                Ok(ok)
            }
        })
}

/// `memfd_secret(2)`.
fn memfd_secret_support() -> Found {
    match crate::sys::secretmem::available() {
        Ok(()) => Ok("available".to_owned()),
        Err(e) => Err(format!(
            "not available ({}; boot with secretmem.enable=1)",
            std::io::Error::from(e)
        )),
    }
}

/// Whether a tmpfs mounted in a user namespace accepts `noswap`
/// (Lockdown's secret files).
fn tmpfs_noswap() -> Found {
    probe(libc::CLONE_NEWUSER | libc::CLONE_NEWNS, noswap_mount)
        .map(|()| "a tmpfs in a user namespace accepts noswap".to_owned())
        .map_err(|e| {
            format!(
                "a tmpfs in a user namespace refuses noswap ({e}): Linux allows it only for \
                 root in the initial namespace, so Lockdown's secret files may be swapped"
            )
        })
}

/// Whether envseal's binary is installed execute-only (its user cannot
/// read it), or runs as root.
fn install_mode(ids: &Ids) -> Found {
    let exe_readable = std::env::current_exe()
        .ok()
        .is_some_and(|p| nix::unistd::access(&p, nix::unistd::AccessFlags::R_OK).is_ok());
    if ids.is_root() {
        Ok("running as root".to_owned())
    } else if exe_readable {
        Err(
            "the envseal binary is readable by its user: install it execute-only \
             (install -o root -m 0711)"
                .to_owned(),
        )
    } else {
        Ok("execute-only".to_owned())
    }
}

/// What each tier can do, from what Hardened needs (user namespaces, id
/// maps, seccomp), what Lockdown needs besides (its namespaces, Landlock)
/// and whether G7 can hold.
fn tiers(ids: &Ids, hardened_needs: [&Found; 3], lockdown_needs: [&Found; 2]) -> Vec<TierReport> {
    let g7 = ids.g7();
    let mut hardened_why: Vec<String> = hardened_needs
        .into_iter()
        .filter_map(|r| r.clone().err())
        .collect();
    let hardened_ok = hardened_why.is_empty();
    let mut lockdown_why = hardened_why.clone();
    lockdown_why.extend(lockdown_needs.into_iter().filter_map(|r| r.clone().err()));
    let lockdown_ok = lockdown_why.is_empty();
    if let Err(why) = &g7 {
        hardened_why.push(format!("not out of reach of your other processes: {why}"));
        lockdown_why.push(format!("not out of reach of your other processes: {why}"));
    }
    let real_path = match &g7 {
        Ok(crate::idmap::G7::Group(_)) => {
            Err("G7 takes the supplementary-group route here, which \
             runs the program from its sealed copy; with subordinate ids (/etc/subuid, \
             /etc/subgid) it would run at its real path"
                .to_owned())
        }
        _ => Ok(()),
    };
    vec![
        TierReport {
            tier: Tier::None,
            ok: true,
            g7: !ids.is_root(),
            real_path: Err(
                "tier none has no mount namespace: the program runs from its sealed \
                 copy (/proc/self/exe names the copy, a script runs as /dev/fd/N)"
                    .to_owned(),
            ),
            why: if ids.is_root() {
                vec!["not out of reach of your other processes: envseal runs as root, and root can read any program".into()]
            } else {
                Vec::new()
            },
        },
        TierReport {
            tier: Tier::Hardened,
            ok: hardened_ok,
            g7: hardened_ok && g7.is_ok(),
            real_path: real_path.clone(),
            why: hardened_why,
        },
        TierReport {
            tier: Tier::Lockdown,
            ok: lockdown_ok,
            g7: lockdown_ok && g7.is_ok(),
            real_path,
            why: lockdown_why,
        },
    ]
}
