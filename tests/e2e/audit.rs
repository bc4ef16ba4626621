//! G8: every action leaves an audit record (names, never values), chained
//! by SHA-256 with authenticated checkpoints; editing, deleting or
//! reordering a record with SQLite is caught by `audit --verify`, which
//! names the first bad record, and what follows the last checkpoint is
//! reported as an unauthenticated tail.

use crate::util;

use util::{Env, code, value};

/// A vault with a history: init, set, approve, allow, exec (run and
/// refused), set again, rm, revoke, and a broker's unlock, exec and lock.
fn history() -> Env {
    let env = Env::initialized();
    let token = value("audit");
    env.set_approved("TOKEN", &token);
    let prog = env.script("prog", "#!/bin/sh\nexit 5\n");
    let prog = prog.to_str().unwrap().to_owned();
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--tier", "none", "--", &prog]));
    assert_eq!(env.exec(&["--", &prog]).code, Some(5));
    env.expect_code(&env.exec(&["--", "/bin/true"]), code::NOT_GRANTED);
    let other = value("audit-other");
    env.remember(other.as_bytes());
    env.expect_ok(&env.run(&["set", "OTHER"], other.as_bytes()));
    env.expect_ok(&env.run_pw(&["rm", "OTHER"], b""));
    env.expect_ok(&env.run_pw(&["unlock"], b""));
    let r = env.run(&["exec", "--", &prog], b"");
    assert_eq!(r.code, Some(5), "{}", env.redact(&r.stderr()));
    // How it ended is written after the caller has its answer.
    assert!(
        util::wait_for(|| actions(&env).iter().filter(|a| *a == "exit").count() == 2),
        "the broker's exec has no exit record: {:?}",
        actions(&env)
    );
    env.expect_ok(&env.run(&["lock"], b""));
    env.expect_ok(&env.run_pw(&["revoke", &prog], b""));
    env
}

fn log(env: &Env) -> Vec<serde_json::Value> {
    let r = env.run(&["audit", "--json"], b"");
    env.expect_ok(&r);
    let v: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    v["elements"].as_array().unwrap().clone()
}

fn actions(env: &Env) -> Vec<String> {
    log(env)
        .iter()
        .filter(|e| e["kind"] == "record")
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

fn verify(env: &Env) -> util::Run {
    env.run_pw(&["audit", "--verify"], b"")
}

#[test]
fn every_action_leaves_a_record() {
    let env = history();
    let got = actions(&env);
    let want = [
        "init",
        "set",
        "approve",
        "allow",
        "exec",
        "exit",
        "exec-refused",
        "set",
        "rm",
        "unlock",
        "exec",
        "exit",
        "lock",
        "revoke",
    ];
    assert_eq!(got, want, "the recorded actions");
    let elements = log(&env);
    // The broker's exec: the caller's pid and uid, unshielded; recorded
    // before it ran (no status), then how it ended.
    let exec = elements.iter().rfind(|e| e["action"] == "exec").unwrap();
    assert_eq!(exec["status"], serde_json::Value::Null);
    let exit = elements.iter().rfind(|e| e["action"] == "exit").unwrap();
    assert_eq!(exit["status"], 5);
    assert_eq!(exit["pid"], exec["pid"]);
    assert!(exit["seq"].as_i64() > exec["seq"].as_i64());
    assert_eq!(exec["shielded"], false);
    assert_eq!(exec["names"], serde_json::json!(["TOKEN"]));
    assert_eq!(exec["tier"], "none");
    assert!(exec["sha256"].as_str().is_some_and(|h| h.len() == 64));
    // Checkpoints were written whenever the vault was unlocked.
    assert!(
        elements
            .iter()
            .filter(|e| e["kind"] == "checkpoint")
            .count()
            >= 5
    );
    // --secret and --since filter.
    let r = env.run(&["audit", "--secret", "OTHER"], b"");
    env.expect_ok(&r);
    assert_eq!(
        r.stdout().lines().count(),
        1 + 2,
        "header + set + rm: {}",
        r.stdout()
    );
    let r = env.run(&["audit", "--since", "1h", "--json"], b"");
    env.expect_ok(&r);
    let r = env.run(&["audit", "--since", "2999-01-01T00:00:00Z", "--json"], b"");
    assert_eq!(r.stdout().trim(), r#"{"elements":[]}"#);
    // Intact: verify passes.
    let r = verify(&env);
    env.expect_ok(&r);
    env.expect_stdout(&r, &["intact and authenticated"]);
}

fn tampered(edit: &str, first_bad: i64) {
    let env = history();
    env.sqlite().execute_batch(edit).unwrap();
    let r = verify(&env);
    env.expect_code(&r, code::TAMPERED);
    env.expect_stderr(&r, &[&format!("the first bad record is {first_bad}")]);
}

#[test]
fn an_edited_record_is_named() {
    // Record 2 is the `set` of TOKEN: make it name another secret.
    tampered(
        "UPDATE audit SET body = CAST(replace(body, CAST('TOKEN' AS BLOB), CAST('TOKEX' AS BLOB)) AS BLOB) \
         WHERE seq = 2",
        2,
    );
}

#[test]
fn an_edited_and_rehashed_chain_is_named() {
    // Even with the whole chain's hashes recomputed (possible without the
    // key), the checkpoint's authenticated list names the record.
    let env = history();
    let db = env.sqlite();
    db.execute(
        "UPDATE audit SET body = CAST(replace(body, CAST('TOKEN' AS BLOB), CAST('TOKEX' AS BLOB)) AS BLOB) \
         WHERE seq = 3",
        [],
    )
    .unwrap();
    rehash(&db);
    let r = verify(&env);
    env.expect_code(&r, code::TAMPERED);
    env.expect_stderr(&r, &["the first bad record is 3"]);
}

#[test]
fn a_deleted_record_is_named() {
    tampered("DELETE FROM audit WHERE seq = 5", 5);
}

#[test]
fn reordered_records_are_named() {
    tampered(
        "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; \
         UPDATE audit SET seq = 3 WHERE seq = -1;",
        2,
    );
}

#[test]
fn junk_after_the_last_checkpoint_is_an_unauthenticated_tail() {
    let env = history();
    let last: i64 = env
        .sqlite()
        .query_row("SELECT MAX(seq) FROM audit", [], |r| r.get(0))
        .unwrap();
    env.sqlite()
        .execute(
            "INSERT INTO audit (seq, at, kind, body, hash) VALUES (?1, 0, 0, X'00', X'00')",
            [last + 1],
        )
        .unwrap();
    let r = verify(&env);
    env.expect_ok(&r);
    env.expect_stdout(&r, &["unauthenticated tail: 1 element", "do not chain"]);
    // The junk is shown as unreadable, not taken for a record.
    let r = env.run(&["audit"], b"");
    env.expect_stdout(&r, &["unreadable"]);
}

/// Recomputes every stored hash from the chain rule (what an attacker
/// without the key can do), in Python so the test does not reuse the
/// code under test.
fn rehash(db: &rusqlite::Connection) {
    let rows: Vec<(i64, i64, i64, Vec<u8>)> = db
        .prepare("SELECT seq, at, kind, body FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut prev = vec![0u8; 32];
    for (seq, at, kind, body) in rows {
        let mut input = b"envseal audit v1".to_vec();
        input.extend_from_slice(&prev);
        input.extend_from_slice(&seq.to_be_bytes());
        input.extend_from_slice(&at.to_be_bytes());
        input.push(kind as u8);
        input.extend_from_slice(&body);
        let hash = util::sha256_hex(&input);
        let hash: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        db.execute(
            "UPDATE audit SET hash = ?1 WHERE seq = ?2",
            rusqlite::params![hash, seq],
        )
        .unwrap();
        prev = hash;
    }
}

/// Failed attempts are in the log too: a wrong passphrase (at `approve`,
/// at the broker's `unlock`) and an exec refused because the vault is
/// locked (no broker, no terminal).
#[test]
fn wrong_passphrases_and_locked_refusals_are_recorded() {
    let env = Env::initialized();
    env.expect_ok(&env.set("PENDING", &value("audit-pending")));
    env.set_approved("TOKEN", &value("audit-locked"));
    let prog = env.script("prog", "#!/bin/sh\nexit 0\n");
    let prog = prog.to_str().unwrap().to_owned();
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", &prog]));
    let r = env.run_with_passphrase(&["approve", "PENDING"], b"", "not the passphrase");
    env.expect_code(&r, code::DENIED);
    let r = env.run_with_passphrase(&["unlock"], b"", "not the passphrase either");
    env.expect_code(&r, code::DENIED);
    let r = env.run(&["exec", "--", &prog], b"");
    env.expect_code(&r, code::LOCKED);
    let r = env.run(&["audit", "--json"], b"");
    env.expect_ok(&r);
    let log: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let find = |action: &str| {
        log["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} record: {log}"))
    };
    assert_eq!(find("approve-refused")["detail"], "wrong passphrase");
    assert_eq!(find("unlock-refused")["detail"], "wrong passphrase");
    let locked = find("exec-refused");
    assert!(
        locked["detail"].as_str().unwrap().contains("locked"),
        "{locked}"
    );
    assert_eq!(locked["program"], prog.as_str());
}
