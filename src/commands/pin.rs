//! Shared by `allow`, `exec` and `grants`: resolving a program the one
//! way, building a grant from the command line, and describing grants.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use envseal_policy::{ArgRule, Delivery, Grant, Pin, Resolved, Tier, describe_args, hex};
use envseal_vault::SecretName;

use crate::refusal::{Code, Refusal};

/// Resolves a command from the caller's `PATH` and working directory.
pub fn resolve(cmd: &OsString) -> anyhow::Result<Resolved> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    Ok(envseal_policy::resolve(
        cmd,
        std::env::var_os("PATH").as_deref(),
        &cwd,
    )?)
}

/// What the command line asks a new grant to be.
pub struct Wanted<'a> {
    pub secrets: &'a [String],
    pub files: &'a [String],
    pub args: ArgRule,
    pub force_interpreter: bool,
    pub tier: Tier,
    pub may_exec: &'a [OsString],
    pub require_shield: bool,
    /// The environment it runs with.
    pub environ: envseal_policy::Environ,
    /// Lockdown: the working directory and these directories are
    /// writable.
    pub write_cwd: bool,
    pub write: Vec<String>,
}

/// Pins `resolved` and builds its grant; refuses an unconstrained
/// interpreter unless forced.
pub fn build(resolved: &Resolved, wanted: &Wanted<'_>) -> anyhow::Result<Grant> {
    let inspected = envseal_policy::inspect(resolved, std::env::var_os("PATH").as_deref())?;
    let interpreter = inspected.is_interpreter(resolved);
    // An interpreter with no arguments at all reads its program from
    // stdin: that is no constraint either.
    let constrained = match &wanted.args {
        ArgRule::Any => false,
        ArgRule::Exact(list) | ArgRule::Prefix(list) | ArgRule::Pattern(list) => !list.is_empty(),
    };
    if interpreter && !constrained && !wanted.force_interpreter {
        return Err(envseal_policy::Error::Interpreter(inspected.program.path).into());
    }
    let secrets = secrets(wanted)?;
    let mut may_exec = may_exec(wanted)?;
    if wanted.tier == Tier::Lockdown {
        for copy in identical_copies(&inspected.program) {
            if !may_exec.iter().any(|p| p.path == copy.path) {
                eprintln!(
                    "envseal: {} is the same program (the same sha256): it may run it too",
                    envseal_policy::escape(&copy.path)
                );
                may_exec.push(copy);
            }
        }
    }
    let grant = Grant {
        program: inspected.program,
        script: inspected.script,
        secrets,
        tier: wanted.tier,
        args: wanted.args.clone(),
        forced_interpreter: interpreter && wanted.force_interpreter,
        may_exec,
        require_shield: wanted.require_shield,
        venv: envseal_policy::venv_python(&resolved.looked_up, &resolved.canonical),
        environ: Some(wanted.environ.clone()),
        write_cwd: wanted.write_cwd,
        write: wanted.write.clone(),
    };
    grant.validate()?;
    Ok(grant)
}

/// The secrets to grant and how each is delivered: `--secret` ones in
/// the environment, then `--file` ones as files; at least one.
fn secrets(wanted: &Wanted<'_>) -> anyhow::Result<BTreeMap<SecretName, Delivery>> {
    let mut secrets = BTreeMap::new();
    for s in wanted.secrets {
        add_secret(&mut secrets, s, false)?;
    }
    for f in wanted.files {
        add_secret(&mut secrets, f, true)?;
    }
    if secrets.is_empty() {
        return Err(
            Refusal::new(Code::Usage, "name at least one secret to grant")
                .hint("--secret KEY (environment variable) or --file KEY (file)")
                .into(),
        );
    }
    Ok(secrets)
}

/// Adds `KEY[=VAR]` (as a file when `file`) to `secrets`; refuses a key
/// given twice with different deliveries.
fn add_secret(
    secrets: &mut BTreeMap<SecretName, Delivery>,
    spec: &str,
    file: bool,
) -> anyhow::Result<()> {
    let (key, var) = match spec.split_once('=') {
        Some((k, v)) => (SecretName::new(k)?, Some(SecretName::new(v)?)),
        None => (SecretName::new(spec)?, None),
    };
    let delivery = if file {
        let var = match var {
            Some(v) => v,
            None => SecretName::new(&format!("{key}_FILE"))?,
        };
        Delivery::File(var)
    } else {
        Delivery::Env(var.unwrap_or_else(|| key.clone()))
    };
    match (secrets.get(&key), file) {
        (None, _) => {}
        (Some(d), _) if d == &delivery => return Ok(()),
        // `--secret KEY --file KEY` means "KEY, as a file".
        (Some(Delivery::Env(v)), true) if v == &key => {}
        (Some(_), _) => {
            return Err(Refusal::new(
                Code::Usage,
                format!("{key} is given twice with different deliveries"),
            )
            .into());
        }
    }
    secrets.insert(key, delivery);
    Ok(())
}

/// The `--may-exec` programs, resolved and pinned by their hashes (in
/// every tier: each is checked against its pin at launch; Lockdown also
/// lets the program execute nothing else).
fn may_exec(wanted: &Wanted<'_>) -> anyhow::Result<Vec<Pin>> {
    let mut may_exec = Vec::new();
    for program in wanted.may_exec {
        let r = resolve(program)?;
        let sha256 = envseal_policy::sha256_file(std::path::Path::new(&r.canonical))?;
        may_exec.push(Pin {
            path: r.canonical,
            sha256,
        });
    }
    Ok(may_exec)
}

/// Copies of `program` that it may re-execute as itself: a file of the
/// same name, size and hash in a directory of `PREFIX/lib` or
/// `PREFIX/libexec` for a program in `PREFIX/bin` (git runs itself from
/// `/usr/lib/git-core/git` in Debian's package; a hard link in
/// `libexec/git-core` in a source build, which is the same inode).
fn identical_copies(program: &Pin) -> Vec<Pin> {
    use std::os::unix::fs::MetadataExt as _;
    let path = std::path::Path::new(&program.path);
    let (Some(name), Some(prefix)) = (path.file_name(), path.parent().and_then(|d| d.parent()))
    else {
        return Vec::new();
    };
    let Ok(size) = std::fs::metadata(path).map(|m| m.size()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for sub in ["lib", "libexec"] {
        let Ok(dirs) = std::fs::read_dir(prefix.join(sub)) else {
            continue;
        };
        for dir in dirs.flatten() {
            let candidate = dir.path().join(name);
            let same_size = std::fs::symlink_metadata(&candidate)
                .is_ok_and(|m| m.file_type().is_file() && m.size() == size);
            if !same_size || candidate == path {
                continue;
            }
            let Some(text) = candidate.to_str() else {
                continue;
            };
            if envseal_policy::sha256_file(&candidate).is_ok_and(|h| h == program.sha256) {
                found.push(Pin {
                    path: text.to_owned(),
                    sha256: program.sha256,
                });
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The argument rule given on the command line.
pub fn arg_rule(
    exact: Option<Vec<OsString>>,
    prefix: Option<Vec<OsString>>,
    pattern: Option<&str>,
) -> anyhow::Result<ArgRule> {
    use std::os::unix::ffi::OsStringExt as _;
    let bytes = |v: Vec<OsString>| v.into_iter().map(OsString::into_vec).collect();
    Ok(match (exact, prefix, pattern) {
        (Some(e), _, _) => ArgRule::Exact(bytes(e)),
        (None, Some(p), _) => ArgRule::Prefix(bytes(p)),
        (None, None, Some(p)) => ArgRule::Pattern(envseal_policy::pattern::parse(p)?),
        (None, None, None) => ArgRule::Any,
    })
}

/// When what the person typed is not the canonical path it leads to (a
/// bare name found on `PATH`, a symlink), says both, so the person sees
/// what is really pinned.
pub fn say_where_it_leads(resolved: &Resolved) {
    let typed = resolved.typed.to_string_lossy();
    if typed != resolved.canonical.as_str() {
        eprintln!(
            "envseal: {} leads to {}",
            envseal_policy::escape(&typed),
            envseal_policy::escape(&resolved.canonical)
        );
    }
}

/// A grant for people: program, hash, interpreter, secrets, tier, args.
pub fn describe(grant: &Grant) -> String {
    use envseal_policy::escape;
    let mut out = format!(
        "{}\n  sha256      {}\n",
        escape(&grant.program.path),
        hex(&grant.program.sha256)
    );
    if let Some(script) = &grant.script {
        out += &format!(
            "  interpreter {}{}\n  sha256      {}\n",
            escape(&script.interpreter.path),
            script
                .arg
                .as_ref()
                .map(|a| format!(" {}", escape(a)))
                .unwrap_or_default(),
            hex(&script.interpreter.sha256)
        );
    }
    for (name, delivery) in &grant.secrets {
        out += &match delivery {
            Delivery::Env(v) if v == name => format!("  secret      {name}\n"),
            Delivery::Env(v) => format!("  secret      {name} as ${v}\n"),
            Delivery::File(v) => format!("  secret      {name} as a file, path in ${v}\n"),
        };
    }
    if let Some(venv) = &grant.venv {
        out += &format!("  virtualenv  {} (runs only as this path)\n", escape(venv));
    }
    out += &format!("  tier        {}\n", grant.tier.as_str());
    for pin in &grant.may_exec {
        out += &format!(
            "  may exec    {} (sha256 {})\n",
            escape(&pin.path),
            hex(&pin.sha256)
        );
    }
    if grant.args != ArgRule::Any {
        out += &format!("  arguments   {}\n", escape(&describe_args(&grant.args)));
    }
    if let Some(environ) = &grant.environ {
        out += &super::environ::describe(environ);
    }
    if grant.tier == Tier::Lockdown {
        let mut written: Vec<String> = grant.write.iter().map(|d| escape(d).into_owned()).collect();
        if grant.write_cwd {
            written.insert(0, "the working directory".into());
        }
        written.push("its private /tmp".into());
        out += &format!("  writes      {} (noexec)\n", written.join(", "));
    }
    if grant.require_shield {
        out += "  callers     inside an envseal shield only\n";
    }
    if grant.forced_interpreter {
        out += "  warning     an interpreter granted with --force-interpreter\n";
    }
    out
}
