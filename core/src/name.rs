//! Secret names: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 bytes.

use std::fmt;

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// A name that is not a valid secret name (what is echoed back is cut to
/// 32 characters: a mistyped value pasted as a name is not repeated).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid secret name {name:?}: {reason}")]
pub struct NameError {
    pub name: String,
    pub reason: &'static str,
}

/// A validated secret name. Names are not secret; values are.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(String);

impl SecretName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let invalid = |reason| NameError {
            // Truncate what we echo back: a mistyped value pasted as a name
            // should not be repeated in full.
            name: name.chars().take(32).collect(),
            reason,
        };
        let mut bytes = name.bytes();
        match bytes.next() {
            None => return Err(invalid("a name cannot be empty")),
            Some(b) if !(b.is_ascii_alphabetic() || b == b'_') => {
                return Err(invalid("a name must start with a letter or '_'"));
            }
            Some(_) => {}
        }
        if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid("a name may contain only letters, digits and '_'"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid("a name may be at most 128 bytes"));
        }
        Ok(SecretName(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_shell_style_names() {
        for ok in ["A", "_", "API_TOKEN", "a1", "_x_9", &"N".repeat(128)] {
            assert!(SecretName::new(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "1A",
            "A-B",
            "A B",
            "A=B",
            "ÄPI",
            "a.b",
            &"N".repeat(129),
        ] {
            assert!(SecretName::new(bad).is_err(), "{bad:?} should be invalid");
        }
    }
}
