//! `envseal unlock`: start this vault's broker (the person, outside any
//! shield), or refresh the idle TTL of the one running.

use envseal_broker::protocol::Body;
use envseal_broker::{self as broker, Client};

use crate::cli::UnlockArgs;
use crate::input;

pub fn run(args: UnlockArgs) -> anyhow::Result<()> {
    let loc = broker::location()?;
    if let Some(mut client) = Client::connect(&loc)? {
        let message = broker::done(client.request(Body::Refresh {
            idle_ttl_seconds: args.ttl.as_secs(),
        })?)?;
        eprintln!("envseal: {}", envseal_policy::escape_lines(&message));
        return Ok(());
    }
    broker::start::start(&loc, "unlock", args.ttl, super::show_for_broker, || {
        Ok(input::passphrase(args.passphrase, "to unlock the vault")?)
    })?;
    Ok(())
}
