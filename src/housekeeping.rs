//! Periodic purges of rows nothing will read again: expired codes, ended sessions (and their
//! refresh tokens), sent or abandoned mail, stale sign-in failure counters, and signing keys no
//! longer published.
//!
//! Each purge deletes a bounded batch per statement and yields between batches, so a large
//! backlog drains without holding SQLite's write lock (or many PostgreSQL row locks) for long.
//! Every replica may run it: the deletes are idempotent.

use std::time::Duration;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use sea_orm::DbErr;
use tokio_util::sync::CancellationToken;

use crate::{pool::lockout, state::AppState, store::housekeeping as purge};

/// Rows deleted per statement.
pub const BATCH: u64 = 500;

/// How long an expired code is kept: within it, a late attempt is told the code expired
/// (`ExpiredCodeException`) rather than that it does not match.
pub const CODE_GRACE: TimeDelta = TimeDelta::days(1);
/// How long an ended (expired or revoked) session is kept. Its tokens are refused either way.
pub const SESSION_GRACE: TimeDelta = TimeDelta::days(1);
/// How long sent or abandoned mail is kept, for an operator looking into a delivery.
pub const MAIL_RETENTION: TimeDelta = TimeDelta::days(7);

/// What one run deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub codes: u64,
    pub sessions: u64,
    pub mail: u64,
    pub login_failures: u64,
    pub signing_keys: u64,
    /// Statements run, so a test can see that a backlog went in batches.
    pub statements: u64,
}

impl Purged {
    fn total(&self) -> u64 {
        self.codes + self.sessions + self.mail + self.login_failures + self.signing_keys
    }
}

/// Runs every purge once, as of `now`, `batch` rows per statement.
pub async fn run_once(state: &AppState, now: DateTime<Utc>, batch: u64) -> Result<Purged, DbErr> {
    let db = &state.db;
    let mut purged = Purged::default();
    // Failures older than this no longer count, and no lock outlasts it.
    let failures_cutoff = now - lockout::FORGET_AFTER - lockout::MAX_LOCK;
    purged.codes = drain(&mut purged.statements, batch, || {
        purge::expired_codes(db, now - CODE_GRACE, batch)
    })
    .await?;
    purged.sessions = drain(&mut purged.statements, batch, || {
        purge::ended_sessions(db, now - SESSION_GRACE, batch)
    })
    .await?;
    purged.mail = drain(&mut purged.statements, batch, || {
        purge::finished_mail(db, now - MAIL_RETENTION, batch)
    })
    .await?;
    purged.login_failures = drain(&mut purged.statements, batch, || {
        purge::stale_login_failures(db, failures_cutoff, now, batch)
    })
    .await?;
    // Keys are few: one statement.
    purged.signing_keys = purge::unpublished_keys(db, now - state.keys.retention()).await?;
    purged.statements += 1;
    Ok(purged)
}

/// Repeats one batched delete until a batch comes back short, yielding in between.
async fn drain<F, Fut>(statements: &mut u64, batch: u64, mut delete: F) -> Result<u64, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, DbErr>>,
{
    let mut total = 0;
    loop {
        let deleted = delete().await?;
        *statements += 1;
        total += deleted;
        // A batch of codes may delete a few more rows than `batch` (several purposes per
        // user); only a batch with fewer rows proves there is nothing left.
        if deleted < batch {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Runs [`run_once`] every `interval` until `stop`.
pub async fn run(state: AppState, interval: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match run_once(&state, Utc::now(), BATCH).await {
            Ok(purged) if purged.total() > 0 => tracing::info!(
                codes = purged.codes,
                sessions = purged.sessions,
                mail = purged.mail,
                login_failures = purged.login_failures,
                signing_keys = purged.signing_keys,
                "housekeeping purged expired rows"
            ),
            Ok(_) => tracing::debug!("housekeeping found nothing to purge"),
            Err(err) => tracing::warn!(error = %err, "housekeeping failed; it will try again"),
        }
    }
}
