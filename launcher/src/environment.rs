//! The child's environment: the caller's, minus every variable that makes
//! a loader, interpreter or shell run code the grant did not pin.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt as _;

/// Exact names removed.
const REMOVED: &[&str] = &[
    // glibc: loader and library hijacks (LD_* is removed as a prefix).
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    // Interpreters' start-up and module paths.
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONUSERBASE",
    "PYTHONBREAKPOINT",
    "PYTHONEXECUTABLE",
    "PYTHONWARNINGS",
    "PYTHONPLATLIBDIR",
    "PYTHONNOUSERSITE",
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_REPL_EXTERNAL_MODULE",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    // Shells.
    "BASH_ENV",
    "ENV",
    "IFS",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "PROMPT_COMMAND",
    "CDPATH",
    // git: configuration and helper-command injection.
    "GIT_CONFIG",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_PARAMETERS",
    "GIT_EXEC_PATH",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "GIT_PAGER",
    "GIT_EXTERNAL_DIFF",
    "GIT_PROXY_COMMAND",
    "GIT_TEMPLATE_DIR",
    "SSH_ASKPASS",
];

/// Prefixes removed.
const REMOVED_PREFIXES: &[&str] = &["LD_", "BASH_FUNC_", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"];

/// Set for every program, whatever the caller's environment says: Python
/// does not load the user's site directory (`usercustomize.py` and `.pth`
/// files there run at start-up), which anything running as the user can
/// write. A virtualenv's own site-packages are not affected.
pub const FIXED: &[(&str, &str)] = &[("PYTHONNOUSERSITE", "1")];

/// Kept by `--clearenv`.
const CLEARENV_KEEPS: &[&str] = &["PATH", "HOME", "LANG", "TERM"];

/// Whether a variable must never reach a pinned program.
pub fn is_dangerous(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    bytes.is_empty()
        || bytes.contains(&b'=')
        || REMOVED.iter().any(|r| r.as_bytes() == bytes)
        || REMOVED_PREFIXES
            .iter()
            .any(|p| bytes.starts_with(p.as_bytes()))
}

/// The caller's environment with dangerous variables removed; with
/// `clear`, only `PATH`, `HOME`, `LANG` and `TERM` are kept.
pub fn rebuild(
    caller: impl IntoIterator<Item = (OsString, OsString)>,
    clear: bool,
) -> Vec<(OsString, OsString)> {
    caller
        .into_iter()
        .filter(|(k, _)| !is_dangerous(k))
        .filter(|(k, _)| !clear || CLEARENV_KEEPS.iter().any(|c| OsStr::new(c) == k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[&str]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|k| (k.into(), "v".into())).collect()
    }

    fn names(v: Vec<(OsString, OsString)>) -> Vec<String> {
        v.into_iter()
            .map(|(k, _)| k.into_string().unwrap())
            .collect()
    }

    #[test]
    fn hijack_variables_are_removed() {
        let kept = rebuild(
            env(&[
                "LD_PRELOAD",
                "LD_AUDIT",
                "LD_LIBRARY_PATH",
                "LD_ANYTHING",
                "PYTHONPATH",
                "NODE_OPTIONS",
                "BASH_ENV",
                "BASH_FUNC_ls%%",
                "GIT_CONFIG_KEY_0",
                "GIT_SSH_COMMAND",
                "IFS",
                "PATH",
                "HOME",
                "RUST_LOG",
                "GIT_AUTHOR_NAME",
            ]),
            false,
        );
        assert_eq!(names(kept), ["PATH", "HOME", "RUST_LOG", "GIT_AUTHOR_NAME"]);
    }

    #[test]
    fn clearenv_keeps_four() {
        let kept = rebuild(
            env(&["PATH", "HOME", "LANG", "TERM", "USER", "LD_PRELOAD"]),
            true,
        );
        assert_eq!(names(kept), ["PATH", "HOME", "LANG", "TERM"]);
    }
}
