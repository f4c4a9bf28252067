//! SMTP outage: while the mail server is down, sign-ups and reset requests still succeed; when it
//! comes back on the same port, every queued email arrives, once, with a code that works.

use std::time::{Duration, Instant};

use entity::mail_outbox;
use sea_orm::{Database, EntityTrait};
use serde_json::json;

use crate::{
    Authpool, Config, PASSWORD, address, client,
    db::TestDb,
    one_at_a_time, post,
    process::{sigterm, wait_for_exit},
    smtp::{Mail, SmtpServer, free_port},
};

/// Accounts registered during the outage (each also asks for a password reset).
const USERS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "process-level: run by .ci/run"]
async fn mail_queued_during_an_smtp_outage_arrives_when_it_ends() {
    let _serial = one_at_a_time().await;
    let started = Instant::now();
    let db = TestDb::new().await;
    let smtp = SmtpServer::start();
    let smtp_port = smtp.port();
    let dir = tempfile::tempdir().unwrap();
    let server = Authpool::start(
        dir.path(),
        free_port(),
        Config {
            database_url: db.url.clone(),
            mail_url: format!("smtp://127.0.0.1:{smtp_port}"),
            // Retries at most a second apart, so the test sees the end of the outage at once
            // rather than after the default 30 s back-off.
            extra: vec![("AUTHPOOL_MAIL_RETRY_MAX_S", "1".into())],
        },
    )
    .await;
    let client = client();

    // Mail flows, then the SMTP server goes away.
    let before = post(
        &client,
        &server.url("/api/register"),
        &json!({"email": "before@example.org", "password": PASSWORD}),
    )
    .await;
    assert_eq!(before.map(|(s, _)| s), Some(201));
    smtp.wait_for(1, Duration::from_secs(10)).await;
    drop(smtp);

    let emails: Vec<String> = (0..USERS)
        .map(|n| format!("queued{n}@example.org"))
        .collect();
    for email in &emails {
        let answer = post(
            &client,
            &server.url("/api/register"),
            &json!({"email": email, "password": PASSWORD}),
        )
        .await;
        assert_eq!(answer.map(|(s, _)| s), Some(201), "registering {email}");
        let answer = post(
            &client,
            &server.url("/api/password/reset"),
            &json!({"email": email}),
        )
        .await;
        assert_eq!(
            answer.map(|(s, _)| s),
            Some(200),
            "reset request of {email}"
        );
    }

    // The worker tries them and fails (so the outage is real, not merely unnoticed), keeping
    // every one for later.
    let conn = Database::connect(&db.url)
        .await
        .expect("connect to the test database");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = mail_outbox::Entity::find().all(&conn).await.unwrap();
        let queued: Vec<_> = rows
            .iter()
            .filter(|r| r.recipient != "before@example.org")
            .collect();
        assert_eq!(queued.len(), 2 * USERS, "one email per request");
        assert!(
            queued
                .iter()
                .all(|r| r.sent_at.is_none() && r.failed_at.is_none()),
            "mail sent or given up while the SMTP server is down"
        );
        if queued
            .iter()
            .all(|r| r.attempts >= 2 && r.last_error.is_some())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not retry the queued mail"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The SMTP server comes back on the same port: everything queued arrives, exactly once.
    let smtp = SmtpServer::start_on(smtp_port);
    let back = Instant::now();
    let messages = smtp.wait_for(2 * USERS, Duration::from_secs(30)).await;
    let delay = back.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    while mail_outbox::Entity::find()
        .all(&conn)
        .await
        .unwrap()
        .iter()
        .any(|r| r.sent_at.is_none())
    {
        assert!(
            Instant::now() < deadline,
            "mail delivered but not marked sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mails: Vec<Mail> = smtp.messages().iter().map(|m| Mail::parse(m)).collect();
    assert_eq!(mails.len(), 2 * USERS, "duplicates: {messages:?}");
    for email in &emails {
        for subject in ["Confirm your account", "Reset your password"] {
            let count = mails
                .iter()
                .filter(|m| {
                    m.header("Subject") == Some(subject)
                        && address(m.header("To").unwrap_or_default()) == *email
                })
                .count();
            assert_eq!(count, 1, "{subject} to {email}");
        }
    }

    // A code that waited out the outage still works.
    let confirmation = mails
        .iter()
        .find(|m| {
            m.header("Subject") == Some("Confirm your account")
                && address(m.header("To").unwrap_or_default()) == emails[0]
        })
        .and_then(Mail::code)
        .expect("a code in the confirmation email");
    let answer = post(
        &client,
        &server.url("/api/validate"),
        &json!({"user_name": emails[0], "confirmation_code": confirmation}),
    )
    .await;
    assert_eq!(answer.map(|(s, _)| s), Some(200));

    println!(
        "SMTP outage: {} emails queued while it was down arrived {:.1} s after it came back; \
         test {:.1} s",
        2 * USERS,
        delay.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    conn.close().await.ok();
    let mut server = server;
    sigterm(&server.child);
    assert_eq!(wait_for_exit(&mut server.child).await.code(), Some(0));
    server.assert_no_panic();
}
