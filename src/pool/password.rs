//! Changing a password (signed in), and resetting a forgotten one by emailed code.

use chrono::Utc;

use super::{
    Infra, UserStatus,
    codes::{self, CodeError, Purpose},
    lockout,
    session::Authenticated,
};
use crate::{
    domain::{Code, Email, Password, PasswordError},
    mail::Email as Mail,
    state::AppState,
    store,
};

#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    #[error("Incorrect old password.")]
    WrongOldPassword,
    /// Wrong old passwords count towards the account's sign-in lockout, so a stolen access
    /// token cannot be used to guess the password without limit.
    #[error("Password attempts exceeded.")]
    LockedOut(chrono::Duration),
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(ChangePasswordError);

/// Sets a new password after checking the old one, and revokes the user's other sessions.
pub async fn change(
    state: &AppState,
    caller: &Authenticated,
    old: &str,
    new: &Password,
) -> Result<(), ChangePasswordError> {
    // The hashing pool's place first: a saturated pool answers 503 before any query.
    let admission = state.hasher.admit().await.map_err(Infra::from)?;
    let lock_key = lockout::key(Some(&caller.user), &caller.user.email);
    if let Some(wait) = lockout::locked_for(&state.db, &lock_key, Utc::now()).await? {
        return Err(ChangePasswordError::LockedOut(wait));
    }
    let verified = admission
        .verify(old, Some(&caller.user.password_hash))
        .await
        .map_err(Infra::from)?;
    if !verified.matches {
        let txn = store::begin_write(&state.db).await?;
        let counted = lockout::record_failure(&txn, &lock_key, Utc::now()).await?;
        txn.commit().await?;
        return Err(counted.map_or_else(ChangePasswordError::LockedOut, |_| {
            ChangePasswordError::WrongOldPassword
        }));
    }
    let hash = state.hasher.hash(new.expose()).await.map_err(Infra::from)?;
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    // Locked by parallel wrong guesses since the check above: refused like them.
    if let Some(wait) = lockout::clear_unless_locked(&txn, &lock_key, now).await? {
        return Err(ChangePasswordError::LockedOut(wait));
    }
    store::users::set_password_hash(&txn, caller.user.uid, hash, now, true).await?;
    store::sessions::revoke_all(&txn, caller.user.uid, Some(caller.session.id), now).await?;
    txn.commit().await?;
    Ok(())
}

/// Mails a reset code when the email belongs to an enabled user; answers the same either way.
/// The first request's code is the action's own; later requests are resends and are limited,
/// silently (the caller cannot tell a limited request from an unknown email).
pub async fn request_reset(state: &AppState, email: &Email) -> Result<(), Infra> {
    let Some(user) = store::users::by_email_key(&state.db, &email.key()).await? else {
        return Ok(());
    };
    if UserStatus::of(&user) == UserStatus::Disabled {
        return Ok(());
    }
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    let existing =
        store::codes::for_update(&txn, user.uid, Purpose::ResetPassword.as_str()).await?;
    let resend = existing.is_some();
    if resend
        && codes::resend_wait(&txn, user.uid, Purpose::ResetPassword, now)
            .await?
            .is_some()
    {
        return Ok(());
    }
    let code = codes::issue(
        &txn,
        user.uid,
        Purpose::ResetPassword,
        &user.email,
        resend,
        now,
    )
    .await?;
    state
        .mail
        .queue(&txn, &user.email, &Mail::ResetPassword { code })
        .await?;
    txn.commit().await?;
    state.mail.wake();
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Code(CodeError),
    /// The new password fails the policy once checked against the account's own data.
    #[error(transparent)]
    Password(PasswordError),
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(ResetError);

/// Sets a new password with the emailed code and revokes every session of the user. The code
/// proves the user reads that mailbox, so an unconfirmed account becomes confirmed, and the
/// sign-in lockout is lifted.
///
/// `new` has passed the policy with the email as context; here it is checked again against the
/// account's username and names, as at registration.
pub async fn confirm_reset(
    state: &AppState,
    email: &Email,
    code: &Code,
    new: &Password,
) -> Result<(), ResetError> {
    // Hash first, whether or not the account exists: answering an unknown email without the
    // argon2 work would tell by the response time which emails have accounts. (It also keeps
    // the slow part out of the write transaction.)
    let hash = state.hasher.hash(new.expose()).await.map_err(Infra::from)?;
    let Some(user) = store::users::by_email_key(&state.db, &email.key()).await? else {
        return Err(ResetError::Code(CodeError::Mismatch));
    };
    if UserStatus::of(&user) == UserStatus::Disabled {
        return Err(ResetError::Code(CodeError::Mismatch));
    }
    let context = super::password_context(&user);
    let context: Vec<&str> = context.iter().map(String::as_str).collect();
    Password::parse(new.expose(), &state.settings.password, &context)
        .map_err(|e| ResetError::Password(e.for_field("new_password1")))?;
    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    let outcome = match codes::check(&txn, user.uid, Purpose::ResetPassword, code, now).await? {
        // A code mailed to an address the account has since left proves nothing: whoever still
        // reads the old mailbox must not take the account over. (The code is consumed.)
        Ok(row) if row.target.to_lowercase() != email.key() => Err(CodeError::Mismatch),
        Ok(_) => Ok(()),
        Err(err) => Err(err),
    };
    if let Err(err) = outcome {
        // Commit in every case: a wrong code's attempt must be counted.
        txn.commit().await?;
        return Err(ResetError::Code(err));
    }
    store::users::set_password_hash(&txn, user.uid, hash, now, true).await?;
    if user.confirmed_at.is_none() {
        store::users::confirm(&txn, user.uid, now).await?;
    }
    store::sessions::revoke_all(&txn, user.uid, None, now).await?;
    lockout::clear(&txn, &lockout::key(Some(&user), &user.email)).await?;
    txn.commit().await?;
    Ok(())
}
