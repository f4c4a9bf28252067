//! Newsletter subscription: always recorded locally, then, when Mailchimp is configured, sent
//! there too.
//!
//! No transaction is held while Mailchimp is called: each local write is one autocommitted
//! statement, so a slow Mailchimp (up to its timeout) never keeps the database's write lock,
//! which on SQLite would stall every other writer.

use chrono::Utc;
use entity::user;
use sea_orm::prelude::Uuid;

use super::Infra;
use crate::{
    domain::Email,
    newsletter::{self, SyncError},
    state::AppState,
    store,
};

/// The local status of a subscription.
pub use store::subscriptions::SUBSCRIBED;

/// `remote_status`: the outcome at Mailchimp (none when Mailchimp is not configured).
pub mod remote {
    /// Recorded locally, the call to Mailchimp not finished; stays so if the process stopped
    /// in between.
    pub const PENDING: &str = "pending";
    pub const SYNCED: &str = "synced";
    pub const FAILED: &str = "failed";
}

#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// Recorded locally, but Mailchimp failed or refused it.
    #[error(transparent)]
    Remote(#[from] SyncError),
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(SubscribeError);

/// Subscribes the address, on behalf of the account `uid` when there is one.
pub async fn subscribe(
    state: &AppState,
    email: &Email,
    uid: Option<Uuid>,
) -> Result<(), SubscribeError> {
    let key = email.key();
    let mailchimp = state.settings.mailchimp.as_ref();
    // Recorded before the call, so the local list has it even if the call never ends (the
    // client may give up and drop the request).
    store::subscriptions::upsert(
        &state.db,
        email.as_str(),
        &key,
        uid,
        SUBSCRIBED,
        mailchimp.map(|_| remote::PENDING),
        Utc::now(),
    )
    .await?;
    let Some(mailchimp) = mailchimp else {
        return Ok(());
    };
    let outcome = newsletter::upsert_member(mailchimp, email).await;
    let remote_status = match outcome {
        Ok(()) => remote::SYNCED,
        Err(_) => remote::FAILED,
    };
    store::subscriptions::set_remote_status(&state.db, &key, remote_status, Utc::now()).await?;
    Ok(outcome?)
}

/// Whether the account is on the list: subscribed by it, or its current email subscribed.
pub async fn is_subscribed(state: &AppState, user: &user::Model) -> Result<bool, Infra> {
    Ok(store::subscriptions::exists_for(&state.db, user.uid, &user.email_key, SUBSCRIBED).await?)
}
