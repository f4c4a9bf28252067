//! Sign-up and confirmation on /api: registering, the confirmation email and its link, codes
//! (attempts, expiry, replacement) and resends, written as a client or an attacker would try them.

use chrono::{Duration, Utc};
use entity::{code, mail_outbox, user};
use futures_util::future::join_all;
use poem::http::{StatusCode, header};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    prelude::Uuid,
};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, code_in, json};

#[tokio::test]
async fn register_validate_login() {
    let app = TestApp::spawn().await;
    let response = app.register("Ada@Example.org", PASSWORD).await;
    response.assert_status(StatusCode::CREATED);
    let body = json(response).await;
    assert_eq!(body["status"], "UNCONFIRMED");
    assert_eq!(body["email"], "Ada@Example.org");

    let mail = app.mails_to("Ada@Example.org").await.pop().unwrap();
    let code = crate::helpers::code_in(&mail.text_body).unwrap();
    assert!(mail.html_body.contains(&code));

    let early = app.login("ada@example.org", PASSWORD).await;
    assert_error(early, 403, "UserNotConfirmedException").await;

    app.post(
        "/api/validate",
        json!({"user_name": "ada@example.org", "confirmation_code": code}),
    )
    .await
    .assert_status_is_ok();
    let response = app.login("ADA@example.org", PASSWORD).await;
    response.assert_status_is_ok();
    let tokens = json(response).await;
    let account = app
        .get_as("/api/account", tokens["access_token"].as_str().unwrap())
        .await;
    account.assert_status_is_ok();
    let account = json(account).await;
    assert_eq!(account["status"], "CONFIRMED");
    assert_eq!(account["email_verified"], true);
}

#[tokio::test]
async fn registering_answers_201_with_the_new_unconfirmed_account() {
    let app = TestApp::spawn().await;
    let response = app.register(" Ada@Example.org ", PASSWORD).await;
    response.assert_status(StatusCode::CREATED);
    let body = json(response).await;

    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["detail", "email", "status", "uid", "username"],
        "{body}"
    );
    let stored = user_row(&app, "ada@example.org").await;
    assert_eq!(body["uid"], stored.uid.to_string());
    assert_eq!(body["email"], "Ada@Example.org", "trimmed, case kept");
    assert_eq!(
        body["username"], "Ada@Example.org",
        "the email stands in for no username"
    );
    assert_eq!(body["status"], "UNCONFIRMED");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(stored.confirmed_at.is_none() && !stored.email_verified);
    assert_ne!(stored.password_hash, PASSWORD, "never stored in clear");

    let with_username = app
        .post(
            "/api/register",
            json!({"email": "bob@example.org", "password": PASSWORD, "username": "Bob"}),
        )
        .await;
    with_username.assert_status(StatusCode::CREATED);
    assert_eq!(json(with_username).await["username"], "Bob");
}

#[tokio::test]
async fn the_confirmation_email_has_the_code_in_both_parts_and_a_working_link() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let mail = app.mails_to("ada@example.org").await.pop().unwrap();
    let code = code_in(&mail.text_body).expect("a code in the text part");
    assert!(mail.html_body.contains(&code), "{}", mail.html_body);
    let link = validate_link_in(&mail.text_body);
    let href = html_unescape(
        mail.html_body
            .split("href=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a link in the HTML part"),
    );
    assert_eq!(
        validate_link_in(&href),
        link,
        "both parts carry the same link"
    );

    // The link is the whole request: a click confirms the account.
    let response = app.client.get(&link).send().await;
    response.assert_status_is_ok();
    response.assert_content_type("application/json; charset=utf-8");
    assert!(json(response).await["detail"].is_string());
    let account = account_of(&app, "ada@example.org").await;
    assert_eq!(account["status"], "CONFIRMED");
    assert_eq!(account["email_verified"], true);
}

#[tokio::test]
async fn a_browser_following_the_link_gets_an_html_page() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let link = validate_link_in(&app.mails_to("ada@example.org").await[0].text_body);

    let response = app
        .client
        .get(&link)
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await;
    response.assert_status_is_ok();
    let page = html_page(response).await;
    assert!(page.contains("confirmed"), "{page}");
    assert!(
        user_row(&app, "ada@example.org")
            .await
            .confirmed_at
            .is_some()
    );
}

#[tokio::test]
async fn a_browser_following_a_link_with_a_bad_code_gets_an_html_page_with_status_400() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let code = app.last_code("ada@example.org").await;
    let uid = user_row(&app, "ada@example.org").await.uid;

    let response = app
        .client
        .get(format!(
            "/api/validate?user_name={uid}&confirmation_code={}",
            wrong(&code)
        ))
        .header(header::ACCEPT, "text/html")
        .send()
        .await;
    response.assert_status(StatusCode::BAD_REQUEST);
    let page = html_page(response).await;
    assert!(page.contains("failed"), "{page}");
    assert!(
        user_row(&app, "ada@example.org")
            .await
            .confirmed_at
            .is_none()
    );
}

#[tokio::test]
async fn validate_accepts_the_email_in_any_case_the_username_or_the_uid() {
    let app = TestApp::spawn().await;
    for (email, username) in [
        ("ada@example.org", None),
        ("bob@example.org", Some("Bobby")),
        ("cy@example.org", None),
    ] {
        app.post(
            "/api/register",
            json!({"email": email, "password": PASSWORD, "username": username}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }
    let cy = user_row(&app, "cy@example.org").await.uid.to_string();
    for (email, user_name) in [
        ("ada@example.org", "ADA@Example.ORG".to_string()),
        ("bob@example.org", "bobby".to_string()),
        ("cy@example.org", cy),
    ] {
        let code = app.last_code(email).await;
        validate(&app, &user_name, &code)
            .await
            .assert_status_is_ok();
        let user = user_row(&app, email).await;
        assert!(
            user.confirmed_at.is_some() && user.email_verified,
            "{email}"
        );
    }
}

#[tokio::test]
async fn an_email_taken_in_another_case_is_refused_naming_the_email() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let response = app.register("ADA@Example.Org", PASSWORD).await;
    let body = assert_error(response, 400, "UsernameExistsException").await;
    assert!(body["errors"]["email"][0].is_string(), "{body}");
    assert_eq!(users(&app).await, 1);
    assert_eq!(mails(&app).await, 1);
}

#[tokio::test]
async fn a_username_taken_in_another_case_is_refused_naming_the_username() {
    let app = TestApp::spawn().await;
    app.post(
        "/api/register",
        json!({"email": "ada@example.org", "password": PASSWORD, "username": "ada"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let response = app
        .post(
            "/api/register",
            json!({"email": "other@example.org", "password": PASSWORD, "username": "ADA"}),
        )
        .await;
    let body = assert_error(response, 400, "UsernameExistsException").await;
    assert!(body["errors"]["username"][0].is_string(), "{body}");
    assert!(body["errors"].get("email").is_none(), "{body}");
    assert_eq!(users(&app).await, 1);
    assert!(app.mails_to("other@example.org").await.is_empty());
}

#[tokio::test]
async fn twenty_racing_registrations_of_one_email_create_one_account_and_send_one_email() {
    let app = TestApp::spawn().await;
    let attempts = (0..20).map(|i| {
        // The same address, in varying case.
        let email = if i % 2 == 0 {
            "race@example.org"
        } else {
            "Race@Example.org"
        };
        app.register(email, PASSWORD)
    });
    let responses = join_all(attempts).await;

    let mut created = 0;
    for response in responses {
        if response.0.status() == StatusCode::CREATED {
            created += 1;
        } else {
            assert_error(response, 400, "UsernameExistsException").await;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(users(&app).await, 1);
    assert_eq!(mails(&app).await, 1);
}

#[tokio::test]
async fn invalid_sign_ups_are_refused_naming_the_field_and_create_nothing() {
    let app = TestApp::spawn().await;
    let invalid_email = ("InvalidParameterException", "email");
    let bad_password = ("InvalidPasswordException", "password");
    // email, password, the expected error and field, and what the message must say
    for (email, password, (code, field), says) in [
        ("not-an-email", PASSWORD, invalid_email, "@"),
        ("ada@localhost", PASSWORD, invalid_email, "dot"),
        ("ada@example.org", "Zq8#vLp", bad_password, "at least 8"),
        ("ada@example.org", "password123", bad_password, "common"),
        // Built from the user's own email address.
        (
            "zbigniew.wojcik@example.org",
            "wojcik2024!",
            bad_password,
            "email",
        ),
    ] {
        let response = app.register(email, password).await;
        let body = assert_error(response, 400, code).await;
        let message = body["errors"][field][0].as_str().unwrap_or_default();
        assert!(message.contains(says), "{email} {password}: {body}");
        assert!(!body.to_string().contains(password), "echoed: {body}");
    }
    assert_eq!(users(&app).await, 0);
    assert_eq!(mails(&app).await, 0);
}

#[tokio::test]
async fn confirming_an_already_confirmed_account_is_not_authorized() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let code = app.last_code("ada@example.org").await;
    validate(&app, "ada@example.org", &code)
        .await
        .assert_status_is_ok();
    let again = validate(&app, "ada@example.org", &code).await;
    assert_error(again, 400, "NotAuthorizedException").await;
}

#[tokio::test]
async fn an_unknown_user_name_answers_exactly_as_a_wrong_code() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let code = app.last_code("ada@example.org").await;

    let wrong_code = assert_error(
        validate(&app, "ada@example.org", &wrong(&code)).await,
        400,
        "CodeMismatchException",
    )
    .await;
    for nobody in [
        "nobody@example.org".to_string(),
        "nobody".to_string(),
        Uuid::new_v4().to_string(),
    ] {
        let unknown = assert_error(
            validate(&app, &nobody, &code).await,
            400,
            "CodeMismatchException",
        )
        .await;
        assert_eq!(unknown, wrong_code, "{nobody}");
    }
}

#[tokio::test]
async fn brute_forcing_a_code_kills_it_after_five_wrong_tries() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let code = app.last_code("ada@example.org").await;

    for guess in 0..5 {
        let response = validate(&app, "ada@example.org", &wrong_nth(&code, guess)).await;
        assert_error(response, 400, "CodeMismatchException").await;
    }
    // The attacker finally guesses right: too late.
    let right = validate(&app, "ada@example.org", &code).await;
    assert_error(right, 400, "TooManyFailedAttemptsException").await;
    let user = user_row(&app, "ada@example.org").await;
    assert!(user.confirmed_at.is_none() && !user.email_verified);
    assert_error(
        app.login("ada@example.org", PASSWORD).await,
        403,
        "UserNotConfirmedException",
    )
    .await;

    // The owner asks for a new code, which works.
    resend(&app, "ada@example.org").await.assert_status_is_ok();
    let fresh = app.last_code("ada@example.org").await;
    validate(&app, "ada@example.org", &fresh)
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn parallel_guesses_get_no_more_than_five_tries() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let code = app.last_code("ada@example.org").await;

    let wrong_codes: Vec<String> = (0..9).map(|n| wrong_nth(&code, n)).collect();
    let guesses = wrong_codes
        .iter()
        .map(|guess| validate(&app, "ada@example.org", guess));
    let mut mismatches = 0;
    for response in join_all(guesses).await {
        let body = json(response).await;
        match body["code"].as_str() {
            Some("CodeMismatchException") => mismatches += 1,
            Some("TooManyFailedAttemptsException") => {}
            _ => panic!("{body}"),
        }
    }
    assert_eq!(mismatches, 5, "each try is counted, one after the other");
    let right = validate(&app, "ada@example.org", &code).await;
    assert_error(right, 400, "TooManyFailedAttemptsException").await;
}

#[tokio::test]
async fn a_code_older_than_24_hours_is_expired() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let code = app.last_code("ada@example.org").await;
    let uid = user_row(&app, "ada@example.org").await.uid;

    let row = code_row(&app, uid, "sign_up").await;
    assert_eq!(row.expires_at - row.sent_at, Duration::hours(24));
    // A day and a second later.
    let day = Duration::hours(24) + Duration::seconds(1);
    update_code(&app, uid, "sign_up", |c| {
        c.sent_at = Set(row.sent_at - day);
        c.expires_at = Set(row.expires_at - day);
    })
    .await;

    let response = validate(&app, "ada@example.org", &code).await;
    assert_error(response, 400, "ExpiredCodeException").await;
    assert!(
        user_row(&app, "ada@example.org")
            .await
            .confirmed_at
            .is_none()
    );
}

#[tokio::test]
async fn a_resent_code_replaces_the_previous_one() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let old = app.last_code("ada@example.org").await;
    resend(&app, "ada@example.org").await.assert_status_is_ok();
    let new = app.last_code("ada@example.org").await;
    assert_eq!(app.mails_to("ada@example.org").await.len(), 2);

    let response = validate(&app, "ada@example.org", &old).await;
    assert_error(response, 400, "CodeMismatchException").await;
    validate(&app, "ada@example.org", &new)
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn resend_answers_the_same_for_anyone_and_mails_only_unconfirmed_accounts() {
    let app = TestApp::spawn().await;
    app.confirmed_user("confirmed@example.org", PASSWORD).await;
    app.register("waiting@example.org", PASSWORD).await;

    let mut answers = Vec::new();
    for email in [
        "nobody@example.org",
        "confirmed@example.org",
        "WAITING@example.org",
    ] {
        let response = resend(&app, email).await;
        let status = response.0.status();
        answers.push((status, json(response).await));
    }
    assert_eq!(answers[0].0, StatusCode::OK);
    assert!(answers[0].1["detail"].is_string());
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);

    assert!(app.mails_to("nobody@example.org").await.is_empty());
    assert_eq!(app.mails_to("confirmed@example.org").await.len(), 1);
    assert_eq!(app.mails_to("waiting@example.org").await.len(), 2);
}

#[tokio::test]
async fn resends_are_limited_to_one_a_minute_and_five_an_hour_silently() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let uid = user_row(&app, "ada@example.org").await.uid;
    let sent = || async { app.mails_to("ada@example.org").await.len() };
    assert_eq!(sent().await, 1);

    // The first resend is always sent; a second one straight after answers alike, sends nothing.
    let first = json(resend(&app, "ada@example.org").await).await;
    assert_eq!(sent().await, 2);
    let limited = resend(&app, "ada@example.org").await;
    limited.assert_status_is_ok();
    assert_eq!(json(limited).await, first);
    assert_eq!(sent().await, 2);

    // Once a minute has passed, resends go out again, up to five in the hour.
    for expected in 3..=6 {
        minute_passes(&app, uid).await;
        resend(&app, "ada@example.org").await.assert_status_is_ok();
        assert_eq!(sent().await, expected);
    }
    minute_passes(&app, uid).await;
    let sixth = resend(&app, "ada@example.org").await;
    sixth.assert_status_is_ok();
    assert_eq!(json(sixth).await, first);
    assert_eq!(sent().await, 6);

    // A refused resend did not replace the code that was last sent.
    let last = app.last_code("ada@example.org").await;
    validate(&app, "ada@example.org", &last)
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn resends_are_allowed_again_once_the_hour_is_over() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD).await;
    let uid = user_row(&app, "ada@example.org").await.uid;
    for _ in 0..5 {
        minute_passes(&app, uid).await;
        resend(&app, "ada@example.org").await.assert_status_is_ok();
    }
    minute_passes(&app, uid).await;
    resend(&app, "ada@example.org").await.assert_status_is_ok();
    assert_eq!(app.mails_to("ada@example.org").await.len(), 6);

    let row = code_row(&app, uid, "sign_up").await;
    let hour = Duration::hours(1) + Duration::seconds(1);
    update_code(&app, uid, "sign_up", |c| {
        c.resend_window_start = Set(row.resend_window_start.map(|t| t - hour));
        c.last_resend_at = Set(row.last_resend_at.map(|t| t - hour));
    })
    .await;
    resend(&app, "ada@example.org").await.assert_status_is_ok();
    assert_eq!(app.mails_to("ada@example.org").await.len(), 7);
}

// --- helpers for this file ---

/// Signs in with [`PASSWORD`] and returns the account.
async fn account_of(app: &TestApp, email: &str) -> Value {
    let login = app.login(email, PASSWORD).await;
    login.assert_status_is_ok();
    let token = json(login).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    json(app.get_as("/api/account", &token).await).await
}

pub async fn validate(app: &TestApp, user_name: &str, code: &str) -> poem::test::TestResponse {
    app.post(
        "/api/validate",
        json!({"user_name": user_name, "confirmation_code": code}),
    )
    .await
}

pub async fn resend(app: &TestApp, email: &str) -> poem::test::TestResponse {
    app.post("/api/validate/resend", json!({"email": email}))
        .await
}

/// The user with this email (any case).
pub async fn user_row(app: &TestApp, email: &str) -> user::Model {
    user::Entity::find()
        .filter(user::Column::EmailKey.eq(email.to_lowercase()))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the user exists")
}

pub async fn code_row(app: &TestApp, uid: Uuid, purpose: &str) -> code::Model {
    code::Entity::find_by_id((uid, purpose.to_string()))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a live code")
}

/// Changes a stored code, to move its times: the tests never sleep.
pub async fn update_code(
    app: &TestApp,
    uid: Uuid,
    purpose: &str,
    change: impl FnOnce(&mut code::ActiveModel),
) {
    let mut row: code::ActiveModel = code_row(app, uid, purpose).await.into();
    change(&mut row);
    row.update(&app.state.db).await.unwrap();
}

/// Moves the last resend 61 seconds into the past.
async fn minute_passes(app: &TestApp, uid: Uuid) {
    let row = code_row(app, uid, "sign_up").await;
    let last = row.last_resend_at.unwrap_or_else(Utc::now);
    update_code(app, uid, "sign_up", |c| {
        c.last_resend_at = Set(Some(last - Duration::seconds(61)));
    })
    .await;
}

async fn users(app: &TestApp) -> u64 {
    user::Entity::find().count(&app.state.db).await.unwrap()
}

/// Emails queued, sent or not.
async fn mails(app: &TestApp) -> u64 {
    mail_outbox::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

/// Another six-digit code than this one.
pub fn wrong(code: &str) -> String {
    wrong_nth(code, 0)
}

/// The `n`-th of nine codes that differ from this one in the first digit.
pub fn wrong_nth(code: &str, n: u32) -> String {
    let first = code.chars().next().unwrap().to_digit(10).unwrap();
    format!("{}{}", (first + 1 + n % 9) % 10, &code[1..])
}

/// The `GET /api/validate` link in an email, as a path and query for the test client.
fn validate_link_in(text: &str) -> String {
    let link = text
        .split_whitespace()
        .find(|word| word.starts_with("http://authpool.test/"))
        .expect("a link to the public URL");
    let url = url::Url::parse(link).unwrap();
    assert_eq!(url.path(), "/api/validate");
    let query: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert!(query.contains(&"user_name".to_string()), "{link}");
    assert!(query.contains(&"confirmation_code".to_string()), "{link}");
    format!("{}?{}", url.path(), url.query().unwrap())
}

/// Decodes the entities an HTML template escapes in attributes.
fn html_unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#x3d;", "=")
        .replace("&#x3D;", "=")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn html_page(response: poem::test::TestResponse) -> String {
    let content_type = response
        .0
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.0.into_body().into_string().await.unwrap();
    assert!(page.contains("<html"), "{page}");
    page
}
