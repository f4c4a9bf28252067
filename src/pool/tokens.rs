//! Sessions and the tokens they yield.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use entity::{refresh_token, session, user};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, prelude::Uuid};

use super::cognito_username;
use crate::{
    crypto::jwt::{AccessClaims, IdClaims, RefreshClaims, TokenUse},
    state::AppState,
    store,
};

/// Cognito's scope for tokens that may call the user's own account operations.
pub const ACCESS_SCOPE: &str = "aws.cognito.signin.user.admin";

/// What a sign-in or a refresh yields.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub uid: Uuid,
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
    /// Lifetime of the id token, in seconds.
    pub id_expires_in: u64,
    /// Seconds until the refresh token (and the session) expires.
    pub refresh_expires_in: u64,
}

/// The tokens of a sign-in or a refresh, stored but not signed yet: [`Issued::sign`] them once
/// the transaction that stored them has committed (three RS256 signatures need no transaction,
/// and on SQLite a write transaction keeps every other writer waiting).
#[derive(Debug)]
#[must_use = "sign the tokens after the transaction commits"]
pub struct Issued {
    user: user::Model,
    session: session::Model,
    refresh_jti: String,
    now: DateTime<Utc>,
}

impl Issued {
    /// Signs on a blocking thread: three RS256 signatures (~0.8 ms of CPU in one go) would
    /// otherwise keep a runtime worker from the tasks whose database answers are waiting, among
    /// them the one holding the write lock that every refresh and sign-in queues for.
    pub async fn sign(self, state: &AppState) -> SignedIn {
        let state = state.clone();
        let signing = tokio::task::spawn_blocking(move || {
            sign(
                &state,
                &self.user,
                &self.session,
                self.refresh_jti,
                self.now,
            )
        });
        match signing.await {
            Ok(signed_in) => signed_in,
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
}

/// A session for a user who just proved their password, and its first refresh token: built,
/// not stored yet.
#[derive(Debug)]
pub struct NewSession {
    user: user::Model,
    session: session::Model,
    refresh_jti: String,
    now: DateTime<Utc>,
}

impl NewSession {
    pub fn new(state: &AppState, user: user::Model, now: DateTime<Utc>) -> Self {
        let expires_at =
            now + TimeDelta::from_std(state.settings.tokens.refresh_ttl).unwrap_or_default();
        // The session id doubles as `origin_jti`: every token of the sign-in names it, so
        // authenticating a request finds the session by primary key.
        let id = Uuid::new_v4();
        let session = session::Model {
            id,
            uid: user.uid,
            client_id: state.client_id.to_string(),
            auth_time: now,
            origin_jti: id.to_string(),
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        Self {
            user,
            session,
            refresh_jti: Uuid::new_v4().to_string(),
            now,
        }
    }

    /// Signs the session's tokens on the calling thread (three RS256 signatures), for a caller
    /// on a thread made for CPU work. Nobody may see them before [`NewSession::store`]'s
    /// transaction commits: until then the session they name does not exist.
    pub fn sign_here(&self, state: &AppState) -> SignedIn {
        sign(
            state,
            &self.user,
            &self.session,
            self.refresh_jti.clone(),
            self.now,
        )
    }

    /// Stores the session and its first refresh token inside the caller's transaction.
    pub async fn store(self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let session = store::sessions::insert(db, self.session).await?;
        store_refresh_token(db, self.user, session, self.refresh_jti, self.now)
            .await
            .map(drop)
    }
}

/// Stores a new refresh token for a live session, to be signed with id and access tokens.
pub async fn issue(
    db: &impl ConnectionTrait,
    user: user::Model,
    session: session::Model,
    now: DateTime<Utc>,
) -> Result<Issued, DbErr> {
    store_refresh_token(db, user, session, Uuid::new_v4().to_string(), now).await
}

async fn store_refresh_token(
    db: &impl ConnectionTrait,
    user: user::Model,
    session: session::Model,
    refresh_jti: String,
    now: DateTime<Utc>,
) -> Result<Issued, DbErr> {
    store::sessions::insert_refresh_token(
        db,
        refresh_token::ActiveModel {
            jti: Set(refresh_jti.clone()),
            session_id: Set(session.id),
            issued_at: Set(now),
            expires_at: Set(session.expires_at),
            used_at: Set(None),
        },
    )
    .await?;
    Ok(Issued {
        user,
        session,
        refresh_jti,
        now,
    })
}

fn sign(
    state: &AppState,
    user: &user::Model,
    session: &session::Model,
    refresh_jti: String,
    now: DateTime<Utc>,
) -> SignedIn {
    let tokens = &state.settings.tokens;
    let iat = now.timestamp();
    let issuer = state.keys.issuer().to_string();
    let origin_jti = session.id.to_string();
    let username = cognito_username(user);
    let non_empty = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let id = IdClaims {
        sub: user.uid.to_string(),
        aud: state.client_id.to_string(),
        iss: issuer.clone(),
        token_use: TokenUse::Id,
        email: user.email.clone(),
        email_verified: user.email_verified,
        cognito_username: username.clone(),
        given_name: non_empty(&user.first_name),
        family_name: non_empty(&user.last_name),
        auth_time: session.auth_time.timestamp(),
        iat,
        exp: iat + seconds(tokens.id_ttl),
        jti: Uuid::new_v4().to_string(),
        origin_jti: origin_jti.clone(),
    };
    let access = AccessClaims {
        sub: user.uid.to_string(),
        client_id: state.client_id.to_string(),
        iss: issuer.clone(),
        token_use: TokenUse::Access,
        scope: ACCESS_SCOPE.to_string(),
        username,
        auth_time: session.auth_time.timestamp(),
        iat,
        exp: iat + seconds(tokens.access_ttl),
        jti: Uuid::new_v4().to_string(),
        origin_jti,
    };
    let refresh_exp = session.expires_at.timestamp();
    let refresh = RefreshClaims {
        sub: user.uid.to_string(),
        iss: issuer,
        token_use: TokenUse::Refresh,
        iat,
        exp: refresh_exp,
        jti: refresh_jti,
    };
    SignedIn {
        uid: user.uid,
        id_token: state.keys.sign(&id),
        access_token: state.keys.sign(&access),
        refresh_token: state.keys.sign(&refresh),
        expires_in: tokens.access_ttl.as_secs(),
        id_expires_in: tokens.id_ttl.as_secs(),
        refresh_expires_in: u64::try_from(refresh_exp - iat).unwrap_or(0),
    }
}

fn seconds(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
