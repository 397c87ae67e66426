//! The controller group's members, as RocketMQ 5's `controllerDLegerPeers` names them:
//! `n0-127.0.0.1:9878;n1-127.0.0.1:9868;n2-127.0.0.1:9858` (name, a dash, `host:port`).
//!
//! Raft needs numeric ids; a member's id is a hash of its name (FNV-1a, 64 bits), so it does not
//! depend on the order of the list: two controllers whose files list the same members in another
//! order still agree on every id, and reordering the list between restarts changes nothing.

use crate::error::ControllerError;

/// One member of the controller group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The name in `controllerDLegerPeers` (`n0`), what `controllerDLegerSelfId` refers to.
    pub name: String,
    /// The raft node id, [`peer_id`] of the name.
    pub id: u64,
    /// `host:port` of the member's controller port (raft RPC and clients).
    pub addr: String,
}

/// The raft id of the member called `name` (64-bit FNV-1a of its bytes).
pub fn peer_id(name: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// Parses a `controllerDLegerPeers` value.
///
/// # Errors
/// [`ControllerError::Peers`] for an empty list, an item without `name-host:port`, a port that
/// is not a number, or a name or address listed twice.
pub fn parse_peers(list: &str) -> Result<Vec<Peer>, ControllerError> {
    let mut peers: Vec<Peer> = Vec::new();
    for item in list
        .split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let bad = |why: &str| ControllerError::Peers(format!("{item:?}: {why}"));
        let (name, addr) = item
            .split_once('-')
            .ok_or_else(|| bad("expected name-host:port"))?;
        let (name, addr) = (name.trim(), addr.trim());
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad("expected host:port with a port 1-65535"));
        }
        let peer = Peer {
            name: name.to_owned(),
            id: peer_id(name),
            addr: addr.to_owned(),
        };
        if peers.iter().any(|p| p.name == peer.name || p.id == peer.id) {
            return Err(bad("name listed twice"));
        }
        if peers.iter().any(|p| p.addr == peer.addr) {
            return Err(bad("address listed twice"));
        }
        peers.push(peer);
    }
    if peers.is_empty() {
        return Err(ControllerError::Peers("no member listed".to_owned()));
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rocketmq_peer_lists_and_ids_ignore_order() {
        let peers = parse_peers("n0-127.0.0.1:9878;n1-127.0.0.1:9868; n2-127.0.0.1:9858;").unwrap();
        let names: Vec<_> = peers
            .iter()
            .map(|p| (p.name.as_str(), p.addr.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("n0", "127.0.0.1:9878"),
                ("n1", "127.0.0.1:9868"),
                ("n2", "127.0.0.1:9858")
            ]
        );
        let reordered = parse_peers("n2-127.0.0.1:9858;n0-127.0.0.1:9878").unwrap();
        assert_eq!(reordered[1].id, peers[0].id);
        assert_ne!(peers[0].id, peers[1].id);
    }

    #[test]
    fn rejects_bad_lists_with_the_item() {
        for bad in [
            "",
            ";",
            "n0",
            "n0-127.0.0.1",
            "-127.0.0.1:1",
            "n0-h:x",
            "n0-h:70000",
        ] {
            assert!(parse_peers(bad).is_err(), "{bad:?} accepted");
        }
        let dup = parse_peers("n0-h:1;n0-h:2").unwrap_err().to_string();
        assert!(dup.contains("n0-h:2") && dup.contains("twice"), "{dup}");
        assert!(parse_peers("n0-h:1;n1-h:1").is_err());
    }
}
