//! `envseal mcp`: a Model Context Protocol server on stdio (JSON-RPC 2.0,
//! one message per line) for agents. Tools:
//!
//! - `list_secrets` — names, states and which programs may use each; never
//!   a value, length or digest;
//! - `list_grants` — pinned programs, their hashes, tiers and secrets;
//! - `run` — a pinned program through the broker, exactly like
//!   `envseal exec` (grant, pin, tier), with its output always masked;
//!   returns stdout, stderr and the exit code.
//!
//! Protocol errors (unparsable line, unknown method, bad parameters) are
//! JSON-RPC error responses; a tool that fails (locked, not granted, …)
//! returns a result with `isError`. The server keeps serving either way.

use std::io::{BufRead, Read as _, Write as _};
use std::os::fd::AsFd as _;

use envseal_vault::Vault;
use serde_json::{Value, json};

use crate::broker::protocol::ExecRequest;
use crate::broker::{self, Client};
use crate::commands::pin;
use crate::paths;

/// Protocol revisions this server speaks, newest first.
const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Output kept per stream for a `run` result (the rest is cut, and said).
const MAX_OUTPUT: usize = 1 << 20;

pub fn run() -> anyhow::Result<()> {
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut line = Vec::new();
    loop {
        let (ended, too_long) = read_line(&mut input, &mut line)?;
        if ended && line.is_empty() && !too_long {
            return Ok(());
        }
        // A bad line is answered and the server keeps serving.
        let response = if too_long {
            Some(error(
                Value::Null,
                -32600,
                "invalid request: the line is longer than 4 MiB",
            ))
        } else {
            match std::str::from_utf8(&line) {
                Err(_) => Some(error(
                    Value::Null,
                    -32700,
                    "parse error: the line is not UTF-8",
                )),
                Ok(text) if text.trim().is_empty() => None,
                Ok(text) => handle_line(text),
            }
        };
        if let Some(response) = response {
            serde_json::to_writer(&mut out, &response)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        if ended {
            return Ok(());
        }
    }
}

/// The longest line (one JSON-RPC message) the server reads.
const MAX_LINE: usize = 4 << 20;

/// Reads one line (without its newline) into `line`, keeping at most
/// [`MAX_LINE`] bytes and discarding the rest of a longer one. Returns
/// (input ended, the line was too long).
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<(bool, bool)> {
    line.clear();
    let mut too_long = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((true, too_long));
        }
        let (take, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > MAX_LINE {
            too_long = true;
            line.clear();
        } else if !too_long {
            line.extend_from_slice(&buf[..take]);
        }
        input.consume(take + usize::from(found));
        if found {
            return Ok((false, too_long));
        }
    }
}

/// One incoming line: the response to send, if any (notifications get
/// none).
fn handle_line(line: &str) -> Option<Value> {
    let message: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Some(error(Value::Null, -32700, &format!("parse error: {e}"))),
    };
    let Some(object) = message.as_object() else {
        return Some(error(
            Value::Null,
            -32600,
            "invalid request: expected one JSON-RPC object (batches are not supported)",
        ));
    };
    let id = object.get("id").cloned();
    let method = object.get("method").and_then(Value::as_str);
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || method.is_none() {
        // A response or junk from the client: answer requests only.
        return id.map(|id| error(id, -32600, "invalid request: not a JSON-RPC 2.0 request"));
    }
    let method = method.unwrap_or_default();
    let params = object.get("params").cloned().unwrap_or(Value::Null);
    let id = id?; // a notification (`notifications/initialized`, …)
    Some(match dispatch(method, &params) {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err((code, message)) => error(id, code, &message),
    })
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

type Outcome = Result<Value, (i64, String)>;

fn dispatch(method: &str, params: &Value) -> Outcome {
    match method {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = asked
                .filter(|v| PROTOCOL_VERSIONS.contains(v))
                .unwrap_or(PROTOCOL_VERSIONS[0]);
            Ok(json!({
                "protocolVersion": version,
                "capabilities": { "tools": { "listChanged": false } },
                "serverInfo": { "name": "envseal", "version": env!("CARGO_PKG_VERSION") },
                "instructions": "envseal runs pinned programs with secrets they are granted; \
                    values are never shown. Use list_secrets and list_grants to see names, and \
                    run to execute a granted program (its output is masked)."
            }))
        }
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": tools() })),
        "tools/call" => {
            let name = params
                .get("name")
                .and_then(Value::as_str)
                .ok_or((-32602, "tools/call needs a tool name".to_owned()))?;
            let args = params.get("arguments").cloned().unwrap_or(json!({}));
            call(name, &args)
        }
        _ => Err((-32601, format!("method not found: {method}"))),
    }
}

fn tools() -> Value {
    json!([
        {
            "name": "list_secrets",
            "description": "The secrets in the vault: names, whether approved, and which pinned \
                programs may use each. Never values.",
            "inputSchema": { "type": "object", "properties": {}, "additionalProperties": false }
        },
        {
            "name": "list_grants",
            "description": "The pinned programs: path, SHA-256, tier, and the secrets each receives.",
            "inputSchema": { "type": "object", "properties": {}, "additionalProperties": false }
        },
        {
            "name": "run",
            "description": "Run a pinned program with the secrets its grant gives, through the \
                envseal broker (like `envseal exec`). Its output is masked: secret values are \
                replaced by ****. Returns stdout, stderr and the exit code.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "program": { "type": "string", "description": "The program (a name on PATH or a path)" },
                    "args": { "type": "array", "items": { "type": "string" }, "description": "Its arguments" },
                    "secrets": { "type": "array", "items": { "type": "string" }, "description": "Deliver only these of the grant's secrets" },
                    "tier": { "type": "string", "enum": ["none", "hardened", "lockdown"], "description": "Run at least this confined (the grant's tier is the minimum)" }
                },
                "required": ["program"],
                "additionalProperties": false
            }
        }
    ])
}

/// A tool call. Failures of the tool itself are results with `isError`.
fn call(name: &str, args: &Value) -> Outcome {
    let text = |t: String, is_error: bool| json!({ "content": [{ "type": "text", "text": t }], "isError": is_error });
    let done = |r: anyhow::Result<Value>| match r {
        Ok(v) => text(serde_json::to_string_pretty(&v).unwrap_or_default(), false),
        Err(e) => text(format!("envseal: {e:#}"), true),
    };
    // The schemas forbid other arguments: say so rather than ignore them.
    let allowed: &[&str] = match name {
        "run" => &["program", "args", "secrets", "tier"],
        _ => &[],
    };
    match args {
        Value::Object(map) => {
            if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err((-32602, format!("{name} has no argument `{unknown}`")));
            }
        }
        Value::Null => {}
        _ => return Err((-32602, format!("the arguments of {name} must be an object"))),
    }
    match name {
        "list_secrets" => Ok(done(list_secrets())),
        "list_grants" => Ok(done(
            Vault::open(
                &paths::vault_dir()
                    .map_err(anyhow::Error::from)
                    .map_err(internal)?,
            )
            .map_err(anyhow::Error::from)
            .and_then(|v| crate::commands::grants::json(&v)),
        )),
        "run" => {
            let program = args
                .get("program")
                .and_then(Value::as_str)
                .ok_or((-32602, "run needs `program`".to_owned()))?;
            let strings = |key: &str| -> Result<Vec<String>, (i64, String)> {
                match args.get(key) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or((-32602, format!("`{key}` must be strings")))
                        })
                        .collect(),
                    Some(_) => Err((-32602, format!("`{key}` must be an array of strings"))),
                }
            };
            let (cmd_args, secrets) = (strings("args")?, strings("secrets")?);
            let tier = match args.get("tier") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if envseal_policy::Tier::parse(t).is_some() => {
                    Some(t.clone())
                }
                Some(_) => {
                    return Err((-32602, "`tier` is none, hardened or lockdown".to_owned()));
                }
            };
            Ok(match run_program(program, cmd_args, secrets, tier) {
                Ok((status, stdout, stderr)) => json!({
                    "content": [{
                        "type": "text",
                        "text": format!("exit code {status}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}")
                    }],
                    "structuredContent": { "exitCode": status, "stdout": stdout, "stderr": stderr },
                    "isError": false
                }),
                Err(e) => text(format!("envseal: {e:#}"), true),
            })
        }
        _ => Err((-32602, format!("unknown tool: {name}"))),
    }
}

fn internal(e: anyhow::Error) -> (i64, String) {
    (-32603, format!("{e:#}"))
}

fn list_secrets() -> anyhow::Result<Value> {
    let vault = Vault::open(&paths::vault_dir()?)?;
    let grants = crate::commands::grants::json(&vault)?;
    let mut secrets = Vec::new();
    for s in vault.list()? {
        let programs: Vec<Value> = grants["grants"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| {
                g["secrets"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|x| x["name"] == s.name.as_str()))
            })
            .map(|g| g["program"].clone())
            .collect();
        secrets.push(json!({
            "name": s.name.as_str(),
            "state": s.state.as_str(),
            "programs": programs,
        }));
    }
    Ok(json!({ "secrets": secrets }))
}

/// Runs `program` through the broker with /dev/null as stdin and pipes
/// for its (always masked) output.
fn run_program(
    program: &str,
    cmd_args: Vec<String>,
    secrets: Vec<String>,
    tier: Option<String>,
) -> anyhow::Result<(u8, String, String)> {
    let cmd = std::ffi::OsString::from(program);
    let resolved = pin::resolve(&cmd)?;
    let loc = broker::location()?;
    let mut client = Client::connect(&loc)?.ok_or_else(|| {
        anyhow::Error::from(crate::refusal::Refusal::new(
            crate::refusal::Code::Locked,
            "the vault is locked: no broker is running (a person runs `envseal unlock`)",
        ))
    })?;
    let request = ExecRequest {
        invoked: resolved.looked_up.to_str().map(str::to_owned),
        program: resolved.canonical,
        argv0: cmd.into(),
        args: cmd_args
            .into_iter()
            .map(|a| std::ffi::OsString::from(a).into())
            .collect(),
        env: broker::environment(),
        secrets,
        clearenv: false,
        verbose: false,
        mask: Some(true),
        rename: Vec::new(),
        tier,
    };
    let null = std::fs::File::open("/dev/null")?;
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    client.start_exec(request, [null.as_fd(), out_w.as_fd(), err_w.as_fd()])?;
    drop((out_w, err_w, null));
    // Each pipe is read to its end (keeping the first MAX_OUTPUT bytes),
    // so a program that prints more never blocks on a full pipe.
    let reader = |fd: std::os::fd::OwnedFd| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut file = std::fs::File::from(fd);
            let mut chunk = [0u8; 65536];
            let mut cut = false;
            while let Ok(n) = file.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let room = MAX_OUTPUT - kept.len();
                kept.extend_from_slice(&chunk[..n.min(room)]);
                cut |= n > room;
            }
            let mut s = String::from_utf8_lossy(&kept).into_owned();
            if cut {
                s.push_str("\n[envseal: output cut at 1 MiB]\n");
            }
            s
        })
    };
    let (stdout, stderr) = (reader(out_r), reader(err_r));
    let status = broker::exit_status(client.recv()?)?;
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok((status, stdout, stderr))
}
