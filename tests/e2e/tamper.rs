//! G4: the agent — a same-user process without the passphrase — edits the
//! vault database directly with SQLite. Every edit to the endorsed state
//! must be detected and refused, and nothing may be changed by the refusal.

use crate::util;

use std::path::PathBuf;

use envseal_policy::{ArgRule, Delivery, Grant};
use envseal_vault::SecretName;
use secrecy::SecretString;
use util::probe::{self, Report};
use util::{Env, PASSPHRASE, code, value};

/// Checks that `r` was refused as tampered (exit 67, "vault tampered")
/// and that the message names each of `mentions`.
fn expect_tampered(env: &Env, r: util::Run, mentions: &[&str]) {
    env.expect_code(&r, code::TAMPERED);
    env.expect_stderr(&r, &["vault tampered"]);
    env.expect_stderr(&r, mentions);
}

/// Runs a passphrase command that verifies the endorsed state and checks it
/// is refused as tampered, naming every secret in `names`.
fn assert_refused(env: &Env, names: &[&str]) {
    // A fresh pending value gives `approve` something legitimate to do.
    let probe = value("probe");
    env.expect_ok(&env.run(&["set", "PROBE", "--replace"], probe.as_bytes()));
    env.remember(probe.as_bytes());
    expect_tampered(env, env.run_pw(&["approve", "PROBE"], b""), names);
    let state: String = env
        .sqlite()
        .query_row("SELECT state FROM secrets WHERE name = 'PROBE'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(state, "pending", "a refused approve still approved");
    // And no program could be handed the value: the library refuses too.
    let vault = envseal_vault::Vault::open(&env.home).unwrap();
    let keys = vault.unlock(&SecretString::from(PASSPHRASE)).unwrap();
    for name in names {
        let name = envseal_vault::SecretName::new(name).unwrap();
        assert!(
            matches!(
                vault.open_value(&keys, &name),
                Err(envseal_vault::Error::Tampered(_))
            ),
            "open_value({name}) was not refused as tampered"
        );
    }
}

fn put_ciphertext(env: &Env, name: &str, ct: &[u8]) {
    let n = env
        .sqlite()
        .execute(
            "UPDATE secrets SET ciphertext = ?2 WHERE name = ?1",
            rusqlite::params![name, ct],
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn swapped_ciphertexts_are_refused() {
    let env = Env::initialized();
    env.set_approved("ALPHA", &value("alpha"));
    env.set_approved("BRAVO", &value("bravo"));
    let (a, b) = (env.ciphertext("ALPHA"), env.ciphertext("BRAVO"));
    put_ciphertext(&env, "ALPHA", &b);
    put_ciphertext(&env, "BRAVO", &a);
    assert_refused(&env, &["ALPHA", "BRAVO"]);
    // Replacing a value re-signs the manifest, so it must refuse too.
    let r = env.run_pw(&["set", "ALPHA", "--replace"], b"a new value 1234");
    env.expect_code(&r, code::TAMPERED);
}

#[test]
fn renamed_row_is_refused() {
    let env = Env::initialized();
    env.set_approved("ALPHA", &value("alpha"));
    env.sqlite()
        .execute("UPDATE secrets SET name = 'ZULU' WHERE name = 'ALPHA'", [])
        .unwrap();
    expect_tampered(
        &env,
        env.run_pw(&["approve", "ZULU"], b""),
        &["ZULU", "ALPHA"],
    );

    // A renamed pending row opens to the wrong name at approval.
    let env = Env::initialized();
    env.expect_ok(&env.set("PENDING", &value("pending")));
    env.sqlite()
        .execute(
            "UPDATE secrets SET name = 'OTHER' WHERE name = 'PENDING'",
            [],
        )
        .unwrap();
    expect_tampered(
        &env,
        env.run_pw(&["approve", "OTHER"], b""),
        &["belongs to secret PENDING"],
    );
}

#[test]
fn replayed_ciphertext_is_refused() {
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("old"));
    let old = env.ciphertext("TOKEN");
    let new = value("new");
    env.remember(new.as_bytes());
    env.expect_ok(&env.run_pw(&["set", "TOKEN", "--replace"], new.as_bytes()));
    put_ciphertext(&env, "TOKEN", &old);
    assert_refused(&env, &["TOKEN"]);
}

#[test]
fn injected_approved_row_is_refused() {
    let env = Env::initialized();
    env.set_approved("REAL", &value("real"));
    // The attacker can encrypt to the public recipient (that is what `set`
    // does), then flips the row to approved.
    env.expect_ok(&env.set("EVIL", &value("evil")));
    env.sqlite()
        .execute(
            "UPDATE secrets SET state = 'approved' WHERE name = 'EVIL'",
            [],
        )
        .unwrap();
    assert_refused(&env, &["EVIL"]);
    // A row inserted from scratch, copying a real ciphertext.
    let env = Env::initialized();
    env.set_approved("REAL", &value("real"));
    let ct = env.ciphertext("REAL");
    env.sqlite()
        .execute(
            "INSERT INTO secrets VALUES ('COPY', 'approved', ?1, 0, 0, 'direct', NULL)",
            rusqlite::params![ct],
        )
        .unwrap();
    assert_refused(&env, &["COPY"]);
}

#[test]
fn swapped_pending_values_fail_approval() {
    let env = Env::initialized();
    env.expect_ok(&env.set("P1", &value("p1")));
    env.expect_ok(&env.set("P2", &value("p2")));
    let (a, b) = (env.ciphertext("P1"), env.ciphertext("P2"));
    put_ciphertext(&env, "P1", &b);
    put_ciphertext(&env, "P2", &a);
    expect_tampered(&env, env.run_pw(&["approve", "P1", "P2"], b""), &["P1"]);
    let approved: i64 = env
        .sqlite()
        .query_row(
            "SELECT count(*) FROM secrets WHERE state = 'approved'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(approved, 0, "a refused approve approved something");
}

#[test]
fn bit_flipped_ciphertext_is_refused() {
    let env = Env::initialized();
    env.set_approved("APPROVED", &value("approved"));
    let mut ct = env.ciphertext("APPROVED");
    let last = ct.len() - 1;
    ct[last] ^= 0x01;
    put_ciphertext(&env, "APPROVED", &ct);
    assert_refused(&env, &["APPROVED"]);

    let env = Env::initialized();
    env.expect_ok(&env.set("PENDING", &value("pending")));
    let mut ct = env.ciphertext("PENDING");
    let last = ct.len() - 1;
    ct[last] ^= 0x01;
    put_ciphertext(&env, "PENDING", &ct);
    expect_tampered(&env, env.run_pw(&["approve", "PENDING"], b""), &["PENDING"]);
}

#[test]
fn replaced_recipient_is_detected() {
    // The attacker makes a vault of their own and plants its public key.
    let env = Env::initialized();
    let attacker = Env::initialized();
    let theirs: Vec<u8> = attacker
        .sqlite()
        .query_row("SELECT value FROM meta WHERE key = 'recipient'", [], |r| {
            r.get(0)
        })
        .unwrap();
    env.sqlite()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'recipient'",
            rusqlite::params![theirs],
        )
        .unwrap();
    // The user, unaware, stores a value (no passphrase needed)...
    env.expect_ok(&env.set("NEW", &value("new")));
    // ...and the next passphrase use reports it.
    expect_tampered(
        &env,
        env.run_pw(&["approve", "NEW"], b""),
        &["public key was replaced"],
    );
}

#[test]
fn manifest_edits_are_refused() {
    type Edit = fn(&rusqlite::Connection);
    let edits: [(&str, Edit); 4] = [
        ("deleted", |c| {
            c.execute("DELETE FROM manifest", []).unwrap();
        }),
        ("mac flipped", |c| {
            c.execute("UPDATE manifest SET mac = zeroblob(32)", [])
                .unwrap();
        }),
        ("body edited", |c| {
            let mut body: Vec<u8> = c
                .query_row("SELECT body FROM manifest", [], |r| r.get(0))
                .unwrap();
            let last = body.len() - 1;
            body[last] ^= 0x80;
            c.execute("UPDATE manifest SET body = ?1", [body]).unwrap();
        }),
        ("row demoted to pending", |c| {
            c.execute(
                "UPDATE secrets SET state = 'pending' WHERE name = 'KEEP'",
                [],
            )
            .unwrap();
        }),
    ];
    for (what, edit) in edits {
        let env = Env::initialized();
        env.set_approved("KEEP", &value("keep"));
        edit(&env.sqlite());
        let r = env.run_pw(&["approve", "KEEP"], b"");
        assert_eq!(
            r.code,
            Some(code::TAMPERED),
            "manifest {what}: {}",
            env.redact(&r.stderr())
        );
    }
    // A deleted approved row.
    let env = Env::initialized();
    env.set_approved("GONE", &value("gone"));
    env.sqlite()
        .execute("DELETE FROM secrets WHERE name = 'GONE'", [])
        .unwrap();
    expect_tampered(&env, env.run_pw(&["approve", "PROBE"], b""), &["GONE"]);
    // Another vault's valid manifest does not authenticate here.
    let env = Env::initialized();
    env.set_approved("KEEP", &value("keep"));
    let other = Env::initialized();
    other.set_approved("KEEP", &value("keep-other"));
    let (body, mac): (Vec<u8>, Vec<u8>) = other
        .sqlite()
        .query_row("SELECT body, mac FROM manifest", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    env.sqlite()
        .execute(
            "UPDATE manifest SET body = ?1, mac = ?2",
            rusqlite::params![body, mac],
        )
        .unwrap();
    expect_tampered(&env, env.run_pw(&["approve", "KEEP"], b""), &[]);
}

#[test]
fn rm_repairs_a_tampered_secret() {
    let env = Env::initialized();
    let good = value("good");
    env.set_approved("GOOD", &good);
    env.expect_ok(&env.set("EVIL", &value("evil")));
    env.sqlite()
        .execute(
            "UPDATE secrets SET state = 'approved' WHERE name = 'EVIL'",
            [],
        )
        .unwrap();
    // Other operations are refused while the injected row is there...
    env.expect_code(&env.run_pw(&["rm", "GOOD"], b""), code::TAMPERED);
    // ...but removing the tampered secret itself is allowed, and repairs.
    env.expect_ok(&env.run_pw(&["rm", "EVIL"], b""));
    env.expect_ok(&env.set("NEXT", &value("next")));
    env.expect_ok(&env.run_pw(&["approve", "NEXT"], b""));
    env.assert_value("GOOD", good.as_bytes());
}

#[test]
fn invalid_name_row_is_reported_and_removable() {
    let env = Env::initialized();
    env.set_approved("GOOD", &value("good"));
    let junk = "bad-name\u{1b}[2J";
    env.sqlite()
        .execute(
            "INSERT INTO secrets VALUES (?1, 'pending', x'00', 0, 0, 'direct', NULL)",
            [junk],
        )
        .unwrap();
    // Listed without letting it drive the terminal.
    let r = env.run(&["list"], b"");
    env.expect_ok(&r);
    assert!(
        !r.stdout().contains('\u{1b}'),
        "a raw escape reached the terminal"
    );
    // Every passphrase operation reports it, escaped...
    expect_tampered(
        &env,
        env.run_pw(&["rm", "GOOD"], b""),
        &["invalid name \"bad-name\\u{1b}[2J\""],
    );
    // ...and removing it by its exact name repairs the vault.
    env.expect_ok(&env.run_pw(&["rm", junk], b""));
    env.expect_ok(&env.run_pw(&["rm", "GOOD"], b""));
    // An invalid name that matches no row is a usage error, as before.
    env.expect_code(&env.run_pw(&["rm", "no-such-row"], b""), code::USAGE);
}

// ---- Grants: the agent adds, widens, re-pins, replays or deletes one ----

/// A vault with TOKEN granted to `prog` (the probe) and OTHER not granted;
/// `evil` is another program, the agent's.
fn granted() -> (Env, PathBuf, PathBuf) {
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("token"));
    env.set_approved("OTHER", &value("other"));
    let dir = env.tmp.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = probe::install(&dir.join("prog"), probe::bytes());
    let evil = probe::install(&dir.join("evil"), &probe::variant(b'E'));
    let r = env.run_pw(
        &["allow", "--secret", "TOKEN", "--", prog.to_str().unwrap()],
        b"",
    );
    env.expect_ok(&r);
    (env, prog, evil)
}

fn grant_body(env: &Env, program: &str) -> Vec<u8> {
    env.sqlite()
        .query_row(
            "SELECT body FROM grants WHERE program = ?1",
            [program],
            |r| r.get(0),
        )
        .unwrap()
}

fn put_grant_body(env: &Env, program: &str, body: &[u8]) {
    env.sqlite()
        .execute(
            "INSERT INTO grants (program, body, created_at, updated_at) VALUES (?1, ?2, 0, 0)
             ON CONFLICT (program) DO UPDATE SET body = excluded.body",
            rusqlite::params![program, body],
        )
        .unwrap();
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let hex = util::sha256_hex(bytes);
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    d
}

/// `exec PROGRAM` must be refused as tampered, with nothing run.
fn exec_refused(env: &Env, program: &str, mentions: &[&str]) {
    let r = env.run_pw(&["exec", "--", program], b"");
    assert!(r.stdout.is_empty(), "a program ran despite the tampering");
    expect_tampered(env, r, mentions);
}

#[test]
fn added_grant_is_refused() {
    let (env, prog, evil) = granted();
    let (prog, evil) = (prog.to_str().unwrap(), evil.to_str().unwrap());
    // The agent copies the real grant and points it at its own program.
    let mut g = Grant::decode(&grant_body(&env, prog)).unwrap();
    g.program.path = evil.to_owned();
    g.program.sha256 = sha256(&probe::variant(b'E'));
    put_grant_body(&env, evil, &g.encode());
    exec_refused(&env, evil, &["a grant for", evil, "added outside envseal"]);
    // The whole endorsed state is checked, so the real grant stops too.
    exec_refused(&env, prog, &["added outside envseal"]);
    // Revoking the injected grant repairs the vault.
    env.expect_ok(&env.run_pw(&["revoke", evil], b""));
    let r = env.run_pw(&["exec", "--", prog], b"");
    env.expect_ok(&r);
    assert_eq!(Report::parse(&r.stdout).variant, "A");
}

#[test]
fn widened_or_replayed_grant_is_refused() {
    let (env, prog, _) = granted();
    let prog = prog.to_str().unwrap();
    let original = grant_body(&env, prog);
    // Widened: OTHER added to the grant.
    let mut g = Grant::decode(&original).unwrap();
    let other = SecretName::new("OTHER").unwrap();
    g.secrets.insert(other.clone(), Delivery::Env(other));
    put_grant_body(&env, prog, &g.encode());
    exec_refused(
        &env,
        prog,
        &["the grant for", prog, "changed outside envseal"],
    );

    // Replayed: the person narrows the grant (legitimately); the agent
    // puts the older, wider body back.
    put_grant_body(&env, prog, &original);
    let r = env.run_pw(
        &[
            "allow",
            "--secret",
            "TOKEN",
            "--args-exact",
            "--safe",
            "--",
            prog,
        ],
        b"",
    );
    env.expect_ok(&r);
    env.expect_code(
        &env.run_pw(&["exec", "--", prog, "--unsafe"], b""),
        code::DENIED,
    );
    put_grant_body(&env, prog, &original);
    let r = env.run_pw(&["exec", "--", prog, "--unsafe"], b"");
    assert!(r.stdout.is_empty());
    expect_tampered(&env, r, &["changed outside envseal"]);
    assert_eq!(Grant::decode(&original).unwrap().args, ArgRule::Any);
}

#[test]
fn re_pinned_grant_is_refused() {
    let (env, prog, _) = granted();
    let prog_s = prog.to_str().unwrap();
    // The agent replaces the program and re-hashes the grant to match.
    let b = probe::variant(b'B');
    probe::install(&prog, &b);
    let mut g = Grant::decode(&grant_body(&env, prog_s)).unwrap();
    g.program.sha256 = sha256(&b);
    put_grant_body(&env, prog_s, &g.encode());
    exec_refused(&env, prog_s, &["changed outside envseal"]);
}

#[test]
fn deleted_grant_is_detected() {
    let (env, prog, _) = granted();
    let prog = prog.to_str().unwrap();
    env.sqlite().execute("DELETE FROM grants", []).unwrap();
    // Deleting only takes access away: exec finds no grant...
    env.expect_code(&env.run_pw(&["exec", "--", prog], b""), code::NOT_GRANTED);
    // ...and every passphrase operation reports the edit.
    expect_tampered(
        &env,
        env.run_pw(&["allow", "--secret", "OTHER", "--", prog], b""),
        &["the grant for", "removed outside envseal"],
    );
}

/// Issue 13: a pending value carries its provenance — the `set` record
/// that wrote it (name, ciphertext digest, time), bound to the row. The
/// agent swaps in its own value with a `set --replace` of its own, then
/// back-dates the row to the person's write and deletes its record (the
/// last in the log, so the chain still looks whole): `approve` refuses.
#[test]
fn a_back_dated_value_whose_record_was_deleted_is_not_approved() {
    let provenance = |env: &Env| -> (i64, i64) {
        env.sqlite()
            .query_row(
                "SELECT record, updated_at FROM secrets WHERE name = 'DEPLOY_KEY'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    for point_at in ["the person's record", "the deleted record"] {
        let env = Env::initialized();
        env.expect_ok(&env.set("DEPLOY_KEY", &value("person")));
        let (person_seq, person_at) = provenance(&env);
        let agent = value("agent");
        env.remember(agent.as_bytes());
        env.expect_ok(&env.run(&["set", "DEPLOY_KEY", "--replace"], agent.as_bytes()));
        let (agent_seq, _) = provenance(&env);
        assert!(agent_seq > person_seq);
        let db = env.sqlite();
        let seq = if point_at == "the person's record" {
            person_seq
        } else {
            agent_seq
        };
        db.execute(
            "UPDATE secrets SET updated_at = ?1, record = ?2 WHERE name = 'DEPLOY_KEY'",
            rusqlite::params![person_at, seq],
        )
        .unwrap();
        let max: i64 = db
            .query_row("SELECT MAX(seq) FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(max, agent_seq, "the agent's record is the last");
        db.execute("DELETE FROM audit WHERE seq = ?1", [agent_seq])
            .unwrap();
        drop(db);
        // The log alone looks whole...
        let r = env.run_pw(&["audit", "--verify"], b"");
        env.expect_ok(&r);
        // ...but the value is not the one its record wrote.
        let r = env.run_pw(&["approve", "DEPLOY_KEY", "--yes"], b"");
        env.expect_code(&r, code::TAMPERED);
        env.expect_stderr(
            &r,
            &[
                "provenance of DEPLOY_KEY does not verify",
                "nothing was approved",
            ],
        );
        let state: String = env
            .sqlite()
            .query_row(
                "SELECT state FROM secrets WHERE name = 'DEPLOY_KEY'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(state, "pending", "{point_at}: approved anyway");
        env.scan_all();
    }
    // One value put back: the person replaced a value (or removed it);
    // the old row — ciphertext, time and record, all genuine — is put back
    // as pending. A later record wrote that name, so approve refuses.
    let env = Env::initialized();
    env.expect_ok(&env.set("DEPLOY_KEY", &value("leaked")));
    let old: (Vec<u8>, i64, i64) = env
        .sqlite()
        .query_row(
            "SELECT ciphertext, updated_at, record FROM secrets WHERE name = 'DEPLOY_KEY'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let rotated = value("rotated");
    env.remember(rotated.as_bytes());
    env.expect_ok(&env.run(&["set", "DEPLOY_KEY", "--replace"], rotated.as_bytes()));
    env.sqlite()
        .execute(
            "UPDATE secrets SET ciphertext = ?1, updated_at = ?2, record = ?3 \
             WHERE name = 'DEPLOY_KEY'",
            rusqlite::params![old.0, old.1, old.2],
        )
        .unwrap();
    let r = env.run_pw(&["approve", "DEPLOY_KEY", "--yes"], b"");
    env.expect_code(&r, code::TAMPERED);
    env.expect_stderr(&r, &["wrote an earlier value", "an old value was put back"]);
    env.scan_all();

    // The control: untouched, the value is approved, its record shown.
    let env = Env::initialized();
    env.expect_ok(&env.set("DEPLOY_KEY", &value("person")));
    let r = env.run_pw(&["approve", "DEPLOY_KEY"], b"");
    env.expect_ok(&r);
    env.expect_stderr(&r, &["written by audit record", "not yet authenticated"]);
    // `set --approve`: stored and approved in one step, with the passphrase.
    let own = value("own");
    env.remember(own.as_bytes());
    let r = env.run_pw(&["set", "OWN_KEY", "--approve"], own.as_bytes());
    env.expect_ok(&r);
    env.expect_stderr(&r, &["approved OWN_KEY"]);
    env.assert_value("OWN_KEY", own.as_bytes());
    let r = env.run_with_passphrase(&["set", "WRONG_KEY", "--approve"], own.as_bytes(), "not it");
    env.expect_code(&r, code::DENIED);
    assert!(
        !env.names().contains("WRONG_KEY"),
        "stored despite a wrong passphrase"
    );
    env.scan_all();
}
