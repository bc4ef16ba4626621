//! Finding a program exactly as `exec` will: a bare name through `PATH`,
//! then `realpath`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A command resolved to the file that would run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// What the caller typed.
    pub typed: OsString,
    /// The path found before symlinks were followed (absolute, `.` and
    /// `..` removed lexically): what a pinned path may have been swapped at.
    pub looked_up: PathBuf,
    /// The canonical path: absolute, no symlinks.
    pub canonical: String,
}

/// Resolves `cmd`: a name containing `/` is a path (relative to `cwd`);
/// a bare name is searched in `path_var`. Empty and relative `PATH`
/// entries are skipped, so a program in the current directory is never
/// picked up by accident.
pub fn resolve(cmd: &OsStr, path_var: Option<&OsStr>, cwd: &Path) -> Result<Resolved> {
    let shown = || crate::escape(&cmd.to_string_lossy()).into_owned();
    if cmd.is_empty() {
        return Err(Error::NotFound(shown()));
    }
    let looked_up = if cmd.as_bytes().contains(&b'/') {
        lexical(&cwd.join(cmd))
    } else {
        std::env::split_paths(path_var.unwrap_or_default())
            .filter(|dir| dir.is_absolute())
            .map(|dir| lexical(&dir.join(cmd)))
            .find(|candidate| is_executable_file(candidate))
            .ok_or_else(|| Error::NotFound(shown()))?
    };
    let canonical = std::fs::canonicalize(&looked_up).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(shown()),
        _ => Error::Io {
            path: looked_up.clone(),
            source: e,
        },
    })?;
    if !is_executable_file(&canonical) {
        return Err(Error::NotExecutable(canonical));
    }
    let canonical = canonical
        .into_os_string()
        .into_string()
        .map_err(|p| Error::NonUtf8Path(p.into()))?;
    // Neither what was typed nor where it leads may hold characters that
    // could make a person see another path than the one pinned.
    let typed = cmd.to_string_lossy();
    for shown in [typed.as_ref(), canonical.as_str()] {
        if crate::has_deceptive(shown) {
            return Err(Error::Deceptive(crate::escape(shown).into_owned()));
        }
    }
    Ok(Resolved {
        typed: cmd.to_owned(),
        looked_up,
        canonical,
    })
}

/// `looked_up` when it is a virtualenv's interpreter: a link in a `bin`
/// directory whose parent holds `pyvenv.cfg`, leading elsewhere
/// (`canonical`, the system interpreter). Python finds its virtualenv from
/// the path it is run as, so a grant of the interpreter through such a
/// path pins that virtualenv (see [`crate::Grant::venv`]).
pub fn venv_python(looked_up: &Path, canonical: &str) -> Option<String> {
    let bin = looked_up.parent()?;
    let is_link = std::fs::symlink_metadata(looked_up).is_ok_and(|m| m.file_type().is_symlink());
    (is_link
        && looked_up.as_os_str() != canonical
        && bin.file_name()? == "bin"
        && bin.parent()?.join("pyvenv.cfg").is_file())
    .then(|| looked_up.to_str().map(str::to_owned))?
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Removes `.` and `..` without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn exe(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn bare_names_use_path_and_symlinks_are_followed() {
        let t = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(t.path()).unwrap();
        let (a, b) = (real.join("a"), real.join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let target = exe(&b, "tool-real");
        std::os::unix::fs::symlink(&target, a.join("tool")).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        let r = resolve(OsStr::new("tool"), Some(&path), Path::new("/")).unwrap();
        assert_eq!(r.looked_up, a.join("tool"));
        assert_eq!(r.canonical, target.to_str().unwrap());
    }

    #[test]
    fn relative_path_entries_and_missing_programs() {
        let t = tempfile::tempdir().unwrap();
        exe(t.path(), "here");
        let r = resolve(OsStr::new("here"), Some(OsStr::new(".::rel")), t.path());
        assert!(matches!(r, Err(Error::NotFound(_))));
        let r = resolve(OsStr::new("./here"), None, t.path()).unwrap();
        assert!(r.canonical.ends_with("/here"));
        let r = resolve(OsStr::new("./nope"), None, t.path());
        assert!(matches!(r, Err(Error::NotFound(_))));
    }

    #[test]
    fn non_executable_files_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("data");
        fs::write(&p, "x").unwrap();
        let r = resolve(p.as_os_str(), None, t.path());
        assert!(matches!(r, Err(Error::NotExecutable(_))));
    }
}
