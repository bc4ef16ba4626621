//! Grants and their one canonical encoding.
//!
//! ```text
//! "ESG4" | str16 program | sha256 [32]
//!        | u8 script? [ str16 interpreter | sha256 [32] | u8 arg? [ str16 arg ] ]
//!        | u8 tier | u8 forced_interpreter | u8 require_shield
//!        | u8 venv? [ str16 venv ]
//!        | u16 count | (str16 path | sha256 [32])*                      may_exec
//!        | u8 rule (0 any, 1 exact, 2 prefix) [ u16 count | (u32 len | bytes)* ]
//!        | u16 count | (u8 len | secret | u8 kind (0 env, 1 file) | u8 len | variable)*
//! str16 = u16 len | UTF-8 bytes
//! ```
//!
//! Secrets are strictly sorted by name, flags are 0 or 1, and nothing may
//! follow the last field, so every grant has exactly one encoding: the
//! vault's manifest authenticates the digest of these bytes. "ESG3" (no
//! `venv`), "ESG2" (nor a `require_shield` flag) and "ESG1" (nor a
//! `may_exec` list) are still read, as none, `false` and an empty list.

use std::collections::{BTreeMap, BTreeSet};

use envseal_core::SecretName;
pub use envseal_core::Tier;
use envseal_core::codec::Reader;

use crate::Digest;
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"ESG4";
const MAGIC_V3: &[u8; 4] = b"ESG3";
const MAGIC_V2: &[u8; 4] = b"ESG2";
const MAGIC_V1: &[u8; 4] = b"ESG1";

/// A tier's byte in an encoded grant.
fn tier_code(tier: Tier) -> u8 {
    tier as u8
}

fn tier_from_code(c: u8) -> Option<Tier> {
    [Tier::None, Tier::Hardened, Tier::Lockdown]
        .into_iter()
        .find(|t| tier_code(*t) == c)
}

/// A file pinned by canonical path and content hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// Canonical absolute path (no symlinks, no `.`/`..`).
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: Digest,
}

/// For a `#!` script: the interpreter that runs it, pinned too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The interpreter (for `#!/usr/bin/env NAME`, NAME as resolved at
    /// grant time).
    pub interpreter: Pin,
    /// The optional single argument of the `#!` line (not for `env`).
    pub arg: Option<String>,
}

/// How one secret reaches the program (one vocabulary: `envseal-core`).
pub use envseal_core::Delivery;

/// A constraint on the arguments after the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgRule {
    /// Any arguments.
    Any,
    /// Exactly these.
    Exact(Vec<Vec<u8>>),
    /// These first, then anything.
    Prefix(Vec<Vec<u8>>),
}

/// A program and the secrets it may receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The program (the script itself, for a `#!` script).
    pub program: Pin,
    /// Present when the program is a `#!` script.
    pub script: Option<Script>,
    /// Secret name → how it is delivered.
    pub secrets: BTreeMap<SecretName, Delivery>,
    /// Confinement tier.
    pub tier: Tier,
    /// Constraint on the arguments.
    pub args: ArgRule,
    /// Granted although the program is a known interpreter.
    pub forced_interpreter: bool,
    /// Other programs the program may execute, each pinned: checked
    /// against its pin at every launch; in Lockdown the only ones it may.
    pub may_exec: Vec<Pin>,
    /// Only callers inside an `envseal shield` may run it (through the
    /// broker).
    pub require_shield: bool,
    /// The virtualenv's `bin/python` (a link to `program`) the grant pins:
    /// the interpreter runs as that venv's, and only when called by that
    /// path; `None`: the interpreter itself, never through a venv.
    pub venv: Option<String>,
}

impl Grant {
    /// Checks what the types cannot: no two secrets share a variable.
    pub fn validate(&self) -> Result<()> {
        if self.secrets.is_empty() {
            return Err(Error::Invalid(
                "a grant must give at least one secret".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for (name, delivery) in &self.secrets {
            if !seen.insert(delivery.variable()) {
                return Err(Error::Invalid(format!(
                    "two secrets would be delivered in the variable {} (the second is {name})",
                    delivery.variable()
                )));
            }
        }
        Ok(())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(MAGIC);
        put_pin(&mut out, &self.program);
        match &self.script {
            None => out.push(0),
            Some(script) => {
                out.push(1);
                put_pin(&mut out, &script.interpreter);
                match &script.arg {
                    None => out.push(0),
                    Some(arg) => {
                        out.push(1);
                        put_str16(&mut out, arg);
                    }
                }
            }
        }
        out.push(tier_code(self.tier));
        out.push(u8::from(self.forced_interpreter));
        out.push(u8::from(self.require_shield));
        match &self.venv {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                put_str16(&mut out, v);
            }
        }
        out.extend_from_slice(&(self.may_exec.len() as u16).to_be_bytes());
        for pin in &self.may_exec {
            put_pin(&mut out, pin);
        }
        let (rule, list) = match &self.args {
            ArgRule::Any => (0, None),
            ArgRule::Exact(l) => (1, Some(l)),
            ArgRule::Prefix(l) => (2, Some(l)),
        };
        out.push(rule);
        if let Some(list) = list {
            out.extend_from_slice(&(list.len() as u16).to_be_bytes());
            for arg in list {
                out.extend_from_slice(&(arg.len() as u32).to_be_bytes());
                out.extend_from_slice(arg);
            }
        }
        out.extend_from_slice(&(self.secrets.len() as u16).to_be_bytes());
        for (name, delivery) in &self.secrets {
            put_name(&mut out, name);
            out.push(match delivery {
                Delivery::Env(_) => 0,
                Delivery::File(_) => 1,
            });
            put_name(&mut out, delivery.variable());
        }
        out
    }

    /// Parses the canonical encoding; anything else is [`Error::Malformed`].
    pub fn decode(bytes: &[u8]) -> Result<Grant> {
        decode(&mut Reader::new(bytes)).ok_or(Error::Malformed)
    }
}

fn decode(r: &mut Reader<'_>) -> Option<Grant> {
    let version = match r.take(4)? {
        m if m == MAGIC => 4,
        m if m == MAGIC_V3 => 3,
        m if m == MAGIC_V2 => 2,
        m if m == MAGIC_V1 => 1,
        _ => return None,
    };
    let program = get_pin(r)?;
    let script = match get_flag(r)? {
        false => None,
        true => {
            let interpreter = get_pin(r)?;
            let arg = match get_flag(r)? {
                false => None,
                true => Some(get_str16(r)?),
            };
            Some(Script { interpreter, arg })
        }
    };
    let tier = tier_from_code(r.u8()?)?;
    let forced_interpreter = get_flag(r)?;
    let require_shield = version >= 3 && get_flag(r)?;
    let venv = match version >= 4 && get_flag(r)? {
        true => Some(get_str16(r)?),
        false => None,
    };
    let may_exec = if version >= 2 {
        (0..r.u16()?)
            .map(|_| get_pin(r))
            .collect::<Option<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let rule = r.u8()?;
    let mut list = || -> Option<Vec<Vec<u8>>> {
        let n = r.u16()?;
        (0..n)
            .map(|_| {
                let len = r.u32()? as usize;
                Some(r.take(len)?.to_vec())
            })
            .collect()
    };
    let args = match rule {
        0 => ArgRule::Any,
        1 => ArgRule::Exact(list()?),
        2 => ArgRule::Prefix(list()?),
        _ => return None,
    };
    let secrets = get_secrets(r)?;
    if !r.is_empty() {
        return None;
    }
    Some(Grant {
        program,
        script,
        secrets,
        tier,
        args,
        forced_interpreter,
        may_exec,
        require_shield,
        venv,
    })
}

/// The secrets: strictly sorted by name (so one encoding each).
fn get_secrets(r: &mut Reader<'_>) -> Option<BTreeMap<SecretName, Delivery>> {
    let count = r.u16()?;
    let mut secrets = BTreeMap::new();
    let mut last: Option<SecretName> = None;
    for _ in 0..count {
        let name = get_name(r)?;
        if last.as_ref().is_some_and(|l| l >= &name) {
            return None;
        }
        let kind = r.u8()?;
        let variable = get_name(r)?;
        let delivery = match kind {
            0 => Delivery::Env(variable),
            1 => Delivery::File(variable),
            _ => return None,
        };
        last = Some(name.clone());
        secrets.insert(name, delivery);
    }
    Some(secrets)
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_pin(out: &mut Vec<u8>, pin: &Pin) {
    put_str16(out, &pin.path);
    out.extend_from_slice(&pin.sha256);
}

fn put_name(out: &mut Vec<u8>, name: &SecretName) {
    out.push(name.as_str().len() as u8);
    out.extend_from_slice(name.as_str().as_bytes());
}

fn get_flag(r: &mut Reader<'_>) -> Option<bool> {
    match r.u8()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn get_str16(r: &mut Reader<'_>) -> Option<String> {
    let len = r.u16()? as usize;
    String::from_utf8(r.take(len)?.to_vec()).ok()
}

fn get_pin(r: &mut Reader<'_>) -> Option<Pin> {
    let path = get_str16(r)?;
    let sha256 = r.array::<32>()?;
    Some(Pin { path, sha256 })
}

fn get_name(r: &mut Reader<'_>) -> Option<SecretName> {
    let len = r.u8()? as usize;
    SecretName::new(std::str::from_utf8(r.take(len)?).ok()?).ok()
}

/// A grant for tests: `path` gives secret A as `$A`.
#[cfg(test)]
pub(crate) fn sample(path: &str, tier: Tier, args: ArgRule) -> Grant {
    let a = SecretName::new("A").unwrap();
    Grant {
        program: Pin {
            path: path.into(),
            sha256: [1; 32],
        },
        script: None,
        secrets: [(a.clone(), Delivery::Env(a))].into_iter().collect(),
        tier,
        args,
        forced_interpreter: false,
        may_exec: Vec::new(),
        require_shield: false,
        venv: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = SecretName> {
        "[A-Za-z_][A-Za-z0-9_]{0,20}".prop_map(|s| SecretName::new(&s).unwrap())
    }

    fn pin() -> impl Strategy<Value = Pin> {
        ("/[a-z/._-]{0,60}", any::<[u8; 32]>()).prop_map(|(path, sha256)| Pin { path, sha256 })
    }

    fn grant() -> impl Strategy<Value = Grant> {
        let args = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..5);
        let rule = prop_oneof![
            Just(ArgRule::Any),
            args.clone().prop_map(ArgRule::Exact),
            args.prop_map(ArgRule::Prefix),
        ];
        let script = proptest::option::of((pin(), proptest::option::of("[ -~]{0,20}")))
            .prop_map(|s| s.map(|(interpreter, arg)| Script { interpreter, arg }));
        let delivery = (any::<bool>(), name()).prop_map(|(file, v)| {
            if file {
                Delivery::File(v)
            } else {
                Delivery::Env(v)
            }
        });
        (
            pin(),
            script,
            proptest::collection::btree_map(name(), delivery, 0..8),
            0u8..3,
            rule,
            any::<bool>(),
            proptest::collection::vec(pin(), 0..3),
            any::<bool>(),
            proptest::option::of("/[a-z/]{1,40}"),
        )
            .prop_map(
                |(
                    program,
                    script,
                    secrets,
                    tier,
                    args,
                    forced_interpreter,
                    may_exec,
                    require_shield,
                    venv,
                )| Grant {
                    program,
                    script,
                    secrets,
                    tier: tier_from_code(tier).unwrap(),
                    args,
                    forced_interpreter,
                    may_exec,
                    require_shield,
                    venv,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(g in grant()) {
            prop_assert_eq!(Grant::decode(&g.encode()).unwrap(), g);
        }

        #[test]
        fn malformed_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Grant::decode(&bytes);
        }

        #[test]
        fn truncation_and_trailing_bytes_are_rejected(g in grant(), cut in any::<usize>()) {
            let bytes = g.encode();
            let cut = cut % bytes.len();
            prop_assert!(Grant::decode(&bytes[..cut]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(Grant::decode(&longer).is_err());
        }
    }

    #[test]
    fn an_esg1_grant_reads_with_no_may_exec() {
        let g = sample("/bin/x", Tier::Lockdown, ArgRule::Any);
        let mut v1 = g.encode();
        v1[..4].copy_from_slice(MAGIC_V1);
        // ESG1 had no require_shield flag, venv flag nor may_exec count
        // after the forced flag.
        let at = 4 + 2 + "/bin/x".len() + 32 + 1 + 1 + 1;
        v1.drain(at..at + 4);
        assert_eq!(Grant::decode(&v1).unwrap(), g);
    }

    #[test]
    fn an_esg2_grant_reads_as_not_requiring_a_shield() {
        let g = sample("/bin/x", Tier::Hardened, ArgRule::Any);
        let mut v2 = g.encode();
        v2[..4].copy_from_slice(MAGIC_V2);
        let at = 4 + 2 + "/bin/x".len() + 32 + 1 + 1 + 1;
        v2.drain(at..at + 2);
        assert_eq!(Grant::decode(&v2).unwrap(), g);
        // A v2 grant cannot smuggle the flag in: the extra byte is trailing.
        let mut shielded = g.clone();
        shielded.require_shield = true;
        let mut forged = shielded.encode();
        forged[..4].copy_from_slice(MAGIC_V2);
        assert!(Grant::decode(&forged).is_err());
    }

    #[test]
    fn an_esg3_grant_reads_as_pinning_no_virtualenv() {
        let g = sample("/bin/x", Tier::Hardened, ArgRule::Any);
        let mut v3 = g.encode();
        v3[..4].copy_from_slice(MAGIC_V3);
        let at = 4 + 2 + "/bin/x".len() + 32 + 1 + 1 + 1 + 1;
        v3.remove(at);
        assert_eq!(Grant::decode(&v3).unwrap(), g);
        // Nor can a v3 grant smuggle a venv in.
        let mut venv = g.clone();
        venv.venv = Some("/p/.venv/bin/python".into());
        let mut forged = venv.encode();
        forged[..4].copy_from_slice(MAGIC_V3);
        assert!(Grant::decode(&forged).is_err());
    }

    #[test]
    fn two_secrets_in_one_variable_are_invalid() {
        let mut g = sample("/bin/x", Tier::None, ArgRule::Any);
        g.secrets.insert(
            SecretName::new("B").unwrap(),
            Delivery::Env(SecretName::new("A").unwrap()),
        );
        assert!(g.validate().is_err());
    }
}
