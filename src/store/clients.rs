//! The app client id, configured or generated once and shared by every replica.

use entity::client;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryOrder};

/// Returns the client id to use: the configured one (recorded if new), else the oldest stored one,
/// else a freshly generated one. Replicas starting together on an empty database may each insert
/// one; all of them then pick the same oldest row.
pub async fn ensure_client_id(
    db: &impl ConnectionTrait,
    configured: Option<&str>,
    generate: impl FnOnce() -> String,
) -> Result<String, DbErr> {
    if let Some(id) = configured {
        insert_if_absent(db, id).await?;
        return Ok(id.to_string());
    }
    if let Some(id) = oldest(db).await? {
        return Ok(id);
    }
    insert_if_absent(db, &generate()).await?;
    oldest(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("client just inserted".into()))
}

async fn oldest(db: &impl ConnectionTrait) -> Result<Option<String>, DbErr> {
    Ok(client::Entity::find()
        .order_by_asc(client::Column::CreatedAt)
        .order_by_asc(client::Column::ClientId)
        .one(db)
        .await?
        .map(|c| c.client_id))
}

async fn insert_if_absent(db: &impl ConnectionTrait, id: &str) -> Result<(), DbErr> {
    let row = client::ActiveModel {
        client_id: Set(id.to_string()),
        created_at: Set(chrono::Utc::now()),
    };
    client::Entity::insert(row)
        .on_conflict_do_nothing_on([client::Column::ClientId])
        .exec(db)
        .await?;
    Ok(())
}
