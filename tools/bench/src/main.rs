//! rmq-fast-bench: a load generator speaking the RocketMQ remoting protocol.
//! (Being built under the load-generator issue.)

fn main() {
    eprintln!("rmq-fast-bench: not built yet");
    std::process::exit(2);
}
