//! Where Manifold may send requests it makes for tenants (OpenAPI calls, document fetches):
//! link-local and cloud-metadata addresses are refused unless allowed, since that is where
//! cloud instance credentials are served. The gateway checks the addresses it connects to,
//! the operator those it fetches from; both with this one rule.

use std::net::IpAddr;

/// Where requests made for tenants may go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Egress {
    /// Allow link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10,
    /// fd00:ec2::254), refused by default: they are where cloud credentials live.
    pub allow_link_local: bool,
}

impl Egress {
    /// Why `ip` may not be called, if it may not.
    pub fn refuses(self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_link_local {
            return None;
        }
        // Alibaba Cloud's metadata service lives outside 169.254/16.
        let metadata_v4 = |v4: std::net::Ipv4Addr| v4.is_link_local() || v4.octets() == [100, 100, 100, 200];
        let link_local = match ip {
            IpAddr::V4(v4) => metadata_v4(v4),
            IpAddr::V6(v6) => {
                let [a, b, _, _, _, _, c, d] = v6.segments();
                let embedded = std::net::Ipv4Addr::from(((c as u32) << 16) | d as u32);
                // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64
                // (64:ff9b::a.b.c.d) forms reach the same IPv4 address.
                let wraps_v4 = v6.to_ipv4_mapped().is_some()
                    || v6.segments()[..6] == [0; 6]
                    || (a == 0x64 && b == 0xff9b && v6.segments()[2..6] == [0; 4]);
                (wraps_v4 && metadata_v4(embedded))
                    || (a & 0xffc0) == 0xfe80
                    || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            }
        };
        link_local.then_some("a link-local or cloud-metadata address (allow with --allow-link-local-upstreams)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_addresses_are_refused_unless_allowed() {
        let strict = Egress::default();
        for ip in [
            "169.254.169.254",
            "100.100.100.200",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:169.254.1.1",
            "::a9fe:a9fe",
            "64:ff9b::169.254.169.254",
        ] {
            assert!(strict.refuses(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "93.184.216.34", "64:ff9b::8.8.8.8", "2001:db8::1"] {
            assert!(strict.refuses(ip.parse().unwrap()).is_none(), "{ip}");
        }
        assert!(Egress { allow_link_local: true }.refuses("169.254.169.254".parse().unwrap()).is_none());
    }
}
