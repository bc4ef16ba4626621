//! What the broker reads of other processes in `/proc`.

use std::io::Read as _;

/// The size of a process's executable code in pages (`/proc/PID/statm`,
/// readable even of a non-dumpable process): envseal's own processes all
/// have the same. `pid` is a number or `self`.
pub fn code_size(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// The parent pid of `pid`, from `/proc/PID/stat` (the comm field may hold
/// spaces and parentheses: parse after the last `)`).
pub fn parent_of(pid: i32) -> Option<i32> {
    let mut stat = String::new();
    std::fs::File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .read_to_string(&mut stat)
        .ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
