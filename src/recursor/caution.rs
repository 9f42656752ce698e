//! Which name-server addresses a resolver using the public root must not query.
//!
//! With the embedded root hints, an answer from the internet that points a name server at a
//! loopback, private, link-local or otherwise non-public address is ignored: following it would let
//! any domain owner make us send queries into the local network (to the router, to services on
//! 127.0.0.1). This is PowerDNS Recursor's `dont-query` default list, applied the same way (the
//! address is never queried); unbound's default only refuses loopback (`do-not-query-localhost`),
//! which leaves the private ranges open. With root hints given explicitly (a test hierarchy on
//! 127.0.0.0/8, a private root) no address is refused: the operator chose the network.

use std::net::IpAddr;

/// True when `ip` is in PowerDNS Recursor's default `dont-query` set: 127.0.0.0/8, 10.0.0.0/8,
/// 100.64.0.0/10, 169.254.0.0/16, 192.168.0.0/16, 172.16.0.0/12, ::1/128, fc00::/7, fe80::/10,
/// 0.0.0.0/8, 192.0.0.0/24, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 240.0.0.0/4, ::/96,
/// ::ffff:0:0/96, 100::/64, 2001:db8::/32 (and the IPv4 broadcast and multicast addresses).
pub fn dont_query(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xC0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 192 && o[1] == 0 && o[2] == 2)
                || (o[0] == 198 && o[1] == 51 && o[2] == 100)
                || (o[0] == 203 && o[1] == 0 && o[2] == 113)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return dont_query(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xFE00) == 0xFC00
                || (s[0] & 0xFFC0) == 0xFE80
                || s[..6].iter().all(|&x| x == 0)
                || (s[0] == 0x0100 && s[1..4].iter().all(|&x| x == 0))
                || (s[0] == 0x2001 && s[1] == 0x0DB8)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_are_refused_public_addresses_are_not() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "0.1.2.3",
            "192.0.2.1",
            "240.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "::",
        ] {
            assert!(dont_query(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "198.41.0.4",
            "8.8.8.8",
            "2001:503:ba3e::2:30",
            "100.128.0.1",
        ] {
            assert!(!dont_query(good.parse().unwrap()), "{good}");
        }
    }
}
