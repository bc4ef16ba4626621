//! How strongly a pinned program is confined.

/// How strongly the program is confined when it runs (ordered: None is
/// the weakest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Parent hardening only: non-dumpable, execute-only memfd, clean
    /// environment, no inherited descriptors.
    None,
    /// User, PID, IPC and UTS namespaces, a PID 1, no_new_privs, seccomp.
    Hardened,
    /// Hardened plus mount and network namespaces, private /tmp and HOME,
    /// file secrets on a read-only tmpfs, and Landlock.
    Lockdown,
}

impl Tier {
    /// From its name (`none`, `hardened`, `lockdown`).
    pub fn parse(name: &str) -> Option<Tier> {
        [Tier::None, Tier::Hardened, Tier::Lockdown]
            .into_iter()
            .find(|t| t.as_str() == name)
    }

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::None => "none",
            Tier::Hardened => "hardened",
            Tier::Lockdown => "lockdown",
        }
    }
}
