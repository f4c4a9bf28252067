//! The live one-time code of a user for one purpose (a new code replaces the old one).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub uid: Uuid,
    /// `sign_up`, `verify_email` or `reset_password`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub purpose: String,
    /// SHA-256 of the code, hex.
    pub code_hash: String,
    /// The address the code was sent to (for email verification: the new email).
    pub target: String,
    pub expires_at: DateTimeUtc,
    /// Wrong tries so far; at the limit the code is dead.
    pub attempts: i32,
    pub sent_at: DateTimeUtc,
    /// Resends counted in the current one-hour window.
    pub resends: i32,
    pub resend_window_start: Option<DateTimeUtc>,
    pub last_resend_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
