//! `envseal status`: whether this vault's broker runs, and its state.

use std::time::Duration;

use envseal_broker::protocol::{Body, StatusInfo};
use envseal_broker::{self as broker, Client};

use crate::cli::StatusArgs;
use crate::refusal::Code;

pub fn run(args: StatusArgs) -> anyhow::Result<u8> {
    let loc = broker::location()?;
    let info: Option<StatusInfo> = match Client::connect(&loc)? {
        None => None,
        Some(mut client) => Some(broker::status(client.request(Body::Status)?)?),
    };
    if args.json {
        // The broker's own status, plus the state and the socket.
        let mut value = match &info {
            None => serde_json::json!({ "state": "locked" }),
            Some(i) => {
                let mut v = serde_json::to_value(i)?;
                v["state"] = "unlocked".into();
                v
            }
        };
        value["socket"] = serde_json::to_value(&loc.socket)?;
        super::print_json(&mut std::io::stdout().lock(), &value)?;
    } else {
        match &info {
            None => println!(
                "locked (no broker for {})",
                envseal_policy::escape(&loc.vault.display().to_string())
            ),
            Some(i) => {
                println!(
                    "unlocked: broker pid {} for {}",
                    i.pid,
                    envseal_policy::escape(&i.vault)
                );
                match i.locks_in_seconds {
                    Some(s) => println!(
                        "  locks in    {} without use (idle TTL {})",
                        humantime::format_duration(Duration::from_secs(s)),
                        humantime::format_duration(Duration::from_secs(i.idle_ttl_seconds))
                    ),
                    None => println!("  locks       only with `envseal lock`"),
                }
                println!("  shielded    {} client(s)", i.shielded_clients);
                println!("  running     {} program(s)", i.running_programs);
                println!("  key in      {}", i.key_memory);
            }
        }
    }
    Ok(if info.is_some() {
        0
    } else {
        Code::Locked as u8
    })
}
