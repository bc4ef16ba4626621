//! What one exec asks for and how it is prepared — the grant checked, the
//! verified copy loaded, the values decrypted, the launch built — shared by
//! the in-process path (`envseal exec` with the passphrase) and the broker
//! (each request of a client): both enter through [`prepare`].

use std::ffi::OsString;
use std::path::PathBuf;

use envseal_launcher::{self as launcher, Launch, Role, SecretItem};
use envseal_policy::{ArgRule, Delivery, Environ, Grant, Tier, check_args, hex, select};
use envseal_proto::ExecRequest;
use envseal_vault::{Error as VaultError, SecretName};

use crate::refusal::{Code, Refusal};

/// What one exec asks for, from the command line or a broker client:
/// both paths build it from the wire's [`ExecRequest`] (`try_from` validates
/// every name), so that both are checked alike.
pub struct Request {
    /// The canonical path the caller resolved CMD to.
    pub program: String,
    /// Where CMD was found before symlinks were followed, if told.
    pub invoked: Option<String>,
    pub argv0: OsString,
    pub args: Vec<OsString>,
    /// `--secret`: deliver only these.
    pub requested: Vec<SecretName>,
    /// `--env-file`: (secret, variable); both validated names, wherever
    /// the request came from (a variable also names a Lockdown file).
    pub rename: Vec<(SecretName, SecretName)>,
    /// `--tier`: at least this tier.
    pub tier: Option<Tier>,
    /// The caller's environment, before the dangerous part is removed.
    pub env: Vec<(OsString, OsString)>,
    pub clearenv: bool,
    pub verbose: bool,
    pub masking: launcher::Masking,
    /// Through the broker: whether the caller is inside a shield (set by
    /// the broker, never by the caller); in-process: `None`.
    pub shielded: Option<bool>,
}

impl TryFrom<ExecRequest> for Request {
    type Error = anyhow::Error;

    fn try_from(request: ExecRequest) -> anyhow::Result<Request> {
        let requested = request
            .secrets
            .iter()
            .map(|n| SecretName::new(n))
            .collect::<Result<_, _>>()?;
        let rename = request
            .rename
            .iter()
            .map(|(k, v)| Ok((SecretName::new(k)?, SecretName::new(v)?)))
            .collect::<Result<_, envseal_core::NameError>>()?;
        let tier = match request.tier.as_deref() {
            None => None,
            Some(t) => Some(Tier::parse(t).ok_or_else(|| {
                Refusal::new(
                    Code::Usage,
                    format!("unknown tier {t:?} (none, hardened, lockdown)"),
                )
            })?),
        };
        Ok(Request {
            program: request.program,
            invoked: request.invoked,
            argv0: request.argv0.into(),
            args: request.args.into_iter().map(Into::into).collect(),
            requested,
            rename,
            tier,
            env: request
                .env
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            clearenv: request.clearenv,
            verbose: request.verbose,
            masking: launcher::Masking::from_flag(request.mask),
            shielded: None,
        })
    }
}

/// `--verbose`'s account of what was verified, printed where the caller
/// sees it.
pub struct Report {
    lines: Vec<String>,
}

impl Report {
    pub fn print(&self) {
        for line in &self.lines {
            eprintln!("envseal: {line}");
        }
    }
}

/// Checks the grant (arguments, secrets, shield requirement), loads and
/// verifies what will run (from `cache` when given), then decrypts the
/// secrets straight into the launch.
pub fn prepare(
    endorsed: &envseal_vault::Endorsed<'_>,
    request: &Request,
    cache: Option<&mut launcher::Cache>,
    record: &mut envseal_vault::audit::Record,
) -> anyhow::Result<(Launch, Option<Report>)> {
    let program = request.program.as_str();
    record.program = Some(program.to_owned());
    record.shielded = request.shielded;
    let body = endorsed
        .grant(program)?
        .ok_or_else(|| not_granted(program))?;
    let grant = Grant::decode(&body)?;
    record.sha256 = Some(grant.program.sha256);
    // The grant's tier is a minimum: `--tier` can only raise it.
    let mut grant = grant;
    grant.tier = grant.tier.max(request.tier.unwrap_or(Tier::None));
    record.tier = Some(grant.tier.as_str().into());
    record.names = grant.secrets.keys().map(ToString::to_string).collect();
    check_venv(&grant, request)?;
    if grant.require_shield && request.shielded != Some(true) {
        return Err(Refusal::new(
            Code::Denied,
            format!("{program} may run only for callers inside an envseal shield"),
        )
        .hint("its grant was made with --require-shield; run the caller under `envseal shield`")
        .into());
    }
    check_args(&grant, &request.args)?;
    let selected = select(&grant, &request.requested)?;
    record.names = selected.iter().map(|(n, _)| n.to_string()).collect();
    // The bytes are verified before any secret is decrypted.
    let (executable, script) = load(&grant, cache)?;
    let secrets = decrypt(endorsed, request, selected)?;
    let given = request.env.len();
    let environ = environ(&grant);
    let env = environment(&environ, request);
    let writable = writable(&grant, &environ);
    let args = isolated_args(&grant, &request.args);
    let report = request.verbose.then(|| {
        let dropped = given.saturating_sub(env.len());
        report(&grant, dropped, secrets.len(), request.shielded)
    });
    let launch = Launch {
        argv0: argv0(&grant, request),
        executable,
        script: match (script, grant.script) {
            (Some(copy), Some(pinned)) => Some(launcher::Script {
                argv0: interpreter_name(&copy, &pinned.interpreter.path),
                path: script_path(request.invoked.as_deref(), copy.path()),
                isolate: launcher::isolation(&pinned.interpreter.path),
                copy,
                arg: pinned.arg,
            }),
            _ => None,
        },
        args,
        env,
        secrets,
        tier: grant.tier,
        // Checked by the launcher against the very descriptor it uses.
        may_exec: grant
            .may_exec
            .iter()
            .map(|pin| (pin.path.clone(), pin.sha256))
            .collect(),
        verbose: request.verbose,
        masking: request.masking,
        writable,
        confine: None,
    };
    Ok((launch, report))
}

/// The grant's environment; for a grant made before environments were
/// recorded, the base set from the system.
fn environ(grant: &Grant) -> Environ {
    grant.environ.clone().unwrap_or_else(|| {
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten();
        Environ {
            path: LEGACY_PATH.into(),
            home: user
                .as_ref()
                .map(|u| u.dir.to_string_lossy().into_owned())
                .unwrap_or_default(),
            user: user.map(|u| u.name).unwrap_or_default(),
            ..Default::default()
        }
    })
}

/// What Lockdown may write for `grant`, and what no writable directory may
/// be or hold: `HOME`, the vault, the runtime directory and each `PATH`
/// directory (checked by the launcher, which knows the working
/// directory).
fn writable(grant: &Grant, environ: &Environ) -> launcher::Writable {
    let mut writable = launcher::Writable {
        cwd: grant.write_cwd,
        dirs: grant.write.iter().map(PathBuf::from).collect(),
        guarded: Vec::new(),
        protected: Vec::new(),
    };
    if grant.tier != Tier::Lockdown || (!writable.cwd && writable.dirs.is_empty()) {
        return writable;
    }
    let canonical = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
    if !environ.home.is_empty() {
        writable
            .guarded
            .push((canonical(environ.home.clone().into()), "HOME"));
    }
    if let Ok(loc) = crate::location::location() {
        writable.guarded.push((canonical(loc.vault), "the vault"));
        writable
            .guarded
            .push((canonical(loc.dir), "envseal's runtime directory"));
    }
    for dir in std::env::split_paths(&environ.path).filter(|d| d.is_absolute()) {
        writable.guarded.push((canonical(dir), "a PATH directory"));
    }
    writable
}

/// The arguments, after the options that start an interpreter pinned as
/// the program itself isolated (see `envseal_launcher::isolation`; a
/// script's interpreter gets them from the launcher). The argument rule
/// was checked on the caller's arguments.
fn isolated_args(grant: &Grant, args: &[OsString]) -> Vec<OsString> {
    let isolate = match grant.script {
        None => launcher::isolation(&grant.program.path),
        Some(_) => &[],
    };
    isolate
        .iter()
        .map(OsString::from)
        .chain(args.iter().cloned())
        .collect()
}

/// `PATH` for a grant made before environments were recorded.
const LEGACY_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The program's environment, as its grant fixes it (see
/// `envseal_launcher::build_env`): `PATH`, `HOME`, `USER` and `LOGNAME`
/// recorded at `allow` (for an older grant: a system `PATH`, the others
/// from the user database), the grant's fixed values, and the caller's
/// variables it names.
fn environment(environ: &Environ, request: &Request) -> Vec<(OsString, OsString)> {
    let base = [
        ("PATH", environ.path.as_str()),
        ("HOME", environ.home.as_str()),
        ("USER", environ.user.as_str()),
        ("LOGNAME", environ.user.as_str()),
    ];
    let mut fixed: Vec<(OsString, OsString)> = base
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && !environ.fixed.iter().any(|(f, _)| f == k))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    fixed.extend(environ.fixed.iter().map(|(k, v)| (k.into(), v.into())));
    launcher::build_env(
        &fixed,
        &environ.passed,
        request.env.iter().cloned(),
        request.clearenv,
    )
}

/// Decrypts each selected secret into the item the launcher delivers, in
/// the grant's variable or the one `--env-file` maps it to (never one
/// that steers the program, or that the launcher never sets).
fn decrypt(
    endorsed: &envseal_vault::Endorsed<'_>,
    request: &Request,
    selected: Vec<(SecretName, Delivery)>,
) -> anyhow::Result<Vec<SecretItem>> {
    let program = request.program.as_str();
    let mut secrets = Vec::with_capacity(selected.len());
    for (name, delivery) in selected {
        // Checked before the value is decrypted: nothing is, until every
        // check has passed.
        let delivery = match request.rename.iter().find(|(k, _)| *k == name) {
            None => delivery,
            Some((_, var))
                if launcher::is_dangerous(std::ffi::OsStr::new(var.as_str()))
                    || steers(var.as_str())
                    || (matches!(delivery, Delivery::Env(_))
                        && launcher::names_a_path(var.as_str())) =>
            {
                return Err(Refusal::new(
                    Code::Denied,
                    format!("--env-file maps {name} to {var}, a variable envseal never sets"),
                )
                .into());
            }
            // Delivered the grant's way, in the variable the file names.
            Some((_, var)) => match delivery {
                Delivery::Env(_) => Delivery::Env(var.clone()),
                Delivery::File(_) => Delivery::File(var.clone()),
            },
        };
        let value = endorsed
            .open_value(&name)
            .map_err(|e| missing_secret(e, &name, program))?;
        secrets.push(SecretItem { delivery, value });
    }
    Ok(secrets)
}

fn missing_secret(e: VaultError, name: &SecretName, program: &str) -> anyhow::Error {
    match e {
        VaultError::NoSuchSecret(_) => Refusal::new(
            Code::SecretMissing,
            format!("secret {name}, which the grant for {program} gives, was removed from the vault"),
        )
        .hint(format!(
            "set it again (`envseal set {name}`, then approve it), or `envseal revoke {program} --secret {name}`"
        ))
        .into(),
        e => e.into(),
    }
}

/// Loads and verifies what will run: the program, or for a script its
/// interpreter (executed) and the script (read by it).
fn load(
    grant: &Grant,
    mut cache: Option<&mut launcher::Cache>,
) -> anyhow::Result<(launcher::Verified, Option<launcher::Verified>)> {
    let mut get = |pin: &envseal_policy::Pin, role| match cache.as_deref_mut() {
        Some(cache) => cache.load(&pin.path, &pin.sha256, role),
        None => launcher::load(&pin.path, &pin.sha256, role),
    };
    Ok(match &grant.script {
        None => (get(&grant.program, Role::Executable)?, None),
        Some(script) => {
            let interpreter = get(&script.interpreter, Role::Executable)?;
            let copy = get(&grant.program, Role::Script)?;
            (interpreter, Some(copy))
        }
    })
}

/// The interpreter's `argv[0]` for the verified script `copy`, as the
/// kernel would give it: the interpreter as its `#!` line writes it (a
/// virtualenv's `bin/python` finds its `pyvenv.cfg` from it), or NAME for
/// `#!/usr/bin/env NAME`. What runs is still the `pinned` file. The line
/// was parsed when the script was pinned, and the copy holds those bytes;
/// should it not read, the pinned path is used.
fn interpreter_name(copy: &launcher::Verified, pinned: &str) -> OsString {
    let head = copy.head(envseal_policy::SHEBANG_MAX).unwrap_or_default();
    match envseal_policy::parse_shebang(&head) {
        Some(Ok(line)) if std::path::Path::new(&line.interpreter).ends_with("env") => {
            line.arg.unwrap_or_else(|| pinned.to_owned()).into()
        }
        Some(Ok(line)) => line.interpreter.into(),
        _ => pinned.into(),
    }
}

/// The program's `argv[0]`: what the caller typed, except for an
/// interpreter, which finds its prefix — its standard library, its
/// virtualenv — from the path it runs as: a pinned virtualenv's python runs
/// as that venv's, any other interpreter as its pinned path, never as a
/// path the caller chose (a forged request's `argv0` naming the agent's own
/// virtualenv or library tree).
fn argv0(grant: &Grant, request: &Request) -> OsString {
    let interpreter = std::path::Path::new(&grant.program.path)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(envseal_policy::is_interpreter);
    match &grant.venv {
        Some(venv) => venv.into(),
        None if interpreter => grant.program.path.clone().into(),
        None => request.argv0.clone(),
    }
}

/// A grant of an interpreter through a virtualenv runs only when called by
/// that venv's path, and a grant of the interpreter itself never through a
/// venv: an agent's own virtualenv (its own site-packages) is another
/// program than the one pinned.
fn check_venv(grant: &Grant, request: &Request) -> anyhow::Result<()> {
    use envseal_policy::escape;
    let called = request
        .invoked
        .as_deref()
        .and_then(|at| envseal_policy::venv_python(std::path::Path::new(at), &request.program));
    let program = escape(&request.program);
    match (&grant.venv, called) {
        (Some(pinned), Some(called)) if *pinned == called => Ok(()),
        (None, None) => Ok(()),
        (Some(pinned), _) => Err(Refusal::new(
            Code::Denied,
            format!(
                "{program} is granted as the virtualenv python {}, and runs only as that",
                escape(pinned)
            ),
        )
        .hint(format!("run it as {}", escape(pinned)))
        .into()),
        (None, Some(called)) => Err(Refusal::new(
            Code::Denied,
            format!(
                "{} is a virtualenv's python; the grant pins {program} itself, not that \
                 virtualenv",
                escape(&called)
            ),
        )
        .hint(format!(
            "a person can pin the virtualenv with: envseal allow ... -- {}",
            escape(&called)
        ))
        .into()),
    }
}

/// The path a script run at its real path is given as (its `$0`): where
/// the caller found it, when that is a link that still leads to the
/// pinned file and only root can change (the link and every directory
/// above it root's, writable by no group or other), as the kernel would
/// pass it (Debian's `psql`, a link to a wrapper that reads its own
/// name); else the pinned path.
fn script_path(invoked: Option<&str>, pinned: &str) -> String {
    match invoked {
        Some(at)
            if at != pinned
                && std::fs::canonicalize(at).is_ok_and(|c| c.as_os_str() == pinned)
                && only_root_changes(std::path::Path::new(at)) =>
        {
            at.to_owned()
        }
        _ => pinned.to_owned(),
    }
}

/// Whether only root can change what the absolute `path` leads to: it and
/// every directory above it, as written (links included), are root's, and
/// none but a link is writable by its group or others. (A link's own mode
/// is always 0777 and means nothing; who owns it decides where it points.)
pub fn only_root_changes(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    path.is_absolute()
        && path.ancestors().all(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|m| {
                m.uid() == 0 && (m.file_type().is_symlink() || m.mode() & 0o022 == 0)
            })
        })
}

/// `--verbose`: what was verified and which protections apply.
fn report(grant: &Grant, removed: usize, secrets: usize, shielded: Option<bool>) -> Report {
    let mut lines = vec![format!(
        "verified {} (sha256 {}) in a sealed copy",
        grant.program.path,
        hex(&grant.program.sha256)
    )];
    if let Some(s) = &grant.script {
        lines.push(format!(
            "verified interpreter {} (sha256 {})",
            s.interpreter.path,
            hex(&s.interpreter.sha256)
        ));
    }
    lines.push(match shielded {
        None => "launched by this process (no broker)".to_owned(),
        Some(true) => "launched by the broker for a caller inside a shield".to_owned(),
        Some(false) => "launched by the broker for a caller outside any shield".to_owned(),
    });
    lines.push(format!("tier {}", grant.tier.as_str()));
    lines.push(format!(
        "environment: the grant's allowlist ({removed} of the caller's variable(s) dropped); \
         {secrets} secret(s) delivered; descriptors above 2 closed"
    ));
    if grant.environ.is_none() {
        lines.push(
            "the grant predates recorded environments: a system PATH, HOME and USER from the \
             user database, none of the caller's variables; pin it again (`envseal allow`) to \
             record yours and name variables with --env"
                .to_owned(),
        );
    }
    if grant.args != ArgRule::Any {
        lines.push(format!(
            "arguments checked: {}",
            envseal_policy::describe_args(&grant.args)
        ));
    }
    Report { lines }
}

pub fn not_granted(program: &str) -> anyhow::Error {
    Refusal::new(Code::NotGranted, format!("{program} has no grant"))
        .hint(format!(
            "a person can pin it with: envseal allow --secret KEY -- {program}"
        ))
        .into()
}

/// Whether variable `var` steers where a program looks for files, programs,
/// configuration or the network: a reference file (which anyone who can
/// write the project can edit, `--env-file`) never maps a secret into one, or an ordinary
/// program would, say, create a directory named after the value. (Loader
/// and interpreter variables are refused too: `launcher::is_dangerous`.)
pub fn steers(var: &str) -> bool {
    const NAMES: [&str; 29] = [
        "HOME",
        "PATH",
        "TMPDIR",
        "TMP",
        "TEMP",
        "SHELL",
        "PWD",
        "OLDPWD",
        "USER",
        "LOGNAME",
        "IFS",
        "ENV",
        "CDPATH",
        "MAIL",
        "TERM",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "BROWSER",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "KUBECONFIG",
        "DOCKER_HOST",
        "GNUPGHOME",
        "SSH_AUTH_SOCK",
        "ZDOTDIR",
    ];
    NAMES.contains(&var)
        || var.starts_with("ENVSEAL_")
        || var.starts_with("XDG_")
        || var.to_ascii_uppercase().ends_with("_PROXY")
}
