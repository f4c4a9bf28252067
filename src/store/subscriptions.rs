//! Queries on the local newsletter list.

use chrono::{DateTime, Utc};
use entity::{subscription, user};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
    prelude::{Expr, Uuid},
    sea_query::{ExprTrait, OnConflict, Query, SelectStatement},
};

/// Records a subscription, or renews the existing one for the same (lower-cased) email: the
/// address and status are replaced and `created_at` is kept. A `None` uid or remote status keeps
/// the one already recorded, if any (a subscription renewed while Mailchimp is not configured
/// keeps the outcome of an earlier call).
pub async fn upsert(
    db: &impl ConnectionTrait,
    email: &str,
    email_key: &str,
    uid: Option<Uuid>,
    status: &str,
    remote_status: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = subscription::ActiveModel {
        email_key: Set(email_key.to_string()),
        email: Set(email.to_string()),
        uid: Set(uid),
        status: Set(status.to_string()),
        remote_status: Set(remote_status.map(str::to_string)),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let mut columns = vec![
        subscription::Column::Email,
        subscription::Column::Status,
        subscription::Column::UpdatedAt,
    ];
    if uid.is_some() {
        columns.push(subscription::Column::Uid);
    }
    if remote_status.is_some() {
        columns.push(subscription::Column::RemoteStatus);
    }
    // One statement, so two racing subscriptions of one address cannot both insert.
    subscription::Entity::insert(row)
        .on_conflict(
            OnConflict::column(subscription::Column::EmailKey)
                .update_columns(columns)
                .to_owned(),
        )
        .exec(db)
        .await
        .map(|_| ())
}

/// Records the outcome at the newsletter service.
pub async fn set_remote_status(
    db: &impl ConnectionTrait,
    email_key: &str,
    remote_status: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    subscription::Entity::update_many()
        .col_expr(
            subscription::Column::RemoteStatus,
            Expr::value(remote_status.to_string()),
        )
        .col_expr(subscription::Column::UpdatedAt, Expr::value(now))
        .filter(subscription::Column::EmailKey.eq(email_key))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn by_email_key(
    db: &impl ConnectionTrait,
    email_key: &str,
) -> Result<Option<subscription::Model>, DbErr> {
    let query = subscription::Entity::find_by_id(email_key.to_string());
    super::by_key(db, query.into_model()).await
}

/// Whether a subscription with this status exists for the account or for its email (both
/// indexed: `uid` has an index, `email_key` is the primary key).
pub async fn exists_for(
    db: &impl ConnectionTrait,
    uid: Uuid,
    email_key: &str,
    status: &str,
) -> Result<bool, DbErr> {
    let matching = listing(status, Expr::value(uid), Expr::value(email_key));
    // `SELECT EXISTS (…)`, not `.one()`: its bound `LIMIT ?` makes SQLite re-prepare the
    // statement on every execution (see `store::by_key`).
    let query = Query::select().expr(Expr::exists(matching)).to_owned();
    let row = db.query_one(&query).await?;
    Ok(row
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false))
}

/// The local status of a subscription (the only one so far).
pub const SUBSCRIBED: &str = "subscribed";

/// `EXISTS (…)` for a query on `users`: whether a subscription with this status exists for that
/// row's account or its email, so a user is read with the flag in one statement.
pub fn exists_for_user_row(status: &str) -> Expr {
    Expr::exists(listing(
        status,
        Expr::col((user::Entity, user::Column::Uid)),
        Expr::col((user::Entity, user::Column::EmailKey)),
    ))
}

/// The subscriptions with this status of an account or of an email.
fn listing(status: &str, uid: Expr, email_key: Expr) -> SelectStatement {
    subscription::Entity::find()
        .select_only()
        .column(subscription::Column::EmailKey)
        .filter(subscription::Column::Status.eq(status))
        .filter(
            Condition::any()
                .add(ExprTrait::eq(
                    Expr::col((subscription::Entity, subscription::Column::Uid)),
                    uid,
                ))
                .add(ExprTrait::eq(
                    Expr::col((subscription::Entity, subscription::Column::EmailKey)),
                    email_key,
                )),
        )
        .into_query()
}

/// Up to `limit` subscriptions in `email_key` order, after the given key: pages for an export
/// that holds one page in memory however long the list is.
pub async fn page_after(
    db: &impl ConnectionTrait,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<subscription::Model>, DbErr> {
    let mut query = subscription::Entity::find().order_by_asc(subscription::Column::EmailKey);
    if let Some(after) = after {
        query = query.filter(subscription::Column::EmailKey.gt(after));
    }
    query.limit(limit).all(db).await
}

/// Unlinks a user's subscriptions from the account (they stay, keyed by email).
pub async fn unlink_uid(db: &impl ConnectionTrait, uid: Uuid) -> Result<u64, DbErr> {
    let result = subscription::Entity::update_many()
        .col_expr(subscription::Column::Uid, Expr::value(Option::<Uuid>::None))
        .filter(subscription::Column::Uid.eq(uid))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
