//! What a grant fixes of the program's world at `allow`: its environment
//! (an allowlist: see `envseal_launcher::build_env`) and, for Lockdown,
//! the directories it may write.

use std::path::{Path, PathBuf};

use envseal_policy::{Environ, escape};

use crate::refusal::{Code, Refusal};

/// `PATH` when the person's has no directory only root can change.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The base set's fixed names: recorded at `allow`, never the caller's.
const BASE: [&str; 4] = ["PATH", "HOME", "USER", "LOGNAME"];

/// What the command line says of the environment.
pub struct Asked<'a> {
    /// `--env NAME` or `--env NAME=VALUE`.
    pub env: &'a [String],
    /// `--path DIRS`.
    pub path: Option<&'a str>,
}

/// The environment a grant records: the earlier grant's (if any) with
/// what the command line adds, or the person's base set now.
pub fn record(asked: &Asked<'_>, previous: Option<&Environ>) -> anyhow::Result<Environ> {
    let mut environ = match previous {
        Some(p) => p.clone(),
        None => Environ {
            path: String::new(),
            home: home(),
            user: user(),
            passed: Vec::new(),
            fixed: Vec::new(),
        },
    };
    match asked.path {
        Some(path) => environ.path = given_path(path)?,
        None if environ.path.is_empty() => environ.path = persons_path(),
        None => {}
    }
    for item in asked.env {
        add(&mut environ, item)?;
    }
    environ.passed.sort();
    environ.passed.dedup();
    environ.fixed.sort();
    Ok(environ)
}

/// `HOME` now: the person's, if absolute, else the user database's.
fn home() -> String {
    std::env::var("HOME")
        .ok()
        .filter(|h| h.starts_with('/'))
        .or_else(|| passwd().map(|u| u.dir.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// The user's name in the user database (`USER` and `LOGNAME`).
fn user() -> String {
    passwd()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default()
}

fn passwd() -> Option<nix::unistd::User> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
}

/// Adds one `--env NAME` (passed from the caller) or `--env NAME=VALUE`
/// (fixed), refusing what no grant may name.
fn add(environ: &mut Environ, item: &str) -> anyhow::Result<()> {
    let (name, value) = match item.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (item, None),
    };
    let usage = |why: String| Refusal::new(Code::Usage, why);
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
    if !valid {
        return Err(usage(format!("--env {}: not a variable name", escape(name))).into());
    }
    if envseal_launcher::is_dangerous(std::ffi::OsStr::new(name)) {
        return Err(usage(format!(
            "--env {name}: it makes a loader, interpreter or shell run code the grant does not \
             pin; no grant may set it"
        ))
        .into());
    }
    if name == "PATH" {
        return Err(usage("--env PATH: give the program's PATH with --path DIRS".into()).into());
    }
    match value {
        Some(value) => {
            if value.contains('\0') {
                return Err(usage(format!("--env {name}: the value holds a NUL byte")).into());
            }
            environ.fixed.retain(|(n, _)| n != name);
            environ.fixed.push((name.to_owned(), value.to_owned()));
        }
        None if BASE.contains(&name) => {
            return Err(usage(format!(
                "--env {name}: {name} is recorded when the grant is made, never taken from the \
                 caller"
            ))
            .hint(format!("fix another value with --env {name}=VALUE"))
            .into());
        }
        None if envseal_launcher::is_steering(name) => {
            return Err(usage(format!(
                "--env {name}: the caller's {name} could send the program (and its secret) \
                 elsewhere, or load configuration the caller wrote"
            ))
            .hint(format!("fix its value in the grant: --env {name}=VALUE"))
            .into());
        }
        None => environ.passed.push(name.to_owned()),
    }
    Ok(())
}

/// The person's `PATH`, keeping only directories only root can change
/// (saying which were left out); the system's if none is left.
fn persons_path() -> String {
    let person = std::env::var("PATH").unwrap_or_default();
    let (kept, dropped): (Vec<&str>, Vec<&str>) = person
        .split(':')
        .filter(|d| !d.is_empty())
        .partition(|d| only_root_can_change(Path::new(d)));
    if !dropped.is_empty() {
        eprintln!(
            "envseal: the program's PATH leaves out {} (not only root can change them: give \
             another PATH with --path)",
            escape(&dropped.join(", "))
        );
    }
    let mut kept: Vec<&str> = kept;
    kept.dedup();
    if kept.is_empty() {
        return SYSTEM_PATH.into();
    }
    kept.join(":")
}

/// `--path DIRS`: every directory must be one only root can change.
fn given_path(path: &str) -> anyhow::Result<String> {
    for dir in path.split(':') {
        if !only_root_can_change(Path::new(dir)) {
            return Err(Refusal::new(
                Code::Usage,
                format!(
                    "--path: {} is not a directory only root can change (a program it holds could \
                     be replaced by whoever can write it)",
                    escape(dir)
                ),
            )
            .into());
        }
    }
    Ok(path.to_owned())
}

/// Whether `dir` is a directory only root can change, both as written (a
/// link of the user's in the way could later point elsewhere) and where it
/// leads (so nothing running as the user can add or replace a program in
/// it).
pub fn only_root_can_change(dir: &Path) -> bool {
    use envseal_broker::prepare::only_root_changes;
    std::fs::canonicalize(dir)
        .is_ok_and(|real| real.is_dir() && only_root_changes(dir) && only_root_changes(&real))
}

/// `--write DIR`s: existing directories, canonical, sorted.
pub fn writable(dirs: &[PathBuf], previous: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = previous.to_vec();
    for dir in dirs {
        let canonical = std::fs::canonicalize(dir)
            .ok()
            .filter(|c| c.is_dir())
            .and_then(|c| c.to_str().map(str::to_owned))
            .ok_or_else(|| {
                Refusal::new(
                    Code::Usage,
                    format!(
                        "--write {}: not a directory",
                        escape(&dir.to_string_lossy())
                    ),
                )
            })?;
        if Path::new(&canonical).starts_with("/tmp") {
            return Err(Refusal::new(
                Code::Usage,
                format!(
                    "--write {}: Lockdown gives the program a /tmp of its own, which covers it",
                    escape(&canonical)
                ),
            )
            .into());
        }
        out.push(canonical);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The environment the program will see, as lines for a grant's
/// description.
pub fn describe(environ: &Environ) -> String {
    let mut out = format!("  environment PATH={}\n", escape(&environ.path));
    let mut line = |text: String| out += &format!("              {text}\n");
    line(format!(
        "HOME={} USER={} LOGNAME={}",
        escape(&environ.home),
        escape(&environ.user),
        escape(&environ.user)
    ));
    for (name, value) in &environ.fixed {
        line(format!("{name}={}", escape(value)));
    }
    let mut from_caller = vec!["LANG", "LANGUAGE", "LC_*", "TERM", "COLORTERM", "TZ"];
    from_caller.extend(environ.passed.iter().map(String::as_str));
    line(format!(
        "{} from the caller; nothing else",
        from_caller.join(", ")
    ));
    out
}
