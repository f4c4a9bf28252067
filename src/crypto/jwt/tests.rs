//! Signing and strict verification, on keys built in memory (no database).

use std::time::Duration;

use aws_lc_rs::{
    hmac,
    rsa::KeyPair,
    signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RsaEncoding},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use entity::signing_key;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use super::*;
use crate::crypto::keys::{
    KeyStore, TokenConfig,
    testing::{KEY_A, KEY_B},
};

const ISSUER: &str = "https://auth.example.com";
const CLIENT_ID: &str = "client-1";
const HOUR: Duration = Duration::from_secs(3600);

fn config() -> TokenConfig {
    TokenConfig {
        issuer: ISSUER.into(),
        client_id: CLIENT_ID.into(),
        publish_after_retire: HOUR,
    }
}

/// A store signing with key A; key B is not published.
fn store() -> KeyStore {
    KeyStore::from_rows(config(), std::slice::from_ref(&KEY_A)).expect("store")
}

/// A store signing with key A and still publishing key B, retired a minute ago.
fn store_with_retired_b() -> KeyStore {
    let a = KEY_A.clone();
    let b = signing_key::Model {
        created_at: a.created_at - chrono::TimeDelta::days(1),
        retired_at: Some(Utc::now() - chrono::TimeDelta::minutes(1)),
        ..KEY_B.clone()
    };
    KeyStore::from_rows(config(), &[a, b]).expect("store")
}

/// Verification never needs the database while the `kid` is known; an unknown one makes the
/// store try to reload, which fails on this empty database (no tables) and leaves the keys as
/// they were.
async fn db() -> DatabaseConnection {
    sea_orm::Database::connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite")
}

fn now() -> i64 {
    Utc::now().timestamp()
}

fn id_claims() -> IdClaims {
    IdClaims {
        sub: "8f0c6e0e-1d7b-4c55-9d0e-0a3b6a1f7a11".into(),
        aud: CLIENT_ID.into(),
        iss: ISSUER.into(),
        token_use: TokenUse::Id,
        email: "ada@example.com".into(),
        email_verified: true,
        cognito_username: "ada".into(),
        given_name: Some("Ada".into()),
        family_name: None,
        auth_time: now() - 10,
        iat: now(),
        exp: now() + 3600,
        jti: "jti-id".into(),
        origin_jti: "origin-1".into(),
    }
}

fn access_claims() -> AccessClaims {
    AccessClaims {
        sub: "8f0c6e0e-1d7b-4c55-9d0e-0a3b6a1f7a11".into(),
        client_id: CLIENT_ID.into(),
        iss: ISSUER.into(),
        token_use: TokenUse::Access,
        scope: "aws.cognito.signin.user.admin".into(),
        username: "ada".into(),
        auth_time: now() - 10,
        iat: now(),
        exp: now() + 3600,
        jti: "jti-access".into(),
        origin_jti: "origin-1".into(),
    }
}

fn refresh_claims() -> RefreshClaims {
    RefreshClaims {
        sub: "8f0c6e0e-1d7b-4c55-9d0e-0a3b6a1f7a11".into(),
        iss: ISSUER.into(),
        token_use: TokenUse::Refresh,
        iat: now(),
        exp: now() + 30 * 86_400,
        jti: "jti-refresh".into(),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Signs `header.payload` by hand with `key`, as an attacker (or another issuer) would.
fn rsa_token(
    key: &signing_key::Model,
    alg: &'static dyn RsaEncoding,
    header: &Value,
    claims: &Value,
) -> String {
    let pair = KeyPair::from_pkcs8(&key.private_key).expect("pkcs8");
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        alg,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    format!("{input}.{}", b64(&signature))
}

fn rs256(key: &signing_key::Model, claims: &Value) -> String {
    rsa_token(
        key,
        &RSA_PKCS1_SHA256,
        &json!({"alg": "RS256", "kid": key.kid}),
        claims,
    )
}

fn to_value<C: Serialize>(claims: &C) -> Value {
    serde_json::to_value(claims).expect("claims")
}

#[tokio::test]
async fn each_token_round_trips_with_an_rs256_header_naming_the_key() {
    let store = store();
    let id = id_claims();
    let access = access_claims();
    let refresh = refresh_claims();

    for token in [store.sign(&id), store.sign(&access), store.sign(&refresh)] {
        let header = decode_part(token.split('.').next().expect("header"));
        assert_eq!(header, json!({"alg": "RS256", "kid": KEY_A.kid}));
    }
    let db = db().await;
    assert_eq!(store.verify_id(&db, &store.sign(&id)).await, Ok(id.clone()));
    assert_eq!(
        store.verify_access(&db, &store.sign(&access)).await,
        Ok(access.clone())
    );
    assert_eq!(
        store.verify_refresh(&db, &store.sign(&refresh)).await,
        Ok(refresh)
    );
    assert_eq!(
        store.verify_bearer(&db, &store.sign(&id)).await,
        Ok(BearerClaims::Id(id))
    );
    let bearer = store
        .verify_bearer(&db, &store.sign(&access))
        .await
        .expect("access as bearer");
    assert_eq!(
        (bearer.sub(), bearer.origin_jti()),
        (access.sub.as_str(), "origin-1")
    );
    assert_eq!(bearer, BearerClaims::Access(access));
}

#[test]
fn claims_are_named_as_in_cognito() {
    let id = to_value(&id_claims());
    assert_eq!(id["cognito:username"], "ada");
    assert_eq!(id["token_use"], "id");
    assert!(id.get("family_name").is_none(), "absent names are left out");
    let access = to_value(&access_claims());
    assert_eq!(access["token_use"], "access");
    assert!(access.get("aud").is_none());
    assert_eq!(to_value(&refresh_claims())["token_use"], "refresh");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let store = store();
    let header = json!({"alg": "none", "kid": KEY_A.kid});
    let claims = to_value(&access_claims());
    let unsigned = format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    assert_eq!(
        store.verify_access(&db().await, &unsigned).await,
        Err(TokenError::WrongAlgorithm)
    );
    let no_signature = unsigned.trim_end_matches('.');
    assert_eq!(
        store.verify_access(&db().await, no_signature).await,
        Err(TokenError::Malformed)
    );
}

#[tokio::test]
async fn hs256_keyed_with_the_public_key_is_refused() {
    let store = store();
    let header = json!({"alg": "HS256", "kid": KEY_A.kid});
    let claims = to_value(&access_claims());
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let jwk: Value = serde_json::from_str(&KEY_A.public_jwk).expect("jwk");
    let public = KeyPair::from_pkcs8(&KEY_A.private_key).expect("pkcs8");
    let public_der = aws_lc_rs::signature::KeyPair::public_key(&public)
        .as_ref()
        .to_vec();
    let secrets: [&[u8]; 3] = [
        jwk["n"].as_str().expect("n").as_bytes(),
        &public_der,
        KEY_A.public_jwk.as_bytes(),
    ];
    for secret in secrets {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
        let token = format!("{input}.{}", b64(tag.as_ref()));
        assert_eq!(
            store.verify_access(&db().await, &token).await,
            Err(TokenError::WrongAlgorithm)
        );
    }
}

#[tokio::test]
async fn other_rsa_digests_are_refused_even_from_the_right_key() {
    let store = store();
    let token = rsa_token(
        &KEY_A,
        &RSA_PKCS1_SHA384,
        &json!({"alg": "RS384", "kid": KEY_A.kid}),
        &to_value(&access_claims()),
    );
    assert_eq!(
        store.verify_access(&db().await, &token).await,
        Err(TokenError::WrongAlgorithm)
    );
}

#[tokio::test]
async fn a_token_of_an_unknown_key_is_refused() {
    let store = store();
    let token = rs256(&KEY_B, &to_value(&access_claims()));
    assert_eq!(
        store.verify_access(&db().await, &token).await,
        Err(TokenError::UnknownKey)
    );
    // Retried at once: the reload is rate-limited, the answer the same.
    assert_eq!(
        store.verify_access(&db().await, &token).await,
        Err(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn a_kid_naming_another_published_key_fails_the_signature() {
    let store = store_with_retired_b();
    let claims = to_value(&access_claims());
    let signed_by_a_named_b = rsa_token(
        &KEY_A,
        &RSA_PKCS1_SHA256,
        &json!({"alg": "RS256", "kid": KEY_B.kid}),
        &claims,
    );
    assert_eq!(
        store.verify_access(&db().await, &signed_by_a_named_b).await,
        Err(TokenError::BadSignature)
    );
    let no_kid = rsa_token(&KEY_A, &RSA_PKCS1_SHA256, &json!({"alg": "RS256"}), &claims);
    assert_eq!(
        store.verify_access(&db().await, &no_kid).await,
        Err(TokenError::Malformed)
    );
    let crit = rsa_token(
        &KEY_A,
        &RSA_PKCS1_SHA256,
        &json!({"alg": "RS256", "kid": KEY_A.kid, "crit": ["exp"]}),
        &claims,
    );
    assert_eq!(
        store.verify_access(&db().await, &crit).await,
        Err(TokenError::Malformed)
    );
}

#[tokio::test]
async fn a_retired_key_still_published_verifies_its_tokens() {
    let store = store_with_retired_b();
    let token = rs256(&KEY_B, &to_value(&access_claims()));
    assert!(store.verify_access(&db().await, &token).await.is_ok());
    assert_eq!(store.signing_kid(), KEY_A.kid);
}

#[tokio::test]
async fn a_key_retired_beyond_its_publication_is_gone() {
    let long_ago = Utc::now()
        - chrono::TimeDelta::from_std(HOUR + crate::crypto::keys::RETIRED_KEY_MARGIN)
            .expect("delta")
        - chrono::TimeDelta::seconds(1);
    let b = signing_key::Model {
        retired_at: Some(long_ago),
        ..KEY_B.clone()
    };
    let store = KeyStore::from_rows(config(), &[KEY_A.clone(), b]).expect("store");
    let kids: Vec<Value> = store.jwks()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, vec![json!(KEY_A.kid)]);
    let token = rs256(&KEY_B, &to_value(&access_claims()));
    assert_eq!(
        store.verify_access(&db().await, &token).await,
        Err(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn wrong_issuer_and_audience_are_refused() {
    let store = store();
    let db = db().await;
    let mut id = to_value(&id_claims());
    id["iss"] = json!("https://evil.example.com");
    assert_eq!(
        store.verify_id(&db, &rs256(&KEY_A, &id)).await,
        Err(TokenError::WrongIssuer)
    );

    let mut id = to_value(&id_claims());
    id["aud"] = json!("other-client");
    assert_eq!(
        store.verify_id(&db, &rs256(&KEY_A, &id)).await,
        Err(TokenError::WrongAudience)
    );
    assert_eq!(
        store.verify_bearer(&db, &rs256(&KEY_A, &id)).await,
        Err(TokenError::WrongAudience)
    );
    id["aud"] = json!([CLIENT_ID]);
    assert_eq!(
        store.verify_id(&db, &rs256(&KEY_A, &id)).await,
        Err(TokenError::WrongAudience)
    );

    let mut access = to_value(&access_claims());
    access["client_id"] = json!("other-client");
    let token = rs256(&KEY_A, &access);
    assert_eq!(
        store.verify_access(&db, &token).await,
        Err(TokenError::WrongAudience)
    );
    assert_eq!(
        store.verify_bearer(&db, &token).await,
        Err(TokenError::WrongAudience)
    );
}

#[tokio::test]
async fn a_token_of_another_kind_is_refused() {
    let store = store();
    let db = db().await;
    let id = store.sign(&id_claims());
    let access = store.sign(&access_claims());
    let refresh = store.sign(&refresh_claims());
    assert_eq!(
        store.verify_bearer(&db, &refresh).await,
        Err(TokenError::WrongTokenUse)
    );
    assert_eq!(
        store.verify_id(&db, &access).await,
        Err(TokenError::WrongTokenUse)
    );
    assert_eq!(
        store.verify_access(&db, &id).await,
        Err(TokenError::WrongTokenUse)
    );
    assert_eq!(
        store.verify_refresh(&db, &id).await,
        Err(TokenError::WrongTokenUse)
    );
    assert_eq!(
        store.verify_refresh(&db, &access).await,
        Err(TokenError::WrongTokenUse)
    );
    assert_eq!(
        store.verify_id(&db, &refresh).await,
        Err(TokenError::WrongTokenUse)
    );

    let mut odd = to_value(&access_claims());
    odd["token_use"] = json!("ID");
    assert_eq!(
        store.verify_bearer(&db, &rs256(&KEY_A, &odd)).await,
        Err(TokenError::WrongTokenUse)
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_without_leeway() {
    let store = store();
    let mut access = access_claims();
    access.exp = now() - 1;
    assert_eq!(
        store.verify_access(&db().await, &store.sign(&access)).await,
        Err(TokenError::Expired)
    );
}

#[tokio::test]
async fn required_claims_must_be_present_and_typed() {
    let store = store();
    let db = db().await;
    for claim in [
        "exp",
        "iat",
        "sub",
        "token_use",
        "iss",
        "jti",
        "origin_jti",
        "client_id",
    ] {
        let mut access = to_value(&access_claims());
        access.as_object_mut().expect("object").remove(claim);
        let result = store.verify_access(&db, &rs256(&KEY_A, &access)).await;
        assert!(result.is_err(), "{claim} missing");
    }
    let mut access = to_value(&access_claims());
    access["exp"] = json!("tomorrow");
    assert_eq!(
        store.verify_access(&db, &rs256(&KEY_A, &access)).await,
        Err(TokenError::Malformed)
    );
    let mut id = to_value(&id_claims());
    id["email_verified"] = json!("yes");
    assert_eq!(
        store.verify_id(&db, &rs256(&KEY_A, &id)).await,
        Err(TokenError::Malformed)
    );
}

#[tokio::test]
async fn tampering_breaks_the_signature() {
    let store = store();
    let db = db().await;
    let token = store.sign(&access_claims());
    let parts: Vec<&str> = token.split('.').collect();

    let mut claims = decode_part(parts[1]);
    claims["sub"] = json!("someone-else");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        store.verify_access(&db, &forged).await,
        Err(TokenError::BadSignature)
    );

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
    signature[10] ^= 1;
    let forged = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
    assert_eq!(
        store.verify_access(&db, &forged).await,
        Err(TokenError::BadSignature)
    );

    let forged = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        &parts[2][..parts[2].len() - 4]
    );
    assert!(store.verify_access(&db, &forged).await.is_err());
}

#[tokio::test]
async fn malformed_input_of_any_shape_is_an_error_not_a_panic() {
    let store = store();
    let db = db().await;
    let token = store.sign(&access_claims());
    let header_b64 = token.split('.').next().expect("header").to_string();
    let mut inputs: Vec<String> = [
        "",
        ".",
        "..",
        "...",
        "a",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "Bearer x",
        "é.é.é",
        "\0.\0.\0",
        "eyJ.eyJ.eyJ",
        "%%%.%%%.%%%",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for header in [
        json!([]),
        json!("RS256"),
        json!({"alg": 256}),
        json!({"kid": KEY_A.kid}),
        json!(null),
    ] {
        inputs.push(format!("{}.e30.AAAA", b64(header.to_string().as_bytes())));
    }
    inputs.push(format!("{header_b64}.bm90IGpzb24.AAAA"));
    inputs.push(format!("{header_b64}.W10.AAAA"));
    inputs.push(format!("{token}.extra"));
    inputs.push(format!("{token}="));
    inputs.push("a".repeat(1 << 20));
    inputs.push(format!("{header_b64}.{}.AAAA", "A".repeat(100_000)));
    // Every truncation of a real token, and some deterministic noise.
    inputs.extend((0..token.len()).map(|i| token[..i].to_string()));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        let len = (seed % 300) as usize;
        let noise: String = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                b"AZaz09-_.=+/ {}\"e"[(seed >> 59) as usize % 17] as char
            })
            .collect();
        inputs.push(noise);
    }
    for input in &inputs {
        assert!(store.verify_bearer(&db, input).await.is_err());
        assert!(store.verify_refresh(&db, input).await.is_err());
    }
}

#[test]
fn errors_are_short_and_never_echo_the_token() {
    let messages: Vec<String> = [
        TokenError::Malformed,
        TokenError::WrongAlgorithm,
        TokenError::UnknownKey,
        TokenError::BadSignature,
        TokenError::Expired,
        TokenError::WrongIssuer,
        TokenError::WrongAudience,
        TokenError::WrongTokenUse,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert!(messages.iter().all(|m| m.len() < 40 && !m.contains('.')));
}

#[tokio::test]
async fn the_jwks_verifies_tokens_without_jsonwebtoken() {
    let store = store_with_retired_b();
    let jwks = store.jwks();
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["e"], "AQAB");
    }
    assert_eq!(
        keys[0]["kid"],
        KEY_A.kid.as_str(),
        "the signing key is the newest"
    );
    // The set is a standard JWK set.
    let _: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).expect("JWK set");

    let token = store.sign(&id_claims());
    let (input, signature) = token.rsplit_once('.').expect("signature");
    let key = keys
        .iter()
        .find(|k| k["kid"] == KEY_A.kid.as_str())
        .expect("signing key");
    let component = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(key[name].as_str().expect("component"))
            .expect("base64url")
    };
    let public = aws_lc_rs::signature::RsaPublicKeyComponents {
        n: component("n"),
        e: component("e"),
    };
    public
        .verify(
            &RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).expect("base64url"),
        )
        .expect("the published key verifies the signature");
}
