//! Database outage, on a private PostgreSQL the test stops and starts: while it is down every
//! request that needs it answers 503 JSON within a bound, `/health/ready` fails, the process
//! neither panics nor exits; when it is back, service resumes by itself with the data intact.

use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, header::RETRY_AFTER};
use serde_json::{Value, json};

use crate::{
    Authpool, Config, PASSWORD, address, client, one_at_a_time, post,
    postgres::PrivatePostgres,
    process::{sigterm, wait_for_exit},
    smtp::{Mail, free_port},
};

/// The longest a request may take to answer 503 with the database gone: a connection is awaited
/// for at most 5 s (`ACQUIRE_TIMEOUT` in src/store/database.rs), plus a margin for a busy machine.
const ANSWER_BOUND: Duration = Duration::from_secs(7);

/// One answer: status, `Retry-After`, JSON body, and how long it took.
struct Answer {
    what: &'static str,
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

async fn timed(what: &'static str, request: RequestBuilder) -> Answer {
    let start = Instant::now();
    let response = request
        .send()
        .await
        .expect("an answer, not a dropped connection");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.expect("a body");
    let took = start.elapsed();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{what}: the {status} body is not JSON: {text:?}"));
    Answer {
        what,
        status,
        retry_after,
        body,
        took,
    }
}

/// The code in the email to `to` in the file transport's folder, waiting up to 10 s for it.
async fn code_sent_to(mail_dir: &std::path::Path, to: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let code = std::fs::read_dir(mail_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|raw| Mail::parse(&raw))
            .find(|mail| mail.header("To").is_some_and(|h| address(h) == to))
            .and_then(|mail| mail.code());
        if let Some(code) = code {
            return code;
        }
        assert!(
            Instant::now() < deadline,
            "no email to {to} in {mail_dir:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "process-level: run by .ci/run"]
async fn a_database_outage_answers_503_and_heals_by_itself() {
    let _serial = one_at_a_time().await;
    let started = Instant::now();
    let postgres = PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    let mut server = Authpool::start(
        dir.path(),
        free_port(),
        Config {
            database_url: postgres.url(),
            mail_url: format!("file://{}", mail_dir.display()),
            extra: vec![],
        },
    )
    .await;
    let client = client();

    // A confirmed user with a session, from before the outage.
    let email = "ada@example.org";
    let registered = post(
        &client,
        &server.url("/api/register"),
        &json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(registered.map(|(s, _)| s), Some(201));
    let code = code_sent_to(&mail_dir, email).await;
    let confirmed = post(
        &client,
        &server.url("/api/validate"),
        &json!({"user_name": email, "confirmation_code": code}),
    )
    .await;
    assert_eq!(confirmed.map(|(s, _)| s), Some(200));
    let (status, tokens) = post(
        &client,
        &server.url("/api/login"),
        &json!({"email": email, "password": PASSWORD}),
    )
    .await
    .expect("login answers");
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    postgres.stop_immediately();
    let down = Instant::now();

    // Twice: first with the pool's connections freshly cut, then with none left to try.
    for round in ["connections just cut", "no connection left"] {
        let (register, login, account, refreshed, reset, compat_login, ready) = tokio::join!(
            timed(
                "register",
                client
                    .post(server.url("/api/register"))
                    .json(&json!({"email": "grace@example.org", "password": PASSWORD}))
            ),
            timed(
                "login",
                client
                    .post(server.url("/api/login"))
                    .json(&json!({"email": email, "password": PASSWORD}))
            ),
            timed(
                "account",
                client.get(server.url("/api/account")).bearer_auth(&access)
            ),
            timed(
                "refresh",
                client
                    .post(server.url("/api/refresh"))
                    .json(&json!({"refresh_token": refresh}))
            ),
            timed(
                "password reset",
                client
                    .post(server.url("/api/password/reset"))
                    .json(&json!({"email": email}))
            ),
            timed(
                "compat login",
                client
                    .post(server.url("/authentication/api/login/"))
                    .json(&json!({"email": email, "password": PASSWORD}))
            ),
            timed("ready", client.get(server.url("/health/ready"))),
        );
        for answer in [
            register,
            login,
            account,
            refreshed,
            reset,
            compat_login,
            ready,
        ] {
            let what = answer.what;
            assert_eq!(
                answer.status, 503,
                "{what} ({round}): {} {}",
                answer.status, answer.body
            );
            assert_eq!(
                answer.body["code"], "ServiceUnavailableException",
                "{what} ({round}): {}",
                answer.body
            );
            assert!(answer.body["detail"].is_string(), "{what}: {}", answer.body);
            assert!(
                answer.retry_after.is_some(),
                "{what} ({round}): no Retry-After"
            );
            assert!(
                answer.took <= ANSWER_BOUND,
                "{what} ({round}) took {:?} to answer",
                answer.took
            );
            println!(
                "database down, {round}: {what} answered 503 in {:?}",
                answer.took
            );
        }
    }
    // The process lives on, and says so.
    let live = client.get(server.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "authpool exited while the database was down"
    );
    server.assert_no_panic();
    let outage = down.elapsed();

    // The database comes back: the server notices by itself.
    postgres.start_again();
    let back = Instant::now();
    let deadline = back + Duration::from_secs(30);
    loop {
        let ready = client.get(server.url("/health/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 30 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = back.elapsed();

    // Everything from before is there: the account, its password, its session.
    let account = client
        .get(server.url("/api/account"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 200);
    let account: Value = account.json().await.unwrap();
    assert_eq!(account["email"], email);
    assert_eq!(account["status"], "CONFIRMED");
    let refreshed = post(
        &client,
        &server.url("/api/refresh"),
        &json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(
        refreshed.map(|(s, _)| s),
        Some(200),
        "the refresh token refused during the outage must still work"
    );
    let login = post(
        &client,
        &server.url("/api/login"),
        &json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(login.map(|(s, _)| s), Some(200));
    // The sign-up refused during the outage left nothing behind, and mail flows again.
    let again = post(
        &client,
        &server.url("/api/register"),
        &json!({"email": "grace@example.org", "password": PASSWORD}),
    )
    .await;
    assert_eq!(again.map(|(s, _)| s), Some(201));
    code_sent_to(&mail_dir, "grace@example.org").await;

    println!(
        "database outage: {:.1} s down, ready again {:.1} s after the database came back; \
         test {:.1} s",
        outage.as_secs_f64(),
        recovered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    sigterm(&server.child);
    assert_eq!(wait_for_exit(&mut server.child).await.code(), Some(0));
    server.assert_no_panic();
}
