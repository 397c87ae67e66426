//! `icount-gate`: the deterministic performance regression guard of scripts/test.sh.
//!
//! For every path of the sibling `icount` binary it counts instructions with valgrind
//! (`cachegrind --cache-sim=no`, the `I refs` total) twice, with 0 and with N iterations,
//! and takes (Ir(N) - Ir(0)) / N: the instructions of one operation, free of process
//! start-up and fixture cost. Instruction counts do not depend on machine load, so the
//! result is stable to well under 1% between runs on one toolchain. The measured process
//! runs with `rep movsb` copies disabled (see [`NO_REP_MOVSB`]).
//!
//! Contract: compares with `benches/baseline/icount.json` and fails (exit 1) when a path
//! needs more than `ICOUNT_TOLERANCE` (default 0.10 = 10%) more instructions than its
//! baseline. Paths missing from the baseline and clear improvements are reported, not
//! failed. `ICOUNT_UPDATE=1` (or `--update`) rewrites the baseline with the measured
//! values instead of comparing. Exit 3 when valgrind cannot be run (the caller decides
//! whether that is a skip).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde::{Deserialize, Serialize};

/// Iterations per measured run: enough that per-iteration noise rounds away.
const ITERATIONS: u64 = 2000;

/// glibc tunable for the measured process: never copy with `rep movsb`. Valgrind counts each
/// iteration of a `rep` instruction, so a large `memcpy` that glibc does with `rep movsb`
/// counts one instruction per byte, and glibc picks that strategy from the buffers' relative
/// alignment, which moves with the heap layout: the pull path's count jumped by 10% between
/// runs. With vector copies only, counts follow the work done and stay put.
const NO_REP_MOVSB: &str = "glibc.cpu.x86_rep_movsb_threshold=18446744073709551615";
const DEFAULT_TOLERANCE: f64 = 0.10;

#[derive(Debug, thiserror::Error)]
enum GateError {
    #[error("valgrind could not be run: {0}")]
    NoValgrind(std::io::Error),
    #[error("cannot run {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} failed ({status}): {stderr}")]
    Failed {
        what: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("no `I refs` line in valgrind's output for {0}")]
    NoCount(String),
    #[error("baseline {path}: {source}")]
    Baseline {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// benches/baseline/icount.json: instructions per operation, by path name.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Baseline {
    /// How the numbers were produced (informational).
    note: String,
    paths: BTreeMap<String, u64>,
}

fn main() -> ExitCode {
    let update = std::env::var("ICOUNT_UPDATE").is_ok_and(|v| v == "1")
        || std::env::args().any(|arg| arg == "--update");
    match run(update) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error @ GateError::NoValgrind(_)) => {
            eprintln!("icount-gate: {error}");
            ExitCode::from(3)
        }
        Err(error) => {
            eprintln!("icount-gate: {error}");
            ExitCode::from(2)
        }
    }
}

/// Measures every path; compares or updates. Ok(false) = a regression was found.
fn run(update: bool) -> Result<bool, GateError> {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .map_err(GateError::NoValgrind)?;
    let icount = sibling("icount");
    let baseline_path = baseline_path();
    let mut measured = BTreeMap::new();
    for name in list_paths(&icount)? {
        let per_op = per_operation(&icount, &name)?;
        measured.insert(name, per_op);
    }
    if update {
        write_baseline(&baseline_path, measured)?;
        println!(
            "icount-gate: baseline written to {}",
            baseline_path.display()
        );
        return Ok(true);
    }
    let baseline = read_baseline(&baseline_path)?;
    Ok(compare(&baseline.paths, &measured, tolerance()))
}

/// Prints one line per path; false when any path regressed beyond `tolerance`.
fn compare(
    baseline: &BTreeMap<String, u64>,
    measured: &BTreeMap<String, u64>,
    tolerance: f64,
) -> bool {
    let mut ok = true;
    for (name, &now) in measured {
        let Some(&before) = baseline.get(name) else {
            println!(
                "  {name:<24} {now:>9} instr/op  (new: not in the baseline, ICOUNT_UPDATE=1 adds it)"
            );
            continue;
        };
        let change = now as f64 / before.max(1) as f64 - 1.0;
        let verdict = if change > tolerance {
            ok = false;
            "REGRESSION"
        } else if change < -tolerance {
            "improved: consider ICOUNT_UPDATE=1"
        } else {
            "ok"
        };
        println!(
            "  {name:<24} {now:>9} instr/op  baseline {before:>9}  {:+6.1}%  {verdict}",
            change * 100.0
        );
    }
    for name in baseline.keys().filter(|name| !measured.contains_key(*name)) {
        println!("  {name:<24} in the baseline but no longer measured");
    }
    if !ok {
        println!(
            "icount-gate: instruction count regression above {:.0}%; if intended, rerun with ICOUNT_UPDATE=1 and commit benches/baseline/icount.json",
            tolerance * 100.0
        );
    }
    ok
}

fn tolerance() -> f64 {
    std::env::var("ICOUNT_TOLERANCE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t >= 0.0)
        .unwrap_or(DEFAULT_TOLERANCE)
}

/// A binary next to this one (same cargo profile directory).
fn sibling(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(name));
    me.with_file_name(name)
}

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline/icount.json")
}

fn list_paths(icount: &Path) -> Result<Vec<String>, GateError> {
    let what = format!("{} --list", icount.display());
    let output = Command::new(icount)
        .arg("--list")
        .output()
        .map_err(|source| GateError::Spawn {
            what: what.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(GateError::Failed {
            what,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .filter(|line| !line.is_empty())
        .collect())
}

/// (Ir(N) - Ir(0)) / N, rounded.
fn per_operation(icount: &Path, name: &str) -> Result<u64, GateError> {
    let idle = instructions(icount, name, 0)?;
    let busy = instructions(icount, name, ITERATIONS)?;
    Ok((busy.saturating_sub(idle) as f64 / ITERATIONS as f64).round() as u64)
}

/// Total instructions of `icount name iterations` under cachegrind.
fn instructions(icount: &Path, name: &str, iterations: u64) -> Result<u64, GateError> {
    let what = format!("valgrind icount {name} {iterations}");
    let output = Command::new("valgrind")
        .args([
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
        ])
        .arg(icount)
        .arg(name)
        .arg(iterations.to_string())
        .env("GLIBC_TUNABLES", glibc_tunables())
        .output()
        .map_err(|source| GateError::Spawn {
            what: what.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(GateError::Failed {
            what,
            status: output.status,
            stderr,
        });
    }
    parse_i_refs(&stderr).ok_or(GateError::NoCount(what))
}

/// `GLIBC_TUNABLES` for the measured process: the caller's, plus [`NO_REP_MOVSB`].
fn glibc_tunables() -> String {
    match std::env::var("GLIBC_TUNABLES") {
        Ok(own) if !own.is_empty() => format!("{own}:{NO_REP_MOVSB}"),
        _ => NO_REP_MOVSB.to_string(),
    }
}

/// The number on valgrind's `==pid== I   refs:      1,234,567` line.
fn parse_i_refs(stderr: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .find(|line| line.contains("I   refs:") || line.contains("I refs:"))?;
    let digits: String = line
        .rsplit(':')
        .next()?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn read_baseline(path: &Path) -> Result<Baseline, GateError> {
    let baseline_error = |source: Box<dyn std::error::Error + Send + Sync>| GateError::Baseline {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(|e| baseline_error(e.into()))?;
    serde_json::from_str(&text).map_err(|e| baseline_error(e.into()))
}

fn write_baseline(path: &Path, paths: BTreeMap<String, u64>) -> Result<(), GateError> {
    let baseline = Baseline {
        note: format!(
            "instructions per operation (valgrind cachegrind Ir, (Ir({ITERATIONS}) - Ir(0)) / {ITERATIONS}, no rep movsb), release profile; regenerate with ICOUNT_UPDATE=1 scripts/test.sh or cargo run --release -p rmq-benches --bin icount-gate -- --update"
        ),
        paths,
    };
    let baseline_error = |source: Box<dyn std::error::Error + Send + Sync>| GateError::Baseline {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| baseline_error(e.into()))?;
    }
    let text = serde_json::to_string_pretty(&baseline).map_err(|e| baseline_error(e.into()))?;
    std::fs::write(path, text + "\n").map_err(|e| baseline_error(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valgrind_totals() {
        let stderr = "==12== Cachegrind, a cache and branch-prediction profiler\n==12== \n==12== I   refs:      1,234,567\n";
        assert_eq!(parse_i_refs(stderr), Some(1_234_567));
        assert_eq!(parse_i_refs("nothing here"), None);
    }

    #[test]
    fn flags_only_regressions_beyond_tolerance() {
        let baseline = BTreeMap::from([("a".to_string(), 100u64), ("b".to_string(), 100)]);
        let within = BTreeMap::from([("a".to_string(), 109u64), ("b".to_string(), 50)]);
        assert!(compare(&baseline, &within, 0.10));
        let beyond = BTreeMap::from([("a".to_string(), 111u64)]);
        assert!(!compare(&baseline, &beyond, 0.10));
    }
}
