//! The broker's messages: each a 4-byte big-endian length and a JSON
//! object carrying the protocol version. Anything else — a length over
//! [`MAX_FRAME`], bytes that are not such an object, another version — is
//! refused and the connection closed; the broker carries on.

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;
/// The largest message accepted (an exec request with a large
/// environment fits many times over).
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    pub body: Body,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
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
    /// connection stays open for the agent's life.
    Shield {
        agent_pid: i32,
    },
    /// A signal the client received, for the running program.
    Signal {
        signal: i32,
    },
}

/// What `envseal exec` asks for. Never holds a secret value: the broker
/// decrypts those itself.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The canonical path the client resolved CMD to.
    pub program: String,
    pub argv0: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    /// The client's environment (the broker removes the dangerous part).
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    /// `--secret`: deliver only these.
    pub secrets: Vec<String>,
    pub clearenv: bool,
    pub verbose: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Status(StatusInfo),
    Done {
        message: String,
    },
    /// envseal's own failure, with its exit code.
    Refused {
        code: u8,
        message: String,
        hint: Option<String>,
    },
    /// The request was accepted; the program is being started.
    Started {
        shielded: bool,
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
