//! RSA-2048 key material: generating a key pair, and the public JWK that publishes it.

use aws_lc_rs::{
    digest,
    encoding::{AsDer, Pkcs8V1Der},
    error::Unspecified,
    rsa::{KeyPair, KeySize, PublicKeyComponents},
    signature::KeyPair as _,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};

/// The only JWS algorithm authpool signs with: what Cognito uses, so existing verifiers work.
pub const ALGORITHM: &str = "RS256";

/// A freshly generated key pair, in the form it is stored.
pub(crate) struct GeneratedKey {
    /// Unencrypted PKCS#8 DER of the private key.
    pub pkcs8: Vec<u8>,
    pub jwk: PublicJwk,
}

/// Generates an RSA-2048 key pair. Slow (tens of milliseconds): call it off the async workers.
pub(crate) fn generate() -> Result<GeneratedKey, Unspecified> {
    let pair = KeyPair::generate(KeySize::Rsa2048)?;
    let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&pair)?.as_ref().to_vec();
    Ok(GeneratedKey {
        pkcs8,
        jwk: PublicJwk::of(&pair),
    })
}

/// The public half of an RSA signing key, as the members of its JWK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PublicJwk {
    /// The RFC 7638 thumbprint of the key: derived from its content, so two keys never share one.
    pub kid: String,
    /// Modulus, base64url without padding.
    pub n: String,
    /// Public exponent, base64url without padding.
    pub e: String,
}

/// The members of a stored JWK that matter; anything else is ignored.
#[derive(Deserialize)]
struct StoredJwk {
    kty: String,
    kid: String,
    n: String,
    e: String,
    #[serde(default)]
    alg: Option<String>,
}

impl PublicJwk {
    /// The public key of `pair`.
    pub fn of(pair: &KeyPair) -> Self {
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        Self::from_components(&components.n, &components.e)
    }

    /// The key with modulus `n` and exponent `e` (big-endian bytes), named by its thumbprint.
    pub fn from_components(n: &[u8], e: &[u8]) -> Self {
        let n = URL_SAFE_NO_PAD.encode(n);
        let e = URL_SAFE_NO_PAD.encode(e);
        Self {
            kid: thumbprint(&n, &e),
            n,
            e,
        }
    }

    /// Reads a JWK stored by [`PublicJwk::to_json`]. `None` unless it is an RS256 RSA key.
    pub fn parse(text: &str) -> Option<Self> {
        let stored: StoredJwk = serde_json::from_str(text).ok()?;
        let algorithm_ok = stored.alg.as_deref().is_none_or(|alg| alg == ALGORITHM);
        (stored.kty == "RSA" && algorithm_ok).then_some(Self {
            kid: stored.kid,
            n: stored.n,
            e: stored.e,
        })
    }

    /// The JWK as published at `/.well-known/jwks.json`.
    pub fn to_json(&self) -> Value {
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
            "n": self.n,
            "e": self.e,
        })
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url): the required members in lexicographic order,
/// no whitespace.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_the_rfc_7638_thumbprint() {
        // The example of RFC 7638, section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn stored_jwks_round_trip_and_foreign_ones_are_refused() {
        let jwk = PublicJwk::from_components(&[0xc5; 256], &[1, 0, 1]);
        assert_eq!(jwk.e, "AQAB");
        assert_eq!(
            PublicJwk::parse(&jwk.to_json().to_string()),
            Some(jwk.clone())
        );

        let mut ec = jwk.to_json();
        ec["kty"] = "EC".into();
        assert_eq!(PublicJwk::parse(&ec.to_string()), None);
        let mut hs = jwk.to_json();
        hs["alg"] = "HS256".into();
        assert_eq!(PublicJwk::parse(&hs.to_string()), None);
        assert_eq!(PublicJwk::parse("not json"), None);
    }
}
