//! A blocking remoting client for the controller tests, and processes of `rmq-fast controller`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rmq_core::remoting::controller::GetMetaDataResponseHeader;
use rmq_core::remoting::controller::controller_request_code as rc;
use rmq_core::remoting::{DEFAULT_MAX_FRAME, RemotingCommand, decode_frame, encode_frame};
use rmq_test_support::ports::HeldPorts;
use rmq_test_support::process::KillOnDrop;

pub fn frame(command: &RemotingCommand) -> BytesMut {
    let mut bytes = BytesMut::new();
    encode_frame(command, &mut bytes);
    bytes
}

/// Reads one frame from `stream` (None on EOF or timeout).
pub fn read_frame(stream: &mut TcpStream) -> Option<RemotingCommand> {
    let mut buffer = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(command) = decode_frame(&mut buffer, DEFAULT_MAX_FRAME).expect("valid frame") {
            return Some(command);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One request over a fresh connection; None when the member does not answer.
pub fn call(addr: &str, mut request: RemotingCommand) -> Option<RemotingCommand> {
    static OPAQUE: AtomicI32 = AtomicI32::new(1);
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    request.opaque = OPAQUE.fetch_add(1, Ordering::Relaxed);
    stream.write_all(&frame(&request)).ok()?;
    let reply = read_frame(&mut stream)?;
    assert_eq!(reply.opaque, request.opaque, "reply to another request");
    Some(reply)
}

/// The same request, which must be answered.
pub fn ask(addr: &str, request: RemotingCommand) -> RemotingCommand {
    let code = request.code;
    call(addr, request).unwrap_or_else(|| panic!("{addr} did not answer request {code}"))
}

/// One member process and its files.
pub struct Member {
    pub name: String,
    pub addr: String,
    pub config: PathBuf,
    pub log: PathBuf,
    pub process: Option<KillOnDrop>,
    /// The member's port, held for as long as the test runs (also while the member is down).
    _port: HeldPorts,
}

impl Member {
    pub fn start(&mut self) {
        assert!(self.process.is_none(), "{} runs already", self.name);
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rmq-fast"))
            .args(["controller", "-c"])
            .arg(&self.config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start rmq-fast controller");
        self.process = Some(KillOnDrop(child));
    }

    /// kill -9.
    pub fn kill(&mut self) {
        drop(self.process.take().expect("running"));
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Three members on loopback sharing one store root (each in its own subdirectory); each
/// one's `configStorePath` is its own file, so a runtime config change survives a restart.
/// Each listens on a port of its own held for the test (`HeldPorts`: two concurrent runs of
/// a test never share a member, which merged their clusters into one).
pub fn three_members(dir: &Path) -> Vec<Member> {
    let names = ["n0", "n1", "n2"];
    let ports: Vec<HeldPorts> = names.iter().map(|_| HeldPorts::take(1)).collect();
    let addrs: Vec<String> = ports
        .iter()
        .map(|port| format!("127.0.0.1:{}", port.port()))
        .collect();
    let peers: Vec<String> = names
        .iter()
        .zip(&addrs)
        .map(|(name, addr)| format!("{name}-{addr}"))
        .collect();
    names
        .iter()
        .zip(addrs)
        .zip(ports)
        .map(|((name, addr), port)| {
            let config = dir.join(format!("controller-{name}.properties"));
            let text = format!(
                "controllerDLegerGroup = group1\ncontrollerDLegerPeers = {}\n\
                 controllerDLegerSelfId = {name}\ncontrollerStorePath = {}\n\
                 scanNotActiveBrokerInterval = 200\nlogDir = {}\nconfigStorePath = {}\n",
                peers.join(";"),
                dir.join("store").display(),
                dir.join(format!("logs-{name}")).display(),
                config.display(),
            );
            std::fs::write(&config, text).unwrap();
            Member {
                name: name.to_string(),
                addr,
                config,
                log: dir.join(format!("{name}.out")),
                process: None,
                _port: port,
            }
        })
        .collect()
}

/// GET_METADATA_INFO of one member.
pub fn metadata(addr: &str) -> Option<GetMetaDataResponseHeader> {
    let reply = call(
        addr,
        RemotingCommand::new_request(rc::CONTROLLER_GET_METADATA_INFO),
    )?;
    assert_eq!(reply.code, 0, "{:?}", reply.remark);
    Some(GetMetaDataResponseHeader::read(&reply).expect("metadata header"))
}

/// The index of the member that every running member names as leader (and that says it
/// leads), within `timeout`.
pub fn agreed_leader(members: &[Member], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let running: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].process.is_some())
            .collect();
        let views: Vec<Option<GetMetaDataResponseHeader>> = running
            .iter()
            .map(|&i| metadata(&members[i].addr))
            .collect();
        let leaders: Vec<Option<String>> = views
            .iter()
            .map(|v| v.as_ref().and_then(|v| v.controller_leader_address.clone()))
            .collect();
        if let Some(Some(leader)) = leaders.first()
            && leaders.iter().all(|l| l.as_deref() == Some(leader))
            && let Some(index) = members.iter().position(|m| &m.addr == leader)
            && running.contains(&index)
            && metadata(leader).is_some_and(|v| v.is_leader)
        {
            return index;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = running.iter().map(|&i| members[i].log_text()).collect();
            panic!(
                "no agreed leader among {running:?}: {leaders:?}\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
