//! Reference files: `.envseal`, safe to commit, one `ENVVAR=envseal:KEY`
//! per line (`#` comments and blank lines allowed). `import` writes one
//! beside the dotenv file it moved into the vault; `exec --env-file`
//! reads one, found by walking up from the working directory like `.git`
//! (a symlink is never followed).

use std::path::{Path, PathBuf};

use envseal_vault::SecretName;

use envseal_broker::prepare::steers;

use crate::refusal::{Code, Refusal};

pub const FILE_NAME: &str = ".envseal";
const PREFIX: &str = "envseal:";

/// One mapping: deliver secret `key` in variable `var`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub var: SecretName,
    pub key: SecretName,
}

pub fn parse(text: &str, path: &Path) -> Result<Vec<Mapping>, Refusal> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| {
            Refusal::new(
                Code::Usage,
                format!("{}: line {}: {what}", path.display(), n + 1),
            )
            .hint("each line is ENVVAR=envseal:KEY")
        };
        let (var, reference) = line
            .split_once('=')
            .ok_or_else(|| bad("expected ENVVAR=envseal:KEY"))?;
        let key = reference
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("the value must be envseal:KEY (a reference, never a value)"))?;
        let var = var.trim().trim_start_matches("export ").trim();
        let var = SecretName::new(var).map_err(|_| bad("not a valid variable name"))?;
        let key = SecretName::new(key).map_err(|_| bad("not a valid secret name"))?;
        if steers(var.as_str()) {
            return Err(bad(&format!(
                "{var} decides where programs look for files, commands or the network; \
                 a secret is never delivered in it"
            )));
        }
        out.push(Mapping { var, key });
    }
    Ok(out)
}

/// Reads `path`, refusing a symlink and a file that is not the user's own
/// or that others may write.
pub fn read(path: &Path) -> Result<Vec<Mapping>, Refusal> {
    let fail = |e: std::io::Error| {
        Refusal::new(Code::Usage, format!("cannot read {}: {e}", path.display()))
    };
    let meta = std::fs::symlink_metadata(path).map_err(fail)?;
    if meta.file_type().is_symlink() {
        return Err(Refusal::new(
            Code::Usage,
            format!(
                "{} is a symlink; envseal does not follow it",
                path.display()
            ),
        ));
    }
    check_owned(path, &meta)?;
    let text = std::fs::read_to_string(path).map_err(fail)?;
    parse(&text, path)
}

/// Refuses a file that is not this user's, or that others may write, or
/// that a group other than the user's own primary group may write (with a
/// umask of 002, files are group-writable for the user's private group):
/// another user could have planted or edited it.
fn check_owned(path: &Path, meta: &std::fs::Metadata) -> Result<(), Refusal> {
    use std::os::unix::fs::MetadataExt as _;
    let me = nix::unistd::geteuid().as_raw();
    let my_group = nix::unistd::getegid().as_raw();
    let others_write = meta.mode() & 0o002 != 0;
    let group_writes = meta.mode() & 0o020 != 0 && meta.gid() != my_group;
    if meta.uid() != me || others_write || group_writes {
        return Err(Refusal::new(
            Code::Denied,
            format!(
                "{} is not yours alone (owner uid {}, mode {:o}); envseal trusts only your own files",
                path.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
        )
        .hint("check who wrote it; if it is yours, `chown` it and `chmod go-w` it"));
    }
    Ok(())
}

/// `--env-file PATH`: the (secret, variable) pairs of a reference file;
/// for a directory, of the nearest `.envseal` at or above it.
pub fn renames(arg: &Path) -> anyhow::Result<Vec<(SecretName, SecretName)>> {
    let path = if arg.is_dir() {
        let start = std::path::absolute(arg)?;
        discover(&start).ok_or_else(|| {
            Refusal::new(
                Code::Usage,
                format!(
                    "--env-file: no {} at or above {}",
                    FILE_NAME,
                    start.display()
                ),
            )
        })?
    } else {
        arg.to_path_buf()
    };
    Ok(read(&path)?.into_iter().map(|m| (m.key, m.var)).collect())
}

/// The nearest `.envseal` at or above `start` (symlinks skipped). The walk
/// stops at the first directory that is not the user's own (`/tmp`, `/`),
/// and after the user's home directory: files above those are not theirs
/// to trust.
pub fn discover(start: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let me = nix::unistd::geteuid().as_raw();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for dir in start.ancestors() {
        if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.uid() == me) {
            return None;
        }
        let candidate = dir.join(FILE_NAME);
        if std::fs::symlink_metadata(&candidate).is_ok_and(|m| m.file_type().is_file()) {
            return Some(candidate);
        }
        if home.as_deref() == Some(dir) {
            return None;
        }
    }
    None
}

/// Adds `ENVVAR=envseal:KEY` lines for `keys` (variable = key) to the
/// `.envseal` in `dir`, keeping what it has.
pub fn add(dir: &Path, keys: &[SecretName]) -> Result<PathBuf, Refusal> {
    let path = dir.join(FILE_NAME);
    let mut existing = match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Refusal::new(
                Code::Usage,
                format!(
                    "{} is a symlink; envseal does not follow it",
                    path.display()
                ),
            ));
        }
        Ok(_) => std::fs::read_to_string(&path).map_err(|e| {
            Refusal::new(
                Code::Failure,
                format!("cannot read {}: {e}", path.display()),
            )
        })?,
        Err(_) => "# envseal references: safe to commit; `envseal exec --env-file` reads them\n"
            .to_owned(),
    };
    let known = parse(&existing, &path)?;
    for key in keys {
        if steers(key.as_str()) {
            // Stored, but never delivered under that name by a reference.
            eprintln!(
                "envseal: warning: {key} is not written to {}: that variable decides where \
                 programs look, and a reference file never sets it",
                path.display()
            );
            continue;
        }
        if !known.iter().any(|m| m.var.as_str() == key.as_str()) {
            if !existing.ends_with('\n') && !existing.is_empty() {
                existing.push('\n');
            }
            existing.push_str(&format!("{key}={PREFIX}{key}\n"));
        }
    }
    // 0644 whatever the umask: a group-writable file of a shared group
    // would not be trusted when it is read back.
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)?
            .write_all(existing.as_bytes())
    };
    write().map_err(|e| {
        Refusal::new(
            Code::Failure,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references_and_refuses_values() {
        let p = Path::new(".envseal");
        let m = parse(
            "# c\nDATABASE_URL=envseal:DB_URL\nexport TOKEN = envseal:TOKEN\n",
            p,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].var.as_str(), "DATABASE_URL");
        assert_eq!(m[0].key.as_str(), "DB_URL");
        let e = parse("A=envseal:A\nB=plain-value\n", p).unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
        assert!(!e.message.contains("plain-value"));
    }
}
