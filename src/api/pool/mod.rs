//! The `/api` surface: sign-up, sign-in, sessions, passwords and the account, with Cognito
//! semantics.

pub mod account;
pub mod hosts;
pub mod newsletter;
pub mod password;
pub mod session;
pub mod signup;
pub mod tokens;

use poem_openapi::{Object, types::Example};

use crate::{
    api::error::ApiError,
    pool::{UserStatus, display_username, subscribe},
    state::AppState,
};

/// A sentence for a person.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct Detail {
    pub detail: String,
}

impl Detail {
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }
}

impl Example for Detail {
    fn example() -> Self {
        Self::new("Done.")
    }
}

/// The signed-in user's account.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct Account {
    /// The user's permanent id (the tokens' `sub`).
    pub uid: String,
    pub email: String,
    /// Whether the current email was proven by a code.
    pub email_verified: bool,
    /// The username, or the email when there is none.
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    /// `UNCONFIRMED`, `CONFIRMED` or `DISABLED`.
    pub status: String,
    /// Whether the account is on the newsletter list: it subscribed (any address), or its
    /// current email is subscribed.
    pub subscribed: bool,
    /// Null until set (accounts made on `/api` without it).
    #[oai(nullable)]
    pub organisation_type: Option<String>,
    #[oai(nullable)]
    pub organisation_name: Option<String>,
    #[oai(nullable)]
    pub country: Option<String>,
    /// Free-form profile data.
    pub additional_fields: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl Account {
    /// The user's account, with `subscribed` read from the newsletter list.
    pub async fn load(state: &AppState, user: &entity::user::Model) -> Result<Self, ApiError> {
        let subscribed = subscribe::is_subscribed(state, user).await?;
        Ok(Self::new(user, subscribed))
    }

    pub fn new(user: &entity::user::Model, subscribed: bool) -> Self {
        Self {
            uid: user.uid.to_string(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            username: display_username(user),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            status: UserStatus::of(user).as_str().to_string(),
            subscribed,
            organisation_type: user.organisation_type.clone(),
            organisation_name: user.organisation_name.clone(),
            country: user.country.clone(),
            additional_fields: user.additional_fields.clone(),
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

impl Example for Account {
    fn example() -> Self {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .expect("valid example time")
            .to_utc();
        Self {
            uid: "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f".into(),
            email: "ada@example.org".into(),
            email_verified: true,
            username: "ada".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            status: "CONFIRMED".into(),
            subscribed: false,
            organisation_type: Some("research".into()),
            organisation_name: Some("Analytical Engines Ltd".into()),
            country: Some("GB".into()),
            additional_fields: serde_json::json!({}),
            created_at: at,
            updated_at: at,
        }
    }
}
