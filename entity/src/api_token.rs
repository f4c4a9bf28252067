//! Personal API tokens. The secret is shown once at creation; only its hash is kept.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    /// Public identifier, used in paths and embedded in the secret token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub uid: Uuid,
    pub name: String,
    /// SHA-256 of the whole secret token, hex.
    pub secret_hash: String,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
