//! Changing a password while signed in, and resetting a forgotten one by emailed code, written as
//! a client or an attacker would try them.

use chrono::Duration;
use poem::{http::StatusCode, test::TestResponse};
use sea_orm::{ActiveValue::Set, prelude::Uuid};
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, assert_error, code_in, json},
    signup::{code_row, update_code, user_row, wrong_nth},
};

/// A password the policy accepts, other than [`PASSWORD`].
const NEW_PASSWORD: &str = "purple monkey dishwasher lamp";

#[tokio::test]
async fn a_wrong_old_password_changes_nothing() {
    let app = TestApp::spawn().await;
    let session = app.signed_in("ada@example.org", PASSWORD).await;

    let response = change(
        &app,
        token(&session),
        "not my password at all",
        NEW_PASSWORD,
        NEW_PASSWORD,
    )
    .await;
    let body = assert_error(response, 400, "NotAuthorizedException").await;
    assert!(body["errors"]["old_password"][0].is_string(), "{body}");

    assert_password_is(&app, "ada@example.org", PASSWORD, NEW_PASSWORD).await;
    signed_in(&app, &session).await;
}

#[tokio::test]
async fn two_different_new_passwords_are_an_invalid_parameter() {
    let app = TestApp::spawn().await;
    let session = app.signed_in("ada@example.org", PASSWORD).await;

    let response = change(
        &app,
        token(&session),
        PASSWORD,
        NEW_PASSWORD,
        "purple monkey dishwasher lamps",
    )
    .await;
    let body = assert_error(response, 400, "InvalidParameterException").await;
    assert!(body["errors"]["new_password2"][0].is_string(), "{body}");

    assert_password_is(&app, "ada@example.org", PASSWORD, NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_weak_new_password_is_refused_by_the_policy() {
    let app = TestApp::spawn().await;
    let session = app.signed_in("zbigniew.wojcik@example.org", PASSWORD).await;

    for weak in ["short", "password123", "wojcik2024!"] {
        let response = change(&app, token(&session), PASSWORD, weak, weak).await;
        let body = assert_error(response, 400, "InvalidPasswordException").await;
        assert!(body["errors"]["new_password1"][0].is_string(), "{body}");
        assert_password_is(&app, "zbigniew.wojcik@example.org", PASSWORD, weak).await;
    }
}

#[tokio::test]
async fn a_password_change_needs_a_token() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    let response = app
        .post(
            "/api/password/change",
            json!({
                "old_password": PASSWORD,
                "new_password1": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
            }),
        )
        .await;
    assert_error(response, 401, "NotAuthorizedException").await;
    assert_password_is(&app, "ada@example.org", PASSWORD, NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_changed_password_signs_out_the_other_sessions_but_not_this_one() {
    let app = TestApp::spawn().await;
    let this = app.signed_in("ada@example.org", PASSWORD).await;
    let other = sign_in(&app, "ada@example.org", PASSWORD).await;

    change(&app, token(&this), PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert_status_is_ok();

    assert_password_is(&app, "ada@example.org", NEW_PASSWORD, PASSWORD).await;
    signed_in(&app, &this).await;
    signed_out(&app, &other).await;
}

#[tokio::test]
async fn a_reset_request_answers_the_same_for_unknown_and_known_emails() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;

    let unknown = reset(&app, "nobody@example.org").await;
    let unknown = (unknown.0.status(), json(unknown).await);
    let known = reset(&app, "ADA@example.org").await;
    let known = (known.0.status(), json(known).await);
    assert_eq!(unknown.0, StatusCode::OK);
    assert!(unknown.1["detail"].is_string());
    assert_eq!(unknown, known);

    assert!(app.mails_to("nobody@example.org").await.is_empty());
    let mails = app.mails_to("ada@example.org").await;
    assert_eq!(mails.len(), 2, "the confirmation, then the reset code");
    let code = code_in(&mails[1].text_body).expect("a code in the text part");
    assert!(mails[1].html_body.contains(&code));
}

#[tokio::test]
async fn brute_forcing_a_reset_code_kills_it_after_five_wrong_tries() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    reset(&app, "ada@example.org").await.assert_status_is_ok();
    let code = app.last_code("ada@example.org").await;

    for guess in 0..5 {
        let response = reset_confirm(
            &app,
            "ada@example.org",
            &wrong_nth(&code, guess),
            NEW_PASSWORD,
        )
        .await;
        assert_error(response, 400, "CodeMismatchException").await;
    }
    let right = reset_confirm(&app, "ada@example.org", &code, NEW_PASSWORD).await;
    assert_error(right, 400, "TooManyFailedAttemptsException").await;
    assert_password_is(&app, "ada@example.org", PASSWORD, NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_reset_code_expires_after_one_hour() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    reset(&app, "ada@example.org").await.assert_status_is_ok();
    let code = app.last_code("ada@example.org").await;
    let uid = uid_of(&app, "ada@example.org").await;

    // An hour and a second later.
    let hour = Duration::hours(1) + Duration::seconds(1);
    let row = code_row(&app, uid, "reset_password").await;
    assert_eq!(row.expires_at - row.sent_at, Duration::hours(1));
    update_code(&app, uid, "reset_password", |c| {
        c.sent_at = Set(row.sent_at - hour);
        c.expires_at = Set(row.expires_at - hour);
    })
    .await;

    let response = reset_confirm(&app, "ada@example.org", &code, NEW_PASSWORD).await;
    assert_error(response, 400, "ExpiredCodeException").await;
    assert_password_is(&app, "ada@example.org", PASSWORD, NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_reset_signs_out_every_session_and_replaces_the_password() {
    let app = TestApp::spawn().await;
    let first = app.signed_in("ada@example.org", PASSWORD).await;
    let second = sign_in(&app, "ada@example.org", PASSWORD).await;

    reset(&app, "ada@example.org").await.assert_status_is_ok();
    let code = app.last_code("ada@example.org").await;
    reset_confirm(&app, "ada@example.org", &code, NEW_PASSWORD)
        .await
        .assert_status_is_ok();

    signed_out(&app, &first).await;
    signed_out(&app, &second).await;
    assert_password_is(&app, "ada@example.org", NEW_PASSWORD, PASSWORD).await;
}

#[tokio::test]
async fn a_reset_code_works_only_once() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    reset(&app, "ada@example.org").await.assert_status_is_ok();
    let code = app.last_code("ada@example.org").await;
    reset_confirm(&app, "ada@example.org", &code, NEW_PASSWORD)
        .await
        .assert_status_is_ok();

    // Someone who saw the email later tries the same code.
    let replay = reset_confirm(&app, "ada@example.org", &code, "velvet tundra harmonica").await;
    assert_error(replay, 400, "CodeMismatchException").await;
    assert_password_is(
        &app,
        "ada@example.org",
        NEW_PASSWORD,
        "velvet tundra harmonica",
    )
    .await;
}

#[tokio::test]
async fn a_sign_up_code_cannot_reset_a_password() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let sign_up_code = app.last_code("ada@example.org").await;

    let response = reset_confirm(&app, "ada@example.org", &sign_up_code, NEW_PASSWORD).await;
    assert_error(response, 400, "CodeMismatchException").await;

    // Nor while a reset code is live: each code answers for its own purpose only.
    reset(&app, "ada@example.org").await.assert_status_is_ok();
    let reset_code = app.last_code("ada@example.org").await;
    if reset_code != sign_up_code {
        let response = reset_confirm(&app, "ada@example.org", &sign_up_code, NEW_PASSWORD).await;
        assert_error(response, 400, "CodeMismatchException").await;
    }
    let user = user_row(&app, "ada@example.org").await;
    assert!(
        user.confirmed_at.is_none(),
        "nothing was reset or confirmed"
    );
    assert_eq!(
        app.login("ada@example.org", NEW_PASSWORD)
            .await
            .0
            .status()
            .as_u16(),
        401
    );
}

#[tokio::test]
async fn an_unknown_email_answers_exactly_as_a_wrong_reset_code() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    reset(&app, "ada@example.org").await.assert_status_is_ok();
    let code = app.last_code("ada@example.org").await;

    let wrong_code = assert_error(
        reset_confirm(&app, "ada@example.org", &wrong_nth(&code, 0), NEW_PASSWORD).await,
        400,
        "CodeMismatchException",
    )
    .await;
    let unknown = assert_error(
        reset_confirm(&app, "nobody@example.org", &code, NEW_PASSWORD).await,
        400,
        "CodeMismatchException",
    )
    .await;
    assert_eq!(unknown, wrong_code);
}

#[tokio::test]
async fn a_reset_code_mailed_to_a_replaced_address_cannot_reset_the_password() {
    let app = TestApp::spawn().await;
    let session = app.signed_in("old@example.org", PASSWORD).await;
    reset(&app, "old@example.org").await.assert_status_is_ok();
    let code = app.last_code("old@example.org").await;

    // The owner moves to a new address (say, the old mailbox was compromised).
    let patch = app
        .client
        .patch("/api/account")
        .header("Authorization", format!("Bearer {}", token(&session)))
        .body_json(&json!({"email": "new@example.org"}))
        .send()
        .await;
    patch.assert_status_is_ok();

    // Whoever reads the old mailbox tries its code against the account's current address.
    let response = reset_confirm(&app, "new@example.org", &code, NEW_PASSWORD).await;
    assert_error(response, 400, "CodeMismatchException").await;
    assert_password_is(&app, "new@example.org", PASSWORD, NEW_PASSWORD).await;
}

/// Documented choice: the reset code proves the mailbox as the confirmation code would, so the
/// account is confirmed (as Cognito's ConfirmForgotPassword does).
#[tokio::test]
async fn resetting_the_password_of_an_unconfirmed_account_confirms_it() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    reset(&app, "ada@example.org").await.assert_status_is_ok();
    let code = app.last_code("ada@example.org").await;
    reset_confirm(&app, "ada@example.org", &code, NEW_PASSWORD)
        .await
        .assert_status_is_ok();

    let session = sign_in(&app, "ada@example.org", NEW_PASSWORD).await;
    let account = json(app.get_as("/api/account", token(&session)).await).await;
    assert_eq!(account["status"], "CONFIRMED");
    assert_eq!(account["email_verified"], true);
}

// --- helpers for this file ---

#[tokio::test]
async fn guessing_the_old_password_with_a_stolen_token_hits_the_lockout() {
    let app = TestApp::spawn().await;
    let session = app.signed_in("ada@example.org", PASSWORD).await;
    for _ in 0..5 {
        let response = change(
            &app,
            token(&session),
            "a wrong guess",
            NEW_PASSWORD,
            NEW_PASSWORD,
        );
        assert_error(response.await, 400, "NotAuthorizedException").await;
    }
    // Locked now: even the right old password is refused, and so is signing in.
    let response = change(&app, token(&session), PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    let retry_after = response.0.headers().get("retry-after").cloned();
    assert_error(response, 429, "PasswordAttemptsExceededException").await;
    assert!(retry_after.is_some());
    let login = app.login("ada@example.org", PASSWORD).await;
    assert_error(login, 429, "PasswordAttemptsExceededException").await;
}

#[tokio::test]
async fn a_reset_refuses_a_password_built_from_the_username() {
    let app = TestApp::spawn().await;
    app.post(
        "/api/register",
        json!({"email": "ada@example.org", "password": PASSWORD, "username": "marzipanfox"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    reset(&app, "ada@example.org").await.assert_status_is_ok();
    let code = app.last_code("ada@example.org").await;
    let response = reset_confirm(&app, "ada@example.org", &code, "marzipanfox2024!").await;
    let body = assert_error(response, 400, "InvalidPasswordException").await;
    assert!(body["errors"]["new_password1"][0].is_string(), "{body}");
}

async fn change(app: &TestApp, token: &str, old: &str, new1: &str, new2: &str) -> TestResponse {
    app.post_as(
        "/api/password/change",
        token,
        json!({"old_password": old, "new_password1": new1, "new_password2": new2}),
    )
    .await
}

async fn reset(app: &TestApp, email: &str) -> TestResponse {
    app.post("/api/password/reset", json!({"email": email}))
        .await
}

async fn reset_confirm(app: &TestApp, email: &str, code: &str, new: &str) -> TestResponse {
    app.post(
        "/api/password/reset/confirm",
        json!({"email": email, "code": code, "new_password1": new, "new_password2": new}),
    )
    .await
}

/// Signs in once more (another session); returns the login body.
async fn sign_in(app: &TestApp, email: &str, password: &str) -> Value {
    let response = app.login(email, password).await;
    response.assert_status_is_ok();
    json(response).await
}

fn token(session: &Value) -> &str {
    session["access_token"].as_str().expect("an access token")
}

/// Only `right` signs in; `wrong` is refused as any wrong password is.
async fn assert_password_is(app: &TestApp, email: &str, right: &str, wrong: &str) {
    assert_error(app.login(email, wrong).await, 401, "NotAuthorizedException").await;
    app.login(email, right).await.assert_status_is_ok();
}

/// The session's id and access tokens still authenticate.
async fn signed_in(app: &TestApp, session: &Value) {
    for kind in ["access_token", "id_token"] {
        let token = session[kind].as_str().unwrap();
        app.get_as("/api/account", token)
            .await
            .assert_status_is_ok();
    }
}

/// None of the session's tokens work any more, the refresh token included.
async fn signed_out(app: &TestApp, session: &Value) {
    for kind in ["access_token", "id_token"] {
        let token = session[kind].as_str().unwrap();
        let response = app.get_as("/api/account", token).await;
        assert_error(response, 401, "NotAuthorizedException").await;
    }
    let refresh = app
        .post(
            "/api/refresh",
            json!({"refresh_token": session["refresh_token"]}),
        )
        .await;
    assert_error(refresh, 401, "NotAuthorizedException").await;
}

async fn uid_of(app: &TestApp, email: &str) -> Uuid {
    user_row(app, email).await.uid
}
