//! What the kernel says a process (or the calling thread) has used, from `/proc`: CPU time,
//! read and write system calls, resident memory. The benchmark reports each per call, so that
//! a server's cost is measured apart from the load generator's.

use std::time::Duration;

/// Clock ticks per second of `utime` and `stime` in `/proc/*/stat` (`USER_HZ`, 100 on every
/// Linux architecture the project runs on).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user + system) of process `pid`, all of its threads, live and ended.
pub fn process_cpu(pid: u32) -> Duration {
    cpu_in(&format!("/proc/{pid}/stat"))
}

/// CPU time (user + system) of the calling thread alone.
pub fn thread_cpu() -> Duration {
    cpu_in("/proc/thread-self/stat")
}

fn cpu_in(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    // The command name may hold spaces and parentheses: the fields start after the last ')',
    // with field 3 (state) first, so utime (14) and stime (15) are the 12th and 13th.
    let (_, fields) = stat.rsplit_once(')').expect("a stat line");
    let mut fields = fields.split_whitespace().skip(11);
    let mut ticks = || -> u64 {
        fields
            .next()
            .and_then(|field| field.parse().ok())
            .expect("utime and stime")
    };
    let ticks = ticks() + ticks();
    Duration::from_millis(ticks * 1_000 / TICKS_PER_SECOND)
}

/// Read and write system calls of process `pid` so far (`syscr`, `syscw`). `read(2)` and
/// `write(2)` on sockets count, `recv(2)` and `send(2)` do not: right for redis-server, which
/// uses the former.
pub fn process_io_calls(pid: u32) -> (u64, u64) {
    let path = format!("/proc/{pid}/io");
    let io = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let field = |name: &str| {
        io.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{path} has no {name}"))
    };
    (field("syscr:"), field("syscw:"))
}

/// The machine's 1-minute load average: how many runnable tasks shared the cores, on average,
/// other engineers' builds included.
pub fn load_average() -> f64 {
    let path = "/proc/loadavg";
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{path}: {error}"))
        .split_whitespace()
        .next()
        .and_then(|value| value.parse().ok())
        .expect("a load average")
}

/// Resident set size of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{path}: {error}"))
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS is reported")
}
