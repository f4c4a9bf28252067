//! Queries on users.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QuerySelect, prelude::Uuid,
};

pub async fn insert(
    db: &impl ConnectionTrait,
    row: user::ActiveModel,
) -> Result<user::Model, DbErr> {
    row.insert(db).await
}

pub async fn by_uid(db: &impl ConnectionTrait, uid: Uuid) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(uid).one(db).await
}

pub async fn by_email_key(
    db: &impl ConnectionTrait,
    email_key: &str,
) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::EmailKey.eq(email_key))
        .one(db)
        .await
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
    user::Entity::find()
        .filter(column.eq(value.as_str()))
        .one(db)
        .await
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
    user::Entity::find_by_id(uid)
        .lock_exclusive()
        .one(db)
        .await
        .map(|_| ())
}
