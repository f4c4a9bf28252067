//! Sign-in on /api: the tokens it yields, the answers that must not tell users apart, and the
//! lockout after repeated failures.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{TimeDelta, Utc};
use entity::{login_failure, user};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::test::TestResponse;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, json};

const WRONG: &str = "not the password at all";
const ISSUER: &str = "http://authpool.test";
/// The default lifetimes: id and access tokens 1 h, refresh tokens 30 days.
const HOUR: i64 = 3600;
const THIRTY_DAYS: i64 = 30 * 86_400;

// --- The answer of a successful sign-in -----------------------------------------------------

#[tokio::test]
async fn login_answers_the_tokens_in_the_body_the_authorization_header_and_two_cookies() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;

    let response = app.login("ada@example.org", PASSWORD).await;

    response.assert_status_is_ok();
    response.assert_header("cache-control", "no-store");
    let authorization = header(&response, "authorization").expect("an Authorization header");
    let cookies = set_cookies(&response);
    let body = json(response).await;
    let mut fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "access_token",
            "expires_in",
            "id_token",
            "refresh_token",
            "token_type",
            "uid"
        ]
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["uid"],
        user_by_email(&app, "ada@example.org").await.uid.to_string()
    );
    assert_eq!(authorization, format!("Bearer {}", text(&body["id_token"])));

    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let access = cookie(&cookies, "access_token");
    assert_eq!(access.value, text(&body["access_token"]));
    access.assert_browser_only(HOUR);
    assert!(!access.has("Secure"), "no Secure on http: {access:?}");
    let refresh = cookie(&cookies, "refresh_token");
    assert_eq!(refresh.value, text(&body["refresh_token"]));
    refresh.assert_browser_only(THIRTY_DAYS);
    assert!(!refresh.has("Secure"), "no Secure on http: {refresh:?}");
}

#[tokio::test]
async fn cookies_are_secure_when_forced_or_when_the_public_url_is_https() {
    for settings in [
        [("cookie_secure", "true")],
        [("public_url", "https://authpool.test")],
    ] {
        let app = TestApp::with_settings(&settings).await;
        app.confirmed_user("ada@example.org", PASSWORD).await;

        let response = app.login("ada@example.org", PASSWORD).await;

        response.assert_status_is_ok();
        let cookies = set_cookies(&response);
        for name in ["access_token", "refresh_token"] {
            let cookie = cookie(&cookies, name);
            assert!(cookie.has("Secure"), "{settings:?}: {cookie:?}");
            assert!(cookie.has("HttpOnly"), "{settings:?}: {cookie:?}");
        }
    }
}

#[tokio::test]
async fn the_id_token_carries_every_documented_claim() {
    let app = TestApp::spawn().await;
    let uid = confirmed_user_with(
        &app,
        json!({
            "email": "Ada@Example.org",
            "password": PASSWORD,
            "username": "ada",
            "first_name": "Ada",
            "last_name": "Lovelace",
        }),
    )
    .await;
    let before = Utc::now().timestamp();

    let tokens = login_ok(&app, "ada@example.org", PASSWORD).await;

    let after = Utc::now().timestamp();
    let id = claims(text(&tokens["id_token"]));
    assert_eq!(id["sub"], uid);
    assert_eq!(id["aud"], &*app.state.client_id);
    assert_eq!(id["iss"], ISSUER);
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["email"], "Ada@Example.org");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["cognito:username"], "ada");
    assert_eq!(id["given_name"], "Ada");
    assert_eq!(id["family_name"], "Lovelace");
    let iat = id["iat"].as_i64().expect("iat");
    assert!((before..=after).contains(&iat), "iat {iat} not now");
    assert_eq!(id["auth_time"], iat);
    assert_eq!(id["exp"], iat + HOUR);
    assert_uuid(&id["jti"]);
    assert_uuid(&id["origin_jti"]);
    assert_ne!(id["jti"], id["origin_jti"]);
}

#[tokio::test]
async fn the_access_token_carries_every_documented_claim_and_no_audience() {
    let app = TestApp::spawn().await;
    confirmed_user_with(
        &app,
        json!({"email": "ada@example.org", "password": PASSWORD, "username": "ada"}),
    )
    .await;

    let tokens = login_ok(&app, "ada@example.org", PASSWORD).await;

    let id = claims(text(&tokens["id_token"]));
    let access = claims(text(&tokens["access_token"]));
    assert_eq!(access["sub"], id["sub"]);
    assert_eq!(access["client_id"], &*app.state.client_id);
    assert_eq!(access["iss"], ISSUER);
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["scope"], "aws.cognito.signin.user.admin");
    assert_eq!(access["username"], "ada");
    assert_eq!(access["username"], id["cognito:username"]);
    assert!(
        access.get("aud").is_none(),
        "access tokens have no aud: {access}"
    );
    assert_eq!(access["auth_time"], id["auth_time"]);
    let iat = access["iat"].as_i64().expect("iat");
    assert_eq!(access["exp"], iat + HOUR);
    assert_uuid(&access["jti"]);
    assert_ne!(access["jti"], id["jti"]);
    assert_eq!(
        access["origin_jti"], id["origin_jti"],
        "one sign-in, one origin"
    );
}

#[tokio::test]
async fn the_refresh_token_is_a_refresh_token_of_the_same_user() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;

    let tokens = login_ok(&app, "ada@example.org", PASSWORD).await;

    let id = claims(text(&tokens["id_token"]));
    let refresh = claims(text(&tokens["refresh_token"]));
    assert_eq!(refresh["token_use"], "refresh");
    assert_eq!(refresh["sub"], id["sub"]);
    assert_eq!(refresh["iss"], ISSUER);
    let iat = refresh["iat"].as_i64().expect("iat");
    assert_eq!(refresh["exp"], iat + THIRTY_DAYS);
    assert_uuid(&refresh["jti"]);
    assert!(refresh.get("aud").is_none(), "{refresh}");
}

#[tokio::test]
async fn without_a_username_the_username_claims_are_the_uid() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;

    let tokens = login_ok(&app, "ada@example.org", PASSWORD).await;

    let uid = text(&tokens["uid"]);
    let id = claims(text(&tokens["id_token"]));
    let access = claims(text(&tokens["access_token"]));
    assert_eq!(id["sub"], uid);
    assert_eq!(id["cognito:username"], uid);
    assert_eq!(access["username"], uid);
    assert!(id.get("given_name").is_none(), "no name given: {id}");
    assert!(id.get("family_name").is_none(), "no name given: {id}");
}

#[tokio::test]
async fn an_outside_verifier_accepts_all_three_tokens_with_the_published_jwks() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    let tokens = login_ok(&app, "ada@example.org", PASSWORD).await;
    let jwks = json(app.client.get("/.well-known/jwks.json").send().await).await;

    let mut id_rules = Validation::new(Algorithm::RS256);
    id_rules.set_issuer(&[ISSUER]);
    id_rules.set_audience(&[&*app.state.client_id]);
    let id = verify_with_jwks(&jwks, text(&tokens["id_token"]), &id_rules).expect("id token");
    assert_eq!(id["token_use"], "id");

    let mut no_audience = Validation::new(Algorithm::RS256);
    no_audience.set_issuer(&[ISSUER]);
    no_audience.validate_aud = false;
    let access =
        verify_with_jwks(&jwks, text(&tokens["access_token"]), &no_audience).expect("access token");
    assert_eq!(access["client_id"], &*app.state.client_id);
    let refresh = verify_with_jwks(&jwks, text(&tokens["refresh_token"]), &no_audience)
        .expect("refresh token");
    assert_eq!(refresh["token_use"], "refresh");

    for token in ["id_token", "access_token", "refresh_token"] {
        let header = token_header(text(&tokens[token]));
        assert_eq!(header["alg"], "RS256", "{token}");
        assert!(header["kid"].is_string(), "{token} has a kid");
    }
}

// --- Who may sign in --------------------------------------------------------------------------

#[tokio::test]
async fn a_user_can_sign_in_with_their_username_in_any_case() {
    let app = TestApp::spawn().await;
    let uid = confirmed_user_with(
        &app,
        json!({"email": "ada@example.org", "password": PASSWORD, "username": "Ada"}),
    )
    .await;

    for name in ["Ada", "ada", "ADA"] {
        let tokens = login_ok(&app, name, PASSWORD).await;
        assert_eq!(tokens["uid"], uid, "{name}");
        assert_eq!(claims(text(&tokens["id_token"]))["cognito:username"], "Ada");
    }
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_get_the_very_same_answer() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;

    let unknown = app.login("nobody@example.org", PASSWORD).await;
    let wrong = app.login("ada@example.org", WRONG).await;

    assert_eq!(unknown.0.status(), wrong.0.status());
    assert!(header(&unknown, "set-cookie").is_none());
    assert!(header(&wrong, "set-cookie").is_none());
    let unknown = assert_error(unknown, 401, "NotAuthorizedException").await;
    let wrong = assert_error(wrong, 401, "NotAuthorizedException").await;
    assert_eq!(unknown, wrong, "the body must not tell which one exists");
}

#[tokio::test]
async fn an_unconfirmed_user_is_told_so_only_after_the_right_password() {
    let app = TestApp::spawn().await;
    app.register("ada@example.org", PASSWORD)
        .await
        .assert_status(poem::http::StatusCode::CREATED);

    let wrong = app.login("ada@example.org", WRONG).await;
    assert_error(wrong, 401, "NotAuthorizedException").await;
    let right = app.login("ada@example.org", PASSWORD).await;
    assert!(header(&right, "set-cookie").is_none());
    assert_error(right, 403, "UserNotConfirmedException").await;
}

#[tokio::test]
async fn a_disabled_user_is_told_so_only_after_the_right_password() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    disable(&app, "ada@example.org").await;

    let wrong = app.login("ada@example.org", WRONG).await;
    assert_error(wrong, 401, "NotAuthorizedException").await;
    let right = app.login("ada@example.org", PASSWORD).await;
    assert!(header(&right, "set-cookie").is_none());
    assert_error(right, 403, "UserDisabledException").await;
}

// --- Lockout ------------------------------------------------------------------------------------

#[tokio::test]
async fn after_five_wrong_passwords_even_the_right_one_is_refused_for_a_while() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;

    fail_five_times(&app, "ada@example.org").await;
    let sixth = app.login("ada@example.org", PASSWORD).await;

    assert_locked_out(sixth).await;
}

#[tokio::test]
async fn an_unknown_email_is_locked_out_like_a_real_one() {
    let app = TestApp::spawn().await;

    fail_five_times(&app, "nobody@example.org").await;
    let sixth = app.login("nobody@example.org", PASSWORD).await;

    assert_locked_out(sixth).await;
}

#[tokio::test]
async fn failures_by_username_lock_the_email_form_of_the_same_account() {
    let app = TestApp::spawn().await;
    confirmed_user_with(
        &app,
        json!({"email": "ada@example.org", "password": PASSWORD, "username": "ada"}),
    )
    .await;

    fail_five_times(&app, "ada").await;
    let by_email = app.login("ADA@example.org", PASSWORD).await;

    assert_locked_out(by_email).await;
}

#[tokio::test]
async fn once_the_lock_has_passed_the_right_password_works_and_resets_the_count() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    fail_five_times(&app, "ada@example.org").await;
    assert_locked_out(app.login("ada@example.org", PASSWORD).await).await;

    let mut counter: login_failure::ActiveModel = only_failure_counter(&app).await.into();
    counter.locked_until = Set(Some(Utc::now() - TimeDelta::seconds(1)));
    counter.update(&app.state.db).await.unwrap();
    login_ok(&app, "ada@example.org", PASSWORD).await;

    // Had the count survived, this sixth consecutive failure would lock the account again.
    let wrong = app.login("ada@example.org", WRONG).await;
    assert_error(wrong, 401, "NotAuthorizedException").await;
    login_ok(&app, "ada@example.org", PASSWORD).await;
}

#[tokio::test]
async fn a_successful_login_resets_the_failure_count() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;

    for _ in 0..2 {
        for _ in 0..4 {
            let wrong = app.login("ada@example.org", WRONG).await;
            assert_error(wrong, 401, "NotAuthorizedException").await;
        }
        login_ok(&app, "ada@example.org", PASSWORD).await;
    }
}

#[tokio::test]
async fn failures_older_than_fifteen_minutes_are_forgotten() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    for _ in 0..4 {
        let wrong = app.login("ada@example.org", WRONG).await;
        assert_error(wrong, 401, "NotAuthorizedException").await;
    }
    let mut counter: login_failure::ActiveModel = only_failure_counter(&app).await.into();
    counter.last_failure_at = Set(Utc::now() - TimeDelta::minutes(16));
    counter.update(&app.state.db).await.unwrap();

    // Four more failures: the count starts again, so none of them locks the account.
    for _ in 0..4 {
        let wrong = app.login("ada@example.org", WRONG).await;
        assert_error(wrong, 401, "NotAuthorizedException").await;
    }
    login_ok(&app, "ada@example.org", PASSWORD).await;
}

#[tokio::test]
async fn attempts_refused_during_a_lock_do_not_extend_it() {
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    fail_five_times(&app, "ada@example.org").await;
    // A longer lock than the first one, so that it cannot run out while the test runs.
    let locked_until = Utc::now() + TimeDelta::minutes(10);
    let mut counter: login_failure::ActiveModel = only_failure_counter(&app).await.into();
    counter.locked_until = Set(Some(locked_until));
    let before = counter.update(&app.state.db).await.unwrap();

    for password in [WRONG, PASSWORD, WRONG] {
        let refused = app.login("ada@example.org", password).await;
        let retry_after = assert_locked_out(refused).await;
        assert!(
            (599..=600).contains(&retry_after),
            "Retry-After is the whole seconds left, rounded up: {retry_after}"
        );
    }

    let after = only_failure_counter(&app).await;
    assert_eq!(after, before, "refused attempts left the counter alone");
}

// --- Helpers ------------------------------------------------------------------------------------

/// Registers with this body and confirms; returns the uid.
pub async fn confirmed_user_with(app: &TestApp, body: Value) -> String {
    let response = app.post("/api/register", body.clone()).await;
    response.assert_status(poem::http::StatusCode::CREATED);
    let uid = text(&json(response).await["uid"]).to_string();
    let email = text(&body["email"]);
    let code = app.last_code(email).await;
    app.post(
        "/api/validate",
        json!({"user_name": email, "confirmation_code": code}),
    )
    .await
    .assert_status_is_ok();
    uid
}

/// Signs in, expecting success; returns the login body.
pub async fn login_ok(app: &TestApp, login: &str, password: &str) -> Value {
    let response = app.login(login, password).await;
    response.assert_status_is_ok();
    json(response).await
}

async fn fail_five_times(app: &TestApp, login: &str) {
    for attempt in 1..=5 {
        let response = app.login(login, WRONG).await;
        assert_eq!(
            response.0.status().as_u16(),
            401,
            "wrong password #{attempt} is a plain refusal"
        );
        assert_error(response, 401, "NotAuthorizedException").await;
    }
}

/// Asserts a lockout answer and returns its `Retry-After`.
async fn assert_locked_out(response: TestResponse) -> u64 {
    let retry_after: u64 = header(&response, "retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_error(response, 429, "PasswordAttemptsExceededException").await;
    retry_after
}

/// The one lockout counter of the test's database.
async fn only_failure_counter(app: &TestApp) -> login_failure::Model {
    let mut rows = login_failure::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.pop().unwrap()
}

pub async fn user_by_email(app: &TestApp, email: &str) -> user::Model {
    user::Entity::find()
        .filter(user::Column::EmailKey.eq(email.to_lowercase()))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the user")
}

/// Disables a user the way an admin would (there is no admin command yet): sets `disabled_at`.
pub async fn disable(app: &TestApp, email: &str) {
    let mut user: user::ActiveModel = user_by_email(app, email).await.into();
    user.disabled_at = Set(Some(Utc::now()));
    user.update(&app.state.db).await.unwrap();
}

pub fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string: {value}"))
}

fn assert_uuid(value: &Value) {
    assert!(
        uuid::Uuid::parse_str(text(value)).is_ok(),
        "a UUID: {value}"
    );
}

/// The payload of a JWT, read without verifying anything (as a client reads its own token).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

pub fn token_header(token: &str) -> Value {
    let header = token.split('.').next().expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("JSON")
}

/// Verifies a token as a third party would: with the JWKS key its `kid` names.
fn verify_with_jwks(
    jwks: &Value,
    token: &str,
    rules: &Validation,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let kid = token_header(token)["kid"].clone();
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["kid"] == kid)
        .expect("the token's kid is published");
    let key = DecodingKey::from_rsa_components(text(&key["n"]), text(&key["e"]))?;
    jsonwebtoken::decode::<Value>(token, &key, rules).map(|data| data.claims)
}

pub fn header(response: &TestResponse, name: &str) -> Option<String> {
    response
        .0
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_string())
}

pub fn set_cookies(response: &TestResponse) -> Vec<String> {
    response
        .0
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII cookie").to_string())
        .collect()
}

/// One `Set-Cookie` value, split into its name, value and attributes.
#[derive(Debug)]
pub struct SetCookie {
    pub value: String,
    attributes: Vec<String>,
}

impl SetCookie {
    pub fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    /// `HttpOnly; SameSite=Lax; Path=/` and this `Max-Age`.
    pub fn assert_browser_only(&self, max_age: i64) {
        for attribute in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            &format!("Max-Age={max_age}"),
        ] {
            assert!(self.has(attribute), "{attribute} missing: {self:?}");
        }
    }
}

/// The `Set-Cookie` value of the cookie with this name.
pub fn cookie(set_cookies: &[String], name: &str) -> SetCookie {
    let mut matching = set_cookies.iter().filter_map(|line| {
        let mut parts = line.split(';').map(str::trim);
        let (cookie_name, value) = parts.next()?.split_once('=')?;
        (cookie_name == name).then(|| SetCookie {
            value: value.to_string(),
            attributes: parts.map(str::to_string).collect(),
        })
    });
    let cookie = matching
        .next()
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"));
    assert!(matching.next().is_none(), "two {name} cookies");
    cookie
}
