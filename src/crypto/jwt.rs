//! The claims of authpool's three tokens, and their strict verification.
//!
//! Claims follow Cognito's (API.md, "Tokens and sessions") so Cognito-aware verifiers accept them.
//! Times are seconds since the Unix epoch.

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::keys::KeyStore;

/// Which token a JWT is: its `token_use` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    Id,
    Access,
    Refresh,
}

/// Claims of an id token: who the user is, for the app (`aud` = client id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// The user's uid.
    pub sub: String,
    /// The app client id.
    pub aud: String,
    pub iss: String,
    /// Always [`TokenUse::Id`].
    pub token_use: TokenUse,
    pub email: String,
    pub email_verified: bool,
    #[serde(rename = "cognito:username")]
    pub cognito_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// When the user signed in; kept across refreshes.
    pub auth_time: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Shared by the id and access tokens of one sign-in and kept across refreshes.
    pub origin_jti: String,
}

/// Claims of an access token: what the bearer may do. No `aud`, as in Cognito.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    /// The app client id.
    pub client_id: String,
    pub iss: String,
    /// Always [`TokenUse::Access`].
    pub token_use: TokenUse,
    /// Space-separated scopes.
    pub scope: String,
    /// Same value as `cognito:username` in the id token.
    pub username: String,
    pub auth_time: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub origin_jti: String,
}

/// Claims of a refresh token, bound to a session through its `jti`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub sub: String,
    pub iss: String,
    /// Always [`TokenUse::Refresh`].
    pub token_use: TokenUse,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// A verified bearer token: an id token or an access token, never a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BearerClaims {
    Id(IdClaims),
    Access(AccessClaims),
}

impl BearerClaims {
    /// The user's uid.
    pub fn sub(&self) -> &str {
        match self {
            Self::Id(c) => &c.sub,
            Self::Access(c) => &c.sub,
        }
    }

    /// Names the sign-in (and so the session) the token belongs to.
    pub fn origin_jti(&self) -> &str {
        match self {
            Self::Id(c) => &c.origin_jti,
            Self::Access(c) => &c.origin_jti,
        }
    }

    pub fn jti(&self) -> &str {
        match self {
            Self::Id(c) => &c.jti,
            Self::Access(c) => &c.jti,
        }
    }

    /// The user's username: `cognito:username` or `username`.
    pub fn username(&self) -> &str {
        match self {
            Self::Id(c) => &c.cognito_username,
            Self::Access(c) => &c.username,
        }
    }

    pub fn auth_time(&self) -> i64 {
        match self {
            Self::Id(c) => c.auth_time,
            Self::Access(c) => c.auth_time,
        }
    }

    pub fn exp(&self) -> i64 {
        match self {
            Self::Id(c) => c.exp,
            Self::Access(c) => c.exp,
        }
    }

    pub fn token_use(&self) -> TokenUse {
        match self {
            Self::Id(_) => TokenUse::Id,
            Self::Access(_) => TokenUse::Access,
        }
    }
}

/// Why a token was refused. Messages are short and generic, and never include the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or a claim is missing or of the wrong type.
    #[error("malformed token")]
    Malformed,
    /// The header names another algorithm than RS256 (including `none` and HMAC).
    #[error("token algorithm not accepted")]
    WrongAlgorithm,
    /// The `kid` names no published key.
    #[error("unknown token signing key")]
    UnknownKey,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token issuer not accepted")]
    WrongIssuer,
    /// The id token's `aud` or the access token's `client_id` is not this pool's client.
    #[error("token audience not accepted")]
    WrongAudience,
    /// A valid token of another kind, e.g. a refresh token presented as a bearer token.
    #[error("wrong kind of token")]
    WrongTokenUse,
}

impl TokenError {
    /// Maps a `jsonwebtoken` failure; kept out of the public API so that crate stays internal.
    pub(super) fn from_jwt(error: &jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match error.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => Self::WrongAlgorithm,
            _ => Self::Malformed,
        }
    }
}

/// The token kinds one verification accepts.
#[derive(Clone, Copy)]
enum Accept {
    Id,
    Access,
    Refresh,
    Bearer,
}

/// A verified token, typed by its `token_use`.
enum Verified {
    Id(IdClaims),
    Access(AccessClaims),
    Refresh(RefreshClaims),
}

impl KeyStore {
    /// Verifies an id token of this pool: signature, `exp`, `iss`, `aud` = client id.
    pub async fn verify_id(
        &self,
        db: &DatabaseConnection,
        token: &str,
    ) -> Result<IdClaims, TokenError> {
        match self.verify(db, token, Accept::Id).await? {
            Verified::Id(claims) => Ok(claims),
            _ => Err(TokenError::WrongTokenUse),
        }
    }

    /// Verifies an access token of this pool: signature, `exp`, `iss`, `client_id`.
    pub async fn verify_access(
        &self,
        db: &DatabaseConnection,
        token: &str,
    ) -> Result<AccessClaims, TokenError> {
        match self.verify(db, token, Accept::Access).await? {
            Verified::Access(claims) => Ok(claims),
            _ => Err(TokenError::WrongTokenUse),
        }
    }

    /// Verifies a refresh token of this pool: signature, `exp`, `iss`. Whether its session is
    /// still alive is the caller's business.
    pub async fn verify_refresh(
        &self,
        db: &DatabaseConnection,
        token: &str,
    ) -> Result<RefreshClaims, TokenError> {
        match self.verify(db, token, Accept::Refresh).await? {
            Verified::Refresh(claims) => Ok(claims),
            _ => Err(TokenError::WrongTokenUse),
        }
    }

    /// Verifies a bearer token: an id token or an access token. A refresh token is refused.
    pub async fn verify_bearer(
        &self,
        db: &DatabaseConnection,
        token: &str,
    ) -> Result<BearerClaims, TokenError> {
        match self.verify(db, token, Accept::Bearer).await? {
            Verified::Id(claims) => Ok(BearerClaims::Id(claims)),
            Verified::Access(claims) => Ok(BearerClaims::Access(claims)),
            Verified::Refresh(_) => Err(TokenError::WrongTokenUse),
        }
    }

    /// `db` is used only to look for a key this process has not loaded yet.
    async fn verify(
        &self,
        db: &DatabaseConnection,
        token: &str,
        accept: Accept,
    ) -> Result<Verified, TokenError> {
        let claims = self.verify_signed(db, token).await?;
        typed(claims, accept, self.client_id())
    }
}

/// Checks `token_use` first (so a token of the wrong kind says so), then the audience of that
/// kind, then reads the claims into their type: a missing or mistyped claim is `Malformed`.
fn typed(claims: Value, accept: Accept, client_id: &str) -> Result<Verified, TokenError> {
    let token_use = claims
        .get("token_use")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed)?;
    let accepted = match (token_use, accept) {
        ("id", Accept::Id | Accept::Bearer) => TokenUse::Id,
        ("access", Accept::Access | Accept::Bearer) => TokenUse::Access,
        ("refresh", Accept::Refresh) => TokenUse::Refresh,
        _ => return Err(TokenError::WrongTokenUse),
    };
    let audience_claim = match accepted {
        TokenUse::Id => Some("aud"),
        TokenUse::Access => Some("client_id"),
        TokenUse::Refresh => None,
    };
    if let Some(name) = audience_claim
        && claims.get(name).and_then(Value::as_str) != Some(client_id)
    {
        return Err(TokenError::WrongAudience);
    }
    Ok(match accepted {
        TokenUse::Id => Verified::Id(read(claims)?),
        TokenUse::Access => Verified::Access(read(claims)?),
        TokenUse::Refresh => Verified::Refresh(read(claims)?),
    })
}

fn read<C: DeserializeOwned>(claims: Value) -> Result<C, TokenError> {
    serde_json::from_value(claims).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests;
