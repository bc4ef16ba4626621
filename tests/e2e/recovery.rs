//! Recovery and bounds (issue 13): `envseal repair` after the vault's
//! public key was replaced, and the key-derivation cost ceiling.

use crate::util;

use std::time::{Duration, Instant};

use util::terminal::Terminal;
use util::{Env, code, value};

/// The public key stored in clear, as the attacker sees it.
fn stored_recipient(env: &Env) -> Vec<u8> {
    env.sqlite()
        .query_row("SELECT value FROM meta WHERE key = 'recipient'", [], |r| {
            r.get(0)
        })
        .unwrap()
}

/// The attacker plants the public key of a vault of their own.
fn swap_recipient(env: &Env) -> Vec<u8> {
    let attacker = Env::initialized();
    let theirs = stored_recipient(&attacker);
    env.sqlite()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'recipient'",
            rusqlite::params![theirs],
        )
        .unwrap();
    theirs
}

/// A pinned script that prints the SHA-256 of its TOKEN (never TOKEN).
fn pinned_hasher(env: &Env) -> String {
    let prog = env.script(
        "hash-token",
        "#!/bin/sh\nprintf %s \"$TOKEN\" | sha256sum\n",
    );
    let prog = prog.to_str().unwrap().to_owned();
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", &prog]));
    prog
}

fn expect_delivered(env: &Env, prog: &str, token: &str) {
    let r = env.exec(&["--", prog]);
    env.expect_ok(&r);
    assert!(
        r.stdout().starts_with(&util::sha256_hex(token.as_bytes())),
        "the pinned program did not receive TOKEN's value"
    );
}

#[test]
fn repair_restores_a_replaced_public_key() {
    let env = Env::initialized();
    let token = value("token");
    env.set_approved("TOKEN", &token);
    let prog = pinned_hasher(&env);
    expect_delivered(&env, &prog, &token);
    let ours = stored_recipient(&env);

    let theirs = swap_recipient(&env);
    // Set while the key was replaced: encrypted to the attacker's key.
    env.expect_ok(&env.set("LATER", &value("later")));
    for r in [
        env.exec(&["--", &prog]),
        env.run_pw(&["approve", "LATER"], b""),
    ] {
        env.expect_code(&r, code::TAMPERED);
        env.expect_stderr(&r, &["public key was replaced", "envseal repair"]);
        assert!(
            !r.stderr().contains("envseal rm"),
            "the hint suggests an rm that cannot work: {}",
            r.stderr()
        );
    }

    // A wrong passphrase changes nothing.
    let r = env.run_with_passphrase(&["repair", "--yes"], b"", "not the passphrase");
    env.expect_code(&r, code::DENIED);
    assert_eq!(
        stored_recipient(&env),
        theirs,
        "a wrong passphrase repaired"
    );

    // Without --yes and without a terminal, nothing changes either.
    let r = env.run_pw(&["repair"], b"");
    env.expect_code(&r, code::DENIED);
    assert_eq!(stored_recipient(&env), theirs, "repair did not ask");

    // Repair: the stored and real keys are shown, the real one is back,
    // and LATER is named as encrypted to the other key.
    let r = env.run_pw(&["repair", "--yes"], b"");
    env.expect_code(&r, code::TAMPERED);
    let (theirs_s, ours_s) = (
        String::from_utf8(theirs).unwrap(),
        String::from_utf8(ours.clone()).unwrap(),
    );
    env.expect_stderr(
        &r,
        &[
            &theirs_s,
            &ours_s,
            "LATER (pending) does not open",
            "envseal rm LATER",
            "1 of 2 value(s) open",
        ],
    );
    assert!(
        !r.stderr().contains("TOKEN ("),
        "TOKEN reported: {}",
        r.stderr()
    );
    assert_eq!(
        stored_recipient(&env),
        ours,
        "the vault's own key is not back"
    );

    // The vault works again: the approved value reaches the pinned program.
    expect_delivered(&env, &prog, &token);
    // And after rm + set, LATER is the user's again.
    env.expect_ok(&env.run_pw(&["rm", "LATER"], b""));
    env.set_approved("LATER", &value("later-again"));

    // Intact: repair says so, changes nothing, and the vault is whole.
    let before = env
        .sqlite()
        .query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0));
    let r = env.run_pw(&["repair"], b"");
    env.expect_ok(&r);
    env.expect_stderr(&r, &["intact", "nothing was changed", "the vault is whole"]);
    let after = env
        .sqlite()
        .query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0));
    assert_eq!(before.unwrap(), after.unwrap(), "an intact repair wrote");

    // A public key replaced by junk: the same refusal, the same repair.
    env.sqlite()
        .execute(
            "UPDATE meta SET value = x'1b5b324a' WHERE key = 'recipient'",
            [],
        )
        .unwrap();
    let r = env.exec(&["--", &prog]);
    env.expect_code(&r, code::TAMPERED);
    env.expect_stderr(&r, &["envseal repair"]);
    let r = env.run_pw(&["repair", "--yes"], b"");
    env.expect_ok(&r);
    env.expect_stderr(&r, &["(not a public key)", &ours_s]);
    assert_eq!(
        stored_recipient(&env),
        ours,
        "the vault's own key is not back"
    );
    expect_delivered(&env, &prog, &token);

    // The repair is in the audit log.
    let r = env.run(&["audit"], b"");
    env.expect_ok(&r);
    env.expect_stdout(&r, &["repair"]);
}

/// Sets the stored Argon2id cost (memory in MiB, passes), as the attacker
/// would: the wrapped-identity record is "ESW1" | memory_kib | time | ...
fn raise_cost(env: &Env, memory_mib: u32, time: u32) {
    let c = env.sqlite();
    let mut w: Vec<u8> = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'wrapped_identity'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    w[4..8].copy_from_slice(&(memory_mib * 1024).to_be_bytes());
    w[8..12].copy_from_slice(&time.to_be_bytes());
    c.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'wrapped_identity'",
        rusqlite::params![w],
    )
    .unwrap();
}

#[test]
fn a_raised_kdf_cost_is_refused_before_deriving() {
    let env = Env::initialized();
    env.expect_ok(&env.set("PENDING", &value("pending")));
    // 4 GiB and 64 passes: minutes, if it were derived.
    raise_cost(&env, 4096, 64);
    let start = Instant::now();
    let r = env.run_pw(&["approve", "PENDING"], b"");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the refusal took {:?}: the key was derived",
        start.elapsed()
    );
    env.expect_code(&r, code::TAMPERED);
    env.expect_stderr(
        &r,
        &[
            "raised since init",
            "m=4096 MiB, t=64",
            "m=8 MiB, t=1",
            "nothing was derived",
        ],
    );
    // The refusal is in the audit log.
    let r = env.run(&["audit"], b"");
    env.expect_stdout(&r, &["approve-refused"]);

    // At a terminal, the person is asked, naming both costs; "n" refuses.
    let mut term = Terminal::spawn(&env, &["approve", "PENDING"]);
    term.expect("Passphrase (to approve)", 1);
    term.type_line(util::PASSPHRASE);
    term.expect("[y/N]", 1);
    term.type_line("n");
    let r = term.finish();
    env.expect_code(&r, code::TAMPERED);
    env.expect_stdout(&r, &["m=4096 MiB, t=64", "m=8 MiB, t=1", "declined"]);

    // The broker is refused too, before it detaches.
    let r = env.run_pw(&["unlock"], b"");
    env.expect_code(&r, code::TAMPERED);
    env.expect_stderr(&r, &["raised since init"]);
}

#[test]
fn an_old_vault_is_bounded_by_the_ceiling() {
    let env = Env::initialized();
    env.expect_ok(&env.set("PENDING", &value("pending")));
    // A vault made before the cost at init was recorded, raised to 16 MiB;
    // with a ceiling of 8 MiB that is refused...
    env.sqlite()
        .execute("DELETE FROM meta WHERE key = 'kdf_at_init'", [])
        .unwrap();
    raise_cost(&env, 16, 1);
    let with_ceiling = |mib: &str| {
        let mut c = env.command_pw(&["approve", "PENDING"]);
        c.env("ENVSEAL_KDF_CEILING_MIB", mib);
        env.run_command(
            format!("approve PENDING (ENVSEAL_KDF_CEILING_MIB={mib})"),
            c,
            b"",
        )
    };
    let r = with_ceiling("8");
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(
        &r,
        &[
            "above the ceiling (m=8 MiB, t=16)",
            "does not record",
            "ENVSEAL_KDF_CEILING_MIB=16",
        ],
    );
    // ...and derived under a raised ceiling, where the raised cost, bound
    // to the wrapped key, makes the passphrase fail.
    let r = with_ceiling("16");
    env.expect_code(&r, code::DENIED);
    env.expect_stderr(&r, &["wrong passphrase"]);
    // Put back, the default ceiling lets it through.
    raise_cost(&env, 8, 1);
    env.expect_ok(&env.run_pw(&["approve", "PENDING"], b""));
}

#[test]
fn a_cost_above_the_ceiling_is_paid_when_the_person_agrees() {
    // A vault whose cost, chosen at init, is above the ceiling: init warns.
    let env = Env::new();
    let ceiling = [("ENVSEAL_KDF_CEILING_MIB", "8")];
    let mut c = env.command_pw(&["init", "--kdf-memory", "16", "--kdf-time", "1"]);
    c.env(ceiling[0].0, ceiling[0].1);
    let r = env.run_command("init (m=16 MiB, ceiling 8 MiB)".into(), c, b"");
    env.expect_ok(&r);
    env.expect_stderr(&r, &["above the ceiling", "ENVSEAL_KDF_CEILING_MIB"]);
    env.expect_ok(&env.set("PENDING", &value("pending")));

    // At a terminal the person is asked, and "y" derives.
    let mut term = Terminal::spawn_with(&env, &["approve", "PENDING"], &ceiling);
    term.expect("Passphrase (to approve)", 1);
    term.type_line(util::PASSPHRASE);
    term.expect("[y/N]", 1);
    term.type_line("y");
    let r = term.finish();
    env.expect_ok(&r);
    env.expect_stdout(&r, &["m=16 MiB, t=1", "above the ceiling (m=8 MiB, t=16)"]);

    // `unlock` asks before the broker detaches; the broker, which has no
    // terminal, does not ask again for the cost the person accepted.
    let mut term = Terminal::spawn_with(&env, &["unlock"], &ceiling);
    term.expect("[y/N]", 1);
    term.type_line("y");
    term.expect("Passphrase (to unlock the vault)", 1);
    term.type_line(util::PASSPHRASE);
    let r = term.finish();
    let status = env.run(&["status"], b"");
    let lock = env.run(&["lock"], b"");
    env.expect_ok(&r);
    env.expect_ok(&status);
    env.expect_ok(&lock);
}
