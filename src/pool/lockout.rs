//! Cognito-style sign-in lockout, counted in the database so every replica sees it.
//!
//! After [`FREE_FAILURES`] consecutive failures for an account (or for an unknown login name,
//! so that the answer does not reveal which names exist), each further failure locks sign-in for
//! 2^(n−5) seconds, capped at 15 minutes. Attempts refused during a lock don't extend it; the
//! count resets after a successful sign-in or 15 minutes without failures.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use entity::{login_failure, user};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr};

use crate::store;

pub const FREE_FAILURES: i32 = 5;
pub const MAX_LOCK: TimeDelta = TimeDelta::minutes(15);
/// Failures older than this no longer count.
pub const FORGET_AFTER: TimeDelta = TimeDelta::minutes(15);

/// The counter's key: the account when the name exists, so switching between email and
/// username does not reset it; otherwise the lower-cased name.
pub fn key(user: Option<&user::Model>, login: &str) -> String {
    match user {
        Some(user) => format!("uid:{}", user.uid),
        None => format!("name:{}", login.trim().to_lowercase()),
    }
}

/// How long sign-in stays locked for this key, if it is locked now.
pub async fn locked_for(
    db: &impl ConnectionTrait,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<TimeDelta>, DbErr> {
    Ok(store::login_failures::get(db, key)
        .await?
        .and_then(|row| remaining(&row, now)))
}

/// How long the row's lock still lasts at `now`, if it is locked.
fn remaining(row: &login_failure::Model, now: DateTime<Utc>) -> Option<TimeDelta> {
    row.locked_until
        .filter(|until| *until > now)
        .map(|until| until - now)
}

/// Clears the counter after a right password, inside the caller's write transaction, unless
/// sign-in is locked by now: then returns how long the lock lasts, and the caller must not
/// commit (dropping the transaction puts the counter back).
///
/// The check made before verifying a password is not enough: parallel attempts, on this replica
/// or another, all pass it before any of their failures is committed, so a burst of guesses
/// would all be answered, the right one included. Read here, in the statement that deletes the
/// row (which waits for a concurrent writer of it on PostgreSQL; SQLite write transactions are
/// exclusive), a lock set by such a failure refuses the right password too.
pub async fn clear_unless_locked(
    db: &impl ConnectionTrait,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<TimeDelta>, DbErr> {
    Ok(store::login_failures::take(db, key)
        .await?
        .and_then(|row| remaining(&row, now)))
}

/// Counts a failure inside the caller's write transaction and returns the new count; or, when
/// sign-in is locked by now (failures of parallel attempts committed since the caller's first
/// check, see [`clear_unless_locked`]), counts nothing and returns how long the lock lasts.
pub async fn record_failure(
    db: &impl ConnectionTrait,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Result<i32, TimeDelta>, DbErr> {
    store::login_failures::ensure(db, key, now).await?;
    let row = store::login_failures::for_update(db, key)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("login failure row".into()))?;
    if let Some(wait) = remaining(&row, now) {
        return Ok(Err(wait));
    }
    let count = if now - row.last_failure_at > FORGET_AFTER {
        1
    } else {
        row.count + 1
    };
    let locked_until = (count >= FREE_FAILURES).then(|| now + lock_duration(count));
    store::login_failures::update(
        db,
        login_failure::ActiveModel {
            key: Set(key.to_string()),
            count: Set(count),
            last_failure_at: Set(now),
            locked_until: Set(locked_until),
        },
    )
    .await?;
    Ok(Ok(count))
}

/// Clears the counter, whatever it holds (a reset or an administrator unlocking).
pub async fn clear(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    store::login_failures::clear(db, key).await
}

/// 2^(n−5) seconds for the n-th consecutive failure, capped.
pub fn lock_duration(failures: i32) -> TimeDelta {
    let exponent = (failures - FREE_FAILURES).clamp(0, 20) as u32;
    TimeDelta::seconds(1i64 << exponent).min(MAX_LOCK)
}

/// Whole seconds, rounded up, at least 1: the `Retry-After` of a lock.
pub fn retry_after_secs(wait: TimeDelta) -> u64 {
    let millis = wait.num_milliseconds().max(0) as u64;
    millis.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_doubles_from_the_fifth_failure_and_caps_at_fifteen_minutes() {
        assert_eq!(lock_duration(5), TimeDelta::seconds(1));
        assert_eq!(lock_duration(6), TimeDelta::seconds(2));
        assert_eq!(lock_duration(10), TimeDelta::seconds(32));
        assert_eq!(lock_duration(15), TimeDelta::seconds(900));
        assert_eq!(lock_duration(40), TimeDelta::seconds(900));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(TimeDelta::milliseconds(1)), 1);
        assert_eq!(retry_after_secs(TimeDelta::milliseconds(1001)), 2);
        assert_eq!(retry_after_secs(TimeDelta::zero()), 1);
    }
}
