//! `envseal mcp` driven by a real MCP client we did not write: the
//! official Python SDK (`mcp`, installed by ./scripts/test into
//! target/mcp-venv). Also the protocol's error paths, with raw lines.

use crate::util;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use util::{Env, value};

/// The Python with the MCP SDK (./scripts/test makes it).
fn sdk_python() -> PathBuf {
    util::venv_python("mcp")
}

const CLIENT: &str = r#"
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

def attr(o, *names):
    for n in names:
        if hasattr(o, n):
            return getattr(o, n)
    return None

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=["mcp"], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            run = await session.call_tool("run", {"program": sys.argv[2], "args": ["an-arg"]})
            listed = await session.call_tool("list_secrets", {})
            print(json.dumps({
                "protocol": attr(init, "protocol_version", "protocolVersion"),
                "tools": sorted(t.name for t in tools.tools),
                "run_error": attr(run, "is_error", "isError"),
                "run_text": run.content[0].text,
                "run_structured": attr(run, "structured_content", "structuredContent"),
                "list_error": attr(listed, "is_error", "isError"),
                "list_text": listed.content[0].text,
            }))

asyncio.run(main())
"#;

/// A vault with TOKEN granted to a script that prints it, says hello, and
/// exits 4.
fn staged() -> (Env, String, PathBuf) {
    let env = Env::initialized();
    let token = value("mcp");
    env.set_approved("TOKEN", &token);
    let p = env.script(
        "speaks",
        "#!/bin/sh\necho \"hello $1\"\necho \"token=$TOKEN\"\necho oops >&2\nexit 4\n",
    );
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", p.to_str().unwrap()]));
    (env, token, p)
}

fn client(env: &Env, prog: &std::path::Path) -> serde_json::Value {
    let mut c = Command::new(sdk_python());
    c.args(["-c", CLIENT])
        .arg(util::bin())
        .arg(prog)
        .env("ENVSEAL_HOME", &env.home)
        .env_remove("XDG_DATA_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let r = env.run_command("(python MCP client) envseal mcp".into(), c, b"");
    let line = r
        .stdout()
        .lines()
        .last()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!(
                "the MCP client printed nothing: {}",
                env.redact(&r.stderr())
            )
        });
    serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("the MCP client failed: {}", env.redact(&r.stderr())))
}

#[test]
fn the_python_sdk_runs_a_pinned_program_with_masked_output() {
    let (env, token, prog) = staged();
    env.expect_ok(&env.run_pw(&["unlock"], b""));
    let got = client(&env, &prog);
    let _ = env.run(&["lock"], b"");
    assert_eq!(
        got["tools"],
        serde_json::json!(["list_grants", "list_secrets", "run"])
    );
    assert!(
        got["protocol"]
            .as_str()
            .is_some_and(|v| v.starts_with("20"))
    );
    assert_eq!(got["run_error"], false, "{}", env.redact(&got.to_string()));
    let text = got["run_text"].as_str().unwrap();
    assert!(text.contains("exit code 4"), "{}", env.redact(text));
    assert!(text.contains("hello an-arg"), "{}", env.redact(text));
    assert!(text.contains("token=****"), "the value was not masked");
    assert!(!text.contains(&token), "the value reached the MCP client");
    assert_eq!(got["run_structured"]["exitCode"], 4);
    assert_eq!(got["run_structured"]["stderr"], "oops\n");
    assert_eq!(got["list_error"], false);
    let listed: serde_json::Value =
        serde_json::from_str(got["list_text"].as_str().unwrap()).unwrap();
    assert_eq!(listed["secrets"][0]["name"], "TOKEN");
    assert_eq!(listed["secrets"][0]["state"], "approved");
    assert_eq!(listed["secrets"][0]["programs"][0], prog.to_str().unwrap());
}

#[test]
fn run_while_locked_is_an_error_result_not_a_crash() {
    let (env, _token, prog) = staged();
    let got = client(&env, &prog);
    assert_eq!(got["run_error"], true);
    assert!(
        got["run_text"].as_str().unwrap().contains("locked"),
        "{}",
        got["run_text"]
    );
    // The server went on serving: the next call worked.
    assert_eq!(got["list_error"], false);
}

#[test]
fn malformed_lines_get_errors_and_the_server_keeps_serving() {
    let env = Env::initialized();
    let mut c = env.command();
    c.arg("mcp").stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let input = [
        "this is not json",
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"no/such/method"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nope"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"ping"}"#,
    ]
    .join("\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{input}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let r = env.record("mcp (raw lines)".into(), out);
    env.expect_ok(&r);
    let replies: Vec<serde_json::Value> = r
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        replies.len(),
        5,
        "one reply per request, none for the notification"
    );
    assert_eq!(replies[0]["error"]["code"], -32700);
    assert_eq!(replies[1]["error"]["code"], -32600);
    assert_eq!(replies[2]["error"]["code"], -32601);
    assert_eq!(replies[3]["error"]["code"], -32602);
    assert_eq!(replies[4]["id"], 4);
    assert_eq!(replies[4]["result"], serde_json::json!({}));
}

/// A program that prints more than the result keeps (1 MiB) runs to its
/// end: the rest is read and dropped, so the program neither blocks nor
/// dies of a closed pipe (its status is that of its last write).
#[test]
fn a_long_output_is_cut_and_the_program_runs_to_its_end() {
    let env = Env::initialized();
    env.set_approved("TOKEN", &value("mcp-long"));
    let p = env.script(
        "long",
        "#!/bin/sh\nhead -c 3000000 /dev/zero | tr '\\0' x\n",
    );
    env.expect_ok(&env.allow(&["--secret", "TOKEN", "--", p.to_str().unwrap()]));
    env.expect_ok(&env.run_pw(&["unlock"], b""));
    let mut c = env.command();
    c.arg("mcp").stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let call = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"run\",\
         \"arguments\":{{\"program\":\"{}\"}}}}}}\n",
        p.display()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(call.as_bytes())
        .unwrap();
    // Closing stdin ends the server after its answer; the answer is read
    // on a thread so a hang shows as a timeout, not a stuck test.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = env.run(&["lock"], b"");
            panic!("envseal mcp never answered a run with 3 MB of output")
        })
        .unwrap();
    let _ = env.run(&["lock"], b"");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        reply["result"]["structuredContent"]["exitCode"], 0,
        "the program's output was cut off under it"
    );
    let stdout = reply["result"]["structuredContent"]["stdout"]
        .as_str()
        .unwrap();
    assert!(stdout.ends_with("[envseal: output cut at 1 MiB]\n"));
    assert!(stdout.len() < (1 << 20) + 100);
}

/// Invalid UTF-8, a 100 MB line and arguments a tool's schema forbids are
/// each answered with a JSON-RPC error, and the next request still works;
/// the long line is not buffered whole.
#[test]
fn bad_bytes_huge_lines_and_unknown_arguments_are_errors() {
    let env = Env::initialized();
    let mut c = env.command();
    c.arg("mcp").stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\xffng\"}\n")
            .unwrap();
        stdin
            .write_all(br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
            .unwrap();
        stdin.write_all(b"\n").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            stdin.write_all(&chunk).unwrap();
        }
        stdin.write_all(b"\n").unwrap();
        stdin
            .write_all(br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#)
            .unwrap();
        stdin.write_all(b"\n").unwrap();
        let unknown = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"run","arguments":{"program":"/bin/true","env":{"LD_PRELOAD":"x"}}}}"#;
        stdin.write_all(format!("{unknown}\n").as_bytes()).unwrap();
        let listed = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"list_grants","arguments":{"all":true}}}"#;
        stdin.write_all(format!("{listed}\n").as_bytes()).unwrap();
        stdin
            .write_all(br#"{"jsonrpc":"2.0","id":6,"method":"ping"}"#)
            .unwrap();
        stdin.write_all(b"\n").unwrap();
    });

    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let r = env.record(
        "mcp (bad bytes, a huge line, unknown arguments)".into(),
        out,
    );
    env.expect_ok(&r);
    let replies: Vec<serde_json::Value> = r
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 7, "{replies:#?}");
    assert_eq!(replies[0]["error"]["code"], -32700, "invalid UTF-8");
    assert_eq!(replies[1]["id"], 2);
    assert_eq!(replies[2]["error"]["code"], -32600, "the 100 MB line");
    assert_eq!(replies[3]["id"], 3);
    assert_eq!(
        replies[4]["error"]["code"], -32602,
        "an unknown argument of run"
    );
    assert!(
        replies[4]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("env")
    );
    assert_eq!(
        replies[5]["error"]["code"], -32602,
        "an unknown argument of list_grants"
    );
    assert_eq!(replies[6]["id"], 6);
    assert_eq!(replies[6]["result"], serde_json::json!({}));
}
