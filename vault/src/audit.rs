//! The audit log: an append-only, hash-chained list of records in the
//! vault database, with authenticated checkpoints.
//!
//! ```text
//! element n:  seq (1, 2, …) | at (unix seconds) | kind (0 record, 1 checkpoint) | body
//! hash n   =  SHA-256("envseal audit v1" | hash n-1 | seq u64 | at i64 | kind u8 | body)
//!             (hash 0 = 32 zero bytes)
//! record body     "EAR1" | str16 action | u16 count (str16 name)* | opt str16 program
//!                 | opt [32] sha256 | opt str16 tier | u32 pid | u32 uid
//!                 | u8 shielded (0 unknown, 1 no, 2 yes) | opt u32 status | opt str16 detail
//! checkpoint body "EAC1" | u32 count | [32] hash of each element since the
//!                 previous checkpoint (that checkpoint included)
//! checkpoint mac  HMAC-SHA256(MAC key, "envseal audit checkpoint v1" | seq | at | body)
//! opt = u8 0 | u8 1 value
//! ```
//!
//! Anyone who can write the database can append records (a `set` of a
//! pending value needs no key), so a record is authenticated only once a
//! checkpoint — written whenever the vault is unlocked — lists its hash.
//! Verification walks the chain: a missing sequence number, or a record
//! whose hash differs from the one an authentic checkpoint lists, names
//! the first bad record; a checkpoint whose MAC fails is itself the first
//! bad record; what follows the last checkpoint is reported as an
//! unauthenticated tail. Records hold secret *names*, never values.

use hmac::{Hmac, Mac as _};
use rusqlite::{OptionalExtension as _, Transaction, params};
use sha2::{Digest as _, Sha256};

use crate::codec::Reader;
use crate::error::{Error, Result};
use crate::keys::Keys;

const RECORD_MAGIC: &[u8; 4] = b"EAR1";
const CHECKPOINT_MAGIC: &[u8; 4] = b"EAC1";
const HASH_DOMAIN: &[u8] = b"envseal audit v1";
const MAC_DOMAIN: &[u8] = b"envseal audit checkpoint v1";

/// One audited event (names only, never values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub action: String,
    pub names: Vec<String>,
    pub program: Option<String>,
    pub sha256: Option<[u8; 32]>,
    pub tier: Option<String>,
    pub pid: u32,
    pub uid: u32,
    /// `None` when not known (a command run without a broker).
    pub shielded: Option<bool>,
    pub status: Option<i32>,
    /// Why, for refusals ("not granted", "tampered", …).
    pub detail: Option<String>,
}

/// What an element of the log is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Record(Record),
    /// An authenticated checkpoint over the elements before it.
    Checkpoint {
        covers: u32,
    },
    /// A body that does not decode (the database was edited).
    Unreadable,
}

/// One stored element.
#[derive(Clone, Debug)]
pub struct Element {
    pub seq: i64,
    pub at: i64,
    pub entry: Entry,
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Elements in the log.
    pub total: usize,
    /// The sequence number of the last authentic checkpoint (0: none).
    pub authenticated_through: i64,
    /// The first bad element before the last authentic checkpoint, and why.
    pub first_bad: Option<(i64, String)>,
    /// Elements after the last authentic checkpoint.
    pub tail: usize,
    /// Whether that tail at least chains (its stored hashes recompute).
    pub tail_chains: bool,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(RECORD_MAGIC);
        put_str(&mut out, &self.action);
        out.extend_from_slice(&(self.names.len() as u16).to_be_bytes());
        for n in &self.names {
            put_str(&mut out, n);
        }
        put_opt(&mut out, self.program.as_deref(), put_str);
        put_opt(&mut out, self.sha256.as_ref(), |o, h| {
            o.extend_from_slice(h)
        });
        put_opt(&mut out, self.tier.as_deref(), put_str);
        out.extend_from_slice(&self.pid.to_be_bytes());
        out.extend_from_slice(&self.uid.to_be_bytes());
        out.push(match self.shielded {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        put_opt(&mut out, self.status.as_ref(), |o, s| {
            o.extend_from_slice(&(*s as u32).to_be_bytes())
        });
        put_opt(&mut out, self.detail.as_deref(), put_str);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let r = &mut Reader::new(bytes);
        if r.take(4)? != RECORD_MAGIC {
            return None;
        }
        let action = get_str(r)?;
        let names = (0..r.u16()?).map(|_| get_str(r)).collect::<Option<_>>()?;
        let program = get_opt(r, get_str)?;
        let sha256 = get_opt(r, |r| r.array::<32>())?;
        let tier = get_opt(r, get_str)?;
        let pid = r.u32()?;
        let uid = r.u32()?;
        let shielded = match r.u8()? {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            _ => return None,
        };
        let status = get_opt(r, |r| r.u32().map(|s| s as i32))?;
        let detail = get_opt(r, get_str)?;
        r.is_empty().then_some(Record {
            action,
            names,
            program,
            sha256,
            tier,
            pid,
            uid,
            shielded,
            status,
            detail,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

fn get_str(r: &mut Reader<'_>) -> Option<String> {
    let n = r.u16()?;
    String::from_utf8(r.take(usize::from(n))?.to_vec()).ok()
}

fn get_opt<T>(
    r: &mut Reader<'_>,
    get: impl FnOnce(&mut Reader<'_>) -> Option<T>,
) -> Option<Option<T>> {
    match r.u8()? {
        0 => Some(None),
        1 => get(r).map(Some),
        _ => None,
    }
}

fn checkpoint_body(hashes: &[[u8; 32]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + hashes.len() * 32);
    out.extend_from_slice(CHECKPOINT_MAGIC);
    out.extend_from_slice(&(hashes.len() as u32).to_be_bytes());
    for h in hashes {
        out.extend_from_slice(h);
    }
    out
}

/// The hashes a checkpoint body lists (public for the fuzz targets).
pub fn decode_checkpoint(bytes: &[u8]) -> Option<Vec<[u8; 32]>> {
    let r = &mut Reader::new(bytes);
    if r.take(4)? != CHECKPOINT_MAGIC {
        return None;
    }
    let n = r.u32()?;
    let hashes = (0..n)
        .map(|_| r.array::<32>())
        .collect::<Option<Vec<_>>>()?;
    r.is_empty().then_some(hashes)
}

fn chain(prev: &[u8; 32], seq: i64, at: i64, kind: i64, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    h.update([kind as u8]);
    h.update(body);
    h.finalize().into()
}

fn checkpoint_mac(keys: &Keys, seq: i64, at: i64, body: &[u8]) -> [u8; 32] {
    let mut m =
        <Hmac<Sha256>>::new_from_slice(keys.mac_key.as_ref()).expect("HMAC accepts any key length");
    m.update(MAC_DOMAIN);
    m.update(&seq.to_be_bytes());
    m.update(&at.to_be_bytes());
    m.update(body);
    m.finalize().into_bytes().into()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The last element's sequence number and hash.
fn head(tx: &Transaction<'_>) -> Result<(i64, [u8; 32])> {
    let row: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match row {
        None => (0, [0; 32]),
        Some((seq, hash)) => (
            seq,
            hash.try_into()
                .map_err(|_| Error::Tampered("an audit record's hash is malformed".into()))?,
        ),
    })
}

/// Appends an element; returns its sequence number and time.
fn insert(tx: &Transaction<'_>, kind: i64, body: &[u8], mac: Option<&[u8]>) -> Result<(i64, i64)> {
    let (last, prev) = head(tx)?;
    let seq = last + 1;
    let at = now();
    let hash = chain(&prev, seq, at, kind, body);
    tx.execute(
        "INSERT INTO audit (seq, at, kind, body, hash, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![seq, at, kind, body, &hash[..], mac],
    )?;
    Ok((seq, at))
}

/// Appends a record; returns its sequence number and time.
pub(crate) fn append(tx: &Transaction<'_>, record: &Record) -> Result<(i64, i64)> {
    insert(tx, 0, &record.encode(), None)
}

/// What `approve` checks a pending value's provenance against: the log,
/// verified, and for each secret the last record that wrote or removed it.
#[derive(Clone, Debug)]
pub struct Provenances {
    pub log: Verification,
    /// Secret name → sequence number of its last `set` or `rm` record.
    pub last_write: std::collections::HashMap<String, i64>,
}

impl Provenances {
    /// Reads and verifies the log once, for any number of values.
    pub(crate) fn read(conn: &rusqlite::Connection, keys: &Keys) -> Result<Provenances> {
        let rows = rows(conn)?;
        let log = verify_rows(&rows, keys)?;
        let mut last_write = std::collections::HashMap::new();
        for e in decode_rows(&rows) {
            if let Entry::Record(r) = e.entry
                && (r.action == "set" || r.action == "rm")
            {
                for name in r.names {
                    last_write.insert(name, e.seq);
                }
            }
        }
        Ok(Provenances { log, last_write })
    }
}

/// The record at `seq`, read but not verified (`None`: no such element,
/// or not a readable record).
pub(crate) fn record_at(conn: &rusqlite::Connection, seq: i64) -> Result<Option<(i64, Record)>> {
    use rusqlite::OptionalExtension as _;
    let row: Option<(i64, i64, Vec<u8>)> = conn
        .query_row(
            "SELECT at, kind, body FROM audit WHERE seq = ?1",
            [seq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.and_then(|(at, kind, body)| {
        (kind == 0)
            .then(|| Record::decode(&body))
            .flatten()
            .map(|r| (at, r))
    }))
}

/// Appends a checkpoint over the elements since the previous one.
pub(crate) fn checkpoint(tx: &Transaction<'_>, keys: &Keys) -> Result<()> {
    let last_checkpoint: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM audit WHERE kind = 1",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = tx.prepare("SELECT hash FROM audit WHERE seq >= ?1 ORDER BY seq")?;
    let hashes: Vec<[u8; 32]> = stmt
        .query_map([last_checkpoint.max(1)], |r| r.get::<_, Vec<u8>>(0))?
        .map(|h| {
            h.map_err(Error::from)?
                .try_into()
                .map_err(|_| Error::Tampered("an audit record's hash is malformed".into()))
        })
        .collect::<Result<_>>()?;
    drop(stmt);
    let (last, prev) = head(tx)?;
    let seq = last + 1;
    let at = now();
    let body = checkpoint_body(&hashes);
    let mac = checkpoint_mac(keys, seq, at, &body);
    let hash = chain(&prev, seq, at, 1, &body);
    tx.execute(
        "INSERT INTO audit (seq, at, kind, body, hash, mac) VALUES (?1, ?2, 1, ?3, ?4, ?5)",
        params![seq, at, &body, &hash[..], &mac[..]],
    )?;
    Ok(())
}

struct Row {
    seq: i64,
    at: i64,
    kind: i64,
    body: Vec<u8>,
    hash: Vec<u8>,
    mac: Option<Vec<u8>>,
}

fn rows(conn: &rusqlite::Connection) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare("SELECT seq, at, kind, body, hash, mac FROM audit ORDER BY seq")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Row {
                seq: r.get(0)?,
                at: r.get(1)?,
                kind: r.get(2)?,
                body: r.get(3)?,
                hash: r.get(4)?,
                mac: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Every element, decoded (unauthenticated: `verify` checks them).
pub(crate) fn read(conn: &rusqlite::Connection) -> Result<Vec<Element>> {
    Ok(decode_rows(&rows(conn)?))
}

fn decode_rows(rows: &[Row]) -> Vec<Element> {
    rows.iter()
        .map(|row| Element {
            seq: row.seq,
            at: row.at,
            entry: match row.kind {
                0 => Record::decode(&row.body).map_or(Entry::Unreadable, Entry::Record),
                1 => {
                    decode_checkpoint(&row.body).map_or(Entry::Unreadable, |h| Entry::Checkpoint {
                        covers: h.len() as u32,
                    })
                }
                _ => Entry::Unreadable,
            },
        })
        .collect()
}

/// Checks the chain and every checkpoint (see the module comment).
pub(crate) fn verify(conn: &rusqlite::Connection, keys: &Keys) -> Result<Verification> {
    verify_rows(&rows(conn)?, keys)
}

fn verify_rows(rows: &[Row], keys: &Keys) -> Result<Verification> {
    let mut computed: Vec<[u8; 32]> = Vec::with_capacity(rows.len());
    let mut prev = [0u8; 32];
    let mut first_bad: Option<(i64, String)> = None;
    let mut authenticated_through = 0i64;
    // Index in `rows` of the element after the last authentic checkpoint.
    let mut since = 0usize;
    for (i, row) in rows.iter().enumerate() {
        let expected = i as i64 + 1;
        if row.seq != expected && first_bad.is_none() {
            first_bad = Some((
                expected,
                format!("record {expected} is missing (deleted, or the records renumbered)"),
            ));
        }
        let hash = chain(&prev, row.seq, row.at, row.kind, &row.body);
        computed.push(hash);
        prev = hash;
        if row.kind != 1 {
            continue;
        }
        let Some(listed) = decode_checkpoint(&row.body) else {
            first_bad.get_or_insert((row.seq, format!("checkpoint {} is unreadable", row.seq)));
            continue;
        };
        let authentic = row.mac.as_deref().is_some_and(|mac| {
            let expected = checkpoint_mac(keys, row.seq, row.at, &row.body);
            subtle::ConstantTimeEq::ct_eq(&expected[..], mac).into()
        });
        if !authentic {
            first_bad.get_or_insert((
                row.seq,
                format!("checkpoint {} fails authentication", row.seq),
            ));
            continue;
        }
        // The elements this checkpoint lists: from the previous authentic
        // checkpoint (included) up to it.
        let start = since.saturating_sub(1);
        let covered = &computed[start..i];
        for (k, listed_hash) in listed.iter().enumerate() {
            match covered.get(k) {
                Some(h) if h == listed_hash => {}
                _ => {
                    let seq = rows.get(start + k).map_or(row.seq, |r| r.seq);
                    first_bad.get_or_insert((
                        seq,
                        format!("record {seq} differs from what checkpoint {} authenticated (edited or reordered)", row.seq),
                    ));
                }
            }
        }
        if listed.len() != covered.len() {
            first_bad.get_or_insert((
                row.seq,
                format!(
                    "checkpoint {} authenticated {} records before it, {} are there",
                    row.seq,
                    listed.len(),
                    covered.len()
                ),
            ));
        }
        authenticated_through = row.seq;
        since = i + 1;
    }
    let tail = &rows[since.min(rows.len())..];
    let tail_chains = tail
        .iter()
        .zip(&computed[since.min(rows.len())..])
        .all(|(row, h)| row.hash == h[..]);
    Ok(Verification {
        total: rows.len(),
        authenticated_through,
        first_bad,
        tail: tail.len(),
        tail_chains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = Record> {
        (
            "[a-z-]{1,12}",
            proptest::collection::vec("[A-Z_]{1,10}", 0..4),
            proptest::option::of("/[a-z/]{1,30}"),
            proptest::option::of(any::<[u8; 32]>()),
            proptest::option::of("none|hardened|lockdown"),
            any::<u32>(),
            any::<u32>(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<i32>()),
            proptest::option::of("[ -~]{0,40}"),
        )
            .prop_map(
                |(action, names, program, sha256, tier, pid, uid, shielded, status, detail)| {
                    Record {
                        action,
                        names,
                        program,
                        sha256,
                        tier,
                        pid,
                        uid,
                        shielded,
                        status,
                        detail,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn records_round_trip(r in record()) {
            prop_assert_eq!(Record::decode(&r.encode()), Some(r));
        }

        #[test]
        fn malformed_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Record::decode(&bytes);
            let _ = decode_checkpoint(&bytes);
        }

        #[test]
        fn truncation_and_trailing_bytes_are_rejected(r in record(), cut in any::<usize>()) {
            let bytes = r.encode();
            prop_assert!(Record::decode(&bytes[..cut % bytes.len()]).is_none());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(Record::decode(&longer).is_none());
        }
    }
}
