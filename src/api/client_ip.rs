//! Who the client is behind a reverse proxy. The TCP peer is the client unless it is one of the
//! configured trusted proxies (`AUTHPOOL_TRUSTED_PROXIES`); only then are `X-Forwarded-For` (or,
//! without it, `Forwarded: for=`) read, from the right: the right-most address that is not itself
//! a trusted proxy is the client. Everything to its left was written by the client and is
//! ignored, so no client can pick its own rate-limit bucket by sending these headers.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use poem::http::{HeaderMap, HeaderName, header};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address (`127.0.0.1`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network = addr
            .parse::<IpAddr>()
            .map(canonical)
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0-{max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose forwarding headers are believed; empty by default (none are).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Reads a comma-separated list of addresses and CIDR blocks.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy and says otherwise.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        // One proxy writes one of the two; X-Forwarded-For is by far the more common.
        let chain: Vec<&str> = if headers.contains_key(&X_FORWARDED_FOR) {
            list(headers, &X_FORWARDED_FOR).collect()
        } else {
            list(headers, &header::FORWARDED)
                .filter_map(forwarded_for)
                .collect()
        };
        // From the right: skip our own proxies; the first other address is the client. An entry
        // that is not an address (garbage, `unknown`, an obfuscated name) ends the walk: nothing
        // to its left can be attributed, so the last hop known is taken.
        let mut client = peer;
        for entry in chain.iter().rev() {
            let Some(ip) = parse_hop(entry) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(Cidr::to_string).collect();
        f.write_str(&items.join(","))
    }
}

/// An IPv4 address written as IPv6 (`::ffff:1.2.3.4`, as dual-stack sockets report) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Every comma-separated item of every occurrence of a header, left to right.
fn list<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
}

/// The `for=` value of one `Forwarded` element (RFC 7239), quotes removed; `""` without one, so
/// that such an element still counts as an unknown hop.
fn forwarded_for(element: &str) -> Option<&str> {
    Some(
        element
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
            .map_or("", |(_, value)| value.trim().trim_matches('"')),
    )
}

/// One hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:5678`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<Ipv6Addr>().ok())
        .map(|ip| canonical(IpAddr::V6(ip)))
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn client(trusted: &str, peer: &str, pairs: &[(&str, &str)]) -> IpAddr {
        TrustedProxies::parse(trusted)
            .unwrap()
            .client_ip(Some(ip(peer)), &headers(pairs))
            .unwrap()
    }

    #[test]
    fn cidr_blocks_and_single_addresses() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains(ip("10.1.255.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6");
        assert!(!block.contains(ip("2001:db8::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.7")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_blocks_are_refused() {
        for text in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "example.org",
            "10.0.0",
            "*",
        ] {
            assert!(text.parse::<Cidr>().is_err(), "{text}");
        }
        assert!(TrustedProxies::parse("10.0.0.1, nonsense").is_err());
        assert_eq!(
            TrustedProxies::parse(" 10.0.0.0/8 ,, ::1 ")
                .unwrap()
                .to_string(),
            "10.0.0.0/8,::1/128"
        );
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }

    #[test]
    fn a_spoofed_header_from_an_untrusted_peer_is_ignored() {
        let spoofed = [("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")];
        assert_eq!(client("", "203.0.113.9", &spoofed), ip("203.0.113.9"));
        assert_eq!(
            client("10.0.0.0/8", "203.0.113.9", &spoofed),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_address_is_the_client() {
        // The client sent "1.1.1.1" itself; the proxy appended the address it saw.
        let xff = [("x-forwarded-for", "1.1.1.1, 198.51.100.7")];
        assert_eq!(client("10.0.0.1", "10.0.0.1", &xff), ip("198.51.100.7"));
        // Two proxies of ours in a row.
        let chain = [("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.2")];
        assert_eq!(
            client("10.0.0.0/24", "10.0.0.1", &chain),
            ip("198.51.100.7")
        );
        // The chain split over two header lines reads as one list.
        let split = [
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.7, 10.0.0.2"),
        ];
        assert_eq!(
            client("10.0.0.0/24", "10.0.0.1", &split),
            ip("198.51.100.7")
        );
        // Every hop trusted: the left-most is the client.
        let internal = [("x-forwarded-for", "10.0.0.5, 10.0.0.2")];
        assert_eq!(client("10.0.0.0/24", "10.0.0.1", &internal), ip("10.0.0.5"));
        // A trusted peer that forwards nothing is the client.
        assert_eq!(client("10.0.0.1", "10.0.0.1", &[]), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let forwarded = [(
            "forwarded",
            "for=1.1.1.1;proto=https, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
        )];
        assert_eq!(
            client("10.0.0.1", "10.0.0.1", &forwarded),
            ip("2001:db8:cafe::17")
        );
        let v4_port = [("forwarded", "for=\"198.51.100.7:8080\"")];
        assert_eq!(client("10.0.0.1", "10.0.0.1", &v4_port), ip("198.51.100.7"));
        // With both, X-Forwarded-For wins.
        let both = [
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=1.1.1.1"),
        ];
        assert_eq!(client("10.0.0.1", "10.0.0.1", &both), ip("198.51.100.7"));
    }

    #[test]
    fn ipv6_peers_and_hops() {
        let xff = [("x-forwarded-for", "2001:db8::1, [2001:db8::2]:443")];
        assert_eq!(client("::1", "::1", &xff), ip("2001:db8::2"));
        // A dual-stack socket reports an IPv4 proxy as ::ffff:a.b.c.d.
        let xff = [("x-forwarded-for", "198.51.100.7")];
        assert_eq!(
            client("10.0.0.1", "::ffff:10.0.0.1", &xff),
            ip("198.51.100.7")
        );
        assert_eq!(client("", "::ffff:198.51.100.7", &[]), ip("198.51.100.7"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_known_hop() {
        let garbage = [("x-forwarded-for", "1.1.1.1, not-an-ip")];
        assert_eq!(client("10.0.0.1", "10.0.0.1", &garbage), ip("10.0.0.1"));
        let left = [("x-forwarded-for", "<script>, 198.51.100.7")];
        assert_eq!(client("10.0.0.1", "10.0.0.1", &left), ip("198.51.100.7"));
        let unknown = [("forwarded", "for=unknown")];
        assert_eq!(client("10.0.0.1", "10.0.0.1", &unknown), ip("10.0.0.1"));
        let hidden = [("forwarded", "for=1.1.1.1, for=_hidden, for=10.0.0.2")];
        assert_eq!(client("10.0.0.0/24", "10.0.0.1", &hidden), ip("10.0.0.2"));
        let no_for = [("forwarded", "proto=https")];
        assert_eq!(client("10.0.0.1", "10.0.0.1", &no_for), ip("10.0.0.1"));
        let empty = [("x-forwarded-for", "")];
        assert_eq!(client("10.0.0.1", "10.0.0.1", &empty), ip("10.0.0.1"));
    }

    #[test]
    fn an_unknown_peer_stays_unknown() {
        let trusted = TrustedProxies::parse("0.0.0.0/0").unwrap();
        let xff = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(trusted.client_ip(None, &xff), None);
    }
}
