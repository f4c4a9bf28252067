//! Sessions: which bearer tokens authenticate, refresh rotation and reuse detection, sign-out,
//! and the events that end a session early.

use authpool::store;
use aws_lc_rs::{
    hmac,
    rand::SystemRandom,
    rsa::{KeyPair, KeySize},
    signature::RSA_PKCS1_SHA256,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{TimeDelta, Utc};
use entity::{refresh_token, session};
use poem::{http::header, test::TestResponse};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, assert_error, json},
    login::{claims, cookie, disable, header, login_ok, set_cookies, text, token_header},
};

const ADA: &str = "ada@example.org";

// --- Which bearer tokens authenticate --------------------------------------------------------

#[tokio::test]
async fn the_access_token_and_the_id_token_both_authenticate_with_or_without_bearer() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;

    for token in ["access_token", "id_token"] {
        let token = text(&tokens[token]);
        for authorization in [format!("Bearer {token}"), token.to_string()] {
            let response = get_account(&app, Some(&authorization)).await;
            response.assert_status_is_ok();
            assert_eq!(json(response).await["email"], ADA);
        }
    }
}

#[tokio::test]
async fn anything_but_a_valid_id_or_access_token_is_refused() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;
    let id_token = text(&tokens["id_token"]);
    let access_token = text(&tokens["access_token"]);

    let our_kid = text(&token_header(id_token)["kid"]).to_string();
    let our_modulus = text(&app.state.keys.jwks()["keys"][0]["n"]).to_string();

    let attacks = [
        ("garbage", "Bearer not-a-token".to_string()),
        ("another scheme", format!("Basic {access_token}")),
        ("a flipped signature byte", flip_signature_byte(id_token)),
        ("alg none", unsigned(id_token)),
        (
            "HS256 keyed with our modulus",
            hmac_signed(id_token, &our_modulus),
        ),
        (
            "a refresh token",
            text(&tokens["refresh_token"]).to_string(),
        ),
        (
            "another key, our kid",
            signed_by_another_key(id_token, &our_kid),
        ),
        (
            "another key, its kid",
            signed_by_another_key(id_token, "evil"),
        ),
        (
            "a forged claim",
            with_claim(access_token, "sub", json!(uuid())),
        ),
    ];
    for (attack, authorization) in attacks {
        let response = get_account(&app, Some(&authorization)).await;
        assert_eq!(response.0.status().as_u16(), 401, "{attack}");
        assert_error(response, 401, "NotAuthorizedException").await;
    }
    let nothing = get_account(&app, None).await;
    assert_error(nothing, 401, "NotAuthorizedException").await;
}

#[tokio::test]
async fn our_own_signature_on_an_expired_or_foreign_token_is_not_enough() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;
    let id = claims(text(&tokens["id_token"]));
    let access = claims(text(&tokens["access_token"]));
    let now = Utc::now().timestamp();
    let changed = |claims: &Value, name: &str, value: Value| {
        let mut claims = claims.clone();
        claims[name] = value;
        app.state.keys.sign(&claims)
    };

    let cases = [
        ("an expired id token", changed(&id, "exp", json!(now - 1))),
        (
            "an expired access token",
            changed(&access, "exp", json!(now - 1)),
        ),
        (
            "another issuer",
            changed(&id, "iss", json!("http://evil.test")),
        ),
        (
            "another audience",
            changed(&id, "aud", json!("another-client")),
        ),
        (
            "another client",
            changed(&access, "client_id", json!("another-client")),
        ),
        (
            "an unknown token_use",
            changed(&access, "token_use", json!("admin")),
        ),
        (
            "a refresh token_use",
            changed(&access, "token_use", json!("refresh")),
        ),
    ];
    for (case, token) in cases {
        let response = get_account(&app, Some(&token)).await;
        assert_eq!(response.0.status().as_u16(), 401, "{case}");
        assert_error(response, 401, "NotAuthorizedException").await;
    }
}

#[tokio::test]
async fn the_cookies_alone_never_authenticate_an_api_call() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;

    let response = app
        .client
        .get("/api/account")
        .header(
            header::COOKIE,
            format!(
                "access_token={}; refresh_token={}",
                text(&tokens["access_token"]),
                text(&tokens["refresh_token"])
            ),
        )
        .send()
        .await;

    assert_error(response, 401, "NotAuthorizedException").await;
}

// --- Refresh ------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_keeps_the_sign_in() {
    let app = TestApp::spawn().await;
    let first = app.signed_in(ADA, PASSWORD).await;

    let response = refresh(&app, text(&first["refresh_token"])).await;

    response.assert_status_is_ok();
    response.assert_header("cache-control", "no-store");
    let authorization = header(&response, "authorization").expect("Authorization");
    let cookies = set_cookies(&response);
    let second = json(response).await;
    assert_eq!(second["uid"], first["uid"]);
    assert_eq!(second["token_type"], "Bearer");
    assert_eq!(second["expires_in"], 3600);
    assert_eq!(
        authorization,
        format!("Bearer {}", text(&second["id_token"]))
    );
    assert_eq!(
        cookie(&cookies, "access_token").value,
        text(&second["access_token"])
    );
    assert_eq!(
        cookie(&cookies, "refresh_token").value,
        text(&second["refresh_token"])
    );
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    for token in ["id_token", "access_token", "refresh_token"] {
        let (old, new) = (claims(text(&first[token])), claims(text(&second[token])));
        assert_ne!(new["jti"], old["jti"], "{token} has a new jti");
        assert_eq!(
            new["auth_time"], old["auth_time"],
            "{token} keeps auth_time"
        );
        assert_eq!(
            new["origin_jti"], old["origin_jti"],
            "{token} keeps origin_jti"
        );
    }
    get_account(&app, Some(text(&second["access_token"])))
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn a_browser_refreshes_with_the_cookie_alone() {
    let app = TestApp::spawn().await;
    let first = app.signed_in(ADA, PASSWORD).await;

    let response = app
        .client
        .post("/api/refresh")
        .header(
            header::COOKIE,
            format!(
                "theme=dark; refresh_token={}",
                text(&first["refresh_token"])
            ),
        )
        .send()
        .await;

    response.assert_status_is_ok();
    let second = json(response).await;
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(
        claims(text(&second["id_token"]))["origin_jti"],
        claims(text(&first["id_token"]))["origin_jti"]
    );
}

#[tokio::test]
async fn refresh_without_a_refresh_token_is_refused() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;

    for body in [json!({}), json!({"refresh_token": tokens["access_token"]})] {
        let response = app.post("/api/refresh", body).await;
        assert_error(response, 401, "NotAuthorizedException").await;
    }
}

#[tokio::test]
async fn a_replayed_refresh_token_revokes_the_whole_session() {
    let app = TestApp::spawn().await;
    let stolen = app.signed_in(ADA, PASSWORD).await;
    let legitimate = json(refresh(&app, text(&stolen["refresh_token"])).await).await;

    let replay = refresh(&app, text(&stolen["refresh_token"])).await;

    assert_error(replay, 401, "NotAuthorizedException").await;
    let newest_access = get_account(&app, Some(text(&legitimate["access_token"]))).await;
    assert_error(newest_access, 401, "NotAuthorizedException").await;
    let newest_refresh = refresh(&app, text(&legitimate["refresh_token"])).await;
    assert_error(newest_refresh, 401, "NotAuthorizedException").await;
}

#[tokio::test]
async fn within_the_grace_window_an_immediate_replay_still_succeeds() {
    let app = TestApp::with_settings(&[("refresh_reuse_grace_s", "5")]).await;
    let first = app.signed_in(ADA, PASSWORD).await;
    refresh(&app, text(&first["refresh_token"]))
        .await
        .assert_status_is_ok();

    let racing_tab = refresh(&app, text(&first["refresh_token"])).await;

    racing_tab.assert_status_is_ok();
    let tokens = json(racing_tab).await;
    get_account(&app, Some(text(&tokens["access_token"])))
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn a_replay_after_the_grace_window_is_reuse_and_revokes_the_session() {
    let app = TestApp::with_settings(&[("refresh_reuse_grace_s", "5")]).await;
    let stolen = app.signed_in(ADA, PASSWORD).await;
    let legitimate = json(refresh(&app, text(&stolen["refresh_token"])).await).await;
    let jti = text(&claims(text(&stolen["refresh_token"]))["jti"]).to_string();
    let mut used: refresh_token::ActiveModel = refresh_token::Entity::find_by_id(jti)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the used refresh token")
        .into();
    used.used_at = Set(Some(Utc::now() - TimeDelta::seconds(6)));
    used.update(&app.state.db).await.unwrap();

    let replay = refresh(&app, text(&stolen["refresh_token"])).await;

    assert_error(replay, 401, "NotAuthorizedException").await;
    let newest_access = get_account(&app, Some(text(&legitimate["access_token"]))).await;
    assert_error(newest_access, 401, "NotAuthorizedException").await;
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_yield_at_most_one_success() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;
    let token = text(&tokens["refresh_token"]);

    let responses = futures_util::future::join_all((0..4).map(|_| refresh(&app, token))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.0.status().as_u16()).collect();
    assert!(
        statuses.iter().all(|s| [200, 401].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 1,
        "{statuses:?}"
    );
}

/// SQLite has one writer: concurrent write transactions (refreshes, sign-ins, sign-ups) take
/// turns, and none of them fails with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_sign_ins_and_sign_ups_all_succeed() {
    const EACH: usize = 16;
    let app = TestApp::with_settings(&[("ip_rate_limit", "0")]).await;
    app.confirmed_user(ADA, PASSWORD).await;
    let sessions = futures_util::future::join_all((0..EACH).map(|_| app.login(ADA, PASSWORD)));
    let mut refresh_tokens = Vec::new();
    for response in sessions.await {
        response.assert_status_is_ok();
        refresh_tokens.push(text(&json(response).await["refresh_token"]).to_string());
    }

    let refreshes = futures_util::future::join_all(refresh_tokens.iter().map(|t| refresh(&app, t)));
    let sign_ins = futures_util::future::join_all((0..EACH).map(|_| app.login(ADA, PASSWORD)));
    let emails: Vec<String> = (0..EACH).map(|i| format!("user{i}@example.org")).collect();
    let sign_ups = futures_util::future::join_all(emails.iter().map(|e| app.register(e, PASSWORD)));
    let (refreshes, sign_ins, sign_ups) = tokio::join!(refreshes, sign_ins, sign_ups);

    for response in sign_ups {
        response.assert_status(poem::http::StatusCode::CREATED);
    }
    for response in sign_ins {
        response.assert_status_is_ok();
    }
    for response in refreshes {
        response.assert_status_is_ok();
        let tokens = json(response).await;
        get_account(&app, Some(text(&tokens["access_token"])))
            .await
            .assert_status_is_ok();
    }
}

/// The one statement that rotates a refresh token decided on reads made before the write
/// transaction re-checks, under it, everything those reads found: the token unused, its session
/// live, its user confirmed and enabled. It changes nothing when any of them changed.
#[tokio::test]
async fn rotation_decided_before_the_transaction_rechecks_token_session_and_user() {
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let use_token = |jti: String, session: uuid::Uuid| async move {
        let won = store::sessions::use_refresh_token(db, &jti, Some(session), Utc::now())
            .await
            .unwrap();
        let row = refresh_token::Entity::find_by_id(jti.clone())
            .all(db)
            .await
            .unwrap()
            .pop()
            .expect("the refresh token");
        (won, row.used_at.is_some())
    };
    app.confirmed_user(ADA, PASSWORD).await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let tokens = login_ok(&app, ADA, PASSWORD).await;
        let jti = text(&claims(text(&tokens["refresh_token"]))["jti"]).to_string();
        let session = uuid::Uuid::parse_str(text(&claims(text(&tokens["id_token"]))["origin_jti"]))
            .expect("origin_jti names the session");
        sessions.push((jti, session));
    }
    let [live, revoked, expired, disabled] = sessions.try_into().expect("four sessions");

    assert_eq!(use_token(live.0.clone(), live.1).await, (true, true));
    assert_eq!(
        use_token(live.0, live.1).await,
        (false, true),
        "already used"
    );

    store::sessions::revoke(db, revoked.1, Utc::now())
        .await
        .unwrap();
    assert_eq!(use_token(revoked.0, revoked.1).await, (false, false));

    let mut row: session::ActiveModel = session::Entity::find_by_id(expired.1)
        .all(db)
        .await
        .unwrap()
        .pop()
        .expect("the session")
        .into();
    row.expires_at = Set(Utc::now() - TimeDelta::seconds(1));
    row.update(db).await.unwrap();
    assert_eq!(use_token(expired.0, expired.1).await, (false, false));

    disable(&app, ADA).await;
    assert_eq!(use_token(disabled.0, disabled.1).await, (false, false));
}

// --- Sign-out -----------------------------------------------------------------------------------

#[tokio::test]
async fn logout_clears_the_cookies_and_refuses_the_session_tokens_at_once() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;

    let response = app
        .post_as("/api/logout", text(&tokens["access_token"]), json!({}))
        .await;

    response.assert_status_is_ok();
    let cookies = set_cookies(&response);
    for name in ["access_token", "refresh_token"] {
        let cleared = cookie(&cookies, name);
        assert_eq!(cleared.value, "", "{name}");
        assert!(cleared.has("Max-Age=0"), "{cleared:?}");
        assert!(cleared.has("Path=/"), "{cleared:?}");
    }
    assert!(json(response).await["detail"].is_string());
    for token in ["access_token", "id_token"] {
        let response = get_account(&app, Some(text(&tokens[token]))).await;
        assert_error(response, 401, "NotAuthorizedException").await;
    }
    let response = refresh(&app, text(&tokens["refresh_token"])).await;
    assert_error(response, 401, "NotAuthorizedException").await;
}

#[tokio::test]
async fn logout_with_the_id_token_and_no_body_works_too() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;

    let response = app
        .client
        .post("/api/logout")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", text(&tokens["id_token"])),
        )
        .send()
        .await;

    response.assert_status_is_ok();
    let response = get_account(&app, Some(text(&tokens["access_token"]))).await;
    assert_error(response, 401, "NotAuthorizedException").await;
}

#[tokio::test]
async fn plain_logout_leaves_the_other_sessions_working() {
    let app = TestApp::spawn().await;
    let laptop = app.signed_in(ADA, PASSWORD).await;
    let phone = login_ok(&app, ADA, PASSWORD).await;

    app.post_as("/api/logout", text(&laptop["access_token"]), json!({}))
        .await
        .assert_status_is_ok();

    get_account(&app, Some(text(&phone["access_token"])))
        .await
        .assert_status_is_ok();
    refresh(&app, text(&phone["refresh_token"]))
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_of_the_user_only() {
    let app = TestApp::spawn().await;
    let laptop = app.signed_in(ADA, PASSWORD).await;
    let phone = login_ok(&app, ADA, PASSWORD).await;
    let other_user = app.signed_in("grace@example.org", PASSWORD).await;

    app.post_as(
        "/api/logout",
        text(&laptop["access_token"]),
        json!({"everywhere": true}),
    )
    .await
    .assert_status_is_ok();

    for tokens in [&laptop, &phone] {
        let response = get_account(&app, Some(text(&tokens["id_token"]))).await;
        assert_error(response, 401, "NotAuthorizedException").await;
        let response = refresh(&app, text(&tokens["refresh_token"])).await;
        assert_error(response, 401, "NotAuthorizedException").await;
    }
    get_account(&app, Some(text(&other_user["access_token"])))
        .await
        .assert_status_is_ok();
}

// --- Sessions ended by other events ---------------------------------------------------------

#[tokio::test]
async fn disabling_a_user_refuses_their_tokens() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;

    disable(&app, ADA).await;

    for token in ["access_token", "id_token"] {
        let response = get_account(&app, Some(text(&tokens[token]))).await;
        assert_error(response, 401, "NotAuthorizedException").await;
    }
    let response = refresh(&app, text(&tokens["refresh_token"])).await;
    assert_error(response, 401, "NotAuthorizedException").await;
}

#[tokio::test]
async fn a_session_past_its_expiry_refuses_its_tokens() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;
    let session_id = uuid::Uuid::parse_str(text(&claims(text(&tokens["id_token"]))["origin_jti"]))
        .expect("origin_jti names the session");

    let mut session: session::ActiveModel = session::Entity::find_by_id(session_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the session")
        .into();
    session.expires_at = Set(Utc::now() - TimeDelta::seconds(1));
    session.update(&app.state.db).await.unwrap();

    for token in ["access_token", "id_token"] {
        let response = get_account(&app, Some(text(&tokens[token]))).await;
        assert_error(response, 401, "NotAuthorizedException").await;
    }
    let response = refresh(&app, text(&tokens["refresh_token"])).await;
    assert_error(response, 401, "NotAuthorizedException").await;
}

// --- Helpers ------------------------------------------------------------------------------------

/// `GET /api/account` with this `Authorization` value, or none.
async fn get_account(app: &TestApp, authorization: Option<&str>) -> TestResponse {
    let mut request = app.client.get("/api/account");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request.send().await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> TestResponse {
    app.post("/api/refresh", json!({"refresh_token": refresh_token}))
        .await
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn parts(token: &str) -> [&str; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    parts.try_into().expect("three parts")
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// The token with one signature byte changed.
fn flip_signature_byte(token: &str) -> String {
    let [header, payload, signature] = parts(token);
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let middle = signature.len() / 2;
    signature[middle] ^= 0x01;
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The token's claims under `alg: none`, with an empty signature.
fn unsigned(token: &str) -> String {
    let mut header = token_header(token);
    header["alg"] = "none".into();
    let [_, payload, _] = parts(token);
    format!("{}.{payload}.", encode(&header))
}

/// The token with one claim changed and the original signature kept.
fn with_claim(token: &str, name: &str, value: Value) -> String {
    let mut claims = claims(token);
    claims[name] = value;
    let [header, _, signature] = parts(token);
    format!("{header}.{}.{signature}", encode(&claims))
}

/// The token's claims under `alg: HS256`, keyed with public data (algorithm confusion).
fn hmac_signed(token: &str, public: &str) -> String {
    let mut header = token_header(token);
    header["alg"] = "HS256".into();
    let [_, payload, _] = parts(token);
    let signing_input = format!("{}.{payload}", encode(&header));
    let key = hmac::Key::new(hmac::HMAC_SHA256, public.as_bytes());
    let tag = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The token's claims under this `kid`, validly signed with a fresh RSA key that is not ours.
fn signed_by_another_key(token: &str, kid: &str) -> String {
    let mut header = token_header(token);
    header["kid"] = kid.into();
    let [_, payload, _] = parts(token);
    let signing_input = format!("{}.{payload}", encode(&header));
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("an RSA key");
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .expect("signing");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
