//! Queries on the consecutive-failure counters behind login lockout.

use entity::login_failure;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, QuerySelect};

pub async fn get(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<login_failure::Model>, DbErr> {
    super::by_key(
        db,
        login_failure::Entity::find_by_id(key.to_string()).into_model(),
    )
    .await
}

/// The counter row, locked for the rest of the transaction on PostgreSQL.
pub async fn for_update(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<login_failure::Model>, DbErr> {
    let mut query = login_failure::Entity::find_by_id(key.to_string());
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        query = query.lock_exclusive();
    }
    super::by_key(db, query.into_model()).await
}

/// Creates the row at zero if it does not exist, so that it can then be locked.
pub async fn ensure(
    db: &impl ConnectionTrait,
    key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), DbErr> {
    let row = login_failure::ActiveModel {
        key: sea_orm::ActiveValue::Set(key.to_string()),
        count: sea_orm::ActiveValue::Set(0),
        last_failure_at: sea_orm::ActiveValue::Set(now),
        locked_until: sea_orm::ActiveValue::Set(None),
    };
    login_failure::Entity::insert(row)
        .on_conflict_do_nothing_on([login_failure::Column::Key])
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn update(
    db: &impl ConnectionTrait,
    row: login_failure::ActiveModel,
) -> Result<(), DbErr> {
    row.update(db).await.map(|_| ())
}

/// Deletes the counter row and returns what it held. On PostgreSQL the `DELETE` waits for a
/// transaction writing the row and then sees its commit, as `FOR UPDATE` would.
pub async fn take(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<login_failure::Model>, DbErr> {
    login_failure::Entity::delete_by_id(key.to_string())
        .exec_with_returning(db)
        .await
}

pub async fn clear(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    login_failure::Entity::delete_by_id(key.to_string())
        .exec(db)
        .await
        .map(|_| ())
}
