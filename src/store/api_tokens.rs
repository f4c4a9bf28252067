//! Queries on personal API tokens. Everything a user does is scoped by their uid here, so a
//! foreign key behaves exactly like an unknown one.

use chrono::{DateTime, Utc};
use entity::{api_token, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, JoinType, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
    prelude::{Expr, Uuid},
};

pub async fn insert(
    db: &impl ConnectionTrait,
    row: api_token::ActiveModel,
) -> Result<api_token::Model, DbErr> {
    row.insert(db).await
}

pub async fn update(
    db: &impl ConnectionTrait,
    row: api_token::ActiveModel,
) -> Result<api_token::Model, DbErr> {
    row.update(db).await
}

pub async fn count_owned(db: &impl ConnectionTrait, uid: Uuid) -> Result<u64, DbErr> {
    api_token::Entity::find()
        .filter(api_token::Column::Uid.eq(uid))
        .count(db)
        .await
}

/// A user's tokens, oldest first.
pub async fn owned(db: &impl ConnectionTrait, uid: Uuid) -> Result<Vec<api_token::Model>, DbErr> {
    api_token::Entity::find()
        .filter(api_token::Column::Uid.eq(uid))
        .order_by_asc(api_token::Column::CreatedAt)
        .order_by_asc(api_token::Column::Key)
        .all(db)
        .await
}

/// One of a user's tokens; `None` when the key is unknown or someone else's.
pub async fn owned_by_key(
    db: &impl ConnectionTrait,
    uid: Uuid,
    key: &str,
) -> Result<Option<api_token::Model>, DbErr> {
    let query =
        api_token::Entity::find_by_id(key.to_string()).filter(api_token::Column::Uid.eq(uid));
    super::by_key(db, query.into_model()).await
}

/// Deletes one of a user's tokens; false when the key is unknown or someone else's.
pub async fn delete_owned(db: &impl ConnectionTrait, uid: Uuid, key: &str) -> Result<bool, DbErr> {
    let result = api_token::Entity::delete_many()
        .filter(api_token::Column::Key.eq(key))
        .filter(api_token::Column::Uid.eq(uid))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// The token with this key if it is active and its owner is not disabled: one primary-key
/// lookup joined to the owner's row by its primary key, for introspection.
pub async fn usable_by_key(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<api_token::Model>, DbErr> {
    let query = api_token::Entity::find_by_id(key.to_string())
        .join(JoinType::InnerJoin, owner())
        .filter(api_token::Column::IsActive.eq(true))
        .filter(user::Column::DisabledAt.is_null());
    super::by_key(db, query.into_model()).await
}

/// The token → user relation (the entity declares none; the table has the foreign key).
fn owner() -> sea_orm::RelationDef {
    api_token::Entity::belongs_to(user::Entity)
        .from(api_token::Column::Uid)
        .to(user::Column::Uid)
        .into()
}

pub async fn touch(db: &impl ConnectionTrait, key: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    api_token::Entity::update_many()
        .col_expr(api_token::Column::LastUsedAt, Expr::value(now))
        .filter(api_token::Column::Key.eq(key))
        .exec(db)
        .await
        .map(|_| ())
}

/// Deletes every token of a user; returns how many.
pub async fn delete_all_owned(db: &impl ConnectionTrait, uid: Uuid) -> Result<u64, DbErr> {
    let result = api_token::Entity::delete_many()
        .filter(api_token::Column::Uid.eq(uid))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
