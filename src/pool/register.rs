//! Sign-up: an UNCONFIRMED user and an emailed confirmation code, in one transaction.

use chrono::Utc;
use entity::user;
use sea_orm::{ActiveValue::Set, DbErr, SqlErr, prelude::Uuid};

use super::{
    Infra,
    codes::{self, Purpose},
    subscribe::{self, SubscribeError},
};
use crate::{
    domain::{Email, Password, PersonName, Username},
    mail::Email as Mail,
    state::AppState,
    store,
};

/// Profile fields beyond the names.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub organisation_type: Option<String>,
    pub organisation_name: Option<String>,
    pub country: Option<String>,
    pub additional_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A valid sign-up request.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub username: Option<Username>,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub profile: Profile,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("An account with the given email already exists.")]
    EmailExists,
    #[error("An account with the given username already exists.")]
    UsernameExists,
    #[error(transparent)]
    Infra(#[from] Infra),
}

impl From<DbErr> for RegisterError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            // Uniqueness is the database's job: two racing sign-ups both insert, one loses here.
            Some(SqlErr::UniqueConstraintViolation(message))
                if message.contains("username_key") =>
            {
                Self::UsernameExists
            }
            Some(SqlErr::UniqueConstraintViolation(_)) => Self::EmailExists,
            _ => Self::Infra(Infra::Db(err)),
        }
    }
}

/// Creates the user and mails the confirmation code and link.
pub async fn register(state: &AppState, new: NewUser) -> Result<user::Model, RegisterError> {
    let hash = state
        .hasher
        .hash(new.password.expose())
        .await
        .map_err(Infra::from)?;
    let now = Utc::now();
    let profile = new.profile;
    let row = user::ActiveModel {
        uid: Set(Uuid::new_v4()),
        email: Set(new.email.as_str().to_string()),
        email_key: Set(new.email.key()),
        username: Set(new.username.as_ref().map(|u| u.as_str().to_string())),
        username_key: Set(new.username.as_ref().map(Username::key)),
        email_verified: Set(false),
        confirmed_at: Set(None),
        disabled_at: Set(None),
        first_name: Set(new.first_name.as_str().to_string()),
        last_name: Set(new.last_name.as_str().to_string()),
        organisation_type: Set(profile.organisation_type),
        organisation_name: Set(profile.organisation_name),
        country: Set(profile.country),
        additional_fields: Set(serde_json::Value::Object(
            profile.additional_fields.unwrap_or_default(),
        )),
        password_hash: Set(hash),
        password_changed_at: Set(now),
        created_at: Set(now),
        updated_at: Set(now),
    };

    let txn = store::begin_write(&state.db).await.map_err(Infra::from)?;
    let user = store::users::insert(&txn, row).await?;
    let code = codes::issue(&txn, user.uid, Purpose::SignUp, &user.email, false, now).await?;
    let mail = Mail::ConfirmSignUp {
        link: confirmation_link(state, user.uid, &code),
        code,
    };
    state.mail.queue(&txn, &user.email, &mail).await?;
    txn.commit().await?;
    state.mail.wake();
    Ok(user)
}

/// A new account, and how its newsletter subscription went.
#[derive(Debug)]
pub struct Registration {
    pub user: user::Model,
    /// Why the subscription asked for failed; the account exists all the same.
    pub subscription_error: Option<SubscribeError>,
}

/// Registers as [`register`] does, then, when `subscribe` is set, subscribes the new account's
/// email to the newsletter.
///
/// The subscription starts only after the account has been committed and runs outside any
/// transaction: a slow newsletter service never holds the database's write lock, and its failure
/// never undoes the registration. It is returned beside the new user instead.
pub async fn register_and_subscribe(
    state: &AppState,
    new: NewUser,
    subscribe: bool,
) -> Result<Registration, RegisterError> {
    let email = new.email.clone();
    let user = register(state, new).await?;
    let subscription_error = if subscribe {
        subscribe::subscribe(state, &email, Some(user.uid))
            .await
            .err()
    } else {
        None
    };
    Ok(Registration {
        user,
        subscription_error,
    })
}

/// The link in confirmation emails: `GET /api/validate` with the user's uid and the code.
pub fn confirmation_link(state: &AppState, uid: Uuid, code: &str) -> String {
    let mut url = state.settings.public_url.clone();
    url.set_path(&format!(
        "{}/api/validate",
        url.path().trim_end_matches('/')
    ));
    url.query_pairs_mut()
        .append_pair("user_name", &uid.to_string())
        .append_pair("confirmation_code", code)
        .append_pair("client_id", &state.client_id);
    url.to_string()
}
