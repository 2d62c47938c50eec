//! Who a client is, as far as its network address tells: the address in one canonical form,
//! and the key every per-client budget counts it under.

use std::net::{IpAddr, Ipv6Addr};

/// The canonical form of an address: an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a
/// dual-stack listener reports for an IPv4 client) is the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The key a client's budgets count under: an IPv4 address itself, an IPv6 address's network
/// of `ipv6_prefix` bits (one /64 is one subscriber, who holds 2^64 addresses). The address is
/// made canonical first.
pub fn network_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        assert_eq!(canonical(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(network_key(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
    }

    #[test]
    fn ipv6_clients_count_per_network() {
        assert_eq!(
            network_key(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            network_key(ip("2001:db8:1:2::1"), 64),
            network_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 64)
        );
        assert_ne!(
            network_key(ip("2001:db8:1:2::1"), 64),
            network_key(ip("2001:db8:1:3::1"), 64)
        );
        assert_eq!(network_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(network_key(ip("2001:db8::1"), 1), ip("::"));
    }

    #[test]
    fn ipv4_addresses_are_kept_whole() {
        assert_eq!(network_key(ip("198.51.100.23"), 64), ip("198.51.100.23"));
    }
}
