//! `/.well-known/`: the public keys that verify every token, and OpenID Connect discovery.

use poem::web::Data;
use poem_openapi::{Object, OpenApi, payload::Json};
use serde::Deserialize;

use super::Tag;
use crate::state::AppState;

/// Every claim an id token carries, as listed in discovery.
pub const ID_TOKEN_CLAIMS: &[&str] = &[
    "sub",
    "aud",
    "iss",
    "token_use",
    "email",
    "email_verified",
    "cognito:username",
    "given_name",
    "family_name",
    "auth_time",
    "iat",
    "exp",
    "jti",
    "origin_jti",
];

/// A public RSA key (RFC 7517).
#[derive(Object, Deserialize, Debug)]
pub struct Jwk {
    /// Key type: `RSA`.
    pub kty: String,
    /// Key id, as in the `kid` header of the tokens it signed.
    pub kid: String,
    /// `sig`.
    #[oai(rename = "use")]
    #[serde(rename = "use")]
    pub use_: String,
    /// `RS256`.
    pub alg: String,
    /// Modulus, base64url.
    pub n: String,
    /// Public exponent, base64url.
    pub e: String,
}

/// The signing keys: the current one and retired ones whose tokens may still be valid.
#[derive(Object, Deserialize, Debug)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// OpenID Connect discovery metadata.
#[derive(Object, Debug)]
pub struct OpenIdConfiguration {
    /// The `iss` of every token: the configured public URL.
    pub issuer: String,
    /// Where the signing keys are published.
    pub jwks_uri: String,
    /// Always `["RS256"]`.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Always `["public"]`: `sub` is the user's permanent uid.
    pub subject_types_supported: Vec<String>,
    /// Every claim of the id token.
    pub claims_supported: Vec<String>,
}

pub struct WellKnownApi;

#[OpenApi(tag = "Tag::Discovery")]
impl WellKnownApi {
    /// Signing keys (JWKS)
    ///
    /// The RSA public keys that verify the id, access and refresh tokens, selected by the
    /// token's `kid` header. A rotated key stays listed until every token it signed has expired.
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: Data<&AppState>) -> Json<Jwks> {
        let jwks = serde_json::from_value(state.keys.jwks())
            .expect("the key store publishes RFC 7517 RSA keys");
        Json(jwks)
    }

    /// OpenID Connect discovery
    ///
    /// Issuer, key location and the claims of the id token, for libraries that configure
    /// themselves from `/.well-known/openid-configuration`.
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        operation_id = "openid_configuration"
    )]
    async fn openid_configuration(&self, state: Data<&AppState>) -> Json<OpenIdConfiguration> {
        let issuer = state.keys.issuer().to_string();
        Json(OpenIdConfiguration {
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            issuer,
            id_token_signing_alg_values_supported: vec!["RS256".into()],
            subject_types_supported: vec!["public".into()],
            claims_supported: ID_TOKEN_CLAIMS.iter().map(|c| c.to_string()).collect(),
        })
    }
}
