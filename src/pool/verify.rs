//! Confirming a sign-up, and verifying a changed email, by emailed code; and resending codes.

use chrono::{Duration as TimeDelta, Utc};
use entity::user;
use sea_orm::ActiveValue::Set;

use super::{
    Infra, UserStatus,
    account::{self, AccountError, AccountPatch},
    codes::{self, CodeError, Purpose},
    register::confirmation_link,
    session::Authenticated,
};
use crate::{
    domain::{Code, Email},
    mail::Email as Mail,
    state::AppState,
    store,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error(transparent)]
    Code(CodeError),
    #[error("User cannot be confirmed. Current status is CONFIRMED.")]
    AlreadyConfirmed,
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(ConfirmError);

/// Confirms a sign-up. `user_name` is the email, the username or the uid. An unknown user
/// answers as a wrong code does.
pub async fn confirm_sign_up(
    state: &AppState,
    user_name: &str,
    code: &Code,
) -> Result<(), ConfirmError> {
    let user = match super::login_key(user_name, true) {
        Some(key) => store::users::by_login_key(&state.db, &key).await?,
        None => None,
    };
    let Some(user) = user else {
        return Err(ConfirmError::Code(CodeError::Mismatch));
    };
    match UserStatus::of(&user) {
        UserStatus::Confirmed => return Err(ConfirmError::AlreadyConfirmed),
        UserStatus::Disabled => return Err(ConfirmError::Code(CodeError::Mismatch)),
        UserStatus::Unconfirmed => {}
    }
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    if let Err(err) = codes::check(&txn, user.uid, Purpose::SignUp, code, now).await? {
        txn.commit().await?;
        return Err(ConfirmError::Code(err));
    }
    store::users::confirm(&txn, user.uid, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Mails a new confirmation code to an unconfirmed user, within the resend limits; answers the
/// same whether or not anything was sent.
pub async fn resend_confirmation(state: &AppState, email: &Email) -> Result<(), Infra> {
    let Some(user) = store::users::by_email_key(&state.db, &email.key()).await? else {
        return Ok(());
    };
    if UserStatus::of(&user) != UserStatus::Unconfirmed {
        return Ok(());
    }
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    if codes::resend_wait(&txn, user.uid, Purpose::SignUp, now)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let code = codes::issue(&txn, user.uid, Purpose::SignUp, &user.email, true, now).await?;
    let mail = Mail::ConfirmSignUp {
        link: confirmation_link(state, user.uid, &code),
        code,
    };
    state.mail.queue(&txn, &user.email, &mail).await?;
    txn.commit().await?;
    state.mail.wake();
    Ok(())
}

/// Verifies the caller's current email with the code mailed to it.
pub async fn verify_email(
    state: &AppState,
    caller: &Authenticated,
    code: &Code,
) -> Result<(), ConfirmError> {
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    let outcome = match codes::check(&txn, caller.user.uid, Purpose::VerifyEmail, code, now).await?
    {
        // A code mailed to an address the user has since changed away from proves nothing.
        // Compared as email keys are (stored addresses are ASCII): a change of case only keeps
        // the mailbox, and issues no new code, so the code already sent must still verify it.
        Ok(row) if !row.target.eq_ignore_ascii_case(&caller.user.email) => Err(CodeError::Mismatch),
        Ok(_) => {
            store::users::set_email_verified(&txn, caller.user.uid, now).await?;
            Ok(())
        }
        Err(err) => Err(err),
    };
    // Commit in every case: a wrong code's attempt must be counted.
    txn.commit().await?;
    outcome.map_err(ConfirmError::Code)
}

#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    /// Too soon or too often: retry after this long.
    #[error("Attempt limit exceeded, please try after some time.")]
    Limited(TimeDelta),
    #[error("The email address is already verified.")]
    AlreadyVerified,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(ResendError);

/// Mails a new verification code. With `email`, first corrects a mistyped new address (a change
/// of email, whose own code does not count as a resend).
pub async fn resend_verification(
    state: &AppState,
    caller: &Authenticated,
    email: Option<Email>,
) -> Result<(), ResendError> {
    let recased = match email {
        // Another mailbox: a correction, i.e. a change of email, which mails its own code.
        Some(email) if email.key() != caller.user.email_key => {
            let patch = AccountPatch {
                email: Some(email),
                ..AccountPatch::default()
            };
            account::update(state, caller, patch).await?;
            return Ok(());
        }
        // The same mailbox spelt with another case: a change of email would keep the address's
        // state and send nothing, yet the caller asked for a code. Keep the new spelling and
        // resend as usual (limits included), in the resend's own transaction.
        Some(email) if email.as_str() != caller.user.email => Some(email),
        _ => None,
    };
    if caller.user.email_verified {
        return Err(ResendError::AlreadyVerified);
    }
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    if let Some(wait) = codes::resend_wait(&txn, caller.user.uid, Purpose::VerifyEmail, now).await?
    {
        return Err(ResendError::Limited(wait));
    }
    let email = match recased {
        Some(email) => {
            store::users::update(
                &txn,
                user::ActiveModel {
                    uid: Set(caller.user.uid),
                    email: Set(email.as_str().to_string()),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
            email.into_string()
        }
        None => caller.user.email.clone(),
    };
    let email = &email;
    let code = codes::issue(
        &txn,
        caller.user.uid,
        Purpose::VerifyEmail,
        email,
        true,
        now,
    )
    .await?;
    state
        .mail
        .queue(&txn, email, &Mail::VerifyEmail { code })
        .await?;
    txn.commit().await?;
    state.mail.wake();
    Ok(())
}
