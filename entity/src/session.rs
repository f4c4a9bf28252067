//! A sign-in: what refresh tokens extend and logout revokes.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub uid: Uuid,
    pub client_id: String,
    /// When the user gave their password; kept across refreshes.
    pub auth_time: DateTimeUtc,
    /// `origin_jti` of every id and access token of this sign-in.
    pub origin_jti: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
