//! Mail: the outbox, the delivery worker and the transports, on a fresh database each (SQLite,
//! or PostgreSQL with `AUTHPOOL_TEST_DATABASE_URL`), against files and a real SMTP server.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use authpool::{
    config::{MailSettings, MailTransportConfig},
    mail::{Email, Mailer},
    store::{database, outbox},
};
use chrono::Utc;
use entity::mail_outbox;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, QueryOrder, TransactionTrait};
use tokio_util::sync::CancellationToken;

use crate::{
    db::TestDb,
    smtp::{Mail, SmtpServer, free_port},
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A migrated database and a connection to it.
async fn database() -> (TestDb, DatabaseConnection) {
    let test_db = TestDb::new().await;
    let db = database::connect(&test_db.url).await.expect("connect");
    database::migrate(&db).await.expect("migrate");
    (test_db, db)
}

fn settings(transport: MailTransportConfig) -> MailSettings {
    MailSettings {
        transport,
        from: "authpool <no-reply@example.org>".parse().unwrap(),
        retry_max: Duration::from_secs(30),
        templates_dir: None,
    }
}

fn smtp_to(port: u16) -> MailTransportConfig {
    MailTransportConfig::Smtp {
        host: "127.0.0.1".into(),
        port,
        implicit_tls: false,
        credentials: None,
    }
}

fn reset(code: &str) -> Email {
    Email::ResetPassword { code: code.into() }
}

async fn rows(db: &DatabaseConnection) -> Vec<mail_outbox::Model> {
    mail_outbox::Entity::find()
        .order_by_asc(mail_outbox::Column::Id)
        .all(db)
        .await
        .unwrap()
}

/// The `.eml` files in a folder, read.
fn eml_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Makes every unsent row due now, as if its backoff had passed.
async fn make_everything_due(db: &DatabaseConnection) {
    mail_outbox::Entity::update_many()
        .set(mail_outbox::ActiveModel {
            next_attempt_at: Set(Utc::now() - chrono::Duration::seconds(1)),
            ..Default::default()
        })
        .exec(db)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_queued_email_is_delivered_to_a_file_with_both_parts_and_the_code() {
    let (_guard, db) = database().await;
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().join("mail");
    let mailer = Mailer::new(&settings(MailTransportConfig::File(dir.clone()))).unwrap();
    assert!(dir.is_dir(), "the folder is created at start-up");

    let link =
        "http://127.0.0.1:8080/api/validate?user_name=ann%40example.org&confirmation_code=314159";
    let email = Email::ConfirmSignUp {
        code: "314159".into(),
        link: link.into(),
    };
    mailer.queue(&db, "ann@example.org", &email).await.unwrap();
    let queued = rows(&db).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].attempts, 0);
    assert!(queued[0].next_attempt_at <= Utc::now());
    assert!(queued[0].sent_at.is_none());

    assert_eq!(mailer.deliver_due(&db).await.unwrap(), 1);
    assert_eq!(mailer.deliver_due(&db).await.unwrap(), 0, "sent once only");

    let files = eml_files(&dir);
    assert_eq!(files.len(), 1);
    let mail = Mail::parse(&files[0]);
    assert_eq!(mail.header("From"), Some("authpool <no-reply@example.org>"));
    assert_eq!(mail.header("To"), Some("ann@example.org"));
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    let text = mail.part("text/plain").expect("text part");
    let html = mail.part("text/html").expect("HTML part");
    assert!(text.contains("314159") && text.contains(link), "{text}");
    assert!(html.contains("314159"), "{html}");
    assert!(html.contains("&amp;confirmation_code=314159"), "{html}");
    assert_eq!(mail.code().as_deref(), Some("314159"));

    let sent = &rows(&db).await[0];
    assert!(sent.sent_at.is_some());
    assert_eq!(
        (sent.claim_token.as_ref(), sent.claimed_until),
        (None, None)
    );
}

#[tokio::test]
async fn an_email_queued_in_a_rolled_back_transaction_is_never_sent() {
    let (_guard, db) = database().await;
    let folder = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&settings(MailTransportConfig::File(folder.path().into()))).unwrap();

    let txn = db.begin().await.unwrap();
    mailer
        .queue(&txn, "ann@example.org", &reset("111111"))
        .await
        .unwrap();
    txn.rollback().await.unwrap();

    assert_eq!(mailer.deliver_due(&db).await.unwrap(), 0);
    assert!(rows(&db).await.is_empty());
}

#[tokio::test]
async fn a_failed_send_is_retried_after_a_backoff_and_then_delivered_once() {
    let (_guard, db) = database().await;
    // Nothing listens there: connection refused, a transient failure.
    let down = Mailer::new(&settings(smtp_to(free_port()))).unwrap();
    down.queue(&db, "bob@example.org", &reset("271828"))
        .await
        .unwrap();

    let before = Utc::now();
    assert_eq!(down.deliver_due(&db).await.unwrap(), 0);
    let row = &rows(&db).await[0];
    assert_eq!(row.attempts, 1);
    assert!(row.sent_at.is_none() && row.failed_at.is_none());
    assert!(row.next_attempt_at > before, "{:?}", row.next_attempt_at);
    assert!(row.next_attempt_at <= Utc::now() + chrono::Duration::seconds(2));
    let error = row.last_error.as_deref().expect("last_error set");
    assert!(!error.is_empty() && !error.contains("271828"), "{error}");
    assert!(row.claim_token.is_none(), "the claim is released");

    // Not due yet: nothing is tried.
    assert_eq!(down.deliver_due(&db).await.unwrap(), 0);
    assert_eq!(rows(&db).await[0].attempts, 1);

    let server = SmtpServer::start();
    let up = Mailer::new(&settings(smtp_to(server.port()))).unwrap();
    make_everything_due(&db).await;
    let sent = up.deliver_due(&db).await.unwrap();
    assert_eq!(sent, 1, "{:?}", rows(&db).await[0].last_error);
    assert_eq!(up.deliver_due(&db).await.unwrap(), 0);
    let messages = server.wait_for(1, TIMEOUT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(Mail::parse(&messages[0]).code().as_deref(), Some("271828"));
    let row = &rows(&db).await[0];
    assert!(row.sent_at.is_some());
    assert_eq!(row.attempts, 1, "attempts count failures");
}

#[tokio::test]
async fn a_message_that_can_never_be_sent_is_given_up_at_once() {
    let (_guard, db) = database().await;
    let folder = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&settings(MailTransportConfig::File(folder.path().into()))).unwrap();
    mailer
        .queue(&db, "not an address", &reset("999999"))
        .await
        .unwrap();

    assert_eq!(mailer.deliver_due(&db).await.unwrap(), 0);
    let row = &rows(&db).await[0];
    assert!(row.failed_at.is_some() && row.sent_at.is_none());
    assert_eq!(row.attempts, 1);
    assert!(row.last_error.as_deref().unwrap().contains("recipient"));

    make_everything_due(&db).await;
    assert_eq!(mailer.deliver_due(&db).await.unwrap(), 0);
    assert_eq!(rows(&db).await[0].attempts, 1, "not tried again");
    assert!(eml_files(folder.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_passes_deliver_each_message_exactly_once() {
    let (guard, db) = database().await;
    // A second pool: the two passes really run side by side on the database.
    let other_db = database::connect(&guard.url).await.unwrap();
    let server = SmtpServer::start();
    let mailer = Mailer::new(&settings(smtp_to(server.port()))).unwrap();
    const N: usize = 25;
    for i in 0..N {
        let code = format!("{:06}", 100_000 + i);
        mailer
            .queue(&db, &format!("user{i}@example.org"), &reset(&code))
            .await
            .unwrap();
    }

    let (a, b) = tokio::join!(
        tokio::spawn({
            let (mailer, db) = (mailer.clone(), db.clone());
            async move { mailer.deliver_due(&db).await }
        }),
        tokio::spawn({
            let mailer = mailer.clone();
            async move { mailer.deliver_due(&other_db).await }
        }),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a + b, N, "{a} + {b}");

    // Every send returned after the server accepted the message: all are there already.
    let messages = server.messages();
    assert_eq!(messages.len(), N);
    let mut codes: Vec<String> = messages
        .iter()
        .map(|m| Mail::parse(m).code().expect("a code"))
        .collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), N, "no message twice");
    assert!(rows(&db).await.iter().all(|r| r.sent_at.is_some()));
}

#[tokio::test]
async fn a_claimed_row_is_not_claimed_again_until_its_lease_runs_out() {
    let (_guard, db) = database().await;
    let folder = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&settings(MailTransportConfig::File(folder.path().into()))).unwrap();
    mailer
        .queue(&db, "ann@example.org", &reset("123123"))
        .await
        .unwrap();

    let now = Utc::now();
    let lease = chrono::Duration::seconds(60);
    let first = outbox::claim_due(&db, "worker-a", now, now + lease, 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let second = outbox::claim_due(&db, "worker-b", now, now + lease, 10)
        .await
        .unwrap();
    assert!(second.is_empty(), "held by worker-a");
    assert_eq!(mailer.deliver_due(&db).await.unwrap(), 0);

    // worker-a died: once its lease has run out, another worker takes the row.
    let later = now + lease + chrono::Duration::seconds(1);
    let third = outbox::claim_due(&db, "worker-c", later, later + lease, 10)
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    // worker-a's late outcome no longer applies.
    assert!(
        !outbox::mark_sent(&db, first[0].id, "worker-a", Utc::now())
            .await
            .unwrap()
    );
    assert!(
        outbox::mark_sent(&db, third[0].id, "worker-c", Utc::now())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn the_worker_delivers_after_wake_and_stops_on_shutdown() {
    let (_guard, db) = database().await;
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().join("mail");
    let mailer = Mailer::new(&settings(MailTransportConfig::File(dir.clone()))).unwrap();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(mailer.clone().run_worker(db.clone(), shutdown.clone()));

    mailer
        .queue(&db, "ann@example.org", &reset("577215"))
        .await
        .unwrap();
    mailer.wake();
    let started = Instant::now();
    let files = loop {
        let files = eml_files(&dir);
        if !files.is_empty() {
            break files;
        }
        assert!(started.elapsed() < TIMEOUT, "the worker sent nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(Mail::parse(&files[0]).code().as_deref(), Some("577215"));

    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, worker)
        .await
        .expect("the worker stops when cancelled")
        .expect("the worker does not panic");
}

#[tokio::test]
async fn an_email_reaches_a_real_smtp_server_with_a_text_and_an_html_part() {
    let (_guard, db) = database().await;
    let server = SmtpServer::start();
    let mailer = Mailer::new(&settings(smtp_to(server.port()))).unwrap();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(mailer.clone().run_worker(db.clone(), shutdown.clone()));

    mailer
        .queue(
            &db,
            "Carol <carol@example.org>",
            &Email::VerifyEmail {
                code: "161803".into(),
            },
        )
        .await
        .unwrap();
    mailer.wake();
    let messages = server.wait_for(1, Duration::from_secs(5)).await;
    shutdown.cancel();
    worker.await.unwrap();

    let mail = Mail::parse(&messages[0]);
    assert_eq!(mail.header("From"), Some("authpool <no-reply@example.org>"));
    assert!(mail.header("To").unwrap().contains("carol@example.org"));
    assert!(mail.header("Subject").is_some_and(|s| !s.is_empty()));
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    assert!(mail.part("text/plain").unwrap().contains("161803"));
    assert!(mail.part("text/html").unwrap().contains("161803"));
}
