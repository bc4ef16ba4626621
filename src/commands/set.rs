//! `envseal set KEY`: write a value (write-only; pending until approved).

use envseal_vault::{Error as VaultError, SecretName, SetOutcome, Vault};

use secrecy::ExposeSecret as _;

use crate::broker::{
    self,
    protocol::{Body, HexValue},
};
use crate::cli::SetArgs;
use crate::commands::exec::SHIELD_MARK;
use crate::exit::{CliError, Code};
use crate::{audit, input, paths};

pub fn run(args: SetArgs) -> anyhow::Result<()> {
    let name = SecretName::new(&args.key)?;
    let vault = Vault::open(&paths::vault_dir()?);
    if args.passphrase.passphrase_fd == Some(0) && !args.generate {
        return Err(CliError::new(
            Code::Usage,
            "--passphrase-fd 0 would read the passphrase from stdin, where the value comes from",
        )
        .hint("pass the passphrase on another descriptor, e.g. --passphrase-fd 3 3<passfile")
        .into());
    }
    let value = if args.generate {
        input::generated(args.length)?
    } else {
        input::value(name.as_str())?
    };
    // Kept exactly (a value may end in a newline), but rarely meant.
    let newline = !args.generate
        && !std::io::IsTerminal::is_terminal(&std::io::stdin())
        && value.expose_secret().ends_with(b"\n");
    // Inside a shield the vault's files are closed: the broker stores the
    // value.
    let inside =
        std::env::var_os(SHIELD_MARK).is_some() || matches!(vault, Err(VaultError::Closed(_)));
    if inside && let Some(mut client) = broker::Client::connect(&broker::location()?)? {
        let reply = client.request(Body::Set {
            name: name.to_string(),
            value: HexValue::encode(value.expose_secret()),
            replace: args.replace,
        })?;
        eprintln!(
            "envseal: {}",
            envseal_policy::escape_lines(&broker::done(reply)?)
        );
        if newline {
            newline_note(&name);
        }
        return Ok(());
    }
    let mut vault = vault?;
    let mut record = audit::record("set");
    record.names = vec![name.to_string()];
    let outcome = match vault.set(&name, &value, args.replace) {
        Err(VaultError::PassphraseRequired(n)) => {
            if !input::passphrase_available(args.passphrase) {
                return Err(VaultError::PassphraseRequired(n).into());
            }
            let pass = input::passphrase(args.passphrase, &format!("to replace approved {name}"))?;
            let keys = audit::unlock(&mut vault, &pass, "set")?;
            let outcome = vault.set_endorsed(&keys, &name, &value, args.replace)?;
            record.detail = Some("replaced an approved value".into());
            audit::write(&mut vault, Some(&keys), &record);
            outcome
        }
        other => {
            let outcome = other?;
            record.detail = Some("pending".into());
            audit::write(&mut vault, None, &record);
            outcome
        }
    };
    match outcome {
        SetOutcome::Created => eprintln!(
            "envseal: stored {name} (pending: `envseal approve {name}` lets granted programs use it)"
        ),
        SetOutcome::ReplacedPending => eprintln!("envseal: replaced {name} (still pending)"),
        SetOutcome::ReplacedApproved => eprintln!("envseal: replaced {name} (approved)"),
    }
    if newline {
        newline_note(&name);
    }
    Ok(())
}

fn newline_note(name: &SecretName) {
    eprintln!(
        "envseal: note: the value for {name} ends with a newline, which was stored as part of \
         it; to store it without, write it with `printf %s \"$VALUE\" | envseal set --replace \
         {name}` (echo adds the newline)"
    );
}
