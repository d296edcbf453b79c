//! The endpoints a plugin may send a request to (`upstreams = [...]` under
//! `[plugins.NAME]`): patterns `http://HOST[:PORT|:*]` where HOST is a name (matched
//! exactly, without case), an IP address, or an IPv4/IPv6 network in CIDR form
//! (`10.0.0.0/8`, `[fd00::]/8`). No port means port 80; `*` any port. A network
//! matches only endpoints written as IP addresses: a name is never resolved to be
//! checked against a network, so DNS cannot move a target into or out of the grant.
//!
//! This module only decides; the plugin runtime refuses the request before any
//! connection is made.

use std::net::IpAddr;

use crate::upstream::Endpoint;

/// One allowed host (name, address or network) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPattern {
    host: Host,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Network(IpAddr, u8),
}

impl EndpointPattern {
    /// Parses `http://HOST[:PORT|:*]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("http://")
            .ok_or("an upstream pattern starts with http://")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // A port is the part after the last ':' that is not inside [..] and not part of
        // a bare IPv6 address (which must then be written in brackets).
        let (host, port) = match rest.rfind(':') {
            Some(i)
                if !rest[i..].contains(']')
                    && (rest.starts_with('[') || !rest[..i].contains(':')) =>
            {
                (&rest[..i], Some(&rest[i + 1..]))
            }
            _ => (rest, None),
        };
        let port = match port {
            None => Some(80),
            Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| format!("{p:?} is not a port (1-65535) or *"))?,
            ),
        };
        let (address, prefix) = match host.split_once('/') {
            Some((address, bits)) => (address, Some(bits)),
            None => (host, None),
        };
        let address = address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(address);
        if address.is_empty() {
            return Err("the pattern has no host".into());
        }
        let host = match (address.parse::<IpAddr>(), prefix) {
            (Ok(ip), prefix) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits = match prefix {
                    None => max,
                    Some(bits) => bits
                        .parse::<u8>()
                        .ok()
                        .filter(|&b| b <= max)
                        .ok_or_else(|| format!("{bits:?} is not a prefix length (0-{max})"))?,
                };
                Host::Network(ip, bits)
            }
            (Err(_), Some(_)) => return Err(format!("{address:?} is not an IP network")),
            (Err(_), None) => {
                if !address
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    return Err(format!("{address:?} is not a host name or IP address"));
                }
                Host::Name(address.to_ascii_lowercase())
            }
        };
        Ok(Self { host, port })
    }

    /// Whether `endpoint` is inside this pattern.
    pub fn allows(&self, endpoint: &Endpoint) -> bool {
        // Patterns are http:// only: an https:// endpoint is reached through a
        // granted service, never through a pattern.
        if endpoint.is_https() {
            return false;
        }
        let port = endpoint.authority.port_u16().unwrap_or(80);
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = endpoint.authority.host();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match (&self.host, literal.parse::<IpAddr>()) {
            (Host::Network(network, bits), Ok(ip)) => in_network(ip, *network, *bits),
            (Host::Name(name), Err(_)) => name.eq_ignore_ascii_case(host),
            _ => false,
        }
    }
}

fn in_network(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The patterns granted to one plugin.
#[derive(Debug, Clone, Default)]
pub struct Allowlist(Vec<EndpointPattern>);

impl Allowlist {
    /// The allowlist of `patterns`.
    pub fn new(patterns: Vec<EndpointPattern>) -> Self {
        Self(patterns)
    }

    /// Whether some pattern allows `endpoint`.
    pub fn allows(&self, endpoint: &Endpoint) -> bool {
        self.0.iter().any(|p| p.allows(endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(pattern: &str, endpoint: &str) -> bool {
        EndpointPattern::parse(pattern)
            .unwrap()
            .allows(&Endpoint::parse(endpoint).unwrap())
    }

    #[test]
    fn hosts_addresses_and_networks() {
        assert!(allows("http://127.0.0.1:*", "http://127.0.0.1:9000"));
        assert!(!allows("http://127.0.0.1:*", "http://127.0.0.2:9000"));
        assert!(allows("http://10.0.0.0/8:*", "http://10.200.3.4:81"));
        assert!(!allows("http://10.0.0.0/8:*", "http://11.0.0.1:81"));
        assert!(allows("http://10.0.0.0/8", "http://10.1.1.1"));
        assert!(
            !allows("http://10.0.0.0/8", "http://10.1.1.1:8080"),
            "no port is 80"
        );
        assert!(allows("http://10.0.0.0/8:8080", "http://10.1.1.1:8080"));
        assert!(allows("http://Svc.Local:9000", "http://svc.local:9000"));
        assert!(!allows(
            "http://svc.local:9000",
            "http://svc.local.evil:9000"
        ));
        assert!(allows("http://[::1]:*", "http://[::1]:9000"));
        assert!(allows("http://[fd00::]/8:*", "http://[fd12::1]:9000"));
        assert!(!allows("http://[fd00::]/8:*", "http://10.0.0.1:9000"));
        assert!(allows("http://0.0.0.0/0:*", "http://1.2.3.4:5"));
    }

    #[test]
    fn a_name_never_matches_a_network() {
        assert!(!allows("http://127.0.0.0/8:*", "http://localhost:9000"));
        assert!(!allows("http://localhost:*", "http://127.0.0.1:9000"));
        assert!(
            !allows("http://127.0.0.1:*", "https://127.0.0.1:9000"),
            "https:// endpoints only through a granted service"
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "127.0.0.1:9000",
            "https://x:1",
            "http://:80",
            "http://x:0",
            "http://x:99999",
            "http://x:y",
            "http://10.0.0.0/33:*",
            "http://name/8:*",
            "http://a_b:1",
        ] {
            assert!(EndpointPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
