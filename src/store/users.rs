//! Queries on users.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, prelude::Uuid, sea_query::LikeExpr,
};

use crate::pool::UserStatus;

pub async fn insert(
    db: &impl ConnectionTrait,
    row: user::ActiveModel,
) -> Result<user::Model, DbErr> {
    row.insert(db).await
}

pub async fn by_uid(db: &impl ConnectionTrait, uid: Uuid) -> Result<Option<user::Model>, DbErr> {
    super::by_key(db, user::Entity::find_by_id(uid).into_model()).await
}

pub async fn by_email_key(
    db: &impl ConnectionTrait,
    email_key: &str,
) -> Result<Option<user::Model>, DbErr> {
    let query = user::Entity::find().filter(user::Column::EmailKey.eq(email_key));
    super::by_key(db, query.into_model()).await
}

/// A user by a lookup key: a lower-cased email (`email_key`) or username (`username_key`).
pub async fn by_login_key(
    db: &impl ConnectionTrait,
    key: &LoginKey,
) -> Result<Option<user::Model>, DbErr> {
    let (column, value) = match key {
        LoginKey::Email(key) => (user::Column::EmailKey, key),
        LoginKey::Username(key) => (user::Column::UsernameKey, key),
        LoginKey::Uid(uid) => return by_uid(db, *uid).await,
    };
    let query = user::Entity::find().filter(column.eq(value.as_str()));
    super::by_key(db, query.into_model()).await
}

/// How a user is looked up by a name they typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginKey {
    Email(String),
    Username(String),
    Uid(Uuid),
}

pub async fn update(
    db: &impl ConnectionTrait,
    row: user::ActiveModel,
) -> Result<user::Model, DbErr> {
    row.update(db).await
}

/// Replaces a password hash with one of the same password under new parameters, only if the
/// stored hash is still `old`.
pub async fn upgrade_password_hash(
    db: &impl ConnectionTrait,
    uid: Uuid,
    old: &str,
    new: String,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(
            user::Column::PasswordHash,
            sea_orm::prelude::Expr::value(new),
        )
        .filter(user::Column::Uid.eq(uid))
        .filter(user::Column::PasswordHash.eq(old))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn set_password_hash(
    db: &impl ConnectionTrait,
    uid: Uuid,
    hash: String,
    now: DateTime<Utc>,
    changed: bool,
) -> Result<(), DbErr> {
    let mut row = user::ActiveModel {
        uid: Set(uid),
        password_hash: Set(hash),
        ..Default::default()
    };
    if changed {
        row.password_changed_at = Set(now);
        row.updated_at = Set(now);
    }
    row.update(db).await.map(|_| ())
}

/// Marks the user confirmed and their email verified.
pub async fn confirm(
    db: &impl ConnectionTrait,
    uid: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::ActiveModel {
        uid: Set(uid),
        confirmed_at: Set(Some(now)),
        email_verified: Set(true),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(db)
    .await
    .map(|_| ())
}

/// Marks the user's current email verified.
pub async fn set_email_verified(
    db: &impl ConnectionTrait,
    uid: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::ActiveModel {
        uid: Set(uid),
        email_verified: Set(true),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(db)
    .await
    .map(|_| ())
}

/// Locks the user's row until the transaction ends, so that concurrent additions to one user's
/// capped collections (API tokens, allowed hosts) take turns and the cap holds. PostgreSQL only:
/// SQLite write transactions (`store::begin_write`) already take turns.
pub async fn lock(db: &impl ConnectionTrait, uid: Uuid) -> Result<(), DbErr> {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    let query = user::Entity::find_by_id(uid).lock_exclusive();
    super::by_key(db, query.into_model::<user::Model>())
        .await
        .map(|_| ())
}

/// Which users a page of [`page`] holds.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only emails whose lower-cased form (`email_key`) starts with this (taken literally:
    /// `%` and `_` are not wildcards).
    pub email_key_prefix: Option<String>,
    pub status: Option<UserStatus>,
}

/// Up to `limit` users matching `filter` in `email_key` order (the unique index), after the
/// given key: keyset pages, stable while accounts are added or removed.
pub async fn page(
    db: &impl ConnectionTrait,
    filter: &UserFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<user::Model>, DbErr> {
    let mut query = user::Entity::find().order_by_asc(user::Column::EmailKey);
    if let Some(prefix) = &filter.email_key_prefix {
        let pattern = format!("{}%", escape_like(prefix));
        query = query.filter(user::Column::EmailKey.like(LikeExpr::new(pattern).escape('\\')));
    }
    query = match filter.status {
        None => query,
        Some(UserStatus::Disabled) => query.filter(user::Column::DisabledAt.is_not_null()),
        Some(UserStatus::Confirmed) => query
            .filter(user::Column::DisabledAt.is_null())
            .filter(user::Column::ConfirmedAt.is_not_null()),
        Some(UserStatus::Unconfirmed) => query
            .filter(user::Column::DisabledAt.is_null())
            .filter(user::Column::ConfirmedAt.is_null()),
    };
    if let Some(after) = after {
        query = query.filter(user::Column::EmailKey.gt(after));
    }
    query.limit(limit).all(db).await
}

/// `text` matched literally inside a `LIKE` pattern with `\` as the escape character.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Disables (`Some(now)`) or enables (`None`) a user.
pub async fn set_disabled(
    db: &impl ConnectionTrait,
    uid: Uuid,
    disabled_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::ActiveModel {
        uid: Set(uid),
        disabled_at: Set(disabled_at),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(db)
    .await
    .map(|_| ())
}

/// Deletes the user's row; `false` when there was none.
pub async fn delete(db: &impl ConnectionTrait, uid: Uuid) -> Result<bool, DbErr> {
    let result = user::Entity::delete_by_id(uid).exec(db).await?;
    Ok(result.rows_affected > 0)
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("ada@example.org"), "ada@example.org");
        assert_eq!(escape_like("a_b%c\\d"), "a\\_b\\%c\\\\d");
    }
}
