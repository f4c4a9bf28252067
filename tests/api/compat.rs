//! The compat surface under `/authentication/api/`: the miniSASS / SimpleJWT-style API on the
//! same users and sessions as `/api`, written as its frontend or an attacker would use it.

use entity::{mail_outbox, user};
use poem::{
    http::{Method, StatusCode},
    test::TestResponse,
};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, assert_error, json},
    login::{claims, cookie, header, set_cookies, text, user_by_email},
};

const ADA: &str = "ada@example.org";
const GRACE: &str = "grace@example.org";

// --- Helpers ---------------------------------------------------------------------------------

/// A compat path, e.g. `at("login/")`.
fn at(path: &str) -> String {
    format!("/authentication/api/{path}")
}

/// A registration as the miniSASS frontend sends it.
fn registration(email: &str) -> Value {
    json!({
        "email": email,
        "password": PASSWORD,
        "username": email.split('@').next().unwrap(),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "organizationType": "research",
        "organizationName": "Analytical Engines Ltd",
        "country": "ZA",
    })
}

/// The same registration with one field changed (`null` removes it).
fn registration_with(email: &str, field: &str, value: Value) -> Value {
    let mut body = registration(email);
    match value {
        Value::Null => {
            body.as_object_mut().unwrap().remove(field);
        }
        value => body[field] = value,
    }
    body
}

async fn register(app: &TestApp, body: Value) -> TestResponse {
    app.post(&at("register/"), body).await
}

/// Sends a body as `application/x-www-form-urlencoded`.
async fn post_form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> TestResponse {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        form.append_pair(name, value);
    }
    app.client
        .post(path)
        .content_type("application/x-www-form-urlencoded")
        .body(form.finish())
        .send()
        .await
}

/// Confirms an account with the code emailed to it.
async fn confirm(app: &TestApp, email: &str) {
    let code = app.last_code(email).await;
    app.post(
        "/api/validate",
        json!({"user_name": email, "confirmation_code": code}),
    )
    .await
    .assert_status_is_ok();
}

/// Registers on the compat surface and confirms by the emailed code.
async fn confirmed_compat_user(app: &TestApp, email: &str) {
    register(app, registration(email))
        .await
        .assert_status(StatusCode::CREATED);
    confirm(app, email).await;
}

async fn login(app: &TestApp, login: &str, password: &str) -> TestResponse {
    app.post(&at("login/"), json!({"email": login, "password": password}))
        .await
}

async fn login_ok(app: &TestApp, name: &str) -> Value {
    let response = login(app, name, PASSWORD).await;
    response.assert_status_is_ok();
    json(response).await
}

async fn token(app: &TestApp, username: &str, password: &str) -> TestResponse {
    app.post(
        &at("token/"),
        json!({"username": username, "password": password}),
    )
    .await
}

async fn refresh(app: &TestApp, path: &str, refresh: &str) -> TestResponse {
    app.post(&at(path), json!({"refresh": refresh})).await
}

async fn check_auth_status(app: &TestApp, token: &str) -> TestResponse {
    app.get_as(&at("check-auth-status/"), token).await
}

fn keys(body: &Value) -> Vec<&str> {
    body.as_object()
        .unwrap_or_else(|| panic!("an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect()
}

async fn user_count(app: &TestApp) -> u64 {
    user::Entity::find().count(&app.state.db).await.unwrap()
}

async fn mail_count(app: &TestApp) -> u64 {
    mail_outbox::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

/// A refused registration: 400 naming exactly `field`, with no user and no mail left behind.
async fn assert_refused_naming(app: &TestApp, response: TestResponse, field: &str) -> Value {
    let error = assert_error(response, 400, "InvalidParameterException").await;
    let errors = error["errors"].as_object().expect("field errors");
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        [field],
        "named as sent: {error}"
    );
    assert_eq!(user_count(app).await, 0, "no user created");
    assert_eq!(mail_count(app).await, 0, "no mail queued");
    error
}

// --- Sign-in ---------------------------------------------------------------------------------

#[tokio::test]
async fn login_answers_who_signed_in_with_the_access_and_refresh_tokens() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;

    let response = login(&app, ADA, PASSWORD).await;
    response.assert_status_is_ok();
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    assert!(set_cookies(&response).is_empty(), "tokens in the body only");
    let body = json(response).await;
    assert_eq!(
        keys(&body),
        [
            "access_token",
            "email",
            "is_admin",
            "is_authenticated",
            "refresh_token",
            "user_id",
            "username"
        ]
    );
    let stored = user_by_email(&app, ADA).await;
    assert_eq!(body["user_id"], stored.uid.to_string());
    assert_eq!(body["username"], "ada");
    assert_eq!(body["email"], ADA);
    assert_eq!(body["is_authenticated"], true);
    assert_eq!(body["is_admin"], false, "the pool has no admin role");
    assert_eq!(claims(text(&body["access_token"]))["token_use"], "access");
    assert_eq!(claims(text(&body["refresh_token"]))["token_use"], "refresh");
}

#[tokio::test]
async fn token_answers_a_simplejwt_pair() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;

    let response = token(&app, "ada", PASSWORD).await;
    response.assert_status_is_ok();
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    let body = json(response).await;
    assert_eq!(keys(&body), ["access", "refresh"]);
    assert_eq!(claims(text(&body["access"]))["token_use"], "access");
    assert_eq!(claims(text(&body["refresh"]))["token_use"], "refresh");
}

#[tokio::test]
async fn a_user_registered_on_api_signs_in_on_login_and_token_by_email_or_username() {
    let app = TestApp::spawn().await;
    app.post(
        "/api/register",
        json!({"email": ADA, "password": PASSWORD, "username": "ada"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    confirm(&app, ADA).await;

    for name in [ADA, "ADA@example.org", "ada", "Ada"] {
        let body = login_ok(&app, name).await;
        assert_eq!(body["email"], ADA, "{name}");
        let response = token(&app, name, PASSWORD).await;
        response.assert_status_is_ok();
        let pair = json(response).await;
        check_auth_status(&app, text(&pair["access"]))
            .await
            .assert_status_is_ok();
    }
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_the_same_401() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;

    let mut bodies = Vec::new();
    for (name, password) in [(ADA, "wrong password!"), (GRACE, PASSWORD)] {
        bodies.push(
            assert_error(
                login(&app, name, password).await,
                401,
                "NotAuthorizedException",
            )
            .await,
        );
        bodies.push(
            assert_error(
                token(&app, name, password).await,
                401,
                "NotAuthorizedException",
            )
            .await,
        );
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

#[tokio::test]
async fn an_unconfirmed_user_is_told_so_only_after_the_right_password() {
    let app = TestApp::spawn().await;
    register(&app, registration(ADA))
        .await
        .assert_status(StatusCode::CREATED);

    assert_error(
        login(&app, ADA, "wrong password!").await,
        401,
        "NotAuthorizedException",
    )
    .await;
    assert_error(
        login(&app, ADA, PASSWORD).await,
        403,
        "UserNotConfirmedException",
    )
    .await;
    assert_error(
        token(&app, "ada", PASSWORD).await,
        403,
        "UserNotConfirmedException",
    )
    .await;
}

#[tokio::test]
async fn a_missing_credential_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    let response = app.post(&at("login/"), json!({"email": ADA})).await;
    let error = assert_error(response, 400, "InvalidParameterException").await;
    assert_eq!(
        error["errors"]["password"],
        json!(["This field is required."])
    );
    let response = app.post(&at("token/"), json!({"password": PASSWORD})).await;
    let error = assert_error(response, 400, "InvalidParameterException").await;
    assert!(error["errors"]["username"].is_array(), "{error}");
}

// --- One pool, one set of sessions -----------------------------------------------------------

#[tokio::test]
async fn a_user_registered_on_compat_signs_in_on_api() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    let response = app.login("ada", PASSWORD).await;
    response.assert_status_is_ok();
    let tokens = json(response).await;
    let account = app
        .get_as("/api/account", text(&tokens["access_token"]))
        .await;
    account.assert_status_is_ok();
    let account = json(account).await;
    assert_eq!(account["status"], "CONFIRMED");
    assert_eq!(account["organisation_type"], "research");
}

#[tokio::test]
async fn compat_tokens_work_on_api_and_api_tokens_work_on_check_auth_status() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;

    let compat = login_ok(&app, ADA).await;
    let account = app
        .get_as("/api/account", text(&compat["access_token"]))
        .await;
    account.assert_status_is_ok();
    assert_eq!(json(account).await["uid"], compat["user_id"]);
    let pair = json(token(&app, ADA, PASSWORD).await).await;
    app.get_as("/api/account", text(&pair["access"]))
        .await
        .assert_status_is_ok();

    let api = json(app.login(ADA, PASSWORD).await).await;
    for token in ["access_token", "id_token"] {
        let response = check_auth_status(&app, text(&api[token])).await;
        response.assert_status_is_ok();
        assert_eq!(
            json(response).await["user_id"],
            compat["user_id"],
            "{token}"
        );
    }
    // A compat refresh token refreshes on /api, and an /api one on compat.
    app.post(
        "/api/refresh",
        json!({"refresh_token": text(&compat["refresh_token"])}),
    )
    .await
    .assert_status_is_ok();
    refresh(&app, "refresh/", text(&api["refresh_token"]))
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn check_auth_status_answers_who_the_token_belongs_to_with_the_profile() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    let tokens = login_ok(&app, ADA).await;

    let response = check_auth_status(&app, text(&tokens["access_token"])).await;
    response.assert_status_is_ok();
    let body = json(response).await;
    assert_eq!(
        body,
        json!({
            "is_authenticated": true,
            "user_id": tokens["user_id"],
            "username": "ada",
            "email": ADA,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "organisation_type": "research",
            "organisation_name": "Analytical Engines Ltd",
            "country": "ZA",
        })
    );
}

#[tokio::test]
async fn check_auth_status_without_valid_credentials_is_a_401_json() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    let tokens = login_ok(&app, ADA).await;

    let nothing = app.client.get(at("check-auth-status/")).send().await;
    assert_error(nothing, 401, "NotAuthorizedException").await;
    for (what, token) in [
        ("garbage", "not-a-token"),
        ("a refresh token", text(&tokens["refresh_token"])),
    ] {
        let response = check_auth_status(&app, token).await;
        assert_eq!(response.0.status().as_u16(), 401, "{what}");
        assert_error(response, 401, "NotAuthorizedException").await;
    }
}

// --- Refresh ---------------------------------------------------------------------------------

#[tokio::test]
async fn both_refresh_paths_rotate_and_a_reused_refresh_token_revokes_the_session() {
    for path in ["token/refresh/", "refresh/"] {
        let app = TestApp::spawn().await;
        confirmed_compat_user(&app, ADA).await;
        let first = json(token(&app, ADA, PASSWORD).await).await;

        let response = refresh(&app, path, text(&first["refresh"])).await;
        response.assert_status_is_ok();
        assert_eq!(
            header(&response, "cache-control").as_deref(),
            Some("no-store"),
            "{path}"
        );
        let second = json(response).await;
        assert_eq!(keys(&second), ["access", "refresh"], "{path}");
        assert_ne!(second["refresh"], first["refresh"], "{path}: rotated");
        assert_eq!(
            claims(text(&second["access"]))["origin_jti"],
            claims(text(&first["access"]))["origin_jti"],
            "{path}: the same session"
        );
        check_auth_status(&app, text(&second["access"]))
            .await
            .assert_status_is_ok();

        let reused = refresh(&app, path, text(&first["refresh"])).await;
        assert_error(reused, 401, "NotAuthorizedException").await;
        let after = check_auth_status(&app, text(&second["access"])).await;
        assert_error(after, 401, "NotAuthorizedException").await;
        let latest = refresh(&app, path, text(&second["refresh"])).await;
        assert_error(latest, 401, "NotAuthorizedException").await;
    }
}

#[tokio::test]
async fn refresh_refuses_every_token_but_a_refresh_token() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    let tokens = json(app.login(ADA, PASSWORD).await).await;

    for path in ["token/refresh/", "refresh/"] {
        for (what, token) in [
            ("an access token", text(&tokens["access_token"])),
            ("an id token", text(&tokens["id_token"])),
            ("garbage", "not-a-token"),
            ("nothing", ""),
        ] {
            let response = refresh(&app, path, token).await;
            assert_eq!(response.0.status().as_u16(), 401, "{path}: {what}");
            assert_error(response, 401, "NotAuthorizedException").await;
        }
        let missing = app.post(&at(path), json!({})).await;
        let error = assert_error(missing, 400, "InvalidParameterException").await;
        assert!(error["errors"]["refresh"].is_array(), "{error}");
    }
    // None of that touched the session.
    app.get_as("/api/account", text(&tokens["access_token"]))
        .await
        .assert_status_is_ok();
}

// --- Sign-out --------------------------------------------------------------------------------

#[tokio::test]
async fn logout_on_compat_revokes_the_session_on_both_surfaces() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    let tokens = login_ok(&app, ADA).await;
    let access = text(&tokens["access_token"]);
    let other = json(app.login(ADA, PASSWORD).await).await;

    let response = app.post_as(&at("logout/"), access, json!({})).await;
    response.assert_status_is_ok();
    let cookies = set_cookies(&response);
    for name in ["access_token", "refresh_token"] {
        let cleared = cookie(&cookies, name);
        assert!(
            cleared.value.is_empty() && cleared.has("Max-Age=0"),
            "{cleared:?}"
        );
    }
    assert_eq!(keys(&json(response).await), ["detail"]);

    assert_error(
        app.get_as("/api/account", access).await,
        401,
        "NotAuthorizedException",
    )
    .await;
    assert_error(
        check_auth_status(&app, access).await,
        401,
        "NotAuthorizedException",
    )
    .await;
    let refreshed = refresh(&app, "refresh/", text(&tokens["refresh_token"])).await;
    assert_error(refreshed, 401, "NotAuthorizedException").await;
    // Only this session ended.
    check_auth_status(&app, text(&other["access_token"]))
        .await
        .assert_status_is_ok();
    // And it cannot sign out twice.
    let again = app.post_as(&at("logout/"), access, json!({})).await;
    assert_error(again, 401, "NotAuthorizedException").await;
}

#[tokio::test]
async fn logout_on_api_revokes_the_session_for_check_auth_status() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    let tokens = login_ok(&app, ADA).await;
    let access = text(&tokens["access_token"]);

    app.post_as("/api/logout", access, json!({}))
        .await
        .assert_status_is_ok();
    assert_error(
        check_auth_status(&app, access).await,
        401,
        "NotAuthorizedException",
    )
    .await;
}

#[tokio::test]
async fn logout_without_a_token_is_a_401_json() {
    let app = TestApp::spawn().await;
    let response = app.post(&at("logout/"), json!({})).await;
    assert_error(response, 401, "NotAuthorizedException").await;
}

#[tokio::test]
async fn logout_with_the_refresh_token_of_another_own_session_ends_that_one_too() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    let phone = login_ok(&app, ADA).await;
    let laptop = login_ok(&app, ADA).await;
    let tablet = login_ok(&app, ADA).await;

    app.post_as(
        &at("logout/"),
        text(&phone["access_token"]),
        json!({"refresh": text(&laptop["refresh_token"])}),
    )
    .await
    .assert_status_is_ok();

    for (device, tokens) in [("phone", &phone), ("laptop", &laptop)] {
        let response = check_auth_status(&app, text(&tokens["access_token"])).await;
        assert_eq!(response.0.status().as_u16(), 401, "{device}");
    }
    check_auth_status(&app, text(&tablet["access_token"]))
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn logout_ignores_a_refresh_token_that_is_invalid_or_someone_elses() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    confirmed_compat_user(&app, GRACE).await;
    let grace = login_ok(&app, GRACE).await;

    for refresh in [
        json!(text(&grace["refresh_token"])),
        json!(text(&grace["access_token"])),
        json!("not-a-token"),
        json!(""),
    ] {
        let ada = login_ok(&app, ADA).await;
        let response = app
            .post_as(
                &at("logout/"),
                text(&ada["access_token"]),
                json!({"refresh": refresh}),
            )
            .await;
        response.assert_status_is_ok();
        assert_eq!(
            json(response).await,
            json!({"detail": "Signed out."}),
            "the same answer"
        );
        let ada_after = check_auth_status(&app, text(&ada["access_token"])).await;
        assert_eq!(
            ada_after.0.status().as_u16(),
            401,
            "Ada's own session ended"
        );
    }
    check_auth_status(&app, text(&grace["access_token"]))
        .await
        .assert_status_is_ok();
    refresh(&app, "refresh/", text(&grace["refresh_token"]))
        .await
        .assert_status_is_ok();
}

// --- Registration ----------------------------------------------------------------------------

#[tokio::test]
async fn register_confirm_by_the_emailed_code_then_sign_in() {
    let app = TestApp::spawn().await;
    let response = register(&app, registration(ADA)).await;
    response.assert_status(StatusCode::CREATED);
    let body = json(response).await;
    assert_eq!(
        keys(&body),
        ["email", "first_name", "id", "last_name", "username"]
    );
    let stored = user_by_email(&app, ADA).await;
    assert_eq!(
        body,
        json!({
            "id": stored.uid.to_string(),
            "username": "ada",
            "email": ADA,
            "first_name": "Ada",
            "last_name": "Lovelace",
        })
    );
    assert_eq!(stored.organisation_type.as_deref(), Some("research"));
    assert_eq!(
        stored.organisation_name.as_deref(),
        Some("Analytical Engines Ltd")
    );
    assert_eq!(stored.country.as_deref(), Some("ZA"));
    assert_eq!(stored.additional_fields, json!({}));
    assert!(stored.confirmed_at.is_none(), "unconfirmed until the code");

    confirm(&app, ADA).await;
    let tokens = login_ok(&app, ADA).await;
    assert_eq!(tokens["user_id"], body["id"]);
}

#[tokio::test]
async fn without_a_username_the_email_stands_in() {
    let app = TestApp::spawn().await;
    let response = register(&app, registration_with(ADA, "username", Value::Null)).await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(json(response).await["username"], ADA);
}

#[tokio::test]
async fn each_missing_or_blank_required_profile_field_is_named_as_sent_and_creates_nothing() {
    for field in ["organizationType", "organizationName", "country"] {
        for (case, value) in [
            ("missing", Value::Null),
            ("empty", json!("")),
            ("blank", json!("  \t ")),
        ] {
            let app = TestApp::spawn().await;
            let response = register(&app, registration_with(ADA, field, value)).await;
            let error = assert_refused_naming(&app, response, field).await;
            assert!(
                !error.to_string().contains("organisation_"),
                "{case}: {error}"
            );
        }
    }
}

#[tokio::test]
async fn a_blank_profile_field_in_a_form_is_named_as_sent() {
    let app = TestApp::spawn().await;
    let response = post_form(
        &app,
        &at("register/"),
        &[
            ("email", ADA),
            ("password", PASSWORD),
            ("organizationType", "research"),
            ("organizationName", " "),
            ("country", "ZA"),
        ],
    )
    .await;
    assert_refused_naming(&app, response, "organizationName").await;
}

#[tokio::test]
async fn name_and_surname_are_stored_as_first_and_last_name() {
    let app = TestApp::spawn().await;
    let mut body = registration_with(ADA, "first_name", Value::Null);
    body.as_object_mut().unwrap().remove("last_name");
    body["name"] = json!("Ada");
    body["surname"] = json!("Lovelace");
    let response = register(&app, body).await;
    response.assert_status(StatusCode::CREATED);
    let answer = json(response).await;
    assert_eq!(answer["first_name"], "Ada");
    assert_eq!(answer["last_name"], "Lovelace");
    let stored = user_by_email(&app, ADA).await;
    assert_eq!(
        (stored.first_name.as_str(), stored.last_name.as_str()),
        ("Ada", "Lovelace")
    );
}

#[tokio::test]
async fn errors_about_names_name_the_field_as_sent() {
    let too_long = "a".repeat(151);
    let cases = [
        ("first_name", "first_name", json!(too_long)),
        ("last_name", "last_name", json!("Love\nlace")),
        ("name", "name", json!(too_long)),
        ("surname", "surname", json!("Love\nlace")),
    ];
    for (field, named, value) in cases {
        let app = TestApp::spawn().await;
        let mut body = registration(ADA);
        let object = body.as_object_mut().unwrap();
        object.remove("first_name");
        object.remove("last_name");
        object.insert(field.into(), value);
        let response = register(&app, body).await;
        assert_refused_naming(&app, response, named).await;
    }
    // Both a field and its alias, disagreeing: which one counts is not guessed.
    let app = TestApp::spawn().await;
    let response = register(&app, registration_with(ADA, "name", json!("Grace"))).await;
    assert_refused_naming(&app, response, "name").await;
}

#[tokio::test]
async fn additional_fields_is_an_object_in_json_and_a_json_string_in_a_form() {
    let app = TestApp::spawn().await;
    let fields = json!({"newsletter": true, "interests": ["rivers", "wetlands"]});
    let response = register(
        &app,
        registration_with(ADA, "additional_fields", fields.clone()),
    )
    .await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(user_by_email(&app, ADA).await.additional_fields, fields);

    let encoded = fields.to_string();
    let response = post_form(
        &app,
        &at("register/"),
        &[
            ("email", GRACE),
            ("password", PASSWORD),
            ("name", "Grace"),
            ("surname", "Hopper"),
            ("organizationType", "navy"),
            ("organizationName", "US Navy"),
            ("country", "US"),
            ("additional_fields", &encoded),
        ],
    )
    .await;
    response.assert_status(StatusCode::CREATED);
    let stored = user_by_email(&app, GRACE).await;
    assert_eq!(stored.additional_fields, fields);
    assert_eq!(stored.first_name, "Grace");
    assert_eq!(stored.organisation_type.as_deref(), Some("navy"));
}

#[tokio::test]
async fn additional_fields_that_is_not_an_object_is_refused_naming_it() {
    for value in [json!([1, 2]), json!("plain text"), json!(42)] {
        let app = TestApp::spawn().await;
        let response = register(&app, registration_with(ADA, "additional_fields", value)).await;
        assert_refused_naming(&app, response, "additional_fields").await;
    }
    for text in ["[1, 2]", "{not json", "\"a string\""] {
        let app = TestApp::spawn().await;
        let response = post_form(
            &app,
            &at("register/"),
            &[
                ("email", ADA),
                ("password", PASSWORD),
                ("organizationType", "research"),
                ("organizationName", "Analytical Engines Ltd"),
                ("country", "ZA"),
                ("additional_fields", text),
            ],
        )
        .await;
        assert_refused_naming(&app, response, "additional_fields").await;
    }
}

#[tokio::test]
async fn a_taken_email_is_refused_on_either_surface() {
    let app = TestApp::spawn().await;
    app.register(ADA, PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let response = register(&app, registration("ADA@example.org")).await;
    let error = assert_error(response, 400, "UsernameExistsException").await;
    assert!(error["errors"]["email"].is_array(), "{error}");
}

// --- Password reset --------------------------------------------------------------------------

#[tokio::test]
async fn request_reset_answers_alike_and_mails_only_a_known_email() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    let mails_before = app.mails_to(ADA).await.len();

    let known = app.post(&at("request-reset/"), json!({"email": ADA})).await;
    known.assert_status_is_ok();
    let known = json(known).await;
    let unknown = app
        .post(&at("request-reset/"), json!({"email": GRACE}))
        .await;
    unknown.assert_status_is_ok();
    assert_eq!(json(unknown).await, known, "no enumeration");
    let api = json(
        app.post("/api/password/reset", json!({"email": GRACE}))
            .await,
    )
    .await;
    assert_eq!(api, known, "the same sentence as /api");

    let mails = app.mails_to(ADA).await;
    assert_eq!(mails.len(), mails_before + 1, "one reset mail");
    let code = crate::helpers::code_in(&mails.last().unwrap().text_body).unwrap();
    assert!(app.mails_to(GRACE).await.is_empty());

    app.post(
        "/api/password/reset/confirm",
        json!({"email": ADA, "code": code,
               "new_password1": "purple monkey dishwasher lamp",
               "new_password2": "purple monkey dishwasher lamp"}),
    )
    .await
    .assert_status_is_ok();
    login(&app, ADA, "purple monkey dishwasher lamp")
        .await
        .assert_status_is_ok();
}

// --- Paths and metadata ----------------------------------------------------------------------

#[tokio::test]
async fn every_path_works_with_and_without_a_trailing_slash() {
    let app = TestApp::spawn().await;
    confirmed_compat_user(&app, ADA).await;
    for slash in ["/", ""] {
        let path = |p: &str| at(&format!("{p}{slash}"));
        let response = app
            .post(&path("login"), json!({"email": ADA, "password": PASSWORD}))
            .await;
        response.assert_status_is_ok();
        let tokens = json(response).await;
        let access = text(&tokens["access_token"]);
        let response = app
            .post(
                &path("token"),
                json!({"username": ADA, "password": PASSWORD}),
            )
            .await;
        response.assert_status_is_ok();
        let pair = json(response).await;
        let response = app
            .post(
                &path("token/refresh"),
                json!({"refresh": text(&pair["refresh"])}),
            )
            .await;
        response.assert_status_is_ok();
        let pair = json(response).await;
        app.post(&path("refresh"), json!({"refresh": text(&pair["refresh"])}))
            .await
            .assert_status_is_ok();
        app.get_as(&path("check-auth-status"), access)
            .await
            .assert_status_is_ok();
        app.post(&path("request-reset"), json!({"email": ADA}))
            .await
            .assert_status_is_ok();
        for options in ["login", "register"] {
            app.client
                .request(Method::OPTIONS, path(options))
                .send()
                .await
                .assert_status_is_ok();
        }
        let email = format!("user{}@example.org", slash.len());
        register(&app, registration_with(&email, "username", Value::Null))
            .await
            .assert_status(StatusCode::CREATED);
        app.post_as(&path("logout"), access, json!({}))
            .await
            .assert_status_is_ok();
    }
}

#[tokio::test]
async fn options_describes_login_and_register_from_the_openapi_document() {
    let app = TestApp::spawn().await;
    let spec: Value = serde_json::from_str(&authpool::api::spec_json()).unwrap();
    for (path, success) in [("login", "200"), ("register", "201")] {
        let response = app
            .client
            .request(Method::OPTIONS, at(&format!("{path}/")))
            .send()
            .await;
        response.assert_status_is_ok();
        let metadata = json(response).await;
        assert_eq!(
            keys(&metadata),
            ["description", "methods", "name", "parses", "renders"]
        );
        let post = &spec["paths"][format!("/authentication/api/{path}")]["post"];
        assert_eq!(metadata["name"], post["summary"], "{path}");
        assert_eq!(metadata["description"], post["description"], "{path}");
        let content_types = |content: &Value| -> Vec<String> {
            content.as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(
            metadata["parses"],
            json!(content_types(&post["requestBody"]["content"])),
            "{path}"
        );
        assert_eq!(
            metadata["renders"],
            json!(content_types(&post["responses"][success]["content"])),
            "{path}"
        );
        assert!(
            metadata["renders"][0]
                .as_str()
                .is_some_and(|c| c.starts_with("application/json")),
            "{metadata}"
        );
        assert_eq!(metadata["methods"], json!(["POST", "OPTIONS"]), "{path}");
    }
}

#[tokio::test]
async fn other_methods_are_405_with_an_allow_header_naming_options() {
    let app = TestApp::spawn().await;
    let response = app.client.get(at("login/")).send().await;
    assert_eq!(header(&response, "allow").as_deref(), Some("POST, OPTIONS"));
    assert_error(response, 405, "MethodNotAllowedException").await;
}
