//! Queries on the hosts a user's API tokens may be used from. Every query is scoped by the owner's
//! uid, so another user's host behaves exactly like an unknown one. Hosts are stored in their
//! canonical form ([`crate::domain::Host::as_str`]), so equality here is equality of hosts.

use entity::allowed_host;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
    prelude::{Expr, Uuid},
};

pub async fn insert(
    db: &impl ConnectionTrait,
    row: allowed_host::ActiveModel,
) -> Result<allowed_host::Model, DbErr> {
    row.insert(db).await
}

pub async fn count_owned(db: &impl ConnectionTrait, uid: Uuid) -> Result<u64, DbErr> {
    allowed_host::Entity::find()
        .filter(allowed_host::Column::Uid.eq(uid))
        .count(db)
        .await
}

/// A user's hosts, oldest first (ties, within one clock tick, by host).
pub async fn owned(
    db: &impl ConnectionTrait,
    uid: Uuid,
) -> Result<Vec<allowed_host::Model>, DbErr> {
    allowed_host::Entity::find()
        .filter(allowed_host::Column::Uid.eq(uid))
        .order_by_asc(allowed_host::Column::CreatedAt)
        .order_by_asc(allowed_host::Column::Host)
        .all(db)
        .await
}

/// Just the hosts of a user, for matching.
pub async fn owned_hosts(db: &impl ConnectionTrait, uid: Uuid) -> Result<Vec<String>, DbErr> {
    allowed_host::Entity::find()
        .select_only()
        .column(allowed_host::Column::Host)
        .filter(allowed_host::Column::Uid.eq(uid))
        .into_tuple()
        .all(db)
        .await
}

/// One of a user's hosts; `None` when it is unknown or someone else's.
pub async fn owned_by_host(
    db: &impl ConnectionTrait,
    uid: Uuid,
    host: &str,
) -> Result<Option<allowed_host::Model>, DbErr> {
    let query = allowed_host::Entity::find_by_id((uid, host.to_string()));
    super::by_key(db, query.into_model()).await
}

/// Renames one of a user's hosts, keeping its creation time. `false` when the user has no such
/// host. Renaming onto another of the user's hosts is the primary key's unique violation.
pub async fn rename(
    db: &impl ConnectionTrait,
    uid: Uuid,
    from: &str,
    to: &str,
) -> Result<bool, DbErr> {
    let result = allowed_host::Entity::update_many()
        .col_expr(allowed_host::Column::Host, Expr::value(to))
        .filter(allowed_host::Column::Uid.eq(uid))
        .filter(allowed_host::Column::Host.eq(from))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Deletes one of a user's hosts. `false` when the user has no such host.
pub async fn delete(db: &impl ConnectionTrait, uid: Uuid, host: &str) -> Result<bool, DbErr> {
    let result = allowed_host::Entity::delete_many()
        .filter(allowed_host::Column::Uid.eq(uid))
        .filter(allowed_host::Column::Host.eq(host))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Deletes every host of a user; returns how many.
pub async fn delete_all_owned(db: &impl ConnectionTrait, uid: Uuid) -> Result<u64, DbErr> {
    let result = allowed_host::Entity::delete_many()
        .filter(allowed_host::Column::Uid.eq(uid))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
