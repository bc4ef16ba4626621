//! `envseal audit [--json] [--since T] [--secret KEY]` and `audit --verify`:
//! read and check the hash-chained audit log (names, never values).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envseal_policy::hex;
use envseal_vault::Vault;
use envseal_vault::audit::{Element, Entry};
use serde::Serialize;

use crate::cli::AuditArgs;
use crate::refusal::{Code, Refusal};
use crate::{input, paths};

#[derive(Serialize)]
struct ElementJson<'a> {
    seq: i64,
    time: String,
    kind: &'static str,
    action: Option<&'a str>,
    names: Vec<&'a str>,
    program: Option<&'a str>,
    sha256: Option<String>,
    tier: Option<&'a str>,
    pid: Option<u32>,
    uid: Option<u32>,
    shielded: Option<bool>,
    status: Option<i32>,
    detail: Option<&'a str>,
    /// For a checkpoint: how many elements it authenticates.
    covers: Option<u32>,
}

pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let vault = Vault::open(&paths::vault_dir()?)?;
    if args.verify {
        return verify(&vault, args);
    }
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let log = vault.audit_log()?;
    let shown: Vec<&Element> = log
        .iter()
        .filter(|e| since.is_none_or(|s| e.at >= s))
        .filter(|e| match (&args.secret, &e.entry) {
            (None, _) => true,
            (Some(k), Entry::Record(r)) => r.names.iter().any(|n| n == k),
            (Some(_), _) => false,
        })
        .collect();
    let skip = args.last.map_or(0, |n| shown.len().saturating_sub(n));
    let shown = &shown[skip..];
    if args.json {
        let elements: Vec<ElementJson<'_>> = shown.iter().map(|e| json(e)).collect();
        let value = serde_json::json!({ "elements": elements });
        return super::print_json(&mut std::io::stdout().lock(), &value);
    }
    println!("{:>5}  {:<20}  {:<14}  DETAILS", "SEQ", "TIME", "ACTION");
    for e in shown.iter().copied() {
        let (action, details) = match &e.entry {
            Entry::Record(r) => (r.action.as_str(), describe(r)),
            Entry::Checkpoint { covers } => (
                "checkpoint",
                format!("authenticates the {covers} element(s) before it"),
            ),
            Entry::Unreadable => ("?", "unreadable (the database was edited)".into()),
        };
        // Records hold what clients sent: escaped, so that no record can
        // drive the terminal and forge the screen.
        let (action, details) = (
            envseal_policy::escape(action),
            envseal_policy::escape(&details),
        );
        println!("{:>5}  {:<20}  {action:<14}  {details}", e.seq, time(e.at));
    }
    Ok(())
}

fn verify(vault: &Vault, args: AuditArgs) -> anyhow::Result<()> {
    let pass = input::passphrase(args.passphrase, "to verify the audit log")?;
    crate::kdf::check(vault)?;
    let keys = vault.unlock(&pass)?;
    let v = vault.audit_verify(&keys)?;
    if let Some((seq, why)) = &v.first_bad {
        return Err(Refusal::new(
            Code::Tampered,
            format!("the audit log was tampered with: the first bad record is {seq}: {why}"),
        )
        .hint(
            "records up to the last good checkpoint are authentic; what follows cannot be trusted",
        )
        .into());
    }
    println!(
        "audit log: {} element(s); intact and authenticated through checkpoint {}",
        v.total, v.authenticated_through
    );
    if v.tail > 0 {
        println!(
            "unauthenticated tail: {} element(s) after the last checkpoint{} (the next \
             unlock authenticates them)",
            v.tail,
            if v.tail_chains {
                ""
            } else {
                ", and they do not chain: something was appended or edited there"
            }
        );
    }
    Ok(())
}

fn json(e: &Element) -> ElementJson<'_> {
    let mut j = ElementJson {
        seq: e.seq,
        time: time(e.at),
        kind: "record",
        action: None,
        names: Vec::new(),
        program: None,
        sha256: None,
        tier: None,
        pid: None,
        uid: None,
        shielded: None,
        status: None,
        detail: None,
        covers: None,
    };
    match &e.entry {
        Entry::Record(r) => {
            j.action = Some(&r.action);
            j.names = r.names.iter().map(String::as_str).collect();
            j.program = r.program.as_deref();
            j.sha256 = r.sha256.as_ref().map(hex);
            j.tier = r.tier.as_deref();
            j.pid = Some(r.pid);
            j.uid = Some(r.uid);
            j.shielded = r.shielded;
            j.status = r.status;
            j.detail = r.detail.as_deref();
        }
        Entry::Checkpoint { covers } => {
            j.kind = "checkpoint";
            j.covers = Some(*covers);
        }
        Entry::Unreadable => j.kind = "unreadable",
    }
    j
}

fn describe(r: &envseal_vault::audit::Record) -> String {
    let mut parts = Vec::new();
    if !r.names.is_empty() {
        parts.push(r.names.join(","));
    }
    if let Some(p) = &r.program {
        parts.push(p.clone());
    }
    if let Some(t) = &r.tier {
        parts.push(format!("tier {t}"));
    }
    parts.push(format!("pid {} uid {}", r.pid, r.uid));
    match r.shielded {
        Some(true) => parts.push("shielded".into()),
        Some(false) => parts.push("unshielded".into()),
        None => {}
    }
    if let Some(s) = r.status {
        parts.push(format!("exit {s}"));
    }
    if let Some(d) = &r.detail {
        parts.push(d.clone());
    }
    parts.join("  ")
}

fn time(at: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(at.max(0) as u64))
        .to_string()
}

/// `--since`: an RFC 3339 time, or a duration ago (`1h`, `2d`).
fn parse_since(s: &str) -> Result<i64, Refusal> {
    let at = humantime::parse_rfc3339_weak(s)
        .ok()
        .or_else(|| {
            humantime::parse_duration(s)
                .ok()
                .and_then(|d| SystemTime::now().checked_sub(d))
        })
        .ok_or_else(|| {
            Refusal::new(
                Code::Usage,
                format!("--since {s}: not a time (2026-11-30T12:00:00Z) or a duration (1h)"),
            )
        })?;
    Ok(at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64))
}
