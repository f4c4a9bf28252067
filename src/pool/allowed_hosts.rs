//! The hosts a user's API tokens may be used from: a list per user, capped at
//! `max_allowed_hosts`, unique per user after normalisation, and the matching rule introspection
//! applies to a requested host.

use chrono::Utc;
use entity::allowed_host;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, SqlErr, prelude::Uuid};

use super::{Infra, session::Authenticated};
use crate::{domain::Host, state::AppState, store};

#[derive(Debug, thiserror::Error)]
pub enum AllowedHostError {
    /// Unknown, or another user's: the two are indistinguishable on purpose.
    #[error("No such allowed host.")]
    NotFound,
    #[error("This host is already in your list of allowed hosts.")]
    Duplicate,
    #[error("You already have {0} allowed hosts, the most allowed; delete one first.")]
    LimitReached(u64),
    #[error(transparent)]
    Infra(#[from] Infra),
}

impl From<DbErr> for AllowedHostError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            // Uniqueness is the primary key's job: (uid, host) in canonical form, so two racing
            // requests for the same host both insert and one loses here.
            Some(SqlErr::UniqueConstraintViolation(_)) => Self::Duplicate,
            _ => Self::Infra(err.into()),
        }
    }
}

/// The caller's hosts, oldest first.
pub async fn list(
    state: &AppState,
    caller: &Authenticated,
) -> Result<Vec<allowed_host::Model>, AllowedHostError> {
    Ok(store::allowed_hosts::owned(&state.db, caller.user.uid).await?)
}

/// Adds a host and answers the whole list, oldest first.
pub async fn create(
    state: &AppState,
    caller: &Authenticated,
    host: &Host,
) -> Result<Vec<allowed_host::Model>, AllowedHostError> {
    let uid = caller.user.uid;
    let max = state.settings.max_allowed_hosts;
    let txn = store::begin_write(&state.db).await?;
    store::users::lock(&txn, uid).await?;
    if store::allowed_hosts::count_owned(&txn, uid).await? >= max {
        return Err(AllowedHostError::LimitReached(max));
    }
    store::allowed_hosts::insert(
        &txn,
        allowed_host::ActiveModel {
            uid: Set(uid),
            host: Set(host.as_str().to_string()),
            created_at: Set(Utc::now()),
        },
    )
    .await?;
    let hosts = store::allowed_hosts::owned(&txn, uid).await?;
    txn.commit().await?;
    Ok(hosts)
}

/// One of the caller's hosts.
pub async fn read(
    state: &AppState,
    caller: &Authenticated,
    host: &Host,
) -> Result<allowed_host::Model, AllowedHostError> {
    store::allowed_hosts::owned_by_host(&state.db, caller.user.uid, host.as_str())
        .await?
        .ok_or(AllowedHostError::NotFound)
}

/// Replaces one of the caller's hosts by another, keeping its place in the list (its creation
/// time). Replacing a host by itself changes nothing and succeeds.
pub async fn rename(
    state: &AppState,
    caller: &Authenticated,
    from: &Host,
    to: &Host,
) -> Result<allowed_host::Model, AllowedHostError> {
    let uid = caller.user.uid;
    let txn = store::begin_write(&state.db).await?;
    if !store::allowed_hosts::rename(&txn, uid, from.as_str(), to.as_str()).await? {
        return Err(AllowedHostError::NotFound);
    }
    let renamed = store::allowed_hosts::owned_by_host(&txn, uid, to.as_str())
        .await?
        .ok_or(AllowedHostError::NotFound)?;
    txn.commit().await?;
    Ok(renamed)
}

/// Removes one of the caller's hosts.
pub async fn delete(
    state: &AppState,
    caller: &Authenticated,
    host: &Host,
) -> Result<(), AllowedHostError> {
    let txn = store::begin_write(&state.db).await?;
    if !store::allowed_hosts::delete(&txn, caller.user.uid, host.as_str()).await? {
        return Err(AllowedHostError::NotFound);
    }
    txn.commit().await?;
    Ok(())
}

/// Whether any of the user's allowed hosts admits `requested` (see [`Host::matches`]). A user
/// without allowed hosts admits none.
pub async fn is_allowed(
    db: &impl ConnectionTrait,
    uid: Uuid,
    requested: &Host,
) -> Result<bool, DbErr> {
    let hosts = store::allowed_hosts::owned_hosts(db, uid).await?;
    Ok(hosts.iter().any(|stored| match Host::parse(stored) {
        Ok(allowed) => allowed.matches(requested),
        // Only canonical hosts are ever stored; a row written otherwise admits nothing.
        Err(_) => {
            tracing::warn!(%uid, "an allowed host in the database does not parse");
            false
        }
    }))
}
