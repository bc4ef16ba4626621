//! Programs that run whatever code their arguments say: granting one
//! without an argument constraint hands the secrets to anyone.

/// Exact names of shells and general-purpose interpreters.
const EXACT: &[&str] = &[
    "sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "csh", "tcsh", "ash", "env", "busybox",
    "xargs", "find", "node", "nodejs", "deno", "bun", "awk", "gawk", "mawk", "tclsh", "Rscript",
];

/// Names that are interpreters with any suffix (`python3.12`, `perl5.36`).
const PREFIXES: &[&str] = &["python", "pypy", "perl", "ruby", "php", "lua", "luajit"];

/// Whether `file_name` (the last path component) names a known
/// interpreter or shell.
pub fn is_interpreter(file_name: &str) -> bool {
    EXACT.contains(&file_name)
        || PREFIXES.iter().any(|p| {
            file_name.strip_prefix(p).is_some_and(|rest| {
                rest.chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_interpreters_and_not_ordinary_programs() {
        for yes in [
            "python",
            "python3",
            "python3.12",
            "perl",
            "perl5.36",
            "node",
            "sh",
            "bash",
            "busybox",
            "env",
            "find",
            "xargs",
            "ruby3.1",
            "php8.2",
            "lua5.4",
            "fish",
        ] {
            assert!(is_interpreter(yes), "{yes}");
        }
        for no in [
            "deploy",
            "psql",
            "curl",
            "pythonic-tool",
            "shred",
            "envsubst",
            "git",
        ] {
            assert!(!is_interpreter(no), "{no}");
        }
    }
}
