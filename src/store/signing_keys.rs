//! The signing keys table: the only place that queries it.

use chrono::{DateTime, Utc};
use entity::signing_key;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter,
};

/// Keys not retired, or retired after `retired_after` (`None`: every key). Unordered: the
/// caller picks the signing key, so the choice does not depend on how a database sorts times.
pub async fn published(
    db: &impl ConnectionTrait,
    retired_after: Option<DateTime<Utc>>,
) -> Result<Vec<signing_key::Model>, DbErr> {
    let mut query = signing_key::Entity::find();
    if let Some(cutoff) = retired_after {
        query = query.filter(
            Condition::any()
                .add(signing_key::Column::RetiredAt.is_null())
                .add(signing_key::Column::RetiredAt.gt(cutoff)),
        );
    }
    query.all(db).await
}

/// Every key, unordered, including those no longer published.
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<signing_key::Model>, DbErr> {
    signing_key::Entity::find().all(db).await
}

/// Stores a new key.
pub async fn insert(db: &impl ConnectionTrait, key: signing_key::Model) -> Result<(), DbErr> {
    signing_key::Entity::insert(key.into_active_model())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Retires every active key but `kid`, at `now`. Returns how many were retired.
pub async fn retire_all_except(
    db: &impl ConnectionTrait,
    kid: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = signing_key::Entity::update_many()
        .set(signing_key::ActiveModel {
            retired_at: Set(Some(now)),
            ..Default::default()
        })
        .filter(signing_key::Column::RetiredAt.is_null())
        .filter(signing_key::Column::Kid.ne(kid))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
