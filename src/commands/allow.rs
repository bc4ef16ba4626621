//! `envseal allow --secret KEY… -- PROGRAM`: pin a program and grant it
//! secrets (needs the passphrase). Run again for a pinned program, it keeps
//! every property of the earlier grant and adds what is named: a grant
//! becomes weaker only through an explicit flag, and then says so.

use envseal_policy::{ArgRule, Grant, Tier, describe_args, hex};
use envseal_vault::{ApproveOutcome, Error as VaultError, SecretName, Vault};

use crate::cli::AllowArgs;
use crate::commands::pin;
use crate::refusal::{Code, Refusal};
use crate::{audit, input, paths};

/// Builds the grant (keeping what an earlier one for the program had),
/// stores it — approving its pending secrets with `--approve` — and says
/// what changed.
pub fn run(args: AllowArgs) -> anyhow::Result<()> {
    let resolved = pin::resolve(&args.program)?;
    let program = resolved.canonical.clone();
    let mut vault = Vault::open(&paths::vault_dir()?)?;
    pin::say_where_it_leads(&resolved);
    let pass = input::passphrase(args.passphrase, &format!("to pin {program}"))?;
    let keys = audit::unlock(&mut vault, &pass, "allow")?;
    let previous = vault
        .endorsed(&keys)?
        .grant(&program)?
        .map(|body| Grant::decode(&body))
        .transpose()?;
    let mut grant = pin::build(&resolved, &wanted(&args, previous.as_ref())?)?;
    warn_free_tail(&grant);
    // Only the secrets named now are checked (exist, approved); those of
    // an earlier grant for the same program were checked then.
    let named: Vec<SecretName> = grant.secrets.keys().cloned().collect();
    if let Some(previous) = &previous {
        keep_earlier(previous, &mut grant, args.no_may_exec)?;
    }
    if args.approve {
        // Values an agent wrote are shown and confirmed, as `approve` does.
        super::approve::show_pending(
            &vault,
            &named,
            false,
            "approve it at a terminal first (`envseal approve NAME`), then run allow",
        )?;
    }
    let approved = vault
        .put_grant(&keys, &program, &grant.encode(), &named, args.approve)
        .map_err(still_pending)?;
    audit::write(
        &mut vault,
        Some(&keys),
        &audit::grant_record("allow", &grant),
    );
    say_approved(approved);
    if let Some(previous) = &previous {
        say_what_changed(previous, &grant, &program);
    }
    print!("pinned {}", pin::describe(&grant));
    Ok(())
}

/// What the new grant is to be: what the command line names, and, for
/// what it does not name, what the earlier grant (if any) says.
fn wanted<'a>(args: &'a AllowArgs, previous: Option<&Grant>) -> anyhow::Result<pin::Wanted<'a>> {
    let given_args = pin::arg_rule(
        args.args_exact.clone(),
        args.args_prefix.clone(),
        args.args_pattern.as_deref(),
    )?;
    let given_tier = args.tier.map(Tier::from);
    let (tier, arg_rule, require_shield, force_interpreter) = match previous {
        None => (
            given_tier.unwrap_or(Tier::None),
            given_args,
            args.require_shield,
            args.force_interpreter,
        ),
        Some(p) => (
            given_tier.unwrap_or(p.tier),
            match given_args {
                ArgRule::Any if !args.args_any => p.args.clone(),
                given => given,
            },
            args.require_shield || (p.require_shield && !args.no_require_shield),
            args.force_interpreter || p.forced_interpreter,
        ),
    };
    let asked = super::environ::Asked {
        env: &args.env,
        path: args.path.as_deref(),
    };
    let previous_write: &[String] = previous.map_or(&[], |p| &p.write);
    Ok(pin::Wanted {
        secrets: &args.secrets,
        files: &args.files,
        args: arg_rule,
        force_interpreter,
        tier,
        may_exec: &args.may_exec,
        require_shield,
        environ: super::environ::record(&asked, previous.and_then(|p| p.environ.as_ref()))?,
        write_cwd: args.write_cwd || previous.is_some_and(|p| p.write_cwd),
        write: super::environ::writable(&args.write, previous_write)?,
    })
}

/// Programs whose options run commands or load configuration or code:
/// behind `--args-prefix`, the caller's free tail can name such an option
/// (git's `--receive-pack=CMD`, a later `-pass` in openssl).
const STEERABLE: &[&str] = &[
    "git", "curl", "wget", "openssl", "ssh", "scp", "sftp", "psql", "mysql", "tar", "rsync",
    "find", "xargs", "awk", "gawk", "mawk", "sed", "make", "env", "docker", "kubectl", "npm",
    "npx", "pip", "pip3", "gpg", "zip", "vim", "less",
];

/// Warns when the grant gives a free tail of arguments to a program known
/// to accept options that run commands or load configuration.
fn warn_free_tail(grant: &Grant) {
    let free = match grant.args {
        ArgRule::Prefix(_) => "--args-prefix lets the caller add any after the prefix",
        ArgRule::Any => "with no argument rule the caller chooses every argument",
        ArgRule::Exact(_) | ArgRule::Pattern(_) => return,
    };
    let path = &grant.program.path;
    let name = path.rsplit('/').next().unwrap_or(path);
    if STEERABLE.contains(&name) || envseal_policy::is_interpreter(name) {
        eprintln!(
            "envseal: warning: {} accepts options that run commands or load configuration, and \
             {free} (git's --receive-pack=CMD, a second -pass in openssl): the caller could \
             steer it into giving the secret away; prefer --args-exact, or --args-pattern with \
             placeholders (never an option)",
            envseal_policy::escape(name)
        );
    }
}

/// Carries into `grant` what the earlier grant for the same program had:
/// its secrets (as they were delivered, unless named again), and its
/// `--may-exec` pins (with the hashes they were pinned with) unless
/// dropped with `--no-may-exec`.
fn keep_earlier(previous: &Grant, grant: &mut Grant, no_may_exec: bool) -> anyhow::Result<()> {
    for (name, delivery) in &previous.secrets {
        grant
            .secrets
            .entry(name.clone())
            .or_insert_with(|| delivery.clone());
    }
    if !no_may_exec {
        for pin in &previous.may_exec {
            if !grant.may_exec.iter().any(|p| p.path == pin.path) {
                grant.may_exec.push(pin.clone());
            }
        }
    }
    grant.validate()?;
    Ok(())
}

/// A secret still pending becomes a refusal that says how to approve it.
fn still_pending(e: VaultError) -> anyhow::Error {
    match e {
        VaultError::NotApproved(name) => anyhow::Error::from(
            Refusal::new(
                Code::Denied,
                format!("secret {name} is still pending approval"),
            )
            .hint(format!(
                "approve it with `envseal approve {name}`, or add --approve to approve it now"
            )),
        ),
        e => e.into(),
    }
}

/// Says which secrets `--approve` approved, when and by whom each value
/// was written.
fn say_approved(approved: Vec<(SecretName, ApproveOutcome)>) {
    for (name, outcome) in approved {
        if let ApproveOutcome::Approved { written_at, writer } = outcome {
            eprintln!(
                "envseal: approved {name} (value written {} {})",
                humantime::format_rfc3339_seconds(written_at),
                super::approve::describe_writer(writer)
            );
        }
    }
}

/// Says how `grant` differs from the `previous` grant of `program`:
/// re-pinned or updated, each property that became weaker, what else
/// changed, and the `--may-exec` pins dropped.
fn say_what_changed(previous: &Grant, grant: &Grant, program: &str) {
    if previous.program.sha256 != grant.program.sha256 {
        eprintln!(
            "envseal: re-pinned {} (its bytes changed; was sha256 {})",
            envseal_policy::escape(program),
            hex(&previous.program.sha256)
        );
    } else {
        eprintln!(
            "envseal: updated the grant for {}",
            envseal_policy::escape(program)
        );
    }
    for line in weaker(previous, grant) {
        eprintln!("envseal: weaker: {line}");
    }
    for line in changed(previous, grant) {
        eprintln!("envseal: changed: {line}");
    }
    let dropped: Vec<&str> = previous
        .may_exec
        .iter()
        .filter(|d| !grant.may_exec.iter().any(|g| g.path == d.path))
        .map(|d| d.path.as_str())
        .collect();
    if !dropped.is_empty() {
        eprintln!(
            "envseal: dropped --may-exec {} (no longer checked at launch{})",
            dropped.join(", "),
            if grant.tier == Tier::Lockdown {
                "; Lockdown no longer lets the program run them"
            } else {
                ""
            }
        );
    }
}

/// What `grant` allows that `previous` did not: each line a property that
/// became weaker.
fn weaker(previous: &Grant, grant: &Grant) -> Vec<String> {
    let mut lines = Vec::new();
    if grant.tier < previous.tier {
        lines.push(format!(
            "tier {} -> {}",
            previous.tier.as_str(),
            grant.tier.as_str()
        ));
    }
    if previous.args != ArgRule::Any && grant.args != previous.args {
        lines.push(format!(
            "arguments {} -> {}",
            describe_args(&previous.args),
            describe_args(&grant.args)
        ));
    }
    if previous.require_shield && !grant.require_shield {
        lines
            .push("callers outside an envseal shield may run it (--require-shield dropped)".into());
    }
    if grant.forced_interpreter && !previous.forced_interpreter {
        lines.push("an interpreter granted with --force-interpreter".into());
    }
    if grant.write_cwd && !previous.write_cwd {
        lines.push("Lockdown: the working directory is writable (--write-cwd)".into());
    }
    for dir in grant.write.iter().filter(|d| !previous.write.contains(d)) {
        lines.push(format!(
            "Lockdown: {} is writable (--write)",
            envseal_policy::escape(dir)
        ));
    }
    let passed = |g: &Grant| {
        g.environ
            .as_ref()
            .map(|e| e.passed.clone())
            .unwrap_or_default()
    };
    for name in passed(grant)
        .iter()
        .filter(|n| !passed(previous).contains(n))
    {
        lines.push(format!(
            "the caller's {name} reaches the program (--env {name})"
        ));
    }
    lines
}

/// What changed between `previous` and `grant` that is not a weakening
/// but must not pass unsaid: the interpreter a `#!/usr/bin/env NAME`
/// resolves to now, and how a secret is delivered.
fn changed(previous: &Grant, grant: &Grant) -> Vec<String> {
    let mut lines = Vec::new();
    if previous.venv != grant.venv {
        let shown = |v: &Option<String>| match v {
            Some(v) => format!("the virtualenv {}", envseal_policy::escape(v)),
            None => "the interpreter itself".to_owned(),
        };
        lines.push(format!(
            "it pins {} (was {})",
            shown(&grant.venv),
            shown(&previous.venv)
        ));
    }
    let interpreter = |g: &Grant| g.script.as_ref().map(|s| s.interpreter.path.clone());
    if interpreter(previous) != interpreter(grant) {
        lines.push(format!(
            "interpreter {} -> {}",
            interpreter(previous).unwrap_or_else(|| "(none)".into()),
            interpreter(grant).unwrap_or_else(|| "(none)".into())
        ));
    }
    for (name, before) in &previous.secrets {
        if let Some(now) = grant.secrets.get(name)
            && now != before
        {
            let describe = |d: &envseal_policy::Delivery| match d {
                envseal_policy::Delivery::Env(v) => format!("${v}"),
                envseal_policy::Delivery::File(v) => format!("a file (path in ${v})"),
            };
            lines.push(format!(
                "{name} is delivered as {} (was {})",
                describe(now),
                describe(before)
            ));
        }
    }
    lines
}
