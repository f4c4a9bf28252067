//! The signed-in user's account on /api: reading, partial updates, email changes and their
//! verification, and the limits on resending a verification code.

use chrono::{Duration as TimeDelta, Utc};
use entity::{code, user};
use poem::{
    http::{StatusCode, header},
    test::TestResponse,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    prelude::Uuid,
};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, json};

const ADA: &str = "ada@example.org";
const NEW_ADA: &str = "ada@new.example.org";

#[tokio::test]
async fn the_account_shows_every_documented_field() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;

    let account = read_account(&app, token(&login)).await;

    let fields: Vec<&str> = account.as_object().unwrap().keys().map(|k| &**k).collect();
    for field in [
        "uid",
        "email",
        "email_verified",
        "username",
        "first_name",
        "last_name",
        "status",
        "organisation_type",
        "organisation_name",
        "country",
        "additional_fields",
        "created_at",
        "updated_at",
    ] {
        assert!(fields.contains(&field), "{field} missing from {account}");
    }
    assert_eq!(account["uid"], login["uid"]);
    assert_eq!(account["email"], ADA);
    assert_eq!(account["email_verified"], true);
    assert_eq!(
        account["username"], ADA,
        "the email stands in for a username"
    );
    assert_eq!(account["first_name"], "");
    assert_eq!(account["last_name"], "");
    assert_eq!(account["status"], "CONFIRMED");
    assert_eq!(account["organisation_type"], Value::Null);
    assert_eq!(account["organisation_name"], Value::Null);
    assert_eq!(account["country"], Value::Null);
    assert_eq!(account["additional_fields"], json!({}));
    for stamp in ["created_at", "updated_at"] {
        let text = account[stamp].as_str().expect("a timestamp string");
        chrono::DateTime::parse_from_rfc3339(text).expect("an RFC 3339 timestamp");
    }
}

#[tokio::test]
async fn the_account_shows_the_username_when_there_is_one() {
    let app = TestApp::spawn().await;
    app.post(
        "/api/register",
        json!({"email": ADA, "password": PASSWORD, "username": "ada",
               "first_name": "Ada", "last_name": "Lovelace"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let code = app.last_code(ADA).await;
    app.post(
        "/api/validate",
        json!({"user_name": ADA, "confirmation_code": code}),
    )
    .await
    .assert_status_is_ok();
    let login = json(app.login("ada", PASSWORD).await).await;

    let account = read_account(&app, token(&login)).await;

    assert_eq!(account["username"], "ada");
    assert_eq!(account["first_name"], "Ada");
    assert_eq!(account["last_name"], "Lovelace");
}

#[tokio::test]
async fn the_account_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;

    let anonymous = app.client.get("/api/account").send().await;
    assert_error(anonymous, 401, "NotAuthorizedException").await;
    let forged = app.get_as("/api/account", "not.a.token").await;
    assert_error(forged, 401, "NotAuthorizedException").await;
    let refresh = app
        .get_as("/api/account", login["refresh_token"].as_str().unwrap())
        .await;
    assert_error(refresh, 401, "NotAuthorizedException").await;
    for method in [Method::Put, Method::Patch] {
        let anonymous = method
            .request(&app, None, json!({"first_name": "Eve"}))
            .await;
        assert_error(anonymous, 401, "NotAuthorizedException").await;
    }
    assert_eq!(read_account(&app, token(&login)).await["first_name"], "");
}

#[tokio::test]
async fn patch_changes_only_the_fields_sent() {
    changes_only_the_fields_sent(Method::Patch).await;
}

#[tokio::test]
async fn put_changes_only_the_fields_sent() {
    changes_only_the_fields_sent(Method::Put).await;
}

async fn changes_only_the_fields_sent(method: Method) {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);
    let before = read_account(&app, token).await;

    let response = method
        .request(
            &app,
            Some(token),
            json!({
                "first_name": "Ada",
                "organisation_type": "research",
                "organisation_name": "Analytical Engines Ltd",
                "country": "GB",
                "additional_fields": {"role": "analyst", "teams": [1, 2]},
            }),
        )
        .await;
    response.assert_status_is_ok();
    let answered = json(response).await;
    let stored = read_account(&app, token).await;
    assert_eq!(answered, stored, "the answer is the stored account");
    assert_eq!(stored["first_name"], "Ada");
    assert_eq!(stored["last_name"], "", "a field not sent is left alone");
    assert_eq!(stored["organisation_type"], "research");
    assert_eq!(stored["organisation_name"], "Analytical Engines Ltd");
    assert_eq!(stored["country"], "GB");
    assert_eq!(
        stored["additional_fields"],
        json!({"role": "analyst", "teams": [1, 2]})
    );
    for unchanged in [
        "uid",
        "email",
        "email_verified",
        "username",
        "status",
        "created_at",
    ] {
        assert_eq!(stored[unchanged], before[unchanged], "{unchanged}");
    }

    let response = method
        .request(
            &app,
            Some(token),
            json!({"last_name": "Lovelace", "additional_fields": {"role": "admin"}}),
        )
        .await;
    response.assert_status_is_ok();
    let stored = read_account(&app, token).await;
    assert_eq!(stored["last_name"], "Lovelace");
    assert_eq!(stored["first_name"], "Ada", "an earlier change stays");
    assert_eq!(stored["organisation_type"], "research");
    assert_eq!(stored["organisation_name"], "Analytical Engines Ltd");
    assert_eq!(stored["country"], "GB");
    assert_eq!(
        stored["additional_fields"],
        json!({"role": "admin"}),
        "additional_fields is replaced as a whole, not merged"
    );
}

#[tokio::test]
async fn a_name_of_150_characters_is_accepted() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let name = "é".repeat(150);

    let response = Method::Patch
        .request(&app, Some(token(&login)), json!({"first_name": name}))
        .await;

    response.assert_status_is_ok();
    assert_eq!(read_account(&app, token(&login)).await["first_name"], name);
}

#[tokio::test]
async fn invalid_values_are_refused_by_name_and_change_nothing() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);
    let before = read_account(&app, token).await;
    let invalid = [
        ("first_name", json!("é".repeat(151))),
        ("last_name", json!("x".repeat(151))),
        ("email", json!("not-an-email")),
        ("email", json!("ada@")),
        ("additional_fields", json!("not an object")),
        ("additional_fields", json!([1, 2, 3])),
    ];

    for method in [Method::Put, Method::Patch] {
        for (field, value) in &invalid {
            // A valid change alongside the invalid one must not be applied either.
            let mut body = json!({"last_name": "Changed", "country": "GB"});
            body[*field] = value.clone();
            let response = method.request(&app, Some(token), body).await;
            let error = assert_error(response, 400, "InvalidParameterException").await;
            assert!(
                error["errors"][*field]
                    .as_array()
                    .is_some_and(|m| !m.is_empty()),
                "{method:?} {field}={value}: the error names the field: {error}"
            );
        }
    }

    assert_eq!(read_account(&app, token).await, before, "nothing changed");
    assert_eq!(app.mails_to(ADA).await.len(), 1, "only the sign-up email");
}

#[tokio::test]
async fn a_new_email_takes_effect_at_once_and_is_verified_by_the_code_sent_to_it() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);

    let response = Method::Patch
        .request(&app, Some(token), json!({"email": NEW_ADA}))
        .await;
    response.assert_status_is_ok();
    let account = json(response).await;
    assert_eq!(account["email"], NEW_ADA);
    assert_eq!(account["email_verified"], false);
    assert_eq!(account["status"], "CONFIRMED");

    app.login(NEW_ADA, PASSWORD).await.assert_status_is_ok();
    let old = app.login(ADA, PASSWORD).await;
    let old = assert_error(old, 401, "NotAuthorizedException").await;
    let unknown = app.login("nobody@example.org", PASSWORD).await;
    let unknown = assert_error(unknown, 401, "NotAuthorizedException").await;
    assert_eq!(old, unknown, "the old email answers like an unknown user");

    assert_eq!(
        app.mails_to(ADA).await.len(),
        1,
        "the old address gets only its sign-up email"
    );
    let mails = app.mails_to(NEW_ADA).await;
    assert_eq!(mails.len(), 1);
    let code = app.last_code(NEW_ADA).await;
    assert!(mails[0].html_body.contains(&code));

    let response = verify(&app, token, &code).await;
    response.assert_status_is_ok();
    let account = read_account(&app, token).await;
    assert_eq!(account["email"], NEW_ADA);
    assert_eq!(account["email_verified"], true);

    let again = verify(&app, token, &code).await;
    assert_error(again, 400, "CodeMismatchException").await;
}

#[tokio::test]
async fn put_changes_the_email_as_patch_does() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);

    let response = Method::Put
        .request(&app, Some(token), json!({"email": NEW_ADA}))
        .await;

    response.assert_status_is_ok();
    assert_eq!(json(response).await["email_verified"], false);
    let code = app.last_code(NEW_ADA).await;
    verify(&app, token, &code).await.assert_status_is_ok();
    assert_eq!(read_account(&app, token).await["email_verified"], true);
}

#[tokio::test]
async fn a_wrong_verification_code_is_refused_and_the_right_one_still_works() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;
    let code = app.last_code(NEW_ADA).await;

    let wrong = verify(&app, token, &wrong_code(&code)).await;

    assert_error(wrong, 400, "CodeMismatchException").await;
    assert_eq!(read_account(&app, token).await["email_verified"], false);
    verify(&app, token, &code).await.assert_status_is_ok();
    assert_eq!(read_account(&app, token).await["email_verified"], true);
}

#[tokio::test]
async fn five_wrong_verification_codes_kill_the_code() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;
    let code = app.last_code(NEW_ADA).await;

    for attempt in 1..=5 {
        let wrong = verify(&app, token, &wrong_code(&code)).await;
        let body = assert_error(wrong, 400, "CodeMismatchException").await;
        assert!(body["detail"].is_string(), "attempt {attempt}");
    }
    let right = verify(&app, token, &code).await;

    assert_error(right, 400, "TooManyFailedAttemptsException").await;
    assert_eq!(read_account(&app, token).await["email_verified"], false);
}

#[tokio::test]
async fn a_malformed_verification_code_is_an_invalid_parameter() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;

    let response = verify(&app, token, "12ab").await;

    let error = assert_error(response, 400, "InvalidParameterException").await;
    assert!(error["errors"]["verification_code"].is_array(), "{error}");
}

#[tokio::test]
async fn changing_only_the_case_of_the_email_keeps_it_verified_and_sends_nothing() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);

    let response = Method::Patch
        .request(&app, Some(token), json!({"email": "ADA@example.org"}))
        .await;

    response.assert_status_is_ok();
    let account = json(response).await;
    assert_eq!(account["email"], "ADA@example.org", "the new case is kept");
    assert_eq!(account["email_verified"], true);
    assert_eq!(app.mails_to(ADA).await.len(), 1, "only the sign-up email");
    assert!(app.mails_to("ADA@example.org").await.is_empty());
    app.login(ADA, PASSWORD).await.assert_status_is_ok();
    app.login("ADA@example.org", PASSWORD)
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn changing_the_case_of_an_unverified_email_keeps_its_code_valid() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;
    let code = app.last_code(NEW_ADA).await;

    let response = Method::Patch
        .request(&app, Some(token), json!({"email": "Ada@New.Example.org"}))
        .await;
    response.assert_status_is_ok();
    assert_eq!(json(response).await["email_verified"], false);

    // The code went to this very mailbox: a different case is the same address.
    verify(&app, token, &code).await.assert_status_is_ok();
    assert_eq!(read_account(&app, token).await["email_verified"], true);
}

#[tokio::test]
async fn the_email_of_another_account_is_refused_and_nothing_changes() {
    let app = TestApp::spawn().await;
    app.confirmed_user("grace@example.org", PASSWORD).await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);
    let before = read_account(&app, token).await;

    for method in [Method::Put, Method::Patch] {
        let response = method
            .request(
                &app,
                Some(token),
                json!({"email": "Grace@Example.org", "first_name": "Ada"}),
            )
            .await;
        let error = assert_error(response, 400, "UsernameExistsException").await;
        assert!(error["errors"]["email"].is_array(), "{error}");
    }

    let after = read_account(&app, token).await;
    assert_eq!(after, before, "email, verified flag and names intact");
    assert_eq!(after["email_verified"], true);
    assert_eq!(app.mails_to(ADA).await.len(), 1, "only the sign-up email");
    assert_eq!(app.mails_to("grace@example.org").await.len(), 1);
    app.login(ADA, PASSWORD).await.assert_status_is_ok();
}

#[tokio::test]
async fn resend_sends_a_new_code_and_retires_the_old_one() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;
    let first = app.last_code(NEW_ADA).await;

    let response = resend(&app, token, json!({})).await;

    response.assert_status_is_ok();
    assert!(json(response).await["detail"].is_string());
    assert_eq!(app.mails_to(NEW_ADA).await.len(), 2);
    let second = app.last_code(NEW_ADA).await;
    // Two random codes are equal once in a million; the old one is then the new one.
    if first != second {
        let old = verify(&app, token, &first).await;
        assert_error(old, 400, "CodeMismatchException").await;
    }
    verify(&app, token, &second).await.assert_status_is_ok();
    assert_eq!(read_account(&app, token).await["email_verified"], true);
}

#[tokio::test]
async fn a_second_resend_within_a_minute_is_limited() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;
    resend(&app, token, json!({})).await.assert_status_is_ok();

    let too_soon = resend(&app, token, json!({})).await;

    let wait = retry_after(&too_soon);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_error(too_soon, 429, "LimitExceededException").await;
    assert_eq!(app.mails_to(NEW_ADA).await.len(), 2, "nothing sent");

    move_last_resend_back(&app, NEW_ADA, TimeDelta::seconds(61)).await;
    resend(&app, token, json!({})).await.assert_status_is_ok();
    assert_eq!(app.mails_to(NEW_ADA).await.len(), 3);
}

#[tokio::test]
async fn five_resends_an_hour_then_a_longer_wait() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;
    for resent in 1..=5 {
        let response = resend(&app, token, json!({})).await;
        assert_eq!(response.0.status(), StatusCode::OK, "resend {resent}");
        move_last_resend_back(&app, NEW_ADA, TimeDelta::seconds(61)).await;
    }

    let sixth = resend(&app, token, json!({})).await;

    let wait = retry_after(&sixth);
    assert!(
        (3600 - 5 * 61 - 60..=3600).contains(&wait),
        "Retry-After {wait} is until the hour is over"
    );
    assert_error(sixth, 429, "LimitExceededException").await;
    assert_eq!(
        app.mails_to(NEW_ADA).await.len(),
        6,
        "the change's and five"
    );

    move_resend_window_back(&app, NEW_ADA, TimeDelta::hours(1)).await;
    resend(&app, token, json!({})).await.assert_status_is_ok();
}

#[tokio::test]
async fn resend_with_an_email_corrects_the_address_without_counting_as_a_resend() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);
    let typo = "ada@new.exmaple.org";
    Method::Patch
        .request(&app, Some(token), json!({"email": typo}))
        .await
        .assert_status_is_ok();
    let typo_code = app.last_code(typo).await;
    resend(&app, token, json!({})).await.assert_status_is_ok();
    move_last_resend_back(&app, typo, TimeDelta::seconds(61)).await;

    let response = resend(&app, token, json!({"email": NEW_ADA})).await;

    response.assert_status_is_ok();
    let account = read_account(&app, token).await;
    assert_eq!(account["email"], NEW_ADA);
    assert_eq!(account["email_verified"], false);
    assert_eq!(
        app.mails_to(typo).await.len(),
        2,
        "nothing more to the typo"
    );
    assert_eq!(app.mails_to(NEW_ADA).await.len(), 1);
    app.login(NEW_ADA, PASSWORD).await.assert_status_is_ok();
    // Had the correction counted, this would be a second resend within a minute.
    resend(&app, token, json!({})).await.assert_status_is_ok();
    let code = app.last_code(NEW_ADA).await;
    if typo_code != code {
        let stale = verify(&app, token, &typo_code).await;
        assert_error(stale, 400, "CodeMismatchException").await;
    }
    verify(&app, token, &code).await.assert_status_is_ok();
    assert_eq!(read_account(&app, token).await["email_verified"], true);
}

#[tokio::test]
async fn resend_with_the_same_email_in_another_case_still_sends_a_code() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;
    let recased = "Ada@new.example.org";

    let response = resend(&app, token, json!({"email": recased})).await;

    response.assert_status_is_ok();
    let account = read_account(&app, token).await;
    assert_eq!(account["email"], recased);
    assert_eq!(account["email_verified"], false);
    let mails = app.mails_to(recased).await;
    assert_eq!(mails.len(), 1, "the code asked for was sent");
    let code = app.last_code(recased).await;
    verify(&app, token, &code).await.assert_status_is_ok();
    assert_eq!(read_account(&app, token).await["email_verified"], true);
}

#[tokio::test]
async fn resend_cannot_correct_to_the_email_of_another_account() {
    let app = TestApp::spawn().await;
    app.confirmed_user("grace@example.org", PASSWORD).await;
    let token = &signed_in_with_new_email(&app).await;

    let response = resend(&app, token, json!({"email": "grace@example.org"})).await;

    assert_error(response, 400, "UsernameExistsException").await;
    assert_eq!(read_account(&app, token).await["email"], NEW_ADA);
    assert_eq!(app.mails_to("grace@example.org").await.len(), 1);
}

#[tokio::test]
async fn resend_when_already_verified_is_refused() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;

    let response = resend(&app, token(&login), json!({})).await;
    let recased = resend(&app, token(&login), json!({"email": "ADA@example.org"})).await;

    assert_error(response, 400, "InvalidParameterException").await;
    assert_error(recased, 400, "InvalidParameterException").await;
    let account = read_account(&app, token(&login)).await;
    assert_eq!(account["email"], ADA, "the refused request changed nothing");
    assert_eq!(app.mails_to(ADA).await.len(), 1, "only the sign-up email");
}

#[tokio::test]
async fn resend_needs_a_token() {
    let app = TestApp::spawn().await;
    signed_in_with_new_email(&app).await;

    let response = app.post("/api/verify/email/resend", json!({})).await;

    assert_error(response, 401, "NotAuthorizedException").await;
    assert_eq!(app.mails_to(NEW_ADA).await.len(), 1);
}

#[tokio::test]
async fn a_code_sent_to_an_address_changed_away_from_does_not_verify_the_new_one() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;
    let first_code = app.last_code(NEW_ADA).await;
    let newer = "ada@newer.example.org";

    Method::Patch
        .request(&app, Some(token), json!({"email": newer}))
        .await
        .assert_status_is_ok();
    let newer_code = app.last_code(newer).await;

    if first_code != newer_code {
        let stale = verify(&app, token, &first_code).await;
        assert_error(stale, 400, "CodeMismatchException").await;
        assert_eq!(read_account(&app, token).await["email_verified"], false);
    }
    verify(&app, token, &newer_code).await.assert_status_is_ok();
    let account = read_account(&app, token).await;
    assert_eq!(account["email"], newer);
    assert_eq!(account["email_verified"], true);
}

#[tokio::test]
async fn a_code_whose_target_is_not_the_current_email_does_not_verify_it() {
    let app = TestApp::spawn().await;
    let token = &signed_in_with_new_email(&app).await;
    let code = app.last_code(NEW_ADA).await;
    // A code row for an address the account no longer has (as a concurrent change could leave).
    let row = code_row(&app, NEW_ADA).await;
    let mut stale = row.into_active_model();
    stale.target = Set("ada@elsewhere.example.org".to_string());
    stale.update(&app.state.db).await.unwrap();

    let response = verify(&app, token, &code).await;

    assert_error(response, 400, "CodeMismatchException").await;
    assert_eq!(read_account(&app, token).await["email_verified"], false);
}

// ---- helpers for this file ----

#[derive(Debug, Clone, Copy)]
enum Method {
    Put,
    Patch,
}

impl Method {
    /// Sends the body to `/api/account`, with the token when there is one.
    async fn request(self, app: &TestApp, token: Option<&str>, body: Value) -> TestResponse {
        let request = match self {
            Self::Put => app.client.put("/api/account"),
            Self::Patch => app.client.patch("/api/account"),
        };
        let request = match token {
            Some(token) => request.header(header::AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        };
        request.body_json(&body).send().await
    }
}

fn token(login: &Value) -> &str {
    login["access_token"].as_str().expect("an access token")
}

async fn read_account(app: &TestApp, token: &str) -> Value {
    let response = app.get_as("/api/account", token).await;
    response.assert_status_is_ok();
    json(response).await
}

async fn verify(app: &TestApp, token: &str, code: &str) -> TestResponse {
    app.post_as(
        "/api/verify/email",
        token,
        json!({"verification_code": code}),
    )
    .await
}

async fn resend(app: &TestApp, token: &str, body: Value) -> TestResponse {
    app.post_as("/api/verify/email/resend", token, body).await
}

/// Signs Ada in and changes her email to [`NEW_ADA`]; returns her access token.
async fn signed_in_with_new_email(app: &TestApp) -> String {
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login).to_string();
    Method::Patch
        .request(app, Some(&token), json!({"email": NEW_ADA}))
        .await
        .assert_status_is_ok();
    token
}

/// A six-digit code that is not this one.
fn wrong_code(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_string()
}

fn retry_after(response: &TestResponse) -> u64 {
    response
        .0
        .headers()
        .get(header::RETRY_AFTER)
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("whole seconds")
}

async fn uid_of(app: &TestApp, email: &str) -> Uuid {
    user::Entity::find()
        .filter(user::Column::EmailKey.eq(email.to_lowercase()))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a user with this email")
        .uid
}

/// The live email-verification code row of the user with this email.
async fn code_row(app: &TestApp, email: &str) -> code::Model {
    code::Entity::find()
        .filter(code::Column::Uid.eq(uid_of(app, email).await))
        .filter(code::Column::Purpose.eq("verify_email"))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("a verification code")
}

/// Pretends the last resend happened this much earlier (instead of waiting).
async fn move_last_resend_back(app: &TestApp, email: &str, by: TimeDelta) {
    let row = code_row(app, email).await;
    let last = row.last_resend_at.expect("a resend happened");
    let mut row = row.into_active_model();
    row.last_resend_at = Set(Some(last - by));
    row.update(&app.state.db).await.unwrap();
}

/// Pretends the hour of resends started this much earlier, and so the last resend too.
async fn move_resend_window_back(app: &TestApp, email: &str, by: TimeDelta) {
    let row = code_row(app, email).await;
    let start = row.resend_window_start.expect("a resend window");
    let last = row.last_resend_at.unwrap_or_else(Utc::now);
    let mut row = row.into_active_model();
    row.resend_window_start = Set(Some(start - by));
    row.last_resend_at = Set(Some(last - by));
    row.update(&app.state.db).await.unwrap();
}

#[tokio::test]
async fn resend_accepts_a_request_without_any_body() {
    let app = TestApp::spawn().await;
    let session = app.signed_in("ada@example.org", PASSWORD).await;
    let token = session["access_token"].as_str().unwrap();
    app.client
        .patch("/api/account")
        .header(poem::http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body_json(&serde_json::json!({"email": "ada@new.example.org"}))
        .send()
        .await
        .assert_status_is_ok();
    let response = app
        .client
        .post("/api/verify/email/resend")
        .header(poem::http::header::AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await;
    response.assert_status_is_ok();
    assert_eq!(app.mails_to("ada@new.example.org").await.len(), 2);
}
