//! The delivery worker: claims due outbox rows with a lease, sends them, records the outcome,
//! and retries failures with exponential backoff.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::mail_outbox;
use lettre::message::Mailbox;
use sea_orm::{DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;

use super::{
    Inner,
    transport::{self, SEND_TIMEOUT, SendError},
};
use crate::store::outbox;

/// How long a claim holds: several sends long (a worker gives back what it cannot send in time,
/// see `lease_too_short`), short enough that a crashed worker delays its mail by a minute only.
const LEASE: Duration = Duration::from_secs(60);

/// Rows claimed at once: small enough that replicas share a burst of mail.
const BATCH: u64 = 10;

/// The worker's longest sleep: it also polls, for mail queued by other replicas or by the CLI.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Attempts after which a message the server refuses for good (5xx) is given up.
const PERMANENT_FAILURE_ATTEMPTS: i32 = 5;

/// Delivers until `shutdown` is cancelled.
pub(super) async fn run(inner: &Inner, db: &DatabaseConnection, shutdown: &CancellationToken) {
    tracing::info!("mail delivery worker started");
    while !shutdown.is_cancelled() {
        if let Err(e) = deliver_due(inner, db, Some(shutdown)).await {
            tracing::error!(error = %e, "mail delivery pass failed");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
    tracing::info!("mail delivery worker stopped");
}

/// Claims and sends batches until nothing is due (or `shutdown` is cancelled); returns how many
/// messages were sent.
pub(super) async fn deliver_due(
    inner: &Inner,
    db: &DatabaseConnection,
    shutdown: Option<&CancellationToken>,
) -> Result<usize, DbErr> {
    let mut sent = 0;
    loop {
        let now = Utc::now();
        let lease_end = now + LEASE;
        let token = uuid::Uuid::new_v4().to_string();
        let rows = outbox::claim_due(db, &token, now, lease_end, BATCH).await?;
        let mut more = rows.len() as u64 >= BATCH;
        for row in rows {
            if shutdown.is_some_and(CancellationToken::is_cancelled) {
                // Shutdown must not wait for a whole batch; the rest is given back, due at once.
                outbox::release(db, &token).await?;
                return Ok(sent);
            }
            if lease_too_short(Utc::now(), lease_end) {
                // A send now could outlast the claim, and another worker would send the row
                // too: give the rest back and claim afresh.
                outbox::release(db, &token).await?;
                more = true;
                break;
            }
            if deliver_one(inner, db, &token, row).await? {
                sent += 1;
            }
        }
        if !more {
            return Ok(sent);
        }
    }
}

/// Whether a send started at `now` might still run when the lease ends.
fn lease_too_short(now: DateTime<Utc>, lease_end: DateTime<Utc>) -> bool {
    now + SEND_TIMEOUT + Duration::from_secs(5) > lease_end
}

/// Sends one claimed row and records the outcome; true when it was sent.
async fn deliver_one(
    inner: &Inner,
    db: &DatabaseConnection,
    token: &str,
    row: mail_outbox::Model,
) -> Result<bool, DbErr> {
    let id = row.id;
    let attempts = row.attempts.saturating_add(1);
    let message = match compose(inner, &row) {
        Ok(message) => message,
        Err(reason) => {
            // No attempt can ever succeed: give up at once.
            tracing::error!(outbox_id = id, error = %reason, "email cannot be built; giving up");
            inner.counters.failed.inc();
            inner.counters.given_up.inc();
            outbox::mark_failed(db, id, token, attempts, Utc::now(), &reason).await?;
            return Ok(false);
        }
    };
    let result = inner.transport.send(message).await;
    let now = Utc::now();
    match result {
        Ok(()) => {
            inner.counters.sent.inc();
            if !outbox::mark_sent(db, id, token, now).await? {
                tracing::warn!(outbox_id = id, "email sent after its claim was lost");
            }
            tracing::info!(outbox_id = id, attempts, "email sent");
            Ok(true)
        }
        Err(SendError { permanent, reason }) => {
            inner.counters.failed.inc();
            if permanent && attempts >= PERMANENT_FAILURE_ATTEMPTS {
                tracing::error!(outbox_id = id, attempts, error = %reason, "email refused; giving up");
                inner.counters.given_up.inc();
                outbox::mark_failed(db, id, token, attempts, now, &reason).await?;
            } else {
                let wait = backoff(attempts, inner.retry_max);
                let next = now + wait;
                tracing::warn!(
                    outbox_id = id,
                    attempts,
                    retry_in_s = wait.as_secs(),
                    error = %reason,
                    "email not sent; will retry"
                );
                outbox::mark_retry(db, id, token, attempts, next, &reason).await?;
            }
            Ok(false)
        }
    }
}

/// Builds the message of a row; the error is for `last_error`.
fn compose(inner: &Inner, row: &mail_outbox::Model) -> Result<lettre::Message, String> {
    let to: Mailbox = row
        .recipient
        .parse()
        .map_err(|e| format!("invalid recipient address: {e}"))?;
    transport::compose(
        &inner.from,
        to,
        &row.subject,
        row.text_body.clone(),
        row.html_body.clone(),
        row.created_at.into(),
    )
    .map_err(|e| format!("cannot build the message: {e}"))
}

/// Wait before the next attempt after `attempts` failed ones: 1 s, 2 s, 4 s, ... capped at `max`.
fn backoff(attempts: i32, max: Duration) -> Duration {
    let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
    Duration::from_secs(1u64 << exponent).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_cap() {
        let max = Duration::from_secs(30);
        let waits: Vec<u64> = (1..=7).map(|a| backoff(a, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(i32::MAX, max), max);
        assert_eq!(backoff(0, max), Duration::from_secs(1));
    }

    #[test]
    fn no_send_starts_that_could_outlast_the_lease() {
        let now = Utc::now();
        assert!(!lease_too_short(now, now + LEASE));
        assert!(lease_too_short(now, now + SEND_TIMEOUT));
    }
}
