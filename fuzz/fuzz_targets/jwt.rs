//! The strict token verifier on arbitrary input (`cargo fuzz run jwt`).
//!
//! The server's own key store, on a fresh in-memory database (a real signing key, the real
//! reload for an unknown `kid`), verifies:
//!
//! - arbitrary text as a bearer token, and arbitrary bytes as the three parts of a JWS (with or
//!   without a header naming the server's key): none may panic, and none may verify, as bearer,
//!   id, access or refresh token;
//! - the claims the server issues, changed by the fuzzer and signed with the server's own key:
//!   whatever verifies must be what the server issues: a bearer token is an id or access token
//!   of this issuer and client, not expired; a refresh token is one of this issuer, not
//!   expired; and no token is both.
#![no_main]

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use arbitrary::Arbitrary;
use authpool::crypto::{
    jwt::BearerClaims,
    keys::{KeyStore, TokenConfig},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;
use migration::MigratorTrait;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use serde_json::{Map, Number, Value, json};

const ISSUER: &str = "https://auth.example.org";
const CLIENT_ID: &str = "fuzz-client";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    db: DatabaseConnection,
    keys: Arc<KeyStore>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (db, keys) = runtime.block_on(async {
        // One connection: each connection to `sqlite::memory:` is a database of its own.
        let mut options = ConnectOptions::new("sqlite::memory:");
        options
            .max_connections(1)
            .min_connections(1)
            .sqlx_logging(false);
        let db = Database::connect(options).await.expect("in-memory SQLite");
        migration::Migrator::up(&db, None)
            .await
            .expect("migrations");
        let config = TokenConfig {
            issuer: ISSUER.into(),
            client_id: CLIENT_ID.into(),
            publish_after_retire: Duration::from_secs(3600),
        };
        let keys = KeyStore::load(&db, config).await.expect("a signing key");
        (db, keys)
    });
    Fixture { runtime, db, keys }
});

#[derive(Arbitrary, Debug)]
enum Input {
    /// Any text as the token.
    Text(String),
    /// Three parts, each base64url-encoded from arbitrary bytes: past the split and the
    /// decoding, into the header and claims parsing.
    Parts {
        header: Vec<u8>,
        payload: Vec<u8>,
        signature: Vec<u8>,
    },
    /// A header naming the server's key, with arbitrary claims and signature: into the
    /// signature check.
    ServerKid {
        payload: Vec<u8>,
        signature: Vec<u8>,
    },
    /// The claims the server issues for a kind of token, changed by the fuzzer (a claim set to
    /// another value, or removed), signed with the server's key: into the claims checks.
    Signed {
        kind: Kind,
        changes: Vec<(ClaimName, Option<ClaimValue>)>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Id,
    Access,
    Refresh,
}

/// The claims the server puts in a token of `kind` (as `crypto::jwt` describes them).
fn issued_claims(kind: Kind, now: i64) -> Map<String, Value> {
    let common = json!({
        "sub": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
        "iss": ISSUER,
        "iat": now,
        "exp": now + 3600,
        "jti": "a1b2c3",
    });
    let extra = match kind {
        Kind::Id => json!({
            "aud": CLIENT_ID, "token_use": "id", "email": "ada@example.org",
            "email_verified": true, "cognito:username": "ada", "given_name": "Ada",
            "auth_time": now, "origin_jti": "o1",
        }),
        Kind::Access => json!({
            "client_id": CLIENT_ID, "token_use": "access", "scope": "openid", "username": "ada",
            "auth_time": now, "origin_jti": "o1",
        }),
        Kind::Refresh => json!({"token_use": "refresh"}),
    };
    let (Value::Object(mut claims), Value::Object(extra)) = (common, extra) else {
        unreachable!("objects")
    };
    claims.extend(extra);
    claims
}

/// Claim names: every claim the server reads, and any other.
#[derive(Arbitrary, Debug)]
enum ClaimName {
    Sub,
    Aud,
    ClientId,
    Iss,
    TokenUse,
    Exp,
    Iat,
    Nbf,
    Jti,
    OriginJti,
    AuthTime,
    Email,
    EmailVerified,
    CognitoUsername,
    Username,
    Scope,
    GivenName,
    FamilyName,
    Other(String),
}

impl ClaimName {
    fn as_str(&self) -> &str {
        match self {
            ClaimName::Sub => "sub",
            ClaimName::Aud => "aud",
            ClaimName::ClientId => "client_id",
            ClaimName::Iss => "iss",
            ClaimName::TokenUse => "token_use",
            ClaimName::Exp => "exp",
            ClaimName::Iat => "iat",
            ClaimName::Nbf => "nbf",
            ClaimName::Jti => "jti",
            ClaimName::OriginJti => "origin_jti",
            ClaimName::AuthTime => "auth_time",
            ClaimName::Email => "email",
            ClaimName::EmailVerified => "email_verified",
            ClaimName::CognitoUsername => "cognito:username",
            ClaimName::Username => "username",
            ClaimName::Scope => "scope",
            ClaimName::GivenName => "given_name",
            ClaimName::FamilyName => "family_name",
            ClaimName::Other(name) => name,
        }
    }
}

/// Claim values: the ones that make a token valid, near misses, and anything else.
#[derive(Arbitrary, Debug)]
enum ClaimValue {
    Issuer,
    ClientId,
    Id,
    Access,
    Refresh,
    /// Seconds from now.
    FromNow(i32),
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Null,
    List(Vec<String>),
    Object(Vec<(String, i64)>),
}

impl ClaimValue {
    fn to_json(&self, now: i64) -> Value {
        match self {
            ClaimValue::Issuer => json!(ISSUER),
            ClaimValue::ClientId => json!(CLIENT_ID),
            ClaimValue::Id => json!("id"),
            ClaimValue::Access => json!("access"),
            ClaimValue::Refresh => json!("refresh"),
            ClaimValue::FromNow(seconds) => json!(now.saturating_add(i64::from(*seconds))),
            ClaimValue::Text(text) => json!(text),
            ClaimValue::Integer(n) => json!(n),
            ClaimValue::Float(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
            ClaimValue::Bool(b) => json!(b),
            ClaimValue::Null => Value::Null,
            ClaimValue::List(items) => json!(items),
            ClaimValue::Object(fields) => {
                Value::Object(fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let fixture = &*FIXTURE;
    let now = chrono::Utc::now().timestamp();
    match input {
        Input::Text(token) => never_verifies(fixture, &token),
        Input::Parts {
            header,
            payload,
            signature,
        } => never_verifies(fixture, &jws(&header, &payload, &signature)),
        Input::ServerKid { payload, signature } => {
            let header = json!({"alg": "RS256", "kid": fixture.keys.signing_kid()});
            let header = serde_json::to_vec(&header).expect("JSON");
            never_verifies(fixture, &jws(&header, &payload, &signature));
        }
        Input::Signed { kind, changes } => {
            let mut claims = issued_claims(kind, now);
            for (name, claim) in &changes {
                match claim {
                    Some(claim) => claims.insert(name.as_str().to_owned(), claim.to_json(now)),
                    None => claims.remove(name.as_str()),
                };
            }
            let token = fixture.keys.sign(&claims);
            verifies_only_what_the_server_issues(fixture, &token, now);
        }
    }
});

fn jws(header: &[u8], payload: &[u8], signature: &[u8]) -> String {
    [header, payload, signature]
        .map(|part| URL_SAFE_NO_PAD.encode(part))
        .join(".")
}

/// A token not signed by the server's key verifies as nothing.
fn never_verifies(fixture: &Fixture, token: &str) {
    let (db, keys) = (&fixture.db, &fixture.keys);
    fixture.runtime.block_on(async {
        assert!(keys.verify_bearer(db, token).await.is_err(), "{token:?}");
        assert!(keys.verify_id(db, token).await.is_err(), "{token:?}");
        assert!(keys.verify_access(db, token).await.is_err(), "{token:?}");
        assert!(keys.verify_refresh(db, token).await.is_err(), "{token:?}");
    });
}

/// A token signed by the server's key verifies only as what the server would have issued.
fn verifies_only_what_the_server_issues(fixture: &Fixture, token: &str, now: i64) {
    let (db, keys) = (&fixture.db, &fixture.keys);
    fixture.runtime.block_on(async {
        let bearer = keys.verify_bearer(db, token).await;
        let refresh = keys.verify_refresh(db, token).await;
        assert!(
            bearer.is_err() || refresh.is_err(),
            "both a bearer and a refresh token"
        );
        match bearer {
            Ok(BearerClaims::Id(claims)) => {
                assert_eq!(claims.iss, ISSUER);
                assert_eq!(claims.aud, CLIENT_ID);
                assert!(claims.exp >= now, "expired: {claims:?}");
                assert!(keys.verify_id(db, token).await.is_ok());
                assert!(keys.verify_access(db, token).await.is_err());
            }
            Ok(BearerClaims::Access(claims)) => {
                assert_eq!(claims.iss, ISSUER);
                assert_eq!(claims.client_id, CLIENT_ID);
                assert!(claims.exp >= now, "expired: {claims:?}");
                assert!(keys.verify_access(db, token).await.is_ok());
                assert!(keys.verify_id(db, token).await.is_err());
            }
            Err(_) => {}
        }
        if let Ok(claims) = refresh {
            assert_eq!(claims.iss, ISSUER);
            assert!(claims.exp >= now, "expired: {claims:?}");
        }
    });
}
