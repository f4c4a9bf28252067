//! The user pool itself: one use case per file, domain types in, a typed error out, one database
//! transaction each. Nothing here knows about HTTP, so another protocol adapter can call the same
//! functions.

/// `impl From<DbErr>` for use-case errors whose `Infra` variant takes every database failure.
macro_rules! db_errors_are_infra {
    ($error:ty) => {
        impl From<sea_orm::DbErr> for $error {
            fn from(err: sea_orm::DbErr) -> Self {
                Self::Infra(err.into())
            }
        }
    };
}

pub mod account;
pub mod admin;
pub mod allowed_hosts;
pub mod api_tokens;
pub mod codes;
pub mod lockout;
pub mod login;
pub mod password;
pub mod register;
pub mod session;
pub mod subscribe;
pub mod tokens;
pub mod verify;

use entity::user;
use sea_orm::DbErr;

use crate::{crypto::password::HashError, store};

/// Failures of the machinery under a use case rather than of the request.
#[derive(Debug, thiserror::Error)]
pub enum Infra {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// The password-hashing pool is saturated.
    #[error("the password hashing queue is full")]
    Busy,
    #[error("password hashing: {0}")]
    Hash(String),
}

impl From<HashError> for Infra {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => Self::Busy,
            HashError::Internal(message) => Self::Hash(message),
        }
    }
}

/// A user's status, as Cognito names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Unconfirmed,
    Confirmed,
    Disabled,
}

impl UserStatus {
    pub fn of(user: &user::Model) -> Self {
        if user.disabled_at.is_some() {
            Self::Disabled
        } else if user.confirmed_at.is_some() {
            Self::Confirmed
        } else {
            Self::Unconfirmed
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unconfirmed => "UNCONFIRMED",
            Self::Confirmed => "CONFIRMED",
            Self::Disabled => "DISABLED",
        }
    }
}

/// The lookup key of a name a user typed to sign in or confirm: an email (anything with `@`,
/// which usernames cannot contain), a uid where `uids` allows, or a username — normalised as at
/// registration (IDNA domains, NFC usernames, lower case). `None` when it can be neither, which
/// the callers treat as an unknown user.
pub fn login_key(name: &str, uids: bool) -> Option<store::users::LoginKey> {
    use crate::domain::{Email, Username};
    use store::users::LoginKey;
    if name.contains('@') {
        return Email::parse(name).ok().map(|e| LoginKey::Email(e.key()));
    }
    if uids && let Ok(uid) = sea_orm::prelude::Uuid::parse_str(name.trim()) {
        return Some(LoginKey::Uid(uid));
    }
    Username::parse(name)
        .ok()
        .map(|u| LoginKey::Username(u.key()))
}

/// What a user's password must not be built from: their email, username and names.
pub fn password_context(user: &user::Model) -> Vec<String> {
    [
        Some(user.email.clone()),
        user.username.clone(),
        Some(user.first_name.clone()),
        Some(user.last_name.clone()),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.is_empty())
    .collect()
}

/// The name shown where a response needs a username: the username, or the email without one.
pub fn display_username(user: &user::Model) -> String {
    user.username.clone().unwrap_or_else(|| user.email.clone())
}

/// The `cognito:username` claim: the username, or the uid without one (as Cognito does for pools
/// that sign in by email).
pub fn cognito_username(user: &user::Model) -> String {
    user.username
        .clone()
        .unwrap_or_else(|| user.uid.to_string())
}
