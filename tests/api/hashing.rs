//! Password hashing as the API exposes it: a bounded argon2 pool that answers 503 when full, the
//! production parameters, and transparent rehashing when the parameters change.

use std::time::{Duration, Instant};

use authpool::{
    crypto::password::REFUSAL_HOLD,
    startup::{build_app, build_state},
    state::AppState,
};
use entity::user;
use poem::{
    http::{StatusCode, header},
    test::TestClient,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_error};

const ADA: &str = "ada@example.org";

#[tokio::test]
async fn a_login_beyond_the_hashing_pool_is_refused_with_503_without_waiting_for_a_place() {
    let app = TestApp::with_one_slow_hasher().await;
    app.confirmed_user(ADA, PASSWORD).await;
    let app = std::sync::Arc::new(app);

    let started = Instant::now();
    let first = tokio::spawn({
        let app = app.clone();
        async move {
            let response = app.login(ADA, PASSWORD).await;
            (response.0.status(), started.elapsed())
        }
    });
    wait_until("the first login is hashing", || {
        app.state.hasher.in_flight() == 1
    })
    .await;

    let refused_at = Instant::now();
    let second = app.login(ADA, PASSWORD).await;
    let refused_after = refused_at.elapsed();

    let wait = retry_after(&second);
    assert_error(second, 503, "ServiceUnavailableException").await;
    assert!(wait >= 1, "Retry-After {wait}");
    let (first_status, first_took) = first.await.unwrap();
    assert_eq!(first_status, StatusCode::OK, "the running login completes");
    assert!(
        refused_after < first_took,
        "refused in {refused_after:?}, without waiting for the running hash ({first_took:?})"
    );
    // Held a moment first, so that a client retrying at once is refused at a bounded rate.
    assert!(
        refused_after >= REFUSAL_HOLD,
        "refused in {refused_after:?}"
    );
    assert_eq!(app.state.hasher.in_flight(), 0);
    app.login(ADA, PASSWORD).await.assert_status_is_ok();
}

#[tokio::test]
async fn a_login_refused_by_a_full_hashing_pool_makes_no_database_query() {
    let app = TestApp::with_settings(&[("hash_concurrency", "1"), ("hash_queue", "0")]).await;
    app.confirmed_user(ADA, PASSWORD).await;

    // The pool's only place taken, and the database closed: any query would now fail.
    let held = app.state.hasher.try_admit().expect("a free place");
    app.state
        .db
        .close_by_ref()
        .await
        .expect("the database closes");
    for email in [ADA, "nobody@example.org"] {
        let refused = app.login(email, PASSWORD).await;
        assert_eq!(retry_after(&refused), 1, "the hashing pool's Retry-After");
        let body = assert_error(refused, 503, "ServiceUnavailableException").await;
        assert_eq!(body["detail"], "The server is busy; try again shortly.");
    }
    assert_eq!(app.state.hasher.rejected(), 2);

    // With the place free, the same login reaches the closed database, and fails there.
    drop(held);
    let failed = app.login(ADA, PASSWORD).await;
    assert_eq!(retry_after(&failed), 5, "the database's Retry-After");
    let body = assert_error(failed, 503, "ServiceUnavailableException").await;
    assert_eq!(body["detail"], "The database is unreachable.");
    assert_eq!(app.state.hasher.in_flight(), 0);
}

#[tokio::test]
async fn the_production_parameters_hash_and_verify() {
    let app =
        TestApp::with_settings(&[("argon2_memory_kib", "19456"), ("argon2_iterations", "2")]).await;

    app.confirmed_user(ADA, PASSWORD).await;
    app.login(ADA, PASSWORD).await.assert_status_is_ok();

    let hash = stored_hash(&app.state, ADA).await;
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "stored hash {hash}"
    );
    let wrong = app.login(ADA, "not the password at all").await;
    assert_error(wrong, 401, "NotAuthorizedException").await;
}

#[tokio::test]
async fn a_login_rehashes_a_password_stored_with_old_parameters() {
    let app = TestApp::spawn().await;
    app.confirmed_user(ADA, PASSWORD).await;
    let old_hash = stored_hash(&app.state, ADA).await;
    assert!(
        old_hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
        "{old_hash}"
    );

    // The same database, served with new parameters (as after a configuration change).
    let mut settings = (*app.state.settings).clone();
    settings.argon2.memory_kib = 128;
    settings.argon2.iterations = 2;
    let upgraded = build_state(settings).await.expect("app state builds");
    let client = TestClient::new(build_app(upgraded.clone()));
    let login = || {
        client
            .post("/api/login")
            .body_json(&json!({"email": ADA, "password": PASSWORD}))
            .send()
    };

    login().await.assert_status_is_ok();

    let new_hash = stored_hash(&upgraded, ADA).await;
    assert!(
        new_hash.starts_with("$argon2id$v=19$m=128,t=2,p=1$"),
        "{new_hash}"
    );
    login().await.assert_status_is_ok();
    assert_eq!(
        stored_hash(&upgraded, ADA).await,
        new_hash,
        "a current hash is not rehashed again"
    );
    let wrong = client
        .post("/api/login")
        .body_json(&json!({"email": ADA, "password": "not the password at all"}))
        .send()
        .await;
    assert_error(wrong, 401, "NotAuthorizedException").await;
}

// ---- helpers for this file ----

async fn stored_hash(state: &AppState, email: &str) -> String {
    user::Entity::find()
        .filter(user::Column::EmailKey.eq(email))
        .one(&state.db)
        .await
        .unwrap()
        .expect("the user")
        .password_hash
}

/// Polls the condition until it holds, failing after ten seconds.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn retry_after(response: &poem::test::TestResponse) -> u64 {
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
