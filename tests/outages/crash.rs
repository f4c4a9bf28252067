//! Crash safety: sign-ups, confirmations and password-reset requests run while the server is
//! killed with SIGKILL several times and restarted on the same database. Whatever got a 2xx has
//! its effect in the database, no user lacks what registration writes with it, and every
//! acknowledged email reaches the SMTP server, at most once more per crash.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use entity::{code, mail_outbox, user};
use sea_orm::{Database, DatabaseConnection, EntityTrait};
use serde_json::json;

use crate::{
    Authpool, Config, PASSWORD, address, client,
    db::TestDb,
    one_at_a_time, post,
    process::{sigterm, wait_for_exit},
    smtp::{Mail, SmtpServer, free_port},
};

/// Clients sending at once.
const WORKERS: usize = 4;
/// The server is killed when this many requests in all have been acknowledged (2xx)...
const KILL_AT_ACKS: [usize; 4] = [100, 260, 400, 560];
/// ...and the load stops at this many.
const STOP_AT_ACKS: usize = 700;
/// The subjects of the two emails (templates/*.subject.txt).
const CONFIRM_SUBJECT: &str = "Confirm your account";
const RESET_SUBJECT: &str = "Reset your password";
/// The longest mail delivery may make no progress after the load: a killed worker's claimed rows
/// wait for their lease to end (60 s, `LEASE` in src/mail/worker.rs) before another worker takes
/// them, plus a margin.
const MAIL_STALL_LIMIT: Duration = Duration::from_secs(90);
/// And the longest it may take in all.
const MAIL_DEADLINE: Duration = Duration::from_secs(240);

/// What the clients were told.
#[derive(Default)]
struct Acks {
    /// Emails whose registration answered 201.
    registered: Vec<String>,
    /// Emails whose reset request answered 200.
    reset: Vec<String>,
    /// Emails whose confirmation answered 200.
    confirmed: Vec<String>,
    /// Requests that got no answer: refused while the server was down, or cut by a kill.
    unanswered: usize,
    /// 503s (the server may shed load); counted, not errors.
    unavailable: usize,
    /// Any other answer, which would be a bug: (request, status, body).
    unexpected: Vec<String>,
}

struct Shared {
    base: String,
    acks: Mutex<Acks>,
    /// 2xx answers so far; the kills are placed by this count.
    acked: AtomicUsize,
    next_user: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn record(&self, what: &str, email: &str, answer: Option<(u16, serde_json::Value)>) -> bool {
        let mut acks = self.acks.lock().unwrap();
        match answer {
            Some((status, _)) if (200..300).contains(&status) => {
                let list = match what {
                    "register" => &mut acks.registered,
                    "reset" => &mut acks.reset,
                    _ => &mut acks.confirmed,
                };
                list.push(email.to_string());
                self.acked.fetch_add(1, Relaxed);
                true
            }
            Some((503, _)) => {
                acks.unavailable += 1;
                false
            }
            Some((status, body)) => {
                acks.unexpected
                    .push(format!("{what} {email}: {status} {body}"));
                false
            }
            None => {
                acks.unanswered += 1;
                false
            }
        }
    }
}

/// One client: registers a new account, then asks for a password reset for it, again and again.
async fn sign_up_and_reset(shared: Arc<Shared>) {
    let client = client();
    let register = format!("{}/api/register", shared.base);
    let reset = format!("{}/api/password/reset", shared.base);
    while !shared.stop.load(Relaxed) {
        let n = shared.next_user.fetch_add(1, Relaxed);
        let email = format!("crash{n}@example.org");
        let answer = post(
            &client,
            &register,
            &json!({"email": email, "password": PASSWORD}),
        )
        .await;
        let down = answer.is_none();
        if shared.record("register", &email, answer) {
            let answer = post(&client, &reset, &json!({"email": email})).await;
            shared.record("reset", &email, answer);
        }
        if down {
            // The server is being restarted: try again shortly (with the next email; whether
            // this one was created is for the checks to find out).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Confirms every other account with the code from its email, as mail arrives.
async fn confirm_from_mail(shared: &Shared, smtp: &SmtpServer) {
    let client = client();
    let validate = format!("{}/api/validate", shared.base);
    let mut done: HashSet<String> = HashSet::new();
    // Confirmations whose answer never came: the account may be confirmed already.
    let mut cut: HashSet<String> = HashSet::new();
    while !shared.stop.load(Relaxed) {
        for raw in smtp.messages() {
            let mail = Mail::parse(&raw);
            if mail.header("Subject") != Some(CONFIRM_SUBJECT) {
                continue;
            }
            let email = address(mail.header("To").unwrap_or_default());
            let n: usize = email
                .trim_start_matches("crash")
                .split('@')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a test address");
            if n % 2 == 1 || done.contains(&email) {
                continue;
            }
            let code = mail.code().expect("a code in the confirmation email");
            let answer = post(
                &client,
                &validate,
                &json!({"user_name": email, "confirmation_code": code}),
            )
            .await;
            match answer {
                None => {
                    cut.insert(email);
                }
                // Confirmed by the earlier request whose answer a kill cut off.
                Some((400, body))
                    if cut.contains(&email)
                        && body["detail"]
                            .as_str()
                            .is_some_and(|d| d.contains("Current status is CONFIRMED")) =>
                {
                    done.insert(email);
                }
                answer => {
                    shared.record("confirm", &email, answer);
                    done.insert(email);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the server at each of `KILL_AT_ACKS` and restarts it; stops the load at
/// `STOP_AT_ACKS`. Returns the number of kills.
async fn kill_and_restart(shared: &Shared, server: &mut Authpool) -> usize {
    let mut kills = 0;
    for point in KILL_AT_ACKS.into_iter().chain([STOP_AT_ACKS]) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while shared.acked.load(Relaxed) < point {
            assert!(
                Instant::now() < deadline,
                "the load stalled at {} acknowledged requests (waiting for {point})",
                shared.acked.load(Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if point == STOP_AT_ACKS {
            break;
        }
        server.kill();
        kills += 1;
        server.restart().await;
    }
    shared.stop.store(true, Relaxed);
    kills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "process-level: run by .ci/run"]
async fn acknowledged_work_survives_sigkill() {
    let _serial = one_at_a_time().await;
    let started = Instant::now();
    let db = TestDb::new().await;
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Authpool::start(
        dir.path(),
        free_port(),
        Config {
            database_url: db.url.clone(),
            mail_url: format!("smtp://127.0.0.1:{}", smtp.port()),
            extra: vec![],
        },
    )
    .await;

    let shared = Arc::new(Shared {
        base: server.base.clone(),
        acks: Mutex::default(),
        acked: AtomicUsize::new(0),
        next_user: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(sign_up_and_reset(shared.clone())))
        .collect();
    let (kills, ()) = tokio::join!(
        kill_and_restart(&shared, &mut server),
        confirm_from_mail(&shared, &smtp)
    );
    for worker in workers {
        worker.await.expect("a client task failed");
    }
    let load_time = started.elapsed();
    let acks = std::mem::take(&mut *shared.acks.lock().unwrap());
    assert!(
        acks.unexpected.is_empty(),
        "unexpected answers: {:#?}",
        acks.unexpected
    );
    // Each kill happened under load: requests were cut or refused.
    assert!(
        acks.unanswered >= kills,
        "only {} requests went unanswered over {kills} kills",
        acks.unanswered
    );

    let conn = Database::connect(&db.url)
        .await
        .expect("connect to the test database");
    let outbox = check_database(&conn, &acks).await;

    // Every queued email (so every acknowledged one) reaches the SMTP server.
    let deadline = Instant::now() + MAIL_DEADLINE;
    let (mut progress_at, mut sent_before) = (Instant::now(), 0);
    let received = loop {
        let rows = mail_outbox::Entity::find().all(&conn).await.unwrap();
        let received = received_mail(&smtp);
        let sent = rows.iter().filter(|r| r.sent_at.is_some()).count();
        let missing: Vec<_> = outbox
            .iter()
            .filter(|key| !received.contains_key(*key))
            .collect();
        if sent == rows.len() && missing.is_empty() {
            break received;
        }
        if sent > sent_before {
            (progress_at, sent_before) = (Instant::now(), sent);
        }
        assert!(
            progress_at.elapsed() < MAIL_STALL_LIMIT && Instant::now() < deadline,
            "{} emails still unsent and {} not received, e.g. {:?}",
            rows.len() - sent,
            missing.len(),
            missing.first()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for key in received.keys() {
        assert!(outbox.contains(key), "mail that nothing queued: {key:?}");
    }
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    let total: usize = received.values().sum();

    println!(
        "crash safety on {}: {kills} SIGKILLs; acknowledged {} registrations, {} reset requests, \
         {} confirmations; {} requests unanswered, {} answered 503; {} users; {total} emails \
         received for {} queued, {duplicates} duplicates; load {:.1} s, all mail after {:.1} s",
        db.url.split(':').next().unwrap_or("?"),
        acks.registered.len(),
        acks.reset.len(),
        acks.confirmed.len(),
        acks.unanswered,
        acks.unavailable,
        user::Entity::find().all(&conn).await.unwrap().len(),
        outbox.len(),
        load_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        duplicates <= kills,
        "{duplicates} duplicate emails after {kills} kills: more than one per crash"
    );

    conn.close().await.ok();
    sigterm(&server.child);
    assert_eq!(
        wait_for_exit(&mut server.child).await.code(),
        Some(0),
        "the last server did not stop cleanly"
    );
    server.assert_no_panic();
}

/// Checks every acknowledged request against the database and every user for completeness;
/// returns the emails the outbox holds, as (recipient, subject).
async fn check_database(conn: &DatabaseConnection, acks: &Acks) -> BTreeSet<(String, String)> {
    let users: BTreeMap<String, user::Model> = user::Entity::find()
        .all(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.email.clone(), u))
        .collect();
    let codes: BTreeSet<(String, String)> = code::Entity::find()
        .all(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.uid.to_string(), c.purpose))
        .collect();
    let outbox: Vec<mail_outbox::Model> = mail_outbox::Entity::find().all(conn).await.unwrap();
    let mut queued: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in &outbox {
        *queued
            .entry((row.recipient.clone(), row.subject.clone()))
            .or_default() += 1;
        assert!(
            users.contains_key(&row.recipient),
            "mail queued for {} who does not exist",
            row.recipient
        );
        assert!(row.failed_at.is_none(), "mail given up: {row:?}");
    }
    let uids: HashSet<String> = users.values().map(|u| u.uid.to_string()).collect();
    for (uid, purpose) in &codes {
        assert!(
            uids.contains(uid),
            "a {purpose} code of a user who does not exist"
        );
    }
    let has_code =
        |u: &user::Model, purpose: &str| codes.contains(&(u.uid.to_string(), purpose.into()));
    let mails = |email: &str, subject: &str| {
        queued
            .get(&(email.to_string(), subject.to_string()))
            .copied()
            .unwrap_or(0)
    };

    // No half-created user: each has its password, its confirmation email queued once, and
    // either its confirmation code or, confirmed, none left (confirming spends it).
    for user in users.values() {
        assert!(
            !user.password_hash.is_empty(),
            "{} has no password",
            user.email
        );
        assert_eq!(
            mails(&user.email, CONFIRM_SUBJECT),
            1,
            "{} should have one confirmation email",
            user.email
        );
        assert!(
            user.confirmed_at.is_some() != has_code(user, "sign_up"),
            "{}: confirmed {:?} with a confirmation code {}",
            user.email,
            user.confirmed_at,
            has_code(user, "sign_up")
        );
    }
    // Every acknowledged request has its effect.
    for email in &acks.registered {
        assert!(users.contains_key(email), "registered {email} is missing");
    }
    for email in &acks.reset {
        let user = &users[email];
        assert!(
            has_code(user, "reset_password"),
            "{email} was told a reset code is on its way but has none"
        );
        assert_eq!(mails(email, RESET_SUBJECT), 1, "{email}: reset emails");
    }
    for email in &acks.confirmed {
        let user = &users[email];
        assert!(
            user.confirmed_at.is_some() && user.email_verified,
            "{email} was confirmed but is not"
        );
    }
    queued.into_keys().collect()
}

/// Messages at the SMTP server, counted by (recipient, subject).
fn received_mail(smtp: &SmtpServer) -> BTreeMap<(String, String), usize> {
    let mut received = BTreeMap::new();
    for raw in smtp.messages() {
        let mail = Mail::parse(&raw);
        let key = (
            address(mail.header("To").unwrap_or_default()),
            mail.header("Subject").unwrap_or_default().to_string(),
        );
        *received.entry(key).or_default() += 1;
    }
    received
}
