//! Where the controllers are (RocketMQ 5's `ReplicasManager.updateControllerAddr`):
//! `controllerAddr` is a `host:port;host:port;...` list, or, with
//! `fetchControllerAddrByDnsLookup=true`, one `domain:port` whose DNS addresses are the
//! members (each address with that port). A lookup runs on a blocking-pool thread, never on
//! the core, and is repeated every [`DNS_REFRESH`]; a failed or empty lookup keeps the
//! addresses found before.

use std::net::ToSocketAddrs;
use std::time::Duration;

use rmq_core::config::BrokerConfig;

/// How often a DNS-named controller group is resolved again (RocketMQ: every 2 minutes).
pub const DNS_REFRESH: Duration = Duration::from_secs(120);

/// The controllers' addresses now (see the module docs); an error says why none were found.
pub async fn resolve(config: &BrokerConfig) -> Result<Vec<String>, String> {
    if !config.fetch_controller_addr_by_dns_lookup {
        return Ok(config.controller_addrs());
    }
    let domain = config.controller_addr.trim().to_owned();
    rmq_net::rt::spawn_blocking(move || lookup(&domain))
        .await
        .unwrap_or_else(|_| Err("the DNS lookup thread panicked".to_owned()))
}

/// Resolves `domain:port` (blocking): every address of `domain`, with `port`, in the
/// resolver's order, without duplicates.
pub fn lookup(domain_port: &str) -> Result<Vec<String>, String> {
    let Some((domain, port)) = domain_port.rsplit_once(':') else {
        return Err(format!(
            "controllerAddr {domain_port:?} is not domain:port (fetchControllerAddrByDnsLookup)"
        ));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("controllerAddr {domain_port:?}: bad port {port:?}"))?;
    let found = (domain, port)
        .to_socket_addrs()
        .map_err(|error| format!("DNS lookup of {domain:?} failed: {error}"))?;
    let mut addrs: Vec<String> = Vec::new();
    for addr in found {
        let addr = addr.to_string();
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(format!("DNS lookup of {domain:?} found no address"));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(addr: &str, dns: bool) -> BrokerConfig {
        BrokerConfig {
            controller_addr: addr.to_owned(),
            fetch_controller_addr_by_dns_lookup: dns,
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn a_list_is_taken_as_it_is_and_a_domain_is_resolved_to_its_addresses() {
        rmq_net::rt::block_on(async {
            let listed = resolve(&config("localhost:9878;10.0.0.2:9878", false)).await;
            assert_eq!(
                listed.unwrap(),
                ["localhost:9878".to_owned(), "10.0.0.2:9878".to_owned()]
            );
            let resolved = resolve(&config("localhost:9878", true)).await.unwrap();
            assert!(!resolved.is_empty());
            assert!(
                resolved
                    .iter()
                    .all(|a| a == "127.0.0.1:9878" || a == "[::1]:9878"),
                "{resolved:?}"
            );
        })
        .unwrap();
    }

    #[test]
    fn a_bad_domain_or_port_is_a_clear_error() {
        assert!(lookup("no-port-here").unwrap_err().contains("domain:port"));
        assert!(
            lookup("localhost:notaport")
                .unwrap_err()
                .contains("bad port")
        );
        assert!(
            lookup("no-such-host.invalid:9878")
                .unwrap_err()
                .contains("DNS lookup")
        );
    }
}
