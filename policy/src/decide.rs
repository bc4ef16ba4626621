//! Decisions at exec time: do these arguments fit the grant, and which
//! secrets are delivered.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt as _;

use envseal_core::SecretName;

use crate::error::{Error, Result};
use crate::grant::{ArgRule, Delivery, Grant};

/// Checks the arguments after the program against the grant's rule.
pub fn check_args(grant: &Grant, args: &[OsString]) -> Result<()> {
    let given: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let fits = match &grant.args {
        ArgRule::Any => true,
        ArgRule::Exact(want) => given.iter().copied().eq(want.iter().map(Vec::as_slice)),
        ArgRule::Prefix(want) => {
            given.len() >= want.len()
                && given
                    .iter()
                    .copied()
                    .zip(want)
                    .all(|(g, w)| g == w.as_slice())
        }
        ArgRule::Pattern(words) => crate::pattern::matches(words, &given),
    };
    if fits {
        return Ok(());
    }
    Err(Error::ArgsRejected {
        program: grant.program.path.clone(),
        expected: describe_args(&grant.args),
    })
}

/// A person-readable form of an argument rule.
pub fn describe_args(rule: &ArgRule) -> String {
    let list = |l: &[Vec<u8>]| {
        l.iter()
            .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match rule {
        ArgRule::Any => "any arguments".into(),
        ArgRule::Exact(l) if l.is_empty() => "no arguments at all".into(),
        ArgRule::Exact(l) => format!("exactly [{}]", list(l)),
        ArgRule::Prefix(l) => format!("starting with [{}]", list(l)),
        ArgRule::Pattern(l) => format!("shaped [{}]", list(l)),
    }
}

/// The secrets to deliver: all of the grant's, or the `requested` subset.
pub fn select(grant: &Grant, requested: &[SecretName]) -> Result<Vec<(SecretName, Delivery)>> {
    if requested.is_empty() {
        return Ok(grant
            .secrets
            .iter()
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect());
    }
    requested
        .iter()
        .map(|name| {
            grant
                .secrets
                .get(name)
                .map(|d| (name.clone(), d.clone()))
                .ok_or_else(|| Error::NotInGrant {
                    program: grant.program.path.clone(),
                    secret: name.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Tier;

    fn grant(args: ArgRule) -> Grant {
        crate::grant::sample("/usr/bin/python3", Tier::None, args)
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn exact_and_prefix_rules() {
        let exact = grant(ArgRule::Exact(vec![b"/opt/job.py".to_vec()]));
        assert!(check_args(&exact, &os(&["/opt/job.py"])).is_ok());
        assert!(check_args(&exact, &os(&[])).is_err());
        assert!(check_args(&exact, &os(&["/opt/job.py", "-c"])).is_err());
        assert!(check_args(&exact, &os(&["-c", "print(1)"])).is_err());
        let prefix = grant(ArgRule::Prefix(vec![b"run".to_vec()]));
        assert!(check_args(&prefix, &os(&["run", "x"])).is_ok());
        assert!(check_args(&prefix, &os(&["run"])).is_ok());
        assert!(check_args(&prefix, &os(&["-c", "run"])).is_err());
        assert!(check_args(&grant(ArgRule::Exact(vec![])), &os(&["x"])).is_err());
        assert!(check_args(&grant(ArgRule::Any), &os(&["-c", "x"])).is_ok());
    }

    #[test]
    fn selecting_outside_the_grant_is_refused() {
        let g = grant(ArgRule::Any);
        assert_eq!(select(&g, &[]).unwrap().len(), 1);
        assert!(select(&g, &[SecretName::new("B").unwrap()]).is_err());
    }
}
