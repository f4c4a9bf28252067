//! [`Host`]: a host a user's API tokens may be used from, and the rule that matches a requested
//! host against it.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use super::FieldError;

const FIELD: &str = "host";

/// Longest input looked at, in characters, before any Unicode processing: a 253-character name,
/// a scheme, a port and a slash fit with room to spare.
const MAX_INPUT_CHARS: usize = 512;
/// Longest DNS name, in its ASCII form (RFC 1035, without the root dot).
const MAX_NAME_CHARS: usize = 253;
/// Longest DNS label (RFC 1035).
const MAX_LABEL_CHARS: usize = 63;

/// A host, in the canonical form it is stored and compared in.
///
/// Accepted, with surrounding whitespace trimmed:
///
/// - a DNS name: labels of letters, digits and hyphens (1–63 characters, not starting or ending
///   with a hyphen, no underscores, no empty labels, so no trailing dot), at most 253 characters.
///   International names are converted with IDNA (UTS 46) and everything is lower-cased:
///   `Bücher.Example` → `xn--bcher-kva.example`. A single label (`localhost`) is fine.
/// - an IPv4 address in dotted-decimal form (`192.0.2.1`; no leading zeros). A name whose last
///   label is a number is taken as an IPv4 address, as browsers do, and refused when it is not
///   one (`127.1`, `example.123`).
/// - an IPv6 address in brackets (`[2001:DB8:0::1]` → `[2001:db8::1]`, RFC 5952 form; no zone).
/// - a wildcard `*.example.org`: a leading `*.` and then a DNS name of at least two labels. It
///   stands for every name below that domain. A bare `*`, a one-label suffix (`*.com`,
///   `*.localhost`), a `*` anywhere else and a wildcard over an IP address are refused. Public
///   suffixes of two labels (`*.co.uk`) are not recognised and are accepted.
///
/// Any of these may carry a `:port` (1–65535; leading zeros dropped). An `http://` or `https://`
/// origin, optionally with one trailing `/`, is reduced to its host and port, and the scheme's
/// default port (80, 443) is dropped: `https://example.org:443/` → `example.org`. Without a
/// scheme a port is always kept: `example.org:443` stays as it is. Everything else is refused:
/// other schemes, paths, queries, fragments, user information (`user@host`), whitespace or control
/// characters inside, an unbracketed IPv6 address.
///
/// Parsing is idempotent: `Host::parse(h.as_str()) == Ok(h)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    name: Name,
    port: Option<u16>,
    canonical: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Name {
    /// Lower-case ASCII.
    Dns(String),
    /// The domain after `*.`, lower-case ASCII, at least two labels.
    Wildcard(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    /// Parses a host or an origin typed by a person. The error is about the field `host`.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(missing());
        }
        // Bound the work before any Unicode processing.
        if input.chars().nth(MAX_INPUT_CHARS).is_some() {
            return Err(error("A host must be at most 253 characters."));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(error("A host cannot contain spaces or control characters."));
        }
        let (default_port, rest) = strip_scheme(input)?;
        check_no_url_parts(rest)?;
        let (name, port) = split_port(rest)?;
        let name = parse_name(name)?;
        // The scheme's own port says nothing more than the scheme did; written without a scheme,
        // a port is all there is to go by and is kept.
        let port = port.filter(|&p| Some(p) != default_port);
        let mut canonical = match &name {
            Name::Dns(dns) => dns.clone(),
            Name::Wildcard(suffix) => format!("*.{suffix}"),
            Name::V4(ip) => ip.to_string(),
            Name::V6(ip) => format!("[{ip}]"),
        };
        if let Some(port) = port {
            canonical.push_str(&format!(":{port}"));
        }
        Ok(Self {
            name,
            port,
            canonical,
        })
    }

    /// The canonical form, as stored: lower-case ASCII, no scheme, no default port.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// Whether this allowed host admits the `requested` one.
    ///
    /// - `*.example.org` admits every name below `example.org`, at any depth
    ///   (`a.example.org`, `a.b.example.org`), but not `example.org` itself.
    /// - Any other name, and an IP address, admits only itself (exact comparison: an IPv4
    ///   address does not match its IPv4-mapped IPv6 form).
    /// - Without a port, an allowed host admits its host on any port, or on none; with a port,
    ///   only on that port. A requested host without a port (as in `https://example.org`, whose
    ///   default port was dropped) is therefore not admitted by `example.org:443`.
    /// - A requested wildcard is not a real host and is admitted by nothing.
    pub fn matches(&self, requested: &Host) -> bool {
        if self.port.is_some() && self.port != requested.port {
            return false;
        }
        match (&self.name, &requested.name) {
            (Name::Dns(allowed), Name::Dns(name)) => allowed == name,
            (Name::Wildcard(suffix), Name::Dns(name)) => {
                // Below the suffix: a non-empty prefix that ends with a dot.
                name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
            (Name::V4(allowed), Name::V4(ip)) => allowed == ip,
            (Name::V6(allowed), Name::V6(ip)) => allowed == ip,
            _ => false,
        }
    }

    /// The canonical form, by value.
    pub fn into_string(self) -> String {
        self.canonical
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl AsRef<str> for Host {
    fn as_ref(&self) -> &str {
        &self.canonical
    }
}

fn error(message: &str) -> FieldError {
    FieldError::new(FIELD, message)
}

/// Splits off an `http://` or `https://` scheme (and one trailing `/`), returning the scheme's
/// default port.
fn strip_scheme(input: &str) -> Result<(Option<u16>, &str), FieldError> {
    let Some((scheme, rest)) = input.split_once("://") else {
        return Ok((None, input));
    };
    let port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        return Err(error(
            "Only http:// and https:// origins are accepted; or send the host alone, such as \
             example.org.",
        ));
    };
    // `https://example.org/` is how browsers print a bare origin as a URL: the slash is no path.
    Ok((Some(port), rest.strip_suffix('/').unwrap_or(rest)))
}

/// Refuses what a URL may have but a host cannot.
fn check_no_url_parts(rest: &str) -> Result<(), FieldError> {
    match rest
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#' | '@'))
    {
        None => Ok(()),
        Some('@') => Err(error(
            "A host cannot contain user information (name@): send only the host, such as \
             example.org.",
        )),
        Some('?' | '#') => Err(error(
            "A host cannot have a query or fragment: send only the host, such as example.org.",
        )),
        Some(_) => Err(error(
            "A host cannot have a path: send only the host, such as example.org, or an origin, \
             such as https://example.org.",
        )),
    }
}

/// Splits `name:port` and `[v6]:port`.
fn split_port(rest: &str) -> Result<(&str, Option<u16>), FieldError> {
    if rest.starts_with('[') {
        let Some(end) = rest.find(']') else {
            return Err(invalid_ipv6());
        };
        let (name, after) = rest.split_at(end + 1);
        return match after {
            "" => Ok((name, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((name, Some(parse_port(port)?))),
                None => Err(invalid_ipv6()),
            },
        };
    }
    match rest.rsplit_once(':') {
        None => Ok((rest, None)),
        Some((name, _)) if name.contains(':') => Err(error(
            "Put an IPv6 address in brackets, such as [2001:db8::1] or [2001:db8::1]:8443.",
        )),
        Some((name, port)) => Ok((name, Some(parse_port(port)?))),
    }
}

fn parse_port(port: &str) -> Result<u16, FieldError> {
    // `u16::from_str` would also take a leading `+`.
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_port());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(invalid_port()),
        Ok(port) => Ok(port),
    }
}

fn missing() -> FieldError {
    error("Enter a host, such as example.org, or an origin, such as https://example.org.")
}

fn invalid_port() -> FieldError {
    error("The port must be a number from 1 to 65535.")
}

fn invalid_ipv6() -> FieldError {
    error("Enter a valid IPv6 address in brackets, such as [2001:db8::1].")
}

fn wildcard_error() -> FieldError {
    error(
        "A wildcard must be a leading *. followed by a domain of at least two labels, as in \
         *.example.org.",
    )
}

fn parse_name(name: &str) -> Result<Name, FieldError> {
    if name.is_empty() {
        return Err(missing());
    }
    if let Some(inner) = name.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(invalid_ipv6)?;
        // std refuses zone ids (`%eth0`), which name no host outside one machine anyway.
        return inner.parse().map(Name::V6).map_err(|_| invalid_ipv6());
    }
    if let Some(suffix) = name.strip_prefix("*.") {
        if suffix.is_empty() || suffix.contains('*') {
            return Err(wildcard_error());
        }
        let suffix = to_ascii(suffix)?;
        if ends_in_number(&suffix) {
            return Err(error(
                "A wildcard must cover a domain name, such as *.example.org, not an IP address.",
            ));
        }
        // The whole `*.suffix` must still be a DNS name's length.
        check_dns(&suffix, MAX_NAME_CHARS - 2)?;
        if !suffix.contains('.') {
            return Err(wildcard_error());
        }
        return Ok(Name::Wildcard(suffix));
    }
    if name.contains('*') {
        return Err(wildcard_error());
    }
    let ascii = to_ascii(name)?;
    if ends_in_number(&ascii) {
        return ascii.parse().map(Name::V4).map_err(|_| {
            error(
                "Enter a valid IPv4 address, such as 192.0.2.1 (four numbers from 0 to 255 \
                 without leading zeros); a name cannot end in a number.",
            )
        });
    }
    check_dns(&ascii, MAX_NAME_CHARS)?;
    Ok(Name::Dns(ascii))
}

/// The name in lower-case ASCII: lower-cased when it is plain ASCII, converted with UTS 46 when
/// it is international or has punycode labels (which UTS 46 checks decode to a valid name).
fn to_ascii(name: &str) -> Result<String, FieldError> {
    let lower = name.to_ascii_lowercase();
    if lower.is_ascii() && !lower.split('.').any(|label| label.starts_with("xn--")) {
        return Ok(lower);
    }
    // STD3 rules refuse what host names cannot hold (`_`, `/`, `:` and their full-width forms);
    // hyphens and lengths are checked by `check_dns` on the result, the same way for every name,
    // so that a converted name parses again to itself.
    Uts46::new()
        .to_ascii(
            lower.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .map(|ascii| ascii.into_owned())
        .map_err(|_| error("Enter a valid host: this is not a valid international domain name."))
}

/// Whether the last label is a number (decimal or `0x` hex): the WHATWG URL rule for a host
/// that must be read as an IPv4 address.
fn ends_in_number(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or_default();
    if let Some(hex) = last.strip_prefix("0x") {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a lower-case ASCII DNS name.
fn check_dns(name: &str, max_chars: usize) -> Result<(), FieldError> {
    for label in name.split('.') {
        if label.is_empty() {
            return Err(error(
                "Enter a valid host: it has an empty part (a dot at the start or end, or two \
                 dots in a row).",
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(error(
                "Enter a valid host: a name may only contain letters, digits, hyphens and dots \
                 (no underscores).",
            ));
        }
        if label.len() > MAX_LABEL_CHARS {
            return Err(error(
                "Enter a valid host: each part of a name must be at most 63 characters.",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(error(
                "Enter a valid host: parts of a name cannot start or end with a hyphen.",
            ));
        }
    }
    if name.len() > max_chars {
        return Err(error("A host must be at most 253 characters."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(input: &str) -> String {
        match Host::parse(input) {
            Ok(host) => panic!("{input:?} was accepted as {host:?}"),
            Err(e) => {
                assert_eq!(e.field, "host");
                e.message
            }
        }
    }

    fn canonical(input: &str) -> String {
        Host::parse(input)
            .unwrap_or_else(|e| panic!("{input:?} was refused: {}", e.message))
            .into_string()
    }

    fn host(input: &str) -> Host {
        Host::parse(input).unwrap_or_else(|e| panic!("{input:?} was refused: {}", e.message))
    }

    fn admits(allowed: &str, requested: &str) -> bool {
        host(allowed).matches(&host(requested))
    }

    #[test]
    fn dns_names_are_lower_cased_and_trimmed() {
        assert_eq!(canonical("  Example.ORG \n"), "example.org");
        assert_eq!(canonical("localhost"), "localhost");
        assert_eq!(canonical("a-b.c1.example"), "a-b.c1.example");
        assert_eq!(canonical("123.example.org"), "123.example.org");
        assert_eq!(canonical("ab--cd.example"), "ab--cd.example");
    }

    #[test]
    fn international_names_become_punycode() {
        assert_eq!(canonical("b\u{fc}cher.example"), "xn--bcher-kva.example");
        assert_eq!(canonical("B\u{dc}CHER.Example"), "xn--bcher-kva.example");
        assert_eq!(canonical("XN--BCHER-KVA.example"), "xn--bcher-kva.example");
        assert_eq!(canonical("\u{ff45}xample\u{3002}org"), "example.org");
        assert_eq!(
            canonical("*.b\u{fc}cher.example"),
            "*.xn--bcher-kva.example"
        );
        assert!(refused("xn--zz.example").contains("international"));
        assert!(refused("b\u{fc}cher_.example").contains("international"));
        // A full-width solidus is a slash in disguise.
        refused("b\u{fc}cher.example\u{ff0f}path");
    }

    #[test]
    fn dns_names_follow_the_label_rules() {
        assert!(refused("exa_mple.org").contains("no underscores"));
        assert!(refused("example..org").contains("empty part"));
        assert!(refused(".example.org").contains("empty part"));
        assert!(refused("example.org.").contains("empty part"));
        assert!(refused("-example.org").contains("hyphen"));
        assert!(refused("example-.org").contains("hyphen"));
        assert!(refused("exa!mple.org").contains("only contain"));
        canonical(&format!("{}.org", "a".repeat(63)));
        assert!(refused(&format!("{}.org", "a".repeat(64))).contains("at most 63"));
    }

    #[test]
    fn names_of_253_characters_are_accepted_and_254_refused() {
        let name = |last: usize| {
            format!(
                "{}.{}.{}.{}",
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(last)
            )
        };
        assert_eq!(name(61).len(), 253);
        canonical(&name(61));
        canonical(&format!("{}:8443", name(61)));
        assert!(refused(&name(62)).contains("at most 253"));
        assert!(refused(&"a".repeat(600)).contains("at most 253"));
        // A wildcard counts whole: `*.` and at most 251 more.
        assert!(refused(&format!("*.{}", name(60))).contains("at most 253"));
        assert_eq!(canonical(&format!("*.{}", name(59))).len(), 253);
    }

    #[test]
    fn ipv4_addresses_are_kept_exactly() {
        assert_eq!(canonical("192.0.2.1"), "192.0.2.1");
        assert_eq!(canonical("127.0.0.1:8000"), "127.0.0.1:8000");
        assert_eq!(canonical("http://10.0.0.1:80"), "10.0.0.1");
        for bad in [
            "127.1",
            "256.0.0.1",
            "010.0.0.1",
            "1.2.3.4.5",
            "example.123",
            "0x7f.0.0.1",
        ] {
            assert!(refused(bad).contains("IPv4"), "{bad}");
        }
        assert!(refused("1.2.3.0x4").contains("IPv4"));
    }

    #[test]
    fn ipv6_addresses_need_brackets_and_are_compressed() {
        assert_eq!(canonical("[::1]"), "[::1]");
        assert_eq!(canonical("[2001:DB8:0:0:0:0:0:1]"), "[2001:db8::1]");
        assert_eq!(canonical("[2001:db8::1]:8443"), "[2001:db8::1]:8443");
        assert_eq!(canonical("https://[::1]:443"), "[::1]");
        assert_eq!(canonical("[::ffff:192.0.2.1]"), "[::ffff:192.0.2.1]");
        assert!(refused("::1").contains("brackets"));
        assert!(refused("2001:db8::1").contains("brackets"));
        assert!(refused("[::1").contains("IPv6"));
        assert!(refused("[::1]x").contains("IPv6"));
        assert!(refused("[example.org]").contains("IPv6"));
        assert!(refused("[fe80::1%eth0]").contains("IPv6"));
        assert!(refused("[::1]:0").contains("port"));
    }

    #[test]
    fn ports_are_kept_without_a_scheme_and_must_be_valid() {
        assert_eq!(canonical("example.org:8443"), "example.org:8443");
        assert_eq!(canonical("example.org:443"), "example.org:443");
        assert_eq!(canonical("example.org:80"), "example.org:80");
        assert_eq!(canonical("example.org:0080"), "example.org:80");
        assert_eq!(canonical("example.org:65535"), "example.org:65535");
        for bad in [
            "example.org:",
            "example.org:0",
            "example.org:65536",
            "example.org:123456",
            "example.org:+80",
            "example.org:http",
            "example.org:-1",
        ] {
            assert!(refused(bad).contains("port"), "{bad}");
        }
    }

    #[test]
    fn origins_are_reduced_and_default_ports_dropped() {
        assert_eq!(canonical("https://example.org"), "example.org");
        assert_eq!(canonical("https://example.org/"), "example.org");
        assert_eq!(canonical("HTTPS://Example.org:443"), "example.org");
        assert_eq!(canonical("http://example.org:80/"), "example.org");
        assert_eq!(canonical("https://example.org:8443"), "example.org:8443");
        // Another scheme's default port is an ordinary port.
        assert_eq!(canonical("https://example.org:80"), "example.org:80");
        assert_eq!(canonical("http://example.org:443"), "example.org:443");
        assert_eq!(canonical("https://*.example.org"), "*.example.org");
        assert!(refused("ftp://example.org").contains("http"));
        assert!(refused("ws://example.org").contains("http"));
        assert!(refused("https://").contains("Enter a host"));
        assert!(refused("https:///").contains("Enter a host"));
        assert!(refused(":8080").contains("Enter a host"));
    }

    #[test]
    fn anything_but_a_host_is_refused() {
        assert!(refused("").contains("Enter a host"));
        assert!(refused("  \t").contains("Enter a host"));
        assert!(refused("example.org/").contains("path"));
        assert!(refused("example.org/api").contains("path"));
        assert!(refused("https://example.org/api").contains("path"));
        assert!(refused("https://example.org//").contains("path"));
        assert!(refused("//example.org").contains("path"));
        assert!(refused("example.org\\x").contains("path"));
        assert!(refused("https://user@example.org").contains("user information"));
        assert!(refused("user:pass@example.org").contains("user information"));
        assert!(refused("example.org?x=1").contains("query"));
        assert!(refused("https://example.org#top").contains("fragment"));
        assert!(refused("exa mple.org").contains("spaces"));
        assert!(refused("example.org\n:80").contains("control"));
        assert!(refused("example.org\u{a0}x").contains("spaces"));
        assert!(refused("mailto:a").contains("port"));
    }

    #[test]
    fn wildcards_are_a_leading_label_over_a_domain_of_two_labels() {
        assert_eq!(canonical("*.Example.org"), "*.example.org");
        assert_eq!(canonical("*.example.org:8443"), "*.example.org:8443");
        assert_eq!(canonical("*.a.example.org"), "*.a.example.org");
        for bad in [
            "*",
            "*.",
            "*.com",
            "*.localhost",
            "**.example.org",
            "*example.org",
        ] {
            assert!(refused(bad).contains("wildcard"), "{bad}");
        }
        for bad in ["a.*.example.org", "*.*.example.org", "example.*", "*:80"] {
            assert!(refused(bad).contains("wildcard"), "{bad}");
        }
        assert!(refused("*.192.0.2.1").contains("IP address"));
        assert!(refused("*..example.org").contains("empty part"));
        assert!(refused("*.ex_ample.org").contains("underscores"));
    }

    #[test]
    fn errors_never_repeat_the_input() {
        for input in ["secret_thing.example", "secret@example.org", "[secret]"] {
            assert!(!refused(input).contains("secret"));
        }
    }

    #[test]
    fn a_wildcard_admits_names_below_at_any_depth_but_not_the_apex() {
        assert!(admits("*.example.org", "a.example.org"));
        assert!(admits("*.example.org", "a.b.c.example.org"));
        assert!(admits("*.example.org", "https://A.Example.org:8443"));
        assert!(!admits("*.example.org", "example.org"));
        assert!(!admits("*.example.org", "badexample.org"));
        assert!(!admits("*.example.org", "a.example.org.evil.test"));
        assert!(!admits("*.example.org", "example.org.evil.test"));
        assert!(!admits("*.example.org", "*.example.org"));
        assert!(!admits("*.a.example.org", "b.example.org"));
    }

    #[test]
    fn names_and_addresses_admit_only_themselves() {
        assert!(admits("example.org", "example.org"));
        assert!(admits("example.org", "https://EXAMPLE.org/"));
        assert!(!admits("example.org", "a.example.org"));
        assert!(!admits("example.org", "example.com"));
        assert!(admits("192.0.2.1", "192.0.2.1:8080"));
        assert!(!admits("192.0.2.1", "192.0.2.2"));
        assert!(!admits("192.0.2.1", "[::ffff:192.0.2.1]"));
        assert!(admits("[::1]", "[0:0::1]:3000"));
        assert!(!admits("[::1]", "[::2]"));
        assert!(admits("xn--bcher-kva.example", "b\u{fc}cher.example"));
    }

    #[test]
    fn a_port_restricts_and_its_absence_admits_any() {
        assert!(admits("example.org", "example.org:8443"));
        assert!(admits("example.org", "http://example.org"));
        assert!(admits("example.org:8443", "https://example.org:8443"));
        assert!(!admits("example.org:8443", "example.org:8444"));
        assert!(!admits("example.org:8443", "example.org"));
        // The default port was dropped from the origin, so it names no port.
        assert!(!admits("example.org:443", "https://example.org"));
        assert!(admits("example.org:443", "http://example.org:443"));
        assert!(admits("*.example.org:8443", "a.example.org:8443"));
        assert!(!admits("*.example.org:8443", "a.example.org"));
        assert!(admits("[::1]:3000", "[::1]:3000"));
        assert!(!admits("[::1]:3000", "[::1]:3001"));
    }

    fn host_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ ]?((?i:https?)://)?(\\*\\.)?([a-zA-Z0-9\u{e0}-\u{ff}_-]{0,12}\\.){0,3}[a-zA-Z\u{e0}-\u{ff}0-9-]{0,8}(:[0-9]{0,6})?/?",
            any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
            (
                any::<std::net::Ipv6Addr>(),
                proptest::option::of(any::<u16>())
            )
                .prop_map(|(ip, port)| match port {
                    Some(port) => format!("[{ip}]:{port}"),
                    None => format!("[{ip}]"),
                }),
            "[a-z:\\[\\]0-9.*@/?#%]{0,30}",
        ]
    }

    /// DNS names that are always valid: two to four labels, the last not a number.
    fn dns_name() -> impl Strategy<Value = String> {
        "([a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?\\.){1,3}[a-zA-Z]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?"
            // A label starting `xn--` must be valid punycode.
            .prop_filter("no punycode labels", |name| {
                !name.to_ascii_lowercase().split('.').any(|label| label.starts_with("xn--"))
            })
    }

    /// Characters no host may hold inside: whitespace and controls, what starts a path, query,
    /// fragment or user information, a backslash (a path separator to some URL parsers), an
    /// underscore, and a `*` that is not a leading label.
    fn forbidden() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::char::range('\u{0}', '\u{20}'),
            proptest::sample::select(vec![
                '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}', '/', '?', '#', '@', '\\',
                '_', '*', '%', '"', '<', '>', '^', '`', '{', '|', '}',
            ]),
        ]
    }

    /// A canonical host without its `:port`.
    fn without_port(canonical: &str) -> &str {
        match canonical.find(']') {
            Some(end) => &canonical[..=end],
            None => canonical.split(':').next().unwrap_or_default(),
        }
    }

    proptest! {
        #![proptest_config(crate::domain::proptest_config(512))]

        #[test]
        fn never_panics(input in crate::domain::hostile::any_text()) {
            let _ = Host::parse(&input);
        }

        #[test]
        fn huge_inputs_are_refused(input in crate::domain::hostile::huge()) {
            prop_assert!(Host::parse(&input).is_err());
        }

        #[test]
        fn generated_names_are_accepted_lower_cased_with_or_without_an_origin(
            name in dns_name(),
            port in proptest::option::of(1u16..),
        ) {
            let with_port = match port {
                Some(port) => format!("{name}:{port}"),
                None => name.clone(),
            };
            let host = Host::parse(&with_port).map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(host.as_str(), with_port.to_ascii_lowercase());
            // The same host written as an https origin, with a trailing slash.
            let origin = Host::parse(&format!("https://{with_port}/"))
                .map_err(|e| TestCaseError::fail(e.message))?;
            let expected = match port {
                Some(443) | None => name.to_ascii_lowercase(),
                Some(_) => with_port.to_ascii_lowercase(),
            };
            prop_assert_eq!(origin.as_str(), expected);
        }

        #[test]
        fn a_forbidden_character_is_refused_wherever_it_is(
            valid in dns_name(),
            at in any::<proptest::sample::Index>(),
            bad in forbidden(),
        ) {
            let input = crate::domain::hostile::insert_inside(&valid, at, bad);
            prop_assert!(Host::parse(&input).is_err(), "{:?} was accepted", input);
            let origin = format!("https://{input}");
            prop_assert!(Host::parse(&origin).is_err(), "{:?} was accepted", origin);
        }

        #[test]
        fn a_port_restricts_to_itself_and_no_port_admits_every_port(
            name in dns_name(),
            allowed in 1u16..,
            requested in proptest::option::of(1u16..),
        ) {
            let with = |port: Option<u16>| {
                let text = match port {
                    Some(port) => format!("{name}:{port}"),
                    None => name.clone(),
                };
                Host::parse(&text).expect("a generated name parses")
            };
            prop_assert_eq!(
                with(Some(allowed)).matches(&with(requested)),
                requested == Some(allowed)
            );
            prop_assert!(with(None).matches(&with(requested)));
        }

        #[test]
        fn matching_depends_only_on_the_canonical_forms(
            allowed in host_like(),
            requested in host_like(),
        ) {
            if let (Ok(a), Ok(r)) = (Host::parse(&allowed), Host::parse(&requested)) {
                let (a2, r2) = (Host::parse(a.as_str()).unwrap(), Host::parse(r.as_str()).unwrap());
                prop_assert_eq!(a.matches(&r), a2.matches(&r2));
                // A name (not a wildcard) admits nothing but itself, whatever the ports.
                if a.matches(&r) && !a.as_str().starts_with("*.") {
                    prop_assert_eq!(without_port(a.as_str()), without_port(r.as_str()));
                }
            }
        }

        #[test]
        fn canonical_form_is_lower_case_ascii_and_reparses_to_itself(input in host_like()) {
            if let Ok(host) = Host::parse(&input) {
                let text = host.as_str();
                prop_assert!(text.is_ascii());
                prop_assert_eq!(text.to_ascii_lowercase(), text);
                prop_assert!(!text.contains('/'));
                prop_assert!(!text.contains('@'));
                prop_assert_eq!(Host::parse(text), Ok(host.clone()));
                prop_assert_eq!(host.to_string(), text);
            }
        }

        #[test]
        fn a_host_admits_itself_unless_it_is_a_wildcard(input in host_like()) {
            if let Ok(host) = Host::parse(&input) {
                prop_assert_eq!(host.matches(&host), !host.as_str().starts_with("*."));
            }
        }

        #[test]
        fn a_wildcard_admits_every_name_below_its_domain_but_never_the_domain(
            sub in "[a-z0-9]{1,10}(\\.[a-z0-9]([a-z0-9-]{0,5}[a-z0-9])?)?",
            domain in "[a-z][a-z0-9-]{0,10}[a-z0-9]\\.[a-z]{2,6}",
            port in proptest::option::of(1u16..),
        ) {
            let suffix = match port {
                Some(port) => format!("{domain}:{port}"),
                None => domain.clone(),
            };
            let wildcard = Host::parse(&format!("*.{suffix}")).unwrap();
            let below = Host::parse(&format!("{sub}.{suffix}")).unwrap();
            let apex = Host::parse(&suffix).unwrap();
            prop_assert!(wildcard.matches(&below));
            prop_assert!(!wildcard.matches(&apex));
        }
    }
}
