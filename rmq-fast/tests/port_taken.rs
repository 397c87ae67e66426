//! Two `rmq-fast` processes of one kind started at the same instant on one port: exactly one
//! serves, the other exits with status 1 and says the address is already in use (Apache
//! RocketMQ's servers fail with "Address already in use"), for the name server, the broker
//! and a controller member. Ports are the kernel's choice, held for the test (`HeldPorts`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rmq_test_support::ports::HeldPorts;
use rmq_test_support::process::KillOnDrop;

/// How long a start-up may take (debug binary, loaded CI machine).
const START: Duration = Duration::from_secs(30);

fn spawn(args: &[&str], config: &Path, out: &Path) -> KillOnDrop {
    let log = std::fs::File::create(out).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rmq-fast"))
        .args(args)
        .arg(config)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start rmq-fast");
    KillOnDrop(child)
}

/// Starts `args` + the two configs at the same instant; asserts that one exits with status
/// 1 naming the taken address and that the other keeps serving on `port`.
fn one_of_two_serves(args: &[&str], configs: [PathBuf; 2], port: u16, dir: &Path) {
    let outs = [dir.join("first.out"), dir.join("second.out")];
    let mut children = [
        spawn(args, &configs[0], &outs[0]),
        spawn(args, &configs[1], &outs[1]),
    ];
    let began = Instant::now();
    let loser = loop {
        let exited: Vec<usize> = (0..2)
            .filter(|&i| children[i].try_wait().unwrap().is_some())
            .collect();
        match exited.as_slice() {
            [] if began.elapsed() < START => std::thread::sleep(Duration::from_millis(50)),
            [one] => break *one,
            _ => panic!(
                "not exactly one exited after {:?}: {exited:?}\n{}\n{}",
                began.elapsed(),
                std::fs::read_to_string(&outs[0]).unwrap_or_default(),
                std::fs::read_to_string(&outs[1]).unwrap_or_default()
            ),
        }
    };
    let status = children[loser].try_wait().unwrap().expect("exited");
    let said = std::fs::read_to_string(&outs[loser]).unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("already in use"), "{said}");
    let winner = 1 - loser;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(began.elapsed() < START, "nothing serves on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        children[winner].try_wait().unwrap().is_none(),
        "{}",
        std::fs::read_to_string(&outs[winner]).unwrap_or_default()
    );
}

fn write(path: PathBuf, text: &str) -> PathBuf {
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_second_name_server_on_a_port_exits_with_address_in_use() {
    let held = HeldPorts::take(1);
    let port = held.port();
    let dir = tempfile::tempdir().unwrap();
    let configs = ["a", "b"].map(|name| {
        let text = format!(
            "listenPort={port}\nkvConfigPath={}\nlogDir={}\n",
            dir.path().join(format!("kv-{name}.json")).display(),
            dir.path().join(format!("logs-{name}")).display()
        );
        write(dir.path().join(format!("namesrv-{name}.properties")), &text)
    });
    one_of_two_serves(&["namesrv", "-c"], configs, port, dir.path());
}

#[test]
fn a_second_broker_on_a_port_exits_with_address_in_use() {
    // listenPort and the HA port after it.
    let held = HeldPorts::take(2);
    let port = held.port();
    let dir = tempfile::tempdir().unwrap();
    let configs = ["a", "b"].map(|name| {
        let text = format!(
            "brokerClusterName=PortCluster\nbrokerName=port-{name}\nlistenPort={port}\n\
             namesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\nstorePathRootDir={}\nlogDir={}\n\
             mappedFileSizeCommitLog=1048576\ncleanFileForciblyEnable=false\nmaxMessageSize=65536\n\
             mappedFileSizeConsumeQueue=6000\nshardCount=1\n",
            dir.path().join(format!("store-{name}")).display(),
            dir.path().join(format!("logs-{name}")).display()
        );
        write(dir.path().join(format!("broker-{name}.properties")), &text)
    });
    one_of_two_serves(&["broker", "-c"], configs, port, dir.path());
}

#[test]
fn a_second_controller_member_on_a_port_exits_with_address_in_use() {
    let held = HeldPorts::take(1);
    let port = held.port();
    let dir = tempfile::tempdir().unwrap();
    let configs = ["a", "b"].map(|name| {
        let text = format!(
            "controllerDLegerGroup=group1\ncontrollerDLegerPeers=n0-127.0.0.1:{port}\n\
             controllerDLegerSelfId=n0\ncontrollerStorePath={}\nlogDir={}\n",
            dir.path().join(format!("store-{name}")).display(),
            dir.path().join(format!("logs-{name}")).display()
        );
        write(
            dir.path().join(format!("controller-{name}.properties")),
            &text,
        )
    });
    one_of_two_serves(&["controller", "-c"], configs, port, dir.path());
}
