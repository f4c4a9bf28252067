//! Administration of accounts, as `authpool user ...` does it: create, list, confirm, disable,
//! enable, delete, set a password, sign out.
//!
//! No HTTP and no printing: domain values in, what happened (or a typed error) out, one
//! transaction per change. The account is first found by [`find`]; each change then takes its
//! uid and reads the row again inside its own write transaction (locked on PostgreSQL), so a
//! concurrent change or deletion is seen rather than overwritten.

use chrono::Utc;
use entity::user;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DatabaseTransaction, prelude::Uuid};

use super::{
    Infra,
    codes::{self, Purpose},
    lockout,
    register::{RegisterError, confirmation_link},
};
use crate::{
    crypto::secrets::random_token,
    domain::{Email, Password, PersonName, Username},
    mail::Email as Mail,
    state::AppState,
    store::{self, users::UserFilter},
};

/// Why an administrative command failed. Every message is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No account has this email, username or uid.
    #[error("no user {0}")]
    NotFound(String),
    /// `confirm` on an account that is confirmed already.
    #[error("user {0} is already confirmed")]
    AlreadyConfirmed(String),
    #[error("an account with this email already exists")]
    EmailExists,
    #[error("an account with this username already exists")]
    UsernameExists,
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(AdminError);

impl From<RegisterError> for AdminError {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::EmailExists => Self::EmailExists,
            RegisterError::UsernameExists => Self::UsernameExists,
            RegisterError::Infra(err) => Self::Infra(err),
        }
    }
}

/// The account an operator named: an email, a username or a uid.
pub async fn find(db: &DatabaseConnection, name: &str) -> Result<user::Model, AdminError> {
    let user = match super::login_key(name, true) {
        Some(key) => store::users::by_login_key(db, &key).await?,
        None => None,
    };
    user.ok_or_else(|| AdminError::NotFound(name.trim().to_string()))
}

/// The account's row inside a write transaction, locked on PostgreSQL until it ends.
async fn locked(txn: &DatabaseTransaction, uid: Uuid) -> Result<user::Model, AdminError> {
    store::users::lock(txn, uid).await?;
    store::users::by_uid(txn, uid)
        .await?
        .ok_or_else(|| AdminError::NotFound(uid.to_string()))
}

/// An account to create. `password` has passed the policy with the email, username and names
/// as context, as at sign-up.
#[derive(Debug)]
pub struct NewAccount {
    pub email: Email,
    pub username: Option<Username>,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub password: Option<Password>,
    /// Create it CONFIRMED with its email verified.
    pub confirmed: bool,
}

/// Which code a new account was mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMailed {
    /// The sign-up confirmation code and link, as registration sends them.
    SignUp,
    /// A password-reset code: setting a password with it also confirms the account.
    ResetPassword,
}

/// A code mail queued in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub what: CodeMailed,
    pub outbox_id: i64,
}

#[derive(Debug)]
pub struct Created {
    pub user: user::Model,
    /// `None` for a confirmed account created with a password: it needs nothing.
    pub mailed: Option<Queued>,
}

/// Creates an account.
///
/// - With a password and not `confirmed`: UNCONFIRMED, and the sign-up confirmation code mailed
///   exactly as registration does.
/// - With a password and `confirmed`: CONFIRMED, nothing mailed.
/// - Without a password: an unusable random password (nobody knows it; sign-in answers as for a
///   wrong password) and a password-reset code mailed. The reset sets the password and confirms
///   the account, so the mail works as an invitation. `confirmed` only sets the status.
pub async fn create(state: &AppState, new: NewAccount) -> Result<Created, AdminError> {
    let (hash, mail_kind) = match &new.password {
        Some(password) => (
            state.hasher.hash(password.expose()).await,
            (!new.confirmed).then_some(CodeMailed::SignUp),
        ),
        None => (
            state.hasher.hash(&random_token(32)).await,
            Some(CodeMailed::ResetPassword),
        ),
    };
    let hash = hash.map_err(Infra::from)?;
    let now = Utc::now();
    let row = user::ActiveModel {
        uid: Set(Uuid::new_v4()),
        email: Set(new.email.as_str().to_string()),
        email_key: Set(new.email.key()),
        username: Set(new.username.as_ref().map(|u| u.as_str().to_string())),
        username_key: Set(new.username.as_ref().map(Username::key)),
        email_verified: Set(new.confirmed),
        confirmed_at: Set(new.confirmed.then_some(now)),
        disabled_at: Set(None),
        first_name: Set(new.first_name.as_str().to_string()),
        last_name: Set(new.last_name.as_str().to_string()),
        organisation_type: Set(None),
        organisation_name: Set(None),
        country: Set(None),
        additional_fields: Set(serde_json::Value::Object(Default::default())),
        password_hash: Set(hash),
        password_changed_at: Set(now),
        created_at: Set(now),
        updated_at: Set(now),
    };

    let txn = store::begin_write(&state.db).await?;
    let user = store::users::insert(&txn, row)
        .await
        .map_err(RegisterError::from)?;
    let mailed = match mail_kind {
        None => None,
        Some(kind) => {
            let mail = match kind {
                CodeMailed::SignUp => {
                    let code =
                        codes::issue(&txn, user.uid, Purpose::SignUp, &user.email, false, now)
                            .await?;
                    Mail::ConfirmSignUp {
                        link: confirmation_link(state, user.uid, &code),
                        code,
                    }
                }
                CodeMailed::ResetPassword => {
                    let purpose = Purpose::ResetPassword;
                    let code =
                        codes::issue(&txn, user.uid, purpose, &user.email, false, now).await?;
                    Mail::ResetPassword { code }
                }
            };
            let outbox_id = state.mail.queue(&txn, &user.email, &mail).await?;
            Some(Queued {
                what: kind,
                outbox_id,
            })
        }
    };
    txn.commit().await?;
    state.mail.wake();
    Ok(Created { user, mailed })
}

/// What became of a queued message after one delivery pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Not sent yet: the attempt failed (and will be retried by a running server), or a
    /// server's worker holds it right now. `reason` is the last failure, if any.
    Queued {
        reason: Option<String>,
    },
    /// Given up for good (the mail server refused it too often).
    Failed {
        reason: String,
    },
}

/// Runs one delivery pass of the outbox in this process, so that mail queued by a command
/// needs no running server, and tells what became of the message `outbox_id`.
///
/// A server running at the same time cannot send it twice: the outbox hands each row to one
/// worker at a time (a claim with a lease), and whoever holds it sends it.
pub async fn deliver(state: &AppState, outbox_id: i64) -> Result<Delivery, Infra> {
    state.mail.deliver_due(&state.db).await?;
    let Some(row) = store::outbox::by_id(&state.db, outbox_id).await? else {
        return Ok(Delivery::Queued { reason: None });
    };
    Ok(if row.sent_at.is_some() {
        Delivery::Sent
    } else if row.failed_at.is_some() {
        Delivery::Failed {
            reason: row.last_error.unwrap_or_default(),
        }
    } else {
        Delivery::Queued {
            reason: row.last_error,
        }
    })
}

/// A page of accounts, and the key to continue after it when more follow.
#[derive(Debug)]
pub struct Page {
    pub users: Vec<user::Model>,
    /// The `email_key` of the last account shown, when another page follows.
    pub next: Option<String>,
}

/// Accounts matching `filter` in `email_key` order, at most `limit`, after the key `after`.
pub async fn list(
    db: &DatabaseConnection,
    filter: &UserFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Page, AdminError> {
    let mut users = store::users::page(db, filter, after, limit.saturating_add(1)).await?;
    let more = users.len() as u64 > limit;
    users.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = more
        .then(|| users.last().map(|u| u.email_key.clone()))
        .flatten();
    Ok(Page { users, next })
}

/// Confirms an UNCONFIRMED account (a disabled one too: it will be confirmed once enabled) and
/// marks its email verified, as the emailed code would; its pending sign-up code is dropped.
pub async fn confirm(db: &DatabaseConnection, uid: Uuid) -> Result<user::Model, AdminError> {
    let now = Utc::now();
    let txn = store::begin_write(db).await?;
    let mut user = locked(&txn, uid).await?;
    if user.confirmed_at.is_some() {
        return Err(AdminError::AlreadyConfirmed(user.email));
    }
    store::users::confirm(&txn, uid, now).await?;
    store::codes::delete(&txn, uid, Purpose::SignUp.as_str()).await?;
    txn.commit().await?;
    user.confirmed_at = Some(now);
    user.email_verified = true;
    user.updated_at = now;
    Ok(user)
}

/// The outcome of a change of status.
#[derive(Debug)]
pub struct StatusChange {
    pub user: user::Model,
    /// The account was in the asked-for state already; nothing changed but revocation.
    pub unchanged: bool,
    /// Sessions revoked by this change.
    pub sessions_revoked: u64,
}

/// Disables an account and revokes every one of its sessions in the same transaction: its
/// tokens are refused from the next request on, on every replica. Disabling a disabled account
/// changes nothing (as Cognito's AdminDisableUser) but still revokes any live session.
pub async fn disable(db: &DatabaseConnection, uid: Uuid) -> Result<StatusChange, AdminError> {
    let now = Utc::now();
    let txn = store::begin_write(db).await?;
    let mut user = locked(&txn, uid).await?;
    let unchanged = user.disabled_at.is_some();
    if !unchanged {
        store::users::set_disabled(&txn, uid, Some(now), now).await?;
        user.disabled_at = Some(now);
        user.updated_at = now;
    }
    let sessions_revoked = store::sessions::revoke_all(&txn, uid, None, now).await?;
    txn.commit().await?;
    Ok(StatusChange {
        user,
        unchanged,
        sessions_revoked,
    })
}

/// Enables a disabled account; it is CONFIRMED or UNCONFIRMED again as before. Sessions revoked
/// by disabling stay revoked. Enabling an enabled account changes nothing.
pub async fn enable(db: &DatabaseConnection, uid: Uuid) -> Result<StatusChange, AdminError> {
    let now = Utc::now();
    let txn = store::begin_write(db).await?;
    let mut user = locked(&txn, uid).await?;
    let unchanged = user.disabled_at.is_none();
    if !unchanged {
        store::users::set_disabled(&txn, uid, None, now).await?;
        user.disabled_at = None;
        user.updated_at = now;
    }
    txn.commit().await?;
    Ok(StatusChange {
        user,
        unchanged,
        sessions_revoked: 0,
    })
}

/// Revokes every live session of the account; returns the account and how many were live.
pub async fn sign_out(
    db: &DatabaseConnection,
    uid: Uuid,
) -> Result<(user::Model, u64), AdminError> {
    let now = Utc::now();
    let txn = store::begin_write(db).await?;
    let user = locked(&txn, uid).await?;
    let revoked = store::sessions::revoke_all(&txn, uid, None, now).await?;
    txn.commit().await?;
    Ok((user, revoked))
}

/// Sets a new password and revokes every session of the account: an administrator setting a
/// password usually means the account may be in the wrong hands, so nobody signed in keeps
/// access. The sign-in lockout is lifted. The status does not change.
///
/// `new` has passed the policy with the account's own data as context
/// ([`super::password_context`]).
pub async fn set_password(
    state: &AppState,
    uid: Uuid,
    new: &Password,
) -> Result<(user::Model, u64), AdminError> {
    // The slow part outside the write transaction.
    let hash = state.hasher.hash(new.expose()).await.map_err(Infra::from)?;
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    let user = locked(&txn, uid).await?;
    store::users::set_password_hash(&txn, uid, hash, now, true).await?;
    let revoked = store::sessions::revoke_all(&txn, uid, None, now).await?;
    lockout::clear(&txn, &lockout::key(Some(&user), &user.email)).await?;
    txn.commit().await?;
    Ok((user, revoked))
}

/// What a deletion removed.
#[derive(Debug)]
pub struct Deleted {
    pub user: user::Model,
    pub sessions: u64,
    pub api_tokens: u64,
    pub allowed_hosts: u64,
}

/// Deletes an account and everything it owns, in one transaction: sessions with their refresh
/// tokens, codes, API tokens, allowed hosts, its sign-in failure counter, then the user row.
///
/// Kept: the newsletter subscription of its email (a separate consent, keyed by email; it is
/// unlinked from the account), and mail already queued to it.
pub async fn delete(db: &DatabaseConnection, uid: Uuid) -> Result<Deleted, AdminError> {
    let txn = store::begin_write(db).await?;
    let user = locked(&txn, uid).await?;
    let sessions = store::sessions::delete_all(&txn, uid).await?;
    store::codes::delete_all(&txn, uid).await?;
    let api_tokens = store::api_tokens::delete_all_owned(&txn, uid).await?;
    let allowed_hosts = store::allowed_hosts::delete_all_owned(&txn, uid).await?;
    lockout::clear(&txn, &lockout::key(Some(&user), &user.email)).await?;
    store::subscriptions::unlink_uid(&txn, uid).await?;
    if !store::users::delete(&txn, uid).await? {
        return Err(AdminError::NotFound(uid.to_string()));
    }
    txn.commit().await?;
    Ok(Deleted {
        user,
        sessions,
        api_tokens,
        allowed_hosts,
    })
}
