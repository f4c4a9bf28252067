//! Purges of rows that nothing will read again, a bounded batch per statement: each statement
//! holds the write lock (SQLite) or its row locks (PostgreSQL) only briefly, so requests keep
//! flowing while a large backlog drains.

use chrono::{DateTime, Utc};
use entity::{code, login_failure, mail_outbox, session, signing_key};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    QueryTrait,
};

/// Codes that expired before `cutoff`. Returns how many rows went.
pub async fn expired_codes(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
    // The key is (uid, purpose): the batch picks users, and their expired codes go with them
    // (at most one per purpose, so a batch stays bounded).
    let uids = code::Entity::find()
        .select_only()
        .column(code::Column::Uid)
        .filter(code::Column::ExpiresAt.lt(cutoff))
        .limit(batch)
        .into_query();
    let result = code::Entity::delete_many()
        .filter(code::Column::ExpiresAt.lt(cutoff))
        .filter(code::Column::Uid.in_subquery(uids))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Sessions that expired, or were revoked, before `cutoff`; their refresh tokens go with them
/// (foreign key cascade). A token of a session that is gone is refused like a revoked one.
pub async fn ended_sessions(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
    let ended = Condition::any()
        .add(session::Column::ExpiresAt.lt(cutoff))
        .add(session::Column::RevokedAt.lt(cutoff));
    let ids = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(ended)
        .limit(batch)
        .into_query();
    let result = session::Entity::delete_many()
        .filter(session::Column::Id.in_subquery(ids))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Outbox rows sent, or given up on, before `cutoff`. Rows still to be sent are never touched.
pub async fn finished_mail(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
    let finished = Condition::any()
        .add(mail_outbox::Column::SentAt.lt(cutoff))
        .add(mail_outbox::Column::FailedAt.lt(cutoff));
    let ids = mail_outbox::Entity::find()
        .select_only()
        .column(mail_outbox::Column::Id)
        .filter(finished)
        .limit(batch)
        .into_query();
    let result = mail_outbox::Entity::delete_many()
        .filter(mail_outbox::Column::Id.in_subquery(ids))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Sign-in failure counters whose last failure was before `cutoff` and that lock nothing now.
pub async fn stale_login_failures(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
    let stale = Condition::all()
        .add(login_failure::Column::LastFailureAt.lt(cutoff))
        .add(
            Condition::any()
                .add(login_failure::Column::LockedUntil.is_null())
                .add(login_failure::Column::LockedUntil.lt(now)),
        );
    let keys = login_failure::Entity::find()
        .select_only()
        .column(login_failure::Column::Key)
        .filter(stale.clone())
        .limit(batch)
        .into_query();
    let result = login_failure::Entity::delete_many()
        .filter(stale)
        .filter(login_failure::Column::Key.in_subquery(keys))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Signing keys retired before `cutoff` (no longer published: every token they signed has
/// expired). The active key has no `retired_at` and is never matched.
pub async fn unpublished_keys(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = signing_key::Entity::delete_many()
        .filter(signing_key::Column::RetiredAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
