//! The null broker over the network: an in-process name server, `rmq-fast-bench
//! null-broker` and `rmq-fast-bench produce` as real processes. The producer finds the
//! null broker through the name server's route and every send is answered SEND_OK.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rmq_core::config::NamesrvConfig;

const BENCH: &str = env!("CARGO_BIN_EXE_rmq-fast-bench");

use rmq_test_support::ports::free_port;

#[test]
fn producer_routes_to_the_null_broker_and_every_send_succeeds() {
    let home = tempfile::tempdir().expect("temp dir");
    let ns_port = free_port();
    let config = NamesrvConfig {
        listen_port: ns_port,
        kv_config_path: home.path().join("kv.json").display().to_string(),
        ..NamesrvConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let namesrv = rmq_namesrv::run_namesrv(config, "127.0.0.1".parse().unwrap(), stop.clone())
        .expect("name server starts");
    let ns = format!("127.0.0.1:{ns_port}");
    let listen = format!("127.0.0.1:{}", free_port());

    let mut null_broker = Command::new(BENCH)
        .args(["null-broker", "-n", &ns, "--listen", &listen])
        .args(["--topic", "NullTopic", "--queues", "4", "--cores", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("null broker starts");
    let mut banner = String::new();
    BufReader::new(null_broker.stdout.take().unwrap())
        .read_line(&mut banner)
        .expect("banner");
    assert!(
        banner.contains("listening on") && banner.contains("NullTopic"),
        "{banner}"
    );

    let produce = Command::new(BENCH)
        .args([
            "produce",
            "-n",
            &ns,
            "--topic",
            "NullTopic",
            "--threads",
            "4",
        ])
        .args(["--size", "256", "--duration", "1", "--json"])
        .args(["--broker-pid", &null_broker.id().to_string()])
        .output()
        .expect("producer runs");
    assert!(produce.status.success(), "{produce:?}");
    let summary: serde_json::Value = serde_json::from_slice(&produce.stdout).expect("JSON summary");
    let side = &summary["produce"];
    assert!(side["messages"].as_u64().unwrap() > 100, "{summary}");
    assert_eq!(side["messages"], side["requests"], "{summary}");
    let errors = side["errors"].as_object().expect("errors map");
    assert!(errors.is_empty(), "null broker answered errors: {errors:?}");
    // The broker's own CPU time and memory over the measured second, from /proc.
    let broker = &summary["broker"];
    assert_eq!(broker["pids"][0], null_broker.id(), "{summary}");
    assert!(broker["cpu_secs"].as_f64().unwrap() > 0.0, "{summary}");
    assert!(
        broker["cpu_us_per_message"].as_f64().unwrap() > 0.0,
        "{summary}"
    );
    assert!(broker["rss_mb"].as_f64().unwrap() > 1.0, "{summary}");
    let missing = Command::new(BENCH)
        .args([
            "produce",
            "-n",
            &ns,
            "--topic",
            "NullTopic",
            "--duration",
            "1",
        ])
        .args(["--broker-pid", &u32::MAX.to_string()])
        .output()
        .expect("producer runs");
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--broker-pid"), "{stderr}");

    // SIGTERM stops it promptly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(null_broker.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = null_broker.try_wait().expect("wait") {
            assert!(status.success(), "null broker exit: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "null broker ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let _ = namesrv.join();
}
