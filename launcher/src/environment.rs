//! The child's environment: an allowlist the grant fixes (see [`build`]);
//! and the names no grant may ever pass, because they make a loader,
//! interpreter or shell run code the grant did not pin.

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
    "PYTHONPYCACHEPREFIX",
    "PYTHONSAFEPATH",
    "OPENSSL_MODULES",
    "OPENSSL_ENGINES",
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
    // Commands other programs run, and code other runtimes load.
    "EDITOR",
    "VISUAL",
    "PAGER",
    "BROWSER",
    "LESSOPEN",
    "LESSCLOSE",
    "SHELL",
    "CLASSPATH",
    "JAVA_OPTS",
    "MAVEN_OPTS",
    "GRADLE_OPTS",
    "LUA_INIT",
    "LUA_PATH",
    "LUA_CPATH",
    "ERL_AFLAGS",
    "ERL_ZFLAGS",
    "ERL_LIBS",
    "DOTNET_STARTUP_HOOKS",
    "GEM_HOME",
    "GEM_PATH",
    "PROMPT_COMMAND",
];

/// Prefixes removed.
const REMOVED_PREFIXES: &[&str] = &["LD_", "BASH_FUNC_", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"];

/// Set for every program, whatever the caller's environment says: Python
/// does not load the user's site directory (`usercustomize.py` and `.pth`
/// files there run at start-up), which anything running as the user can
/// write. A virtualenv's own site-packages are not affected.
pub const FIXED: &[(&str, &str)] = &[("PYTHONNOUSERSITE", "1")];

/// Names a grant may pass through from the caller only as a fixed value
/// (`--env NAME=VALUE`), never the caller's: each redirects where the
/// program sends what it has (a proxy, a server, a key log) or whom it
/// trusts (a CA bundle), or loads configuration from a path.
const STEERING_SUFFIXES: &[&str] = &[
    "_PROXY",
    "_proxy",
    "CA_BUNDLE",
    "CAINFO",
    "CAPATH",
    "_CERT_FILE",
    "_CERT_DIR",
    "HOME",
    "CONFIG_FILE",
    "_URL",
    "_URI",
    "_ENDPOINT",
    "_HOST",
    "_ADDR",
    "_PORT",
    "_SERVER",
    "_VERIFY",
];

/// Suffixes of names a program reads as a path (a file it reads or
/// creates, a directory, a socket): steering when passed, and never the
/// name a secret is renamed into (`--env-file`), where a program would
/// create a file named after the value.
const PATH_SUFFIXES: &[&str] = &[
    "FILE", "DIR", "_PATH", "_HOME", "_CONF", "_CONFIG", "RC", "_SOCK", "_SOCKET",
];
const STEERING_PREFIXES: &[&str] = &[
    "PG",
    "OPENSSL_",
    "SSL",
    "XDG_",
    "CURL_",
    "GNUPG",
    "DOCKER_",
    "npm_config_",
    "NPM_CONFIG_",
    "PIP_",
    "AWS_",
    "NODE_TLS",
    "SSH_",
];
const STEERING_PARTS: &[&str] = &["PROXY", "proxy", "CERT", "TMPDIR"];

/// The caller's own variables every program keeps (the base set's
/// caller-chosen half): locale, terminal type and time zone. A value that
/// names a path is dropped (a locale or terminal description is then read
/// from it).
const CALLER_BASE: &[&str] = &["LANG", "LANGUAGE", "TERM", "TZ", "COLORTERM"];

/// The options that start the interpreter at `path` (canonical) isolated
/// from the caller for a pinned script, keeping the script's directory
/// importable: Python ignores every `PYTHON*` variable and the user's
/// site directory (`-E -s`; not `-I`, which would drop the script's
/// directory); node does not search `$HOME/.node_modules` and
/// `.node_libraries`. Perl and Ruby read code from the caller only
/// through variables the allowlist never passes.
pub fn isolation(path: &str) -> &'static [&'static str] {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.starts_with("python") {
        &["-E", "-s"]
    } else if name == "node" || name == "nodejs" {
        &["--no-global-search-paths"]
    } else {
        &[]
    }
}

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

/// Names the patterns above catch that steer nothing: git's identity, and
/// the ssh agent's socket (a program signs through it; it never receives
/// a key from the program).
const NOT_STEERING: &[&str] = &[
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_COMMITTER_DATE",
    "SSH_AUTH_SOCK",
];

/// Whether a grant may name `name` only with a fixed value: the caller's
/// value would steer where the program's secret goes.
pub fn is_steering(name: &str) -> bool {
    !NOT_STEERING.contains(&name) && steering_pattern(name)
}

/// Whether `name` is read as a path or a command (see [`PATH_SUFFIXES`]):
/// also a key log, a shell history, a kubeconfig, git's variables but its
/// identity.
pub fn names_a_path(name: &str) -> bool {
    PATH_SUFFIXES.iter().any(|s| name.ends_with(s))
        || name.contains("KEYLOG")
        || name.contains("HISTFILE")
        || name.starts_with("KUBE")
        || (name.starts_with("GIT_") && !NOT_STEERING.contains(&name))
}

fn steering_pattern(name: &str) -> bool {
    names_a_path(name)
        || STEERING_SUFFIXES.iter().any(|s| name.ends_with(s))
        || STEERING_PREFIXES.iter().any(|p| name.starts_with(p))
        || STEERING_PARTS.iter().any(|p| name.contains(p))
}

/// Whether the caller's `name=value` is part of the base set.
fn caller_base(name: &[u8], value: &[u8]) -> bool {
    let known = CALLER_BASE.iter().any(|c| c.as_bytes() == name) || name.starts_with(b"LC_");
    // A zone name has slashes (`Europe/Berlin`); it is still never a path
    // of the caller's choosing.
    let path = if name == b"TZ" {
        value.starts_with(b"/") || value.windows(2).any(|w| w == b"..")
    } else {
        value.contains(&b'/')
    };
    known && !path && !value.starts_with(b":") && !value.contains(&0)
}

/// The program's environment: the grant's `fixed` values (the base set
/// recorded at `allow` — `PATH`, `HOME`, `USER`, `LOGNAME` — and its
/// `--env NAME=VALUE`s), the caller's locale, terminal type and time zone,
/// and of the caller's other variables only those the grant `passes`
/// (unless `clear`). Nothing else of the caller's: an allowlist, so no
/// variable a program reads can be set by whoever calls it unless the
/// grant says so. Dangerous names are dropped even when passed.
pub fn build(
    fixed: &[(OsString, OsString)],
    passed: &[String],
    caller: impl IntoIterator<Item = (OsString, OsString)>,
    clear: bool,
) -> Vec<(OsString, OsString)> {
    let is_fixed = |k: &OsStr| fixed.iter().any(|(f, _)| f == k);
    let mut env: Vec<(OsString, OsString)> = caller
        .into_iter()
        .filter(|(k, v)| {
            let passes = !clear && passed.iter().any(|p| OsStr::new(p) == k);
            (passes || caller_base(k.as_bytes(), v.as_bytes())) && !is_dangerous(k) && !is_fixed(k)
        })
        .collect();
    env.extend(fixed.iter().filter(|(k, _)| !is_dangerous(k)).cloned());
    env
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

    fn fixed() -> Vec<(OsString, OsString)> {
        vec![
            ("PATH".into(), "/usr/bin".into()),
            ("HOME".into(), "/h".into()),
        ]
    }

    #[test]
    fn only_the_grants_variables_pass() {
        let caller = env(&[
            "LD_PRELOAD",
            "PYTHONPATH",
            "HTTPS_PROXY",
            "OPENSSL_CONF",
            "PATH",
            "HOME",
            "RUST_LOG",
            "GIT_AUTHOR_NAME",
            "LANG",
            "LC_ALL",
            "TERM",
        ]);
        let kept = build(
            &fixed(),
            &["RUST_LOG".into(), "LD_PRELOAD".into()],
            caller,
            false,
        );
        assert_eq!(
            names(kept.clone()),
            ["RUST_LOG", "LANG", "LC_ALL", "TERM", "PATH", "HOME"]
        );
        // The grant's PATH and HOME, not the caller's.
        assert!(kept.contains(&("PATH".into(), "/usr/bin".into())));
    }

    #[test]
    fn a_locale_or_terminal_naming_a_path_is_dropped() {
        let caller = vec![
            ("LANG".into(), "../../tmp/x".into()),
            ("TERM".into(), "xterm".into()),
            ("TZ".into(), ":/home/a/tz".into()),
            ("TZ".into(), "../../home/a/tz".into()),
            ("TZ".into(), "Europe/Berlin".into()),
        ];
        assert_eq!(names(build(&[], &[], caller, false)), ["TERM", "TZ"]);
    }

    #[test]
    fn clear_drops_even_passed_variables() {
        let kept = build(
            &fixed(),
            &["RUST_LOG".into()],
            env(&["RUST_LOG", "TERM"]),
            true,
        );
        assert_eq!(names(kept), ["TERM", "PATH", "HOME"]);
    }

    #[test]
    fn python_and_node_start_isolated() {
        assert_eq!(isolation("/usr/bin/python3.11"), ["-E", "-s"]);
        assert_eq!(isolation("/usr/bin/node"), ["--no-global-search-paths"]);
        assert!(isolation("/usr/bin/perl").is_empty());
    }

    #[test]
    fn steering_names_are_recognised() {
        for n in [
            "HTTPS_PROXY",
            "https_proxy",
            "CURL_CA_BUNDLE",
            "SSLKEYLOGFILE",
            "PGHOSTADDR",
            "OPENSSL_CONF",
            "CURL_HOME",
            "REQUESTS_CA_BUNDLE",
            "SSL_CERT_FILE",
            "GIT_SSL_CAINFO",
            "NODE_EXTRA_CA_CERTS",
            "XDG_CONFIG_HOME",
        ] {
            assert!(is_steering(n), "{n}");
        }
        for n in [
            "KUBECONFIG",
            "OPENAI_BASE_URL",
            "DATABASE_HOST",
            "GIT_SSL_NO_VERIFY",
            "SSLKEYLOGFILE",
        ] {
            assert!(is_steering(n), "{n}");
        }
        for n in [
            "RUST_LOG",
            "DEBUG",
            "REGION",
            "GIT_AUTHOR_NAME",
            "SSH_AUTH_SOCK",
        ] {
            assert!(!is_steering(n), "{n}");
        }
    }
}
