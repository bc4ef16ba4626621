//! Starting a vault's broker: the key-derivation cost checked, the
//! passphrase read, the lock taken, the socket bound; then the daemon
//! detaches and unlocks, and this process reports how that went.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use envseal_core::SHIELD_MARK;
use envseal_vault::Vault;
use nix::fcntl::Flock;
use secrecy::SecretString;

use crate::client::{Client, done};
use crate::location::Location;
use crate::protocol::Reply;
use crate::refusal::{Code, Refusal};
use crate::server::{self, Show};

/// Starts a broker for this vault (`verb` names the command, for the
/// refusal inside a shield): the passphrase is read here, by
/// `passphrase` (this process must already be non-dumpable), the socket bound, then the daemon
/// detaches and unlocks; this process reports how that went and returns
/// the daemon's pid.
pub fn start(
    loc: &Location,
    verb: &str,
    ttl: Duration,
    show: Show,
    passphrase: impl FnOnce() -> anyhow::Result<SecretString>,
) -> anyhow::Result<i32> {
    // The person starts it, outside any shield.
    refuse_inside_shield(verb)?;
    // Fails early (no vault, say, or a raised key-derivation cost the
    // person refuses) before asking anything; closed before the fork, as
    // SQLite requires. The daemon checks the cost again, and does not ask.
    let vault = Vault::open(&loc.vault)?;
    crate::kdf::check(&vault)?;
    drop(vault);
    let pass = passphrase()?;
    loc.prepare()?;
    let lock = take_lock(loc)?;
    let listener = bind(loc)?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    if envseal_launcher::fork::detach()? {
        drop(ready_r);
        server::serve(
            server::Start {
                loc: loc.clone(),
                show,
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
        .ok_or_else(|| Refusal::new(Code::Failure, "the broker failed to start"))?;
    let pid = done(reply)?;
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
fn refuse_inside_shield(verb: &str) -> Result<(), Refusal> {
    if std::env::var_os(SHIELD_MARK).is_some() {
        return Err(Refusal::new(
            Code::Denied,
            format!("`envseal {verb}` cannot start a broker from inside a shield"),
        )
        .hint("the person runs `envseal unlock` in their own terminal"));
    }
    Ok(())
}

/// Takes the vault's broker lock (`<vault>/broker.lock`), which a second
/// broker for the same vault cannot take.
fn take_lock(loc: &Location) -> anyhow::Result<Flock<File>> {
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&loc.lock)?;
    let lock =
        Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
            Refusal::new(
                Code::Failure,
                "another broker for this vault is starting or running",
            )
            .hint("`envseal status` shows it")
        })?;
    if Client::connect(loc)?.is_some() {
        return Err(
            Refusal::new(Code::Failure, "a broker for this vault is already running")
                .hint("`envseal status` shows it")
                .into(),
        );
    }
    Ok(lock)
}

/// Binds the broker's socket, usable by its owner only, non-blocking.
fn bind(loc: &Location) -> anyhow::Result<UnixListener> {
    // A socket left by a broker that died: nobody answers on it.
    let _ = std::fs::remove_file(&loc.socket);
    let listener = UnixListener::bind(&loc.socket).map_err(|e| {
        Refusal::new(
            Code::Failure,
            format!(
                "cannot create the broker's socket {}: {e}",
                loc.socket.display()
            ),
        )
    })?;
    server::restrict_socket(&loc.socket)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
