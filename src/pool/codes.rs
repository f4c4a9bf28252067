//! One-time codes: issue, resend limits, and checking with an attempt limit.
//!
//! A code is six CSPRNG digits, stored only as a hash, single use, and replaced by the next code
//! of the same purpose. After [`MAX_ATTEMPTS`] wrong tries it is dead, even for the right digits.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use entity::code;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, prelude::Uuid};

use crate::{
    crypto::secrets::{generate_code, hash_secret, secret_matches},
    domain::Code,
    store,
};

/// Wrong tries that kill a code (the last of them still answers "mismatch").
pub const MAX_ATTEMPTS: i32 = 5;
/// Shortest time between two resends.
pub const RESEND_INTERVAL: TimeDelta = TimeDelta::seconds(60);
/// Resends allowed in one hour.
pub const RESENDS_PER_HOUR: i32 = 5;

/// What a code is for, with its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    SignUp,
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "sign_up",
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }

    pub fn lifetime(self) -> TimeDelta {
        match self {
            Self::SignUp | Self::VerifyEmail => TimeDelta::hours(24),
            Self::ResetPassword => TimeDelta::hours(1),
        }
    }
}

/// Why a code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Wrong, replaced, already used, or there is no such code.
    #[error("Invalid code provided, please request a code again.")]
    Mismatch,
    #[error("Invalid code provided, please request a code again.")]
    Expired,
    /// Dead after too many wrong tries.
    #[error("Too many failed attempts for this code; request a new one.")]
    TooManyAttempts,
}

/// Creates (or replaces) the code for a purpose and returns it, to be mailed in the same
/// transaction. `resend` says whether this counts against the resend limit.
pub async fn issue(
    db: &impl ConnectionTrait,
    uid: Uuid,
    purpose: Purpose,
    target: &str,
    resend: bool,
    now: DateTime<Utc>,
) -> Result<String, DbErr> {
    let previous = store::codes::for_update(db, uid, purpose.as_str()).await?;
    let (mut resends, mut window_start, mut last_resend_at) =
        previous.as_ref().map_or((0, None, None), |p| {
            (p.resends, p.resend_window_start, p.last_resend_at)
        });
    if resend {
        if window_start.is_none_or(|start| now - start >= TimeDelta::hours(1)) {
            window_start = Some(now);
            resends = 0;
        }
        resends += 1;
        last_resend_at = Some(now);
    }
    let code = generate_code();
    store::codes::put(
        db,
        code::ActiveModel {
            uid: Set(uid),
            purpose: Set(purpose.as_str().to_string()),
            code_hash: Set(hash_secret(&code)),
            target: Set(target.to_string()),
            expires_at: Set(now + purpose.lifetime()),
            attempts: Set(0),
            sent_at: Set(now),
            resends: Set(resends),
            resend_window_start: Set(window_start),
            last_resend_at: Set(last_resend_at),
        },
    )
    .await?;
    Ok(code)
}

/// Whether a resend is allowed now; otherwise how long until it is. The code sent by the action
/// itself does not count, and the first resend is always allowed.
pub async fn resend_wait(
    db: &impl ConnectionTrait,
    uid: Uuid,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Option<TimeDelta>, DbErr> {
    let Some(row) = store::codes::for_update(db, uid, purpose.as_str()).await? else {
        return Ok(None);
    };
    let Some(last) = row.last_resend_at else {
        return Ok(None);
    };
    if now - last < RESEND_INTERVAL {
        return Ok(Some(RESEND_INTERVAL - (now - last)));
    }
    if let Some(start) = row.resend_window_start
        && now - start < TimeDelta::hours(1)
        && row.resends >= RESENDS_PER_HOUR
    {
        return Ok(Some(TimeDelta::hours(1) - (now - start)));
    }
    Ok(None)
}

/// Checks a code inside the caller's write transaction. A right code is consumed (deleted) and
/// its row returned; a wrong one counts an attempt, which the caller must commit before
/// answering with the error.
pub async fn check(
    db: &impl ConnectionTrait,
    uid: Uuid,
    purpose: Purpose,
    code: &Code,
    now: DateTime<Utc>,
) -> Result<Result<code::Model, CodeError>, DbErr> {
    let Some(row) = store::codes::for_update(db, uid, purpose.as_str()).await? else {
        return Ok(Err(CodeError::Mismatch));
    };
    if row.attempts >= MAX_ATTEMPTS {
        return Ok(Err(CodeError::TooManyAttempts));
    }
    if !secret_matches(code.as_str(), &row.code_hash) {
        store::codes::record_wrong_attempt(db, uid, purpose.as_str()).await?;
        return Ok(Err(CodeError::Mismatch));
    }
    if row.expires_at <= now {
        return Ok(Err(CodeError::Expired));
    }
    store::codes::delete(db, uid, purpose.as_str()).await?;
    Ok(Ok(row))
}
