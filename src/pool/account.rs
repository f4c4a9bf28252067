//! The signed-in user's own account: partial updates, and email changes that must be verified.

use chrono::Utc;
use entity::user;
use sea_orm::{ActiveValue::Set, DbErr, SqlErr};

use super::{
    Infra,
    codes::{self, Purpose},
    session::Authenticated,
};
use crate::{
    domain::{Email, PersonName},
    mail::Email as Mail,
    state::AppState,
    store,
};

/// The fields to change; `None` leaves a field as it is (PUT and PATCH alike).
#[derive(Debug, Default)]
pub struct AccountPatch {
    pub email: Option<Email>,
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    pub organisation_type: Option<String>,
    pub organisation_name: Option<String>,
    pub country: Option<String>,
    pub additional_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("An account with the given email already exists.")]
    EmailExists,
    #[error(transparent)]
    Infra(#[from] Infra),
}

impl From<DbErr> for AccountError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => Self::EmailExists,
            _ => Self::Infra(err.into()),
        }
    }
}

/// Applies the patch. A new email address takes effect at once (sign-in uses it from now on),
/// is marked unverified, and gets a verification code.
pub async fn update(
    state: &AppState,
    caller: &Authenticated,
    patch: AccountPatch,
) -> Result<user::Model, AccountError> {
    let now = Utc::now();
    let current = &caller.user;
    let mut row = user::ActiveModel {
        uid: Set(current.uid),
        updated_at: Set(now),
        ..Default::default()
    };
    let mut new_email = None;
    if let Some(email) = patch.email
        && email.as_str() != current.email
    {
        row.email = Set(email.as_str().to_string());
        row.email_key = Set(email.key());
        // Only the case changed: same mailbox, still verified.
        if email.key() != current.email_key {
            row.email_verified = Set(false);
            new_email = Some(email);
        }
    }
    if let Some(name) = patch.first_name {
        row.first_name = Set(name.as_str().to_string());
    }
    if let Some(name) = patch.last_name {
        row.last_name = Set(name.as_str().to_string());
    }
    if let Some(value) = patch.organisation_type {
        row.organisation_type = Set(Some(value));
    }
    if let Some(value) = patch.organisation_name {
        row.organisation_name = Set(Some(value));
    }
    if let Some(value) = patch.country {
        row.country = Set(Some(value));
    }
    if let Some(fields) = patch.additional_fields {
        row.additional_fields = Set(serde_json::Value::Object(fields));
    }

    let txn = store::begin_write(&state.db).await?;
    let updated = store::users::update(&txn, row).await?;
    if let Some(email) = &new_email {
        let code = codes::issue(
            &txn,
            current.uid,
            Purpose::VerifyEmail,
            email.as_str(),
            false,
            now,
        )
        .await?;
        state
            .mail
            .queue(&txn, email.as_str(), &Mail::VerifyEmail { code })
            .await?;
    }
    txn.commit().await?;
    if new_email.is_some() {
        state.mail.wake();
    }
    Ok(updated)
}
