//! Authenticating bearer tokens, refreshing, and signing out.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use entity::{session, user};
use sea_orm::{TransactionTrait, prelude::Uuid};

use super::{Infra, UserStatus, tokens::SignedIn};
use crate::{crypto::jwt::BearerClaims, state::AppState, store};

/// A request's verified caller: the token, its live session and the enabled user.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub claims: BearerClaims,
    pub session: session::Model,
    pub user: user::Model,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, expired, revoked or foreign token, or a disabled user.
    #[error("Invalid or expired token.")]
    NotAuthorized,
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(AuthError);

/// Verifies an id or access token, then that its session is live and its user enabled: two reads
/// by primary key, which make sign-out, password reset and disabling take effect at once.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Authenticated, AuthError> {
    let claims = state
        .keys
        .verify_bearer(&state.db, token)
        .await
        .map_err(|_| AuthError::NotAuthorized)?;
    let (Ok(session_id), Ok(uid)) = (
        Uuid::parse_str(claims.origin_jti()),
        Uuid::parse_str(claims.sub()),
    ) else {
        return Err(AuthError::NotAuthorized);
    };
    let now = Utc::now();
    let session = store::sessions::by_id(&state.db, session_id)
        .await?
        .filter(|s| live(s, now) && s.uid == uid)
        .ok_or(AuthError::NotAuthorized)?;
    let user = store::users::by_uid(&state.db, uid)
        .await?
        .filter(|u| UserStatus::of(u) != UserStatus::Disabled)
        .ok_or(AuthError::NotAuthorized)?;
    Ok(Authenticated {
        claims,
        session,
        user,
    })
}

fn live(session: &session::Model, now: DateTime<Utc>) -> bool {
    session.revoked_at.is_none() && session.expires_at > now
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Invalid, expired or revoked refresh token, or a reused one (which revokes the session).
    #[error("Invalid refresh token.")]
    NotAuthorized,
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(RefreshError);

/// Exchanges a refresh token for new tokens and a new refresh token (rotation). Presenting a
/// refresh token that was already exchanged revokes its whole session (reuse detection), unless
/// it was exchanged within the configured grace window (racing browser tabs).
pub async fn refresh(state: &AppState, token: &str) -> Result<SignedIn, RefreshError> {
    let claims = state
        .keys
        .verify_refresh(&state.db, token)
        .await
        .map_err(|_| RefreshError::NotAuthorized)?;
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    let Some(row) = store::sessions::refresh_token(&txn, &claims.jti).await? else {
        return Err(RefreshError::NotAuthorized);
    };
    let Some(session) = store::sessions::by_id(&txn, row.session_id)
        .await?
        .filter(|s| live(s, now) && s.uid.to_string() == claims.sub)
    else {
        return Err(RefreshError::NotAuthorized);
    };
    let grace = TimeDelta::from_std(state.settings.tokens.refresh_reuse_grace).unwrap_or_default();
    let first_use = store::sessions::use_refresh_token(&txn, &row.jti, now).await?;
    if !first_use {
        let used_at = match row.used_at {
            Some(at) => at,
            // Used by a concurrent request that committed after our read.
            None => now,
        };
        if grace.is_zero() || now - used_at > grace {
            store::sessions::revoke(&txn, session.id, now).await?;
            txn.commit().await?;
            tracing::warn!(session = %session.id, "refresh token reused: session revoked");
            return Err(RefreshError::NotAuthorized);
        }
    }
    let Some(user) = store::users::by_uid(&txn, session.uid)
        .await?
        .filter(|u| UserStatus::of(u) == UserStatus::Confirmed)
    else {
        return Err(RefreshError::NotAuthorized);
    };
    let signed_in = super::tokens::issue(state, &txn, &user, &session, now).await?;
    txn.commit().await?;
    Ok(signed_in)
}

/// Revokes the caller's session, or all of the user's sessions.
pub async fn logout(
    state: &AppState,
    caller: &Authenticated,
    everywhere: bool,
) -> Result<(), Infra> {
    let now = Utc::now();
    let txn = state.db.begin().await?;
    if everywhere {
        store::sessions::revoke_all(&txn, caller.user.uid, None, now).await?;
    } else {
        store::sessions::revoke(&txn, caller.session.id, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Revokes the session a refresh token belongs to, when it is one of the caller's own; does
/// nothing for any other token (invalid, expired, someone else's), so the answer tells nothing.
pub async fn revoke_own_session_of(
    state: &AppState,
    caller: &Authenticated,
    token: &str,
) -> Result<(), Infra> {
    let Ok(claims) = state.keys.verify_refresh(&state.db, token).await else {
        return Ok(());
    };
    if Uuid::parse_str(&claims.sub).ok() != Some(caller.user.uid) {
        return Ok(());
    }
    let Some(row) = store::sessions::refresh_token(&state.db, &claims.jti).await? else {
        return Ok(());
    };
    let own = store::sessions::by_id(&state.db, row.session_id)
        .await?
        .is_some_and(|s| s.uid == caller.user.uid);
    if own {
        store::sessions::revoke(&state.db, row.session_id, Utc::now()).await?;
    }
    Ok(())
}
