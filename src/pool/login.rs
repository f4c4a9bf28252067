//! Sign-in with an email or username and a password.
//!
//! An unknown name and a wrong password answer alike, after the same argon2 work (a dummy hash is
//! verified for unknown names), and both count towards lockout. Whether the account is
//! unconfirmed or disabled is told only after the right password.

use super::{
    Infra, UserStatus, lockout,
    tokens::{NewSession, SignedIn},
};
use crate::{metrics::SignIn, state::AppState, store};
use chrono::{Duration as TimeDelta, Utc};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("Incorrect username or password.")]
    NotAuthorized,
    #[error("User is not confirmed.")]
    UserNotConfirmed,
    #[error("User is disabled.")]
    UserDisabled,
    /// Too many failures: sign-in is refused for this long.
    #[error("Password attempts exceeded.")]
    LockedOut(TimeDelta),
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(LoginError);

/// Signs in, and counts the outcome in `authpool_sign_ins_total`.
pub async fn login(state: &AppState, login: &str, password: &str) -> Result<SignedIn, LoginError> {
    let result = attempt(state, login, password).await;
    state.metrics.sign_in(match &result {
        Ok(_) => SignIn::Succeeded,
        Err(LoginError::NotAuthorized) => SignIn::Failed,
        Err(LoginError::LockedOut(_)) => SignIn::Locked,
        Err(LoginError::UserNotConfirmed) => SignIn::Unconfirmed,
        Err(LoginError::UserDisabled) => SignIn::Disabled,
        Err(LoginError::Infra(_)) => SignIn::Error,
    });
    result
}

async fn attempt(state: &AppState, login: &str, password: &str) -> Result<SignedIn, LoginError> {
    // A place in the hashing pool first, before any database work: a saturated pool answers
    // 503 (after a short hold) without a query. The refusal depends on the pool only, not on the account.
    let admission = state.hasher.admit().await.map_err(Infra::from)?;
    // Both reads on the kept connections, like a bearer check (see `store::reads`).
    let user = match super::login_key(login, false) {
        Some(key) => store::users::by_login_key(&state.reads, &key).await?,
        None => None,
    };
    let key = lockout::key(user.as_ref(), login);
    if let Some(wait) = lockout::locked_for(&state.reads, &key, Utc::now()).await? {
        return Err(LoginError::LockedOut(wait));
    }
    // The tokens of a right password are signed by the hashing thread, in the same job: no
    // thread is woken for three RS256 signatures, and they run at hashing's low priority. Their
    // session is stored below; nobody sees them unless that commits.
    let signing = user
        .clone()
        .filter(|u| UserStatus::of(u) == UserStatus::Confirmed);
    let signer = state.clone();
    let (verified, signed) = admission
        .verify_then(password, user.as_ref().map(|u| u.password_hash.as_str()), {
            move |verified| {
                let user = signing.filter(|_| verified.matches)?;
                let session = NewSession::new(&signer, user, Utc::now());
                let signed_in = session.sign_here(&signer);
                Some((session, signed_in))
            }
        })
        .await
        .map_err(Infra::from)?;

    let now = Utc::now();
    let txn = store::begin_write(&state.db).await?;
    let user = match user {
        Some(user) if verified.matches => user,
        _ => {
            let counted = lockout::record_failure(&txn, &key, now).await?;
            txn.commit().await?;
            return Err(counted.map_or_else(LoginError::LockedOut, |_| LoginError::NotAuthorized));
        }
    };
    // Locked by parallel attempts since the check above: the right password is refused too.
    // Otherwise the counter is cleared, in the same statement.
    if let Some(wait) = lockout::clear_unless_locked(&txn, &key, now).await? {
        return Err(LoginError::LockedOut(wait));
    }
    match UserStatus::of(&user) {
        UserStatus::Disabled => return Err(LoginError::UserDisabled),
        UserStatus::Unconfirmed => return Err(LoginError::UserNotConfirmed),
        UserStatus::Confirmed => {}
    }
    // The hashing job signed for exactly this case: the right password of a confirmed user.
    let Some((session, signed_in)) = signed else {
        return Err(Infra::Hash("the sign-in's tokens were not signed".into()).into());
    };
    session.store(&txn).await?;
    txn.commit().await?;

    if verified.needs_rehash {
        rehash(state, &user, password).await;
    }
    Ok(signed_in)
}

/// Stores a hash with the current parameters. Best effort: the sign-in already succeeded, and
/// the next one will try again.
async fn rehash(state: &AppState, user: &entity::user::Model, password: &str) {
    let result = async {
        let hash = state.hasher.hash(password).await.map_err(Infra::from)?;
        // Only over the hash just verified: a password changed meanwhile must not be undone.
        let txn = store::begin_write(&state.db).await?;
        store::users::upgrade_password_hash(&txn, user.uid, &user.password_hash, hash).await?;
        txn.commit().await?;
        Ok::<_, Infra>(())
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(uid = %user.uid, error = %err, "could not upgrade a password hash");
    }
}
