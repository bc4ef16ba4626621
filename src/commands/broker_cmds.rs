//! `envseal unlock`, `lock` and `status`: the broker's life cycle.

use std::io::Read as _;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use envseal_vault::Vault;

use crate::broker::protocol::{Body, Reply, StatusInfo};
use crate::broker::{self, Client, Location, server};
use crate::cli::{PassphraseArgs, StatusArgs, UnlockArgs};
use crate::exit::{CliError, Code};
use crate::input;
use envseal_core::SHIELD_MARK;

pub fn unlock(args: UnlockArgs) -> anyhow::Result<()> {
    let loc = broker::location()?;
    if let Some(mut client) = Client::connect(&loc)? {
        let message = broker::done(client.request(Body::Refresh {
            idle_ttl_seconds: args.ttl.as_secs(),
        })?)?;
        eprintln!("envseal: {}", envseal_policy::escape_lines(&message));
        return Ok(());
    }
    refuse_inside_shield("unlock")?;
    start(&loc, args.passphrase, args.ttl)?;
    Ok(())
}

/// Starts a broker for this vault: the passphrase is read here (this
/// process is already non-dumpable), the socket bound, then the daemon
/// detaches and unlocks; this process reports how that went and returns
/// the daemon's pid.
pub fn start(loc: &Location, passphrase: PassphraseArgs, ttl: Duration) -> anyhow::Result<i32> {
    // Fails early (no vault, say, or a raised key-derivation cost the
    // person refuses) before asking anything; closed before the fork, as
    // SQLite requires. The daemon checks the cost again, and does not ask.
    let vault = Vault::open(&loc.vault)?;
    crate::kdf::check(&vault)?;
    drop(vault);
    let pass = input::passphrase(passphrase, "to unlock the vault")?;
    loc.prepare()?;
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&loc.lock)?;
    let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| {
            CliError::new(
                Code::Failure,
                "another broker for this vault is starting or running",
            )
            .hint("`envseal status` shows it")
        })?;
    if Client::connect(loc)?.is_some() {
        return Err(
            CliError::new(Code::Failure, "a broker for this vault is already running")
                .hint("`envseal status` shows it")
                .into(),
        );
    }
    // A socket left by a broker that died: nobody answers on it.
    let _ = std::fs::remove_file(&loc.socket);
    let listener = UnixListener::bind(&loc.socket).map_err(|e| {
        CliError::new(
            Code::Failure,
            format!(
                "cannot create the broker's socket {}: {e}",
                loc.socket.display()
            ),
        )
    })?;
    server::restrict_socket(&loc.socket)?;
    listener.set_nonblocking(true)?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    if envseal_launcher::fork::detach()? {
        drop(ready_r);
        server::serve(
            server::Start {
                loc: loc.clone(),
                listener,
                lock,
                idle_ttl: ttl,
            },
            pass,
            ready_w,
        );
    }
    drop(pass);
    drop(ready_w);
    drop(listener);
    // The daemon holds the lock through the same open file; dropping it
    // here would release it for both.
    std::mem::forget(lock);
    let mut answer = Vec::new();
    std::fs::File::from(ready_r).read_to_end(&mut answer)?;
    let reply = answer
        .get(4..)
        .and_then(|b| serde_json::from_slice::<Reply>(b).ok())
        .ok_or_else(|| CliError::new(Code::Failure, "the broker failed to start"))?;
    let pid = broker::done(reply)?;
    eprintln!(
        "envseal: unlocked; broker pid {pid}, locks after {} without use",
        if ttl.is_zero() {
            "`envseal lock` (no idle TTL)".to_owned()
        } else {
            humantime::format_duration(ttl).to_string()
        }
    );
    Ok(pid.parse().unwrap_or(0))
}

/// The broker must be started by the person, outside any shield (its
/// children would be inside the agent's domain otherwise).
pub fn refuse_inside_shield(verb: &str) -> Result<(), CliError> {
    if std::env::var_os(SHIELD_MARK).is_some() {
        return Err(CliError::new(
            Code::Denied,
            format!("`envseal {verb}` cannot start a broker from inside a shield"),
        )
        .hint("the person runs `envseal unlock` in their own terminal"));
    }
    Ok(())
}

pub fn lock() -> anyhow::Result<()> {
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

pub fn status(args: StatusArgs) -> anyhow::Result<u8> {
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
