//! JWKS and OpenID discovery.

use crate::helpers::{TestApp, json};

#[tokio::test]
async fn jwks_publishes_the_rsa_signing_key() {
    let app = TestApp::spawn().await;
    let response = app.client.get("/.well-known/jwks.json").send().await;
    response.assert_status_is_ok();
    let body = json(response).await;
    let keys = body["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{body}");
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
    // 2048-bit modulus: 256 bytes, 342 base64url characters without padding.
    assert_eq!(key["n"].as_str().unwrap().len(), 342);
    assert_eq!(key["e"], "AQAB");
}

#[tokio::test]
async fn openid_configuration_points_at_the_jwks_of_the_issuer() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get("/.well-known/openid-configuration")
        .send()
        .await;
    response.assert_status_is_ok();
    let body = json(response).await;
    assert_eq!(body["issuer"], "http://authpool.test");
    assert_eq!(
        body["jwks_uri"],
        "http://authpool.test/.well-known/jwks.json"
    );
    assert_eq!(
        body["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    let claims: Vec<&str> = body["claims_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for claim in [
        "sub",
        "aud",
        "iss",
        "token_use",
        "email",
        "cognito:username",
        "origin_jti",
    ] {
        assert!(claims.contains(&claim), "{claim} missing");
    }
}

#[tokio::test]
async fn the_same_key_and_client_id_survive_a_restart() {
    let app = TestApp::spawn().await;
    let first = json(app.client.get("/.well-known/jwks.json").send().await).await;
    let settings = (*app.state.settings).clone();
    let again = authpool::startup::build_state(settings).await.unwrap();
    assert_eq!(again.client_id, app.state.client_id);
    assert_eq!(again.keys.jwks()["keys"][0]["kid"], first["keys"][0]["kid"]);
}
