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
//!        | u8 environ? [ str16 path | str16 home | str16 user
//!                      | u16 count | str16 name*                       passed
//!                      | u16 count | (str16 name | str16 value)* ]     fixed
//!        | u8 write_cwd | u16 count | str16 dir*                       write
//! str16 = u16 len | UTF-8 bytes
//! ```
//!
//! Rule 3 is a pattern: its list holds literal arguments and placeholders
//! (see [`crate::pattern`]). Names, values and directories are strictly
//! sorted, so each list has one encoding.
//!
//! Secrets are strictly sorted by name, flags are 0 or 1, and nothing may
//! follow the last field, so every grant has exactly one encoding: the
//! vault's manifest authenticates the digest of these bytes. "ESG3" (no
//! `venv`), "ESG2" (nor a `require_shield` flag) and "ESG1" (nor a
//! `may_exec` list) are still read, as none, `false` and an empty list;
//! "ESG4" and older have no environment section (`environ` is `None`: the
//! launch gives the base set only) and no writable directories.

use std::collections::{BTreeMap, BTreeSet};

use envseal_core::SecretName;
pub use envseal_core::Tier;
use envseal_core::codec::Reader;

use crate::Digest;
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"ESG5";
const MAGIC_V4: &[u8; 4] = b"ESG4";
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
    /// Exactly this many, each equal to its literal or matching its
    /// placeholder (`{name:[class]+}`, see [`crate::pattern`]).
    Pattern(Vec<Vec<u8>>),
}

/// The program's environment, fixed when the grant is made: nothing else
/// of the caller's reaches the program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environ {
    /// `PATH`: the person's at `allow`, keeping only directories the user
    /// cannot write, or the one `--path` gave.
    pub path: String,
    /// `HOME` at `allow`.
    pub home: String,
    /// `USER` and `LOGNAME` at `allow`.
    pub user: String,
    /// The caller's variables passed through (`--env NAME`), sorted.
    pub passed: Vec<String>,
    /// Fixed values (`--env NAME=VALUE`), sorted by name.
    pub fixed: Vec<(String, String)>,
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
    /// The environment it runs with; `None` for a grant made before
    /// environments were recorded (the base set, from the system).
    pub environ: Option<Environ>,
    /// Lockdown: the working directory is writable (`--write-cwd`).
    pub write_cwd: bool,
    /// Lockdown: directories it may write (`--write DIR`), canonical,
    /// sorted.
    pub write: Vec<String>,
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
            ArgRule::Pattern(l) => (3, Some(l)),
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
        match &self.environ {
            None => out.push(0),
            Some(e) => {
                out.push(1);
                put_str16(&mut out, &e.path);
                put_str16(&mut out, &e.home);
                put_str16(&mut out, &e.user);
                put_list(&mut out, &e.passed);
                out.extend_from_slice(&(e.fixed.len() as u16).to_be_bytes());
                for (name, value) in &e.fixed {
                    put_str16(&mut out, name);
                    put_str16(&mut out, value);
                }
            }
        }
        out.push(u8::from(self.write_cwd));
        put_list(&mut out, &self.write);
        out
    }

    /// Parses the canonical encoding; anything else is [`Error::Malformed`].
    pub fn decode(bytes: &[u8]) -> Result<Grant> {
        decode(&mut Reader::new(bytes)).ok_or(Error::Malformed)
    }
}

fn decode(r: &mut Reader<'_>) -> Option<Grant> {
    let version = match r.take(4)? {
        m if m == MAGIC => 5,
        m if m == MAGIC_V4 => 4,
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
        3 if version >= 5 => ArgRule::Pattern(list()?),
        _ => return None,
    };
    let secrets = get_secrets(r)?;
    let (environ, write_cwd, write) = match version >= 5 {
        true => (get_environ(r)?, get_flag(r)?, get_sorted(r)?),
        false => (None, false, Vec::new()),
    };
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
        environ,
        write_cwd,
        write,
    })
}

fn get_environ(r: &mut Reader<'_>) -> Option<Option<Environ>> {
    if !get_flag(r)? {
        return Some(None);
    }
    let path = get_str16(r)?;
    let home = get_str16(r)?;
    let user = get_str16(r)?;
    let passed = get_sorted(r)?;
    let mut fixed: Vec<(String, String)> = Vec::new();
    for _ in 0..r.u16()? {
        let name = get_str16(r)?;
        if fixed.last().is_some_and(|(last, _)| *last >= name) {
            return None;
        }
        fixed.push((name, get_str16(r)?));
    }
    Some(Some(Environ {
        path,
        home,
        user,
        passed,
        fixed,
    }))
}

/// A list of strings, strictly sorted (so one encoding).
fn get_sorted(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let mut list: Vec<String> = Vec::new();
    for _ in 0..r.u16()? {
        let item = get_str16(r)?;
        if list.last().is_some_and(|last| *last >= item) {
            return None;
        }
        list.push(item);
    }
    Some(list)
}

fn put_list(out: &mut Vec<u8>, list: &[String]) {
    out.extend_from_slice(&(list.len() as u16).to_be_bytes());
    for item in list {
        put_str16(out, item);
    }
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
        environ: None,
        write_cwd: false,
        write: Vec::new(),
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
            args.clone().prop_map(ArgRule::Prefix),
            args.prop_map(ArgRule::Pattern),
        ];
        let sorted = |re: &'static str| proptest::collection::btree_set(re, 0..4);
        let environ = proptest::option::of((
            "[ -~]{0,30}",
            "/[a-z]{0,10}",
            "[a-z]{0,8}",
            sorted("[A-Z_]{1,8}"),
            proptest::collection::btree_map("[A-Z_]{1,8}", "[ -~]{0,12}", 0..4),
        ))
        .prop_map(|e| {
            e.map(|(path, home, user, passed, fixed)| Environ {
                path,
                home,
                user,
                passed: passed.into_iter().collect(),
                fixed: fixed.into_iter().collect(),
            })
        });
        let writable = (any::<bool>(), sorted("/[a-z]{1,10}"))
            .prop_map(|(cwd, dirs)| (cwd, dirs.into_iter().collect::<Vec<_>>()));
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
            (environ, writable),
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
                    (environ, (write_cwd, write)),
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
                    environ,
                    write_cwd,
                    write,
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

    /// `g` (with no environment nor writable directories) as ESG4 wrote
    /// it: without the last four bytes.
    fn esg4(g: &Grant) -> Vec<u8> {
        let mut v4 = g.encode();
        v4.truncate(v4.len() - 4);
        v4[..4].copy_from_slice(MAGIC_V4);
        v4
    }

    #[test]
    fn an_esg4_grant_reads_with_no_environment() {
        let g = sample("/bin/x", Tier::Lockdown, ArgRule::Any);
        assert_eq!(Grant::decode(&esg4(&g)).unwrap(), g);
        // Nor can an ESG4 grant carry an environment or a pattern.
        let mut world = g.clone();
        world.write_cwd = true;
        let mut forged = world.encode();
        forged[..4].copy_from_slice(MAGIC_V4);
        assert!(Grant::decode(&forged).is_err());
        let pattern = sample("/bin/x", Tier::None, ArgRule::Pattern(vec![b"x".to_vec()]));
        assert!(Grant::decode(&esg4(&pattern)).is_err());
    }

    #[test]
    fn an_esg1_grant_reads_with_no_may_exec() {
        let g = sample("/bin/x", Tier::Lockdown, ArgRule::Any);
        let mut v1 = esg4(&g);
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
        let mut v2 = esg4(&g);
        v2[..4].copy_from_slice(MAGIC_V2);
        let at = 4 + 2 + "/bin/x".len() + 32 + 1 + 1 + 1;
        v2.drain(at..at + 2);
        assert_eq!(Grant::decode(&v2).unwrap(), g);
        // A v2 grant cannot smuggle the flag in: the extra byte is trailing.
        let mut shielded = g.clone();
        shielded.require_shield = true;
        let mut forged = esg4(&shielded);
        forged[..4].copy_from_slice(MAGIC_V2);
        assert!(Grant::decode(&forged).is_err());
    }

    #[test]
    fn an_esg3_grant_reads_as_pinning_no_virtualenv() {
        let g = sample("/bin/x", Tier::Hardened, ArgRule::Any);
        let mut v3 = esg4(&g);
        v3[..4].copy_from_slice(MAGIC_V3);
        let at = 4 + 2 + "/bin/x".len() + 32 + 1 + 1 + 1 + 1;
        v3.remove(at);
        assert_eq!(Grant::decode(&v3).unwrap(), g);
        // Nor can a v3 grant smuggle a venv in.
        let mut venv = g.clone();
        venv.venv = Some("/p/.venv/bin/python".into());
        let mut forged = esg4(&venv);
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
