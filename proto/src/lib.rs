//! The broker's messages (the `envseal-broker` crate, and the fuzz
//! targets, use this crate): each a 4-byte big-endian length and a JSON
//! object carrying the protocol version. Anything else — a length over
//! [`MAX_FRAME`], bytes that are not such an object, another version — is
//! refused and the connection closed; the broker carries on.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;
/// The largest message accepted: a `set` of the largest value (1 MiB,
/// hex-encoded) fits, and an exec request with a large environment many
/// times over.
pub const MAX_FRAME: usize = 4 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    pub body: Body,
}

/// Adjacently tagged (`{"op": …, "args": {…}}`): the tag comes first, so
/// the arguments are parsed as they stream by rather than buffered.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    tag = "op",
    content = "args",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Body {
    Status,
    Lock,
    /// `envseal unlock` while a broker runs: a new idle TTL.
    Refresh {
        idle_ttl_seconds: u64,
    },
    /// Run a pinned program; comes with four descriptors: stdin, stdout,
    /// stderr and the working directory.
    Exec(ExecRequest),
    /// `envseal shield` registers the agent process it confines; the
    /// connection stays open for the agent's life. The broker answers with
    /// a [`Reply::Challenge`] once it has checked both processes.
    Shield {
        agent_pid: i32,
        /// What this shield write-protects: what the broker runs for its
        /// agent is protected from writing these too (with the broker's
        /// own list: the union).
        #[serde(default)]
        protected: Vec<String>,
    },
    /// The answer to a [`Reply::Challenge`]: the nonce, sent by the
    /// registering process itself (the broker reads the sender's pid from
    /// the kernel, `SCM_CREDENTIALS`).
    ShieldProof {
        nonce: String,
    },
    /// A signal the client received, for the running program.
    Signal {
        signal: i32,
    },
    /// `envseal list`, `grants` or `audit` where the vault's files cannot
    /// be opened (inside a shield): the broker runs the command, given as
    /// its arguments, with the two descriptors that come with the request
    /// as stdout and stderr, and answers with [`Reply::Exit`].
    Show {
        args: Vec<String>,
    },
    /// `envseal set` inside a shield (which cannot write the vault): a
    /// new value, stored pending.
    Set {
        name: String,
        value: HexValue,
        replace: bool,
    },
}

/// envseal's exit codes (documented in the README and `--help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u8", from = "u8")]
pub enum Code {
    /// Anything not listed below.
    Failure = 1,
    /// Bad arguments or input.
    Usage = 64,
    /// The vault database is unreadable, truncated or from a newer envseal.
    Corrupt = 65,
    /// No vault: run `envseal init`.
    NoVault = 66,
    /// The vault was edited outside envseal.
    Tampered = 67,
    /// The program has no grant (or none for these secrets).
    NotGranted = 68,
    /// The program's (or its interpreter's) bytes differ from the pin.
    Changed = 69,
    /// A symlink now stands in the pinned path.
    Swapped = 70,
    /// A secret the grant gives was removed from the vault.
    SecretMissing = 71,
    /// The kernel or machine refused the sandbox the grant's tier needs.
    Unsupported = 72,
    /// The audit record of an exec could not be written, so nothing ran
    /// (`EX_IOERR`).
    Unrecorded = 74,
    /// The vault is locked: no broker runs and no passphrase can be asked.
    Locked = 75,
    /// Wrong or missing passphrase; operation not allowed.
    Denied = 77,
    /// The program was found but cannot be executed.
    CannotExecute = 126,
    /// The program does not exist.
    NotFound = 127,
}

impl From<Code> for u8 {
    fn from(code: Code) -> u8 {
        code as u8
    }
}

/// A code from the wire; one this build does not know is a failure.
impl From<u8> for Code {
    fn from(status: u8) -> Code {
        [
            Code::Failure,
            Code::Usage,
            Code::Corrupt,
            Code::NoVault,
            Code::Tampered,
            Code::NotGranted,
            Code::Changed,
            Code::Swapped,
            Code::SecretMissing,
            Code::Unsupported,
            Code::Unrecorded,
            Code::Locked,
            Code::Denied,
            Code::CannotExecute,
            Code::NotFound,
        ]
        .into_iter()
        .find(|c| *c as u8 == status)
        .unwrap_or(Code::Failure)
    }
}

/// Bytes from the command line or the environment: a JSON string when
/// they are UTF-8 (nearly always; compact and fast to parse), else an
/// array of numbers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Bytes {
    #[serde(rename = "s")]
    Text(String),
    #[serde(rename = "b")]
    Raw(Vec<u8>),
}

impl From<std::ffi::OsString> for Bytes {
    fn from(s: std::ffi::OsString) -> Bytes {
        use std::os::unix::ffi::OsStringExt as _;
        match s.into_string() {
            Ok(text) => Bytes::Text(text),
            Err(raw) => Bytes::Raw(raw.into_vec()),
        }
    }
}

impl From<Bytes> for std::ffi::OsString {
    fn from(b: Bytes) -> std::ffi::OsString {
        use std::os::unix::ffi::OsStringExt as _;
        match b {
            Bytes::Text(text) => text.into(),
            Bytes::Raw(raw) => std::ffi::OsString::from_vec(raw),
        }
    }
}

/// A value in transit, hex-encoded; wiped on drop and never shown by
/// `Debug`.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct HexValue(String);

impl Drop for HexValue {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for HexValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl HexValue {
    pub fn encode(bytes: &[u8]) -> HexValue {
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        HexValue(s)
    }

    /// The bytes, or `None` if this is not even-length lowercase hex.
    pub fn decode(&self) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let s = self.0.as_bytes();
        if !s.len().is_multiple_of(2) {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(s.len() / 2));
        for pair in s.chunks_exact(2) {
            out.push((nibble(pair[0])? << 4) | nibble(pair[1])?);
        }
        Some(out)
    }
}

/// What `envseal exec` asks for. Never holds a secret value: the broker
/// decrypts those itself.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The canonical path the client resolved CMD to.
    pub program: String,
    pub argv0: Bytes,
    pub args: Vec<Bytes>,
    /// The client's environment (the broker removes the dangerous part).
    pub env: Vec<(Bytes, Bytes)>,
    /// `--secret`: deliver only these.
    pub secrets: Vec<String>,
    pub clearenv: bool,
    pub verbose: bool,
    /// `--mask` (true), `--no-mask` (false), or neither.
    pub mask: Option<bool>,
    /// `--env-file`: (secret, variable) pairs; each secret is delivered
    /// in that variable instead of the grant's.
    #[serde(default)]
    pub rename: Vec<(String, String)>,
    /// `--tier`: run at least this confined (the grant's tier is the
    /// minimum; a weaker one is never used).
    #[serde(default)]
    pub tier: Option<String>,
    /// Where CMD was found before symlinks were followed (a script run
    /// at its real path is given this path when only root can change
    /// where it leads: Debian's `psql` is a link its wrapper reads).
    #[serde(default)]
    pub invoked: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Status(StatusInfo),
    Done {
        message: String,
    },
    /// envseal's own failure, with its exit code (a number on the wire).
    Refused {
        code: Code,
        message: String,
        hint: Option<String>,
    },
    /// To a shield registration: send this back as a
    /// [`Body::ShieldProof`], from the registering process itself.
    Challenge {
        nonce: String,
    },
    /// The request was accepted; the program is being started.
    Started {
        shielded: bool,
        /// The caller is not shielded, and its terminal session has not
        /// been told so by this broker yet: the client says it, once.
        #[serde(default)]
        warn_unshielded: bool,
    },
    /// The program ended; the client exits with this status.
    Exit {
        status: u8,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StatusInfo {
    pub pid: i32,
    pub vault: String,
    /// 0: no idle TTL (until `envseal lock`).
    pub idle_ttl_seconds: u64,
    pub locks_in_seconds: Option<u64>,
    pub shielded_clients: usize,
    pub running_programs: usize,
    pub cached_programs: usize,
    pub key_memory: String,
}

/// One length-prefixed message: a 4-byte big-endian length, then JSON.
pub fn frame<T: Serialize>(message: &T) -> Vec<u8> {
    let json = serde_json::to_vec(message).expect("protocol types always serialize");
    let mut out = Vec::with_capacity(json.len() + 4);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// Reads one frame (blocking); `None` at a clean end of stream. A length
/// over [`MAX_FRAME`] is refused before anything more is read.
pub fn read_frame(stream: &mut impl std::io::Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("message too large"));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Parses a request body as the broker does: the JSON of a [`Request`],
/// of this [`VERSION`].
pub fn parse_request(body: &[u8]) -> Option<Request> {
    serde_json::from_slice::<Request>(body)
        .ok()
        .filter(|r| r.v == VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_values_round_trip_and_stay_redacted() {
        for bytes in [&b""[..], b"\x00\xff value\n", &[7u8; 300]] {
            let h = HexValue::encode(bytes);
            assert_eq!(h.decode().unwrap().as_slice(), bytes);
            assert_eq!(format!("{h:?}"), "[redacted]");
        }
        for bad in ["a", "zz", "AB", "0g"] {
            assert!(HexValue(bad.into()).decode().is_none(), "{bad}");
        }
    }

    #[test]
    fn requests_parse_strictly() {
        let ok = br#"{"v":1,"body":{"op":"signal","args":{"signal":2}}}"#;
        let r: Request = serde_json::from_slice(ok).unwrap();
        assert!(matches!(r.body, Body::Signal { signal: 2 }));
        for bad in [
            &br#"{"v":1,"body":{"op":"get","args":{"name":"K"}}}"#[..],
            br#"{"v":1,"body":{"op":"signal","args":{"signal":2,"extra":1}}}"#,
            br#"{"v":1,"body":{"op":"signal","args":{"signal":2},"more":0}}"#,
            br#"{"v":1}"#,
            b"\xff\xfe",
            b"",
        ] {
            assert!(serde_json::from_slice::<Request>(bad).is_err());
        }
    }

    #[test]
    fn bytes_survive_whatever_they_are() {
        use std::os::unix::ffi::OsStringExt as _;
        for raw in [&b"plain"[..], b"caf\xc3\xa9", b"\xff\xfe not utf-8", b""] {
            let os = std::ffi::OsString::from_vec(raw.to_vec());
            let json = serde_json::to_string(&Bytes::from(os.clone())).unwrap();
            let back: Bytes = serde_json::from_str(&json).unwrap();
            assert_eq!(std::ffi::OsString::from(back), os);
        }
        let r: Request = serde_json::from_slice(br#"{"v":1,"body":{"op":"status"}}"#).unwrap();
        assert!(matches!(r.body, Body::Status));
    }

    #[test]
    fn frames_are_length_prefixed() {
        let f = crate::frame(&Reply::Exit { status: 3 });
        let len = u32::from_be_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(len, f.len() - 4);
        let mut r = &f[..];
        let body = crate::read_frame(&mut r).unwrap().unwrap();
        assert!(matches!(
            serde_json::from_slice::<Reply>(&body).unwrap(),
            Reply::Exit { status: 3 }
        ));
        // A declared length over the limit is refused before reading it.
        let mut huge = &((MAX_FRAME as u32 + 1).to_be_bytes())[..];
        assert!(crate::read_frame(&mut huge).is_err());
    }

    #[test]
    fn refusal_codes_are_numbers_on_the_wire() {
        let r = Reply::Refused {
            code: Code::NotGranted,
            message: "no grant".into(),
            hint: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""code":68"#), "{json}");
        let back: Reply = serde_json::from_str(&json).unwrap();
        assert!(matches!(
            back,
            Reply::Refused {
                code: Code::NotGranted,
                ..
            }
        ));
        // Every code survives the trip; one this build does not know is a
        // failure, not an error.
        for n in 0..=255u8 {
            let c = Code::from(n);
            assert!(c as u8 == n || c == Code::Failure, "{n}");
        }
        let unknown: Reply =
            serde_json::from_str(r#"{"reply":"refused","code":99,"message":"m","hint":null}"#)
                .unwrap();
        assert!(matches!(
            unknown,
            Reply::Refused {
                code: Code::Failure,
                ..
            }
        ));
    }
}
