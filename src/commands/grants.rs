//! `envseal grants`: pinned programs and what they receive. Read without
//! the passphrase, so not authenticated here; every `exec` verifies.

use std::io::Write as _;

use envseal_policy::{ArgRule, Delivery, Grant, hex};
use envseal_vault::Vault;
use serde::Serialize;

use crate::cli::GrantsArgs;
use crate::commands::pin;
use crate::paths;

/// `grants --json` schema, version 1 (fields are only ever added).
#[derive(Serialize)]
struct GrantsJson {
    grants: Vec<GrantJson>,
}

#[derive(Serialize)]
struct GrantJson {
    program: String,
    /// `null` when the stored grant does not decode (see `malformed`).
    sha256: Option<String>,
    interpreter: Option<InterpreterJson>,
    secrets: Vec<SecretJson>,
    tier: Option<&'static str>,
    args: Option<ArgsJson>,
    forced_interpreter: bool,
    may_exec: Vec<InterpreterJson>,
    require_shield: bool,
    /// The virtualenv python the grant pins (it runs only as that path).
    venv: Option<String>,
    malformed: bool,
    updated_at: String,
}

#[derive(Serialize)]
struct InterpreterJson {
    path: String,
    sha256: String,
    arg: Option<String>,
}

#[derive(Serialize)]
struct SecretJson {
    name: String,
    delivery: &'static str,
    variable: String,
}

#[derive(Serialize)]
struct ArgsJson {
    rule: &'static str,
    args: Vec<String>,
}

/// `grants --json` (also the MCP server's `list_grants`).
pub fn json(vault: &Vault) -> anyhow::Result<serde_json::Value> {
    let json = GrantsJson {
        grants: vault
            .grants()?
            .iter()
            .map(|r| to_json(&r.program, Grant::decode(&r.body).ok(), r.updated_at))
            .collect(),
    };
    Ok(serde_json::to_value(json)?)
}

pub fn run(args: GrantsArgs) -> anyhow::Result<()> {
    let vault = Vault::open(&paths::vault_dir()?)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        super::print_json(&mut out, &json(&vault)?)?;
        return Ok(());
    }
    let records = vault.grants()?;
    if records.is_empty() {
        eprintln!(
            "envseal: no grants yet (pin a program with `envseal allow --secret KEY -- PROGRAM`)"
        );
        return Ok(());
    }
    if args.long {
        for r in &records {
            match Grant::decode(&r.body) {
                Ok(g) => write!(out, "{}", pin::describe(&g))?,
                Err(_) => writeln!(
                    out,
                    "{}\n  (malformed: the vault was edited; `envseal revoke` it)",
                    envseal_policy::escape(&r.program)
                )?,
            }
        }
        return Ok(());
    }
    // One line per grant; `--long` has the rest.
    let rows: Vec<[String; 4]> = records
        .iter()
        .map(|r| match Grant::decode(&r.body) {
            Ok(g) => [
                envseal_policy::escape(&g.program.path).into_owned(),
                g.tier.as_str().to_owned(),
                g.secrets
                    .keys()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                hex(&g.program.sha256)[..12].to_owned(),
            ],
            Err(_) => [
                envseal_policy::escape(&r.program).into_owned(),
                "?".into(),
                "(malformed: the vault was edited; `envseal revoke` it)".into(),
                "?".into(),
            ],
        })
        .collect();
    let width = |i: usize, title: &str| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (wp, wt, ws) = (width(0, "PROGRAM"), width(1, "TIER"), width(2, "SECRETS"));
    writeln!(
        out,
        "{:wp$}  {:wt$}  {:ws$}  SHA256",
        "PROGRAM", "TIER", "SECRETS"
    )?;
    for [program, tier, secrets, sha] in &rows {
        writeln!(out, "{program:wp$}  {tier:wt$}  {secrets:ws$}  {sha}")?;
    }
    Ok(())
}

fn to_json(program: &str, grant: Option<Grant>, updated: std::time::SystemTime) -> GrantJson {
    let updated_at = humantime::format_rfc3339_seconds(updated).to_string();
    let Some(g) = grant else {
        return GrantJson {
            program: program.to_owned(),
            sha256: None,
            interpreter: None,
            secrets: Vec::new(),
            tier: None,
            args: None,
            forced_interpreter: false,
            may_exec: Vec::new(),
            require_shield: false,
            venv: None,
            malformed: true,
            updated_at,
        };
    };
    let lossy = |v: &[Vec<u8>]| {
        v.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    GrantJson {
        program: g.program.path.clone(),
        sha256: Some(hex(&g.program.sha256)),
        interpreter: g.script.as_ref().map(|s| InterpreterJson {
            path: s.interpreter.path.clone(),
            sha256: hex(&s.interpreter.sha256),
            arg: s.arg.clone(),
        }),
        secrets: g
            .secrets
            .iter()
            .map(|(name, d)| SecretJson {
                name: name.to_string(),
                delivery: match d {
                    Delivery::Env(_) => "env",
                    Delivery::File(_) => "file",
                },
                variable: d.variable().to_string(),
            })
            .collect(),
        tier: Some(g.tier.as_str()),
        args: match &g.args {
            ArgRule::Any => None,
            ArgRule::Exact(v) => Some(ArgsJson {
                rule: "exact",
                args: lossy(v),
            }),
            ArgRule::Prefix(v) => Some(ArgsJson {
                rule: "prefix",
                args: lossy(v),
            }),
            ArgRule::Pattern(v) => Some(ArgsJson {
                rule: "pattern",
                args: lossy(v),
            }),
        },
        forced_interpreter: g.forced_interpreter,
        may_exec: g
            .may_exec
            .iter()
            .map(|p| InterpreterJson {
                path: p.path.clone(),
                sha256: hex(&p.sha256),
                arg: None,
            })
            .collect(),
        require_shield: g.require_shield,
        venv: g.venv.clone(),
        malformed: false,
        updated_at,
    }
}
