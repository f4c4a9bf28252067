//! The host parser and matcher on arbitrary input (`cargo fuzz run host`).
//!
//! The whole input, as text, is parsed as an allowed host; the input split at its first line
//! break is parsed as an allowed host and a requested one, and matched. Nothing may panic, and
//! what parses must be canonical: lower-case printable ASCII with nothing of a URL but the host
//! and port, parsing again to itself, admitting itself unless it is a wildcard, and a name
//! admitting only itself.
#![no_main]

use authpool::domain::Host;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_one(text);
    if let Some((allowed, requested)) = text.split_once('\n') {
        check_pair(allowed, requested);
    }
});

fn check_one(text: &str) -> Option<Host> {
    let host = Host::parse(text).ok()?;
    let canonical = host.as_str();
    assert!(
        canonical.bytes().all(|b| b.is_ascii_graphic()),
        "{canonical:?}"
    );
    assert_eq!(canonical, canonical.to_ascii_lowercase());
    assert!(
        !canonical.contains(['/', '\\', '?', '#', '@', '%']),
        "{canonical:?}"
    );
    assert!(canonical.len() <= 253 + 6, "{canonical:?}");
    assert_eq!(
        Host::parse(canonical).as_ref(),
        Ok(&host),
        "{text:?} is not idempotent"
    );
    assert_eq!(host.matches(&host), !canonical.starts_with("*."));
    Some(host)
}

fn check_pair(allowed: &str, requested: &str) {
    let (Some(allowed), Some(requested)) = (check_one(allowed), check_one(requested)) else {
        return;
    };
    if !allowed.matches(&requested) {
        return;
    }
    let (allowed, requested) = (allowed.as_str(), requested.as_str());
    assert!(
        !requested.starts_with("*."),
        "a wildcard admitted as a host"
    );
    match allowed.strip_prefix("*.") {
        // Strictly below the wildcard's domain.
        Some(suffix) => {
            let name = without_port(requested);
            let domain = without_port(suffix);
            assert!(
                name.len() > domain.len() + 1 && name.ends_with(&format!(".{domain}")),
                "{allowed} admitted {requested}"
            );
        }
        None => assert_eq!(
            without_port(allowed),
            without_port(requested),
            "{allowed} admitted {requested}"
        ),
    }
}

/// A canonical host without its `:port`.
fn without_port(canonical: &str) -> &str {
    match canonical.find(']') {
        Some(end) => &canonical[..=end],
        None => canonical.split(':').next().unwrap_or_default(),
    }
}
