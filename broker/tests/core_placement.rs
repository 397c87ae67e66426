//! Where the real `rmq-fast` broker's core threads may run (`pinCores`): read from
//! `/proc/<pid>/task/<tid>/status` (`Cpus_allowed_list`) of the running binary.
//!
//! - `auto` (default) under ASYNC_FLUSH: a core that sleeps when idle is not pinned (an idle
//!   broker's probe has not turned polling on); one that polls after every task
//!   (`idlePollProbe=false`) is pinned to its own CPU.
//! - `auto` under SYNC_FLUSH, and `true`: pinned, each core to a CPU of its own.
//! - `false`: never pinned, even while polling.
//!
//! Needs at least two CPUs (one CPU cannot tell pinned from free); skipped otherwise.
//! `RMQ_FAST_BIN` points at a prebuilt binary; otherwise the test builds `rmq-fast`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{broker_binary, free_port_pair, log_tail};

/// The CPUs in a `Cpus_allowed_list` value ("0-1", "0,2-3").
fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|part| !part.is_empty()) {
        match part.split_once('-') {
            Some((from, to)) => cpus.extend(from.parse::<usize>().unwrap()..=to.parse().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

/// The CPUs this test process may use (the broker it starts inherits them).
fn our_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    parse_cpu_list(line)
}

/// Each core thread's allowed CPUs, by name (`broker-core0` ...). Threads a core starts
/// inherit its name; the core's own thread is the oldest (lowest id) of that name.
fn core_cpus(pid: u32) -> BTreeMap<String, Vec<usize>> {
    let mut threads: BTreeMap<String, (u32, Vec<usize>)> = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap();
        let tid: u32 = task.file_name().to_str().unwrap().parse().unwrap();
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim().to_owned();
        if !comm.starts_with("broker-core") {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let cpus = status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .map(parse_cpu_list)
            .unwrap();
        match threads.get(&comm) {
            Some((oldest, _)) if *oldest < tid => {}
            _ => {
                threads.insert(comm, (tid, cpus));
            }
        }
    }
    threads
        .into_iter()
        .map(|(name, (_, cpus))| (name, cpus))
        .collect()
}

/// Starts the broker with `extra` config lines and returns its cores' allowed CPUs once it
/// serves.
fn placement_with(extra: &str) -> BTreeMap<String, Vec<usize>> {
    let binary = broker_binary();
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port, extra);
    let log = root.path().join("broker.log");
    let mut child = support::start_broker(&binary, &config, &log);
    let addr = format!("127.0.0.1:{port}");
    let runtime = rmq_net::rt::Runtime::new().unwrap();
    runtime.block_on(support::wait_until_serving(&addr, &mut child, &log));
    // The loops place their threads as they start; let a polling loop's first poll pass.
    std::thread::sleep(Duration::from_millis(300));
    let cores = core_cpus(child.id());
    assert!(
        child.try_wait().unwrap().is_none(),
        "the broker exited: {}",
        log_tail(&log)
    );
    assert_eq!(cores.len(), 2, "two core threads: {cores:?}");
    cores
}

fn assert_pinned_apart(cores: &BTreeMap<String, Vec<usize>>, what: &str) {
    let own: Vec<&Vec<usize>> = cores.values().collect();
    assert!(
        own.iter().all(|cpus| cpus.len() == 1),
        "{what}: each core pinned to one CPU: {cores:?}"
    );
    assert_ne!(own[0], own[1], "{what}: on CPUs of their own: {cores:?}");
}

#[test]
fn cores_are_pinned_only_where_the_setting_and_flush_mode_say() {
    let cpus = our_cpus();
    if cpus.len() < 2 {
        eprintln!("skipped: one CPU ({cpus:?}) cannot tell a pinned core from a free one");
        return;
    }
    let idle = placement_with("flushDiskType=ASYNC_FLUSH\n");
    for (name, allowed) in &idle {
        assert_eq!(
            allowed, &cpus,
            "ASYNC_FLUSH, idle, default: {name} may run on every CPU"
        );
    }
    let polling = placement_with("flushDiskType=ASYNC_FLUSH\nidlePollProbe=false\n");
    assert_pinned_apart(&polling, "ASYNC_FLUSH, always polling");
    let never = placement_with("flushDiskType=ASYNC_FLUSH\nidlePollProbe=false\npinCores=false\n");
    for (name, allowed) in &never {
        assert_eq!(allowed, &cpus, "pinCores=false: {name} free while polling");
    }
    let always = placement_with("flushDiskType=ASYNC_FLUSH\npinCores=true\n");
    assert_pinned_apart(&always, "pinCores=true");
    let sync = placement_with("flushDiskType=SYNC_FLUSH\n");
    assert_pinned_apart(&sync, "SYNC_FLUSH, default");
}

fn write_config(root: &Path, port: u16, extra: &str) -> PathBuf {
    let text = format!(
        "brokerClusterName=PlacementCluster\nbrokerName=placement-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nmappedFileSizeCommitLog=4194304\n\
         maxMessageSize=1048576\ncleanFileForciblyEnable=false\nshardCount=2\n{extra}",
        root.join("store").display(),
        root.join("logs").display()
    );
    let path = root.join("broker.properties");
    std::fs::write(&path, text).unwrap();
    path
}
