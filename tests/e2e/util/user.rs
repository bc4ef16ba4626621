//! The unprivileged user the attack tests run as (CI runs as root): created
//! once with `useradd`, with subordinate ids for the namespaced tiers.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Env;

pub const ATTACKER: &str = "envseal-attacker";

/// Creates (once per test binary, whichever test asks first) an
/// unprivileged user with subordinate ids; returns its uid and gid.
pub fn attacker_user() -> (u32, u32) {
    static USER: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *USER.get_or_init(create_attacker_user)
}

pub fn create_attacker_user() -> (u32, u32) {
    let (uid, gid) = ensure_user(ATTACKER);
    // Subordinate ids, for the namespaced tiers' G7 protection.
    if !has_subordinate_ids(ATTACKER, uid) {
        let st = Command::new("usermod")
            .args([
                "--add-subuids",
                "300000-365535",
                "--add-subgids",
                "300000-365535",
                ATTACKER,
            ])
            .status()
            .expect("usermod is needed to give the attacker user subordinate ids");
        assert!(st.success(), "usermod --add-subuids {ATTACKER} failed");
    }
    (uid, gid)
}

/// The user with a supplementary group and no subordinate ids (G7's group
/// route), created once: its uid, gid and that group.
pub fn group_only_user() -> (u32, u32, u32) {
    const USER: &str = "envseal-grouponly";
    static IDS: std::sync::OnceLock<(u32, u32, u32)> = std::sync::OnceLock::new();
    *IDS.get_or_init(|| {
        let (uid, gid) = ensure_user(USER);
        assert!(
            !has_subordinate_ids(USER, uid),
            "{USER} has subordinate ids in /etc/subuid; the group-route test needs a user \
             without (remove them with usermod --del-subuids)"
        );
        (uid, gid, group_of(USER))
    })
}

/// The uid and gid of the unprivileged system user `name`, made with
/// `useradd` if missing (as root only).
fn ensure_user(name: &str) -> (u32, u32) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this attack test needs root to create an unprivileged user with useradd \
         (CI runs as root); run ./scripts/test as root"
    );
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, name])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .unwrap()
            })
    };
    if id("-u").is_none() {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status()
            .expect("useradd is needed to create an unprivileged user");
        assert!(st.success() || id("-u").is_some(), "useradd {name} failed");
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// Whether /etc/subuid gives `user` (by name or uid) a range.
fn has_subordinate_ids(user: &str, uid: u32) -> bool {
    fs::read_to_string("/etc/subuid").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with(&format!("{user}:")) || l.starts_with(&format!("{uid}:")))
    })
}

/// Puts `user` in the supplementary group `envseal-g7` (created once);
/// returns its gid.
fn group_of(user: &str) -> u32 {
    const GROUP_NAME: &str = "envseal-g7";
    let gid = || {
        Command::new("getent")
            .args(["group", GROUP_NAME])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split(':')
                    .nth(2)?
                    .trim()
                    .parse()
                    .ok()
            })
    };
    if gid().is_none() {
        let st = Command::new("groupadd")
            .arg(GROUP_NAME)
            .status()
            .expect("groupadd");
        assert!(
            st.success() || gid().is_some(),
            "groupadd {GROUP_NAME} failed"
        );
    }
    let st = Command::new("usermod")
        .args(["-aG", GROUP_NAME, user])
        .status()
        .expect("usermod");
    assert!(st.success(), "usermod -aG {GROUP_NAME} failed");
    gid().unwrap()
}

/// `setpriv` prefix running a command as the attacker user.
pub fn as_user(uid: u32, gid: u32, program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program);
    c
}

/// Copies an executable where the unprivileged user can run it.
pub fn runnable_copy(from: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(from.file_name().unwrap());
    fs::copy(from, &to).unwrap();
    fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).unwrap();
    to
}

/// Makes the vault the attacker user's own (it is the victim's vault:
/// same user), and the temporary directory traversable.
pub fn give_vault_to(env: &Env, uid: u32, gid: u32) {
    fs::set_permissions(env.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let chown = Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(&env.home)
        .status()
        .unwrap();
    assert!(chown.success());
}

/// The JSON map a re-executed attacker printed on its `PREFIX {json}`
/// line (its stderr in the panic if there is none).
pub fn attack_result(
    out: &std::process::Output,
    prefix: &str,
) -> std::collections::BTreeMap<String, String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| {
            panic!(
                "the attacker printed no result: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line.trim_start()).unwrap()
}
