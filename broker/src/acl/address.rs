//! RocketMQ's remote address patterns (`whiteRemoteAddress`, `globalWhiteRemoteAddresses`):
//! blank (matches nothing), `*` (everything), exact addresses, sets (`1.2.3.4,1.2.3.5` or
//! `192.168.0.{1,2}`) and ranges on one part (`192.168.1.1-5`, `192.168.*`, `10.*.*.*`).
//! Same parsing rules and errors as RocketMQ 4.9.8's RemoteAddressStrategyFactory; IPv6
//! exact addresses and sets are compared after normalisation, IPv6 ranges on one hextet
//! are supported when the head has no `::`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::AclError;

/// A compiled address pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    /// Blank pattern: never matches.
    Nothing,
    /// `*`, `*.*.*.*`, `*:*:*:*:*:*:*:*`.
    Anything,
    /// Exact addresses (one or a set).
    Set(Vec<IpAddr>),
    /// IPv4: the first `head.len()` octets equal `head`, octet number `head.len()` in
    /// `start..=end`, later octets free.
    RangeV4 { head: Vec<u8>, start: u8, end: u8 },
    /// IPv6: the same on hextets.
    RangeV6 {
        head: Vec<u16>,
        start: u16,
        end: u16,
    },
}

fn bad(pattern: &str) -> AclError {
    AclError::Invalid(format!(
        "Netaddress examine Exception netaddress is {pattern}"
    ))
}

fn parse_exact(text: &str) -> Result<IpAddr, AclError> {
    let text = text.trim();
    text.parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .or_else(|_| text.parse::<Ipv6Addr>().map(IpAddr::V6))
        .map_err(|_| bad(text))
}

impl AddressPattern {
    /// Parses one pattern as RocketMQ does (errors name the pattern).
    pub fn parse(pattern: &str) -> Result<Self, AclError> {
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Ok(Self::Nothing);
        }
        if matches!(pattern, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
            return Ok(Self::Anything);
        }
        if pattern.ends_with('}') {
            return Self::parse_braces(pattern);
        }
        if pattern.contains(',') {
            let set = pattern
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(parse_exact)
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self::Set(set));
        }
        if pattern.contains('*') || pattern.contains('-') {
            return if pattern.contains(':') {
                Self::parse_range_v6(pattern)
            } else {
                Self::parse_range_v4(pattern)
            };
        }
        Ok(Self::Set(vec![parse_exact(pattern)?]))
    }

    /// `192.168.0.{1,2}` or `2001:db8::{1,2}`.
    fn parse_braces(pattern: &str) -> Result<Self, AclError> {
        let open = pattern.find('{').ok_or_else(|| bad(pattern))?;
        let (head, last) = pattern.split_at(open);
        let separator = if pattern.contains(':') { ':' } else { '.' };
        if !head.is_empty() && !head.ends_with(separator) {
            return Err(bad(pattern));
        }
        if separator == '.' && head.split('.').filter(|p| !p.is_empty()).count() < 3 {
            return Err(AclError::Invalid(format!(
                "MultipleRemoteAddressStrategy has got a/some wrong format IP(s) {pattern}"
            )));
        }
        let set = last[1..last.len() - 1]
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|tail| parse_exact(&format!("{head}{}", tail.trim())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Set(set))
    }

    fn parse_range_v4(pattern: &str) -> Result<Self, AclError> {
        let parts: Vec<&str> = pattern.split('.').filter(|p| !p.is_empty()).collect();
        let scope = || {
            AclError::Invalid(format!(
                "Netaddress examine scope Exception netaddress is {pattern}"
            ))
        };
        if parts.len() > 4 || parts.len() < 2 {
            return Err(scope());
        }
        for index in 1..parts.len() {
            let Some((start, end)) = range_part(parts[index], pattern, 10, 255)? else {
                continue;
            };
            let head = parts[..index]
                .iter()
                .map(|p| p.trim().parse::<u8>().map_err(|_| scope()))
                .collect::<Result<Vec<_>, _>>()?;
            // Later parts may only be `*` (RocketMQ ignores them; a number there would
            // silently widen the pattern, so refuse it).
            if parts[index + 1..].iter().any(|p| p.trim() != "*") {
                return Err(scope());
            }
            return Ok(Self::RangeV4 {
                head,
                start: start as u8,
                end: end as u8,
            });
        }
        Err(scope())
    }

    fn parse_range_v6(pattern: &str) -> Result<Self, AclError> {
        let scope = || {
            AclError::Invalid(format!(
                "Netaddress examine scope Exception netaddress is {pattern}"
            ))
        };
        if pattern.contains("::") {
            // RocketMQ expands such heads in its own way; the broker listens on IPv4 only, so
            // no IPv6 peer can match anyway: accept the pattern, match nothing.
            tracing::warn!(
                pattern,
                "IPv6 range pattern with '::' accepted; it matches no peer (the broker listens on IPv4)"
            );
            return Ok(Self::Nothing);
        }
        let parts: Vec<&str> = pattern.split(':').collect();
        for index in 1..parts.len().min(8) {
            let Some((start, end)) = range_part(parts[index], pattern, 16, 0xffff)? else {
                continue;
            };
            let head = parts[..index]
                .iter()
                .map(|p| u16::from_str_radix(p.trim(), 16).map_err(|_| scope()))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self::RangeV6 {
                head,
                start: start as u16,
                end: end as u16,
            });
        }
        Err(scope())
    }

    /// Whether a peer address matches.
    pub fn matches(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        match (self, peer) {
            (Self::Nothing, _) => false,
            (Self::Anything, _) => true,
            (Self::Set(set), _) => set.contains(&peer),
            (Self::RangeV4 { head, start, end }, IpAddr::V4(v4)) => {
                let octets = v4.octets();
                octets.starts_with(head) && (*start..=*end).contains(&octets[head.len()])
            }
            (Self::RangeV6 { head, start, end }, IpAddr::V6(v6)) => {
                let segments = v6.segments();
                segments.starts_with(head) && (*start..=*end).contains(&segments[head.len()])
            }
            _ => false,
        }
    }
}

/// `*` → the whole range, `a-b` → that range, anything else → not a range part.
fn range_part(
    part: &str,
    pattern: &str,
    radix: u32,
    max: u32,
) -> Result<Option<(u32, u32)>, AclError> {
    let part = part.trim();
    if part == "*" {
        return Ok(Some((0, max)));
    }
    let Some((low, high)) = part.split_once('-') else {
        return Ok(None);
    };
    let value = |s: &str| {
        u32::from_str_radix(s.trim(), radix)
            .ok()
            .filter(|v| *v <= max)
    };
    match (value(low), value(high)) {
        (Some(start), Some(end)) if !low.is_empty() && start <= end => Ok(Some((start, end))),
        _ => Err(AclError::Invalid(format!(
            "RangeRemoteAddressStrategy netaddress examine scope Exception value {part} in {pattern}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn matches(pattern: &str, addr: &str) -> bool {
        AddressPattern::parse(pattern).unwrap().matches(ip(addr))
    }

    #[test]
    fn blank_matches_nothing_and_star_everything() {
        assert!(!matches("", "127.0.0.1"));
        assert!(!matches("  ", "127.0.0.1"));
        for star in ["*", "*.*.*.*", "*:*:*:*:*:*:*:*"] {
            assert!(matches(star, "10.1.2.3"));
            assert!(matches(star, "::1"));
        }
    }

    #[test]
    fn exact_and_sets() {
        assert!(matches("192.168.0.1", "192.168.0.1"));
        assert!(!matches("192.168.0.1", "192.168.0.2"));
        assert!(matches("192.168.0.{1,2}", "192.168.0.2"));
        assert!(!matches("192.168.0.{1,2}", "192.168.0.3"));
        assert!(matches("10.0.0.1,10.0.0.9", "10.0.0.9"));
        assert!(!matches("10.0.0.1,10.0.0.9", "10.0.0.2"));
        assert!(matches("2001:db8::1", "2001:0db8:0:0:0:0:0:1"));
        assert!(matches("2001:db8::{1,2}", "2001:db8::2"));
        // An IPv4-mapped IPv6 peer is compared as IPv4.
        assert!(matches("127.0.0.1", "::ffff:127.0.0.1"));
    }

    #[test]
    fn ranges_on_one_part() {
        assert!(matches("192.168.1.1-5", "192.168.1.5"));
        assert!(!matches("192.168.1.1-5", "192.168.1.6"));
        assert!(!matches("192.168.1.1-5", "192.168.2.3"));
        assert!(matches("192.168.*", "192.168.77.1"));
        assert!(!matches("192.168.*", "192.169.0.1"));
        assert!(matches("192.168.*.*", "192.168.3.4"));
        assert!(matches("10.*.*.*", "10.200.0.1"));
        assert!(matches("192.100-150.*.*", "192.120.1.1"));
        assert!(!matches("192.100-150.*.*", "192.151.1.1"));
        assert!(matches("2001:db8:0:1-5:*", "2001:db8:0:3::1"));
        assert!(!matches("2001:db8:0:1-5:*", "2001:db8:0:6::1"));
        assert!(!matches("192.168.*", "2001:db8::1"));
        assert_eq!(
            AddressPattern::parse("fe80::*").unwrap(),
            AddressPattern::Nothing
        );
    }

    #[test]
    fn bad_patterns_are_errors_naming_the_pattern() {
        for pattern in [
            "192.168.1.300",
            "hello",
            "192.168.1.5-1",
            "192.168.1.-5",
            "192.168.1.1-300",
            "192.168.1-2.5",
            "192.{1,2}",
            "10.0.0.1,nope",
        ] {
            let error = AddressPattern::parse(pattern).unwrap_err().to_string();
            assert!(
                error.contains(pattern.split(',').next_back().unwrap()) || error.contains(pattern),
                "{pattern}: {error}"
            );
        }
    }
}
