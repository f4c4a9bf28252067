//! The mail outbox: rows written in the caller's transaction, claimed by delivery workers with a
//! lease, then marked sent, rescheduled or failed.
//!
//! No transaction stays open while a message is sent (SQLite has a single writer, and an SMTP
//! server may take seconds): a worker first stamps due rows with its own claim token and a lease
//! end in one `UPDATE`, commits, reads them back by token, sends, and records each outcome only
//! if it still holds the claim. A worker that dies lets its lease run out and another takes over.
//! Delivery is therefore at least once: a worker that dies (or loses the database) between a
//! send and its record lets the message go out again after the lease, never lost.

use chrono::{DateTime, Utc};
use entity::mail_outbox::{self, ActiveModel, Column, Entity};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
    sea_query::Expr,
};

/// A message ready to be stored.
pub struct NewMail<'a> {
    pub recipient: &'a str,
    pub subject: &'a str,
    pub text_body: &'a str,
    pub html_body: &'a str,
}

/// Stores a message due at once, with no attempts yet, and returns its id.
pub async fn insert(
    conn: &impl ConnectionTrait,
    mail: NewMail<'_>,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let row = ActiveModel {
        id: NotSet,
        recipient: Set(mail.recipient.to_string()),
        subject: Set(mail.subject.to_string()),
        text_body: Set(mail.text_body.to_string()),
        html_body: Set(mail.html_body.to_string()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        claim_token: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        failed_at: Set(None),
        last_error: Set(None),
    };
    Ok(Entity::insert(row).exec(conn).await?.last_insert_id)
}

/// One message by id.
pub async fn by_id(
    db: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<mail_outbox::Model>, DbErr> {
    super::by_key(db, Entity::find_by_id(id).into_model()).await
}

/// Nobody holds the row: never claimed, released, or its lease ran out.
fn unclaimed(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(Column::ClaimedUntil.is_null())
        .add(Column::ClaimedUntil.lt(now))
}

/// Claims up to `limit` due rows for `token` until `lease_end` and returns them, oldest due first.
///
/// The outer `unclaimed` re-check matters on PostgreSQL: two workers may pick the same ids in
/// their sub-selects; the second `UPDATE` waits for the first's row locks, re-evaluates its
/// `WHERE` on the new row versions, and skips the rows just claimed. On SQLite the statement runs
/// alone (one writer), so the sub-select already sees every earlier claim.
pub async fn claim_due(
    db: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
    lease_end: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<mail_outbox::Model>, DbErr> {
    let due_ids = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::SentAt.is_null())
        .filter(Column::FailedAt.is_null())
        .filter(Column::NextAttemptAt.lte(now))
        .filter(unclaimed(now))
        .order_by_asc(Column::NextAttemptAt)
        .order_by_asc(Column::Id)
        .limit(limit)
        .into_query();
    Entity::update_many()
        .set(ActiveModel {
            claim_token: Set(Some(token.to_string())),
            claimed_until: Set(Some(lease_end)),
            ..Default::default()
        })
        .filter(Column::Id.in_subquery(due_ids))
        .filter(unclaimed(now))
        .exec(db)
        .await?;
    Entity::find()
        .filter(Column::ClaimToken.eq(token))
        .order_by_asc(Column::NextAttemptAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await
}

/// Records a delivered message. Returns false when the claim was lost (the lease ran out and
/// another worker took the row), in which case nothing is changed.
pub async fn mark_sent(
    db: &impl ConnectionTrait,
    id: i64,
    token: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let outcome = ActiveModel {
        sent_at: Set(Some(now)),
        last_error: Set(None),
        ..released()
    };
    record(db, id, token, outcome).await
}

/// Records a failed attempt: the new attempt count, why, and when to try again.
pub async fn mark_retry(
    db: &impl ConnectionTrait,
    id: i64,
    token: &str,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> Result<bool, DbErr> {
    let outcome = ActiveModel {
        attempts: Set(attempts),
        next_attempt_at: Set(next_attempt_at),
        last_error: Set(Some(error.to_string())),
        ..released()
    };
    record(db, id, token, outcome).await
}

/// Records a message that will never be delivered; it is not tried again.
pub async fn mark_failed(
    db: &impl ConnectionTrait,
    id: i64,
    token: &str,
    attempts: i32,
    now: DateTime<Utc>,
    error: &str,
) -> Result<bool, DbErr> {
    let outcome = ActiveModel {
        attempts: Set(attempts),
        failed_at: Set(Some(now)),
        last_error: Set(Some(error.to_string())),
        ..released()
    };
    record(db, id, token, outcome).await
}

/// Gives back every row still claimed with `token`, due at once, e.g. when a worker stops
/// before the end of its batch.
pub async fn release(db: &impl ConnectionTrait, token: &str) -> Result<u64, DbErr> {
    let result = Entity::update_many()
        .set(released())
        .filter(Column::ClaimToken.eq(token))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The change that ends a claim.
fn released() -> ActiveModel {
    ActiveModel {
        claim_token: Set(None),
        claimed_until: Set(None),
        ..Default::default()
    }
}

async fn record(
    db: &impl ConnectionTrait,
    id: i64,
    token: &str,
    outcome: ActiveModel,
) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .set(outcome)
        .filter(Column::Id.eq(id))
        .filter(Column::ClaimToken.eq(token))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The state of the outbox, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Not sent and not given up: waiting for delivery.
    pub pending: u64,
    /// Not sent, last attempt failed: waiting for a retry, or given up.
    pub failed: u64,
    /// Given up for good.
    pub given_up: u64,
    /// When the oldest pending message was queued.
    pub oldest_pending: Option<DateTime<Utc>>,
}

/// Counts unsent rows in one query over the `(sent_at, next_attempt_at)` index: sent rows,
/// the bulk of the table, are never read.
pub async fn stats(db: &impl ConnectionTrait) -> Result<OutboxStats, DbErr> {
    let row: Option<(i64, i64, i64, Option<DateTime<Utc>>)> = Entity::find()
        .select_only()
        .expr(Expr::cust(
            "COALESCE(SUM(CASE WHEN failed_at IS NULL THEN 1 ELSE 0 END), 0)",
        ))
        .expr(Expr::cust(
            "COALESCE(SUM(CASE WHEN last_error IS NOT NULL THEN 1 ELSE 0 END), 0)",
        ))
        .expr(Expr::cust(
            "COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0)",
        ))
        .expr(Expr::cust(
            "MIN(CASE WHEN failed_at IS NULL THEN created_at END)",
        ))
        .filter(Column::SentAt.is_null())
        .into_tuple()
        .one(db)
        .await?;
    let Some((pending, failed, given_up, oldest_pending)) = row else {
        return Ok(OutboxStats::default());
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(OutboxStats {
        pending: count(pending),
        failed: count(failed),
        given_up: count(given_up),
        oldest_pending,
    })
}
