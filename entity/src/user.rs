//! Users of the pool. Status is derived: disabled, else confirmed, else unconfirmed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub uid: Uuid,
    /// As given (trimmed, case kept).
    pub email: String,
    /// Lower-cased email: unique, used for lookups.
    #[sea_orm(unique)]
    pub email_key: String,
    pub username: Option<String>,
    #[sea_orm(unique)]
    pub username_key: Option<String>,
    pub email_verified: bool,
    pub confirmed_at: Option<DateTimeUtc>,
    pub disabled_at: Option<DateTimeUtc>,
    pub first_name: String,
    pub last_name: String,
    pub organisation_type: Option<String>,
    pub organisation_name: Option<String>,
    pub country: Option<String>,
    pub additional_fields: Json,
    /// argon2id PHC string.
    pub password_hash: String,
    pub password_changed_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
