//! CPU time and memory of the processes under test (`--broker-pid`), read from `/proc`, so
//! every report shows efficiency beside throughput: broker CPU per message is the figure
//! that tells brokers apart when, on a small machine, the client caps the throughput.
//!
//! Accounting: `utime + stime` of `/proc/PID/stat` (every thread of the process, in clock
//! ticks) sampled when the warmup ends and when the measured interval ends; memory is
//! `VmRSS` (at the end) and `VmHWM` (peak) of `/proc/PID/status`. Several pids (a master and
//! its slave) are summed. Resolution is one tick (10 ms on Linux): at least a few seconds of
//! measurement give a meaningful µs/message.

use serde::Serialize;

/// One reading of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessSample {
    pub user_ticks: u64,
    pub system_ticks: u64,
    pub rss_kb: u64,
    pub peak_rss_kb: u64,
}

/// Why a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("cannot read /proc/{pid}/{file}: {source} (is --broker-pid {pid} running here?)")]
    Read {
        pid: u32,
        file: &'static str,
        source: std::io::Error,
    },
    #[error("unexpected format of /proc/{pid}/{file}")]
    Format { pid: u32, file: &'static str },
}

impl ProcessSample {
    /// Reads `pid` now.
    ///
    /// # Errors
    /// The process does not exist or `/proc` is not Linux's.
    pub fn read(pid: u32) -> Result<Self, UsageError> {
        let read = |file: &'static str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .map_err(|source| UsageError::Read { pid, file, source })
        };
        let (user_ticks, system_ticks) =
            parse_stat(&read("stat")?).ok_or(UsageError::Format { pid, file: "stat" })?;
        let status = read("status")?;
        Ok(Self {
            user_ticks,
            system_ticks,
            rss_kb: status_kb(&status, "VmRSS:").unwrap_or(0),
            peak_rss_kb: status_kb(&status, "VmHWM:").unwrap_or(0),
        })
    }
}

/// `utime` and `stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses: fields are counted from
/// the last `)`.
pub fn parse_stat(line: &str) -> Option<(u64, u64)> {
    let after_name = &line[line.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    // After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags, minflt,
    // cminflt, majflt, cmajflt (13), utime (14), stime (15).
    let user = fields.nth(11)?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// The kB value of `key` in `/proc/PID/status`.
fn status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second of `/proc/PID/stat` times.
fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

/// What the processes used over the measured interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageSummary {
    pub pids: Vec<u32>,
    pub cpu_secs: f64,
    pub user_secs: f64,
    pub system_secs: f64,
    /// CPU seconds per measured second (1.0 = one core busy).
    pub cores: f64,
    /// CPU microseconds per message of the measured side (sent, else consumed).
    pub cpu_us_per_message: f64,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
}

impl UsageSummary {
    /// The difference between `start` and `end` (one sample per pid, same order), over
    /// `measured_secs` and `messages`.
    pub fn between(
        pids: &[u32],
        start: &[ProcessSample],
        end: &[ProcessSample],
        measured_secs: f64,
        messages: u64,
    ) -> Self {
        assert_eq!(pids.len(), start.len());
        assert_eq!(start.len(), end.len());
        let ticks = ticks_per_second();
        let (mut user, mut system, mut rss_kb, mut peak_kb) = (0u64, 0u64, 0u64, 0u64);
        for (a, b) in start.iter().zip(end) {
            user += b.user_ticks.saturating_sub(a.user_ticks);
            system += b.system_ticks.saturating_sub(a.system_ticks);
            rss_kb += b.rss_kb;
            peak_kb += b.peak_rss_kb;
        }
        let round3 = |value: f64| (value * 1000.0).round() / 1000.0;
        let cpu_secs = (user + system) as f64 / ticks;
        Self {
            pids: pids.to_vec(),
            cpu_secs: round3(cpu_secs),
            user_secs: round3(user as f64 / ticks),
            system_secs: round3(system as f64 / ticks),
            cores: round3(cpu_secs / measured_secs.max(1e-9)),
            cpu_us_per_message: if messages == 0 {
                0.0
            } else {
                round3(cpu_secs * 1e6 / messages as f64)
            },
            rss_mb: round3(rss_kb as f64 / 1024.0),
            peak_rss_mb: round3(peak_kb as f64 / 1024.0),
        }
    }

    /// The report's line.
    pub fn to_text(&self) -> String {
        format!(
            "broker {:?}: cpu {:.3} s (user {:.3}, sys {:.3}) = {:.3} cores, {:.3} µs/msg, \
             RSS {:.1} MB (peak {:.1} MB)",
            self.pids,
            self.cpu_secs,
            self.user_secs,
            self.system_secs,
            self.cores,
            self.cpu_us_per_message,
            self.rss_mb,
            self.peak_rss_mb
        )
    }
}

/// Reads every pid.
///
/// # Errors
/// The first pid that cannot be read.
pub fn sample_all(pids: &[u32]) -> Result<Vec<ProcessSample>, UsageError> {
    pids.iter().map(|&pid| ProcessSample::read(pid)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "4242 (rmq (fast) core) S 1 4242 4242 0 -1 4194560 1000 0 3 0 \
                    1234 567 0 0 20 0 9 0 100 1000000 200 18446744073709551615";
        assert_eq!(parse_stat(line), Some((1234, 567)));
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat("no name here"), None);
    }

    #[test]
    fn this_process_is_read_and_its_cpu_time_grows_with_work() {
        let pid = std::process::id();
        let start = sample_all(&[pid]).expect("own /proc entry");
        assert!(start[0].rss_kb > 0 && start[0].peak_rss_kb >= start[0].rss_kb);
        // Busy until /proc shows the CPU time (a wall-time loop fails on a loaded machine,
        // where 300 ms of wall time got 0.09 s of CPU); bounded, so a reader that never sees
        // CPU time grow fails below instead of hanging.
        let begun = std::time::Instant::now();
        let mut x = 1u64;
        let end = loop {
            let burst = std::time::Instant::now();
            while burst.elapsed() < std::time::Duration::from_millis(20) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let end = sample_all(&[pid]).expect("own /proc entry");
            let cpu = UsageSummary::between(&[pid], &start, &end, 0.3, 1000).cpu_secs;
            if cpu >= 0.15 || begun.elapsed() > std::time::Duration::from_secs(30) {
                break end;
            }
        };
        let usage = UsageSummary::between(&[pid], &start, &end, 0.3, 1000);
        assert!(
            usage.cpu_secs >= 0.1,
            "a busy loop shows as CPU time: {usage:?}"
        );
        assert!(usage.cpu_us_per_message >= 100.0, "{usage:?}");
        assert!(usage.to_text().contains("µs/msg"));
        assert!(matches!(
            ProcessSample::read(u32::MAX),
            Err(UsageError::Read { .. })
        ));
    }
}
