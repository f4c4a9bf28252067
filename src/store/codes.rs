//! Queries on one-time codes.

use entity::code;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    prelude::{Expr, Uuid},
    sea_query::{ExprTrait, OnConflict},
};

/// The live code of a user for a purpose, locked for the rest of the transaction on PostgreSQL
/// (SQLite write transactions are exclusive already), so concurrent attempts are counted one by
/// one.
pub async fn for_update(
    db: &impl ConnectionTrait,
    uid: Uuid,
    purpose: &str,
) -> Result<Option<code::Model>, DbErr> {
    let mut query = code::Entity::find_by_id((uid, purpose.to_string()));
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        query = query.lock_exclusive();
    }
    super::by_key(db, query.into_model()).await
}

/// Stores a code, replacing the previous one for the same purpose. The resend counters of the
/// row being replaced are kept: they are the caller's to change.
pub async fn put(db: &impl ConnectionTrait, row: code::ActiveModel) -> Result<(), DbErr> {
    code::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([code::Column::Uid, code::Column::Purpose])
                .update_columns([
                    code::Column::CodeHash,
                    code::Column::Target,
                    code::Column::ExpiresAt,
                    code::Column::Attempts,
                    code::Column::SentAt,
                    code::Column::Resends,
                    code::Column::ResendWindowStart,
                    code::Column::LastResendAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn record_wrong_attempt(
    db: &impl ConnectionTrait,
    uid: Uuid,
    purpose: &str,
) -> Result<(), DbErr> {
    code::Entity::update_many()
        .col_expr(
            code::Column::Attempts,
            Expr::col(code::Column::Attempts).add(1),
        )
        .filter(code::Column::Uid.eq(uid))
        .filter(code::Column::Purpose.eq(purpose))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn delete(db: &impl ConnectionTrait, uid: Uuid, purpose: &str) -> Result<(), DbErr> {
    code::Entity::delete_by_id((uid, purpose.to_string()))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn update(db: &impl ConnectionTrait, row: code::ActiveModel) -> Result<(), DbErr> {
    row.update(db).await.map(|_| ())
}

/// Deletes every code of a user, whatever its purpose.
pub async fn delete_all(db: &impl ConnectionTrait, uid: Uuid) -> Result<u64, DbErr> {
    let result = code::Entity::delete_many()
        .filter(code::Column::Uid.eq(uid))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
