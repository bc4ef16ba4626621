//! `envseal doctor`: what this machine supports, for each tier.

use std::io::Write as _;

use envseal_launcher::Tier;
use envseal_launcher::doctor::{self, Report};
use serde::Serialize;

use crate::cli::DoctorArgs;

#[derive(Serialize)]
struct DoctorJson<'a> {
    checks: Vec<CheckJson<'a>>,
    tiers: Vec<TierJson<'a>>,
}

#[derive(Serialize)]
struct CheckJson<'a> {
    name: &'a str,
    ok: bool,
    detail: &'a str,
}

#[derive(Serialize)]
struct TierJson<'a> {
    tier: &'static str,
    ok: bool,
    g7: bool,
    /// The program sees its real path in this tier.
    real_path: bool,
    why: &'a [String],
}

fn name(t: Tier) -> &'static str {
    match t {
        Tier::None => "none",
        Tier::Hardened => "hardened",
        Tier::Lockdown => "lockdown",
    }
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let report: Report = doctor::diagnose();
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = DoctorJson {
            checks: report
                .checks
                .iter()
                .map(|c| CheckJson {
                    name: c.name,
                    ok: c.ok,
                    detail: &c.detail,
                })
                .collect(),
            tiers: report
                .tiers
                .iter()
                .map(|t| TierJson {
                    tier: name(t.tier),
                    ok: t.ok,
                    g7: t.g7,
                    real_path: t.real_path.is_ok(),
                    why: &t.why,
                })
                .collect(),
        };
        super::print_json(&mut out, &json)?;
        return Ok(());
    }
    for c in &report.checks {
        writeln!(
            out,
            "{:<20} {:<4} {}",
            c.name,
            if c.ok { "ok" } else { "no" },
            c.detail
        )?;
    }
    writeln!(out)?;
    for t in &report.tiers {
        let state = match (t.ok, t.g7) {
            (true, true) => {
                "available; the running program is out of reach of your other processes"
            }
            (true, false) => {
                "available, but the running program is NOT out of reach of your other processes"
            }
            (false, _) => "not available",
        };
        writeln!(out, "tier {:<9} {state}", name(t.tier))?;
        for why in &t.why {
            writeln!(out, "  - {why}")?;
        }
        match &t.real_path {
            Ok(()) if t.ok => writeln!(out, "  - the program runs at its real path")?,
            Ok(()) => {}
            Err(why) => writeln!(out, "  - not at its real path: {why}")?,
        }
    }
    Ok(())
}
