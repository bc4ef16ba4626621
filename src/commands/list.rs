//! `envseal list`: names and states, never values, lengths or digests.

use std::io::Write as _;
use std::time::SystemTime;

use envseal_vault::{SecretInfo, Vault};
use serde::Serialize;

use crate::cli::ListArgs;
use crate::paths;

/// `list --json` schema, version 1 (stable: fields are only ever added).
#[derive(Serialize)]
struct ListJson<'a> {
    secrets: Vec<SecretJson<'a>>,
}

#[derive(Serialize)]
struct SecretJson<'a> {
    name: &'a str,
    state: &'static str,
    created_at: String,
    updated_at: String,
}

pub fn run(args: ListArgs) -> anyhow::Result<()> {
    let vault = Vault::open(&paths::vault_dir()?)?;
    let secrets = vault.list()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = ListJson {
            secrets: secrets.iter().map(to_json).collect(),
        };
        super::print_json(&mut out, &json)?;
    } else if secrets.is_empty() {
        eprintln!("envseal: no secrets yet (add one with `envseal set NAME`)");
    } else {
        let width = secrets
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            out,
            "{:width$}  {:8}  {:20}  UPDATED",
            "NAME", "STATE", "CREATED"
        )?;
        for s in &secrets {
            writeln!(
                out,
                "{:width$}  {:8}  {:20}  {}",
                envseal_policy::escape(&s.name).into_owned(),
                s.state.as_str(),
                time(s.created_at),
                time(s.updated_at)
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn to_json(s: &SecretInfo) -> SecretJson<'_> {
    SecretJson {
        name: &s.name,
        state: s.state.as_str(),
        created_at: time(s.created_at),
        updated_at: time(s.updated_at),
    }
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
