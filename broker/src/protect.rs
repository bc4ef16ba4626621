//! What a shield protects from writes (and hides), for `envseal shield`
//! and for the programs the broker runs for a shielded caller, which are
//! confined at least as tightly as the caller.

use std::path::{Path, PathBuf};

use envseal_launcher::shield::Confinement;

use crate::location::Location;
use crate::refusal::{Code, Refusal};

/// Shell and session start-up files, relative to HOME: code the person's
/// next shell or login would run.
const START_UP: [&str; 11] = [
    ".bashrc",
    ".profile",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".config/fish",
    ".config/systemd/user",
    ".config/environment.d",
];

/// Configuration files, relative to HOME, that the programs people pin
/// read from `HOME` and that steer where a secret goes or run a command
/// (a `.curlrc` with `trace-ascii`, a `.psqlrc` with `\!`, a
/// `.gitconfig` with `credential.helper`, an ssh `ProxyCommand`, a
/// kubeconfig `exec` plugin): `HOME` is the person's for a pinned program
/// (G9), so the agent must not write these either.
const CONFIGURATION: [&str; 24] = [
    ".curlrc",
    ".netrc",
    ".wgetrc",
    ".psqlrc",
    ".pgpass",
    ".pg_service.conf",
    ".my.cnf",
    ".mylogin.cnf",
    ".gitconfig",
    ".config/git",
    ".ssh/config",
    ".ssh/rc",
    ".npmrc",
    ".yarnrc",
    ".pypirc",
    ".pip",
    ".config/pip",
    ".aws",
    ".kube",
    ".docker/config.json",
    ".config/gh",
    ".terraformrc",
    ".gradle/init.d",
    ".m2/settings.xml",
];

/// What the shield write-protects, and what `--allow-write` lifted.
pub fn protected_paths(
    loc: &Location,
    allow_write: &[PathBuf],
) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    // Never lifted: the vault, the broker's directory, envseal itself.
    let mut fixed = vec![canonical(&loc.vault), canonical(&loc.dir)];
    if let Ok(exe) = std::env::current_exe() {
        fixed.push(canonical(&exe));
    }
    let mut liftable = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path).filter(|d| d.is_absolute()) {
            liftable.push(canonical(&dir));
        }
    }
    if let Some(home) = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
    {
        let home = canonical(&home);
        for f in START_UP.iter().chain(&CONFIGURATION) {
            liftable.push(home.join(f));
        }
    }
    let mut lifted = Vec::new();
    for w in allow_write {
        let w = canonical(&std::path::absolute(w)?);
        if let Some(f) = fixed.iter().find(|f| f.starts_with(&w) || w.starts_with(f)) {
            return Err(Refusal::new(
                Code::Usage,
                format!(
                    "--allow-write {} would make {} writable, which the shield always protects",
                    w.display(),
                    f.display()
                ),
            )
            .into());
        }
        if let Some(p) = liftable.iter().find(|p| w.starts_with(p) && **p != w) {
            return Err(Refusal::new(
                Code::Usage,
                format!(
                    "--allow-write {} is inside the protected {}: name that one itself",
                    w.display(),
                    p.display()
                ),
            )
            .into());
        }
        liftable.retain(|p| {
            let covered = p.starts_with(&w);
            if covered {
                lifted.push(p.clone());
            }
            !covered
        });
    }
    fixed.extend(liftable);
    fixed.sort();
    fixed.dedup();
    Ok((fixed, lifted))
}

/// The confinement of a program the broker runs for a shielded caller
/// in tiers none and hardened: the shield's write protections (no path
/// lifted: a person's `--allow-write` is for the agent's own work) and its
/// scopes. Reads are not handled (nothing hidden): Landlock ignores a rule
/// on a path another mount covers, and the sandbox mounts the program's
/// verified copy over its real path.
///
/// The broker's own list comes from its environment (`PATH` and `HOME`
/// when the person started it); `shields` adds what each registered
/// shield protects, computed in the person's shell: the union.
pub fn for_brokered(loc: &Location, shields: &[PathBuf]) -> anyhow::Result<Confinement> {
    let (mut protected, _) = protected_paths(loc, &[])?;
    protected.extend(shields.iter().cloned());
    protected.sort();
    protected.dedup();
    Ok(Confinement {
        protected,
        hidden: Vec::new(),
        hidden_files: Vec::new(),
        nested_sandbox: false,
    })
}
