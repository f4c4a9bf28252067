//! The parsed signing keys of one moment: the key that signs, and every key still published.
//!
//! A ring is immutable; reloading builds a new one and swaps it in, so a request works with one
//! consistent set of keys and no lock is held while signing or verifying.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use aws_lc_rs::{rand::SystemRandom, rsa::KeyPair, signature::RSA_PKCS1_SHA256};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use entity::signing_key;
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize, de::IgnoredAny};
use serde_json::{Value, json};

use super::{
    jwt::TokenError,
    key_material::{ALGORITHM, PublicJwk},
};

/// Longer tokens than this are refused unparsed: ours are about 1 KiB, and nothing legitimate
/// comes close, so oversized input costs no decoding work.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why the stored keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RingError {
    #[error("no active signing key in the database")]
    NoActiveKey,
    #[error("signing key {kid} cannot be used: {reason}")]
    BadSigningKey { kid: String, reason: &'static str },
}

/// The key that signs: parsed once, with its encoded JWS header ready to prepend.
pub(crate) struct Signer {
    kid: String,
    pair: KeyPair,
    /// `base64url(header) + "."`: the same for every token this key signs.
    header_dot: String,
}

impl Signer {
    /// Parses the stored private key and checks it matches the stored public JWK.
    fn parse(row: &signing_key::Model) -> Result<Self, RingError> {
        let bad = |reason| RingError::BadSigningKey {
            kid: row.kid.clone(),
            reason,
        };
        if row.algorithm != ALGORITHM {
            return Err(bad("unsupported algorithm"));
        }
        let pair = KeyPair::from_pkcs8(&row.private_key).map_err(|_| bad("invalid PKCS#8"))?;
        let derived = PublicJwk::of(&pair);
        if PublicJwk::parse(&row.public_jwk).as_ref() != Some(&derived) || derived.kid != row.kid {
            return Err(bad("public JWK does not match the private key"));
        }
        let header = serde_json::to_vec(&json!({ "alg": ALGORITHM, "kid": row.kid }))
            .map_err(|_| bad("header"))?;
        let mut header_dot = URL_SAFE_NO_PAD.encode(header);
        header_dot.push('.');
        Ok(Self {
            kid: row.kid.clone(),
            pair,
            header_dot,
        })
    }

    /// `header.payload.signature`, each part base64url without padding.
    fn sign<C: Serialize>(&self, claims: &C) -> String {
        let payload = serde_json::to_vec(claims).expect("token claims serialize to JSON");
        let modulus_len = self.pair.public_modulus_len();
        let mut token = String::with_capacity(
            self.header_dot.len() + (payload.len() + modulus_len) * 4 / 3 + 8,
        );
        token.push_str(&self.header_dot);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let mut signature = vec![0; modulus_len];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing with a validated key and a buffer of the modulus length");
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        token
    }
}

/// A key that verifies tokens and appears in the JWKS.
struct PublishedKey {
    jwk: PublicJwk,
    decoding: DecodingKey,
    created_at: DateTime<Utc>,
    /// When the key stops being published; `None` while it is not retired.
    until: Option<DateTime<Utc>>,
}

impl PublishedKey {
    fn parse(row: &signing_key::Model, retention: TimeDelta) -> Option<Self> {
        let jwk = PublicJwk::parse(&row.public_jwk)?;
        if row.algorithm != ALGORITHM || jwk.kid != row.kid {
            return None;
        }
        let decoding = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).ok()?;
        Some(Self {
            jwk,
            decoding,
            created_at: row.created_at,
            // Overflow means "so far away it never comes": keep publishing.
            until: row
                .retired_at
                .and_then(|retired| retired.checked_add_signed(retention)),
        })
    }

    fn is_published(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// The fields of a JWS header that verification looks at; anything else is ignored.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Extensions the signer says must be understood: authpool understands none.
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// The signing key and every published key, parsed.
pub(crate) struct KeyRing {
    signer: Arc<Signer>,
    /// Newest first, which is also the JWKS order.
    published: Vec<PublishedKey>,
    /// Tokens this ring verified lately (see [`Verified`]). A new ring starts empty, so a key
    /// set that changed is never answered from here.
    verified: Verified,
}

/// Tokens that passed [`KeyRing::verify`], by SHA-256 of the whole token, with their claims.
///
/// An app presents the same access token on every call until it refreshes; its RSA signature
/// check was the largest single cost of an authenticated request (~15 % of the server's time in
/// the load benchmark's GET). A token's signature and claims cannot change, so a repeat needs
/// only what can: that the token has not expired and its key is still published, both checked
/// on every hit. Revocation is not decided here: the session is still read on every request.
/// Bounded: when full it is emptied, at the cost of one verification per token.
#[derive(Default)]
struct Verified(Mutex<HashMap<[u8; 32], Passed>>);

struct Passed {
    claims: Value,
    /// The token's `exp`, in seconds since the epoch.
    exp: i64,
    /// Index of its key in `published`.
    key: usize,
}

/// Enough for the tokens in use on a busy replica; at most a few MB of claims.
const VERIFIED_CAPACITY: usize = 4096;

impl Verified {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Passed>> {
        // Nothing panics while holding it; a poisoned map is still a map.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl KeyRing {
    /// Builds a ring from stored rows (in any order). The signer is the newest non-retired key
    /// by `(created_at, kid)`, so replicas reading the same rows agree on it. `retention` is how
    /// long a retired key stays published. A signer already parsed in `previous` is reused.
    pub fn build(
        rows: &[signing_key::Model],
        retention: TimeDelta,
        now: DateTime<Utc>,
        previous: Option<&KeyRing>,
    ) -> Result<Self, RingError> {
        let newest_active = rows
            .iter()
            .filter(|row| row.retired_at.is_none())
            .max_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
            .ok_or(RingError::NoActiveKey)?;
        let signer = match previous {
            Some(ring) if ring.signer.kid == newest_active.kid => ring.signer.clone(),
            _ => Arc::new(Signer::parse(newest_active)?),
        };

        let mut published: Vec<PublishedKey> = rows
            .iter()
            .filter_map(|row| {
                let key = PublishedKey::parse(row, retention);
                if key.is_none() {
                    tracing::warn!(kid = %row.kid, "skipping a stored signing key that cannot be parsed");
                }
                key
            })
            .filter(|key| key.is_published(now))
            .collect();
        published.sort_by(|a, b| (b.created_at, &b.jwk.kid).cmp(&(a.created_at, &a.jwk.kid)));
        Ok(Self {
            signer,
            published,
            verified: Verified::default(),
        })
    }

    /// The `kid` of the key that signs.
    pub fn signing_kid(&self) -> &str {
        &self.signer.kid
    }

    /// Signs `claims` with the current key.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        self.signer.sign(claims)
    }

    /// `{"keys": [...]}`: every key published at `now`, newest first.
    pub fn jwks(&self, now: DateTime<Utc>) -> Value {
        let keys: Vec<Value> = self
            .published
            .iter()
            .filter(|key| key.is_published(now))
            .map(|key| key.jwk.to_json())
            .collect();
        json!({ "keys": keys })
    }

    /// Checks the header, the signature with the key named by `kid`, and the claims `validation`
    /// covers (`exp`, `iss`, required claims). Returns the claims, still untyped. A ring is used
    /// with one `validation` only (its key store's): a token it verified before is answered
    /// from [`Verified`] while it has not expired and its key is published.
    pub fn verify(
        &self,
        token: &str,
        validation: &Validation,
        now: DateTime<Utc>,
    ) -> Result<Value, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let digest = token_digest(token);
        if let Some(passed) = self.verified.lock().get(&digest)
            && now.timestamp() < passed.exp
            && self.published[passed.key].is_published(now)
        {
            return Ok(passed.claims.clone());
        }
        let (claims, key) = self.verify_fully(token, validation, now)?;
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            let mut verified = self.verified.lock();
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            let claims = claims.clone();
            verified.insert(digest, Passed { claims, exp, key });
        }
        Ok(claims)
    }

    /// [`Self::verify`] without [`Verified`]; also returns the index of the key that verified.
    fn verify_fully(
        &self,
        token: &str,
        validation: &Validation,
        now: DateTime<Utc>,
    ) -> Result<(Value, usize), TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice::<RawHeader>(&json).ok())
            .ok_or(TokenError::Malformed)?;
        // Checked before any key is looked at: `none`, HMAC keyed with the public key, or another
        // RSA digest are refused whatever the rest of the token says.
        if header.alg != ALGORITHM {
            return Err(TokenError::WrongAlgorithm);
        }
        if header.crit.is_some() {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let index = self
            .published
            .iter()
            .position(|key| key.jwk.kid == kid && key.is_published(now))
            .ok_or(TokenError::UnknownKey)?;
        jsonwebtoken::decode::<Value>(token, &self.published[index].decoding, validation)
            .map(|data| (data.claims, index))
            .map_err(|error| TokenError::from_jwt(&error))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};
    use entity::signing_key;
    use jsonwebtoken::{Algorithm, Validation};
    use serde_json::{Value, json};

    use super::{KeyRing, Passed, token_digest};
    use crate::crypto::{
        jwt::TokenError,
        keys::testing::{KEY_A, KEY_B},
    };

    fn validation() -> Validation {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = false;
        validation
    }

    fn claims(exp: i64) -> Value {
        json!({"sub": "ada", "exp": exp})
    }

    #[test]
    fn a_verified_token_is_remembered_and_another_is_not() {
        let now = Utc::now();
        let ring =
            KeyRing::build(std::slice::from_ref(&KEY_A), TimeDelta::hours(1), now, None).unwrap();
        let exp = now.timestamp() + 60;
        let token = ring.sign(&claims(exp));

        assert_eq!(ring.verify(&token, &validation(), now), Ok(claims(exp)));
        assert!(ring.verified.lock().contains_key(&token_digest(&token)));
        assert_eq!(ring.verify(&token, &validation(), now), Ok(claims(exp)));

        // Another token, even one byte off, is verified on its own.
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(ring.verify(&forged, &validation(), now).is_err());
        assert_eq!(ring.verified.lock().len(), 1);
    }

    #[test]
    fn a_remembered_token_is_not_answered_after_its_exp() {
        let now = Utc::now();
        let ring =
            KeyRing::build(std::slice::from_ref(&KEY_A), TimeDelta::hours(1), now, None).unwrap();
        let exp = now.timestamp() - 10;
        let token = ring.sign(&claims(exp));
        assert_eq!(
            ring.verify(&token, &validation(), now),
            Err(TokenError::Expired)
        );
        assert!(ring.verified.lock().is_empty(), "only successes are kept");

        // Remembered as if it had passed before it expired.
        let remember = |exp: i64| {
            let passed = Passed {
                claims: json!({"remembered": true}),
                exp,
                key: 0,
            };
            ring.verified.lock().insert(token_digest(&token), passed);
        };
        remember(exp);
        assert_eq!(
            ring.verify(&token, &validation(), now),
            Err(TokenError::Expired)
        );
        // The memory is consulted: an entry not yet expired would have answered.
        remember(now.timestamp() + 60);
        assert_eq!(
            ring.verify(&token, &validation(), now),
            Ok(json!({"remembered": true}))
        );
    }

    #[test]
    fn a_remembered_token_stops_verifying_when_its_key_is_no_longer_published() {
        let now = Utc::now();
        let retired = signing_key::Model {
            created_at: KEY_A.created_at - TimeDelta::days(1),
            retired_at: Some(now),
            ..KEY_B.clone()
        };
        let retention = TimeDelta::minutes(10);
        // A ring that still signs with the retired key (built before it was retired).
        let signing_b = KeyRing::build(
            &[signing_key::Model {
                retired_at: None,
                ..retired.clone()
            }],
            retention,
            now,
            None,
        )
        .unwrap();
        let exp = now.timestamp() + 3600;
        let token = signing_b.sign(&claims(exp));

        let ring = KeyRing::build(&[KEY_A.clone(), retired], retention, now, None).unwrap();
        assert_eq!(ring.verify(&token, &validation(), now), Ok(claims(exp)));
        let unpublished = now + retention + TimeDelta::seconds(1);
        assert_eq!(
            ring.verify(&token, &validation(), unpublished),
            Err(TokenError::UnknownKey)
        );
    }
}
