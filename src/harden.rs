//! Process hardening applied before any passphrase or value is read.

use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};

/// Makes this process non-dumpable (no same-user ptrace, `/proc/PID/mem`
/// or `environ` access) and disables core dumps. Failures are ignored: both
/// calls only fail on kernels without them, and neither is a guarantee on
/// its own (see docs/threat-model.md, "install execute-only").
pub fn process() {
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let _ = prctl::set_dumpable(false);
}
