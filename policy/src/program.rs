//! Pinning a program: its bytes' SHA-256 and, for a `#!` script, its
//! interpreter's.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::grant::{Pin, Script};
use crate::resolve::{Resolved, resolve};
use crate::{Digest, is_interpreter};

/// Linux reads at most this much of a `#!` line (`BINPRM_BUF_SIZE`).
pub const SHEBANG_MAX: usize = 256;

/// A `#!` line: the interpreter as written and its optional argument
/// (Linux passes everything after the interpreter as one argument).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shebang {
    pub interpreter: String,
    pub arg: Option<String>,
}

/// A program as it would be pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspected {
    /// The program (the script, for a `#!` script).
    pub program: Pin,
    /// The pinned interpreter of a `#!` script.
    pub script: Option<Script>,
}

impl Inspected {
    /// The name whose interpreter-ness matters: for a script, none (the
    /// script itself is pinned; its arguments go to the script).
    pub fn is_interpreter(&self, resolved: &Resolved) -> bool {
        if self.script.is_some() {
            return false;
        }
        let base = |p: &OsStr| {
            Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        is_interpreter(&base(resolved.typed.as_os_str()))
            || is_interpreter(&base(resolved.looked_up.as_os_str()))
            || is_interpreter(&base(OsStr::new(&self.program.path)))
    }
}

/// SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<Digest> {
    hash_with_head(path).map(|(digest, _)| digest)
}

/// Hashes `path` and keeps its first [`SHEBANG_MAX`] bytes, in one pass
/// over one open file.
fn hash_with_head(path: &Path) -> Result<(Digest, Vec<u8>)> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SHEBANG_MAX);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        let want = SHEBANG_MAX.saturating_sub(head.len()).min(n);
        head.extend_from_slice(&buf[..want]);
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finalize().into(), head))
}

/// Parses the `#!` line at the start of `head`; `None` if there is none.
pub fn parse_shebang(head: &[u8]) -> Option<std::result::Result<Shebang, String>> {
    let rest = head.strip_prefix(b"#!")?;
    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
        return Some(Err(format!(
            "no end of line in the first {SHEBANG_MAX} bytes"
        )));
    };
    let Ok(line) = std::str::from_utf8(&rest[..end]) else {
        return Some(Err("the line is not UTF-8".into()));
    };
    let line = line.trim_matches([' ', '\t', '\r']);
    let (interpreter, arg) = match line.split_once([' ', '\t']) {
        Some((i, a)) => (i, Some(a.trim_matches([' ', '\t']).to_owned())),
        None => (line, None),
    };
    if interpreter.is_empty() {
        return Some(Err("it names no interpreter".into()));
    }
    Some(Ok(Shebang {
        interpreter: interpreter.to_owned(),
        arg: arg.filter(|a| !a.is_empty()),
    }))
}

/// Pins a resolved program: hashes it and, for a `#!` script, resolves and
/// pins its interpreter (`#!/usr/bin/env NAME` is resolved through
/// `path_var` now, once, and pinned — never looked up again at exec).
pub fn inspect(resolved: &Resolved, path_var: Option<&OsStr>) -> Result<Inspected> {
    let path = Path::new(&resolved.canonical);
    let (sha256, head) = hash_with_head(path)?;
    let program = Pin {
        path: resolved.canonical.clone(),
        sha256,
    };
    let Some(shebang) = parse_shebang(&head) else {
        return Ok(Inspected {
            program,
            script: None,
        });
    };
    let bad = |reason: String| Error::Shebang {
        path: path.to_owned(),
        reason,
    };
    let shebang = shebang.map_err(bad)?;
    if !shebang.interpreter.starts_with('/') {
        return Err(bad(format!(
            "the interpreter {} is not an absolute path",
            shebang.interpreter
        )));
    }
    let named = Path::new(&shebang.interpreter);
    let via_env = named.file_name() == Some(OsStr::new("env"));
    let (interpreter, arg) = if via_env {
        let Some(name) = shebang
            .arg
            .filter(|a| !a.starts_with('-') && !a.contains([' ', '\t']))
        else {
            return Err(bad(
                "`#!/usr/bin/env` must be followed by exactly one program name (no options)".into(),
            ));
        };
        (resolve(OsStr::new(&name), path_var, Path::new("/"))?, None)
    } else {
        (
            resolve(named.as_os_str(), None, Path::new("/"))?,
            shebang.arg,
        )
    };
    let (sha, head) = hash_with_head(Path::new(&interpreter.canonical))?;
    if head.starts_with(b"#!") {
        return Err(bad(format!(
            "its interpreter {} is itself a script; pin a binary interpreter",
            interpreter.canonical
        )));
    }
    Ok(Inspected {
        program,
        script: Some(Script {
            interpreter: Pin {
                path: interpreter.canonical,
                sha256: sha,
            },
            arg,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        let p = |s: &[u8]| parse_shebang(s);
        assert_eq!(p(b"\x7fELF"), None);
        assert_eq!(
            p(b"#!/bin/sh\necho"),
            Some(Ok(Shebang {
                interpreter: "/bin/sh".into(),
                arg: None
            }))
        );
        assert_eq!(
            p(b"#! /usr/bin/env  python3 \n"),
            Some(Ok(Shebang {
                interpreter: "/usr/bin/env".into(),
                arg: Some("python3".into())
            }))
        );
        assert_eq!(
            p(b"#!/bin/bash -e -u\n"),
            Some(Ok(Shebang {
                interpreter: "/bin/bash".into(),
                arg: Some("-e -u".into())
            }))
        );
        assert!(matches!(p(b"#!\n"), Some(Err(_))));
        assert!(matches!(p(b"#!/bin/sh"), Some(Err(_))));
    }

    #[test]
    fn hashes_match_sha256sum() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            crate::hex(&sha256_file(&f).unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
