//! Waiting for the server under test to go idle, so a phase of a comparison is charged with
//! all the work it caused and none of the work an earlier phase left behind.
//!
//! Why: a write returns at its fsync, but the work it causes goes on after: the hot store's
//! flush and the LSM's compaction (fjall's worker), and whatever consumes the committed-event
//! stream. A profile of `strata bench alerts` part 4 (session 17) found the rules' own code at
//! 2% of the server's CPU, yet ratios of 0.84-0.90: compaction left over from one phase ran
//! during the next, and the phases were not interchangeable in that respect (the benchmark
//! pauses to create or delete rules between a none and a rules phase, and compaction finishes
//! there, but two rules phases follow each other with no pause).

use std::time::{Duration, Instant};

/// Linux reports process times in USER_HZ ticks, which is 100 on every architecture's ABI.
const TICKS_PER_S: f64 = 100.0;
/// Length of one observation.
const WINDOW: Duration = Duration::from_millis(500);
/// A window in which the server used less than this share of one core counts as idle (its
/// timers alone stay far below it: an alerts tick every 250 ms, rollup maintenance).
const IDLE_CORE_SHARE: f64 = 0.05;
/// Longest wait: a server that never goes idle (a busy neighbour, a compaction that keeps
/// finding work) still lets the benchmark finish.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// CPU time (user plus system) that process `pid` has used, from `/proc/PID/stat`.
pub fn cpu_time_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_time_s(&stat)
}

/// Fields 14 and 15 (utime, stime) of a stat line; the command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn parse_cpu_time_s(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_S)
}

/// Waits until the server used less than [`IDLE_CORE_SHARE`] of a core over one [`WINDOW`],
/// and returns how long it waited: zero without a pid (a server on another machine) or when
/// its process times cannot be read.
pub fn until_idle(pid: Option<u32>) -> Duration {
    let Some(pid) = pid else {
        return Duration::ZERO;
    };
    let started = Instant::now();
    let Some(mut used_s) = cpu_time_s(pid) else {
        return Duration::ZERO;
    };
    while started.elapsed() < MAX_WAIT {
        std::thread::sleep(WINDOW);
        let Some(now_s) = cpu_time_s(pid) else {
            break;
        };
        if now_s - used_s < WINDOW.as_secs_f64() * IDLE_CORE_SHARE {
            break;
        }
        used_s = now_s;
    }
    // The last, idle window is not work of the phase.
    started.elapsed().saturating_sub(WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_times_are_read_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (strata (x) y) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 9 0";
        assert_eq!(parse_cpu_time_s(stat), Some(4.0));
        assert_eq!(parse_cpu_time_s("4242 (strata) S 1 2"), None);
    }

    #[test]
    fn the_own_process_is_read_and_no_pid_waits_for_nothing() {
        assert!(cpu_time_s(std::process::id()).is_some());
        assert_eq!(until_idle(None), Duration::ZERO);
    }
}
