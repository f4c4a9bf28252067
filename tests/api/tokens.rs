//! Personal API tokens on /api: creation (the secret shown once, only a hash stored), reading,
//! enabling, disabling, renaming, deleting, the per-user cap, isolation between users, and the
//! introspection the data API calls.

use chrono::{DateTime, Utc};
use entity::api_token;
use poem::{
    http::{StatusCode, header},
    test::TestResponse,
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, assert_error, json},
    login::disable,
};

const ADA: &str = "ada@example.org";
const BOB: &str = "bob@example.org";
const SECRET: &str = "introspection-secret-for-tests-0123456789";
const INTROSPECT: &str = "/api/api-tokens/introspect";

/// The app with introspection switched on.
async fn spawn() -> TestApp {
    TestApp::with_settings(&[("introspection_secret", SECRET)]).await
}

/// Signs a confirmed user in and returns their access token.
async fn session(app: &TestApp, email: &str) -> String {
    let login = app.signed_in(email, PASSWORD).await;
    login["access_token"].as_str().unwrap().to_string()
}

async fn create(app: &TestApp, session: &str, body: Value) -> Value {
    let response = app.post_as("/api/api-tokens", session, body).await;
    response.assert_status(StatusCode::CREATED);
    json(response).await
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    session: &str,
    body: Option<Value>,
) -> TestResponse {
    let request = match method {
        "GET" => app.client.get(path),
        "PUT" => app.client.put(path),
        "PATCH" => app.client.patch(path),
        "DELETE" => app.client.delete(path),
        other => panic!("no helper for {other}"),
    }
    .header(header::AUTHORIZATION, format!("Bearer {session}"));
    match body {
        Some(body) => request.body_json(&body).send().await,
        None => request.send().await,
    }
}

fn path(key: &str) -> String {
    format!("/api/api-tokens/{key}")
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string: {value}"))
}

/// Asks introspection about a token, as the data API would.
async fn introspect(app: &TestApp, body: Value) -> Value {
    let response = app.post_as(INTROSPECT, SECRET, body).await;
    response.assert_status_is_ok();
    json(response).await
}

async fn row(app: &TestApp, key: &str) -> api_token::Model {
    api_token::Entity::find_by_id(key.to_string())
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the token's row")
}

fn inactive() -> Value {
    json!({"active": false})
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

// --- creation and the secret ------------------------------------------------------------------

#[tokio::test]
async fn create_returns_a_long_random_secret_that_embeds_the_key_and_is_never_shown_again() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;

    let response = app
        .post_as("/api/api-tokens", &ada, json!({"name": "dashboard"}))
        .await;
    response.assert_status(StatusCode::CREATED);
    response.assert_header(header::CACHE_CONTROL, "no-store");
    let created = json(response).await;

    let key = text(&created["key"]);
    assert_eq!(key.len(), 16, "{created}");
    assert!(is_base64url(key), "{created}");
    assert_eq!(created["name"], "dashboard");
    assert_eq!(created["is_active"], true);
    assert_eq!(created["last_used_at"], Value::Null);
    DateTime::parse_from_rfc3339(text(&created["created_at"])).expect("an RFC 3339 time");

    // `ap_<key>_<secret>`: the secret part is 43 base64url characters, 256 bits (≥ 128).
    let token = text(&created["token"]);
    let secret = token
        .strip_prefix(&format!("ap_{key}_"))
        .unwrap_or_else(|| panic!("{token} embeds {key}"));
    assert_eq!(secret.len(), 43);
    assert!(is_base64url(secret));
    assert!(secret.len() * 6 >= 128);

    // A second token shares nothing with the first.
    let other = create(&app, &ada, json!({})).await;
    assert_ne!(other["key"], created["key"]);
    assert_ne!(
        text(&other["token"]).rsplit_once('_').unwrap().1,
        token.rsplit_once('_').unwrap().1
    );

    // Neither the list nor a read shows the secret, or any part of it.
    let list = send(&app, "GET", "/api/api-tokens", &ada, None).await;
    list.assert_status_is_ok();
    let list = json(list).await;
    let read = send(&app, "GET", &path(key), &ada, None).await;
    read.assert_status_is_ok();
    let read = json(read).await;
    for body in [&list, &read] {
        let body = body.to_string();
        assert!(!body.contains(secret), "the secret leaks: {body}");
        assert!(!body.contains("\"token\""), "a token field: {body}");
    }
    assert_eq!(
        read,
        json!({"key": key, "name": "dashboard", "is_active": true,
               "created_at": created["created_at"], "last_used_at": null})
    );
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0], read, "oldest first");
}

#[tokio::test]
async fn the_database_keeps_only_a_hash_of_the_secret() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({"name": "ci"})).await;
    let token = text(&created["token"]);
    let secret = token.rsplit_once('_').unwrap().1;

    let stored = row(&app, text(&created["key"])).await;
    // Every column of the row, as text: none holds the secret or the whole token.
    let columns = format!("{stored:?}");
    assert!(!columns.contains(secret), "{columns}");
    assert!(!columns.contains(token), "{columns}");
    assert_eq!(
        stored.secret_hash,
        authpool::crypto::secrets::hash_secret(token)
    );
}

#[tokio::test]
async fn a_token_may_be_created_inactive_and_without_a_body() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;

    let created = create(&app, &ada, json!({"is_active": false, "name": " ci "})).await;
    assert_eq!(created["is_active"], false);
    assert_eq!(created["name"], "ci", "names are trimmed");
    assert_eq!(
        introspect(&app, json!({"token": created["token"]})).await,
        inactive()
    );

    let bare = app
        .client
        .post("/api/api-tokens")
        .header(header::AUTHORIZATION, format!("Bearer {ada}"))
        .send()
        .await;
    bare.assert_status(StatusCode::CREATED);
    let bare = json(bare).await;
    assert_eq!(bare["is_active"], true);
    assert_eq!(bare["name"], "");
}

#[tokio::test]
async fn an_invalid_name_is_refused() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    for name in ["x".repeat(101), "line\nbreak".to_string()] {
        let response = app
            .post_as("/api/api-tokens", &ada, json!({"name": name}))
            .await;
        let body = assert_error(response, 400, "InvalidParameterException").await;
        assert!(body["errors"]["name"].is_array(), "{body}");
    }
    let list = json(send(&app, "GET", "/api/api-tokens", &ada, None).await).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn a_client_supplied_key_is_refused() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;

    let response = app
        .post_as(
            "/api/api-tokens",
            &ada,
            json!({"key": "chosen-by-client", "name": "x"}),
        )
        .await;
    let body = assert_error(response, 400, "InvalidParameterException").await;
    assert!(
        text(&body["errors"]["key"][0]).contains("generated by the server"),
        "{body}"
    );
    let list = json(send(&app, "GET", "/api/api-tokens", &ada, None).await).await;
    assert_eq!(list, json!([]), "nothing was created");

    // An empty key is no key at all (as an HTML form would send it).
    let created = create(&app, &ada, json!({"key": ""})).await;
    assert_ne!(created["key"], "");
}

#[tokio::test]
async fn each_user_holds_at_most_the_configured_number_of_tokens() {
    let app = TestApp::with_settings(&[("max_api_tokens", "2")]).await;
    let ada = session(&app, ADA).await;
    let first = create(&app, &ada, json!({})).await;
    create(&app, &ada, json!({})).await;

    let response = app.post_as("/api/api-tokens", &ada, json!({})).await;
    let body = assert_error(response, 400, "InvalidParameterException").await;
    assert!(text(&body["detail"]).contains('2'), "{body}");
    let list = json(send(&app, "GET", "/api/api-tokens", &ada, None).await).await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // The cap is per user, and deleting a token makes room.
    let bob = session(&app, BOB).await;
    create(&app, &bob, json!({})).await;
    send(&app, "DELETE", &path(text(&first["key"])), &ada, None)
        .await
        .assert_status_is_ok();
    create(&app, &ada, json!({})).await;
}

#[tokio::test]
async fn concurrent_creations_cannot_overshoot_the_cap() {
    let app = TestApp::with_settings(&[("max_api_tokens", "2")]).await;
    let ada = session(&app, ADA).await;

    let responses = futures_util::future::join_all(
        (0..6).map(|_| app.post_as("/api/api-tokens", &ada, json!({}))),
    )
    .await;

    let created = responses
        .iter()
        .filter(|r| r.0.status() == StatusCode::CREATED)
        .count();
    assert_eq!(created, 2);
    assert!(
        responses
            .iter()
            .all(|r| [StatusCode::CREATED, StatusCode::BAD_REQUEST].contains(&r.0.status()))
    );
    let list = json(send(&app, "GET", "/api/api-tokens", &ada, None).await).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn every_token_operation_needs_a_signed_in_user() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let key = text(&create(&app, &ada, json!({})).await["key"]).to_string();

    let anonymous = [
        app.client.get("/api/api-tokens").send().await,
        app.client
            .post("/api/api-tokens")
            .body_json(&json!({}))
            .send()
            .await,
        app.client.get(path(&key)).send().await,
        app.client
            .put(path(&key))
            .body_json(&json!({"disable": true}))
            .send()
            .await,
        app.client
            .patch(path(&key))
            .body_json(&json!({"disable": true}))
            .send()
            .await,
        app.client.delete(path(&key)).send().await,
    ];
    for response in anonymous {
        assert_error(response, 401, "NotAuthorizedException").await;
    }
    // The introspection secret is not a user's token either.
    let response = send(&app, "GET", "/api/api-tokens", SECRET, None).await;
    assert_error(response, 401, "NotAuthorizedException").await;
    assert!(row(&app, &key).await.is_active);
}

// --- updates and deletion ---------------------------------------------------------------------

#[tokio::test]
async fn disable_enable_and_is_active_switch_a_token_and_introspection_follows() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({"name": "ci"})).await;
    let key = text(&created["key"]);
    let check = json!({"token": created["token"]});

    for (method, body, active) in [
        ("PUT", json!({"disable": true}), false),
        ("PUT", json!({"enable": true}), true),
        ("PATCH", json!({"is_active": false}), false),
        ("PATCH", json!({"is_active": true}), true),
        ("PATCH", json!({"enable": false}), false),
        ("PUT", json!({"disable": false}), true),
    ] {
        let response = send(&app, method, &path(key), &ada, Some(body.clone())).await;
        response.assert_status_is_ok();
        let token = json(response).await;
        assert_eq!(token["is_active"], active, "{method} {body}");
        assert_eq!(token["name"], "ci", "{method} {body} keeps the name");
        assert!(token.get("token").is_none());
        let verdict = introspect(&app, check.clone()).await;
        assert_eq!(verdict["active"], active, "{method} {body}: {verdict}");
    }
}

#[tokio::test]
async fn a_token_can_be_renamed_without_changing_its_state() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let key = text(&create(&app, &ada, json!({"is_active": false})).await["key"]).to_string();

    for (method, name) in [("PUT", "renamed"), ("PATCH", "again")] {
        let response = send(&app, method, &path(&key), &ada, Some(json!({"name": name}))).await;
        response.assert_status_is_ok();
        let token = json(response).await;
        assert_eq!(token["name"], name);
        assert_eq!(token["is_active"], false);
    }
    assert_eq!(row(&app, &key).await.name, "again");

    // An empty body changes nothing.
    let response = send(&app, "PATCH", &path(&key), &ada, Some(json!({}))).await;
    response.assert_status_is_ok();
    assert_eq!(json(response).await["name"], "again");
}

#[tokio::test]
async fn contradictory_or_invalid_updates_are_refused_and_change_nothing() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let key = text(&create(&app, &ada, json!({"name": "ci"})).await["key"]).to_string();

    for body in [
        json!({"enable": true, "disable": true}),
        json!({"disable": true, "is_active": true}),
        json!({"enable": false, "is_active": true}),
        json!({"name": "x".repeat(101), "disable": true}),
    ] {
        let response = send(&app, "PUT", &path(&key), &ada, Some(body.clone())).await;
        assert_error(response, 400, "InvalidParameterException").await;
    }
    let stored = row(&app, &key).await;
    assert!(stored.is_active);
    assert_eq!(stored.name, "ci");
}

#[tokio::test]
async fn a_deleted_token_is_gone_and_introspects_as_inactive() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({})).await;
    let key = text(&created["key"]);
    assert_eq!(
        introspect(&app, json!({"token": created["token"]})).await["active"],
        true
    );

    let response = send(&app, "DELETE", &path(key), &ada, None).await;
    response.assert_status_is_ok();
    assert!(json(response).await["detail"].is_string());

    assert_eq!(
        introspect(&app, json!({"token": created["token"]})).await,
        inactive()
    );
    for method in ["GET", "DELETE"] {
        let response = send(&app, method, &path(key), &ada, None).await;
        assert_error(response, 404, "ResourceNotFoundException").await;
    }
    let list = json(send(&app, "GET", "/api/api-tokens", &ada, None).await).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn another_users_token_is_indistinguishable_from_an_unknown_one() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({"name": "ada's"})).await;
    let key = text(&created["key"]);
    let bob = session(&app, BOB).await;
    let unknown = "AAAAAAAAAAAAAAAA";

    for (method, body) in [
        ("GET", None),
        ("PUT", Some(json!({"disable": true, "name": "bob's now"}))),
        ("PATCH", Some(json!({"is_active": false}))),
        ("DELETE", None),
    ] {
        let theirs = send(&app, method, &path(key), &bob, body.clone()).await;
        let theirs = assert_error(theirs, 404, "ResourceNotFoundException").await;
        let missing = send(&app, method, &path(unknown), &bob, body).await;
        let missing = assert_error(missing, 404, "ResourceNotFoundException").await;
        assert_eq!(theirs, missing, "{method}");
    }

    // Ada's token is untouched, and Bob's list does not show it.
    let stored = row(&app, key).await;
    assert!(stored.is_active);
    assert_eq!(stored.name, "ada's");
    let list = json(send(&app, "GET", "/api/api-tokens", &bob, None).await).await;
    assert_eq!(list, json!([]));
    assert_eq!(
        introspect(&app, json!({"token": created["token"]})).await["active"],
        true
    );
}

// --- introspection ----------------------------------------------------------------------------

#[tokio::test]
async fn introspection_is_absent_when_no_secret_is_configured() {
    let app = TestApp::spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({})).await;

    for auth in [Some(SECRET), Some(""), None] {
        let mut request = app.client.post(INTROSPECT);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, format!("Bearer {auth}"));
        }
        let response = request
            .body_json(&json!({"token": created["token"]}))
            .send()
            .await;
        assert_error(response, 404, "ResourceNotFoundException").await;
    }
    assert!(
        row(&app, text(&created["key"]))
            .await
            .last_used_at
            .is_none()
    );
}

#[tokio::test]
async fn introspection_needs_the_configured_secret() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({})).await;
    let body = json!({"token": created["token"]});

    let missing = app.client.post(INTROSPECT).body_json(&body).send().await;
    assert_error(missing, 401, "NotAuthorizedException").await;
    for wrong in [
        "wrong",
        &SECRET[..SECRET.len() - 1],
        &format!("{SECRET}x"),
        &ada,
        text(&created["token"]),
    ] {
        let response = app.post_as(INTROSPECT, wrong, body.clone()).await;
        assert_error(response, 401, "NotAuthorizedException").await;
    }
    let other_scheme = app
        .client
        .post(INTROSPECT)
        .header(header::AUTHORIZATION, format!("Basic {SECRET}"))
        .body_json(&body)
        .send()
        .await;
    assert_error(other_scheme, 401, "NotAuthorizedException").await;
    assert!(
        row(&app, text(&created["key"]))
            .await
            .last_used_at
            .is_none()
    );

    // The bare secret, without `Bearer `, is accepted, as bare user tokens are.
    let bare = app
        .client
        .post(INTROSPECT)
        .header(header::AUTHORIZATION, SECRET)
        .body_json(&body)
        .send()
        .await;
    bare.assert_status_is_ok();
    assert_eq!(json(bare).await["active"], true);
}

#[tokio::test]
async fn an_active_token_introspects_with_its_owner_and_key() {
    let app = spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let ada = text(&login["access_token"]);
    let created = create(&app, ada, json!({})).await;

    let verdict = introspect(&app, json!({"token": created["token"]})).await;

    assert_eq!(
        verdict,
        json!({"active": true, "uid": login["uid"], "key": created["key"], "host_allowed": null})
    );
}

#[tokio::test]
async fn introspection_updates_last_used_at_on_active_answers_to_the_minute() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({})).await;
    let key = text(&created["key"]);
    let body = json!({"token": created["token"]});

    let before = Utc::now();
    introspect(&app, body.clone()).await;
    let first = row(&app, key)
        .await
        .last_used_at
        .expect("set by introspection");
    assert!(first >= before - chrono::Duration::seconds(1));

    // The owner sees it too.
    let read = json(send(&app, "GET", &path(key), &ada, None).await).await;
    let shown: DateTime<Utc> = text(&read["last_used_at"]).parse().unwrap();
    assert_eq!(shown.timestamp_millis(), first.timestamp_millis());

    // Within the minute, a use is not written again.
    introspect(&app, body.clone()).await;
    assert_eq!(row(&app, key).await.last_used_at, Some(first));

    // Once the recorded use is a minute old, the next one is recorded.
    let minute_ago = first - authpool::pool::api_tokens::LAST_USED_PRECISION;
    set_last_used_at(&app, key, minute_ago).await;
    introspect(&app, body.clone()).await;
    let second = row(&app, key).await.last_used_at.unwrap();
    assert!(second > minute_ago, "{second} after {minute_ago}");

    // An inactive answer is not a use.
    set_last_used_at(&app, key, minute_ago).await;
    send(
        &app,
        "PUT",
        &path(key),
        &ada,
        Some(json!({"disable": true})),
    )
    .await
    .assert_status_is_ok();
    assert_eq!(introspect(&app, body).await, inactive());
    assert_eq!(row(&app, key).await.last_used_at, Some(minute_ago));
}

async fn set_last_used_at(app: &TestApp, key: &str, at: DateTime<Utc>) {
    let mut token: api_token::ActiveModel = row(app, key).await.into();
    token.last_used_at = Set(Some(at));
    token.update(&app.state.db).await.unwrap();
}

#[tokio::test]
async fn every_unusable_token_gets_exactly_active_false() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({})).await;
    let token = text(&created["token"]).to_string();
    let key = text(&created["key"]).to_string();
    let other = create(&app, &ada, json!({})).await;
    let other_token = text(&other["token"]).to_string();

    // The same key with the secret part altered in one character.
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    // The right key with another token's (valid) secret.
    let spliced = format!("ap_{key}_{}", other_token.rsplit_once('_').unwrap().1);
    // A well-formed token that was never issued.
    let unknown = format!("ap_AAAAAAAAAAAAAAAA_{}", "A".repeat(43));

    for candidate in [
        altered.as_str(),
        spliced.as_str(),
        unknown.as_str(),
        &token[..token.len() - 1],
        &format!("{token}A"),
        &token[3..],
        &key,
        &ada,
        "garbage",
        "",
        "ap_",
        "ap__",
        &format!("{token}' OR '1'='1"),
    ] {
        let verdict = introspect(&app, json!({"token": candidate})).await;
        assert_eq!(verdict, inactive(), "{candidate:?}");
    }
    assert!(row(&app, &key).await.last_used_at.is_none());
    // The real token still works.
    assert_eq!(
        introspect(&app, json!({"token": token})).await["active"],
        true
    );
}

#[tokio::test]
async fn an_inactive_token_gets_exactly_active_false() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({"is_active": false})).await;
    let verdict = introspect(
        &app,
        json!({"token": created["token"], "host": "example.org"}),
    )
    .await;
    assert_eq!(verdict, inactive());
}

#[tokio::test]
async fn introspection_without_a_token_field_is_a_bad_request() {
    let app = spawn().await;
    let response = app
        .post_as(INTROSPECT, SECRET, json!({"host": "example.org"}))
        .await;
    let body = assert_error(response, 400, "InvalidParameterException").await;
    assert!(body["errors"]["token"].is_array(), "{body}");
}

#[tokio::test]
async fn api_tokens_outlive_the_session_that_created_them() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({})).await;

    app.post_as("/api/logout", &ada, json!({"everywhere": true}))
        .await
        .assert_status_is_ok();
    // The session is gone...
    let response = send(&app, "GET", "/api/api-tokens", &ada, None).await;
    assert_error(response, 401, "NotAuthorizedException").await;
    // ...the API token is not.
    assert_eq!(
        introspect(&app, json!({"token": created["token"]})).await["active"],
        true
    );
}

#[tokio::test]
async fn a_disabled_users_tokens_are_inactive_until_the_user_is_enabled() {
    let app = spawn().await;
    let ada = session(&app, ADA).await;
    let created = create(&app, &ada, json!({})).await;
    let body = json!({"token": created["token"]});

    disable(&app, ADA).await;
    assert_eq!(introspect(&app, body.clone()).await, inactive());
    assert!(
        row(&app, text(&created["key"]))
            .await
            .last_used_at
            .is_none()
    );

    let mut user: entity::user::ActiveModel = crate::login::user_by_email(&app, ADA).await.into();
    user.disabled_at = Set(None);
    user.update(&app.state.db).await.unwrap();
    assert_eq!(introspect(&app, body).await["active"], true);
}

// --- introspection and allowed hosts ----------------------------------------------------------

/// Allows a host for the signed-in user through the API.
async fn allow(app: &TestApp, session: &str, host: &str) {
    app.post_as("/api/allowed-hosts", session, json!({"host": host}))
        .await
        .assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn a_host_must_be_allowed_for_the_token_to_be_active() {
    let app = spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let ada = text(&login["access_token"]);
    let created = create(&app, ada, json!({})).await;
    allow(&app, ada, "https://Dashboard.example.org").await;
    allow(&app, ada, "*.apps.example.net").await;
    allow(&app, ada, "api.example.com:8443").await;
    // Another user's allowed host does not count for Ada's token.
    let bob = session(&app, BOB).await;
    allow(&app, &bob, "bob.example.net").await;

    let active = json!({"active": true, "uid": login["uid"], "key": created["key"],
                        "host_allowed": true});
    for host in [
        "dashboard.example.org",
        "https://dashboard.example.org",
        "DASHBOARD.example.org:8443",
        "one.apps.example.net",
        "https://two.levels.apps.example.net",
        "api.example.com:8443",
        "https://api.example.com:8443",
    ] {
        let verdict = introspect(&app, json!({"token": created["token"], "host": host})).await;
        assert_eq!(verdict, active, "{host}");
    }

    for host in [
        "example.org",
        "evil.example",
        "dashboard.example.org.evil.example",
        "apps.example.net",
        "api.example.com",
        "api.example.com:443",
        "bob.example.net",
        "",
        "not a host",
        "https://user@dashboard.example.org/path",
        "dashboard..example.org",
    ] {
        let verdict = introspect(&app, json!({"token": created["token"], "host": host})).await;
        assert_eq!(verdict, inactive(), "{host:?}");
    }

    // Removing the host takes effect at once.
    let response = send(
        &app,
        "DELETE",
        "/api/allowed-hosts/dashboard.example.org",
        ada,
        None,
    )
    .await;
    response.assert_status_is_ok();
    let verdict = introspect(
        &app,
        json!({"token": created["token"], "host": "dashboard.example.org"}),
    )
    .await;
    assert_eq!(verdict, inactive());
}

#[tokio::test]
async fn introspection_has_its_own_per_address_limit_even_with_the_secret() {
    // 1 per second, burst 10: guessing tokens (or the secret) through introspection is bounded.
    let app = TestApp::with_settings(&[
        ("introspection_secret", SECRET),
        ("introspection_rate_limit", "1"),
    ])
    .await;
    let body = json!({"token": "ap_guess"});
    for _ in 0..10 {
        assert_eq!(
            introspect(&app, body.clone()).await,
            json!({"active": false})
        );
    }
    let response = app.post_as(INTROSPECT, SECRET, body.clone()).await;
    let retry_after = response.0.headers().get("retry-after").cloned();
    assert_error(response, 429, "TooManyRequestsException").await;
    assert_eq!(retry_after.unwrap(), "1");
    let wrong_secret = app.post_as(INTROSPECT, "wrong", body).await;
    assert_error(wrong_secret, 429, "TooManyRequestsException").await;
}
