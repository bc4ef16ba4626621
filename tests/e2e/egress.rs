//! G10 in part (issue 17, egress): what a pinned program can reach. So
//! far: Lockdown, which has no network, reaches no Unix socket of the host
//! either.

use std::io::Read as _;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::broker::scene;
use crate::deputy::{agent, allow, users_dirs_outside_tmp};
use crate::util;

/// A Unix socket of the agent's in a directory the program works in, and
/// one standing in for a database's on the host: from Lockdown, a pinned
/// client cannot connect to either (its sink records nothing) — the host's
/// pathname sockets are not a way out of the sandbox (issue 17). The
/// control: the same client in Hardened reaches them with the secret, so
/// the channel is real.
#[test]
fn lockdown_reaches_no_host_unix_socket() {
    use std::os::unix::net::UnixListener;
    let mut s = scene();
    let (base, dirs) = users_dirs_outside_tmp(&s, &["work", "run"]);
    let (work, run) = (&dirs[0], &dirs[1]);
    Command::new("chmod")
        .args(["-R", "a+rwx", base.path().to_str().unwrap()])
        .status()
        .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut sockets = Vec::new();
    for path in [work.join("agent.sock"), run.join(".s.PGSQL.5432")] {
        let listener = UnixListener::bind(&path).unwrap();
        Command::new("chmod")
            .args(["0777", path.to_str().unwrap()])
            .status()
            .unwrap();
        let kept = got.clone();
        std::thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                let mut buf = Vec::new();
                let _ = c.read_to_end(&mut buf);
                kept.lock().unwrap().push(buf);
            }
        });
        sockets.push(path);
    }
    let client = s.script(
        "unix-client.py",
        "#!/usr/bin/python3\nimport os, socket, sys\n\
         for path in sys.argv[1:]:\n\
         \x20   try:\n\
         \x20       c = socket.socket(socket.AF_UNIX); c.connect(path)\n\
         \x20       c.sendall(os.environ['TOKEN'].encode()); c.close(); print('reached', path)\n\
         \x20   except OSError as e: print('refused', e.errno)\n",
    );
    // Granted at Hardened; the attack raises it to Lockdown (`--tier`).
    allow(&s, &["--tier", "hardened"], &client);
    s.unlock(&[]);
    let targets = format!("{} {}", sockets[0].display(), sockets[1].display());
    let run = |tier: &str| {
        let exec = format!(
            "{} exec --tier {tier} -- {}",
            s.envseal.display(),
            client.display()
        );
        agent(&s, work, &format!("{exec} {targets}"))
    };
    let r = run("lockdown");
    s.env.expect_ok(&r);
    assert_eq!(
        r.stdout().matches("refused").count(),
        2,
        "{}",
        r.shown_stdout()
    );
    // The control.
    let r = run("hardened");
    s.env.expect_ok(&r);
    assert!(
        util::wait_for(|| got.lock().unwrap().len() == 2),
        "the control did not reach the sockets: {}",
        r.shown_stdout()
    );
    // Exactly the control's two (a Lockdown connection that got through
    // would also have printed `reached` above).
    assert_eq!(
        got.lock().unwrap().len(),
        2,
        "a host Unix socket was reached from Lockdown"
    );
    let want = s.token.as_bytes().to_vec();
    assert!(
        got.lock().unwrap().iter().all(|b| *b == want),
        "the control sent another value"
    );
}
