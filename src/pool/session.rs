//! Authenticating bearer tokens, refreshing, and signing out.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use entity::{refresh_token, session, user};
use sea_orm::{ConnectionTrait, DbErr, prelude::Uuid};

use super::{
    Infra, UserStatus,
    tokens::{Issued, SignedIn},
};
use crate::{
    crypto::jwt::{BearerClaims, RefreshClaims},
    state::AppState,
    store,
};

/// A request's verified caller: the token, its live session and the enabled user.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub claims: BearerClaims,
    pub session: session::Model,
    pub user: user::Model,
    /// Whether the user is on the newsletter list, read with the session (the account shows it).
    pub subscribed: bool,
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

/// Verifies an id or access token, then that its session is live and its user enabled: one read
/// by primary key (the session joined to its user), which makes sign-out, password reset and
/// disabling take effect at once.
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
    let found = store::sessions::with_user(&state.reads, session_id)
        .await?
        .filter(|f| {
            live(&f.session, now)
                && f.session.uid == uid
                && UserStatus::of(&f.user) != UserStatus::Disabled
        })
        .ok_or(AuthError::NotAuthorized)?;
    Ok(Authenticated {
        claims,
        session: found.session,
        user: found.user,
        subscribed: found.subscribed,
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
///
/// The write transaction is kept short, as on SQLite every other writer waits for it: the token
/// and its session are read before it, the usual case (an unused token of a live session of a
/// confirmed user) is then one conditional update and one insert, and the new tokens are signed
/// after it commits. Anything else is decided again on reads made inside it (`rotate_locked`).
pub async fn refresh(state: &AppState, token: &str) -> Result<SignedIn, RefreshError> {
    let claims = state
        .keys
        .verify_refresh(&state.db, token)
        .await
        .map_err(|_| RefreshError::NotAuthorized)?;
    let now = Utc::now();
    // Final without the lock: a missing token, an ended session or another user's never become
    // valid again. Read on the kept connections, like a bearer check (see `store::reads`).
    let Some((row, session, user)) = presented(&state.reads, &claims, now).await? else {
        return Err(RefreshError::NotAuthorized);
    };
    let txn = store::begin_write(&state.db).await?;
    let unused = row.used_at.is_none()
        && UserStatus::of(&user) == UserStatus::Confirmed
        // Re-checks, under the lock, what the reads above found.
        && store::sessions::use_refresh_token(&txn, &row.jti, Some(session.id), now).await?;
    let issued = if unused {
        super::tokens::issue(&txn, user, session, now).await?
    } else {
        match rotate_locked(state, &txn, &claims, now).await? {
            Rotation::Issued(issued) => *issued,
            // Dropped: rolled back, the token stays unused.
            Rotation::Refused => return Err(RefreshError::NotAuthorized),
            Rotation::Reused(session) => {
                txn.commit().await?;
                tracing::warn!(%session, "refresh token reused: session revoked");
                return Err(RefreshError::NotAuthorized);
            }
        }
    };
    txn.commit().await?;
    Ok(issued.sign(state).await)
}

/// The presented refresh token's row with its session, when that is live and the token's
/// subject's, and the session's user.
async fn presented(
    db: &impl ConnectionTrait,
    claims: &RefreshClaims,
    now: DateTime<Utc>,
) -> Result<Option<(refresh_token::Model, session::Model, user::Model)>, DbErr> {
    let Some(row) = store::sessions::refresh_token(db, &claims.jti).await? else {
        return Ok(None);
    };
    let found = store::sessions::with_user(db, row.session_id)
        .await?
        .filter(|f| live(&f.session, now) && f.session.uid.to_string() == claims.sub);
    Ok(found.map(|f| (row, f.session, f.user)))
}

/// What [`rotate_locked`] decided.
enum Rotation {
    Issued(Box<Issued>),
    /// Nothing to commit.
    Refused,
    /// Reuse: the session was revoked, to be committed.
    Reused(Uuid),
}

/// The whole rotation decided on reads made inside the write transaction.
async fn rotate_locked(
    state: &AppState,
    txn: &store::WriteTxn,
    claims: &RefreshClaims,
    now: DateTime<Utc>,
) -> Result<Rotation, DbErr> {
    let Some((row, session, user)) = presented(txn, claims, now).await? else {
        return Ok(Rotation::Refused);
    };
    let grace = TimeDelta::from_std(state.settings.tokens.refresh_reuse_grace).unwrap_or_default();
    let first_use = store::sessions::use_refresh_token(txn, &row.jti, None, now).await?;
    if !first_use {
        let used_at = match row.used_at {
            Some(at) => at,
            // Used by a concurrent request that committed after our read.
            None => now,
        };
        if grace.is_zero() || now - used_at > grace {
            store::sessions::revoke(txn, session.id, now).await?;
            return Ok(Rotation::Reused(session.id));
        }
    }
    if UserStatus::of(&user) != UserStatus::Confirmed {
        return Ok(Rotation::Refused);
    }
    let issued = super::tokens::issue(txn, user, session, now).await?;
    Ok(Rotation::Issued(Box::new(issued)))
}

/// Revokes the caller's session, or all of the user's sessions.
pub async fn logout(
    state: &AppState,
    caller: &Authenticated,
    everywhere: bool,
) -> Result<(), Infra> {
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
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
        // A write: it takes its turn like every other (see `store::begin_write`).
        let txn = store::begin_write(&state.db).await?;
        store::sessions::revoke(&txn, row.session_id, Utc::now()).await?;
        txn.commit().await?;
    }
    Ok(())
}
