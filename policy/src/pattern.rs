//! Argument patterns (`allow --args-pattern`): a fixed argv shape in which
//! some positions are placeholders, so that a common command can be
//! granted without a free tail.
//!
//! A pattern is words separated by spaces. A word `{name:[class]+}` is a
//! placeholder: the argument there is one or more bytes of the class (ASCII
//! characters and ranges `a-z`; a `-` first or last is itself) and never
//! begins with `-`, `+` or `@`, so it cannot be read as an option (nor as
//! a `+` option or an `@` response file). Every other word is
//! literal. Written by hand: a regular-expression crate would accept far
//! more than this (alternation, repetition of groups) and every extra
//! construct is a way to write a pattern that admits an option.

use crate::error::{Error, Result};

/// One placeholder's allowed bytes.
struct Class {
    allowed: [bool; 128],
}

impl Class {
    fn parse(spec: &[u8]) -> Option<Class> {
        let mut allowed = [false; 128];
        let mut i = 0;
        while i < spec.len() {
            let c = spec[i];
            if !c.is_ascii() || c.is_ascii_control() || c == b'[' || c == b']' || c == b'^' {
                return None;
            }
            if i + 2 < spec.len() && spec[i + 1] == b'-' {
                let end = spec[i + 2];
                if !end.is_ascii() || end < c {
                    return None;
                }
                for b in c..=end {
                    allowed[b as usize] = true;
                }
                i += 3;
            } else {
                allowed[c as usize] = true;
                i += 1;
            }
        }
        allowed.iter().any(|a| *a).then_some(Class { allowed })
    }

    fn admits(&self, arg: &[u8]) -> bool {
        !arg.is_empty()
            && !matches!(arg[0], b'-' | b'+' | b'@')
            && arg
                .iter()
                .all(|b| self.allowed.get(*b as usize).copied().unwrap_or(false))
    }
}

/// A placeholder word's class, or `None` for a literal word.
fn placeholder(word: &[u8]) -> Option<std::result::Result<Class, ()>> {
    let inner = word.strip_prefix(b"{")?.strip_suffix(b"}")?;
    let colon = inner.iter().position(|b| *b == b':');
    let parsed = colon.and_then(|at| {
        let (name, rest) = (&inner[..at], &inner[at + 1..]);
        let valid_name =
            !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let class = rest.strip_prefix(b"[")?.strip_suffix(b"]+")?;
        valid_name.then(|| Class::parse(class)).flatten()
    });
    Some(parsed.ok_or(()))
}

/// Parses `--args-pattern`'s text into the grant's list of words.
pub fn parse(text: &str) -> Result<Vec<Vec<u8>>> {
    let words: Vec<Vec<u8>> = text
        .split_ascii_whitespace()
        .map(|w| w.as_bytes().to_vec())
        .collect();
    if words.is_empty() {
        return Err(Error::Invalid(
            "an argument pattern needs at least one word".into(),
        ));
    }
    for word in &words {
        if let Some(Err(())) = placeholder(word) {
            return Err(Error::Invalid(format!(
                "{:?} is not a placeholder: write {{name:[class]+}}, e.g. {{ref:[A-Za-z0-9._/-]+}}",
                String::from_utf8_lossy(word)
            )));
        }
    }
    Ok(words)
}

/// Whether `args` has the pattern's shape.
pub fn matches(pattern: &[Vec<u8>], args: &[&[u8]]) -> bool {
    pattern.len() == args.len()
        && pattern
            .iter()
            .zip(args)
            .all(|(word, arg)| match placeholder(word) {
                None => word.as_slice() == *arg,
                Some(Ok(class)) => class.admits(arg),
                Some(Err(())) => false,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(pattern: &str, args: &[&str]) -> bool {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        matches(&parse(pattern).unwrap(), &args)
    }

    #[test]
    fn a_placeholder_takes_its_class_only() {
        let p = "push origin {ref:[A-Za-z0-9._/-]+}";
        assert!(fits(p, &["push", "origin", "main"]));
        assert!(fits(p, &["push", "origin", "release/v1.2"]));
        assert!(!fits(p, &["push", "origin", "--receive-pack=touch /tmp/x"]));
        assert!(!fits(p, &["push", "origin", "-fmain"]));
        assert!(!fits("run {f:[a-z@+]+}", &["run", "@args"]));
        assert!(!fits("run {f:[a-z@+]+}", &["run", "+x"]));
        assert!(!fits(p, &["push", "origin", "a b"]));
        assert!(!fits(p, &["push", "origin", ""]));
        assert!(!fits(p, &["push", "origin"]));
        assert!(!fits(p, &["push", "origin", "main", "--force"]));
        assert!(!fits(p, &["push", "upstream", "main"]));
    }

    #[test]
    fn malformed_placeholders_are_refused() {
        for bad in [
            "{ref}",
            "{ref:[]+}",
            "{:[a]+}",
            "{r:[^a]+}",
            "{r:[z-a]+}",
            "{r:[a]}",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
