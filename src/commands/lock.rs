//! `envseal lock`: stop this vault's broker, which wipes its key.

use std::time::Duration;

use envseal_broker::protocol::Body;
use envseal_broker::{self as broker, Client};

pub fn run() -> anyhow::Result<()> {
    let loc = broker::location()?;
    let Some(mut client) = Client::connect_to_lock(&loc)? else {
        eprintln!("envseal: already locked (no broker is running)");
        return Ok(());
    };
    let message = broker::done(client.request(Body::Lock)?)?;
    // The broker exits right after answering; wait until it has.
    for _ in 0..200 {
        if !loc.socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("envseal: {}", envseal_policy::escape_lines(&message));
    Ok(())
}
