//! Newsletter subscriptions, always recorded locally (and also sent to Mailchimp when set up).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
pub struct Model {
    /// Lower-cased email.
    #[sea_orm(primary_key, auto_increment = false)]
    pub email_key: String,
    pub email: String,
    /// The account that subscribed, if any.
    pub uid: Option<Uuid>,
    /// `subscribed`.
    pub status: String,
    /// Outcome at the newsletter service: `synced`, `failed`, or none when not configured.
    pub remote_status: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
